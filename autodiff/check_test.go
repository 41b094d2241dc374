package autodiff

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/runtime"
)

// gradCase is one op (or small graph) whose gradient is checked against
// central finite differences. build declares graph inputs of the case's
// dtype with static shapes through in and returns the value to
// differentiate; the loss is the sum of that value times a fixed random
// tensor, so every output element matters.
type gradCase struct {
	name  string
	build func(b *onnx.Builder, in func(name string, shape ...int64) string) string
	// init draws input values; nil draws ±[0.5, 1.5], away from the kinks
	// of Relu and the poles of Div.
	init func(r *rand.Rand, name string, i int) float64
	// tol is the largest relative error accepted; 0 means 1e-6.
	tol float64
	// dtype is onnx.Double (the default) or onnx.Float, for ops that ORT
	// runs in float32 only (Conv, AveragePool, ...); such cases need a
	// larger eps and tol.
	dtype int32
	// eps is the finite-difference step; 0 means 1e-6.
	eps float64
	// random marks graphs that draw random numbers (Dropout): ORT draws
	// anew on every run, so each evaluation gets a fresh session, whose
	// first run draws what the gradient graph's first run drew.
	random bool
}

func checkGradients(t *testing.T, cases []gradCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkGradient(t, tc) })
	}
}

func checkGradient(t *testing.T, tc gradCase) {
	r := rand.New(rand.NewPCG(1, 2))
	dtype := tc.dtype
	if dtype == 0 {
		dtype = onnx.Double
	}
	b := onnx.NewBuilder(tc.name, Opset)
	var inputs []string
	shapes := map[string][]int64{}
	in := func(name string, shape ...int64) string {
		inputs = append(inputs, b.Input(name, dtype, shape...))
		shapes[name] = shape
		return name
	}
	y := tc.build(b, in)
	pre, err := InferShapes(b.Model().Graph())
	if err != nil {
		t.Fatal(err)
	}
	yt := pre.Types[y]
	proj := make([]float64, yt.Size())
	for i := range proj {
		proj[i] = r.Float64()*2 - 1
	}
	rt := &pb.TensorProto{Name: ptr("projection"), Dims: yt.Shape, DataType: ptr(dtype)}
	if dtype == onnx.Double {
		rt.DoubleData = proj
	} else {
		rt.FloatData = make([]float32, len(proj))
		for i, p := range proj {
			rt.FloatData[i] = float32(p)
			proj[i] = float64(rt.FloatData[i])
		}
	}
	loss := b.Node("ReduceSum", []string{b.Node("Mul", []string{y, b.Initializer(rt)})}, onnx.Int("keepdims", 0))
	b.Output(loss, dtype)
	fwd := b.Model()

	res, err := Gradients(fwd.Graph(), loss, inputs)
	if err != nil {
		t.Fatal(err)
	}
	values := make([][]float64, len(inputs))
	for k, name := range inputs {
		v := make([]float64, (&Tensor{Shape: shapes[name]}).Size())
		for i := range v {
			if tc.init != nil {
				v[i] = tc.init(r, name, i)
			} else {
				v[i] = (0.5 + r.Float64()) * float64(1-2*r.IntN(2))
			}
			v[i] = representable(v[i], dtype)
		}
		values[k] = v
	}
	tensors := func() []runtime.Tensor {
		out := make([]runtime.Tensor, len(inputs))
		for k, name := range inputs {
			out[k] = newTensor(shapes[name], values[k], dtype)
		}
		return out
	}
	gradModel := &onnx.Model{Proto: withGraph(fwd, res.Graph)}
	fwd, gradModel = float64Erf(fwd), float64Erf(gradModel)
	outs := run(t, gradModel, tensors())

	// The finite differences sum the projection in float64, in Go: in
	// float32 the summation's own rounding would swamp the differences.
	probe := fwd.Clone()
	probe.Graph().Output = []*pb.ValueInfoProto{valueInfo(y, yt)}
	fwdSession := session(t, probe)
	defer fwdSession.Close()
	lossAt := func() float64 {
		s := fwdSession
		if tc.random {
			s = session(t, probe)
			defer s.Close()
		}
		o, err := s.Run(tensors()...)
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for i, v := range floats(o[0]) {
			sum += proj[i] * v
		}
		return sum
	}
	tol := tc.tol
	if tol == 0 {
		tol = 1e-6
	}
	eps := tc.eps
	if eps == 0 {
		eps = 1e-6
	}
	for k, name := range inputs {
		got := floats(outs[1+k])
		v := values[k]
		var worst, scale float64
		fd := make([]float64, len(v))
		for i := range v {
			x := v[i]
			up, down := representable(x+eps, dtype), representable(x-eps, dtype)
			v[i] = up
			lu := lossAt()
			v[i] = down
			ld := lossAt()
			v[i] = x
			fd[i] = (lu - ld) / (up - down)
			worst = max(worst, math.Abs(got[i]-fd[i]))
			scale = max(scale, math.Abs(fd[i]))
		}
		if rel := worst / max(scale, 1e-3); rel > tol || math.IsNaN(rel) {
			t.Errorf("d loss / d %s: relative error %.3g > %.0g\n analytic %v\n numeric  %v", name, rel, tol, short(got), short(fd))
		}
	}
}

// representable rounds x to the nearest value of dtype, so that finite
// differences divide by the step the graph actually sees.
func representable(x float64, dtype int32) float64 {
	if dtype == onnx.Float {
		return float64(float32(x))
	}
	return x
}

// newTensor copies v into a tensor of dtype: ORT may write into an input
// (a training-mode BatchNormalization stores running statistics it does
// not output in its mean and var inputs), which must not move the point
// the differences are taken at.
func newTensor(shape []int64, v []float64, dtype int32) runtime.Tensor {
	if dtype == onnx.Float {
		f := make([]float32, len(v))
		for i, x := range v {
			f[i] = float32(x)
		}
		return runtime.NewTensor(shape, f)
	}
	return runtime.NewTensor(shape, slices.Clone(v))
}

func floats(t runtime.Tensor) []float64 {
	switch d := t.Data.(type) {
	case []float64:
		return d
	case []float32:
		out := make([]float64, len(d))
		for i, x := range d {
			out[i] = float64(x)
		}
		return out
	}
	panic(fmt.Sprintf("tensor of %s, want float32 or float64", t.DType))
}

func short(v []float64) string {
	if len(v) > 8 {
		return fmt.Sprintf("%.6g ... (%d values)", v[:8], len(v))
	}
	return fmt.Sprintf("%.6g", v)
}

func ptr[T any](v T) *T { return &v }

// withGraph is fwd's model with its graph replaced.
func withGraph(fwd *onnx.Model, g *pb.GraphProto) *pb.ModelProto {
	m := fwd.Clone().Proto
	m.Graph = g
	return m
}

func session(t *testing.T, m *onnx.Model) *runtime.Session {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := runtime.NewSession(b, runtime.Options{BasicOptimizations: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func run(t *testing.T, m *onnx.Model, in []runtime.Tensor) []runtime.Tensor {
	t.Helper()
	s := session(t, m)
	defer s.Close()
	out, err := s.Run(in...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

package autodiff

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/runtime"
)

// gradCase is one op (or small graph) whose gradient is checked against
// central finite differences. build declares float64 graph inputs with
// static shapes through in and returns the value to differentiate; the loss
// is the sum of that value times a fixed random tensor, so every output
// element matters.
type gradCase struct {
	name  string
	build func(b *onnx.Builder, in func(name string, shape ...int64) string) string
	// init draws input values; nil draws ±[0.5, 1.5], away from the kinks
	// of Relu and the poles of Div.
	init func(r *rand.Rand, name string, i int) float64
	// tol is the largest relative error accepted; 0 means 1e-6.
	tol float64
}

func checkGradients(t *testing.T, cases []gradCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkGradient(t, tc) })
	}
}

func checkGradient(t *testing.T, tc gradCase) {
	r := rand.New(rand.NewPCG(1, 2))
	b := onnx.NewBuilder(tc.name, Opset)
	var inputs []string
	shapes := map[string][]int64{}
	in := func(name string, shape ...int64) string {
		inputs = append(inputs, b.Input(name, onnx.Double, shape...))
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
	rt := &pb.TensorProto{Name: ptr("projection"), Dims: yt.Shape, DataType: ptr(onnx.Double), DoubleData: proj}
	loss := b.Node("ReduceSum", []string{b.Node("Mul", []string{y, b.Initializer(rt)})}, onnx.Int("keepdims", 0))
	b.Output(loss, onnx.Double)
	fwd := b.Model()

	res, err := Gradients(fwd.Graph(), loss, inputs)
	if err != nil {
		t.Fatal(err)
	}
	values := make([]runtime.Tensor, len(inputs))
	for k, name := range inputs {
		n := (&Tensor{Shape: shapes[name]}).Size()
		v := make([]float64, n)
		for i := range v {
			if tc.init != nil {
				v[i] = tc.init(r, name, i)
			} else {
				v[i] = (0.5 + r.Float64()) * float64(1-2*r.IntN(2))
			}
		}
		values[k] = runtime.NewTensor(shapes[name], v)
	}
	gradModel := &onnx.Model{Proto: withGraph(fwd, res.Graph)}
	outs := run(t, gradModel, values)
	fwdSession := session(t, fwd)
	defer fwdSession.Close()
	lossAt := func() float64 {
		o, err := fwdSession.Run(values...)
		if err != nil {
			t.Fatal(err)
		}
		return o[0].Data.([]float64)[0]
	}
	tol := tc.tol
	if tol == 0 {
		tol = 1e-6
	}
	const eps = 1e-6
	for k, name := range inputs {
		got := outs[1+k].Data.([]float64)
		v := values[k].Data.([]float64)
		var worst, scale float64
		fd := make([]float64, len(v))
		for i := range v {
			x := v[i]
			v[i] = x + eps
			up := lossAt()
			v[i] = x - eps
			down := lossAt()
			v[i] = x
			fd[i] = (up - down) / (2 * eps)
			worst = max(worst, math.Abs(got[i]-fd[i]))
			scale = max(scale, math.Abs(fd[i]))
		}
		if rel := worst / max(scale, 1e-3); rel > tol || math.IsNaN(rel) {
			t.Errorf("d loss / d %s: relative error %.3g > %.0g\n analytic %v\n numeric  %v", name, rel, tol, short(got), short(fd))
		}
	}
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

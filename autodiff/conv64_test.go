package autodiff

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/runtime"
)

// ORT runs Conv and ConvTranspose in float32 only, so a graph with a Conv
// cannot be differentiated numerically in float64 as it stands. A twinCase
// builds it twice: in float32 as training runs it, whose gradient graph
// gives the analytic gradient, and in float64 with each Conv written as
// im2col (Gather + Einsum, which ORT runs in float64), whose central
// differences give the reference. The analytic side rounds in float32, yet
// stays within 1e-6 of the reference on these sizes.
type twinCase struct {
	name string
	// build emits the graph in the given dtype through in, with conv for
	// every convolution, and returns the value to differentiate.
	build func(b *onnx.Builder, in func(name string, shape ...int64) string, conv convFunc) string
	// init draws input values; nil draws ±[0.5, 1.5].
	init func(r *rand.Rand, name string) float64
	tol  float64 // 0 means 1e-6
}

// convFunc emits a Conv of x by w (and bias, if not "") with the attributes
// of a node; xs and ws are the shapes of x and w.
type convFunc func(b *onnx.Builder, x, w, bias string, xs, ws []int64, attrs ...*pb.AttributeProto) string

func convOp(b *onnx.Builder, x, w, bias string, _, _ []int64, attrs ...*pb.AttributeProto) string {
	in := []string{x, w}
	if bias != "" {
		in = append(in, bias)
	}
	return b.Node("Conv", in, attrs...)
}

// im2colConv is convOp in ops that ORT runs in float64: x padded, each
// output's patch gathered by a constant index, contracted with the weight
// group by group.
func im2colConv(b *onnx.Builder, x, w, bias string, xs, ws []int64, attrs ...*pb.AttributeProto) string {
	win, err := newWindow(&pb.NodeProto{Attribute: attrs}, xs[2:], ws[2:], false)
	if err != nil {
		panic(err)
	}
	var group int64 = 1
	for _, a := range attrs {
		if a.GetName() == "group" {
			group = a.GetI()
		}
	}
	n, c, m, d := xs[0], xs[1], ws[0], len(xs)-2
	padded := make([]int64, d)
	pads := make([]int64, 2*len(xs))
	for i := range d {
		padded[i] = xs[2+i] + win.begin[i] + win.end[i]
		pads[2+i], pads[len(xs)+2+i] = win.begin[i], win.end[i]
	}
	x = b.Node("Pad", []string{x, b.Int64s(b.Fresh("pads"), pads...)})
	outs, taps := product(win.out), product(win.kernel)
	table := b.Initializer(onnx.NewInt64Tensor(b.Fresh("patches"), []int64{outs, taps}, patchIndex(win, padded)))
	cols := b.Node("Gather", []string{reshape(b, x, n, group, c/group, product(padded)), table}, onnx.Int("axis", 3))
	wg := reshape(b, w, group, m/group, c/group, taps)
	y := b.Node("Einsum", []string{cols, wg}, onnx.Str("equation", "ngcok,gmck->ngmo"))
	y = reshape(b, y, slices.Concat([]int64{n, m}, win.out)...)
	if bias == "" {
		return y
	}
	return b.Node("Add", []string{y, reshape(b, bias, slices.Concat([]int64{m}, onesOf(d))...)})
}

func reshape(b *onnx.Builder, x string, shape ...int64) string {
	return b.Node("Reshape", []string{x, b.Int64s(b.Fresh("shape"), shape...)})
}

// twin is one side of a twinCase: a graph whose only output is the loss
// Σ projection·value, and its inputs.
type twin struct {
	model  *onnx.Model
	loss   string
	inputs []string
	shapes [][]int64
	ys     []int64
}

// newTwin builds one side of tc. The float32 side infers ys, the shape of
// the value differentiated; the float64 side, whose im2col ops InferShapes
// does not know, is given it.
func newTwin(tc twinCase, dtype int32, conv convFunc, ys []int64) *twin {
	b := onnx.NewBuilder(tc.name, Opset)
	tw := &twin{}
	in := func(name string, shape ...int64) string {
		tw.inputs = append(tw.inputs, b.Input(name, dtype, shape...))
		tw.shapes = append(tw.shapes, shape)
		return name
	}
	y := tc.build(b, in, conv)
	if dtype == onnx.Float {
		pre, err := InferShapes(b.Model().Graph())
		if err != nil {
			panic(err)
		}
		ys = pre.Types[y].Shape
	}
	tw.ys = ys
	r := rand.New(rand.NewPCG(5, 6))
	proj := make([]float64, product(ys))
	for i := range proj {
		proj[i] = representable(r.Float64()*2-1, onnx.Float)
	}
	pt := &pb.TensorProto{Name: ptr("projection"), Dims: ys, DataType: ptr(dtype), DoubleData: proj}
	if dtype == onnx.Float {
		pt.DoubleData, pt.FloatData = nil, newTensor(nil, proj, onnx.Float).Data.([]float32)
	}
	tw.loss = b.Node("ReduceSum", []string{b.Node("Mul", []string{y, b.Initializer(pt)})}, onnx.Int("keepdims", 0))
	b.Output(tw.loss, dtype)
	tw.model = b.Model()
	return tw
}

func checkTwins(t *testing.T, cases []twinCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkTwin(t, tc) })
	}
}

func checkTwin(t *testing.T, tc twinCase) {
	f32 := newTwin(tc, onnx.Float, convOp, nil)
	f64 := newTwin(tc, onnx.Double, im2colConv, f32.ys)
	res, err := Gradients(f32.model.Graph(), f32.loss, f32.inputs)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	values := make([][]float64, len(f32.inputs))
	for k, name := range f32.inputs {
		values[k] = make([]float64, product(f32.shapes[k]))
		for i := range values[k] {
			v := (0.5 + r.Float64()) * float64(1-2*r.IntN(2))
			if tc.init != nil {
				v = tc.init(r, name)
			}
			values[k][i] = representable(v, onnx.Float)
		}
	}
	tensors := func(dtype int32) []runtime.Tensor {
		out := make([]runtime.Tensor, len(values))
		for k, v := range values {
			out[k] = newTensor(f32.shapes[k], v, dtype)
		}
		return out
	}
	outs := run(t, &onnx.Model{Proto: withGraph(f32.model, res.Graph)}, tensors(onnx.Float))
	ref := session(t, f64.model)
	defer ref.Close()
	lossAt := func() float64 {
		o, err := ref.Run(tensors(onnx.Double)...)
		if err != nil {
			t.Fatal(err)
		}
		return floats(o[0])[0]
	}
	// The twins must compute the same function, or a geometry that both
	// got wrong the same way would pass.
	if l32, l64 := floats(outs[0])[0], lossAt(); math.Abs(l32-l64) > 1e-4*max(1, math.Abs(l64)) {
		t.Fatalf("float32 graph gives loss %.8g, float64 twin %.8g", l32, l64)
	}
	tol := tc.tol
	if tol == 0 {
		tol = 1e-6
	}
	const eps = 1e-6
	for k, name := range f32.inputs {
		got, v := floats(outs[1+k]), values[k]
		fd := make([]float64, len(v))
		var worst, scale float64
		for i, x := range v {
			v[i] = x + eps
			up := lossAt()
			v[i] = x - eps
			fd[i] = (up - lossAt()) / (2 * eps)
			v[i] = x
			worst = max(worst, math.Abs(got[i]-fd[i]))
			scale = max(scale, math.Abs(fd[i]))
		}
		if rel := worst / max(scale, 1e-12); rel > tol || math.IsNaN(rel) {
			t.Errorf("d loss / d %s: relative error %.3g > %.0g\n analytic %v\n numeric  %v", name, rel, tol, short(got), short(fd))
		}
	}
}

package autodiff

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/runtime"
)

// ORT runs AveragePool and GlobalAveragePool (and their gradients'
// ConvTranspose) in float32 only, so their cases are float32. Both are
// linear in x, so central differences are exact at any step, and a large
// step leaves only float32 rounding (6e-7 seen). Conv is checked against a
// float64 twin (conv64_test.go); MaxPool runs in float64.
const (
	linearEps = 0.25
	linearTol = 5e-6
)

func convCase(name string, x, w []int64, bias bool, attrs ...*pb.AttributeProto) twinCase {
	return twinCase{name: "Conv/" + name, build: func(b *onnx.Builder, in func(string, ...int64) string, conv convFunc) string {
		xv, wv, bv := in("x", x...), in("w", w...), ""
		if bias {
			bv = in("b", w[0])
		}
		return conv(b, xv, wv, bv, x, w, attrs...)
	}}
}

func TestConvGradients(t *testing.T) {
	ints, str, one := onnx.Ints, onnx.Str, onnx.Int
	checkTwins(t, []twinCase{
		convCase("1d", []int64{2, 3, 7}, []int64{4, 3, 3}, true),
		convCase("1d/strides-pads", []int64{2, 3, 7}, []int64{4, 3, 3}, true, ints("strides", 2), ints("pads", 1, 2)),
		convCase("1d/dilations", []int64{2, 2, 9}, []int64{3, 2, 3}, false, ints("dilations", 2)),
		convCase("1d/unreached-tail", []int64{1, 2, 8}, []int64{2, 2, 3}, true, ints("strides", 3)),
		convCase("2d", []int64{2, 3, 6, 5}, []int64{4, 3, 3, 2}, true),
		convCase("2d/strides-pads-dilations", []int64{2, 2, 9, 8}, []int64{3, 2, 3, 2}, true,
			ints("strides", 2, 3), ints("pads", 1, 0, 2, 1), ints("dilations", 1, 2)),
		convCase("2d/wide-pads", []int64{1, 2, 4, 4}, []int64{2, 2, 2, 2}, false, ints("pads", 2, 1, 2, 3)),
		convCase("2d/im2col", []int64{2, 6, 9, 8}, []int64{3, 6, 3, 2}, true,
			ints("strides", 2, 3), ints("pads", 1, 0, 2, 1), ints("dilations", 1, 2)),
		convCase("2d/group", []int64{2, 4, 5, 5}, []int64{6, 2, 3, 3}, true, one("group", 2)),
		convCase("2d/depthwise", []int64{2, 3, 7, 6}, []int64{6, 1, 3, 3}, true, one("group", 3), ints("strides", 2, 2)),
		convCase("2d/same-upper", []int64{1, 2, 7, 6}, []int64{3, 2, 3, 3}, true, str("auto_pad", "SAME_UPPER"), ints("strides", 2, 2)),
		convCase("2d/same-lower", []int64{1, 2, 6, 5}, []int64{2, 2, 2, 3}, false, str("auto_pad", "SAME_LOWER")),
		convCase("2d/valid", []int64{1, 2, 6, 5}, []int64{2, 2, 3, 3}, true, str("auto_pad", "VALID")),
		convCase("2d/kernel_shape", []int64{2, 1, 6, 6}, []int64{3, 1, 5, 5}, true, ints("kernel_shape", 5, 5)),
		convCase("3d", []int64{1, 2, 4, 5, 3}, []int64{2, 2, 2, 3, 2}, true, ints("strides", 1, 2, 1)),
		convCase("cnn-s/conv1", []int64{2, 1, 28, 28}, []int64{8, 1, 5, 5}, true),
		convCase("cnn-s/conv2", []int64{2, 8, 12, 12}, []int64{6, 8, 5, 5}, true),
		convCase("cnn-s/conv3", []int64{2, 6, 4, 4}, []int64{4, 6, 2, 2}, true),
	})
}

func poolCase(op, name string, x []int64, attrs ...*pb.AttributeProto) gradCase {
	tc := gradCase{name: op + "/" + name, build: func(b *onnx.Builder, in func(string, ...int64) string) string {
		return b.Node(op, []string{in("x", x...)}, attrs...)
	}}
	if op != "MaxPool" {
		tc.dtype, tc.eps, tc.tol = onnx.Float, linearEps, linearTol
	}
	return tc
}

func TestPoolGradients(t *testing.T) {
	ints, str, one := onnx.Ints, onnx.Str, onnx.Int
	k := func(v ...int64) *pb.AttributeProto { return ints("kernel_shape", v...) }
	checkGradients(t, []gradCase{
		poolCase("MaxPool", "tiles", []int64{2, 3, 4, 6}, k(2, 2), ints("strides", 2, 2)),
		poolCase("MaxPool", "tiles/remainder", []int64{1, 2, 5, 7}, k(2, 2), ints("strides", 2, 2)),
		poolCase("MaxPool", "tiles/3x3", []int64{2, 2, 6, 9}, k(3, 3), ints("strides", 3, 3)),
		poolCase("MaxPool", "tiles/non-square", []int64{1, 2, 5, 7}, k(2, 3), ints("strides", 2, 3)),
		poolCase("MaxPool", "tiles/1d", []int64{2, 2, 9}, k(3), ints("strides", 3)),
		poolCase("MaxPool", "overlapping", []int64{1, 2, 5, 5}, k(3, 3)),
		poolCase("MaxPool", "strides-pads", []int64{2, 2, 6, 7}, k(3, 3), ints("strides", 2, 2), ints("pads", 1, 1, 1, 0)),
		poolCase("MaxPool", "dilations", []int64{1, 2, 7, 7}, k(2, 2), ints("dilations", 2, 3)),
		poolCase("MaxPool", "ceil", []int64{1, 2, 5, 5}, k(2, 2), ints("strides", 2, 2), one("ceil_mode", 1)),
		poolCase("MaxPool", "same-upper", []int64{1, 2, 5, 6}, k(3, 2), ints("strides", 2, 2), str("auto_pad", "SAME_UPPER")),
		poolCase("MaxPool", "3d", []int64{1, 2, 4, 4, 4}, k(2, 2, 2), ints("strides", 2, 2, 2)),
		{name: "MaxPool/with-indices", build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			y, idx := b.Fresh("y"), b.Fresh("indices")
			b.NodeOut("pool", "MaxPool", []string{in("x", 1, 2, 4, 4)}, []string{y, idx}, k(2, 2), ints("strides", 2, 2))
			return y
		}},
		poolCase("AveragePool", "tiles", []int64{2, 3, 4, 6}, k(2, 2), ints("strides", 2, 2)),
		poolCase("AveragePool", "overlapping", []int64{1, 2, 5, 5}, k(3, 2)),
		poolCase("AveragePool", "pads/exclude", []int64{2, 2, 6, 7}, k(3, 3), ints("strides", 2, 2), ints("pads", 1, 1, 1, 0)),
		poolCase("AveragePool", "pads/include", []int64{2, 2, 6, 7}, k(3, 3), ints("strides", 2, 2), ints("pads", 1, 1, 1, 0), one("count_include_pad", 1)),
		poolCase("AveragePool", "ceil/exclude", []int64{1, 2, 5, 6}, k(3, 2), ints("strides", 2, 2), ints("pads", 1, 0, 0, 0), one("ceil_mode", 1)),
		poolCase("AveragePool", "ceil/include", []int64{1, 2, 5, 6}, k(3, 2), ints("strides", 2, 2), ints("pads", 1, 0, 0, 0), one("ceil_mode", 1), one("count_include_pad", 1)),
		poolCase("AveragePool", "same-lower", []int64{1, 2, 5, 6}, k(3, 2), ints("strides", 2, 2), str("auto_pad", "SAME_LOWER")),
		poolCase("AveragePool", "1d", []int64{2, 2, 9}, k(3), ints("strides", 2)),
		poolCase("GlobalAveragePool", "2d", []int64{2, 3, 4, 5}),
		poolCase("GlobalAveragePool", "1d", []int64{2, 3, 4}),
	})
}

// Finite differences cannot see ties, where max has no derivative; the
// gradient must still not count a tied window twice.
func TestMaxPoolTiesShareGradient(t *testing.T) {
	b := onnx.NewBuilder("ties", Opset)
	x := b.Input("x", onnx.Double, 1, 1, 2, 4)
	y := b.Node("MaxPool", []string{x}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2))
	loss := b.Node("ReduceSum", []string{y}, onnx.Int("keepdims", 0))
	b.Output(loss, onnx.Double)
	m := b.Model()
	res, err := Gradients(m.Graph(), loss, []string{x})
	if err != nil {
		t.Fatal(err)
	}
	in := runtime.NewTensor([]int64{1, 1, 2, 4}, []float64{3, 3, 0, 0, 3, 1, 0, 0})
	got := floats(run(t, &onnx.Model{Proto: withGraph(m, res.Graph)}, []runtime.Tensor{in})[1])
	want := []float64{1. / 3, 1. / 3, 0.25, 0.25, 1. / 3, 0, 0.25, 0.25}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("gradient %v, want %v", got, want)
		}
	}
}

// cnnS is the Model Zoos small CNN on a [B, 1, 28, 28] batch with a
// mean-squared loss, every weight and the target an input.
func cnnS(act string, batch int64) func(b *onnx.Builder, in func(string, ...int64) string, conv convFunc) string {
	return func(b *onnx.Builder, in func(string, ...int64) string, conv convFunc) string {
		layer := func(x, name string, xs []int64, m, k int64) string {
			ws := []int64{m, xs[1], k, k}
			return conv(b, x, in(name+".weight", ws...), in(name+".bias", m), xs, ws)
		}
		pool := func(x string) string {
			return b.Node("MaxPool", []string{x}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2))
		}
		fc := func(x, name string, out, in_ int64) string {
			return b.Node("Gemm", []string{x, in(name+".weight", out, in_), in(name+".bias", out)}, onnx.Int("transB", 1))
		}
		h := func(x string) string { return b.Node(act, []string{x}) }
		x := in("x", batch, 1, 28, 28)
		x = h(pool(layer(x, "conv1", []int64{batch, 1, 28, 28}, 8, 5))) // [B, 8, 12, 12]
		x = h(pool(layer(x, "conv2", []int64{batch, 8, 12, 12}, 6, 5))) // [B, 6, 4, 4]
		x = h(layer(x, "conv3", []int64{batch, 6, 4, 4}, 4, 2))         // [B, 4, 3, 3]
		x = b.Node("Flatten", []string{x})                              // [B, 36]
		x = fc(h(fc(x, "fc1", 20, 36)), "fc2", 10, 20)                  // [B, 10]
		d := b.Node("Sub", []string{x, in("target", batch, 10)})
		return b.Node("ReduceMean", []string{b.Node("Mul", []string{d, d})}, onnx.Int("keepdims", 0))
	}
}

// TestCNNSGradient checks the float32 gradient graph of the whole cnn-s,
// as training runs it, against a float64 twin.
func TestCNNSGradient(t *testing.T) {
	act := "Tanh"
	if _, ok := gradRules[act]; !ok {
		act = "Relu" // until the elementwise family lands
	}
	// PyTorch's default initialisation: uniform in ±1/√fan-in.
	fanIn := map[string]float64{"x": 1, "target": 1, "conv1": 25, "conv2": 200, "conv3": 24, "fc1": 36, "fc2": 20}
	checkTwins(t, []twinCase{{name: "cnn-s/" + act, build: cnnS(act, 2), init: func(r *rand.Rand, name string) float64 {
		layer, _, _ := strings.Cut(name, ".")
		return (2*r.Float64() - 1) / math.Sqrt(fanIn[layer])
	}}})
}

// TestEmittedOpShapes checks the shape rules of the ops gradient rules
// emit against the shapes ONNX Runtime computes.
func TestEmittedOpShapes(t *testing.T) {
	for _, tc := range []struct {
		op    string
		x, w  []int64 // w: the weight of a ConvTranspose, or the pads of a Pad
		attrs []*pb.AttributeProto
		want  []int64
	}{
		{"ConvTranspose", []int64{2, 6, 4, 4}, []int64{6, 4, 6, 6}, []*pb.AttributeProto{onnx.Int("group", 2), onnx.Ints("strides", 2, 2)}, []int64{2, 8, 12, 12}},
		{"ConvTranspose", []int64{1, 3, 5, 7}, []int64{3, 2, 3, 2}, []*pb.AttributeProto{onnx.Ints("pads", 1, 0, 2, 1), onnx.Ints("dilations", 2, 1), onnx.Ints("strides", 3, 1), onnx.Ints("output_padding", 1, 0)}, []int64{1, 2, 15, 7}},
		{"ConvTranspose", []int64{2, 4, 9}, []int64{4, 5, 3}, nil, []int64{2, 5, 11}},
		{"SpaceToDepth", []int64{2, 3, 4, 6}, nil, []*pb.AttributeProto{onnx.Int("blocksize", 2)}, []int64{2, 12, 2, 3}},
		{"DepthToSpace", []int64{2, 18, 2, 1}, nil, []*pb.AttributeProto{onnx.Int("blocksize", 3)}, []int64{2, 2, 6, 3}},
		{"Pad", []int64{2, 3, 4}, []int64{0, 1, 2, 1, 0, 3}, nil, []int64{3, 4, 9}},
	} {
		b := onnx.NewBuilder("shape", Opset)
		in := []string{b.Input("x", onnx.Float, tc.x...)}
		feed := []runtime.Tensor{runtime.NewTensor(tc.x, make([]float32, product(tc.x)))}
		switch tc.op {
		case "ConvTranspose":
			in = append(in, b.Input("w", onnx.Float, tc.w...))
			feed = append(feed, runtime.NewTensor(tc.w, make([]float32, product(tc.w))))
		case "Pad":
			in = append(in, b.Int64s("pads", tc.w...))
		}
		b.NodeAs("y", tc.op, in, tc.attrs...)
		sh, err := InferShapes(b.Graph())
		if err != nil {
			t.Fatal(err)
		}
		got := sh.Types["y"].Shape
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s of %v: inferred %v, want %v", tc.op, tc.x, got, tc.want)
		}
		b.Output("y", onnx.Float, got...)
		raw, err := b.Model().Marshal()
		if err != nil {
			t.Fatal(err)
		}
		s, err := runtime.NewSession(raw, runtime.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Run(feed...)
		s.Close()
		if err != nil {
			t.Fatalf("%s of %v: %v", tc.op, tc.x, err)
		}
		if !slices.Equal(out[0].Shape, got) {
			t.Errorf("%s of %v: ONNX Runtime gives %v, inferred %v", tc.op, tc.x, out[0].Shape, got)
		}
	}
	for _, bad := range []struct {
		op   string
		x, w []int64
	}{{"ConvTranspose", []int64{1, 4, 3, 3}, []int64{5, 2, 2, 2}}, {"SpaceToDepth", []int64{1, 1, 3, 4}, nil}, {"DepthToSpace", []int64{1, 6, 2, 2}, nil}} {
		b := onnx.NewBuilder("shape", Opset)
		in := []string{b.Input("x", onnx.Float, bad.x...)}
		if bad.w != nil {
			in = append(in, b.Input("w", onnx.Float, bad.w...))
		}
		b.NodeAs("y", bad.op, in, onnx.Int("blocksize", 2))
		if _, err := InferShapes(b.Graph()); err == nil {
			t.Errorf("%s of %v (weight %v) is accepted", bad.op, bad.x, bad.w)
		}
	}
}

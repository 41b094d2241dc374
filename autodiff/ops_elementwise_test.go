package autodiff

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/runtime"
)

// unaryCase applies op with attrs to one input of the given shape.
func unaryCase(op string, shape []int64, attrs ...*pb.AttributeProto) gradCase {
	return gradCase{name: op + "/" + shapeName(shape) + attrNames(attrs), build: func(b *onnx.Builder, in func(string, ...int64) string) string {
		return b.Node(op, []string{in("x", shape...)}, attrs...)
	}}
}

// naryCase applies op to one input per shape.
func naryCase(op string, shapes ...[]int64) gradCase {
	name := op + "/"
	for _, s := range shapes {
		name += shapeName(s)
	}
	return gradCase{name: name, build: func(b *onnx.Builder, in func(string, ...int64) string) string {
		ins := make([]string, len(shapes))
		for k, s := range shapes {
			ins[k] = in(string(rune('a'+k)), s...)
		}
		return b.Node(op, ins)
	}}
}

func attrNames(attrs []*pb.AttributeProto) string {
	var s string
	for _, a := range attrs {
		s += "/" + a.GetName()
	}
	return s
}

// positiveInit draws from [0.5, 1.5], inside the domain of Log, Sqrt and Pow
// with a real exponent.
func positiveInit(r *rand.Rand, _ string, _ int) float64 { return 0.5 + r.Float64() }

// f64Const is a constant float64 initializer.
func f64Const(b *onnx.Builder, shape []int64, v ...float64) string {
	return b.Initializer(&pb.TensorProto{Name: proto.String(b.Fresh("k")), Dims: shape, DataType: proto.Int32(onnx.Double), DoubleData: v})
}

// geluErf is Gelu as opset-17 graphs write it: 0.5·x·(1 + Erf(x/√2)).
func geluErf(b *onnx.Builder, x string) string {
	e := b.Node("Erf", []string{b.Node("Div", []string{x, f64Const(b, nil, math.Sqrt2)})})
	return b.Node("Mul", []string{b.Node("Mul", []string{x, f64Const(b, nil, 0.5)}), b.Node("Add", []string{e, f64Const(b, nil, 1)})})
}

func TestElementwiseGradients(t *testing.T) {
	pow := func(name string, base, exp []int64, constExp []float64) gradCase {
		return gradCase{name: "Pow/" + name, init: positiveInit, build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			e := f64Const(b, exp, constExp...)
			if constExp == nil {
				e = in("e", exp...)
			}
			return b.Node("Pow", []string{in("a", base...), e})
		}}
	}
	withInit := func(c gradCase, init func(*rand.Rand, string, int) float64) gradCase {
		c.init = init
		return c
	}
	cases := []gradCase{
		unaryCase("LeakyRelu", []int64{2, 3}),
		unaryCase("LeakyRelu", []int64{3, 4, 2}, onnx.FloatAttr("alpha", 0.2)),
		unaryCase("Tanh", []int64{2, 3}),
		unaryCase("Sigmoid", []int64{3, 4}),
		unaryCase("Erf", []int64{2, 5}),
		withInit(unaryCase("Erf", []int64{7}), func(r *rand.Rand, _ string, i int) float64 { return float64(i-3) * 0.9 }),
		{name: "Gelu/erf-form", build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			return geluErf(b, in("x", 2, 3, 4))
		}},
		unaryCase("Exp", []int64{2, 3}),
		withInit(unaryCase("Log", []int64{2, 3}), positiveInit),
		withInit(unaryCase("Sqrt", []int64{4, 2}), positiveInit),
		pow("const-3", []int64{2, 3}, nil, []float64{3}),
		pow("const-0.5", []int64{2, 3}, nil, []float64{0.5}),
		pow("const-per-column", []int64{2, 3}, []int64{3}, []float64{2, -1, 1.5}),
		pow("exponent-input", []int64{2, 3}, []int64{3}, nil),
		pow("base-broadcast", []int64{3}, []int64{2, 3}, nil),
		{name: "Pow/int64-exponent", build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			e := b.Initializer(onnx.NewInt64Tensor(b.Fresh("e"), nil, []int64{3}))
			return b.Node("Pow", []string{in("a", 2, 3), e})
		}},
		unaryCase("Softmax", []int64{2, 3, 4}),
		unaryCase("Softmax", []int64{2, 3, 4}, onnx.Int("axis", 1)),
		unaryCase("Softmax", []int64{3, 2}, onnx.Int("axis", 0)),
		unaryCase("LogSoftmax", []int64{2, 5}),
		unaryCase("LogSoftmax", []int64{2, 3, 4}, onnx.Int("axis", -2)),
		{name: "Where/broadcast", build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			cond := &pb.TensorProto{Name: proto.String("cond"), Dims: []int64{2, 1, 3}, DataType: proto.Int32(onnx.Bool), Int32Data: []int32{1, 0, 1, 0, 0, 1}}
			return b.Node("Where", []string{b.Initializer(cond), in("x", 4, 3), in("y", 3)})
		}},
		{name: "Where/condition-from-input", build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			x := in("x", 3, 4)
			neg := b.Node("Less", []string{x, f64Const(b, nil, 0)})
			return b.Node("Where", []string{neg, b.Node("Mul", []string{x, x}), x})
		}},
		{name: "Cast/double-to-double", build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			return b.Node("Cast", []string{in("x", 2, 3)}, onnx.Int("to", int64(onnx.Double)))
		}},
		{name: "Cast/through-float", eps: 1e-2, tol: 1e-4, build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			f := b.Node("Cast", []string{in("x", 2, 3)}, onnx.Int("to", int64(onnx.Float)))
			f = b.Node("Mul", []string{f, f})
			return b.Node("Cast", []string{f}, onnx.Int("to", int64(onnx.Double)))
		}},
		{name: "Cast/bool-mask", build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			x := in("x", 3, 4)
			pos := b.Node("Cast", []string{b.Node("Greater", []string{x, f64Const(b, nil, 0)})}, onnx.Int("to", int64(onnx.Double)))
			return b.Node("Mul", []string{x, pos})
		}},
		naryCase("Sum", []int64{2, 3}),
		naryCase("Sum", []int64{2, 3}, []int64{3}, []int64{1, 3}),
		naryCase("Max", []int64{2, 3}, []int64{3}),
		naryCase("Max", []int64{4}, []int64{2, 1}, []int64{2, 4}),
		naryCase("Min", []int64{2, 3}, []int64{2, 3}),
		naryCase("Min", []int64{3}),
		// A tie everywhere: the shares of the two operands must add to 1.
		{name: "Max/tie", build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			x := in("x", 2, 3)
			return b.Node("Max", []string{x, x})
		}},
	}
	checkGradients(t, cases)
}

// errorCase is a forward graph whose gradient must be refused with an
// error containing every one of want.
type errorCase struct {
	name  string
	build func(b *onnx.Builder, x string) string
	want  []string
}

func checkErrors(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := onnx.NewBuilder(tc.name, Opset)
			x := b.Input("x", onnx.Double, 2, 3)
			y := tc.build(b, x)
			loss := b.Node("ReduceSum", []string{y}, onnx.Int("keepdims", 0))
			_, err := Gradients(b.Model().Graph(), loss, []string{x})
			if err == nil {
				t.Fatalf("no error, want one mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestElementwiseErrors(t *testing.T) {
	checkErrors(t, []errorCase{
		{"cast-bad-to", func(b *onnx.Builder, x string) string {
			return b.Node("Cast", []string{x}, onnx.Int("to", 99))
		}, []string{"Cast", "to=99"}},
		{"gelu-op", func(b *onnx.Builder, x string) string {
			return b.Node("Gelu", []string{x})
		}, []string{"Gelu", "opset-20"}},
		{"softmax-axis", func(b *onnx.Builder, x string) string {
			return b.Node("Softmax", []string{x}, onnx.Int("axis", 2))
		}, []string{"Softmax", "axis"}},
	})
}

// TestFloat64Erf checks the stand-in for ORT's missing float64 Erf kernel
// against the Go library, over the range the series is meant for and past
// the clip.
func TestFloat64Erf(t *testing.T) {
	b := onnx.NewBuilder("erf", Opset)
	x := b.Input("x", onnx.Double, 241)
	y := b.Node("Erf", []string{x})
	b.Output(y, onnx.Double, 241)
	xs := make([]float64, 241)
	for i := range xs {
		xs[i] = float64(i-120) / 15 // [-8, 8]
	}
	out := run(t, float64Erf(b.Model()), []runtime.Tensor{newTensor([]int64{241}, xs, onnx.Double)})
	for i, v := range floats(out[0]) {
		if want := math.Erf(xs[i]); math.Abs(v-want) > 4e-15 {
			t.Errorf("erf(%g) = %.17g, want %.17g", xs[i], v, want)
		}
	}
}

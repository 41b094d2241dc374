package autodiff

import (
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

func TestShapeGradients(t *testing.T) {
	concat := func(axis int64, shapes ...[]int64) gradCase {
		c := naryCase("Concat", shapes...)
		build := c.build
		c.name += "/axis=" + shapeName([]int64{axis})
		c.build = func(b *onnx.Builder, in func(string, ...int64) string) string {
			n := b.Model().Graph()
			y := build(b, in)
			n.Node[len(n.Node)-1].Attribute = []*pb.AttributeProto{onnx.Int("axis", axis)}
			return y
		}
		return c
	}
	// slice takes starts, ends, and optionally axes and steps.
	slice := func(shape []int64, starts, ends, axes, steps []int64) gradCase {
		name := "Slice/" + shapeName(shape) + shapeName(starts) + shapeName(ends) + shapeName(axes) + shapeName(steps)
		return gradCase{name: name, build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			ins := []string{in("x", shape...), b.Int64s("starts", starts...), b.Int64s("ends", ends...)}
			if axes != nil || steps != nil {
				ins = append(ins, b.Int64s("axes", axes...))
			}
			if steps != nil {
				ins = append(ins, b.Int64s("steps", steps...))
			}
			return b.Node("Slice", ins)
		}}
	}
	// gather takes indices of the given shape, as a constant or, with
	// computed, as the output of a node.
	gather := func(shape []int64, axis int64, idxShape []int64, idx []int64, computed bool) gradCase {
		name := "Gather/" + shapeName(shape) + "/axis=" + shapeName([]int64{axis}) + "/" + shapeName(idx)
		if computed {
			name += "/computed"
		}
		return gradCase{name: name, build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			i := b.Initializer(onnx.NewInt64Tensor(b.Fresh("idx"), idxShape, idx))
			if computed {
				i = b.Node("Identity", []string{i})
			}
			return b.Node("Gather", []string{in("x", shape...), i}, onnx.Int("axis", axis))
		}}
	}
	axesOp := func(op string, shape, axes []int64) gradCase {
		return gradCase{name: op + "/" + shapeName(shape) + shapeName(axes), build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			ins := []string{in("x", shape...)}
			if axes != nil {
				ins = append(ins, b.Int64s("axes", axes...))
			}
			return b.Node(op, ins)
		}}
	}
	expand := func(shape, to []int64) gradCase {
		return gradCase{name: "Expand/" + shapeName(shape) + shapeName(to), build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			return b.Node("Expand", []string{in("x", shape...), b.Int64s("shape", to...)})
		}}
	}
	const end, start = math.MaxInt64, math.MinInt64
	cases := []gradCase{
		concat(0, []int64{2, 3}, []int64{1, 3}),
		concat(1, []int64{2, 1, 4}, []int64{2, 3, 4}, []int64{2, 2, 4}),
		concat(-1, []int64{2, 3}, []int64{2, 2}),
		concat(0, []int64{5}),
		slice([]int64{4, 5}, []int64{1, 0}, []int64{3, 4}, nil, nil),
		slice([]int64{4, 5}, []int64{-3}, []int64{end}, []int64{1}, nil),
		slice([]int64{7, 3}, []int64{1}, []int64{7}, []int64{0}, []int64{3}),
		slice([]int64{8, 3}, []int64{0}, []int64{8}, []int64{0}, []int64{2}),
		slice([]int64{2, 9, 4}, []int64{1, 8}, []int64{-1, 0}, []int64{2, 1}, []int64{2, -3}),
		slice([]int64{5, 4}, []int64{-1}, []int64{start}, []int64{0}, []int64{-1}),
		slice([]int64{6}, []int64{4}, []int64{-7}, []int64{0}, []int64{-2}),
		slice([]int64{3, 4}, []int64{0, 2}, []int64{2, 3}, []int64{-1, 0}, []int64{1, 1}),
		gather([]int64{5, 3}, 0, []int64{4}, []int64{0, 2, 0, -1}, false),
		gather([]int64{5, 3}, 0, []int64{4}, []int64{0, 2, 0, -1}, true),
		gather([]int64{2, 4, 3}, 1, []int64{2, 2}, []int64{3, 3, 0, 1}, false),
		gather([]int64{2, 4, 3}, -1, []int64{2, 2}, []int64{-1, 2, 2, 0}, true),
		gather([]int64{4, 3}, 0, nil, []int64{2}, false),
		{name: "Gather/int32-indices", build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			i := &pb.TensorProto{Name: proto.String("idx"), Dims: []int64{3}, DataType: proto.Int32(onnx.Int32), Int32Data: []int32{1, -1, 1}}
			return b.Node("Gather", []string{in("x", 3, 2), b.Node("Identity", []string{b.Initializer(i)})})
		}},
		axesOp("Squeeze", []int64{2, 1, 3}, []int64{1}),
		axesOp("Squeeze", []int64{1, 2, 1, 3}, []int64{-2, 0}),
		axesOp("Squeeze", []int64{1, 2, 1, 3}, nil),
		axesOp("Unsqueeze", []int64{2, 3}, []int64{0, -1}),
		axesOp("Unsqueeze", []int64{2, 3}, []int64{1}),
		expand([]int64{3, 1}, []int64{2, 3, 4}),
		expand([]int64{4}, []int64{2, 1}),
		expand([]int64{2, 3}, []int64{2, 3}),
	}
	checkGradients(t, cases)
}

func TestDropoutGradients(t *testing.T) {
	boolean := func(b *onnx.Builder, v bool) string {
		t := &pb.TensorProto{Name: proto.String(b.Fresh("mode")), DataType: proto.Int32(onnx.Bool), Int32Data: []int32{0}}
		if v {
			t.Int32Data[0] = 1
		}
		return b.Initializer(t)
	}
	// dropout builds a Dropout node; ratio < 0 leaves the input out, and
	// mode is "train", "infer", "computed" (true, but not a constant) or
	// "" (absent).
	dropout := func(shape []int64, ratio float64, mode string, withMask bool) gradCase {
		name := "Dropout/" + shapeName(shape) + "/" + mode
		if withMask {
			name += "/mask"
		}
		if ratio >= 0 {
			name += "/ratio"
		}
		return gradCase{name: name, random: true, build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			ins := []string{in("x", shape...), ""}
			if ratio >= 0 {
				ins[1] = f64Const(b, nil, ratio)
			}
			switch mode {
			case "train", "infer":
				ins = append(ins, boolean(b, mode == "train"))
			case "computed":
				ins = append(ins, b.Node("Identity", []string{boolean(b, true)}))
			}
			outs := []string{b.Fresh("y")}
			if withMask {
				outs = append(outs, b.Fresh("mask"))
			}
			b.NodeOut(b.Fresh("dropout"), "Dropout", ins, outs, onnx.Int("seed", 5))
			return outs[0]
		}}
	}
	checkGradients(t, []gradCase{
		dropout([]int64{4, 6}, 0.3, "train", false),
		dropout([]int64{4, 6}, 0.3, "train", true),
		dropout([]int64{3, 5}, -1, "train", false),
		dropout([]int64{3, 5}, 0, "train", false),
		dropout([]int64{3, 5}, 0.6, "computed", false),
		dropout([]int64{2, 3}, 0.5, "infer", false),
		dropout([]int64{2, 3}, -1, "", false),
	})
}

func TestShapeErrors(t *testing.T) {
	checkErrors(t, []errorCase{
		{"slice-starts-attribute", func(b *onnx.Builder, x string) string {
			return b.Node("Slice", []string{x}, onnx.Ints("starts", 0), onnx.Ints("ends", 1))
		}, []string{"Slice", "starts"}},
		{"slice-computed-ends", func(b *onnx.Builder, x string) string {
			return b.Node("Slice", []string{x, b.Int64s("s", 0), b.Node("Identity", []string{b.Int64s("e", 1)})})
		}, []string{"Slice", "ends"}},
		{"slice-step-zero", func(b *onnx.Builder, x string) string {
			return b.Node("Slice", []string{x, b.Int64s("s", 0), b.Int64s("e", 1), b.Int64s("a", 0), b.Int64s("st", 0)})
		}, []string{"Slice", "steps"}},
		{"squeeze-axes-attribute", func(b *onnx.Builder, x string) string {
			return b.Node("Squeeze", []string{x}, onnx.Ints("axes", 0))
		}, []string{"Squeeze", "axes"}},
		{"squeeze-not-one", func(b *onnx.Builder, x string) string {
			return b.Node("Squeeze", []string{x, b.Int64s("a", 1)})
		}, []string{"Squeeze", "axis 1"}},
		{"unsqueeze-axes-attribute", func(b *onnx.Builder, x string) string {
			return b.Node("Unsqueeze", []string{x}, onnx.Ints("axes", 0))
		}, []string{"Unsqueeze", "axes"}},
		{"concat-no-axis", func(b *onnx.Builder, x string) string {
			return b.Node("Concat", []string{x, x})
		}, []string{"Concat", "axis"}},
		{"gather-axis", func(b *onnx.Builder, x string) string {
			return b.Node("Gather", []string{x, b.Int64s("i", 0)}, onnx.Int("axis", 2))
		}, []string{"Gather", "axis"}},
		{"gather-index-range", func(b *onnx.Builder, x string) string {
			return b.Node("Gather", []string{x, b.Int64s("i", 2)})
		}, []string{"Gather", "index 2"}},
		{"expand-computed-shape", func(b *onnx.Builder, x string) string {
			return b.Node("Expand", []string{x, b.Node("Identity", []string{b.Int64s("s", 2, 3)})})
		}, []string{"Expand", "shape"}},
		{"dropout-ratio-attribute", func(b *onnx.Builder, x string) string {
			return b.Node("Dropout", []string{x}, onnx.FloatAttr("ratio", 0.5))
		}, []string{"Dropout", "ratio"}},
		{"dropout-ratio-one", func(b *onnx.Builder, x string) string {
			mode := &pb.TensorProto{Name: proto.String("mode"), DataType: proto.Int32(onnx.Bool), Int32Data: []int32{1}}
			return b.Node("Dropout", []string{x, f64Const(b, nil, 1), b.Initializer(mode)})
		}, []string{"Dropout", "ratio"}},
	})
}

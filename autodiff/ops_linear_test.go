package autodiff

import (
	"strconv"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

func TestLinearGradients(t *testing.T) {
	binary := func(op string, a, b []int64) gradCase {
		return gradCase{name: op + "/" + shapeName(a) + "x" + shapeName(b), build: func(bl *onnx.Builder, in func(string, ...int64) string) string {
			return bl.Node(op, []string{in("a", a...), in("b", b...)})
		}}
	}
	unary := func(op string, shape []int64, attrs ...*pb.AttributeProto) gradCase {
		return gradCase{name: op + "/" + shapeName(shape), build: func(bl *onnx.Builder, in func(string, ...int64) string) string {
			return bl.Node(op, []string{in("x", shape...)}, attrs...)
		}}
	}
	gemm := func(transA, transB int64, a, b, c []int64, alpha, beta float32) gradCase {
		return gradCase{name: "Gemm/" + shapeName(a) + shapeName(b) + shapeName(c), build: func(bl *onnx.Builder, in func(string, ...int64) string) string {
			ins := []string{in("a", a...), in("b", b...)}
			if c != nil {
				ins = append(ins, in("c", c...))
			}
			return bl.Node("Gemm", ins, onnx.Int("transA", transA), onnx.Int("transB", transB),
				onnx.FloatAttr("alpha", alpha), onnx.FloatAttr("beta", beta))
		}}
	}
	reduce := func(op string, shape, axes []int64, keep int64) gradCase {
		return gradCase{name: op + "/" + shapeName(shape) + "/" + shapeName(axes), build: func(bl *onnx.Builder, in func(string, ...int64) string) string {
			x := in("x", shape...)
			if op == "ReduceSum" {
				return bl.Node(op, []string{x, bl.Int64s("axes", axes...)}, onnx.Int("keepdims", keep))
			}
			return bl.Node(op, []string{x}, onnx.Ints("axes", axes...), onnx.Int("keepdims", keep))
		}}
	}
	cases := []gradCase{
		binary("Add", []int64{2, 3}, []int64{2, 3}),
		binary("Add", []int64{2, 3, 4}, []int64{4}),
		binary("Sub", []int64{3, 1}, []int64{1, 4}),
		binary("Mul", []int64{2, 3, 4}, []int64{3, 1}),
		binary("Div", []int64{2, 3}, []int64{2, 1}),
		binary("Div", []int64{1}, []int64{2, 3}),
		unary("Neg", []int64{2, 3}),
		unary("Identity", []int64{4}),
		unary("Relu", []int64{3, 4}),
		binary("MatMul", []int64{3, 4}, []int64{4, 2}),
		binary("MatMul", []int64{2, 3, 4}, []int64{4, 5}),
		binary("MatMul", []int64{2, 1, 3, 4}, []int64{3, 4, 2}),
		gemm(0, 0, []int64{3, 4}, []int64{4, 2}, []int64{2}, 1, 1),
		gemm(1, 0, []int64{4, 3}, []int64{4, 2}, []int64{3, 2}, 0.5, 2),
		gemm(0, 1, []int64{3, 4}, []int64{2, 4}, []int64{1, 2}, 1.5, 1),
		gemm(1, 1, []int64{4, 3}, []int64{2, 4}, nil, 1, 1),
		reduce("ReduceSum", []int64{2, 3, 4}, []int64{1}, 1),
		reduce("ReduceSum", []int64{2, 3, 4}, []int64{0, -1}, 0),
		reduce("ReduceMean", []int64{2, 3, 4}, []int64{2}, 0),
		reduce("ReduceMean", []int64{2, 3}, nil, 1),
		{name: "Reshape", build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			return b.Node("Reshape", []string{in("x", 2, 3, 4), b.Int64s("shape", 4, -1)})
		}},
		unary("Flatten", []int64{2, 3, 4}, onnx.Int("axis", 2)),
		unary("Transpose", []int64{2, 3, 4}, onnx.Ints("perm", 1, 2, 0)),
		unary("Transpose", []int64{2, 3}),
		{name: "composite/x*x+x@W", build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			x := in("x", 3, 4)
			w := in("w", 4, 4)
			return b.Node("Add", []string{b.Node("Mul", []string{x, x}), b.Node("MatMul", []string{x, w})})
		}},
	}
	checkGradients(t, cases)
}

func shapeName(s []int64) string {
	var parts []string
	for _, d := range s {
		parts = append(parts, strconv.FormatInt(d, 10))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestUnknownOpIsAnError(t *testing.T) {
	b := onnx.NewBuilder("hardmax", Opset)
	x := b.Input("x", onnx.Float, 2, 3)
	y := b.Node("Hardmax", []string{x})
	loss := b.Node("ReduceSum", []string{y}, onnx.Int("keepdims", 0))
	b.Output(loss, onnx.Float)
	_, err := Gradients(b.Model().Graph(), loss, []string{x})
	if err == nil || !strings.Contains(err.Error(), "Hardmax") {
		t.Fatalf("want an error naming Hardmax, got %v", err)
	}
}

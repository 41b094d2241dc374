package autodiff

import (
	"fmt"
	"math"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// Elementwise ops: activations, exponentials and powers, Softmax and
// LogSoftmax along one axis, Where, Cast, and the n-ary Sum, Max and Min.
//
// Gelu is an opset-20 op; opset-17 graphs spell it 0.5·x·(1+Erf(x/√2)),
// whose pieces all have rules here.

func init() {
	for _, op := range []string{"LeakyRelu", "Tanh", "Sigmoid", "Erf", "Exp", "Log", "Sqrt", "Softmax", "LogSoftmax"} {
		shapeRules[op] = func(_ *Shapes, _ *pb.NodeProto, in []Tensor) ([]Tensor, error) { return same(in) }
	}
	gradRules["LeakyRelu"] = gradLeakyRelu
	gradRules["Tanh"] = gradTanh
	gradRules["Sigmoid"] = gradSigmoid
	gradRules["Erf"] = gradErf
	gradRules["Exp"] = gradExp
	gradRules["Log"] = gradLog
	gradRules["Sqrt"] = gradSqrt
	shapeRules["Pow"] = shapePow
	gradRules["Pow"] = gradPow
	gradRules["Softmax"] = gradSoftmax
	gradRules["LogSoftmax"] = gradLogSoftmax
	shapeRules["Where"] = shapeWhere
	gradRules["Where"] = gradWhere
	shapeRules["Cast"] = shapeCast
	gradRules["Cast"] = gradCast
	for _, op := range []string{"Sum", "Max", "Min"} {
		shapeRules[op] = shapeBroadcast
	}
	gradRules["Sum"] = gradSum
	gradRules["Max"] = gradMaxMin
	gradRules["Min"] = gradMaxMin
	// Comparisons and logic make the conditions of Where; they have no
	// gradient rules, so a gradient reaching one is an error.
	for _, op := range []string{"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor"} {
		shapeRules[op] = shapeCompare
	}
	shapeRules["Not"] = shapeCompare
	shapeRules["Gelu"] = func(*Shapes, *pb.NodeProto, []Tensor) ([]Tensor, error) {
		return nil, fmt.Errorf("Gelu is an opset-20 op; opset-%d graphs write it as 0.5*x*(1+Erf(x/sqrt(2)))", Opset)
	}
}

// mul is the product of its operands, which broadcast.
func (c *Context) mul(a, b string, more ...string) string {
	y := c.Op("Mul", []string{a, b})
	for _, m := range more {
		y = c.Op("Mul", []string{y, m})
	}
	return y
}

// gradLeakyRelu: the slope is 1 for x ≥ 0 and alpha below, as in the
// forward definition.
func gradLeakyRelu(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	x := n.Input[0]
	dt := c.Type(x).DType
	alpha := onnx.AttrFloat(n, "alpha", 0.01)
	neg := c.Op("Less", []string{x, c.Scalar(0, dt)})
	return []string{c.Op("Where", []string{neg, c.mul(dy[0], c.Scalar(float64(alpha), dt)), dy[0]})}, nil
}

// gradTanh: dx = dy·(1 - y²), from the output so no tanh is recomputed.
func gradTanh(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	y := n.Output[0]
	one := c.Scalar(1, c.Type(y).DType)
	return []string{c.mul(dy[0], c.Op("Sub", []string{one, c.mul(y, y)}))}, nil
}

// gradSigmoid: dx = dy·y·(1 - y).
func gradSigmoid(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	y := n.Output[0]
	one := c.Scalar(1, c.Type(y).DType)
	return []string{c.mul(dy[0], y, c.Op("Sub", []string{one, y}))}, nil
}

// gradErf: dx = dy·2/√π·exp(-x²). ORT has no float64 Erf kernel, but this
// uses none.
func gradErf(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	x := n.Input[0]
	dt := c.Type(x).DType
	e := c.Op("Exp", []string{c.Op("Neg", []string{c.mul(x, x)})})
	return []string{c.mul(dy[0], e, c.Scalar(2/math.Sqrt(math.Pi), dt))}, nil
}

func gradExp(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	return []string{c.mul(dy[0], n.Output[0])}, nil
}

func gradLog(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	return []string{c.Op("Div", []string{dy[0], n.Input[0]})}, nil
}

// gradSqrt: dx = dy / (2·y).
func gradSqrt(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	y := n.Output[0]
	half := c.Scalar(0.5, c.Type(y).DType)
	return []string{c.Op("Div", []string{c.mul(dy[0], half), y})}, nil
}

func shapePow(_ *Shapes, _ *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	out, err := broadcast(in[0].Shape, in[1].Shape)
	if err != nil {
		return nil, err
	}
	return []Tensor{{in[0].DType, out}}, nil
}

// gradPow: y = a^b, da = dy·b·a^(b-1), db = dy·y·ln a. The exponent may be
// any tensor, even one that needs a gradient (then a must be positive), and
// of another type than a (an integer power, which gets no gradient).
func gradPow(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	a, b, y := n.Input[0], n.Input[1], n.Output[0]
	at, bt, yt := c.Type(a), c.Type(b), c.Type(y)
	bb := b
	if bt.DType != at.DType {
		bb = c.Op("Cast", []string{b}, onnx.Int("to", int64(at.DType)))
	}
	dx := make([]string, 2)
	if c.Needs(a) {
		p := c.Op("Pow", []string{a, c.Op("Sub", []string{bb, c.Scalar(1, at.DType)})})
		dx[0] = c.Unbroadcast(c.mul(dy[0], bb, p), yt.Shape, at.Shape)
	}
	if c.Needs(b) && onnx.IsFloat(bt.DType) {
		g := c.Unbroadcast(c.mul(dy[0], y, c.Op("Log", []string{a})), yt.Shape, bt.Shape)
		if bt.DType != at.DType {
			g = c.Op("Cast", []string{g}, onnx.Int("to", int64(bt.DType)))
		}
		dx[1] = g
	}
	return dx, nil
}

// softmaxAxis is the axis of a Softmax or LogSoftmax, with opset-13
// semantics: one axis, -1 by default.
func softmaxAxis(c *Context, n *pb.NodeProto) (int64, error) {
	axis, err := normAxis(onnx.AttrInt(n, "axis", -1), len(c.Type(n.Input[0]).Shape))
	if err != nil {
		return 0, fmt.Errorf("%s axis: %w", n.GetOpType(), err)
	}
	return int64(axis), nil
}

// gradSoftmax: dx = y·(dy - Σ dy·y), the sum along the axis.
func gradSoftmax(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	axis, err := softmaxAxis(c, n)
	if err != nil {
		return nil, err
	}
	y := n.Output[0]
	s := c.Op("ReduceSum", []string{c.mul(dy[0], y), c.Int64s(axis)}, onnx.Int("keepdims", 1))
	return []string{c.mul(y, c.Op("Sub", []string{dy[0], s}))}, nil
}

// gradLogSoftmax: dx = dy - exp(y)·Σ dy, the sum along the axis.
func gradLogSoftmax(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	axis, err := softmaxAxis(c, n)
	if err != nil {
		return nil, err
	}
	y := n.Output[0]
	s := c.Op("ReduceSum", []string{dy[0], c.Int64s(axis)}, onnx.Int("keepdims", 1))
	return []string{c.Op("Sub", []string{dy[0], c.mul(c.Op("Exp", []string{y}), s)})}, nil
}

func shapeCompare(s *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	out, err := shapeBroadcast(s, n, in)
	if err != nil {
		return nil, err
	}
	out[0].DType = onnx.Bool
	return out, nil
}

func shapeWhere(_ *Shapes, _ *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	if in[0].DType != onnx.Bool {
		return nil, fmt.Errorf("Where condition is %s, want bool", onnx.DTypeName(in[0].DType))
	}
	out, err := broadcast(in[0].Shape, in[1].Shape, in[2].Shape)
	if err != nil {
		return nil, err
	}
	return []Tensor{{in[1].DType, out}}, nil
}

// gradWhere routes dy to the branch each element came from; the condition
// has no gradient.
func gradWhere(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	cond := n.Input[0]
	yt := c.Type(n.Output[0])
	zero := c.Scalar(0, yt.DType)
	dx := make([]string, 3)
	for k := 1; k <= 2; k++ {
		if !c.Needs(n.Input[k]) {
			continue
		}
		ins := []string{cond, dy[0], zero}
		if k == 2 {
			ins = []string{cond, zero, dy[0]}
		}
		dx[k] = c.Unbroadcast(c.Op("Where", ins), yt.Shape, c.Type(n.Input[k]).Shape)
	}
	return dx, nil
}

func shapeCast(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	to := onnx.AttrInt(n, "to", 0)
	if _, ok := pb.TensorProto_DataType_name[int32(to)]; !ok || to == 0 {
		return nil, fmt.Errorf("Cast attribute to=%d is not a data type", to)
	}
	return []Tensor{{int32(to), in[0].Shape}}, nil
}

// gradCast casts the gradient back. Integers and booleans (indices,
// comparisons) carry no gradient, as in Where's condition; and no rule
// sends a gradient to one, so the error below guards against a rule that
// would.
func gradCast(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	from, to := c.Type(n.Input[0]).DType, c.Type(n.Output[0]).DType
	if !onnx.IsFloat(from) {
		return []string{""}, nil
	}
	if !onnx.IsFloat(to) {
		return nil, fmt.Errorf("Cast to=%s from %s: no gradient flows through a non-float type",
			onnx.DTypeName(to), onnx.DTypeName(from))
	}
	if from == to {
		return dy[:1], nil
	}
	return []string{c.Op("Cast", dy[:1], onnx.Int("to", int64(from)))}, nil
}

func gradSum(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	y := c.Type(n.Output[0]).Shape
	dx := make([]string, len(n.Input))
	for k, in := range n.Input {
		if c.Needs(in) {
			dx[k] = c.Unbroadcast(dy[0], y, c.Type(in).Shape)
		}
	}
	return dx, nil
}

// gradMaxMin sends dy to the inputs that equal the result, shared equally
// among ties, as PyTorch does for maximum and minimum.
func gradMaxMin(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	y := n.Output[0]
	yt := c.Type(y)
	if len(n.Input) == 1 {
		return dy[:1], nil
	}
	hits := make([]string, len(n.Input))
	for k, in := range n.Input {
		hits[k] = c.Op("Cast", []string{c.Op("Equal", []string{in, y})}, onnx.Int("to", int64(yt.DType)))
	}
	share := c.Op("Div", []string{dy[0], c.Op("Sum", hits)})
	dx := make([]string, len(n.Input))
	for k, in := range n.Input {
		if c.Needs(in) {
			dx[k] = c.Unbroadcast(c.mul(share, hits[k]), yt.Shape, c.Type(in).Shape)
		}
	}
	return dx, nil
}

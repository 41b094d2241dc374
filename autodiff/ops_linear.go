package autodiff

import (
	"fmt"
	"slices"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// Arithmetic with broadcasting, MatMul, Gemm, reductions and the ops that
// only move values around (Identity, Reshape, Flatten, Transpose).

func init() {
	for _, op := range []string{"Add", "Sub", "Mul", "Div"} {
		shapeRules[op] = shapeBroadcast
	}
	gradRules["Add"] = gradAddSub(false)
	gradRules["Sub"] = gradAddSub(true)
	gradRules["Mul"] = gradMul
	gradRules["Div"] = gradDiv
	for _, op := range []string{"Identity", "Neg", "Relu"} {
		shapeRules[op] = func(_ *Shapes, _ *pb.NodeProto, in []Tensor) ([]Tensor, error) { return same(in) }
	}
	gradRules["Identity"] = func(_ *Context, _ *pb.NodeProto, dy []string) ([]string, error) { return dy[:1], nil }
	gradRules["Neg"] = func(c *Context, _ *pb.NodeProto, dy []string) ([]string, error) {
		return []string{c.Op("Neg", dy[:1])}, nil
	}
	gradRules["Relu"] = gradRelu
	shapeRules["MatMul"] = shapeMatMul
	gradRules["MatMul"] = gradMatMul
	shapeRules["Gemm"] = shapeGemm
	gradRules["Gemm"] = gradGemm
	shapeRules["ReduceSum"] = shapeReduce
	shapeRules["ReduceMean"] = shapeReduce
	gradRules["ReduceSum"] = gradReduce(false)
	gradRules["ReduceMean"] = gradReduce(true)
	shapeRules["Reshape"] = shapeReshape
	shapeRules["Flatten"] = shapeFlatten
	gradRules["Reshape"] = gradReshape
	gradRules["Flatten"] = gradReshape
	shapeRules["Transpose"] = shapeTranspose
	gradRules["Transpose"] = gradTranspose
}

func shapeBroadcast(_ *Shapes, _ *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	shapes := make([][]int64, len(in))
	for i, t := range in {
		shapes[i] = t.Shape
	}
	out, err := broadcast(shapes...)
	if err != nil {
		return nil, err
	}
	return []Tensor{{in[0].DType, out}}, nil
}

func gradAddSub(sub bool) gradFunc {
	return func(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
		y := c.Type(n.Output[0]).Shape
		dx := make([]string, 2)
		if c.Needs(n.Input[0]) {
			dx[0] = c.Unbroadcast(dy[0], y, c.Type(n.Input[0]).Shape)
		}
		if c.Needs(n.Input[1]) {
			g := dy[0]
			if sub {
				g = c.Op("Neg", []string{g})
			}
			dx[1] = c.Unbroadcast(g, y, c.Type(n.Input[1]).Shape)
		}
		return dx, nil
	}
}

func gradMul(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	y := c.Type(n.Output[0]).Shape
	dx := make([]string, 2)
	for k := 0; k < 2; k++ {
		if c.Needs(n.Input[k]) {
			g := c.Op("Mul", []string{dy[0], n.Input[1-k]})
			dx[k] = c.Unbroadcast(g, y, c.Type(n.Input[k]).Shape)
		}
	}
	return dx, nil
}

// gradDiv: y = a / b, da = dy / b, db = -dy * y / b.
func gradDiv(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	a, b, y := n.Input[0], n.Input[1], n.Output[0]
	ys := c.Type(y).Shape
	dx := make([]string, 2)
	if c.Needs(a) {
		dx[0] = c.Unbroadcast(c.Op("Div", []string{dy[0], b}), ys, c.Type(a).Shape)
	}
	if c.Needs(b) {
		g := c.Op("Neg", []string{c.Op("Div", []string{c.Op("Mul", []string{dy[0], y}), b})})
		dx[1] = c.Unbroadcast(g, ys, c.Type(b).Shape)
	}
	return dx, nil
}

func gradRelu(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	x := n.Input[0]
	zero := c.Scalar(0, c.Type(x).DType)
	return []string{c.Op("Where", []string{c.Op("Greater", []string{x, zero}), dy[0], zero})}, nil
}

func shapeMatMul(_ *Shapes, _ *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	a, b := in[0].Shape, in[1].Shape
	if len(a) < 2 || len(b) < 2 {
		return nil, fmt.Errorf("MatMul of %v and %v: 1-D operands are not supported", a, b)
	}
	if a[len(a)-1] != b[len(b)-2] {
		return nil, fmt.Errorf("MatMul of %v and %v: inner dimensions differ", a, b)
	}
	batch, err := broadcast(a[:len(a)-2], b[:len(b)-2])
	if err != nil {
		return nil, err
	}
	return []Tensor{{in[0].DType, append(batch, a[len(a)-2], b[len(b)-1])}}, nil
}

// swapLast transposes the last two axes of a value of rank r.
func (c *Context) swapLast(x string, r int) string {
	perm := make([]int64, r)
	for i := range perm {
		perm[i] = int64(i)
	}
	perm[r-1], perm[r-2] = perm[r-2], perm[r-1]
	return c.Op("Transpose", []string{x}, onnx.Ints("perm", perm...))
}

// gradMatMul: y = a @ b, da = dy @ bᵀ, db = aᵀ @ dy, each summed over the
// batch axes its operand was broadcast along.
func gradMatMul(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	a, b := n.Input[0], n.Input[1]
	at, bt, yt := c.Type(a), c.Type(b), c.Type(n.Output[0])
	dx := make([]string, 2)
	if c.Needs(a) {
		g := c.Op("MatMul", []string{dy[0], c.swapLast(b, len(bt.Shape))})
		dx[0] = c.Unbroadcast(g, append(slices.Clone(yt.Shape[:len(yt.Shape)-1]), at.Shape[len(at.Shape)-1]), at.Shape)
	}
	if c.Needs(b) && len(bt.Shape) == 2 && len(at.Shape) > 2 {
		// A weight shared by every row of a batch ([N, T, K] @ [K, E], a
		// transformer's linear layers): one [K, N·T] @ [N·T, E] product
		// rather than N products and a sum over an [N, K, E] temporary.
		k, e := at.Shape[len(at.Shape)-1], yt.Shape[len(yt.Shape)-1]
		dx[1] = c.Op("Gemm", []string{c.Reshape(a, []int64{-1, k}), c.Reshape(dy[0], []int64{-1, e})}, onnx.Int("transA", 1))
	} else if c.Needs(b) {
		g := c.Op("MatMul", []string{c.swapLast(a, len(at.Shape)), dy[0]})
		full := append(slices.Clone(yt.Shape[:len(yt.Shape)-2]), bt.Shape[len(bt.Shape)-2], yt.Shape[len(yt.Shape)-1])
		dx[1] = c.Unbroadcast(g, full, bt.Shape)
	}
	return dx, nil
}

func shapeGemm(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	a, b := in[0].Shape, in[1].Shape
	if len(a) != 2 || len(b) != 2 {
		return nil, fmt.Errorf("Gemm of %v and %v: operands must be matrices", a, b)
	}
	m, k := a[0], a[1]
	if onnx.AttrInt(n, "transA", 0) != 0 {
		m, k = k, m
	}
	k2, nn := b[0], b[1]
	if onnx.AttrInt(n, "transB", 0) != 0 {
		k2, nn = nn, k2
	}
	if k != k2 {
		return nil, fmt.Errorf("Gemm of %v and %v: inner dimensions differ", a, b)
	}
	if len(in) > 2 && in[2].DType != 0 {
		if _, err := broadcast([]int64{m, nn}, in[2].Shape); err != nil {
			return nil, err
		}
	}
	return []Tensor{{in[0].DType, []int64{m, nn}}}, nil
}

// gradGemm: y = α·A'B' + β·C with A' = transA ? Aᵀ : A and B' likewise.
func gradGemm(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	alpha := onnx.AttrFloat(n, "alpha", 1)
	beta := onnx.AttrFloat(n, "beta", 1)
	transA := onnx.AttrInt(n, "transA", 0)
	transB := onnx.AttrInt(n, "transB", 0)
	a, b := n.Input[0], n.Input[1]
	dx := make([]string, len(n.Input))
	al := onnx.FloatAttr("alpha", alpha)
	if c.Needs(a) {
		if transA == 0 { // dA = α dY B'ᵀ
			dx[0] = c.Op("Gemm", []string{dy[0], b}, al, onnx.Int("transB", 1-transB))
		} else { // dA = α B' dYᵀ
			dx[0] = c.Op("Gemm", []string{b, dy[0]}, al, onnx.Int("transA", transB), onnx.Int("transB", 1))
		}
	}
	if c.Needs(b) {
		if transB == 0 { // dB = α A'ᵀ dY
			dx[1] = c.Op("Gemm", []string{a, dy[0]}, al, onnx.Int("transA", 1-transA))
		} else { // dB = α dYᵀ A'
			dx[1] = c.Op("Gemm", []string{dy[0], a}, al, onnx.Int("transA", 1), onnx.Int("transB", transA))
		}
	}
	if len(n.Input) > 2 && n.Input[2] != "" && c.Needs(n.Input[2]) {
		y := c.Type(n.Output[0])
		g := dy[0]
		if beta != 1 {
			g = c.Op("Mul", []string{g, c.Scalar(float64(beta), y.DType)})
		}
		dx[2] = c.Unbroadcast(g, y.Shape, c.Type(n.Input[2]).Shape)
	}
	return dx, nil
}

// reduceAxes returns the axes a ReduceSum or ReduceMean reduces: from the
// axes input (ReduceSum, opset 13+) or attribute (ReduceMean before 18).
func reduceAxes(s *Shapes, n *pb.NodeProto, rank int) ([]int, error) {
	var axes []int64
	if n.GetOpType() == "ReduceSum" && len(n.Input) > 1 && n.Input[1] != "" {
		var err error
		if axes, err = s.Ints(n.Input[1]); err != nil {
			return nil, err
		}
	} else {
		axes = onnx.AttrInts(n, "axes", nil)
	}
	if len(axes) == 0 {
		if onnx.AttrInt(n, "noop_with_empty_axes", 0) != 0 {
			return nil, nil
		}
		out := make([]int, rank)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	out := make([]int, len(axes))
	for i, a := range axes {
		ax, err := normAxis(a, rank)
		if err != nil {
			return nil, err
		}
		out[i] = ax
	}
	return out, nil
}

func shapeReduce(s *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	x := in[0].Shape
	axes, err := reduceAxes(s, n, len(x))
	if err != nil {
		return nil, err
	}
	keep := onnx.AttrInt(n, "keepdims", 1) != 0
	var out []int64
	for i, d := range x {
		switch {
		case !slices.Contains(axes, i):
			out = append(out, d)
		case keep:
			out = append(out, 1)
		}
	}
	return []Tensor{{in[0].DType, out}}, nil
}

// gradReduce: the gradient is dy broadcast back over the reduced axes,
// divided by their size for a mean.
func gradReduce(mean bool) gradFunc {
	return func(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
		xt := c.Type(n.Input[0])
		axes, err := reduceAxes(c.shapes, n, len(xt.Shape))
		if err != nil {
			return nil, err
		}
		kept := slices.Clone(xt.Shape)
		count := int64(1)
		for _, a := range axes {
			count *= kept[a]
			kept[a] = 1
		}
		g := c.Reshape(dy[0], kept)
		if mean && count != 1 {
			g = c.Op("Mul", []string{g, c.Scalar(1/float64(count), xt.DType)})
		}
		return []string{c.Op("Expand", []string{g, c.Int64s(xt.Shape...)})}, nil
	}
}

func shapeReshape(s *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	target, err := s.Ints(n.Input[1])
	if err != nil {
		return nil, err
	}
	x := in[0]
	out := slices.Clone(target)
	known, infer := int64(1), -1
	for i, d := range out {
		switch {
		case d == 0 && onnx.AttrInt(n, "allowzero", 0) == 0:
			if i >= len(x.Shape) {
				return nil, fmt.Errorf("Reshape to %v copies axis %d of %v", target, i, x.Shape)
			}
			out[i] = x.Shape[i]
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("Reshape to %v has two -1", target)
			}
			infer = i
			continue
		case d < 0:
			return nil, fmt.Errorf("Reshape to %v", target)
		}
		known *= out[i]
	}
	if infer >= 0 {
		if known == 0 || x.Size()%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", x.Shape, target)
		}
		out[infer] = x.Size() / known
	}
	if t := (Tensor{x.DType, out}); t.Size() != x.Size() {
		return nil, fmt.Errorf("cannot reshape %v to %v", x.Shape, target)
	}
	return []Tensor{{x.DType, out}}, nil
}

func shapeFlatten(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	x := in[0].Shape
	axis := onnx.AttrInt(n, "axis", 1)
	if axis < 0 {
		axis += int64(len(x))
	}
	if axis < 0 || axis > int64(len(x)) {
		return nil, fmt.Errorf("Flatten axis %d of rank %d", axis, len(x))
	}
	outer, inner := int64(1), int64(1)
	for i, d := range x {
		if int64(i) < axis {
			outer *= d
		} else {
			inner *= d
		}
	}
	return []Tensor{{in[0].DType, []int64{outer, inner}}}, nil
}

func gradReshape(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	return []string{c.Reshape(dy[0], c.Type(n.Input[0]).Shape)}, nil
}

func transposePerm(n *pb.NodeProto, rank int) []int64 {
	perm := onnx.AttrInts(n, "perm", nil)
	if perm == nil {
		for i := rank - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	return perm
}

func shapeTranspose(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	x := in[0].Shape
	perm := transposePerm(n, len(x))
	if len(perm) != len(x) {
		return nil, fmt.Errorf("Transpose perm %v for rank %d", perm, len(x))
	}
	out := make([]int64, len(x))
	for i, p := range perm {
		if p < 0 || p >= int64(len(x)) {
			return nil, fmt.Errorf("Transpose perm %v for rank %d", perm, len(x))
		}
		out[i] = x[p]
	}
	return []Tensor{{in[0].DType, out}}, nil
}

func gradTranspose(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	perm := transposePerm(n, len(c.Type(n.Input[0]).Shape))
	inv := make([]int64, len(perm))
	for i, p := range perm {
		inv[p] = int64(i)
	}
	return []string{c.Op("Transpose", dy[:1], onnx.Ints("perm", inv...))}, nil
}

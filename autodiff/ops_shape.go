package autodiff

import (
	"fmt"
	"math"
	"slices"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// Ops that select, join or stretch values: Concat, Slice, Gather, Squeeze,
// Unsqueeze, Expand, and Dropout, whose gradient is its mask. Their index
// inputs (starts, axes, shapes) must be constants, as static shapes need.

func init() {
	shapeRules["Concat"] = shapeConcat
	gradRules["Concat"] = gradConcat
	shapeRules["Slice"] = shapeSlice
	gradRules["Slice"] = gradSlice
	shapeRules["Gather"] = shapeGather
	gradRules["Gather"] = gradGather
	shapeRules["Squeeze"] = shapeSqueeze
	shapeRules["Unsqueeze"] = shapeUnsqueeze
	gradRules["Squeeze"] = gradReshape
	gradRules["Unsqueeze"] = gradReshape
	shapeRules["Expand"] = shapeExpand
	gradRules["Expand"] = gradExpand
	shapeRules["Dropout"] = shapeDropout
	gradRules["Dropout"] = gradDropout
}

func hasAttr(n *pb.NodeProto, name string) bool {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return true
		}
	}
	return false
}

// input is the name of n's k-th input, "" where it is absent.
func input(n *pb.NodeProto, k int) string {
	if k < len(n.Input) {
		return n.Input[k]
	}
	return ""
}

// constFloats is the value of a constant float input, if it is one.
func (c *Context) constFloats(name string) ([]float64, bool) {
	t, ok := c.shapes.consts[name]
	if !ok || !onnx.IsFloat(t.GetDataType()) {
		return nil, false
	}
	v, err := onnx.Float64s(t)
	return v, err == nil
}

func elemCount(dims []int64) int64 {
	p := int64(1)
	for _, d := range dims {
		p *= d
	}
	return p
}

// zeros is a tensor of zeros made at run time, so that a large gradient
// buffer does not become a large initializer.
func (c *Context) zeros(dtype int32, shape []int64) string {
	return c.Op("Expand", []string{c.Scalar(0, dtype), c.Int64s(shape...)})
}

func shapeConcat(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	if !hasAttr(n, "axis") {
		return nil, fmt.Errorf("Concat needs the attribute axis")
	}
	rank := len(in[0].Shape)
	axis, err := normAxis(onnx.AttrInt(n, "axis", 0), rank)
	if err != nil {
		return nil, fmt.Errorf("Concat axis: %w", err)
	}
	out := slices.Clone(in[0].Shape)
	out[axis] = 0
	for _, t := range in {
		if len(t.Shape) != rank {
			return nil, fmt.Errorf("Concat of ranks %d and %d", rank, len(t.Shape))
		}
		for i, d := range t.Shape {
			if i != axis && d != out[i] {
				return nil, fmt.Errorf("Concat along axis %d of %v and %v", axis, in[0].Shape, t.Shape)
			}
		}
		out[axis] += t.Shape[axis]
	}
	return []Tensor{{in[0].DType, out}}, nil
}

// gradConcat splits dy back into the pieces.
func gradConcat(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	rank := len(c.Type(n.Output[0]).Shape)
	axis, err := normAxis(onnx.AttrInt(n, "axis", 0), rank)
	if err != nil {
		return nil, err
	}
	sizes := make([]int64, len(n.Input))
	for k, in := range n.Input {
		sizes[k] = c.Type(in).Shape[axis]
	}
	if len(n.Input) == 1 {
		return dy[:1], nil
	}
	return c.OpN("Split", []string{dy[0], c.Int64s(sizes...)}, len(sizes), onnx.Int("axis", int64(axis))), nil
}

// sliceAxis is what a Slice takes along one axis of its input: count
// elements from start on, step apart.
type sliceAxis struct{ start, step, count int64 }

// sliceAxes resolves a Slice's constant starts, ends, axes and steps into
// one sliceAxis per input axis, clamped as the operator clamps them.
func sliceAxes(s *Shapes, n *pb.NodeProto, shape []int64) ([]sliceAxis, error) {
	if hasAttr(n, "starts") || len(n.Input) < 3 {
		return nil, fmt.Errorf("Slice with attribute starts (opset < 10) is not supported; pass starts and ends as inputs")
	}
	var v [4][]int64
	for k, what := range []string{"starts", "ends", "axes", "steps"} {
		if name := input(n, k+1); name != "" {
			ints, err := s.Ints(name)
			if err != nil {
				return nil, fmt.Errorf("Slice %s: %w", what, err)
			}
			v[k] = ints
		}
	}
	starts, ends, axes, steps := v[0], v[1], v[2], v[3]
	if axes == nil {
		for i := range starts {
			axes = append(axes, int64(i))
		}
	}
	if steps == nil {
		steps = slices.Repeat([]int64{1}, len(starts))
	}
	if len(ends) != len(starts) || len(axes) != len(starts) || len(steps) != len(starts) {
		return nil, fmt.Errorf("Slice has %d starts, %d ends, %d axes and %d steps", len(starts), len(ends), len(axes), len(steps))
	}
	out := make([]sliceAxis, len(shape))
	for i, d := range shape {
		out[i] = sliceAxis{0, 1, d}
	}
	seen := map[int]bool{}
	for i, a := range axes {
		ax, err := normAxis(a, len(shape))
		if err != nil {
			return nil, fmt.Errorf("Slice axes: %w", err)
		}
		if seen[ax] {
			return nil, fmt.Errorf("Slice axes %v name axis %d twice", axes, ax)
		}
		seen[ax] = true
		if steps[i] == 0 {
			return nil, fmt.Errorf("Slice steps %v: a step is 0", steps)
		}
		out[ax] = clampSlice(starts[i], ends[i], steps[i], shape[ax])
	}
	return out, nil
}

// clampSlice applies the Slice operator's rules for one axis of size d:
// negative positions count from the end, then positions are clamped into
// the axis ([0, d] going forward, [-1, d-1] going backward).
func clampSlice(start, end, step, d int64) sliceAxis {
	if start < 0 {
		start += d
	}
	if end < 0 {
		end += d
	}
	var count int64
	if step > 0 {
		start, end = min(max(start, 0), d), min(max(end, 0), d)
		if end > start {
			count = 1 + (end-start-1)/step
		}
	} else {
		start, end = min(max(start, 0), d-1), min(max(end, -1), d-1)
		if start > end {
			count = 1 + (start-end-1)/-step
		}
	}
	if d == 0 {
		count = 0
	}
	return sliceAxis{start, step, count}
}

func shapeSlice(s *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	ax, err := sliceAxes(s, n, in[0].Shape)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(ax))
	for i, a := range ax {
		out[i] = a.count
	}
	return []Tensor{{in[0].DType, out}}, nil
}

// gradSlice puts dy back where the slice took it from, zeros elsewhere,
// with standard ops only: per axis, a negative step becomes a reversal of
// dy, and a step s > 1 becomes s-1 zeros after each element (pad a new
// axis of size 1 to s, then merge it in); a last Slice trims the zeros
// after the final element and a Pad shifts each axis into place.
func gradSlice(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	xt := c.Type(n.Input[0])
	ax, err := sliceAxes(c.shapes, n, xt.Shape)
	if err != nil {
		return nil, err
	}
	rank := len(ax)
	g := dy[0]
	cur := c.Type(n.Output[0]).Shape
	pads := make([]int64, 2*rank)
	ends := slices.Clone(cur)
	padded, trimmed := false, false
	for i, a := range ax {
		if a.count == 0 {
			return []string{""}, nil // dy is empty: no gradient flows
		}
		first, step := a.start, a.step
		if step < 0 {
			if a.count > 1 {
				g = c.Op("Slice", []string{g, c.Int64s(-1), c.Int64s(math.MinInt64), c.Int64s(int64(i)), c.Int64s(-1)})
			}
			first, step = a.start+(a.count-1)*a.step, -step
		}
		span := a.count
		if step > 1 && a.count > 1 {
			g, cur = c.interleave(g, cur, i, step)
			span = (a.count-1)*step + 1
			ends[i], trimmed = span, true
		}
		pads[i], pads[rank+i] = first, xt.Shape[i]-first-span
		padded = padded || first != 0 || pads[rank+i] != 0
	}
	if trimmed {
		axes := make([]int64, rank)
		for i := range axes {
			axes[i] = int64(i)
		}
		g = c.Op("Slice", []string{g, c.Int64s(make([]int64, rank)...), c.Int64s(ends...), c.Int64s(axes...)})
	}
	if padded {
		g = c.Op("Pad", []string{g, c.Int64s(pads...)})
	}
	return []string{g}, nil
}

// interleave puts s-1 zeros after each element of g along axis:
// [..., k, ...] -> [..., k·s, ...]. It returns the new value and shape.
func (c *Context) interleave(g string, shape []int64, axis int, s int64) (string, []int64) {
	rank := len(shape)
	withNew := slices.Insert(slices.Clone(shape), axis+1, 1)
	pads := make([]int64, 2*(rank+1))
	pads[rank+1+axis+1] = s - 1
	g = c.Op("Pad", []string{c.Reshape(g, withNew), c.Int64s(pads...)})
	merged := slices.Clone(shape)
	merged[axis] *= s
	return c.Reshape(g, merged), merged
}

func shapeGather(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	x, idx := in[0].Shape, in[1]
	if idx.DType != onnx.Int64 && idx.DType != onnx.Int32 {
		return nil, fmt.Errorf("Gather indices are %s, want INT32 or INT64", onnx.DTypeName(idx.DType))
	}
	axis, err := normAxis(onnx.AttrInt(n, "axis", 0), len(x))
	if err != nil {
		return nil, fmt.Errorf("Gather axis: %w", err)
	}
	out := slices.Concat(x[:axis], idx.Shape, x[axis+1:])
	return []Tensor{{in[0].DType, out}}, nil
}

// gradGather adds each row of dy into the row of x it was gathered from;
// rows gathered twice get both. As x viewed as [outer, d, inner] and dy as
// [outer, m, inner], that is a ScatterElements along axis 1 with reduction
// add, into zeros, of indices broadcast over outer and inner.
func gradGather(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	x, idx := n.Input[0], n.Input[1]
	xt := c.Type(x)
	axis, err := normAxis(onnx.AttrInt(n, "axis", 0), len(xt.Shape))
	if err != nil {
		return nil, err
	}
	d := xt.Shape[axis]
	outer, inner := elemCount(xt.Shape[:axis]), elemCount(xt.Shape[axis+1:])
	m := c.Type(idx).Size()
	var ind string
	if v, err := c.Ints(idx); err == nil {
		norm := make([]int64, len(v))
		for i, k := range v {
			if k < -d || k >= d {
				return nil, fmt.Errorf("Gather index %d is out of range for an axis of %d", k, d)
			}
			norm[i] = (k + d) % d
		}
		ind = c.b.Initializer(onnx.NewInt64Tensor(c.Fresh("indices"), []int64{1, m, 1}, norm))
	} else {
		// ScatterElements wants indices in [0, d): wrap the negative ones.
		i := c.Reshape(c.Op("Cast", []string{idx}, onnx.Int("to", int64(onnx.Int64))), []int64{1, m, 1})
		wrapped := c.Op("Add", []string{i, c.Int64s(d)})
		ind = c.Op("Where", []string{c.Op("Less", []string{i, c.Int64s(0)}), wrapped, i})
	}
	ind = c.Op("Expand", []string{ind, c.Int64s(outer, m, inner)})
	g := c.Op("ScatterElements", []string{c.zeros(xt.DType, []int64{outer, d, inner}), ind, c.Reshape(dy[0], []int64{outer, m, inner})},
		onnx.Int("axis", 1), onnx.Str("reduction", "add"))
	return []string{c.Reshape(g, xt.Shape), ""}, nil
}

// squeezeAxes reads the axes input of a Squeeze or Unsqueeze (opset 13+)
// against the given rank; nil when absent.
func squeezeAxes(s *Shapes, n *pb.NodeProto, rank int) ([]int, error) {
	op := n.GetOpType()
	if hasAttr(n, "axes") {
		return nil, fmt.Errorf("%s with attribute axes (opset < 13) is not supported; pass axes as an input", op)
	}
	name := input(n, 1)
	if name == "" {
		return nil, nil
	}
	v, err := s.Ints(name)
	if err != nil {
		return nil, fmt.Errorf("%s axes: %w", op, err)
	}
	axes := make([]int, len(v))
	for i, a := range v {
		if axes[i], err = normAxis(a, rank); err != nil {
			return nil, fmt.Errorf("%s axes: %w", op, err)
		}
		if slices.Contains(axes[:i], axes[i]) {
			return nil, fmt.Errorf("%s axes %v name axis %d twice", op, v, axes[i])
		}
	}
	return axes, nil
}

func shapeSqueeze(s *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	x := in[0].Shape
	axes, err := squeezeAxes(s, n, len(x))
	if err != nil {
		return nil, err
	}
	out := []int64{}
	for i, d := range x {
		drop := slices.Contains(axes, i)
		if axes == nil {
			drop = d == 1
		}
		if drop && d != 1 {
			return nil, fmt.Errorf("Squeeze axis %d of %v has size %d, want 1", i, x, d)
		}
		if !drop {
			out = append(out, d)
		}
	}
	return []Tensor{{in[0].DType, out}}, nil
}

func shapeUnsqueeze(s *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	if hasAttr(n, "axes") || len(in) < 2 || len(in[1].Shape) != 1 {
		return nil, fmt.Errorf("Unsqueeze needs axes as a 1-D input (opset 13+), not as an attribute")
	}
	x := in[0].Shape
	rank := len(x) + int(in[1].Shape[0])
	axes, err := squeezeAxes(s, n, rank)
	if err != nil {
		return nil, err
	}
	out := make([]int64, 0, rank)
	rest := x
	for i := 0; i < rank; i++ {
		if slices.Contains(axes, i) {
			out = append(out, 1)
			continue
		}
		if len(rest) == 0 {
			return nil, fmt.Errorf("Unsqueeze axes do not fit rank %d", len(x))
		}
		out, rest = append(out, rest[0]), rest[1:]
	}
	return []Tensor{{in[0].DType, out}}, nil
}

func shapeExpand(s *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	shape, err := s.Ints(n.Input[1])
	if err != nil {
		return nil, fmt.Errorf("Expand shape: %w", err)
	}
	out, err := broadcast(in[0].Shape, shape)
	if err != nil {
		return nil, fmt.Errorf("Expand: %w", err)
	}
	return []Tensor{{in[0].DType, out}}, nil
}

func gradExpand(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	return []string{c.Unbroadcast(dy[0], c.Type(n.Output[0]).Shape, c.Type(n.Input[0]).Shape), ""}, nil
}

func shapeDropout(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	if hasAttr(n, "ratio") {
		return nil, fmt.Errorf("Dropout with attribute ratio (opset < 12) is not supported; pass ratio as an input")
	}
	x := in[0]
	return []Tensor{{x.DType, slices.Clone(x.Shape)}, {onnx.Bool, slices.Clone(x.Shape)}}, nil
}

// gradDropout: in training mode y = x·mask/(1-ratio), so dx is dy·mask/(1-ratio)
// with the mask the forward pass drew, which the rule adds as an output of
// the forward node if the graph did not ask for it. In inference mode y = x.
func gradDropout(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	dt := c.Type(n.Input[0]).DType
	mode := input(n, 2)
	training := mode != ""
	known := true
	if training {
		v, err := c.Ints(mode)
		known = err == nil
		training = !known || len(v) == 1 && v[0] != 0
	}
	if !training {
		return dy[:1], nil
	}
	scale, err := dropoutScale(c, n, dt)
	if err != nil {
		return nil, err
	}
	if !known {
		// In inference mode the mask is all true and the scale 1.
		scale = c.Op("Where", []string{mode, scale, c.Scalar(1, dt)})
	}
	var mask string
	if len(n.Output) > 1 && n.Output[1] != "" {
		mask = n.Output[1]
	} else {
		mask = c.Fresh("dropout_mask")
		n.Output = append(n.Output[:1], mask)
		c.shapes.Types[mask] = Tensor{onnx.Bool, c.Type(n.Output[0]).Shape}
	}
	return []string{c.mul(dy[0], c.Op("Cast", []string{mask}, onnx.Int("to", int64(dt))), scale)}, nil
}

// dropoutScale is 1/(1-ratio), ratio defaulting to 0.5.
func dropoutScale(c *Context, n *pb.NodeProto, dt int32) (string, error) {
	ratio := input(n, 1)
	if ratio == "" {
		return c.Scalar(2, dt), nil
	}
	if v, ok := c.constFloats(ratio); ok {
		if len(v) != 1 || v[0] < 0 || v[0] >= 1 {
			return "", fmt.Errorf("Dropout ratio %v: want one value in [0, 1)", v)
		}
		return c.Scalar(1/(1-v[0]), dt), nil
	}
	if c.Type(ratio).DType != dt {
		ratio = c.Op("Cast", []string{ratio}, onnx.Int("to", int64(dt)))
	}
	one := c.Scalar(1, dt)
	return c.Op("Div", []string{one, c.Op("Sub", []string{one, ratio})}), nil
}

package autodiff

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// Opset is the opset of the default domain that gradient graphs use; forward
// graphs must use it too (LayerNormalization needs 17).
const Opset = 17

// gradFunc emits the backward pass of one node. dy holds, for each output,
// the name of the loss's gradient with respect to it, or "" where none flows.
// It returns, for each input, the name of the gradient with respect to that
// input, or "" where the input needs none (see Context.Needs) or has none.
type gradFunc func(c *Context, n *pb.NodeProto, dy []string) ([]string, error)

// gradRules holds the backward pass of every differentiable op; each family
// of ops registers its rules in its own file.
var gradRules = map[string]gradFunc{}

// Context is what a gradient rule builds with: the graph being extended, the
// static types of the forward values, and which values need gradients.
type Context struct {
	b      *onnx.Builder
	shapes *Shapes
	need   map[string]bool
	consts map[string]string // constant initializers already emitted, by key
}

// Type is the static type of a forward value.
func (c *Context) Type(name string) Tensor { return c.shapes.Types[name] }

// Needs reports whether the gradient with respect to value is wanted: a rule
// returns "" for inputs that do not, and may skip their work.
func (c *Context) Needs(name string) bool { return c.need[name] }

// Ints is the value of a constant integer input (Reshape's shape, ...).
func (c *Context) Ints(name string) ([]int64, error) { return c.shapes.Ints(name) }

// Op emits a node with one output and returns the output's name.
func (c *Context) Op(op string, inputs []string, attrs ...*pb.AttributeProto) string {
	return c.b.Node(op, inputs, attrs...)
}

// OpN emits a node with n outputs and returns their names.
func (c *Context) OpN(op string, inputs []string, n int, attrs ...*pb.AttributeProto) []string {
	outs := make([]string, n)
	for i := range outs {
		outs[i] = c.b.Fresh(op + "_out")
	}
	c.b.NodeOut(c.b.Fresh(op), op, inputs, outs, attrs...)
	return outs
}

// Fresh returns an unused value name built from base, for outputs a rule adds
// to forward nodes (a MaxPool's indices, a Dropout's mask).
func (c *Context) Fresh(base string) string { return c.b.Fresh(base) }

// Scalar is a constant of the given float dtype and shape [] holding v.
func (c *Context) Scalar(v float64, dtype int32) string {
	return c.Const(dtype, nil, []float64{v})
}

// Const is a constant float tensor of the given dtype and shape; equal
// constants are emitted once.
func (c *Context) Const(dtype int32, shape []int64, v []float64) string {
	key := fmt.Sprint(dtype, shape, v)
	if name, ok := c.consts[key]; ok {
		return name
	}
	t := &pb.TensorProto{Name: proto.String(c.b.Fresh("const")), Dims: slices.Clone(shape), DataType: proto.Int32(dtype)}
	switch dtype {
	case onnx.Double:
		t.DoubleData = slices.Clone(v)
	default:
		t.FloatData = make([]float32, len(v))
		for i, x := range v {
			t.FloatData[i] = float32(x)
		}
		if dtype != onnx.Float {
			// float16 and bfloat16 keep their bits in int32_data.
			t.FloatData = nil
			for _, x := range v {
				h := onnx.Float32ToHalf(float32(x))
				if dtype == onnx.BFloat16 {
					h = onnx.Float32ToBFloat16(float32(x))
				}
				t.Int32Data = append(t.Int32Data, int32(h))
			}
		}
	}
	c.consts[key] = c.b.Initializer(t)
	return c.consts[key]
}

// Int64s is a constant 1-D int64 tensor (axes, shapes); emitted once.
func (c *Context) Int64s(v ...int64) string {
	key := fmt.Sprint("i64", v)
	if name, ok := c.consts[key]; ok {
		return name
	}
	c.consts[key] = c.b.Initializer(onnx.NewInt64Tensor(c.b.Fresh("ints"), []int64{int64(len(v))}, v))
	return c.consts[key]
}

// Unbroadcast sums grad, of shape from, down to shape to: the gradient of a
// value that broadcasting stretched to from.
func (c *Context) Unbroadcast(grad string, from, to []int64) string {
	if slices.Equal(from, to) {
		return grad
	}
	off := len(from) - len(to)
	var axes []int64
	for i := range from {
		if i < off || to[i-off] == 1 && from[i] != 1 {
			axes = append(axes, int64(i))
		}
	}
	if len(axes) > 0 {
		grad = c.Op("ReduceSum", []string{grad, c.Int64s(axes...)}, onnx.Int("keepdims", 1))
	}
	return c.Reshape(grad, to)
}

// Reshape emits a Reshape to a static shape.
func (c *Context) Reshape(x string, shape []int64) string {
	if len(shape) == 0 {
		return c.Op("Reshape", []string{x, c.Int64s()})
	}
	return c.Op("Reshape", []string{x, c.Int64s(shape...)})
}

// Result is a gradient graph: the forward graph extended to output the loss
// and its gradient with respect to each requested value.
type Result struct {
	Graph  *pb.GraphProto
	Shapes *Shapes
	Loss   string
	Grads  map[string]string // requested value -> output holding its gradient
}

// Gradients extends a copy of g with the gradient of the scalar value loss
// with respect to each of wrt (graph inputs or initializers). The graph's
// outputs become loss followed by the gradients, in the order of wrt. An op
// on the way from wrt to loss without a gradient rule is an error naming it.
func Gradients(g *pb.GraphProto, loss string, wrt []string) (*Result, error) {
	g = proto.Clone(g).(*pb.GraphProto)
	shapes, err := InferShapes(g)
	if err != nil {
		return nil, err
	}
	lt, ok := shapes.Types[loss]
	if !ok {
		return nil, fmt.Errorf("autodiff: loss %q is not a value of the graph", loss)
	}
	if lt.Size() != 1 || !onnx.IsFloat(lt.DType) {
		return nil, fmt.Errorf("autodiff: loss %q is %v, want a float scalar", loss, lt)
	}
	ix, err := onnx.NewIndex(g)
	if err != nil {
		return nil, err
	}
	for _, w := range wrt {
		t, ok := shapes.Types[w]
		if !ok || !onnx.IsFloat(t.DType) {
			return nil, fmt.Errorf("autodiff: cannot differentiate with respect to %q: not a float value of the graph", w)
		}
	}
	c := &Context{b: onnx.Extend(g, Opset, "grad/"), shapes: shapes, consts: map[string]string{}}
	c.need = needed(g, ix, loss, wrt)

	acc := map[string][]string{loss: {c.Const(lt.DType, lt.Shape, []float64{1})}}
	for k := len(ix.Order) - 1; k >= 0; k-- {
		n := g.Node[ix.Order[k]]
		if err := c.backward(n, acc); err != nil {
			return nil, fmt.Errorf("autodiff: node %q (%s): %w", n.GetName(), n.GetOpType(), err)
		}
	}
	res := &Result{Graph: g, Shapes: shapes, Loss: loss, Grads: map[string]string{}}
	g.Output = []*pb.ValueInfoProto{valueInfo(loss, lt)}
	for _, w := range wrt {
		t := shapes.Types[w]
		grad := c.sum(acc[w])
		if grad == "" {
			grad = c.Const(t.DType, t.Shape, make([]float64, t.Size()))
		}
		name := c.b.Fresh("d_" + w)
		c.b.NodeAs(name, "Identity", []string{grad})
		res.Grads[w] = name
		g.Output = append(g.Output, valueInfo(name, t))
	}
	return res, nil
}

// backward emits the gradient of one node if it lies between wrt and loss.
func (c *Context) backward(n *pb.NodeProto, acc map[string][]string) error {
	wanted := false
	for _, in := range n.Input {
		wanted = wanted || c.need[in]
	}
	dy := make([]string, len(n.Output))
	flows := false
	for i, o := range n.Output {
		dy[i] = c.sum(acc[o])
		flows = flows || dy[i] != ""
	}
	if !wanted || !flows {
		return nil
	}
	rule, ok := gradRules[n.GetOpType()]
	if !ok {
		return fmt.Errorf("no gradient rule for op %s", n.GetOpType())
	}
	dx, err := rule(c, n, dy)
	if err != nil {
		return err
	}
	for k, in := range n.Input {
		if k < len(dx) && dx[k] != "" && c.need[in] {
			acc[in] = append(acc[in], dx[k])
		}
	}
	return nil
}

// sum adds gradient contributions; "" when there are none.
func (c *Context) sum(parts []string) string {
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return c.Op("Sum", parts)
}

// needed marks the values whose gradient must be computed: those that
// depend on a wrt value and that loss depends on.
func needed(g *pb.GraphProto, ix *onnx.Index, loss string, wrt []string) map[string]bool {
	from := map[string]bool{}
	for _, w := range wrt {
		from[w] = true
	}
	for _, i := range ix.Order {
		n := g.Node[i]
		for _, in := range n.Input {
			if from[in] {
				for _, o := range n.Output {
					from[o] = true
				}
				break
			}
		}
	}
	to := map[string]bool{loss: true}
	for k := len(ix.Order) - 1; k >= 0; k-- {
		n := g.Node[ix.Order[k]]
		for _, o := range n.Output {
			if to[o] {
				for _, in := range n.Input {
					to[in] = true
				}
				break
			}
		}
	}
	need := map[string]bool{}
	for v := range from {
		if to[v] {
			need[v] = true
		}
	}
	return need
}

func valueInfo(name string, t Tensor) *pb.ValueInfoProto {
	shape := &pb.TensorShapeProto{}
	for _, d := range t.Shape {
		shape.Dim = append(shape.Dim, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
	}
	return &pb.ValueInfoProto{Name: proto.String(name), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
		TensorType: &pb.TypeProto_Tensor{ElemType: proto.Int32(t.DType), Shape: shape}}}}
}

package autodiff

import (
	"fmt"
	"slices"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// Tensor is the static type of a value: its dtype and its shape, every
// dimension known.
type Tensor struct {
	DType int32
	Shape []int64
}

// Size is the number of elements.
func (t Tensor) Size() int64 {
	n, _ := onnx.NumElements(t.Shape)
	return n
}

func (t Tensor) String() string { return fmt.Sprintf("%s%v", onnx.DTypeName(t.DType), t.Shape) }

// shapeFunc gives the types of a node's outputs from those of its inputs; in
// holds a zero Tensor for an absent optional input.
type shapeFunc func(s *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error)

// shapeRules holds the shape inference of every op the package
// differentiates. Each family of ops registers its rules in its own file.
var shapeRules = map[string]shapeFunc{}

// Shapes holds the static type of every value of a graph, and its constant
// tensors (initializers and Constant nodes) for ops whose output shape
// depends on a constant input (Reshape, Slice, ...).
type Shapes struct {
	Types  map[string]Tensor
	consts map[string]*pb.TensorProto
}

// InferShapes computes the type of every value of g from the static shapes
// of its inputs and initializers. Every op must be one the package knows;
// every input dimension must be fixed.
func InferShapes(g *pb.GraphProto) (*Shapes, error) {
	ix, err := onnx.NewIndex(g)
	if err != nil {
		return nil, err
	}
	s := &Shapes{Types: map[string]Tensor{}, consts: map[string]*pb.TensorProto{}}
	for name, t := range ix.Init {
		s.Types[name] = Tensor{t.GetDataType(), t.GetDims()}
		s.consts[name] = t
	}
	for name, t := range ix.Const {
		s.consts[name] = t
	}
	for _, v := range g.GetInput() {
		if _, ok := s.Types[v.GetName()]; ok {
			continue
		}
		t, err := staticType(v)
		if err != nil {
			return nil, err
		}
		s.Types[v.GetName()] = t
	}
	for _, i := range ix.Order {
		n := g.Node[i]
		if err := s.infer(n); err != nil {
			return nil, fmt.Errorf("autodiff: node %q (%s): %w", n.GetName(), n.GetOpType(), err)
		}
	}
	return s, nil
}

func (s *Shapes) infer(n *pb.NodeProto) error {
	if n.GetOpType() == "Constant" {
		t := s.consts[n.Output[0]]
		if t == nil {
			return fmt.Errorf("only Constant nodes with a tensor value are supported")
		}
		s.Types[n.Output[0]] = Tensor{t.GetDataType(), t.GetDims()}
		return nil
	}
	rule, ok := shapeRules[n.GetOpType()]
	if !ok || (n.GetDomain() != "" && n.GetDomain() != "ai.onnx") {
		return fmt.Errorf("op %s is not supported", n.GetOpType())
	}
	in := make([]Tensor, len(n.Input))
	for k, name := range n.Input {
		if name == "" {
			continue
		}
		t, ok := s.Types[name]
		if !ok {
			return fmt.Errorf("input %q has no known type", name)
		}
		in[k] = t
	}
	out, err := rule(s, n, in)
	if err != nil {
		return err
	}
	for k, name := range n.Output {
		if name != "" && k < len(out) {
			s.Types[name] = out[k]
		}
	}
	return nil
}

// Ints returns the values of a constant integer input, or an error naming it.
func (s *Shapes) Ints(name string) ([]int64, error) {
	t, ok := s.consts[name]
	if !ok {
		return nil, fmt.Errorf("input %q must be a constant", name)
	}
	return onnx.Int64s(t)
}

func staticType(v *pb.ValueInfoProto) (Tensor, error) {
	tt := v.GetType().GetTensorType()
	if tt == nil || tt.GetShape() == nil {
		return Tensor{}, fmt.Errorf("autodiff: input %q has no tensor shape", v.GetName())
	}
	t := Tensor{DType: tt.GetElemType()}
	for _, d := range tt.GetShape().GetDim() {
		if d.GetDimParam() != "" || d.GetValue() == nil {
			return Tensor{}, fmt.Errorf("autodiff: input %q has a symbolic dimension; gradient graphs need static shapes", v.GetName())
		}
		t.Shape = append(t.Shape, d.GetDimValue())
	}
	return t, nil
}

// broadcast is the shape of a numpy-style broadcast of shapes.
func broadcast(shapes ...[]int64) ([]int64, error) {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	out := make([]int64, rank)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			switch {
			case d == out[off+i] || d == 1:
			case out[off+i] == 1:
				out[off+i] = d
			default:
				return nil, fmt.Errorf("shapes %v do not broadcast", shapes)
			}
		}
	}
	return out, nil
}

// normAxis maps a possibly negative axis into [0, rank).
func normAxis(axis int64, rank int) (int, error) {
	if axis < 0 {
		axis += int64(rank)
	}
	if axis < 0 || axis >= int64(rank) {
		return 0, fmt.Errorf("axis %d out of range for rank %d", axis, rank)
	}
	return int(axis), nil
}

func same(in []Tensor) ([]Tensor, error) {
	return []Tensor{{in[0].DType, slices.Clone(in[0].Shape)}}, nil
}

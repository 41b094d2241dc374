package onnx

import (
	"fmt"

	"github.com/hyperrep/hyperrep/onnx/pb"
)

// Versions of the models Builder writes: IR 8 with opset 17 is read by ONNX
// Runtime and by ONNX's own checker from 1.12 on.
const (
	IRVersion    = 8
	DefaultOpset = 17
)

// Builder assembles a graph node by node. Values are referred to by name;
// nodes get unique names and outputs of the form "<op>_<k>" unless named.
type Builder struct {
	g      *pb.GraphProto
	opset  int64
	count  map[string]int
	used   map[string]bool // value and node names taken, so generated ones are fresh
	prefix string
}

// NewBuilder starts an empty graph called name for the given opset of the
// default domain (0 for DefaultOpset).
func NewBuilder(name string, opset int64) *Builder {
	if opset == 0 {
		opset = DefaultOpset
	}
	return &Builder{g: &pb.GraphProto{Name: &name}, opset: opset, count: map[string]int{}, used: map[string]bool{}}
}

// Extend returns a builder that appends to g, an existing graph; generated
// names start with prefix and never collide with names g already uses.
func Extend(g *pb.GraphProto, opset int64, prefix string) *Builder {
	b := NewBuilder(g.GetName(), opset)
	b.g, b.prefix = g, prefix
	for _, v := range g.GetInput() {
		b.used[v.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		b.used[t.GetName()] = true
	}
	for _, n := range g.GetNode() {
		b.used[n.GetName()] = true
		for _, o := range n.GetOutput() {
			b.used[o] = true
		}
	}
	return b
}

// Graph is the graph being built.
func (b *Builder) Graph() *pb.GraphProto { return b.g }

// Fresh returns a name, built from base, that the graph does not use yet.
func (b *Builder) Fresh(base string) string {
	for {
		k := b.count[base]
		b.count[base]++
		name := fmt.Sprintf("%s%s_%d", b.prefix, base, k)
		if !b.used[name] {
			b.used[name] = true
			return name
		}
	}
}

// valueInfo describes a tensor value; a negative dimension is symbolic and
// named "N" (the batch).
func valueInfo(name string, dtype int32, dims []int64) *pb.ValueInfoProto {
	shape := &pb.TensorShapeProto{}
	for _, d := range dims {
		dim := &pb.TensorShapeProto_Dimension{}
		if d < 0 {
			dim.Value = &pb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}
		} else {
			dim.Value = &pb.TensorShapeProto_Dimension_DimValue{DimValue: d}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	tt := &pb.TypeProto_Tensor{ElemType: ptr(dtype), Shape: shape}
	return &pb.ValueInfoProto{Name: &name, Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{TensorType: tt}}}
}

// Input declares a graph input and returns its name.
func (b *Builder) Input(name string, dtype int32, dims ...int64) string {
	b.g.Input = append(b.g.Input, valueInfo(name, dtype, dims))
	b.used[name] = true
	return name
}

// Output declares the value name as a graph output.
func (b *Builder) Output(name string, dtype int32, dims ...int64) {
	b.g.Output = append(b.g.Output, valueInfo(name, dtype, dims))
}

// Initializer adds a constant tensor and returns its name.
func (b *Builder) Initializer(t *pb.TensorProto) string {
	b.g.Initializer = append(b.g.Initializer, t)
	b.used[t.GetName()] = true
	return t.GetName()
}

// Float adds a float32 initializer.
func (b *Builder) Float(name string, dims []int64, v []float32) string {
	return b.Initializer(NewFloatTensor(name, dims, v))
}

// Int64s adds a 1-D int64 initializer (shapes, axes).
func (b *Builder) Int64s(name string, v ...int64) string {
	return b.Initializer(NewInt64Tensor(name, []int64{int64(len(v))}, v))
}

// Node adds a node with one output, named after the op, and returns the
// output's name.
func (b *Builder) Node(op string, inputs []string, attrs ...*pb.AttributeProto) string {
	return b.NodeAs(b.Fresh(op), op, inputs, attrs...)
}

// NodeAs adds a node with one output; the node and its output are both
// called name.
func (b *Builder) NodeAs(name, op string, inputs []string, attrs ...*pb.AttributeProto) string {
	b.NodeOut(name, op, inputs, []string{name}, attrs...)
	return name
}

// NodeOut adds a node with the given outputs.
func (b *Builder) NodeOut(name, op string, inputs, outputs []string, attrs ...*pb.AttributeProto) {
	b.used[name] = true
	for _, o := range outputs {
		b.used[o] = true
	}
	b.g.Node = append(b.g.Node, &pb.NodeProto{Name: &name, OpType: &op,
		Input: append([]string(nil), inputs...), Output: append([]string(nil), outputs...), Attribute: attrs})
}

// Model returns the model holding the graph built so far.
func (b *Builder) Model() *Model {
	return &Model{Proto: &pb.ModelProto{
		IrVersion:    ptr(int64(IRVersion)),
		ProducerName: ptr("hyperrep"),
		OpsetImport:  []*pb.OperatorSetIdProto{{Domain: ptr(""), Version: ptr(b.opset)}},
		Graph:        b.g,
	}}
}

// Int is an int attribute.
func Int(name string, v int64) *pb.AttributeProto {
	return &pb.AttributeProto{Name: &name, Type: pb.AttributeProto_INT.Enum(), I: &v}
}

// Ints is an ints attribute.
func Ints(name string, v ...int64) *pb.AttributeProto {
	return &pb.AttributeProto{Name: &name, Type: pb.AttributeProto_INTS.Enum(), Ints: v}
}

// FloatAttr is a float attribute.
func FloatAttr(name string, v float32) *pb.AttributeProto {
	return &pb.AttributeProto{Name: &name, Type: pb.AttributeProto_FLOAT.Enum(), F: &v}
}

// Str is a string attribute.
func Str(name, v string) *pb.AttributeProto {
	return &pb.AttributeProto{Name: &name, Type: pb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// TensorAttr is a tensor attribute (the value of a Constant node).
func TensorAttr(name string, t *pb.TensorProto) *pb.AttributeProto {
	return &pb.AttributeProto{Name: &name, Type: pb.AttributeProto_TENSOR.Enum(), T: t}
}

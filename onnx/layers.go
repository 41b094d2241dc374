package onnx

import (
	"sort"

	"github.com/hyperrep/hyperrep/onnx/pb"
)

// Role says what a weight tensor is to its layer.
type Role string

// The roles of weight tensors.
const (
	RoleWeight      Role = "weight"       // kernel, matrix, embedding table, PRelu slope
	RoleBias        Role = "bias"         // additive per-unit term
	RoleScale       Role = "scale"        // normalisation gain
	RoleRunningMean Role = "running_mean" // BatchNormalization statistics
	RoleRunningVar  Role = "running_var"
	RoleRecurrence  Role = "recurrence" // R of LSTM, GRU and RNN
	RoleOther       Role = "other"      // a float initializer no known layer claims
)

// Param is one weight tensor of a layer.
type Param struct {
	Name     string
	Role     Role
	Dims     []int64
	DType    int32
	UnitAxis int             // the axis that indexes the layer's output units
	Tensor   *pb.TensorProto // the initializer, or the Constant node's value, holding it
}

// Size is the number of values of the tensor.
func (p Param) Size() int64 {
	n, _ := NumElements(p.Dims)
	return n
}

// Layer is a weight-bearing node with its weight tensors. A float initializer
// that no known layer claims forms a layer of its own holding one RoleOther
// param.
type Layer struct {
	Name   string // the node's name, or op type and node index; the initializer's name for unclaimed ones
	Op     string // the node's op type; for unclaimed initializers, the first reader's op type or ""
	Node   int    // index into the graph's nodes, -1 when nothing reads it
	Params []Param
	// Input is the index, in the list Layers returns, of the layer whose node
	// directly produces this layer's data input, or -1.
	Input int
}

// NumParams is the number of weight values of the layer.
func (l Layer) NumParams() int64 {
	var n int64
	for _, p := range l.Params {
		n += p.Size()
	}
	return n
}

// slot is a weight input of an op: which input, its role, and how to find the
// unit axis from the node and the tensor's rank.
type slot struct {
	input int
	role  Role
	axis  func(n *pb.NodeProto, rank int) int
}

func axis0(*pb.NodeProto, int) int        { return 0 }
func axis1(*pb.NodeProto, int) int        { return 1 }
func axisLast(_ *pb.NodeProto, r int) int { return max(r-1, 0) }

// slots lists, per op type of the default domain, the inputs that hold
// weights. Gemm and MatMul depend on which operand is constant and are handled
// in gemmSlots and matmulSlots.
var slots = map[string][]slot{
	"Conv":                  {{1, RoleWeight, axis0}, {2, RoleBias, axis0}},
	"ConvTranspose":         {{1, RoleWeight, axis1}, {2, RoleBias, axis0}},
	"BatchNormalization":    {{1, RoleScale, axis0}, {2, RoleBias, axis0}, {3, RoleRunningMean, axis0}, {4, RoleRunningVar, axis0}},
	"InstanceNormalization": {{1, RoleScale, axis0}, {2, RoleBias, axis0}},
	"GroupNormalization":    {{1, RoleScale, axis0}, {2, RoleBias, axis0}},
	"LayerNormalization":    {{1, RoleScale, axisLast}, {2, RoleBias, axisLast}},
	"Gather":                {{0, RoleWeight, axis0}},
	"PRelu":                 {{1, RoleWeight, axis0}},
	"LSTM":                  {{1, RoleWeight, axis1}, {2, RoleRecurrence, axis1}, {3, RoleBias, axis1}},
	"GRU":                   {{1, RoleWeight, axis1}, {2, RoleRecurrence, axis1}, {3, RoleBias, axis1}},
	"RNN":                   {{1, RoleWeight, axis1}, {2, RoleRecurrence, axis1}, {3, RoleBias, axis1}},
}

// Layers lists the weight-bearing layers of g in topological order (see the
// package documentation). Non-float initializers are not weights and are not
// listed.
func Layers(g *pb.GraphProto) ([]Layer, error) {
	ix, err := NewIndex(g)
	if err != nil {
		return nil, err
	}
	claimed := map[string]bool{}
	var layers []Layer
	byNode := map[int]int{} // node index -> index in layers
	pos := map[int]int{}    // node index -> topological position
	for p, i := range ix.Order {
		pos[i] = p
	}
	for _, i := range ix.Order {
		n := g.Node[i]
		if n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
			continue
		}
		var params []Param
		for _, s := range nodeSlots(ix, n) {
			if s.input >= len(n.Input) || claimed[n.Input[s.input]] {
				continue
			}
			name, t, perm := ix.weightSource(n.Input[s.input])
			if t == nil || !IsFloat(t.GetDataType()) || claimed[name] {
				continue
			}
			claimed[name] = true
			axis := s.axis(n, len(t.GetDims()))
			if perm != nil && axis < len(perm) {
				axis = int(perm[axis])
			}
			params = append(params, Param{Name: name, Role: s.role, Dims: t.GetDims(), DType: t.GetDataType(),
				UnitAxis: axis, Tensor: t})
		}
		if len(params) == 0 {
			if l, ok := addedBias(ix, n, byNode, layers, claimed); ok {
				layers[byNode[l.node]].Params = append(layers[byNode[l.node]].Params, l.param)
				claimed[l.param.Name] = true
			}
			continue
		}
		byNode[i] = len(layers)
		layers = append(layers, Layer{Name: describe(g, i), Op: n.GetOpType(), Node: i, Params: params})
	}
	layers = append(layers, unclaimed(ix, claimed, pos)...)
	sort.SliceStable(layers, func(a, b int) bool { return order(layers[a], pos) < order(layers[b], pos) })
	linkInputs(ix, layers)
	return layers, nil
}

func order(l Layer, pos map[int]int) int {
	if l.Node < 0 {
		return len(pos)
	}
	return pos[l.Node]
}

// nodeSlots returns the weight inputs of n.
func nodeSlots(ix *Index, n *pb.NodeProto) []slot {
	isConst := func(k int) bool {
		if k >= len(n.Input) {
			return false
		}
		_, t, _ := ix.weightSource(n.Input[k])
		return t != nil
	}
	switch n.GetOpType() {
	case "Gemm":
		transA, transB := AttrInt(n, "transA", 0) != 0, AttrInt(n, "transB", 0) != 0
		switch {
		case isConst(1):
			return []slot{{1, RoleWeight, func(*pb.NodeProto, int) int { return b2i(!transB) }}, {2, RoleBias, axisLast}}
		case isConst(0):
			return []slot{{0, RoleWeight, func(*pb.NodeProto, int) int { return b2i(transA) }}, {2, RoleBias, axis0}}
		}
		return nil
	case "MatMul":
		switch {
		case isConst(1):
			return []slot{{1, RoleWeight, axisLast}}
		case isConst(0):
			return []slot{{0, RoleWeight, func(_ *pb.NodeProto, r int) int { return max(r-2, 0) }}}
		}
		return nil
	}
	return slots[n.GetOpType()]
}

// weightSource finds the constant tensor behind a weight input: the value
// itself, or the input of a Transpose of a constant (older PyTorch exports a
// bias-free Linear as Transpose(W) -> MatMul). perm is that Transpose's
// permutation, mapping axes of the value to axes of the tensor, or nil.
func (ix *Index) weightSource(value string) (name string, t *pb.TensorProto, perm []int64) {
	if t := ix.Tensor(value); t != nil {
		return value, t, nil
	}
	p, ok := ix.Producer[value]
	if !ok {
		return "", nil, nil
	}
	n := ix.Graph.Node[p]
	if n.GetOpType() != "Transpose" || len(n.Input) != 1 || len(ix.Consumers[value]) != 1 {
		return "", nil, nil
	}
	t = ix.Tensor(n.Input[0])
	if t == nil {
		return "", nil, nil
	}
	rank := len(t.GetDims())
	perm = AttrInts(n, "perm", nil)
	if perm == nil {
		for i := rank - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	if len(perm) != rank {
		return "", nil, nil
	}
	for _, a := range perm {
		if a < 0 || a >= int64(rank) {
			return "", nil, nil
		}
	}
	return n.Input[0], t, perm
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

type biasOf struct {
	node  int
	param Param
}

// addedBias recognises Add(layer output, constant) where the layer is a Conv,
// ConvTranspose, Gemm or MatMul without a bias and the constant holds one value
// per output unit broadcast along the unit axis: exporters write a linear
// layer as MatMul + Add. The constant is then that layer's bias.
func addedBias(ix *Index, n *pb.NodeProto, byNode map[int]int, layers []Layer, claimed map[string]bool) (biasOf, bool) {
	if n.GetOpType() != "Add" || len(n.Input) != 2 {
		return biasOf{}, false
	}
	for k := 0; k < 2; k++ {
		name, other := n.Input[k], n.Input[1-k]
		t := ix.Tensor(name)
		p, ok := ix.Producer[other]
		if t == nil || !IsFloat(t.GetDataType()) || claimed[name] || !ok {
			continue
		}
		li, ok := byNode[p]
		if !ok {
			continue
		}
		l := layers[li]
		w := l.Params[0]
		if w.Role != RoleWeight || len(l.Params) != 1 || w.UnitAxis >= len(w.Dims) {
			continue
		}
		units := w.Dims[w.UnitAxis]
		dims := t.GetDims()
		for len(dims) > 0 && dims[0] == 1 {
			dims = dims[1:]
		}
		fits := false
		switch l.Op {
		case "Conv", "ConvTranspose":
			// [C, 1, ..., 1] with one 1 per spatial axis of the kernel.
			spatial := len(w.Dims) - 2
			fits = len(dims) == spatial+1 && dims[0] == units && onlyOnes(dims[1:])
			if l.Op == "ConvTranspose" && AttrInt(ix.Graph.Node[p], "group", 1) != 1 {
				fits = false
			}
		case "MatMul", "Gemm":
			// The output's last axis holds the units when the weight is
			// the right operand.
			right, _, _ := ix.weightSource(ix.Graph.Node[p].Input[1])
			fits = len(dims) == 1 && dims[0] == units && w.Name == right
		}
		if fits {
			axis := len(t.GetDims()) - len(dims)
			return biasOf{p, Param{Name: name, Role: RoleBias, Dims: t.GetDims(), DType: t.GetDataType(), UnitAxis: axis, Tensor: t}}, true
		}
	}
	return biasOf{}, false
}

func onlyOnes(d []int64) bool {
	for _, x := range d {
		if x != 1 {
			return false
		}
	}
	return true
}

// unclaimed makes a RoleOther layer for each float initializer no layer
// claimed, placed at its first reader.
func unclaimed(ix *Index, claimed map[string]bool, pos map[int]int) []Layer {
	var out []Layer
	for _, t := range ix.Graph.GetInitializer() {
		name := t.GetName()
		if claimed[name] || !IsFloat(t.GetDataType()) {
			continue
		}
		l := Layer{Name: name, Node: -1, Params: []Param{{Name: name, Role: RoleOther, Dims: t.GetDims(), DType: t.GetDataType(), Tensor: t}}}
		if readers := ix.Consumers[name]; len(readers) > 0 {
			l.Node = readers[0]
			l.Op = ix.Graph.Node[readers[0]].GetOpType()
		}
		claimed[name] = true
		out = append(out, l)
	}
	return out
}

// linkInputs sets each layer's Input: the layer whose node produces the
// node's first non-constant input.
func linkInputs(ix *Index, layers []Layer) {
	byNode := map[int]int{}
	for i, l := range layers {
		layers[i].Input = -1
		if l.Node >= 0 && l.Params[0].Role != RoleOther {
			byNode[l.Node] = i
		}
	}
	for i, l := range layers {
		if l.Node < 0 || l.Params[0].Role == RoleOther {
			continue
		}
		for _, in := range ix.Graph.Node[l.Node].GetInput() {
			if in == "" || ix.Tensor(in) != nil {
				continue
			}
			if p, ok := ix.Producer[in]; ok {
				if j, ok := byNode[p]; ok {
					layers[i].Input = j
				}
			}
			break
		}
	}
}

// Layers lists the weight-bearing layers of the model's main graph.
func (m *Model) Layers() ([]Layer, error) { return Layers(m.Graph()) }

package tokenizer

import (
	"fmt"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// permuter finds, for a layer, everything that must be permuted with its
// output units.
type permuter struct {
	g       *pb.GraphProto
	ix      *onnx.Index
	pos     map[int]int     // node index -> position in ix.Order
	outputs map[string]bool // graph outputs
	inner   map[string]bool // values read inside subgraphs (If, Loop, Scan bodies)
	opset   int64           // of the default domain
}

func newPermuter(m *onnx.Model) (*permuter, error) {
	g := m.Graph()
	ix, err := onnx.NewIndex(g)
	if err != nil {
		return nil, err
	}
	p := &permuter{g: g, ix: ix, pos: map[int]int{}, outputs: map[string]bool{}, inner: map[string]bool{}}
	for k, i := range ix.Order {
		p.pos[i] = k
	}
	for _, v := range g.GetOutput() {
		p.outputs[v.GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, a := range n.GetAttribute() {
			for _, sg := range append([]*pb.GraphProto{a.G}, a.Graphs...) {
				readIn(sg, p.inner)
			}
		}
	}
	for _, o := range m.Proto.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			p.opset = o.GetVersion()
		}
	}
	return p, nil
}

// readIn adds every value the nodes of g and its subgraphs read to names.
func readIn(g *pb.GraphProto, names map[string]bool) {
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			names[in] = true
		}
		for _, a := range n.GetAttribute() {
			for _, sg := range append([]*pb.GraphProto{a.G}, a.Graphs...) {
				readIn(sg, names)
			}
		}
	}
}

// shape says where the units of a chain value are: along the axis k from
// the right of a value of the given rank (-1 when not known), or, when
// flat, as blocks of consecutive features of the last axis of a matrix.
type shape struct {
	rank, k int
	flat    bool
}

// channels reports whether the units are axis 1 of a value of known rank,
// the channel axis that pooling and BatchNormalization work along.
func (s shape) channels() bool { return !s.flat && s.rank >= 2 && s.k == s.rank-2 }

// last reports whether the units are the last axis, as a Gemm or MatMul
// reading them wants.
func (s shape) last() bool { return s.k == 0 }

// chain is a layer's output units followed through the graph: the values
// that carry them and the edits that permuting them needs.
type chain struct {
	p      *permuter
	units  int
	values map[string]shape
	edits  []edit
	edited map[*pb.TensorProto]bool
	last   int // the position in topological order of the last node reading the units
}

func (p *permuter) node(i int) string {
	n := p.g.Node[i]
	if n.GetName() != "" {
		return fmt.Sprintf("%s %q", n.GetOpType(), n.GetName())
	}
	return fmt.Sprintf("%s node %d", n.GetOpType(), i)
}

// follow returns the chain of the layer at node i, or why its units cannot
// be permuted. The chain is returned with the error when the unit count is
// known.
func (p *permuter) follow(i int) (*chain, error) {
	c := &chain{p: p, values: map[string]shape{}, edited: map[*pb.TensorProto]bool{}}
	n := p.g.Node[i]
	s, err := c.start(n)
	if err != nil {
		if c.units > 0 {
			return c, err
		}
		return nil, err
	}
	if c.units < 2 {
		return c, fmt.Errorf("it has only %d unit", c.units)
	}
	if err := c.carry(n.Output[0], s); err != nil {
		return c, err
	}
	// Nodes come in topological order; the walk ends after the last node
	// that reads the units.
	for k := p.pos[i] + 1; k <= c.last; k++ {
		if err := c.visit(p.ix.Order[k]); err != nil {
			return c, err
		}
	}
	return c, nil
}

// start records the edits of the layer itself and returns where its output
// holds the units.
func (c *chain) start(n *pb.NodeProto) (shape, error) {
	op := n.GetOpType()
	var w weight
	if defaultDomain(n) && len(n.Output) == 1 && len(n.Input) >= 2 && c.constant(n.Input[0]) == nil {
		w = c.weight(n.Input[1])
	}
	if w.name == "" {
		return shape{}, fmt.Errorf("its weight is not a constant second input")
	}
	conv := op == "Conv" || op == "ConvTranspose"
	rank := len(w.dims)
	axis := 0
	if op == "ConvTranspose" || op == "MatMul" || op == "Gemm" && onnx.AttrInt(n, "transB", 0) == 0 {
		axis = 1
	}
	if axis < rank {
		c.units = int(w.dims[axis])
	}
	k, err := onnx.NumElements(w.dims)
	switch {
	case err != nil || k == 0:
		return shape{}, fmt.Errorf("its weight %v is empty", w.dims)
	case conv && rank < 3, !conv && rank != 2:
		return shape{}, fmt.Errorf("its weight is %v", w.dims)
	case conv && onnx.AttrInt(n, "group", 1) != 1:
		return shape{}, fmt.Errorf("grouped convolution (group %d)", onnx.AttrInt(n, "group", 1))
	}
	s := shape{rank: 2, k: 0}
	switch {
	case conv:
		s = shape{rank: rank, k: rank - 2}
	case op == "MatMul":
		s.rank = -1 // the input's batch axes are not known
	}
	if err := c.edit(w.name, w.axis(axis), 1); err != nil {
		return shape{}, err
	}
	if len(n.Input) < 3 || n.Input[2] == "" {
		return s, nil
	}
	b := n.Input[2]
	switch {
	case c.constant(b) == nil:
		return shape{}, fmt.Errorf("its bias %q is not a constant", b)
	case op == "Gemm":
		_, err := c.perUnit(b, s, n)
		return s, err
	}
	if d := c.constant(b).Dims; len(d) != 1 || int(d[0]) != c.units {
		return shape{}, fmt.Errorf("its bias %q is %v, want [%d]", b, d, c.units)
	}
	return s, c.edit(b, 0, 1)
}

func defaultDomain(n *pb.NodeProto) bool { return n.GetDomain() == "" || n.GetDomain() == "ai.onnx" }

// weight is the constant behind a layer's weight input: the input itself,
// or the input of a Transpose that only this layer reads (PyTorch exports a
// bias-free Linear as Transpose(W) -> MatMul).
type weight struct {
	name string
	dims []int64 // of the weight as the layer sees it
	perm []int64 // the Transpose's permutation, or nil
}

// axis maps an axis of the weight as the layer sees it to the tensor's.
func (w weight) axis(a int) int {
	if w.perm == nil {
		return a
	}
	return int(w.perm[a])
}

// weight finds the constant behind value; its name is "" when there is none.
func (c *chain) weight(value string) weight {
	if t := c.constant(value); t != nil {
		return weight{name: value, dims: t.Dims}
	}
	ix := c.p.ix
	i, ok := ix.Producer[value]
	if !ok {
		return weight{}
	}
	n := c.p.g.Node[i]
	if n.GetOpType() != "Transpose" || !defaultDomain(n) || len(n.Input) != 1 ||
		len(ix.Consumers[value]) != 1 || c.p.outputs[value] || c.p.inner[value] {
		return weight{}
	}
	t := c.constant(n.Input[0])
	if t == nil {
		return weight{}
	}
	rank := len(t.Dims)
	perm := onnx.AttrInts(n, "perm", nil)
	if perm == nil {
		for a := rank - 1; a >= 0; a-- {
			perm = append(perm, int64(a))
		}
	}
	if len(perm) != rank {
		return weight{}
	}
	seen := make([]bool, rank)
	dims := make([]int64, rank)
	for i, a := range perm {
		if a < 0 || a >= int64(rank) || seen[a] {
			return weight{}
		}
		seen[a] = true
		dims[i] = t.Dims[a]
	}
	return weight{name: n.Input[0], dims: dims, perm: perm}
}

// constant returns the constant tensor called name, or nil.
func (c *chain) constant(name string) *pb.TensorProto { return c.p.ix.Tensor(name) }

// carry marks value v as holding the units.
func (c *chain) carry(v string, s shape) error {
	switch {
	case c.p.outputs[v]:
		return fmt.Errorf("its units reach graph output %q", v)
	case c.p.inner[v]:
		return fmt.Errorf("its units are read inside a subgraph (%q)", v)
	}
	c.values[v] = s
	for _, j := range c.p.ix.Consumers[v] {
		c.last = max(c.last, c.p.pos[j])
	}
	return nil
}

// edit schedules the permutation of a constant along axis in blocks of
// block indices. The constant must be read by one node only, the one that
// the units pass.
func (c *chain) edit(name string, axis, block int) error {
	t := c.constant(name)
	ix := c.p.ix
	if len(ix.Consumers[name]) != 1 || c.p.inner[name] || c.p.outputs[name] {
		return fmt.Errorf("tensor %q is also read elsewhere", name)
	}
	if err := onnx.CheckTensor(t); err != nil {
		return err
	}
	if t.RawData == nil && typedField(t.GetDataType()) == "" || t.RawData != nil && onnx.ElemSize(t.GetDataType()) == 0 {
		return fmt.Errorf("tensor %q has dtype %s", name, onnx.DTypeName(t.GetDataType()))
	}
	if c.edited[t] {
		return fmt.Errorf("tensor %q would be permuted twice", name)
	}
	if k, _ := onnx.NumElements(t.Dims); k == 0 {
		return nil // nothing to move
	}
	c.edited[t] = true
	c.edits = append(c.edits, edit{t: t, axis: axis, block: block})
	return nil
}

// perUnit schedules the edit of a constant that node n combines elementwise
// with units held as s, following numpy broadcasting, and returns the shape
// of the result. The constant's axis facing the units must hold one value
// per unit or one for all.
func (c *chain) perUnit(name string, s shape, n *pb.NodeProto) (shape, error) {
	d := c.constant(name).Dims
	r := len(d)
	if s.flat {
		if r > 2 || r >= 1 && d[r-1] != 1 {
			return s, fmt.Errorf("constant %q %v of %s meets flattened units", name, d, n.GetOpType())
		}
		return s, nil
	}
	if a := r - 1 - s.k; a >= 0 {
		switch int(d[a]) {
		case 1:
		case c.units:
			if err := c.edit(name, a, 1); err != nil {
				return s, err
			}
		default:
			return s, fmt.Errorf("constant %q %v of %s does not broadcast over %d units", name, d, n.GetOpType(), c.units)
		}
	}
	if s.rank >= 0 && r > s.rank {
		s.rank = r
	}
	return s, nil
}

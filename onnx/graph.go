package onnx

import (
	"fmt"

	"github.com/hyperrep/hyperrep/onnx/pb"
)

// Index answers who produces and who consumes each value of a graph, and which
// values are constant tensors (initializers or Constant nodes).
type Index struct {
	Graph     *pb.GraphProto
	Order     []int                      // node indices in topological order
	Producer  map[string]int             // value name -> index of the node that outputs it
	Consumers map[string][]int           // value name -> indices of nodes that read it, in Order
	Init      map[string]*pb.TensorProto // initializers by name
	Const     map[string]*pb.TensorProto // Constant nodes' value tensors by output name
}

// NewIndex indexes g. It fails when the graph has a cycle or a value produced
// twice.
func NewIndex(g *pb.GraphProto) (*Index, error) {
	ix := &Index{
		Graph:     g,
		Producer:  map[string]int{},
		Consumers: map[string][]int{},
		Init:      map[string]*pb.TensorProto{},
		Const:     map[string]*pb.TensorProto{},
	}
	for _, t := range g.GetInitializer() {
		ix.Init[t.GetName()] = t
	}
	for i, n := range g.GetNode() {
		for _, out := range n.GetOutput() {
			if out == "" {
				continue
			}
			if j, dup := ix.Producer[out]; dup {
				return nil, formatErr("value %q is output by node %d and node %d", out, j, i)
			}
			ix.Producer[out] = i
		}
		if n.GetOpType() == "Constant" && n.GetDomain() == "" && len(n.GetOutput()) == 1 {
			for _, a := range n.GetAttribute() {
				if a.GetName() == "value" && a.T != nil {
					ix.Const[n.GetOutput()[0]] = a.T
				}
			}
		}
	}
	order, err := topoOrder(g, ix.Producer)
	if err != nil {
		return nil, err
	}
	ix.Order = order
	for _, i := range order {
		seen := map[string]bool{}
		for _, in := range g.Node[i].GetInput() {
			if in != "" && !seen[in] {
				seen[in] = true
				ix.Consumers[in] = append(ix.Consumers[in], i)
			}
		}
	}
	return ix, nil
}

// Tensor returns the constant tensor named name, an initializer or a Constant
// node's value, or nil.
func (ix *Index) Tensor(name string) *pb.TensorProto {
	if t, ok := ix.Init[name]; ok {
		return t
	}
	return ix.Const[name]
}

// topoOrder sorts nodes so that each comes after the producers of its inputs,
// keeping file order among nodes that are ready together (Kahn's algorithm
// with the smallest ready index first). Values nobody produces are graph
// inputs, initializers or outer-scope values.
func topoOrder(g *pb.GraphProto, producer map[string]int) ([]int, error) {
	nodes := g.GetNode()
	waiting := make([]int, len(nodes))
	users := make([][]int, len(nodes))
	for i, n := range nodes {
		for _, name := range nodeInputs(n) {
			if p, ok := producer[name]; ok {
				waiting[i]++
				users[p] = append(users[p], i)
			}
		}
	}
	var ready minHeap
	for i := range nodes {
		if waiting[i] == 0 {
			ready.push(i)
		}
	}
	order := make([]int, 0, len(nodes))
	for len(ready) > 0 {
		i := ready.pop()
		order = append(order, i)
		for _, u := range users[i] {
			if waiting[u]--; waiting[u] == 0 {
				ready.push(u)
			}
		}
	}
	if len(order) != len(nodes) {
		for i := range nodes {
			if waiting[i] > 0 {
				return nil, formatErr("graph has a cycle through node %d (%s %q)", i, nodes[i].GetOpType(), nodes[i].GetName())
			}
		}
	}
	return order, nil
}

// nodeInputs lists the values a node reads, including the outer-scope values
// read by the subgraphs in its attributes.
func nodeInputs(n *pb.NodeProto) []string {
	var out []string
	for _, in := range n.GetInput() {
		if in != "" {
			out = append(out, in)
		}
	}
	for _, a := range n.GetAttribute() {
		if a.G != nil {
			out = append(out, outerInputs(a.G)...)
		}
		for _, sg := range a.Graphs {
			out = append(out, outerInputs(sg)...)
		}
	}
	return out
}

// outerInputs lists the values a subgraph reads that it does not define.
func outerInputs(g *pb.GraphProto) []string {
	defined := map[string]bool{}
	for _, v := range g.GetInput() {
		defined[v.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		defined[t.GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			defined[o] = true
		}
	}
	var out []string
	for _, n := range g.GetNode() {
		for _, in := range nodeInputs(n) {
			if !defined[in] {
				out = append(out, in)
			}
		}
	}
	return out
}

type minHeap []int

func (h *minHeap) push(x int) {
	*h = append(*h, x)
	for i := len(*h) - 1; i > 0; {
		p := (i - 1) / 2
		if (*h)[p] <= (*h)[i] {
			break
		}
		(*h)[p], (*h)[i] = (*h)[i], (*h)[p]
		i = p
	}
}

func (h *minHeap) pop() int {
	old := *h
	top := old[0]
	last := len(old) - 1
	old[0] = old[last]
	*h = old[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && (*h)[l] < (*h)[m] {
			m = l
		}
		if r < last && (*h)[r] < (*h)[m] {
			m = r
		}
		if m == i {
			break
		}
		(*h)[m], (*h)[i] = (*h)[i], (*h)[m]
		i = m
	}
	return top
}

// Attribute helpers: each returns def when the node lacks the attribute.

// AttrInt returns the int attribute name of n.
func AttrInt(n *pb.NodeProto, name string, def int64) int64 {
	if a := attr(n, name); a != nil {
		return a.GetI()
	}
	return def
}

// AttrInts returns the ints attribute name of n.
func AttrInts(n *pb.NodeProto, name string, def []int64) []int64 {
	if a := attr(n, name); a != nil {
		return a.GetInts()
	}
	return def
}

// AttrFloat returns the float attribute name of n.
func AttrFloat(n *pb.NodeProto, name string, def float32) float32 {
	if a := attr(n, name); a != nil {
		return a.GetF()
	}
	return def
}

// AttrString returns the string attribute name of n.
func AttrString(n *pb.NodeProto, name string, def string) string {
	if a := attr(n, name); a != nil {
		return string(a.GetS())
	}
	return def
}

func attr(n *pb.NodeProto, name string) *pb.AttributeProto {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

// describe names a node for messages: its name, or its op type and index.
func describe(g *pb.GraphProto, i int) string {
	n := g.Node[i]
	if n.GetName() != "" {
		return n.GetName()
	}
	return fmt.Sprintf("%s_%d", n.GetOpType(), i)
}

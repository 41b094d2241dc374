package zoo

import (
	"slices"
	"sort"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// concatPaddedSlices rewrites Sum(Pad(a₀), ..., Pad(aₙ₋₁)), where the
// Pads put inputs of length one side by side along one axis and together
// fill it, into Concat(a₀, ..., aₙ₋₁). autodiff writes the gradient of
// each Slice of a tensor as a zero-padded copy of the full tensor and sums
// them; for the four pooling phases of a population's convolutions that is
// four full writes and a four-way sum where one Concat does.
//
// The graph carries no shapes of gradients, so a piece's length is read
// from its padding: n pieces padded by begin+end = n-1 each, starting at 0,
// ..., n-1, are taken to be of length one. That holds for the gradient
// graphs of populations, whose only Slices on a differentiated path are
// the unit-length pooling phases; the equivalence tests compare gradients
// with and without the rewrite. It returns how many Sums it rewrote.
func concatPaddedSlices(g *pb.GraphProto) int {
	consumers := map[string]int{}
	producer := map[string]*pb.NodeProto{}
	for _, n := range g.Node {
		for _, in := range n.Input {
			consumers[in]++
		}
		for _, o := range n.Output {
			producer[o] = n
		}
	}
	for _, o := range g.Output {
		consumers[o.GetName()]++
	}
	inits := map[string]*pb.TensorProto{}
	for _, t := range g.Initializer {
		inits[t.GetName()] = t
	}
	dead := map[*pb.NodeProto]bool{}
	rewritten := 0
	for _, n := range g.Node {
		if n.GetOpType() != "Sum" || len(n.Input) < 2 || n.GetDomain() != "" {
			continue
		}
		type piece struct {
			in         string
			begin, end int64
		}
		var pieces []piece
		axis := -1
		ok := true
		for _, in := range n.Input {
			p := producer[in]
			if p == nil || p.GetOpType() != "Pad" || consumers[in] != 1 || len(p.Input) < 2 || len(p.Input) > 2 && p.Input[2] != "" ||
				onnx.AttrString(p, "mode", "constant") != "constant" || inits[p.Input[1]] == nil {
				ok = false
				break
			}
			pads, err := onnx.Int64s(inits[p.Input[1]])
			if err != nil || len(pads)%2 != 0 {
				ok = false
				break
			}
			rank := len(pads) / 2
			for i := range rank {
				if pads[i] == 0 && pads[rank+i] == 0 {
					continue
				}
				if axis >= 0 && axis != i || pads[i] < 0 || pads[rank+i] < 0 {
					ok = false
				}
				axis = i
			}
			if axis < 0 || !ok {
				ok = false
				break
			}
			pieces = append(pieces, piece{p.Input[0], pads[axis], pads[rank+axis]})
		}
		if !ok || len(pieces) != len(n.Input) {
			continue
		}
		if !unitTiles(func(i int) (int64, int64) { return pieces[i].begin, pieces[i].end }, len(pieces)) {
			continue
		}
		sort.Slice(pieces, func(i, j int) bool { return pieces[i].begin < pieces[j].begin })
		for _, in := range n.Input {
			dead[producer[in]] = true
		}
		inputs := make([]string, len(pieces))
		for i, p := range pieces {
			inputs[i] = p.in
		}
		n.OpType = ptr("Concat")
		n.Input = inputs
		n.Attribute = []*pb.AttributeProto{onnx.Int("axis", int64(axis))}
		rewritten++
	}
	g.Node = slices.DeleteFunc(g.Node, func(n *pb.NodeProto) bool { return dead[n] })
	return rewritten
}

// unitTiles reports whether n pieces of length one, piece i padded by
// begin(i) before and end(i) after, fill an axis of n: each is padded by
// n-1 in all and the begins are 0, ..., n-1 in some order.
func unitTiles(at func(i int) (begin, end int64), n int) bool {
	seen := make([]bool, n)
	for i := range n {
		b, e := at(i)
		if b+e != int64(n-1) || b < 0 || b >= int64(n) || seen[b] {
			return false
		}
		seen[b] = true
	}
	return n >= 2
}

func ptr[T any](v T) *T { return &v }

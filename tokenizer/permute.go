package tokenizer

import (
	"github.com/hyperrep/hyperrep/internal/rng"

	"fmt"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// PermuteResult says what Permute did with one layer.
type PermuteResult struct {
	Layer    string // the layer's name, as in Layout
	Op       string
	Units    int // output units; 0 when not known
	Permuted bool
	Reason   string // why the layer was left as it was, when not permuted
}

// Permute returns a copy of m with the hidden units of its layers permuted
// at random, in a way that leaves the function the model computes unchanged:
// a layer's output units are reordered (its weight along the unit axis, its
// bias, the normalisation and per-unit constants that follow it) and so are
// the input units of the layers that read them.
//
// A Conv, ConvTranspose, Gemm or MatMul layer is permuted when everything
// between it and the next such layers is known to treat units one by one:
// elementwise activations, Dropout, pooling, BatchNormalization,
// InstanceNormalization and LayerNormalization over the units, Add, Sub,
// Mul, Div, Pow, PRelu, Max and Min with a constant per unit or for all
// units (or with the units themselves, as in x*sigmoid(x)), and Flatten, or
// Reshape to the constant shape [0, -1], in front of a Gemm or MatMul (a
// channel then being a block of features). The units may reach several next
// layers. A layer is left as it is when its units reach a graph output, meet
// values from elsewhere (a residual connection), feed or come from a grouped
// convolution, share a tensor with other nodes, or pass through anything
// else; PermuteLayers says which and why. Weights read through a Transpose
// (as PyTorch exports a Linear without bias) are permuted too.
//
// The permutations are drawn, layer by layer in the order of Layout, from a
// SplitMix64 generator seeded with seed, which this package implements
// itself: a seed gives the same result with every Go version. Each
// permutation is uniform over all orders, the identity included.
func Permute(m *onnx.Model, seed int64) (*onnx.Model, error) {
	out, _, err := PermuteLayers(m, seed)
	return out, err
}

// PermuteLayers is Permute, also reporting on every Conv, ConvTranspose,
// Gemm and MatMul layer whether it was permuted.
func PermuteLayers(m *onnx.Model, seed int64) (*onnx.Model, []PermuteResult, error) {
	if m == nil || m.Proto == nil {
		return nil, nil, fmt.Errorf("tokenizer: no model to permute")
	}
	out := m.Clone()
	p, err := newPermuter(out)
	if err != nil {
		return nil, nil, err
	}
	layers, err := onnx.Layers(out.Graph())
	if err != nil {
		return nil, nil, err
	}
	rng := rng.New(uint64(seed))
	var res []PermuteResult
	for _, l := range layers {
		if !hasUnits[l.Op] || l.Node < 0 || l.Params[0].Role == onnx.RoleOther {
			continue
		}
		r := PermuteResult{Layer: l.Name, Op: l.Op}
		c, err := p.follow(l.Node)
		if c != nil {
			r.Units = c.units
		}
		if err != nil {
			r.Reason = err.Error()
		} else {
			c.apply(rng.Perm(c.units))
			r.Permuted = true
		}
		res = append(res, r)
	}
	return out, res, nil
}

// hasUnits lists the ops whose output units Permute reorders.
var hasUnits = map[string]bool{"Conv": true, "ConvTranspose": true, "Gemm": true, "MatMul": true}

// An edit reorders a tensor along an axis: for a permutation p, the block
// of values at position j along the axis becomes the one at p[j]. A block is
// one index, or several for a Gemm reading a flattened channel.
type edit struct {
	t     *pb.TensorProto
	axis  int
	block int
}

// apply permutes every tensor the chain touches.
func (c *chain) apply(perm []int) {
	for _, e := range c.edits {
		permuteAxis(e.t, e.axis, e.block, perm)
	}
}

// permuteAxis reorders t along axis in blocks of block indices, in whatever
// field holds its data. The tensor has been checked.
func permuteAxis(t *pb.TensorProto, axis, block int, perm []int) {
	outer, inner := 1, block
	for i, d := range t.Dims {
		switch {
		case i < axis:
			outer *= int(d)
		case i > axis:
			inner *= int(d)
		}
	}
	if t.RawData != nil {
		shuffle(t.RawData, outer, inner*onnx.ElemSize(t.GetDataType()), perm)
		return
	}
	switch typedField(t.GetDataType()) {
	case "float_data":
		shuffle(t.FloatData, outer, inner, perm)
	case "double_data":
		shuffle(t.DoubleData, outer, inner, perm)
	case "int64_data":
		shuffle(t.Int64Data, outer, inner, perm)
	case "uint64_data":
		shuffle(t.Uint64Data, outer, inner, perm)
	case "int32_data":
		shuffle(t.Int32Data, outer, inner, perm)
	}
}

// typedField names the field that holds a dtype's values when raw_data is
// not used (onnx.proto), or "" for those Permute leaves alone.
func typedField(dtype int32) string {
	switch dtype {
	case onnx.Float:
		return "float_data"
	case onnx.Double:
		return "double_data"
	case onnx.Int64:
		return "int64_data"
	case onnx.Uint32, onnx.Uint64:
		return "uint64_data"
	case onnx.Int32, onnx.Int16, onnx.Int8, onnx.Uint16, onnx.Uint8, onnx.Bool, onnx.Float16, onnx.BFloat16:
		return "int32_data"
	}
	return ""
}

// shuffle reorders each of outer runs of len(perm) blocks of n elements.
func shuffle[T any](data []T, outer, n int, perm []int) {
	run := len(perm) * n
	tmp := make([]T, run)
	for o := 0; o < outer; o++ {
		s := data[o*run : (o+1)*run]
		for j, p := range perm {
			copy(tmp[j*n:(j+1)*n], s[p*n:(p+1)*n])
		}
		copy(s, tmp)
	}
}

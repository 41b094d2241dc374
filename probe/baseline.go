package probe

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/hyperrep/hyperrep/onnx"
)

// The kinds of Baseline, which are also their names as representations.
const (
	Stats   = "stats"   // s(W): per-layer statistics of the weights
	Weights = "weights" // W: the weights themselves
)

// statNames are the statistics of one block of s(W), in order.
var statNames = []string{"mean", "var", "p0", "p25", "p50", "p75", "p100"}

// Baseline computes a baseline representation of models of one
// architecture; a model of another architecture is an error, since its
// features would not mean what the probes learnt.
//
// Stats, s(W) of Unterthiner et al. (2020): for every layer of onnx.Layers
// and every role its tensors have (weight, bias; also scale, running
// statistics and recurrence where a layer has them), in the order the
// roles first appear in the layer, seven values over all of that role's
// values: the mean, the variance (population: divided by the count), and
// the 0th, 25th, 50th, 75th and 100th percentiles, with linear
// interpolation between the sorted values as numpy's percentile does by
// default (the q-th percentile of n sorted values v is v[h] interpolated at
// h = (n−1)·q/100).
//
// Weights, W: every weight value, layer by layer and tensor by tensor in
// the order of onnx.Layers, each tensor output unit by output unit (its unit
// axis moved to the front, as the tokenizer does). That order does not
// depend on how an exporter stored a tensor (a Gemm weight with or without
// transB, a MatMul weight, a bias in a separate Add), so models of one
// architecture from different frameworks give the same features.
type Baseline struct {
	Kind string `json:"kind"` // Stats or Weights
	// Blocks are the groups of weights the features come from; a model
	// must have the same ones to be represented.
	Blocks []Block `json:"blocks"`
}

// Block is a group of weight values of a layer: for Stats all the values of
// one role, Shape [count]; for Weights one tensor, Shape [units, values per
// unit].
type Block struct {
	Layer int       `json:"layer"`
	Role  onnx.Role `json:"role"`
	Shape []int     `json:"shape"`
}

func (b Block) String() string {
	s := make([]string, len(b.Shape))
	for i, d := range b.Shape {
		s[i] = fmt.Sprint(d)
	}
	return fmt.Sprintf("layer %d %s [%s]", b.Layer, b.Role, strings.Join(s, "×"))
}

// NewBaseline returns the baseline of the given kind for models with the
// architecture of ref.
func NewBaseline(kind string, ref *onnx.Model) (*Baseline, error) {
	var (
		blocks []Block
		err    error
	)
	switch kind {
	case Stats:
		blocks, _, err = statBlocks(ref)
	case Weights:
		blocks, _, err = weightBlocks(ref)
	default:
		return nil, fmt.Errorf("probe: baseline %q, want %q or %q", kind, Stats, Weights)
	}
	if err != nil {
		return nil, err
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("probe: %s: the model has no weights", kind)
	}
	return &Baseline{Kind: kind, Blocks: blocks}, nil
}

// Len is the number of features of a model.
func (b *Baseline) Len() int {
	n := 0
	for _, bl := range b.Blocks {
		if b.Kind == Stats {
			n += len(statNames)
			continue
		}
		n += bl.Shape[0] * bl.Shape[1]
	}
	return n
}

// Columns names the features, e.g. "L0.weight.p25" for Stats and
// "L0.weight[3,17]" (unit 3, value 17 of the unit) for Weights.
func (b *Baseline) Columns() []string {
	var out []string
	for _, bl := range b.Blocks {
		if b.Kind == Stats {
			for _, s := range statNames {
				out = append(out, fmt.Sprintf("L%d.%s.%s", bl.Layer, bl.Role, s))
			}
			continue
		}
		for r := 0; r < bl.Shape[0]; r++ {
			for c := 0; c < bl.Shape[1]; c++ {
				out = append(out, fmt.Sprintf("L%d.%s[%d,%d]", bl.Layer, bl.Role, r, c))
			}
		}
	}
	return out
}

// Append appends the features of m to dst, or reports how m's weights
// differ from the baseline's architecture.
func (b *Baseline) Append(dst []float64, m *onnx.Model) ([]float64, error) {
	var (
		blocks []Block
		values [][]float64
		err    error
	)
	switch b.Kind {
	case Stats:
		blocks, values, err = statBlocks(m)
	case Weights:
		blocks, values, err = weightBlocks(m)
	default:
		return dst, fmt.Errorf("probe: baseline %q, want %q or %q", b.Kind, Stats, Weights)
	}
	if err != nil {
		return dst, err
	}
	if len(blocks) != len(b.Blocks) {
		return dst, fmt.Errorf("probe: %s: the model has %d blocks of weights, want %d (another architecture)", b.Kind, len(blocks), len(b.Blocks))
	}
	for i := range blocks {
		if blocks[i].Layer != b.Blocks[i].Layer || blocks[i].Role != b.Blocks[i].Role || !slices.Equal(blocks[i].Shape, b.Blocks[i].Shape) {
			return dst, fmt.Errorf("probe: %s: block %d of the model is %v, want %v (another architecture)", b.Kind, i, blocks[i], b.Blocks[i])
		}
	}
	for _, v := range values {
		if b.Kind == Stats {
			dst = appendStats(dst, v)
		} else {
			dst = append(dst, v...)
		}
	}
	return dst, nil
}

// statBlocks groups the weight values of m by layer and role.
func statBlocks(m *onnx.Model) ([]Block, [][]float64, error) {
	if m == nil || m.Proto == nil {
		return nil, nil, fmt.Errorf("probe: no model")
	}
	layers, err := m.Layers()
	if err != nil {
		return nil, nil, err
	}
	var (
		blocks []Block
		values [][]float64
	)
	for i, l := range layers {
		first := len(blocks)
		for _, p := range l.Params {
			v, err := onnx.Float64s(p.Tensor)
			if err != nil {
				return nil, nil, fmt.Errorf("probe: %s: %w", p.Name, err)
			}
			k := slices.IndexFunc(blocks[first:], func(b Block) bool { return b.Role == p.Role })
			if k < 0 {
				blocks = append(blocks, Block{Layer: i, Role: p.Role, Shape: []int{0}})
				values = append(values, nil)
				k = len(blocks) - 1 - first
			}
			blocks[first+k].Shape[0] += len(v)
			values[first+k] = append(values[first+k], v...)
		}
	}
	// A block without values has no statistics; it cannot be a feature.
	for i, v := range values {
		if len(v) == 0 {
			return nil, nil, fmt.Errorf("probe: stats: %v has no values", blocks[i])
		}
	}
	return blocks, values, nil
}

// weightBlocks lists the weight tensors of m, each with its values
// unit-major: the unit axis moved to the front and the other axes flattened
// in row-major order, as the tokenizer lays out a tensor's rows.
func weightBlocks(m *onnx.Model) ([]Block, [][]float64, error) {
	if m == nil || m.Proto == nil {
		return nil, nil, fmt.Errorf("probe: no model")
	}
	layers, err := m.Layers()
	if err != nil {
		return nil, nil, err
	}
	var (
		blocks []Block
		values [][]float64
	)
	for i, l := range layers {
		for _, p := range l.Params {
			v, err := onnx.Float64s(p.Tensor)
			if err != nil {
				return nil, nil, fmt.Errorf("probe: %s: %w", p.Name, err)
			}
			units, rows := unitMajor(v, p.Dims, p.UnitAxis)
			blocks = append(blocks, Block{Layer: i, Role: p.Role, Shape: []int{units, len(v) / max(units, 1)}})
			values = append(values, rows)
		}
	}
	return blocks, values, nil
}

// unitMajor returns the number of units of a tensor with the given dims and
// its values v reordered with the unit axis first. A scalar has one unit; a
// unit axis the tensor does not have is taken to be axis 0, as the
// tokenizer does.
func unitMajor(v []float64, dims []int64, axis int) (units int, out []float64) {
	if len(dims) == 0 {
		return 1, v
	}
	if axis < 0 || axis >= len(dims) {
		axis = 0
	}
	units = int(dims[axis])
	outer, inner := 1, 1
	for _, d := range dims[:axis] {
		outer *= int(d)
	}
	for _, d := range dims[axis+1:] {
		inner *= int(d)
	}
	if outer == 1 {
		return units, v // already unit-major
	}
	out = make([]float64, len(v))
	for o := 0; o < outer; o++ {
		for u := 0; u < units; u++ {
			copy(out[u*outer*inner+o*inner:][:inner], v[(o*units+u)*inner:][:inner])
		}
	}
	return units, out
}

// appendStats appends the seven statistics of v (at least one value).
func appendStats(dst, v []float64) []float64 {
	n := float64(len(v))
	mean := 0.0
	for _, x := range v {
		mean += x
	}
	mean /= n
	variance := 0.0
	for _, x := range v {
		variance += (x - mean) * (x - mean)
	}
	variance /= n
	s := slices.Sorted(slices.Values(v))
	dst = append(dst, mean, variance)
	for _, q := range []float64{0, 25, 50, 75, 100} {
		dst = append(dst, percentile(s, q))
	}
	return dst
}

// percentile is the q-th percentile of sorted values s, interpolated
// linearly as numpy.percentile does by default.
func percentile(s []float64, q float64) float64 {
	h := float64(len(s)-1) * q / 100
	lo := math.Floor(h)
	i := int(lo)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (h-lo)*(s[i+1]-s[i])
}

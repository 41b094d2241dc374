package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// Layout says where each weight value of a model sits among its tokens. It
// is what Detokenize checks a template against, and it is stored as JSON
// beside the tokens.
type Layout struct {
	Layers []Layer `json:"layers"`
}

// Layer is a weight-bearing layer of the model, with the normalisation layer
// merged into it if any (see the package documentation).
type Layer struct {
	Name    string   `json:"name"` // onnx.Layer.Name of the layer
	Op      string   `json:"op"`
	Rows    int      `json:"rows"` // rows of all its tensors together
	Tensors []Tensor `json:"tensors"`
}

// Tensor places one weight tensor in its layer's rows: unit u of the tensor
// is row Row+u of the layer, where its PerRow values start at column Offset
// of the row. Tensors sharing a Row share their rows.
type Tensor struct {
	Name     string    `json:"name"` // the initializer, or the Constant node's output
	Role     onnx.Role `json:"role"`
	Dims     []int64   `json:"dims"`
	DType    int32     `json:"dtype"`     // onnx.proto's TensorProto.DataType
	UnitAxis int       `json:"unit_axis"` // the axis moved to the front
	Units    int       `json:"units"`     // Dims[UnitAxis], or 1 for a scalar
	Row      int       `json:"row"`
	Offset   int       `json:"offset"`
	PerRow   int       `json:"per_row"` // the product of the other dims
}

// ErrMismatch is matched (errors.Is) by the errors Detokenize returns when
// tokens do not fit the template.
var ErrMismatch = errors.New("tokenizer: tokens do not fit the template")

func mismatch(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMismatch}, args...)...)
}

// plan is the layout of a model together with the tensors it places, in the
// same order.
type plan struct {
	layout  Layout
	tensors [][]*pb.TensorProto
}

// mergeInto lists the ops that BatchNormalization and LayerNormalization
// layers are merged into.
var mergeInto = map[string]bool{"Conv": true, "ConvTranspose": true, "Gemm": true, "MatMul": true}

// newPlan lays out the weights of g.
func newPlan(g *pb.GraphProto) (*plan, error) {
	layers, err := onnx.Layers(g)
	if err != nil {
		return nil, err
	}
	units := make([]int64, len(layers))
	for i, l := range layers {
		_, units[i], _ = unitsOf(l.Params[0])
	}
	// extra[i] lists the normalisation layers merged into layer i.
	extra := map[int][]int{}
	merged := make([]bool, len(layers))
	for i, l := range layers {
		if (l.Op == "BatchNormalization" || l.Op == "LayerNormalization") && l.Input >= 0 &&
			mergeInto[layers[l.Input].Op] && perUnit(l.Params, units[l.Input]) {
			extra[l.Input] = append(extra[l.Input], i)
			merged[i] = true
		}
	}
	p := &plan{}
	for i, l := range layers {
		if merged[i] {
			continue
		}
		params := slices.Clone(l.Params)
		for _, j := range extra[i] {
			params = append(params, layers[j].Params...)
		}
		pl, ts, err := layoutLayer(l, params)
		if err != nil {
			return nil, err
		}
		p.layout.Layers = append(p.layout.Layers, pl)
		p.tensors = append(p.tensors, ts)
	}
	return p, nil
}

// perUnit reports whether every tensor holds exactly one value per unit of
// an n-unit layer.
func perUnit(params []onnx.Param, n int64) bool {
	for _, p := range params {
		_, u, per := unitsOf(p)
		if u != n || per != 1 {
			return false
		}
	}
	return true
}

// unitsOf returns the unit axis a tensor's rows run along, its unit count
// and the number of values per unit. A scalar is one unit of one value;
// perRow is -1 when the other dims hold too many values to count.
func unitsOf(p onnx.Param) (axis int, units, perRow int64) {
	d := p.Dims
	if len(d) == 0 {
		return 0, 1, 1
	}
	axis = p.UnitAxis
	if p.Role == onnx.RoleOther || axis < 0 || axis >= len(d) {
		axis = 0
	}
	rest := append(slices.Clone(d[:axis]), d[axis+1:]...)
	n, err := onnx.NumElements(rest)
	if err != nil {
		n = -1
	}
	return axis, d[axis], n
}

// layoutLayer places a layer's tensors: those with as many units as the
// first share its rows, each other one gets rows of its own after them.
func layoutLayer(l onnx.Layer, params []onnx.Param) (Layer, []*pb.TensorProto, error) {
	out := Layer{Name: l.Name, Op: l.Op}
	ts := make([]*pb.TensorProto, 0, len(params))
	_, main, _ := unitsOf(params[0])
	offset := 0 // the main rows' length so far
	var own []onnx.Param
	add := func(p onnx.Param, row, off int) (int, error) {
		axis, units, per := unitsOf(p)
		if per < 0 || units > math.MaxInt32 || per > math.MaxInt32 || int64(off)+per > math.MaxInt32 {
			return 0, fmt.Errorf("tokenizer: tensor %q: %v is too large to lay out in rows", p.Name, p.Dims)
		}
		out.Tensors = append(out.Tensors, Tensor{Name: p.Name, Role: p.Role, Dims: slices.Clone(p.Dims),
			DType: p.DType, UnitAxis: axis, Units: int(units), Row: row, Offset: off, PerRow: int(per)})
		ts = append(ts, p.Tensor)
		return off + int(per), nil
	}
	var err error
	for _, p := range params {
		if _, units, _ := unitsOf(p); units != main {
			own = append(own, p)
			continue
		}
		if offset, err = add(p, 0, offset); err != nil {
			return Layer{}, nil, err
		}
	}
	rows := main
	for _, p := range own {
		if _, err = add(p, int(rows), 0); err != nil {
			return Layer{}, nil, err
		}
		_, units, _ := unitsOf(p)
		rows += units
		if rows > math.MaxInt32 {
			return Layer{}, nil, fmt.Errorf("tokenizer: layer %q has %d rows, too many to number", l.Name, rows)
		}
	}
	out.Rows = int(rows)
	return out, ts, nil
}

// group is a run of a layer's rows that hold the same tensors: the layer's
// main rows, or the rows of one tensor of its own. Consecutive tensors with
// the same Row and Units share a group; other tensors can share a Row only
// when one of them has no units, and then the groups have no rows.
type group struct {
	tensors []Tensor
	row     int // the layer row it starts at
	rows    int
	length  int // values per row
}

// groups splits a layer into its groups of rows.
func (l *Layer) groups() []group {
	var gs []group
	for i := 0; i < len(l.Tensors); {
		j := i
		g := group{row: l.Tensors[i].Row, rows: l.Tensors[i].Units}
		for ; j < len(l.Tensors) && l.Tensors[j].Row == g.row && l.Tensors[j].Units == g.rows; j++ {
			g.length = max(g.length, l.Tensors[j].Offset+l.Tensors[j].PerRow)
		}
		g.tensors = l.Tensors[i:j]
		gs = append(gs, g)
		i = j
	}
	return gs
}

// tokensPerRow is the number of tokens of width w a row of n values takes.
func tokensPerRow(n, w int) int { return (n + w - 1) / w }

// longestRow is the length of the longest row that has values.
func (lo *Layout) longestRow() int {
	n := 0
	for i := range lo.Layers {
		for _, g := range lo.Layers[i].groups() {
			if g.rows > 0 {
				n = max(n, g.length)
			}
		}
	}
	return n
}

// maxTokens bounds the token count so that token indices fit positions'
// int32.
const maxTokens = math.MaxInt32

// numTokens is the number of tokens of width w the layout needs.
func (lo *Layout) numTokens(w int) (int, error) {
	n := 0
	for i := range lo.Layers {
		for _, g := range lo.Layers[i].groups() {
			n += g.rows * tokensPerRow(g.length, w)
			if n > maxTokens {
				return 0, fmt.Errorf("tokenizer: more than %d tokens of width %d", maxTokens, w)
			}
		}
	}
	return n, nil
}

// compare returns the first difference between the layout of tokens (lo)
// and that of a template (want), or nil.
func (lo *Layout) compare(want *Layout) error {
	if len(lo.Layers) != len(want.Layers) {
		return mismatch("%d layers in the tokens, %d in the template", len(lo.Layers), len(want.Layers))
	}
	for i := range lo.Layers {
		a, b := &lo.Layers[i], &want.Layers[i]
		if a.Name != b.Name || a.Op != b.Op {
			return mismatch("layer %d is %q (%s) in the tokens, %q (%s) in the template", i, a.Name, a.Op, b.Name, b.Op)
		}
		if len(a.Tensors) != len(b.Tensors) {
			return mismatch("layer %q has %d tensors in the tokens, %d in the template", a.Name, len(a.Tensors), len(b.Tensors))
		}
		for j := range a.Tensors {
			if err := a.Tensors[j].compare(&b.Tensors[j], a.Name, j); err != nil {
				return err
			}
		}
		if a.Rows != b.Rows {
			return mismatch("layer %q has %d rows in the tokens, %d in the template", a.Name, a.Rows, b.Rows)
		}
	}
	return nil
}

func (t *Tensor) compare(want *Tensor, layer string, j int) error {
	switch {
	case t.Name != want.Name:
		return mismatch("tensor %d of layer %q is %q in the tokens, %q in the template", j, layer, t.Name, want.Name)
	case !slices.Equal(t.Dims, want.Dims):
		return mismatch("tensor %q is %v in the tokens, %v in the template", t.Name, t.Dims, want.Dims)
	case t.DType != want.DType:
		return mismatch("tensor %q is %s in the tokens, %s in the template", t.Name, onnx.DTypeName(t.DType), onnx.DTypeName(want.DType))
	case t.Role != want.Role:
		return mismatch("tensor %q has role %s in the tokens, %s in the template", t.Name, t.Role, want.Role)
	case t.UnitAxis != want.UnitAxis:
		return mismatch("tensor %q has unit axis %d in the tokens, %d in the template", t.Name, t.UnitAxis, want.UnitAxis)
	case t.Units != want.Units || t.PerRow != want.PerRow:
		return mismatch("tensor %q has %d rows of %d values in the tokens, %d of %d in the template", t.Name, t.Units, t.PerRow, want.Units, want.PerRow)
	case t.Row != want.Row || t.Offset != want.Offset:
		return mismatch("tensor %q starts at row %d, column %d in the tokens, row %d, column %d in the template", t.Name, t.Row, t.Offset, want.Row, want.Offset)
	}
	return nil
}

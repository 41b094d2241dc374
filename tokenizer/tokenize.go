package tokenizer

import (
	"fmt"

	"github.com/hyperrep/hyperrep/onnx"
)

// MaxAutoTokenSize caps the token width Tokenize picks by itself: longer rows
// take several tokens.
const MaxAutoTokenSize = 256

// Options configure Tokenize.
type Options struct {
	// TokenSize is the token width W. Zero picks the length of the longest
	// row, capped at MaxAutoTokenSize.
	TokenSize int
}

// Tokens is a model's weights as T tokens of Width values (see the package
// documentation for the order).
type Tokens struct {
	Width     int
	Values    []float32 // [T*Width], zero where Mask is 0
	Mask      []uint8   // [T*Width], 1 where a weight value sits
	Positions []int32   // [T*3]: global token index, layer index, row index
	// Exact is nil unless the model has float64 weights; then it holds every
	// value at the same index as Values, exactly. Detokenize uses a value of
	// Exact only where it rounds to the one in Values, so that an edit of
	// Values alone is not undone.
	Exact  []float64
	Layout Layout
}

// Len is the number of tokens T.
func (t *Tokens) Len() int { return len(t.Positions) / 3 }

// Tokenize turns the weights of m into tokens. A model without weights gives
// no tokens.
func Tokenize(m *onnx.Model, opts Options) (*Tokens, error) {
	if opts.TokenSize < 0 {
		return nil, fmt.Errorf("tokenizer: token size %d, want 0 (automatic) or more", opts.TokenSize)
	}
	if m == nil || m.Proto == nil {
		return nil, fmt.Errorf("tokenizer: no model to tokenize")
	}
	p, err := newPlan(m.Graph())
	if err != nil {
		return nil, err
	}
	exact := false
	for _, ts := range p.tensors {
		for _, t := range ts {
			// Constant nodes' tensors are not checked when a model is read.
			if err := onnx.CheckTensor(t); err != nil {
				return nil, err
			}
			exact = exact || t.GetDataType() == onnx.Double
		}
	}
	w := opts.TokenSize
	if w == 0 {
		w = max(1, min(p.layout.longestRow(), MaxAutoTokenSize))
	}
	n, err := p.layout.numTokens(w)
	if err != nil {
		return nil, err
	}
	if n > 0 && w > maxValues/n {
		return nil, fmt.Errorf("tokenizer: %d tokens of width %d are too many values", n, w)
	}
	tok := &Tokens{
		Width:     w,
		Values:    make([]float32, n*w),
		Mask:      make([]uint8, n*w),
		Positions: make([]int32, 3*n),
		Layout:    p.layout,
	}
	if exact {
		tok.Exact = make([]float64, n*w)
	}
	buf, buf64 := make([]float32, chunk), make([]float64, chunk)
	p.walk(w, tok.fillRows, func(s span) { s.read(tok.Values, tok.Exact, buf, buf64) })
	return tok, nil
}

// maxValues bounds T*W, well above the largest models tokenized here, so
// that an absurd token width gives an error instead of an attempt to
// allocate terabytes.
const maxValues = 1 << 32

// fillRows sets the mask and positions of a group's tokens, which start at
// token start.
func (t *Tokens) fillRows(layer int, g group, start int) {
	w := t.Width
	per := tokensPerRow(g.length, w)
	if per == 0 {
		return // rows without values have no tokens, however many there are
	}
	for r := 0; r < g.rows; r++ {
		first := start + r*per
		for k := first; k < first+per; k++ {
			t.Positions[3*k] = int32(k)
			t.Positions[3*k+1] = int32(layer)
			t.Positions[3*k+2] = int32(g.row + r)
		}
		m := t.Mask[first*w : first*w+g.length]
		for i := range m {
			m[i] = 1
		}
	}
}

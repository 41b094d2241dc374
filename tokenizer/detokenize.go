package tokenizer

import (
	"fmt"

	"github.com/hyperrep/hyperrep/onnx"
)

// Detokenize writes the weights held by t into a copy of template, each in
// its tensor's own dtype and encoding; everything else is the template's.
// Tokenize followed by Detokenize on the same model gives a model equal to
// it. Values where Mask is 0 are ignored.
//
// The template must have the layout the tokens were made with: otherwise
// the error, which matches ErrMismatch, names the first difference.
func Detokenize(t *Tokens, template *onnx.Model) (*onnx.Model, error) {
	if t == nil || template == nil || template.Proto == nil {
		return nil, fmt.Errorf("tokenizer: detokenize needs tokens and a template")
	}
	p, err := newPlan(template.Graph())
	if err != nil {
		return nil, err
	}
	if err := t.Layout.compare(&p.layout); err != nil {
		return nil, err
	}
	for _, ts := range p.tensors {
		for _, tp := range ts {
			if err := onnx.CheckTensor(tp); err != nil {
				return nil, err
			}
		}
	}
	if err := t.check(p); err != nil {
		return nil, err
	}
	// Plan again on the copy, whose tensors are the ones to write.
	m := template.Clone()
	if p, err = newPlan(m.Graph()); err != nil {
		return nil, err
	}
	buf, buf64 := make([]float32, chunk), make([]float64, chunk)
	p.walk(t.Width, func(int, group, int) {}, func(s span) { s.write(t.Values, t.Exact, buf, buf64) })
	return m, nil
}

// check verifies the sizes, mask and positions of t against plan p, whose
// layout is t's.
func (t *Tokens) check(p *plan) error {
	w := t.Width
	if w <= 0 {
		return fmt.Errorf("tokenizer: token width %d, want at least 1", w)
	}
	n, err := p.layout.numTokens(w)
	if err != nil {
		return err
	}
	if n > 0 && w > maxValues/n {
		return fmt.Errorf("tokenizer: %d tokens of width %d are too many values", n, w)
	}
	switch {
	case len(t.Positions) != 3*n:
		return mismatch("%d positions in the tokens, %d tokens of width %d in the template", len(t.Positions), n, w)
	case len(t.Values) != n*w:
		return mismatch("%d values in the tokens, %d tokens of width %d in the template", len(t.Values), n, w)
	case len(t.Mask) != n*w:
		return mismatch("%d mask entries in the tokens, %d tokens of width %d in the template", len(t.Mask), n, w)
	case t.Exact != nil && len(t.Exact) != n*w:
		return mismatch("%d exact values in the tokens, %d tokens of width %d in the template", len(t.Exact), n, w)
	}
	var bad error
	p.walk(w, func(layer int, g group, start int) {
		if bad == nil {
			bad = t.checkRows(layer, g, start)
		}
	}, func(span) {})
	return bad
}

// checkRows checks the mask and positions of a group's tokens, which start
// at token start.
func (t *Tokens) checkRows(layer int, g group, start int) error {
	w := t.Width
	per := tokensPerRow(g.length, w)
	if per == 0 {
		return nil
	}
	name := t.Layout.Layers[layer].Name
	for r := 0; r < g.rows; r++ {
		first := start + r*per
		for k := first; k < first+per; k++ {
			want := [3]int32{int32(k), int32(layer), int32(g.row + r)}
			if got := [3]int32(t.Positions[3*k : 3*k+3]); got != want {
				return mismatch("token %d has position %v in the tokens, %v in the template", k, got, want)
			}
		}
		m := t.Mask[first*w : (first+per)*w]
		for i, x := range m {
			if want := b2u(i < g.length); x != want {
				return mismatch("token %d (layer %q, row %d) has mask %d at column %d in the tokens, the template has %d",
					first+i/w, name, g.row+r, x, i%w, want)
			}
		}
	}
	return nil
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

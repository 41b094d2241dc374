package autoencoder

import (
	"errors"
	"fmt"

	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/tokenizer"
)

// Augmentations make each training sequence a different view of a model,
// drawn on the fly from a seeded stream: a function-preserving permutation
// of its hidden units, multiplicative noise on its weights, a window of
// contiguous tokens, and masked tokens whose input values are zeroed. The
// reconstruction target is the permuted window without noise or masking,
// so the autoencoder also learns to denoise and to fill in.

// permuter finds where tokenizer.Permute moves each token value: it
// permutes, once per seed, a copy of the zoo's template whose weights are
// their own indices among the token values, and tokenizes that. The
// result is exactly Permute applied to each checkpoint, at the cost of one
// small model per view however large the zoo.
type permuter struct {
	ids   *onnx.Model
	width int
	from  []int32 // the last permutation, reused
}

func newPermuter(template *onnx.Model, width int) (*permuter, error) {
	t, err := tokenizer.Tokenize(template, tokenizer.Options{TokenSize: width})
	if err != nil {
		return nil, err
	}
	if len(t.Values) > 1<<24 {
		return nil, fmt.Errorf("autoencoder: %d token values are too many to permute (at most %d)", len(t.Values), 1<<24)
	}
	for i := range t.Values {
		t.Values[i] = float32(i)
	}
	t.Exact = nil
	ids, err := tokenizer.Detokenize(t, template)
	if err != nil {
		return nil, err
	}
	p := &permuter{ids: ids, width: width, from: make([]int32, len(t.Values))}
	// float16 and bfloat16 weights cannot hold the indices.
	back, err := tokenizer.Tokenize(ids, tokenizer.Options{TokenSize: width})
	if err != nil {
		return nil, err
	}
	for i, v := range back.Values {
		if t.Mask[i] == 1 && v != float32(i) {
			return nil, errors.New("autoencoder: permutation needs float32 or float64 weights; train without it")
		}
	}
	return p, nil
}

// perm returns, for each token value, the index of the value it takes in
// the model permuted with seed. The slice is reused by the next call.
func (p *permuter) perm(seed int64) ([]int32, error) {
	m, err := tokenizer.Permute(p.ids, seed)
	if err != nil {
		return nil, err
	}
	t, err := tokenizer.Tokenize(m, tokenizer.Options{TokenSize: p.width})
	if err != nil {
		return nil, err
	}
	for i, v := range t.Values {
		p.from[i] = int32(v)
	}
	return p.from, nil
}

// augment is how views are drawn.
type augment struct {
	noise    float64   // standard deviation of the multiplicative noise
	maskRate float64   // probability that a token's input is zeroed
	permute  *permuter // nil: no permutation
}

// slot is where one sequence of a batch goes: views of [T·W] and [T·3].
type slot struct {
	tokens, target, mask []float32
	positions            []int64
}

func (b *batch) slot(i int) slot {
	tw, t3 := b.t*b.f.width, b.t*3
	return slot{tokens: b.tokens[i*tw : (i+1)*tw], target: b.target[i*tw : (i+1)*tw], mask: b.mask[i*tw : (i+1)*tw],
		positions: b.positions[i*t3 : (i+1)*t3]}
}

// batch is the data inputs of a training step: n sequences of t tokens.
type batch struct {
	f                    *frame
	n, t                 int
	tokens, target, mask []float32
	positions            []int64
}

// view writes a view of a checkpoint's normalised values into s, drawing
// from r: a permutation, a window start, noise and masks, in that order.
// Without augmentation (a nil aug) it writes the window at start as it is.
func (f *frame) view(s slot, values []float32, r *rng.Source, aug *augment, start int) error {
	w, t := f.width, len(s.positions)/3
	var from []int32
	if aug != nil {
		if aug.permute != nil {
			var err error
			if from, err = aug.permute.perm(int64(r.Uint64() >> 1)); err != nil {
				return err
			}
		}
		start = int(r.Below(uint64(f.tokens - t + 1)))
	}
	copy(s.positions, f.positions[3*start:3*(start+t)])
	copy(s.mask, f.mask[w*start:w*(start+t)])
	for i := range s.target {
		k := w*start + i
		if from != nil {
			k = int(from[k])
		}
		s.target[i] = values[k] * s.mask[i]
	}
	copy(s.tokens, s.target)
	if aug == nil {
		return nil
	}
	if aug.noise > 0 {
		// Noise multiplies the raw weight: v·(1+σε) normalised is
		// n + σε·(n + mean/std) for the normalised value n.
		// A permutation keeps each value in its tensor, so the value at
		// i has the normalisation of position w·start+i.
		for i := range s.tokens {
			if s.mask[i] != 0 {
				nm := f.norms[f.group[w*start+i]]
				s.tokens[i] += float32(aug.noise * r.Normal() * (float64(s.tokens[i]) + nm.Mean/nm.Std))
			}
		}
	}
	if aug.maskRate > 0 {
		for k := range t {
			if r.Float64() < aug.maskRate {
				clear(s.tokens[k*w : (k+1)*w])
			}
		}
	}
	return nil
}

// stream is a generator for one purpose and step, independent of every
// other: its seed mixes the run's seed with the keys by SplitMix64.
func stream(seed uint64, keys ...uint64) *rng.Source {
	r := rng.New(seed)
	for _, k := range keys {
		r = rng.New(r.Uint64() ^ k)
	}
	return r
}

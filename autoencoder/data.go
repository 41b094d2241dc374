package autoencoder

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/tokenizer"
	"github.com/hyperrep/hyperrep/zoo"
)

// Checkpoint is one sample of a zoo: a model's weights after an epoch.
type Checkpoint struct {
	Model string `json:"model"`
	Epoch int    `json:"epoch"`
	Path  string `json:"-"` // its model.onnx
}

// Checkpoints lists every checkpoint of the zoo in dir whose model.onnx
// exists, model by model in the zoo's order, epochs in order.
func Checkpoints(dir string) (*zoo.Zoo, []Checkpoint, error) {
	z, err := zoo.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	var cps []Checkpoint
	for _, m := range z.Models {
		for _, e := range m.Epochs {
			p := filepath.Join(zoo.CheckpointDir(dir, m.ID, e.Epoch), "model.onnx")
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				cps = append(cps, Checkpoint{Model: m.ID, Epoch: e.Epoch, Path: p})
			}
		}
	}
	if len(cps) == 0 {
		return nil, nil, fmt.Errorf("autoencoder: zoo %s has no checkpoints", dir)
	}
	return z, cps, nil
}

// Split assigns a zoo's models to training, validation and test: all the
// checkpoints of a model fall on one side.
type Split struct {
	Seed       uint64   `json:"seed"`
	Train      []string `json:"train"`
	Validation []string `json:"validation"`
	Test       []string `json:"test"`
}

// splitModels shuffles the models with seed and cuts them by the shares
// of validation and test models, rounding to the nearest model; training
// keeps at least one.
func splitModels(models []string, seed uint64, val, test float64) Split {
	ids := slices.Clone(models)
	slices.Sort(ids)
	r := rng.New(seed)
	r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	nv := int(math.Round(val * float64(len(ids))))
	nt := int(math.Round(test * float64(len(ids))))
	for nv+nt >= len(ids) && nv+nt > 0 {
		if nt >= nv {
			nt--
		} else {
			nv--
		}
	}
	s := Split{Seed: seed, Test: ids[:nt], Validation: ids[nt : nt+nv], Train: ids[nt+nv:]}
	slices.Sort(s.Train)
	slices.Sort(s.Validation)
	slices.Sort(s.Test)
	return s
}

// Norm is the normalisation of one layer's values: (v − Mean) / Std.
type Norm struct {
	Layer string  `json:"layer"`
	Mean  float64 `json:"mean"`
	Std   float64 `json:"std"`
}

// frame is what all the tokens of one layout share: mask and positions,
// the layer of each token, and the normalisation.
type frame struct {
	width, tokens int
	mask          []float32 // [T·W]
	positions     []int64   // [T·3]
	layer         []int     // [T]
	norms         []Norm
}

func newFrame(t *tokenizer.Tokens) *frame {
	f := &frame{width: t.Width, tokens: t.Len(), mask: make([]float32, len(t.Mask)), positions: make([]int64, len(t.Positions)),
		layer: make([]int, t.Len())}
	for i, m := range t.Mask {
		f.mask[i] = float32(m)
	}
	for i, p := range t.Positions {
		f.positions[i] = int64(p)
	}
	for k := range f.layer {
		f.layer[k] = int(t.Positions[3*k+1])
	}
	return f
}

// fits reports how t's tokens differ from the frame's, "" if they do not.
func (f *frame) fits(t *tokenizer.Tokens) string {
	if t.Width != f.width || t.Len() != f.tokens {
		return fmt.Sprintf("%d tokens of width %d, want %d of width %d", t.Len(), t.Width, f.tokens, f.width)
	}
	for i, m := range t.Mask {
		if float32(m) != f.mask[i] {
			return fmt.Sprintf("token %d has another mask", i/f.width)
		}
	}
	for i, p := range t.Positions {
		if int64(p) != f.positions[i] {
			return fmt.Sprintf("token %d has another position", i/3)
		}
	}
	return ""
}

// positionSizes are the position tables' sizes the frame needs.
func (f *frame) positionSizes() [3]int {
	var s [3]int
	for k := 0; k < f.tokens; k++ {
		for j := range s {
			s[j] = max(s[j], int(f.positions[3*k+j])+1)
		}
	}
	return s
}

// fitNorms sets the per-layer mean and standard deviation of the values of
// the given samples (raw values [T·W] each). A layer whose values are all
// equal gets a standard deviation of 1.
func (f *frame) fitNorms(layout tokenizer.Layout, samples [][]float32) {
	n := len(layout.Layers)
	sum, sq, count := make([]float64, n), make([]float64, n), make([]float64, n)
	for _, v := range samples {
		for i, x := range v {
			if f.mask[i] == 0 {
				continue
			}
			l := f.layer[i/f.width]
			sum[l] += float64(x)
			count[l]++
		}
	}
	mean := make([]float64, n)
	for l := range mean {
		if count[l] > 0 {
			mean[l] = sum[l] / count[l]
		}
	}
	for _, v := range samples {
		for i, x := range v {
			if f.mask[i] != 0 {
				l := f.layer[i/f.width]
				d := float64(x) - mean[l]
				sq[l] += d * d
			}
		}
	}
	f.norms = make([]Norm, n)
	for l := range f.norms {
		std := 0.0
		if count[l] > 0 {
			std = math.Sqrt(sq[l] / count[l])
		}
		if !(std > 1e-12) {
			std = 1
		}
		f.norms[l] = Norm{Layer: layout.Layers[l].Name, Mean: mean[l], Std: std}
	}
}

// normalise writes the normalised values of raw into dst, 0 under mask 0.
func (f *frame) normalise(dst, raw []float32) {
	for i, x := range raw {
		if f.mask[i] == 0 {
			dst[i] = 0
			continue
		}
		nm := f.norms[f.layer[i/f.width]]
		dst[i] = float32((float64(x) - nm.Mean) / nm.Std)
	}
}

// denormalise writes the raw values of normalised tokens into dst, 0
// under mask 0.
func (f *frame) denormalise(dst, norm []float32) {
	for i, x := range norm {
		if f.mask[i] == 0 {
			dst[i] = 0
			continue
		}
		nm := f.norms[f.layer[i/f.width]]
		dst[i] = float32(float64(x)*nm.Std + nm.Mean)
	}
}

// dataset is a zoo's checkpoints as normalised tokens.
type dataset struct {
	*frame
	layout   tokenizer.Layout
	template *onnx.Model // the first checkpoint, for its graph
	cps      []Checkpoint
	values   [][]float32 // per checkpoint, normalised [T·W]
	train    []int       // indices into cps
	val      []int
}

// loadCheckpoints tokenizes the checkpoints with tokens of the given
// width, checks that they share one layout, and fits the normalisation on
// the training models of split. progress, if not nil, is called after each
// checkpoint.
func loadCheckpoints(cps []Checkpoint, width int, split Split, progress func(done, total int)) (*dataset, error) {
	side := map[string]int{}
	for _, id := range split.Train {
		side[id] = 1
	}
	for _, id := range split.Validation {
		side[id] = 2
	}
	d := &dataset{cps: cps, values: make([][]float32, len(cps))}
	for i, cp := range cps {
		m, err := onnx.Read(cp.Path)
		if err != nil {
			return nil, err
		}
		t, err := tokenizer.Tokenize(m, tokenizer.Options{TokenSize: width})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cp.Path, err)
		}
		if i == 0 {
			d.frame, d.layout, d.template = newFrame(t), t.Layout, m
		} else if diff := d.fits(t); diff != "" {
			return nil, fmt.Errorf("autoencoder: %s is laid out unlike %s (%s); a zoo must have one architecture", cp.Path, cps[0].Path, diff)
		}
		d.values[i] = t.Values
		switch side[cp.Model] {
		case 1:
			d.train = append(d.train, i)
		case 2:
			d.val = append(d.val, i)
		}
		if progress != nil {
			progress(i+1, len(cps))
		}
	}
	if len(d.train) == 0 {
		return nil, errors.New("autoencoder: no training checkpoints")
	}
	raw := make([][]float32, len(d.train))
	for k, i := range d.train {
		raw[k] = d.values[i]
	}
	d.fitNorms(d.layout, raw)
	for i, v := range d.values {
		n := make([]float32, len(v))
		d.normalise(n, v)
		d.values[i] = n
	}
	return d, nil
}

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

// Normalisations of token values (Config.Normalise).
const (
	NormLayer  = "layer"  // one mean and standard deviation per layer
	NormTensor = "tensor" // one per tensor of a layer: weights, biases, …
)

// Norm is the normalisation of one layer's values, or of one of its
// tensors' when Tensor is set: (v − Mean) / Std.
type Norm struct {
	Layer  string  `json:"layer"`
	Tensor string  `json:"tensor,omitempty"`
	Mean   float64 `json:"mean"`
	Std    float64 `json:"std"`
}

// frame is what all the tokens of one layout share: mask and positions,
// the layer of each token, and the normalisation.
type frame struct {
	width, tokens int
	mask          []float32 // [T·W]
	positions     []int64   // [T·3]
	layer         []int     // [T]
	// group is the index among norms of each value's normalisation [T·W]
	// (masked values: their layer's first); groups names them.
	group  []int
	groups []Norm // Layer and Tensor only
	norms  []Norm
}

// newFrame is the frame of t's layout, its values normalised per layer or
// per tensor (NormLayer, NormTensor).
func newFrame(t *tokenizer.Tokens, normalise string) *frame {
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
	f.setGroups(t.Layout, normalise == NormTensor)
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

// setGroups assigns each value position its normalisation: its layer's,
// or with perTensor its tensor's, found from the token's layer and row and
// the value's place in the row.
func (f *frame) setGroups(layout tokenizer.Layout, perTensor bool) {
	f.group, f.groups = make([]int, f.tokens*f.width), nil
	base := make([]int, len(layout.Layers))
	for l, ly := range layout.Layers {
		base[l] = len(f.groups)
		if !perTensor || len(ly.Tensors) == 0 {
			f.groups = append(f.groups, Norm{Layer: ly.Name})
			continue
		}
		for _, t := range ly.Tensors {
			f.groups = append(f.groups, Norm{Layer: ly.Name, Tensor: t.Name})
		}
	}
	chunk := 0 // the token's place among its row's tokens
	for k := 0; k < f.tokens; k++ {
		l, row := f.positions[3*k+1], f.positions[3*k+2]
		if k > 0 && f.positions[3*k-2] == l && f.positions[3*k-1] == row {
			chunk++
		} else {
			chunk = 0
		}
		for c := range f.width {
			g := base[l]
			if perTensor {
				v := chunk*f.width + c
				for ti, t := range layout.Layers[l].Tensors {
					if int64(t.Row) <= row && row < int64(t.Row+t.Units) && t.Offset <= v && v < t.Offset+t.PerRow {
						g = base[l] + ti
						break
					}
				}
			}
			f.group[k*f.width+c] = g
		}
	}
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

// fitNorms sets the mean and standard deviation of each normalisation
// group's values over the given samples (raw values [T·W] each). A group
// whose values are all equal gets a standard deviation of 1.
func (f *frame) fitNorms(samples [][]float32) {
	n := len(f.groups)
	sum, sq, count := make([]float64, n), make([]float64, n), make([]float64, n)
	for _, v := range samples {
		for i, x := range v {
			if f.mask[i] == 0 {
				continue
			}
			g := f.group[i]
			sum[g] += float64(x)
			count[g]++
		}
	}
	mean := make([]float64, n)
	for g := range mean {
		if count[g] > 0 {
			mean[g] = sum[g] / count[g]
		}
	}
	for _, v := range samples {
		for i, x := range v {
			if f.mask[i] != 0 {
				g := f.group[i]
				d := float64(x) - mean[g]
				sq[g] += d * d
			}
		}
	}
	f.norms = make([]Norm, n)
	for g := range f.norms {
		std := 0.0
		if count[g] > 0 {
			std = math.Sqrt(sq[g] / count[g])
		}
		if !(std > 1e-12) {
			std = 1
		}
		f.norms[g] = Norm{Layer: f.groups[g].Layer, Tensor: f.groups[g].Tensor, Mean: mean[g], Std: std}
	}
}

// normalise writes the normalised values of raw into dst, 0 under mask 0.
func (f *frame) normalise(dst, raw []float32) {
	for i, x := range raw {
		if f.mask[i] == 0 {
			dst[i] = 0
			continue
		}
		nm := f.norms[f.group[i]]
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
		nm := f.norms[f.group[i]]
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
func loadCheckpoints(cps []Checkpoint, width int, normalise string, split Split, progress func(done, total int)) (*dataset, error) {
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
			d.frame, d.layout, d.template = newFrame(t, normalise), t.Layout, m
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
	d.fitNorms(raw)
	for i, v := range d.values {
		n := make([]float32, len(v))
		d.normalise(n, v)
		d.values[i] = n
	}
	return d, nil
}

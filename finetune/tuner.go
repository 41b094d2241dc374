package finetune

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/hyperrep/hyperrep/autodiff"
	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/runtime"
)

// Optimizers lists the optimisers Config.Optimizer may name, with
// PyTorch's semantics (see package autodiff).
var Optimizers = []string{"adam", "adamw", "sgd"}

// Config is how models are fine-tuned. The zero value, but for Epochs,
// is Adam at learning rate 1e-3 on batches of 32, as the zoo trains.
type Config struct {
	Optimizer   string  // "adam" (the default), "adamw" or "sgd"
	LR          float64 // 0 means 1e-3
	WeightDecay float64 // L2 for adam and sgd, decoupled for adamw
	Momentum    float64 // sgd only
	Batch       int     // samples per step; 0 means 32
	Epochs      int     // Run's number of epochs
	// Seed fixes the data order: epoch e visits the training samples in
	// the order Order(e, n) gives, or by default a permutation drawn from
	// the seed and e alone, the same for every model.
	Seed  int64
	Order func(epoch, n int) []int
	// RecomputeBatchNorm has Run recompute the running statistics of a
	// model's BatchNorm layers before training, as for weights sampled
	// from a hyper-representation. After each epoch they are recomputed
	// in any case (see the package documentation).
	RecomputeBatchNorm bool
	// BatchNormSamples is the number of training samples, the first of
	// the set, that running statistics are computed on; 0 means all.
	BatchNormSamples int
	// Workers is the number of models Run trains at once; 0 means one
	// per CPU. Threads is each model's ORT intra-op threads; 0 means 1.
	Workers, Threads int
	// Progress, if set, is called by Run after every training step with
	// the model-samples trained so far and in all, one call at a time.
	Progress func(done, total int64)
}

// Validate checks the settings, with zero fields read as their defaults.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults fills in the zero fields and checks the others.
func (c Config) withDefaults() (Config, error) {
	if c.Optimizer == "" {
		c.Optimizer = "adam"
	}
	if c.LR == 0 {
		c.LR = 1e-3
	}
	if c.Batch == 0 {
		c.Batch = 32
	}
	if c.Threads == 0 {
		c.Threads = 1
	}
	switch {
	case !slices.Contains(Optimizers, c.Optimizer):
		return c, fmt.Errorf("finetune: unknown optimizer %q (want %s)", c.Optimizer, strings.Join(Optimizers, ", "))
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return c, fmt.Errorf("finetune: learning rate %g: want a positive number", c.LR)
	case c.WeightDecay < 0 || c.Momentum < 0 || c.Momentum >= 1:
		return c, fmt.Errorf("finetune: weight decay %g, momentum %g: want weight decay >= 0 and 0 <= momentum < 1", c.WeightDecay, c.Momentum)
	case c.Batch < 1 || c.Epochs < 0 || c.BatchNormSamples < 0 || c.Workers < 0 || c.Threads < 1:
		return c, fmt.Errorf("finetune: batch %d, epochs %d, batch-norm samples %d, workers %d, threads %d: want positive batch and no negative counts",
			c.Batch, c.Epochs, c.BatchNormSamples, c.Workers, c.Threads)
	}
	return c, nil
}

func (c Config) optimizer() autodiff.Optimizer {
	switch c.Optimizer {
	case "sgd":
		return autodiff.SGD{Momentum: c.Momentum, WeightDecay: c.WeightDecay}
	case "adamw":
		return autodiff.AdamW{WeightDecay: c.WeightDecay}
	}
	return autodiff.Adam{WeightDecay: c.WeightDecay}
}

// order is the default data order of epoch e: SplitMix64 draws seeded by a
// hash of the seed and the epoch.
func order(seed int64, epoch, n int) []int {
	h := mix64(uint64(seed) ^ 0x6a09e667f3bcc908)
	h = mix64(h ^ uint64(epoch+1)*0x9e3779b97f4a7c15)
	return rng.New(h).Perm(n)
}

// mix64 is SplitMix64's output function.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Tuner fine-tunes one model. It keeps the weights and the optimiser state
// in ORT between epochs; Model writes them into a copy of the original.
// A Tuner is not safe for concurrent use; Tuners are independent.
type Tuner struct {
	orig   *onnx.Model
	sig    signature
	cfg    Config
	train  *dataset.Set
	tr     *autodiff.Trainer
	params []string
	hasBN  bool
	epochs int
}

// New prepares m for fine-tuning on train with cfg; m itself is not
// changed. The caller must Close the Tuner.
func New(m *onnx.Model, train *dataset.Set, cfg Config) (*Tuner, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p, err := prepare(m, train, cfg)
	if err != nil {
		return nil, err
	}
	tr, err := autodiff.NewTrainer(p.model, autodiff.Config{
		Loss:    lossOutput,
		Groups:  []autodiff.Group{{Params: p.params, Optimizer: cfg.optimizer(), Schedule: autodiff.ConstantLR(cfg.LR)}},
		Outputs: []string{p.sig.logits},
		Options: runtime.Options{Threads: cfg.Threads},
	})
	if err != nil {
		return nil, err
	}
	return &Tuner{orig: m, sig: p.sig, cfg: cfg, train: train, tr: tr, params: p.params, hasBN: p.hasBN}, nil
}

// prepared is a model made ready for training.
type prepared struct {
	sig    signature
	model  *onnx.Model // the training graph (see trainingModel)
	params []string
	hasBN  bool
}

// prepare builds the training graph of m and checks that every op on the
// way from the weights to the loss has a gradient rule: NewTrainer would
// find a missing one too, but not tell it from a failure of ORT.
func prepare(m *onnx.Model, train *dataset.Set, cfg Config) (prepared, error) {
	if train.N == 0 {
		return prepared{}, fmt.Errorf("finetune: the training set %s/%s has no samples", train.Name, train.Split)
	}
	sig, err := inspect(m, train)
	if err != nil {
		return prepared{}, err
	}
	tm, params, hasBN, err := trainingModel(m, sig, cfg.Batch, train.Classes)
	if err != nil {
		return prepared{}, err
	}
	if _, err := autodiff.Gradients(tm.Graph(), lossOutput, params); err != nil {
		return prepared{}, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	if hasBN && train.N < cfg.Batch {
		return prepared{}, fmt.Errorf("finetune: a model with BatchNorm trains on full batches only, and %d samples are fewer than the batch of %d",
			train.N, cfg.Batch)
	}
	return prepared{sig, tm, params, hasBN}, nil
}

// Params names the initializers being trained.
func (t *Tuner) Params() []string { return slices.Clone(t.params) }

// Epochs is the number of epochs trained.
func (t *Tuner) Epochs() int { return t.epochs }

// Epoch trains one epoch and returns the mean cross-entropy and accuracy
// over its batches, as the model saw them while its weights changed.
// progress, if not nil, is called after each step with the samples of the
// step.
func (t *Tuner) Epoch(ctx context.Context, progress func(samples int)) (loss, acc float64, err error) {
	set, B := t.train, t.cfg.Batch
	e := t.epochs + 1
	var ord []int
	if t.cfg.Order != nil {
		ord = t.cfg.Order(e, set.N)
		if len(ord) != set.N {
			return 0, 0, fmt.Errorf("finetune: Order(%d, %d) returned %d indices", e, set.N, len(ord))
		}
	} else {
		ord = order(t.cfg.Seed, e, set.N)
	}
	steps := (set.N + B - 1) / B
	if t.hasBN {
		steps = set.N / B
	}
	images := t.tr.Value(t.sig.input).Float32s()
	labels := t.tr.Value(labelsInput).Int64s()
	weights := t.tr.Value(weightsInput).Float32s()
	d := set.SampleSize()
	var seen int
	for s := range steps {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		lo, hi := s*B, min((s+1)*B, set.N)
		n := hi - lo
		for b := range B {
			dst := images[b*d : (b+1)*d]
			if b >= n {
				clear(dst)
				labels[b], weights[b] = 0, 0
				continue
			}
			i := ord[lo+b]
			if i < 0 || i >= set.N {
				return 0, 0, fmt.Errorf("finetune: data order of epoch %d holds index %d of %d samples", e, i, set.N)
			}
			copy(dst, set.Image(i))
			labels[b], weights[b] = int64(set.Labels[i]), 1/float32(n)
		}
		l, err := t.tr.Step()
		if err != nil {
			return 0, 0, err
		}
		loss += l * float64(n)
		lv := t.tr.Value(t.sig.logits)
		acc += float64(hits(lv.Float32s(), int(lv.Shape()[1]), labels[:n]))
		seen += n
		if progress != nil {
			progress(n)
		}
	}
	t.epochs++
	return loss / float64(seen), acc / float64(seen), nil
}

// hits counts the first len(labels) rows of logits [B, k] whose largest
// value is at the label.
func hits(logits []float32, k int, labels []int64) int {
	c := 0
	for i, l := range labels {
		row := logits[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if int64(best) == l {
			c++
		}
	}
	return c
}

// Model returns a copy of the original model with the current weights:
// its graph, opset and metadata as they were, the trained initializers
// replaced in their own encoding. Once the Tuner has trained, a model with
// BatchNorm gets running statistics recomputed on the training data.
func (t *Tuner) Model(ctx context.Context) (*onnx.Model, error) {
	m := t.orig.Clone()
	if err := t.tr.WriteWeights(m); err != nil {
		return nil, err
	}
	if t.hasBN && t.epochs > 0 {
		if _, err := RecomputeBatchNorm(ctx, m, t.bnSet(), runtime.Options{Threads: t.cfg.Threads}); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// bnSet is the samples running statistics are computed on.
func (t *Tuner) bnSet() *dataset.Set {
	if n := t.cfg.BatchNormSamples; n > 0 && n < t.train.N {
		return t.train.Slice(0, n)
	}
	return t.train
}

// Close releases the ORT sessions. Calling it again does nothing.
func (t *Tuner) Close() error { return t.tr.Close() }

package autoencoder

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/hyperrep/hyperrep/autodiff"
	"github.com/hyperrep/hyperrep/runtime"
)

// Purposes of the random streams, so that no two draw alike.
const (
	purposeInit uint64 = iota + 1
	purposeOrder
	purposeTrain
	purposeVal
)

// Losses are the loss and its two terms, averaged over a pass.
type Losses struct {
	Loss           float64  `json:"loss"`
	Reconstruction float64  `json:"reconstruction"`
	NTXent         *float64 `json:"ntxent,omitempty"` // absent when γ is 0
}

// Epoch is one line of log.jsonl: the losses after an epoch.
type Epoch struct {
	Epoch      int     `json:"epoch"` // from 1
	Steps      int     `json:"steps"` // taken so far
	LR         float64 `json:"lr"`    // at the epoch's last step
	Train      Losses  `json:"train"` // averaged over the epoch's steps, as the weights changed
	Validation *Losses `json:"validation,omitempty"`
	Seconds    float64 `json:"seconds"` // of training so far, over every run
}

// Fit trains a hyper-representation of the zoo in zooDir and writes it to
// the directory dir (see the package documentation). When dir holds the
// state of an earlier run with the same configuration, Fit resumes it, and
// trains on when cfg asks for more epochs. Cancelling ctx stops Fit after
// the step in progress, with the state saved; it then returns ctx's error.
func Fit(ctx context.Context, zooDir, dir string, cfg Config, opts Options) (log []Epoch, err error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	z, cps, err := Checkpoints(zooDir)
	if err != nil {
		return nil, err
	}
	fresh := !exists(dir)
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	defer func() {
		// A fit that failed before saving anything leaves nothing behind.
		if err != nil && fresh && !exists(filepath.Join(dir, stateFile)) {
			os.RemoveAll(dir)
		}
	}()
	st, err := readState(dir)
	if err != nil {
		return nil, err
	}
	if st != nil {
		if diff := st.Config.differs(cfg); diff != "" {
			return nil, fmt.Errorf("autoencoder: %s was fitted with %s; resume with its settings, fit into another directory, or remove it", dir, diff)
		}
	}
	var models []string
	for _, m := range z.Models {
		models = append(models, m.ID)
	}
	split := splitModels(models, cfg.Seed, cfg.Validation, cfg.Test)
	if st != nil && (!sameSplit(st.Split, split) || st.Samples != len(cps)) {
		return nil, fmt.Errorf("autoencoder: the zoo %s has other models or checkpoints than when %s was fitted (%d checkpoints then, %d now)",
			zooDir, dir, st.Samples, len(cps))
	}
	var progress func(int, int)
	if opts.Progress != nil {
		progress = func(done, total int) { opts.Progress("tokenize", done, total) }
	}
	data, err := loadCheckpoints(cps, cfg.TokenSize, cfg.Normalise, split, progress)
	if err != nil {
		return nil, err
	}
	f := &fit{cfg: cfg, opts: opts, dir: dir, data: data, split: split, zoo: zooInfo(zooDir, z, len(cps))}
	if err := f.prepare(st); err != nil {
		return nil, err
	}
	defer f.tr.Close()
	return f.run(ctx)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// fit is one run of Fit.
type fit struct {
	cfg   Config
	opts  Options
	dir   string
	data  *dataset
	split Split
	zoo   ZooInfo
	arch  Arch

	b, window int // models per step, tokens per sequence
	perEpoch  int // steps
	tr        *autodiff.Trainer
	params    []string
	batch     *batch
	aug       *augment
	st        *state // what a resumed run continues from
	started   time.Time
}

// prepare builds the trainer, from the state of an earlier run if any.
func (f *fit) prepare(st *state) error {
	cfg, d := f.cfg, f.data
	f.arch = cfg.arch(d.positionSizes())
	f.b = min(cfg.Batch, len(d.train))
	f.window = min(cfg.Context, d.tokens)
	f.perEpoch = (len(d.train) + f.b - 1) / f.b
	f.aug = &augment{noise: cfg.Noise, maskRate: cfg.MaskRate}
	if cfg.Permute {
		var err error
		if f.aug.permute, err = newPermuter(d.template, cfg.TokenSize); err != nil {
			return err
		}
	}
	var values map[string][]float32
	if st != nil {
		values = st.weights
		st.Config = cfg // with the epochs asked for now
	} else {
		st = &state{Config: cfg, Split: f.split, Samples: len(d.cps)}
	}
	f.st = st
	m, params := trainingModel(f.arch, 2*f.b, f.window, cfg.Gamma, cfg.Temperature, values, stream(cfg.Seed, purposeInit).Uint64())
	f.params = params
	outputs := []string{outRec}
	if cfg.Gamma > 0 {
		outputs = append(outputs, outNTXent)
	}
	total := cfg.Epochs * f.perEpoch
	tr, err := autodiff.NewTrainer(m, autodiff.Config{
		Loss: outLoss,
		Groups: []autodiff.Group{{Params: params, Optimizer: autodiff.AdamW{WeightDecay: cfg.WeightDecay},
			Schedule: schedule{cfg.LR, total}, ClipNorm: cfg.ClipNorm}},
		Outputs: outputs,
		Options: f.opts.Runtime,
	})
	if err != nil {
		return err
	}
	f.tr = tr
	if err := st.restore(tr); err != nil {
		tr.Close()
		return err
	}
	f.batch = &batch{f: d.frame, n: 2 * f.b, t: f.window, tokens: tr.Value(InputTokens).Float32s(),
		target: tr.Value(inputTarget).Float32s(), mask: tr.Value(InputMask).Float32s(), positions: tr.Value(InputPositions).Int64s()}
	return nil
}

// run trains from the state's step to the last epoch's last step.
func (f *fit) run(ctx context.Context) ([]Epoch, error) {
	cfg, st := f.cfg, f.st
	total := cfg.Epochs * f.perEpoch
	f.started = time.Now()
	lastSave := f.started
	every := f.opts.SaveEvery
	if every <= 0 {
		every = time.Minute
	}
	report := func() {
		if f.opts.Progress != nil {
			f.opts.Progress("train", f.tr.Steps(), total)
		}
	}
	report()
	first := f.tr.Steps()
	if first > total {
		return st.Log, fmt.Errorf("autoencoder: %s was fitted for %d epochs already, more than the %d asked", f.dir, first/f.perEpoch, cfg.Epochs)
	}
	var order []int
	for s := first; s < total; s = f.tr.Steps() {
		if ctx.Err() != nil {
			if err := errors.Join(f.save(), f.export()); err != nil {
				return st.Log, err
			}
			return st.Log, ctx.Err()
		}
		epoch, k := s/f.perEpoch, s%f.perEpoch
		if order == nil || k == 0 {
			order = stream(cfg.Seed, purposeOrder, uint64(epoch)).Perm(len(f.data.train))
		}
		for j := range f.b {
			cp := f.data.train[order[(k*f.b+j)%len(order)]]
			for v := range 2 {
				r := stream(cfg.Seed, purposeTrain, uint64(s), uint64(j), uint64(v))
				if err := f.data.view(f.batch.slot(v*f.b+j), f.data.values[cp], r, f.aug, 0); err != nil {
					return st.Log, err
				}
			}
		}
		loss, err := f.tr.Step()
		if err != nil {
			return st.Log, err
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return st.Log, fmt.Errorf("autoencoder: the loss diverged at step %d; lower the learning rate", s)
		}
		st.Partial.add(loss, f.tr.Value(outRec), f.tr.Value(outNTXent))
		report()
		if k == f.perEpoch-1 {
			// Saving takes as long as a few steps: small epochs save
			// only every so often, and at the end.
			persist := s+1 == total || time.Since(lastSave) >= every
			if err := f.endEpoch(epoch+1, persist); err != nil {
				return st.Log, err
			}
			if persist {
				lastSave = time.Now()
			}
		} else if time.Since(lastSave) >= every {
			if err := f.save(); err != nil {
				return st.Log, err
			}
			lastSave = time.Now()
		}
	}
	if first == total {
		// A finished fit asked again exports again: files may be missing.
		return st.Log, f.export()
	}
	return st.Log, nil
}

// endEpoch logs the epoch, with the validation losses, and when persist
// is set saves the state and the hyper-representation.
func (f *fit) endEpoch(epoch int, persist bool) error {
	st := f.st
	e := Epoch{Epoch: epoch, Steps: f.tr.Steps(), LR: f.cfg.lrAt(f.tr.Steps()-1, f.cfg.Epochs*f.perEpoch), Train: st.Partial.mean()}
	if len(f.data.val) > 0 {
		v, err := f.validate()
		if err != nil {
			return err
		}
		e.Validation = &v
	}
	st.Partial = sums{}
	st.Seconds += time.Since(f.started).Seconds()
	f.started = time.Now()
	e.Seconds = st.Seconds
	st.Log = append(st.Log, e)
	if !persist {
		return f.writeLog()
	}
	if err := f.save(); err != nil {
		return err
	}
	return f.export()
}

// validate averages the losses over the validation checkpoints, with
// views drawn from the same streams every epoch so that epochs compare.
// The views are permuted windows without noise or masked tokens: the
// reconstruction loss is then that of the models as they are. The last
// batch is filled up from the first checkpoints.
func (f *fit) validate() (Losses, error) {
	val := f.data.val
	aug := &augment{permute: f.aug.permute}
	var s sums
	for start := 0; start < len(val); start += f.b {
		for j := range f.b {
			cp := val[(start+j)%len(val)]
			for v := range 2 {
				r := stream(f.cfg.Seed, purposeVal, uint64(start), uint64(j), uint64(v))
				if err := f.data.view(f.batch.slot(v*f.b+j), f.data.values[cp], r, aug, 0); err != nil {
					return Losses{}, err
				}
			}
		}
		loss, err := f.tr.Eval()
		if err != nil {
			return Losses{}, err
		}
		s.add(loss, f.tr.Value(outRec), f.tr.Value(outNTXent))
	}
	return s.mean(), nil
}

// lrAt is the learning rate of step s of total.
func (c Config) lrAt(s, total int) float64 { return schedule{c.LR, total}.LR(s) }

// schedule is a one-cycle schedule: the rate rises linearly from Max/25 to
// Max over the first tenth of the steps, then falls along half a cosine to
// Max/10⁴ at the last step. (autodiff.OneCycleLR is not defined for fits
// of a step or two.)
type schedule struct {
	Max   float64
	Steps int
}

func (s schedule) LR(step int) float64 {
	warm := max(1, s.Steps/10)
	if step < warm {
		return s.Max * (0.04 + 0.96*float64(step)/float64(warm))
	}
	frac := 1.0
	if rest := s.Steps - 1 - warm; rest > 0 {
		frac = min(1, float64(step-warm)/float64(rest))
	}
	low := s.Max / 1e4
	return low + (s.Max-low)*(1+math.Cos(math.Pi*frac))/2
}

// sums accumulate losses over steps.
type sums struct {
	Steps int     `json:"steps"`
	Loss  float64 `json:"loss"`
	Rec   float64 `json:"reconstruction"`
	NT    float64 `json:"ntxent"`
	HasNT bool    `json:"has_ntxent"`
}

func (s *sums) add(loss float64, rec, nt *runtime.Value) {
	s.Steps++
	s.Loss += loss
	s.Rec += float64(rec.Float32s()[0])
	if nt != nil {
		s.NT += float64(nt.Float32s()[0])
		s.HasNT = true
	}
}

func (s sums) mean() Losses {
	n := float64(max(s.Steps, 1))
	l := Losses{Loss: s.Loss / n, Reconstruction: s.Rec / n}
	if s.HasNT {
		nt := s.NT / n
		l.NTXent = &nt
	}
	return l
}

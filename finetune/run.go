package finetune

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/runtime"
)

// Epoch is a model's metrics after an epoch of fine-tuning; epoch 0 is the
// model as given (with BatchNorm statistics recomputed when asked).
// Test metrics are measured on the test set after the epoch. Training
// metrics are the means over the epoch's batches as the model saw them
// while it trained; at epoch 0 they are measured on the training set.
type Epoch struct {
	Epoch         int     `json:"epoch"`
	TestLoss      float64 `json:"test_loss"`
	TestAccuracy  float64 `json:"test_acc"`
	TrainLoss     float64 `json:"train_loss"`
	TrainAccuracy float64 `json:"train_acc"`
	Seconds       float64 `json:"seconds"` // wall time of the epoch's training and evaluation
}

// ModelError is an error of one of the models given to Run.
type ModelError struct {
	Index int // into Run's models
	Err   error
}

func (e *ModelError) Error() string { return fmt.Sprintf("model %d: %v", e.Index, e.Err) }
func (e *ModelError) Unwrap() error { return e.Err }

// SaveFunc receives model i (an index into Run's models) after epoch e:
// its metrics and a copy of it with the weights of that epoch. Run calls
// it one call at a time, for each model in epoch order; an error stops
// the run.
type SaveFunc func(i int, e Epoch, m *onnx.Model) error

// Check reports whether m can be fine-tuned on train with cfg, without
// loading it into ORT: that its input and logits fit the dataset and every
// op has a gradient rule.
func Check(m *onnx.Model, train *dataset.Set, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	_, err = check(m, train, cfg)
	return err
}

// check is Check with cfg's defaults filled in; it also returns the
// number of samples an epoch trains on.
func check(m *onnx.Model, train *dataset.Set, cfg Config) (int, error) {
	p, err := prepare(m, train, cfg)
	if err != nil {
		return 0, err
	}
	if p.hasBN {
		return train.N - train.N%cfg.Batch, nil
	}
	return train.N, nil
}

// Run fine-tunes each model for cfg.Epochs epochs on train, scoring it on
// test before training and after every epoch, Workers models at a time.
// It checks every model before it trains any, and returns the metrics of
// each model, epoch 0 first. save, if not nil, gets every epoch's model as
// it is ready. Cancelling ctx stops the run between steps.
func Run(ctx context.Context, models []*onnx.Model, train, test *dataset.Set, cfg Config, save SaveFunc) ([][]Epoch, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if train.N == 0 || test.N == 0 {
		return nil, fmt.Errorf("finetune: training set of %d and test set of %d samples: want both non-empty", train.N, test.N)
	}
	if cfg.Workers == 0 {
		cfg.Workers = goruntime.NumCPU()
	}
	var total int64 // model-samples to train
	for i, m := range models {
		n, err := check(m, train, cfg)
		if err != nil {
			return nil, &ModelError{i, err}
		}
		total += int64(n) * int64(cfg.Epochs)
	}
	r := &runner{cfg: cfg, train: train, test: test, save: save, total: total,
		results: make([][]Epoch, len(models))}
	queue := make(chan int, len(models))
	for i := range models {
		queue <- i
	}
	close(queue)
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(models))
	runtime.RunWorkers(min(cfg.Workers, len(models)), func(int) {
		for i := range queue {
			if err := r.tune(inner, i, models[i]); err != nil {
				errs[i] = err
				cancel()
				return
			}
		}
	})
	for i, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, &ModelError{i, err}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r.results, nil
}

// runner is one call of Run.
type runner struct {
	cfg         Config
	train, test *dataset.Set
	save        SaveFunc
	mu          sync.Mutex // serialises save, Progress and results
	done, total int64
	results     [][]Epoch
}

// tune fine-tunes model i.
func (r *runner) tune(ctx context.Context, i int, m *onnx.Model) error {
	t0 := time.Now()
	opts := runtime.Options{Threads: r.cfg.Threads}
	if r.cfg.RecomputeBatchNorm {
		m = m.Clone()
		set := r.train
		if n := r.cfg.BatchNormSamples; n > 0 && n < set.N {
			set = set.Slice(0, n)
		}
		if _, err := RecomputeBatchNorm(ctx, m, set, opts); err != nil {
			return err
		}
	}
	t, err := New(m, r.train, r.cfg)
	if err != nil {
		return err
	}
	defer t.Close()
	e0 := Epoch{}
	trainRes, err := r.evaluate(ctx, m, r.train)
	if err != nil {
		return err
	}
	e0.TrainLoss, e0.TrainAccuracy = trainRes.Loss, trainRes.Accuracy
	if err := r.finish(ctx, i, e0, m.Clone(), t0); err != nil {
		return err
	}
	for e := 1; e <= r.cfg.Epochs; e++ {
		t0 := time.Now()
		loss, acc, err := t.Epoch(ctx, r.progress)
		if err != nil {
			return err
		}
		tm, err := t.Model(ctx)
		if err != nil {
			return err
		}
		if err := r.finish(ctx, i, Epoch{Epoch: e, TrainLoss: loss, TrainAccuracy: acc}, tm, t0); err != nil {
			return err
		}
	}
	return nil
}

// finish scores the model of an epoch on the test set and hands it on.
func (r *runner) finish(ctx context.Context, i int, e Epoch, m *onnx.Model, t0 time.Time) error {
	res, err := r.evaluate(ctx, m, r.test)
	if err != nil {
		return err
	}
	e.TestLoss, e.TestAccuracy = res.Loss, res.Accuracy
	e.Seconds = time.Since(t0).Seconds()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results[i] = append(r.results[i], e)
	if r.save != nil {
		return r.save(i, e, m)
	}
	return nil
}

// evalBatch is the number of samples per evaluation run.
const evalBatch = 500

func (r *runner) evaluate(ctx context.Context, m *onnx.Model, set *dataset.Set) (runtime.Result, error) {
	raw, err := m.Marshal()
	if err != nil {
		return runtime.Result{}, err
	}
	return runtime.Evaluate(ctx, raw, set, runtime.EvalOptions{Options: runtime.Options{Threads: r.cfg.Threads}, BatchSize: evalBatch})
}

func (r *runner) progress(n int) {
	if r.cfg.Progress == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done += int64(n)
	r.cfg.Progress(r.done, r.total)
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/runtime"
)

func init() {
	register(&command{
		name:    "eval",
		args:    "MODEL.onnx... --dataset mnist|fashion-mnist|idx:DIR [--json]",
		summary: "score classifiers on a dataset's test split: accuracy and cross-entropy",
		help: `
Runs each model over the test split in ONNX Runtime and scores its first output
as logits: accuracy is the share of samples whose largest logit is the label,
loss the mean cross-entropy of the softmax. Pixels are fed scaled to [0, 1].
The model's input may be [N, C, H, W], [N, H, W] or [N, C*H*W]; a fixed batch
size is honoured.

Datasets: mnist (fetched by "make setup"), fashion-mnist (Debian's
dataset-fashion-mnist), idx:DIR (a directory of IDX files named like MNIST's).

Examples:
  hyperrep eval fixtures/cnn-s.onnx --dataset mnist
  hyperrep eval zoo/models/*/checkpoint_000002/model.onnx --dataset mnist --json`,
		setup: func(fs *flag.FlagSet) func([]string) error {
			name := fs.String("dataset", "mnist", "mnist, fashion-mnist or idx:DIR")
			split := fs.String("split", "test", "which split to score: test or train")
			samples := fs.Int("samples", 0, "score only the first N samples (0: all)")
			batch := fs.Int("batch", 1000, "samples per run")
			threads := fs.Int("threads", 0, "ONNX Runtime threads per model (0: one per CPU)")
			device := fs.String("device", "cpu", "cpu, cuda or cuda:N")
			asJSON := fs.Bool("json", false, `print one JSON object per model per line ({"model", "accuracy", "loss", ...})`)
			return func(args []string) error {
				if len(args) == 0 {
					return usagef("no model given")
				}
				if *batch <= 0 || *samples < 0 || *threads < 0 {
					return usagef("--batch must be positive, --samples and --threads not negative")
				}
				dev, err := runtime.ParseDevice(*device)
				if err != nil {
					return usagef("%v", err)
				}
				set, err := dataset.Load(*name, *split)
				if err != nil {
					return err
				}
				if *samples > 0 && *samples < set.N {
					set = set.Slice(0, *samples)
				}
				opts := runtime.EvalOptions{Options: runtime.Options{Device: dev, Threads: *threads}, BatchSize: *batch}
				return evalModels(args, set, opts, *asJSON)
			}
		},
	})
}

type evalRecord struct {
	Model    string  `json:"model"`
	Dataset  string  `json:"dataset"`
	Split    string  `json:"split"`
	Samples  int     `json:"samples"`
	Accuracy float64 `json:"accuracy"`
	Loss     float64 `json:"loss"`
	Seconds  float64 `json:"seconds"`
}

func evalModels(paths []string, set *dataset.Set, opts runtime.EvalOptions, asJSON bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bar := newBar("eval", int64(len(paths)*set.N), "samples")
	var tw *tabwriter.Writer
	if !asJSON {
		tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		defer tw.Flush()
	}
	var records []evalRecord
	for _, p := range paths {
		// Read through the onnx package first: it checks the file and gives
		// one clear line for what ORT would report less plainly.
		m, err := onnx.Read(p)
		if err != nil {
			return err
		}
		b, err := m.Marshal()
		if err != nil {
			return err
		}
		o := opts
		start := time.Now()
		var last int
		o.Progress = func(done, _ int) { bar.Add(int64(done - last)); last = done }
		res, err := runtime.Evaluate(ctx, b, set, o)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		rec := evalRecord{Model: p, Dataset: set.Name, Split: set.Split, Samples: res.N,
			Accuracy: res.Accuracy, Loss: res.Loss, Seconds: time.Since(start).Seconds()}
		records = append(records, rec)
		if asJSON {
			if err := json.NewEncoder(out).Encode(rec); err != nil {
				return err
			}
		}
	}
	bar.Finish()
	if !asJSON {
		fmt.Fprintf(tw, "model\taccuracy\tloss\tsamples\n")
		for _, r := range records {
			fmt.Fprintf(tw, "%s\t%.2f %%\t%.4f\t%d\n", shortPath(r.Model), 100*r.Accuracy, r.Loss, r.Samples)
		}
	}
	return nil
}

// shortPath shows a path relative to the working directory when that is
// shorter.
func shortPath(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if abs, err := filepath.Abs(p); err == nil {
		if rel, err := filepath.Rel(wd, abs); err == nil && len(rel) < len(p) {
			return rel
		}
	}
	return p
}

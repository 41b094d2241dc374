package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/hyperrep/hyperrep/autoencoder"
	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/finetune"
	"github.com/hyperrep/hyperrep/generate"
	"github.com/hyperrep/hyperrep/internal/atomicfile"
	"github.com/hyperrep/hyperrep/internal/progress"
	"github.com/hyperrep/hyperrep/runtime"
	"github.com/hyperrep/hyperrep/zoo"
)

func init() {
	register(&command{
		name:    "bench-generation",
		args:    "--hr HR --zoo ZOO [--dataset mnist] -o REPORT_DIR [flags]",
		summary: "sample models, fine-tune them next to random initialisations, and tabulate test accuracy per epoch",
		help: `
Reproduces the table of Schürholt et al. (NeurIPS 2022) for a zoo: draws
-n samples from the hyper-representation (as "hyperrep sample" does, --method
kde from the --anchors top30 by default), fine-tunes them for --epochs
epochs on --dataset, fine-tunes the zoo's random initialisations of the same
graph (its epoch-0 checkpoints of the samples' activation, at most -n)
alike, and sets both next to those zoo models' own records at the same
epochs. Reports the mean ± standard deviation of test accuracy at epochs 0
(no training), 1 and --epochs.

Fine-tuning follows the zoo: its --train-samples images of the training
set (drawn by its split seed), its batch, and Adam at --lr unless told
otherwise. --dataset may differ from the zoo's: a hyper-representation of a
Fashion-MNIST zoo then gives initialisations for MNIST (transfer).

Writes REPORT_DIR/report.md (the table), report.json (the table, every
model's accuracy per epoch and every sample's record) and generation.png
(accuracy against epoch per group). Prints the table, or with --json the
report.

Examples:
  hyperrep bench-generation --hr hr --zoo zoo -o gen-report
  hyperrep bench-generation --hr hr-fashion --zoo zoo-fashion --dataset mnist -o transfer
  hyperrep bench-generation --hr hr --zoo zoo -n 10 --epochs 1 --where 'epoch==10' -o quick`,
		setup: func(fs *flag.FlagSet) func([]string) error {
			hr := fs.String("hr", "", "the hyper-representation directory (required)")
			zooDir := fs.String("zoo", "", "the zoo it was fitted on (required)")
			name := fs.String("dataset", "", "data to fine-tune and test on: mnist, fashion-mnist or idx:DIR (default: the zoo's)")
			n := fs.Int("n", 20, "samples to draw, and most random initialisations to compare")
			method := fs.String("method", generate.KDEMethod, "kde or gaussian")
			anchors := fs.String("anchors", "top30", "anchor checkpoints: topN or all")
			where := fs.String("where", "", `filter on checkpoint properties, e.g. "epoch==10"`)
			seed := fs.Uint64("seed", 0, "seed of the draws")
			epochs := fs.Int("epochs", 5, "epochs of fine-tuning")
			opt := fs.String("optimizer", "adam", "adam, adamw or sgd")
			lr := fs.Float64("lr", 1e-3, "learning rate")
			batch := fs.Int("batch", 0, "samples per step (0: the zoo's)")
			trainN := fs.Int("train-samples", -1, "training images (-1: the zoo's; 0: all)")
			testN := fs.Int("test-samples", -1, "test images (-1: the zoo's; 0: all)")
			workers := fs.Int("workers", 0, "models fine-tuned at once, one thread each (0: one per CPU)")
			o := fs.String("o", "", "report directory (required)")
			asJSON := fs.Bool("json", false, "print the report as JSON")
			rt := runtimeFlags(fs)
			return func(args []string) error {
				switch {
				case len(args) > 0:
					return usagef("bench-generation takes no arguments, got %q", args)
				case *hr == "" || *zooDir == "" || *o == "":
					return usagef("want --hr HR, --zoo ZOO and -o REPORT_DIR")
				case *n < 1:
					return usagef("-n must be at least 1")
				case *epochs < 1:
					return usagef("--epochs must be at least 1")
				case *method != generate.KDEMethod && *method != generate.GaussianMethod:
					return usagef("--method %q, want kde or gaussian", *method)
				}
				if _, err := generate.ParseTop(*anchors); err != nil {
					return usagef("%v", strings.TrimPrefix(err.Error(), "generate: "))
				}
				if _, err := generate.ParseFilter(*where); err != nil {
					return usagef("%v", strings.TrimPrefix(err.Error(), "generate: "))
				}
				cfg := finetune.Config{Optimizer: *opt, LR: *lr, Batch: *batch, Epochs: *epochs, Workers: *workers}
				if *opt == "sgd" {
					cfg.Momentum = 0.9
				}
				ro, err := rt()
				if err != nil {
					return err
				}
				bo := generate.BenchOptions{
					Sample:   generate.Options{Method: *method, N: *n, Seed: *seed, Anchors: *anchors, Where: *where},
					Finetune: cfg,
				}
				return benchGeneration(*hr, *zooDir, *name, *trainN, *testN, *o, *asJSON, bo, ro)
			}
		},
	})
}

func benchGeneration(hr, zooDir, name string, trainN, testN int, outDir string, asJSON bool, o generate.BenchOptions, ro runtime.Options) error {
	if fi, err := os.Stat(outDir); err == nil && !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a directory", outDir)
	}
	z, err := zoo.Open(zooDir)
	if err != nil {
		return err
	}
	if name == "" {
		name = z.Config.Dataset
	}
	if trainN < 0 {
		trainN = z.Config.TrainSamples
	}
	if testN < 0 {
		testN = z.Config.TestSamples
	}
	if o.Finetune.Batch == 0 {
		o.Finetune.Batch = z.Config.Batch
	}
	if err := o.Finetune.Validate(); err != nil {
		return usagef("%s", strings.TrimPrefix(err.Error(), "finetune: "))
	}
	train, test, err := dataset.Open(name)
	if err != nil {
		return err
	}
	if trainN > 0 && trainN < train.N {
		train = train.Subset(trainN, z.Config.SplitSeed)
	}
	if testN > 0 && testN < test.N {
		test = test.Slice(0, testN)
	}
	o.Train, o.Test = train, test
	m, err := autoencoder.Open(hr, ro)
	if err != nil {
		return err
	}
	defer m.Close()
	o.Sample.BatchNorm = batchNormRecomputer(name, 10000, ro)

	bars := map[string]*progress.Bar{}
	lasts := map[string]int64{}
	o.Progress = func(stage string, done, total int64) {
		b := bars[stage]
		if b == nil {
			unit := "steps"
			if stage == "finetune" {
				unit = "model-samples"
			}
			b = newBar("bench-generation: "+stage, total, unit)
			bars[stage] = b
		}
		b.Add(done - lasts[stage])
		lasts[stage] = done
		if done == total {
			b.Finish()
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := generate.Bench(ctx, m, zooDir, o)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	files := []struct {
		name  string
		write func(w io.Writer) error
	}{
		{"report.md", res.WriteMarkdown},
		{"report.json", func(w io.Writer) error {
			e := json.NewEncoder(w)
			e.SetIndent("", "  ")
			return e.Encode(res)
		}},
		{"generation.png", func(w io.Writer) error { return generate.PlotBench(w, res, 720, 480) }},
	}
	for _, f := range files {
		var buf bytes.Buffer
		if err := f.write(&buf); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if err := atomicfile.WriteBytes(filepath.Join(outDir, f.name), buf.Bytes()); err != nil {
			return err
		}
	}
	if asJSON {
		return json.NewEncoder(out).Encode(res)
	}
	if err := res.WriteMarkdown(out); err != nil {
		return err
	}
	fmt.Fprintf(errw, "wrote report.md, report.json and generation.png into %s\n", outDir)
	return nil
}

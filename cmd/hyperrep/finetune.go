package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/finetune"
	"github.com/hyperrep/hyperrep/internal/atomicfile"
	"github.com/hyperrep/hyperrep/internal/progress"
	"github.com/hyperrep/hyperrep/onnx"
)

func init() {
	register(&command{
		name:    "finetune",
		args:    "MODEL.onnx... --dataset mnist|fashion-mnist|idx:DIR --epochs E -o OUT_DIR",
		summary: "train ONNX classifiers on a dataset and score them after every epoch",
		help: `
Fine-tunes each model on the training split with softmax cross-entropy, in
ONNX Runtime, and scores it on the test split before training (epoch 0) and
after every epoch. Any classifier whose one input takes the images ([N, C, H,
W], [N, H, W] or [N, C*H*W], N open or fixed) and whose first output is
logits can be trained: the zoo's checkpoints, PyTorch exports, sampled
models. Its float32 initializers are trained; the written models are the
original graphs with new initializer values. Pixels are scaled to [0, 1], as
the zoo trains; the data order is drawn from --seed and the epoch.

BatchNormalization trains on batch statistics (PyTorch's train mode); the
running statistics the written models use are recomputed on the training
samples after every epoch, and before training with --recompute-bn (for
sampled weights, whose statistics are meaningless).

Models train side by side, one per CPU, each on one thread. Output:
  OUT_DIR/<name>/epoch_NN.onnx  the model after epoch NN (00: as given;
                                --save final keeps only the last epoch)
  OUT_DIR/metrics.jsonl         one line per model and epoch: model, name,
                                epoch, test_acc, test_loss, train_acc,
                                train_loss, seconds; written last, so that
                                it marks a finished run
<name> is the model's file name without .onnx, with as many parent
directories as make the names unique (zoo checkpoints are all model.onnx).
Training metrics at epoch 0 are measured on the training samples; later ones
are the means over the epoch's batches as the model trained.

Examples:
  hyperrep finetune fixtures/cnn-s.onnx --dataset mnist --epochs 2 -o ft
  hyperrep finetune samples/*.onnx --epochs 5 --train-samples 10000 --recompute-bn -o ft
  hyperrep finetune zoo/models/*/checkpoint_000000/model.onnx --optimizer sgd --lr 0.01 --epochs 1 --json -o ft | jq .test_acc`,
		setup: func(fs *flag.FlagSet) func([]string) error {
			name := fs.String("dataset", "mnist", "mnist, fashion-mnist or idx:DIR")
			epochs := fs.Int("epochs", 1, "epochs to train")
			opt := fs.String("optimizer", "adam", "adam, adamw or sgd")
			lr := fs.Float64("lr", 1e-3, "learning rate")
			wd := fs.Float64("weight-decay", 0, "weight decay (L2 for adam and sgd, decoupled for adamw)")
			momentum := fs.Float64("momentum", 0.9, "momentum of sgd")
			batch := fs.Int("batch", 32, "samples per step")
			trainN := fs.Int("train-samples", 0, "training images, drawn once from the training set by --split-seed (0: all)")
			testN := fs.Int("test-samples", 0, "test images scored, the first of the test set (0: all)")
			splitSeed := fs.Int64("split-seed", 0, "seed drawing the --train-samples (the zoo's default)")
			seed := fs.Int64("seed", 0, "seed of the data order")
			recompute := fs.Bool("recompute-bn", false, "recompute BatchNorm running statistics on the training samples before training")
			bnN := fs.Int("bn-samples", 0, "training samples BatchNorm statistics are computed on (0: all)")
			save := fs.String("save", "all", "which models to write: all (every epoch), final or none")
			workers := fs.Int("workers", 0, "models trained at once, one thread each (0: one per CPU)")
			o := fs.String("o", "", "output directory (required)")
			asJSON := fs.Bool("json", false, "print the metrics as JSON lines, as metrics.jsonl holds them")
			return func(args []string) error {
				if len(args) == 0 {
					return usagef("no model given")
				}
				if *o == "" {
					return usagef("no output directory: use -o OUT_DIR")
				}
				if *epochs < 0 || *batch < 1 || *trainN < 0 || *testN < 0 || *bnN < 0 || *workers < 0 {
					return usagef("--batch must be positive; --epochs, sample counts and --workers not negative")
				}
				if *save != "all" && *save != "final" && *save != "none" {
					return usagef("--save %q: want all, final or none", *save)
				}
				names, err := modelNames(args)
				if err != nil {
					return usagef("%v", err)
				}
				cfg := finetune.Config{Optimizer: *opt, LR: *lr, WeightDecay: *wd, Batch: *batch, Epochs: *epochs,
					Seed: *seed, RecomputeBatchNorm: *recompute, BatchNormSamples: *bnN, Workers: *workers}
				if *opt == "sgd" {
					cfg.Momentum = *momentum
				}
				if err := cfg.Validate(); err != nil {
					return usagef("%s", strings.TrimPrefix(err.Error(), "finetune: "))
				}
				train, test, err := dataset.Open(*name)
				if err != nil {
					return err
				}
				if *trainN > 0 && *trainN < train.N {
					train = train.Subset(*trainN, *splitSeed)
				}
				if *testN > 0 && *testN < test.N {
					test = test.Slice(0, *testN)
				}
				return finetuneModels(args, names, train, test, cfg, *o, *save, *asJSON)
			}
		},
	})
}

// finetuneRecord is one line of metrics.jsonl and of --json.
type finetuneRecord struct {
	Model string `json:"model"` // the path given
	Name  string `json:"name"`  // its directory under OUT_DIR
	finetune.Epoch
}

func finetuneModels(paths, names []string, train, test *dataset.Set, cfg finetune.Config, dir, save string, asJSON bool) error {
	models := make([]*onnx.Model, len(paths))
	for i, p := range paths {
		m, err := onnx.Read(p)
		if err != nil {
			return err
		}
		models[i] = m
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// A metrics.jsonl left by an earlier run would make a failed one look
	// finished.
	metricsPath := filepath.Join(dir, "metrics.jsonl")
	if err := os.Remove(metricsPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	atomicfile.RemoveTemps(dir)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var bar *progress.Bar
	var last int64
	cfg.Progress = func(done, total int64) {
		if bar == nil {
			bar = newBar("finetune", total, "model-samples")
		}
		bar.Add(done - last)
		last = done
	}
	start := time.Now()
	res, err := finetune.Run(ctx, models, train, test, cfg, func(i int, e finetune.Epoch, m *onnx.Model) error {
		if save == "none" || save == "final" && e.Epoch != cfg.Epochs {
			return nil
		}
		md := filepath.Join(dir, names[i])
		if err := os.MkdirAll(md, 0o755); err != nil {
			return err
		}
		return m.Write(filepath.Join(md, fmt.Sprintf("epoch_%02d.onnx", e.Epoch)))
	})
	if bar != nil {
		bar.Finish()
	}
	took := time.Since(start)
	var me *finetune.ModelError
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("interrupted; the models written so far are in %s, without metrics.jsonl", dir)
	case errors.As(err, &me):
		return fmt.Errorf("%s: %w", paths[me.Index], me.Err)
	case err != nil:
		return err
	}
	var records []finetuneRecord
	for i, eps := range res {
		for _, e := range eps {
			records = append(records, finetuneRecord{Model: paths[i], Name: names[i], Epoch: e})
		}
	}
	if err := atomicfile.Write(metricsPath, func(f *os.File) error { return writeRecords(f, records) }); err != nil {
		return err
	}
	if asJSON {
		return writeRecords(out, records)
	}
	printFinetuneTable(res, names, cfg.Epochs)
	modelEpochs := float64(len(models) * cfg.Epochs)
	fmt.Fprintf(out, "fine-tuned %d models for %d epochs of %d samples in %.1f s: %.2f model-epochs/s; metrics in %s\n",
		len(models), cfg.Epochs, train.N, took.Seconds(), modelEpochs/took.Seconds(), metricsPath)
	return nil
}

func writeRecords(w io.Writer, records []finetuneRecord) error {
	enc := json.NewEncoder(w)
	for _, r := range records {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// printFinetuneTable prints each model's test accuracy after every epoch
// (at most the first four and the last, with many epochs).
func printFinetuneTable(res [][]finetune.Epoch, names []string, epochs int) {
	var cols []int
	for e := 0; e <= epochs; e++ {
		if e < 4 || e == epochs {
			cols = append(cols, e)
		}
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprint(tw, "model")
	for _, e := range cols {
		fmt.Fprintf(tw, "\tacc@%d", e)
	}
	fmt.Fprint(tw, "\ttrain loss\tseconds\n")
	for i, eps := range res {
		fmt.Fprint(tw, names[i])
		var secs float64
		for _, e := range eps {
			secs += e.Seconds
		}
		for _, e := range cols {
			fmt.Fprintf(tw, "\t%.2f %%", 100*eps[e].TestAccuracy)
		}
		fmt.Fprintf(tw, "\t%.4f\t%.1f\n", eps[len(eps)-1].TrainLoss, secs)
	}
}

// modelNames gives each model path a directory name: its file name without
// the extension, with as many parent directories (joined by "_") as make
// the names unique. A path given twice is an error.
func modelNames(paths []string) ([]string, error) {
	parts := make([][]string, len(paths))
	seen := map[string]bool{}
	for i, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		if seen[abs] {
			return nil, fmt.Errorf("model %s given twice", p)
		}
		seen[abs] = true
		abs = strings.TrimSuffix(abs, filepath.Ext(abs))
		parts[i] = strings.Split(strings.TrimPrefix(abs, string(filepath.Separator)), string(filepath.Separator))
	}
	names := make([]string, len(paths))
	for k := 1; ; k++ {
		count := map[string]int{}
		for i, ps := range parts {
			names[i] = strings.Join(ps[max(len(ps)-k, 0):], "_")
			count[names[i]]++
		}
		unique := true
		for name, c := range count {
			if c > 1 && k > len(strings.Split(name, "_"))+64 {
				return nil, fmt.Errorf("models with the same name %s", name)
			}
			unique = unique && c == 1
		}
		if unique {
			return names, nil
		}
	}
}

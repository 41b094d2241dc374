package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hyperrep/hyperrep/zoo"
)

// zooFlags lists which flags each zoo subcommand takes; the zoo command
// declares them all on one flag set.
var zooFlags = map[string][]string{
	"train": {"arch", "dataset", "activation", "init", "optimizer", "lr", "weight-decay", "momentum", "dropout",
		"seeds", "grid", "epochs", "train-samples", "test-samples", "batch", "split-seed", "shard", "threads", "population", "o", "json"},
	"merge": {"o"},
	"ls":    {"json"},
}

func init() {
	register(&command{
		name:    "zoo",
		args:    "train|merge|ls ...",
		summary: "train model zoos over a hyperparameter grid, merge shards, list models",
		help: `
hyperrep zoo train --arch cnn-s|cnn-l|mlp --dataset D [grid flags | --grid FILE] --epochs E -o ZOO [--json]
  Trains every model of the grid into the directory ZOO: zoo.json, and per
  model models/<id>/params.json, result.jsonl (train and test loss and
  accuracy per epoch) and checkpoint_000NNN/model.onnx (000000: the initial
  weights) with the optimiser state beside it. The grid is every combination
  of the comma-separated lists (--seeds N means seeds 0..N-1), or a YAML or
  JSON file with the same keys (activation, init, optimizer, lr,
  weight_decay, momentum, dropout; seeds as a count or a list). Models that
  share activation and optimiser train together in one ONNX Runtime graph,
  one graph per thread. Interrupted, the same command resumes where it
  stopped; --epochs may grow to train on. --shard i/n trains the i-th
  (0-based) of n blocks of the grid's models, for "zoo merge". The last
  line gives the throughput, how the workers' time divided between
  training, scoring and the rest, and the mean test accuracy; --json prints
  it as a JSON object.

hyperrep zoo merge ZOO1 ZOO2... -o ZOO
  Joins finished shards (or zoos trained alike) into a new directory.

hyperrep zoo ls ZOO [--json]
  Lists the models with their hyperparameters and last metrics.

Architectures: cnn-s (the Model Zoos small CNN, 2,464 parameters on MNIST),
cnn-l (Conv 16-32-15 + FC 20, 9,665 on MNIST, 10,853 on 3x32x32), mlp
(784-64-32-10). Activations: tanh, relu, sigmoid, gelu. Inits: uniform,
normal, kaiming_uniform, kaiming_normal, xavier_uniform, xavier_normal.
Optimizers: adam, adamw, sgd (with --momentum).

Examples:
  hyperrep zoo train --arch cnn-s --dataset mnist --seeds 4 --epochs 2 --train-samples 5000 -o zoo
  hyperrep zoo train --activation tanh,relu --optimizer adam,sgd --lr 1e-3,1e-2 --seeds 3 --epochs 5 -o zoo
  hyperrep zoo train --grid grid.yaml --epochs 50 --shard 0/4 -o zoo-0
  hyperrep zoo merge zoo-0 zoo-1 zoo-2 zoo-3 -o zoo
  hyperrep zoo ls zoo --json`,
		setup: func(fs *flag.FlagSet) func([]string) error {
			f := zooTrainFlags(fs)
			o := fs.String("o", "", "output zoo directory (train, merge; required)")
			asJSON := fs.Bool("json", false, "train: the summary as a JSON object; ls: one JSON object per model per line")
			return func(args []string) error {
				if len(args) == 0 {
					return usagef("want a subcommand: train, merge or ls")
				}
				sub, args := args[0], args[1:]
				allowed, ok := zooFlags[sub]
				if !ok {
					return usagef("unknown subcommand %q (want train, merge or ls)", sub)
				}
				var bad []string
				fs.Visit(func(fl *flag.Flag) {
					if !contains(allowed, fl.Name) {
						bad = append(bad, "--"+fl.Name)
					}
				})
				if len(bad) > 0 {
					return usagef("zoo %s does not take %s", sub, strings.Join(bad, ", "))
				}
				switch sub {
				case "train":
					if len(args) > 0 {
						return usagef("zoo train takes no arguments, got %q", args)
					}
					return zooTrain(fs, f, *o, *asJSON)
				case "merge":
					if len(args) == 0 || *o == "" {
						return usagef("want zoos to merge and -o ZOO")
					}
					if err := zoo.Merge(*o, args...); err != nil {
						return err
					}
					fmt.Fprintf(out, "merged %d zoos into %s\n", len(args), *o)
					return nil
				default:
					if len(args) != 1 {
						return usagef("want one zoo directory, got %d arguments", len(args))
					}
					return zooList(args[0], *asJSON)
				}
			}
		},
	})
}

// trainFlags are zoo train's flags.
type trainFlags struct {
	arch, dataset, grid, shard                          *string
	activation, init, optimizer, lr, wd, momentum, drop *string
	seeds, epochs, trainN, testN, batch, threads, pop   *int
	splitSeed                                           *int64
}

func zooTrainFlags(fs *flag.FlagSet) *trainFlags {
	return &trainFlags{
		arch:       fs.String("arch", "cnn-s", "train: architecture, "+strings.Join(zoo.Architectures, ", ")),
		dataset:    fs.String("dataset", "mnist", "train: mnist, fashion-mnist or idx:DIR"),
		grid:       fs.String("grid", "", "train: grid file (YAML or JSON) instead of the grid flags"),
		activation: fs.String("activation", "tanh", "train: activations, comma-separated"),
		init:       fs.String("init", "xavier_uniform", "train: initialisations, comma-separated"),
		optimizer:  fs.String("optimizer", "adam", "train: optimizers, comma-separated: adam, adamw, sgd"),
		lr:         fs.String("lr", "1e-3", "train: learning rates, comma-separated"),
		wd:         fs.String("weight-decay", "0", "train: weight decays, comma-separated"),
		momentum:   fs.String("momentum", "0.9", "train: SGD momenta, comma-separated"),
		drop:       fs.String("dropout", "0", "train: dropout rates after every hidden layer's activation, comma-separated"),
		seeds:      fs.Int("seeds", 1, "train: seeds per combination (0..N-1)"),
		epochs:     fs.Int("epochs", 10, "train: epochs"),
		trainN:     fs.Int("train-samples", 0, "train: training images per epoch, drawn once from the training set (0: all)"),
		testN:      fs.Int("test-samples", 0, "train: test images every model is scored on, before training and after each epoch (0: all; fewer is faster and noisier)"),
		batch:      fs.Int("batch", 32, "train: batch size"),
		splitSeed:  fs.Int64("split-seed", 0, "train: seed drawing the --train-samples"),
		shard:      fs.String("shard", "", "train: i/n, the i-th (0-based) of n blocks of models"),
		threads:    fs.Int("threads", 0, "train: populations trained at once, one thread each (0: one per CPU)"),
		pop:        fs.Int("population", 0, "train: most models per graph (0: "+strconv.Itoa(zoo.DefaultPopulation)+"; a model alone trains beside a copy of itself)"),
	}
}

var gridFlagNames = []string{"activation", "init", "optimizer", "lr", "weight-decay", "momentum", "dropout", "seeds"}

func zooTrain(fs *flag.FlagSet, f *trainFlags, dir string, asJSON bool) error {
	if dir == "" {
		return usagef("no output directory: use -o ZOO")
	}
	job := zoo.Job{Dataset: *f.dataset, Architecture: *f.arch, Epochs: *f.epochs, Batch: *f.batch,
		TrainSamples: *f.trainN, TestSamples: *f.testN, SplitSeed: *f.splitSeed, Workers: *f.threads, Population: *f.pop}
	if *f.epochs < 1 || *f.batch < 1 || *f.trainN < 0 || *f.testN < 0 || *f.threads < 0 || *f.pop < 0 || *f.seeds < 1 {
		return usagef("--epochs, --batch and --seeds must be positive; sample counts, --threads and --population not negative")
	}
	if !contains(zoo.Architectures, *f.arch) {
		return usagef("unknown architecture %q (want %s)", *f.arch, strings.Join(zoo.Architectures, ", "))
	}
	if *f.shard != "" {
		i, n, ok := parseShard(*f.shard)
		if !ok {
			return usagef("--shard %q: want i/n with 0 <= i < n", *f.shard)
		}
		job.Shard, job.Shards = i, n
	}
	if *f.grid != "" {
		var set []string
		fs.Visit(func(fl *flag.Flag) {
			if contains(gridFlagNames, fl.Name) {
				set = append(set, "--"+fl.Name)
			}
		})
		if len(set) > 0 {
			return usagef("--grid and %s both give the grid; use one", strings.Join(set, ", "))
		}
		g, err := zoo.ReadGrid(*f.grid)
		if err != nil {
			return err
		}
		job.Grid = g
	} else {
		g, err := gridFromFlags(f)
		if err != nil {
			return usagef("%v", err)
		}
		job.Grid = g
	}
	models, err := job.Grid.Models()
	if err != nil {
		return usagef("%v", oneLine(err))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var bar interface {
		Add(int64)
		Finish()
	}
	var last int64
	job.Progress = func(done, total int64) {
		if bar == nil {
			bar = newBar("zoo train", total, "model-samples")
		}
		bar.Add(done - last)
		last = done
	}
	var timing zoo.Timing
	job.Timing = &timing
	start := time.Now()
	err = zoo.Train(ctx, dir, job)
	if bar != nil {
		bar.Finish()
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted; finished epochs are saved in %s, rerun the same command to resume", dir)
	}
	if err != nil {
		return err
	}
	return summarize(dir, len(models), last, time.Since(start), timing, asJSON)
}

// trainSummary is zoo train --json's output.
type trainSummary struct {
	Zoo              string  `json:"zoo"`
	Models           int     `json:"models"`
	Epochs           int     `json:"epochs"`
	TrainSamples     int     `json:"train_samples"`
	TestSamples      int     `json:"test_samples"`
	ModelEpochs      float64 `json:"model_epochs"` // trained by this run
	Seconds          float64 `json:"seconds"`
	ModelEpochsPerS  float64 `json:"model_epochs_per_second"`
	MeanTestAccuracy float64 `json:"mean_test_accuracy"` // of the models' last epochs
	// The workers' seconds, summed over the workers.
	Workers struct {
		Graphs      float64 `json:"graphs"`
		Training    float64 `json:"training"`
		Scoring     float64 `json:"scoring"`
		Checkpoints float64 `json:"checkpoints"`
	} `json:"worker_seconds"`
}

// summarize prints what the training did: its throughput in model-epochs
// per second (of the epochs this run trained), where the workers spent
// their time, and the models' final test accuracy.
func summarize(dir string, planned int, samples int64, took time.Duration, t zoo.Timing, asJSON bool) error {
	z, err := zoo.Open(dir)
	if err != nil {
		return err
	}
	var acc float64
	n := 0
	for _, m := range z.Models {
		if e := m.Final(); e != nil {
			acc += e.TestAccuracy
			n++
		}
	}
	perEpoch := int64(z.Config.TrainSamples)
	perEpoch = (perEpoch + int64(z.Config.Batch) - 1) / int64(z.Config.Batch) * int64(z.Config.Batch)
	modelEpochs := float64(samples) / float64(perEpoch)
	if asJSON {
		s := trainSummary{Zoo: dir, Models: planned, Epochs: z.Config.Epochs, TrainSamples: z.Config.TrainSamples,
			TestSamples: z.Config.TestSamples, ModelEpochs: modelEpochs, Seconds: took.Seconds(),
			ModelEpochsPerS: modelEpochs / took.Seconds(), MeanTestAccuracy: acc / float64(max(n, 1))}
		s.Workers.Graphs, s.Workers.Training = t.Graphs.Seconds(), t.Training.Seconds()
		s.Workers.Scoring, s.Workers.Checkpoints = t.Scoring.Seconds(), t.Checkpoints.Seconds()
		return json.NewEncoder(out).Encode(s)
	}
	fmt.Fprintf(out, "zoo %s: %d models, %d epochs of %d samples; trained %.0f model-epochs in %.1f s: %.2f model-epochs/s%s; mean test accuracy %.2f %%\n",
		dir, planned, z.Config.Epochs, z.Config.TrainSamples, modelEpochs, took.Seconds(), modelEpochs/took.Seconds(),
		timeShares(t, z.Config.TestSamples), 100*acc/float64(max(n, 1)))
	return nil
}

// timeShares says how the workers' time divided between training,
// scoring on the test images and the rest, as " (workers: 74 % training,
// 23 % scoring 10000 test images, 2 % graphs and checkpoints)", or
// nothing when the run trained nothing.
func timeShares(t zoo.Timing, testSamples int) string {
	total := t.Total()
	if total <= 0 || t.Training <= 0 {
		return ""
	}
	pct := func(d time.Duration) float64 { return 100 * float64(d) / float64(total) }
	return fmt.Sprintf(" (workers: %.0f %% training, %.0f %% scoring %d test images, %.0f %% graphs and checkpoints)",
		pct(t.Training), pct(t.Scoring), testSamples, pct(t.Graphs+t.Checkpoints))
}

func gridFromFlags(f *trainFlags) (zoo.Grid, error) {
	g := zoo.Grid{Activation: splitList(*f.activation), Init: splitList(*f.init), Optimizer: splitList(*f.optimizer)}
	for _, l := range []struct {
		name string
		s    string
		dst  *[]float64
	}{{"--lr", *f.lr, &g.LR}, {"--weight-decay", *f.wd, &g.WeightDecay}, {"--momentum", *f.momentum, &g.Momentum}, {"--dropout", *f.drop, &g.Dropout}} {
		for _, v := range splitList(l.s) {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return g, fmt.Errorf("%s %q: %q is not a number", l.name, l.s, v)
			}
			*l.dst = append(*l.dst, x)
		}
	}
	for i := range *f.seeds {
		g.Seeds = append(g.Seeds, int64(i))
	}
	return g, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func parseShard(s string) (i, n int, ok bool) {
	a, b, found := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	return i, n, found && err1 == nil && err2 == nil && i >= 0 && i < n
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// lsRecord is one model in zoo ls --json.
type lsRecord struct {
	zoo.Params
	Epochs        int      `json:"epochs"`
	TrainLoss     *float64 `json:"train_loss"`
	TrainAccuracy *float64 `json:"train_accuracy"`
	TestLoss      *float64 `json:"test_loss"`
	TestAccuracy  *float64 `json:"test_accuracy"`
}

func zooList(dir string, asJSON bool) error {
	z, err := zoo.Open(dir)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		for _, m := range z.Models {
			r := lsRecord{Params: m.Params}
			if e := m.Final(); e != nil {
				r.Epochs, r.TrainLoss, r.TrainAccuracy = e.Epoch, e.TrainLoss, e.TrainAccuracy
				r.TestLoss, r.TestAccuracy = &e.TestLoss, &e.TestAccuracy
			}
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	c := z.Config
	fmt.Fprintf(out, "%s: %s on %s (%dx%dx%d), %d parameters, %d models, %d epochs of %d samples, batch %d\n",
		dir, c.Architecture, c.Dataset, c.Input[0], c.Input[1], c.Input[2], c.Parameters, len(z.Models), c.Epochs, c.TrainSamples, c.Batch)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "model\tepochs\ttrain loss\ttrain acc\ttest loss\ttest acc")
	pct := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f %%", 100**v)
	}
	loss := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.4f", *v)
	}
	for _, m := range z.Models {
		e := m.Final()
		if e == nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\n", m.ID)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\t%s\t%s\n", m.ID, e.Epoch, c.Epochs, loss(e.TrainLoss), pct(e.TrainAccuracy),
			loss(&e.TestLoss), pct(&e.TestAccuracy))
	}
	return tw.Flush()
}

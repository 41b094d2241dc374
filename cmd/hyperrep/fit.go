package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	goruntime "runtime"
	"strconv"
	"syscall"

	"github.com/hyperrep/hyperrep/autoencoder"
	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/internal/atomicfile"
	"github.com/hyperrep/hyperrep/internal/progress"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/runtime"
)

func init() {
	register(&command{
		name:    "fit",
		args:    "--zoo ZOO -o HR [flags]",
		summary: "learn a hyper-representation of a zoo: a transformer autoencoder over weight tokens",
		help: `
Tokenizes every checkpoint of the zoo, splits its models into training,
validation and test models, and trains a SANE-style autoencoder on the
training models' checkpoints in ONNX Runtime: loss (1-gamma)*masked MSE of
the reconstructed tokens + gamma*NT-Xent between two augmented views of each
model (permuted hidden units, multiplicative noise, random windows of
--context tokens, masked tokens).

Writes the directory HR: encoder.onnx and decoder.onnx (plain ONNX, any ONNX
Runtime runs them), hyperrep.json (configuration, token layout,
normalisation, split, versions), README.md (a model card), log.jsonl (train
and validation losses per epoch) and the state to resume from. Interrupted
or killed, the same command resumes; a larger --epochs trains on.

Token values are normalised per tensor over the training models (a layer's
weights and biases each with their own mean and standard deviation), or
with --normalise layer per layer: biases are small next to weights, and
normalised with them they hardly show whether a model has trained at all.
The encoder reads each value and its square (--squares=false: the values
alone), which tells trained weights from initial ones of the same scale.
On a 64-model cnn-s grid zoo the two raised the held-out R² of test
accuracy from 0.876 to 0.948 (mean of seven splits; see probe --help).

The embedding of a model is the mean of its token latents, or with --pooling
token the latent of a learned compression token. With the defaults, a cnn-s
zoo of 56 models x 6 checkpoints takes about 15 minutes on 2 cores, and
held-out models keep their MNIST accuracy within 2 points when reconstructed.

Examples:
  hyperrep fit --zoo zoo -o hr
  hyperrep fit --zoo zoo -o hr-small --epochs 3 --d 32 --layers 1 --heads 2 --latent 8`,
		setup: func(fs *flag.FlagSet) func([]string) error {
			def := autoencoder.DefaultConfig()
			zooDir := fs.String("zoo", "", "the zoo directory (required)")
			o := fs.String("o", "", "output directory (required)")
			c := def
			fs.IntVar(&c.D, "d", def.D, "model width")
			fs.IntVar(&c.Layers, "layers", def.Layers, "transformer blocks of the encoder, and of the decoder")
			fs.IntVar(&c.Heads, "heads", def.Heads, "attention heads")
			fs.IntVar(&c.Latent, "latent", def.Latent, "latent width per token, and of the embedding")
			fs.IntVar(&c.Project, "projection", def.Project, "output width of the NT-Xent projection head")
			fs.StringVar(&c.Pooling, "pooling", def.Pooling, "embedding: mean of the token latents, or token (a learned compression token)")
			fs.StringVar(&c.Normalise, "normalise", def.Normalise, "normalise token values per tensor (a layer's weights and biases apart), or per layer")
			fs.BoolVar(&c.Squares, "squares", def.Squares, "the encoder reads each token value's square beside it")
			fs.IntVar(&c.TokenSize, "token-size", def.TokenSize, "values per token")
			fs.IntVar(&c.Context, "context", def.Context, "tokens per window")
			fs.IntVar(&c.Epochs, "epochs", def.Epochs, "epochs over the training checkpoints")
			fs.IntVar(&c.Batch, "batch", def.Batch, "models per step (two views each)")
			fs.Float64Var(&c.Gamma, "gamma", def.Gamma, "weight of NT-Xent in the loss")
			fs.Float64Var(&c.Temperature, "temperature", def.Temperature, "NT-Xent temperature")
			fs.Float64Var(&c.LR, "lr", def.LR, "peak learning rate (one-cycle schedule, AdamW)")
			fs.Float64Var(&c.WeightDecay, "weight-decay", def.WeightDecay, "AdamW weight decay")
			fs.Float64Var(&c.ClipNorm, "clip", def.ClipNorm, "gradient norm clipping (0: none)")
			fs.BoolVar(&c.Permute, "permute", def.Permute, "augment with function-preserving permutations")
			fs.Float64Var(&c.Noise, "noise", def.Noise, "standard deviation of multiplicative weight noise")
			fs.Float64Var(&c.MaskRate, "mask-rate", def.MaskRate, "probability that a token's input is zeroed")
			fs.Float64Var(&c.Validation, "validation", def.Validation, "share of models held out for validation")
			fs.Float64Var(&c.Test, "test", def.Test, "share of models held out for tests")
			seed := fs.Uint64("seed", def.Seed, "seed of the split, the initial weights and the augmentations")
			rt := runtimeFlags(fs)
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("fit takes no arguments, got %q", args)
				}
				if *zooDir == "" || *o == "" {
					return usagef("want --zoo ZOO and -o HR")
				}
				c.Seed = *seed
				opts, err := rt()
				if err != nil {
					return err
				}
				return fitZoo(*zooDir, *o, c, opts)
			}
		},
	})
	register(&command{
		name:    "embed",
		args:    "--hr HR (--zoo ZOO | MODEL.onnx...) -o EMB.csv [--json]",
		summary: "embed models with a hyper-representation: one row of embedding values per model",
		help: `
Encodes each checkpoint of a zoo (--zoo) or each model given, which must have
the architecture of the zoo the hyper-representation was fitted on, and writes
one row per checkpoint or model: its id (the zoo's model id, or the path), the
epoch (for a zoo), which side of the hyper-representation's split the model
is on (train, validation, test, or empty), and the embedding values e0, e1, ...
as CSV, or with --json as one JSON object per line.

Examples:
  hyperrep embed --hr hr --zoo zoo -o embeddings.csv
  hyperrep embed --hr hr model.onnx other.onnx -o emb.jsonl --json`,
		setup: func(fs *flag.FlagSet) func([]string) error {
			hr := fs.String("hr", "", "the hyper-representation directory (required)")
			zooDir := fs.String("zoo", "", "embed every checkpoint of this zoo")
			o := fs.String("o", "", "output file (required)")
			asJSON := fs.Bool("json", false, "write JSON lines instead of CSV")
			rt := runtimeFlags(fs)
			return func(args []string) error {
				switch {
				case *hr == "" || *o == "":
					return usagef("want --hr HR and -o FILE")
				case (*zooDir == "") == (len(args) == 0):
					return usagef("want either --zoo ZOO or models, not both nor neither")
				}
				opts, err := rt()
				if err != nil {
					return err
				}
				return embed(*hr, *zooDir, args, *o, *asJSON, opts)
			}
		},
	})
	register(&command{
		name:    "reconstruct",
		args:    "--hr HR MODEL.onnx -o OUT.onnx [--dataset mnist]",
		summary: "encode and decode a model with a hyper-representation, and write the result",
		help: `
Writes MODEL.onnx with its weights replaced by what the hyper-representation's
decoder makes of their encoding, and reports how far they moved. With
--dataset, also reports the test accuracy of the model before and after.

Example:
  hyperrep reconstruct --hr hr zoo/models/M/checkpoint_000005/model.onnx -o rec.onnx --dataset mnist`,
		setup: func(fs *flag.FlagSet) func([]string) error {
			hr := fs.String("hr", "", "the hyper-representation directory (required)")
			o := fs.String("o", "", "output model (required)")
			name := fs.String("dataset", "", "score before and after on this dataset's test split: mnist, fashion-mnist or idx:DIR")
			samples := fs.Int("samples", 0, "score only the first N samples (0: all)")
			rt := runtimeFlags(fs)
			return func(args []string) error {
				if *hr == "" || *o == "" || len(args) != 1 {
					return usagef("want --hr HR, one model and -o OUT.onnx")
				}
				if *samples < 0 {
					return usagef("--samples must not be negative")
				}
				opts, err := rt()
				if err != nil {
					return err
				}
				var set *dataset.Set
				if *name != "" {
					if set, err = dataset.Load(*name, "test"); err != nil {
						return err
					}
					if *samples > 0 && *samples < set.N {
						set = set.Slice(0, *samples)
					}
				}
				return reconstruct(*hr, args[0], *o, set, opts)
			}
		},
	})
}

// runtimeFlags declares --threads and --device and returns their parser.
func runtimeFlags(fs *flag.FlagSet) func() (runtime.Options, error) {
	threads := fs.Int("threads", 0, "ONNX Runtime threads (0: one per CPU)")
	device := fs.String("device", "cpu", "cpu, cuda or cuda:N")
	return func() (runtime.Options, error) {
		if *threads < 0 {
			return runtime.Options{}, usagef("--threads must not be negative")
		}
		dev, err := runtime.ParseDevice(*device)
		if err != nil {
			return runtime.Options{}, usagef("%v", err)
		}
		n := *threads
		if n == 0 {
			n = goruntime.NumCPU()
		}
		return runtime.Options{Device: dev, Threads: n}, nil
	}
}

func fitZoo(zooDir, dir string, c autoencoder.Config, opts runtime.Options) error {
	// SIGTERM too: a batch system's way to stop a job. Fit then saves its
	// state before returning.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bars := map[string]*progress.Bar{}
	last := map[string]int{}
	report := func(stage string, done, total int) {
		b, ok := bars[stage]
		if !ok {
			// A resumed fit's bar counts the steps left, for an honest rate.
			label := map[string]string{"tokenize": "fit: tokenize", "train": "fit: train"}[stage]
			if stage == "train" && done > 0 {
				label += fmt.Sprintf(" (resumed at step %d)", done)
			}
			unit := map[string]string{"tokenize": "checkpoints", "train": "steps"}[stage]
			from := 0
			if stage == "train" {
				from = done
			}
			b = newBar(label, int64(total-from), unit)
			bars[stage], last[stage] = b, from
		}
		b.Add(int64(done - last[stage]))
		last[stage] = done
		if done == total {
			b.Finish()
		}
	}
	log, err := autoencoder.Fit(ctx, zooDir, dir, c, autoencoder.Options{Runtime: opts, Progress: report})
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted; the state is saved in %s: run the same command to resume", dir)
	}
	if err != nil {
		return err
	}
	if len(log) == 0 {
		return nil
	}
	e := log[len(log)-1]
	fmt.Fprintf(out, "%s: %d epochs, %d steps, %.0f s; train loss %.4f (reconstruction %.4f)", dir, e.Epoch, e.Steps, e.Seconds,
		e.Train.Loss, e.Train.Reconstruction)
	if v := e.Validation; v != nil {
		fmt.Fprintf(out, ", validation %.4f (reconstruction %.4f)", v.Loss, v.Reconstruction)
	}
	fmt.Fprintln(out)
	return nil
}

// embedRow is one line of embed's output.
type embedRow struct {
	ID        string    `json:"id"`
	Epoch     *int      `json:"epoch,omitempty"`
	Split     string    `json:"split"`
	Embedding []float32 `json:"embedding"`
}

func embed(hr, zooDir string, paths []string, outPath string, asJSON bool, opts runtime.Options) error {
	m, err := autoencoder.Open(hr, opts)
	if err != nil {
		return err
	}
	defer m.Close()
	var rows []embedRow
	if zooDir != "" {
		_, cps, err := autoencoder.Checkpoints(zooDir)
		if err != nil {
			return err
		}
		for _, cp := range cps {
			rows = append(rows, embedRow{ID: cp.Model, Epoch: &cp.Epoch})
			paths = append(paths, cp.Path)
		}
	} else {
		for _, p := range paths {
			rows = append(rows, embedRow{ID: p})
		}
	}
	side := map[string]string{}
	for name, ids := range map[string][]string{"train": m.Meta.Split.Train, "validation": m.Meta.Split.Validation, "test": m.Meta.Split.Test} {
		for _, id := range ids {
			side[id] = name
		}
	}
	bar := newBar("embed", int64(len(paths)), "models")
	const chunk = 64
	for lo := 0; lo < len(paths); lo += chunk {
		var models []*onnx.Model
		for _, p := range paths[lo:min(lo+chunk, len(paths))] {
			mod, err := onnx.Read(p)
			if err != nil {
				return err
			}
			models = append(models, mod)
		}
		emb, err := m.Embed(models...)
		if err != nil {
			return fmt.Errorf("%s: %w", paths[lo], err)
		}
		for i, e := range emb {
			rows[lo+i].Embedding = e
			rows[lo+i].Split = side[rows[lo+i].ID]
		}
		bar.Add(int64(len(models)))
	}
	bar.Finish()
	var buf bytes.Buffer
	if asJSON {
		enc := json.NewEncoder(&buf)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	} else {
		w := csv.NewWriter(&buf)
		head := []string{"id", "epoch", "split"}
		for i := range m.Meta.Arch.Latent {
			head = append(head, "e"+strconv.Itoa(i))
		}
		w.Write(head)
		for _, r := range rows {
			rec := []string{r.ID, "", r.Split}
			if r.Epoch != nil {
				rec[1] = strconv.Itoa(*r.Epoch)
			}
			for _, v := range r.Embedding {
				rec = append(rec, strconv.FormatFloat(float64(v), 'g', -1, 32))
			}
			w.Write(rec)
		}
		w.Flush()
	}
	if err := atomicfile.WriteBytes(outPath, buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(errw, "embedded %d models into %s (%d values each)\n", len(rows), outPath, m.Meta.Arch.Latent)
	return nil
}

func reconstruct(hr, in, outPath string, set *dataset.Set, opts runtime.Options) error {
	m, err := autoencoder.Open(hr, opts)
	if err != nil {
		return err
	}
	defer m.Close()
	model, err := onnx.Read(in)
	if err != nil {
		return err
	}
	rec, err := m.Reconstruct(model)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	moved, err := relativeChange(model, rec)
	if err != nil {
		return err
	}
	var before, after runtime.Result
	if set != nil {
		eo := runtime.EvalOptions{Options: opts, BatchSize: 1000}
		for _, r := range []struct {
			m   *onnx.Model
			dst *runtime.Result
		}{{model, &before}, {rec, &after}} {
			b, err := r.m.Marshal()
			if err != nil {
				return err
			}
			if *r.dst, err = runtime.Evaluate(context.Background(), b, set, eo); err != nil {
				return err
			}
		}
	}
	if err := rec.Write(outPath); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s -> %s: weights moved by %.2f %% of their norm", in, outPath, 100*moved)
	if set != nil {
		fmt.Fprintf(out, "; %s accuracy %.2f %% -> %.2f %%", set.Name, 100*before.Accuracy, 100*after.Accuracy)
	}
	fmt.Fprintln(out)
	return nil
}

// relativeChange is ‖b − a‖ / ‖a‖ over the float initializers of two
// models of one graph.
func relativeChange(a, b *onnx.Model) (float64, error) {
	var diff, norm float64
	for _, ta := range a.Graph().GetInitializer() {
		tb := b.Initializer(ta.GetName())
		if tb == nil || !onnx.IsFloat(ta.GetDataType()) {
			continue
		}
		va, err := onnx.Float64s(ta)
		if err != nil {
			return 0, err
		}
		vb, err := onnx.Float64s(tb)
		if err != nil {
			return 0, err
		}
		for i := range va {
			diff += (vb[i] - va[i]) * (vb[i] - va[i])
			norm += va[i] * va[i]
		}
	}
	return math.Sqrt(diff / max(norm, 1e-300)), nil
}

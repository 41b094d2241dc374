package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/mat"

	"github.com/hyperrep/hyperrep/autoencoder"
	"github.com/hyperrep/hyperrep/internal/atomicfile"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/probe"
	"github.com/hyperrep/hyperrep/runtime"
	"github.com/hyperrep/hyperrep/zoo"
)

// hyperrepRep is the name of the hyper-representation's column in probe
// reports and of its probes.
const hyperrepRep = "hyperrep"

// probesFile is the file in a report directory that predict reads.
const probesFile = "probes.json"

func init() {
	register(&command{
		name:    "probe",
		args:    "--hr HR --zoo ZOO [--json] [-o REPORT_DIR]",
		summary: "predict test accuracy, epoch and hyperparameters from embeddings, s(W) and W",
		help: `
For every checkpoint of the zoo, computes three representations: features
of the hyper-representation (hyperrep), per-layer weight statistics s(W)
(stats) and the flattened weights W (weights). From each it predicts
test_acc, train_acc, gen_gap (train_acc - test_acc) and epoch by ridge
regression (scored by R², and Kendall's tau for test_acc), and every
hyperparameter that varies in the zoo (activation, init, optimizer, lr,
weight_decay, dropout) by multinomial logistic regression (scored by
accuracy). The probes are scored on the checkpoints of the models the
hyper-representation held out for tests and trained on those of its other
models, with their penalties chosen by cross-validation over those models
(--folds, the checkpoints of a model always in one fold, drawn by --seed;
--folds 1 chooses them on a fifth of the models held out instead). With
few held-out models a score depends much on which they are: probe also
rescores every probe on 1000 resamples of the held-out models (drawn by
--seed), prints the central 90 % of test_acc's R² for each representation
and how often the hyper-representation scored above each baseline, and
writes those for every row into report.md.

The hyper-representation's features (--features) are by default the 0,
12.5, 25, ..., 87.5 and 100 % quantiles of each layer's token latents, per
latent value: they summarise each layer over its tokens, as s(W) summarises
it over its weights. The alternative is the model's embedding, the pooled
latent that sample draws from; a mean over all tokens averages away how
each layer's latents spread. On a 64-model cnn-s grid zoo, fits with d 64,
2+2 blocks, context 128 and 60 epochs (fit's --seed 0 to 6, so seven
different held-out sets of 10 models) predicted held-out test accuracy
with R² 0.939, 0.959, 0.945, 0.944, 0.938, 0.960 and 0.954 from the layer
quantiles (mean 0.948), against s(W)'s 0.911, 0.974, 0.891, 0.916, 0.938,
0.941 and 0.515 (mean 0.869) and W's 0.789, 0.480, 0.644, 0.771, 0.792,
0.805 and 0.860 (mean 0.734). Without fit's --squares they scored mean
0.926, and normalised per layer as well (--normalise layer) 0.876: such
fits mistook freshly initialised models for trained ones. The epoch stays
harder for the hyper-representation than for s(W) (R² mean 0.369 against
0.601). The embedding scored 0.505, 0.627 and 0.608 on the first three
splits, per layer.

A ridge probe's predictions are clipped to the span of the targets it was
fitted on: a linear fit otherwise extrapolates to test accuracies above 1
or negative epochs. On the first three of those splits clipping raised the
held-out R² for test accuracy of the layer quantiles, s(W) and W on every
split (by 0.007 to 0.087).

Prints a table, one row per property and metric and one column per
representation, or with --json the object {"rows": [...]}. With -o, also
writes REPORT_DIR/report.md, report.csv, report.json, probes.json and
representation.json (for hyperrep predict), predicted_test_acc.png and
pca.png (of the hyper-representation's features).

Examples:
  hyperrep probe --hr hr --zoo zoo
  hyperrep probe --hr hr --zoo zoo -o report --json`,
		setup: func(fs *flag.FlagSet) func([]string) error {
			hr := fs.String("hr", "", "the hyper-representation directory (required)")
			zooDir := fs.String("zoo", "", "the zoo directory (required)")
			o := fs.String("o", "", "write the report, probes and figures into this directory")
			asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
			seed := fs.Uint64("seed", 1, "seed of the folds (with --folds 1: of the validation models)")
			folds := fs.Int("folds", probe.DefaultFolds, "folds of the cross-validation over the training models that chooses the penalties; 1: a validation fifth of them")
			features := fs.String("features", autoencoder.FeaturesLayers, "the hyper-representation's features: layers (per-layer quantiles of the token latents) or embedding")
			rt := runtimeFlags(fs)
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("probe takes no arguments, got %q", args)
				}
				if *hr == "" || *zooDir == "" {
					return usagef("want --hr HR and --zoo ZOO")
				}
				if *folds < 1 {
					return usagef("--folds %d, want 1 or more", *folds)
				}
				if *features != autoencoder.FeaturesLayers && *features != autoencoder.FeaturesEmbedding {
					return usagef("--features %q, want layers or embedding", *features)
				}
				opts, err := rt()
				if err != nil {
					return err
				}
				return probeZoo(*hr, *zooDir, *o, *asJSON, *seed, *folds, *features, opts)
			}
		},
	})
	register(&command{
		name:    "predict",
		args:    "--hr HR --probe REPORT_DIR MODEL.onnx... [--json]",
		summary: "predict test accuracy and hyperparameters of models with the probes of hyperrep probe",
		help: `
Reads the probes that "hyperrep probe -o REPORT_DIR" saved and predicts, for
each model given (which must have the architecture of the zoo the probes
were fitted on, from whichever framework), its test accuracy, training
accuracy, generalisation gap, epoch and the hyperparameters that were
probed, from one representation (--from: hyperrep, the embedding by HR, the
default; stats; or weights). Prints one line per model, or with --json one
JSON object per line: {"model": PATH, "test_acc": ..., "activation": ...}.

Examples:
  hyperrep predict --hr hr --probe report model.onnx
  hyperrep predict --hr hr --probe report --from stats --json a.onnx b.onnx`,
		setup: func(fs *flag.FlagSet) func([]string) error {
			hr := fs.String("hr", "", "the hyper-representation directory (required)")
			dir := fs.String("probe", "", "the report directory of hyperrep probe -o (required)")
			from := fs.String("from", hyperrepRep, "the representation to predict from: hyperrep, stats or weights")
			asJSON := fs.Bool("json", false, "print JSON lines")
			rt := runtimeFlags(fs)
			return func(args []string) error {
				switch {
				case *hr == "" || *dir == "":
					return usagef("want --hr HR and --probe REPORT_DIR")
				case len(args) == 0:
					return usagef("want at least one model")
				case *from != hyperrepRep && *from != probe.Stats && *from != probe.Weights:
					return usagef("--from %q, want hyperrep, stats or weights", *from)
				}
				opts, err := rt()
				if err != nil {
					return err
				}
				return predict(*hr, *dir, *from, args, *asJSON, opts)
			}
		},
	})
}

// hyperNames are the hyperparameters probed when they vary in the zoo.
var hyperNames = []string{"activation", "init", "optimizer", "lr", "weight_decay", "dropout"}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func hyperValue(h zoo.Hyper, name string) string {
	switch name {
	case "activation":
		return h.Activation
	case "init":
		return h.Init
	case "optimizer":
		return h.Optimizer
	case "lr":
		return num(h.LR)
	case "weight_decay":
		return num(h.WeightDecay)
	case "dropout":
		return num(h.Dropout)
	}
	return ""
}

// probeData is what probeZoo gathers from a zoo before fitting.
type probeData struct {
	data       *probe.Data
	emb        *mat.Dense
	acc, epoch []float64
	baselines  []*probe.Baseline
	rep        representation
}

// representation is REPORT_DIR/representation.json: which
// hyper-representation's features the hyperrep probes were fitted on, so
// that predict computes the same ones.
type representation struct {
	HR       string `json:"hr"`
	Features string `json:"features"` // autoencoder.FeaturesLayers or FeaturesEmbedding
	Len      int    `json:"length"`
}

// representationFile is that file's name.
const representationFile = "representation.json"

// readRepresentation reads dir's representation.json; reports written
// before it existed probed the embedding.
func readRepresentation(dir string) (representation, error) {
	r := representation{Features: autoencoder.FeaturesEmbedding}
	data, err := os.ReadFile(filepath.Join(dir, representationFile))
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err == nil {
		err = json.Unmarshal(data, &r)
	}
	if err != nil {
		return r, fmt.Errorf("%s: %w", filepath.Join(dir, representationFile), err)
	}
	return r, nil
}

func probeZoo(hr, zooDir, outDir string, asJSON bool, seed uint64, folds int, features string, opts runtime.Options) error {
	if outDir != "" {
		if fi, err := os.Stat(outDir); err == nil && !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", outDir)
		}
	}
	m, err := autoencoder.Open(hr, opts)
	if err != nil {
		return err
	}
	defer m.Close()
	pd, err := gatherProbeData(m, zooDir, seed, features)
	if err != nil {
		return err
	}
	if pd.rep.HR, err = filepath.Abs(hr); err != nil {
		return err
	}
	bar := newBar("probe: fit", int64(len(pd.data.Targets)*len(pd.data.Features)), "probes")
	var last int
	res, err := probe.Run(pd.data, &probe.Options{Folds: folds, Seed: seed, Progress: func(done, total int) {
		bar.Add(int64(done - last))
		last = done
	}})
	if err != nil {
		return err
	}
	bar.Finish()
	var models [probe.Test + 1]int
	for _, part := range pd.data.Split {
		models[part]++
	}
	tested := 0
	for _, m := range pd.data.Models {
		if pd.data.Split[m] == probe.Test {
			tested++
		}
	}
	how := fmt.Sprintf("penalties by %d-fold cross-validation over them", folds)
	if folds == 1 {
		how = fmt.Sprintf("penalties chosen on %d of them", models[probe.Validation])
	}
	fmt.Fprintf(errw, "probe: scored on the %d checkpoints of %d held-out models; fitted on %d other models, %s\n",
		tested, models[probe.Test], models[probe.Train]+models[probe.Validation], how)
	spreads, err := res.Bootstraps(pd.data.Models, bootstrapResamples, seed)
	if err != nil {
		return err
	}
	for _, s := range spreads {
		if s.Property == probe.TestAcc && s.Metric == probe.MetricR2 {
			fmt.Fprintln(errw, spreadLine(s))
		}
	}
	if outDir != "" {
		if err := writeProbeReport(outDir, res, spreads, pd); err != nil {
			return err
		}
	}
	if asJSON {
		return json.NewEncoder(out).Encode(res.Report)
	}
	if err := res.Report.WriteTable(out); err != nil {
		return err
	}
	if outDir != "" {
		fmt.Fprintf(errw, "wrote the report, probes and figures into %s\n", outDir)
	}
	return nil
}

func gatherProbeData(m *autoencoder.Model, zooDir string, seed uint64, features string) (*probeData, error) {
	z, cps, err := autoencoder.Checkpoints(zooDir)
	if err != nil {
		return nil, err
	}
	if zi := m.Meta.Zoo; zi.Architecture != "" && (z.Config.Architecture != zi.Architecture || z.Config.Dataset != zi.Dataset) {
		return nil, fmt.Errorf("zoo %s is of %s on %s, the hyper-representation was fitted on %s on %s",
			zooDir, z.Config.Architecture, z.Config.Dataset, zi.Architecture, zi.Dataset)
	}
	models := map[string]*zoo.Model{}
	for i := range z.Models {
		models[z.Models[i].ID] = &z.Models[i]
	}
	sp := m.Meta.Split
	present := func(ids []string) (in []string) {
		for _, id := range ids {
			if models[id] != nil {
				in = append(in, id)
			}
		}
		return in
	}
	train := present(append(slices.Clone(sp.Train), sp.Validation...))
	test := present(sp.Test)
	if len(test) == 0 || len(train) < 2 {
		return nil, fmt.Errorf("zoo %s holds %d of the hyper-representation's training models and %d of its test models, want at least 2 and 1",
			zooDir, len(train), len(test))
	}
	split, err := probe.SplitModels(train, test, 0.2, seed)
	if err != nil {
		return nil, err
	}

	n := len(cps)
	pd := &probeData{acc: make([]float64, n), epoch: make([]float64, n)}
	trainAcc := make([]float64, n)
	gap := make([]float64, n)
	ids := make([]string, n)
	hyper := make([][]string, len(hyperNames))
	for k := range hyper {
		hyper[k] = make([]string, n)
	}
	for i, cp := range cps {
		zm := models[cp.Model]
		var ep *zoo.Epoch
		for j := range zm.Epochs {
			if zm.Epochs[j].Epoch == cp.Epoch {
				ep = &zm.Epochs[j]
			}
		}
		ids[i] = cp.Model
		if _, ok := split[cp.Model]; !ok {
			split[cp.Model] = probe.Unused
		}
		pd.epoch[i] = float64(cp.Epoch)
		pd.acc[i], trainAcc[i], gap[i] = math.NaN(), math.NaN(), math.NaN()
		if ep != nil {
			pd.acc[i] = ep.TestAccuracy
			if ep.TrainAccuracy != nil {
				trainAcc[i] = *ep.TrainAccuracy
				gap[i] = trainAcc[i] - pd.acc[i]
			}
		}
		for k, name := range hyperNames {
			hyper[k][i] = hyperValue(zm.Hyper, name)
		}
	}

	// Read every checkpoint once: embeddings in chunks, baselines as we go.
	ref, err := onnx.Read(cps[0].Path)
	if err != nil {
		return nil, err
	}
	for _, kind := range []string{probe.Stats, probe.Weights} {
		b, err := probe.NewBaseline(kind, ref)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cps[0].Path, err)
		}
		pd.baselines = append(pd.baselines, b)
	}
	feats := make([][]float64, len(pd.baselines))
	var emb []float64
	width := 0
	bar := newBar("probe: embed", int64(n), "checkpoints")
	const chunk = 64
	for lo := 0; lo < n; lo += chunk {
		var mods []*onnx.Model
		for _, cp := range cps[lo:min(lo+chunk, n)] {
			mod, err := onnx.Read(cp.Path)
			if err != nil {
				return nil, err
			}
			for k, b := range pd.baselines {
				if feats[k], err = b.Append(feats[k], mod); err != nil {
					return nil, fmt.Errorf("%s: %w", cp.Path, err)
				}
			}
			mods = append(mods, mod)
		}
		e, err := m.Features(features, mods...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cps[lo].Path, err)
		}
		for _, row := range e {
			width = len(row)
			for _, v := range row {
				emb = append(emb, float64(v))
			}
		}
		bar.Add(int64(len(mods)))
	}
	bar.Finish()
	pd.emb = mat.NewDense(n, width, emb)

	targets := []probe.Target{{Name: probe.TestAcc, Values: pd.acc, Tau: true}}
	if slices.ContainsFunc(trainAcc, func(v float64) bool { return !math.IsNaN(v) }) {
		targets = append(targets,
			probe.Target{Name: probe.TrainAcc, Values: trainAcc},
			probe.Target{Name: probe.GenGap, Values: gap})
	}
	targets = append(targets, probe.Target{Name: probe.Epoch, Values: pd.epoch})
	for k, name := range hyperNames {
		if len(slices.Compact(slices.Sorted(slices.Values(hyper[k])))) > 1 {
			targets = append(targets, probe.Target{Name: name, Labels: hyper[k]})
		}
	}
	sets := []probe.FeatureSet{{Name: hyperrepRep, X: pd.emb}}
	for k, b := range pd.baselines {
		sets = append(sets, probe.FeatureSet{Name: b.Kind, X: mat.NewDense(n, b.Len(), feats[k])})
	}
	pd.data = &probe.Data{Features: sets, Targets: targets, Models: ids, Split: split}
	pd.rep = representation{Features: features, Len: width}
	return pd, nil
}

// bootstrapResamples is how many resamples of the held-out models give
// the intervals of probe's scores.
const bootstrapResamples = 1000

// spreadLine says in one line how a score moves with the held-out models.
func spreadLine(s *probe.Spread) string {
	var b strings.Builder
	fmt.Fprintf(&b, "probe: %s %s over %d resamples of the %d held-out models, central 90 %%:", s.Property, s.Metric, s.Resamples, s.Models)
	for k, r := range s.Representations {
		sep := ","
		if k == 0 {
			sep = ""
		}
		fmt.Fprintf(&b, "%s %s %.3f to %.3f", sep, r, s.Lo[k], s.Hi[k])
	}
	for k, r := range s.Representations[1:] {
		fmt.Fprintf(&b, "; %s above %s in %.0f %%", s.Representations[0], r, 100*s.Above[0][k+1])
	}
	return b.String()
}

// writeProbeReport writes the report's files into dir, each atomically.
func writeProbeReport(dir string, res *probe.Result, spreads []*probe.Spread, pd *probeData) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []struct {
		name  string
		write func(w io.Writer) error
	}{
		{"report.md", func(w io.Writer) error {
			if err := res.Report.WriteMarkdown(w); err != nil {
				return err
			}
			if len(spreads) == 0 {
				return nil
			}
			fmt.Fprintf(w, "\nHow much the scores owe to which models were held out: each score over %d resamples, with replacement, of the %d held-out models (central 90 %%), and how often the first representation scored higher than each other on the same resample.\n\n",
				spreads[0].Resamples, spreads[0].Models)
			return probe.WriteSpreadsMarkdown(w, spreads)
		}},
		{"report.csv", res.Report.WriteCSV},
		{"report.json", func(w io.Writer) error { return json.NewEncoder(w).Encode(res.Report) }},
		{probesFile, func(w io.Writer) error { return probe.WriteProbes(w, res.Probes, pd.baselines...) }},
		{representationFile, func(w io.Writer) error { return json.NewEncoder(w).Encode(pd.rep) }},
		{"predicted_test_acc.png", func(w io.Writer) error {
			return probe.PlotPredicted(w, res, probe.TestAcc, 400*len(res.Report.Columns), 420)
		}},
		{"pca.png", func(w io.Writer) error {
			return probe.PlotPCA(w, pd.emb, hyperrepRep, []probe.Colouring{{Name: "test_acc", Values: pd.acc}, {Name: "epoch", Values: pd.epoch}}, 1000, 520)
		}},
	}
	for _, f := range files {
		// Rendered in memory first, so that a failing figure leaves no file.
		var buf bytes.Buffer
		if err := f.write(&buf); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if err := atomicfile.WriteBytes(filepath.Join(dir, f.name), buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

func predict(hr, dir, from string, paths []string, asJSON bool, opts runtime.Options) error {
	f, err := os.Open(filepath.Join(dir, probesFile))
	if err != nil {
		return fmt.Errorf("%s: no probes (run hyperrep probe -o %s first): %w", dir, dir, err)
	}
	probes, baselines, err := probe.ReadProbes(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, probesFile), err)
	}
	var use []*probe.Probe
	for _, p := range probes {
		if p.Representation == from {
			use = append(use, p)
		}
	}
	if len(use) == 0 {
		return fmt.Errorf("%s has no probes from %s", dir, from)
	}
	var base *probe.Baseline
	for _, b := range baselines {
		if b.Kind == from {
			base = b
		}
	}
	var m *autoencoder.Model
	var rep representation
	if from == hyperrepRep {
		if rep, err = readRepresentation(dir); err != nil {
			return err
		}
		if m, err = autoencoder.Open(hr, opts); err != nil {
			return err
		}
		defer m.Close()
		if rep.Len != 0 && m.FeaturesLen(rep.Features) != rep.Len {
			return fmt.Errorf("the probes in %s were fitted on %d %s features of %s, %s gives %d: another hyper-representation",
				dir, rep.Len, rep.Features, rep.HR, hr, m.FeaturesLen(rep.Features))
		}
	} else if base == nil {
		return fmt.Errorf("%s has no %s baseline", dir, from)
	}
	// Everything is predicted before anything is printed: a bad model
	// prints nothing.
	var lines []string
	for _, path := range paths {
		mod, err := onnx.Read(path)
		if err != nil {
			return err
		}
		var x []float64
		if m != nil {
			e, err := m.Features(rep.Features, mod)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			for _, v := range e[0] {
				x = append(x, float64(v))
			}
		} else if x, err = base.Append(nil, mod); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		row := mat.NewDense(1, len(x), x)
		type field struct {
			name  string
			value any
		}
		fields := []field{{"model", path}}
		for _, p := range use {
			var v any
			if p.Ridge != nil {
				y, err := p.Ridge.Predict(row)
				if err != nil {
					return fmt.Errorf("%s: %s: %w", path, p.Property, err)
				}
				v = y[0]
			} else {
				y, err := p.Logistic.Predict(row)
				if err != nil {
					return fmt.Errorf("%s: %s: %w", path, p.Property, err)
				}
				v = y[0]
			}
			fields = append(fields, field{p.Property, v})
		}
		var b strings.Builder
		if asJSON {
			b.WriteByte('{')
			for i, fl := range fields {
				k, _ := json.Marshal(fl.name)
				v, err := json.Marshal(fl.value)
				if err != nil {
					return fmt.Errorf("%s: %s: %w", path, fl.name, err)
				}
				if i > 0 {
					b.WriteByte(',')
				}
				b.Write(k)
				b.WriteByte(':')
				b.Write(v)
			}
			b.WriteByte('}')
		} else {
			b.WriteString(path + ":")
			for i, fl := range fields[1:] {
				if i > 0 {
					b.WriteByte(',')
				}
				switch v := fl.value.(type) {
				case float64:
					fmt.Fprintf(&b, " %s %.4g", fl.name, v)
				default:
					fmt.Fprintf(&b, " %s %v", fl.name, v)
				}
			}
		}
		lines = append(lines, b.String())
	}
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	return nil
}

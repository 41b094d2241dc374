package generate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/gonum/stat"

	"github.com/hyperrep/hyperrep/autoencoder"
	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/finetune"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/zoo"
)

// Groups of a generation benchmark.
const (
	GroupSamples = "samples" // drawn from the hyper-representation, then fine-tuned
	GroupRandom  = "random"  // the zoo's initial checkpoints (its grid's random initialisations), fine-tuned alike
	GroupZoo     = "zoo"     // the same zoo models as they trained in the zoo, from its records
)

// BenchOptions say how a generation benchmark runs.
type BenchOptions struct {
	// Sample says how the samples are drawn (method, N, anchors, seed).
	// The random-initialisation group has as many models as the zoo has
	// initial checkpoints of the template's activation, at most N.
	Sample Options
	// Finetune trains both groups alike; Finetune.Epochs is the last
	// epoch reported.
	Finetune    finetune.Config
	Train, Test *dataset.Set
	// Epochs are the epochs reported (0: no training); default 0, 1 and
	// Finetune.Epochs.
	Epochs []int
	// Progress, if set, is told each stage's work done and in all.
	Progress func(stage string, done, total int64)
}

// BenchGroup is one group's test accuracy per model and epoch.
type BenchGroup struct {
	Name   string      `json:"name"`
	About  string      `json:"about"`
	Models []string    `json:"models"`
	Acc    [][]float64 `json:"test_acc"` // [model][epoch index of BenchResult.Epochs]; NaN where unknown
}

// BenchResult is a generation benchmark's outcome: the paper's table of
// mean ± std test accuracy per group and epoch of fine-tuning.
type BenchResult struct {
	Epochs     []int         `json:"epochs"`
	Template   string        `json:"template"`
	Activation string        `json:"activation,omitempty"`
	Anchors    string        `json:"anchors"`
	Method     string        `json:"method"`
	Samples    []Record      `json:"samples"`
	Groups     []*BenchGroup `json:"groups"`
	Rows       []BenchRow    `json:"rows"`
}

// BenchRow is one cell group of the table: a group at one epoch.
type BenchRow struct {
	Group string  `json:"group"`
	Epoch int     `json:"epoch"`
	Mean  float64 `json:"mean"`
	Std   float64 `json:"std"`
	N     int     `json:"n"`
}

// Bench draws samples from the hyper-representation m of the zoo in
// zooDir, fine-tunes them and the zoo's random initialisations of the same
// graph alike, and sets both against the zoo's own training records: what
// Schürholt et al. (NeurIPS 2022) tabulate.
func Bench(ctx context.Context, m *autoencoder.Model, zooDir string, o BenchOptions) (*BenchResult, error) {
	if o.Train == nil || o.Test == nil {
		return nil, errors.New("generate: bench needs training and test data")
	}
	if o.Sample.Method == InterpolateMethod {
		return nil, errors.New("generate: bench draws from a density (kde or gaussian), not interpolate")
	}
	last := o.Finetune.Epochs
	if len(o.Epochs) == 0 {
		o.Epochs = slices.Compact([]int{0, min(1, last), last})
	}
	for _, e := range o.Epochs {
		if e < 0 || e > last {
			return nil, fmt.Errorf("generate: bench reports epoch %d, fine-tuning runs %d", e, last)
		}
	}
	progress := func(stage string) func(done, total int) {
		return func(done, total int) {
			if o.Progress != nil {
				o.Progress(stage, int64(done), int64(total))
			}
		}
	}
	so := o.Sample
	so.Progress = progress("sample")
	samples, err := Run(m, zooDir, so)
	if err != nil {
		return nil, err
	}
	z, cps, err := autoencoder.Checkpoints(zooDir)
	if err != nil {
		return nil, err
	}
	act := samples[0].Record.Activation
	res := &BenchResult{Epochs: o.Epochs, Template: samples[0].Record.Template, Activation: act,
		Anchors: samples[0].Record.Anchors, Method: samples[0].Record.Method}
	// The random initialisations: the zoo's epoch-0 checkpoints of the
	// template's activation, drawn with the grid's init schemes.
	byID := map[string]*zoo.Model{}
	for i := range z.Models {
		byID[z.Models[i].ID] = &z.Models[i]
	}
	var inits []*onnx.Model
	var initIDs []string
	for _, cp := range cps {
		if cp.Epoch != 0 || len(inits) == o.Sample.N {
			continue
		}
		if zm := byID[cp.Model]; zm == nil || act != "" && zm.Hyper.Activation != act {
			continue
		}
		mod, err := onnx.Read(cp.Path)
		if err != nil {
			return nil, err
		}
		inits = append(inits, mod)
		initIDs = append(initIDs, cp.Model)
	}
	if len(inits) == 0 {
		return nil, fmt.Errorf("generate: zoo %s has no initial checkpoint of activation %q", zooDir, act)
	}
	models := make([]*onnx.Model, 0, len(samples)+len(inits))
	names := make([]string, 0, len(samples))
	for _, s := range samples {
		models = append(models, s.Model)
		names = append(names, s.Record.File)
		res.Samples = append(res.Samples, s.Record)
	}
	models = append(models, inits...)
	cfg := o.Finetune
	cfg.Progress = func(done, total int64) {
		if o.Progress != nil {
			o.Progress("finetune", done, total)
		}
	}
	curves, err := finetune.Run(ctx, models, o.Train, o.Test, cfg, nil)
	if err != nil {
		return nil, err
	}
	pick := func(eps []finetune.Epoch) []float64 {
		acc := make([]float64, len(o.Epochs))
		for k, e := range o.Epochs {
			acc[k] = math.NaN()
			for _, r := range eps {
				if r.Epoch == e {
					acc[k] = r.TestAccuracy
				}
			}
		}
		return acc
	}
	gs := &BenchGroup{Name: GroupSamples, Models: names,
		About: fmt.Sprintf("%d %s samples of the %s anchors, fine-tuned", len(samples), res.Method, res.Anchors)}
	gr := &BenchGroup{Name: GroupRandom, Models: initIDs,
		About: fmt.Sprintf("%d initial checkpoints of the zoo (its grid's random initialisations), fine-tuned alike", len(inits))}
	for i, c := range curves {
		if i < len(samples) {
			gs.Acc = append(gs.Acc, pick(c))
		} else {
			gr.Acc = append(gr.Acc, pick(c))
		}
	}
	gz := &BenchGroup{Name: GroupZoo, Models: initIDs,
		About: "the same zoo models at these epochs of their own training in the zoo"}
	for _, id := range initIDs {
		acc := make([]float64, len(o.Epochs))
		for k, e := range o.Epochs {
			acc[k] = math.NaN()
			for _, r := range byID[id].Epochs {
				if r.Epoch == e {
					acc[k] = r.TestAccuracy
				}
			}
		}
		gz.Acc = append(gz.Acc, acc)
	}
	res.Groups = []*BenchGroup{gs, gr, gz}
	for _, g := range res.Groups {
		for k, e := range o.Epochs {
			var v []float64
			for _, a := range g.Acc {
				if !math.IsNaN(a[k]) {
					v = append(v, a[k])
				}
			}
			row := BenchRow{Group: g.Name, Epoch: e, Mean: math.NaN(), Std: math.NaN(), N: len(v)}
			if len(v) > 0 {
				row.Mean, row.Std = stat.PopMeanStdDev(v, nil)
			}
			res.Rows = append(res.Rows, row)
		}
	}
	return res, nil
}

// Row returns the row of a group at an epoch, or nil.
func (r *BenchResult) Row(group string, epoch int) *BenchRow {
	for i := range r.Rows {
		if r.Rows[i].Group == group && r.Rows[i].Epoch == epoch {
			return &r.Rows[i]
		}
	}
	return nil
}

// WriteMarkdown writes the table: one row per group, one column per epoch,
// mean ± standard deviation of the test accuracy in percent.
func (r *BenchResult) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| group | models |")
	for _, e := range r.Epochs {
		fmt.Fprintf(&b, " epoch %d |", e)
	}
	b.WriteString("\n|---|---:|")
	for range r.Epochs {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, g := range r.Groups {
		fmt.Fprintf(&b, "| %s | %d |", g.Name, len(g.Models))
		for _, e := range r.Epochs {
			row := r.Row(g.Name, e)
			if row == nil || row.N == 0 {
				b.WriteString(" – |")
				continue
			}
			fmt.Fprintf(&b, " %.1f ± %.1f |", 100*row.Mean, 100*row.Std)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	for _, g := range r.Groups {
		fmt.Fprintf(&b, "- %s: %s\n", g.Name, g.About)
	}
	fmt.Fprintf(&b, "\nTemplate %s", r.Template)
	if r.Activation != "" {
		fmt.Fprintf(&b, " (activation %s)", r.Activation)
	}
	b.WriteString("; test accuracy in percent, mean ± standard deviation over the group's models.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

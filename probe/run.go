package probe

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/hyperrep/hyperrep/internal/rng"
	"gonum.org/v1/gonum/mat"
)

// Names of the continuous properties of zoo checkpoints, as Report rows
// name them; categorical properties are named after their hyperparameter
// ("activation", "lr", …).
const (
	TestAcc  = "test_acc"
	TrainAcc = "train_acc"
	GenGap   = "gen_gap" // train_acc − test_acc
	Epoch    = "epoch"
)

// Part is what a sample is used for.
type Part uint8

const (
	Unused     Part = iota // left out
	Train                  // fits the probes
	Validation             // chooses their penalties
	Test                   // scores them
)

func (p Part) String() string {
	switch p {
	case Unused:
		return "unused"
	case Train:
		return "train"
	case Validation:
		return "validation"
	case Test:
		return "test"
	}
	return fmt.Sprintf("Part(%d)", uint8(p))
}

// SplitModels assigns the test models to Test and divides the training
// models between Train and Validation: a fraction val of them, rounded to
// the nearest count but at least one and at most all but one when val > 0,
// drawn by seed, go to Validation. The draw depends on the set of training
// models, not on their order. A model in both lists is an error.
func SplitModels(train, test []string, val float64, seed uint64) (map[string]Part, error) {
	if val < 0 || val >= 1 || math.IsNaN(val) {
		return nil, fmt.Errorf("probe: validation fraction %v, want one in [0, 1)", val)
	}
	split := map[string]Part{}
	for _, id := range test {
		split[id] = Test
	}
	ids := slices.Sorted(slices.Values(train))
	ids = slices.Compact(ids)
	for _, id := range ids {
		if split[id] == Test {
			return nil, fmt.Errorf("probe: model %q is both a training and a test model", id)
		}
		split[id] = Train
	}
	k := int(math.Round(val * float64(len(ids))))
	if val > 0 && len(ids) >= 2 {
		k = min(max(k, 1), len(ids)-1)
	}
	for _, i := range rng.New(seed).Perm(len(ids))[:k] {
		split[ids[i]] = Validation
	}
	return split, nil
}

// FeatureSet is a representation of the samples: its name (a column of the
// report) and a row of features per sample.
type FeatureSet struct {
	Name string
	X    mat.Matrix // [samples, features]
}

// Target is a property of the samples to predict: continuous, with Values,
// or categorical, with Labels (numbers such as learning rates as strings
// too: each distinct value is a class).
type Target struct {
	Name   string
	Values []float64 // one per sample, NaN where unknown
	Labels []string  // one per sample, "" where unknown
	Tau    bool      // also score continuous predictions by Kendall's τ
}

// Data is what Run fits probes on. Sample i belongs to model Models[i], and
// is used as the model's part in Split says: the split is by model, so that
// checkpoints of one model never end up on both sides.
type Data struct {
	Features []FeatureSet
	Targets  []Target
	Models   []string
	Split    map[string]Part
}

// Options adjust Run; the zero value is good.
type Options struct {
	RidgeGrid    []float64 // penalties to choose from; empty: RidgeGrid()
	LogisticGrid []float64 // empty: LogisticGrid()
	// Folds is how the penalties are chosen: by Folds-fold
	// cross-validation over the models of the Train and Validation parts
	// together (0: DefaultFolds), or with 1 by fitting on the Train part
	// and scoring on the Validation part.
	Folds int
	// Seed draws which models go into which fold.
	Seed uint64
	// Progress, if not nil, is called after each probe with the number
	// fitted so far and the total.
	Progress func(done, total int)
}

// Probe is a fitted probe: the predictor of one property from one
// representation, and how it did.
type Probe struct {
	Representation string    `json:"representation"`
	Property       string    `json:"property"`
	Ridge          *Ridge    `json:"ridge,omitempty"`    // for a continuous property
	Logistic       *Logistic `json:"logistic,omitempty"` // for a categorical one

	// The score that chose the penalty, at that penalty: R² or accuracy
	// of the held-out folds' predictions together (with Options.Folds 1,
	// of the validation samples' predictions).
	Validation float64 `json:"-"`
	// The test samples (indices into Data's samples), with the true and
	// predicted values, or labels, of the property.
	Test                        []int     `json:"-"`
	True, Predicted             []float64 `json:"-"`
	TrueLabels, PredictedLabels []string  `json:"-"`
}

// Result is the outcome of Run.
type Result struct {
	Report Report
	Probes []*Probe // for each target, a probe per representation
}

// Probe returns the probe of a property from a representation, or nil.
func (r *Result) Probe(representation, property string) *Probe {
	for _, p := range r.Probes {
		if p.Representation == representation && p.Property == property {
			return p
		}
	}
	return nil
}

// Run fits, for every target and representation, a probe on the training
// and validation samples with its penalty chosen by cross-validation over
// their models (or on the validation samples: see Options.Folds), and
// scores it on the test samples: R² and, with Tau, Kendall's τ for a
// continuous target, accuracy for a categorical one. Samples whose target
// is unknown are left out of that target's probes.
func Run(d *Data, opts *Options) (*Result, error) {
	if opts == nil {
		opts = &Options{}
	}
	if opts.Folds < 0 {
		return nil, fmt.Errorf("probe: %d folds, want 0 (the default, %d), 1 (the validation split) or more", opts.Folds, DefaultFolds)
	}
	xs, parts, err := d.check()
	if err != nil {
		return nil, err
	}
	res := &Result{}
	for _, fs := range d.Features {
		res.Report.Columns = append(res.Report.Columns, fs.Name)
	}
	idx := make([][Test + 1][]int, len(d.Targets))
	byTarget := make([][]Row, len(d.Targets)) // the report rows of each target
	for i, t := range d.Targets {
		if idx[i], err = t.samples(parts, opts.Folds == 1); err != nil {
			return nil, err
		}
		metrics := []string{MetricAccuracy}
		if t.Values != nil {
			metrics = []string{MetricR2}
			if t.Tau {
				metrics = append(metrics, MetricKendallTau)
			}
		}
		for _, m := range metrics {
			byTarget[i] = append(byTarget[i], Row{Property: t.Name, Metric: m, Values: make([]float64, len(xs))})
		}
	}
	probes := make([][]*Probe, len(d.Targets))
	total, done := len(d.Targets)*len(d.Features), 0
	// Representation by representation, so that the prepared samples of
	// one, shared by its targets, can go before the next is prepared.
	for k, x := range xs {
		c := &designs{x: x, m: map[string]*design{}}
		for i, t := range d.Targets {
			p, err := fit(c, t, idx[i], d.Models, d.Features[k].Name, opts)
			if err != nil {
				return nil, fmt.Errorf("probe: %s from %s: %w", t.Name, d.Features[k].Name, err)
			}
			probes[i] = append(probes[i], p)
			for _, row := range byTarget[i] {
				if row.Values[k], err = p.score(row.Metric, nil); err != nil {
					return nil, fmt.Errorf("probe: %s from %s: %w", t.Name, d.Features[k].Name, err)
				}
			}
			done++
			if opts.Progress != nil {
				opts.Progress(done, total)
			}
		}
	}
	for i := range d.Targets {
		res.Report.Rows = append(res.Report.Rows, byTarget[i]...)
		res.Probes = append(res.Probes, probes[i]...)
	}
	return res, nil
}

// designs prepares the samples of one representation for fitting, once for
// each set of samples: targets known on the same samples share them.
// It is safe for concurrent use.
type designs struct {
	x  *mat.Dense
	mu sync.Mutex
	m  map[string]*design
}

// get returns the design of the samples idx, in that order.
func (c *designs) get(idx ...[]int) (*design, error) {
	all := slices.Concat(idx...)
	key := fmt.Sprint(all)
	c.mu.Lock()
	d, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return d, nil
	}
	d, err := newDesign(rows(c.x, all))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.m[key] = d
	c.mu.Unlock()
	return d, nil
}

// check validates d and returns its feature matrices and the part of each
// sample.
func (d *Data) check() ([]*mat.Dense, []Part, error) {
	n := len(d.Models)
	if n == 0 {
		return nil, nil, fmt.Errorf("probe: no samples")
	}
	if len(d.Features) == 0 || len(d.Targets) == 0 {
		return nil, nil, fmt.Errorf("probe: %d representations and %d targets, want at least one of each", len(d.Features), len(d.Targets))
	}
	names := map[string]bool{"property": true, "metric": true}
	xs := make([]*mat.Dense, len(d.Features))
	for k, fs := range d.Features {
		if fs.Name == "" || names[fs.Name] {
			return nil, nil, fmt.Errorf("probe: representation name %q is empty, repeated or reserved", fs.Name)
		}
		names[fs.Name] = true
		if fs.X == nil {
			return nil, nil, fmt.Errorf("probe: representation %s has no features", fs.Name)
		}
		_, p := fs.X.Dims()
		x, err := dense(fs.X, n, p, "representation "+fs.Name)
		if err != nil {
			return nil, nil, err
		}
		xs[k] = x
	}
	targets := map[string]bool{}
	for _, t := range d.Targets {
		if t.Name == "" || targets[t.Name] {
			return nil, nil, fmt.Errorf("probe: target name %q is empty or repeated", t.Name)
		}
		targets[t.Name] = true
		switch {
		case (t.Values == nil) == (t.Labels == nil):
			return nil, nil, fmt.Errorf("probe: target %s needs either values or labels", t.Name)
		case t.Values != nil && len(t.Values) != n, t.Labels != nil && len(t.Labels) != n:
			return nil, nil, fmt.Errorf("probe: target %s has %d values for %d samples", t.Name, max(len(t.Values), len(t.Labels)), n)
		}
		for i, v := range t.Values {
			if math.IsInf(v, 0) {
				return nil, nil, fmt.Errorf("probe: target %s: sample %d is %v", t.Name, i, v)
			}
		}
	}
	parts := make([]Part, n)
	for i, m := range d.Models {
		p, ok := d.Split[m]
		if !ok {
			return nil, nil, fmt.Errorf("probe: model %q has no part in the split", m)
		}
		if p > Test {
			return nil, nil, fmt.Errorf("probe: model %q: %v", m, p)
		}
		parts[i] = p
	}
	return xs, parts, nil
}

// samples lists, per part, the samples whose target is known; split says
// whether the penalty is chosen on the Validation part, which then needs
// samples too.
func (t Target) samples(parts []Part, split bool) (idx [Test + 1][]int, err error) {
	for i, p := range parts {
		if t.Values != nil && math.IsNaN(t.Values[i]) || t.Labels != nil && t.Labels[i] == "" {
			continue
		}
		idx[p] = append(idx[p], i)
	}
	least := [...]int{Train: 1, Validation: 0, Test: 1}
	if split {
		least[Validation] = 1
	}
	if t.Values != nil {
		least[Train] = 2
	}
	for p := Train; p <= Test; p++ {
		if len(idx[p]) < least[p] {
			return idx, fmt.Errorf("probe: %s: %d %v samples with a known value, want at least %d", t.Name, len(idx[p]), p, least[p])
		}
	}
	return idx, nil
}

// fit selects, refits and tests one probe.
func fit(c *designs, t Target, idx [Test + 1][]int, models []string, rep string, opts *Options) (*Probe, error) {
	if opts.Folds == 1 {
		return fitSplit(c, t, idx, rep, opts)
	}
	folds, err := modelFolds(slices.Concat(idx[Train], idx[Validation]), models, cmp.Or(opts.Folds, DefaultFolds), opts.Seed)
	if err != nil {
		return nil, err
	}
	p := &Probe{Representation: rep, Property: t.Name, Test: idx[Test]}
	xte := rows(c.x, idx[Test])
	if t.Values != nil {
		if p.Ridge, p.Validation, err = cvRidge(c, t.Values, folds, opts.RidgeGrid); err != nil {
			return nil, err
		}
		p.True = pick(t.Values, idx[Test])
		p.Predicted, err = p.Ridge.Predict(xte)
		return p, err
	}
	if p.Logistic, p.Validation, err = cvLogistic(c, t.Labels, folds, opts.LogisticGrid); err != nil {
		return nil, err
	}
	p.TrueLabels = pick(t.Labels, idx[Test])
	p.PredictedLabels, err = p.Logistic.Predict(xte)
	return p, err
}

// fitSplit is fit with the penalty chosen on the validation samples.
func fitSplit(c *designs, t Target, idx [Test + 1][]int, rep string, opts *Options) (*Probe, error) {
	p := &Probe{Representation: rep, Property: t.Name, Test: idx[Test]}
	train, err := c.get(idx[Train])
	if err != nil {
		return nil, err
	}
	all := func() (*design, error) { return c.get(idx[Train], idx[Validation]) }
	xval, xte := rows(c.x, idx[Validation]), rows(c.x, idx[Test])
	if t.Values != nil {
		if p.Ridge, p.Validation, err = selectRidge(train, pick(t.Values, idx[Train]), xval, pick(t.Values, idx[Validation]), opts.RidgeGrid, all); err != nil {
			return nil, err
		}
		p.True = pick(t.Values, idx[Test])
		p.Predicted, err = p.Ridge.Predict(xte)
		return p, err
	}
	if p.Logistic, p.Validation, err = selectLogistic(train, pick(t.Labels, idx[Train]), xval, pick(t.Labels, idx[Validation]), opts.LogisticGrid, all); err != nil {
		return nil, err
	}
	p.TrueLabels = pick(t.Labels, idx[Test])
	p.PredictedLabels, err = p.Logistic.Predict(xte)
	return p, err
}

package probe

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/hyperrep/hyperrep/internal/rng"
)

// Spread is how much a test score owes to which models happened to be held
// out: the probes of one property from several representations, rescored
// on resamples of the held-out models.
type Spread struct {
	Property, Metric string
	Representations  []string
	Models           int // held-out models resampled
	Resamples        int
	// Lo and Hi bound the central 90 % of each representation's score
	// over the resamples.
	Lo, Hi []float64
	// Above[i][j] is the fraction of resamples in which representation i
	// scored higher than representation j.
	Above [][]float64
}

// Bootstrap resamples the held-out models of probes (one property, one
// probe per representation, all scored on the same test samples) with
// replacement, n times with a generator seeded by seed, and rescores every
// probe on each resample's checkpoints with metric (MetricR2,
// MetricKendallTau or MetricAccuracy): the same resamples for every
// probe, so that Above compares them pair by pair. models names the model
// of every sample of the probes' Data. Resamples on which a score is not
// defined (a constant target, say) are left out of that score's interval
// and count as no win.
func Bootstrap(probes []*Probe, models []string, metric string, n int, seed uint64) (*Spread, error) {
	if len(probes) == 0 || n < 1 {
		return nil, fmt.Errorf("probe: bootstrap of %d probes with %d resamples, want at least one of each", len(probes), n)
	}
	p0 := probes[0]
	for _, p := range probes[1:] {
		if p.Property != p0.Property || !slices.Equal(p.Test, p0.Test) {
			return nil, fmt.Errorf("probe: bootstrap of %s from %s with %s from %s: not one property on the same test samples",
				p0.Property, p0.Representation, p.Property, p.Representation)
		}
	}
	// The held-out samples, grouped by model.
	var ids []string
	byModel := map[string][]int{} // positions in p.Test
	for k, i := range p0.Test {
		if i < 0 || i >= len(models) {
			return nil, fmt.Errorf("probe: test sample %d of %d", i, len(models))
		}
		m := models[i]
		if _, ok := byModel[m]; !ok {
			ids = append(ids, m)
		}
		byModel[m] = append(byModel[m], k)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("probe: bootstrap of %s: no test samples", p0.Property)
	}
	s := &Spread{Property: p0.Property, Metric: metric, Models: len(ids), Resamples: n,
		Lo: make([]float64, len(probes)), Hi: make([]float64, len(probes)), Above: make([][]float64, len(probes))}
	for _, p := range probes {
		s.Representations = append(s.Representations, p.Representation)
	}
	scores := make([][]float64, len(probes)) // [probe][resample]
	r := rng.New(seed)
	pos := make([]int, 0, len(p0.Test))
	for range n {
		pos = pos[:0]
		for range ids {
			pos = append(pos, byModel[ids[r.Below(uint64(len(ids)))]]...)
		}
		for k, p := range probes {
			v, err := p.score(metric, pos)
			if err != nil {
				return nil, err
			}
			scores[k] = append(scores[k], v)
		}
	}
	for k := range probes {
		s.Lo[k], s.Hi[k] = central90(scores[k])
		s.Above[k] = make([]float64, len(probes))
		for j := range probes {
			wins := 0
			for t := range n {
				if scores[k][t] > scores[j][t] { // false for NaN
					wins++
				}
			}
			s.Above[k][j] = float64(wins) / float64(n)
		}
	}
	return s, nil
}

// score is the probe's metric (MetricR2, MetricKendallTau or
// MetricAccuracy) on its test samples at positions pos of Test, or on all
// of them for a nil pos.
func (p *Probe) score(metric string, pos []int) (float64, error) {
	at := func(v []float64) []float64 {
		if pos == nil {
			return v
		}
		return pick(v, pos)
	}
	switch metric {
	case MetricR2, MetricKendallTau:
		if p.True == nil {
			return 0, fmt.Errorf("probe: %s from %s has no continuous predictions for %s", p.Property, p.Representation, metric)
		}
		if metric == MetricR2 {
			return R2(at(p.True), at(p.Predicted)), nil
		}
		return KendallTau(at(p.True), at(p.Predicted)), nil
	case MetricAccuracy:
		if p.TrueLabels == nil {
			return 0, fmt.Errorf("probe: %s from %s has no labels to score accuracy on", p.Property, p.Representation)
		}
		y, pred := p.TrueLabels, p.PredictedLabels
		if pos != nil {
			y, pred = pick(y, pos), pick(pred, pos)
		}
		return Accuracy(y, pred), nil
	}
	return 0, fmt.Errorf("probe: unknown metric %q", metric)
}

// central90 returns the 5th and 95th percentiles of the numbers among v
// (NaN for both when there are none), by the nearest-rank rule.
func central90(v []float64) (lo, hi float64) {
	var ok []float64
	for _, x := range v {
		if !math.IsNaN(x) {
			ok = append(ok, x)
		}
	}
	if len(ok) == 0 {
		return math.NaN(), math.NaN()
	}
	slices.Sort(ok)
	rank := func(q float64) float64 {
		return ok[min(len(ok)-1, max(0, int(math.Ceil(q*float64(len(ok))))-1))]
	}
	return rank(0.05), rank(0.95)
}

// Bootstraps is Bootstrap for every row of the result's report, each with
// n resamples drawn from seed: one Spread per row, in the report's order.
func (r *Result) Bootstraps(models []string, n int, seed uint64) ([]*Spread, error) {
	var out []*Spread
	for _, row := range r.Report.Rows {
		var probes []*Probe
		for _, c := range r.Report.Columns {
			if p := r.Probe(c, row.Property); p != nil {
				probes = append(probes, p)
			}
		}
		s, err := Bootstrap(probes, models, row.Metric, n, seed)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// WriteSpreadsMarkdown writes spreads as a markdown table: per property
// and metric, each representation's 90 % interval, then how often the
// first representation scored above each of the others.
func WriteSpreadsMarkdown(w io.Writer, spreads []*Spread) error {
	if len(spreads) == 0 {
		return nil
	}
	reps := spreads[0].Representations
	var b strings.Builder
	b.WriteString("| property | metric |")
	for _, c := range reps {
		b.WriteString(" " + c + " |")
	}
	for _, c := range reps[1:] {
		fmt.Fprintf(&b, " %s above %s |", reps[0], c)
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---:|", 2*len(reps)-1) + "\n")
	for _, s := range spreads {
		if !slices.Equal(s.Representations, reps) {
			return fmt.Errorf("probe: spread of %s/%s has representations %v, the first %v", s.Property, s.Metric, s.Representations, reps)
		}
		fmt.Fprintf(&b, "| %s | %s |", s.Property, s.Metric)
		for k := range reps {
			fmt.Fprintf(&b, " %s – %s |", fixed(s.Lo[k]), fixed(s.Hi[k]))
		}
		for k := range reps[1:] {
			fmt.Fprintf(&b, " %.0f %% |", 100*s.Above[0][k+1])
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

package probe

import (
	"math"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/internal/rng"
)

// bootstrapProbes is a perfect and a noisy probe of one property over 6
// held-out models of 4 checkpoints each, samples 0..23.
func bootstrapProbes() (perfect, noisy *Probe, models []string) {
	r := rng.New(4)
	perfect = &Probe{Representation: "perfect", Property: "p"}
	noisy = &Probe{Representation: "noisy", Property: "p"}
	for i := range 24 {
		models = append(models, string(rune('a'+i/4)))
		y := float64(i%4) + r.Normal()
		perfect.Test, noisy.Test = append(perfect.Test, i), append(noisy.Test, i)
		perfect.True, noisy.True = append(perfect.True, y), append(noisy.True, y)
		perfect.Predicted = append(perfect.Predicted, y)
		noisy.Predicted = append(noisy.Predicted, y+0.8*r.Normal())
	}
	return perfect, noisy, models
}

func TestBootstrapOrdersProbes(t *testing.T) {
	perfect, noisy, models := bootstrapProbes()
	s, err := Bootstrap([]*Probe{perfect, noisy}, models, MetricR2, 500, 1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Models != 6 || s.Resamples != 500 || s.Representations[1] != "noisy" {
		t.Errorf("spread of %d models, %d resamples, %v", s.Models, s.Resamples, s.Representations)
	}
	if s.Lo[0] != 1 || s.Hi[0] != 1 {
		t.Errorf("perfect probe: interval [%v, %v], want [1, 1]", s.Lo[0], s.Hi[0])
	}
	full := R2(noisy.True, noisy.Predicted)
	if !(s.Lo[1] < full && full < s.Hi[1] && s.Hi[1] < 1) {
		t.Errorf("noisy probe: interval [%v, %v] around R² %v", s.Lo[1], s.Hi[1], full)
	}
	if s.Above[0][1] != 1 || s.Above[1][0] != 0 || s.Above[0][0] != 0 {
		t.Errorf("above %v, want perfect over noisy in every resample", s.Above)
	}
	again, _ := Bootstrap([]*Probe{perfect, noisy}, models, MetricR2, 500, 1)
	if again.Lo[1] != s.Lo[1] || again.Hi[1] != s.Hi[1] {
		t.Errorf("the same seed gave [%v, %v], then [%v, %v]", s.Lo[1], s.Hi[1], again.Lo[1], again.Hi[1])
	}
}

// Two held-out models of one checkpoint each, probe x right on model a and
// wrong on b, probe y wrong on both: a resample is {a, a}, {a, b}, {b, a}
// or {b, b}, each with probability 1/4, so x's accuracy spans [0, 1] and x
// beats y unless the resample is {b, b}: in 3/4 of the resamples.
func TestBootstrapClosedForm(t *testing.T) {
	x := &Probe{Representation: "x", Property: "c", Test: []int{0, 1},
		TrueLabels: []string{"u", "v"}, PredictedLabels: []string{"u", "u"}}
	y := &Probe{Representation: "y", Property: "c", Test: []int{0, 1},
		TrueLabels: []string{"u", "v"}, PredictedLabels: []string{"v", "u"}}
	const n = 20000
	s, err := Bootstrap([]*Probe{x, y}, []string{"a", "b"}, MetricAccuracy, n, 7)
	if err != nil {
		t.Fatal(err)
	}
	if s.Lo[0] != 0 || s.Hi[0] != 1 || s.Lo[1] != 0 || s.Hi[1] != 0 {
		t.Errorf("intervals x [%v, %v], y [%v, %v]; want [0, 1] and [0, 0]", s.Lo[0], s.Hi[0], s.Lo[1], s.Hi[1])
	}
	// Binomial standard error at n = 20000: 0.003.
	if math.Abs(s.Above[0][1]-0.75) > 0.015 || s.Above[1][0] != 0 {
		t.Errorf("x above y in %v of the resamples, y above x in %v; want 0.75 and 0", s.Above[0][1], s.Above[1][0])
	}
}

func TestBootstrapOneModel(t *testing.T) {
	perfect, noisy, models := bootstrapProbes()
	for _, p := range []*Probe{perfect, noisy} {
		p.Test, p.True, p.Predicted = p.Test[:4], p.True[:4], p.Predicted[:4]
	}
	s, err := Bootstrap([]*Probe{noisy}, models, MetricKendallTau, 50, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := KendallTau(noisy.True, noisy.Predicted); s.Lo[0] != want || s.Hi[0] != want {
		t.Errorf("one held-out model: interval [%v, %v], want its score %v", s.Lo[0], s.Hi[0], want)
	}
}

func TestBootstrapErrors(t *testing.T) {
	perfect, noisy, models := bootstrapProbes()
	other := *noisy
	other.Test = other.Test[1:]
	cat := &Probe{Representation: "c", Property: "p", Test: perfect.Test}
	for _, tc := range []struct {
		probes []*Probe
		metric string
		n      int
		want   string
	}{
		{nil, MetricR2, 10, "0 probes"},
		{[]*Probe{perfect}, MetricR2, 0, "0 resamples"},
		{[]*Probe{perfect, &other}, MetricR2, 10, "not one property on the same test samples"},
		{[]*Probe{perfect}, "mae", 10, `unknown metric "mae"`},
		{[]*Probe{cat}, MetricR2, 10, "no continuous predictions"},
		{[]*Probe{perfect}, MetricAccuracy, 10, "no labels"},
	} {
		_, err := Bootstrap(tc.probes, models, tc.metric, tc.n, 1)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.metric, err, tc.want)
		}
	}
}

// TestResultBootstraps checks a spread per report row on the synthetic zoo,
// where the representation "good" carries the targets and the others do
// not, and its markdown table.
func TestResultBootstraps(t *testing.T) {
	z := newSynthZoo(24, 4)
	res, err := Run(&z.data, nil)
	if err != nil {
		t.Fatal(err)
	}
	spreads, err := res.Bootstraps(z.data.Models, 200, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(spreads) != len(res.Report.Rows) {
		t.Fatalf("%d spreads for %d rows", len(spreads), len(res.Report.Rows))
	}
	for i, s := range spreads {
		row := res.Report.Rows[i]
		if s.Property != row.Property || s.Metric != row.Metric || s.Representations[0] != res.Report.Columns[0] {
			t.Errorf("spread %d is %s/%s of %v, row %s/%s", i, s.Property, s.Metric, s.Representations, row.Property, row.Metric)
		}
	}
	var b strings.Builder
	if err := WriteSpreadsMarkdown(&b, spreads); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2+len(spreads) || !strings.Contains(lines[0], "good above noise") || !strings.Contains(lines[2], " – ") {
		t.Errorf("markdown:\n%s", b.String())
	}
	if z.data.Features[0].Name != "good" {
		t.Fatalf("first representation %q", z.data.Features[0].Name)
	}
	if s := spreads[0]; s.Above[0][1] < 0.95 {
		t.Errorf("%s/%s: good above %s in %v of the resamples, want nearly all", s.Property, s.Metric, s.Representations[1], s.Above[0][1])
	}
}

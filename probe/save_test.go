package probe

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestProbesRoundTrip(t *testing.T) {
	z := newSynthZoo(24, 4)
	res, err := Run(&z.data, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := tinyModel(tinyW1, true)
	stats, _ := NewBaseline(Stats, m)
	weights, _ := NewBaseline(Weights, m)
	var b bytes.Buffer
	if err := WriteProbes(&b, res.Probes, stats, weights); err != nil {
		t.Fatal(err)
	}
	probes, baselines, err := ReadProbes(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(probes) != len(res.Probes) || len(baselines) != 2 || baselines[1].Kind != Weights || baselines[1].Len() != 14 {
		t.Fatalf("read %d probes, baselines %+v", len(probes), baselines)
	}
	// The baselines read back still compute features and check models.
	if f, err := baselines[0].Append(nil, m); err != nil || len(f) != 28 {
		t.Errorf("stats from the read baseline: %d features, %v", len(f), err)
	}
	x := z.data.Features[0].X
	for i, p := range probes {
		q := res.Probes[i]
		if p.Property != q.Property || p.Representation != q.Representation {
			t.Fatalf("probe %d is %s from %s, want %s from %s", i, p.Property, p.Representation, q.Property, q.Representation)
		}
		if q.Representation != "good" {
			continue
		}
		if q.Ridge != nil {
			a, _ := q.Ridge.Predict(x)
			b, err := p.Ridge.Predict(x)
			if err != nil || !slices.Equal(a, b) {
				t.Errorf("%s: predictions differ after the round trip (%v)", p.Property, err)
			}
		} else {
			a, _ := q.Logistic.Predict(x)
			b, err := p.Logistic.Predict(x)
			if err != nil || !slices.Equal(a, b) {
				t.Errorf("%s: predictions differ after the round trip (%v)", p.Property, err)
			}
		}
	}
}

func TestReadProbesErrors(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"format": 2, "probes": []}`, "format 2, want 1"},
		{`{"format": 1, "probes": [{"representation": "h", "property": "p"}]}`, "p from h: want either a ridge or a logistic regression"},
		{`{"format": 1, "probes": [{"representation": "h", "property": "p", "logistic": {"classes": ["b", "a"], "coef": [1, 2], "intercept": [0, 0]}}]}`, "classes not sorted"},
		{`{"format": 1, "probes": [{"representation": "h", "property": "p", "logistic": {"classes": ["a", "b"], "coef": [1, 2, 3], "intercept": [0, 0]}}]}`, "do not fit"},
		{`{"format": 1, "baselines": [{"kind": "raw", "blocks": []}], "probes": []}`, `not "stats" or "weights"`},
		{`{"format": 1, "probes": [], "extra": 1}`, "unknown field"},
		{`{"format": 1, "probes": [{"representation": "h", "property": "p", "ridge": {"lambda": 1, "coef": [1], "intercept": 0, "span": [1, 0]}}]}`, "span [1, 0] runs backwards"},
	} {
		_, _, err := ReadProbes(strings.NewReader(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.json, err, tc.want)
		}
	}
}

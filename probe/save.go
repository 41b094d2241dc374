package probe

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// ProbesFormat is the version of the JSON that WriteProbes writes and
// ReadProbes reads.
const ProbesFormat = 1

type probesFile struct {
	Format    int         `json:"format"`
	Baselines []*Baseline `json:"baselines,omitempty"`
	Probes    []*Probe    `json:"probes"`
}

// WriteProbes writes fitted probes as JSON, together with the baselines
// their features came from, so that the properties of new models can be
// predicted later: a baseline checks that a model has the architecture the
// probes were fitted on and computes its features, and a probe predicts
// from them.
func WriteProbes(w io.Writer, probes []*Probe, baselines ...*Baseline) error {
	for _, p := range probes {
		if err := p.check(); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(probesFile{ProbesFormat, baselines, probes}, "", "  ")
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// ReadProbes reads what WriteProbes wrote.
func ReadProbes(r io.Reader) ([]*Probe, []*Baseline, error) {
	var f probesFile
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, nil, fmt.Errorf("probe: probes file: %w", err)
	}
	if f.Format != ProbesFormat {
		return nil, nil, fmt.Errorf("probe: probes file format %d, want %d", f.Format, ProbesFormat)
	}
	for _, p := range f.Probes {
		if err := p.check(); err != nil {
			return nil, nil, err
		}
	}
	for _, b := range f.Baselines {
		if b == nil || (b.Kind != Stats && b.Kind != Weights) || len(b.Blocks) == 0 {
			return nil, nil, fmt.Errorf("probe: probes file: a baseline is not %q or %q with blocks", Stats, Weights)
		}
		for _, bl := range b.Blocks {
			if want := map[string]int{Stats: 1, Weights: 2}[b.Kind]; len(bl.Shape) != want || slices.Min(bl.Shape) < 0 {
				return nil, nil, fmt.Errorf("probe: probes file: %s block %v, want a shape of %d sizes", b.Kind, bl, want)
			}
		}
	}
	return f.Probes, f.Baselines, nil
}

// check reports a probe that is not exactly one consistent predictor.
func (p *Probe) check() error {
	if p == nil {
		return fmt.Errorf("probe: nil probe")
	}
	name := p.Property + " from " + p.Representation
	switch {
	case (p.Ridge == nil) == (p.Logistic == nil):
		return fmt.Errorf("probe: %s: want either a ridge or a logistic regression", name)
	case p.Logistic != nil:
		l := p.Logistic
		k := len(l.Classes)
		if k == 0 || len(l.Intercept) != k || len(l.Coef)%k != 0 {
			return fmt.Errorf("probe: %s: %d classes, %d intercepts and %d coefficients do not fit", name, k, len(l.Intercept), len(l.Coef))
		}
		if !slices.IsSorted(l.Classes) {
			return fmt.Errorf("probe: %s: classes not sorted", name)
		}
		if err := finite(append(slices.Clone(l.Coef), l.Intercept...), name); err != nil {
			return err
		}
	default:
		if err := finite(append(slices.Clone(p.Ridge.Coef), p.Ridge.Intercept), name); err != nil {
			return err
		}
		if sp := p.Ridge.Span; sp != nil {
			if err := finite(sp[:], name+" span"); err != nil {
				return err
			}
			if sp[0] > sp[1] {
				return fmt.Errorf("probe: %s: span [%v, %v] runs backwards", name, sp[0], sp[1])
			}
		}
	}
	return nil
}

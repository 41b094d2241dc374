package generate

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/hyperrep/hyperrep/autoencoder"
	"github.com/hyperrep/hyperrep/zoo"
)

// Anchor is a zoo checkpoint the density is fitted on.
type Anchor struct {
	Model   string    `json:"model"`
	Epoch   int       `json:"epoch"`
	TestAcc float64   `json:"test_acc"`
	Path    string    `json:"-"`
	Hyper   zoo.Hyper `json:"-"`
}

// Properties are the names a filter may use: per checkpoint (metrics of the
// epoch) and per model (hyperparameters, id).
var Properties = []string{"test_acc", "train_acc", "test_loss", "train_loss", "gen_gap", "epoch",
	"activation", "init", "optimizer", "lr", "weight_decay", "momentum", "dropout", "seed", "model"}

// value is a property of a checkpoint: a number or, for hyperparameters
// named by words, a string. NaN when the zoo does not record it (the
// training metrics of epoch 0).
type value struct {
	num   float64
	str   string
	isStr bool
}

func property(name string, m *zoo.Model, e *zoo.Epoch) (value, bool) {
	opt := func(p *float64) value {
		if p == nil {
			return value{num: math.NaN()}
		}
		return value{num: *p}
	}
	h := m.Hyper
	switch name {
	case "test_acc":
		return value{num: e.TestAccuracy}, true
	case "test_loss":
		return value{num: e.TestLoss}, true
	case "train_acc":
		return opt(e.TrainAccuracy), true
	case "train_loss":
		return opt(e.TrainLoss), true
	case "gen_gap":
		if e.TrainAccuracy == nil {
			return value{num: math.NaN()}, true
		}
		return value{num: *e.TrainAccuracy - e.TestAccuracy}, true
	case "epoch":
		return value{num: float64(e.Epoch)}, true
	case "activation":
		return value{str: h.Activation, isStr: true}, true
	case "init":
		return value{str: h.Init, isStr: true}, true
	case "optimizer":
		return value{str: h.Optimizer, isStr: true}, true
	case "model":
		return value{str: m.ID, isStr: true}, true
	case "lr":
		return value{num: h.LR}, true
	case "weight_decay":
		return value{num: h.WeightDecay}, true
	case "momentum":
		return value{num: h.Momentum}, true
	case "dropout":
		return value{num: h.Dropout}, true
	case "seed":
		return value{num: float64(h.Seed)}, true
	}
	return value{}, false
}

// Filter is a conjunction of comparisons of checkpoint properties, as
// ParseFilter reads it. The zero Filter keeps every checkpoint.
type Filter struct {
	terms []term
	src   string
}

type term struct {
	name, op string
	num      float64
	str      string
	isNum    bool
}

var ops = []string{"==", "!=", ">=", "<=", ">", "<", "="}

// ParseFilter reads comparisons joined by "," or "&&", each NAME OP VALUE
// with OP one of == (or =), !=, >, >=, <, <=: "test_acc>0.9, epoch==10",
// "activation==relu && optimizer!=sgd". Names are those of Properties;
// words (activation, init, optimizer, model) take == and != only. A
// property the zoo does not record (train_acc at epoch 0) fails every
// comparison but !=.
func ParseFilter(s string) (Filter, error) {
	f := Filter{src: strings.TrimSpace(s)}
	if f.src == "" {
		return f, nil
	}
	for _, part := range strings.Split(strings.ReplaceAll(s, "&&", ","), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return Filter{}, fmt.Errorf("generate: filter %q: empty comparison", s)
		}
		var t term
		at := -1
		for i := range part {
			for _, op := range ops {
				if strings.HasPrefix(part[i:], op) {
					t.op, at = op, i
					break
				}
			}
			if at >= 0 {
				break
			}
		}
		if at < 0 {
			return Filter{}, fmt.Errorf("generate: filter %q: %q is not NAME OP VALUE (OP: ==, !=, >, >=, <, <=)", s, part)
		}
		t.name = strings.TrimSpace(part[:at])
		rhs := strings.TrimSpace(part[at+len(t.op):])
		if t.op == "=" {
			t.op = "=="
		}
		if !slices.Contains(Properties, t.name) {
			return Filter{}, fmt.Errorf("generate: filter %q: unknown property %q (want one of %s)", s, t.name, strings.Join(Properties, ", "))
		}
		rhs = strings.Trim(rhs, `"'`)
		if rhs == "" {
			return Filter{}, fmt.Errorf("generate: filter %q: %q has no value", s, part)
		}
		probe, _ := property(t.name, &zoo.Model{}, &zoo.Epoch{})
		if probe.isStr {
			if t.op != "==" && t.op != "!=" {
				return Filter{}, fmt.Errorf("generate: filter %q: %s is a word, compare it with == or !=", s, t.name)
			}
			t.str = rhs
		} else {
			v, err := strconv.ParseFloat(rhs, 64)
			if err != nil {
				return Filter{}, fmt.Errorf("generate: filter %q: %s wants a number, got %q", s, t.name, rhs)
			}
			t.num, t.isNum = v, true
		}
		f.terms = append(f.terms, t)
	}
	return f, nil
}

// String is the filter as it was written.
func (f Filter) String() string { return f.src }

// Match reports whether checkpoint e of model m passes every comparison.
func (f Filter) Match(m *zoo.Model, e *zoo.Epoch) bool {
	for _, t := range f.terms {
		v, _ := property(t.name, m, e)
		var ok bool
		if t.isNum {
			switch t.op {
			case "==":
				ok = v.num == t.num
			case "!=":
				ok = v.num != t.num
			case ">":
				ok = v.num > t.num
			case ">=":
				ok = v.num >= t.num
			case "<":
				ok = v.num < t.num
			case "<=":
				ok = v.num <= t.num
			}
		} else {
			ok = (v.str == t.str) == (t.op == "==")
		}
		if !ok {
			return false
		}
	}
	return true
}

// ParseTop reads an anchor set: "topN" (the best N % of the checkpoints
// by test accuracy, 0 < N <= 100) or "all".
func ParseTop(s string) (float64, error) {
	if s == "all" {
		return 1, nil
	}
	n, ok := strings.CutPrefix(s, "top")
	v, err := strconv.ParseFloat(n, 64)
	if !ok || err != nil || !(v > 0 && v <= 100) {
		return 0, fmt.Errorf("generate: anchors %q, want topN with 0 < N <= 100 (top30: the best 30 %%) or all", s)
	}
	return v / 100, nil
}

// SelectAnchors returns the checkpoints of z that pass the filter, best
// test accuracy first, cut to the best share of them (rounded up, at least
// one). cps are the checkpoints present on disk (autoencoder.Checkpoints).
//
// Anchors are checkpoints, not models: the zoo's metrics are per
// checkpoint, so "top30" is the best 30 % of all (model, epoch) pairs, as
// in the 2022 paper, and the final epochs alone are a filter away
// (epoch==10). Ties keep the zoo's order.
func SelectAnchors(z *zoo.Zoo, cps []autoencoder.Checkpoint, top float64, f Filter) ([]Anchor, error) {
	models := map[string]*zoo.Model{}
	for i := range z.Models {
		models[z.Models[i].ID] = &z.Models[i]
	}
	var as []Anchor
	for _, cp := range cps {
		m := models[cp.Model]
		if m == nil {
			continue
		}
		i := slices.IndexFunc(m.Epochs, func(e zoo.Epoch) bool { return e.Epoch == cp.Epoch })
		if i < 0 || !f.Match(m, &m.Epochs[i]) {
			continue
		}
		as = append(as, Anchor{Model: m.ID, Epoch: cp.Epoch, TestAcc: m.Epochs[i].TestAccuracy, Path: cp.Path, Hyper: m.Hyper})
	}
	if len(as) == 0 {
		if f.src != "" {
			return nil, fmt.Errorf("generate: no checkpoint of zoo %s passes the filter %q", z.Dir, f.src)
		}
		return nil, fmt.Errorf("generate: zoo %s has no checkpoints with metrics", z.Dir)
	}
	slices.SortStableFunc(as, func(a, b Anchor) int {
		switch {
		case a.TestAcc > b.TestAcc:
			return -1
		case a.TestAcc < b.TestAcc:
			return 1
		}
		return 0
	})
	n := max(1, int(math.Ceil(top*float64(len(as))-1e-9)))
	return as[:min(n, len(as))], nil
}

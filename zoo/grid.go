package zoo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Optimizers lists the optimisers a zoo's models may use: Adam, AdamW
// (decoupled weight decay) and SGD with momentum, all as PyTorch defines
// them.
var Optimizers = []string{"adam", "adamw", "sgd"}

// Hyper is the hyperparameters of one zoo member.
type Hyper struct {
	Activation  string  `json:"activation"`
	Init        string  `json:"init"`
	Optimizer   string  `json:"optimizer"`
	LR          float64 `json:"lr"`
	WeightDecay float64 `json:"weight_decay"`
	Momentum    float64 `json:"momentum,omitempty"` // sgd only
	Dropout     float64 `json:"dropout"`
	Seed        int64   `json:"seed"`
}

// ID names a model after its hyperparameters, e.g.
// "tanh_adam_kaiming_uniform_lr0.001_wd0_do0_s3": readable, a valid file
// name, and the same whichever grid or shard the model came from.
func (h Hyper) ID() string {
	opt := h.Optimizer
	if opt == "sgd" {
		opt += "-m" + num(h.Momentum)
	}
	return fmt.Sprintf("%s_%s_%s_lr%s_wd%s_do%s_s%d", h.Activation, opt, h.Init, num(h.LR), num(h.WeightDecay), num(h.Dropout), h.Seed)
}

// num formats a hyperparameter as briefly as it round-trips.
func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// check reports hyperparameters no model can train with.
func (h Hyper) check() error {
	if err := checkActivation(h.Activation); err != nil {
		return err
	}
	if !slices.Contains(Inits, h.Init) {
		return fmt.Errorf("zoo: unknown init %q (want %s)", h.Init, strings.Join(Inits, ", "))
	}
	if !slices.Contains(Optimizers, h.Optimizer) {
		return fmt.Errorf("zoo: unknown optimizer %q (want %s)", h.Optimizer, strings.Join(Optimizers, ", "))
	}
	switch {
	case !(h.LR > 0) || math.IsInf(h.LR, 0):
		return fmt.Errorf("zoo: learning rate %v: want a positive number", h.LR)
	case !(h.WeightDecay >= 0) || math.IsInf(h.WeightDecay, 0):
		return fmt.Errorf("zoo: weight decay %v: want 0 or more", h.WeightDecay)
	case !(h.Momentum >= 0 && h.Momentum < 1):
		return fmt.Errorf("zoo: momentum %v: want a number in [0, 1)", h.Momentum)
	case !(h.Dropout >= 0 && h.Dropout < 1):
		return fmt.Errorf("zoo: dropout %v: want a probability in [0, 1)", h.Dropout)
	case h.Seed < 0:
		return fmt.Errorf("zoo: seed %d: want 0 or more", h.Seed)
	}
	return nil
}

// Grid is a hyperparameter grid: every combination of its lists is a
// model. Empty lists take the defaults of DefaultGrid; Momentum applies to
// sgd only.
type Grid struct {
	Activation  []string  `json:"activation" yaml:"activation"`
	Init        []string  `json:"init" yaml:"init"`
	Optimizer   []string  `json:"optimizer" yaml:"optimizer"`
	LR          []float64 `json:"lr" yaml:"lr"`
	WeightDecay []float64 `json:"weight_decay" yaml:"weight_decay"`
	Momentum    []float64 `json:"momentum" yaml:"momentum"`
	Dropout     []float64 `json:"dropout" yaml:"dropout"`
	Seeds       Seeds     `json:"seeds" yaml:"seeds"`
}

// Seeds lists seeds. In a grid file it is either a count n, meaning 0, 1,
// ..., n-1, or a list.
type Seeds []int64

// UnmarshalJSON accepts a count or a list.
func (s *Seeds) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err == nil {
		*s = countSeeds(n)
		return nil
	}
	var list []int64
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("seeds: want a count or a list of integers")
	}
	*s = list
	return nil
}

// UnmarshalYAML accepts a count or a list.
func (s *Seeds) UnmarshalYAML(v *yaml.Node) error {
	var n int64
	if v.Kind == yaml.ScalarNode && v.Decode(&n) == nil {
		*s = countSeeds(n)
		return nil
	}
	var list []int64
	if err := v.Decode(&list); err != nil {
		return fmt.Errorf("seeds: want a count or a list of integers")
	}
	*s = list
	return nil
}

func countSeeds(n int64) Seeds {
	s := Seeds{}
	for i := range max(n, 0) {
		s = append(s, i)
	}
	return s
}

// DefaultGrid is one model: tanh, xavier_uniform (Glorot: made for tanh), Adam at lr 1e-3, no
// weight decay, no dropout, seed 0 (momentum 0.9 for sgd).
func DefaultGrid() Grid {
	return Grid{Activation: []string{"tanh"}, Init: []string{"xavier_uniform"}, Optimizer: []string{"adam"},
		LR: []float64{1e-3}, WeightDecay: []float64{0}, Momentum: []float64{0.9}, Dropout: []float64{0}, Seeds: Seeds{0}}
}

// withDefaults fills the empty lists from DefaultGrid.
func (g Grid) withDefaults() Grid {
	d := DefaultGrid()
	if len(g.Activation) == 0 {
		g.Activation = d.Activation
	}
	if len(g.Init) == 0 {
		g.Init = d.Init
	}
	if len(g.Optimizer) == 0 {
		g.Optimizer = d.Optimizer
	}
	if len(g.LR) == 0 {
		g.LR = d.LR
	}
	if len(g.WeightDecay) == 0 {
		g.WeightDecay = d.WeightDecay
	}
	if len(g.Momentum) == 0 {
		g.Momentum = d.Momentum
	}
	if len(g.Dropout) == 0 {
		g.Dropout = d.Dropout
	}
	if len(g.Seeds) == 0 {
		g.Seeds = d.Seeds
	}
	return g
}

// Models lists the grid's models, activation varying slowest and seed
// fastest, after checking every value; a model listed twice is an error.
func (g Grid) Models() ([]Hyper, error) {
	g = g.withDefaults()
	var out []Hyper
	seen := map[string]bool{}
	for _, act := range g.Activation {
		for _, opt := range g.Optimizer {
			moms := []float64{0}
			if opt == "sgd" {
				moms = g.Momentum
			}
			for _, ini := range g.Init {
				for _, lr := range g.LR {
					for _, wd := range g.WeightDecay {
						for _, mom := range moms {
							for _, do := range g.Dropout {
								for _, seed := range g.Seeds {
									h := Hyper{Activation: act, Init: ini, Optimizer: opt, LR: lr, WeightDecay: wd, Momentum: mom, Dropout: do, Seed: seed}
									if err := h.check(); err != nil {
										return nil, err
									}
									if seen[h.ID()] {
										return nil, fmt.Errorf("zoo: the grid lists model %s twice", h.ID())
									}
									seen[h.ID()] = true
									out = append(out, h)
								}
							}
						}
					}
				}
			}
		}
	}
	return out, nil
}

// ReadGrid reads a grid from a YAML or JSON file (by extension: .yaml,
// .yml, .json; JSON is also valid YAML). Unknown keys are errors, so that a
// misspelt hyperparameter does not silently take its default.
func ReadGrid(path string) (Grid, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Grid{}, fmt.Errorf("zoo: %w", err)
	}
	var g Grid
	if strings.EqualFold(filepath.Ext(path), ".json") {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err = dec.Decode(&g)
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		err = dec.Decode(&g)
	}
	if err != nil {
		return Grid{}, fmt.Errorf("zoo: grid %s: %s", path, oneLine(err))
	}
	return g, nil
}

// oneLine keeps the first line of an error message.
func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

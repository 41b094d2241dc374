package zoo

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestGridModels(t *testing.T) {
	g := Grid{Activation: []string{"tanh", "relu"}, Optimizer: []string{"adam", "sgd"}, Momentum: []float64{0, 0.9},
		LR: []float64{1e-3}, Seeds: Seeds{0, 1}}
	hs, err := g.Models()
	if err != nil {
		t.Fatal(err)
	}
	// Per activation: adam × 2 seeds, sgd × 2 momenta × 2 seeds.
	if len(hs) != 2*(2+4) {
		t.Fatalf("%d models, want 12", len(hs))
	}
	if got, want := hs[0].ID(), "tanh_adam_xavier_uniform_lr0.001_wd0_do0_s0"; got != want {
		t.Errorf("first model %s, want %s", got, want)
	}
	if got, want := hs[len(hs)-1].ID(), "relu_sgd-m0.9_xavier_uniform_lr0.001_wd0_do0_s1"; got != want {
		t.Errorf("last model %s, want %s", got, want)
	}
	for _, tc := range []struct {
		name string
		g    Grid
		want string
	}{
		{"activation", Grid{Activation: []string{"swish"}}, "unknown activation"},
		{"init", Grid{Init: []string{"orthogonal"}}, "unknown init"},
		{"optimizer", Grid{Optimizer: []string{"lbfgs"}}, "unknown optimizer"},
		{"lr", Grid{LR: []float64{0}}, "learning rate"},
		{"dropout", Grid{Dropout: []float64{1}}, "dropout"},
		{"momentum", Grid{Optimizer: []string{"sgd"}, Momentum: []float64{1.5}}, "momentum"},
		{"seed", Grid{Seeds: Seeds{-1}}, "seed"},
		{"twice", Grid{LR: []float64{1e-3, 0.001}}, "twice"},
	} {
		if _, err := tc.g.Models(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", tc.name, err, tc.want)
		}
	}
}

func TestReadGrid(t *testing.T) {
	dir := t.TempDir()
	want := Grid{Activation: []string{"tanh", "gelu"}, Init: []string{"kaiming_normal"}, Optimizer: []string{"sgd"},
		LR: []float64{0.01, 0.1}, WeightDecay: []float64{0, 1e-4}, Momentum: []float64{0.9}, Dropout: []float64{0.5}, Seeds: Seeds{0, 1, 2}}
	files := map[string]string{
		"grid.yaml": `activation: [tanh, gelu]
init: [kaiming_normal]
optimizer: [sgd]
lr: [0.01, 0.1]
weight_decay: [0, 1e-4]
momentum: [0.9]
dropout: [0.5]
seeds: 3
`,
		"grid.json": `{"activation": ["tanh", "gelu"], "init": ["kaiming_normal"], "optimizer": ["sgd"], "lr": [0.01, 0.1],
 "weight_decay": [0, 0.0001], "momentum": [0.9], "dropout": [0.5], "seeds": [0, 1, 2]}`,
	}
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		g, err := ReadGrid(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, want) {
			t.Errorf("%s: %+v, want %+v", name, g, want)
		}
	}
	for name, text := range map[string]string{
		"typo.yaml":  "learning_rate: [0.1]\n",
		"typo.json":  `{"activations": ["tanh"]}`,
		"seeds.yaml": "seeds: many\n",
		"bad.json":   `{"lr": "fast"}`,
	} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(text), 0o644)
		if _, err := ReadGrid(path); err == nil {
			t.Errorf("%s: read without error", name)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error of several lines: %q", name, err)
		}
	}
}

func TestLockedZoo(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	job := smallJob()
	if err := Train(context.Background(), dir, job); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("training a locked zoo: %v", err)
	}
}

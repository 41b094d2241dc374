package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tinyZoo is the flags of a zoo that trains in well under a second.
var tinyZoo = []string{"--arch", "cnn-s", "--dataset", "mnist", "--activation", "tanh,relu", "--seeds", "2",
	"--epochs", "2", "--train-samples", "128", "--test-samples", "100", "--batch", "32"}

func TestZooTrainListMerge(t *testing.T) {
	dir := t.TempDir()
	z := filepath.Join(dir, "zoo")
	code, stdout, stderr := hyperrep(append([]string{"zoo", "train", "-o", z}, tinyZoo...)...)
	if code != 0 {
		t.Fatalf("zoo train: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "4 models") || !strings.Contains(stdout, "model-epochs/s") ||
		!strings.Contains(stdout, "% training") || !strings.Contains(stdout, "% scoring 100 test images") {
		t.Errorf("zoo train printed %q", stdout)
	}
	code, stdout, stderr = hyperrep("zoo", "ls", z)
	if code != 0 || strings.Count(stdout, "_s") != 4 || !strings.Contains(stdout, "2/2") {
		t.Errorf("zoo ls: exit %d, %q %s", code, stdout, stderr)
	}
	code, stdout, _ = hyperrep("zoo", "ls", z, "--json")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 0 || len(lines) != 4 {
		t.Fatalf("zoo ls --json: exit %d, %q", code, stdout)
	}
	for _, l := range lines {
		var r struct {
			ID           string   `json:"id"`
			Activation   string   `json:"activation"`
			Epochs       int      `json:"epochs"`
			TestAccuracy *float64 `json:"test_accuracy"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Epochs != 2 || r.TestAccuracy == nil || r.ID == "" || r.Activation == "" {
			t.Errorf("zoo ls --json line %q: %v", l, err)
		}
	}
	// Training on by one epoch, --json: a summary object of this run.
	more := append(slices.Clone(tinyZoo), "--epochs", "3", "--json")
	code, stdout, stderr = hyperrep(append([]string{"zoo", "train", "-o", z}, more...)...)
	var sum trainSummary
	if code != 0 || json.Unmarshal([]byte(stdout), &sum) != nil {
		t.Fatalf("zoo train --json: exit %d, %q %s", code, stdout, stderr)
	}
	if sum.Models != 4 || sum.Epochs != 3 || sum.TestSamples != 100 || sum.ModelEpochs != 4 || sum.ModelEpochsPerS <= 0 ||
		sum.MeanTestAccuracy <= 0 || sum.MeanTestAccuracy > 1 || sum.Workers.Training <= 0 || sum.Workers.Scoring <= 0 {
		t.Errorf("zoo train --json: %+v", sum)
	}
	// Shards of the same grid merge into the same zoo.
	var shards []string
	for _, s := range []string{"0/2", "1/2"} {
		out := filepath.Join(dir, "shard"+s[:1])
		if code, _, stderr := hyperrep(append([]string{"zoo", "train", "-o", out, "--shard", s}, tinyZoo...)...); code != 0 {
			t.Fatalf("zoo train --shard %s: %s", s, stderr)
		}
		shards = append(shards, out)
	}
	merged := filepath.Join(dir, "merged")
	if code, _, stderr := hyperrep(append([]string{"zoo", "merge", "-o", merged}, shards...)...); code != 0 {
		t.Fatalf("zoo merge: %s", stderr)
	}
	a, _ := os.ReadFile(filepath.Join(z, "models", "relu_adam_xavier_uniform_lr0.001_wd0_do0_s1", "checkpoint_000002", "model.onnx"))
	b, _ := os.ReadFile(filepath.Join(merged, "models", "relu_adam_xavier_uniform_lr0.001_wd0_do0_s1", "checkpoint_000002", "model.onnx"))
	if len(a) == 0 || string(a) != string(b) {
		t.Error("a model of the merged shards differs from the one trained whole")
	}
	// The checkpoints are plain classifiers for the rest of the CLI.
	model := filepath.Join(z, "models", "tanh_adam_xavier_uniform_lr0.001_wd0_do0_s0", "checkpoint_000002", "model.onnx")
	if code, _, stderr := hyperrep("eval", model, "--samples", "100"); code != 0 {
		t.Errorf("eval of a checkpoint: %s", stderr)
	}
	code, stdout, _ = hyperrep("inspect", model, "--json")
	var rep inspectReport
	if code != 0 || json.Unmarshal([]byte(stdout), &rep) != nil || rep.Parameters != 2464 || len(rep.Layers) != 5 {
		t.Errorf("inspect of a checkpoint: %q", stdout)
	}
}

func TestZooGridFile(t *testing.T) {
	dir := t.TempDir()
	grid := filepath.Join(dir, "grid.yaml")
	os.WriteFile(grid, []byte("activation: [sigmoid]\noptimizer: [sgd]\nlr: [0.05]\nseeds: 2\n"), 0o644)
	z := filepath.Join(dir, "zoo")
	code, stdout, stderr := hyperrep("zoo", "train", "--grid", grid, "--epochs", "1", "--train-samples", "64", "--test-samples", "50", "-o", z)
	if code != 0 || !strings.Contains(stdout, "2 models") {
		t.Fatalf("zoo train --grid: exit %d, %q %s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(z, "models", "sigmoid_sgd-m0.9_xavier_uniform_lr0.05_wd0_do0_s1", "checkpoint_000001", "model.onnx")); err != nil {
		t.Error(err)
	}
}

func TestZooBadCalls(t *testing.T) {
	dir := t.TempDir()
	grid := filepath.Join(dir, "grid.yaml")
	os.WriteFile(grid, []byte("lr: [0.1]\n"), 0o644)
	notZoo := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"no subcommand", []string{"zoo"}, "subcommand", 2},
		{"unknown subcommand", []string{"zoo", "fit"}, `unknown subcommand "fit"`, 2},
		{"flag of another subcommand", []string{"zoo", "ls", dir, "--lr", "0.1"}, "does not take --lr", 2},
		{"no output", []string{"zoo", "train"}, "-o", 2},
		{"grid and flags", []string{"zoo", "train", "--grid", grid, "--lr", "0.1", "-o", dir}, "--grid and --lr", 2},
		{"bad shard", []string{"zoo", "train", "--shard", "2/2", "-o", dir}, "--shard", 2},
		{"bad lr", []string{"zoo", "train", "--lr", "1e-3,fast", "-o", dir}, `"fast" is not a number`, 2},
		{"bad activation", []string{"zoo", "train", "--activation", "swish", "-o", dir}, "unknown activation", 2},
		{"bad arch", []string{"zoo", "train", "--arch", "resnet", "--epochs", "1", "-o", dir}, "unknown architecture", 2},
		{"missing grid file", []string{"zoo", "train", "--grid", filepath.Join(dir, "none.yaml"), "-o", dir}, "none.yaml", 1},
		{"ls not a zoo", []string{"zoo", "ls", notZoo}, "not a zoo", 1},
		{"merge nothing", []string{"zoo", "merge", "-o", dir}, "want zoos", 2},
		{"merge not a zoo", []string{"zoo", "merge", notZoo, "-o", filepath.Join(dir, "m")}, "not a zoo", 1},
	} {
		code, _, stderr := hyperrep(c.args...)
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		if code != c.code || len(lines) != 1 || !strings.Contains(lines[0], c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", c.name, code, stderr, c.code, c.want)
		}
	}
}

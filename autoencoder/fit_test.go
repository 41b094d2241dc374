package autoencoder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/runtime"
	"github.com/hyperrep/hyperrep/zoo"
)

// tinyConfig trains in seconds: cnn-s in 104 tokens of 32 values, windows
// of 24, d 16.
func tinyConfig(epochs int) Config {
	c := DefaultConfig()
	c.TokenSize, c.Context = 32, 24
	c.D, c.Layers, c.Heads, c.Latent, c.Project = 16, 1, 2, 8, 8
	c.Epochs, c.Batch = epochs, 4
	c.LR = 3e-3
	c.Validation, c.Test = 0.2, 0.2
	return c
}

// fitTiny fits tinyConfig(1), changed by edit, into a new directory and
// opens the result; the caller closes it.
func fitTiny(t *testing.T, edit func(*Config)) (string, *Model) {
	t.Helper()
	dir := t.TempDir()
	cfg := tinyConfig(1)
	edit(&cfg)
	if _, err := Fit(context.Background(), tinyZoo, dir, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	m, err := Open(dir, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// lastTinyCheckpoint reads the tiny zoo's last checkpoint.
func lastTinyCheckpoint(t *testing.T) *onnx.Model {
	t.Helper()
	_, cps, err := Checkpoints(tinyZoo)
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnx.Read(cps[len(cps)-1].Path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFitLossFalls(t *testing.T) {
	dir := t.TempDir()
	log, err := Fit(context.Background(), tinyZoo, dir, tinyConfig(20), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 20 {
		t.Fatalf("%d epochs logged, want 20", len(log))
	}
	first, last := log[0], log[len(log)-1]
	t.Logf("reconstruction: train %.4f -> %.4f, validation %.4f -> %.4f", first.Train.Reconstruction, last.Train.Reconstruction,
		first.Validation.Reconstruction, last.Validation.Reconstruction)
	if !(last.Train.Reconstruction < 0.8*first.Train.Reconstruction) || !(last.Validation.Reconstruction < first.Validation.Reconstruction) {
		t.Errorf("reconstruction loss did not fall: %+v -> %+v", first, last)
	}
	for _, f := range []string{metaFile, encoderFile, decoderFile, templateFile, readmeFile, logFile, stateFile} {
		if !exists(filepath.Join(dir, f)) {
			t.Errorf("fit wrote no %s", f)
		}
	}
	m, err := Open(dir, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := len(m.Meta.Split.Train) + len(m.Meta.Split.Validation) + len(m.Meta.Split.Test); got != 10 || len(m.Meta.Split.Test) != 2 {
		t.Errorf("split %+v", m.Meta.Split)
	}
}

func TestFitRefuses(t *testing.T) {
	mixed := t.TempDir()
	if err := writeZoo(mixed, 3, 1); err != nil {
		t.Fatal(err)
	}
	mlp, err := os.ReadFile(fixtures.Path(fixtures.MLP))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(zoo.CheckpointDir(mixed, "m01", 1), "model.onnx"), mlp, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := tinyConfig(1)
	bad.Heads = 3
	for _, c := range []struct {
		name, zoo string
		cfg       Config
		want      string
	}{
		{"two architectures", mixed, tinyConfig(1), "one architecture"},
		{"no zoo", t.TempDir(), tinyConfig(1), "not a zoo"},
		{"bad config", tinyZoo, bad, "not a multiple"},
	} {
		dir := filepath.Join(t.TempDir(), "hr")
		_, err := Fit(context.Background(), c.zoo, dir, c.cfg, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
		if exists(dir) {
			t.Errorf("%s: the failed fit left %s behind", c.name, dir)
		}
	}
}

package autoencoder

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/zoo"
)

// writeZoo writes a zoo of cnn-s models in zoo's layout without training
// any: model i starts from the fixture's weights scaled and shifted at
// random, and each epoch moves every weight a step along a direction of
// its own, so that checkpoints of one model resemble each other.
func writeZoo(dir string, models, epochs int) error {
	base, err := onnx.Read(fixtures.Path(fixtures.CNNS))
	if err != nil {
		return err
	}
	cfg := zoo.Config{Format: zoo.FormatVersion, Dataset: "mnist", Architecture: "cnn-s", Input: [3]int{1, 28, 28},
		Classes: 10, Parameters: 2464, Epochs: epochs, Batch: 32}
	for i := range models {
		id := fmt.Sprintf("m%02d", i)
		cfg.Models = append(cfg.Models, id)
		r := rng.New(uint64(i) + 1)
		scale := 0.5 + r.Float64()
		start := map[string][]float32{}
		step := map[string][]float32{}
		for _, init := range base.Graph().GetInitializer() {
			v, err := onnx.Float32s(init)
			if err != nil {
				return err
			}
			s, d := make([]float32, len(v)), make([]float32, len(v))
			for k, x := range v {
				s[k] = float32(scale*float64(x) + 0.05*r.Normal())
				d[k] = float32(0.02 * r.Normal())
			}
			start[init.GetName()], step[init.GetName()] = s, d
		}
		var results strings.Builder
		for e := 0; e <= epochs; e++ {
			m := base.Clone()
			for _, init := range m.Graph().GetInitializer() {
				v := make([]float32, len(start[init.GetName()]))
				for k := range v {
					v[k] = start[init.GetName()][k] + float32(e)*step[init.GetName()][k]
				}
				if err := onnx.SetFloat32s(init, v); err != nil {
					return err
				}
			}
			cp := zoo.CheckpointDir(dir, id, e)
			if err := os.MkdirAll(cp, 0o755); err != nil {
				return err
			}
			if err := m.Write(filepath.Join(cp, "model.onnx")); err != nil {
				return err
			}
			fmt.Fprintf(&results, `{"epoch":%d,"test_loss":1,"test_accuracy":%g,"seconds":1}`+"\n", e, 0.1+0.1*float64(e))
		}
		if err := os.WriteFile(filepath.Join(dir, "models", id, "result.jsonl"), []byte(results.String()), 0o644); err != nil {
			return err
		}
		if err := writeJSON(filepath.Join(dir, "models", id, "params.json"), zoo.Params{ID: id, Architecture: "cnn-s", Dataset: "mnist", Parameters: 2464}); err != nil {
			return err
		}
	}
	return writeJSON(filepath.Join(dir, "zoo.json"), cfg)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// tinyZoo is a synthetic zoo of 10 models × 4 checkpoints, written once
// per test binary (TestMain removes it).
var tinyZoo string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "autoencoder-zoo")
	if err == nil {
		tinyZoo = dir
		err = writeZoo(dir, 10, 3)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fitted is a hyper-representation of tinyZoo fitted for three epochs,
// made once per test binary.
var fitted = sync.OnceValues(func() (string, error) {
	dir := filepath.Join(tinyZoo, "hr")
	_, err := Fit(context.Background(), tinyZoo, dir, tinyConfig(3), Options{})
	return dir, err
})

func fittedDir(t *testing.T) string {
	t.Helper()
	dir, err := fitted()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

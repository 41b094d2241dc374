package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/generate"
	"github.com/hyperrep/hyperrep/zoo"
)

func TestBenchGeneration(t *testing.T) {
	dir := t.TempDir()
	zooDir, hr := filepath.Join(dir, "zoo"), filepath.Join(dir, "hr")
	writeProbeZoo(t, zooDir, 8, 2) // relu and tanh models with made-up accuracies
	if code, _, stderr := hyperrep("fit", "--zoo", zooDir, "-o", hr, "--epochs", "1", "--d", "16", "--layers", "1", "--heads", "2",
		"--latent", "4", "--threads", "1"); code != 0 {
		t.Fatal(stderr)
	}
	report := filepath.Join(dir, "report")
	code, stdout, stderr := hyperrep("bench-generation", "--hr", hr, "--zoo", zooDir, "-n", "2", "--epochs", "2",
		"--train-samples", "128", "--test-samples", "200", "--workers", "1", "--threads", "1", "-o", report)
	if code != 0 {
		t.Fatalf("bench-generation: exit %d, %q", code, stderr)
	}
	for _, g := range []string{"| samples | 2 |", "| random | 2 |", "| zoo | 2 |", "epoch 0 | epoch 1 | epoch 2 |"} {
		if !strings.Contains(stdout, g) {
			t.Errorf("table lacks %q:\n%s", g, stdout)
		}
	}
	for _, f := range []string{"report.md", "report.json", "generation.png"} {
		if fi, err := os.Stat(filepath.Join(report, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	data, err := os.ReadFile(filepath.Join(report, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res generate.BenchResult
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 3 || len(res.Samples) != 2 || len(res.Rows) != 9 {
		t.Fatalf("report.json: %d groups, %d samples, %d rows", len(res.Groups), len(res.Samples), len(res.Rows))
	}
	random, zooGroup := res.Groups[1], res.Groups[2]
	// The zoo group is the zoo's own record; the random group starts from
	// the same checkpoints, scored here as hyperrep eval scores them.
	for i, id := range zooGroup.Models {
		var results []zoo.Epoch
		f, _ := os.ReadFile(filepath.Join(zooDir, "models", id, "result.jsonl"))
		for _, line := range strings.Split(strings.TrimSpace(string(f)), "\n") {
			var e zoo.Epoch
			json.Unmarshal([]byte(line), &e)
			results = append(results, e)
		}
		for k, e := range res.Epochs {
			if got := zooGroup.Acc[i][k]; got != results[e].TestAccuracy {
				t.Errorf("zoo %s epoch %d: %v, result.jsonl says %v", id, e, got, results[e].TestAccuracy)
			}
		}
		cp := filepath.Join(zoo.CheckpointDir(zooDir, random.Models[i], 0), "model.onnx")
		code, out, stderr := hyperrep("eval", cp, "--dataset", "mnist", "--samples", "200", "--json", "--threads", "1")
		var ev struct {
			Accuracy float64 `json:"accuracy"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &ev) != nil {
			t.Fatalf("eval: exit %d, %q, %q", code, out, stderr)
		}
		if math.Abs(random.Acc[i][0]-ev.Accuracy) > 1e-9 {
			t.Errorf("random %s at epoch 0: %v, eval says %v", random.Models[i], random.Acc[i][0], ev.Accuracy)
		}
	}
	for _, r := range res.Rows {
		if r.N == 0 || math.IsNaN(r.Mean) || r.Mean < 0 || r.Mean > 1 {
			t.Errorf("row %+v", r)
		}
	}
}

func TestBenchGenerationBadCalls(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--zoo", "z", "-o", "o"}, 2, "want --hr HR"},
		{[]string{"--hr", "h", "--zoo", "z", "-o", "o", "--method", "interpolate"}, 2, "--method"},
		{[]string{"--hr", "h", "--zoo", "z", "-o", "o", "--epochs", "0"}, 2, "--epochs"},
		{[]string{"--hr", "h", "--zoo", "z", "-o", "o", "--anchors", "best"}, 2, "best"},
		{[]string{"--hr", "h", "--zoo", "z", "-o", "o", "--where", "colour==red"}, 2, "colour"},
		{[]string{"--hr", "h", "--zoo", filepath.Join(dir, "nozoo"), "-o", filepath.Join(dir, "r")}, 1, "nozoo"},
		{[]string{"--hr", "h", "--zoo", "z", "-o", "o", "--bogus"}, 2, "bogus"},
	} {
		code, _, stderr := hyperrep(append([]string{"bench-generation"}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want exit %d mentioning %q", c.args, code, stderr, c.code, c.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "r")); err == nil {
			t.Errorf("%v left a report directory", c.args)
		}
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/zoo"
)

// writeTestZoo writes a zoo of cnn-s models in zoo's layout without
// training any: the fixture's weights scaled, shifted and moved a little
// each epoch, at random.
func writeTestZoo(t *testing.T, dir string, models, epochs int) {
	t.Helper()
	base, err := onnx.Read(fixtures.Path(fixtures.CNNS))
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Helper()
			t.Fatal(err)
		}
	}
	cfg := zoo.Config{Format: zoo.FormatVersion, Dataset: "mnist", Architecture: "cnn-s", Input: [3]int{1, 28, 28},
		Classes: 10, Parameters: 2464, Epochs: epochs, Batch: 32}
	for i := range models {
		id := fmt.Sprintf("m%d", i)
		cfg.Models = append(cfg.Models, id)
		r := rng.New(uint64(i))
		scale := 0.5 + r.Float64()
		var results strings.Builder
		for e := 0; e <= epochs; e++ {
			m := base.Clone()
			for _, init := range m.Graph().GetInitializer() {
				v, err := onnx.Float32s(init)
				must(err)
				for k := range v {
					v[k] = float32(scale*float64(v[k]) + 0.01*float64(e)*r.Normal())
				}
				must(onnx.SetFloat32s(init, v))
			}
			cp := zoo.CheckpointDir(dir, id, e)
			must(os.MkdirAll(cp, 0o755))
			must(m.Write(filepath.Join(cp, "model.onnx")))
			fmt.Fprintf(&results, `{"epoch":%d,"test_loss":1,"test_accuracy":0.5,"seconds":1}`+"\n", e)
		}
		must(os.WriteFile(filepath.Join(dir, "models", id, "result.jsonl"), []byte(results.String()), 0o644))
		b, _ := json.Marshal(zoo.Params{ID: id, Architecture: "cnn-s", Dataset: "mnist"})
		must(os.WriteFile(filepath.Join(dir, "models", id, "params.json"), b, 0o644))
	}
	b, _ := json.Marshal(cfg)
	must(os.WriteFile(filepath.Join(dir, "zoo.json"), b, 0o644))
}

func TestFitEmbedReconstruct(t *testing.T) {
	dir := t.TempDir()
	zooDir, hr := filepath.Join(dir, "zoo"), filepath.Join(dir, "hr")
	writeTestZoo(t, zooDir, 6, 2)
	// The small configuration.
	fit := []string{"fit", "--zoo", zooDir, "-o", hr, "--epochs", "3", "--d", "32", "--layers", "1", "--heads", "2", "--latent", "8", "--threads", "1"}
	code, stdout, stderr := hyperrep(fit...)
	if code != 0 || !strings.Contains(stdout, "3 epochs") {
		t.Fatalf("fit: exit %d, %q, %q", code, stdout, stderr)
	}
	var lines int
	if b, err := os.ReadFile(filepath.Join(hr, "log.jsonl")); err != nil || strings.Count(string(b), "\n") != 3 {
		t.Errorf("log.jsonl after 3 epochs: %q, %v", b, err)
	}
	// More epochs train on from the saved state.
	fit[6] = "4"
	if code, stdout, stderr = hyperrep(fit...); code != 0 || !strings.Contains(stdout, "4 epochs") {
		t.Fatalf("fit on: exit %d, %q, %q", code, stdout, stderr)
	}

	csv := filepath.Join(dir, "emb.csv")
	if code, _, stderr := hyperrep("embed", "--hr", hr, "--zoo", zooDir, "-o", csv); code != 0 {
		t.Fatalf("embed --zoo: %s", stderr)
	}
	b, err := os.ReadFile(csv)
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(rows) != 1+6*3 || !strings.HasPrefix(rows[0], "id,epoch,split,e0,") || strings.Count(rows[0], ",") != 2+8 {
		t.Fatalf("embed --zoo: want a header and one row per checkpoint, got %d lines, header %q", len(rows), rows[0])
	}
	if !strings.HasPrefix(rows[1], "m0,0,") || strings.Count(rows[1], ",") != 2+8 {
		t.Errorf("first row %q", rows[1])
	}

	model := zoo.CheckpointDir(zooDir, "m1", 2) + "/model.onnx"
	jsonl := filepath.Join(dir, "emb.jsonl")
	if code, _, stderr := hyperrep("embed", "--hr", hr, model, fixtures.Path(fixtures.CNNS), "-o", jsonl, "--json"); code != 0 {
		t.Fatalf("embed --json: %s", stderr)
	}
	b, _ = os.ReadFile(jsonl)
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r embedRow
		if err := json.Unmarshal([]byte(l), &r); err != nil || len(r.Embedding) != 8 || r.Epoch != nil {
			t.Errorf("embed --json line %q: %v", l, err)
		}
		lines++
	}
	if lines != 2 {
		t.Errorf("embed --json of two models wrote %d lines", lines)
	}

	rec := filepath.Join(dir, "rec.onnx")
	code, stdout, stderr = hyperrep("reconstruct", "--hr", hr, model, "-o", rec, "--dataset", "mnist", "--samples", "200")
	if code != 0 || !strings.Contains(stdout, "accuracy") {
		t.Fatalf("reconstruct: exit %d, %q, %q", code, stdout, stderr)
	}
	if _, err := onnx.Read(rec); err != nil {
		t.Errorf("reconstructed model: %v", err)
	}
}

func TestFitBadInputGivesOneLine(t *testing.T) {
	dir := t.TempDir()
	zooDir, hr := filepath.Join(dir, "zoo"), filepath.Join(dir, "hr")
	writeTestZoo(t, zooDir, 4, 1)
	if code, _, stderr := hyperrep("fit", "--zoo", zooDir, "-o", hr, "--epochs", "1", "--d", "16", "--layers", "1", "--heads", "2",
		"--latent", "4", "--threads", "1"); code != 0 {
		t.Fatal(stderr)
	}
	outDir := t.TempDir()
	notZoo := t.TempDir()
	bad := badFiles(t, t.TempDir())
	model := zoo.CheckpointDir(zooDir, "m0", 1) + "/model.onnx"
	type call struct {
		name string
		args []string
		want string
	}
	calls := []call{
		{"fit without zoo", []string{"fit", "-o", filepath.Join(outDir, "hr")}, "--zoo"},
		{"fit of a missing zoo", []string{"fit", "--zoo", filepath.Join(dir, "nope"), "-o", filepath.Join(outDir, "hr")}, "not a zoo"},
		{"fit of a non-zoo", []string{"fit", "--zoo", notZoo, "-o", filepath.Join(outDir, "hr")}, "not a zoo"},
		{"fit with bad heads", []string{"fit", "--zoo", zooDir, "-o", filepath.Join(outDir, "hr"), "--d", "30"}, "multiple"},
		{"fit with bad gamma", []string{"fit", "--zoo", zooDir, "-o", filepath.Join(outDir, "hr"), "--gamma", "2"}, "gamma"},
		{"fit with an argument", []string{"fit", "--zoo", zooDir, "-o", filepath.Join(outDir, "hr"), "extra"}, "no arguments"},
		{"fit into another config", []string{"fit", "--zoo", zooDir, "-o", hr, "--d", "32"}, "was fitted with"},
		{"embed without hr", []string{"embed", "--zoo", zooDir, "-o", filepath.Join(outDir, "e.csv")}, "--hr"},
		{"embed of nothing", []string{"embed", "--hr", hr, "-o", filepath.Join(outDir, "e.csv")}, "either --zoo"},
		{"embed of a non-hr", []string{"embed", "--hr", notZoo, "--zoo", zooDir, "-o", filepath.Join(outDir, "e.csv")}, "not a hyper-representation"},
		{"embed of an mlp", []string{"embed", "--hr", hr, fixtures.Path(fixtures.MLP), "-o", filepath.Join(outDir, "e.csv")}, "not laid out"},
		{"reconstruct of an mlp", []string{"reconstruct", "--hr", hr, fixtures.Path(fixtures.MLP), "-o", filepath.Join(outDir, "r.onnx")}, "not laid out"},
		{"reconstruct on a bad dataset", []string{"reconstruct", "--hr", hr, model, "-o", filepath.Join(outDir, "r.onnx"), "--dataset", "cifar-1000"}, "cifar-1000"},
		{"reconstruct of two models", []string{"reconstruct", "--hr", hr, model, model, "-o", filepath.Join(outDir, "r.onnx")}, "one model"},
		{"bad device", []string{"embed", "--hr", hr, model, "-o", filepath.Join(outDir, "e.csv"), "--device", "tpu"}, "tpu"},
	}
	for name, p := range bad {
		if name == "bitflip.onnx" {
			continue
		}
		calls = append(calls,
			call{"embed " + name, []string{"embed", "--hr", hr, p, "-o", filepath.Join(outDir, "e.csv")}, ""},
			call{"reconstruct " + name, []string{"reconstruct", "--hr", hr, p, "-o", filepath.Join(outDir, "r.onnx")}, ""})
	}
	for _, c := range calls {
		code, stdout, stderr := hyperrep(c.args...)
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		last := lines[len(lines)-1]
		switch {
		case code == 0:
			t.Errorf("%s: exit 0, stdout %q", c.name, stdout)
		case len(lines) != 1 || !strings.HasPrefix(last, "hyperrep"):
			t.Errorf("%s: stderr is not one line: %q", c.name, stderr)
		case !strings.Contains(last, c.want):
			t.Errorf("%s: %q does not say %q", c.name, last, c.want)
		case strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic"):
			t.Errorf("%s: stack trace: %q", c.name, stderr)
		}
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Errorf("failed commands left files behind: %v", entries)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/zoo"
)

// writeProbeZoo writes writeTestZoo's zoo with properties to probe: test
// accuracy rising with the epoch, training accuracy from epoch 1 on (null at
// epoch 0, as zoo writes it), and activation and learning rate varying
// across models.
func writeProbeZoo(t *testing.T, dir string, models, epochs int) {
	t.Helper()
	writeTestZoo(t, dir, models, epochs)
	for i := range models {
		id := fmt.Sprintf("m%d", i)
		// writeTestZoo's scale of the model's weights.
		scale := 0.5 + rng.New(uint64(i)).Float64()
		var results strings.Builder
		for e := 0; e <= epochs; e++ {
			acc := 0.4*scale + 0.1*float64(e)
			train := "null"
			if e > 0 {
				train = fmt.Sprint(acc + 0.02*float64(i%2))
			}
			fmt.Fprintf(&results, `{"epoch":%d,"train_loss":null,"train_accuracy":%s,"test_loss":1,"test_accuracy":%v,"seconds":1}`+"\n", e, train, acc)
		}
		mdir := filepath.Join(dir, "models", id)
		if err := os.WriteFile(filepath.Join(mdir, "result.jsonl"), []byte(results.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		p := zoo.Params{ID: id, Architecture: "cnn-s", Dataset: "mnist"}
		p.Activation = []string{"relu", "tanh"}[i%2]
		p.Init, p.Optimizer, p.LR = "kaiming_uniform", "adam", []float64{0.001, 0.01}[i/2%2]
		b, _ := json.Marshal(p)
		if err := os.WriteFile(filepath.Join(mdir, "params.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestProbePredict(t *testing.T) {
	dir := t.TempDir()
	zooDir, hr := filepath.Join(dir, "zoo"), filepath.Join(dir, "hr")
	writeProbeZoo(t, zooDir, 16, 2)
	if code, _, stderr := hyperrep("fit", "--zoo", zooDir, "-o", hr, "--epochs", "1", "--d", "16", "--layers", "1", "--heads", "2",
		"--latent", "4", "--threads", "1", "--test", "0.25"); code != 0 {
		t.Fatal(stderr)
	}

	code, stdout, stderr := hyperrep("probe", "--hr", hr, "--zoo", zooDir, "--threads", "1")
	if code != 0 {
		t.Fatalf("probe: exit %d, %s", code, stderr)
	}
	t.Logf("probe table:\n%s", stdout)
	if !regexp.MustCompile(`scored on the \d+ checkpoints of \d+ held-out models; fitted on \d+ other models, penalties by 5-fold cross-validation`).MatchString(stderr) {
		t.Errorf("probe does not say what it scored on: %s", stderr)
	}
	if !regexp.MustCompile(`test_acc r2 over 1000 resamples of the \d+ held-out models, central 90 %: hyperrep -?[0-9.]+ to -?[0-9.]+, stats .*; hyperrep above stats in \d+ %; hyperrep above weights in \d+ %`).MatchString(stderr) {
		t.Errorf("probe does not say how the test_acc R² spreads over the held-out models: %s", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	for _, want := range []string{"hyperrep", "stats", "weights"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("table header %q lacks %s", lines[0], want)
		}
	}
	for _, want := range [][2]string{{"test_acc", "r2"}, {"test_acc", "kendall_tau"}, {"train_acc", "r2"}, {"gen_gap", "r2"},
		{"epoch", "r2"}, {"activation", "accuracy"}, {"lr", "accuracy"}} {
		found := false
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) == 5 && f[0] == want[0] && f[1] == want[1] {
				found = true
			}
		}
		if !found {
			t.Errorf("table lacks a row %s %s with three scores:\n%s", want[0], want[1], stdout)
		}
	}
	if strings.Contains(stdout, "init") || strings.Contains(stdout, "optimizer") {
		t.Errorf("table probes hyperparameters that do not vary:\n%s", stdout)
	}

	rep := filepath.Join(dir, "report")
	code, stdout, stderr = hyperrep("probe", "--hr", hr, "--zoo", zooDir, "--threads", "1", "--json", "-o", rep)
	if code != 0 {
		t.Fatalf("probe --json -o: exit %d, %s", code, stderr)
	}
	var report struct {
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal([]byte(stdout), &report); err != nil || len(report.Rows) == 0 {
		t.Fatalf("probe --json: %v, %q", err, stdout)
	}
	props := map[string]bool{}
	for _, r := range report.Rows {
		props[fmt.Sprint(r["property"])] = true
		for _, k := range []string{"metric", "hyperrep", "stats", "weights"} {
			if _, ok := r[k]; !ok {
				t.Errorf("row %v lacks %s", r, k)
			}
		}
	}
	for _, p := range []string{"test_acc", "train_acc", "gen_gap", "epoch", "activation", "lr"} {
		if !props[p] {
			t.Errorf("--json has no rows for %s: %q", p, stdout)
		}
	}
	for _, name := range []string{"report.md", "report.csv", "report.json", "probes.json", "representation.json", "predicted_test_acc.png", "pca.png"} {
		f, err := os.Open(filepath.Join(rep, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if strings.HasSuffix(name, ".png") {
			if _, err := png.Decode(f); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		} else if fi, _ := f.Stat(); fi.Size() == 0 {
			t.Errorf("%s is empty", name)
		}
		f.Close()
	}
	if md, err := os.ReadFile(filepath.Join(rep, "report.md")); err != nil || !strings.Contains(string(md), "| hyperrep above stats | hyperrep above weights |") ||
		!regexp.MustCompile(`\| test_acc \| r2 \| -?[0-9.]+ – -?[0-9.]+ \|`).Match(md) {
		t.Errorf("report.md lacks the intervals over resampled held-out models (%v):\n%s", err, md)
	}
	if entries, _ := os.ReadDir(rep); len(entries) != 7 {
		t.Errorf("report directory holds %d entries, want 7", len(entries))
	}

	model := zoo.CheckpointDir(zooDir, "m1", 2) + "/model.onnx"
	for _, from := range []string{"hyperrep", "stats", "weights"} {
		code, stdout, stderr = hyperrep("predict", "--hr", hr, "--probe", rep, "--from", from, "--json", model, model)
		if code != 0 {
			t.Fatalf("predict --from %s: exit %d, %s", from, code, stderr)
		}
		pl := strings.Split(strings.TrimSpace(stdout), "\n")
		if len(pl) != 2 {
			t.Fatalf("predict of two models printed %q", stdout)
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(pl[0]), &r); err != nil {
			t.Fatalf("predict --json line %q: %v", pl[0], err)
		}
		if _, ok := r["test_acc"].(float64); !ok || r["model"] != model {
			t.Errorf("predict --json line %q lacks model or test_acc", pl[0])
		}
		if a, ok := r["activation"].(string); !ok || (a != "relu" && a != "tanh") {
			t.Errorf("predict --json line %q: activation %v", pl[0], r["activation"])
		}
	}
	if code, stdout, stderr = hyperrep("predict", "--hr", hr, "--probe", rep, model); code != 0 ||
		!strings.HasPrefix(stdout, model+": test_acc ") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("predict: exit %d, %q, %q", code, stdout, stderr)
	}

	// Bad calls: one line on stderr, a non-zero exit, no files.
	outDir := t.TempDir()
	notZoo := t.TempDir()
	otherZoo := filepath.Join(dir, "other")
	writeProbeZoo(t, otherZoo, 2, 1) // none of the hr's test models
	newRep := filepath.Join(outDir, "r")
	otherHR := filepath.Join(dir, "hr8")
	if code, _, stderr := hyperrep("fit", "--zoo", zooDir, "-o", otherHR, "--epochs", "1", "--d", "16", "--layers", "1", "--heads", "2",
		"--latent", "8", "--threads", "1", "--test", "0.25"); code != 0 {
		t.Fatal(stderr)
	}
	calls := []struct {
		name string
		args []string
		want string
	}{
		{"probe without hr", []string{"probe", "--zoo", zooDir, "-o", newRep}, "--hr"},
		{"probe without zoo", []string{"probe", "--hr", hr, "-o", newRep}, "--zoo"},
		{"probe with an argument", []string{"probe", "--hr", hr, "--zoo", zooDir, "-o", newRep, "extra"}, "no arguments"},
		{"probe of a non-zoo", []string{"probe", "--hr", hr, "--zoo", notZoo, "-o", newRep}, "not a zoo"},
		{"probe of a missing zoo", []string{"probe", "--hr", hr, "--zoo", filepath.Join(dir, "nope"), "-o", newRep}, "not a zoo"},
		{"probe of another zoo", []string{"probe", "--hr", hr, "--zoo", otherZoo, "-o", newRep}, "test models"},
		{"probe with a non-hr", []string{"probe", "--hr", notZoo, "--zoo", zooDir, "-o", newRep}, "not a hyper-representation"},
		{"probe with unknown features", []string{"probe", "--hr", hr, "--zoo", zooDir, "--features", "median", "-o", newRep}, "median"},
		{"probe with no folds", []string{"probe", "--hr", hr, "--zoo", zooDir, "--folds", "0", "-o", newRep}, "--folds 0"},
		{"predict with another hr", []string{"predict", "--hr", otherHR, "--probe", rep, model}, "another hyper-representation"},
		{"predict without hr", []string{"predict", "--probe", rep, model}, "--hr"},
		{"predict without probe", []string{"predict", "--hr", hr, model}, "--probe"},
		{"predict of nothing", []string{"predict", "--hr", hr, "--probe", rep}, "one model"},
		{"predict from nowhere", []string{"predict", "--hr", hr, "--probe", rep, "--from", "pixels", model}, "pixels"},
		{"predict without probes", []string{"predict", "--hr", hr, "--probe", notZoo, model}, "no probes"},
		{"predict of an mlp", []string{"predict", "--hr", hr, "--probe", rep, fixtures.Path(fixtures.MLP)}, "not laid out"},
		{"predict of an mlp from stats", []string{"predict", "--hr", hr, "--probe", rep, "--from", "stats", model, fixtures.Path(fixtures.MLP)}, "mlp"},
		{"predict of a missing model", []string{"predict", "--hr", hr, "--probe", rep, filepath.Join(dir, "nope.onnx")}, "nope.onnx"},
	}
	for _, c := range calls {
		code, stdout, stderr := hyperrep(c.args...)
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		switch {
		case code == 0:
			t.Errorf("%s: exit 0, stdout %q", c.name, stdout)
		case stdout != "":
			t.Errorf("%s: printed %q", c.name, stdout)
		case len(lines) != 1 || !strings.HasPrefix(lines[0], "hyperrep"):
			t.Errorf("%s: stderr is not one line: %q", c.name, stderr)
		case !strings.Contains(lines[0], c.want):
			t.Errorf("%s: %q does not say %q", c.name, lines[0], c.want)
		}
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Errorf("failed commands left files behind: %v", entries)
	}
}

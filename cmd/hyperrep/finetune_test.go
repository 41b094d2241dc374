package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/zoo"
)

// smallFinetune is the flags of a fine-tuning run that takes well under a
// second per model.
var smallFinetune = []string{"--dataset", "mnist", "--epochs", "2", "--train-samples", "256", "--test-samples", "100"}

func finetuneNeedsMNIST(t *testing.T) {
	t.Helper()
	if _, err := dataset.Load("mnist", "test"); err != nil {
		t.Skip(err)
	}
}

// copyTo copies a fixture to dir/rel.
func copyTo(t *testing.T, fixture, dir, rel string) string {
	t.Helper()
	b, err := os.ReadFile(fixtures.Path(fixture))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFinetuneJSON(t *testing.T) {
	finetuneNeedsMNIST(t)
	dir := t.TempDir()
	// Zoo checkpoints are all called model.onnx: names take their parents.
	a := copyTo(t, fixtures.CNNS, dir, "zoo/a/checkpoint_000001/model.onnx")
	b := copyTo(t, fixtures.CNNBN, dir, "zoo/b/checkpoint_000001/model.onnx")
	o := filepath.Join(dir, "out")
	code, stdout, stderr := hyperrep(append([]string{"finetune", a, b, "--json", "-o", o}, smallFinetune...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 6 {
		t.Fatalf("--json printed %d lines, want 2 models x 3 epochs:\n%s", len(lines), stdout)
	}
	for i, l := range lines {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		for _, k := range []string{"model", "name", "epoch", "test_acc", "test_loss", "train_loss", "train_acc", "seconds"} {
			if _, ok := r[k]; !ok {
				t.Errorf("line %q lacks %q", l, k)
			}
		}
		wantName := []string{"a_checkpoint_000001_model", "b_checkpoint_000001_model"}[i/3]
		if r["name"] != wantName || r["epoch"] != float64(i%3) || r["test_acc"].(float64) < 0.8 {
			t.Errorf("line %d: %q", i, l)
		}
		if _, err := os.Stat(filepath.Join(o, wantName, "epoch_0"+string(rune('0'+i%3))+".onnx")); err != nil {
			t.Error(err)
		}
	}
	metrics, err := os.ReadFile(filepath.Join(o, "metrics.jsonl"))
	if err != nil || string(metrics) != stdout {
		t.Errorf("metrics.jsonl differs from --json output (%v)", err)
	}
	// The written model scores what metrics.jsonl says.
	code, stdout, _ = hyperrep("eval", filepath.Join(o, "b_checkpoint_000001_model", "epoch_02.onnx"), "--samples", "100", "--json")
	var ev struct{ Accuracy float64 }
	var last struct {
		TestAcc float64 `json:"test_acc"`
	}
	json.Unmarshal([]byte(stdout), &ev)
	json.Unmarshal([]byte(lines[5]), &last)
	if code != 0 || ev.Accuracy != last.TestAcc {
		t.Errorf("eval of epoch_02.onnx: exit %d, accuracy %v; metrics say %v", code, ev.Accuracy, last.TestAcc)
	}
}

func TestFinetuneTable(t *testing.T) {
	finetuneNeedsMNIST(t)
	dir := t.TempDir()
	o := filepath.Join(dir, "out")
	code, stdout, stderr := hyperrep(append([]string{"finetune", fixtures.Path(fixtures.MLP), "--save", "final", "-o", o}, smallFinetune...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "acc@0") || !strings.Contains(stdout, "acc@2") || !strings.Contains(stdout, "model-epochs/s") {
		t.Errorf("table: %q", stdout)
	}
	files, _ := filepath.Glob(filepath.Join(o, "mlp", "*.onnx"))
	if len(files) != 1 || filepath.Base(files[0]) != "epoch_02.onnx" {
		t.Errorf("--save final wrote %v", files)
	}
}

func TestFinetuneBadInput(t *testing.T) {
	finetuneNeedsMNIST(t)
	dir := t.TempDir()
	model := fixtures.Path(fixtures.CNNS)
	garbage := filepath.Join(dir, "garbage.onnx")
	os.WriteFile(garbage, []byte("not a model"), 0o644)
	// A cnn-s for 3-channel images cannot take MNIST.
	arch, _ := zoo.NewArch("cnn-s", 3, 28, 28, 10)
	ws := make([][]float32, len(arch.Params()))
	for i, p := range arch.Params() {
		ws[i] = make([]float32, p.Size())
	}
	rgb, _ := arch.Model("relu", ws)
	rgbPath := filepath.Join(dir, "rgb.onnx")
	if err := rgb.Write(rgbPath); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-o", "x"}, 2, "no model"},
		{[]string{model}, 2, "-o OUT_DIR"},
		{[]string{model, "-o", "x", "--optimizer", "lbfgs"}, 2, "lbfgs"},
		{[]string{model, "-o", "x", "--lr", "-1"}, 2, "learning rate"},
		{[]string{model, "-o", "x", "--batch", "0"}, 2, "--batch"},
		{[]string{model, "-o", "x", "--save", "some"}, 2, "--save"},
		{[]string{model, model, "-o", "x"}, 2, "twice"},
		{[]string{model, "-o", "x", "--dataset", "cifar"}, 1, "cifar"},
		{[]string{filepath.Join(dir, "missing.onnx"), "-o", "x"}, 1, "missing.onnx"},
		{[]string{model, garbage, "-o", "x"}, 1, "garbage.onnx"},
		{[]string{model, rgbPath, "-o", "x"}, 1, "rgb.onnx"},
	} {
		o := filepath.Join(dir, "out")
		args := append([]string{"finetune"}, c.args...)
		for i, a := range args {
			if a == "x" {
				args[i] = o
			}
		}
		code, _, stderr := hyperrep(append(args, "--train-samples", "64", "--test-samples", "10", "--epochs", "1")...)
		if code != c.code || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, stderr, c.code, c.msg)
		}
		// Nothing that looks like a finished run is left.
		if _, err := os.Stat(filepath.Join(o, "metrics.jsonl")); err == nil {
			t.Errorf("%v left metrics.jsonl", c.args)
		}
		if files, _ := filepath.Glob(filepath.Join(o, "*", "*.onnx")); len(files) > 0 {
			t.Errorf("%v left models %v", c.args, files)
		}
	}
}

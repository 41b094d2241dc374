package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/zoo"
)

func TestSample(t *testing.T) {
	dir := t.TempDir()
	zooDir, hr := filepath.Join(dir, "zoo"), filepath.Join(dir, "hr")
	writeProbeZoo(t, zooDir, 8, 2) // relu and tanh models, accuracy rising with the epoch
	if code, _, stderr := hyperrep("fit", "--zoo", zooDir, "-o", hr, "--epochs", "1", "--d", "16", "--layers", "1", "--heads", "2",
		"--latent", "4", "--threads", "1"); code != 0 {
		t.Fatal(stderr)
	}
	out := filepath.Join(dir, "out")
	code, stdout, stderr := hyperrep("sample", "--hr", hr, "--zoo", zooDir, "-n", "3", "-o", out, "--threads", "1")
	if code != 0 || !strings.Contains(stdout, "3 samples, kde on the embedding of") {
		t.Fatalf("sample: exit %d, %q, %q", code, stdout, stderr)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(files) != 4 {
		t.Errorf("wrote %v, want 3 models and samples.jsonl", files)
	}
	code, stdout, stderr = hyperrep("eval", filepath.Join(out, "sample_0002.onnx"), "--dataset", "mnist", "--samples", "100", "--threads", "1")
	if code != 0 && !strings.Contains(stderr, "mnist") { // the dataset may be absent; the model must load
		t.Errorf("eval of a sample: exit %d, %q", code, stderr)
	}

	// Refused into a full directory, replaced with --force; --json prints the records.
	again := []string{"sample", "--hr", hr, "--zoo", zooDir, "-n", "2", "--method", "gaussian", "--where", "epoch>=1, activation==tanh",
		"-o", out, "--threads", "1", "--json"}
	if code, _, stderr = hyperrep(again...); code != 1 || !strings.Contains(stderr, "not empty") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("into a full directory: exit %d, %q", code, stderr)
	}
	code, stdout, stderr = hyperrep(append(again, "--force")...)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var r struct {
		File, Method, Where, Activation string
		Parent                          *struct{ Epoch int }
	}
	if code != 0 || len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &r) != nil || r.File != "sample_0001.onnx" ||
		r.Method != "gaussian" || r.Activation != "tanh" || r.Parent == nil || r.Parent.Epoch < 1 {
		t.Fatalf("gaussian --json: exit %d, %q, %q", code, stdout, stderr)
	}
	if files, _ = filepath.Glob(filepath.Join(out, "*")); len(files) != 3 {
		t.Errorf("after --force: %v, want 2 models and samples.jsonl", files)
	}

	// Interpolation between two checkpoints, into a template of wider layers.
	a := filepath.Join(zoo.CheckpointDir(zooDir, "m0", 2), "model.onnx")
	b := filepath.Join(zoo.CheckpointDir(zooDir, "m1", 1), "model.onnx")
	path := filepath.Join(dir, "path")
	code, stdout, stderr = hyperrep("sample", "--hr", hr, "-n", "3", "--method", "interpolate", "--between", a+","+b, "-o", path, "--threads", "1")
	if code != 0 || !strings.Contains(stdout, "interpolate between") {
		t.Fatalf("interpolate: exit %d, %q, %q", code, stdout, stderr)
	}
	data, _ := os.ReadFile(filepath.Join(path, "samples.jsonl"))
	if !strings.Contains(string(data), `"t":0.5`) || !strings.Contains(string(data), `"parents":["`+a) {
		t.Errorf("samples.jsonl of interpolate: %s", data)
	}
}

func TestSampleBadCalls(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	os.MkdirAll(full, 0o755)
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--zoo", "z", "-o", "o"}, 2, "want --hr HR"},
		{[]string{"--hr", "h", "-o", "o"}, 2, "want --zoo"},
		{[]string{"--hr", "h", "--zoo", "z", "-o", "o", "-n", "0"}, 2, "-n must be at least 1"},
		{[]string{"--hr", "h", "--zoo", "z", "-o", "o", "--method", "vae"}, 2, `--method "vae"`},
		{[]string{"--hr", "h", "--zoo", "z", "-o", "o", "--where", "acc>0.9"}, 2, `unknown property "acc"`},
		{[]string{"--hr", "h", "--zoo", "z", "-o", "o", "--anchors", "best"}, 2, `anchors "best"`},
		{[]string{"--hr", "h", "--zoo", "z", "-o", "o", "--bandwidth", "-1"}, 2, `bandwidth "-1"`},
		{[]string{"--hr", "h", "--zoo", "z", "-o", "o", "--method", "gaussian", "--bandwidth", "scott"}, 2, "--bandwidth is for"},
		{[]string{"--hr", "h", "-o", "o", "--method", "interpolate"}, 2, "wants --between"},
		{[]string{"--hr", "h", "-o", "o", "--method", "interpolate", "--between", "a.onnx"}, 2, "want two models"},
		{[]string{"--hr", "h", "--zoo", "z", "-o", "o", "--between", "a,b"}, 2, "--between is for"},
		{[]string{"--hr", "h", "--zoo", "z", "-o", "o", "--mapping", "rows"}, 2, `--mapping "rows"`},
		{[]string{"--hr", "h", "--zoo", "z", "-o", full}, 1, "not empty"},
		{[]string{"--hr", filepath.Join(dir, "none"), "--zoo", "z", "-o", filepath.Join(dir, "o")}, 1, "not a hyper-representation"},
		{[]string{"--hr", "h", "--zoo", "z", "-o", "o", "--template", filepath.Join(dir, "none.onnx")}, 1, "none.onnx"},
	} {
		code, _, stderr := hyperrep(append([]string{"sample"}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want exit %d and one line with %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

func TestSampleRecomputesBatchNorm(t *testing.T) {
	dir := t.TempDir()
	zooDir, hr := filepath.Join(dir, "zoo"), filepath.Join(dir, "hr")
	writeProbeZoo(t, zooDir, 4, 1)
	if code, _, stderr := hyperrep("fit", "--zoo", zooDir, "-o", hr, "--epochs", "1", "--d", "16", "--layers", "1", "--heads", "2",
		"--latent", "4", "--threads", "1"); code != 0 {
		t.Fatal(stderr)
	}
	out := filepath.Join(dir, "bn")
	code, stdout, stderr := hyperrep("sample", "--hr", hr, "--zoo", zooDir, "-n", "1", "--template", fixtures.Path(fixtures.CNNBN),
		"--bn-samples", "256", "--threads", "1", "--json", "-o", out)
	if code != 0 || !strings.Contains(stdout, `"batchnorm":"recomputed"`) {
		t.Fatalf("sample into a BatchNorm template: exit %d, %q, %q", code, stdout, stderr)
	}
	// The recomputed statistics are the sample's own: not the template's.
	tmpl, err := onnx.Read(fixtures.Path(fixtures.CNNBN))
	if err != nil {
		t.Fatal(err)
	}
	got, err := onnx.Read(filepath.Join(out, "sample_0000.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	mean := func(m *onnx.Model) []float32 {
		ix, err := onnx.NewIndex(m.Graph())
		if err != nil {
			t.Fatal(err)
		}
		v, err := onnx.Float32s(ix.Tensor("bn1.running_mean"))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if a, b := mean(tmpl), mean(got); len(a) != 8 || slices.Equal(a, b) {
		t.Error("bn1.running_mean is the template's")
	}
}

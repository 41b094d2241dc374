package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// hyperrep runs the CLI in-process and returns its exit status and output.
func hyperrep(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestHelpOnEveryCommand(t *testing.T) {
	for name := range commands {
		code, stdout, _ := hyperrep(name, "--help")
		if code != 0 || !strings.HasPrefix(stdout, "Usage: hyperrep "+name) || !strings.Contains(stdout, "Example") {
			t.Errorf("%s --help: exit %d, output %q", name, code, stdout)
		}
	}
	if code, stdout, _ := hyperrep("help"); code != 0 || !strings.Contains(stdout, "tokenize") {
		t.Errorf("help: exit %d, %q", code, stdout)
	}
}

func TestRoundTripThroughCLI(t *testing.T) {
	dir := t.TempDir()
	model := fixtures.Path(fixtures.CNNS)
	toks := filepath.Join(dir, "t.safetensors")
	rebuilt := filepath.Join(dir, "rebuilt.onnx")
	if code, _, stderr := hyperrep("tokenize", model, "-o", toks, "--token-size", "32"); code != 0 {
		t.Fatalf("tokenize: %s", stderr)
	}
	if code, _, stderr := hyperrep("detokenize", toks, "--template", model, "-o", rebuilt); code != 0 {
		t.Fatalf("detokenize: %s", stderr)
	}
	a, _ := os.ReadFile(model)
	b, _ := os.ReadFile(rebuilt)
	ma, _ := onnx.Decode(a, "")
	mb, _ := onnx.Decode(b, "")
	ba, _ := ma.Marshal()
	bb, _ := mb.Marshal()
	if !bytes.Equal(ba, bb) {
		t.Fatal("model rebuilt from its tokens differs from the original")
	}
	code, stdout, _ := hyperrep("inspect", model, "--json")
	var rep inspectReport
	if code != 0 || json.Unmarshal([]byte(stdout), &rep) != nil {
		t.Fatalf("inspect --json: exit %d, %q", code, stdout)
	}
	if rep.Parameters != 2464 || len(rep.Layers) != 5 || rep.Tokens == 0 {
		t.Errorf("inspect: %d parameters in %d layers, %d tokens; want 2464 in 5", rep.Parameters, len(rep.Layers), rep.Tokens)
	}
}

func TestEvalJSON(t *testing.T) {
	code, stdout, stderr := hyperrep("eval", fixtures.Path(fixtures.CNNS), fixtures.Path(fixtures.MLP), "--dataset", "mnist", "--json", "--samples", "2000")
	if code != 0 {
		t.Fatalf("eval: %s", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per model, got %q", stdout)
	}
	for _, l := range lines {
		var r struct {
			Model    string
			Accuracy float64
			Loss     float64
			Samples  int
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		// Both fixtures were trained; their full-test-set accuracies are
		// 96.1 % and 94.0 %.
		if r.Model == "" || r.Accuracy < 0.9 || r.Accuracy > 1 || r.Loss <= 0 || r.Loss > 0.5 || r.Samples != 2000 {
			t.Errorf("eval record %+v", r)
		}
	}
}

// badFiles writes malformed inputs into dir and returns their paths by name.
func badFiles(t *testing.T, dir string) map[string]string {
	good, err := os.ReadFile(fixtures.Path(fixtures.CNNS))
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnx.Decode(good, "")
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(*pb.TensorProto)) []byte {
		c := m.Clone()
		f(c.Initializer("conv1.weight"))
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	flipped := append([]byte(nil), good...)
	for i := 0; i < len(flipped); i += 97 {
		flipped[i] ^= 0x5a
	}
	files := map[string][]byte{
		"empty.onnx":     nil,
		"truncated.onnx": good[:len(good)/3],
		"random.onnx":    bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x01}, 300),
		"bitflip.onnx":   flipped,
		"text.onnx":      []byte("this is not a model\n"),
		"huge.onnx":      mutate(func(p *pb.TensorProto) { p.Dims = []int64{1 << 20, 1 << 20, 8} }),
		"short.onnx":     mutate(func(p *pb.TensorProto) { p.RawData = p.RawData[:100] }),
		"external.onnx": mutate(func(p *pb.TensorProto) {
			p.RawData = nil
			p.DataLocation = pb.TensorProto_EXTERNAL.Enum()
			loc, key := "weights.bin", "location"
			p.ExternalData = []*pb.StringStringEntryProto{{Key: &key, Value: &loc}}
		}),
	}
	paths := map[string]string{}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths[name] = p
	}
	paths["directory"] = dir
	paths["missing.onnx"] = filepath.Join(dir, "missing.onnx")
	return paths
}

func TestBadInputGivesOneLine(t *testing.T) {
	dir := t.TempDir()
	outDir := t.TempDir()
	bad := badFiles(t, dir)
	model := fixtures.Path(fixtures.CNNS)
	// A token file of another model does not fit cnn-s.
	otherToks := filepath.Join(dir, "mlp.safetensors")
	if code, _, stderr := hyperrep("tokenize", fixtures.Path(fixtures.MLP), "-o", otherToks); code != 0 {
		t.Fatal(stderr)
	}
	type call struct {
		name string
		args []string
		want string // in the one line of stderr
	}
	var calls []call
	for name, p := range bad {
		if name == "bitflip.onnx" {
			continue // may still be a valid model; checked below for no crash
		}
		calls = append(calls,
			call{"inspect " + name, []string{"inspect", p}, ""},
			call{"tokenize " + name, []string{"tokenize", p, "-o", filepath.Join(outDir, "x.safetensors")}, ""},
			call{"permute " + name, []string{"permute", p, "--seed", "1", "-o", filepath.Join(outDir, "x.onnx")}, ""},
			call{"eval " + name, []string{"eval", p, "--dataset", "mnist", "--samples", "10"}, ""},
			call{"template " + name, []string{"detokenize", otherToks, "--template", p, "-o", filepath.Join(outDir, "x.onnx")}, ""},
			call{"tokens " + name, []string{"detokenize", p, "--template", model, "-o", filepath.Join(outDir, "x.onnx")}, ""},
		)
	}
	calls = append(calls,
		call{"mismatched tokens", []string{"detokenize", otherToks, "--template", model, "-o", filepath.Join(outDir, "x.onnx")}, "do not fit"},
		call{"unknown dataset", []string{"eval", model, "--dataset", "cifar-1000"}, `unknown dataset "cifar-1000"`},
		call{"unknown flag", []string{"tokenize", model, "--frobnicate", "-o", filepath.Join(outDir, "x.safetensors")}, "unknown flag -frobnicate"},
		call{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		call{"missing -o", []string{"tokenize", model}, "-o"},
		call{"bad device", []string{"eval", model, "--device", "tpu"}, "tpu"},
		call{"huge dims", []string{"inspect", bad["huge.onnx"]}, "raw_data has 800 bytes"},
		call{"missing external", []string{"inspect", bad["external.onnx"]}, "weights.bin: no such file"},
	)
	for _, c := range calls {
		code, stdout, stderr := hyperrep(c.args...)
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		switch {
		case code == 0:
			t.Errorf("%s: exit 0, stdout %q", c.name, stdout)
		case len(lines) != 1 || !strings.HasPrefix(lines[0], "hyperrep"):
			t.Errorf("%s: stderr is not one line: %q", c.name, stderr)
		case !strings.Contains(lines[0], c.want):
			t.Errorf("%s: %q does not say %q", c.name, lines[0], c.want)
		case strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic"):
			t.Errorf("%s: stack trace: %q", c.name, stderr)
		}
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Errorf("failed commands left files behind: %v", entries)
	}
	// A bit-flipped file is either refused in one line or handled; never a crash.
	code, _, stderr := hyperrep("tokenize", bad["bitflip.onnx"], "-o", filepath.Join(dir, "flip.safetensors"))
	if code != 0 && strings.Count(stderr, "\n") != 1 {
		t.Errorf("bit-flipped model: %q", stderr)
	}
}

func TestFailedWriteKeepsExistingFile(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "keep.onnx")
	if err := os.WriteFile(dst, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	otherToks := filepath.Join(dir, "mlp.safetensors")
	if code, _, stderr := hyperrep("tokenize", fixtures.Path(fixtures.MLP), "-o", otherToks); code != 0 {
		t.Fatal(stderr)
	}
	if code, _, _ := hyperrep("detokenize", otherToks, "--template", fixtures.Path(fixtures.CNNS), "-o", dst); code == 0 {
		t.Fatal("mismatched detokenize succeeded")
	}
	if b, _ := os.ReadFile(dst); string(b) != "precious" {
		t.Fatalf("existing output damaged: %q", b)
	}
}

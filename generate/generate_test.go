package generate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hyperrep/hyperrep/autoencoder"
	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/runtime"
	"github.com/hyperrep/hyperrep/zoo"
)

// writeZoo writes a zoo of tanh cnn-s models without training any: the
// fixture's weights scaled and moved a little each epoch, test accuracy
// rising with the epoch.
func writeZoo(dir string, models, epochs int) error {
	base, err := onnx.Read(fixtures.Path(fixtures.CNNS))
	if err != nil {
		return err
	}
	cfg := zoo.Config{Format: zoo.FormatVersion, Dataset: "mnist", Architecture: "cnn-s", Input: [3]int{1, 28, 28},
		Classes: 10, Parameters: 2464, Epochs: epochs, Batch: 32}
	write := func(path string, v any) error {
		b, _ := json.Marshal(v)
		return os.WriteFile(path, b, 0o644)
	}
	for i := range models {
		id := fmt.Sprintf("m%02d", i)
		cfg.Models = append(cfg.Models, id)
		r := rng.New(uint64(i) + 1)
		scale := 0.5 + r.Float64()
		var results strings.Builder
		for e := 0; e <= epochs; e++ {
			m := base.Clone()
			for _, init := range m.Graph().GetInitializer() {
				v, err := onnx.Float32s(init)
				if err != nil {
					return err
				}
				for k := range v {
					v[k] = float32(scale*float64(v[k]) + 0.01*float64(e)*r.Normal())
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
			fmt.Fprintf(&results, `{"epoch":%d,"test_loss":1,"test_accuracy":%g,"seconds":1}`+"\n", e, 0.1*float64(e)+0.01*scale)
		}
		if err := os.WriteFile(filepath.Join(dir, "models", id, "result.jsonl"), []byte(results.String()), 0o644); err != nil {
			return err
		}
		p := zoo.Params{ID: id, Architecture: "cnn-s", Dataset: "mnist", Parameters: 2464}
		p.Activation = "tanh"
		if err := write(filepath.Join(dir, "models", id, "params.json"), p); err != nil {
			return err
		}
	}
	return write(filepath.Join(dir, "zoo.json"), cfg)
}

// fitted is a tiny zoo and a hyper-representation of it fitted for two
// epochs, made once per test binary.
var fitted = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "generate-test")
	if err != nil {
		return "", err
	}
	if err := writeZoo(filepath.Join(dir, "zoo"), 6, 2); err != nil {
		return "", err
	}
	c := autoencoder.DefaultConfig()
	c.TokenSize, c.Context = 32, 24
	c.D, c.Layers, c.Heads, c.Latent, c.Project = 16, 1, 2, 8, 8
	c.Epochs, c.Batch = 2, 4
	c.Validation, c.Test = 0.2, 0.2
	_, err = autoencoder.Fit(context.Background(), filepath.Join(dir, "zoo"), filepath.Join(dir, "hr"), c,
		autoencoder.Options{Runtime: runtime.Options{Threads: 1}})
	return dir, err
})

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := fitted(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

func open(t *testing.T) (*autoencoder.Model, string) {
	t.Helper()
	dir, err := fitted()
	if err != nil {
		t.Fatal(err)
	}
	m, err := autoencoder.Open(filepath.Join(dir, "hr"), runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, filepath.Join(dir, "zoo")
}

func weights(t *testing.T, m *onnx.Model) []float32 {
	t.Helper()
	var all []float32
	for _, init := range m.Graph().GetInitializer() {
		v, err := onnx.Float32s(init)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, v...)
	}
	return all
}

func TestRunDeterministic(t *testing.T) {
	m, z := open(t)
	for _, o := range []Options{
		{Method: KDEMethod},
		{Method: KDEMethod, Space: TokenSpace, Bandwidth: Silverman},
		{Method: GaussianMethod, Anchors: "top50", Where: "epoch>=1"},
	} {
		o.N, o.Seed = 3, 7
		a, err := Run(m, z, o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		b, _ := Run(m, z, o)
		o.Seed = 8
		c, _ := Run(m, z, o)
		if len(a) != 3 || !slices.Equal(weights(t, a[2].Model), weights(t, b[2].Model)) {
			t.Errorf("%+v: the same seed drew different samples", o)
		}
		if slices.Equal(weights(t, a[2].Model), weights(t, c[2].Model)) || slices.Equal(weights(t, a[0].Model), weights(t, a[1].Model)) {
			t.Errorf("%+v: other seeds or indices drew the same sample", o)
		}
		r := a[1].Record
		if r.Index != 1 || r.Seed != 7 || r.Parent == nil || r.Activation != "tanh" || r.Count == 0 || r.Template == "" {
			t.Errorf("%+v: record %+v", o, r)
		}
	}
}

func TestRunErrors(t *testing.T) {
	m, z := open(t)
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{N: 0}, "at least 1"},
		{Options{N: 1, Method: "vae"}, `method "vae"`},
		{Options{N: 1, Space: "weights"}, `space "weights"`},
		{Options{N: 1, Where: "acc>1"}, `unknown property "acc"`},
		{Options{N: 1, Where: "test_acc>1"}, "passes the filter"},
		{Options{N: 1, Anchors: "best"}, `anchors "best"`},
		{Options{N: 1, Bandwidth: "wide"}, `bandwidth "wide"`},
		{Options{N: 1, Method: InterpolateMethod}, "two models"},
	} {
		if _, err := Run(m, z, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
	// A template of another activation keeps no anchor.
	relu := wideTemplate(t, "Relu", 8, 6, 4, 20)
	if _, err := Run(m, z, Options{N: 1, Template: relu}); err == nil || !strings.Contains(err.Error(), "activation is relu") {
		t.Errorf("relu template, tanh anchors: %v", err)
	}
}

func TestInterpolateEndsAreReconstructions(t *testing.T) {
	m, z := open(t)
	a, _ := onnx.Read(filepath.Join(zoo.CheckpointDir(z, "m00", 2), "model.onnx"))
	b, _ := onnx.Read(filepath.Join(zoo.CheckpointDir(z, "m03", 1), "model.onnx"))
	s, err := Run(m, "", Options{Method: InterpolateMethod, N: 4, Between: [2]*onnx.Model{a, b}, BetweenNames: [2]string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	ra, _ := m.Reconstruct(a)
	rb, _ := m.Reconstruct(b)
	if !slices.Equal(weights(t, s[0].Model), weights(t, ra)) || !slices.Equal(weights(t, s[3].Model), weights(t, rb)) {
		t.Error("the ends of the interpolation are not the reconstructions of its models")
	}
	if slices.Equal(weights(t, s[1].Model), weights(t, ra)) {
		t.Error("t=1/3 decodes to the first model")
	}
	if r := s[2].Record; *r.T != 2.0/3 || !slices.Equal(r.Parents, []string{"a", "b"}) || r.Template != "a" {
		t.Errorf("record %+v", r)
	}
}

func TestWrite(t *testing.T) {
	m, z := open(t)
	s, err := Run(m, z, Options{N: 3})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	if err := Write(dir, s, false); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"sample_0000.onnx", "sample_0001.onnx", "sample_0002.onnx", SamplesFile}; !slices.Equal(names, want) {
		t.Errorf("wrote %v, want %v", names, want)
	}
	b, _ := os.ReadFile(filepath.Join(dir, SamplesFile))
	var r Record
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 3 || json.Unmarshal([]byte(lines[2]), &r) != nil || r.File != "sample_0002.onnx" {
		t.Errorf("samples.jsonl: %q", b)
	}
	if err := Write(dir, s[:1], false); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("into a full directory: %v", err)
	}
	if err := Write(dir, s[:1], true); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("forced: %d files, want 2", len(ents))
	}
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 1 {
		t.Errorf("left %d entries beside the output, want none", len(ents)-1)
	}
}

// wideTemplate is cnn-s with convolutions of c1, c2, c3 channels and a
// hidden dense layer of h units, act after each hidden layer, weights 0.
func wideTemplate(t *testing.T, act string, c1, c2, c3, h int) *onnx.Model {
	return cnnTemplate(t, act, []int{c1, c2, c3}, []int{5, 5, 2}, h)
}

func cnnTemplate(t *testing.T, act string, chans, ks []int, h int) *onnx.Model {
	t.Helper()
	b := onnx.NewBuilder("variant", 0)
	x := b.Input("input", onnx.Float, -1, 1, 28, 28)
	in, side := 1, 28
	for i, c := range chans {
		k := ks[i]
		name := fmt.Sprintf("conv%d", i+1)
		w := b.Float(name+".weight", []int64{int64(c), int64(in), int64(k), int64(k)}, make([]float32, c*in*k*k))
		bias := b.Float(name+".bias", []int64{int64(c)}, make([]float32, c))
		x = b.NodeAs(name, "Conv", []string{x, w, bias}, onnx.Ints("kernel_shape", int64(k), int64(k)))
		side -= k - 1
		if i < 2 {
			x = b.Node("MaxPool", []string{x}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2))
			side /= 2
		}
		x = b.Node(act, []string{x})
		in = c
	}
	x = b.Node("Flatten", []string{x}, onnx.Int("axis", 1))
	in *= side * side
	w1 := b.Float("fc1.weight", []int64{int64(h), int64(in)}, make([]float32, h*in))
	b1 := b.Float("fc1.bias", []int64{int64(h)}, make([]float32, h))
	x = b.Node(act, []string{b.NodeAs("fc1", "Gemm", []string{x, w1, b1}, onnx.Int("transB", 1))})
	w2 := b.Float("fc2.weight", []int64{10, int64(h)}, make([]float32, 10*h))
	b2 := b.Float("fc2.bias", []int64{10}, make([]float32, 10))
	b.NodeOut("fc2", "Gemm", []string{x, w2, b2}, []string{"logits"}, onnx.Int("transB", 1))
	b.Output("logits", onnx.Float, -1, 10)
	return b.Model()
}

// logits runs model on a fixed batch of random images.
func logits(t *testing.T, model *onnx.Model) []float32 {
	t.Helper()
	data, err := model.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := runtime.NewSession(data, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := rng.New(1)
	x := make([]float32, 4*28*28)
	for i := range x {
		x[i] = float32(r.Float64())
	}
	out, err := s.Run(runtime.NewTensor([]int64{4, 1, 28, 28}, x))
	if err != nil {
		t.Fatal(err)
	}
	return out[0].Data.([]float32)
}

func TestCrossArchitecture(t *testing.T) {
	m, z := open(t)
	cps, _ := filepath.Glob(filepath.Join(z, "models", "m01", "checkpoint_000002", "model.onnx"))
	src, _ := onnx.Read(cps[0])
	lat, _, err := m.Encode(src)
	if err != nil {
		t.Fatal(err)
	}
	same, err := m.Decode(lat[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	want := logits(t, same)
	for _, c := range []struct {
		name     string
		template *onnx.Model
		exact    bool // widening only: the function is the zoo model's
	}{
		{"wider", wideTemplate(t, "Tanh", 12, 9, 7, 32), true},
		{"narrower", wideTemplate(t, "Tanh", 5, 4, 3, 16), false},
		{"deeper", cnnTemplate(t, "Tanh", []int{8, 6, 4, 4}, []int{5, 5, 2, 1}, 20), false},
	} {
		layers, _ := m.MapLayers(c.template)
		t.Logf("%s: layer map %v", c.name, layers)
		for _, mp := range []string{autoencoder.MapUnits, autoencoder.MapTokens} {
			got, err := m.DecodeTemplate(lat[0], c.template, mp)
			if err != nil {
				t.Fatalf("%s, %s: %v", c.name, mp, err)
			}
			for _, init := range c.template.Graph().GetInitializer() {
				g := got.Initializer(init.GetName())
				v, _ := onnx.Float32s(g)
				// MapTokens pads rows longer than their source with zeros: a
				// bias at the end of such a row may be 0.
				if c.name == "deeper" && mp == autoencoder.MapUnits && strings.HasPrefix(init.GetName(), "conv4.") {
					// The extra 1×1 layer of 4 units over 4 inputs: the identity.
					for k, x := range v {
						want := float32(0)
						if init.GetName() == "conv4.weight" && k/4 == k%4 {
							want = 1
						}
						if x != want {
							t.Fatalf("deeper, units: %s is %v, want the identity", init.GetName(), v)
						}
					}
					continue
				}
				filled := slices.ContainsFunc(v, func(x float32) bool { return x != 0 }) || mp == autoencoder.MapTokens && strings.HasSuffix(init.GetName(), "bias")
				if !slices.Equal(g.GetDims(), init.GetDims()) || !filled {
					t.Errorf("%s, %s: %s is %v, all zero: want the template's shape %v, filled", c.name, mp, init.GetName(), g.GetDims(), init.GetDims())
				}
			}
			y := logits(t, got)
			if c.exact && mp == autoencoder.MapUnits {
				for i := range y {
					if math.Abs(float64(y[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("%s: logit %d is %v, the zoo model's %v: widening should keep the function", c.name, i, y[i], want[i])
					}
				}
			}
		}
	}
	// Through Run: the record names the mapping.
	s, err := Run(m, z, Options{N: 1, Template: wideTemplate(t, "Tanh", 12, 9, 7, 32), TemplateName: "wide", Mapping: autoencoder.MapTokens})
	if err != nil || s[0].Record.Mapping != autoencoder.MapTokens || s[0].Record.Activation != "tanh" {
		t.Errorf("Run with a wide template: %v, %+v", err, s)
	}
}

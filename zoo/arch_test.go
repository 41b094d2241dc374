package zoo

import (
	"math"
	"testing"

	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/runtime"
	"github.com/hyperrep/hyperrep/tokenizer"
)

func TestParamCounts(t *testing.T) {
	for _, tc := range []struct {
		arch    string
		c, h, w int
		want    int
	}{
		{"cnn-s", 1, 28, 28, 2464}, // the Model Zoos' MNIST figure
		{"cnn-s", 3, 28, 28, 2864}, // the Model Zoos' CIFAR-10 figure
		{"cnn-s", 3, 32, 32, 3424}, // 4x4x4 flattened features
		{"cnn-l", 3, 32, 32, 10853},
		{"cnn-l", 1, 28, 28, 9665},
		{"mlp", 1, 28, 28, 52650},
	} {
		a, err := NewArch(tc.arch, tc.c, tc.h, tc.w, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.NumParams(); got != tc.want {
			t.Errorf("%s on %dx%dx%d: %d parameters, want %d", tc.arch, tc.c, tc.h, tc.w, got, tc.want)
		}
	}
}

func TestNewArchErrors(t *testing.T) {
	for _, tc := range []struct {
		arch    string
		c, h, w int
	}{{"cnn-xl", 1, 28, 28}, {"cnn-s", 1, 12, 12}, {"cnn-s", 0, 28, 28}} {
		if _, err := NewArch(tc.arch, tc.c, tc.h, tc.w, 10); err == nil {
			t.Errorf("NewArch(%q, %d, %d, %d) succeeded", tc.arch, tc.c, tc.h, tc.w)
		}
	}
}

// TestModels checks every architecture and activation: the eval model is
// seen as its layers by onnx.Layers and the tokenizer, ORT runs it, and its
// logits are the population's forward pass (with the model alone in it).
func TestModels(t *testing.T) {
	for _, tc := range []struct {
		arch    string
		c, h, w int
		layers  int
	}{{"cnn-s", 1, 28, 28, 5}, {"cnn-s", 3, 32, 32, 5}, {"cnn-l", 1, 28, 28, 5}, {"mlp", 1, 28, 28, 3}} {
		for _, act := range Activations {
			a, err := NewArch(tc.arch, tc.c, tc.h, tc.w, 10)
			if err != nil {
				t.Fatal(err)
			}
			ws, err := initWeights(a, "kaiming_normal", 1)
			if err != nil {
				t.Fatal(err)
			}
			m, err := a.Model(act, ws)
			if err != nil {
				t.Fatal(err)
			}
			layers, err := m.Layers()
			if err != nil || len(layers) != tc.layers {
				t.Fatalf("%s/%s: %d layers (%v), want %d", tc.arch, act, len(layers), err, tc.layers)
			}
			toks, err := tokenizer.Tokenize(m, tokenizer.Options{})
			if err != nil {
				t.Fatalf("%s/%s: tokenize: %v", tc.arch, act, err)
			}
			if len(toks.Layout.Layers) != tc.layers {
				t.Errorf("%s/%s: the tokenizer sees %d layers", tc.arch, act, len(toks.Layout.Layers))
			}
			back, err := a.Weights(m)
			if err != nil {
				t.Fatal(err)
			}
			for i := range ws {
				for j := range ws[i] {
					if back[i][j] != ws[i][j] {
						t.Fatalf("%s: Weights does not read back what Model wrote", tc.arch)
					}
				}
			}
			compareLogits(t, a, act, m, ws)
		}
	}
}

// compareLogits runs the eval model in ORT and the population's forward
// pass (as evaluation runs it) on the same images.
func compareLogits(t *testing.T, a *Arch, act string, m *onnx.Model, ws [][]float32) {
	t.Helper()
	const B = 3
	d := a.C * a.H * a.W
	images := make([]float32, B*d)
	r := rng.New(7)
	for i := range images {
		images[i] = float32(r.Float64())
	}
	raw, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := runtime.NewSession(raw, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(runtime.NewTensor([]int64{B, int64(a.C), int64(a.H), int64(a.W)}, images))
	if err != nil {
		t.Fatal(err)
	}
	want := out[0].Data.([]float32)
	// The evaluation graph's loss, with one-hot labels, is -log softmax
	// of each label's logit; compare those, for every label.
	spec := popSpec{arch: a, act: act, models: 1, batch: B, opt: "adam"}
	ev, err := newEvaluator(spec, B, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	weights, err := runtime.NewValue(runtime.Float32, []int64{1, int64(a.NumParams())})
	if err != nil {
		t.Fatal(err)
	}
	defer weights.Destroy()
	flat := weights.Float32s()
	for _, v := range ws {
		flat = flat[copy(flat, v):]
	}
	if err := ev.prepare(weights); err != nil {
		t.Fatal(err)
	}
	copy(ev.images.Float32s(), images)
	for label := range a.Classes {
		for b := range B {
			ev.labels.Int64s()[b] = int64(label)
			ev.wts.Float32s()[b] = 0
		}
		for b := range B {
			ev.wts.Float32s()[b] = 1
			if err := ev.sess.RunValues(ev.inputs(), []*runtime.Value{ev.loss, ev.hits}); err != nil {
				t.Fatal(err)
			}
			ev.wts.Float32s()[b] = 0
			got := float64(ev.loss.Float32s()[0])
			row := want[b*a.Classes : (b+1)*a.Classes]
			var z float64
			for _, v := range row {
				z += math.Exp(float64(v))
			}
			ce := math.Log(z) - float64(row[label])
			if math.Abs(got-ce) > 1e-4*max(1, ce) {
				t.Fatalf("%s/%s: sample %d label %d: population cross-entropy %g, eval model %g", a.Name, act, b, label, got, ce)
			}
		}
	}
}

func TestInitWeights(t *testing.T) {
	a, err := NewArch("cnn-s", 1, 28, 28, 10)
	if err != nil {
		t.Fatal(err)
	}
	ps := a.Params()
	for _, scheme := range Inits {
		ws, err := initWeights(a, scheme, 3)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := initWeights(a, scheme, 3)
		other, _ := initWeights(a, scheme, 4)
		// conv2.weight: fan_in 200, fan_out 150; its spread must match the
		// scheme's.
		w := ws[2]
		var sum, sq float64
		for _, v := range w {
			sum += float64(v)
			sq += float64(v) * float64(v)
		}
		std := math.Sqrt(sq / float64(len(w)))
		want := map[string]float64{
			"uniform": 1 / math.Sqrt(200) / math.Sqrt(3), "normal": 1 / math.Sqrt(200),
			"kaiming_uniform": math.Sqrt(6.0/200) / math.Sqrt(3), "kaiming_normal": math.Sqrt(2.0 / 200),
			"xavier_uniform": math.Sqrt(6.0/350) / math.Sqrt(3), "xavier_normal": math.Sqrt(2.0 / 350),
		}[scheme]
		if math.Abs(std-want) > 0.1*want || math.Abs(sum/float64(len(w))) > 0.1*want {
			t.Errorf("%s: conv2.weight has mean %.4f and rms %.4f, want 0 and %.4f", scheme, sum/float64(len(w)), std, want)
		}
		for i, p := range ps {
			if p.FanIn == 0 && (ws[i][0] != 0 || ws[i][len(ws[i])-1] != 0) {
				t.Errorf("%s: bias %s does not start at 0", scheme, p.Name)
			}
		}
		if again[2][5] != w[5] || other[2][5] == w[5] {
			t.Errorf("%s: weights are not a function of the seed", scheme)
		}
	}
	// The stream is fixed by the algorithm: these values must never change.
	ws, _ := initWeights(a, "kaiming_uniform", 0)
	if got := [3]float32{ws[0][0], ws[0][1], ws[2][0]}; got != [3]float32{-0.24753006, 0.13819903, 0.15808757} {
		t.Errorf("kaiming_uniform seed 0 starts %v; the generator changed", got)
	}
}

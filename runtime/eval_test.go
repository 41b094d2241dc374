package runtime

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/hyperrep/hyperrep/dataset"
)

// reference computes the logits of the testdata models (see
// testdata/make_models.py) for one flattened image.
func reference(x []float32, classes int) []float64 {
	out := make([]float64, classes)
	for k := range out {
		out[k] = float64((k%3)-1) / 2
		for i, v := range x {
			out[k] += float64(v) * float64((7*i+13*k)%5-2) / 4
		}
	}
	return out
}

func equal64(got []float32, want []float64) bool {
	for i := range want {
		if float64(got[i]) != want[i] {
			return false
		}
	}
	return true
}

// referenceScore scores the testdata models on set in float64, the way
// Evaluate is documented to.
func referenceScore(set *dataset.Set, classes int) Result {
	var correct int
	var loss float64
	for i := range set.N {
		l := reference(set.Image(i), classes)
		best := 0
		for k := range l {
			if l[k] > l[best] {
				best = k
			}
		}
		var sum float64
		for _, v := range l {
			sum += math.Exp(v - l[best])
		}
		loss += l[best] + math.Log(sum) - l[set.Labels[i]]
		if best == int(set.Labels[i]) {
			correct++
		}
	}
	return Result{Accuracy: float64(correct) / float64(set.N), Loss: loss / float64(set.N), N: set.N}
}

// planted returns n binary 28x28 images in which the models' logits are
// exact in float32, labelled with the models' prediction for even samples
// and a fixed other class for odd ones, so accuracy is about one half.
func planted(n int) *dataset.Set {
	s := &dataset.Set{Name: "planted", Split: "test", N: n, C: 1, H: 28, W: 28, Classes: 10}
	s.Images = make([]float32, n*784)
	s.Labels = make([]uint8, n)
	for i := range n {
		img := s.Image(i)
		for j := range img {
			if (i*31+j*17+j*j)%3 == 0 {
				img[j] = 1
			}
		}
		s.Labels[i] = uint8(i * 7 % 10)
		if i%2 == 0 {
			l := reference(img, 10)
			for k := range l {
				if l[k] > l[s.Labels[i]] {
					s.Labels[i] = uint8(k)
				}
			}
		}
	}
	return s
}

func readModel(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEvaluatePlanted(t *testing.T) {
	set := planted(250)
	tests := []struct {
		model   string
		classes int
		batch   int
	}{
		{"linear_nchw.onnx", 10, 0},     // one batch of 250
		{"linear_nchw.onnx", 10, 100},   // 100, 100 and a tail of 50
		{"linear_nchw.onnx", 10, 1},     // single samples
		{"linear_flat64.onnx", 10, 0},   // fixed batch 64: the last is padded
		{"linear_hw1.onnx", 10, 0},      // fixed batch 1, [N,28,28] input
		{"linear_two_out.onnx", 12, 64}, // 12 logits for 10 classes, a second output
	}
	for _, tt := range tests {
		want := referenceScore(set, tt.classes)
		var calls, last int
		got, err := Evaluate(context.Background(), readModel(t, tt.model), set, EvalOptions{
			BatchSize: tt.batch,
			Progress: func(done, total int) {
				if done <= last || total != set.N {
					t.Errorf("%s: progress(%d, %d) after %d", tt.model, done, total, last)
				}
				calls, last = calls+1, done
			},
		})
		if err != nil {
			t.Errorf("%s batch %d: %v", tt.model, tt.batch, err)
			continue
		}
		if got.N != want.N || got.Accuracy != want.Accuracy || math.Abs(got.Loss-want.Loss) > 1e-5 {
			t.Errorf("%s batch %d: got %+v, want %+v", tt.model, tt.batch, got, want)
		}
		if last != set.N || calls == 0 {
			t.Errorf("%s: progress ended at %d after %d calls, want %d", tt.model, last, calls, set.N)
		}
	}
	if r := referenceScore(set, 10); r.Accuracy < 0.4 || r.Accuracy > 0.7 {
		t.Errorf("planted accuracy %v is not the intended one half or so", r.Accuracy)
	}
}

func TestEvaluateErrors(t *testing.T) {
	set := planted(10)
	tests := []struct {
		model string
		want  string
	}{
		{"wrong_input.onnx", `runtime: model input "x" has shape [? 3 32 32], which cannot take planted samples of 1x28x28`},
		{"wrong_output.onnx", `runtime: model output "logits" is float32[? 5]; want float32 [N K] logits with K >= the 10 classes of planted`},
	}
	for _, tt := range tests {
		_, err := Evaluate(context.Background(), readModel(t, tt.model), set, EvalOptions{})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: got %v, want %s", tt.model, err, tt.want)
		}
	}
	if _, err := Evaluate(context.Background(), readModel(t, "linear_nchw.onnx"), set.Slice(0, 0), EvalOptions{}); err == nil {
		t.Error("evaluating on no samples succeeded")
	}
}

func TestEvaluateCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Evaluate(ctx, readModel(t, "linear_nchw.onnx"), planted(100), EvalOptions{
		BatchSize: 10,
		Progress: func(done, total int) {
			if done >= 30 {
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// TestEvaluateMNIST scores the linear model on the real MNIST test set; its
// float32 logits are no longer exact, so a few near-ties may flip.
func TestEvaluateMNIST(t *testing.T) {
	set, err := dataset.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Evaluate(context.Background(), readModel(t, "linear_nchw.onnx"), set, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := referenceScore(set, 10)
	if got.N != 10000 || math.Abs(got.Accuracy-want.Accuracy) > 1e-3 || math.Abs(got.Loss-want.Loss) > 1e-4*want.Loss {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestScoreStable(t *testing.T) {
	// Logits of 1000 would overflow exp without the maximum subtracted.
	var sc score
	sc.add([]float32{1000, 0, 1000, 1000}, 2, []uint8{0, 1})
	r := sc.result()
	want := (math.Log(1+math.Exp(-1000)) + math.Log(2)) / 2
	if r.Accuracy != 0.5 || math.Abs(r.Loss-want) > 1e-12 {
		t.Errorf("got %+v, want accuracy 0.5 and loss %v", r, want)
	}
}

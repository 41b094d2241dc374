package finetune

import (
	"context"
	"math"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/zoo"
)

// mnist returns n training samples (drawn as zoo draws them with split
// seed 0) and the first m test samples, or skips the test.
func mnist(t testing.TB, n, m int) (train, test *dataset.Set) {
	t.Helper()
	train, test, err := dataset.Open("mnist")
	if err != nil {
		t.Skip(err)
	}
	return train.Subset(n, 0), test.Slice(0, m)
}

func readFixture(t testing.TB, name string) *onnx.Model {
	t.Helper()
	m, err := onnx.Read(fixtures.Path(name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Every fixture, from three exporters and with BatchNorm, residual
// connections, Transpose+MatMul and float64/float16 constants, trains;
// the two with random weights learn.
func TestFixturesTrain(t *testing.T) {
	train, test := mnist(t, 1024, 500)
	var models []*onnx.Model
	for _, name := range fixtures.Models() {
		models = append(models, readFixture(t, name))
	}
	res, err := Run(context.Background(), models, train, test, Config{Epochs: 2, LR: 3e-3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range fixtures.Models() {
		ep := res[i]
		if len(ep) != 3 {
			t.Fatalf("%s: %d epochs of metrics, want 3", name, len(ep))
		}
		first, last := ep[0], ep[2]
		t.Logf("%-22s test acc %.3f -> %.3f, train loss %.3f -> %.3f", name, first.TestAccuracy, last.TestAccuracy, first.TrainLoss, last.TrainLoss)
		for _, e := range ep {
			if math.IsNaN(e.TrainLoss) || math.IsNaN(e.TestLoss) {
				t.Errorf("%s epoch %d: NaN loss", name, e.Epoch)
			}
		}
		switch name {
		case fixtures.ResNetTiny: // random weights
			if last.TestAccuracy < 0.3 || last.TrainLoss > first.TrainLoss-0.2 {
				t.Errorf("%s did not learn: %+v", name, ep)
			}
		case fixtures.OnnxHelperCNN, fixtures.TransposeLinear, fixtures.MLP:
		default: // trained models stay trained
			if last.TestAccuracy < first.TestAccuracy-0.03 {
				t.Errorf("%s lost accuracy: %+v", name, ep)
			}
		}
	}
}

// A randomly initialised zoo model learns: loss falls and accuracy rises
// epoch after epoch, and the model Run hands to save scores as reported.
func TestLearns(t *testing.T) {
	train, test := mnist(t, 2048, 1000)
	arch, err := zoo.NewArch("cnn-s", 1, 28, 28, 10)
	if err != nil {
		t.Fatal(err)
	}
	ws := make([][]float32, len(arch.Params()))
	r := rng.New(1)
	for i, p := range arch.Params() {
		ws[i] = make([]float32, p.Size())
		if p.FanIn > 0 {
			for k := range ws[i] {
				ws[i][k] = float32((2*r.Float64() - 1) / math.Sqrt(float64(p.FanIn)))
			}
		}
	}
	m, err := arch.Model("relu", ws)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	saved := map[int]*onnx.Model{}
	res, err := Run(context.Background(), []*onnx.Model{m}, train, test, Config{Epochs: 3}, func(_ int, e Epoch, m *onnx.Model) error {
		mu.Lock()
		defer mu.Unlock()
		saved[e.Epoch] = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ep := res[0]
	for e := 1; e < len(ep); e++ {
		t.Logf("epoch %d: %+v", e, ep[e])
		if ep[e].TestLoss >= ep[e-1].TestLoss || ep[e].TestAccuracy <= ep[e-1].TestAccuracy {
			t.Errorf("epoch %d: test loss %.3f acc %.3f after %.3f %.3f", e, ep[e].TestLoss, ep[e].TestAccuracy, ep[e-1].TestLoss, ep[e-1].TestAccuracy)
		}
	}
	if ep[0].TestAccuracy > 0.3 || ep[3].TestAccuracy < 0.65 {
		t.Errorf("test accuracy %.3f before, %.3f after 3 epochs", ep[0].TestAccuracy, ep[3].TestAccuracy)
	}
	if len(saved) != 4 {
		t.Fatalf("save got epochs %v", saved)
	}
	// The saved model is the original graph with new weights.
	if len(saved[3].Graph().Node) != len(m.Graph().Node) || saved[3].Proto.OpsetImport[0].GetVersion() != m.Proto.OpsetImport[0].GetVersion() {
		t.Errorf("saved graph differs from the original")
	}
	got, _ := arch.Weights(saved[3])
	if got[0][0] == ws[0][0] {
		t.Errorf("saved weights unchanged")
	}
}

// zooOrder is zoo's data order (zoo/epoch.go dataOrder, zoo/rand.go
// stream): a copy, so that this test checks fine-tuning against zoo
// training from the outside.
func zooOrder(seed int64) func(epoch, n int) []int {
	return func(epoch, n int) []int {
		streamData := uint64(2)
		h := mix64(uint64(seed) ^ 0x5a0c3d2e1f406b7a)
		h = mix64(h ^ streamData*0x9e3779b97f4a7c15)
		h = mix64(h ^ uint64(epoch+1)*0xd1b54a32d192ed03)
		h = mix64(h ^ 1*0x8cb92ba72f3d8dd7)
		return rng.New(h).Perm(n)
	}
}

// Fine-tuning a zoo's initial checkpoint with the zoo's hyperparameters
// and data order reproduces its next checkpoint: two independent training
// paths (zoo's population graphs with phase-split convolutions and one
// flat weight tensor; here the exported eval graph through autodiff) meet.
func TestReproducesZoo(t *testing.T) {
	train, test := mnist(t, 480, 300) // 15 steps of 32
	dir := t.TempDir()
	job := zoo.Job{Dataset: "mnist", Architecture: "cnn-s", Epochs: 1, TrainSamples: train.N, TestSamples: test.N, Workers: 1,
		Grid: zoo.Grid{Activation: []string{"tanh"}, Optimizer: []string{"adam", "sgd"}, LR: []float64{3e-3},
			WeightDecay: []float64{1e-3}, Momentum: []float64{0.9}, Seeds: zoo.Seeds{5}}}
	if err := zoo.Train(context.Background(), dir, job); err != nil {
		t.Fatal(err)
	}
	z, err := zoo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	arch, _ := zoo.NewArch("cnn-s", 1, 28, 28, 10)
	for _, zm := range z.Models {
		read := func(e int) *onnx.Model {
			m, err := onnx.Read(filepath.Join(zoo.CheckpointDir(dir, zm.ID, e), "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		h := zm.Hyper
		cfg := Config{Optimizer: h.Optimizer, LR: h.LR, WeightDecay: h.WeightDecay, Momentum: h.Momentum, Batch: z.Config.Batch,
			Epochs: 1, Order: zooOrder(h.Seed)}
		var final *onnx.Model
		res, err := Run(context.Background(), []*onnx.Model{read(0)}, train, test, cfg, func(_ int, e Epoch, m *onnx.Model) error {
			final = m
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := arch.Weights(read(1))
		got, _ := arch.Weights(final)
		var maxDiff, maxAbs float64
		for i := range want {
			for k := range want[i] {
				maxDiff = max(maxDiff, math.Abs(float64(got[i][k]-want[i][k])))
				maxAbs = max(maxAbs, math.Abs(float64(want[i][k])))
			}
		}
		ze, fe := zm.Epochs[1], res[0][1]
		t.Logf("%s: max |Δw| %.2g (max |w| %.2g); train loss %.6f zoo %.6f; test acc %.4f zoo %.4f",
			zm.ID, maxDiff, maxAbs, fe.TrainLoss, *ze.TrainLoss, fe.TestAccuracy, ze.TestAccuracy)
		if maxDiff > 1e-4 {
			t.Errorf("%s: weights differ from the zoo's checkpoint 1 by up to %.2g", zm.ID, maxDiff)
		}
		if math.Abs(fe.TrainLoss-*ze.TrainLoss) > 1e-5 || math.Abs(fe.TrainAccuracy-*ze.TrainAccuracy) > 1e-9 ||
			math.Abs(fe.TestLoss-ze.TestLoss) > 1e-4 || math.Abs(fe.TestAccuracy-ze.TestAccuracy) > 1e-9 {
			t.Errorf("%s: metrics %+v, zoo's %+v", zm.ID, fe, ze)
		}
	}
}

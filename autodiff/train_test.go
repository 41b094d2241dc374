package autodiff

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/runtime"
)

// mlpModel is a float32 two-layer perceptron, relu(x·w1 + b1)·w2 + b2,
// with loss the mean squared error against y; weights drawn from seed.
func mlpModel(batch, in, hidden, out int, seed uint64) *onnx.Model {
	r := rand.New(rand.NewPCG(seed, 1))
	draw := func(n, fanIn int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() / math.Sqrt(float64(fanIn)))
		}
		return v
	}
	b := onnx.NewBuilder("mlp", Opset)
	x := b.Input("x", onnx.Float, int64(batch), int64(in))
	y := b.Input("y", onnx.Float, int64(batch), int64(out))
	w1 := b.Float("w1", []int64{int64(in), int64(hidden)}, draw(in*hidden, in))
	b1 := b.Float("b1", []int64{int64(hidden)}, make([]float32, hidden))
	w2 := b.Float("w2", []int64{int64(hidden), int64(out)}, draw(hidden*out, hidden))
	b2 := b.Float("b2", []int64{int64(out)}, make([]float32, out))
	h := b.Node("Relu", []string{b.Node("Add", []string{b.Node("MatMul", []string{x, w1}), b1})}) // [B, H]
	pred := b.NodeAs("pred", "Add", []string{b.Node("MatMul", []string{h, w2}), b2})              // [B, O]
	r2 := b.Node("Sub", []string{pred, y})
	loss := b.NodeAs("loss", "ReduceMean", []string{b.Node("Mul", []string{r2, r2})}, onnx.Int("keepdims", 0)) // []
	b.Output(loss, onnx.Float)
	return b.Model()
}

var mlpParams = []string{"w1", "b1", "w2", "b2"}

// mlpBatch is inputs and targets y = tanh(x·T) for a fixed teacher T.
func mlpBatch(batch, in, out int, seed uint64) []runtime.Tensor {
	r := rand.New(rand.NewPCG(seed, 2))
	teacher := rand.New(rand.NewPCG(99, 99))
	tw := make([]float64, in*out)
	for i := range tw {
		tw[i] = teacher.NormFloat64() / math.Sqrt(float64(in))
	}
	x, y := make([]float32, batch*in), make([]float32, batch*out)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for n := range batch {
		for k := range out {
			var s float64
			for i := range in {
				s += float64(x[n*in+i]) * tw[i*out+k]
			}
			y[n*out+k] = float32(math.Tanh(s))
		}
	}
	return []runtime.Tensor{runtime.NewTensor([]int64{int64(batch), int64(in)}, x), runtime.NewTensor([]int64{int64(batch), int64(out)}, y)}
}

func newMLPTrainer(t testing.TB, m *onnx.Model, opt Optimizer, lr Schedule) *Trainer {
	t.Helper()
	tr, err := NewTrainer(m, Config{Loss: "loss", Outputs: []string{"pred"},
		Groups: []Group{{Params: mlpParams, Optimizer: opt, Schedule: lr}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// TestTrainerMLP trains an MLP in float32, then checks that the weights it
// writes back make ORT's forward pass of the model give the loss the
// Trainer computes with them.
func TestTrainerMLP(t *testing.T) {
	const batch, in, hidden, out = 32, 8, 16, 4
	m := mlpModel(batch, in, hidden, out, 1)
	tr := newMLPTrainer(t, m, Adam{}, ConstantLR(0.01))
	batches := [][]runtime.Tensor{mlpBatch(batch, in, out, 1), mlpBatch(batch, in, out, 2)}
	var first, last float64
	for step := range 50 {
		loss, err := tr.Step(batches[step%2]...)
		if err != nil {
			t.Fatal(err)
		}
		if step < 2 {
			first += loss
		} else if step >= 48 {
			last += loss
		}
	}
	if last > 0.3*first {
		t.Errorf("loss went from %.4g to %.4g in 50 steps, want below 30%%", first/2, last/2)
	}
	if got := len(tr.Value("pred").Float32s()); got != batch*out {
		t.Errorf("fetched output pred has %d values, want %d", got, batch*out)
	}

	// Twice, so that both sets of swapped weights are checked.
	for range 2 {
		trained := m.Clone()
		if err := tr.WriteWeights(trained); err != nil {
			t.Fatal(err)
		}
		before, _ := onnx.Float32s(m.Initializer("w1"))
		after, _ := onnx.Float32s(trained.Initializer("w1"))
		if before[0] == after[0] {
			t.Errorf("w1 unchanged by training, or m changed by WriteWeights")
		}
		want := forwardLoss(t, trained, batches[0])
		eval, err := tr.Eval(batches[0]...)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(eval-want) > 1e-6*want {
			t.Errorf("after %d steps, Eval gives %v, ORT's forward pass of the written model %v", tr.Steps(), eval, want)
		}
		// Step reports the loss before its update: that of the written
		// weights.
		got, err := tr.Step(batches[0]...)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-want) > 1e-5*want {
			t.Errorf("after %d steps, Step gives %v, ORT's forward pass of the written model %v", tr.Steps()-1, got, want)
		}
	}
}

// forwardLoss runs m in ORT and returns its first output, the loss.
func forwardLoss(t *testing.T, m *onnx.Model, batch []runtime.Tensor) float64 {
	t.Helper()
	net, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := runtime.NewSession(net, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Run(batch...)
	if err != nil {
		t.Fatal(err)
	}
	return float64(res[0].Data.([]float32)[0])
}

// TestTrainerResume stops a run after 3 steps, keeps the weights (in an
// ONNX model), the optimiser state and the step count, and goes on in a
// new Trainer: 2 more steps must end where 5 steps of one Trainer end.
func TestTrainerResume(t *testing.T) {
	m := regModel([]float64{1, -2, 0.5, 3, -1, 2}, []float64{0.1, -0.2})
	x := runtime.NewTensor([]int64{regN, regIn}, []float64{1, 2, 3, -1, 0, 1, 2, 2, -2, 0.5, 1, 0})
	y := runtime.NewTensor([]int64{regN, regOut}, []float64{1, 0, -1, 2, 0.5, 0.5, 3, -3})
	cfg := Config{Loss: "loss", Groups: []Group{{Params: []string{"w", "b"}, Optimizer: Adam{WeightDecay: 0.01},
		Schedule: CosineLR{Initial: 0.1, Steps: 5}}}}
	run := func(tr *Trainer, n int) {
		for range n {
			if _, err := tr.Step(x, y); err != nil {
				t.Fatal(err)
			}
		}
	}
	whole, err := NewTrainer(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	run(whole, 5)

	first, err := NewTrainer(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(first, 3)
	saved := m.Clone()
	if err := first.WriteWeights(saved); err != nil {
		t.Fatal(err)
	}
	state := map[string][]float64{}
	for _, name := range first.State() {
		state[name] = append([]float64(nil), first.Value(name).Float64s()...)
	}
	steps := first.Steps()
	first.Close()

	second, err := NewTrainer(saved, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if got := strings.Join(second.State(), " "); got != "w/exp_avg w/exp_avg_sq b/exp_avg b/exp_avg_sq" {
		t.Errorf("State() = %s", got)
	}
	for name, v := range state {
		if err := second.Value(name).Set(runtime.NewTensor(second.Value(name).Shape(), v)); err != nil {
			t.Fatal(err)
		}
	}
	second.SetSteps(steps)
	run(second, 2)
	for _, p := range []string{"w", "b"} {
		if e := relErr(second.Value(p).Float64s(), whole.Value(p).Float64s()); e > 1e-12 {
			t.Errorf("%s after resuming: %v, without stopping: %v", p, second.Value(p).Float64s(), whole.Value(p).Float64s())
		}
	}
}

// TestStepAllocs checks that a step allocates nothing that grows with the
// model: the same small number of allocations for a model 50 times larger.
func TestStepAllocs(t *testing.T) {
	var allocs []float64
	for _, hidden := range []int{8, 400} {
		tr := newMLPTrainer(t, mlpModel(16, 32, hidden, 4, 1), AdamW{WeightDecay: 0.01}, OneCycleLR{Max: 0.01, Steps: 100})
		b := mlpBatch(16, 32, 4, 1)
		allocs = append(allocs, testing.AllocsPerRun(20, func() {
			if _, err := tr.Step(b...); err != nil {
				t.Fatal(err)
			}
		}))
	}
	if allocs[0] != allocs[1] || allocs[1] > 2 {
		t.Errorf("allocations per step: %v for a small and a large model, want at most 2 and equal", allocs)
	}
	t.Logf("allocations per step: %v", allocs)
}

func TestTrainerErrors(t *testing.T) {
	m := mlpModel(2, 3, 4, 2, 1)
	group := func(params ...string) []Group {
		return []Group{{Params: params, Optimizer: SGD{}, Schedule: ConstantLR(0.1)}}
	}
	withLabels := m.Clone()
	withLabels.Graph().Initializer = append(withLabels.Graph().Initializer, onnx.NewInt64Tensor("steps", []int64{1}, []int64{0}))
	opset13 := m.Clone()
	opset13.Proto.OpsetImport[0].Version = ptr(int64(13))
	mixed := m.Clone()
	mixed.Graph().Initializer = append(mixed.Graph().Initializer,
		&pb.TensorProto{Name: ptr("d"), Dims: []int64{1}, DataType: ptr(onnx.Double), DoubleData: []float64{1}})
	tests := []struct {
		name string
		m    *onnx.Model
		cfg  Config
		want string
	}{
		{"no groups", m, Config{Loss: "loss"}, "autodiff: no parameter groups to train"},
		{"unknown param", m, Config{Loss: "loss", Groups: group("w1", "w9")}, `autodiff: parameter "w9" is not an initializer of the model`},
		{"data input", m, Config{Loss: "loss", Groups: group("x")}, `autodiff: parameter "x" is not an initializer`},
		{"twice", m, Config{Loss: "loss", Groups: append(group("w1"), group("b1", "w1")...)}, `autodiff: parameter "w1" is listed twice`},
		{"int param", withLabels, Config{Loss: "loss", Groups: group("steps")}, `autodiff: parameter "steps" is INT64, want FLOAT or DOUBLE`},
		{"mixed dtypes", mixed, Config{Loss: "loss", Groups: group("w1", "d")}, `autodiff: parameter "d" is DOUBLE, others are FLOAT; want one dtype`},
		{"empty group", m, Config{Loss: "loss", Groups: group()}, "autodiff: group 0 has no parameters"},
		{"no optimizer", m, Config{Loss: "loss", Groups: []Group{{Params: []string{"w1"}, Schedule: ConstantLR(1)}}}, "autodiff: group 0 has no optimizer"},
		{"no schedule", m, Config{Loss: "loss", Groups: []Group{{Params: []string{"w1"}, Optimizer: Adam{}}}}, "autodiff: group 0 has no learning-rate schedule"},
		{"nesterov", m, Config{Loss: "loss", Groups: []Group{{Params: []string{"w1"}, Optimizer: SGD{Nesterov: true}, Schedule: ConstantLR(1)}}}, "autodiff: group 0: SGD with Nesterov momentum needs a momentum > 0"},
		{"betas", m, Config{Loss: "loss", Groups: []Group{{Params: []string{"w1"}, Optimizer: AdamW{Beta2: 1}, Schedule: ConstantLR(1)}}}, "autodiff: group 0: Adam betas 0.9, 1"},
		{"clip", m, Config{Loss: "loss", Groups: []Group{{Params: []string{"w1"}, Optimizer: SGD{}, Schedule: ConstantLR(1), ClipNorm: -1}}}, "autodiff: group 0: clip norm -1, want >= 0"},
		{"opset", opset13, Config{Loss: "loss", Groups: group("w1")}, "autodiff: model imports opset 13 of the default domain, want 17"},
		{"loss", m, Config{Loss: "pred", Groups: group("w1")}, `autodiff: loss "pred" is FLOAT[2 2], want a float scalar`},
		{"output", m, Config{Loss: "loss", Groups: group("w1"), Outputs: []string{"logits"}}, `autodiff: output "logits" is not a value of the graph`},
		{"output is loss", m, Config{Loss: "loss", Groups: group("w1"), Outputs: []string{"loss"}}, `autodiff: output "loss" is the loss, a parameter or listed twice`},
	}
	for _, tt := range tests {
		tr, err := NewTrainer(tt.m, tt.cfg)
		if err == nil {
			tr.Close()
		}
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %s", tt.name, err, tt.want)
		}
	}

	tr := newMLPTrainer(t, m, SGD{}, ConstantLR(0.1))
	b := mlpBatch(2, 3, 2, 1)
	steps := []struct {
		name  string
		batch []runtime.Tensor
		want  string
	}{
		{"one tensor", b[:1], `autodiff: got 1 batch tensors, the model has 2 data inputs ["x" "y"]`},
		{"shape", []runtime.Tensor{b[0], runtime.NewTensor([]int64{4}, make([]float32, 4))}, `autodiff: data input "y": runtime: set float32[2 2] value: got a float32[4] tensor`},
		{"dtype", []runtime.Tensor{b[0], runtime.NewTensor([]int64{2, 2}, make([]float64, 4))}, `autodiff: data input "y": runtime: set float32[2 2] value: got a float64[2 2] tensor`},
	}
	for _, tt := range steps {
		if _, err := tr.Step(tt.batch...); err == nil || err.Error() != tt.want {
			t.Errorf("Step with %s: got %v, want %s", tt.name, err, tt.want)
		}
	}
	if got := strings.Join(tr.DataInputs(), " "); got != "x y" {
		t.Errorf("DataInputs() = %s, want x y", got)
	}
	if tr.Value("nothing") != nil {
		t.Error(`Value("nothing") is not nil`)
	}
	tr.Close()
	if _, err := tr.Step(b...); err == nil || !strings.Contains(err.Error(), "closed trainer") {
		t.Errorf("Step after Close: got %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// BenchmarkTrainerStep measures Adam steps of a small MLP (64-64-10, batch
// 32) on one thread.
func BenchmarkTrainerStep(b *testing.B) {
	const batch, in, hidden, out = 32, 64, 64, 10
	tr := newMLPTrainer(b, mlpModel(batch, in, hidden, out, 1), Adam{}, ConstantLR(1e-3))
	data := mlpBatch(batch, in, out, 1)
	b.ResetTimer()
	for b.Loop() {
		if _, err := tr.Step(data...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
}

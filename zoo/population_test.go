package zoo

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/hyperrep/hyperrep/autodiff"
	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/runtime"
)

// mnistSubset loads n MNIST training images and the first m test images.
func mnistSubset(t testing.TB, n, m int) (train, test *dataset.Set) {
	t.Helper()
	train, test, err := dataset.Open("mnist")
	if err != nil {
		t.Skip(err)
	}
	return train.Subset(n, 1), test.Slice(0, m)
}

// trainChunk trains the models in one population of the given layout for
// some epochs and returns each model's flat weights.
func trainChunk(t *testing.T, r *run, l layout, hs []Hyper, epochs int) [][]float32 {
	t.Helper()
	c := &chunk{spec: popSpec{arch: r.arch, act: hs[0].Activation, models: len(hs), batch: r.job.Batch,
		dropout: hs[0].Dropout > 0, opt: hs[0].Optimizer, layout: l}}
	for _, h := range hs {
		c.members = append(c.members, &member{hyper: h, id: h.ID()})
	}
	w := &worker{run: r, sessions: map[popSpec]*session{}}
	defer w.close()
	s, err := w.session(c.spec)
	if err != nil {
		t.Fatal(err)
	}
	n := r.arch.NumParams()
	flat := s.step.currentWeights().Float32s()
	for p, h := range hs {
		ws, err := initWeights(r.arch, h.Init, h.Seed)
		if err != nil {
			t.Fatal(err)
		}
		dst := flat[p*n:]
		for _, v := range ws {
			dst = dst[copy(dst, v):]
		}
	}
	for _, v := range s.step.currentState() {
		clear(v.Float32s())
	}
	for e := 1; e <= epochs; e++ {
		if _, _, err := w.epoch(context.Background(), s.step, c, e); err != nil {
			t.Fatal(err)
		}
	}
	out := make([][]float32, len(hs))
	for p := range hs {
		out[p] = append([]float32(nil), s.step.currentWeights().Float32s()[p*n:(p+1)*n]...)
	}
	return out
}

// TestPopulationMatchesSingle trains models with different
// hyperparameters together in the population layout and each alone in the
// plain layout (Conv, MaxPool, the single-model graph), and checks that
// they end at the same weights.
func TestPopulationMatchesSingle(t *testing.T) {
	train, test := mnistSubset(t, 96, 10)
	for _, tc := range []struct {
		arch string
		hs   []Hyper
	}{
		{"cnn-s", []Hyper{
			{Activation: "tanh", Init: "kaiming_uniform", Optimizer: "adam", LR: 1e-3, Seed: 1},
			{Activation: "tanh", Init: "xavier_normal", Optimizer: "adam", LR: 3e-3, WeightDecay: 1e-2, Seed: 2},
			{Activation: "tanh", Init: "uniform", Optimizer: "adam", LR: 1e-2, WeightDecay: 1e-3, Seed: 3},
		}},
		{"cnn-s", []Hyper{
			{Activation: "relu", Init: "kaiming_normal", Optimizer: "sgd", LR: 1e-2, Momentum: 0.9, Dropout: 0.3, Seed: 4},
			{Activation: "relu", Init: "normal", Optimizer: "sgd", LR: 3e-2, Momentum: 0.5, WeightDecay: 1e-3, Dropout: 0.1, Seed: 5},
		}},
		{"cnn-l", []Hyper{
			{Activation: "gelu", Init: "xavier_uniform", Optimizer: "adamw", LR: 1e-3, WeightDecay: 1e-2, Seed: 6},
			{Activation: "gelu", Init: "kaiming_uniform", Optimizer: "adamw", LR: 2e-3, WeightDecay: 0.1, Seed: 7},
		}},
		{"mlp", []Hyper{
			{Activation: "sigmoid", Init: "kaiming_uniform", Optimizer: "adam", LR: 1e-3, Dropout: 0.2, Seed: 8},
			{Activation: "sigmoid", Init: "xavier_uniform", Optimizer: "adam", LR: 1e-2, Dropout: 0.5, Seed: 9},
		}},
	} {
		t.Run(tc.arch+"/"+tc.hs[0].Activation, func(t *testing.T) {
			arch, err := NewArch(tc.arch, 1, 28, 28, 10)
			if err != nil {
				t.Fatal(err)
			}
			r := &run{job: Job{Batch: 32}, arch: arch, train: train, test: test}
			pop := trainChunk(t, r, layoutPhase, tc.hs, 2)
			for p, h := range tc.hs {
				alone := trainChunk(t, r, layoutPool, []Hyper{h}, 2)[0]
				init, _ := initWeights(arch, h.Init, h.Seed)
				var moved, diff float64
				k := 0
				for _, v := range init {
					for _, x := range v {
						moved = max(moved, math.Abs(float64(alone[k]-x)))
						diff = max(diff, math.Abs(float64(alone[k]-pop[p][k])))
						k++
					}
				}
				t.Logf("%s: weights moved up to %.3g, population vs alone differ by %.3g", h.ID(), moved, diff)
				if moved < 1e-3 || diff > 1e-4+1e-3*moved {
					t.Errorf("%s: moved %.3g, differs by %.3g", h.ID(), moved, diff)
				}
			}
		})
	}
}

// TestPopulationMatchesTrainer trains models in a population and each
// alone with autodiff.Trainer on its eval model (Conv, MaxPool, Gemm), an
// independent implementation of the training step and the optimisers.
func TestPopulationMatchesTrainer(t *testing.T) {
	train, test := mnistSubset(t, 64, 10)
	arch, err := NewArch("cnn-s", 1, 28, 28, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, hs := range [][]Hyper{{
		{Activation: "tanh", Init: "kaiming_uniform", Optimizer: "adam", LR: 1e-3, WeightDecay: 1e-2, Seed: 1},
		{Activation: "tanh", Init: "xavier_uniform", Optimizer: "adam", LR: 1e-2, Seed: 2},
		{Activation: "tanh", Init: "normal", Optimizer: "adam", LR: 3e-3, WeightDecay: 1e-3, Seed: 3},
	}, {
		{Activation: "relu", Init: "kaiming_normal", Optimizer: "sgd", LR: 1e-2, Momentum: 0.9, WeightDecay: 1e-3, Seed: 4},
		{Activation: "relu", Init: "xavier_normal", Optimizer: "sgd", LR: 5e-2, Seed: 5},
	}, {
		{Activation: "sigmoid", Init: "uniform", Optimizer: "adamw", LR: 1e-2, WeightDecay: 1e-1, Seed: 6},
		{Activation: "sigmoid", Init: "kaiming_uniform", Optimizer: "adamw", LR: 2e-3, WeightDecay: 1e-2, Seed: 7},
	}} {
		comparePopulationWithTrainer(t, train, test, arch, hs)
	}
}

func comparePopulationWithTrainer(t *testing.T, train, test *dataset.Set, arch *Arch, hs []Hyper) {
	const B, epochs = 16, 3
	r := &run{job: Job{Batch: B}, arch: arch, train: train, test: test}
	pop := trainChunk(t, r, layoutPhase, hs, epochs)
	for p, h := range hs {
		tr := newReferenceTrainer(t, arch, h, B)
		for e := 1; e <= epochs; e++ {
			order := dataOrder(h.Seed, e, train.N)
			for s := 0; s < train.N/B; s++ {
				images := make([]float32, B*train.SampleSize())
				labels := make([]int64, B)
				for b := range B {
					i := order[s*B+b]
					copy(images[b*train.SampleSize():], train.Image(i))
					labels[b] = int64(train.Labels[i])
				}
				if _, err := tr.Step(runtime.NewTensor([]int64{B, 1, 28, 28}, images), runtime.NewTensor([]int64{B}, labels)); err != nil {
					t.Fatal(err)
				}
			}
		}
		var diff, moved float64
		k := 0
		init, _ := initWeights(arch, h.Init, h.Seed)
		for i, prm := range arch.Params() {
			ref := tr.Value(prm.Name).Float32s()
			for j, x := range ref {
				diff = max(diff, math.Abs(float64(x-pop[p][k])))
				moved = max(moved, math.Abs(float64(x-init[i][j])))
				k++
			}
		}
		t.Logf("%s: moved %.3g, population vs Trainer differ by %.3g", h.ID(), moved, diff)
		if moved < 1e-3 || diff > 1e-4+1e-3*moved {
			t.Errorf("%s: moved %.3g, differs by %.3g", h.ID(), moved, diff)
		}
		tr.Close()
	}
}

// newReferenceTrainer is an autodiff.Trainer of one model's eval graph
// with a batch of B, mean cross-entropy and the model's optimiser.
func newReferenceTrainer(t *testing.T, arch *Arch, h Hyper, B int) *autodiff.Trainer {
	t.Helper()
	ws, err := initWeights(arch, h.Init, h.Seed)
	if err != nil {
		t.Fatal(err)
	}
	m, err := arch.Model(h.Activation, ws)
	if err != nil {
		t.Fatal(err)
	}
	g := m.Graph()
	g.Input[0].GetType().GetTensorType().GetShape().GetDim()[0].Value = &pb.TensorShapeProto_Dimension_DimValue{DimValue: int64(B)}
	b := onnx.Extend(g, autodiff.Opset, "ref/")
	labels := b.Input("labels", onnx.Int64, int64(B))
	b.NodeAs("loss", "SoftmaxCrossEntropyLoss", []string{"logits", labels})
	g.Output = nil
	b.Output("loss", onnx.Float)
	var opt autodiff.Optimizer
	switch h.Optimizer {
	case "adam":
		opt = autodiff.Adam{WeightDecay: h.WeightDecay}
	case "adamw":
		opt = autodiff.AdamW{WeightDecay: h.WeightDecay}
	default:
		opt = autodiff.SGD{Momentum: h.Momentum, WeightDecay: h.WeightDecay}
	}
	var params []string
	for _, p := range arch.Params() {
		params = append(params, p.Name)
	}
	tr, err := autodiff.NewTrainer(m, autodiff.Config{Loss: "loss",
		Groups:  []autodiff.Group{{Params: params, Optimizer: opt, Schedule: autodiff.ConstantLR(h.LR)}},
		Options: runtime.Options{Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestPopulationBitwise checks that a model's weights do not depend, to
// the bit, on which other models share its population, as long as it has
// company: graphs of one model reduce some sums in another order (ORT
// takes other paths for a batch of one), so plan never makes them out of
// larger groups, and zoos trained with another worker count or population
// size are the same zoos.
func TestPopulationBitwise(t *testing.T) {
	train, test := mnistSubset(t, 64, 10)
	arch, err := NewArch("cnn-s", 1, 28, 28, 10)
	if err != nil {
		t.Fatal(err)
	}
	r := &run{job: Job{Batch: 16}, arch: arch, train: train, test: test}
	h := func(seed int64, lr float64) Hyper {
		return Hyper{Activation: "tanh", Init: "kaiming_uniform", Optimizer: "adam", LR: lr, Dropout: 0.2, Seed: seed}
	}
	x := h(1, 1e-3)
	var first []float32
	for _, hs := range [][]Hyper{
		{h(2, 1e-2), x},
		{x, h(3, 1e-2), h(4, 1e-3)},
		{h(3, 1e-2), h(4, 1e-3), h(5, 3e-3), h(6, 3e-3), h(7, 3e-3), h(8, 3e-3), h(9, 3e-3), x},
	} {
		got := trainChunk(t, r, layoutPhase, hs, 2)
		for p := range hs {
			if hs[p] != x {
				continue
			}
			if first == nil {
				first = got[p]
			} else if !slices.Equal(got[p], first) {
				t.Errorf("in a population of %d, model %s ends elsewhere than in one of 2", len(hs), x.ID())
			}
		}
	}
}

func TestDropoutMasks(t *testing.T) {
	for _, rate := range []float64{0, 0.1, 0.5, 0.9} {
		h := Hyper{Dropout: rate, Seed: 3}
		const P, B = 3, 8
		m := maskFill{data: make([]float32, B*P*6*16), shape: []int64{B, P * 6, 4, 4}}
		fc := maskFill{data: make([]float32, P*B*20), shape: []int64{P, B, 20}}
		fillMasks([]maskFill{m, fc}, h, 1, 2, 1, P, B)
		var kept, n int
		for b := range B {
			for i, v := range m.data[b*P*96 : (b+1)*P*96] {
				inModel := i/96 == 1
				switch {
				case !inModel && v != 0:
					t.Fatalf("rate %v: mask of model 1 spilled into model %d", rate, i/96)
				case inModel && v != 0 && math.Abs(float64(v)-1/(1-rate)) > 1e-6:
					t.Fatalf("rate %v: kept unit scaled by %v", rate, v)
				case inModel:
					n++
					if v != 0 {
						kept++
					}
				}
			}
		}
		if got := 1 - float64(kept)/float64(n); math.Abs(got-rate) > 0.08 {
			t.Errorf("rate %v: dropped %.2f of the units", rate, got)
		}
		for i, v := range fc.data {
			if model := i / (B * 20); model != 1 && v != 0 || model == 1 && rate == 0 && v != 1 {
				t.Fatalf("rate %v: fully connected mask of model %d is %v", rate, model, v)
			}
		}
	}
}

// TestPhaseGradientIsConcat checks that the gradient of the four pooling
// phases is one Concat, not four padded copies and their sum.
func TestPhaseGradientIsConcat(t *testing.T) {
	for _, name := range Architectures {
		arch, err := NewArch(name, 1, 28, 28, 10)
		if err != nil {
			t.Fatal(err)
		}
		g, err := (&popSpec{arch: arch, act: "relu", models: 2, batch: 4, opt: "adam", plainConvs: true}).trainGraph()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range g.model.Graph().GetNode() {
			if n.GetOpType() == "Pad" {
				t.Errorf("%s: the training graph pads: %v", name, n.GetInput())
			}
		}
	}
	for _, tc := range []struct {
		pads [][2]int64
		want bool
	}{
		{[][2]int64{{0, 3}, {1, 2}, {2, 1}, {3, 0}}, true},
		{[][2]int64{{3, 0}, {0, 3}, {2, 1}, {1, 2}}, true},
		{[][2]int64{{0, 3}, {1, 2}, {1, 2}, {3, 0}}, false},
		{[][2]int64{{0, 2}, {2, 0}}, false},
		{[][2]int64{{0, 1}}, false},
	} {
		at := func(i int) (int64, int64) { return tc.pads[i][0], tc.pads[i][1] }
		if got := unitTiles(at, len(tc.pads)); got != tc.want {
			t.Errorf("unitTiles(%v) = %v", tc.pads, got)
		}
	}
}

// TestFusedMaxGradients checks that fusing the max over the pooling phases
// and its gradient (fuseMaxGradients, reduceMaxPhases) changes no bit of a
// training step, ties included.
func TestFusedMaxGradients(t *testing.T) {
	for _, name := range []string{"cnn-s", "cnn-l"} {
		arch, err := NewArch(name, 1, 28, 28, 10)
		if err != nil {
			t.Fatal(err)
		}
		spec := popSpec{arch: arch, act: "relu", models: 2, batch: 4, opt: "adam"}
		var steppers []*stepper
		for _, fused := range []bool{false, true} {
			g, err := spec.gradientGraph()
			if err != nil {
				t.Fatal(err)
			}
			pooled := len(slices.DeleteFunc(slices.Clone(arch.layers), func(l layer) bool { return !l.pool }))
			if fused && (fuseMaxGradients(g.model.Graph()) != pooled || reduceMaxPhases(g.model.Graph()) != pooled) {
				t.Fatalf("%s: did not fuse the max and its gradient of every pooled convolution", name)
			}
			s, err := loadStepper(spec, g, runtime.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fillRandom(t, s)
			for _, v := range s.currentState() {
				clear(v.Float32s())
			}
			// Blank image rows make phases tie, as MNIST's background does.
			images := s.input("images").Float32s()
			clear(images[:len(images)/2])
			steppers = append(steppers, s)
		}
		for range 3 {
			for _, s := range steppers {
				if err := s.step(); err != nil {
					t.Fatal(err)
				}
			}
		}
		a, b := steppers[0], steppers[1]
		if !slices.Equal(a.currentWeights().Float32s(), b.currentWeights().Float32s()) ||
			!slices.Equal(a.currentState()[1].Float32s(), b.currentState()[1].Float32s()) {
			t.Errorf("%s: fused and unfused training steps differ", name)
		}
	}
}

// TestToeplitzLayers checks which convolutions run as a MatMul by their
// Toeplitz matrix: cnn-s's last (unpooled, 6×4×4 -> 4×3×3, feeding fc1),
// in the phase layout's training and evaluation graphs; no other layer of
// cnn-s or cnn-l, and none in the plain layout, whose graphs keep one Conv
// per convolution. (TestPopulationMatchesSingle checks the values against
// the plain layout's Conv.)
func TestToeplitzLayers(t *testing.T) {
	for _, tc := range []struct {
		arch  string
		l     layout
		want  []bool
		convs int // Conv nodes before lowering, training graph
	}{
		{"cnn-s", layoutPhase, []bool{false, false, true, false, false}, 2},
		{"cnn-s", layoutPool, []bool{false, false, false, false, false}, 3},
		{"cnn-l", layoutPhase, []bool{false, false, false, false, false}, 3},
	} {
		arch, err := NewArch(tc.arch, 1, 28, 28, 10)
		if err != nil {
			t.Fatal(err)
		}
		spec := &popSpec{arch: arch, act: "tanh", models: 2, batch: 4, opt: "adam", layout: tc.l, plainConvs: true}
		for i := range arch.layers {
			if got := spec.toeplitz(i); got != tc.want[i] {
				t.Errorf("%s, layout %d: layer %s toeplitz %v, want %v", tc.arch, tc.l, arch.layers[i].name, got, tc.want[i])
			}
		}
		b := onnx.NewBuilder("forward", autodiff.Opset)
		x := b.Input("x", onnx.Float, spec.imageInput(4)...)
		spec.unflatten(b, b.Input("weights", onnx.Float, spec.weightsInput().shape...))
		spec.forward(b, x, 4, nil, false)
		convs := 0
		for _, n := range b.Graph().GetNode() {
			if n.GetOpType() == "Conv" {
				convs++
			}
		}
		if convs != tc.convs {
			t.Errorf("%s, layout %d: %d Convs in the forward pass, want %d", tc.arch, tc.l, convs, tc.convs)
		}
	}
}

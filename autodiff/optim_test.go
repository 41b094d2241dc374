package autodiff

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/runtime"
)

// Linear regression in float64, loss = mean((x·w + b − y)²), whose
// gradient has a closed form: the optimisers are checked against Go
// implementations of their formulas.
const (
	regN, regIn, regOut = 4, 3, 2
)

func regModel(w, b []float64) *onnx.Model {
	bl := onnx.NewBuilder("linreg", Opset)
	x := bl.Input("x", onnx.Double, regN, regIn)
	y := bl.Input("y", onnx.Double, regN, regOut)
	wt := bl.Initializer(&pb.TensorProto{Name: ptr("w"), Dims: []int64{regIn, regOut}, DataType: ptr(onnx.Double), DoubleData: w})
	bt := bl.Initializer(&pb.TensorProto{Name: ptr("b"), Dims: []int64{regOut}, DataType: ptr(onnx.Double), DoubleData: b})
	r := bl.Node("Sub", []string{bl.Node("Add", []string{bl.Node("MatMul", []string{x, wt}), bt}), y})
	loss := bl.NodeAs("loss", "ReduceMean", []string{bl.Node("Mul", []string{r, r})}, onnx.Int("keepdims", 0))
	bl.Output(loss, onnx.Double)
	return bl.Model()
}

// regGrad returns the loss and its gradients with respect to w and b.
func regGrad(w, b, x, y []float64) (loss float64, dw, db []float64) {
	dw, db = make([]float64, len(w)), make([]float64, len(b))
	scale := 2.0 / (regN * regOut)
	for n := range regN {
		for k := range regOut {
			r := b[k] - y[n*regOut+k]
			for i := range regIn {
				r += x[n*regIn+i] * w[i*regOut+k]
			}
			loss += r * r / (regN * regOut)
			db[k] += scale * r
			for i := range regIn {
				dw[i*regOut+k] += scale * r * x[n*regIn+i]
			}
		}
	}
	return loss, dw, db
}

// refUpdate applies one update of opt to p in place, the way the formulas
// of the optimisers' documentation say.
func refUpdate(opt Optimizer, p, g []float64, state [][]float64, lr float64, t int) {
	switch o := opt.(type) {
	case SGD:
		for i := range p {
			gi := g[i] + o.WeightDecay*p[i]
			if o.Momentum != 0 {
				state[0][i] = o.Momentum*state[0][i] + gi
				if o.Nesterov {
					gi += o.Momentum * state[0][i]
				} else {
					gi = state[0][i]
				}
			}
			p[i] -= lr * gi
		}
	case Adam, AdamW:
		var a Adam
		decoupled := false
		if w, ok := o.(AdamW); ok {
			a, decoupled = Adam(w).defaults(), true
		} else {
			a = o.(Adam).defaults()
		}
		bc1 := 1 - math.Pow(a.Beta1, float64(t))
		bc2 := math.Sqrt(1 - math.Pow(a.Beta2, float64(t)))
		for i := range p {
			gi := g[i]
			if !decoupled {
				gi += a.WeightDecay * p[i]
			} else {
				p[i] *= 1 - lr*a.WeightDecay
			}
			state[0][i] = a.Beta1*state[0][i] + (1-a.Beta1)*gi
			state[1][i] = a.Beta2*state[1][i] + (1-a.Beta2)*gi*gi
			p[i] -= lr / bc1 * state[0][i] / (math.Sqrt(state[1][i])/bc2 + a.Eps)
		}
	default:
		panic(fmt.Sprintf("no reference for %T", opt))
	}
}

// refClip scales grads in place as Group.ClipNorm says, and reports
// whether it scaled them down.
func refClip(maxNorm float64, grads ...[]float64) bool {
	var sq float64
	for _, g := range grads {
		for _, x := range g {
			sq += x * x
		}
	}
	coef := min(maxNorm/(math.Sqrt(sq)+1e-6), 1)
	for _, g := range grads {
		for i := range g {
			g[i] *= coef
		}
	}
	return coef < 1
}

func relErr(got, want []float64) float64 {
	var worst, scale float64
	for i := range want {
		worst = max(worst, math.Abs(got[i]-want[i]))
		scale = max(scale, math.Abs(want[i]))
	}
	if len(got) != len(want) {
		return math.Inf(1)
	}
	return worst / max(scale, 1e-12)
}

// TestOptimizers trains w and b as two groups, each with its own optimiser,
// schedule and clipping, on a new batch every step, and compares the loss,
// the weights and the optimiser state with the reference after each step.
func TestOptimizers(t *testing.T) {
	tests := []struct {
		name     string
		opt      [2]Optimizer
		schedule [2]Schedule
		clip     [2]float64
	}{
		{"sgd", [2]Optimizer{SGD{}, SGD{}}, [2]Schedule{ConstantLR(0.1), ConstantLR(0.05)}, [2]float64{}},
		{"sgd momentum", [2]Optimizer{SGD{Momentum: 0.9}, SGD{Momentum: 0.5}}, [2]Schedule{StepLR{Initial: 0.1, Gamma: 0.5, Every: 2}, ConstantLR(0.2)}, [2]float64{}},
		{"sgd nesterov decay clip", [2]Optimizer{SGD{Momentum: 0.8, Nesterov: true, WeightDecay: 0.01}, SGD{WeightDecay: 0.3}}, [2]Schedule{ConstantLR(0.1), ConstantLR(0.1)}, [2]float64{0.3, 0}},
		{"adam", [2]Optimizer{Adam{}, Adam{Beta1: 0.5, Beta2: 0.9, Eps: 1e-3}}, [2]Schedule{ConstantLR(0.01), ConstantLR(0.1)}, [2]float64{}},
		{"adam decay clip", [2]Optimizer{Adam{WeightDecay: 0.1}, Adam{WeightDecay: 0.5}}, [2]Schedule{CosineLR{Initial: 0.05, Min: 0.01, Steps: 4}, ConstantLR(0.02)}, [2]float64{0.2, 0.1}},
		{"adamw", [2]Optimizer{AdamW{WeightDecay: 0.1}, AdamW{WeightDecay: 2, Beta1: 0.8}}, [2]Schedule{OneCycleLR{Max: 0.05, Steps: 6}, ConstantLR(0.03)}, [2]float64{}},
		{"adamw and sgd", [2]Optimizer{AdamW{WeightDecay: 0.05}, SGD{Momentum: 0.9, Nesterov: true}}, [2]Schedule{ConstantLR(0.01), ConstantLR(0.05)}, [2]float64{0, 0.05}},
	}
	const steps = 6
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			normal := func(n int) []float64 {
				v := make([]float64, n)
				for i := range v {
					v[i] = r.NormFloat64()
				}
				return v
			}
			w, b := normal(regIn*regOut), normal(regOut)
			m := regModel(append([]float64(nil), w...), append([]float64(nil), b...))
			tr, err := NewTrainer(m, Config{Loss: "loss", Groups: []Group{
				{Params: []string{"w"}, Optimizer: tt.opt[0], Schedule: tt.schedule[0], ClipNorm: tt.clip[0]},
				{Params: []string{"b"}, Optimizer: tt.opt[1], Schedule: tt.schedule[1], ClipNorm: tt.clip[1]},
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			state := map[string][][]float64{}
			for _, p := range []struct {
				name string
				n    int
				opt  Optimizer
			}{{"w", len(w), tt.opt[0]}, {"b", len(b), tt.opt[1]}} {
				for range p.opt.slots() {
					state[p.name] = append(state[p.name], make([]float64, p.n))
				}
			}
			clipped := 0
			for step := range steps {
				x, y := normal(regN*regIn), normal(regN*regOut)
				loss, err := tr.Step(runtime.NewTensor([]int64{regN, regIn}, x), runtime.NewTensor([]int64{regN, regOut}, y))
				if err != nil {
					t.Fatal(err)
				}
				want, dw, db := regGrad(w, b, x, y)
				for gi, g := range [][]float64{dw, db} {
					if tt.clip[gi] > 0 && refClip(tt.clip[gi], g) {
						clipped++
					}
				}
				refUpdate(tt.opt[0], w, dw, state["w"], tt.schedule[0].LR(step), step+1)
				refUpdate(tt.opt[1], b, db, state["b"], tt.schedule[1].LR(step), step+1)
				if e := relErr([]float64{loss}, []float64{want}); e > 1e-9 {
					t.Errorf("step %d: loss %v, want %v", step, loss, want)
				}
				check := func(name string, want []float64) {
					if got := tr.Value(name).Float64s(); relErr(got, want) > 1e-9 {
						t.Errorf("step %d: %s = %v, want %v", step, name, got, want)
					}
				}
				check("w", w)
				check("b", b)
				for _, p := range []struct {
					name string
					opt  Optimizer
				}{{"w", tt.opt[0]}, {"b", tt.opt[1]}} {
					for k, slot := range p.opt.slots() {
						check(p.name+"/"+slot, state[p.name][k])
					}
				}
			}
			if tt.clip != [2]float64{} && clipped == 0 {
				t.Error("the clip norm never bound: the case does not test clipping")
			}
			if tr.Steps() != steps {
				t.Errorf("Steps() = %d, want %d", tr.Steps(), steps)
			}
		})
	}
}

func TestSchedules(t *testing.T) {
	oneCycle := OneCycleLR{Max: 1, Steps: 100}
	// PyTorch's phase 1 ends at step 0.3·100 − 1 = 29, phase 2 at 99.
	start, end := 1.0/25, 1.0/25/1e4
	tests := []struct {
		name string
		s    Schedule
		step int
		want float64
	}{
		{"constant", ConstantLR(0.3), 1000, 0.3},
		{"step 0", StepLR{Initial: 0.1, Gamma: 0.5, Every: 3}, 0, 0.1},
		{"step 2", StepLR{Initial: 0.1, Gamma: 0.5, Every: 3}, 2, 0.1},
		{"step 3", StepLR{Initial: 0.1, Gamma: 0.5, Every: 3}, 3, 0.05},
		{"step 7", StepLR{Initial: 0.1, Gamma: 0.5, Every: 3}, 7, 0.025},
		{"cosine 0", CosineLR{Initial: 1, Steps: 10}, 0, 1},
		{"cosine half", CosineLR{Initial: 1, Steps: 10}, 5, 0.5},
		{"cosine quarter", CosineLR{Initial: 1, Steps: 8}, 2, (1 + math.Sqrt2/2) / 2},
		{"cosine end", CosineLR{Initial: 1, Steps: 10}, 10, 0},
		{"cosine after", CosineLR{Initial: 1, Steps: 10}, 25, 0},
		{"cosine floor half", CosineLR{Initial: 1, Min: 0.1, Steps: 10}, 5, 0.55},
		{"cosine floor end", CosineLR{Initial: 1, Min: 0.1, Steps: 10}, 12, 0.1},
		{"one-cycle start", oneCycle, 0, start},
		{"one-cycle peak", oneCycle, 29, 1},
		{"one-cycle rising", oneCycle, 29 / 2, 1 + (start-1)/2*(math.Cos(math.Pi*14/29)+1)},
		{"one-cycle falling half", oneCycle, 64, (1 + end) / 2},
		{"one-cycle end", oneCycle, 99, end},
		{"one-cycle after", oneCycle, 150, end},
		{"one-cycle options", OneCycleLR{Max: 2, Steps: 10, PctStart: 0.5, DivFactor: 4, FinalDivFactor: 10}, 0, 0.5},
		{"one-cycle options peak", OneCycleLR{Max: 2, Steps: 10, PctStart: 0.5, DivFactor: 4, FinalDivFactor: 10}, 4, 2},
		{"one-cycle options end", OneCycleLR{Max: 2, Steps: 10, PctStart: 0.5, DivFactor: 4, FinalDivFactor: 10}, 9, 0.05},
	}
	for _, tt := range tests {
		if got := tt.s.LR(tt.step); math.Abs(got-tt.want) > 1e-12*max(1, math.Abs(tt.want)) {
			t.Errorf("%s: LR(%d) = %v, want %v", tt.name, tt.step, got, tt.want)
		}
	}
}

// TestClipCapsNorm gives a loss whose gradients are known constants with a
// global norm of 13: a group clipped to 1 must move by a norm of 1 in the
// gradients' direction; an unclipped group and one whose bound is loose
// move by the full gradient.
func TestClipCapsNorm(t *testing.T) {
	bl := onnx.NewBuilder("clip", Opset)
	x := bl.Input("x", onnx.Double, 1)
	c := map[string][]float64{"a": {3, 4}, "b": {12}, "u": {5, 0}, "v": {0, 7}}
	var terms []string
	for _, name := range []string{"a", "b", "u", "v"} {
		n := int64(len(c[name]))
		w := bl.Initializer(&pb.TensorProto{Name: ptr(name), Dims: []int64{n}, DataType: ptr(onnx.Double), DoubleData: make([]float64, n)})
		k := bl.Initializer(&pb.TensorProto{Name: ptr("c_" + name), Dims: []int64{n}, DataType: ptr(onnx.Double), DoubleData: c[name]})
		terms = append(terms, bl.Node("ReduceSum", []string{bl.Node("Mul", []string{w, k})}, onnx.Int("keepdims", 0)))
	}
	total := terms[0]
	for _, term := range terms[1:] {
		total = bl.Node("Add", []string{total, term})
	}
	loss := bl.NodeAs("loss", "Mul", []string{total, bl.Node("ReduceSum", []string{x}, onnx.Int("keepdims", 0))})
	bl.Output(loss, onnx.Double)
	tr, err := NewTrainer(bl.Model(), Config{Loss: loss, Groups: []Group{
		{Params: []string{"a", "b"}, Optimizer: SGD{}, Schedule: ConstantLR(1), ClipNorm: 1},
		{Params: []string{"u"}, Optimizer: SGD{}, Schedule: ConstantLR(1)},
		{Params: []string{"v"}, Optimizer: SGD{}, Schedule: ConstantLR(1), ClipNorm: 100},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Step(runtime.NewTensor([]int64{1}, []float64{1})); err != nil {
		t.Fatal(err)
	}
	a, b := tr.Value("a").Float64s(), tr.Value("b").Float64s()
	norm := math.Sqrt(a[0]*a[0] + a[1]*a[1] + b[0]*b[0])
	if norm > 1 || norm < 1-1e-6 {
		t.Errorf("clipped group moved by a norm of %v, want 1", norm)
	}
	if e := relErr([]float64{a[0], a[1], b[0]}, []float64{-3.0 / 13, -4.0 / 13, -12.0 / 13}); e > 1e-6 {
		t.Errorf("clipped group moved by %v %v, want -(3 4 12)/13", a, b)
	}
	for _, name := range []string{"u", "v"} {
		want := []float64{-c[name][0], -c[name][1]}
		if got := tr.Value(name).Float64s(); relErr(got, want) > 1e-12 {
			t.Errorf("%s moved to %v, want %v", name, got, want)
		}
	}
}

func TestOneCycleShortRuns(t *testing.T) {
	// One step: PyTorch's OneCycleLR anneals from the peak, which lies
	// before step 0, straight to the floor.
	s := OneCycleLR{Max: 0.1, Steps: 1}
	if got, want := s.LR(0), 0.1/25/1e4; math.Abs(got-want) > 1e-15 {
		t.Errorf("one-step schedule: LR(0) = %v, want %v", got, want)
	}
	for steps := 1; steps < 5; steps++ {
		for i := 0; i < steps; i++ {
			if lr := (OneCycleLR{Max: 1, Steps: steps}).LR(i); math.IsNaN(lr) || lr <= 0 || lr > 1 {
				t.Errorf("Steps %d: LR(%d) = %v", steps, i, lr)
			}
		}
	}
}

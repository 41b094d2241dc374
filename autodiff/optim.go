package autodiff

import (
	"errors"
	"fmt"
	"math"

	"github.com/hyperrep/hyperrep/onnx"
)

// Optimisers are emitted as ONNX nodes after the backward pass, so that one
// ORT run does forward, backward and update. Hyperparameters fixed for a
// run (betas, weight decay, clip norm) are baked into the graph as
// constants; the learning rate and the step count change from step to step
// and are graph inputs, which keeps schedules on the Go side.

// Optimizer is an update rule: SGD, Adam or AdamW.
type Optimizer interface {
	// slots names the state kept per parameter.
	slots() []string
	// updater emits what a group's updates share and returns the function
	// that updates each of its parameters.
	updater(u *update) paramUpdate
	check() error
}

// paramUpdate emits the update of parameter p from its gradient g and its
// state (one value per slot) and returns the new parameter and state.
type paramUpdate func(p, g string, state []string) (string, []string)

// SGD is stochastic gradient descent with PyTorch's semantics (dampening 0):
//
//	g ← g + WeightDecay·w
//	b ← Momentum·b + g                  (with Momentum; b starts at 0)
//	g ← b, or g + Momentum·b with Nesterov
//	w ← w − lr·g
type SGD struct {
	Momentum    float64
	Nesterov    bool
	WeightDecay float64
}

func (o SGD) slots() []string {
	if o.Momentum != 0 {
		return []string{"momentum_buffer"}
	}
	return nil
}

func (o SGD) check() error {
	switch {
	case o.Momentum < 0 || o.WeightDecay < 0:
		return fmt.Errorf("SGD momentum %g, weight decay %g: want both >= 0", o.Momentum, o.WeightDecay)
	case o.Nesterov && o.Momentum == 0:
		return errors.New("SGD with Nesterov momentum needs a momentum > 0")
	}
	return nil
}

func (o SGD) updater(u *update) paramUpdate {
	return func(p, g string, state []string) (string, []string) {
		if o.WeightDecay != 0 {
			g = u.op("Add", g, u.op("Mul", p, u.k(o.WeightDecay)))
		}
		var next []string
		if o.Momentum != 0 {
			buf := u.op("Add", u.op("Mul", state[0], u.k(o.Momentum)), g)
			next = []string{buf}
			if o.Nesterov {
				g = u.op("Add", g, u.op("Mul", buf, u.k(o.Momentum)))
			} else {
				g = buf
			}
		}
		return u.op("Sub", p, u.op("Mul", u.lr, g)), next
	}
}

// Adam is Adam with PyTorch's semantics, where weight decay is added to the
// gradient (L2 regularisation). With t the step count from 1:
//
//	g ← g + WeightDecay·w
//	m ← β1·m + (1−β1)·g
//	v ← β2·v + (1−β2)·g²
//	w ← w − lr/(1−β1^t) · m / (√v / √(1−β2^t) + ε)
//
// Zero Beta1, Beta2 and Eps mean PyTorch's defaults 0.9, 0.999 and 1e-8.
type Adam struct {
	Beta1, Beta2, Eps float64
	WeightDecay       float64
}

// AdamW is Adam with decoupled weight decay (PyTorch's AdamW): the weights
// decay directly, w ← w·(1 − lr·WeightDecay), before the Adam step, and the
// gradient is left alone. Zero fields mean what they mean for Adam, and
// zero WeightDecay means none (PyTorch's default is 0.01).
type AdamW Adam

func (o Adam) slots() []string  { return []string{"exp_avg", "exp_avg_sq"} }
func (o AdamW) slots() []string { return Adam(o).slots() }
func (o Adam) check() error     { return adamCheck(o) }
func (o AdamW) check() error    { return adamCheck(Adam(o)) }

func (o Adam) updater(u *update) paramUpdate  { return adamUpdater(u, o.defaults(), false) }
func (o AdamW) updater(u *update) paramUpdate { return adamUpdater(u, Adam(o).defaults(), true) }

func (o Adam) defaults() Adam {
	if o.Beta1 == 0 {
		o.Beta1 = 0.9
	}
	if o.Beta2 == 0 {
		o.Beta2 = 0.999
	}
	if o.Eps == 0 {
		o.Eps = 1e-8
	}
	return o
}

func adamCheck(o Adam) error {
	o = o.defaults()
	if o.Beta1 < 0 || o.Beta1 >= 1 || o.Beta2 < 0 || o.Beta2 >= 1 || o.Eps < 0 || o.WeightDecay < 0 {
		return fmt.Errorf("Adam betas %g, %g, eps %g, weight decay %g: want betas in [0, 1) and the rest >= 0",
			o.Beta1, o.Beta2, o.Eps, o.WeightDecay)
	}
	return nil
}

func adamUpdater(u *update, o Adam, decoupled bool) paramUpdate {
	one := u.k(1)
	bc1 := u.op("Sub", one, u.op("Pow", u.k(o.Beta1), u.step))
	bc2 := u.op("Sqrt", u.op("Sub", one, u.op("Pow", u.k(o.Beta2), u.step)))
	stepSize := u.op("Div", u.lr, bc1)
	var decay string
	if decoupled && o.WeightDecay != 0 {
		decay = u.op("Sub", one, u.op("Mul", u.lr, u.k(o.WeightDecay)))
	}
	return func(p, g string, state []string) (string, []string) {
		if !decoupled && o.WeightDecay != 0 {
			g = u.op("Add", g, u.op("Mul", p, u.k(o.WeightDecay)))
		}
		m := u.op("Add", u.op("Mul", state[0], u.k(o.Beta1)), u.op("Mul", g, u.k(1-o.Beta1)))
		v := u.op("Add", u.op("Mul", state[1], u.k(o.Beta2)), u.op("Mul", u.op("Mul", g, g), u.k(1-o.Beta2)))
		denom := u.op("Add", u.op("Div", u.op("Sqrt", v), bc2), u.k(o.Eps))
		if decay != "" {
			p = u.op("Mul", p, decay)
		}
		return u.op("Sub", p, u.op("Mul", stepSize, u.op("Div", m, denom))), []string{m, v}
	}
}

// Group is a set of trainable tensors updated alike: one model, when a graph
// holds several (population training). Each group has its own optimiser,
// learning-rate schedule and gradient clipping.
type Group struct {
	Params    []string // initializers of the forward graph
	Optimizer Optimizer
	Schedule  Schedule
	// ClipNorm, if positive, scales the group's gradients so that their
	// global L2 norm is at most ClipNorm, as PyTorch's clip_grad_norm_:
	// g ← g · min(1, ClipNorm / (‖g‖ + 1e-6)).
	ClipNorm float64
}

func (gr Group) check(i int) error {
	switch {
	case len(gr.Params) == 0:
		return fmt.Errorf("autodiff: group %d has no parameters", i)
	case gr.Optimizer == nil:
		return fmt.Errorf("autodiff: group %d has no optimizer", i)
	case gr.Schedule == nil:
		return fmt.Errorf("autodiff: group %d has no learning-rate schedule", i)
	case gr.ClipNorm < 0 || math.IsNaN(gr.ClipNorm):
		return fmt.Errorf("autodiff: group %d: clip norm %g, want >= 0", i, gr.ClipNorm)
	}
	if err := gr.Optimizer.check(); err != nil {
		return fmt.Errorf("autodiff: group %d: %v", i, err)
	}
	return nil
}

// update is what optimisers build with: the graph, the parameters' dtype,
// and the group's learning rate and the step count, as scalars.
type update struct {
	c     *Context
	dtype int32
	lr    string
	step  string // t, counted from 1
}

func (u *update) k(v float64) string { return u.c.Scalar(v, u.dtype) }

func (u *update) op(op string, inputs ...string) string { return u.c.Op(op, inputs) }

// updates are the names of a training step's extra inputs and outputs.
type updates struct {
	lr, step  string     // inputs: learning rates [G], step count []
	state     [][]string // per parameter (in group order), per slot: the input
	newParams []string
	newState  [][]string
}

// appendUpdates extends the gradient graph res with the groups' updates.
// Parameters, in group order, must all be of dtype, a float type.
func appendUpdates(res *Result, groups []Group, dtype int32) *updates {
	b := onnx.Extend(res.Graph, Opset, "opt/")
	c := &Context{b: b, shapes: res.Shapes, consts: map[string]string{}}
	up := &updates{lr: b.Input(b.Fresh("lr"), dtype, int64(len(groups)))}
	for _, gr := range groups {
		if _, ok := gr.Optimizer.(SGD); !ok {
			up.step = b.Input(b.Fresh("step"), dtype)
			break
		}
	}
	for gi, gr := range groups {
		grads := make([]string, len(gr.Params))
		for i, p := range gr.Params {
			grads[i] = res.Grads[p]
		}
		if gr.ClipNorm > 0 {
			clip(c, grads, gr.ClipNorm, dtype)
		}
		index := b.Initializer(onnx.NewInt64Tensor(b.Fresh("group"), nil, []int64{int64(gi)}))
		lr := c.Op("Gather", []string{up.lr, index}, onnx.Int("axis", 0)) // [G] -> []
		u := &update{c: c, dtype: dtype, lr: lr, step: up.step}
		next := gr.Optimizer.updater(u)
		for i, p := range gr.Params {
			t := res.Shapes.Types[p]
			state := make([]string, len(gr.Optimizer.slots()))
			for k, slot := range gr.Optimizer.slots() {
				state[k] = b.Input(b.Fresh(p+"/"+slot), dtype, t.Shape...)
			}
			np, ns := next(p, grads[i], state)
			up.state = append(up.state, state)
			up.newParams = append(up.newParams, np)
			up.newState = append(up.newState, ns)
		}
	}
	return up
}

// clip scales grads in place by min(1, maxNorm / (‖grads‖ + 1e-6)).
func clip(c *Context, grads []string, maxNorm float64, dtype int32) {
	squares := make([]string, len(grads))
	for i, g := range grads {
		squares[i] = c.Op("ReduceSumSquare", []string{g}, onnx.Int("keepdims", 0)) // -> []
	}
	norm := c.Op("Sqrt", []string{c.sum(squares)})
	coef := c.Op("Div", []string{c.Scalar(maxNorm, dtype), c.Op("Add", []string{norm, c.Scalar(1e-6, dtype)})})
	coef = c.Op("Min", []string{coef, c.Scalar(1, dtype)})
	for i, g := range grads {
		grads[i] = c.Op("Mul", []string{g, coef})
	}
}

// Schedule is a learning-rate schedule: the rate for the update with the
// given index, counted from 0.
type Schedule interface {
	LR(step int) float64
}

// ConstantLR is a fixed learning rate.
type ConstantLR float64

func (s ConstantLR) LR(int) float64 { return float64(s) }

// StepLR multiplies the rate by Gamma every Every steps, as PyTorch's
// StepLR: Initial·Gamma^⌊step/Every⌋.
type StepLR struct {
	Initial float64
	Gamma   float64
	Every   int
}

func (s StepLR) LR(step int) float64 {
	if s.Every <= 0 {
		return s.Initial
	}
	return s.Initial * math.Pow(s.Gamma, float64(step/s.Every))
}

// CosineLR anneals the rate from Initial to Min over Steps steps along half
// a cosine, as PyTorch's CosineAnnealingLR, and stays at Min after.
type CosineLR struct {
	Initial, Min float64
	Steps        int
}

func (s CosineLR) LR(step int) float64 {
	if s.Steps <= 0 || step >= s.Steps {
		return s.Min
	}
	return s.Min + (s.Initial-s.Min)*(1+math.Cos(math.Pi*float64(step)/float64(s.Steps)))/2
}

// OneCycleLR is PyTorch's OneCycleLR with cosine annealing over Steps
// steps: from Max/DivFactor up to Max over the first PctStart of the steps,
// then down to Max/DivFactor/FinalDivFactor at the last step, where it
// stays. Zero PctStart, DivFactor and FinalDivFactor mean PyTorch's
// defaults 0.3, 25 and 1e4.
type OneCycleLR struct {
	Max                       float64
	Steps                     int
	PctStart                  float64
	DivFactor, FinalDivFactor float64
}

func (s OneCycleLR) LR(step int) float64 {
	pct, div, final := s.PctStart, s.DivFactor, s.FinalDivFactor
	if pct == 0 {
		pct = 0.3
	}
	if div == 0 {
		div = 25
	}
	if final == 0 {
		final = 1e4
	}
	initial := s.Max / div
	minLR := initial / final
	// PyTorch's phase boundaries: the peak is at step pct·Steps − 1, the
	// end at Steps − 1.
	peak, end := pct*float64(s.Steps)-1, float64(s.Steps-1)
	t := float64(min(step, s.Steps-1))
	anneal := func(from, to, frac float64) float64 { return to + (from-to)/2*(math.Cos(math.Pi*frac)+1) }
	switch {
	case t <= peak && peak > 0:
		return anneal(initial, s.Max, t/peak)
	case end <= peak:
		return minLR
	}
	// The annealing phase starts where the warm-up ends, even before step 0
	// when pct·Steps < 1, as in PyTorch; then end > peak always.
	return anneal(s.Max, minLR, (t-peak)/(end-peak))
}

package autodiff

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/runtime"
)

// Config configures a Trainer.
type Config struct {
	// Loss is the forward graph's scalar value to minimise. When a graph
	// holds several models, it should be the sum of their losses, so that
	// each model gets the gradient it would get alone.
	Loss string
	// Groups are the trainable initializers and how each group is updated.
	Groups []Group
	// Outputs are further values of the forward graph to compute on every
	// Step and Eval (per-model losses, logits), read with Trainer.Value.
	Outputs []string
	// Options are the ORT sessions'. Float64 models always get
	// BasicOptimizations: ORT's further rewrites have float32 kernels only.
	Options runtime.Options
}

// Trainer trains the initializers of an ONNX model in ONNX Runtime. One
// session runs forward pass, backward pass and optimiser update together;
// its inputs are the weights, the optimiser state, a batch, the learning
// rates and the step count, and its outputs the loss, the new weights and
// the new state.
//
// Weights and state stay in two sets of runtime Values between steps: one
// step reads one set and writes the other, the next goes back, so that a
// step copies and allocates nothing but the batch it is given.
//
// A Trainer is not safe for concurrent use; Trainers are independent of
// each other, so one per core trains models side by side.
type Trainer struct {
	groups []Group
	dtype  int32 // of the parameters, the learning rates and the step count
	params []string
	state  []string // "<param>/<slot>", in the order of params

	// The two sets of weights and state, by name (params and state); set
	// parity holds the current values.
	swapped map[string]*[2]*runtime.Value
	// Values used by every run: data inputs and fetched outputs, by name.
	fixed    map[string]*runtime.Value
	data     []string
	loss     *runtime.Value
	lr, step *runtime.Value // step is nil when no optimiser needs it
	values   []*runtime.Value

	opts     runtime.Options
	session  *runtime.Session
	bind     [2]*runtime.Binding
	evalNet  []byte // the forward model, weights as inputs, for Eval
	eval     *runtime.Session
	evalBind [2]*runtime.Binding
	parity   int
	steps    int
}

// NewTrainer builds the training step of the forward model m, whose
// inputs have static shapes and whose default opset is Opset, and loads it
// into ORT with the initial weights m holds. The caller must Close the
// Trainer. m is not changed.
func NewTrainer(m *onnx.Model, cfg Config) (*Trainer, error) {
	g := m.Graph()
	params, dtype, err := checkConfig(m, cfg)
	if err != nil {
		return nil, err
	}
	res, err := Gradients(g, cfg.Loss, params)
	if err != nil {
		return nil, err
	}
	for _, o := range cfg.Outputs {
		if _, ok := res.Shapes.Types[o]; !ok {
			return nil, fmt.Errorf("autodiff: output %q is not a value of the graph", o)
		}
	}
	t := &Trainer{groups: slices.Clone(cfg.Groups), dtype: dtype, params: params,
		swapped: map[string]*[2]*runtime.Value{}, fixed: map[string]*runtime.Value{}, opts: cfg.Options}
	if dtype == onnx.Double {
		t.opts.BasicOptimizations = true
	}
	inits := map[string]bool{}
	for _, init := range g.GetInitializer() {
		inits[init.GetName()] = true
	}
	for _, in := range g.GetInput() {
		if !inits[in.GetName()] {
			t.data = append(t.data, in.GetName())
		}
	}

	step := res.Graph
	weightsAsInputs(step, params, res.Shapes)
	up := appendUpdates(res, t.groups, dtype)
	step.Output = []*pb.ValueInfoProto{valueInfo(cfg.Loss, res.Shapes.Types[cfg.Loss])}
	for _, o := range cfg.Outputs {
		step.Output = append(step.Output, valueInfo(o, res.Shapes.Types[o]))
	}
	for i, p := range params {
		step.Output = append(step.Output, valueInfo(up.newParams[i], res.Shapes.Types[p]))
	}
	for i, p := range params {
		for _, s := range up.newState[i] {
			step.Output = append(step.Output, valueInfo(s, res.Shapes.Types[p]))
		}
	}

	fwd := forwardGraph(g, params, res.Shapes, cfg.Loss, cfg.Outputs)
	if t.evalNet, err = marshal(m, fwd); err != nil {
		return nil, err
	}
	net, err := marshal(m, step)
	if err != nil {
		return nil, err
	}
	if err := t.open(net, m, res.Shapes, up, cfg); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// checkConfig returns the parameters in group order and their dtype.
func checkConfig(m *onnx.Model, cfg Config) ([]string, int32, error) {
	if v := defaultOpset(m.Proto); v != Opset {
		return nil, 0, fmt.Errorf("autodiff: model imports opset %d of the default domain, want %d", v, Opset)
	}
	if len(cfg.Groups) == 0 {
		return nil, 0, errors.New("autodiff: no parameter groups to train")
	}
	var params []string
	var dtype int32
	seen := map[string]bool{cfg.Loss: true}
	for i, gr := range cfg.Groups {
		if err := gr.check(i); err != nil {
			return nil, 0, err
		}
		for _, p := range gr.Params {
			init := m.Initializer(p)
			switch {
			case init == nil:
				return nil, 0, fmt.Errorf("autodiff: parameter %q is not an initializer of the model", p)
			case seen[p]:
				return nil, 0, fmt.Errorf("autodiff: parameter %q is listed twice", p)
			case init.GetDataType() != onnx.Float && init.GetDataType() != onnx.Double:
				return nil, 0, fmt.Errorf("autodiff: parameter %q is %s, want FLOAT or DOUBLE", p, onnx.DTypeName(init.GetDataType()))
			case dtype != 0 && init.GetDataType() != dtype:
				return nil, 0, fmt.Errorf("autodiff: parameter %q is %s, others are %s; want one dtype", p,
					onnx.DTypeName(init.GetDataType()), onnx.DTypeName(dtype))
			}
			seen[p], dtype = true, init.GetDataType()
			params = append(params, p)
		}
	}
	for _, o := range cfg.Outputs {
		if seen[o] {
			return nil, 0, fmt.Errorf("autodiff: output %q is the loss, a parameter or listed twice", o)
		}
		seen[o] = true
	}
	return params, dtype, nil
}

func defaultOpset(m *pb.ModelProto) int64 {
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			return o.GetVersion()
		}
	}
	return 0
}

// weightsAsInputs turns the initializers params of g into graph inputs.
func weightsAsInputs(g *pb.GraphProto, params []string, shapes *Shapes) {
	isParam := map[string]bool{}
	for _, p := range params {
		isParam[p] = true
	}
	g.Initializer = slices.DeleteFunc(g.Initializer, func(t *pb.TensorProto) bool { return isParam[t.GetName()] })
	// Models of IR version 3 list their initializers as inputs too.
	g.Input = slices.DeleteFunc(g.Input, func(v *pb.ValueInfoProto) bool { return isParam[v.GetName()] })
	for _, p := range params {
		g.Input = append(g.Input, valueInfo(p, shapes.Types[p]))
	}
}

// forwardGraph is g with params as inputs and outputs loss and outputs. It
// shares g's nodes and other initializers rather than copying them.
func forwardGraph(g *pb.GraphProto, params []string, shapes *Shapes, loss string, outputs []string) *pb.GraphProto {
	f := &pb.GraphProto{Name: g.Name, Node: g.Node, Input: slices.Clone(g.Input),
		Initializer: slices.Clone(g.Initializer), SparseInitializer: g.SparseInitializer}
	weightsAsInputs(f, params, shapes)
	f.Output = []*pb.ValueInfoProto{valueInfo(loss, shapes.Types[loss])}
	for _, o := range outputs {
		f.Output = append(f.Output, valueInfo(o, shapes.Types[o]))
	}
	return f
}

// marshal encodes graph g in a model with m's versions and imports.
func marshal(m *onnx.Model, g *pb.GraphProto) ([]byte, error) {
	mp := &pb.ModelProto{IrVersion: m.Proto.IrVersion, OpsetImport: m.Proto.OpsetImport,
		ProducerName: proto.String("hyperrep autodiff"), Graph: g}
	return (&onnx.Model{Proto: mp}).Marshal()
}

// open creates the training session, the Values and the two Bindings.
func (t *Trainer) open(net []byte, m *onnx.Model, shapes *Shapes, up *updates, cfg Config) error {
	var err error
	if t.session, err = runtime.NewSession(net, t.opts); err != nil {
		return fmt.Errorf("autodiff: training step: %w", err)
	}
	newValue := func(typ Tensor) (*runtime.Value, error) {
		v, err := runtime.NewValue(runtime.DType(typ.DType), typ.Shape)
		if err == nil {
			t.values = append(t.values, v)
		}
		return v, err
	}
	pair := func(name string, typ Tensor) error {
		var p [2]*runtime.Value
		for q := range p {
			if p[q], err = newValue(typ); err != nil {
				return err
			}
		}
		t.swapped[name] = &p
		return nil
	}
	// Graph names of the swapped values' inputs and outputs.
	inputOf, outputOf := map[string]string{}, map[string]string{}
	for i, p := range t.params {
		typ := shapes.Types[p]
		if err := pair(p, typ); err != nil {
			return err
		}
		if err := loadWeights(t.swapped[p][0], m.Initializer(p)); err != nil {
			return err
		}
		inputOf[p], outputOf[p] = p, up.newParams[i]
		for k, slot := range t.slotsOf(i) {
			name := p + "/" + slot
			if err := pair(name, typ); err != nil {
				return err
			}
			t.state = append(t.state, name)
			inputOf[name], outputOf[name] = up.state[i][k], up.newState[i][k]
		}
	}
	for _, name := range append(slices.Clone(t.data), cfg.Outputs...) {
		if t.fixed[name], err = newValue(shapes.Types[name]); err != nil {
			return err
		}
	}
	if t.loss, err = newValue(shapes.Types[cfg.Loss]); err != nil {
		return err
	}
	if t.lr, err = newValue(Tensor{t.dtype, []int64{int64(len(t.groups))}}); err != nil {
		return err
	}
	fixed := map[string]*runtime.Value{up.lr: t.lr, cfg.Loss: t.loss}
	if up.step != "" {
		if t.step, err = newValue(Tensor{t.dtype, nil}); err != nil {
			return err
		}
		fixed[up.step] = t.step
	}
	for name, v := range t.fixed {
		fixed[name] = v
	}
	for q := range t.bind {
		values := map[string]*runtime.Value{}
		for name, pair := range t.swapped {
			values[inputOf[name]], values[outputOf[name]] = pair[q], pair[1-q]
		}
		if t.bind[q], err = bind(t.session, values, fixed); err != nil {
			return err
		}
	}
	return nil
}

// slotsOf names the optimiser state of the i-th parameter.
func (t *Trainer) slotsOf(i int) []string {
	for _, gr := range t.groups {
		if i < len(gr.Params) {
			return gr.Optimizer.slots()
		}
		i -= len(gr.Params)
	}
	return nil
}

// bind binds a session's inputs and outputs to Values by name.
func bind(s *runtime.Session, values ...map[string]*runtime.Value) (*runtime.Binding, error) {
	lookup := func(infos []runtime.Info) ([]*runtime.Value, error) {
		out := make([]*runtime.Value, len(infos))
		for i, info := range infos {
			for _, m := range values {
				if v, ok := m[info.Name]; ok {
					out[i] = v
				}
			}
			if out[i] == nil {
				return nil, fmt.Errorf("autodiff: no value for %q", info.Name)
			}
		}
		return out, nil
	}
	in, err := lookup(s.Inputs())
	if err != nil {
		return nil, err
	}
	out, err := lookup(s.Outputs())
	if err != nil {
		return nil, err
	}
	return s.Bind(in, out)
}

func loadWeights(v *runtime.Value, init *pb.TensorProto) error {
	var err error
	if v.DType() == runtime.Float64 {
		var w []float64
		if w, err = onnx.Float64s(init); err == nil {
			err = v.Set(runtime.NewTensor(v.Shape(), w))
		}
	} else {
		var w []float32
		if w, err = onnx.Float32s(init); err == nil {
			err = v.Set(runtime.NewTensor(v.Shape(), w))
		}
	}
	if err != nil {
		return fmt.Errorf("autodiff: parameter %q: %w", init.GetName(), err)
	}
	return nil
}

// Step runs one training step on a batch, one tensor per data input in the
// order of DataInputs, and returns the loss before the update. Without
// arguments it runs on what the data inputs' Values (see Value) hold, for
// callers that fill them in place. The learning rate of each group is its
// schedule's at Steps, which Step then advances.
func (t *Trainer) Step(batch ...runtime.Tensor) (float64, error) {
	if t.session == nil {
		return 0, errors.New("autodiff: step on a closed trainer")
	}
	if err := t.load(batch); err != nil {
		return 0, err
	}
	for i, gr := range t.groups {
		set(t.lr, i, gr.Schedule.LR(t.steps))
	}
	if t.step != nil {
		set(t.step, 0, float64(t.steps+1))
	}
	if err := t.bind[t.parity].Run(); err != nil {
		return 0, fmt.Errorf("autodiff: step %d: %w", t.steps, err)
	}
	t.parity ^= 1
	t.steps++
	return get(t.loss), nil
}

// Eval runs the forward pass alone on a batch (as Step takes it) with the
// current weights, and returns the loss. The Outputs of the Config are
// computed too.
func (t *Trainer) Eval(batch ...runtime.Tensor) (float64, error) {
	if t.session == nil {
		return 0, errors.New("autodiff: eval on a closed trainer")
	}
	if t.eval == nil {
		if err := t.openEval(); err != nil {
			return 0, err
		}
	}
	if err := t.load(batch); err != nil {
		return 0, err
	}
	if err := t.evalBind[t.parity].Run(); err != nil {
		return 0, fmt.Errorf("autodiff: eval: %w", err)
	}
	return get(t.loss), nil
}

func (t *Trainer) openEval() error {
	s, err := runtime.NewSession(t.evalNet, t.opts)
	if err != nil {
		return fmt.Errorf("autodiff: forward pass: %w", err)
	}
	fixed := map[string]*runtime.Value{s.Outputs()[0].Name: t.loss}
	for name, v := range t.fixed {
		fixed[name] = v
	}
	for q := range t.evalBind {
		weights := map[string]*runtime.Value{}
		for _, p := range t.params {
			weights[p] = t.swapped[p][q]
		}
		if t.evalBind[q], err = bind(s, weights, fixed); err != nil {
			s.Close()
			return err
		}
	}
	t.eval = s
	return nil
}

func (t *Trainer) load(batch []runtime.Tensor) error {
	if len(batch) == 0 {
		return nil
	}
	if len(batch) != len(t.data) {
		return fmt.Errorf("autodiff: got %d batch tensors, the model has %d data inputs %q", len(batch), len(t.data), t.data)
	}
	for i, x := range batch {
		if err := t.fixed[t.data[i]].Set(x); err != nil {
			return fmt.Errorf("autodiff: data input %q: %w", t.data[i], err)
		}
	}
	return nil
}

// set and get move one element of a float Value as float64.
func set(v *runtime.Value, i int, x float64) {
	if v.DType() == runtime.Float64 {
		v.Float64s()[i] = x
	} else {
		v.Float32s()[i] = float32(x)
	}
}

func get(v *runtime.Value) float64 {
	if v.DType() == runtime.Float64 {
		return v.Float64s()[0]
	}
	return float64(v.Float32s()[0])
}

// DataInputs names the model's data inputs, in the order Step takes them.
func (t *Trainer) DataInputs() []string { return slices.Clone(t.data) }

// State names the optimiser state, "<param>/<slot>" with PyTorch's slot
// names (momentum_buffer, exp_avg, exp_avg_sq), in the order of the
// groups' parameters. With the weights and Steps, it is what resuming a run
// needs.
func (t *Trainer) State() []string { return slices.Clone(t.state) }

// Value returns the current Value of a parameter, an optimiser state, a
// data input or an output of the Config, or nil for other names. Its
// memory can be read and written in place between steps. A parameter's or
// state's Value changes with every Step, which swaps two sets: get it anew.
func (t *Trainer) Value(name string) *runtime.Value {
	if p, ok := t.swapped[name]; ok {
		return p[t.parity]
	}
	return t.fixed[name]
}

// Steps is the number of steps taken: the step count of bias correction
// less one, and what the schedules are evaluated at.
func (t *Trainer) Steps() int { return t.steps }

// SetSteps sets the number of steps taken, as when resuming a run.
func (t *Trainer) SetSteps(n int) { t.steps = n }

// WriteWeights puts the current weights into the initializers of m (the
// model the Trainer was built from, or a copy), each keeping its dtype and
// encoding.
func (t *Trainer) WriteWeights(m *onnx.Model) error {
	for _, p := range t.params {
		init := m.Initializer(p)
		if init == nil {
			return fmt.Errorf("autodiff: writing weights: the model has no initializer %q", p)
		}
		v := t.Value(p)
		var err error
		if v.DType() == runtime.Float64 {
			err = onnx.SetFloat64s(init, v.Float64s())
		} else {
			err = onnx.SetFloat32s(init, v.Float32s())
		}
		if err != nil {
			return fmt.Errorf("autodiff: writing weights: %w", err)
		}
	}
	return nil
}

// Close releases the sessions and the Values; views of them taken before
// stay valid Go memory. Calling it again does nothing.
func (t *Trainer) Close() error {
	var err error
	for _, s := range []*runtime.Session{t.eval, t.session} {
		if s != nil {
			err = errors.Join(err, s.Close())
		}
	}
	t.eval, t.session = nil, nil
	for _, v := range t.values {
		v.Destroy()
	}
	return err
}

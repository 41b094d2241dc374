package zoo

import (
	"fmt"

	"github.com/hyperrep/hyperrep/runtime"
)

// stepper runs a population's training step over and over. The flat
// weights and the optimiser state live in ORT-visible Values, two sets
// bound to two Bindings: one step reads set k and writes set 1-k, the next
// the other way round, so nothing is copied between steps. The per-step
// inputs (images, labels, masks, ...) and the hyperparameters are one set
// of Values that the caller fills before each step.
type stepper struct {
	spec    popSpec
	sess    *runtime.Session
	binds   [2]*runtime.Binding
	cur     int                       // the set holding the current weights
	weights [2]*runtime.Value         // [P, NumParams]
	state   [2][]*runtime.Value       // per state tensor, [P, NumParams]
	in      map[string]*runtime.Value // the other inputs, by name
	loss    *runtime.Value            // [P]
	correct *runtime.Value            // [P]
	values  []*runtime.Value          // every Value, to destroy
}

// newStepper builds and loads the population's training graph.
func newStepper(spec popSpec, opts runtime.Options) (*stepper, error) {
	g, err := spec.trainGraph()
	if err != nil {
		return nil, err
	}
	return loadStepper(spec, g, opts)
}

// loadStepper loads a training graph of spec.
func loadStepper(spec popSpec, g *popGraph, opts runtime.Options) (*stepper, error) {
	sess, err := g.load(opts, "training")
	if err != nil {
		return nil, err
	}
	s := &stepper{spec: spec, sess: sess, in: map[string]*runtime.Value{}}
	if err := s.bind(g); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *stepper) newValue(v io) (*runtime.Value, error) {
	val, err := runtime.NewValue(runtime.DType(v.dtype), v.shape)
	if err != nil {
		return nil, fmt.Errorf("zoo: %s: %w", v.name, err)
	}
	s.values = append(s.values, val)
	return val, nil
}

// bind makes the Values and the two Bindings.
func (s *stepper) bind(g *popGraph) error {
	carried := map[string]int{"weights": 0} // input -> index among the carried values
	for k, sn := range stateNames(s.spec.opt) {
		carried[sn] = k + 1
	}
	var sets [2][]*runtime.Value // weights, then state
	for k := range 2 {
		for _, v := range g.inputs {
			if _, ok := carried[v.name]; !ok {
				continue
			}
			val, err := s.newValue(v)
			if err != nil {
				return err
			}
			sets[k] = append(sets[k], val)
		}
		s.weights[k], s.state[k] = sets[k][0], sets[k][1:]
	}
	for _, v := range g.inputs {
		if _, ok := carried[v.name]; ok {
			continue
		}
		val, err := s.newValue(v)
		if err != nil {
			return err
		}
		s.in[v.name] = val
	}
	var err error
	if s.loss, err = s.newValue(g.outputs[0]); err != nil {
		return err
	}
	if s.correct, err = s.newValue(g.outputs[1]); err != nil {
		return err
	}
	for k := range 2 {
		var ins []*runtime.Value
		for _, v := range g.inputs {
			if c, ok := carried[v.name]; ok {
				ins = append(ins, sets[k][c])
			} else {
				ins = append(ins, s.in[v.name])
			}
		}
		outs := append([]*runtime.Value{s.loss, s.correct}, sets[1-k]...)
		if s.binds[k], err = s.sess.Bind(ins, outs); err != nil {
			return fmt.Errorf("zoo: binding the training graph: %w", err)
		}
	}
	return nil
}

// input returns the Value of a per-step or per-run input.
func (s *stepper) input(name string) *runtime.Value { return s.in[name] }

// step runs one training step on the inputs as filled.
func (s *stepper) step() error {
	if err := s.binds[s.cur].Run(); err != nil {
		return err
	}
	s.cur = 1 - s.cur
	return nil
}

// currentWeights returns the Value holding the current weights.
func (s *stepper) currentWeights() *runtime.Value { return s.weights[s.cur] }

// currentState returns the Values holding the current optimiser state, in
// the order of stateNames.
func (s *stepper) currentState() []*runtime.Value { return s.state[s.cur] }

// Close releases the session and every Value.
func (s *stepper) Close() error {
	var err error
	if s.sess != nil {
		err = s.sess.Close()
		s.sess = nil
	}
	for _, v := range s.values {
		v.Destroy()
	}
	s.values = nil
	return err
}

package runtime

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"
)

// Info describes one input or output of a model.
type Info struct {
	Name  string
	DType DType
	// Shape is the declared shape, with -1 for dimensions the model leaves
	// open (symbolic or unknown). A model that declares no shape at all
	// reports an empty Shape, as a scalar does.
	Shape []int64
}

func (i Info) String() string {
	return fmt.Sprintf("%q %s%s", i.Name, i.DType, shapeString(i.Shape))
}

// Session is a model loaded into ORT, ready to run.
type Session struct {
	s       *ort.DynamicAdvancedSession
	inputs  []Info
	outputs []Info
	device  Device

	// Outputs declared as scalars are preallocated, since onnxruntime_go
	// cannot allocate rank-0 values itself. Those declared without a shape
	// are of a rank nobody knows until the model runs (see declared.go):
	// each is first taken to be a tensor, and taken to be a scalar from the
	// first run that shows it is one.
	scalar  []bool
	unknown []bool
	learnt  []atomic.Bool

	bindingSet
}

// NewSession loads an ONNX model (the bytes of a .onnx file) with the given
// options. The model's tensors must all be held in model: ORT cannot resolve
// external data without a file path. The caller must Close the session.
func NewSession(model []byte, opts Options) (*Session, error) {
	return newSession(model, opts, 1)
}

func newSession(model []byte, opts Options, defaultThreads int) (*Session, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	sig, err := describe(model)
	if err != nil {
		return nil, err
	}
	so, err := opts.sessionOptions(defaultThreads)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, names(sig.inputs), names(sig.outputs), so)
	if err != nil {
		if opts.Device.CUDA {
			return nil, cudaError(opts.Device, err)
		}
		return nil, fmt.Errorf("runtime: creating session: %s", oneLine(err))
	}
	return &Session{
		s: s, inputs: sig.inputs, outputs: sig.outputs, device: opts.Device,
		scalar: sig.scalar, unknown: sig.unknown, learnt: make([]atomic.Bool, len(sig.outputs)),
	}, nil
}

func names(infos []Info) []string {
	out := make([]string, len(infos))
	for i, info := range infos {
		out[i] = info.Name
	}
	return out
}

// Inputs describes the model's inputs, in the order Run takes them.
func (s *Session) Inputs() []Info { return slices.Clone(s.inputs) }

// Outputs describes the model's outputs, in the order Run returns them.
func (s *Session) Outputs() []Info { return slices.Clone(s.outputs) }

// Device reports where the session runs.
func (s *Session) Device() Device { return s.device }

// Run runs the model once. It takes one tensor per input, in the order of
// Inputs, and returns every output, in the order of Outputs, as tensors in
// fresh Go memory; a rank-0 output has an empty Shape and one element.
// Inputs are passed to ORT without copying.
func (s *Session) Run(inputs ...Tensor) ([]Tensor, error) {
	if s.s == nil {
		return nil, errors.New("runtime: run on a closed session")
	}
	in, err := s.inputValues(inputs)
	defer destroy(in)
	if err != nil {
		return nil, err
	}
	out, err := s.run(in, nil, nil)
	defer destroy(out)
	if err != nil {
		return nil, fmt.Errorf("runtime: run: %s", oneLine(err))
	}
	res := make([]Tensor, len(out))
	for i, v := range out {
		if res[i], err = tensorOf(v); err != nil {
			return nil, fmt.Errorf("runtime: run: output %q: %v", s.outputs[i].Name, err)
		}
	}
	return res, nil
}

// run runs the model once with first, when not nil, as the preallocated
// first output, and returns the outputs; the caller destroys them, first
// included if it was nil. An output of unknown rank that turns out to be a scalar fails
// the run in onnxruntime_go; it is then learnt to be one and the run
// repeated, at most once per such output over the session's life.
func (s *Session) run(in []ort.Value, first ort.Value, ro *ort.RunOptions) ([]ort.Value, error) {
	for {
		out, err := s.outputValues(first)
		if err == nil {
			err = s.s.RunWithOptions(in, out, ro)
		}
		if err == nil || !errors.Is(err, ort.ZeroShapeLengthError) {
			return out, err
		}
		// onnxruntime_go converts the outputs it allocated in order and
		// stops at the failing one, leaving it and those after it nil (and
		// the ORT values of the later ones unreleased: a small leak, once).
		bad := slices.IndexFunc(out, isNil)
		if bad < 0 || !s.unknown[bad] || s.learnt[bad].Load() {
			return out, err
		}
		s.learnt[bad].Store(true)
		if first != nil {
			out[0] = nil
		}
		destroy(out)
	}
}

// outputValues returns the outputs to pass to ORT: first (if not nil) in
// place of the first, preallocated scalars where the model has them, and nil
// in the places ORT is to allocate.
func (s *Session) outputValues(first ort.Value) ([]ort.Value, error) {
	out := make([]ort.Value, len(s.outputs))
	for i := range out {
		if i == 0 && first != nil {
			out[0] = first
			continue
		}
		v, err := newOutput(s.outputs[i], s.scalar[i] || s.learnt[i].Load())
		if err != nil {
			return out, fmt.Errorf("output %q: %v", s.outputs[i].Name, err)
		}
		out[i] = v
	}
	return out, nil
}

// inputValues checks the inputs against the model, which gives clearer
// messages than ORT's, and wraps them as ORT values. On error the values
// made so far are in the returned slice for the caller to destroy.
func (s *Session) inputValues(inputs []Tensor) ([]ort.Value, error) {
	if len(inputs) != len(s.inputs) {
		return nil, fmt.Errorf("runtime: got %d inputs, model has %d: %v", len(inputs), len(s.inputs), s.inputs)
	}
	vals := make([]ort.Value, len(inputs))
	for i, t := range inputs {
		info := s.inputs[i]
		if err := t.check(); err != nil {
			return vals, fmt.Errorf("runtime: input %q: %v", info.Name, err)
		}
		if t.DType != info.DType {
			return vals, fmt.Errorf("runtime: input %q: got %s, model wants %s", info.Name, t.DType, info.DType)
		}
		if !fits(t.Shape, info.Shape) {
			return vals, fmt.Errorf("runtime: input %q: got shape %v, model wants %s", info.Name, t.Shape, shapeString(info.Shape))
		}
		v, err := t.value()
		if err != nil {
			return vals, fmt.Errorf("runtime: input %q: %s", info.Name, oneLine(err))
		}
		vals[i] = v
	}
	return vals, nil
}

// fits reports whether a tensor of shape got can feed an input declared as
// want. A model without a declared shape (empty want) is left to ORT.
func fits(got, want []int64) bool {
	if len(want) == 0 {
		return true
	}
	if len(got) != len(want) {
		return false
	}
	for i, d := range want {
		if d >= 0 && got[i] != d {
			return false
		}
	}
	return true
}

// destroy releases values, skipping typed nils: when converting an
// ORT-allocated output fails, onnxruntime_go stores a nil pointer of the
// failed type in the outputs slice.
func destroy(vals []ort.Value) {
	for _, v := range vals {
		if !isNil(v) {
			v.Destroy()
		}
	}
}

func isNil(v ort.Value) bool { return v == nil || reflect.ValueOf(v).IsNil() }

// Close releases the session and its Bindings. It must not be called while
// a Run is in progress; calling it again does nothing.
func (s *Session) Close() error {
	if s.s == nil {
		return nil
	}
	s.closeAll()
	err := s.s.Destroy()
	s.s = nil
	if err != nil {
		return fmt.Errorf("runtime: closing session: %w", err)
	}
	return nil
}

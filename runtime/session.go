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

	// Outputs that ORT reports with an empty shape are either declared
	// scalars, or of a rank nobody knows until the model runs (see
	// declared.go). The unknown ones are first taken to be tensors, and
	// taken to be scalars from the first run that shows they are.
	scalar         []bool
	unknown        []bool
	unknownScalars atomic.Bool
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
	inputs, outputs, err := describe(model)
	if err != nil {
		return nil, err
	}
	so, err := opts.sessionOptions(defaultThreads)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, names(inputs), names(outputs), so)
	if err != nil {
		if opts.Device.CUDA {
			return nil, cudaError(opts.Device, err)
		}
		return nil, fmt.Errorf("runtime: creating session: %s", oneLine(err))
	}
	sess := &Session{s: s, inputs: inputs, outputs: outputs, device: opts.Device}
	sess.scalar = make([]bool, len(outputs))
	sess.unknown = make([]bool, len(outputs))
	declared := declaredScalars(model)
	for i, o := range outputs {
		if len(o.Shape) == 0 {
			sess.scalar[i] = declared[o.Name]
			sess.unknown[i] = !declared[o.Name]
		}
	}
	return sess, nil
}

// describe lists a model's inputs and outputs. onnxruntime_go learns them
// by opening a throwaway CPU session, so a model is parsed twice.
func describe(model []byte) (inputs, outputs []Info, err error) {
	if len(model) == 0 {
		return nil, nil, errors.New("runtime: empty model")
	}
	in, out, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		return nil, nil, fmt.Errorf("runtime: loading model: %s", oneLine(err))
	}
	if inputs, err = infos(in, "input"); err != nil {
		return nil, nil, err
	}
	if outputs, err = infos(out, "output"); err != nil {
		return nil, nil, err
	}
	// onnxruntime_go indexes the first input and output unconditionally
	// when running, and panics if there is none.
	if len(inputs) == 0 || len(outputs) == 0 {
		return nil, nil, fmt.Errorf("runtime: model has %d inputs and %d outputs; running it needs at least one of each", len(inputs), len(outputs))
	}
	return inputs, outputs, nil
}

func infos(ios []ort.InputOutputInfo, kind string) ([]Info, error) {
	out := make([]Info, len(ios))
	for i, io := range ios {
		if io.OrtValueType != ort.ONNXTypeTensor {
			return nil, fmt.Errorf("runtime: %s %q is a %s; only dense tensors are supported", kind, io.Name, io.OrtValueType)
		}
		shape := []int64(io.Dimensions.Clone())
		for j, d := range shape {
			if d < 0 {
				shape[j] = -1
			}
		}
		out[i] = Info{Name: io.Name, DType: DType(io.DataType), Shape: shape}
	}
	return out, nil
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
	guess := s.unknownScalars.Load()
	res, err := s.runValues(in, guess)
	// onnxruntime_go fails this way on an ORT-allocated scalar.
	if errors.Is(err, ort.ZeroShapeLengthError) && !guess && slices.Contains(s.unknown, true) {
		if res, err = s.runValues(in, true); err == nil {
			s.unknownScalars.Store(true)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("runtime: run: %s", oneLine(err))
	}
	return res, nil
}

// runValues runs the model once and converts its outputs. Outputs of
// unknown rank are preallocated as scalars if unknownScalars is set.
func (s *Session) runValues(in []ort.Value, unknownScalars bool) ([]Tensor, error) {
	out, err := s.outputValues(0, unknownScalars)
	defer destroy(out)
	if err != nil {
		return nil, err
	}
	if err := s.s.Run(in, out); err != nil {
		return nil, err
	}
	res := make([]Tensor, len(out))
	for i, v := range out {
		if res[i], err = tensorOf(v); err != nil {
			return nil, fmt.Errorf("output %q: %v", s.outputs[i].Name, err)
		}
	}
	return res, nil
}

// outputValues returns the preallocated outputs from index first on, with
// nil in the places ORT is to allocate.
func (s *Session) outputValues(first int, unknownScalars bool) ([]ort.Value, error) {
	out := make([]ort.Value, len(s.outputs))
	for i := first; i < len(out); i++ {
		v, err := newOutput(s.outputs[i], s.scalar[i] || unknownScalars && s.unknown[i])
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
		if v != nil && !reflect.ValueOf(v).IsNil() {
			v.Destroy()
		}
	}
}

// Close releases the session. It must not be called while a Run is in
// progress; calling it again does nothing.
func (s *Session) Close() error {
	if s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	if err != nil {
		return fmt.Errorf("runtime: closing session: %w", err)
	}
	return nil
}

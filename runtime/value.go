package runtime

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// Value is a tensor in Go memory that ORT reads and writes in place. Where a
// Tensor is wrapped for ORT anew on every Run, a Value is wrapped once, so
// that state kept between runs (the weights and optimiser state of a
// training loop) moves from one run's outputs to the next run's inputs with
// no copy and no allocation: swap the Values, not their contents.
//
// Its memory is viewed, not copied, by Float32s, Float64s, Int64s and
// Tensor; writes through a view are what the next run reads. A Value must
// not be written, or read while it is an output, during a run that uses it.
type Value struct {
	dtype DType
	shape []int64
	data  any // the typed slice ORT's value points into
	v     ort.Value
}

// NewValue returns a zero-filled Value of a numeric dtype (Float16 and
// BFloat16 hold their bits as uint16 and cannot be rank 0). The caller
// must Destroy it.
func NewValue(dtype DType, shape []int64) (*Value, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	n := numElements(shape)
	if n < 0 {
		return nil, fmt.Errorf("runtime: new %s value: invalid shape %v", dtype, shape)
	}
	var v *Value
	var err error
	switch dtype {
	case Float32:
		v, err = newTypedValue[float32](shape, n)
	case Float64:
		v, err = newTypedValue[float64](shape, n)
	case Int8:
		v, err = newTypedValue[int8](shape, n)
	case Uint8:
		v, err = newTypedValue[uint8](shape, n)
	case Int16:
		v, err = newTypedValue[int16](shape, n)
	case Uint16:
		v, err = newTypedValue[uint16](shape, n)
	case Int32:
		v, err = newTypedValue[int32](shape, n)
	case Uint32:
		v, err = newTypedValue[uint32](shape, n)
	case Int64:
		v, err = newTypedValue[int64](shape, n)
	case Uint64:
		v, err = newTypedValue[uint64](shape, n)
	case Bool:
		v, err = newTypedValue[bool](shape, n)
	case Float16, BFloat16:
		v, err = newHalfTensorValue(dtype, shape, n)
	default:
		return nil, fmt.Errorf("runtime: new value: dtype %s is not supported; want a numeric dtype", dtype)
	}
	if err != nil {
		return nil, fmt.Errorf("runtime: new %s%v value: %s", dtype, shape, oneLine(err))
	}
	v.dtype = dtype
	return v, nil
}

func newTypedValue[T ort.TensorData](shape []int64, n int) (*Value, error) {
	if len(shape) == 0 {
		s, err := ort.NewEmptyScalar[T]()
		if err != nil {
			return nil, err
		}
		data, err := scalarData(s)
		if err != nil {
			s.Destroy()
			return nil, err
		}
		return &Value{shape: []int64{}, data: data, v: s}, nil
	}
	data := make([]T, n)
	t, err := ort.NewTensor(ort.Shape(slices.Clone(shape)), data)
	if err != nil {
		return nil, err
	}
	return &Value{shape: slices.Clone(shape), data: data, v: t}, nil
}

// scalarData returns the Go memory behind an ort.Scalar. onnxruntime_go
// keeps it in an unexported field and hands it out only by copy (its Set
// even replaces the memory ORT was given), yet ORT has no other way to make
// a rank-0 tensor over Go memory. Reflection checks the field is what this
// code expects, so that another onnxruntime_go fails here, not in ORT.
func scalarData[T ort.TensorData](s *ort.Scalar[T]) ([]T, error) {
	f := reflect.ValueOf(s).Elem().FieldByName("data")
	if f.Kind() != reflect.Slice || f.Type().Elem() != reflect.TypeFor[T]() || f.Len() != 1 {
		return nil, errors.New("rank-0 values are not supported with this version of onnxruntime_go")
	}
	return unsafe.Slice((*T)(f.UnsafePointer()), 1), nil
}

func newHalfTensorValue(dtype DType, shape []int64, n int) (*Value, error) {
	if n == 0 {
		return nil, fmt.Errorf("empty or rank-0 %s values are not supported", dtype)
	}
	data := make([]uint16, n)
	t, err := ort.NewCustomDataTensor(ort.Shape(slices.Clone(shape)), halfBytes(data), ort.TensorElementDataType(dtype))
	if err != nil {
		return nil, err
	}
	return &Value{shape: slices.Clone(shape), data: data, v: t}, nil
}

// DType is the element type.
func (v *Value) DType() DType { return v.dtype }

// Shape is the shape; empty for a scalar.
func (v *Value) Shape() []int64 { return slices.Clone(v.shape) }

// Tensor views the Value as a Tensor sharing its memory.
func (v *Value) Tensor() Tensor { return Tensor{DType: v.dtype, Shape: v.Shape(), Data: v.data} }

// Float32s views a Float32 Value's memory. It panics for other dtypes.
func (v *Value) Float32s() []float32 { return view[float32](v) }

// Float64s views a Float64 Value's memory. It panics for other dtypes.
func (v *Value) Float64s() []float64 { return view[float64](v) }

// Int64s views an Int64 Value's memory. It panics for other dtypes.
func (v *Value) Int64s() []int64 { return view[int64](v) }

func view[T Element](v *Value) []T {
	d, ok := v.data.([]T)
	if !ok {
		var want []T
		panic(fmt.Sprintf("runtime: viewing a %s value as %T", v.dtype, want))
	}
	return d
}

// Set copies t into v; their dtypes and shapes must be equal.
func (v *Value) Set(t Tensor) error {
	if err := t.check(); err != nil {
		return fmt.Errorf("runtime: set %s%v value: %v", v.dtype, v.shape, err)
	}
	if t.DType != v.dtype || !slices.Equal(t.Shape, v.shape) {
		return fmt.Errorf("runtime: set %s%v value: got a %s%v tensor", v.dtype, v.shape, t.DType, t.Shape)
	}
	reflect.Copy(reflect.ValueOf(v.data), reflect.ValueOf(t.Data))
	return nil
}

// Destroy releases ORT's side of the Value; views taken before stay valid
// Go memory. Calling it again does nothing.
func (v *Value) Destroy() {
	if v.v != nil {
		v.v.Destroy()
		v.v = nil
	}
}

// check reports a Value that cannot stand for the model's input or output
// described by info.
func (v *Value) check(info Info, kind string) error {
	switch {
	case v == nil || v.v == nil:
		return fmt.Errorf("runtime: %s %q: value is nil or destroyed", kind, info.Name)
	case v.dtype != info.DType:
		return fmt.Errorf("runtime: %s %q: got a %s value, model wants %s", kind, info.Name, v.dtype, info.DType)
	case !fits(v.shape, info.Shape):
		return fmt.Errorf("runtime: %s %q: got a value of shape %v, model wants %s", kind, info.Name, v.shape, shapeString(info.Shape))
	}
	return nil
}

// RunValues runs the model once, reading inputs and writing into the
// preallocated outputs, one Value per input and output in the order of
// Inputs and Outputs. Each output's shape must be the one the model
// computes. For runs repeated over the same Values, Bind avoids even the
// few small allocations RunValues makes.
func (s *Session) RunValues(inputs, outputs []*Value) error {
	in, out, err := s.values(inputs, outputs)
	if err != nil {
		return err
	}
	if err := s.s.Run(in, out); err != nil {
		return fmt.Errorf("runtime: run: %s", oneLine(err))
	}
	return nil
}

// values checks Values against the model and returns their ORT values.
func (s *Session) values(inputs, outputs []*Value) (in, out []ort.Value, err error) {
	if s.s == nil {
		return nil, nil, errors.New("runtime: run on a closed session")
	}
	if len(inputs) != len(s.inputs) || len(outputs) != len(s.outputs) {
		return nil, nil, fmt.Errorf("runtime: got %d input and %d output values, model has %d inputs and %d outputs",
			len(inputs), len(outputs), len(s.inputs), len(s.outputs))
	}
	in = make([]ort.Value, len(inputs))
	for i, v := range inputs {
		if err := v.check(s.inputs[i], "input"); err != nil {
			return nil, nil, err
		}
		in[i] = v.v
	}
	out = make([]ort.Value, len(outputs))
	for i, v := range outputs {
		if err := v.check(s.outputs[i], "output"); err != nil {
			return nil, nil, err
		}
		if s.scalar[i] && len(v.shape) != 0 {
			return nil, nil, fmt.Errorf("runtime: output %q: got a value of shape %v, model declares a scalar", s.outputs[i].Name, v.shape)
		}
		out[i] = v.v
	}
	return in, out, nil
}

// Binding is a session with its inputs and outputs bound to Values once,
// so that each Run allocates no Go memory at all. A training loop keeps two
// Bindings whose weight Values are swapped (one's outputs are the other's
// inputs) and alternates between them.
//
// A Binding must not Run concurrently with itself; Bindings of one session
// may. Closing the session closes its Bindings.
type Binding struct {
	s       *Session
	b       *ort.IoBinding
	inputs  []*Value
	outputs []*Value
}

// Bind binds Values to the model's inputs and outputs, as RunValues takes
// them. The caller must Close the Binding, or the session, which closes it.
func (s *Session) Bind(inputs, outputs []*Value) (*Binding, error) {
	_, out, err := s.values(inputs, outputs)
	if err != nil {
		return nil, err
	}
	b, err := s.s.CreateIoBinding()
	if err != nil {
		return nil, fmt.Errorf("runtime: bind: %s", oneLine(err))
	}
	bind := &Binding{s: s, b: b, inputs: slices.Clone(inputs), outputs: slices.Clone(outputs)}
	for i, v := range out {
		if err := b.BindOutput(s.outputs[i].Name, v); err != nil {
			b.Destroy()
			return nil, fmt.Errorf("runtime: bind output %q: %s", s.outputs[i].Name, oneLine(err))
		}
	}
	if err := bind.bindInputs(); err != nil {
		b.Destroy()
		return nil, err
	}
	s.bmu.Lock()
	defer s.bmu.Unlock()
	if s.bindings == nil {
		s.bindings = map[*Binding]bool{}
	}
	s.bindings[bind] = true
	return bind, nil
}

// bindInputs binds the input Values. ORT copies an input to the device
// when it is bound, so on CUDA this is done before every run, lest Go
// memory written since go unseen.
func (b *Binding) bindInputs() error {
	for i, v := range b.inputs {
		if v.v == nil {
			return fmt.Errorf("runtime: input %q: value is destroyed", b.s.inputs[i].Name)
		}
		if err := b.b.BindInput(b.s.inputs[i].Name, v.v); err != nil {
			return fmt.Errorf("runtime: bind input %q: %s", b.s.inputs[i].Name, oneLine(err))
		}
	}
	return nil
}

// Run runs the model on the bound Values.
func (b *Binding) Run() error {
	if b.b == nil {
		return errors.New("runtime: run on a closed binding")
	}
	if b.s.device.CUDA {
		if err := b.bindInputs(); err != nil {
			return err
		}
	}
	if err := b.s.s.RunWithBinding(b.b); err != nil {
		return fmt.Errorf("runtime: run: %s", oneLine(err))
	}
	return nil
}

// Close releases the Binding; its Values stay the caller's. Calling it
// again does nothing.
func (b *Binding) Close() error {
	b.s.bmu.Lock()
	defer b.s.bmu.Unlock()
	b.close()
	return nil
}

func (b *Binding) close() {
	if b.b != nil {
		b.b.Destroy()
		b.b = nil
		delete(b.s.bindings, b)
	}
}

// bindingSet is embedded in Session: the Bindings to release before it.
type bindingSet struct {
	bmu      sync.Mutex
	bindings map[*Binding]bool
}

func (s *bindingSet) closeAll() {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	for b := range s.bindings {
		b.close()
	}
}

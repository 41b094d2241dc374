package runtime

import (
	"fmt"
	"reflect"
	"strings"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// DType is a tensor element type. The values are ONNX's
// TensorProto.DataType numbers, which ORT uses too, so a DType converts to
// and from an ONNX file's data_type field unchanged.
type DType int32

// Element types, numbered as in onnx.proto.
const (
	Undefined  DType = 0
	Float32    DType = 1
	Uint8      DType = 2
	Int8       DType = 3
	Uint16     DType = 4
	Int16      DType = 5
	Int32      DType = 6
	Int64      DType = 7
	String     DType = 8
	Bool       DType = 9
	Float16    DType = 10 // Data holds the IEEE half-precision bits as []uint16
	Float64    DType = 11
	Uint32     DType = 12
	Uint64     DType = 13
	Complex64  DType = 14 // not supported by Run
	Complex128 DType = 15 // not supported by Run
	BFloat16   DType = 16 // Data holds the bfloat16 bits as []uint16
)

var dtypeNames = map[DType]string{
	Undefined: "undefined", Float32: "float32", Uint8: "uint8", Int8: "int8",
	Uint16: "uint16", Int16: "int16", Int32: "int32", Int64: "int64",
	String: "string", Bool: "bool", Float16: "float16", Float64: "float64",
	Uint32: "uint32", Uint64: "uint64", Complex64: "complex64",
	Complex128: "complex128", BFloat16: "bfloat16",
}

func (d DType) String() string {
	if s, ok := dtypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// Tensor is a dense tensor held in Go memory. Data is a slice of the Go type
// that matches DType ([]float32 for Float32, []bool for Bool, []string for
// String, []uint16 for Float16 and BFloat16) with one element per entry of
// Shape, in row-major order. A scalar has an empty Shape and one element.
type Tensor struct {
	DType DType
	Shape []int64
	Data  any
}

// Element lists the Go types a Tensor can hold.
type Element interface {
	float32 | float64 | int8 | uint8 | int16 | uint16 | int32 | uint32 |
		int64 | uint64 | bool | string
}

// NewTensor returns a tensor of the given shape backed by data (not a copy),
// with the DType that matches T. For Float16 or BFloat16, set DType on the
// result of NewTensor[uint16].
func NewTensor[T Element](shape []int64, data []T) Tensor {
	return Tensor{DType: dtypeOf(data), Shape: shape, Data: data}
}

func dtypeOf(data any) DType {
	switch data.(type) {
	case []float32:
		return Float32
	case []float64:
		return Float64
	case []int8:
		return Int8
	case []uint8:
		return Uint8
	case []int16:
		return Int16
	case []uint16:
		return Uint16
	case []int32:
		return Int32
	case []uint32:
		return Uint32
	case []int64:
		return Int64
	case []uint64:
		return Uint64
	case []bool:
		return Bool
	case []string:
		return String
	}
	return Undefined
}

// Len returns the number of elements the shape calls for, or -1 when a
// dimension is negative or the product overflows.
func (t Tensor) Len() int { return numElements(t.Shape) }

func numElements(shape []int64) int {
	n := int64(1)
	for _, d := range shape {
		if d < 0 || (d > 0 && n > (1<<62)/d) {
			return -1
		}
		n *= d
	}
	return int(n)
}

// check reports a Tensor whose parts disagree.
func (t Tensor) check() error {
	want := t.DType
	if want == Float16 || want == BFloat16 {
		want = Uint16
	}
	if holds := dtypeOf(t.Data); holds == Undefined || holds != want {
		return fmt.Errorf("dtype %s cannot hold data of type %T", t.DType, t.Data)
	}
	n := t.Len()
	if n < 0 {
		return fmt.Errorf("invalid shape %v", t.Shape)
	}
	if got := reflect.ValueOf(t.Data).Len(); got != n {
		return fmt.Errorf("shape %v needs %d elements, data has %d", t.Shape, n, got)
	}
	return nil
}

// value makes an ORT value that shares t's memory (strings excepted, which
// ORT copies). The caller destroys it.
func (t Tensor) value() (ort.Value, error) {
	s := ort.Shape(t.Shape)
	switch d := t.Data.(type) {
	case []float32:
		return newValue(s, d)
	case []float64:
		return newValue(s, d)
	case []int8:
		return newValue(s, d)
	case []uint8:
		return newValue(s, d)
	case []int16:
		return newValue(s, d)
	case []uint16:
		if t.DType == Uint16 {
			return newValue(s, d)
		}
		return newHalfValue(s, d, t.DType)
	case []int32:
		return newValue(s, d)
	case []uint32:
		return newValue(s, d)
	case []int64:
		return newValue(s, d)
	case []uint64:
		return newValue(s, d)
	case []bool:
		return newValue(s, d)
	case []string:
		return newStringValue(s, d)
	}
	return nil, fmt.Errorf("unsupported data type %T", t.Data)
}

// newValue exists because ort.NewTensor rejects rank 0: ORT's scalars are a
// separate type in onnxruntime_go.
func newValue[T ort.TensorData](s ort.Shape, data []T) (ort.Value, error) {
	if len(s) == 0 {
		return ort.NewScalar(data[0])
	}
	return ort.NewTensor(s, data)
}

// newHalfValue passes 16-bit floats as raw bytes, since Go has no float16
// type for onnxruntime_go's generic tensors.
func newHalfValue(s ort.Shape, data []uint16, dt DType) (ort.Value, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("empty %s tensors are not supported", dt)
	}
	return ort.NewCustomDataTensor(s, halfBytes(data), ort.TensorElementDataType(dt))
}

func halfBytes(data []uint16) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(data))), 2*len(data))
}

func newStringValue(s ort.Shape, data []string) (ort.Value, error) {
	v, err := ort.NewStringTensor(s)
	if err != nil {
		return nil, err
	}
	if err := v.SetContents(data); err != nil {
		v.Destroy()
		return nil, err
	}
	return v, nil
}

// tensorOf copies an ORT value into a Tensor. For the ORT-allocated outputs
// onnxruntime_go already copied the data into a Go slice, which the Tensor
// keeps after the value is destroyed.
func tensorOf(v ort.Value) (Tensor, error) {
	switch t := v.(type) {
	case *ort.Tensor[float32]:
		return fromTensor(t), nil
	case *ort.Tensor[float64]:
		return fromTensor(t), nil
	case *ort.Tensor[int8]:
		return fromTensor(t), nil
	case *ort.Tensor[uint8]:
		return fromTensor(t), nil
	case *ort.Tensor[int16]:
		return fromTensor(t), nil
	case *ort.Tensor[uint16]:
		return fromTensor(t), nil
	case *ort.Tensor[int32]:
		return fromTensor(t), nil
	case *ort.Tensor[uint32]:
		return fromTensor(t), nil
	case *ort.Tensor[int64]:
		return fromTensor(t), nil
	case *ort.Tensor[uint64]:
		return fromTensor(t), nil
	case *ort.Tensor[bool]:
		return fromTensor(t), nil
	case *ort.StringTensor:
		s, err := t.GetContents()
		return Tensor{DType: String, Shape: t.GetShape(), Data: s}, err
	}
	return tensorOfRest(v)
}

func fromTensor[T ort.TensorData](t *ort.Tensor[T]) Tensor {
	data := t.GetData()
	return Tensor{DType: dtypeOf(data), Shape: t.GetShape(), Data: data}
}

func tensorOfRest(v ort.Value) (Tensor, error) {
	switch t := v.(type) {
	case *ort.Scalar[float32]:
		return fromScalar(t), nil
	case *ort.Scalar[float64]:
		return fromScalar(t), nil
	case *ort.Scalar[int8]:
		return fromScalar(t), nil
	case *ort.Scalar[uint8]:
		return fromScalar(t), nil
	case *ort.Scalar[int16]:
		return fromScalar(t), nil
	case *ort.Scalar[uint16]:
		return fromScalar(t), nil
	case *ort.Scalar[int32]:
		return fromScalar(t), nil
	case *ort.Scalar[uint32]:
		return fromScalar(t), nil
	case *ort.Scalar[int64]:
		return fromScalar(t), nil
	case *ort.Scalar[uint64]:
		return fromScalar(t), nil
	case *ort.Scalar[bool]:
		return fromScalar(t), nil
	case *halfOutput:
		return Tensor{DType: t.dtype, Shape: t.GetShape(), Data: t.data}, nil
	}
	return Tensor{}, fmt.Errorf("unsupported %s value with element type %s", v.GetONNXType(), dtypeOfValue(v))
}

func fromScalar[T ort.TensorData](s *ort.Scalar[T]) Tensor {
	data := []T{s.GetData()}
	return Tensor{DType: dtypeOf(data), Shape: []int64{}, Data: data}
}

func dtypeOfValue(v ort.Value) DType {
	return DType(ort.TensorElementDataType(v.DataType()))
}

// halfOutput is a preallocated 16-bit float output. onnxruntime_go v1.27.0
// copies ORT-allocated tensors of types it has no Go type for with one byte
// per element, too few for float16, so such outputs must be preallocated.
type halfOutput struct {
	*ort.CustomDataTensor
	dtype DType
	data  []uint16
}

// newOutput preallocates the outputs that onnxruntime_go cannot allocate
// from ORT's result: rank-0 tensors (its Tensor type rejects an empty
// shape), when scalar says the output is one, and 16-bit floats of known
// shape. It returns nil, meaning "let ORT allocate", for the rest.
func newOutput(info Info, scalar bool) (ort.Value, error) {
	if scalar {
		return newScalar(info.DType)
	}
	n := numElements(info.Shape)
	if info.DType != Float16 && info.DType != BFloat16 || len(info.Shape) == 0 || n <= 0 {
		return nil, nil
	}
	data := make([]uint16, n)
	v, err := ort.NewCustomDataTensor(ort.Shape(info.Shape), halfBytes(data), ort.TensorElementDataType(info.DType))
	if err != nil {
		return nil, err
	}
	return &halfOutput{CustomDataTensor: v, dtype: info.DType, data: data}, nil
}

func newScalar(dt DType) (ort.Value, error) {
	switch dt {
	case Float32:
		return ort.NewEmptyScalar[float32]()
	case Float64:
		return ort.NewEmptyScalar[float64]()
	case Int8:
		return ort.NewEmptyScalar[int8]()
	case Uint8:
		return ort.NewEmptyScalar[uint8]()
	case Int16:
		return ort.NewEmptyScalar[int16]()
	case Uint16:
		return ort.NewEmptyScalar[uint16]()
	case Int32:
		return ort.NewEmptyScalar[int32]()
	case Uint32:
		return ort.NewEmptyScalar[uint32]()
	case Int64:
		return ort.NewEmptyScalar[int64]()
	case Uint64:
		return ort.NewEmptyScalar[uint64]()
	case Bool:
		return ort.NewEmptyScalar[bool]()
	}
	// Strings and the rest: let ORT allocate, and report what comes back.
	return nil, nil
}

// shapeString formats a model's shape with "N" style placeholders for the
// dimensions it leaves open.
func shapeString(shape []int64) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		if d < 0 {
			parts[i] = "?"
		} else {
			parts[i] = fmt.Sprint(d)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

package convert

import (
	"encoding/binary"
	"fmt"
	"math"
)

// A Tensor is a dense row-major array as safetensors stores it: a dtype name,
// a shape, and the elements' bytes in little-endian order whatever the host.
// A nil or empty Shape is a scalar holding one element.
type Tensor struct {
	DType string // safetensors' name: "F32", "F64", "F16", "BF16", "I32", "I64", "U8", "BOOL", ...
	Shape []int64
	Data  []byte
}

// dtypes lists the dtypes safetensors defines with a whole number of bytes per
// element; the sub-byte F4, F6_E2M3 and F6_E3M2 are left out. rank is the
// dtype's position in the reference implementation's Dtype enum: writers
// order tensors by descending rank, which puts every tensor at a multiple of
// its element size (so a reader may view the bytes in place) and makes our
// files byte-identical to Python's.
var dtypes = map[string]struct{ size, rank int }{
	"BOOL":    {1, 0},
	"U8":      {1, 4},
	"I8":      {1, 5},
	"F8_E5M2": {1, 6},
	"F8_E4M3": {1, 7},
	"F8_E8M0": {1, 8},
	"I16":     {2, 9},
	"U16":     {2, 10},
	"F16":     {2, 11},
	"BF16":    {2, 12},
	"I32":     {4, 13},
	"U32":     {4, 14},
	"F32":     {4, 15},
	"C64":     {8, 16}, // a complex64: two F32, real part first
	"F64":     {8, 17},
	"I64":     {8, 18},
	"U64":     {8, 19},
}

// byteSize returns the number of data bytes a tensor of this dtype and shape
// holds, or an error for an unknown dtype, a negative dimension, or a size
// that does not fit an int64.
func byteSize(dtype string, shape []int64) (int64, error) {
	dt, ok := dtypes[dtype]
	if !ok {
		return 0, fmt.Errorf("unknown dtype %q", dtype)
	}
	n := int64(dt.size)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %s has negative dimension %d at index %d", shapeString(shape), d, i)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("shape %s of %s overflows int64 bytes", shapeString(shape), dtype)
		}
		n *= d
	}
	return n, nil
}

// shapeString formats a shape for an error message as fmt's %v does, eliding
// the middle of one too long for a line (a hostile header may hold millions
// of dimensions).
func shapeString(shape []int64) string {
	if len(shape) <= 8 {
		return fmt.Sprint(shape)
	}
	head, tail := fmt.Sprint(shape[:4]), fmt.Sprint(shape[len(shape)-2:])
	return fmt.Sprintf("%s ... %s (%d dimensions)", head[:len(head)-1], tail[1:], len(shape))
}

// check reports whether t is a well-formed tensor of dtype want.
func (t Tensor) check(want string) error {
	if t.DType != want {
		return fmt.Errorf("convert: tensor has dtype %s, want %s", t.DType, want)
	}
	n, err := byteSize(t.DType, t.Shape)
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	if int64(len(t.Data)) != n {
		return fmt.Errorf("convert: tensor %s %s has %d data bytes, want %d", t.DType, shapeString(t.Shape), len(t.Data), n)
	}
	return nil
}

// Float32s returns a new slice holding the elements of an F32 tensor. It is an
// error if t has another dtype or its data does not match its shape.
func (t Tensor) Float32s() ([]float32, error) {
	if err := t.check("F32"); err != nil {
		return nil, err
	}
	v := make([]float32, len(t.Data)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return v, nil
}

// Float64s returns a new slice holding the elements of an F64 tensor.
func (t Tensor) Float64s() ([]float64, error) {
	if err := t.check("F64"); err != nil {
		return nil, err
	}
	v := make([]float64, len(t.Data)/8)
	for i := range v {
		v[i] = math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return v, nil
}

// Int32s returns a new slice holding the elements of an I32 tensor.
func (t Tensor) Int32s() ([]int32, error) {
	if err := t.check("I32"); err != nil {
		return nil, err
	}
	v := make([]int32, len(t.Data)/4)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return v, nil
}

// Int64s returns a new slice holding the elements of an I64 tensor.
func (t Tensor) Int64s() ([]int64, error) {
	if err := t.check("I64"); err != nil {
		return nil, err
	}
	v := make([]int64, len(t.Data)/8)
	for i := range v {
		v[i] = int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return v, nil
}

// Uint8s returns a copy of the elements of a U8 tensor.
func (t Tensor) Uint8s() ([]uint8, error) {
	if err := t.check("U8"); err != nil {
		return nil, err
	}
	return append([]uint8{}, t.Data...), nil
}

// newTensor returns a tensor of dtype with a copy of shape and room for its
// data. Shape and value count disagreeing is a programming error, not bad
// input, hence the panic (as in gonum's mat.NewDense).
func newTensor(dtype string, shape []int64, values int) Tensor {
	n, err := byteSize(dtype, shape)
	if err != nil {
		panic("convert: " + err.Error())
	}
	size := int64(dtypes[dtype].size)
	if n/size != int64(values) {
		panic(fmt.Sprintf("convert: shape %s holds %d elements, got %d values", shapeString(shape), n/size, values))
	}
	return Tensor{DType: dtype, Shape: append([]int64{}, shape...), Data: make([]byte, n)}
}

// Float32Tensor returns an F32 tensor holding a copy of v. It panics if v does
// not have as many elements as shape describes or a dimension is negative.
func Float32Tensor(shape []int64, v []float32) Tensor {
	t := newTensor("F32", shape, len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(x))
	}
	return t
}

// Float64Tensor returns an F64 tensor holding a copy of v; it panics as
// Float32Tensor does.
func Float64Tensor(shape []int64, v []float64) Tensor {
	t := newTensor("F64", shape, len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(t.Data[8*i:], math.Float64bits(x))
	}
	return t
}

// Int32Tensor returns an I32 tensor holding a copy of v; it panics as
// Float32Tensor does.
func Int32Tensor(shape []int64, v []int32) Tensor {
	t := newTensor("I32", shape, len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(t.Data[4*i:], uint32(x))
	}
	return t
}

// Int64Tensor returns an I64 tensor holding a copy of v; it panics as
// Float32Tensor does.
func Int64Tensor(shape []int64, v []int64) Tensor {
	t := newTensor("I64", shape, len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(t.Data[8*i:], uint64(x))
	}
	return t
}

// Uint8Tensor returns a U8 tensor holding a copy of v; it panics as
// Float32Tensor does.
func Uint8Tensor(shape []int64, v []uint8) Tensor {
	t := newTensor("U8", shape, len(v))
	copy(t.Data, v)
	return t
}

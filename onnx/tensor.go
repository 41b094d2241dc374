package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/hyperrep/hyperrep/onnx/pb"
)

// ErrFormat is matched (errors.Is) by every error about data that is not a
// well-formed ONNX model or tensor.
var ErrFormat = errors.New("onnx: malformed model")

// formatError carries its own message and matches ErrFormat.
type formatError struct{ msg string }

func (e *formatError) Error() string        { return e.msg }
func (e *formatError) Is(target error) bool { return target == ErrFormat }

func formatErr(format string, args ...any) error {
	return &formatError{fmt.Sprintf(format, args...)}
}

// Data types of TensorProto.data_type, named as in onnx.proto.
const (
	Float    = int32(pb.TensorProto_FLOAT)
	Uint8    = int32(pb.TensorProto_UINT8)
	Int8     = int32(pb.TensorProto_INT8)
	Uint16   = int32(pb.TensorProto_UINT16)
	Int16    = int32(pb.TensorProto_INT16)
	Int32    = int32(pb.TensorProto_INT32)
	Int64    = int32(pb.TensorProto_INT64)
	String   = int32(pb.TensorProto_STRING)
	Bool     = int32(pb.TensorProto_BOOL)
	Float16  = int32(pb.TensorProto_FLOAT16)
	Double   = int32(pb.TensorProto_DOUBLE)
	Uint32   = int32(pb.TensorProto_UINT32)
	Uint64   = int32(pb.TensorProto_UINT64)
	BFloat16 = int32(pb.TensorProto_BFLOAT16)
)

// IsFloat reports whether a data type holds real floating-point values, the
// dtypes whose initializers are weights.
func IsFloat(dtype int32) bool {
	switch dtype {
	case Float, Double, Float16, BFloat16:
		return true
	}
	return false
}

// DTypeName is the onnx.proto name of a data type ("FLOAT", "INT64", ...).
func DTypeName(dtype int32) string {
	if s, ok := pb.TensorProto_DataType_name[dtype]; ok {
		return s
	}
	return fmt.Sprintf("dtype(%d)", dtype)
}

// ElemSize is the size in bytes of one element of dtype in raw_data, or 0 for
// dtypes without a fixed-size encoding (strings, undefined, unknown).
func ElemSize(dtype int32) int {
	switch dtype {
	case Uint8, Int8, Bool:
		return 1
	case Uint16, Int16, Float16, BFloat16:
		return 2
	case Float, Int32, Uint32:
		return 4
	case Int64, Double, Uint64, int32(pb.TensorProto_COMPLEX64):
		return 8
	case int32(pb.TensorProto_COMPLEX128):
		return 16
	}
	return 0
}

// maxElements bounds element counts so that byte sizes never overflow int64.
const maxElements = 1 << 56

// NumElements is the product of dims, with an error for negative dimensions or
// products too large to exist.
func NumElements(dims []int64) (int64, error) {
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, formatErr("negative dimension %d in %v", d, dims)
		}
		if d != 0 && n > maxElements/d {
			return 0, formatErr("dimensions %v hold too many elements", dims)
		}
		n *= d
	}
	return n, nil
}

// CheckTensor verifies that the data a tensor holds matches its dtype and dims:
// raw_data of exactly numel*size bytes, or a typed field of numel entries.
// External tensors must have been loaded (Read does that).
func CheckTensor(t *pb.TensorProto) error {
	if err := checkTensor(t, "tensor"); err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	return nil
}

// checkTensor is CheckTensor with messages that start with kind and the
// tensor's name.
func checkTensor(t *pb.TensorProto, kind string) error {
	name := t.GetName()
	n, err := NumElements(t.GetDims())
	if err != nil {
		return fmt.Errorf("%s %q: %w", kind, name, err)
	}
	if t.GetDataLocation() == pb.TensorProto_EXTERNAL {
		return formatErr("%s %q: external data not loaded", kind, name)
	}
	dt := t.GetDataType()
	if t.GetSegment() != nil {
		return formatErr("%s %q: segmented tensors are not supported", kind, name)
	}
	if t.RawData != nil {
		size := ElemSize(dt)
		if size == 0 {
			return formatErr("%s %q: raw_data for dtype %s", kind, name, DTypeName(dt))
		}
		if int64(len(t.RawData)) != n*int64(size) {
			return formatErr("%s %q: raw_data has %d bytes, want %d for %s%v",
				kind, name, len(t.RawData), n*int64(size), DTypeName(dt), t.GetDims())
		}
		return nil
	}
	have, field := typedLen(t)
	if field == "" {
		if n != 0 && dt != String {
			return formatErr("%s %q: no data for %d elements", kind, name, n)
		}
		return nil
	}
	want := n
	if dt == int32(pb.TensorProto_COMPLEX64) || dt == int32(pb.TensorProto_COMPLEX128) {
		want = 2 * n
	}
	if int64(have) != want {
		return formatErr("%s %q: %s has %d values, want %d for %s%v",
			kind, name, field, have, want, DTypeName(dt), t.GetDims())
	}
	return nil
}

// typedLen is the number of values in the typed field that dtype uses, and the
// field's name, or "" when that field is empty.
func typedLen(t *pb.TensorProto) (int, string) {
	var n int
	var field string
	switch t.GetDataType() {
	case Float, int32(pb.TensorProto_COMPLEX64):
		n, field = len(t.FloatData), "float_data"
	case Double, int32(pb.TensorProto_COMPLEX128):
		n, field = len(t.DoubleData), "double_data"
	case Int64:
		n, field = len(t.Int64Data), "int64_data"
	case Uint32, Uint64:
		n, field = len(t.Uint64Data), "uint64_data"
	case String:
		n, field = len(t.StringData), "string_data"
	default:
		n, field = len(t.Int32Data), "int32_data"
	}
	if n == 0 {
		return 0, ""
	}
	return n, field
}

// Float32s returns the values of a float tensor as float32 (float64 values are
// rounded; float16 and bfloat16 are exact).
func Float32s(t *pb.TensorProto) ([]float32, error) {
	n, err := floatCount(t)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	ReadFloats(t, 0, out, nil)
	return out, nil
}

// Float64s returns the values of a float tensor as float64, exactly.
func Float64s(t *pb.TensorProto) ([]float64, error) {
	n, err := floatCount(t)
	if err != nil {
		return nil, err
	}
	out := make([]float64, n)
	ReadFloats(t, 0, make([]float32, n), out)
	return out, nil
}

// floatCount checks that t is a well-formed float tensor and returns its
// element count.
func floatCount(t *pb.TensorProto) (int, error) {
	if !IsFloat(t.GetDataType()) {
		return 0, fmt.Errorf("onnx: tensor %q has dtype %s, not a float type", t.GetName(), DTypeName(t.GetDataType()))
	}
	if err := CheckTensor(t); err != nil {
		return 0, err
	}
	n, _ := NumElements(t.GetDims())
	return int(n), nil
}

// SetFloat32s replaces the values of a float tensor, keeping its dtype, dims
// and encoding (raw_data or the typed field it used). float16 and bfloat16
// round to nearest even; float64 widens exactly.
func SetFloat32s(t *pb.TensorProto, v []float32) error {
	return setFloats(t, v, nil)
}

// SetFloat64s is SetFloat32s for float64 values; they are rounded for every
// dtype but float64.
func SetFloat64s(t *pb.TensorProto, v []float64) error {
	f32 := make([]float32, len(v))
	for i, x := range v {
		f32[i] = float32(x)
	}
	if t.GetDataType() != Double {
		v = nil
	}
	return setFloats(t, f32, v)
}

func setFloats(t *pb.TensorProto, v []float32, v64 []float64) error {
	n, err := floatCount(t)
	if err != nil {
		return err
	}
	if len(v) != n {
		return fmt.Errorf("onnx: tensor %q: got %d values, want %d", t.GetName(), len(v), n)
	}
	WriteFloats(t, 0, v, v64)
	return nil
}

// NewFloatTensor makes a float32 initializer stored as raw_data.
func NewFloatTensor(name string, dims []int64, v []float32) *pb.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return &pb.TensorProto{Name: &name, Dims: append([]int64(nil), dims...), DataType: ptr(Float), RawData: raw}
}

// NewInt64Tensor makes an int64 initializer stored as raw_data.
func NewInt64Tensor(name string, dims []int64, v []int64) *pb.TensorProto {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	return &pb.TensorProto{Name: &name, Dims: append([]int64(nil), dims...), DataType: ptr(Int64), RawData: raw}
}

// Int64s returns the values of an integer tensor (int8 to int64, uint8 to
// uint32, bool) as int64; shapes and indices are read with it.
func Int64s(t *pb.TensorProto) ([]int64, error) {
	dt := t.GetDataType()
	switch dt {
	case Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Bool:
	default:
		return nil, fmt.Errorf("onnx: tensor %q has dtype %s, not an integer type", t.GetName(), DTypeName(dt))
	}
	if err := CheckTensor(t); err != nil {
		return nil, err
	}
	n, _ := NumElements(t.GetDims())
	out := make([]int64, n)
	if t.RawData != nil {
		r := t.RawData
		for i := range out {
			switch dt {
			case Int8:
				out[i] = int64(int8(r[i]))
			case Uint8, Bool:
				out[i] = int64(r[i])
			case Int16:
				out[i] = int64(int16(binary.LittleEndian.Uint16(r[2*i:])))
			case Uint16:
				out[i] = int64(binary.LittleEndian.Uint16(r[2*i:]))
			case Int32:
				out[i] = int64(int32(binary.LittleEndian.Uint32(r[4*i:])))
			case Uint32:
				out[i] = int64(binary.LittleEndian.Uint32(r[4*i:]))
			case Int64:
				out[i] = int64(binary.LittleEndian.Uint64(r[8*i:]))
			}
		}
		return out, nil
	}
	for i := range out {
		switch dt {
		case Int64:
			out[i] = t.Int64Data[i]
		case Uint32:
			out[i] = int64(t.Uint64Data[i])
		default:
			out[i] = int64(t.Int32Data[i])
		}
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }

// HalfToFloat32 converts IEEE 754 binary16 bits to float32, exactly; NaN
// payloads are kept so that a round trip restores the same bits.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0:
		// Subnormal half: normalise the mantissa.
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Float32ToHalf converts float32 to binary16 bits, rounding to nearest even;
// NaN payloads that fit are kept.
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		m := uint16(mant >> 13)
		if m == 0 {
			m = 0x200
		}
		return sign | 0x7c00 | m
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		half := uint16(mant >> shift)
		rem := mant & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || rem == mid && half&1 == 1 {
			half++
		}
		return sign | half
	}
	half := uint16(e)<<10 | uint16(mant>>13)
	rem := mant & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && half&1 == 1 {
		half++ // may carry into the exponent, which is the right rounding
	}
	return sign | half
}

// BFloat16ToFloat32 converts bfloat16 bits to float32, exactly.
func BFloat16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBFloat16 converts float32 to bfloat16 bits, rounding to nearest
// even; NaNs stay NaN with their upper payload bits.
func Float32ToBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7f800000 == 0x7f800000 && b&0x7fffff != 0 {
		h := uint16(b >> 16)
		if h&0x7f == 0 {
			h |= 0x40
		}
		return h
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// ReadFloats reads len(dst) values of a float tensor, starting at element e,
// into dst, and into dst64 when it is not nil (float64 values exactly). The
// tensor must have passed CheckTensor and the range must lie inside it;
// anything else is a programmer error and panics. Reading a range straight
// from raw_data lets callers that walk big tensors in pieces (the tokenizer)
// avoid a copy of the whole tensor.
func ReadFloats(t *pb.TensorProto, e int, dst []float32, dst64 []float64) {
	n := len(dst)
	dt := t.GetDataType()
	if raw := t.RawData; raw != nil {
		switch dt {
		case Float:
			b := raw[4*e : 4*(e+n)]
			for i := range dst {
				dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		case Double:
			b := raw[8*e : 8*(e+n)]
			for i := range dst {
				x := math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
				dst[i] = float32(x)
				if dst64 != nil {
					dst64[i] = x
				}
			}
			return
		case Float16:
			b := raw[2*e : 2*(e+n)]
			for i := range dst {
				dst[i] = HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
			}
		case BFloat16:
			b := raw[2*e : 2*(e+n)]
			for i := range dst {
				dst[i] = BFloat16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
			}
		}
	} else {
		switch dt {
		case Float:
			copy(dst, t.FloatData[e:e+n])
		case Double:
			for i, x := range t.DoubleData[e : e+n] {
				dst[i] = float32(x)
				if dst64 != nil {
					dst64[i] = x
				}
			}
			return
		case Float16:
			for i, x := range t.Int32Data[e : e+n] {
				dst[i] = HalfToFloat32(uint16(x))
			}
		case BFloat16:
			for i, x := range t.Int32Data[e : e+n] {
				dst[i] = BFloat16ToFloat32(uint16(x))
			}
		}
	}
	if dst64 != nil {
		for i, x := range dst {
			dst64[i] = float64(x)
		}
	}
}

// WriteFloats writes len(src) values into a float tensor, starting at element e,
// in the tensor's own dtype and encoding. For float64 tensors a value of
// src64 is used where it rounds to the value in src, so that an edit to the
// float32 values is never overridden by a stale exact copy.
//
// Elements of a 16-bit float tensor stored in int32_data are rewritten only
// when their 16 bits change: the upper bits of the int32, meaningless to
// ONNX, are kept, and with them proto equality.
func WriteFloats(t *pb.TensorProto, e int, src []float32, src64 []float64) {
	n := len(src)
	dt := t.GetDataType()
	if raw := t.RawData; raw != nil {
		switch dt {
		case Float:
			b := raw[4*e : 4*(e+n)]
			for i, x := range src {
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
			}
		case Double:
			b := raw[8*e : 8*(e+n)]
			for i := range src {
				binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(exact(src, src64, i)))
			}
		case Float16:
			b := raw[2*e : 2*(e+n)]
			for i, x := range src {
				binary.LittleEndian.PutUint16(b[2*i:], Float32ToHalf(x))
			}
		case BFloat16:
			b := raw[2*e : 2*(e+n)]
			for i, x := range src {
				binary.LittleEndian.PutUint16(b[2*i:], Float32ToBFloat16(x))
			}
		}
		return
	}
	switch dt {
	case Float:
		copy(t.FloatData[e:e+n], src)
	case Double:
		d := t.DoubleData[e : e+n]
		for i := range d {
			d[i] = exact(src, src64, i)
		}
	case Float16, BFloat16:
		d := t.Int32Data[e : e+n]
		for i, x := range src {
			h := Float32ToHalf(x)
			if dt == BFloat16 {
				h = Float32ToBFloat16(x)
			}
			if uint16(d[i]) != h {
				d[i] = int32(h)
			}
		}
	}
}

// exact is value i as float64: src64[i] when it rounds to src[i] bit for
// bit, src[i] widened otherwise.
func exact(src []float32, src64 []float64, i int) float64 {
	if src64 != nil && math.Float32bits(float32(src64[i])) == math.Float32bits(src[i]) {
		return src64[i]
	}
	return float64(src[i])
}

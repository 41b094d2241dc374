package tokenizer

import (
	"encoding/binary"
	"math"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// decode reads len(dst) values of a float tensor, starting at element e,
// into dst, and into dst64 when it is not nil. The tensor must have passed
// onnx.CheckTensor. Reading straight from raw_data spares the float64
// intermediate and the per-tensor copy of onnx.Float32s.
func decode(t *pb.TensorProto, e int, dst []float32, dst64 []float64) {
	n := len(dst)
	dt := t.GetDataType()
	if raw := t.RawData; raw != nil {
		switch dt {
		case onnx.Float:
			b := raw[4*e : 4*(e+n)]
			for i := range dst {
				dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		case onnx.Double:
			b := raw[8*e : 8*(e+n)]
			for i := range dst {
				x := math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
				dst[i] = float32(x)
				if dst64 != nil {
					dst64[i] = x
				}
			}
			return
		case onnx.Float16:
			b := raw[2*e : 2*(e+n)]
			for i := range dst {
				dst[i] = onnx.HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
			}
		case onnx.BFloat16:
			b := raw[2*e : 2*(e+n)]
			for i := range dst {
				dst[i] = onnx.BFloat16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
			}
		}
	} else {
		switch dt {
		case onnx.Float:
			copy(dst, t.FloatData[e:e+n])
		case onnx.Double:
			for i, x := range t.DoubleData[e : e+n] {
				dst[i] = float32(x)
				if dst64 != nil {
					dst64[i] = x
				}
			}
			return
		case onnx.Float16:
			for i, x := range t.Int32Data[e : e+n] {
				dst[i] = onnx.HalfToFloat32(uint16(x))
			}
		case onnx.BFloat16:
			for i, x := range t.Int32Data[e : e+n] {
				dst[i] = onnx.BFloat16ToFloat32(uint16(x))
			}
		}
	}
	if dst64 != nil {
		for i, x := range dst {
			dst64[i] = float64(x)
		}
	}
}

// encode writes len(src) values into a float tensor, starting at element e,
// in the tensor's own dtype and encoding. For float64 tensors a value of
// src64 is used where it rounds to the value in src, so that an edit to the
// float32 values is never overridden by a stale exact copy.
//
// Elements of a 16-bit float tensor stored in int32_data are rewritten only
// when their 16 bits change: the upper bits of the int32, meaningless to
// ONNX, are kept, and with them proto equality.
func encode(t *pb.TensorProto, e int, src []float32, src64 []float64) {
	n := len(src)
	dt := t.GetDataType()
	if raw := t.RawData; raw != nil {
		switch dt {
		case onnx.Float:
			b := raw[4*e : 4*(e+n)]
			for i, x := range src {
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
			}
		case onnx.Double:
			b := raw[8*e : 8*(e+n)]
			for i := range src {
				binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(exact(src, src64, i)))
			}
		case onnx.Float16:
			b := raw[2*e : 2*(e+n)]
			for i, x := range src {
				binary.LittleEndian.PutUint16(b[2*i:], onnx.Float32ToHalf(x))
			}
		case onnx.BFloat16:
			b := raw[2*e : 2*(e+n)]
			for i, x := range src {
				binary.LittleEndian.PutUint16(b[2*i:], onnx.Float32ToBFloat16(x))
			}
		}
		return
	}
	switch dt {
	case onnx.Float:
		copy(t.FloatData[e:e+n], src)
	case onnx.Double:
		d := t.DoubleData[e : e+n]
		for i := range d {
			d[i] = exact(src, src64, i)
		}
	case onnx.Float16, onnx.BFloat16:
		d := t.Int32Data[e : e+n]
		for i, x := range src {
			h := onnx.Float32ToHalf(x)
			if dt == onnx.BFloat16 {
				h = onnx.Float32ToBFloat16(x)
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

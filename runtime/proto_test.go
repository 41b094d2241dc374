package runtime

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"github.com/hyperrep/hyperrep/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// readTensorProto reads an ONNX TensorProto file, such as the
// test_data_set_0/input_0.pb files of ONNX's backend tests, into a Tensor.
func readTensorProto(path string) (Tensor, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Tensor{}, "", err
	}
	var tp pb.TensorProto
	if err := proto.Unmarshal(b, &tp); err != nil {
		return Tensor{}, "", fmt.Errorf("%s: %w", path, err)
	}
	t, err := fromProto(&tp)
	if err != nil {
		return Tensor{}, "", fmt.Errorf("%s: %w", path, err)
	}
	return t, tp.GetName(), nil
}

func fromProto(tp *pb.TensorProto) (Tensor, error) {
	dt := DType(tp.GetDataType())
	shape := append([]int64{}, tp.GetDims()...)
	n := numElements(shape)
	raw := tp.GetRawData()
	if raw == nil && dt != String {
		raw = typedFields(tp, dt)
	}
	t := Tensor{DType: dt, Shape: shape}
	var err error
	switch dt {
	case Float32:
		t.Data, err = decode(raw, n, 4, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) })
	case Float64:
		t.Data, err = decode(raw, n, 8, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) })
	case Int8:
		t.Data, err = decode(raw, n, 1, func(b []byte) int8 { return int8(b[0]) })
	case Uint8:
		t.Data, err = decode(raw, n, 1, func(b []byte) uint8 { return b[0] })
	case Bool:
		t.Data, err = decode(raw, n, 1, func(b []byte) bool { return b[0] != 0 })
	case Int16:
		t.Data, err = decode(raw, n, 2, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) })
	case Uint16, Float16, BFloat16:
		t.Data, err = decode(raw, n, 2, func(b []byte) uint16 { return binary.LittleEndian.Uint16(b) })
	case Int32:
		t.Data, err = decode(raw, n, 4, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) })
	case Uint32:
		t.Data, err = decode(raw, n, 4, func(b []byte) uint32 { return binary.LittleEndian.Uint32(b) })
	case Int64:
		t.Data, err = decode(raw, n, 8, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) })
	case Uint64:
		t.Data, err = decode(raw, n, 8, func(b []byte) uint64 { return binary.LittleEndian.Uint64(b) })
	case String:
		s := make([]string, len(tp.GetStringData()))
		for i, b := range tp.GetStringData() {
			s[i] = string(b)
		}
		t.Data = s
	default:
		err = fmt.Errorf("unsupported data type %s", dt)
	}
	return t, err
}

func decode[T any](raw []byte, n, size int, f func([]byte) T) ([]T, error) {
	if len(raw) != n*size {
		return nil, fmt.Errorf("%d bytes of data for %d elements of %d bytes", len(raw), n, size)
	}
	out := make([]T, n)
	for i := range out {
		out[i] = f(raw[i*size:])
	}
	return out, nil
}

// typedFields re-encodes the typed repeated fields as raw little-endian
// bytes, so that decode handles both storage forms.
func typedFields(tp *pb.TensorProto, dt DType) []byte {
	var b []byte
	switch dt {
	case Float32:
		for _, v := range tp.GetFloatData() {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	case Float64:
		for _, v := range tp.GetDoubleData() {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	case Int64:
		for _, v := range tp.GetInt64Data() {
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
	case Uint32, Uint64:
		for _, v := range tp.GetUint64Data() {
			if dt == Uint32 {
				b = binary.LittleEndian.AppendUint32(b, uint32(v))
			} else {
				b = binary.LittleEndian.AppendUint64(b, v)
			}
		}
	default: // int32_data holds every type of 32 bits or fewer
		size := map[DType]int{Int32: 4, Int16: 2, Uint16: 2, Float16: 2, BFloat16: 2, Int8: 1, Uint8: 1, Bool: 1}[dt]
		for _, v := range tp.GetInt32Data() {
			b = binary.LittleEndian.AppendUint32(b, uint32(v))[:len(b)+size]
		}
	}
	return b
}

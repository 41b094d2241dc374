package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/internal/atomicfile"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// maxProtoSize is the largest message protobuf parsers accept (2 GiB - 1);
// larger models keep their big tensors in an external data file. A variable
// so that tests can cross it without building a 2 GiB model.
var maxProtoSize = 1<<31 - 1

// externalMinBytes is the size from which a tensor moves to the external data
// file when a model is written with external data.
const externalMinBytes = 1024

// Marshal serializes the model deterministically.
func (m *Model) Marshal() ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m.Proto)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	return b, nil
}

// Write writes the model to path atomically: into a temporary file beside it,
// then renamed, so a crash never leaves a partial model at path. A model over
// the 2 GiB protobuf limit is written with WriteExternal.
func (m *Model) Write(path string) error {
	if proto.Size(m.Proto) > maxProtoSize {
		return m.WriteExternal(path, filepath.Base(path)+".data")
	}
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, b)
}

// WriteExternal writes the model to path with every tensor of 1 KiB or more
// in the file dataName beside it (ONNX external data), both atomically. The
// model in memory is left as it was.
func (m *Model) WriteExternal(path, dataName string) error {
	if !filepath.IsLocal(dataName) {
		return fmt.Errorf("onnx: external data name %q must be a plain relative path", dataName)
	}
	type moved struct {
		t      *pb.TensorProto
		before *pb.TensorProto
		raw    []byte
	}
	var big []moved
	for _, g := range allGraphs(m.Graph()) {
		for _, t := range g.Initializer {
			if raw := rawBytes(t); len(raw) >= externalMinBytes {
				big = append(big, moved{t: t, raw: raw})
			}
		}
	}
	dataPath := filepath.Join(filepath.Dir(path), dataName)
	var off int64
	err := atomicfile.Write(dataPath, func(f *os.File) error {
		for _, mv := range big {
			if _, err := f.Write(mv.raw); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Point each moved tensor at its bytes for the time of marshalling, then
	// put the in-memory data back.
	for i := range big {
		t := big[i].t
		big[i].before = &pb.TensorProto{RawData: t.RawData, FloatData: t.FloatData, DoubleData: t.DoubleData,
			Int32Data: t.Int32Data, Int64Data: t.Int64Data, Uint64Data: t.Uint64Data}
		t.RawData, t.FloatData, t.DoubleData, t.Int32Data, t.Int64Data, t.Uint64Data = nil, nil, nil, nil, nil, nil
		t.DataLocation = pb.TensorProto_EXTERNAL.Enum()
		t.ExternalData = []*pb.StringStringEntryProto{
			{Key: ptr("location"), Value: ptr(dataName)},
			{Key: ptr("offset"), Value: ptr(strconv.FormatInt(off, 10))},
			{Key: ptr("length"), Value: ptr(strconv.Itoa(len(big[i].raw)))},
		}
		off += int64(len(big[i].raw))
	}
	b, merr := m.Marshal()
	for _, mv := range big {
		t, o := mv.t, mv.before
		t.RawData, t.FloatData, t.DoubleData, t.Int32Data, t.Int64Data, t.Uint64Data = o.RawData, o.FloatData, o.DoubleData, o.Int32Data, o.Int64Data, o.Uint64Data
		t.DataLocation, t.ExternalData = nil, nil
	}
	if merr != nil {
		os.Remove(dataPath)
		return merr
	}
	return atomicfile.WriteBytes(path, b)
}

// rawBytes is the tensor's data in raw_data encoding (little-endian), built
// from the typed field when raw_data is not used; nil for strings.
func rawBytes(t *pb.TensorProto) []byte {
	if t.RawData != nil || t.GetDataType() == String {
		return t.RawData
	}
	size := ElemSize(t.GetDataType())
	var b []byte
	switch {
	case IsFloat(t.GetDataType()):
		v, err := Float64s(t)
		if err != nil {
			return nil
		}
		tmp := &pb.TensorProto{Name: t.Name, Dims: t.Dims, DataType: t.DataType, RawData: make([]byte, len(v)*size)}
		if SetFloat64s(tmp, v) != nil {
			return nil
		}
		b = tmp.RawData
	default:
		v, err := Int64s(t)
		if err != nil {
			return nil
		}
		b = make([]byte, len(v)*size)
		for i, x := range v {
			for k := 0; k < size; k++ {
				b[i*size+k] = byte(uint64(x) >> (8 * k))
			}
		}
	}
	return b
}

package onnx

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/onnx/pb"
)

// Model is an ONNX model held as its protobuf message. Its tensors hold their
// data in memory: external data is loaded by Read.
type Model struct {
	Proto *pb.ModelProto
}

// Graph is the model's main graph.
func (m *Model) Graph() *pb.GraphProto { return m.Proto.GetGraph() }

// Clone returns a deep copy of the model.
func (m *Model) Clone() *Model { return &Model{Proto: proto.Clone(m.Proto).(*pb.ModelProto)} }

// Initializer returns the main graph's initializer with the given name, or nil.
func (m *Model) Initializer(name string) *pb.TensorProto {
	for _, t := range m.Graph().GetInitializer() {
		if t.GetName() == name {
			return t
		}
	}
	return nil
}

// Read reads an ONNX model file. Tensors stored as external data are loaded
// from files beside it, and every tensor's data is checked against its dims.
func Read(path string) (*Model, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", unwrapPathError(err, path))
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("onnx: %s is a directory, not an ONNX file", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", unwrapPathError(err, path))
	}
	m, err := decode(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", path, err)
	}
	if len(data) >= bigModel {
		// Decoding copied every tensor out of data, which is now garbage as
		// large as the model. Handing it back to the OS now keeps it from
		// adding to the peak of what the caller allocates next (tokenizing
		// a 100 MB model peaks at 2.7x its size instead of 3.4x).
		debug.FreeOSMemory()
	}
	return m, nil
}

// bigModel is the file size from which Read collects its read buffer at once.
const bigModel = 32 << 20

// Decode parses a serialized ONNX model. External data is resolved against
// dir; with dir empty, a model with external data is an error.
func Decode(data []byte, dir string) (*Model, error) {
	m, err := decode(data, dir)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	return m, nil
}

func decode(data []byte, dir string) (*Model, error) {
	if len(data) == 0 {
		return nil, formatErr("empty file")
	}
	mp := new(pb.ModelProto)
	if err := proto.Unmarshal(data, mp); err != nil {
		return nil, formatErr("not an ONNX protobuf (%v)", err)
	}
	// Many byte strings parse as some protobuf; an ONNX model has at least an
	// IR version and a graph.
	if mp.GetIrVersion() <= 0 || mp.Graph == nil {
		return nil, formatErr("not an ONNX model (no ir_version or graph)")
	}
	m := &Model{Proto: mp}
	for _, g := range allGraphs(mp.Graph) {
		for _, t := range g.Initializer {
			if t.GetDataLocation() == pb.TensorProto_EXTERNAL {
				if err := loadExternal(t, dir); err != nil {
					return nil, err
				}
			}
			if err := checkTensor(t, "initializer"); err != nil {
				return nil, err
			}
		}
		for _, n := range g.Node {
			for _, a := range n.Attribute {
				for _, t := range append([]*pb.TensorProto{a.T}, a.Tensors...) {
					if t == nil {
						continue
					}
					if err := checkTensor(t, fmt.Sprintf("node %q attribute %q tensor", n.GetName(), a.GetName())); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return m, nil
}

// allGraphs returns g and every graph nested in its nodes' attributes
// (If/Loop/Scan bodies), depth first.
func allGraphs(g *pb.GraphProto) []*pb.GraphProto {
	out := []*pb.GraphProto{g}
	for _, n := range g.GetNode() {
		for _, a := range n.GetAttribute() {
			if a.G != nil {
				out = append(out, allGraphs(a.G)...)
			}
			for _, sg := range a.Graphs {
				out = append(out, allGraphs(sg)...)
			}
		}
	}
	return out
}

func unwrapPathError(err error, path string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %v", path, pe.Err)
	}
	return err
}

// loadExternal reads an external tensor's bytes into raw_data. The location
// must stay inside dir, and offset and length must lie inside the file: the
// declared length is never allocated before it is known to exist.
func loadExternal(t *pb.TensorProto, dir string) error {
	var loc string
	var off, length int64 = 0, -1
	for _, kv := range t.ExternalData {
		var err error
		switch kv.GetKey() {
		case "location":
			loc = kv.GetValue()
		case "offset":
			off, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		case "length":
			length, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		}
		if err != nil || off < 0 {
			return formatErr("initializer %q: bad external data %s %q", t.GetName(), kv.GetKey(), kv.GetValue())
		}
	}
	if loc == "" {
		return formatErr("initializer %q: external data without a location", t.GetName())
	}
	if dir == "" {
		return fmt.Errorf("initializer %q: external data %q cannot be resolved without the model's directory", t.GetName(), loc)
	}
	if filepath.IsAbs(loc) || !filepath.IsLocal(loc) {
		return formatErr("initializer %q: external data location %q leaves the model's directory", t.GetName(), loc)
	}
	n, err := NumElements(t.GetDims())
	if err != nil {
		return fmt.Errorf("initializer %q: %w", t.GetName(), err)
	}
	size := ElemSize(t.GetDataType())
	if size == 0 {
		return formatErr("initializer %q: external data for dtype %s", t.GetName(), DTypeName(t.GetDataType()))
	}
	want := n * int64(size)
	if length >= 0 && length != want {
		return formatErr("initializer %q: external data length %d, want %d for %s%v", t.GetName(), length, want, DTypeName(t.GetDataType()), t.GetDims())
	}
	path := filepath.Join(dir, loc)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("initializer %q: external data: %w", t.GetName(), unwrapPathError(err, path))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("initializer %q: external data: %w", t.GetName(), err)
	}
	if off > fi.Size() || want > fi.Size()-off {
		return formatErr("initializer %q: external data %s holds %d bytes, tensor needs %d at offset %d", t.GetName(), loc, fi.Size(), want, off)
	}
	raw := make([]byte, want)
	if _, err := f.ReadAt(raw, off); err != nil && !(errors.Is(err, io.EOF) && want == 0) {
		return fmt.Errorf("initializer %q: external data: %w", t.GetName(), err)
	}
	t.RawData = raw
	t.DataLocation = nil
	t.ExternalData = nil
	return nil
}

package tokenizer

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/runtime"
)

// needORT skips a test when ONNX Runtime cannot be loaded.
func needORT(t testing.TB) {
	t.Helper()
	if err := runtime.Init(); err != nil {
		t.Skipf("ONNX Runtime not available: %v", err)
	}
}

// runModel runs m once in ONNX Runtime on the CPU.
func runModel(m *onnx.Model, inputs []runtime.Tensor) ([]runtime.Tensor, error) {
	b, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	s, err := runtime.NewSession(b, runtime.Options{})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	// Older backend test data stores bfloat16 tensors as uint16.
	for i, info := range s.Inputs() {
		if i < len(inputs) && info.DType == runtime.BFloat16 && inputs[i].DType == runtime.Uint16 {
			inputs[i].DType = runtime.BFloat16
		}
	}
	return s.Run(inputs...)
}

// readTensor reads a serialized TensorProto (test_data_set_0/input_0.pb).
func readTensor(path string) (runtime.Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return runtime.Tensor{}, err
	}
	tp := new(pb.TensorProto)
	if err := proto.Unmarshal(b, tp); err != nil {
		return runtime.Tensor{}, fmt.Errorf("%s: %v", path, err)
	}
	t, err := fromProto(tp)
	if err != nil {
		return runtime.Tensor{}, fmt.Errorf("%s: %v", path, err)
	}
	return t, nil
}

// fromProto converts a TensorProto to a runtime tensor.
func fromProto(tp *pb.TensorProto) (runtime.Tensor, error) {
	dt := tp.GetDataType()
	shape := slices.Clone(tp.GetDims())
	if shape == nil {
		shape = []int64{}
	}
	out := runtime.Tensor{DType: runtime.DType(dt), Shape: shape}
	var err error
	switch dt {
	case onnx.Float:
		out.Data, err = onnx.Float32s(tp)
	case onnx.Double:
		out.Data, err = onnx.Float64s(tp)
	case onnx.Float16, onnx.BFloat16:
		out.Data, err = halfBits(tp)
	case onnx.String:
		s := make([]string, len(tp.StringData))
		for i, b := range tp.StringData {
			s[i] = string(b)
		}
		out.Data = s
	case onnx.Uint64:
		out.Data, err = uint64s(tp)
	default:
		var v []int64
		if v, err = onnx.Int64s(tp); err == nil {
			out.Data, err = narrow(v, dt)
		}
	}
	return out, err
}

func halfBits(tp *pb.TensorProto) ([]uint16, error) {
	if err := onnx.CheckTensor(tp); err != nil {
		return nil, err
	}
	n, _ := onnx.NumElements(tp.GetDims())
	out := make([]uint16, n)
	for i := range out {
		if tp.RawData != nil {
			out[i] = binary.LittleEndian.Uint16(tp.RawData[2*i:])
		} else {
			out[i] = uint16(tp.Int32Data[i])
		}
	}
	return out, nil
}

func uint64s(tp *pb.TensorProto) ([]uint64, error) {
	if err := onnx.CheckTensor(tp); err != nil {
		return nil, err
	}
	if tp.RawData == nil {
		return tp.Uint64Data, nil
	}
	out := make([]uint64, len(tp.RawData)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(tp.RawData[8*i:])
	}
	return out, nil
}

func narrow(v []int64, dt int32) (any, error) {
	switch dt {
	case onnx.Int64:
		return v, nil
	case onnx.Int32:
		return convert[int32](v), nil
	case onnx.Int16:
		return convert[int16](v), nil
	case onnx.Int8:
		return convert[int8](v), nil
	case onnx.Uint32:
		return convert[uint32](v), nil
	case onnx.Uint16:
		return convert[uint16](v), nil
	case onnx.Uint8:
		return convert[uint8](v), nil
	case onnx.Bool:
		b := make([]bool, len(v))
		for i, x := range v {
			b[i] = x != 0
		}
		return b, nil
	}
	return nil, fmt.Errorf("dtype %s not supported", onnx.DTypeName(dt))
}

func convert[T int8 | int16 | int32 | uint8 | uint16 | uint32](v []int64) []T {
	out := make([]T, len(v))
	for i, x := range v {
		out[i] = T(x)
	}
	return out
}

// closeTo compares an output with the expected one within ONNX's backend
// test tolerances, |got-want| <= atol + rtol*|want|, NaN matching NaN; other
// dtypes must be equal. It returns "" or the first difference.
func closeTo(got, want runtime.Tensor, rtol, atol float64) string {
	if got.DType == runtime.BFloat16 && want.DType == runtime.Uint16 {
		want.DType = got.DType // see runModel
	}
	if got.DType != want.DType {
		return fmt.Sprintf("dtype %s, want %s", got.DType, want.DType)
	}
	if !slices.Equal(got.Shape, want.Shape) && !(len(got.Shape) == 0 && slices.Equal(want.Shape, []int64{1})) {
		return fmt.Sprintf("shape %v, want %v", got.Shape, want.Shape)
	}
	g, w, ok := floats(got), floats(want), true
	if g == nil || w == nil {
		ok = fmt.Sprint(got.Data) == fmt.Sprint(want.Data)
		if !ok {
			return fmt.Sprintf("%s data differs", got.DType)
		}
		return ""
	}
	for i := range w {
		a, b := g[i], w[i]
		if math.IsNaN(a) && math.IsNaN(b) || a == b || math.Abs(a-b) <= atol+rtol*math.Abs(b) {
			continue
		}
		return fmt.Sprintf("element %d is %g, want %g", i, a, b)
	}
	return ""
}

// floats returns float data as float64, or nil for other dtypes.
func floats(t runtime.Tensor) []float64 {
	var out []float64
	switch d := t.Data.(type) {
	case []float32:
		for _, x := range d {
			out = append(out, float64(x))
		}
		if out == nil {
			out = []float64{}
		}
	case []float64:
		out = append([]float64{}, d...)
	case []uint16:
		if t.DType != runtime.Float16 && t.DType != runtime.BFloat16 {
			return nil
		}
		for _, h := range d {
			if t.DType == runtime.Float16 {
				out = append(out, float64(onnx.HalfToFloat32(h)))
			} else {
				out = append(out, float64(onnx.BFloat16ToFloat32(h)))
			}
		}
		if out == nil {
			out = []float64{}
		}
	}
	return out
}

// scramble returns a copy of m with every weight value replaced, so that a
// model detokenized into it holds only what the tokens hold.
func scramble(t testing.TB, m *onnx.Model) *onnx.Model {
	t.Helper()
	s := m.Clone()
	layers, err := s.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		for _, p := range l.Params {
			v := make([]float64, p.Size())
			for i := range v {
				v[i] = 0.375
			}
			if err := onnx.SetFloat64s(p.Tensor, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// knownFailures reads testdata/ort_known_failures.txt: backend test models
// that ONNX Runtime (or the runtime package in front of it) cannot load, run
// or reproduce, whatever their weights, one per line with the reason.
func knownFailures(t *testing.T) map[string]string {
	f, err := os.Open(filepath.Join("testdata", "ort_known_failures.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	known := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, reason, _ := strings.Cut(line, " ")
		known[name] = strings.TrimSpace(reason)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return known
}

// TestDetokenizedRunBackend runs every backend test model, detokenized into
// a copy whose weights were overwritten, in ONNX Runtime against the
// expected outputs of test_data_set_0.
func TestDetokenizedRunBackend(t *testing.T) {
	names := backendModels(t)
	needORT(t)
	known := knownFailures(t)
	var passed, failedKnown int
	for _, name := range names {
		err := runBackend(t, name)
		reason, isKnown := known[name]
		switch {
		case err == nil && isKnown:
			t.Logf("%s passes now; remove it from testdata/ort_known_failures.txt (listed for: %s)", name, reason)
			passed++
		case err == nil:
			passed++
		case isKnown:
			t.Logf("%s: known failure (%s): %v", name, reason, err)
			failedKnown++
		default:
			t.Errorf("%s: %v", name, err)
		}
	}
	t.Logf("%d of %d models reproduce their expected outputs; %d known failures of ONNX Runtime listed in testdata/ort_known_failures.txt",
		passed, len(names), failedKnown)
}

func runBackend(t *testing.T, name string) error {
	m := readBackend(t, name)
	tok, err := Tokenize(m, Options{})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	d, err := Detokenize(tok, scramble(t, m))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	in, err := backendInputs(name)
	if err != nil {
		return err
	}
	out, err := runModel(d, in)
	if err != nil {
		return err
	}
	for i, got := range out {
		want, err := readTensor(filepath.Join(backendData, name, "test_data_set_0", fmt.Sprintf("output_%d.pb", i)))
		if err != nil {
			return err
		}
		if diff := closeTo(got, want, 1e-3, 1e-7); diff != "" {
			return fmt.Errorf("output %d: %s", i, diff)
		}
	}
	return nil
}

// backendInputs reads the inputs of a backend test model's test_data_set_0.
func backendInputs(name string) ([]runtime.Tensor, error) {
	var in []runtime.Tensor
	for i := 0; ; i++ {
		x, err := readTensor(filepath.Join(backendData, name, "test_data_set_0", fmt.Sprintf("input_%d.pb", i)))
		if os.IsNotExist(err) {
			return in, nil
		}
		if err != nil {
			return nil, err
		}
		in = append(in, x)
	}
}

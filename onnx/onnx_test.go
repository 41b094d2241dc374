package onnx

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/onnx/pb"
)

const testdata = "/usr/share/libonnx-testdata/data"

// testdataModels lists libonnx-testdata's models; the test fails when the
// package is missing because make test installs it.
func testdataModels(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, suite := range []string{"node", "pytorch-converted", "pytorch-operator", "simple"} {
		f, _ := filepath.Glob(filepath.Join(testdata, suite, "*", "model.onnx"))
		files = append(files, f...)
	}
	if len(files) < 1000 {
		t.Fatalf("found %d libonnx-testdata models under %s, want > 1000 (apt-get install libonnx-testdata)", len(files), testdata)
	}
	return files
}

func TestRoundTripTestdata(t *testing.T) {
	dir := t.TempDir()
	for _, f := range testdataModels(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want := new(pb.ModelProto)
		if err := proto.Unmarshal(raw, want); err != nil {
			t.Fatal(err)
		}
		m, err := Read(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		out := filepath.Join(dir, "m.onnx")
		if err := m.Write(out); err != nil {
			t.Fatal(err)
		}
		back, err := Read(out)
		if err != nil {
			t.Fatalf("%s: reading back: %v", f, err)
		}
		if !proto.Equal(want, back.Proto) {
			t.Errorf("%s: written model differs from the original", f)
		}
	}
}

// tinyModel is a valid model with one float initializer.
func tinyModel() *Model {
	b := NewBuilder("tiny", 0)
	x := b.Input("x", Float, -1, 3)
	w := b.Float("w", []int64{3, 2}, []float32{1, 2, 3, 4, 5, 6})
	y := b.Node("MatMul", []string{x, w})
	b.Output(y, Float, -1, 2)
	return b.Model()
}

func mustMarshal(t testing.TB, m *Model) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadBadInput(t *testing.T) {
	dir := t.TempDir()
	good := mustMarshal(t, tinyModel())
	huge := tinyModel()
	huge.Initializer("w").Dims = []int64{1 << 20, 1 << 20} // claims 4 TiB
	short := tinyModel()
	short.Initializer("w").RawData = short.Initializer("w").RawData[:20]
	neg := tinyModel()
	neg.Initializer("w").Dims = []int64{-3, 2}
	ext := tinyModel()
	w := ext.Initializer("w")
	w.RawData = nil
	w.DataLocation = pb.TensorProto_EXTERNAL.Enum()
	w.ExternalData = []*pb.StringStringEntryProto{{Key: ptr("location"), Value: ptr("w.bin")}}
	escape := proto.Clone(ext.Proto).(*pb.ModelProto)
	escape.Graph.Initializer[0].ExternalData[0].Value = ptr("../w.bin")
	flipped := append([]byte(nil), good...)
	flipped[3] ^= 0xff

	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"truncated", good[:len(good)/2], "not an ONNX"},
		{"text", []byte("hello, this is a text file\nnot a model\n"), "not an ONNX"},
		{"random", bytes.Repeat([]byte{0x9c, 0x13, 0xfe, 0x02, 0x77}, 50), "not an ONNX"},
		{"bitflip", flipped, ""},
		{"huge dims", mustMarshal(t, huge), "raw_data has 24 bytes, want 4398046511104"},
		{"short raw", mustMarshal(t, short), "raw_data has 20 bytes, want 24"},
		{"negative dim", mustMarshal(t, neg), "negative dimension"},
		{"missing external", mustMarshal(t, ext), "w.bin: no such file"},
		{"escaping external", mustMarshal(t, &Model{escape}), "leaves the model's directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".onnx")
			if err := os.WriteFile(p, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Read(p)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("Read accepted %s", c.name)
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line containing %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "onnx: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Errorf("reading a %d-byte file allocated %d bytes", len(c.data), grew)
			}
		})
	}
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("reading a directory: %v", err)
	}
	if _, err := Read(filepath.Join(dir, "nope.onnx")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("reading a missing file: %v", err)
	}
	if _, err := Read(filepath.Join(dir, "huge_dims.onnx")); !errors.Is(err, ErrFormat) {
		t.Errorf("malformed model error %v does not match ErrFormat", err)
	}
}

func TestExternalData(t *testing.T) {
	dir := t.TempDir()
	b := NewBuilder("ext", 0)
	x := b.Input("x", Float, -1, 600)
	big := make([]float32, 600*400)
	for i := range big {
		big[i] = float32(i) * 0.5
	}
	w := b.Float("w", []int64{600, 400}, big)
	small := b.Float("bias", []int64{4}, []float32{1, 2, 3, 4})
	y := b.Node("MatMul", []string{x, w})
	b.Output(b.Node("Add", []string{y, small}), Float, -1, 400)
	m := b.Model()
	want := proto.Clone(m.Proto)
	path := filepath.Join(dir, "ext.onnx")
	if err := m.WriteExternal(path, "ext.onnx.data"); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(want, m.Proto) {
		t.Fatal("WriteExternal changed the model in memory")
	}
	// On disk the big tensor is external, the small one inline.
	raw, _ := os.ReadFile(path)
	disk := new(pb.ModelProto)
	if err := proto.Unmarshal(raw, disk); err != nil {
		t.Fatal(err)
	}
	if disk.Graph.Initializer[0].GetDataLocation() != pb.TensorProto_EXTERNAL || disk.Graph.Initializer[1].GetDataLocation() == pb.TensorProto_EXTERNAL {
		t.Fatalf("locations on disk: %v, %v", disk.Graph.Initializer[0].GetDataLocation(), disk.Graph.Initializer[1].GetDataLocation())
	}
	back, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(want, back.Proto) {
		t.Fatal("model read back from external data differs")
	}
	// A data file cut short is reported, not read past its end.
	if err := os.Truncate(filepath.Join(dir, "ext.onnx.data"), 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err == nil || !strings.Contains(err.Error(), "holds 1000 bytes") {
		t.Fatalf("truncated external data: %v", err)
	}
}

func TestWriteGoesExternalOverTheProtobufLimit(t *testing.T) {
	defer func(old int) { maxProtoSize = old }(maxProtoSize)
	maxProtoSize = 4096
	b := NewBuilder("big", 0)
	x := b.Input("x", Float, -1, 64)
	w := b.Float("w", []int64{64, 64}, make([]float32, 64*64))
	b.Output(b.Node("MatMul", []string{x, w}), Float, -1, 64)
	m := b.Model()
	path := filepath.Join(t.TempDir(), "big.onnx")
	if err := m.Write(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + ".data"); err != nil || fi.Size() != 64*64*4 {
		t.Fatalf("external data file: %v, %v", fi, err)
	}
	back, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(back.Proto, m.Proto) {
		t.Fatal("model written with external data reads back different")
	}
}

func TestHalfConversionsExhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := HalfToFloat32(uint16(h))
		if back := Float32ToHalf(f); back != uint16(h) {
			t.Fatalf("half %#04x -> %v -> %#04x", h, f, back)
		}
		g := BFloat16ToFloat32(uint16(h))
		if back := Float32ToBFloat16(g); back != uint16(h) {
			t.Fatalf("bfloat16 %#04x -> %v -> %#04x", h, g, back)
		}
	}
	cases := []struct {
		f    float32
		half uint16
	}{
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {65520, 0x7c00}, {1e-8, 0},
		{5.960464477539063e-08, 0x0001}, {0.33333334, 0x3555}, {1 + 1.0/2048, 0x3c00}, {1 + 3.0/2048, 0x3c02},
	}
	for _, c := range cases {
		if got := Float32ToHalf(c.f); got != c.half {
			t.Errorf("Float32ToHalf(%v) = %#04x, want %#04x", c.f, got, c.half)
		}
	}
	if got := Float32ToBFloat16(1 + 1.0/256); got != 0x3f80 { // halfway rounds to even
		t.Errorf("Float32ToBFloat16 halfway = %#04x", got)
	}
	if got := Float32ToBFloat16(1 + 3.0/256); got != 0x3f82 {
		t.Errorf("Float32ToBFloat16 halfway up = %#04x", got)
	}
}

func TestFloatViewsKeepDTypeAndEncoding(t *testing.T) {
	vals := []float32{0, -0.0, 1.5, -3.25, float32(math.Inf(1)), 65504, 1e-3}
	for _, dt := range []int32{Float, Double, Float16, BFloat16} {
		for _, raw := range []bool{true, false} {
			tp := &pb.TensorProto{Name: ptr("t"), DataType: ptr(dt), Dims: []int64{int64(len(vals))}}
			if raw {
				tp.RawData = make([]byte, len(vals)*ElemSize(dt))
			} else {
				switch dt {
				case Float:
					tp.FloatData = make([]float32, len(vals))
				case Double:
					tp.DoubleData = make([]float64, len(vals))
				default:
					tp.Int32Data = make([]int32, len(vals))
				}
			}
			if err := SetFloat32s(tp, vals); err != nil {
				t.Fatal(err)
			}
			if (tp.RawData != nil) != raw || tp.GetDataType() != dt {
				t.Fatalf("%s raw=%v: encoding or dtype changed", DTypeName(dt), raw)
			}
			got, err := Float32s(tp)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				want := v
				if dt == BFloat16 {
					want = BFloat16ToFloat32(Float32ToBFloat16(v))
				}
				if dt == Float16 {
					want = HalfToFloat32(Float32ToHalf(v))
				}
				if math.Float32bits(got[i]) != math.Float32bits(want) {
					t.Errorf("%s raw=%v: value %d = %v, want %v", DTypeName(dt), raw, i, got[i], want)
				}
			}
		}
	}
	d := &pb.TensorProto{Name: ptr("d"), DataType: ptr(Double), Dims: []int64{2}, DoubleData: []float64{0, 0}}
	exact := []float64{math.Pi, 1e-300}
	if err := SetFloat64s(d, exact); err != nil {
		t.Fatal(err)
	}
	if got, _ := Float64s(d); got[0] != exact[0] || got[1] != exact[1] {
		t.Errorf("float64 values %v, want %v", got, exact)
	}
	if err := SetFloat32s(d, []float32{1}); err == nil {
		t.Error("SetFloat32s accepted the wrong number of values")
	}
	if _, err := Float32s(NewInt64Tensor("i", []int64{1}, []int64{3})); err == nil {
		t.Error("Float32s accepted an int64 tensor")
	}
}

func TestTopoOrderAndCycles(t *testing.T) {
	b := NewBuilder("unsorted", 0)
	x := b.Input("x", Float, 2)
	b.NodeAs("c", "Relu", []string{"b"})
	b.NodeAs("b", "Relu", []string{"a"})
	b.NodeAs("a", "Relu", []string{x})
	ix, err := NewIndex(b.Model().Graph())
	if err != nil {
		t.Fatal(err)
	}
	if got := ix.Order; len(got) != 3 || got[0] != 2 || got[1] != 1 || got[2] != 0 {
		t.Errorf("order %v, want [2 1 0]", got)
	}
	b.NodeAs("d", "Add", []string{"c", "e"})
	b.NodeAs("e", "Relu", []string{"d"})
	if _, err := NewIndex(b.Model().Graph()); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle not reported: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	f.Add(mustMarshal(f, tinyModel()))
	for _, p := range []string{"pytorch-converted/test_Conv2d", "pytorch-converted/test_BatchNorm2d_eval", "simple/test_sequence_model1"} {
		if b, err := os.ReadFile(filepath.Join(testdata, p, "model.onnx")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add([]byte("\x08\x07\x12\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data, "")
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		layers, err := m.Layers()
		if err != nil {
			return
		}
		for _, l := range layers {
			for _, p := range l.Params {
				if _, err := Float32s(p.Tensor); err != nil {
					t.Fatalf("layer param %q of a decoded model unreadable: %v", p.Name, err)
				}
			}
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(b, ""); err != nil {
			t.Fatalf("re-encoded model rejected: %v", err)
		}
	})
}

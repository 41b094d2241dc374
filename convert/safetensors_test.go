package convert

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// encode is EncodeSafetensors into memory, for tests.
func encode(t testing.TB, tensors map[string]Tensor, metadata map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := EncodeSafetensors(&buf, tensors, metadata); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decodeBytes(data []byte) (*File, error) {
	return DecodeSafetensors(bytes.NewReader(data), int64(len(data)))
}

// equalFiles reports how two files differ, or "" if they do not. A nil and an
// empty shape or data are equal: both mean the same bytes on disk.
func equalFiles(got, want *File) string {
	if !maps.Equal(got.Metadata, want.Metadata) {
		return fmt.Sprintf("metadata = %q, want %q", got.Metadata, want.Metadata)
	}
	if len(got.Tensors) != len(want.Tensors) {
		return fmt.Sprintf("%d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	for name, w := range want.Tensors {
		g, ok := got.Tensors[name]
		switch {
		case !ok:
			return fmt.Sprintf("tensor %q missing", name)
		case g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data):
			return fmt.Sprintf("tensor %q = %s %v % x, want %s %v % x", name, g.DType, g.Shape, g.Data, w.DType, w.Shape, w.Data)
		}
	}
	return ""
}

// le64 is the 8-byte header length field.
func le64(n uint64) string {
	return string(binary.LittleEndian.AppendUint64(nil, n))
}

// sample has a tensor of every dtype, a scalar and empty tensors.
func sample() *File {
	f := &File{Tensors: map[string]Tensor{}, Metadata: map[string]string{
		"format": "pt",
		"layout": `{"tokens": [0, 12], "note": "a\"b\\c <&> é\n\t\u0001"}`,
	}}
	for name, dt := range dtypes {
		shape := []int64{2, 3}
		data := make([]byte, 6*dt.size)
		for i := range data {
			data[i] = byte(i*7 + dt.rank)
		}
		f.Tensors["t."+name] = Tensor{DType: name, Shape: shape, Data: data}
	}
	f.Tensors["scalar"] = Float64Tensor(nil, []float64{3.5})
	f.Tensors["empty"] = Tensor{DType: "F32", Shape: []int64{4, 0, 2}, Data: []byte{}}
	f.Tensors[""] = Uint8Tensor([]int64{1}, []uint8{9})
	f.Tensors["ünï/cödé \"name\""] = Int32Tensor([]int64{2}, []int32{-1, 1 << 30})
	return f
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		file *File
	}{
		{"every dtype", sample()},
		{"no tensors", &File{Tensors: map[string]Tensor{}, Metadata: map[string]string{}}},
		{"no metadata", &File{Tensors: map[string]Tensor{"w": Float32Tensor([]int64{1}, []float32{1})}, Metadata: map[string]string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := encode(t, tt.file.Tensors, tt.file.Metadata)
			got, err := decodeBytes(data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := equalFiles(got, tt.file); diff != "" {
				t.Fatal("decode(encode(f)):", diff)
			}

			path := filepath.Join(t.TempDir(), "f.safetensors")
			if err := WriteSafetensors(path, tt.file.Tensors, tt.file.Metadata); err != nil {
				t.Fatal(err)
			}
			onDisk, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(onDisk, data) {
				t.Fatal("WriteSafetensors and EncodeSafetensors wrote different bytes")
			}
			got, err = ReadSafetensors(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := equalFiles(got, tt.file); diff != "" {
				t.Fatal("ReadSafetensors:", diff)
			}
		})
	}
}

func TestEncodeAlignsEveryTensor(t *testing.T) {
	f := sample()
	data := encode(t, f.Tensors, nil)
	n := binary.LittleEndian.Uint64(data)
	if (8+n)%8 != 0 {
		t.Fatalf("data buffer starts at %d, want a multiple of 8", 8+n)
	}
	var header map[string]struct {
		DataOffsets [2]int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(data[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	for name, tensor := range f.Tensors {
		if off, size := header[name].DataOffsets[0], int64(dtypes[tensor.DType].size); off%size != 0 {
			t.Errorf("tensor %q (%s) starts at buffer offset %d, not a multiple of %d", name, tensor.DType, off, size)
		}
	}
}

// The expected bytes are written out by hand from the format description.
// The first four are the reference implementation's own test vectors
// (safetensors/src/tensor.rs: test_serialization,
// test_serialization_forced_alignement, test_empty), so passing them means
// Python reads what we write and we write what Python writes.
func TestGolden(t *testing.T) {
	f32s := "\x00\x00\x00\x00\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\x40\x00\x00\xa0\x40" // 0, 1, 2, 3, 4, 5
	tests := []struct {
		name     string
		tensors  map[string]Tensor
		metadata map[string]string
		want     string
	}{
		{
			name:    "reference test_serialization",
			tensors: map[string]Tensor{"attn.0": Float32Tensor([]int64{1, 2, 3}, []float32{0, 1, 2, 3, 4, 5})},
			want:    le64(64) + `{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}` + f32s,
		},
		{
			name:    "reference test_serialization_forced_alignement",
			tensors: map[string]Tensor{"attn0": Float32Tensor([]int64{1, 1, 2, 3}, []float32{0, 1, 2, 3, 4, 5})},
			want:    le64(72) + `{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}` + "       " + f32s,
		},
		{
			name:    "reference test_empty",
			tensors: map[string]Tensor{},
			want:    le64(8) + "{}      ",
		},
		{
			name:     "reference test_empty with metadata",
			tensors:  map[string]Tensor{},
			metadata: map[string]string{"framework": "pt"},
			want:     le64(40) + `{"__metadata__":{"framework":"pt"}}` + "     ",
		},
		{
			// Tensors by descending dtype (F64, F32, I32, U8, BOOL), then
			// name; metadata first with sorted keys, escaped as serde_json
			// does (a quote, but not < or >).
			name: "dtype order and escaping",
			tensors: map[string]Tensor{
				"b": Uint8Tensor([]int64{3}, []uint8{1, 2, 3}),
				"a": Float32Tensor([]int64{2}, []float32{1, -2}),
				"c": Float64Tensor([]int64{1}, []float64{0.5}),
				"d": Int32Tensor(nil, []int32{-1}),
				"e": {DType: "BOOL", Shape: []int64{2, 0}},
			},
			metadata: map[string]string{"note": `a"b<c>`, "format": "pt"},
			want: le64(328) +
				`{"__metadata__":{"format":"pt","note":"a\"b<c>"},` +
				`"c":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},` +
				`"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},` +
				`"d":{"dtype":"I32","shape":[],"data_offsets":[16,20]},` +
				`"b":{"dtype":"U8","shape":[3],"data_offsets":[20,23]},` +
				`"e":{"dtype":"BOOL","shape":[2,0],"data_offsets":[23,23]}}` + "      " +
				"\x00\x00\x00\x00\x00\x00\xe0\x3f" + // c: 0.5
				"\x00\x00\x80\x3f\x00\x00\x00\xc0" + // a: 1, -2
				"\xff\xff\xff\xff" + // d: -1
				"\x01\x02\x03", // b
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := encode(t, tt.tensors, tt.metadata)
			if string(got) != tt.want {
				t.Errorf("encoded\n%q\nwant\n%q", got, tt.want)
			}
			f, err := decodeBytes([]byte(tt.want))
			if err != nil {
				t.Fatal(err)
			}
			want := &File{Tensors: tt.tensors, Metadata: tt.metadata}
			if want.Metadata == nil {
				want.Metadata = map[string]string{}
			}
			if diff := equalFiles(f, want); diff != "" {
				t.Error("decoded golden bytes:", diff)
			}
		})
	}
}

// Files from other writers may list tensors in any order, put __metadata__
// anywhere, use whitespace and pad the header; all of that must read.
func TestDecodeAcceptsReferenceVariants(t *testing.T) {
	header := "\n{ \"b\": {\"data_offsets\": [4, 6], \"shape\": [1], \"dtype\": \"F16\"},\n" +
		"  \"__metadata__\": {\"k\": \"v\"},\n" +
		"  \"a\": {\"dtype\": \"I32\", \"shape\": [], \"data_offsets\": [0, 4]} }   "
	data := le64(uint64(len(header))) + header + "\x01\x02\x03\x04\x05\x06"
	f, err := decodeBytes([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := &File{
		Tensors: map[string]Tensor{
			"a": {DType: "I32", Shape: []int64{}, Data: []byte{1, 2, 3, 4}},
			"b": {DType: "F16", Shape: []int64{1}, Data: []byte{5, 6}},
		},
		Metadata: map[string]string{"k": "v"},
	}
	if diff := equalFiles(f, want); diff != "" {
		t.Fatal(diff)
	}
	for _, md := range []string{`null`, `{}`} {
		header := `{"__metadata__":` + md + `}`
		f, err := decodeBytes([]byte(le64(uint64(len(header))) + header))
		if err != nil || f.Metadata == nil || len(f.Metadata) != 0 {
			t.Errorf("__metadata__ %s: metadata %v, error %v; want empty, nil", md, f.Metadata, err)
		}
	}
}

// Tensors share one buffer; appending to one must not overwrite the next.
func TestDecodedDataIsCapped(t *testing.T) {
	f, err := decodeBytes(encode(t, map[string]Tensor{
		"a": Uint8Tensor([]int64{1}, []uint8{1}),
		"b": Uint8Tensor([]int64{1}, []uint8{2}),
	}, nil))
	if err != nil {
		t.Fatal(err)
	}
	_ = append(f.Tensors["a"].Data, 99)
	if f.Tensors["b"].Data[0] != 2 {
		t.Fatal("appending to tensor a changed tensor b")
	}
}

// file builds a safetensors file from a header and a data buffer.
func file(header, data string) []byte {
	return []byte(le64(uint64(len(header))) + header + data)
}

func TestDecodeErrors(t *testing.T) {
	f32 := func(name string, shape string, begin, end int) string {
		return fmt.Sprintf(`%q:{"dtype":"F32","shape":%s,"data_offsets":[%d,%d]}`, name, shape, begin, end)
	}
	valid := file(`{`+f32("w", "[2]", 0, 8)+`}`, "12345678")
	tests := []struct {
		name string
		data []byte
		want string // substring of the error
	}{
		{"empty file", nil, "file has 0 bytes, want at least 8"},
		{"shorter than 8 bytes", []byte{1, 0, 0}, "file has 3 bytes, want at least 8"},
		{"truncated", valid[:len(valid)-1], "data_offsets [0, 8] run past the 7-byte data buffer"},
		{"truncated header", valid[:20], "header length 54 exceeds the 12 bytes after the length field"},
		{"header length beyond file", []byte(le64(1<<62) + "{}"), "header length 4611686018427387904 exceeds the 2 bytes"},
		{"header length max uint64", []byte(le64(1<<64-1) + "{}"), "exceeds the 2 bytes"},
		{"empty header", file("", ""), "header is not valid JSON: unexpected end of JSON input"},
		{"header not JSON", file("not json", ""), "header is not valid JSON: invalid character 'o' in literal null (expecting 'u') at byte 2"},
		{"header not an object", file("[1, 2]", ""), "found an array, want an object"},
		{"header a huge number", file("1E01000000", ""), "found a number, want an object"},
		{"header truncated JSON", file(`{"w":{"dtype":"F32"`, ""), "header is not valid JSON: unexpected end of JSON input"},
		{"trailing JSON", file(`{} {}`, ""), "invalid character '{' after top-level value"},
		{"trailing garbage", file(`{}x`, ""), "invalid character 'x'"},
		{"NUL padding", file("{}\x00\x00", ""), "invalid character"},
		{"invalid UTF-8", file("{\"\xff\":1}", ""), "not valid UTF-8"},
		{"tensor not an object", file(`{"w":[1]}`, ""), `tensor "w": found an array, want an object`},
		{"unknown dtype", file(`{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, strings.Repeat("x", 16)), `unknown dtype "F128"`},
		{"sub-byte dtype", file(`{"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, "x"), `unknown dtype "F4"`},
		{"dtype not a string", file(`{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, "xxxx"), "dtype is a number, want a string"},
		{"dtype null", file(`{"w":{"dtype":null,"shape":[1],"data_offsets":[0,4]}}`, "xxxx"), "dtype is null"},
		{"no dtype", file(`{"w":{"shape":[1],"data_offsets":[0,4]}}`, "xxxx"), "no dtype"},
		{"no shape", file(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, "xxxx"), "no shape"},
		{"no offsets", file(`{"w":{"dtype":"F32","shape":[1]}}`, "xxxx"), "no data_offsets"},
		{"shape null", file(`{`+f32("w", "null", 0, 4)+`}`, "xxxx"), "shape: found null"},
		{"shape negative", file(`{`+f32("w", "[-1]", 0, 4)+`}`, "xxxx"), "element 0 is -1"},
		{"shape fraction", file(`{`+f32("w", "[1.5]", 0, 4)+`}`, "xxxx"), "element 0 is 1.5"},
		{"shape string", file(`{`+f32("w", `["1"]`, 0, 4)+`}`, "xxxx"), "element 0 is not a number"},
		{"shape beyond uint64", file(`{`+f32("w", "[18446744073709551616]", 0, 4)+`}`, "xxxx"), "want an integer in [0, 2^64)"},
		{"shape beyond int64", file(`{`+f32("w", "[9223372036854775808]", 0, 4)+`}`, "xxxx"), "shape element 0 is 9223372036854775808, more than an int64 holds"},
		{"shape product overflow", file(`{`+f32("w", "[4294967296,4294967296]", 0, 4)+`}`, "xxxx"), "overflows int64"},
		{"long shape", file(`{`+f32("w", "[1,2,3,4,5,6,7,8,9,10]", 0, 4)+`}`, "xxxx"), "want 14515200 for F32 [1 2 3 4 ... 9 10] (10 dimensions)"},
		{"shape overflow before a zero", file(`{`+f32("w", "[4294967296,4294967296,0]", 0, 0)+`}`, ""), "overflows int64"},
		{"offsets one value", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}}`, "xxxx"), "data_offsets has 1 values, want 2"},
		{"offsets three values", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, "xxxx"), "data_offsets has 3 values, want 2"},
		{"offsets reversed", file(`{`+f32("w", "[0]", 4, 0)+`}`, "xxxx"), "end before they begin"},
		{"offsets past buffer", file(`{`+f32("w", "[1]", 0, 4)+`}`, "xx"), "run past the 2-byte data buffer"},
		{"offsets max uint64", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551615]}}`, "xxxx"), "run past the 4-byte data buffer"},
		{"offsets mismatch shape", file(`{`+f32("w", "[2]", 0, 4)+`}`, "xxxx"), "data_offsets [0, 4] span 4 bytes, want 8 for F32 [2]"},
		{"overlap", file(`{`+f32("a", "[2]", 0, 8)+`,`+f32("b", "[2]", 4, 12)+`}`, strings.Repeat("x", 12)), `tensor "b" data_offsets [4, 12] overlap tensor "a" [0, 8]`},
		{"same bytes twice", file(`{`+f32("a", "[1]", 0, 4)+`,`+f32("b", "[1]", 0, 4)+`}`, "xxxx"), `overlap tensor "a"`},
		{"gap", file(`{`+f32("a", "[1]", 0, 4)+`,`+f32("b", "[1]", 8, 12)+`}`, strings.Repeat("x", 12)), "bytes [4, 8) of the data buffer belong to no tensor"},
		{"gap at start", file(`{`+f32("a", "[1]", 4, 8)+`}`, strings.Repeat("x", 8)), "bytes [0, 4) of the data buffer belong to no tensor"},
		{"buffer not covered", file(`{`+f32("a", "[1]", 0, 4)+`}`, strings.Repeat("x", 6)), "bytes [4, 6) of the data buffer belong to no tensor"},
		{"data without tensors", file(`{}`, "x"), "bytes [0, 1) of the data buffer belong to no tensor"},
		{"duplicate tensor", file(`{`+f32("w", "[1]", 0, 4)+`,`+f32("w", "[1]", 4, 8)+`}`, strings.Repeat("x", 8)), `duplicate key "w"`},
		{"duplicate field", file(`{"w":{"dtype":"F32","dtype":"U8","shape":[1],"data_offsets":[0,4]}}`, "xxxx"), `duplicate key "dtype"`},
		{"duplicate metadata", file(`{"__metadata__":{"k":"a","k":"b"}}`, ""), `duplicate key "k"`},
		{"duplicate __metadata__", file(`{"__metadata__":{},"__metadata__":{}}`, ""), `duplicate key "__metadata__"`},
		{"unknown field", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, "xxxx"), `unknown field "x"`},
		{"metadata not an object", file(`{"__metadata__":"pt"}`, ""), "__metadata__: found a string, want an object"},
		{"metadata value not a string", file(`{"__metadata__":{"epoch":3}}`, ""), `key "epoch": value is a number, want a string`},
		{"metadata value null", file(`{"__metadata__":{"k":null}}`, ""), `key "k": value is null, want a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := decodeBytes(tt.data)
			if err == nil {
				t.Fatalf("no error, decoded %d tensors", len(f.Tensors))
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %q does not match ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines", err)
			}
		})
	}
}

// A header length the file merely claims must not be allocated.
func TestDecodeDoesNotTrustClaimedSizes(t *testing.T) {
	claims := []struct {
		name string
		data []byte
	}{
		{"header length", []byte(le64(maxHeader-8) + "{}")},
		{"offsets", file(`{"w":{"dtype":"U8","shape":[90000000],"data_offsets":[0,90000000]}}`, "x")},
		{"shape", file(`{"w":{"dtype":"U8","shape":[90000000],"data_offsets":[0,1]}}`, "x")},
	}
	for _, c := range claims {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if _, err := decodeBytes(c.data); err == nil {
				t.Fatal("no error")
			}
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Fatalf("decoding a %d-byte file allocated %d bytes", len(c.data), n)
			}
		})
	}
}

// hugeFile is a ReaderAt for a file of any size whose header claims to be
// larger than the reference's limit; past the length field it reads as zeros.
type hugeFile struct{}

func (hugeFile) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	if off == 0 && len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, maxHeader+1)
	}
	return len(p), nil
}

func TestDecodeHeaderLimit(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := DecodeSafetensors(hugeFile{}, 1<<40)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "header length 100000001 exceeds the limit of 100000000") {
		t.Fatalf("error %v, want the header limit", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("rejecting the header allocated %d bytes", n)
	}
}

// shortReader is a ReaderAt with fewer bytes than the size its caller gives.
type shortReader struct{ data []byte }

func (r shortReader) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(r.data).ReadAt(p, off)
}

func TestDecodeShortReader(t *testing.T) {
	data := encode(t, map[string]Tensor{"w": Float32Tensor([]int64{2}, []float32{1, 2})}, nil)
	_, err := DecodeSafetensors(shortReader{data[:len(data)-3]}, int64(len(data)))
	if err == nil || !strings.Contains(err.Error(), "reading tensor data: unexpected EOF") {
		t.Fatalf("error %v, want unexpected EOF while reading tensor data", err)
	}
}

func TestReadSafetensorsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(bad, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want string
	}{
		{filepath.Join(dir, "missing.safetensors"), "no such file"},
		{dir, "is not a regular file"},
		{bad, "bad.safetensors: file has 2 bytes, want at least 8"},
	}
	for _, tt := range tests {
		_, err := ReadSafetensors(tt.path)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "convert: ") {
			t.Errorf("ReadSafetensors(%s): error %v, want one containing %q", tt.path, err, tt.want)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		tensors  map[string]Tensor
		metadata map[string]string
		want     string
	}{
		{"short data", map[string]Tensor{"w": {DType: "F32", Shape: []int64{3}, Data: make([]byte, 8)}}, nil, `tensor "w": data has 8 bytes, want 12 for F32 [3]`},
		{"long data", map[string]Tensor{"w": {DType: "U8", Shape: []int64{}, Data: make([]byte, 2)}}, nil, "data has 2 bytes, want 1"},
		{"unknown dtype", map[string]Tensor{"w": {DType: "f32", Shape: []int64{1}, Data: make([]byte, 4)}}, nil, `unknown dtype "f32"`},
		{"negative dimension", map[string]Tensor{"w": {DType: "F32", Shape: []int64{2, -2}, Data: make([]byte, 16)}}, nil, "negative dimension -2"},
		{"overflow", map[string]Tensor{"w": {DType: "F64", Shape: []int64{1 << 31, 1 << 31}}}, nil, "overflows int64"},
		{"reserved name", map[string]Tensor{"__metadata__": Uint8Tensor(nil, []uint8{1})}, nil, "reserved for metadata"},
		{"name not UTF-8", map[string]Tensor{"\xff": Uint8Tensor(nil, []uint8{1})}, nil, "not valid UTF-8"},
		{"metadata not UTF-8", nil, map[string]string{"k": "\xfe"}, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := EncodeSafetensors(&buf, tt.tensors, tt.metadata)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written before the error", buf.Len())
			}

			dir := t.TempDir()
			path := filepath.Join(dir, "out.safetensors")
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			err = WriteSafetensors(path, tt.tensors, tt.metadata)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("WriteSafetensors: error %v, want one naming %s and containing %q", err, path, tt.want)
			}
			assertOnly(t, dir, "out.safetensors", "old")
		})
	}
}

// assertOnly fails unless dir holds exactly one file, name, with content.
func assertOnly(t *testing.T, dir, name, content string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		t.Fatalf("directory holds %v, want only %s", entries, name)
	}
	got, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != content {
		t.Fatalf("%s holds %q, want %q", name, got, content)
	}
}

func TestWriteSafetensorsAtomic(t *testing.T) {
	tensors := map[string]Tensor{"w": Float32Tensor([]int64{2}, []float32{1, 2})}

	t.Run("invalid tensor creates no file", func(t *testing.T) {
		dir := t.TempDir()
		bad := map[string]Tensor{"w": {DType: "F32", Shape: []int64{2}, Data: []byte{1}}}
		if err := WriteSafetensors(filepath.Join(dir, "out.safetensors"), bad, nil); err == nil {
			t.Fatal("no error")
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("directory holds %v, want nothing", entries)
		}
	})

	t.Run("failed rename leaves no temporary file", func(t *testing.T) {
		dir := t.TempDir()
		// A non-empty directory at path makes the final rename fail after
		// all bytes went to the temporary file.
		path := filepath.Join(dir, "out.safetensors")
		if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := WriteSafetensors(path, tensors, nil); err == nil {
			t.Fatal("no error")
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 || entries[0].Name() != "out.safetensors" || !entries[0].IsDir() {
			t.Fatalf("directory holds %v, want only the directory out.safetensors", entries)
		}
	})

	t.Run("replaces an existing file", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "out.safetensors")
		if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := WriteSafetensors(path, tensors, map[string]string{"k": "v"}); err != nil {
			t.Fatal(err)
		}
		assertOnly(t, dir, "out.safetensors", string(encode(t, tensors, map[string]string{"k": "v"})))
	})

	t.Run("missing directory", func(t *testing.T) {
		err := WriteSafetensors(filepath.Join(t.TempDir(), "no", "out.safetensors"), tensors, nil)
		if err == nil || !strings.HasPrefix(err.Error(), "convert: ") {
			t.Fatalf("error %v, want a convert error", err)
		}
	})
}

// failWriter fails once more than limit bytes were written.
type failWriter struct{ limit int }

var errWrite = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.limit {
		n := w.limit
		w.limit = 0
		return n, errWrite
	}
	w.limit -= len(p)
	return len(p), nil
}

func TestEncodeWriteError(t *testing.T) {
	data := encode(t, sample().Tensors, nil)
	for _, limit := range []int{0, 7, 100, len(data) - 1} {
		err := EncodeSafetensors(&failWriter{limit}, sample().Tensors, nil)
		if !errors.Is(err, errWrite) {
			t.Errorf("writer failing after %d bytes: error %v, want %v", limit, err, errWrite)
		}
	}
}

// FuzzReadSafetensors checks that no input panics or over-allocates, that every
// error is a format error, and that whatever is accepted encodes to a file
// that decodes equal and re-encodes to the same bytes.
func FuzzReadSafetensors(f *testing.F) {
	valid := encode(f, sample().Tensors, sample().Metadata)
	small := encode(f, map[string]Tensor{
		"a": Float32Tensor([]int64{2}, []float32{1, 2}),
		"b": Uint8Tensor([]int64{1, 1}, []uint8{7}),
	}, map[string]string{"k": "v"})
	f.Add(valid)
	f.Add(small)
	f.Add(valid[:len(valid)/2])
	f.Add(small[:len(small)-1])
	f.Add(small[:8])
	f.Add(small[:3])
	f.Add([]byte{})
	f.Add(file(`{}`, ""))
	f.Add(file(`{"__metadata__":null}`, ""))
	f.Add(file(` {"a":{"dtype":"I64","shape":[],"data_offsets":[0,8]}, "b":{"dtype":"BOOL","shape":[0],"data_offsets":[8,8]}} `, "12345678"))
	f.Add(file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}`, "123456"))
	f.Add(file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, "12345678"))
	f.Add(file(`{"a":{"dtype":"F16","shape":[4294967296,4294967296],"data_offsets":[0,2]}}`, "12"))
	f.Add(file("{\"\\u00e9\\ud800\\n\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "1"))
	f.Add([]byte(le64(1<<63) + "{}"))
	f.Add(file(`{"__metadata__":{"a":"\u2028<>&\"\\\u0000","":""},"":{"dtype":"BF16","shape":[1,1],"data_offsets":[0,2]}}`, "12"))
	f.Add(file(`{"x":{"dtype":"U64","shape":[1],"data_offsets":[0,8]},"y":{"dtype":"F8_E4M3","shape":[3],"data_offsets":[8,11]}}`, "12345678abc"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeBytes(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %q does not match ErrFormat", err)
			}
			return
		}
		var size int
		for _, tensor := range got.Tensors {
			size += len(tensor.Data)
		}
		if size > len(data) {
			t.Fatalf("%d bytes of tensor data from a %d-byte file", size, len(data))
		}
		var buf bytes.Buffer
		if err := EncodeSafetensors(&buf, got.Tensors, got.Metadata); err != nil {
			t.Fatalf("accepted file does not re-encode: %v", err)
		}
		again, err := decodeBytes(buf.Bytes())
		if err != nil {
			t.Fatalf("re-encoded file does not decode: %v", err)
		}
		if diff := equalFiles(again, got); diff != "" {
			t.Fatal("decode(encode(decode(data))):", diff)
		}
		var buf2 bytes.Buffer
		if err := EncodeSafetensors(&buf2, again.Tensors, again.Metadata); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatal("encoding is not canonical: two encodings of equal files differ")
		}
	})
}

// FuzzEncodeSafetensors checks the writer on arbitrary names, metadata and
// shapes: invalid input is refused before anything is written, and valid
// input decodes to exactly what was encoded.
func FuzzEncodeSafetensors(f *testing.F) {
	f.Add("w", "k", "v", uint8(0), uint8(2), uint8(3), "\u2028<a\"b\\c\x00\x1f\x7f>")
	f.Add("", "", "", uint8(5), uint8(0), uint8(1), "")
	f.Add("__metadata__", "k", "\xff", uint8(9), uint8(1), uint8(1), "x")
	names := slices.Sorted(maps.Keys(dtypes))
	f.Fuzz(func(t *testing.T, name, key, value string, dtype, d0, d1 uint8, other string) {
		dt := names[int(dtype)%len(names)]
		shape := []int64{int64(d0 % 8), int64(d1 % 8)}
		data := make([]byte, int(shape[0]*shape[1])*dtypes[dt].size)
		for i := range data {
			data[i] = byte(i) ^ dtype
		}
		tensors := map[string]Tensor{name: {DType: dt, Shape: shape, Data: data}, other: Float32Tensor(nil, []float32{1})}
		metadata := map[string]string{key: value}
		var buf bytes.Buffer
		err := EncodeSafetensors(&buf, tensors, metadata)
		valid := name != metadataKey && other != metadataKey &&
			utf8.ValidString(name) && utf8.ValidString(other) && utf8.ValidString(key) && utf8.ValidString(value)
		if !valid {
			if err == nil || buf.Len() != 0 {
				t.Fatalf("invalid input: error %v, %d bytes written", err, buf.Len())
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeBytes(buf.Bytes())
		if err != nil {
			t.Fatalf("encoded file does not decode: %v", err)
		}
		if diff := equalFiles(got, &File{Tensors: tensors, Metadata: metadata}); diff != "" {
			t.Fatal(diff)
		}
	})
}

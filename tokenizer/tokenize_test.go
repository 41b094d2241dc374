package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

func seq(from float32, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = from + float32(i)
	}
	return v
}

// row is the expected content of one token: its values with padding left
// out, and its position.
type row struct {
	values []float32
	pos    [3]int32
}

func TestTokenizeLayout(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *onnx.Builder)
		width int
		want  []row
	}{{
		name: "Gemm transB=1: a row per output feature, bias appended",
		build: func(b *onnx.Builder) {
			b.Node("Gemm", []string{"x", b.Float("W", []int64{2, 3}, seq(1, 6)), b.Float("B", []int64{2}, seq(7, 2))}, onnx.Int("transB", 1))
		},
		want: []row{{[]float32{1, 2, 3, 7}, [3]int32{0, 0, 0}}, {[]float32{4, 5, 6, 8}, [3]int32{1, 0, 1}}},
	}, {
		name: "Gemm transB=0: a row per column",
		build: func(b *onnx.Builder) {
			b.Node("Gemm", []string{"x", b.Float("W", []int64{3, 2}, seq(1, 6)), b.Float("B", []int64{2}, seq(7, 2))})
		},
		want: []row{{[]float32{1, 3, 5, 7}, [3]int32{0, 0, 0}}, {[]float32{2, 4, 6, 8}, [3]int32{1, 0, 1}}},
	}, {
		name: "MatMul+Add: the Add's constant is the bias",
		build: func(b *onnx.Builder) {
			h := b.Node("MatMul", []string{"x", b.Float("W", []int64{3, 2}, seq(1, 6))})
			b.Node("Add", []string{h, b.Float("B", []int64{2}, seq(7, 2))})
		},
		want: []row{{[]float32{1, 3, 5, 7}, [3]int32{0, 0, 0}}, {[]float32{2, 4, 6, 8}, [3]int32{1, 0, 1}}},
	}, {
		name: "Conv+BatchNormalization, cut into tokens of 4",
		build: func(b *onnx.Builder) {
			c := b.Node("Conv", []string{"x", b.Float("W", []int64{2, 1, 2, 2}, seq(1, 8)), b.Float("B", []int64{2}, seq(9, 2))})
			b.Node("BatchNormalization", []string{c, b.Float("s", []int64{2}, seq(11, 2)), b.Float("b", []int64{2}, seq(13, 2)),
				b.Float("m", []int64{2}, seq(15, 2)), b.Float("v", []int64{2}, seq(17, 2))})
		},
		width: 4,
		want: []row{
			{[]float32{1, 2, 3, 4}, [3]int32{0, 0, 0}}, {[]float32{9, 11, 13, 15}, [3]int32{1, 0, 0}}, {[]float32{17}, [3]int32{2, 0, 0}},
			{[]float32{5, 6, 7, 8}, [3]int32{3, 0, 1}}, {[]float32{10, 12, 14, 16}, [3]int32{4, 0, 1}}, {[]float32{18}, [3]int32{5, 0, 1}},
		},
	}, {
		name: "MatMul+LayerNormalization merged",
		build: func(b *onnx.Builder) {
			h := b.Node("MatMul", []string{"x", b.Float("W", []int64{2, 2}, seq(1, 4))})
			b.Node("LayerNormalization", []string{h, b.Float("s", []int64{2}, seq(5, 2)), b.Float("b", []int64{2}, seq(7, 2))})
		},
		want: []row{{[]float32{1, 3, 5, 7}, [3]int32{0, 0, 0}}, {[]float32{2, 4, 6, 8}, [3]int32{1, 0, 1}}},
	}, {
		name: "a Gemm bias of one value gets a row of its own",
		build: func(b *onnx.Builder) {
			b.Node("Gemm", []string{"x", b.Float("W", []int64{2, 2}, seq(1, 4)), b.Float("B", []int64{1}, []float32{9})}, onnx.Int("transB", 1))
		},
		want: []row{{[]float32{1, 2}, [3]int32{0, 0, 0}}, {[]float32{3, 4}, [3]int32{1, 0, 1}}, {[]float32{9}, [3]int32{2, 0, 2}}},
	}, {
		name: "BatchNormalization of another size is a layer of its own; unclaimed tensors give rows along axis 0",
		build: func(b *onnx.Builder) {
			c := b.Node("Conv", []string{"x", b.Float("W", []int64{1, 1, 1, 2}, seq(1, 2))})
			b.Node("BatchNormalization", []string{c, b.Float("s", []int64{2}, seq(3, 2)), b.Float("b", []int64{2}, seq(5, 2)),
				b.Float("m", []int64{2}, seq(7, 2)), b.Float("v", []int64{2}, seq(9, 2))})
			b.Node("Mul", []string{"x", b.Float("k", []int64{2, 1, 2}, seq(11, 4))})
			b.Float("scalar", nil, []float32{15})
		},
		want: []row{
			{[]float32{1, 2}, [3]int32{0, 0, 0}},
			{[]float32{3, 5, 7, 9}, [3]int32{1, 1, 0}}, {[]float32{4, 6, 8, 10}, [3]int32{2, 1, 1}},
			{[]float32{11, 12}, [3]int32{3, 2, 0}}, {[]float32{13, 14}, [3]int32{4, 2, 1}},
			{[]float32{15}, [3]int32{5, 3, 0}},
		},
	}, {
		name:  "no weights, no tokens",
		build: func(b *onnx.Builder) { b.Node("Relu", []string{"x"}) },
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := onnx.NewBuilder("g", 0)
			b.Input("x", onnx.Float, 1, 1)
			tt.build(b)
			m := b.Model()
			tok, err := Tokenize(m, Options{TokenSize: tt.width})
			if err != nil {
				t.Fatal(err)
			}
			var got []row
			w := tok.Width
			for k := 0; k < tok.Len(); k++ {
				r := row{pos: [3]int32(tok.Positions[3*k:])}
				for i := k * w; i < (k+1)*w; i++ {
					switch {
					case tok.Mask[i] == 1:
						r.values = append(r.values, tok.Values[i])
					case tok.Values[i] != 0:
						t.Errorf("token %d: padding holds %v", k, tok.Values[i])
					}
				}
				got = append(got, r)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("tokens of width %d:\n got %v\nwant %v\nlayout %+v", w, got, tt.want, tok.Layout)
			}
			checkRoundTrip(t, m, tok)
		})
	}
}

// checkRoundTrip detokenizes tok into a copy of m with other weights and
// wants m back.
func checkRoundTrip(t *testing.T, m *onnx.Model, tok *Tokens) {
	t.Helper()
	d, err := Detokenize(tok, scramble(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(d.Proto, m.Proto) {
		t.Errorf("detokenized model differs: %v", firstDiff(m, d))
	}
	// proto.Equal takes any NaN for any other: compare the bytes too.
	a, _ := m.Marshal()
	b, _ := d.Marshal()
	if !bytes.Equal(a, b) {
		t.Error("detokenized model serializes differently")
	}
}

// firstDiff names the first initializer that differs, for messages.
func firstDiff(a, b *onnx.Model) string {
	if c := changedTensors(a, b); len(c) > 0 {
		return "initializer " + c[0]
	}
	return "outside the initializers"
}

func TestTokenizeLSTM(t *testing.T) {
	b := onnx.NewBuilder("g", 0)
	const h, in = 3, 2
	b.NodeOut("lstm", "LSTM", []string{"x", b.Float("W", []int64{1, 4 * h, in}, seq(0, 4*h*in)),
		b.Float("R", []int64{1, 4 * h, h}, seq(100, 4*h*h)), b.Float("B", []int64{1, 8 * h}, seq(200, 8*h))},
		[]string{"y"}, onnx.Int("hidden_size", h))
	m := b.Model()
	tok, err := Tokenize(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := tok.Layout.Layers[0]
	want := []Tensor{
		{Name: "W", Role: onnx.RoleWeight, Dims: []int64{1, 4 * h, in}, DType: onnx.Float, UnitAxis: 1, Units: 4 * h, Row: 0, Offset: 0, PerRow: in},
		{Name: "R", Role: onnx.RoleRecurrence, Dims: []int64{1, 4 * h, h}, DType: onnx.Float, UnitAxis: 1, Units: 4 * h, Row: 0, Offset: in, PerRow: h},
		{Name: "B", Role: onnx.RoleBias, Dims: []int64{1, 8 * h}, DType: onnx.Float, UnitAxis: 1, Units: 8 * h, Row: 4 * h, Offset: 0, PerRow: 1},
	}
	if !reflect.DeepEqual(l.Tensors, want) || l.Rows != 12*h || tok.Width != in+h || tok.Len() != 12*h {
		t.Errorf("layout %+v, width %d, %d tokens", l, tok.Width, tok.Len())
	}
	// Row 1: W[0,1,:] then R[0,1,:].
	if got := tok.Values[tok.Width : 2*tok.Width]; !slices.Equal(got, []float32{2, 3, 103, 104, 105}) {
		t.Errorf("row 1 is %v", got)
	}
	checkRoundTrip(t, m, tok)
}

// floatTensor builds a tensor of dtype holding v, in raw_data or in its
// typed field.
func floatTensor(name string, dtype int32, dims []int64, v []float64, raw bool) *pb.TensorProto {
	t := &pb.TensorProto{Name: &name, Dims: dims, DataType: &dtype}
	size := onnx.ElemSize(dtype)
	switch {
	case raw:
		t.RawData = make([]byte, size*len(v))
	case dtype == onnx.Float:
		t.FloatData = make([]float32, len(v))
	case dtype == onnx.Double:
		t.DoubleData = make([]float64, len(v))
	default:
		t.Int32Data = make([]int32, len(v))
	}
	if err := onnx.SetFloat64s(t, v); err != nil {
		panic(err)
	}
	return t
}

func TestRoundTripDTypes(t *testing.T) {
	special := []float64{0, math.Copysign(0, -1), 1, -2.5, math.Inf(1), math.Inf(-1), math.NaN(),
		math.SmallestNonzeroFloat32, 65504, 1e-7, 1.0 / 3, math.Pi}
	dtypes := []int32{onnx.Float, onnx.Double, onnx.Float16, onnx.BFloat16}
	for _, dt := range dtypes {
		for _, raw := range []bool{true, false} {
			name := onnx.DTypeName(dt)
			if raw {
				name += "/raw_data"
			}
			t.Run(name, func(t *testing.T) {
				b := onnx.NewBuilder("g", 0)
				w := floatTensor("W", dt, []int64{3, 4}, special, raw)
				setNaNPayloads(w)
				b.Initializer(w)
				b.Initializer(floatTensor("B", dt, []int64{3}, []float64{0.1, -0.2, 0.3}, raw))
				b.Node("Gemm", []string{"x", "W", "B"}, onnx.Int("transB", 1))
				m := b.Model()
				tok, err := Tokenize(m, Options{TokenSize: 2})
				if err != nil {
					t.Fatal(err)
				}
				if (tok.Exact != nil) != (dt == onnx.Double) {
					t.Errorf("Exact is %d long for %s", len(tok.Exact), onnx.DTypeName(dt))
				}
				want, _ := onnx.Float32s(w)
				for i, x := range want[:4] {
					if math.Float32bits(tok.Values[i]) != math.Float32bits(x) {
						t.Errorf("value %d is %v, want %v", i, tok.Values[i], x)
					}
				}
				// Decoders write garbage where the mask is 0.
				for i := range tok.Values {
					if tok.Mask[i] == 0 {
						tok.Values[i] = float32(math.NaN())
						if tok.Exact != nil {
							tok.Exact[i] = 12345
						}
					}
				}
				checkRoundTrip(t, m, tok)
			})
		}
	}
}

// setNaNPayloads gives the NaNs of a tensor distinct payloads, which a
// round trip must keep.
func setNaNPayloads(t *pb.TensorProto) {
	v, _ := onnx.Float64s(t)
	for i, x := range v {
		if math.IsNaN(x) {
			v[i] = math.Float64frombits(0x7ff4_0000_0000_0000 | uint64(i)<<45) // signalling, with payload
		}
	}
	onnx.SetFloat64s(t, v)
}

// TestHalfUpperBits: float16 values in int32_data keep the upper 16 bits of
// each int32, which ONNX ignores, when their values come back unchanged.
func TestHalfUpperBits(t *testing.T) {
	b := onnx.NewBuilder("g", 0)
	w := floatTensor("W", onnx.Float16, []int64{2, 2}, []float64{1, -2, 0.5, 3}, false)
	for i := range w.Int32Data {
		w.Int32Data[i] |= 0x7fff_0000
	}
	b.Initializer(w)
	b.Node("MatMul", []string{"x", "W"})
	m := b.Model()
	tok, err := Tokenize(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Detokenize(tok, m)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(d.Proto, m.Proto) {
		t.Errorf("int32_data %x, want %x", d.Initializer("W").Int32Data, w.Int32Data)
	}
}

func TestDetokenizeFloat64(t *testing.T) {
	b := onnx.NewBuilder("g", 0)
	b.Initializer(floatTensor("W", onnx.Double, []int64{2, 2}, []float64{0.1, 1.0 / 3, math.Pi, 1e300}, true))
	b.Node("MatMul", []string{"x", "W"})
	m := b.Model()
	tok, err := Tokenize(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok.Values[0] = 7 // an edit: it must win over the stale exact value
	d, err := Detokenize(tok, m)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := onnx.Float64s(d.Initializer("W"))
	if want := []float64{7, 1.0 / 3, math.Pi, 1e300}; !slices.Equal(got, want) {
		t.Errorf("with Exact: %v, want %v", got, want)
	}
	tok.Exact = nil
	d, err = Detokenize(tok, m)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = onnx.Float64s(d.Initializer("W"))
	if want := []float64{7, float64(float32(1.0 / 3)), float64(float32(math.Pi)), math.Inf(1)}; !slices.Equal(got, want) {
		t.Errorf("without Exact: %v, want %v", got, want)
	}
}

func TestRoundTripFixtures(t *testing.T) {
	for _, name := range fixtures.Models() {
		m, err := onnx.Read(fixtures.Path(name))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []int{0, 1, 5, 64, 1000} {
			tok, err := Tokenize(m, Options{TokenSize: w})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			checkRoundTrip(t, m, tok)
		}
	}
}

func TestLayoutJSON(t *testing.T) {
	m, err := onnx.Read(fixtures.Path(fixtures.CNNBN))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Tokenize(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(tok.Layout)
	if err != nil {
		t.Fatal(err)
	}
	var back Layout
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, tok.Layout) {
		t.Fatalf("layout changed through JSON:\n%s", b)
	}
	tok.Layout = back
	checkRoundTrip(t, m, tok)
}

// gemmModel is one Gemm layer fc1 with W [out, in].
func gemmModel(out, in int64) *onnx.Model {
	n := newNet("g")
	n.gemm(n.Input("x", onnx.Float, 1, in), "fc1", out, in, true)
	return n.Model()
}

func TestDetokenizeMismatch(t *testing.T) {
	m := gemmModel(20, 36)
	tests := []struct {
		name     string
		change   func(tok *Tokens) *onnx.Model // returns the template
		want     string
		mismatch bool
	}{
		{"other dims", func(*Tokens) *onnx.Model { return gemmModel(30, 36) },
			`tokenizer: tokens do not fit the template: tensor "fc1.weight" is [20 36] in the tokens, [30 36] in the template`, true},
		{"other name", func(*Tokens) *onnx.Model {
			c := m.Clone()
			c.Initializer("fc1.bias").Name = proto.String("b")
			c.Graph().Node[0].Input[2] = "b"
			return c
		}, `tensor 1 of layer "fc1" is "fc1.bias" in the tokens, "b" in the template`, true},
		{"other dtype", func(*Tokens) *onnx.Model {
			c := m.Clone()
			c.Graph().Initializer[1] = floatTensor("fc1.bias", onnx.Float16, []int64{20}, make([]float64, 20), true)
			return c
		}, `tensor "fc1.bias" is FLOAT in the tokens, FLOAT16 in the template`, true},
		{"another layer", func(*Tokens) *onnx.Model {
			n := newNet("g")
			n.gemm(n.gemm(n.Input("x", onnx.Float, 1, 36), "fc1", 20, 36, true), "fc2", 2, 20, true)
			return n.Model()
		}, "1 layers in the tokens, 2 in the template", true},
		{"other width", func(tok *Tokens) *onnx.Model { tok.Width = 16; return m },
			"60 positions in the tokens, 60 tokens of width 16 in the template", true},
		{"values cut", func(tok *Tokens) *onnx.Model { tok.Values = tok.Values[1:]; return m },
			"739 values in the tokens, 20 tokens of width 37 in the template", true},
		{"mask off at a value", func(tok *Tokens) *onnx.Model { tok.Mask[37+5] = 0; return m },
			`token 1 (layer "fc1", row 1) has mask 0 at column 5 in the tokens, the template has 1`, true},
		{"exact too short", func(tok *Tokens) *onnx.Model { tok.Exact = make([]float64, 3); return m },
			"3 exact values in the tokens", true},
		{"positions", func(tok *Tokens) *onnx.Model { tok.Positions[3*4+2] = 9; return m },
			"token 4 has position [4 0 9] in the tokens, [4 0 4] in the template", true},
		{"no width", func(tok *Tokens) *onnx.Model { tok.Width = 0; return m }, "tokenizer: token width 0, want at least 1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Tokenize(m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = Detokenize(tok, tt.change(tok))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line containing %q", err, tt.want)
			}
			if errors.Is(err, ErrMismatch) != tt.mismatch {
				t.Errorf("errors.Is(%q, ErrMismatch) = %v", err, !tt.mismatch)
			}
		})
	}
}

func TestMaskOnPadding(t *testing.T) {
	m := gemmModel(2, 3)
	tok, err := Tokenize(m, Options{TokenSize: 3}) // rows of 4: tokens [w w w] [b - -]
	if err != nil {
		t.Fatal(err)
	}
	tok.Mask[4] = 1
	_, err = Detokenize(tok, m)
	if want := `token 1 (layer "fc1", row 0) has mask 1 at column 1 in the tokens, the template has 0`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
}

func TestTokenizeErrors(t *testing.T) {
	if _, err := Tokenize(gemmModel(2, 2), Options{TokenSize: -1}); err == nil {
		t.Error("negative token size accepted")
	}
	// Constant nodes' tensors are not checked by onnx.Read.
	b := onnx.NewBuilder("g", 0)
	bad := onnx.NewFloatTensor("c", []int64{4}, []float32{1, 2, 3, 4})
	bad.RawData = bad.RawData[:6]
	b.NodeOut("c", "Constant", nil, []string{"w"}, onnx.TensorAttr("value", bad))
	b.Node("MatMul", []string{"x", "w"})
	if _, err := Tokenize(b.Model(), Options{}); err == nil || !strings.Contains(err.Error(), "raw_data has 6 bytes") {
		t.Errorf("malformed Constant: error %v", err)
	}
	if _, err := Detokenize(&Tokens{Width: 1}, b.Model()); err == nil {
		t.Error("malformed Constant in the template accepted")
	}
}

// TestMalformedWeights: weights whose unit axis they do not have (a Gemm
// given a vector) give rows along axis 0, not a panic.
func TestMalformedWeights(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *onnx.Builder)
	}{
		{"vector Gemm weight", func(b *onnx.Builder) {
			b.Node("Gemm", []string{"x", b.Float("W", []int64{3}, seq(1, 3))})
		}},
		{"vector Gemm weight with an added bias", func(b *onnx.Builder) {
			b.Node("Add", []string{b.Node("Gemm", []string{"x", b.Float("W", []int64{3}, seq(1, 3))}), b.Float("B", []int64{3}, seq(4, 3))})
		}},
		{"vector Gemm weight behind a Transpose", func(b *onnx.Builder) {
			b.Node("Gemm", []string{"x", b.Node("Transpose", []string{b.Float("W", []int64{3}, seq(1, 3))}, onnx.Ints("perm", 0))})
		}},
		{"Transpose with a permutation out of range", func(b *onnx.Builder) {
			w := b.Node("Transpose", []string{b.Float("W", []int64{2, 3}, seq(1, 6))}, onnx.Ints("perm", 5, -1))
			b.Node("Add", []string{b.Node("MatMul", []string{"x", w}), b.Float("B", []int64{2}, seq(7, 2))})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := onnx.NewBuilder("g", 0)
			tt.build(b)
			m := b.Model()
			tok, err := Tokenize(m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			checkRoundTrip(t, m, tok)
			if _, _, err := PermuteLayers(m, 1); err != nil {
				t.Fatal(err)
			}
		})
	}
}

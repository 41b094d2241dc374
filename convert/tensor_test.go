package convert

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestTypedViews(t *testing.T) {
	f32 := []float32{0, -1.5, float32(math.Inf(1)), math.SmallestNonzeroFloat32, math.MaxFloat32, 3}
	f64 := []float64{0, -1.5, math.Inf(-1), math.SmallestNonzeroFloat64, math.MaxFloat64, 1e-300}
	i32 := []int32{0, -1, math.MinInt32, math.MaxInt32, 7, 8}
	i64 := []int64{0, -1, math.MinInt64, math.MaxInt64, 7, 8}
	u8 := []uint8{0, 1, 127, 128, 255, 9}
	shape := []int64{2, 3}

	// Through a file, so the views are checked on decoded data too.
	f, err := decodeBytes(encode(t, map[string]Tensor{
		"f32": Float32Tensor(shape, f32),
		"f64": Float64Tensor(shape, f64),
		"i32": Int32Tensor(shape, i32),
		"i64": Int64Tensor(shape, i64),
		"u8":  Uint8Tensor(shape, u8),
	}, nil))
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, ok bool, err error) {
		t.Helper()
		if err != nil || !ok {
			t.Errorf("%s: values differ after the round trip (error %v)", name, err)
		}
		if got := f.Tensors[name].Shape; !slices.Equal(got, shape) {
			t.Errorf("%s: shape %v, want %v", name, got, shape)
		}
	}
	gf32, err := f.Tensors["f32"].Float32s()
	check("f32", slices.Equal(gf32, f32), err)
	gf64, err := f.Tensors["f64"].Float64s()
	check("f64", slices.Equal(gf64, f64), err)
	gi32, err := f.Tensors["i32"].Int32s()
	check("i32", slices.Equal(gi32, i32), err)
	gi64, err := f.Tensors["i64"].Int64s()
	check("i64", slices.Equal(gi64, i64), err)
	gu8, err := f.Tensors["u8"].Uint8s()
	check("u8", slices.Equal(gu8, u8), err)

	// Little-endian whatever the host: 1.0 is 0x3f800000.
	if got := Float32Tensor(nil, []float32{1}).Data; string(got) != "\x00\x00\x80\x3f" {
		t.Errorf("Float32Tensor(1).Data = % x, want 00 00 80 3f", got)
	}
	// NaN payloads survive: the views move bits, not values.
	nan := math.Float32frombits(0x7fc00123)
	got, _ := Float32Tensor([]int64{1}, []float32{nan}).Float32s()
	if math.Float32bits(got[0]) != 0x7fc00123 {
		t.Errorf("NaN bits %#x, want 0x7fc00123", math.Float32bits(got[0]))
	}
}

func TestTypedViewErrors(t *testing.T) {
	tests := []struct {
		name   string
		tensor Tensor
		view   func(Tensor) error
		want   string
	}{
		{"dtype", Tensor{DType: "F16", Shape: []int64{1}, Data: make([]byte, 2)}, func(t Tensor) error { _, err := t.Float32s(); return err }, "dtype F16, want F32"},
		{"short data", Tensor{DType: "F64", Shape: []int64{2}, Data: make([]byte, 8)}, func(t Tensor) error { _, err := t.Float64s(); return err }, "F64 [2] has 8 data bytes, want 16"},
		{"ragged data", Tensor{DType: "I32", Shape: []int64{1}, Data: make([]byte, 5)}, func(t Tensor) error { _, err := t.Int32s(); return err }, "has 5 data bytes, want 4"},
		{"negative shape", Tensor{DType: "I64", Shape: []int64{-1}}, func(t Tensor) error { _, err := t.Int64s(); return err }, "negative dimension"},
		{"bool is not u8", Tensor{DType: "BOOL", Shape: []int64{1}, Data: []byte{1}}, func(t Tensor) error { _, err := t.Uint8s(); return err }, "dtype BOOL, want U8"},
	}
	for _, tt := range tests {
		err := tt.view(tt.tensor)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestConstructorsCopy(t *testing.T) {
	shape := []int64{2}
	v := []uint8{1, 2}
	tensor := Uint8Tensor(shape, v)
	shape[0], v[0] = 5, 9
	if tensor.Shape[0] != 2 || tensor.Data[0] != 1 {
		t.Fatal("the tensor shares memory with the constructor's arguments")
	}
	u, _ := tensor.Uint8s()
	u[1] = 7
	if tensor.Data[1] != 2 {
		t.Fatal("Uint8s returned the tensor's own bytes")
	}
}

func TestConstructorPanics(t *testing.T) {
	tests := []struct {
		name string
		make func()
		want string
	}{
		{"too few values", func() { Float32Tensor([]int64{2, 3}, make([]float32, 5)) }, "shape [2 3] holds 6 elements, got 5 values"},
		{"too many values", func() { Int64Tensor(nil, make([]int64, 2)) }, "shape [] holds 1 elements, got 2 values"},
		{"negative dimension", func() { Int32Tensor([]int64{-2}, nil) }, "negative dimension"},
		{"overflow", func() { Float64Tensor([]int64{1 << 62, 4}, nil) }, "overflows int64"},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, tt.want) {
					t.Errorf("%s: panic %v, want one containing %q", tt.name, r, tt.want)
				}
			}()
			tt.make()
		}()
	}
}

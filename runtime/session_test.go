package runtime

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

const onnxTestData = "/usr/share/libonnx-testdata/data" // Debian's libonnx-testdata

// TestONNXBackendCases runs models from ONNX's own backend test suite and
// compares with the outputs recorded there. The cases are picked to cover
// every dtype Run moves, rank-0 and 16-bit float outputs (which
// onnxruntime_go cannot allocate itself), and string tensors.
func TestONNXBackendCases(t *testing.T) {
	if _, err := os.Stat(onnxTestData); err != nil {
		t.Fatal("libonnx-testdata is not installed (make setup installs it)")
	}
	cases := []string{
		"pytorch-converted/test_Conv2d",            // float32, NCHW
		"pytorch-operator/test_operator_maxpool",   // float32
		"node/test_det_2d",                         // float32 scalar output
		"node/test_size",                           // int64 scalar output
		"node/test_einsum_inner_prod",              // float64 scalar output
		"node/test_cast_DOUBLE_to_FLOAT",           // float64 input
		"node/test_cast_FLOAT_to_FLOAT16",          // float16 output
		"node/test_cast_FLOAT16_to_FLOAT",          // float16 input
		"node/test_mod_mixed_sign_float16",         // float16 in and out
		"node/test_and2d",                          // bool in and out
		"node/test_argmax_default_axis_example",    // int64 output
		"node/test_add_uint8",                      // uint8
		"node/test_clip_default_int8_min",          // int8, with a scalar input
		"node/test_mod_mixed_sign_int16",           // int16
		"node/test_mod_mixed_sign_int32",           // int32
		"node/test_bitshift_left_uint32",           // uint32
		"node/test_bitshift_left_uint64",           // uint64
		"node/test_mod_uint16",                     // uint16
		"node/test_dynamicquantizelinear",          // several outputs, uint8 scalar among them
		"node/test_cast_STRING_to_FLOAT",           // string input
		"node/test_if",                             // bool scalar input, subgraphs
		"simple/test_single_relu_model",            // float32
		"node/test_constantofshape_int_shape_zero", // an output with no elements
	}
	for _, c := range cases {
		t.Run(c, func(t *testing.T) { runBackendCase(t, filepath.Join(onnxTestData, c)) })
	}
}

func runBackendCase(t *testing.T, dir string) {
	model, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(model, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var in []Tensor
	for i := range s.Inputs() {
		x, _, err := readTensorProto(fmt.Sprintf("%s/test_data_set_0/input_%d.pb", dir, i))
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, x)
	}
	out, err := s.Run(in...)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(s.Outputs()) {
		t.Fatalf("got %d outputs, model has %d", len(out), len(s.Outputs()))
	}
	for i, got := range out {
		want, _, err := readTensorProto(fmt.Sprintf("%s/test_data_set_0/output_%d.pb", dir, i))
		if err != nil {
			t.Fatal(err)
		}
		if msg := compare(got, want); msg != "" {
			t.Errorf("output %d (%s): %s", i, s.Outputs()[i].Name, msg)
		}
	}
}

// compare checks dtype and shape exactly, floats within rtol 1e-3 and atol
// 1e-5, and every other dtype exactly.
func compare(got, want Tensor) string {
	if got.DType != want.DType {
		return fmt.Sprintf("dtype %s, want %s", got.DType, want.DType)
	}
	if !slices.Equal(got.Shape, want.Shape) {
		return fmt.Sprintf("shape %v, want %v", got.Shape, want.Shape)
	}
	close := func(g, w float64) bool {
		return g == w || math.Abs(g-w) <= 1e-5+1e-3*math.Abs(w) || math.IsNaN(g) && math.IsNaN(w)
	}
	switch g := got.Data.(type) {
	case []float32:
		for i, w := range want.Data.([]float32) {
			if !close(float64(g[i]), float64(w)) {
				return fmt.Sprintf("element %d = %v, want %v", i, g[i], w)
			}
		}
	case []float64:
		for i, w := range want.Data.([]float64) {
			if !close(g[i], w) {
				return fmt.Sprintf("element %d = %v, want %v", i, g[i], w)
			}
		}
	default:
		if fmt.Sprint(got.Data) != fmt.Sprint(want.Data) {
			return fmt.Sprintf("data %v, want %v", got.Data, want.Data)
		}
	}
	return ""
}

func openLinear(t *testing.T, name string) *Session {
	t.Helper()
	model, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(model, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSessionInfo(t *testing.T) {
	s := openLinear(t, "linear_two_out.onnx")
	in, out := s.Inputs(), s.Outputs()
	if fmt.Sprint(in) != `["x" float32[? 784]]` || fmt.Sprint(out) != `["logits" float32[? 12] "probs" float32[? 12]]` {
		t.Errorf("inputs %v, outputs %v", in, out)
	}
	if s.Device() != CPU {
		t.Errorf("device %v, want cpu", s.Device())
	}
}

func TestRunErrors(t *testing.T) {
	s := openLinear(t, "linear_nchw.onnx")
	x := make([]float32, 2*784)
	tests := []struct {
		name   string
		inputs []Tensor
		want   string
	}{
		{"no inputs", nil, "runtime: got 0 inputs, model has 1"},
		{"two inputs", []Tensor{NewTensor([]int64{1}, []float32{1}), NewTensor([]int64{1}, []float32{1})}, "got 2 inputs"},
		{"dtype", []Tensor{NewTensor([]int64{2, 1, 28, 28}, make([]float64, 2*784))}, `runtime: input "x": got float64, model wants float32`},
		{"rank", []Tensor{NewTensor([]int64{2, 784}, x)}, `runtime: input "x": got shape [2 784], model wants [? 1 28 28]`},
		{"dims", []Tensor{NewTensor([]int64{2, 1, 784, 1}, x)}, `got shape [2 1 784 1]`},
		{"short data", []Tensor{NewTensor([]int64{3, 1, 28, 28}, x)}, `runtime: input "x": shape [3 1 28 28] needs 2352 elements, data has 1568`},
		{"negative dim", []Tensor{NewTensor([]int64{-2, 1, 28, 28}, x)}, `invalid shape`},
		{"mislabelled", []Tensor{{DType: Float32, Shape: []int64{2, 1, 28, 28}, Data: make([]int32, 2*784)}}, "dtype float32 cannot hold data of type []int32"},
		{"foreign data", []Tensor{{DType: Float32, Shape: []int64{1}, Data: []int{1}}}, "cannot hold data of type []int"},
	}
	for _, tt := range tests {
		_, err := s.Run(tt.inputs...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestRunAndClose(t *testing.T) {
	s := openLinear(t, "linear_nchw.onnx")
	x := make([]float32, 3*784)
	x[0] = 1 // logits = W[0] + b
	out, err := s.Run(NewTensor([]int64{3, 1, 28, 28}, x))
	if err != nil {
		t.Fatal(err)
	}
	want := reference(x[:784], 10)
	got := out[0].Data.([]float32)
	if !slices.Equal(out[0].Shape, []int64{3, 10}) || !equal64(got[:10], want) {
		t.Errorf("got %v %v, want [3 10] starting %v", out[0].Shape, got[:10], want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Run(NewTensor([]int64{3, 1, 28, 28}, x)); err == nil {
		t.Error("Run after Close succeeded")
	}
}

func TestRunStrings(t *testing.T) {
	s := openLinear(t, "identity_string.onnx")
	in := []string{"", "zoo", "ż 大"}
	out, err := s.Run(NewTensor([]int64{3}, in))
	if err != nil {
		t.Fatal(err)
	}
	if out[0].DType != String || !slices.Equal(out[0].Data.([]string), in) {
		t.Errorf("got %+v, want %q", out[0], in)
	}
}

// TestOutputShapes covers the outputs ORT reports with an empty shape: a
// declared scalar, a tensor whose shape is known only when run, and a
// scalar that is not declared as one.
func TestOutputShapes(t *testing.T) {
	x := make([]float32, 12)
	for i := range x {
		x[i] = float32(i) - 2 // relu clips the first two
	}
	s := openLinear(t, "shapes.onnx")
	if got := fmt.Sprint(s.Outputs()); got != `["relu" float32[] "reshaped" float32[] "sum" float32[]]` {
		t.Errorf("outputs %s", got)
	}
	for range 2 { // the second run must not be changed by the first
		out, err := s.Run(NewTensor([]int64{3, 4}, x), NewTensor([]int64{2}, []int64{2, 6}))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(out[0].Shape, out[1].Shape, out[2].Shape, out[2].Data); got != "[3 4] [2 6] [] [42]" {
			t.Errorf("got shapes and sum %s, want [3 4] [2 6] [] [42]", got)
		}
	}
	u := openLinear(t, "undeclared_scalar.onnx")
	for range 2 {
		out, err := u.Run(NewTensor([]int64{3, 4}, x))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(out[0].Shape, out[0].Data); got != "[] [42]" {
			t.Errorf("undeclared scalar: got %s, want [] [42]", got)
		}
	}
}

// TestConcurrentRun runs one session from several goroutines, as the
// package documents it may be.
func TestConcurrentRun(t *testing.T) {
	s := openLinear(t, "linear_nchw.onnx")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for r := range 20 {
				x := make([]float32, 784)
				x[(g*20+r)%784] = 1
				out, err := s.Run(NewTensor([]int64{1, 1, 28, 28}, x))
				if err != nil {
					t.Error(err)
					return
				}
				if !equal64(out[0].Data.([]float32), reference(x, 10)) {
					t.Errorf("goroutine %d run %d: wrong logits", g, r)
				}
			}
		})
	}
	wg.Wait()
}

func TestNewSessionErrors(t *testing.T) {
	tests := []struct {
		name  string
		model []byte
		want  string
	}{
		{"empty", nil, "runtime: empty model"},
		{"garbage", []byte("not a model"), "runtime: loading model: "},
	}
	for _, tt := range tests {
		_, err := NewSession(tt.model, Options{})
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: got %v, want one line starting %q", tt.name, err, tt.want)
		}
	}
}

package probe

import (
	"slices"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/onnx"
)

// tinyModel is Gemm(x, W1, b1) → Relu → MatMul(·, W2) → Add(·, b2), with W1
// [2, 3] stored as is (transB = 1) or transposed as [3, 2] (transB = 0), as
// different exporters do; w1 is the first layer's weight in [2, 3] order.
func tinyModel(w1 []float32, transB bool) *onnx.Model {
	b := onnx.NewBuilder("tiny", 0)
	x := b.Input("x", onnx.Float, -1, 3)
	var g string
	if transB {
		g = b.Node("Gemm", []string{x, b.Float("w1", []int64{2, 3}, w1), b.Float("b1", []int64{2}, []float32{-1, 1})}, onnx.Int("transB", 1))
	} else {
		t := make([]float32, 6)
		for i := 0; i < 2; i++ {
			for j := 0; j < 3; j++ {
				t[j*2+i] = w1[i*3+j]
			}
		}
		g = b.Node("Gemm", []string{x, b.Float("fc1.weight", []int64{3, 2}, t), b.Float("fc1.bias", []int64{2}, []float32{-1, 1})})
	}
	h := b.Node("Relu", []string{g})
	m := b.Node("MatMul", []string{h, b.Float("w2", []int64{2, 2}, []float32{0.5, -0.5, 2, 0})})
	out := b.Node("Add", []string{m, b.Float("b2", []int64{2}, []float32{3, 7})})
	b.Output(out, onnx.Float, -1, 2)
	return b.Model()
}

var tinyW1 = []float32{1, 2, 3, 4, 5, 6}

// The statistics worked by hand, percentiles as numpy.percentile's default
// (linear): the q-th of n sorted values sits at (n−1)·q/100.
func TestStatsByHand(t *testing.T) {
	want := []float64{
		// W1 = 1..6: mean 3.5, variance 17.5/6; p25 at 1.25 → 2.25, p50 at 2.5 → 3.5, p75 at 3.75 → 4.75.
		3.5, 17.5 / 6, 1, 2.25, 3.5, 4.75, 6,
		// b1 = (−1, 1): p25 at 0.25 → −0.5.
		0, 1, -1, -0.5, 0, 0.5, 1,
		// W2 sorted (−0.5, 0, 0.5, 2): mean 0.5, variance (1 + 0.25 + 0 + 2.25)/4;
		// p25 at 0.75 → −0.125, p50 at 1.5 → 0.25, p75 at 2.25 → 0.875.
		0.5, 0.875, -0.5, -0.125, 0.25, 0.875, 2,
		// b2 = (3, 7).
		5, 4, 3, 4, 5, 6, 7,
	}
	for _, transB := range []bool{true, false} {
		m := tinyModel(tinyW1, transB)
		b, err := NewBaseline(Stats, m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Append(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || b.Len() != len(want) {
			t.Fatalf("transB=%v: %d features (Len %d), want %d", transB, len(got), b.Len(), len(want))
		}
		for i := range want {
			if !same(got[i], want[i], 1e-6) {
				t.Errorf("transB=%v: feature %d (%s) = %v, want %v", transB, i, b.Columns()[i], got[i], want[i])
			}
		}
	}
}

// W tensor by tensor, each output unit by output unit: the same whichever
// way the exporter stored the Gemm weight. The MatMul weight [2, 2] has its
// units on axis 1: unit 0 is its column (0.5, 2).
func TestWeightsOrder(t *testing.T) {
	want := []float64{1, 2, 3, 4, 5, 6, -1, 1, 0.5, 2, -0.5, 0, 3, 7}
	var ref *Baseline
	for _, transB := range []bool{true, false} {
		m := tinyModel(tinyW1, transB)
		b, err := NewBaseline(Weights, m)
		if err != nil {
			t.Fatal(err)
		}
		if ref == nil {
			ref = b
		}
		got, err := ref.Append(nil, m)
		if err != nil {
			t.Fatalf("transB=%v: %v", transB, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("transB=%v: W = %v, want %v", transB, got, want)
		}
	}
	if cols := ref.Columns(); len(cols) != 14 || cols[0] != "L0.weight[0,0]" || cols[6] != "L0.bias[0,0]" || cols[13] != "L1.bias[1,0]" {
		t.Errorf("columns %v", cols)
	}
}

func TestBaselineColumns(t *testing.T) {
	b, err := NewBaseline(Stats, tinyModel(tinyW1, true))
	if err != nil {
		t.Fatal(err)
	}
	cols := b.Columns()
	if len(cols) != 28 || cols[0] != "L0.weight.mean" || cols[9] != "L0.bias.p0" || cols[27] != "L1.bias.p100" {
		t.Errorf("columns %v", cols)
	}
}

// Appending models one after another builds the rows of a feature matrix.
func TestBaselineAppends(t *testing.T) {
	m := tinyModel(tinyW1, true)
	b, _ := NewBaseline(Stats, m)
	dst, err := b.Append([]float64{42}, m)
	if err != nil || len(dst) != 29 || dst[0] != 42 || dst[1] != 3.5 {
		t.Errorf("Append to a non-empty slice: %v, %v", dst, err)
	}
}

func TestBaselineOtherArchitecture(t *testing.T) {
	ref := tinyModel(tinyW1, true)
	// Three hidden units instead of two.
	bld := onnx.NewBuilder("wider", 0)
	x := bld.Input("x", onnx.Float, -1, 3)
	g := bld.Node("Gemm", []string{x, bld.Float("w1", []int64{3, 3}, make([]float32, 9)), bld.Float("b1", []int64{3}, make([]float32, 3))}, onnx.Int("transB", 1))
	m := bld.Node("MatMul", []string{g, bld.Float("w2", []int64{3, 2}, make([]float32, 6))})
	bld.Output(bld.Node("Add", []string{m, bld.Float("b2", []int64{2}, []float32{3, 7})}), onnx.Float, -1, 2)
	wider := bld.Model()
	for _, tc := range []struct{ kind, want string }{
		{Stats, "probe: stats: block 0 of the model is layer 0 weight [9], want layer 0 weight [6] (another architecture)"},
		{Weights, "probe: weights: block 0 of the model is layer 0 weight [3×3], want layer 0 weight [2×3] (another architecture)"},
	} {
		b, err := NewBaseline(tc.kind, ref)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Append(nil, wider); err == nil || err.Error() != tc.want {
			t.Errorf("%s: error %v, want %q", tc.kind, err, tc.want)
		}
	}
	// One layer fewer.
	bld = onnx.NewBuilder("short", 0)
	x = bld.Input("x", onnx.Float, -1, 3)
	bld.Output(bld.Node("Gemm", []string{x, bld.Float("w1", []int64{2, 3}, tinyW1), bld.Float("b1", []int64{2}, []float32{-1, 1})}, onnx.Int("transB", 1)), onnx.Float, -1, 2)
	b, _ := NewBaseline(Stats, ref)
	if _, err := b.Append(nil, bld.Model()); err == nil || !strings.Contains(err.Error(), "2 blocks of weights, want 4") {
		t.Errorf("error %v, want a block count mismatch", err)
	}
	if _, err := NewBaseline("raw", ref); err == nil || !strings.Contains(err.Error(), `baseline "raw"`) {
		t.Errorf("unknown kind: error %v", err)
	}
}

func TestUnitMajor(t *testing.T) {
	// [2, 3, 2] with units on axis 1: unit u holds v[o, u, i] for o, i.
	v := []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	for _, tc := range []struct {
		dims  []int64
		axis  int
		units int
		want  []float64
	}{
		{[]int64{2, 3, 2}, 1, 3, []float64{0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11}},
		{[]int64{2, 3, 2}, 0, 2, v},
		{[]int64{2, 3, 2}, 2, 2, []float64{0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11}},
		{[]int64{12}, 5, 12, v}, // an axis the tensor lacks is axis 0
		{nil, 0, 1, v[:1]},
	} {
		in := v
		if tc.dims == nil {
			in = v[:1]
		}
		units, got := unitMajor(in, tc.dims, tc.axis)
		if units != tc.units || !slices.Equal(got, tc.want) {
			t.Errorf("dims %v axis %d: %d units %v, want %d %v", tc.dims, tc.axis, units, got, tc.units, tc.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	s := []float64{10, 20, 30, 40, 50}
	for _, tc := range []struct{ q, want float64 }{{0, 10}, {10, 14}, {25, 20}, {50, 30}, {90, 46}, {100, 50}} {
		if got := percentile(s, tc.q); !same(got, tc.want, 1e-12) {
			t.Errorf("percentile %v = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := percentile([]float64{7}, 25); got != 7 {
		t.Errorf("percentile of one value = %v", got)
	}
}

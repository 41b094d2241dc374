package onnx

import (
	"fmt"
	"strings"
	"testing"
)

// describeLayers renders a layer list compactly: "op:param/role/axis ...".
func describeLayers(ls []Layer) string {
	var parts []string
	for _, l := range ls {
		s := fmt.Sprintf("%s(in=%d)", l.Op, l.Input)
		for _, p := range l.Params {
			s += fmt.Sprintf(" %s/%s/%d", p.Name, p.Role, p.UnitAxis)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func zeros(n int) []float32 { return make([]float32, n) }

func TestLayers(t *testing.T) {
	b := NewBuilder("layers", 0)
	x := b.Input("x", Float, -1, 1, 8, 8)
	// Conv with bias, then BatchNormalization right after it.
	c := b.Node("Conv", []string{x, b.Float("cw", []int64{4, 1, 3, 3}, zeros(36)), b.Float("cb", []int64{4}, zeros(4))})
	bn := b.Node("BatchNormalization", []string{c, b.Float("s", []int64{4}, zeros(4)), b.Float("bb", []int64{4}, zeros(4)),
		b.Float("mu", []int64{4}, zeros(4)), b.Float("var", []int64{4}, zeros(4))})
	shape := b.Int64s("shape", -1, 144)
	f := b.Node("Reshape", []string{b.Node("Relu", []string{bn}), shape})
	// Gemm with transB=1: units on axis 0.
	g := b.Node("Gemm", []string{f, b.Float("gw", []int64{10, 144}, zeros(1440)), b.Float("gb", []int64{10}, zeros(10))}, Int("transB", 1))
	// MatMul + Add is a linear layer with a bias.
	mm := b.Node("MatMul", []string{g, b.Float("mw", []int64{10, 6}, zeros(60))})
	a := b.Node("Add", []string{mm, b.Float("mb", []int64{6}, zeros(6))})
	// Transpose(W) -> MatMul: the weight is W with units on axis 0.
	tw := b.Node("Transpose", []string{b.Float("tw", []int64{5, 6}, zeros(30))}, Ints("perm", 1, 0))
	tm := b.Node("MatMul", []string{a, tw})
	// A Constant node's tensor in a weight slot is a weight too.
	b.NodeOut("k", "Constant", nil, []string{"kw"}, TensorAttr("value", NewFloatTensor("kw", []int64{5, 3}, zeros(15))))
	km := b.Node("MatMul", []string{tm, "kw"})
	// A float initializer no layer claims, read by Mul.
	out := b.Node("Mul", []string{km, b.Float("gain", []int64{1}, []float32{2})})
	b.Float("unused", []int64{2}, zeros(2))
	b.Output(out, Float, -1, 3)
	ls, err := b.Model().Layers()
	if err != nil {
		t.Fatal(err)
	}
	want := "Conv(in=-1) cw/weight/0 cb/bias/0; " +
		"BatchNormalization(in=0) s/scale/0 bb/bias/0 mu/running_mean/0 var/running_var/0; " +
		"Gemm(in=-1) gw/weight/0 gb/bias/0; " +
		"MatMul(in=2) mw/weight/1 mb/bias/0; " +
		"MatMul(in=-1) tw/weight/0; " +
		"MatMul(in=4) kw/weight/1; " +
		"Mul(in=-1) gain/other/0; " +
		"(in=-1) unused/other/0"
	if got := describeLayers(ls); got != want {
		t.Errorf("layers:\n got %s\nwant %s", got, want)
	}
	var total int64
	for _, l := range ls {
		total += l.NumParams()
	}
	if total != 36+4+16+1440+10+60+6+30+15+1+2 {
		t.Errorf("NumParams total %d", total)
	}
}

func TestLayersSharedWeightClaimedOnce(t *testing.T) {
	b := NewBuilder("tied", 0)
	x := b.Input("x", Float, -1, 4)
	w := b.Float("w", []int64{4, 4}, zeros(16))
	y := b.Node("MatMul", []string{b.Node("MatMul", []string{x, w}), w})
	b.Output(y, Float, -1, 4)
	ls, err := b.Model().Layers()
	if err != nil {
		t.Fatal(err)
	}
	if got := describeLayers(ls); got != "MatMul(in=-1) w/weight/1" {
		t.Errorf("tied weights: %s", got)
	}
}

package zoo

import (
	goruntime "runtime"
	"testing"

	"golang.org/x/sys/cpu"

	"github.com/hyperrep/hyperrep/autodiff"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

type convCase struct {
	name string
	convGraph
	// poolStays: the MaxPool after the Conv keeps the plain layout, as
	// after one NCHWc Conv per group and their Concat.
	poolStays bool
}

// convCases cover the forms lowerConvs emits for block sizes 8 and 16
// (each form for each size, the padded output channels of the transposed
// weight included): the population's convolutions and their weight
// gradients, padding, strides, dilations, biases and 1×1 kernels, and
// MaxPools after Convs (poolBlocked).
var convCases = []convCase{
	{name: "conv1 phases", convGraph: convGraph{x: []int64{4, 2, 28, 28}, w: []int64{64, 1, 6, 6}, group: 2, attrs: []*pb.AttributeProto{onnx.Ints("strides", 2, 2)}}},
	{name: "conv2 phases", convGraph: convGraph{x: []int64{4, 16, 12, 12}, w: []int64{48, 8, 6, 6}, group: 2, attrs: []*pb.AttributeProto{onnx.Ints("strides", 2, 2)}}},
	{name: "shared first layer", convGraph: convGraph{x: []int64{5, 1, 28, 28}, w: []int64{96, 1, 6, 6}, group: 1, attrs: []*pb.AttributeProto{onnx.Ints("strides", 2, 2)}}},
	{name: "pads dilations bias", convGraph: convGraph{x: []int64{3, 3, 10, 9}, w: []int64{20, 3, 3, 2}, group: 1, bias: true,
		attrs: []*pb.AttributeProto{onnx.Ints("pads", 1, 0, 2, 1), onnx.Ints("dilations", 2, 1)}}},
	{name: "grouped bias per group", convGraph: convGraph{x: []int64{3, 12, 9, 9}, w: []int64{30, 4, 3, 3}, group: 3, bias: true, attrs: []*pb.AttributeProto{onnx.Ints("pads", 1, 1, 1, 1)}}},
	{name: "blocked input bias", convGraph: convGraph{x: []int64{2, 32, 7, 7}, w: []int64{32, 16, 3, 3}, group: 2, bias: true, attrs: []*pb.AttributeProto{onnx.Ints("pads", 1, 1, 1, 1)}}},
	{name: "blocked input padded output", convGraph: convGraph{x: []int64{2, 32, 7, 7}, w: []int64{24, 16, 3, 3}, group: 2, bias: true}},
	{name: "conv1 weight gradient", convGraph: convGraph{x: []int64{1, 64, 28, 28}, w: []int64{64, 32, 12, 12}, group: 2, transposed: true, attrs: []*pb.AttributeProto{onnx.Ints("dilations", 2, 2)}}},
	{name: "conv2 weight gradient", convGraph: convGraph{x: []int64{8, 64, 12, 12}, w: []int64{48, 32, 4, 4}, group: 2, transposed: true, attrs: []*pb.AttributeProto{onnx.Ints("dilations", 2, 2)}}},
	{name: "weight gradient padded output", convGraph: convGraph{x: []int64{4, 64, 10, 10}, w: []int64{40, 32, 3, 3}, group: 2, transposed: true, bias: true,
		attrs: []*pb.AttributeProto{onnx.Ints("pads", 1, 0, 0, 1), onnx.Ints("strides", 2, 1)}}},
	{name: "pointwise", convGraph: convGraph{x: []int64{3, 32, 5, 6}, w: []int64{48, 16, 1, 1}, group: 2}},
	{name: "pointwise few channels", convGraph: convGraph{x: []int64{3, 3, 5, 6}, w: []int64{16, 3, 1, 1}, group: 1, bias: true}},
	{name: "shared first layer pooled", convGraph: convGraph{x: []int64{5, 1, 28, 28}, w: []int64{16, 1, 5, 5}, group: 1, bias: true, pool: true}},
	{name: "pooled padded channels", convGraph: convGraph{x: []int64{3, 2, 11, 11}, w: []int64{12, 2, 3, 3}, group: 1, bias: true, pool: true}},
	{name: "pooled after groups", convGraph: convGraph{x: []int64{3, 4, 10, 10}, w: []int64{32, 2, 3, 3}, group: 2, pool: true}},
	{name: "pooled after a Conv per group", convGraph: convGraph{x: []int64{3, 24, 10, 10}, w: []int64{32, 12, 3, 3}, group: 2, pool: true}, poolStays: true},
	{name: "too few output channels", convGraph: convGraph{x: []int64{4, 12, 4, 4}, w: []int64{4, 6, 2, 2}, group: 2}},
}

// lowered reports whether lowerConvs should rewrite the case's Conv.
func (c convCase) lowered(bs int64) bool {
	G, Cg, M := c.group, c.w[1], c.w[0]
	if M%G != 0 {
		return false
	}
	Mg := M / G
	return wholeBlocks(Mg, bs) <= 2*Mg && (Cg < bs || Cg%bs == 0)
}

// TestLowerConvs checks that the NCHWc form of each Conv computes what
// ONNX's Conv does, in ONNX Runtime, and that lowerConvs rewrites the
// Convs it should. It runs at the block size ORT reports, whether or not
// checkLowering passed there.
func TestLowerConvs(t *testing.T) {
	bs, checked := nchwcProbe()
	if bs == 0 {
		t.Skip("this machine's ONNX Runtime has no NCHWc kernels; zoo graphs keep ONNX's Conv")
	}
	t.Logf("NCHWc block: %d channels; checkLowering: %v", bs, checked)
	if checked != nil {
		t.Errorf("checkLowering: %v", checked)
	}
	for k, c := range convCases {
		t.Run(c.name, func(t *testing.T) {
			n, diff, scale, err := c.compare(bs, uint64(11+k))
			if err != nil {
				t.Fatal(err)
			}
			if want := c.lowered(bs); (n == 1) != want {
				t.Fatalf("lowerConvs rewrote %d Convs, want lowered = %v", n, want)
			}
			if n == 1 && (scale == 0 || diff > 1e-5*scale) {
				t.Errorf("outputs differ by %.3g at scale %.3g", diff, scale)
			}
		})
	}
	// A lowered graph keeps no ONNX Conv, and a MaxPool that alone reads
	// a single lowered Conv pools the blocked layout.
	for _, c := range convCases {
		if !c.lowered(bs) {
			continue
		}
		m, _ := c.build()
		sh, err := autodiff.InferShapes(m.Graph())
		if err != nil {
			t.Fatal(err)
		}
		lowerConvs(m, sh.Types, bs)
		for _, node := range m.Graph().GetNode() {
			if node.GetOpType() == "Conv" && node.GetDomain() != nchwcDomain {
				t.Errorf("%s: a Conv is left in the lowered graph: %v", c.name, node.GetName())
			}
			if node.GetOpType() == "MaxPool" && (node.GetDomain() == nchwcDomain) == c.poolStays {
				t.Errorf("%s: MaxPool in domain %q", c.name, node.GetDomain())
			}
		}
	}
}

// TestNCHWcAvailable fails where the speed-up would silently be lost: an
// x86-64 machine with AVX2 has NCHWc kernels, and the block probe must
// find them.
func TestNCHWcAvailable(t *testing.T) {
	bs, _ := nchwcProbe()
	t.Logf("NCHWc block: %d channels", bs)
	if goruntime.GOARCH == "amd64" && cpu.X86.HasAVX2 && bs == 0 {
		t.Fatal("this x86-64 machine has AVX2, but the probe found no NCHWc kernels in ONNX Runtime")
	}
}

// TestGraphsUseNCHWc checks that the training and evaluation graphs of the
// convolutional architectures get their shapes inferred and so their
// convolutions lowered: an op without a shape rule would otherwise turn
// the NCHWc kernels off without an error. The evaluation graphs also pool
// their shared first layer on the blocked layout.
func TestGraphsUseNCHWc(t *testing.T) {
	bs := nchwcBlock()
	for _, name := range []string{"cnn-s", "cnn-l"} {
		arch, err := NewArch(name, 1, 28, 28, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range []layout{layoutPhase, layoutPool} {
			for _, dropout := range []bool{false, true} {
				spec := &popSpec{arch: arch, act: "gelu", models: 2, batch: 8, opt: "sgd", layout: l, dropout: dropout}
				train, err := spec.trainGraph()
				if err != nil {
					t.Fatal(err)
				}
				eval, err := spec.evalGraph(16)
				if err != nil {
					t.Fatal(err)
				}
				for _, g := range []*popGraph{train, eval} {
					if g.inferErr != nil {
						t.Errorf("%s, layout %d, dropout %v: shapes not inferred: %v", name, l, dropout, g.inferErr)
					}
					lowered, pooled := 0, 0
					for _, n := range g.model.Graph().GetNode() {
						if n.GetDomain() == nchwcDomain {
							switch n.GetOpType() {
							case "Conv":
								lowered++
							case "MaxPool":
								pooled++
							}
						}
					}
					if bs > 0 && lowered == 0 {
						t.Errorf("%s, layout %d, dropout %v: no convolution lowered", name, l, dropout)
					}
					// The shared first layer pools the blocked layout.
					if g == eval && bs > 0 && arch.layers[0].pool && pooled == 0 {
						t.Errorf("%s, layout %d: the evaluation graph's first MaxPool is not on the blocked layout", name, l)
					}
				}
			}
		}
	}
}

// BenchmarkNCHWc times the convolutions of a cnn-s population's training
// step (P = 2 models, batch 32) on one thread, as ONNX's Conv and in the
// NCHWc form lowerConvs gives them, reorders included.
func BenchmarkNCHWc(b *testing.B) {
	const P, B = 2, 32
	stride2 := []*pb.AttributeProto{onnx.Ints("strides", 2, 2)}
	dilate2 := []*pb.AttributeProto{onnx.Ints("dilations", 2, 2)}
	for _, c := range []convCase{
		{name: "conv1", convGraph: convGraph{x: []int64{B, P, 28, 28}, w: []int64{P * 32, 1, 6, 6}, group: P, attrs: stride2}},
		{name: "conv1-weight-gradient", convGraph: convGraph{x: []int64{1, P * B, 28, 28}, w: []int64{P * 32, B, 12, 12}, group: P, transposed: true, attrs: dilate2}},
		{name: "conv2", convGraph: convGraph{x: []int64{B, P * 8, 12, 12}, w: []int64{P * 24, 8, 6, 6}, group: P, attrs: stride2}},
		{name: "conv2-weight-gradient", convGraph: convGraph{x: []int64{8, P * B, 12, 12}, w: []int64{P * 24, B, 4, 4}, group: P, transposed: true, attrs: dilate2}},
	} {
		for _, lower := range []bool{false, true} {
			name := c.name + "/conv"
			if lower {
				name = c.name + "/nchwc"
			}
			b.Run(name, func(b *testing.B) {
				m, _ := c.build()
				sh, err := autodiff.InferShapes(m.Graph())
				if err != nil {
					b.Fatal(err)
				}
				m, shapes := c.build(sh.Types["y"].Shape...)
				if lower {
					bs := nchwcBlock()
					if bs == 0 {
						b.Skip("no NCHWc kernels on this machine")
					}
					if lowerConvs(m, sh.Types, bs) != 1 {
						b.Fatal("not lowered")
					}
				}
				// The sum of the output, so that copying it out does not count.
				e := onnx.Extend(m.Graph(), autodiff.Opset, "bench/")
				e.NodeAs("sum", "ReduceSum", []string{"y"}, onnx.Int("keepdims", 0))
				m.Graph().Output = nil
				e.Output("sum", onnx.Float)
				benchModel(b, m, shapes, P*B)
			})
		}
	}
}

// TestPlainPool checks which MaxPools poolBlocked may move.
func TestPlainPool(t *testing.T) {
	for _, c := range []struct {
		attrs []*pb.AttributeProto
		want  bool
	}{
		{[]*pb.AttributeProto{onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2)}, true},
		{[]*pb.AttributeProto{onnx.Ints("kernel_shape", 3, 3), onnx.Ints("pads", 0, 0, 0, 0), onnx.Ints("dilations", 1, 1), onnx.Int("ceil_mode", 0)}, true},
		{[]*pb.AttributeProto{onnx.Ints("strides", 2, 2)}, false},
		{[]*pb.AttributeProto{onnx.Ints("kernel_shape", 2, 2, 2)}, false},
		{[]*pb.AttributeProto{onnx.Ints("kernel_shape", 2, 2), onnx.Ints("pads", 1, 1, 1, 1)}, false},
		{[]*pb.AttributeProto{onnx.Ints("kernel_shape", 2, 2), onnx.Ints("dilations", 2, 2)}, false},
		{[]*pb.AttributeProto{onnx.Ints("kernel_shape", 2, 2), onnx.Int("ceil_mode", 1)}, false},
		{[]*pb.AttributeProto{onnx.Ints("kernel_shape", 2, 2), onnx.Int("storage_order", 1)}, false},
		{[]*pb.AttributeProto{onnx.Ints("kernel_shape", 2, 2), onnx.Str("auto_pad", "SAME_UPPER")}, false},
	} {
		n := &pb.NodeProto{OpType: ptr("MaxPool"), Attribute: c.attrs}
		if got := plainPool(n); got != c.want {
			t.Errorf("plainPool(%v) = %v, want %v", c.attrs, got, c.want)
		}
	}
}

package zoo

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/hyperrep/hyperrep/autodiff"
	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/runtime"
)

// ONNX Runtime's CPU provider has a second family of convolution kernels,
// for tensors laid out NCHWc: channels in blocks of 8 (AVX2) or 16
// (AVX-512), a block's values adjacent in memory. They convolve directly
// instead of through im2col and a GEMM; on the small channel counts of a
// population's layers the kernels alone ran 2 to 3 times as fast as the
// Conv kernel, and with the reorders around them 1.2 to 2.6 times
// (BenchmarkNCHWc). ORT's own graph optimiser moves a Conv to them only when
// its weights are constant initializers, since it reorders the weights once
// when the session starts; a training step's weights change every step,
// and the weight gradient's Conv reads a gradient as its weight. The
// kernels themselves take the weights as an input like any other, so
// lowerConvs emits what that optimiser would, with the weights reordered by
// a Reshape and a Transpose inside the graph, every step. A MaxPool after
// such a Conv pools the blocked layout too (poolBlocked).

// nchwcDomain is the operator domain of ORT's NCHWc kernels.
const nchwcDomain = "com.microsoft.nchwc"

var nchwc struct {
	once  sync.Once
	block int64 // what ORT reports
	err   error // why the lowered Convs are not used, if they are not
}

// nchwcBlock returns the channel block of ORT's NCHWc kernels on this
// machine, or 0 where the zoo's graphs keep ONNX's Conv: where ORT offers
// no NCHWc kernels, or blocks of fewer than 8 channels, which its probe
// cannot tell apart, or where the lowered forms fail checkLowering, as
// they would if a later ORT laid its blocks out otherwise.
func nchwcBlock() int64 {
	bs, err := nchwcProbe()
	if err != nil {
		return 0
	}
	return bs
}

// nchwcProbe returns the block size ORT reports (0 for none) and the error
// of checkLowering at it. It reads the shape of a ReorderInput of four
// channels, which ORT pads to one block.
func nchwcProbe() (int64, error) {
	nchwc.once.Do(func() {
		nchwc.err = fmt.Errorf("zoo: no NCHWc kernels")
		b := onnx.NewBuilder("nchwc_block", autodiff.Opset)
		x := b.Input("x", onnx.Float, 1, 4, 1, 1)
		b.NodeAs("reorder", "ReorderInput", []string{x})
		b.NodeAs("shape", "Shape", []string{"reorder"})
		b.Output("shape", onnx.Int64, 4)
		m := b.Model()
		setNchwcDomain(m, map[string]bool{"reorder": true})
		raw, err := m.Marshal()
		if err != nil {
			return
		}
		s, err := runtime.NewSession(raw, runtime.Options{Threads: 1})
		if err != nil {
			return
		}
		defer s.Close()
		out, err := s.Run(runtime.NewTensor([]int64{1, 4, 1, 1}, make([]float32, 4)))
		if err != nil || len(out) != 1 {
			return
		}
		if shape, ok := out[0].Data.([]int64); ok && len(shape) == 4 && shape[1] >= 8 && shape[1]%4 == 0 && shape[1] <= 64 {
			nchwc.block = shape[1]
			nchwc.err = checkLowering(nchwc.block)
		}
	})
	return nchwc.block, nchwc.err
}

// checkLowering runs each form lowerConvs emits, at block size bs, on
// small inputs against ONNX's Conv.
func checkLowering(bs int64) error {
	h := bs / 2 // makes output channels per group that need padding
	for _, c := range []convGraph{
		{x: []int64{2, 2, 9, 9}, w: []int64{2 * (bs - 2), 1, 3, 3}, group: 2, bias: true, attrs: []*pb.AttributeProto{onnx.Ints("strides", 2, 2)}},
		{x: []int64{2, 2 * bs, 9, 8}, w: []int64{4 * bs, bs / 2, 3, 2}, group: 4, bias: true, attrs: []*pb.AttributeProto{onnx.Ints("strides", 2, 1)}},
		{x: []int64{2, 2 * bs, 6, 6}, w: []int64{2 * (bs + h), bs, 3, 3}, group: 2, bias: true, attrs: []*pb.AttributeProto{onnx.Ints("pads", 1, 1, 1, 1)}},
		{x: []int64{3, 2 * bs, 7, 7}, w: []int64{2 * (bs + h), bs, 3, 3}, group: 2, transposed: true, attrs: []*pb.AttributeProto{onnx.Ints("dilations", 2, 2)}},
		{x: []int64{2, 4 * bs, 7, 7}, w: []int64{2 * (bs + h), 2 * bs, 3, 3}, group: 2, transposed: true, attrs: []*pb.AttributeProto{onnx.Ints("dilations", 2, 2)}},
	} {
		n, diff, scale, err := c.compare(bs, 7)
		if err != nil {
			return err
		}
		if n != 1 || diff > 1e-5*scale {
			return fmt.Errorf("zoo: NCHWc form of Conv %v by %v differs from ONNX's by %.3g at scale %.3g", c.x, c.w, diff, scale)
		}
	}
	return nil
}

// convGraph is a graph of one Conv, to check lowerConvs with: the shapes
// of its input and weight, its group and other attributes, whether it has
// a bias, and whether its weight is a Transpose (perm 1, 0, 2, 3) of the
// graph's input, as in autodiff's weight gradients; with pool, a 2×2
// MaxPool of stride 2 follows the Conv.
type convGraph struct {
	x, w       []int64
	group      int64
	attrs      []*pb.AttributeProto
	bias       bool
	transposed bool
	pool       bool
}

// build returns the graph, its output y of shape out, and the shapes of
// its inputs.
func (c convGraph) build(out ...int64) (*onnx.Model, [][]int64) {
	b := onnx.NewBuilder("conv", autodiff.Opset)
	x := b.Input("x", onnx.Float, c.x...)
	shapes := [][]int64{c.x}
	var w string
	if c.transposed {
		src := []int64{c.w[1], c.w[0], c.w[2], c.w[3]}
		w = b.Node("Transpose", []string{b.Input("w", onnx.Float, src...)}, onnx.Ints("perm", 1, 0, 2, 3))
		shapes = append(shapes, src)
	} else {
		w = b.Input("w", onnx.Float, c.w...)
		shapes = append(shapes, c.w)
	}
	in := []string{x, w}
	if c.bias {
		in = append(in, b.Input("b", onnx.Float, c.w[0]))
		shapes = append(shapes, []int64{c.w[0]})
	}
	y := b.Node("Conv", in, append([]*pb.AttributeProto{onnx.Int("group", c.group)}, c.attrs...)...)
	if c.pool {
		y = b.Node("MaxPool", []string{y}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2))
	}
	b.NodeAs("y", "Identity", []string{y})
	b.Output("y", onnx.Float, out...)
	return b.Model(), shapes
}

// compare lowers the graph with block bs and runs it and the plain graph
// in ORT on inputs uniform in [-1, 1) drawn from seed. It returns how many
// Convs lowerConvs rewrote, and the largest difference between the outputs
// with the largest magnitude of the plain one; nothing is run when none
// was rewritten.
func (c convGraph) compare(bs int64, seed uint64) (lowered int, diff, scale float64, err error) {
	m, _ := c.build()
	sh, err := autodiff.InferShapes(m.Graph())
	if err != nil {
		return 0, 0, 0, err
	}
	plain, shapes := c.build(sh.Types["y"].Shape...)
	low, _ := c.build(sh.Types["y"].Shape...)
	if lowered = lowerConvs(low, sh.Types, bs); lowered == 0 {
		return 0, 0, 0, nil
	}
	outs, err := runModels(uniformTensors(rng.New(seed), shapes), plain, low)
	if err != nil {
		return lowered, 0, 0, err
	}
	for _, out := range outs {
		if !slices.Equal(out.Shape, sh.Types["y"].Shape) {
			return lowered, 0, 0, fmt.Errorf("zoo: Conv %v by %v: output %v, want %v", c.x, c.w, out.Shape, sh.Types["y"].Shape)
		}
	}
	diff, scale = maxDiff(outs[0].Data.([]float32), outs[1].Data.([]float32))
	return lowered, diff, scale, nil
}

// runModels runs each model in ORT, on one thread, on the inputs in and
// returns its first output.
func runModels(in []runtime.Tensor, models ...*onnx.Model) ([]runtime.Tensor, error) {
	var outs []runtime.Tensor
	for _, m := range models {
		raw, err := m.Marshal()
		if err != nil {
			return nil, err
		}
		s, err := runtime.NewSession(raw, runtime.Options{Threads: 1})
		if err != nil {
			return nil, err
		}
		out, err := s.Run(in...)
		s.Close()
		if err != nil {
			return nil, err
		}
		outs = append(outs, out[0])
	}
	return outs, nil
}

// maxDiff returns the largest difference between want and got, and the
// largest magnitude in want.
func maxDiff(want, got []float32) (diff, scale float64) {
	for i, w := range want {
		scale = max(scale, math.Abs(float64(w)))
		diff = max(diff, math.Abs(float64(got[i]-w)))
	}
	return diff, scale
}

// setNchwcDomain moves the nodes named in names to the NCHWc domain and
// imports that domain into m.
func setNchwcDomain(m *onnx.Model, names map[string]bool) {
	d := nchwcDomain
	for _, n := range m.Graph().GetNode() {
		if names[n.GetName()] {
			n.Domain = &d
		}
	}
	for _, o := range m.Proto.GetOpsetImport() {
		if o.GetDomain() == d {
			return
		}
	}
	m.Proto.OpsetImport = append(m.Proto.OpsetImport, &pb.OperatorSetIdProto{Domain: &d, Version: ptr(int64(1))})
}

// lowerConvs rewrites each 2-D Conv of m whose input and weight shapes
// types knows into NCHWc convolutions with channel block bs, and returns
// how many it rewrote. The results are those of the Conv up to float
// rounding (TestLowerConvs). Two forms cover a population's convolutions:
//
//   - the input has fewer channels per group than a block: ORT's NCHW
//     input path reads the channels as they are, the output channels per
//     group padded to whole blocks; one grouped NCHWc Conv where the input
//     has fewer channels than a block in all or whole blocks (ORT takes a
//     group count there), else one NCHWc Conv per group;
//   - the channels per group fill whole blocks: one NCHWc Conv over the
//     reordered input, the output channels per group padded to whole
//     blocks if they are not. Where the weights are a Transpose of a
//     larger tensor (a weight gradient's, whose input channels are the
//     batch), ReorderInput and a channels-last ReorderOutput reorder them,
//     and each block of input channels becomes a group of its own whose
//     partial results a ReduceSum adds.
//
// A Conv whose padding would more than double its output channels, or with
// auto_pad, is left alone.
func lowerConvs(m *onnx.Model, types map[string]autodiff.Tensor, bs int64) int {
	g := m.Graph()
	var convs []*pb.NodeProto
	for _, n := range g.GetNode() {
		if n.GetOpType() == "Conv" && (n.GetDomain() == "" || n.GetDomain() == "ai.onnx") {
			convs = append(convs, n)
		}
	}
	producer, _ := graphIndex(g)
	e := onnx.Extend(g, autodiff.Opset, "nchwc/")
	moved := map[string]bool{}
	lowered := map[*pb.NodeProto]bool{}
	for _, n := range convs {
		if lowerConv(e, n, types, producer, bs, moved) {
			lowered[n] = true
		}
	}
	if len(lowered) == 0 {
		return 0
	}
	g.Node = slices.DeleteFunc(g.Node, func(n *pb.NodeProto) bool { return lowered[n] })
	poolBlocked(g, moved)
	setNchwcDomain(m, moved)
	removeDead(g)
	sortNodes(g)
	return len(lowered)
}

// lowerConv emits the NCHWc form of the Conv n, writing n's output, and
// reports whether it did; moved collects the names of the nodes that go to
// the NCHWc domain.
func lowerConv(e *onnx.Builder, n *pb.NodeProto, types map[string]autodiff.Tensor, producer map[string]*pb.NodeProto, bs int64, moved map[string]bool) bool {
	xt, okx := types[n.Input[0]]
	wt, okw := types[n.Input[1]]
	yt, oky := types[n.Output[0]]
	if !okx || !okw || !oky || len(xt.Shape) != 4 || len(wt.Shape) != 4 || len(yt.Shape) != 4 || xt.DType != onnx.Float || wt.DType != onnx.Float {
		return false
	}
	if onnx.AttrString(n, "auto_pad", "NOTSET") != "NOTSET" {
		return false
	}
	bias := ""
	if len(n.Input) > 2 {
		bias = n.Input[2]
	}
	G := onnx.AttrInt(n, "group", 1)
	N, C, M, Cg := xt.Shape[0], xt.Shape[1], wt.Shape[0], wt.Shape[1]
	kh, kw := wt.Shape[2], wt.Shape[3]
	if G < 1 || C != Cg*G || M%G != 0 {
		return false
	}
	Mg := M / G
	Mp := wholeBlocks(Mg, bs) // output channels per group, padded
	if Mp > 2*Mg {
		return false
	}
	// The Conv's own attributes, with the kernel shape made explicit (it
	// is not inferred from a reordered weight) and the group set per form.
	attrs := func(group int64) []*pb.AttributeProto {
		var a []*pb.AttributeProto
		for _, at := range n.Attribute {
			switch at.GetName() {
			case "group", "kernel_shape":
			default:
				a = append(a, at)
			}
		}
		return append(a, onnx.Ints("kernel_shape", kh, kw), onnx.Int("group", group))
	}
	// nchwcNode emits an NCHWc node whose output is named out, or after
	// the node if out is "".
	nchwcNode := func(op string, inputs []string, out string, attrs ...*pb.AttributeProto) string {
		name := e.Fresh(op)
		if out == "" {
			out = name
		}
		e.NodeOut(name, op, inputs, []string{out}, attrs...)
		moved[name] = true
		return out
	}
	out := n.Output[0]
	K := Cg * kh * kw
	// padOut pads [G, Mg, rest] to [G, Mp, rest] with zeros.
	padOut := func(v string, rest int64) string {
		if Mp == Mg {
			return v
		}
		v = reshape(e, v, G, Mg, rest)
		return e.Node("Pad", []string{v, int64s(e, 0, 0, 0, 0, Mp-Mg, 0)})
	}
	// unpad writes y, [N, G·Mp, oh, ow] in any shape, to out without the
	// padding channels: [N, G, Mp, oh·ow] -> [N, G, Mg, oh·ow] -> [N,
	// G·Mg, oh, ow].
	unpad := func(y string) {
		oh, ow := yt.Shape[2], yt.Shape[3]
		if Mp != Mg {
			y = reshape(e, y, N, G, Mp, oh*ow)
			y = e.Node("Slice", []string{y, int64s(e, 0), int64s(e, Mg), int64s(e, 2)})
		}
		e.NodeOut(e.Fresh("Reshape"), "Reshape", []string{y, int64s(e, N, G*Mg, oh, ow)}, []string{out})
	}
	if Cg < bs {
		// One Conv per group on its channels as they are; weights
		// [G·Mp, Cg, kh, kw] as OIHWBo: [G, Mp/bs, bs, Cg·kh·kw] ->
		// [G, Mp/bs, Cg·kh·kw, bs].
		w := padOut(n.Input[1], K)
		w = e.Node("Transpose", []string{reshape(e, w, G, Mp/bs, bs, K)}, onnx.Ints("perm", 0, 1, 3, 2))
		xs, ws, bss := []string{n.Input[0]}, []string{w}, []string{bias}
		if G > 1 && (C < bs || C%bs == 0) {
			// One Conv for all groups: ORT's NCHW input path takes a
			// group count where the input has fewer channels than a
			// block in all or whole blocks (NchwcConv refuses other
			// counts), and a single blocked output needs one
			// ReorderOutput instead of one per group and a Concat. The
			// first layer of a training graph saved 2-3 % of a step so,
			// the second layer of an evaluation graph more; the second of
			// a training graph is the same either way.
			in := []string{n.Input[0], reshape(e, w, G*Mp, Cg, kh, kw)}
			if bias != "" {
				in = append(in, reshape(e, padOut(bias, 1), G*Mp))
			}
			y := nchwcNode("Conv", in, "", attrs(G)...)
			if Mp == Mg {
				// The output itself, so that a MaxPool after it can move
				// to the blocked layout (poolBlocked).
				nchwcNode("ReorderOutput", []string{y}, out, onnx.Int("channels", G*Mp))
				return true
			}
			unpad(nchwcNode("ReorderOutput", []string{y}, "", onnx.Int("channels", G*Mp)))
			return true
		}
		if G > 1 {
			xs = splitEqual(e, n.Input[0], 1, G)
			ws = splitEqual(e, w, 0, G)
			if bias != "" {
				bss = splitEqual(e, padOut(bias, 1), 0, G)
			}
		} else if bias != "" {
			bss[0] = padOut(bias, 1)
		}
		ys := make([]string, G)
		for i := range G {
			in := []string{xs[i], reshape(e, ws[i], Mp, Cg, kh, kw)}
			if bias != "" {
				in = append(in, reshape(e, bss[i], Mp))
			}
			y := nchwcNode("Conv", in, "", attrs(1)...)
			to := ""
			if G == 1 {
				to = out
			}
			ys[i] = nchwcNode("ReorderOutput", []string{y}, to, onnx.Int("channels", Mg))
		}
		if G > 1 {
			e.NodeOut(e.Fresh("Concat"), "Concat", ys, []string{out}, onnx.Int("axis", 1))
		}
		return true
	}
	if Cg%bs != 0 {
		return false
	}
	// Whole blocks of input channels per group: weights [G·Mp, Cg, kh, kw]
	// as OIHWBiBo, [G·Mp/bs, Cg/bs, kh·kw, bs(i), bs(o)].
	var w string
	if t := producer[n.Input[1]]; t != nil && t.GetOpType() == "Transpose" && slices.Equal(onnx.AttrInts(t, "perm", nil), []int64{1, 0, 2, 3}) {
		// The weights are src [Cg, G·Mg, kh, kw] with its first two axes
		// exchanged, as in autodiff's weight gradients, where they are a
		// gradient as large as a layer's output: a transpose that moves
		// single values runs at a few ns each there. ReorderInput blocks
		// src's output channels instead, and what is left moves rows of bs
		// values: [Cg, G·Mp/bs, kh·kw, bs(o)] -> [Cg/bs, bs(i), G·Mp/bs,
		// kh·kw, bs(o)] -> [G·Mp/bs, Cg/bs, kh·kw, bs(i), bs(o)].
		src := t.Input[0]
		if Mp != Mg {
			src = reshape(e, e.Node("Pad", []string{reshape(e, src, Cg, G, Mg, kh*kw), int64s(e, 0, 0, 0, 0, 0, 0, Mp-Mg, 0)}), Cg, G*Mp, kh, kw)
		}
		if bias == "" {
			// src blocked is [nb, bs(i), G·Mp/bs, kh·kw, bs(o)]: read as
			// an NCHWc tensor of nb images of bs·bs channels, G·Mp/bs ×
			// kh·kw, a channels-last ReorderOutput moves bs(i) inward in
			// rows of bs values: [nb, G·Mp/bs, kh·kw, bs(i), bs(o)], the
			// weights of nb·G groups of one input block each (about 40 %
			// cheaper than a Transpose). Group (j, g) reads the input
			// channels j·bs, ..., (j+1)·bs-1 of group g, and the nb partial
			// results are summed: MLAS accumulates a Conv's input blocks in
			// the same order, so the values are the same.
			nb := Cg / bs
			r := reshape(e, nchwcNode("ReorderInput", []string{src}, ""), nb, bs*bs, G*Mp/bs, kh*kw)
			w := nchwcNode("ReorderOutput", []string{r}, "", onnx.Int("channels", bs*bs), onnx.Int("channels_last", 1))
			w = reshape(e, w, nb*G*Mp, bs, kh, kw)
			x := n.Input[0]
			if nb > 1 && G > 1 {
				H, W := xt.Shape[2], xt.Shape[3]
				x = e.Node("Transpose", []string{reshape(e, x, N, G, nb, bs*H*W)}, onnx.Ints("perm", 0, 2, 1, 3))
				x = reshape(e, x, N, C, H, W)
			}
			y := nchwcNode("Conv", []string{nchwcNode("ReorderInput", []string{x}, ""), w}, "", attrs(nb*G)...)
			y = nchwcNode("ReorderOutput", []string{y}, "", onnx.Int("channels", nb*G*Mp))
			if nb > 1 {
				y = e.Node("ReduceSum", []string{reshape(e, y, N, nb, G*Mp*yt.Shape[2]*yt.Shape[3]), int64s(e, 1)}, onnx.Int("keepdims", 0))
			}
			unpad(y)
			return true
		}
		r := reshape(e, nchwcNode("ReorderInput", []string{src}, ""), Cg/bs, bs, G*Mp/bs, kh*kw, bs)
		w = e.Node("Transpose", []string{r}, onnx.Ints("perm", 2, 0, 3, 1, 4))
	} else {
		// [G·Mp/bs, bs(o), Cg/bs, bs(i), kh·kw] -> [G·Mp/bs, Cg/bs, kh·kw, bs(i), bs(o)]
		w = reshape(e, padOut(n.Input[1], K), G*Mp/bs, bs, Cg/bs, bs, kh*kw)
		w = e.Node("Transpose", []string{w}, onnx.Ints("perm", 0, 2, 4, 3, 1))
	}
	w = reshape(e, w, G*Mp, Cg, kh, kw)
	in := []string{nchwcNode("ReorderInput", []string{n.Input[0]}, ""), w}
	if bias != "" {
		in = append(in, reshape(e, padOut(bias, 1), G*Mp))
	}
	to := ""
	if Mp == Mg {
		to = out
	}
	y := nchwcNode("ReorderOutput", []string{nchwcNode("Conv", in, "", attrs(G)...)}, to, onnx.Int("channels", G*Mp))
	if Mp != Mg {
		unpad(y)
	}
	return true
}

// wholeBlocks rounds n channels up to whole blocks of bs.
func wholeBlocks(n, bs int64) int64 { return (n + bs - 1) / bs * bs }

// splitEqual cuts x into n equal parts along axis.
func splitEqual(e *onnx.Builder, x string, axis, n int64) []string {
	outs := make([]string, n)
	for i := range outs {
		outs[i] = e.Fresh("split")
	}
	e.NodeOut(e.Fresh("Split"), "Split", []string{x}, outs, onnx.Int("axis", axis))
	return outs
}

// uniformTensors draws float32 tensors of the given shapes, uniform in
// [-1, 1).
func uniformTensors(r *rng.Source, shapes [][]int64) []runtime.Tensor {
	var ts []runtime.Tensor
	for _, shape := range shapes {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.Float64()*2 - 1)
		}
		ts = append(ts, runtime.NewTensor(shape, v))
	}
	return ts
}

// plainPool reports whether the MaxPool n is 2-D with at most a kernel
// shape and strides: no padding, dilation, ceil mode, auto_pad or storage
// order, which the zoo's graphs do not use.
func plainPool(n *pb.NodeProto) bool {
	for _, a := range n.Attribute {
		switch a.GetName() {
		case "kernel_shape":
			if len(a.Ints) != 2 {
				return false
			}
		case "strides":
		case "pads":
			if slices.ContainsFunc(a.Ints, func(v int64) bool { return v != 0 }) {
				return false
			}
		case "dilations":
			if slices.ContainsFunc(a.Ints, func(v int64) bool { return v != 1 }) {
				return false
			}
		case "ceil_mode", "storage_order":
			if a.GetI() != 0 {
				return false
			}
		default:
			return false
		}
	}
	return len(onnx.AttrInts(n, "kernel_shape", nil)) == 2
}

// poolBlocked moves each 2-D MaxPool that alone reads a lowered Conv's
// output ahead of the Conv's ReorderOutput, into the NCHWc domain: ORT's
// NCHWc MaxPool pools the blocked layout (the padding channels with the
// rest, which ReorderOutput then drops), and the reorder moves the pooled
// values, a quarter as many for a 2×2 pool. A MaxPool with an Indices
// output or other attributes than plainPool allows stays as it is. The
// nodes are left out of order; lowerConvs sorts them.
func poolBlocked(g *pb.GraphProto, moved map[string]bool) {
	producer, _ := graphIndex(g)
	uses := map[string]int{}
	for _, n := range g.GetNode() {
		for _, in := range n.Input {
			uses[in]++
		}
	}
	for _, o := range g.GetOutput() {
		uses[o.GetName()]++
	}
	for _, n := range g.GetNode() {
		if n.GetOpType() != "MaxPool" || n.GetDomain() != "" || n.GetName() == "" || len(n.Output) != 1 || !plainPool(n) {
			continue
		}
		r := producer[n.Input[0]]
		if r == nil || !moved[r.GetName()] || r.GetOpType() != "ReorderOutput" || uses[n.Input[0]] != 1 {
			continue
		}
		// Conv -> ReorderOutput -> MaxPool  becomes  Conv -> MaxPool -> ReorderOutput.
		pooled := n.GetName() + "/blocked"
		n.Input[0], r.Input[0] = r.Input[0], pooled
		r.Output[0], n.Output[0] = n.Output[0], pooled
		moved[n.GetName()] = true
	}
}

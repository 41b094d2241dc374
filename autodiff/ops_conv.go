package autodiff

import (
	"fmt"
	"slices"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// Convolution and pooling over tensors laid out [N, C, spatial...]: Conv,
// MaxPool, AveragePool, GlobalAveragePool.
//
// ORT's CPU kernels for Conv, ConvTranspose, AveragePool and
// GlobalAveragePool exist for float32 only, and training runs in float32, so
// these rules emit what ORT does fastest in float32, measured on the cnn-s
// layers (ops_conv_bench_test.go). MaxPool's rule uses only ops that ORT
// also runs in float64.

func init() {
	shapeRules["Conv"] = shapeConv
	gradRules["Conv"] = gradConv
	shapeRules["MaxPool"] = shapePool
	gradRules["MaxPool"] = gradMaxPool
	shapeRules["AveragePool"] = shapePool
	gradRules["AveragePool"] = gradAveragePool
	shapeRules["GlobalAveragePool"] = shapeGlobalPool
	gradRules["GlobalAveragePool"] = gradGlobalAveragePool
	// Ops the gradient rules emit, with shape rules but no gradient rules,
	// so that gradient graphs can be inferred again, e.g. by rewrites that
	// need the shapes: Conv's input gradient is a ConvTranspose, MaxPool's
	// moves tiles with SpaceToDepth and DepthToSpace and puts back what its
	// tiles left out with Pad.
	shapeRules["ConvTranspose"] = shapeConvTranspose
	shapeRules["Pad"] = shapePad
	shapeRules["SpaceToDepth"] = shapeSpaceToDepth
	shapeRules["DepthToSpace"] = shapeDepthToSpace
}

// shapePad: each axis grows by its constant pads (opset 11 to 17, without
// the axes input of opset 18).
func shapePad(s *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	x := in[0].Shape
	if len(n.Input) < 2 || n.Input[1] == "" || len(n.Input) > 3 {
		return nil, fmt.Errorf("Pad needs its pads input (and no axes input)")
	}
	pads, err := s.Ints(n.Input[1])
	if err != nil {
		return nil, err
	}
	if len(pads) != 2*len(x) {
		return nil, fmt.Errorf("Pad of %v by %d pads", x, len(pads))
	}
	out := make([]int64, len(x))
	for i := range x {
		out[i] = x[i] + pads[i] + pads[len(x)+i]
		if out[i] < 0 {
			return nil, fmt.Errorf("Pad of %v by %v gives a negative axis %d", x, pads, i)
		}
	}
	return []Tensor{{in[0].DType, out}}, nil
}

// shapeSpaceToDepth: [N, C, H, W] -> [N, C·b², H/b, W/b].
func shapeSpaceToDepth(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	x, b := in[0].Shape, onnx.AttrInt(n, "blocksize", 0)
	if len(x) != 4 || b < 1 || x[2]%b != 0 || x[3]%b != 0 {
		return nil, fmt.Errorf("SpaceToDepth of %v by blocksize %d: want [N, C, H, W] with H and W multiples of it", x, b)
	}
	return []Tensor{{in[0].DType, []int64{x[0], x[1] * b * b, x[2] / b, x[3] / b}}}, nil
}

// shapeDepthToSpace: [N, C·b², H, W] -> [N, C, H·b, W·b].
func shapeDepthToSpace(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	x, b := in[0].Shape, onnx.AttrInt(n, "blocksize", 0)
	if len(x) != 4 || b < 1 || x[1]%(b*b) != 0 {
		return nil, fmt.Errorf("DepthToSpace of %v by blocksize %d: want [N, C, H, W] with C a multiple of its square", x, b)
	}
	return []Tensor{{in[0].DType, []int64{x[0], x[1] / (b * b), x[2] * b, x[3] * b}}}, nil
}

// window is the geometry of a Conv or pooling node along the spatial axes,
// with auto_pad resolved into explicit pads.
type window struct {
	in, out                    []int64 // spatial sizes of input and output
	kernel, strides, dilations []int64
	begin, end                 []int64 // padding before and after each axis
}

// newWindow reads the window attributes of n for a spatial input of size
// in and a kernel of the given shape; ceil selects ceil_mode's rounding.
func newWindow(n *pb.NodeProto, in, kernel []int64, ceil bool) (*window, error) {
	d := len(in)
	w := &window{in: in, kernel: kernel, strides: onesOf(d), dilations: onesOf(d),
		begin: make([]int64, d), end: make([]int64, d), out: make([]int64, d)}
	if len(kernel) != d {
		return nil, fmt.Errorf("kernel_shape %v for %d spatial axes", kernel, d)
	}
	for _, a := range []struct {
		name string
		dst  *[]int64
	}{{"strides", &w.strides}, {"dilations", &w.dilations}} {
		if v := onnx.AttrInts(n, a.name, nil); v != nil {
			if len(v) != d {
				return nil, fmt.Errorf("%s %v for %d spatial axes", a.name, v, d)
			}
			*a.dst = v
		}
	}
	if err := w.setPads(n); err != nil {
		return nil, err
	}
	for i := range in {
		if kernel[i] < 1 || w.strides[i] < 1 || w.dilations[i] < 1 || w.begin[i] < 0 || w.end[i] < 0 {
			return nil, fmt.Errorf("window kernel %v strides %v dilations %v pads %v %v", kernel, w.strides, w.dilations, w.begin, w.end)
		}
		span := in[i] + w.begin[i] + w.end[i] - w.reach(i)
		if span < 0 {
			return nil, fmt.Errorf("window of %d does not fit input %v padded by %v %v", w.reach(i), in, w.begin, w.end)
		}
		w.out[i] = span/w.strides[i] + 1
		// ceil_mode adds a last, partial window unless it would start in
		// the end padding.
		if ceil && span%w.strides[i] != 0 && w.out[i]*w.strides[i] < in[i]+w.begin[i] {
			w.out[i]++
		}
	}
	return w, nil
}

// setPads reads pads, or derives them from auto_pad.
func (w *window) setPads(n *pb.NodeProto) error {
	d := len(w.in)
	pads := onnx.AttrInts(n, "pads", nil)
	mode := onnx.AttrString(n, "auto_pad", "NOTSET")
	switch {
	case mode == "NOTSET" || mode == "":
		if pads != nil && len(pads) != 2*d {
			return fmt.Errorf("pads %v for %d spatial axes", pads, d)
		}
		if pads != nil {
			copy(w.begin, pads[:d])
			copy(w.end, pads[d:])
		}
		return nil
	case mode != "VALID" && mode != "SAME_UPPER" && mode != "SAME_LOWER":
		return fmt.Errorf("auto_pad %q", mode)
	case pads != nil:
		return fmt.Errorf("auto_pad %s with explicit pads %v: ONNX allows one or the other", mode, pads)
	case mode == "VALID":
		return nil
	}
	for i := range w.in {
		out := (w.in[i] + w.strides[i] - 1) / w.strides[i]
		total := max(0, (out-1)*w.strides[i]+w.reach(i)-w.in[i])
		w.begin[i], w.end[i] = total/2, total-total/2
		if mode == "SAME_LOWER" {
			w.begin[i], w.end[i] = w.end[i], w.begin[i]
		}
	}
	return nil
}

// reach is the extent of the dilated kernel along axis i.
func (w *window) reach(i int) int64 { return (w.kernel[i]-1)*w.dilations[i] + 1 }

// tiles reports whether the windows cut the input into disjoint tiles that
// cover all of it but a remainder at the end of each axis.
func (w *window) tiles() bool {
	for i := range w.in {
		if w.kernel[i] != w.strides[i] || w.dilations[i] != 1 || w.begin[i] != 0 || w.end[i] != 0 || w.out[i]*w.kernel[i] > w.in[i] {
			return false
		}
	}
	return true
}

// transposed returns the pads and output_padding of the ConvTranspose that
// maps a gradient of the window's output back onto its input: the end pad
// cuts what windows reached past the input, output_padding restores
// trailing input positions no window reached.
func (w *window) transposed() (pads, outPad []int64) {
	d := len(w.in)
	pads, outPad = make([]int64, 2*d), make([]int64, d)
	copy(pads, w.begin)
	for i := range w.in {
		covered := (w.out[i]-1)*w.strides[i] + w.reach(i) - w.begin[i]
		if covered >= w.in[i] {
			pads[d+i] = covered - w.in[i]
		} else {
			outPad[i] = w.in[i] - covered
		}
	}
	return pads, outPad
}

func shapeConv(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	x, w := in[0].Shape, in[1].Shape
	group := onnx.AttrInt(n, "group", 1)
	if len(x) < 3 || len(w) != len(x) || group < 1 || x[1] != w[1]*group || w[0]%group != 0 {
		return nil, fmt.Errorf("Conv of %v by weight %v in %d groups: want [N, C, spatial...] and [M, C/group, kernel...]", x, w, group)
	}
	if k := onnx.AttrInts(n, "kernel_shape", nil); k != nil && !slices.Equal(k, w[2:]) {
		return nil, fmt.Errorf("Conv kernel_shape %v, weight %v", k, w)
	}
	if len(in) > 2 && in[2].DType != 0 && !slices.Equal(in[2].Shape, w[:1]) {
		return nil, fmt.Errorf("Conv bias %v for %d output channels", in[2].Shape, w[0])
	}
	win, err := newWindow(n, x[2:], w[2:], false)
	if err != nil {
		return nil, err
	}
	return []Tensor{{in[0].DType, slices.Concat([]int64{x[0], w[0]}, win.out)}}, nil
}

// shapeConvTranspose: [N, C, in...] by [C, M/group, k...] gives [N, M,
// (in−1)·s + output_padding + (k−1)·d + 1 − pads...].
func shapeConvTranspose(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	x, w := in[0].Shape, in[1].Shape
	group := onnx.AttrInt(n, "group", 1)
	d := len(x) - 2
	if d < 1 || len(w) != len(x) || group < 1 || x[1] != w[0] || w[0]%group != 0 {
		return nil, fmt.Errorf("ConvTranspose of %v by weight %v in %d groups: want [N, C, spatial...] and [C, M/group, kernel...]", x, w, group)
	}
	if onnx.AttrInts(n, "output_shape", nil) != nil || onnx.AttrString(n, "auto_pad", "NOTSET") != "NOTSET" {
		return nil, fmt.Errorf("ConvTranspose with output_shape or auto_pad is not supported")
	}
	strides, dilations := onnx.AttrInts(n, "strides", onesOf(d)), onnx.AttrInts(n, "dilations", onesOf(d))
	pads, outPad := onnx.AttrInts(n, "pads", make([]int64, 2*d)), onnx.AttrInts(n, "output_padding", make([]int64, d))
	if len(strides) != d || len(dilations) != d || len(pads) != 2*d || len(outPad) != d {
		return nil, fmt.Errorf("ConvTranspose attributes for %d spatial axes: strides %v, dilations %v, pads %v, output_padding %v", d, strides, dilations, pads, outPad)
	}
	out := []int64{x[0], w[1] * group}
	for i := range d {
		size := (x[2+i]-1)*strides[i] + outPad[i] + (w[2+i]-1)*dilations[i] + 1 - pads[i] - pads[d+i]
		if size < 1 {
			return nil, fmt.Errorf("ConvTranspose of %v by weight %v gives an empty axis %d", x, w, 2+i)
		}
		out = append(out, size)
	}
	return []Tensor{{in[0].DType, out}}, nil
}

func gradConv(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	x, w := n.Input[0], n.Input[1]
	xs, ws := c.Type(x).Shape, c.Type(w).Shape
	win, err := newWindow(n, xs[2:], ws[2:], false)
	if err != nil {
		return nil, err
	}
	group := onnx.AttrInt(n, "group", 1)
	dx := make([]string, len(n.Input))
	if c.Needs(x) {
		dx[0] = convInputGrad(c, dy[0], w, win, group)
	}
	if c.Needs(w) {
		dx[1] = convWeightGrad(c, x, dy[0], xs, ws, win, group)
	}
	if len(n.Input) > 2 && n.Input[2] != "" && c.Needs(n.Input[2]) {
		axes := slices.DeleteFunc(axisRange(0, len(xs)), func(a int64) bool { return a == 1 })
		dx[2] = c.Op("ReduceSum", []string{dy[0], c.Int64s(axes...)}, onnx.Int("keepdims", 0))
	}
	return dx, nil
}

// convInputGrad is the transposed convolution of dy by the same weights;
// ConvTranspose reads a [M, C/group, k...] weight exactly as Conv does.
func convInputGrad(c *Context, dy, w string, win *window, group int64) string {
	pads, outPad := win.transposed()
	return c.Op("ConvTranspose", []string{dy, w}, onnx.Ints("kernel_shape", win.kernel...),
		onnx.Ints("strides", win.strides...), onnx.Ints("dilations", win.dilations...),
		onnx.Ints("pads", pads...), onnx.Ints("output_padding", outPad...), onnx.Int("group", group))
}

// im2colMinChannels is where convWeightGrad switches formulation. The
// cost of the transposed Conv grows with the input's channels, which become
// its batch; the im2col gather's hardly does. On the cnn-s shapes at batch
// 32 (ops_conv_bench_test.go) the crossover lies between 4 and 8 channels.
const im2colMinChannels = 6

// im2colMaxElements bounds the patches im2col gathers (64 MiB of float32);
// the transposed Conv never holds more than one channel's.
const im2colMaxElements = 1 << 24

// convWeightGrad: dW[m, c, k] = Σ_n Σ_o dy[n, m, o]·x[n, c, o·s + k·d − p].
func convWeightGrad(c *Context, x, dy string, xs, ws []int64, win *window, group int64) string {
	if group == 1 && xs[1] >= im2colMinChannels && xs[0]*xs[1]*product(win.out)*product(win.kernel) <= im2colMaxElements {
		return convWeightGradIm2col(c, x, dy, xs, ws, win)
	}
	return convWeightGradConv(c, x, dy, xs, ws, win, group)
}

// convWeightGradConv writes the weight gradient as a convolution: of x
// with batch and channel axes exchanged, by dy read as a weight, with
// strides and dilations exchanged.
func convWeightGradConv(c *Context, x, dy string, xs, ws []int64, win *window, group int64) string {
	nb, cg, sp := xs[0], xs[1]/group, xs[2:]
	// [N, C, S...] -> [N, g, C/g, S...] -> [C/g, g, N, S...] -> [C/g, g·N, S...]
	grouped := slices.Concat([]int64{nb, group, cg}, sp)
	xt := relayout(c, c.Reshape(x, grouped), grouped, slices.Concat([]int64{2, 1, 0}, axisRange(3, len(sp))))
	xt = c.Reshape(xt, slices.Concat([]int64{cg, group * nb}, sp))
	// [N, M, O...] -> [M, N, O...]
	ys := slices.Concat([]int64{nb, ws[0]}, win.out)
	yt := relayout(c, dy, ys, slices.Concat([]int64{1, 0}, axisRange(2, len(sp))))

	d := len(sp)
	pads := slices.Concat(win.begin, make([]int64, d))
	ends := make([]int64, d)
	crop := false
	for i := range sp {
		// Pad the end only as far as the last window reached; with less
		// the result would be short, with more it has extra taps to crop.
		pads[d+i] = max(0, (win.out[i]-1)*win.strides[i]+win.reach(i)-sp[i]-win.begin[i])
		got := (sp[i]+win.begin[i]+pads[d+i]-(win.out[i]-1)*win.strides[i]-1)/win.dilations[i] + 1
		ends[i] = win.kernel[i]
		crop = crop || got != win.kernel[i]
	}
	g := c.Op("Conv", []string{xt, yt}, onnx.Ints("kernel_shape", win.out...),
		onnx.Ints("strides", win.dilations...), onnx.Ints("dilations", win.strides...),
		onnx.Ints("pads", pads...), onnx.Int("group", group))
	if crop {
		g = c.Op("Slice", []string{g, c.Int64s(make([]int64, d)...), c.Int64s(ends...), c.Int64s(axisRange(2, d)...)})
	}
	// [C/g, M, k...] -> [M, C/g, k...]
	return relayout(c, g, slices.Concat([]int64{cg, ws[0]}, win.kernel), slices.Concat([]int64{1, 0}, axisRange(2, d)))
}

// convWeightGradIm2col writes the weight gradient as dy·colsᵀ, cols
// holding the patches of x gathered channels-last, so that each tap
// gathers a row of C values and a single MatMul does the arithmetic.
func convWeightGradIm2col(c *Context, x, dy string, xs, ws []int64, win *window) string {
	n, ch, m, d := xs[0], xs[1], ws[0], len(xs)-2
	padded := make([]int64, d)
	pads := make([]int64, 2*len(xs))
	for i := range d {
		padded[i] = xs[2+i] + win.begin[i] + win.end[i]
		pads[2+i], pads[len(xs)+2+i] = win.begin[i], win.end[i]
	}
	if !slices.Equal(padded, xs[2:]) {
		x = c.Op("Pad", []string{x, c.Int64s(pads...)})
	}
	flat := []int64{n, ch, product(padded)}
	xl := relayout(c, c.Reshape(x, flat), flat, []int64{0, 2, 1}) // [N, P, C]
	outs, taps := product(win.out), product(win.kernel)
	table := c.b.Initializer(onnx.NewInt64Tensor(c.Fresh("patches"), []int64{outs, taps}, patchIndex(win, padded)))
	cols := c.Op("Gather", []string{xl, table}, onnx.Int("axis", 1)) // [N, O, K, C]
	cols = c.Reshape(cols, []int64{n * outs, taps * ch})
	ys := slices.Concat([]int64{n, m}, win.out)
	dyl := relayout(c, dy, ys, slices.Concat([]int64{1, 0}, axisRange(2, d))) // [M, N, O...]
	g := c.Op("MatMul", []string{c.Reshape(dyl, []int64{m, n * outs}), cols})
	// [M, K·C] -> [M, K, C] -> [M, C, K]
	return c.Reshape(relayout(c, c.Reshape(g, []int64{m, taps, ch}), []int64{m, taps, ch}, []int64{0, 2, 1}), ws)
}

// patchIndex lists, for each output position and each kernel tap, the flat
// offset of the element it reads in the input padded to padded.
func patchIndex(win *window, padded []int64) []int64 {
	idx := make([]int64, 0, product(win.out)*product(win.kernel))
	for o := range product(win.out) {
		for k := range product(win.kernel) {
			flat, stride, ro, rk := int64(0), int64(1), o, k
			for i := len(padded) - 1; i >= 0; i-- {
				flat += (ro%win.out[i]*win.strides[i] + rk%win.kernel[i]*win.dilations[i]) * stride
				ro, rk, stride = ro/win.out[i], rk/win.kernel[i], stride*padded[i]
			}
			idx = append(idx, flat)
		}
	}
	return idx
}

// relayout transposes x, of the given shape, by perm; when perm only moves
// axes of size 1 the data keep their order and a Reshape, which copies
// nothing, does the same.
func relayout(c *Context, x string, shape, perm []int64) string {
	out := make([]int64, len(perm))
	last, moves := int64(-1), false
	for i, p := range perm {
		out[i] = shape[p]
		if shape[p] != 1 {
			moves = moves || p < last
			last = p
		}
	}
	if !moves {
		return c.Reshape(x, out)
	}
	return c.Op("Transpose", []string{x}, onnx.Ints("perm", perm...))
}

func shapePool(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	x := in[0].Shape
	k := onnx.AttrInts(n, "kernel_shape", nil)
	if len(x) < 3 || len(k) != len(x)-2 {
		return nil, fmt.Errorf("%s of %v with kernel_shape %v: want [N, C, spatial...] and a kernel per spatial axis", n.GetOpType(), x, k)
	}
	win, err := newWindow(n, x[2:], k, onnx.AttrInt(n, "ceil_mode", 0) != 0)
	if err != nil {
		return nil, err
	}
	y := slices.Concat(x[:2], win.out)
	return []Tensor{{in[0].DType, y}, {onnx.Int64, y}}, nil
}

func poolWindow(c *Context, n *pb.NodeProto) (*window, error) {
	x := c.Type(n.Input[0]).Shape
	return newWindow(n, x[2:], onnx.AttrInts(n, "kernel_shape", nil), onnx.AttrInt(n, "ceil_mode", 0) != 0)
}

// gradMaxPool routes dy to the maxima of each window. Where square
// windows tile an image (cnn-s's 2×2 pools) it finds the maxima again by
// comparing x with y; elsewhere it scatters dy to MaxPool's Indices output,
// which it adds to the forward node. Asking for Indices makes ORT's MaxPool
// far slower: on cnn-s's first pool at batch 32, forward and backward took
// 600 µs with Indices and scatter, 300 µs with the comparison; the forward
// pass alone, 35 µs.
func gradMaxPool(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	win, err := poolWindow(c, n)
	if err != nil {
		return nil, err
	}
	if win.tiles() && len(win.in) == 2 && win.kernel[0] == win.kernel[1] {
		return []string{maxPoolTileGrad(c, n.Input[0], n.Output[0], dy[0], win)}, nil
	}
	if onnx.AttrInt(n, "storage_order", 0) != 0 {
		return nil, fmt.Errorf("storage_order 1 is not supported for these windows")
	}
	return []string{maxPoolScatterGrad(c, n, dy[0])}, nil
}

// maxPoolTileGrad compares each k×k tile, moved into channels by
// SpaceToDepth, with its maximum, and splits the tile's dy equally among
// the elements equal to it: no tie double-counts, and a tile's gradient
// sums to its dy whatever the ties. SpaceToDepth and DepthToSpace keep the
// broadcasts over whole [C, h, w] blocks, which ORT does fast.
func maxPoolTileGrad(c *Context, x, y, dy string, win *window) string {
	xt := c.Type(x)
	n, ch, k, h, w := xt.Shape[0], xt.Shape[1], win.kernel[0], win.out[0], win.out[1]
	tiles := []int64{n, k * k, ch, h, w}
	pooled := []int64{n, 1, ch, h, w}
	blocks := c.Op("SpaceToDepth", []string{cropTiles(c, x, win)}, onnx.Int("blocksize", k))
	mask := c.Op("Equal", []string{c.Reshape(blocks, tiles), c.Reshape(y, pooled)})
	mask = c.Op("Cast", []string{mask}, onnx.Int("to", int64(xt.DType)))
	count := c.Op("ReduceSum", []string{mask, c.Int64s(1)}, onnx.Int("keepdims", 1))
	g := c.Op("Mul", []string{mask, c.Op("Div", []string{c.Reshape(dy, pooled), count})})
	g = c.Op("DepthToSpace", []string{c.Reshape(g, []int64{n, k * k * ch, h, w})}, onnx.Int("blocksize", k))
	return uncropTiles(c, g, xt.Shape, win)
}

// cropTiles drops the remainder that no tile covers.
func cropTiles(c *Context, x string, win *window) string {
	ends := make([]int64, len(win.in))
	crop := false
	for i := range ends {
		ends[i] = win.out[i] * win.kernel[i]
		crop = crop || ends[i] != win.in[i]
	}
	if !crop {
		return x
	}
	d := len(win.in)
	return c.Op("Slice", []string{x, c.Int64s(make([]int64, d)...), c.Int64s(ends...), c.Int64s(axisRange(2, d)...)})
}

// uncropTiles puts zeros where cropTiles dropped the remainder.
func uncropTiles(c *Context, g string, shape []int64, win *window) string {
	pads := make([]int64, 2*len(shape))
	pad := false
	for i := range win.in {
		pads[len(shape)+2+i] = shape[2+i] - win.out[i]*win.kernel[i]
		pad = pad || pads[len(shape)+2+i] != 0
	}
	if !pad {
		return g
	}
	return c.Op("Pad", []string{g, c.Int64s(pads...)})
}

// maxPoolScatterGrad adds dy into zeros at the Indices of the maxima, which
// ORT gives as offsets into the whole flattened input; ScatterElements'
// reduction sums where windows overlap.
func maxPoolScatterGrad(c *Context, n *pb.NodeProto, dy string) string {
	xt := c.Type(n.Input[0])
	if len(n.Output) < 2 || n.Output[1] == "" {
		n.Output = append(n.Output[:1], c.Fresh(n.Output[0]+"_indices"))
	}
	zeros := c.Op("Expand", []string{c.Scalar(0, xt.DType), c.Int64s(xt.Size())})
	flat := c.Op("ScatterElements", []string{zeros, c.Reshape(n.Output[1], []int64{-1}), c.Reshape(dy, []int64{-1})},
		onnx.Int("axis", 0), onnx.Str("reduction", "add"))
	return c.Reshape(flat, xt.Shape)
}

// gradAveragePool spreads each window's dy, divided by the window's count,
// over the window with a depthwise ConvTranspose by a kernel of ones.
func gradAveragePool(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	win, err := poolWindow(c, n)
	if err != nil {
		return nil, err
	}
	xt := c.Type(n.Input[0])
	ch, size := xt.Shape[1], product(win.kernel)
	g := c.Op("Mul", []string{dy[0], averageDivisors(c, win, xt.DType, onnx.AttrInt(n, "count_include_pad", 0) != 0)})
	ones := make([]float64, ch*size)
	for i := range ones {
		ones[i] = 1
	}
	w := c.Const(xt.DType, slices.Concat([]int64{ch, 1}, win.kernel), ones)
	return []string{convInputGrad(c, g, w, win, ch)}, nil
}

// averageDivisors is the reciprocal of the number of elements each window
// averages, as a constant that broadcasts against [N, C, out...]: the
// kernel size when padding counts (ORT divides by it even for a ceil_mode
// window that overhangs the end padding), else the window's overlap with
// the input.
func averageDivisors(c *Context, win *window, dtype int32, includePad bool) string {
	d := len(win.in)
	inside := true // every window lies within the input
	for i := range d {
		inside = inside && win.begin[i] == 0 && win.end[i] == 0 && (win.out[i]-1)*win.strides[i]+win.kernel[i] <= win.in[i]
	}
	if includePad || inside {
		return c.Scalar(1/float64(product(win.kernel)), dtype)
	}
	inv := []float64{1}
	for i := range d {
		var next []float64
		for _, v := range inv {
			for o := range win.out[i] {
				lo := o*win.strides[i] - win.begin[i]
				hi := min(lo+win.kernel[i], win.in[i])
				next = append(next, v/float64(hi-max(lo, 0)))
			}
		}
		inv = next
	}
	return c.Const(dtype, slices.Concat([]int64{1, 1}, win.out), inv)
}

func shapeGlobalPool(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	x := in[0].Shape
	if len(x) < 3 {
		return nil, fmt.Errorf("%s of %v: want [N, C, spatial...]", n.GetOpType(), x)
	}
	y := slices.Clone(x)
	for i := 2; i < len(y); i++ {
		y[i] = 1
	}
	return []Tensor{{in[0].DType, y}}, nil
}

func gradGlobalAveragePool(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	xt := c.Type(n.Input[0])
	size := xt.Size() / (xt.Shape[0] * xt.Shape[1])
	g := c.Op("Mul", []string{dy[0], c.Scalar(1/float64(size), xt.DType)})
	return []string{c.Op("Expand", []string{g, c.Int64s(xt.Shape...)})}, nil
}

func product(v []int64) int64 {
	p := int64(1)
	for _, x := range v {
		p *= x
	}
	return p
}

func onesOf(n int) []int64 {
	v := make([]int64, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

// axisRange lists the n axes from first on.
func axisRange(first, n int) []int64 {
	v := make([]int64, n)
	for i := range v {
		v[i] = int64(first + i)
	}
	return v
}

package autodiff

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/runtime"
)

// The backward formulations these benchmarks compare on the cnn-s layers
// at batch 32, one ORT thread each (how zoo training runs them): the ones
// ops_conv.go emits, and the alternatives it does not.

// cnnSConvs are the convolutions of cnn-s at batch 32.
var cnnSConvs = []struct {
	name   string
	x, w   []int64
	needDX bool // the first layer's input needs no gradient
}{
	{"conv1", []int64{32, 1, 28, 28}, []int64{8, 1, 5, 5}, false},
	{"conv2", []int64{32, 8, 12, 12}, []int64{6, 8, 5, 5}, true},
	{"conv3", []int64{32, 6, 4, 4}, []int64{4, 6, 2, 2}, true},
	// conv2 with fewer input channels, to place im2colMinChannels.
	{"conv2-c1", []int64{32, 1, 12, 12}, []int64{6, 1, 5, 5}, false},
	{"conv2-c2", []int64{32, 2, 12, 12}, []int64{6, 2, 5, 5}, false},
	{"conv2-c4", []int64{32, 4, 12, 12}, []int64{6, 4, 5, 5}, false},
}

// benchGraph builds a float32 graph from the named inputs with build's
// outputs, and times one run of it.
func benchGraph(b *testing.B, inputs map[string][]int64, build func(c *Context) []string) {
	bl := onnx.NewBuilder(b.Name(), Opset)
	c := &Context{b: bl, shapes: &Shapes{Types: map[string]Tensor{}}, need: map[string]bool{}, consts: map[string]string{}}
	r := rand.New(rand.NewPCG(1, 2))
	var values []runtime.Tensor
	for _, name := range slices.Sorted(maps.Keys(inputs)) {
		bl.Input(name, onnx.Float, inputs[name]...)
		c.shapes.Types[name] = Tensor{onnx.Float, inputs[name]}
		v := make([]float32, product(inputs[name]))
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		values = append(values, runtime.NewTensor(inputs[name], v))
	}
	// Only the sum of each result comes back: copying whole tensors into
	// Go would take longer than some of the work timed.
	for _, o := range build(c) {
		bl.Output(c.Op("ReduceSum", []string{o}, onnx.Int("keepdims", 0)), onnx.Float)
	}
	data, err := bl.Model().Marshal()
	if err != nil {
		b.Fatal(err)
	}
	s, err := runtime.NewSession(data, runtime.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		if _, err := s.Run(values...); err != nil {
			b.Fatal(err)
		}
	}
}

func convWindow(b *testing.B, x, w []int64) *window {
	win, err := newWindow(&pb.NodeProto{}, x[2:], w[2:], false)
	if err != nil {
		b.Fatal(err)
	}
	return win
}

func BenchmarkConvWeightGrad(b *testing.B) {
	ways := []struct {
		name string
		grad func(c *Context, xs, ws []int64, win *window) string
	}{
		{"transposed-conv", func(c *Context, xs, ws []int64, win *window) string {
			return convWeightGradConv(c, "x", "dy", xs, ws, win, 1)
		}},
		{"im2col-matmul", func(c *Context, xs, ws []int64, win *window) string {
			return convWeightGradIm2col(c, "x", "dy", xs, ws, win)
		}},
	}
	for _, l := range cnnSConvs {
		win := convWindow(b, l.x, l.w)
		dy := slices.Concat([]int64{l.x[0], l.w[0]}, win.out)
		for _, way := range ways {
			b.Run(l.name+"/"+way.name, func(b *testing.B) {
				benchGraph(b, map[string][]int64{"x": l.x, "dy": dy}, func(c *Context) []string {
					return []string{way.grad(c, l.x, l.w, win)}
				})
			})
		}
	}
}

func BenchmarkConvInputGrad(b *testing.B) {
	ways := []struct {
		name string
		grad func(c *Context, ws []int64, win *window) string
	}{
		{"conv-transpose", func(c *Context, _ []int64, win *window) string { return convInputGrad(c, "dy", "w", win, 1) }},
		{"conv-flipped", flippedInputGrad},
	}
	for _, l := range cnnSConvs {
		if !l.needDX {
			continue
		}
		win := convWindow(b, l.x, l.w)
		dy := slices.Concat([]int64{l.x[0], l.w[0]}, win.out)
		for _, way := range ways {
			b.Run(l.name+"/"+way.name, func(b *testing.B) {
				benchGraph(b, map[string][]int64{"w": l.w, "dy": dy}, func(c *Context) []string {
					return []string{way.grad(c, l.w, win)}
				})
			})
		}
	}
}

// flippedInputGrad is dx as the Conv of dy, fully padded, by the weight
// flipped in space with its channel axes exchanged. Stride 1, unpadded,
// ungrouped windows only.
func flippedInputGrad(c *Context, ws []int64, win *window) string {
	d := len(win.kernel)
	minus, lowest := make([]int64, d), make([]int64, d)
	pads := make([]int64, 2*d)
	for i := range d {
		minus[i], lowest[i] = -1, math.MinInt64
		pads[i] = (win.kernel[i] - 1) * win.dilations[i]
		pads[d+i] = pads[i]
	}
	wf := c.Op("Slice", []string{"w", c.Int64s(minus...), c.Int64s(lowest...), c.Int64s(axisRange(2, d)...), c.Int64s(minus...)})
	wf = relayout(c, wf, ws, slices.Concat([]int64{1, 0}, axisRange(2, d)))
	return c.Op("Conv", []string{"dy", wf}, onnx.Ints("pads", pads...), onnx.Ints("dilations", win.dilations...))
}

// BenchmarkMaxPool times cnn-s's 2×2 pools forward and backward: with
// the tiles ops_conv.go compares in SpaceToDepth layout, with MaxPool's
// Indices and ScatterElements, and with the comparison made at full
// resolution against y upsampled by DepthToSpace; "forward" is the pool
// alone.
func BenchmarkMaxPool(b *testing.B) {
	pools := []struct {
		name string
		x    []int64
	}{{"pool1", []int64{32, 8, 24, 24}}, {"pool2", []int64{32, 6, 8, 8}}}
	attrs := []*pb.AttributeProto{onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2)}
	for _, p := range pools {
		y := []int64{p.x[0], p.x[1], p.x[2] / 2, p.x[3] / 2}
		win, err := newWindow(&pb.NodeProto{Attribute: attrs}, p.x[2:], []int64{2, 2}, false)
		if err != nil {
			b.Fatal(err)
		}
		for _, way := range []string{"forward", "space-to-depth", "indices-scatter", "upsampled"} {
			b.Run(p.name+"/"+way, func(b *testing.B) {
				benchGraph(b, map[string][]int64{"x": p.x, "dy": y}, func(c *Context) []string {
					out := c.Op("MaxPool", []string{"x"}, attrs...)
					switch way {
					case "forward":
						return []string{out}
					case "space-to-depth":
						return []string{out, maxPoolTileGrad(c, "x", out, "dy", win)}
					case "indices-scatter":
						n := c.b.Graph().Node[len(c.b.Graph().Node)-1]
						return []string{out, maxPoolScatterGrad(c, n, "dy")}
					}
					return []string{out, upsampledMaxPoolGrad(c, "x", out, "dy", p.x)}
				})
			})
		}
	}
}

// upsampledMaxPoolGrad compares x with y repeated over each 2×2 tile
// (Concat + DepthToSpace) and splits dy among ties.
func upsampledMaxPoolGrad(c *Context, x, y, dy string, xs []int64) string {
	up := func(v string) string {
		return c.Op("DepthToSpace", []string{c.Op("Concat", []string{v, v, v, v}, onnx.Int("axis", 1))}, onnx.Int("blocksize", 2))
	}
	mask := c.Op("Cast", []string{c.Op("Equal", []string{x, up(y)})}, onnx.Int("to", int64(onnx.Float)))
	n, ch, h, w := xs[0], xs[1], xs[2]/2, xs[3]/2
	count := c.Op("SpaceToDepth", []string{mask}, onnx.Int("blocksize", 2))
	count = c.Op("ReduceSum", []string{c.Reshape(count, []int64{n, 4, ch, h, w}), c.Int64s(1)}, onnx.Int("keepdims", 0))
	return c.Op("Mul", []string{mask, up(c.Op("Div", []string{dy, count}))})
}

// BenchmarkCNNSGradient times the gradient graph of cnn-s at batch 32:
// forward pass, mean-squared loss and backward pass, no optimiser.
func BenchmarkCNNSGradient(b *testing.B) {
	f32 := newTwin(twinCase{name: "cnn-s", build: cnnS("Tanh", 32)}, onnx.Float, convOp, nil)
	weights := f32.inputs[1 : len(f32.inputs)-1] // not x, not the target
	res, err := Gradients(f32.model.Graph(), f32.loss, weights)
	if err != nil {
		b.Fatal(err)
	}
	g := res.Graph
	g.Output = g.Output[:1] // the loss; the gradients' sums follow
	bl := onnx.Extend(g, Opset, "bench/")
	for _, w := range weights {
		sum := bl.Node("ReduceSum", []string{res.Grads[w]}, onnx.Int("keepdims", 0))
		g.Output = append(g.Output, valueInfo(sum, Tensor{DType: onnx.Float}))
	}
	data, err := (&onnx.Model{Proto: withGraph(f32.model, g)}).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	s, err := runtime.NewSession(data, runtime.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(1, 2))
	var values []runtime.Tensor
	for _, shape := range f32.shapes {
		v := make([]float32, product(shape))
		for i := range v {
			v[i] = float32(r.Float64()*2-1) / 4
		}
		values = append(values, runtime.NewTensor(shape, v))
	}
	for b.Loop() {
		if _, err := s.Run(values...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/step")
}

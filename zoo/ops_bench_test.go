package zoo

import (
	"fmt"
	"testing"

	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/runtime"
)

// The op-level measurements behind the population layout, on one thread,
// in model-samples per second for cnn-s's two pooled convolutions (conv1:
// 1→8 channels on 28×28, conv2: 8→6 on 12×12) and 16 models of 32 samples.

// benchGraph times a graph of float32 inputs (int64 ones come from ints)
// whose outputs are reduced to scalars, so that copying results out does
// not count.
func benchGraph(b *testing.B, samples int, build func(g *onnx.Builder) (inputs [][]int64, outputs []string)) {
	g := onnx.NewBuilder("bench", 17)
	shapes, outs := build(g)
	for _, o := range outs {
		g.Output(g.Node("ReduceSum", []string{o}, onnx.Int("keepdims", 0)), onnx.Float)
	}
	benchModel(b, g.Model(), shapes, samples)
}

// benchModel runs m on random inputs of the given shapes.
func benchModel(b *testing.B, m *onnx.Model, shapes [][]int64, samples int) {
	raw, err := m.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	s, err := runtime.NewSession(raw, runtime.Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	in := uniformTensors(rng.New(3), shapes)
	b.ResetTimer()
	for range b.N {
		if _, err := s.Run(in...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*samples)/b.Elapsed().Seconds(), "model-samples/s")
}

type convLayer struct{ c, h, o, k int64 }

var pooledConvs = []struct {
	name string
	convLayer
}{{"conv1", convLayer{1, 28, 8, 5}}, {"conv2", convLayer{8, 12, 6, 5}}}

// BenchmarkConvForward compares ways to run P models' convolution forward:
// P single-model Convs' worth (one Conv over P·B images), one Conv with
// group=P, and im2col by Gather with a batched MatMul.
func BenchmarkConvForward(b *testing.B) {
	const P, B = 16, 32
	for _, pc := range pooledConvs {
		name, l := pc.name, pc.convLayer
		oh := l.h - l.k + 1
		b.Run(name+"/single", func(b *testing.B) {
			benchGraph(b, P*B, func(g *onnx.Builder) ([][]int64, []string) {
				x := g.Input("x", onnx.Float, P*B, l.c, l.h, l.h)
				w := g.Input("w", onnx.Float, l.o, l.c, l.k, l.k)
				return [][]int64{{P * B, l.c, l.h, l.h}, {l.o, l.c, l.k, l.k}}, []string{g.Node("Conv", []string{x, w})}
			})
		})
		b.Run(name+"/grouped", func(b *testing.B) {
			benchGraph(b, P*B, func(g *onnx.Builder) ([][]int64, []string) {
				x := g.Input("x", onnx.Float, B, P*l.c, l.h, l.h)
				w := g.Input("w", onnx.Float, P*l.o, l.c, l.k, l.k)
				return [][]int64{{B, P * l.c, l.h, l.h}, {P * l.o, l.c, l.k, l.k}}, []string{g.Node("Conv", []string{x, w}, onnx.Int("group", P))}
			})
		})
		b.Run(name+"/gather-matmul", func(b *testing.B) {
			// Patches [P, C·k·k, B·oh·ow] gathered from [P, C·B·h·w]
			// (channels first), then [P, O, C·k·k] · patches.
			var idx []int64
			for c := range l.c {
				for i := range l.k * l.k {
					for n := range int64(B) {
						for y := range oh {
							for x := range oh {
								idx = append(idx, c*B*l.h*l.h+n*l.h*l.h+(y+i/l.k)*l.h+x+i%l.k)
							}
						}
					}
				}
			}
			benchGraph(b, P*B, func(g *onnx.Builder) ([][]int64, []string) {
				x := g.Input("x", onnx.Float, P, l.c*B*l.h*l.h)
				w := g.Input("w", onnx.Float, P, l.o, l.c*l.k*l.k)
				ix := g.Initializer(onnx.NewInt64Tensor("idx", []int64{l.c * l.k * l.k, B * oh * oh}, idx))
				patches := g.Node("Gather", []string{x, ix}, onnx.Int("axis", 1))
				return [][]int64{{P, l.c * B * l.h * l.h}, {P, l.o, l.c * l.k * l.k}}, []string{g.Node("MatMul", []string{w, patches})}
			})
		})
	}
}

// BenchmarkPoolGradient compares ways to max-pool conv1's output and route
// a gradient back: MaxPool alone (forward only), MaxPool with its Indices
// and MaxUnpool, the tile mask autodiff's MaxPool rule builds (Equal
// against the pooled values broadcast along the innermost axis), and the
// phase layout's Max of four phase tensors with Max's gradient.
func BenchmarkPoolGradient(b *testing.B) {
	const P, B = 16, 32
	C := int64(P * 8)
	x4, y4 := []int64{B, C, 24, 24}, []int64{B, C, 12, 12}
	b.Run("maxpool-forward", func(b *testing.B) {
		benchGraph(b, P*B, func(g *onnx.Builder) ([][]int64, []string) {
			x := g.Input("x", onnx.Float, x4...)
			return [][]int64{x4}, []string{g.Node("MaxPool", []string{x}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2))}
		})
	})
	b.Run("indices-unpool", func(b *testing.B) {
		benchGraph(b, P*B, func(g *onnx.Builder) ([][]int64, []string) {
			x, dy := g.Input("x", onnx.Float, x4...), g.Input("dy", onnx.Float, y4...)
			g.NodeOut("pool", "MaxPool", []string{x}, []string{"y", "idx"}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2))
			dx := g.Node("MaxUnpool", []string{dy, "idx", g.Int64s("shape", x4...)}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2))
			return [][]int64{x4, y4}, []string{"y", dx}
		})
	})
	b.Run("tile-mask", func(b *testing.B) {
		benchGraph(b, P*B, func(g *onnx.Builder) ([][]int64, []string) {
			x, dy := g.Input("x", onnx.Float, x4...), g.Input("dy", onnx.Float, y4...)
			y := g.Node("MaxPool", []string{x}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2))
			tiles, outer := g.Int64s("tiles", B, C, 12, 2, 12, 2), g.Int64s("outer", B, C, 12, 1, 12, 1)
			hit := g.Node("Cast", []string{g.Node("Equal", []string{g.Node("Reshape", []string{x, tiles}), g.Node("Reshape", []string{y, outer})})}, onnx.Int("to", int64(onnx.Float)))
			count := g.Node("ReduceSum", []string{hit, g.Int64s("axes", 3, 5)}, onnx.Int("keepdims", 1))
			dx := g.Node("Mul", []string{hit, g.Node("Div", []string{g.Node("Reshape", []string{dy, outer}), count})})
			return [][]int64{x4, y4}, []string{y, dx}
		})
	})
	b.Run("phase-max", func(b *testing.B) {
		ph := []int64{B, P, 1, 8 * 144}
		benchGraph(b, P*B, func(g *onnx.Builder) ([][]int64, []string) {
			var in []string
			var shapes [][]int64
			for i := range 4 {
				in = append(in, g.Input(fmt.Sprint("x", i), onnx.Float, ph...))
				shapes = append(shapes, ph)
			}
			dy := g.Input("dy", onnx.Float, ph...)
			y := g.Node("Max", in)
			var hits, outs []string
			for _, v := range in {
				hits = append(hits, g.Node("Cast", []string{g.Node("Equal", []string{v, y})}, onnx.Int("to", int64(onnx.Float))))
			}
			share := g.Node("Div", []string{dy, g.Node("Sum", hits)})
			for _, h := range hits {
				outs = append(outs, g.Node("Mul", []string{share, h}))
			}
			return append(shapes, ph), []string{y, g.Node("Concat", outs, onnx.Int("axis", 2))}
		})
	})
}

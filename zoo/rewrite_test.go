package zoo

import (
	"testing"

	"github.com/hyperrep/hyperrep/autodiff"
	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// TestScatterTransposedConvs runs ConvTransposes in ORT as they are and as
// scatterTransposedConvs rewrites them, on inputs uniform in [-1, 1): the
// same values up to float rounding where it rewrites, and the forms it
// must leave alone untouched.
func TestScatterTransposedConvs(t *testing.T) {
	for _, c := range []struct {
		name    string
		x, w    []int64
		attrs   []*pb.AttributeProto
		bias    bool
		rewrite bool
	}{
		{"cnn-s conv2 phases", []int64{4, 48, 4, 4}, []int64{48, 8, 6, 6}, []*pb.AttributeProto{onnx.Int("group", 2), onnx.Ints("strides", 2, 2)}, false, true},
		{"stride 1", []int64{3, 6, 5, 7}, []int64{6, 4, 3, 2}, nil, false, true},
		{"three groups, rectangular strides", []int64{2, 9, 4, 3}, []int64{9, 2, 3, 4}, []*pb.AttributeProto{onnx.Int("group", 3), onnx.Ints("strides", 2, 3)}, false, true},
		{"output padding", []int64{2, 8, 5, 5}, []int64{8, 3, 4, 4}, []*pb.AttributeProto{onnx.Int("group", 2), onnx.Ints("strides", 2, 2), onnx.Ints("output_padding", 1, 0)}, false, true},
		{"pads", []int64{2, 4, 5, 5}, []int64{4, 3, 3, 3}, []*pb.AttributeProto{onnx.Ints("pads", 1, 1, 1, 1)}, false, false},
		{"dilations", []int64{2, 4, 5, 5}, []int64{4, 3, 3, 3}, []*pb.AttributeProto{onnx.Ints("dilations", 2, 2)}, false, false},
		{"bias", []int64{2, 4, 5, 5}, []int64{4, 3, 3, 3}, nil, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			build := func() (*onnx.Model, [][]int64) {
				b := onnx.NewBuilder("convt", autodiff.Opset)
				in := []string{b.Input("x", onnx.Float, c.x...), b.Input("w", onnx.Float, c.w...)}
				shapes := [][]int64{c.x, c.w}
				if c.bias {
					groups := int64(1)
					for _, a := range c.attrs {
						if a.GetName() == "group" {
							groups = a.GetI()
						}
					}
					in = append(in, b.Input("b", onnx.Float, c.w[1]*groups))
					shapes = append(shapes, []int64{c.w[1] * groups})
				}
				b.NodeAs("y", "ConvTranspose", in, c.attrs...)
				return b.Model(), shapes
			}
			m, shapes := build()
			sh, err := autodiff.InferShapes(m.Graph())
			if err != nil {
				t.Fatal(err)
			}
			out := sh.Types["y"].Shape
			plain, _ := build()
			plain.Graph().Output = nil
			onnx.Extend(plain.Graph(), autodiff.Opset, "o/").Output("y", onnx.Float, out...)
			low, _ := build()
			low.Graph().Output = nil
			onnx.Extend(low.Graph(), autodiff.Opset, "o/").Output("y", onnx.Float, out...)
			n := scatterTransposedConvs(low.Graph(), sh.Types)
			if want := map[bool]int{false: 0, true: 1}[c.rewrite]; n != want {
				t.Fatalf("rewrote %d ConvTransposes, want %d", n, want)
			}
			if n == 0 {
				return
			}
			for _, nd := range low.Graph().GetNode() {
				if nd.GetOpType() == "ConvTranspose" {
					t.Fatal("a ConvTranspose is left")
				}
			}
			ys, err := runModels(uniformTensors(rng.New(11), shapes), plain, low)
			if err != nil {
				t.Fatal(err)
			}
			diff, scale := maxDiff(ys[0].Data.([]float32), ys[1].Data.([]float32))
			if scale == 0 || diff > 1e-5*scale {
				t.Errorf("differs from ConvTranspose by %.3g at scale %.3g", diff, scale)
			}
		})
	}
}

// TestTrainingGraphsScatter checks which training graphs keep a
// ConvTranspose: none in the phase layout of cnn-s and cnn-l, all in the
// pool layout, the reference of the equivalence tests.
func TestTrainingGraphsScatter(t *testing.T) {
	for _, tc := range []struct {
		arch string
		l    layout
		want int
	}{{"cnn-s", layoutPhase, 0}, {"cnn-l", layoutPhase, 0}, {"cnn-s", layoutPool, 2}, {"cnn-l", layoutPool, 2}} {
		arch, err := NewArch(tc.arch, 1, 28, 28, 10)
		if err != nil {
			t.Fatal(err)
		}
		spec := popSpec{arch: arch, act: "tanh", models: 2, batch: 4, opt: "adam", layout: tc.l}
		g, err := spec.trainGraph()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, nd := range g.model.Graph().GetNode() {
			if nd.GetOpType() == "ConvTranspose" {
				n++
			}
		}
		if n != tc.want {
			t.Errorf("%s, layout %d: %d ConvTransposes in the training graph, want %d", tc.arch, tc.l, n, tc.want)
		}
	}
}

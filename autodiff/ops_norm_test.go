package autodiff

import (
	"math/rand/v2"
	"testing"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// batchNormCase normalises an x of the given shape; with running set, the
// loss also depends on the running statistics a training-mode node outputs.
func batchNormCase(name string, x []int64, training, running bool, attrs ...*pb.AttributeProto) gradCase {
	c := x[1]
	return gradCase{name: "BatchNormalization/" + name,
		build: func(b *onnx.Builder, in func(string, ...int64) string) string {
			ins := []string{in("x", x...), in("scale", c), in("bias", c), in("mean", c), in("var", c)}
			if !training {
				return b.Node("BatchNormalization", ins, attrs...)
			}
			outs := []string{b.Fresh("y"), b.Fresh("running_mean"), b.Fresh("running_var")}
			b.NodeOut("bn", "BatchNormalization", ins, outs, append(attrs, onnx.Int("training_mode", 1))...)
			if !running {
				return outs[0]
			}
			perChannel := []int64{1, c}
			for range x[2:] {
				perChannel = append(perChannel, 1)
			}
			stats := b.Node("Mul", []string{outs[1], b.Node("Add", []string{outs[2], outs[1]})})
			return b.Node("Add", []string{outs[0], b.Node("Reshape", []string{stats, b.Int64s("per_channel", perChannel...)})})
		},
		init: func(r *rand.Rand, name string, _ int) float64 {
			if name == "var" {
				return 0.5 + r.Float64()
			}
			return 2*r.Float64() - 1
		}}
}

func TestBatchNormGradients(t *testing.T) {
	eps, momentum := onnx.FloatAttr("epsilon", 1e-3), onnx.FloatAttr("momentum", 0.8)
	checkGradients(t, []gradCase{
		batchNormCase("training/2d", []int64{5, 3}, true, false),
		batchNormCase("training/4d", []int64{2, 3, 4, 5}, true, false, eps),
		batchNormCase("training/3d", []int64{3, 2, 5}, true, false, momentum),
		batchNormCase("training/running-stats", []int64{3, 2, 5}, true, true, momentum, eps),
		batchNormCase("inference/2d", []int64{5, 3}, false, false),
		batchNormCase("inference/4d", []int64{2, 3, 4, 5}, false, false, eps),
	})
}

func layerNormCase(name string, x, scale, bias []int64, attrs ...*pb.AttributeProto) gradCase {
	return gradCase{name: "LayerNormalization/" + name, build: func(b *onnx.Builder, in func(string, ...int64) string) string {
		ins := []string{in("x", x...), in("scale", scale...)}
		if bias != nil {
			ins = append(ins, in("bias", bias...))
		}
		return b.Node("LayerNormalization", ins, attrs...)
	}}
}

func TestLayerNormGradients(t *testing.T) {
	axis := func(a int64) *pb.AttributeProto { return onnx.Int("axis", a) }
	checkGradients(t, []gradCase{
		layerNormCase("last", []int64{3, 4}, []int64{4}, []int64{4}),
		layerNormCase("axis1", []int64{2, 3, 4}, []int64{3, 4}, []int64{3, 4}, axis(1), onnx.FloatAttr("epsilon", 1e-3)),
		layerNormCase("axis-2", []int64{2, 3, 4}, []int64{3, 4}, []int64{4}, axis(-2)),
		layerNormCase("no-bias", []int64{2, 3, 4}, []int64{4}, nil),
		layerNormCase("broadcast-scale", []int64{2, 3, 4}, []int64{1, 4}, []int64{3, 1}, axis(1)),
		// ORT gives Mean and InvStdDev of a float64 x in float32 only,
		// too coarse for float64 differences; so this case is float32.
		{name: "LayerNormalization/mean-invstddev", dtype: onnx.Float, eps: 1e-2, tol: 2e-4,
			build: func(b *onnx.Builder, in func(string, ...int64) string) string {
				outs := []string{b.Fresh("y"), b.Fresh("mean"), b.Fresh("inv_std_dev")}
				b.NodeOut("ln", "LayerNormalization", []string{in("x", 3, 5), in("scale", 5), in("bias", 5)}, outs)
				return b.Node("Add", []string{outs[0], b.Node("Mul", []string{outs[1], outs[2]})})
			}},
	})
}

package autodiff

import (
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// A pre-norm transformer block over token embeddings, in float64, checked
// against finite differences with respect to every weight. It is built
// from this package's own ops: RMS normalisation stands in for
// LayerNormalization.
const (
	tfBatch, tfSeq, tfModel, tfHeads = 2, 4, 8, 2
	tfHead                           = tfModel / tfHeads
	tfVocab, tfClasses               = 5, 3
)

// transformerBlock returns the cross-entropy of a per-token classifier on
// top of the block. Its MLP uses Gelu in Erf form or, with dropout, Tanh
// and a Dropout in training mode: a random graph needs a fresh session per
// finite difference, and the float64 Erf stand-in would make each one
// three hundred nodes larger.
func transformerBlock(dropout bool) func(b *onnx.Builder, in func(string, ...int64) string) string {
	return func(b *onnx.Builder, in func(string, ...int64) string) string {
		mm := func(x, w string) string { return b.Node("MatMul", []string{x, w}) }
		shape := func(x string, s ...int64) string {
			return b.Node("Reshape", []string{x, b.Int64s(b.Fresh("shape"), s...)})
		}
		perm := func(x string, p ...int64) string { return b.Node("Transpose", []string{x}, onnx.Ints("perm", p...)) }
		c := func(v float64) string { return f64Const(b, nil, v) }

		tokens := b.Initializer(onnx.NewInt64Tensor("tokens", []int64{tfBatch, tfSeq}, []int64{1, 3, 3, 0, 4, 1, -1, 3}))
		pos := b.Node("Slice", []string{in("pos", 6, tfModel), b.Int64s("start", 0), b.Int64s("end", tfSeq)}) // [6, D] -> [T, D]
		x := b.Node("Add", []string{b.Node("Gather", []string{in("embed", tfVocab, tfModel), tokens}), pos})  // [B, T, D]

		// Attention: [B, T, D] -> [B, H, T, D/H] per projection.
		h := rmsNorm(b, x)
		heads := func(w string) string {
			return shape(mm(h, in(w, tfModel, tfModel)), tfBatch, tfSeq, tfHeads, tfHead) // [B, T, H, D/H]
		}
		q := perm(heads("wq"), 0, 2, 1, 3)                                     // [B, H, T, D/H]
		kT := perm(heads("wk"), 0, 2, 3, 1)                                    // [B, H, D/H, T]
		v := perm(heads("wv"), 0, 2, 1, 3)                                     // [B, H, T, D/H]
		scores := b.Node("Mul", []string{mm(q, kT), c(1 / math.Sqrt(tfHead))}) // [B, H, T, T]
		causal := &pb.TensorProto{Name: proto.String("causal"), Dims: []int64{tfSeq, tfSeq}, DataType: proto.Int32(onnx.Bool)}
		for i := 0; i < tfSeq; i++ {
			for j := 0; j < tfSeq; j++ {
				causal.Int32Data = append(causal.Int32Data, int32(min(1, max(0, i-j+1))))
			}
		}
		scores = b.Node("Where", []string{b.Initializer(causal), scores, c(-1e9)})
		att := mm(b.Node("Softmax", []string{scores}), v)                   // [B, H, T, D/H]
		att = shape(perm(att, 0, 2, 1, 3), tfBatch, tfSeq, tfModel)         // [B, T, D]
		x = b.Node("Add", []string{x, mm(att, in("wo", tfModel, tfModel))}) // [B, T, D]

		// MLP: [B, T, D] -> [B, T, 4D] -> [B, T, D].
		f := mm(rmsNorm(b, x), in("w1", tfModel, 4*tfModel))
		if dropout {
			f = b.Node("Tanh", []string{f})
		} else {
			f = geluErf(b, f)
		}
		if dropout {
			// ORT's basic optimisations delete a Dropout whose mask nobody
			// reads, training mode or not, so the forward graph reads it:
			// y·mask is y.
			mode := &pb.TensorProto{Name: proto.String("training"), DataType: proto.Int32(onnx.Bool), Int32Data: []int32{1}}
			outs := []string{b.Fresh("dropped"), b.Fresh("mask")}
			b.NodeOut(b.Fresh("dropout"), "Dropout", []string{f, c(0.25), b.Initializer(mode)}, outs, onnx.Int("seed", 11))
			f = b.Node("Mul", []string{outs[0], b.Node("Cast", []string{outs[1]}, onnx.Int("to", int64(onnx.Double)))})
		}
		x = b.Node("Add", []string{x, mm(f, in("w2", 4*tfModel, tfModel))})

		logits := perm(mm(x, in("wc", tfModel, tfClasses)), 0, 2, 1) // [B, C, T]
		labels := b.Initializer(onnx.NewInt64Tensor("labels", []int64{tfBatch, tfSeq}, []int64{0, 2, 1, 1, 2, 0, 0, 1}))
		return b.Node("SoftmaxCrossEntropyLoss", []string{logits, labels})
	}
}

// rmsNorm is x / sqrt(mean(x², last axis) + ε).
func rmsNorm(b *onnx.Builder, x string) string {
	ms := b.Node("ReduceMean", []string{b.Node("Mul", []string{x, x})}, onnx.Ints("axes", -1), onnx.Int("keepdims", 1))
	return b.Node("Div", []string{x, b.Node("Sqrt", []string{b.Node("Add", []string{ms, f64Const(b, nil, 1e-5)})})})
}

func TestTransformerBlockGradient(t *testing.T) {
	// Small weights keep Softmax and Gelu away from saturation, where the
	// gradients would be too small to check anything.
	init := func(r *rand.Rand, _ string, _ int) float64 { return r.Float64() - 0.5 }
	checkGradients(t, []gradCase{
		{name: "block", init: init, build: transformerBlock(false)},
		{name: "block/dropout", init: init, build: transformerBlock(true), random: true},
	})
}

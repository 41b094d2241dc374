package autodiff

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// lossCase describes a SoftmaxCrossEntropyLoss or NegativeLogLikelihoodLoss
// node: scores of the given shape, labels as a constant, optional class
// weights, and attributes.
type lossCase struct {
	op      string
	scores  []int64
	labels  []int64 // values; their shape is scores' without axis 1
	weights []float64
	attrs   []*pb.AttributeProto
	// logProb differentiates SoftmaxCrossEntropyLoss's second output too
	// (logProbOnly: that output alone).
	logProb, logProbOnly bool
}

func (lc lossCase) gradCase() gradCase {
	name := lc.op + "/" + shapeName(lc.scores) + attrNames(lc.attrs)
	if lc.weights != nil {
		name += "/weights"
	}
	if lc.logProb || lc.logProbOnly {
		name += "/log_prob"
	}
	return gradCase{name: name, build: func(b *onnx.Builder, in func(string, ...int64) string) string {
		labelShape := append([]int64{lc.scores[0]}, lc.scores[2:]...)
		ins := []string{in("scores", lc.scores...), b.Initializer(onnx.NewInt64Tensor(b.Fresh("labels"), labelShape, lc.labels))}
		if lc.weights != nil {
			ins = append(ins, f64Const(b, []int64{lc.scores[1]}, lc.weights...))
		}
		outs := []string{b.Fresh("loss")}
		if lc.logProb || lc.logProbOnly {
			outs = append(outs, b.Fresh("log_prob"))
		}
		b.NodeOut(b.Fresh(lc.op), lc.op, ins, outs, lc.attrs...)
		switch {
		case lc.logProbOnly:
			return outs[1]
		case lc.logProb:
			// Both outputs matter: loss (a scalar here) + log_prob.
			return b.Node("Add", []string{outs[1], outs[0]})
		}
		return outs[0]
	}}
}

func TestLossGradients(t *testing.T) {
	const sce, nll = "SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"
	red := func(r string) *pb.AttributeProto { return onnx.Str("reduction", r) }
	ignore := func(i int64) *pb.AttributeProto { return onnx.Int("ignore_index", i) }
	var cases []gradCase
	for _, lc := range []lossCase{
		{op: sce, scores: []int64{4, 5}, labels: []int64{0, 4, 2, 2}},
		{op: sce, scores: []int64{4, 5}, labels: []int64{0, 4, 2, 2}, attrs: []*pb.AttributeProto{red("sum")}},
		{op: sce, scores: []int64{4, 5}, labels: []int64{0, 4, 2, 2}, attrs: []*pb.AttributeProto{red("none")}},
		{op: sce, scores: []int64{4, 5}, labels: []int64{0, 4, 2, 1}, weights: []float64{0.5, 1, 2, 0.25, 1.5}},
		{op: sce, scores: []int64{4, 5}, labels: []int64{0, 4, 2, 1}, weights: []float64{0.5, 1, 2, 0.25, 1.5}, attrs: []*pb.AttributeProto{red("none")}},
		{op: sce, scores: []int64{4, 3}, labels: []int64{0, 2, 2, 1}, attrs: []*pb.AttributeProto{ignore(2)}},
		{op: sce, scores: []int64{4, 3}, labels: []int64{-1, 2, 0, 1}, attrs: []*pb.AttributeProto{ignore(-1), red("sum")}},
		{op: sce, scores: []int64{2, 3, 4}, labels: []int64{0, 1, 2, 1, 2, 2, 0, 0}},
		{op: sce, scores: []int64{2, 3, 2, 2}, labels: []int64{0, 1, 2, 1, 2, 2, 0, 0}, weights: []float64{1, 2, 0.5}, attrs: []*pb.AttributeProto{ignore(1)}},
		{op: sce, scores: []int64{2, 3, 4}, labels: []int64{0, 1, 2, 1, 2, 2, 0, 0}, attrs: []*pb.AttributeProto{red("none"), ignore(0)}},
		{op: sce, scores: []int64{3, 4}, labels: []int64{1, 3, 0}, logProb: true},
		{op: sce, scores: []int64{3, 4}, labels: []int64{1, 3, 0}, logProbOnly: true},
		{op: nll, scores: []int64{4, 5}, labels: []int64{0, 4, 2, 2}},
		{op: nll, scores: []int64{4, 5}, labels: []int64{0, 4, 2, 1}, weights: []float64{0.5, 1, 2, 0.25, 1.5}, attrs: []*pb.AttributeProto{ignore(4)}},
		{op: nll, scores: []int64{2, 3, 4}, labels: []int64{0, 1, 2, 1, 2, 2, 0, 0}, attrs: []*pb.AttributeProto{red("none")}},
		{op: nll, scores: []int64{2, 3, 4}, labels: []int64{0, 1, 2, 1, 2, 2, 0, 0}, attrs: []*pb.AttributeProto{red("sum")}},
	} {
		cases = append(cases, lc.gradCase())
	}
	cases = append(cases, gradCase{name: "NLL-of-LogSoftmax", build: func(b *onnx.Builder, in func(string, ...int64) string) string {
		lp := b.Node("LogSoftmax", []string{in("x", 3, 4)}, onnx.Int("axis", 1))
		return b.Node(nll, []string{lp, b.Int64s("labels", 3, 0, 1)})
	}})
	cases = append(cases, gradCase{name: sce + "/int32-labels", build: func(b *onnx.Builder, in func(string, ...int64) string) string {
		labels := &pb.TensorProto{Name: proto.String("labels"), Dims: []int64{3}, DataType: proto.Int32(onnx.Int32), Int32Data: []int32{2, 0, 2}}
		return b.Node(sce, []string{in("x", 3, 4), b.Initializer(labels)}, onnx.Int("ignore_index", 0))
	}})
	checkGradients(t, cases)
}

func TestLossErrors(t *testing.T) {
	labels := func(b *onnx.Builder) string { return b.Int64s("labels", 0, 2) }
	checkErrors(t, []errorCase{
		{"reduction", func(b *onnx.Builder, x string) string {
			return b.Node("SoftmaxCrossEntropyLoss", []string{x, labels(b)}, onnx.Str("reduction", "max"))
		}, []string{"SoftmaxCrossEntropyLoss", "reduction"}},
		{"labels-shape", func(b *onnx.Builder, x string) string {
			return b.Node("NegativeLogLikelihoodLoss", []string{x, b.Int64s("labels", 0, 2, 1)})
		}, []string{"NegativeLogLikelihoodLoss", "labels"}},
		{"weights-gradient", func(b *onnx.Builder, x string) string {
			w := b.Node("ReduceSum", []string{x, b.Int64s("axes", 0)}, onnx.Int("keepdims", 0))
			return b.Node("SoftmaxCrossEntropyLoss", []string{x, labels(b), w})
		}, []string{"SoftmaxCrossEntropyLoss", "weights"}},
	})
}

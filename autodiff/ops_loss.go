package autodiff

import (
	"fmt"
	"slices"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// Classification losses: SoftmaxCrossEntropyLoss and
// NegativeLogLikelihoodLoss, with scores [N, C, d1, ...] and integer
// labels [N, d1, ...], optional class weights, ignore_index and the
// reductions none, sum and mean. Gradients flow to the scores only.

func init() {
	shapeRules["SoftmaxCrossEntropyLoss"] = shapeClassLoss
	shapeRules["NegativeLogLikelihoodLoss"] = shapeClassLoss
	gradRules["SoftmaxCrossEntropyLoss"] = gradClassLoss(true)
	gradRules["NegativeLogLikelihoodLoss"] = gradClassLoss(false)
}

func lossReduction(n *pb.NodeProto) (string, error) {
	r := onnx.AttrString(n, "reduction", "mean")
	switch r {
	case "none", "sum", "mean":
		return r, nil
	}
	return "", fmt.Errorf("%s reduction %q: want none, sum or mean", n.GetOpType(), r)
}

func shapeClassLoss(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	op := n.GetOpType()
	red, err := lossReduction(n)
	if err != nil {
		return nil, err
	}
	scores, labels := in[0], in[1]
	if len(scores.Shape) < 2 {
		return nil, fmt.Errorf("%s scores %v: want [N, C, d1, ...]", op, scores.Shape)
	}
	if labels.DType != onnx.Int64 && labels.DType != onnx.Int32 {
		return nil, fmt.Errorf("%s labels are %s, want INT32 or INT64", op, onnx.DTypeName(labels.DType))
	}
	want := slices.Delete(slices.Clone(scores.Shape), 1, 2)
	if !slices.Equal(labels.Shape, want) {
		return nil, fmt.Errorf("%s labels %v for scores %v: want %v", op, labels.Shape, scores.Shape, want)
	}
	if len(in) > 2 && in[2].DType != 0 && !slices.Equal(in[2].Shape, scores.Shape[1:2]) {
		return nil, fmt.Errorf("%s weights %v for %d classes", op, in[2].Shape, scores.Shape[1])
	}
	loss := Tensor{scores.DType, []int64{}}
	if red == "none" {
		loss.Shape = want
	}
	return []Tensor{loss, {scores.DType, slices.Clone(scores.Shape)}}, nil
}

// gradClassLoss: element i of the loss is l_i = -w_i·lp[i, label_i], with
// w_i the weight of its class (1 without weights, 0 where ignored), lp the
// log-softmax of the scores (SoftmaxCrossEntropyLoss) or the input itself
// (NegativeLogLikelihoodLoss); mean divides by Σ w_i. With g_i the
// gradient reaching l_i, the scores get g_i·w_i·(softmax - onehot), the
// log-probabilities -g_i·w_i·onehot.
func gradClassLoss(softmax bool) gradFunc {
	return func(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
		op := n.GetOpType()
		scores := n.Input[0]
		if w := input(n, 2); w != "" && c.Needs(w) {
			return nil, fmt.Errorf("%s: no gradient with respect to the weights %q", op, w)
		}
		if !c.Needs(scores) {
			return nil, nil
		}
		var p string // the softmax of the scores
		if softmax {
			p = c.Op("Softmax", []string{scores}, onnx.Int("axis", 1))
		}
		var parts []string
		if dy[0] != "" {
			lw, err := newLabelWeights(c, n)
			if err != nil {
				return nil, err
			}
			g, err := lw.perElement(c, n, dy[0])
			if err != nil {
				return nil, err
			}
			if softmax {
				parts = append(parts, c.mul(c.Op("Sub", []string{p, lw.hot}), g))
			} else {
				parts = append(parts, c.Op("Neg", []string{c.mul(lw.hot, g)}))
			}
		}
		if softmax && len(dy) > 1 && dy[1] != "" {
			// log_prob is a LogSoftmax along the classes.
			s := c.Op("ReduceSum", []string{dy[1], c.Int64s(1)}, onnx.Int("keepdims", 1))
			parts = append(parts, c.Op("Sub", []string{dy[1], c.mul(p, s)}))
		}
		// Every part has the scores' shape: hot and p have it.
		return []string{c.sum(parts)}, nil
	}
}

// labelWeights describes the labels in the layout of the scores: hot is
// the one-hot [N, C, d1, ...] of the labels, w the weight of each element
// [N, 1, d1, ...], "" when every element weighs 1.
type labelWeights struct {
	hot, w string
	count  int64 // elements of the labels
	kept   []int64
}

func newLabelWeights(c *Context, n *pb.NodeProto) (*labelWeights, error) {
	st, lt := c.Type(n.Input[0]), c.Type(n.Input[1])
	dt, classes := st.DType, st.Shape[1]
	kept := slices.Clone(st.Shape)
	kept[1] = 1
	labels := n.Input[1]
	if lt.DType != onnx.Int64 {
		labels = c.Op("Cast", []string{labels}, onnx.Int("to", int64(onnx.Int64)))
	}
	labels = c.Reshape(labels, kept)
	// The class ids as [1, C, 1, ...]; Equal broadcasts them against the
	// labels, which gives the one-hot in any float type after a Cast.
	along := slices.Repeat([]int64{1}, len(kept))
	along[1] = classes
	ids := make([]int64, classes)
	for i := range ids {
		ids[i] = int64(i)
	}
	hot := c.Op("Cast", []string{c.Op("Equal", []string{labels, c.Reshape(c.Int64s(ids...), along)})}, onnx.Int("to", int64(dt)))
	lw := &labelWeights{hot: hot, count: lt.Size(), kept: kept}
	if weights := input(n, 2); weights != "" {
		if c.Type(weights).DType != dt {
			return nil, fmt.Errorf("%s weights are %s, scores %s", n.GetOpType(), onnx.DTypeName(c.Type(weights).DType), onnx.DTypeName(dt))
		}
		lw.w = c.Op("ReduceSum", []string{c.mul(hot, c.Reshape(weights, along)), c.Int64s(1)}, onnx.Int("keepdims", 1))
	}
	if hasAttr(n, "ignore_index") {
		ignore := onnx.AttrInt(n, "ignore_index", 0)
		keep := c.Op("Cast", []string{c.Op("Not", []string{c.Op("Equal", []string{labels, c.Int64s(ignore)})})}, onnx.Int("to", int64(dt)))
		if lw.w == "" {
			lw.w = keep
		} else {
			lw.w = c.mul(lw.w, keep)
		}
	}
	return lw, nil
}

// perElement is g_i·w_i, the gradient reaching each element's loss
// times its weight, from dy, the gradient of the node's loss output.
func (lw *labelWeights) perElement(c *Context, n *pb.NodeProto, dy string) (string, error) {
	red, err := lossReduction(n)
	if err != nil {
		return "", err
	}
	dt := c.Type(n.Input[0]).DType
	g := dy
	switch red {
	case "none":
		g = c.Reshape(dy, lw.kept)
	case "mean":
		total := c.Scalar(float64(lw.count), dt)
		if lw.w != "" {
			total = c.Op("ReduceSum", []string{lw.w}, onnx.Int("keepdims", 0))
		}
		g = c.Op("Div", []string{dy, total})
	}
	if lw.w != "" {
		g = c.mul(g, lw.w)
	}
	return g, nil
}

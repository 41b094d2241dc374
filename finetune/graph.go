package finetune

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/autodiff"
	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// ErrUnsupported is wrapped by the errors about models that cannot be
// fine-tuned: not an image classifier, or an op without a gradient rule.
var ErrUnsupported = errors.New("finetune: unsupported model")

// Names of the values the training graph adds to the model's.
const (
	labelsInput  = "finetune/labels"  // int64 [B]
	weightsInput = "finetune/weights" // float32 [B]: 1/n for the n real samples of a batch, 0 for padding
	lossOutput   = "finetune/loss"    // float32 []: the batch's mean cross-entropy
)

// minOpset and Opset bound the opsets a model may import: from 13 on, the
// ops the gradient rules know mean what they mean in opset 17
// (autodiff.Opset); earlier Softmax, Squeeze and ReduceSum differ.
const minOpset = 13

// signature is how a model takes a dataset: its image input, the shape
// of one sample as that input wants it, and its logits.
type signature struct {
	input      string
	sample     []int64 // dimensions after the batch
	fixedBatch int     // the input's batch size when the model fixes it, else 0
	logits     string
}

// inspect checks that m is an image classifier for set and says how it
// takes the set's samples.
func inspect(m *onnx.Model, set *dataset.Set) (signature, error) {
	g := m.Graph()
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	var inputs []*pb.ValueInfoProto
	for _, in := range g.GetInput() {
		if !inits[in.GetName()] { // IR 3 models list initializers as inputs too
			inputs = append(inputs, in)
		}
	}
	if len(inputs) != 1 || len(g.GetOutput()) == 0 {
		return signature{}, fmt.Errorf("%w: %d inputs and %d outputs; want one image input and logits as the first output",
			ErrUnsupported, len(inputs), len(g.GetOutput()))
	}
	in := inputs[0]
	tt := in.GetType().GetTensorType()
	if tt == nil || tt.GetElemType() != onnx.Float || tt.GetShape() == nil {
		return signature{}, fmt.Errorf("%w: input %q is not a float32 tensor of known rank", ErrUnsupported, in.GetName())
	}
	var dims []int64 // -1 for open dimensions
	for _, d := range tt.GetShape().GetDim() {
		v := int64(-1)
		if d.GetValue() != nil && d.GetDimParam() == "" && d.GetDimValue() > 0 {
			v = d.GetDimValue()
		}
		dims = append(dims, v)
	}
	var want []int64
	switch len(dims) {
	case 2:
		want = []int64{int64(set.SampleSize())}
	case 3:
		if set.C == 1 {
			want = []int64{int64(set.H), int64(set.W)}
		}
	case 4:
		want = []int64{int64(set.C), int64(set.H), int64(set.W)}
	}
	ok := want != nil
	for i := 1; ok && i < len(dims); i++ {
		ok = dims[i] < 0 || dims[i] == want[i-1]
	}
	if !ok {
		return signature{}, fmt.Errorf("%w: input %q has shape %v, which cannot take %s samples of %dx%dx%d",
			ErrUnsupported, in.GetName(), dims, set.Name, set.C, set.H, set.W)
	}
	return signature{input: in.GetName(), sample: want, fixedBatch: int(max(dims[0], 0)), logits: g.GetOutput()[0].GetName()}, nil
}

func defaultOpset(m *pb.ModelProto) int64 {
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			return o.GetVersion()
		}
	}
	return 0
}

// trainingModel is the graph a Trainer runs for m: opset 17, the input's
// batch fixed to batch, BatchNormalization in training mode, and the mean
// cross-entropy of the logits against labelsInput, weighted by
// weightsInput, as lossOutput. It returns the float32 initializers the
// loss depends on, BatchNorm's running statistics excluded, and whether
// the model has BatchNorm.
func trainingModel(m *onnx.Model, sig signature, batch int, classes int) (*onnx.Model, []string, bool, error) {
	if v := defaultOpset(m.Proto); v < minOpset || v > autodiff.Opset {
		return nil, nil, false, fmt.Errorf("%w: model imports opset %d; fine-tuning takes opsets %d to %d", ErrUnsupported, v, minOpset, autodiff.Opset)
	}
	t := m.Clone()
	for _, o := range t.Proto.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			o.Version = proto.Int64(autodiff.Opset)
		}
	}
	g := t.Graph()
	// Declared shapes of intermediate values and outputs may name the open
	// batch dimension; the gradient graph infers its own.
	g.ValueInfo = nil
	for _, in := range g.GetInput() {
		if in.GetName() == sig.input {
			shape := &pb.TensorShapeProto{}
			for _, d := range append([]int64{int64(batch)}, sig.sample...) {
				shape.Dim = append(shape.Dim, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
			}
			in.Type.GetTensorType().Shape = shape
		}
	}
	hasBN := false
	stats := map[string]bool{} // BatchNorm's running statistics
	for _, n := range g.GetNode() {
		if n.GetOpType() != "BatchNormalization" || n.GetDomain() != "" {
			continue
		}
		hasBN = true
		if len(n.Input) == 5 {
			stats[n.Input[3]], stats[n.Input[4]] = true, true
		}
		n.Attribute = slices.DeleteFunc(n.Attribute, func(a *pb.AttributeProto) bool { return a.GetName() == "training_mode" })
		n.Attribute = append(n.Attribute, onnx.Int("training_mode", 1))
	}
	b := onnx.Extend(g, autodiff.Opset, "finetune/")
	for _, n := range g.GetNode() {
		// In training mode the node must also output the updated running
		// statistics, which nothing reads.
		if n.GetOpType() == "BatchNormalization" && n.GetDomain() == "" {
			for len(n.Output) < 3 {
				n.Output = append(n.Output, b.Fresh(n.Output[0]+"/running"))
			}
		}
	}
	b.Input(labelsInput, onnx.Int64, int64(batch))
	b.Input(weightsInput, onnx.Float, int64(batch))
	ce := b.Node("SoftmaxCrossEntropyLoss", []string{sig.logits, labelsInput}, onnx.Str("reduction", "none")) // [B]
	weighted := b.Node("Mul", []string{ce, weightsInput})                                                     // [B]
	b.NodeAs(lossOutput, "ReduceSum", []string{weighted, b.Int64s(b.Fresh("axes"), 0)}, onnx.Int("keepdims", 0))

	// A graph built for its fixed batch size may hold it in constants
	// (a Reshape to [1, -1]); say so when the batch changed and it fails.
	hint := ""
	if sig.fixedBatch > 0 && sig.fixedBatch != batch {
		hint = fmt.Sprintf(" (the model fixes its batch at %d: fine-tune it with that batch size)", sig.fixedBatch)
	}
	shapes, err := autodiff.InferShapes(g)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%w: %w%s", ErrUnsupported, err, hint)
	}
	if lt := shapes.Types[sig.logits]; len(lt.Shape) != 2 || lt.Shape[0] != int64(batch) || lt.Shape[1] < int64(classes) || lt.DType != onnx.Float {
		return nil, nil, false, fmt.Errorf("%w: output %q is %v; want float32 [N K] logits with K >= %d classes%s",
			ErrUnsupported, sig.logits, lt, classes, hint)
	}
	params, err := trainable(g, stats)
	if err != nil {
		return nil, nil, false, err
	}
	if len(params) == 0 {
		return nil, nil, false, fmt.Errorf("%w: no float32 initializer reaches the logits", ErrUnsupported)
	}
	return t, params, hasBN, nil
}

// trainable lists, in initializer order, the float32 initializers of g
// that the loss depends on, leaving out those in skip and single values:
// exporters fold the constants of expressions (x·0.5, x/√2) into scalar
// initializers, which are not weights.
func trainable(g *pb.GraphProto, skip map[string]bool) ([]string, error) {
	ix, err := onnx.NewIndex(g)
	if err != nil {
		return nil, err
	}
	// Values the loss depends on: walk back from it.
	reach := map[string]bool{lossOutput: true}
	for k := len(ix.Order) - 1; k >= 0; k-- {
		n := g.Node[ix.Order[k]]
		if !slices.ContainsFunc(n.Output, func(o string) bool { return reach[o] }) {
			continue
		}
		for _, in := range n.Input {
			reach[in] = true
		}
	}
	var params []string
	for _, t := range g.GetInitializer() {
		n, err := onnx.NumElements(t.GetDims())
		if err != nil {
			return nil, err
		}
		if name := t.GetName(); t.GetDataType() == onnx.Float && reach[name] && !skip[name] && n > 1 {
			params = append(params, name)
		}
	}
	return params, nil
}

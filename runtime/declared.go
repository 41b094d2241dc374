package runtime

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/onnx/pb"
)

// A model's inputs and outputs are read from its protobuf rather than asked
// of ORT: onnxruntime_go can only ask by opening a throwaway session with
// default options, which loads every model twice and fails on float64 graphs
// that ORT's default optimizer rewrites into float32-only kernels.
//
// The declared shapes are taken as they are, without ORT's inference. So an
// output declared without a shape stays of unknown rank until the model runs
// (see Session), which must be told apart from one declared as a scalar:
// onnxruntime_go can allocate neither scalars nor, for the first run, say
// which of the two it got.

// Field numbers in onnx.proto.
const (
	modelGraph             = 7  // ModelProto.graph
	graphInitializer       = 5  // GraphProto.initializer
	graphInput             = 11 // GraphProto.input
	graphOutput            = 12 // GraphProto.output
	graphSparseInitializer = 15 // GraphProto.sparse_initializer
	tensorName             = 8  // TensorProto.name
	sparseValues           = 1  // SparseTensorProto.values
)

// signature is what a model declares about its inputs and outputs.
type signature struct {
	inputs  []Info
	outputs []Info
	scalar  []bool // per output: declared with a shape of rank 0
	unknown []bool // per output: declared with no shape at all
}

// describe reads a model's graph inputs (less its initializers, which old
// IR versions list as inputs too), its outputs, their dtypes and declared
// shapes. It walks the protobuf wire format, skipping over the weights
// rather than decoding them; only the small ValueInfoProtos are decoded.
func describe(model []byte) (signature, error) {
	var sig signature
	if len(model) == 0 {
		return sig, errors.New("runtime: empty model")
	}
	graphs, err := fields(model, modelGraph)
	if err != nil {
		return sig, fmt.Errorf("runtime: loading model: %v", err)
	}
	if len(graphs) == 0 {
		return sig, errors.New("runtime: loading model: the model has no graph")
	}
	// Protobuf merges repeated occurrences of a message field; writers emit
	// one, and the last is what a parser keeps of its scalar fields.
	graph := graphs[len(graphs)-1]
	inits, err := initializerNames(graph)
	if err != nil {
		return sig, fmt.Errorf("runtime: loading model: %v", err)
	}
	ins, err := fields(graph, graphInput)
	if err == nil {
		var outs [][]byte
		outs, err = fields(graph, graphOutput)
		for _, b := range ins {
			if err != nil {
				break
			}
			var info Info
			if info, _, err = valueInfo(b, "input"); err == nil && !inits[info.Name] {
				sig.inputs = append(sig.inputs, info)
			}
		}
		for _, b := range outs {
			if err != nil {
				break
			}
			var info Info
			var declared bool
			if info, declared, err = valueInfo(b, "output"); err == nil {
				sig.outputs = append(sig.outputs, info)
				sig.scalar = append(sig.scalar, declared && len(info.Shape) == 0)
				sig.unknown = append(sig.unknown, !declared)
			}
		}
	}
	if err != nil {
		return sig, fmt.Errorf("runtime: loading model: %v", err)
	}
	// onnxruntime_go indexes the first input and output unconditionally
	// when running, and panics if there is none.
	if len(sig.inputs) == 0 || len(sig.outputs) == 0 {
		return sig, fmt.Errorf("runtime: model has %d inputs and %d outputs; running it needs at least one of each", len(sig.inputs), len(sig.outputs))
	}
	return sig, nil
}

// initializerNames returns the names of a graph's dense and sparse
// initializers.
func initializerNames(graph []byte) (map[string]bool, error) {
	names := map[string]bool{}
	dense, err := fields(graph, graphInitializer)
	if err != nil {
		return nil, err
	}
	sparse, err := fields(graph, graphSparseInitializer)
	if err != nil {
		return nil, err
	}
	for _, s := range sparse {
		values, err := fields(s, sparseValues)
		if err != nil {
			return nil, err
		}
		dense = append(dense, values...)
	}
	for _, t := range dense {
		n, err := fields(t, tensorName)
		if err != nil {
			return nil, err
		}
		if len(n) > 0 {
			names[string(n[len(n)-1])] = true
		}
	}
	return names, nil
}

// valueInfo decodes a ValueInfoProto of a dense tensor. declared reports
// whether it has a shape at all; dimensions without a fixed value are -1.
func valueInfo(b []byte, kind string) (info Info, declared bool, err error) {
	var vi pb.ValueInfoProto
	if err := proto.Unmarshal(b, &vi); err != nil {
		return info, false, fmt.Errorf("%s: %v", kind, err)
	}
	info.Name = vi.GetName()
	typ := vi.GetType()
	tt := typ.GetTensorType()
	if tt == nil {
		return info, false, fmt.Errorf("%s %q is %s; only dense tensors are supported", kind, info.Name, typeName(typ))
	}
	info.DType = DType(tt.GetElemType())
	if tt.Shape == nil {
		return info, false, nil
	}
	info.Shape = make([]int64, len(tt.Shape.GetDim()))
	for i, d := range tt.Shape.GetDim() {
		info.Shape[i] = -1
		if v, ok := d.GetValue().(*pb.TensorShapeProto_Dimension_DimValue); ok && v.DimValue >= 0 {
			info.Shape[i] = v.DimValue
		}
	}
	return info, true, nil
}

func typeName(t *pb.TypeProto) string {
	switch t.GetValue().(type) {
	case *pb.TypeProto_SequenceType:
		return "a sequence"
	case *pb.TypeProto_MapType:
		return "a map"
	case *pb.TypeProto_OptionalType:
		return "an optional"
	case *pb.TypeProto_SparseTensorType:
		return "a sparse tensor"
	case nil:
		return "of no declared type"
	}
	return "of an unsupported type"
}

// fields returns the contents of the length-delimited fields numbered num
// in a message, in order, and an error if the message is not well-formed
// protobuf.
func fields(msg []byte, num protowire.Number) ([][]byte, error) {
	var out [][]byte
	for len(msg) > 0 {
		n, typ, k := protowire.ConsumeTag(msg)
		if k < 0 {
			return out, errMalformed(k)
		}
		msg = msg[k:]
		if n == num && typ == protowire.BytesType {
			v, k := protowire.ConsumeBytes(msg)
			if k < 0 {
				return out, errMalformed(k)
			}
			out = append(out, v)
			msg = msg[k:]
			continue
		}
		k = protowire.ConsumeFieldValue(n, typ, msg)
		if k < 0 {
			return out, errMalformed(k)
		}
		msg = msg[k:]
	}
	return out, nil
}

func errMalformed(k int) error {
	return fmt.Errorf("not an ONNX model: malformed protobuf (%v)", protowire.ParseError(k))
}

package runtime

import "google.golang.org/protobuf/encoding/protowire"

// ORT reports an empty shape both for an output declared as a scalar and
// for one whose shape neither the model nor ORT's inference knows (a
// Reshape to a runtime shape, say). The two need opposite handling, since
// onnxruntime_go can allocate neither scalars nor (for the first run) say
// which it got, so the model's own declaration is read here.

// Field numbers in onnx.proto.
const (
	modelGraph      = 7  // ModelProto.graph
	graphOutput     = 12 // GraphProto.output
	valueInfoName   = 1  // ValueInfoProto.name
	valueInfoType   = 2  // ValueInfoProto.type
	typeTensorType  = 1  // TypeProto.tensor_type
	tensorTypeShape = 2  // TypeProto.Tensor.shape
)

// declaredScalars returns the names of the graph outputs declared as
// tensors of rank 0. It walks the protobuf wire format, skipping over the
// weights rather than decoding them. A malformed model yields what was read
// before the damage; ORT has by then rejected such a model anyway.
func declaredScalars(model []byte) map[string]bool {
	out := map[string]bool{}
	for _, graph := range fields(model, modelGraph) {
		for _, vi := range fields(graph, graphOutput) {
			names := fields(vi, valueInfoName)
			for _, typ := range fields(vi, valueInfoType) {
				for _, tensor := range fields(typ, typeTensorType) {
					for _, shape := range fields(tensor, tensorTypeShape) {
						if len(shape) == 0 && len(names) > 0 {
							out[string(names[len(names)-1])] = true
						}
					}
				}
			}
		}
	}
	return out
}

// fields returns the contents of the length-delimited fields numbered num
// in a message, in order.
func fields(msg []byte, num protowire.Number) [][]byte {
	var out [][]byte
	for len(msg) > 0 {
		n, typ, k := protowire.ConsumeTag(msg)
		if k < 0 {
			return out
		}
		msg = msg[k:]
		if n == num && typ == protowire.BytesType {
			v, k := protowire.ConsumeBytes(msg)
			if k < 0 {
				return out
			}
			out = append(out, v)
			msg = msg[k:]
			continue
		}
		k = protowire.ConsumeFieldValue(n, typ, msg)
		if k < 0 {
			return out
		}
		msg = msg[k:]
	}
	return out
}

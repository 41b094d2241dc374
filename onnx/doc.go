// Package onnx reads, writes and builds ONNX models, and views their weights.
//
// A Model wraps the protobuf message generated from the official onnx.proto
// (package onnx/pb). Reading keeps every field, so a model written back
// unchanged is proto-equal to the one read; tensors stored as external data are
// loaded into the model when it is read, and models too large for one protobuf
// message are written with their large tensors in a side file.
//
// Weights are float initializers. Every floating dtype (float32, float64,
// float16, bfloat16) is viewed as float values by Float32s and Float64s and
// written back in its own dtype and encoding by SetFloat32s and SetFloat64s.
// Layers lists the weight-bearing layers of a graph in topological order with
// the role of each of their tensors; Builder creates graphs.
//
// Every size a file declares is checked against the bytes actually present
// before anything is allocated for it.
package onnx

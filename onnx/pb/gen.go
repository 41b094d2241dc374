// Package pb holds the Go bindings of the official ONNX protobuf schema.
//
// onnx.proto is the copy shipped by Debian's libonnx-dev (/usr/include/onnx/onnx.proto).
// To regenerate onnx.pb.go, with protoc and protoc-gen-go (google.golang.org/protobuf) on PATH:
//
//	go generate ./onnx/pb
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/hyperrep/hyperrep/onnx/pb;pb onnx.proto

// Package runtime runs ONNX models in ONNX Runtime (ORT).
//
// It is the only package of the project that talks to ORT (through
// github.com/yalue/onnxruntime_go): it finds and loads the shared library
// once per process ([Init]), opens sessions on CPU or CUDA ([NewSession],
// [ParseDevice]), moves tensors of any numeric dtype in and out of a model
// ([Tensor], [Session.Run]), and scores a classifier on a dataset
// ([Evaluate]). For state kept across runs, such as the weights of a
// training loop, [Value] is a tensor ORT reads and writes in place, and a
// [Binding] runs a session over fixed Values with no allocation per run.
//
// A model's inputs and outputs are read from its protobuf as declared; an
// output declared without a shape is of unknown rank until the model runs.
//
// The library is looked for, in order, at $ONNXRUNTIME_LIB, in lib/ next to
// the executable or in its parent directory (so bin/hyperrep finds ../lib),
// in lib/ of the current directory or its ancestors up to the one holding
// go.mod (so tests find the repository's lib/), and finally wherever the
// system's dynamic loader looks for libonnxruntime.so.1.
//
// Thread safety: Init, Version and LibraryPath may be called from any
// goroutine. A [Session] may be Run from several goroutines at once, as ORT
// allows concurrent runs of one session; Close must not overlap any Run.
// Tensors passed to Run must not be written while Run is in progress, nor
// Values while a run that uses them is. A Binding must not run concurrently
// with itself. Evaluate is safe to call concurrently; each call has its own
// session.
//
// The caller owns every Session, Value and Binding and must Close or
// Destroy it; closing a Session closes its Bindings. The ORT environment
// lives until the process exits.
package runtime

// Package autodiff builds gradient graphs of ONNX graphs: reverse-mode
// automatic differentiation that emits standard ONNX ops, so that forward
// pass, backward pass and optimiser update all run in ONNX Runtime.
//
// Gradients takes a forward graph with static shapes and a scalar loss and
// returns the graph extended with the gradient of the loss with respect to the
// chosen inputs or initializers. Every op on the way from those values to the
// loss must have a gradient rule; one without is an error naming the op,
// never a silent zero. Shapes are inferred statically (InferShapes) for the
// ops the package knows.
//
// Rules are grouped by family of ops, one file each, and every rule is
// checked against central finite differences on float64 graphs.
package autodiff

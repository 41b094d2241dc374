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
// checked against central finite differences: on float64 graphs where ONNX
// Runtime has float64 kernels, and against a float64 twin of the graph for
// the ops it runs in float32 only (Conv, AveragePool).
//
// Optimiser updates (SGD with momentum and Nesterov, Adam, AdamW, with
// PyTorch's semantics) are appended to the gradient graph as ONNX ops too,
// per Group of parameters with its own learning rate, schedule and gradient
// clipping, so that many models can train in one graph. A Trainer runs
// forward, backward and update as one ORT session and keeps weights and
// optimiser state in ORT tensors between steps, swapping two sets of them,
// with no Go-side copy of the weights per step.
package autodiff

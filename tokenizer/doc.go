// Package tokenizer turns the weights of an ONNX model into a sequence of
// fixed-width tokens and back, as SANE (Schürholt et al., ICML 2024) does, and
// permutes hidden units without changing what a model computes.
//
// # Rows
//
// Tokenize walks the weight-bearing layers of onnx.Layers in their order. A
// layer becomes rows, one per output unit: each tensor's unit axis
// (onnx.Param.UnitAxis) is moved to the front and the remaining axes are
// flattened in row-major order. A Conv kernel [Cout, Cin, kh, kw] gives Cout
// rows of Cin*kh*kw values; a Gemm weight gives one row per output feature
// whatever transB says; a MatMul weight [K, N] gives N rows, row n holding
// column n.
//
// Row u of a layer holds, in this order:
//
//   - the values of the layer's first tensor (usually the weight) for unit u;
//   - then those of every other tensor of the layer with the same number of
//     units, in the layer's order (the bias, a bias added by a following Add);
//   - then, for a BatchNormalization or LayerNormalization layer whose input
//     comes straight from a Conv, ConvTranspose, Gemm or MatMul layer and whose
//     tensors all hold one value per unit of that layer, its scale, bias,
//     running mean and running variance for unit u. Such a layer has no rows
//     of its own.
//
// A tensor whose unit count differs from the first tensor's (a Gemm bias of
// shape [1], the 8H-long bias of an LSTM) forms rows of its own after the
// layer's main rows, along its own unit axis. A float initializer that no
// layer claims (role "other") has rows along axis 0. A scalar is one row of
// one value, and a unit axis a tensor does not have (a malformed model) is
// taken to be axis 0. Layout records all of this per tensor.
//
// # Tokens
//
// Each row is cut into tokens of Width values; the last token of a row is
// padded with zeros, and Mask is 1 exactly where a value sits. A row never
// shares a token with another row, so value k of a row is at column k%Width
// of the row's token k/Width. Tokens follow layer by layer, row by row. Each
// token has a position (global token index, layer index, row index in the
// layer), the layer index counting Layout's layers and the row index
// counting every row of the layer, its extra rows continuing after the main
// ones. A row of no values has no tokens.
//
// Values are float32, which holds float32, float16 and bfloat16 weights
// exactly. When a model has float64 weights, Exact holds every value as
// float64 as well, so that Detokenize restores them bit for bit.
//
// # Permutations
//
// Permute reorders the hidden units of a model: the output units of a layer
// and, with them, the input units of the layers that read them, so that the
// permuted model computes the same function. Hyper-representations are
// trained to see such models as one. Layers whose units cannot be followed
// with certainty are left as they are; PermuteLayers reports which, and
// why.
package tokenizer

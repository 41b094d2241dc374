package autoencoder

import (
	"github.com/hyperrep/hyperrep/onnx"
)

// Arch is the autoencoder's shape: everything its graphs are built from.
type Arch struct {
	Width   int `json:"token_width"` // W, values per token
	D       int `json:"d"`           // model width
	Layers  int `json:"layers"`      // transformer blocks of the encoder, and again of the decoder
	Heads   int `json:"heads"`
	Latent  int `json:"latent"`     // per-token latent width, and the embedding's
	Project int `json:"projection"` // output width of the NT-Xent projection head
	// Pooling is how the embedding is made: PoolMean or PoolToken.
	Pooling string `json:"pooling"`
	// Squares has the encoder read each token's values and their squares,
	// 2W inputs, where the values alone are W (Config.Squares).
	Squares bool `json:"squares,omitempty"`
	// Positions are the sizes of the three position tables: global token
	// index, layer index and row index, each one more than the largest
	// position the zoo's tokens have.
	Positions [3]int `json:"positions"`
}

// Poolings: how the embedding is made from the encoder's output.
const (
	PoolMean  = "mean"  // the mean of the token latents
	PoolToken = "token" // the latent of a learned compression token in front of the tokens
)

// Names of the exported graphs' inputs and outputs.
const (
	InputTokens    = "tokens"    // float32 [N, T, W]: normalised token values, 0 where mask is 0
	InputMask      = "mask"      // float32 [N, T, W]: 1 where a weight value sits
	InputPositions = "positions" // int64 [N, T, 3]: global index, layer, row
	OutputLatents  = "latents"   // float32 [N, T, L]: the encoder's per-token latents, the decoder's input
	OutputEmbed    = "embedding" // float32 [N, L]: the mean latent of the tokens that are not padding
	OutputTokens   = "tokens"    // float32 [N, T, W]: the decoder's normalised token values
)

// Names of the training graph's inputs besides the encoder's, and outputs.
const (
	inputTarget = "target" // float32 [N, T, W]: the clean tokens to reconstruct
	outLoss     = "loss"
	outRec      = "reconstruction"
	outNTXent   = "ntxent"
)

// trainingModel is the training graph for n sequences (n/2 models, two
// views each) of t tokens: the encoder, the decoder and the loss. It
// returns the model and the names of its parameters.
func trainingModel(a Arch, n, t int, gamma, tau float64, values map[string][]float32, seed uint64) (*onnx.Model, []string) {
	g := newGraph("hyperrep autoencoder training", a, values, seed)
	N, T := dim{size: int64(n)}, dim{size: int64(t)}
	tokens := g.input(InputTokens, onnx.Float, N, T, dim{size: int64(a.Width)})
	mask := g.input(InputMask, onnx.Float, N, T, dim{size: int64(a.Width)})
	positions := g.input(InputPositions, onnx.Int64, N, T, dim{size: 3})
	target := g.input(inputTarget, onnx.Float, N, T, dim{size: int64(a.Width)})
	latents, embedding := g.encoder(tokens, mask, positions)
	recon := g.decoder(latents, positions)
	loss, rec, nt := g.loss(recon, target, mask, embedding, n, gamma, tau)
	g.output(outLoss, loss)
	g.output(outRec, rec)
	if nt != "" {
		g.output(outNTXent, nt)
	}
	g.output(OutputEmbed, embedding, N, dim{size: int64(a.Latent)})
	return g.b.Model(), g.params
}

// Symbolic dimensions of the exported graphs.
var (
	batchDim  = dim{-1, "batch"}
	tokensDim = dim{-1, "tokens"}
)

// encoderModel is encoder.onnx: tokens, mask and positions of a batch of
// sequences to per-token latents and embeddings, with the weights values.
func encoderModel(a Arch, values map[string][]float32) *onnx.Model {
	g := newGraph("hyperrep encoder", a, values, 0)
	tokens := g.input(InputTokens, onnx.Float, batchDim, tokensDim, dim{size: int64(a.Width)})
	mask := g.input(InputMask, onnx.Float, batchDim, tokensDim, dim{size: int64(a.Width)})
	positions := g.input(InputPositions, onnx.Int64, batchDim, tokensDim, dim{size: 3})
	latents, embedding := g.encoder(tokens, mask, positions)
	g.output(OutputLatents, latents, batchDim, tokensDim, dim{size: int64(a.Latent)})
	g.output(OutputEmbed, embedding, batchDim, dim{size: int64(a.Latent)})
	return g.b.Model()
}

// decoderModel is decoder.onnx: per-token latents and positions to
// normalised tokens.
func decoderModel(a Arch, values map[string][]float32) *onnx.Model {
	g := newGraph("hyperrep decoder", a, values, 0)
	latents := g.input(OutputLatents, onnx.Float, batchDim, tokensDim, dim{size: int64(a.Latent)})
	positions := g.input(InputPositions, onnx.Int64, batchDim, tokensDim, dim{size: 3})
	g.output(OutputTokens, g.decoder(latents, positions), batchDim, tokensDim, dim{size: int64(a.Width)})
	return g.b.Model()
}

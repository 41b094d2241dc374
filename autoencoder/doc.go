// Package autoencoder learns hyper-representations: a SANE-style
// transformer autoencoder (Schürholt et al., ICML 2024) over the weight
// tokens of a zoo's checkpoints, trained in ONNX Runtime with package
// autodiff and exported as two plain ONNX models.
//
// # Model
//
// A checkpoint is tokenized (package tokenizer) into T tokens of W values
// and normalised per tensor with the mean and standard deviation of that
// tensor's values over the training models: a layer's weights and its
// biases apart (Config.Normalise; per layer is the other choice). A bias
// starts at zero and grows in training but stays small (median standard
// deviations of 0.02-0.09 per bias on a cnn-s zoo, against 0.1-0.35 for
// the weights). Normalised with its layer's weights it stays near zero,
// and the hyper-representation could not tell a freshly initialised model
// from a trained one: on one split of a 64-model cnn-s grid zoo, its
// probes put the kaiming_uniform models at epoch 0 at 28-45 % test
// accuracy (true: 10 %); per tensor, at 11-19 %.
//
// The encoder maps a window of tokens through Linear(2W→d) of each
// token's values and their squares (Config.Squares; Linear(W→d) of the
// values alone is the other choice) plus learned embeddings of each
// token's position (global index, layer, row), L pre-LayerNorm transformer
// blocks (multi-head self-attention, GELU MLP of 4d), a LayerNorm and
// Linear(d→latent) to one latent per token; the model's embedding is the
// mean of its token latents. A linear map of a token's values mixes them
// into sums in which, for example, uniform initial weights and trained
// ones of the same scale look alike; the squares say how far each value
// lies from its tensor's mean.
//
// On that zoo's seven splits (fit --seed 0 to 6), the held-out R² of test
// accuracy averaged 0.876 normalised per layer, 0.926 per tensor and 0.948
// per tensor with squares, against s(W)'s 0.869; cmd/hyperrep's probe help
// has the figures.
//
// The decoder mirrors the encoder back to tokens. graph.go builds both,
// one shape comment per line that changes a shape.
//
// The loss is (1−γ)·MSE of the reconstruction over the tokens' weight
// values plus γ·NT-Xent at temperature τ between the projected embeddings
// of two views of each model. The views are drawn on the fly, from
// streams keyed by the seed and the step: a function-preserving
// permutation of hidden units, multiplicative noise, a random window of
// contiguous tokens, and masked tokens; the reconstruction target is the
// permuted window itself.
//
// The embedding is the mean of the token latents by default. SANE also
// tries a learned compression token (Config.Pooling PoolToken); ridge
// probes of test accuracy and epoch on held-out models of a 56-model cnn-s
// zoo found neither better (R² 0.71 and 0.53 for the mean, 0.75 and 0.52
// for the token, after 300 epochs with one split; 0.50 and 0.53 against
// 0.46 and 0.51 after 150 with another), so the mean stays: it adds no
// parameters and combines windows exactly.
//
// # Fit
//
// Fit trains on a zoo directory (package zoo) split by model into
// training, validation and held-out test models, and writes a directory:
//
//	hyperrep.json     Meta: configuration, token layout, normalisation, windows, zoo, split, log, versions
//	encoder.onnx      tokens, mask, positions [batch, tokens, ·] -> latents, embedding
//	decoder.onnx      latents, positions -> tokens
//	template.onnx     a checkpoint of the zoo, the graph decoded weights go into
//	README.md         a model card
//	log.jsonl         one Epoch per line: training and validation losses
//	state.safetensors weights, AdamW state, step count: what resuming needs
//
// The two ONNX models have symbolic batch and token dimensions and use
// standard opset-17 ops only, so any ONNX Runtime runs them. Every file is
// written atomically. The state is saved every minute, at the end and when
// Fit is cancelled; a fit killed at any point resumes from its last saved
// state and, with the same number of ORT threads, continues exactly as if
// it had not stopped.
//
// # Use
//
// Open loads a fitted directory; Model.Encode and Model.Embed give
// per-token latents and embeddings of ONNX models laid out as the zoo's,
// Model.Decode writes latents back into a template, Model.Reconstruct does
// both. Models of more tokens than the window are encoded and decoded in
// overlapping windows whose results are averaged per token.
// Model.DecodeTemplate writes latents into a template of another
// architecture (other widths, other layers) by mapping the zoo's layers,
// units and tokens onto the template's (template.go).
package autoencoder

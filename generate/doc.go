// Package generate draws new models from a hyper-representation, as
// Schürholt et al. (NeurIPS 2022, "Hyper-Representations as Generative
// Models") and SANE (ICML 2024) do: anchors from a zoo, a density in
// latent space, samples decoded into a template graph and written as ONNX.
//
// # Anchors
//
// SelectAnchors keeps the zoo's checkpoints that pass a Filter
// (ParseFilter: "test_acc>0.9, epoch==10", "activation==relu &&
// optimizer!=sgd") and cuts them to the best share by test accuracy
// (ParseTop: "top30"). Anchors are checkpoints, not models: a zoo's
// metrics are per checkpoint, so top30 is the best 30 % of all (model,
// epoch) pairs as in the 2022 paper, and final epochs only are a filter
// away. The template decides the rest: weights trained under one
// activation do not work under another, so Run keeps only the anchors of
// the template's activation. The default template is the best anchor's
// own checkpoint.
//
// # Densities
//
// KDEMethod is a Gaussian kernel density estimate with a diagonal
// bandwidth, Factor·σ_i along dimension i (σ_i the anchors' standard
// deviation there), Factor by Scott's or Silverman's rule or given.
// GaussianMethod is one normal distribution with the shrinkage covariance
// (1-λ)·S + λ·diag(S), λ estimated as Schäfer and Strimmer do: with fewer
// anchors than dimensions S alone is singular, and diag(S) alone forgets
// how a model's latents move together. InterpolateMethod walks the line
// between the latents of two models, both ends included.
//
// The density lives on the pooled embedding by default (EmbeddingSpace),
// and goes back to the per-token latents the decoder needs through its
// anchor: the anchor's token latents, each shifted by the drawn embedding
// minus the anchor's, so that their mean is the drawn embedding. Measured
// on a 64-model cnn-s MNIST zoo (4 activations × 2 optimisers × 2 inits ×
// 4 seeds, epochs 0-10) with its fitted hyper-representation, 20 KDE
// samples of the top-30 % anchors (80 GELU checkpoints) reached, without
// training, mean test accuracies of:
//
//	space       bandwidth              accuracy       distance
//	embedding   Scott (factor 0.885)   85.2 % ± 9.1   0.62
//	embedding   Silverman (0.834)      86.1 % ± 8.2   0.59
//	tokens      Scott (factor 0.999)   12.5 % ± 3.9   -
//	tokens      factor 0.2             70.1 % ± 11.4  0.58
//	tokens      factor 0.15            78.9 % ± 8.5   0.46
//	tokens      factor 0.1             86.4 % ± 5.3   0.36
//	(anchors' reconstructions          92.3 % ± 1.7   0.23)
//
// where distance is a sample's weight-space distance to its nearest
// anchor over the median distance between anchors of different models: how
// new the samples are. In 3,328 token-latent dimensions the bandwidth
// rules give a factor near 1, kernels as wide as the anchor cloud, and
// the samples break; at equal distance from the anchors, the embedding's
// density keeps 15 points more accuracy than the tokens', and its rules
// need no tuning. A single Gaussian fails on the tokens (11.9 %: the mean
// of anchors from different models is no model, their hidden units being
// in different orders) and works on the embedding (91.8 % ± 1.9, distance
// 0.32).
//
// # Templates of other architectures
//
// A template laid out as the zoo's takes the decoded weights as they are.
// Any other (other widths, more or fewer layers) is filled by
// autoencoder.Model.DecodeTemplate with Options.Mapping: MapUnits (the
// default) decodes the zoo model and widens or cuts it unit by unit as
// Net2Net does, which keeps its function exactly when only widths grow;
// MapTokens is SANE's, the template's tokens decoded from the latents of
// the zoo's tokens at the same layer, row and place. On the zoo above, 20
// KDE samples into a cnn-s of widths 12, 8, 6 and 32 (the zoo's: 8, 6, 4,
// 20) reached 85.2 % ± 9.1 with MapUnits (the zoo-layout samples'
// accuracy, as widening preserves the function) and 59.4 % ± 17.6 with
// MapTokens; into one of widths 6, 4, 4, 16, 40.0 % and 37.8 %; into one
// with an extra 1×1 convolution, 11 % and 15 %: cut units and new layers
// need fine-tuning.
//
// # Output
//
// Write puts exactly one sample_NNNN.onnx per sample and samples.jsonl
// (one Record per line: method, anchors, bandwidth, parent anchor or
// interpolation parents and t, seed, template) into a directory, through a
// temporary directory renamed into place. A template with
// BatchNormalization gets its running statistics recomputed by
// Options.BatchNorm when set.
package generate

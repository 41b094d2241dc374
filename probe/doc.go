// Package probe predicts properties of trained models from representations of
// their weights, and compares representations by how well they do it, as
// Schürholt et al. (NeurIPS 2021) compare hyper-representations with the
// baselines of Unterthiner et al. (2020).
//
// A representation is a feature set: one row of features per sample, a
// sample being one checkpoint of one model. Two baselines are computed here
// from ONNX models by a Baseline: s(W), per-layer statistics of the weights
// (Stats), and W, the flattened weights themselves (Weights). A
// hyper-representation's embeddings come from elsewhere and are just another
// feature set.
//
// # Probes
//
// Continuous properties (test accuracy, epoch, …) are predicted by Ridge
// regression, its predictions clipped to the span of the targets it was
// fitted on, and scored by R² and Kendall's τ; categorical ones
// (hyperparameters, with values as strings) by a multinomial Logistic
// classifier and scored by accuracy. Both standardise the features on the
// samples they are fitted on, leave the intercept unpenalised, and choose
// their penalty λ from a log-spaced grid (RidgeGrid, LogisticGrid) by
// cross-validation over the training models (DefaultFolds folds, a model's
// samples always in one fold: its checkpoints are alike, and a fold that
// split them would reward memorising models), or with Options.Folds 1 by
// the score on the validation samples; the probe is then refitted with that
// λ on all training and validation samples, and scored once on the test
// samples.
//
// Both work in the row space of the standardised features: from the
// eigendecomposition of the smaller of XᵀX [p, p] and XXᵀ [n, n] they get an
// orthonormal basis V of it and fit n-or-fewer coefficients in it. With L2
// penalties the solution lies in that space, so this is exact, and it keeps
// the flattened weights of a small CNN (thousands of features for hundreds
// of samples, p ≫ n) as cheap as a handful of embedding dimensions.
//
// # Running everything
//
// Run takes the feature sets, the properties of every sample and a split of
// the models into training, validation and test models (SplitModels makes
// one), fits a probe per representation and property, and returns a Report,
// with one row per property and metric and one column per representation,
// together with the fitted probes. The report writes itself as a terminal
// table, markdown, CSV and JSON; PlotPredicted and PlotPCA draw PNG figures;
// WriteProbes and ReadProbes keep the fitted probes for predicting the
// properties of new models. With ten or so test models a score depends
// much on which they are: Bootstrap (and Result.Bootstraps, a row at a
// time) rescores the probes on resamples of the test models, giving each
// representation's central 90 % and how often one scored above another on
// the same resample.
//
// In outline, for a zoo of one architecture:
//
//	stats, err := probe.NewBaseline(probe.Stats, firstCheckpoint)
//	for each checkpoint m: row, err = stats.Append(row, m) // and Weights, embeddings
//	split, err := probe.SplitModels(trainIDs, testIDs, 0.2, seed)
//	res, err := probe.Run(&probe.Data{
//		Features: []probe.FeatureSet{{Name: "hyperrep", X: emb}, {Name: probe.Stats, X: s}, {Name: probe.Weights, X: w}},
//		Targets:  []probe.Target{{Name: probe.TestAcc, Values: acc, Tau: true}, {Name: "activation", Labels: act}},
//		Models:   modelOfEachCheckpoint,
//		Split:    split,
//	}, nil)
//	res.Report.WriteTable(os.Stdout)
//	probe.PlotPredicted(f, res, probe.TestAcc, 1200, 420)
//	probe.WriteProbes(f, res.Probes, stats, weights)
package probe

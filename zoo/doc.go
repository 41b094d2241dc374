// Package zoo generates model zoos: populations of small classifiers
// trained over a grid of hyperparameters, with a checkpoint per epoch, as
// the Model Zoos of Schürholt et al. (NeurIPS 2022 Datasets) are made.
//
// An Arch is an architecture ("cnn-s", "cnn-l", "mlp") for one input shape;
// its Model method writes a member's weights as a plain ONNX classifier.
// A Grid expands to the Hyper of each member; Train trains them into a zoo
// directory, and resumes an interrupted run; Open reads a zoo; Merge joins
// shards.
//
// Training runs in ONNX Runtime. Models sharing architecture, activation
// and optimiser train together in one graph, a population, each with its
// own weights, initialisation, data order, learning rate, weight decay and
// dropout; since nothing mixes across models, each ends where it would have
// ended alone, up to float rounding.
//
// # Directory layout
//
//	zoo.json                                 Config: dataset, architecture, grid, split, epochs, batch, models
//	models/<id>/params.json                  Params: the model's hyperparameters
//	models/<id>/result.jsonl                 one Epoch per line, 0 (initial weights) first
//	models/<id>/checkpoint_000NNN/model.onnx the weights after epoch NNN
//	models/<id>/checkpoint_000NNN/optimizer.safetensors
//
// Every file is written atomically (temporary file, then rename). A model's
// epoch counts once its result line is written, which happens after its
// checkpoint; a run killed at any point and started again with the same
// job continues from the last counted epoch and writes the same bytes an
// uninterrupted run would, because a model's data order and dropout masks
// are functions of its seed and the epoch, and the optimiser's state is
// part of the checkpoint.
package zoo

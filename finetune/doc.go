// Package finetune trains the weights of ONNX image classifiers on a
// dataset: the zoo's models, exports from other frameworks, and models
// decoded from a hyper-representation alike.
//
// Any model whose one input takes an image batch ([N, C, H, W], [N, H, W]
// or [N, C·H·W], the batch open or fixed) and whose first output is class
// logits [N, K] can be fine-tuned, as long as every op between its weights
// and its logits has a gradient rule in package autodiff. A Tuner appends
// softmax cross-entropy to a copy of the graph, fixes its batch dimension,
// and trains its float32 initializers with package autodiff's optimisers in
// ONNX Runtime; the model it hands back is the original graph, opset and
// all, with only the initializer values replaced. Left as they are: weights
// held in Constant nodes, float16 and float64 initializers, and
// single-value initializers, which exporters make of the constants in
// expressions (x·0.5). Models must import opset 13 to 17 (the gradient
// graph runs at 17, which means the same for every op it knows). A model
// whose graph holds its fixed batch size in a constant (a Reshape to [1,
// -1]) trains only at that batch size.
//
// BatchNormalization trains as PyTorch's train mode does, on the
// statistics of each batch; its running statistics, which the exported
// eval-mode model uses, are then recomputed on the training data
// (RecomputeBatchNorm) rather than tracked as a moving average. A
// model with BatchNorm therefore drops an epoch's last partial batch, whose
// zero padding would bias the batch statistics.
//
// Run fine-tunes many models at once, one single-threaded ORT session per
// core, and reports test metrics before training (epoch 0) and after every
// epoch. On these 2-core machines a cnn-s epoch of 10,000 samples takes
// about 0.6 CPU-seconds of training and 0.16 of scoring 10,000 test
// samples (BenchmarkRunCNNS). The zoo's population engine, specialised to
// the zoo's architectures (no MaxPool gradient), trained and scored a
// cnn-s epoch in 0.43 CPU-seconds in the same comparison, against 0.48
// here without the epoch-0 scoring. Data order is a function of the seed and the epoch, so a run is
// repeatable; Config.Order replaces it, to follow another trainer's order.
package finetune

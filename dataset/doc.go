// Package dataset loads the image classification datasets that the model
// zoos are trained on: MNIST, Fashion-MNIST, and any directory of files in
// the IDX format they share.
//
// A [Set] holds one split in memory as float32 pixels in [0, 1], laid out
// [N, C, H, W] as the models take them, with one uint8 label per sample.
// [Open] and [Load] find a dataset by name (mnist, fashion-mnist, idx:DIR);
// [ReadIDX] reads a given pair of files.
//
// Shuffles and subsets are deterministic: [Perm] draws from SplitMix64 with
// Lemire's unbiased bounded sampling, both implemented here rather than
// taken from math/rand, so a seed selects the same samples in the same order
// on every platform and every Go version. Zoos record their seeds and rely on
// this.
//
// IDX headers are checked against the data actually present before memory
// is committed, so a corrupt or hostile header cannot make the reader
// allocate what it claims.
package dataset

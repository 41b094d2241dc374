// Package convert moves tensors between hyperrep and the file formats other
// tools use, so that tokens, embeddings and weights can be exchanged with
// Python and with the public model zoos.
//
// The format supported so far is safetensors: an 8-byte little-endian header
// length, a JSON header naming each tensor's dtype, shape and byte range, and
// then the raw little-endian tensor bytes. WriteSafetensors and
// EncodeSafetensors produce the bytes the reference Python/Rust
// implementation writes for the same tensors; only the order of several
// metadata entries differs, which the reference leaves to a hash map and
// which is sorted here. ReadSafetensors and DecodeSafetensors accept the
// files the reference accepts, except that they reject headers with duplicate
// keys or unknown tensor fields rather than silently dropping them, and the
// sub-byte dtypes F4, F6_E2M3 and F6_E3M2.
//
// Every size a file declares is checked against the bytes actually present
// before anything is allocated for it, so a hostile or truncated file costs
// at most its own size in memory and yields one error that matches ErrFormat.
package convert

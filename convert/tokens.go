package convert

import (
	"encoding/json"
	"fmt"
	"unsafe"

	"github.com/hyperrep/hyperrep/tokenizer"
)

// Token files are safetensors files holding a model's tokens:
//
//	tokens     F32 [T, W]  the weight values (F64 when the model has float64 weights, see Tokens.Exact)
//	mask       U8  [T, W]  1 where a weight value sits
//	positions  I32 [T, 3]  global token index, layer index, row index
//
// with metadata "format" = TokensFormat, "version" and "layout" (the JSON of
// tokenizer.Layout), so that a template model is all detokenize needs.
const (
	TokensFormat  = "hyperrep.tokens"
	TokensVersion = "1"
)

// WriteTokens writes t to a token file at path, atomically. The tensors'
// bytes are written from t's slices without a copy on little-endian hosts.
func WriteTokens(path string, t *tokenizer.Tokens) error {
	layout, err := json.Marshal(t.Layout)
	if err != nil {
		return fmt.Errorf("convert: token layout: %w", err)
	}
	n, w := int64(t.Len()), int64(t.Width)
	values := Tensor{DType: "F32", Shape: []int64{n, w}, Data: float32Bytes(t.Values)}
	if t.Exact != nil {
		values = Float64Tensor([]int64{n, w}, t.Exact)
	}
	tensors := map[string]Tensor{
		"tokens":    values,
		"mask":      {DType: "U8", Shape: []int64{n, w}, Data: t.Mask},
		"positions": {DType: "I32", Shape: []int64{n, 3}, Data: int32Bytes(t.Positions)},
	}
	meta := map[string]string{"format": TokensFormat, "version": TokensVersion, "layout": string(layout)}
	return WriteSafetensors(path, tensors, meta)
}

// ReadTokens reads a token file written by WriteTokens and checks that its
// tensors agree with each other; whether they fit a model is
// tokenizer.Detokenize's to say.
func ReadTokens(path string) (*tokenizer.Tokens, error) {
	f, err := ReadSafetensors(path)
	if err != nil {
		return nil, err
	}
	t, err := tokensOf(f)
	if err != nil {
		return nil, fmt.Errorf("convert: %s: %w", path, err)
	}
	return t, nil
}

func tokensOf(f *File) (*tokenizer.Tokens, error) {
	if got := f.Metadata["format"]; got != TokensFormat {
		return nil, fmt.Errorf("not a token file (metadata format %q, want %q)", got, TokensFormat)
	}
	if v := f.Metadata["version"]; v != TokensVersion {
		return nil, fmt.Errorf("token file version %q, this build reads %q", v, TokensVersion)
	}
	vals, ok1 := f.Tensors["tokens"]
	mask, ok2 := f.Tensors["mask"]
	pos, ok3 := f.Tensors["positions"]
	if !ok1 || !ok2 || !ok3 {
		return nil, fmt.Errorf("token file lacks one of tokens, mask, positions")
	}
	if len(vals.Shape) != 2 || mask.DType != "U8" || !sameShape(mask.Shape, vals.Shape) {
		return nil, fmt.Errorf("tokens %s %v and mask %s %v: want [T, W] and U8 [T, W]", vals.DType, vals.Shape, mask.DType, mask.Shape)
	}
	n, w := vals.Shape[0], vals.Shape[1]
	if pos.DType != "I32" || !sameShape(pos.Shape, []int64{n, 3}) {
		return nil, fmt.Errorf("positions %s %v, want I32 [%d 3]", pos.DType, pos.Shape, n)
	}
	t := &tokenizer.Tokens{Width: int(w), Mask: mask.Data}
	if err := json.Unmarshal([]byte(f.Metadata["layout"]), &t.Layout); err != nil {
		return nil, fmt.Errorf("token layout: %v", err)
	}
	for i, m := range t.Mask {
		if m > 1 {
			return nil, fmt.Errorf("mask value %d at %d, want 0 or 1", m, i)
		}
	}
	var err error
	switch vals.DType {
	case "F32":
		t.Values, err = vals.Float32s()
	case "F64":
		if t.Exact, err = vals.Float64s(); err == nil {
			t.Values = make([]float32, len(t.Exact))
			for i, v := range t.Exact {
				t.Values[i] = float32(v)
			}
		}
	default:
		err = fmt.Errorf("tokens have dtype %s, want F32 or F64", vals.DType)
	}
	if err != nil {
		return nil, err
	}
	if t.Positions, err = pos.Int32s(); err != nil {
		return nil, err
	}
	return t, nil
}

func sameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// littleEndian is true on hosts whose memory order is safetensors' order, so
// that slices can be written as they are.
var littleEndian = func() bool { x := uint16(1); return *(*byte)(unsafe.Pointer(&x)) == 1 }()

func float32Bytes(v []float32) []byte {
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
	}
	return Float32Tensor([]int64{int64(len(v))}, v).Data
}

func int32Bytes(v []int32) []byte {
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
	}
	return Int32Tensor([]int64{int64(len(v))}, v).Data
}

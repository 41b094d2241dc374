package tokenizer

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/onnx"
)

// FuzzTokenize feeds the bytes of ONNX models through onnx.Decode,
// Tokenize, Detokenize and PermuteLayers: nothing may panic, and a model
// that tokenizes must come back from its tokens unchanged.
func FuzzTokenize(f *testing.F) {
	for _, m := range fuzzSeeds() {
		b, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := onnx.Decode(data, "")
		if err != nil {
			return
		}
		before := m.Clone()
		for _, w := range []int{0, 3} {
			tok, err := Tokenize(m, Options{TokenSize: w})
			if err != nil {
				continue
			}
			d, err := Detokenize(tok, m)
			if err != nil {
				t.Fatalf("width %d: detokenize: %v", w, err)
			}
			a, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m.Proto)
			b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(d.Proto)
			if !proto.Equal(d.Proto, m.Proto) || !bytes.Equal(a, b) {
				t.Fatalf("width %d: detokenized model differs", w)
			}
		}
		if _, _, err := PermuteLayers(m, 1); err == nil && !proto.Equal(m.Proto, before.Proto) {
			t.Fatal("PermuteLayers changed its argument")
		}
	})
}

// fuzzSeeds are models of a few hundred bytes that reach most of the
// package: small, so that the fuzzer's minimization of what it finds stays
// quick.
func fuzzSeeds() []*onnx.Model {
	var seeds []*onnx.Model
	seeds = append(seeds, gemmModel(3, 2))

	n := newNet("convbn")
	x := n.Node("Relu", []string{n.bn(n.conv(n.Input("x", onnx.Float, 1, 1, 2, 2), "c", 2, 1, 1, true), "bn", 2)})
	x = n.Node("Flatten", []string{x})
	n.Output(n.gemm(x, "fc", 2, 8, false), onnx.Float, 1, 2)
	seeds = append(seeds, n.Model())

	b := onnx.NewBuilder("dtypes", 0)
	b.Initializer(floatTensor("W", onnx.Float16, []int64{2, 2}, []float64{1, -2, 0.5, 3}, false))
	b.Initializer(floatTensor("B", onnx.Double, []int64{2}, []float64{0.1, 0.2}, true))
	b.Initializer(floatTensor("k", onnx.BFloat16, nil, []float64{1.5}, true))
	b.Node("Add", []string{b.Node("MatMul", []string{"x", "W"}), "B"})
	seeds = append(seeds, b.Model())

	b = onnx.NewBuilder("lstm", 0)
	b.NodeOut("lstm", "LSTM", []string{"x", b.Float("W", []int64{1, 4, 1}, seq(0, 4)),
		b.Float("R", []int64{1, 4, 1}, seq(4, 4)), b.Float("B", []int64{1, 8}, seq(8, 8))}, []string{"y"}, onnx.Int("hidden_size", 1))
	b.NodeOut("c", "Constant", nil, []string{"w"}, onnx.TensorAttr("value", onnx.NewFloatTensor("c", []int64{1, 2}, []float32{1, 2})))
	b.Node("MatMul", []string{"y", "w"})
	seeds = append(seeds, b.Model())
	return seeds
}

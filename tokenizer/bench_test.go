package tokenizer

import (
	"sync"
	"testing"

	"github.com/hyperrep/hyperrep/onnx"
)

var (
	resNetOnce  sync.Once
	resNetModel *onnx.Model
)

// benchResNet50 is resNet50, built once per test binary (it takes a few
// seconds).
func benchResNet50() *onnx.Model {
	resNetOnce.Do(func() { resNetModel = resNet50() })
	return resNetModel
}

func numParams(b *testing.B, m *onnx.Model) int64 {
	layers, err := m.Layers()
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, l := range layers {
		n += l.NumParams()
	}
	return n
}

// BenchmarkTokenize tokenizes ResNet-50 (25.6 M float32 values as raw_data,
// random: see resNet50) with the automatic token width, 256: 125,544 tokens.
func BenchmarkTokenize(b *testing.B) {
	m := benchResNet50()
	params := numParams(b, m)
	b.SetBytes(4 * params)
	b.ReportAllocs()
	var tok *Tokens
	for b.Loop() {
		var err error
		if tok, err = Tokenize(m, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(params)*float64(b.N)/b.Elapsed().Seconds(), "params/s")
	b.ReportMetric(float64(tok.Len()), "tokens")
}

// BenchmarkDetokenize writes ResNet-50's tokens back into a copy of it.
func BenchmarkDetokenize(b *testing.B) {
	m := benchResNet50()
	params := numParams(b, m)
	tok, err := Tokenize(m, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(4 * params)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Detokenize(tok, m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(params)*float64(b.N)/b.Elapsed().Seconds(), "params/s")
}

// BenchmarkPermute permutes ResNet-50's hidden units.
func BenchmarkPermute(b *testing.B) {
	m := benchResNet50()
	params := numParams(b, m)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Permute(m, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(params)*float64(b.N)/b.Elapsed().Seconds(), "params/s")
}

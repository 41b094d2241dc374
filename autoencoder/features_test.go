package autoencoder

import (
	"math"
	"slices"
	"testing"

	"github.com/hyperrep/hyperrep/runtime"
	"github.com/hyperrep/hyperrep/tokenizer"
)

func TestQuantile(t *testing.T) {
	// numpy.quantile([1, 2, 3, 4], q) with its default linear method.
	v := []float32{1, 2, 3, 4}
	for _, c := range []struct{ q, want float64 }{{0, 1}, {0.25, 1.75}, {0.5, 2.5}, {0.75, 3.25}, {1, 4}} {
		if got := quantile(v, c.q); math.Abs(float64(got)-c.want) > 1e-6 {
			t.Errorf("quantile %v: %v, want %v", c.q, got, c.want)
		}
	}
	if quantile([]float32{7}, 0.3) != 7 || quantile(nil, 0.5) != 0 {
		t.Error("quantile of one value or none")
	}
}

func TestLayerFeatures(t *testing.T) {
	m, err := Open(fittedDir(t), runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	model := lastTinyCheckpoint(t)
	lat, emb, err := m.Encode(model)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Features(FeaturesLayers, model)
	if err != nil {
		t.Fatal(err)
	}
	if len(got[0]) != m.FeaturesLen(FeaturesLayers) {
		t.Fatalf("%d features, FeaturesLen says %d", len(got[0]), m.FeaturesLen(FeaturesLayers))
	}
	// Recount from the tokenizer's positions: the tokens of each layer,
	// their latents sorted per latent value, min, median and max.
	toks, err := tokenizer.Tokenize(model, tokenizer.Options{TokenSize: m.Meta.Config.TokenSize})
	if err != nil {
		t.Fatal(err)
	}
	l := m.Meta.Arch.Latent
	for li := range m.Meta.Layout.Layers {
		for d := 0; d < l; d++ {
			var col []float32
			for k := 0; k < toks.Len(); k++ {
				if int(toks.Positions[3*k+1]) == li {
					col = append(col, lat[0][k*l+d])
				}
			}
			slices.Sort(col)
			f := got[0][(li*l+d)*9:]
			n := len(col)
			median := col[n/2]
			if n%2 == 0 {
				median = (col[n/2-1] + col[n/2]) / 2
			}
			if f[0] != col[0] || f[8] != col[n-1] || math.Abs(float64(f[4]-median)) > 1e-6 {
				t.Fatalf("layer %d latent %d: %v, want min %v, median %v, max %v", li, d, f[:9], col[0], median, col[n-1])
			}
		}
	}
	e, err := m.Features(FeaturesEmbedding, model)
	if err != nil || !slices.Equal(e[0], emb[0]) || m.FeaturesLen(FeaturesEmbedding) != len(emb[0]) {
		t.Errorf("embedding features differ from Encode's embedding: %v", err)
	}
	if _, err := m.Features("median", model); err == nil {
		t.Error("an unknown pooling gave no error")
	}
}

package probe

import (
	"fmt"
	"testing"

	"github.com/hyperrep/hyperrep/internal/rng"
)

// BenchmarkRun probes a zoo the size of the MNIST grid, 64 models ×
// 11 checkpoints, with the flattened weights of a small CNN (2,464
// features), s(W) of its 8 tensors (56) and a 128-dimensional embedding,
// for four continuous properties and three hyperparameters.
func BenchmarkRun(b *testing.B) {
	const models, epochs = 64, 11
	n := models * epochs
	r := rng.New(1)
	weights, latent := lowRank(r, rng.New(2), n, 2464, 8, 0.1)
	d := Data{Features: []FeatureSet{
		{"hyperrep", gaussian(r, n, 128)},
		{Stats, gaussian(r, n, 56)},
		{Weights, weights},
	}}
	var train, test []string
	for m := 0; m < models; m++ {
		id := fmt.Sprint(m)
		for e := 0; e < epochs; e++ {
			d.Models = append(d.Models, id)
		}
		if m%5 == 0 {
			test = append(test, id)
		} else {
			train = append(train, id)
		}
	}
	for _, name := range []string{TestAcc, TrainAcc, GenGap, Epoch} {
		d.Targets = append(d.Targets, Target{Name: name, Values: linear(r, latent, normals(r, 8), 0.1), Tau: name == TestAcc})
	}
	for _, name := range []string{"activation", "optimizer", "init"} {
		labels := make([]string, n)
		for i := range labels {
			labels[i] = fmt.Sprint(r.Below(4))
		}
		d.Targets = append(d.Targets, Target{Name: name, Labels: labels})
	}
	d.Split, _ = SplitModels(train, test, 0.2, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Run(&d, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(d.Targets)*len(d.Features)*b.N)/b.Elapsed().Seconds(), "probes/s")
}

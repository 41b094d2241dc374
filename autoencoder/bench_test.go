package autoencoder

import (
	"fmt"
	"testing"

	"github.com/hyperrep/hyperrep/autodiff"
	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/runtime"
)

// BenchmarkAutoencoderStep times one training step (forward, backward,
// AdamW) at the sizes of ../shared/bench/torch_hyperrep_reference.py: 32
// models × 2 views, 64 tokens of width 64, d = 128, 4 heads, 4 + 4 blocks,
// latent 32, on a fixed random batch as the reference does. Compare its
// ms/step with the reference's in the same run
// (scripts/bench_hyperrep.sh).
func BenchmarkAutoencoderStep(b *testing.B) {
	const models, tokens, width = 32, 64, 64
	a := Arch{Width: width, D: 128, Layers: 4, Heads: 4, Latent: 32, Project: 32, Positions: [3]int{tokens, 16, tokens}}
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			m, params := trainingModel(a, 2*models, tokens, 0.05, 0.1, nil, 1)
			tr, err := autodiff.NewTrainer(m, autodiff.Config{
				Loss:    outLoss,
				Groups:  []autodiff.Group{{Params: params, Optimizer: autodiff.AdamW{WeightDecay: 0.01}, Schedule: autodiff.ConstantLR(1e-4)}},
				Options: runtime.Options{Threads: threads},
			})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Close()
			fillRandom(tr, a, 2*models, tokens)
			if _, err := tr.Step(); err != nil { // warm-up: ORT allocates its arenas on the first run
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := tr.Step(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/step")
		})
	}
}

// fillRandom fills the trainer's data inputs as the reference does:
// normal tokens, a mask of 90 % ones, positions (index, random layer <
// 16, random row).
func fillRandom(tr *autodiff.Trainer, a Arch, n, t int) {
	r := rng.New(7)
	for _, name := range []string{InputTokens, inputTarget} {
		v := tr.Value(name).Float32s()
		for i := range v {
			v[i] = float32(r.Normal())
		}
	}
	mask := tr.Value(InputMask).Float32s()
	for i := range mask {
		mask[i] = 0
		if r.Float64() > 0.1 {
			mask[i] = 1
		}
	}
	pos := tr.Value(InputPositions).Int64s()
	for i := 0; i < n*t; i++ {
		pos[3*i] = int64(i % t)
		pos[3*i+1] = int64(r.Below(uint64(a.Positions[1])))
		pos[3*i+2] = int64(r.Below(uint64(a.Positions[2])))
	}
}

// BenchmarkViews times drawing the 64 views of a default training step
// of cnn-s models (permutation, window, noise, masks), the Go-side work
// between two ORT steps.
func BenchmarkViews(b *testing.B) {
	cfg := DefaultConfig()
	_, cps, err := Checkpoints(tinyZoo)
	if err != nil {
		b.Fatal(err)
	}
	d, err := loadCheckpoints(cps, cfg.TokenSize, cfg.Normalise, Split{Train: []string{cps[0].Model}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	p, err := newPermuter(d.template, cfg.TokenSize)
	if err != nil {
		b.Fatal(err)
	}
	aug := &augment{noise: cfg.Noise, maskRate: cfg.MaskRate, permute: p}
	bt := newBatch(d.frame, 64, cfg.Context)
	for s := 0; b.Loop(); s++ {
		for j := range 64 {
			if err := d.view(bt.slot(j), d.values[j%len(d.values)], stream(1, uint64(s), uint64(j)), aug, 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/step")
}

package zoo

import (
	"fmt"
	"maps"
	goruntime "runtime"
	"slices"
	"testing"

	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/runtime"
)

// The population layouts, measured: one training step of cnn-s (forward,
// backward, Adam) at batch 32 per model, in model-samples per second.
// "phase" is the layout zoo trains with; "pool" writes Conv then MaxPool as
// the eval model does, so that pool with P=1 is the plain single-model
// training graph and BenchmarkLayoutParallel/pool/P=1 the baseline of one
// independent single-model session per core. See also the op-level
// measurements in ops_bench_test.go.

// fillRandom puts deterministic pseudo-random inputs and weights into a
// stepper, as a training run would.
func fillRandom(tb testing.TB, s *stepper) {
	tb.Helper()
	r := rng.New(1)
	spec := s.spec
	for _, name := range slices.Sorted(maps.Keys(s.in)) { // in one order, for one draw
		v := s.in[name]
		switch name {
		case "labels":
			for i := range v.Int64s() {
				v.Int64s()[i] = int64(r.Uint64() % uint64(spec.arch.Classes))
			}
		case "sample_weights":
			for i := range v.Float32s() {
				v.Float32s()[i] = 1 / float32(spec.batch)
			}
		case "lr", "momentum":
			for i := range v.Float32s() {
				v.Float32s()[i] = 1e-3
			}
		case "step":
			v.Float32s()[0] = 1
		default:
			if v.DType() == runtime.Float32 {
				for i := range v.Float32s() {
					v.Float32s()[i] = float32(r.Float64())
				}
			}
		}
	}
	for p := range spec.models {
		w, err := initWeights(spec.arch, "kaiming_uniform", int64(p))
		if err != nil {
			tb.Fatal(err)
		}
		flat := s.currentWeights().Float32s()[p*spec.arch.NumParams():]
		for _, t := range w {
			flat = flat[copy(flat, t):]
		}
	}
}

func layoutSpec(b *testing.B, l layout, p int, plain bool) popSpec {
	a, err := NewArch("cnn-s", 1, 28, 28, 10)
	if err != nil {
		b.Fatal(err)
	}
	return popSpec{arch: a, act: "tanh", models: p, batch: 32, opt: "adam", layout: l, plainConvs: plain}
}

// layouts are the population layouts, each with ORT's NCHWc convolutions
// where the machine has them (lowerConvs) and with ONNX's Conv kernels.
var layouts = []struct {
	name  string
	l     layout
	plain bool
}{{"phase", layoutPhase, false}, {"phase-conv", layoutPhase, true}, {"pool", layoutPool, false}, {"pool-conv", layoutPool, true}}

// BenchmarkLayout runs one population on one thread.
func BenchmarkLayout(b *testing.B) {
	for _, l := range layouts {
		for _, p := range []int{1, 2, 4, 8} {
			b.Run(fmt.Sprintf("%s/P=%d", l.name, p), func(b *testing.B) { benchSteps(b, layoutSpec(b, l.l, p, l.plain), 1) })
		}
	}
}

// BenchmarkLayoutParallel runs one population per core, as zoo training
// does, and reports the machine's throughput.
func BenchmarkLayoutParallel(b *testing.B) {
	for _, l := range layouts {
		for _, p := range []int{1, 2, 4, 8} {
			if l.l == layoutPool && p > 1 {
				continue
			}
			b.Run(fmt.Sprintf("%s/P=%d", l.name, p), func(b *testing.B) {
				benchSteps(b, layoutSpec(b, l.l, p, l.plain), goruntime.NumCPU())
			})
		}
	}
}

// benchSteps runs b.N steps on each of workers steppers at once, as Train
// runs its workers.
func benchSteps(b *testing.B, spec popSpec, workers int) {
	var ss []*stepper
	for range workers {
		s, err := newStepper(spec, runtime.Options{Threads: 1})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		fillRandom(b, s)
		if err := s.step(); err != nil {
			b.Fatal(err)
		}
		ss = append(ss, s)
	}
	b.ResetTimer()
	runtime.RunWorkers(workers, func(w int) { // as Train runs its workers
		for range b.N {
			if err := ss[w].step(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(workers*b.N*spec.models*spec.batch)/b.Elapsed().Seconds(), "model-samples/s")
}

// BenchmarkEvaluate scores populations on 1,280 test images, batch 64 as
// zoo training does, on one thread: with ORT's NCHWc kernels (the shared
// first layer a Conv and MaxPool on the blocked layout) and with ONNX's
// Conv (the four pooling phases throughout).
func BenchmarkEvaluate(b *testing.B) {
	for _, plain := range []bool{false, true} {
		for _, p := range []int{2, 4, 8} {
			name := fmt.Sprintf("nchwc/P=%d", p)
			if plain {
				name = fmt.Sprintf("conv/P=%d", p)
			}
			b.Run(name, func(b *testing.B) {
				spec := layoutSpec(b, layoutPhase, p, plain)
				ev, err := newEvaluator(spec, evalBatch, runtime.Options{Threads: 1})
				if err != nil {
					b.Fatal(err)
				}
				defer ev.Close()
				w, err := runtime.NewValue(runtime.Float32, []int64{int64(p), int64(spec.arch.NumParams())})
				if err != nil {
					b.Fatal(err)
				}
				defer w.Destroy()
				in := uniformTensors(rng.New(5), [][]int64{{int64(p * spec.arch.NumParams())}, {20 * evalBatch * 784}})
				copy(w.Float32s(), in[0].Data.([]float32))
				set := &dataset.Set{N: 20 * evalBatch, C: 1, H: 28, W: 28, Classes: 10, Images: in[1].Data.([]float32), Labels: make([]uint8, 20*evalBatch)}
				b.ResetTimer()
				for range b.N {
					if _, _, err := ev.evaluate(w, set); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*set.N*p)/b.Elapsed().Seconds(), "model-samples/s")
			})
		}
	}
}

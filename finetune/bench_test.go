package finetune

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/onnx"
)

// BenchmarkRunCNNS fine-tunes one cnn-s per CPU for one epoch on 10,000
// MNIST samples, scoring 10,000 test samples before and after, as the
// generation benchmark does for each of its models; and, for the
// breakdown, one model's training epoch and one evaluation alone.
func BenchmarkRunCNNS(b *testing.B) {
	train, test := mnist(b, 10000, 10000)
	m := readFixture(b, fixtures.CNNS)
	b.Run("run", func(b *testing.B) {
		models := make([]*onnx.Model, runtime.NumCPU())
		for i := range models {
			models[i] = m
		}
		start := time.Now()
		for range b.N {
			if _, err := Run(context.Background(), models, train, test, Config{Epochs: 1}, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(models))/time.Since(start).Seconds(), "model-epochs/s")
	})
	b.Run("epoch", func(b *testing.B) {
		t, err := New(m, train, Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer t.Close()
		start := time.Now()
		for range b.N {
			if _, _, err := t.Epoch(context.Background(), nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*train.N)/time.Since(start).Seconds(), "samples/s")
	})
	b.Run("evaluate", func(b *testing.B) {
		r := &runner{cfg: Config{Threads: 1}}
		start := time.Now()
		for range b.N {
			if _, err := r.evaluate(context.Background(), m, test); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*test.N)/time.Since(start).Seconds(), "samples/s")
	})
}

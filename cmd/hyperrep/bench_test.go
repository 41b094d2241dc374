package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hyperrep/hyperrep/fixtures"
)

// buildBinary compiles the CLI into dir, so benchmarks time the real process.
func buildBinary(b *testing.B, dir string) string {
	b.Helper()
	bin := filepath.Join(dir, "hyperrep")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("go build: %v", err)
	}
	return bin
}

// BenchmarkTokenizeProcess runs the whole "hyperrep tokenize" process on a
// 25.6 M-parameter model (ResNet-50's shapes, 102 MB) and reports its wall
// time, its peak resident memory and that peak over the model file's size.
func BenchmarkTokenizeProcess(b *testing.B) {
	dir := b.TempDir()
	bin := buildBinary(b, dir)
	model := filepath.Join(dir, "resnet50.onnx")
	if err := fixtures.ResNet50(1).Write(model); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(model)
	if err != nil {
		b.Fatal(err)
	}
	var peak int64
	var wall time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(bin, "tokenize", model, "-o", filepath.Join(dir, "t.safetensors"))
		cmd.Stderr = os.Stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("tokenize: %v", err)
		}
		wall += time.Since(start)
		rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024 // kilobytes on Linux
		peak = max(peak, rss)
	}
	b.ReportMetric(wall.Seconds()/float64(b.N), "s/process")
	b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
	b.ReportMetric(float64(peak)/float64(fi.Size()), "peak/file-size")
	b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
}

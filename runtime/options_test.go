package runtime

import (
	"os"
	"strings"
	"testing"
)

func TestParseDevice(t *testing.T) {
	tests := []struct {
		in   string
		want Device
		err  string
	}{
		{"cpu", CPU, ""},
		{"cuda", Device{CUDA: true}, ""},
		{"cuda:0", Device{CUDA: true}, ""},
		{"cuda:3", Device{CUDA: true, ID: 3}, ""},
		{"", CPU, `runtime: device "": want cpu, cuda or cuda:N`},
		{"gpu", CPU, `runtime: device "gpu": want cpu, cuda or cuda:N`},
		{"CPU", CPU, `want cpu, cuda or cuda:N`},
		{"cuda:", CPU, `runtime: device "cuda:": want cuda:N with N a GPU index such as 0`},
		{"cuda:-1", CPU, "want cuda:N"},
		{"cuda:+1", CPU, "want cuda:N"},
		{"cuda:x", CPU, "want cuda:N"},
		{"cuda:0:1", CPU, "want cuda:N"},
	}
	for _, tt := range tests {
		got, err := ParseDevice(tt.in)
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseDevice(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if back, _ := ParseDevice(got.String()); back != got {
				t.Errorf("ParseDevice(%q).String() = %q does not parse back", tt.in, got)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("ParseDevice(%q) error %v, want one containing %q", tt.in, err, tt.err)
		}
	}
}

// TestCUDAUnavailable asks a CPU-only library for CUDA: the answer must be
// one clear line, not a crash.
func TestCUDAUnavailable(t *testing.T) {
	if err := Init(); err != nil {
		t.Fatal(err)
	}
	if hasCUDAProvider() {
		t.Skip("this ONNX Runtime library ships a CUDA provider")
	}
	model, err := os.ReadFile("testdata/linear_nchw.onnx")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []Device{{CUDA: true}, {CUDA: true, ID: 1}} {
		_, err := NewSession(model, Options{Device: d})
		t.Log(err)
		want := "runtime: device " + d.String() + ": this ONNX Runtime library has no CUDA execution provider ("
		if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("got %v, want one line starting %q", err, want)
		}
	}
}

func TestThreads(t *testing.T) {
	model, err := os.ReadFile("testdata/linear_nchw.onnx")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 2} {
		s, err := NewSession(model, Options{Threads: n})
		if err != nil {
			t.Fatalf("%d threads: %v", n, err)
		}
		s.Close()
	}
	if _, err := NewSession(model, Options{Threads: -1}); err == nil || !strings.Contains(err.Error(), "-1 threads") {
		t.Errorf("Threads -1: got %v", err)
	}
}

package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// Device says where a session runs. The zero value is the CPU.
type Device struct {
	CUDA bool // run on a CUDA GPU through ORT's CUDA execution provider
	ID   int  // the GPU's index when CUDA is set
}

// CPU is the default device.
var CPU = Device{}

// ParseDevice parses "cpu", "cuda" (GPU 0) or "cuda:N".
func ParseDevice(s string) (Device, error) {
	switch {
	case s == "cpu":
		return CPU, nil
	case s == "cuda":
		return Device{CUDA: true}, nil
	case strings.HasPrefix(s, "cuda:"):
		id, err := strconv.Atoi(s[len("cuda:"):])
		if err != nil || id < 0 || strings.HasPrefix(s[len("cuda:"):], "+") {
			return CPU, fmt.Errorf("runtime: device %q: want cuda:N with N a GPU index such as 0", s)
		}
		return Device{CUDA: true, ID: id}, nil
	}
	return CPU, fmt.Errorf("runtime: device %q: want cpu, cuda or cuda:N", s)
}

// String returns the device in the form ParseDevice accepts: "cpu" or
// "cuda:N".
func (d Device) String() string {
	if !d.CUDA {
		return "cpu"
	}
	return "cuda:" + strconv.Itoa(d.ID)
}

// Options configure a session.
type Options struct {
	Device Device
	// Threads is ORT's intra-op thread count. Zero means one thread, which
	// is what many small sessions running side by side (training a zoo)
	// want; Evaluate instead reads zero as one thread per CPU.
	Threads int
	// BasicOptimizations limits ORT's graph rewrites to those that keep
	// standard ONNX ops. ORT's extended rewrites fuse ops into its own
	// kernels, some of which exist for float32 only (Transpose+MatMul ->
	// FusedMatMul), so float64 graphs need this.
	BasicOptimizations bool
}

// sessionOptions builds ORT's options; the caller destroys them once the
// session is created.
func (o Options) sessionOptions(defaultThreads int) (*ort.SessionOptions, error) {
	threads := o.Threads
	if threads == 0 {
		threads = defaultThreads
	}
	if threads < 0 {
		return nil, fmt.Errorf("runtime: %d threads: want 0 (default) or more", threads)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("runtime: session options: %w", err)
	}
	// Sessions run nodes one after another (ORT's default sequential mode),
	// so an inter-op pool would only add idle threads.
	err = so.SetIntraOpNumThreads(threads)
	if err == nil {
		err = so.SetInterOpNumThreads(1)
	}
	if err == nil && o.BasicOptimizations {
		err = so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableBasic)
	}
	if err == nil && o.Device.CUDA {
		err = appendCUDA(so, o.Device)
	}
	if err != nil {
		so.Destroy()
		return nil, err
	}
	return so, nil
}

func appendCUDA(so *ort.SessionOptions, d Device) error {
	co, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return cudaError(d, err)
	}
	defer co.Destroy()
	if err := co.Update(map[string]string{"device_id": strconv.Itoa(d.ID)}); err != nil {
		return cudaError(d, err)
	}
	if err := so.AppendExecutionProviderCUDA(co); err != nil {
		return cudaError(d, err)
	}
	return nil
}

// cudaError tells a library built without CUDA (the usual case: the npm and
// CPU release archives ship neither libonnxruntime_providers_cuda.so nor the
// providers_shared library that loads it) apart from a CUDA provider that is
// there but cannot start (CUDA or cuDNN missing, no driver, no such GPU).
func cudaError(d Device, err error) error {
	msg := oneLine(err)
	if !hasCUDAProvider() || strings.Contains(msg, "libonnxruntime_providers_shared") {
		return fmt.Errorf("runtime: device %s: this ONNX Runtime library has no CUDA execution provider (%s)", d, msg)
	}
	return fmt.Errorf("runtime: device %s: %s", d, msg)
}

// hasCUDAProvider reports whether the CUDA provider library sits next to
// the loaded ORT library, which is where ORT looks for it. When ORT came from
// the system search path we cannot tell, and say yes so as not to mislead.
func hasCUDAProvider() bool {
	if !strings.ContainsRune(libPath, os.PathSeparator) {
		return true
	}
	_, err := os.Stat(filepath.Join(filepath.Dir(libPath), "libonnxruntime_providers_cuda.so"))
	return err == nil
}

package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestInit(t *testing.T) {
	if err := Init(); err != nil {
		t.Fatal(err)
	}
	if v := Version(); !strings.HasPrefix(v, "1.") {
		t.Errorf("Version() = %q, want 1.x", v)
	}
	if LibraryPath() == "" {
		t.Error("LibraryPath() is empty after a successful Init")
	}
}

// TestLoadFailures runs Init in child processes, since the library loads
// once per process.
func TestLoadFailures(t *testing.T) {
	if os.Getenv("RUNTIME_TEST_CHILD") == "1" {
		if err := Init(); err != nil {
			os.Stdout.WriteString(err.Error())
		}
		return
	}
	garbage := t.TempDir()
	os.WriteFile(filepath.Join(garbage, "go.mod"), []byte("module x\n"), 0o644)
	os.Mkdir(filepath.Join(garbage, "lib"), 0o755)
	os.WriteFile(filepath.Join(garbage, "lib", "libonnxruntime.so.1"), []byte("not a library"), 0o644)
	tests := []struct {
		name, dir, env, want string
	}{
		{"nowhere", t.TempDir(), "", `runtime: ONNX Runtime library not found; run "make setup" or set ONNXRUNTIME_LIB to libonnxruntime.so`},
		{"bad env", t.TempDir(), "/nonexistent/libonnxruntime.so", "runtime: ONNXRUNTIME_LIB: /nonexistent/libonnxruntime.so: cannot open shared object file"},
		{"not a library", filepath.Join(garbage, "lib"), "", "runtime: ONNX Runtime library failed to load: " + filepath.Join(garbage, "lib", "libonnxruntime.so.1") + ": "},
	}
	// The children run in other directories, where a relative os.Args[0]
	// would not resolve.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(exe, "-test.run=^TestLoadFailures$")
			cmd.Dir = tt.dir
			cmd.Env = append(os.Environ(), "RUNTIME_TEST_CHILD=1", "ONNXRUNTIME_LIB="+tt.env, "LD_LIBRARY_PATH=")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("child: %v", err)
			}
			msg, _, _ := strings.Cut(string(out), "PASS")
			if !strings.HasPrefix(msg, tt.want) {
				t.Errorf("got %q, want it to start with %q", msg, tt.want)
			}
			if strings.Count(strings.TrimSpace(msg), "\n") != 0 {
				t.Errorf("error spans lines: %q", msg)
			}
		})
	}
}

func TestUpToModule(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b")
	os.MkdirAll(deep, 0o755)
	os.WriteFile(filepath.Join(root, "go.mod"), nil, 0o644)
	got := upToModule(deep)
	want := []string{deep, filepath.Join(root, "a"), root}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("upToModule(%s) = %v, want %v", deep, got, want)
	}
}

func TestOneLine(t *testing.T) {
	in := "Error creating C session: /onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:1952 onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library\nlibfoo.so"
	want := "Failed to load library libfoo.so"
	if got := oneLine(stringError(in)); got != want {
		t.Errorf("oneLine(...) = %q, want %q", got, want)
	}
}

type stringError string

func (e stringError) Error() string { return string(e) }

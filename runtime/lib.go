package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// libNames are the file names tried in each lib/ directory: the versioned
// name is what `make setup` extracts, the plain one is what a developer
// symlink or a distribution package usually provides.
var libNames = []string{"libonnxruntime.so.1", "libonnxruntime.so"}

const setupHint = `run "make setup" or set ONNXRUNTIME_LIB to libonnxruntime.so`

var (
	initOnce sync.Once
	initErr  error
	libPath  string // the library Init loaded
)

// Init loads the ONNX Runtime shared library and creates the process-wide
// ORT environment. It does the work once; later calls return the first
// call's result, so a failed load is not retried. Every other function of
// the package calls Init itself; call it directly to fail early with a clear
// message.
func Init() error {
	initOnce.Do(func() { libPath, initErr = load() })
	return initErr
}

// Version reports the version of the loaded ONNX Runtime library, such as
// "1.24.3", or "" when the library cannot be loaded.
func Version() string {
	if Init() != nil {
		return ""
	}
	return ort.GetVersion()
}

// LibraryPath reports the path (or, when the system loader found it, the
// bare file name) of the loaded ONNX Runtime library, or "" when it cannot
// be loaded.
func LibraryPath() string {
	if Init() != nil {
		return ""
	}
	return libPath
}

// load tries the candidates in order and keeps the first that loads. A file
// that exists but fails to load is remembered, so that the final error says
// why rather than merely "not found".
func load() (string, error) {
	if p := os.Getenv("ONNXRUNTIME_LIB"); p != "" {
		if err := initAt(p); err != nil {
			return "", fmt.Errorf("runtime: ONNXRUNTIME_LIB: %s", withPath(p, err))
		}
		return p, nil
	}
	var firstErr error
	for _, p := range candidates() {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		err := initAt(p)
		if err == nil {
			return p, nil
		}
		if firstErr == nil {
			firstErr = errors.New(withPath(p, err))
		}
	}
	// Let dlopen search LD_LIBRARY_PATH, the ld.so cache and the default
	// directories; its failures are not interesting unless nothing else was
	// found, since "not found" is the normal outcome on most machines.
	for _, name := range libNames {
		if initAt(name) == nil {
			return name, nil
		}
	}
	if firstErr != nil {
		return "", fmt.Errorf("runtime: ONNX Runtime library failed to load: %v; %s", firstErr, setupHint)
	}
	return "", errors.New("runtime: ONNX Runtime library not found; " + setupHint)
}

func initAt(path string) error {
	ort.SetSharedLibraryPath(path)
	// ORT logs to stderr, where its lines would interleave with the CLI's
	// output: warnings (unused initializers, provider fallbacks) are noise,
	// and its errors repeat what Run and NewSession return anyway.
	err := ort.InitializeEnvironment(ort.WithLogLevelFatal())
	if err != nil && strings.Contains(err.Error(), "ORT API base") {
		// onnxruntime_go asks for one C API version; an older library
		// answers with a bare status code.
		return fmt.Errorf("%w (the library is older than ONNX Runtime 1.24, which onnxruntime_go v1.27.0 needs)", err)
	}
	return err
}

// candidates lists lib/ files next to the executable, in its parent
// directory, then in the current directory and its ancestors up to the
// module root.
func candidates() []string {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		d := filepath.Dir(exe)
		dirs = append(dirs, d, filepath.Dir(d))
	}
	if wd, err := os.Getwd(); err == nil {
		dirs = append(dirs, upToModule(wd)...)
	}
	var out []string
	for _, d := range dirs {
		for _, n := range libNames {
			out = append(out, filepath.Join(d, "lib", n))
		}
	}
	return out
}

// upToModule returns dir and its ancestors, stopping at the first directory
// holding go.mod, or at the root when there is none.
func upToModule(dir string) []string {
	var out []string
	for {
		out = append(out, dir)
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return out
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return out
		}
		dir = parent
	}
}

// withPath returns the one-line message of a load failure, which names the
// library when dlerror did not.
func withPath(path string, err error) string {
	msg := oneLine(err)
	if !strings.Contains(msg, path) {
		msg = path + ": " + msg
	}
	return msg
}

// oneLine keeps ORT's and dlerror's messages, which sometimes span lines,
// to the one line the CLI prints.
func oneLine(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	// ORT prefixes its messages with the C++ source location and a status
	// code, which say nothing to a user.
	return ortPrefix.ReplaceAllString(msg, "")
}

// ortPrefix matches the C++ source locations and status codes in ORT's
// messages, and the framing onnxruntime_go adds around them.
var ortPrefix = regexp.MustCompile(`\S*/onnxruntime/\S+:\d+ .*?\[ONNXRuntimeError\] : \d+ : (FAIL : )?|Error creating (temporary|C) session: |Error running network: |Platform-specific initialization failed: Error loading ONNX shared library "[^"]*": `)

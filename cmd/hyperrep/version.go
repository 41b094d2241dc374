package main

import (
	"fmt"
	"runtime/debug"

	"github.com/hyperrep/hyperrep/runtime"
)

// versionString names the build and the ONNX Runtime library it would use.
func versionString() string {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		v = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
	}
	ort := "ONNX Runtime not found"
	if err := runtime.Init(); err == nil {
		ort = fmt.Sprintf("ONNX Runtime %s (%s)", runtime.Version(), runtime.LibraryPath())
	} else {
		ort = err.Error()
	}
	return fmt.Sprintf("hyperrep %s\n%s", v, ort)
}

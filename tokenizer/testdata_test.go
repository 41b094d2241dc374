package tokenizer

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/onnx"
)

// backendData holds ONNX's backend test models (Debian's libonnx-testdata):
// <suite>/<test>/model.onnx with test_data_set_0/{input,output}_N.pb.
const backendData = "/usr/share/libonnx-testdata/data"

var backendSuites = []string{"pytorch-converted", "pytorch-operator", "simple", "node"}

// backendModels lists the backend test models as suite/test names, skipping
// the test when the package is not installed.
func backendModels(t testing.TB) []string {
	t.Helper()
	var names []string
	for _, s := range backendSuites {
		paths, err := filepath.Glob(filepath.Join(backendData, s, "*", "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			names = append(names, strings.TrimPrefix(filepath.Dir(p), backendData+"/"))
		}
	}
	if len(names) == 0 {
		t.Skipf("no ONNX backend test models in %s (install libonnx-testdata)", backendData)
	}
	return names
}

func readBackend(t testing.TB, name string) *onnx.Model {
	t.Helper()
	m, err := onnx.Read(filepath.Join(backendData, name, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRoundTripBackend tokenizes every backend test model and detokenizes
// it into a copy whose weights were overwritten: the result must be the
// model itself, byte for byte.
func TestRoundTripBackend(t *testing.T) {
	var models, withWeights, tokens int
	for _, name := range backendModels(t) {
		m := readBackend(t, name)
		for _, width := range []int{0, 7} {
			tok, err := Tokenize(m, Options{TokenSize: width})
			if err != nil {
				t.Errorf("%s: tokenize: %v", name, err)
				continue
			}
			t.Run(name, func(t *testing.T) { checkRoundTrip(t, m, tok) })
			if width == 0 {
				models++
				tokens += tok.Len()
				if tok.Len() > 0 {
					withWeights++
				}
			}
		}
	}
	t.Logf("%d models round-tripped, %d with weights, %d tokens", models, withWeights, tokens)
}

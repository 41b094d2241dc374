package autoencoder

import (
	"github.com/hyperrep/hyperrep/internal/dirlock"

	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hyperrep/hyperrep/autodiff"
	"github.com/hyperrep/hyperrep/convert"
	"github.com/hyperrep/hyperrep/internal/atomicfile"
)

// Files of a hyper-representation directory.
const (
	metaFile     = "hyperrep.json"
	encoderFile  = "encoder.onnx"
	decoderFile  = "decoder.onnx"
	templateFile = "template.onnx"
	readmeFile   = "README.md"
	logFile      = "log.jsonl"
	stateFile    = "state.safetensors"
	lockFile     = dirlock.Name
)

// state is what resuming a fit needs. state.safetensors holds the weights
// and the optimiser's state as tensors and the rest as JSON in its
// metadata. Every random draw of a fit comes from a stream keyed by the
// seed and the step (see stream), so the step count is also the position
// of the random number generators.
type state struct {
	Config  Config  `json:"config"`
	Split   Split   `json:"split"`
	Samples int     `json:"checkpoints"` // of the zoo, when the fit started
	Steps   int     `json:"steps"`
	Partial sums    `json:"partial"` // of the epoch in progress
	Seconds float64 `json:"seconds"` // of training before this run
	Log     []Epoch `json:"log"`

	weights map[string][]float32 // parameters
	optim   map[string][]float32 // optimiser state, "<param>/<slot>"
}

// readState reads the state in dir; nil when there is none.
func readState(dir string) (*state, error) {
	path := filepath.Join(dir, stateFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	f, err := convert.ReadSafetensors(path)
	if err != nil {
		return nil, err
	}
	st := &state{weights: map[string][]float32{}, optim: map[string][]float32{}}
	if err := json.Unmarshal([]byte(f.Metadata["state"]), st); err != nil {
		return nil, fmt.Errorf("autoencoder: %s: %v", path, err)
	}
	for name, t := range f.Tensors {
		v, err := t.Float32s()
		if err != nil {
			return nil, fmt.Errorf("autoencoder: %s: %q: %w", path, name, err)
		}
		if bytes.ContainsRune([]byte(name), '/') {
			st.optim[name] = v
		} else {
			st.weights[name] = v
		}
	}
	return st, nil
}

// restore puts the optimiser state and the step count into a trainer
// built with the state's weights.
func (st *state) restore(tr *autodiff.Trainer) error {
	for _, name := range tr.State() {
		v, ok := st.optim[name]
		if !ok {
			if st.Steps == 0 {
				continue // a fresh run: the state starts at zero
			}
			return fmt.Errorf("autoencoder: the saved state lacks %q", name)
		}
		dst := tr.Value(name).Float32s()
		if len(dst) != len(v) {
			return fmt.Errorf("autoencoder: the saved state %q has %d values, want %d", name, len(v), len(dst))
		}
		copy(dst, v)
	}
	tr.SetSteps(st.Steps)
	return nil
}

// save writes the state and the log.
func (f *fit) save() error {
	st := f.st
	st.Steps = f.tr.Steps()
	tensors := map[string]convert.Tensor{}
	for _, name := range append(slices.Clone(f.params), f.tr.State()...) {
		v := f.tr.Value(name)
		tensors[name] = convert.Float32Tensor(v.Shape(), v.Float32s())
	}
	meta, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return fmt.Errorf("autoencoder: %w", err)
	}
	if err := convert.WriteSafetensors(filepath.Join(f.dir, stateFile), tensors, map[string]string{"state": string(meta)}); err != nil {
		return err
	}
	return f.writeLog()
}

// writeLog writes log.jsonl: the epochs logged so far. After a kill, the
// epochs since the last saved state are trained again and their lines
// written anew.
func (f *fit) writeLog() error {
	var log bytes.Buffer
	for _, e := range f.st.Log {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		log.Write(append(line, '\n'))
	}
	return atomicfile.WriteBytes(filepath.Join(f.dir, logFile), log.Bytes())
}

// differs names every setting in which c differs from d, in the order of
// their names, "" when none does. The number of epochs may differ: a fit
// trains on when asked for more.
func (c Config) differs(d Config) string {
	c.Epochs, d.Epochs = 0, 0
	for _, x := range []*Config{&c, &d} {
		if x.Normalise == "" {
			x.Normalise = NormLayer
		}
	}
	var a, b map[string]any
	ja, _ := json.Marshal(c)
	jb, _ := json.Marshal(d)
	json.Unmarshal(ja, &a)
	json.Unmarshal(jb, &b)
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var diffs []string
	for _, k := range keys {
		// A setting saved before it existed (or left out as empty) is
		// its zero value.
		va, vb := a[k], b[k]
		if va == nil {
			va = zeroLike(vb)
		}
		if vb == nil {
			vb = zeroLike(va)
		}
		if fmt.Sprint(va) != fmt.Sprint(vb) {
			diffs = append(diffs, fmt.Sprintf("%s %v (now %v)", k, va, vb))
		}
	}
	return strings.Join(diffs, ", ")
}

// zeroLike is the zero value of v's JSON type.
func zeroLike(v any) any {
	switch v.(type) {
	case bool:
		return false
	case string:
		return ""
	case float64:
		return 0.0
	}
	return nil
}

func sameSplit(a, b Split) bool {
	return slices.Equal(a.Train, b.Train) && slices.Equal(a.Validation, b.Validation) && slices.Equal(a.Test, b.Test)
}

// lockDir creates dir and takes it for this process (see internal/dirlock).
func lockDir(dir string) (unlock func(), err error) {
	if unlock, err = dirlock.Lock(dir, "fitted"); err != nil {
		return nil, fmt.Errorf("autoencoder: %w", err)
	}
	return unlock, nil
}

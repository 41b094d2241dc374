package generate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// SamplesFile is the file in an output directory that says how each sample
// was drawn, one Record per line.
const SamplesFile = "samples.jsonl"

// ErrNotEmpty is matched (errors.Is) by the error of Write into a
// directory that already holds files, without force.
var ErrNotEmpty = errors.New("generate: the output directory is not empty")

// CheckDir returns ErrNotEmpty (wrapped) when dir holds anything and force
// is false: a fast check before sampling, which Write repeats.
func CheckDir(dir string, force bool) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("generate: %s exists and is not a directory", dir)
	}
	if force {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("%w: %s (pass --force to replace it)", ErrNotEmpty, dir)
	}
	return nil
}

// Write writes the samples into dir as sample_NNNN.onnx files and
// samples.jsonl, setting each record's File. Everything is written into a
// temporary directory beside dir that is then renamed to dir, so that dir
// is never seen half-written: it either does not exist, or is as it was,
// or holds every sample. An existing dir is replaced only if it is empty
// or force is true.
func Write(dir string, samples []Sample, force bool) (err error) {
	if err := CheckDir(dir, force); err != nil {
		return err
	}
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	digits := max(4, len(fmt.Sprint(len(samples)-1)))
	var lines bytes.Buffer
	enc := json.NewEncoder(&lines)
	for i := range samples {
		s := &samples[i]
		s.Record.File = fmt.Sprintf("sample_%0*d.onnx", digits, i)
		if err := s.Model.Write(filepath.Join(tmp, s.Record.File)); err != nil {
			return err
		}
		if err := enc.Encode(s.Record); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, SamplesFile), lines.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	// The old directory goes aside first and away last: a failure between
	// puts it back.
	var old string
	if _, err := os.Stat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return err
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

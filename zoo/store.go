package zoo

import (
	"github.com/hyperrep/hyperrep/internal/dirlock"

	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hyperrep/hyperrep/internal/atomicfile"
)

// FormatVersion is the version of the zoo directory layout that this
// package writes and reads.
const FormatVersion = 1

// Config is a zoo's zoo.json: what every model was trained on and how. A
// rerun into the same directory must ask for the same Config (but for
// more Epochs, which continues the training) and resumes.
type Config struct {
	Format       int    `json:"format"`
	Dataset      string `json:"dataset"`
	Architecture string `json:"architecture"`
	Input        [3]int `json:"input"` // channels, rows, columns
	Classes      int    `json:"classes"`
	Parameters   int    `json:"parameters"` // per model
	Grid         Grid   `json:"grid"`
	// The training split is TrainSamples images drawn from the dataset's
	// training set by dataset.Subset with SplitSeed (all of it when
	// TrainSamples is 0); the test split the first TestSamples test images
	// (all when 0).
	TrainSamples int   `json:"train_samples"`
	TestSamples  int   `json:"test_samples"`
	SplitSeed    int64 `json:"split_seed"`
	Epochs       int   `json:"epochs"`
	Batch        int   `json:"batch"`
	// Shard is "i/n" for one of n shards of the grid's models, "" for all.
	Shard  string   `json:"shard,omitempty"`
	Models []string `json:"models"` // the IDs of the models this directory holds
}

// sameTraining reports how c and d differ in what the models were trained
// on, ignoring Epochs, Grid, Shard and Models; "" if they do not.
func (c *Config) sameTraining(d *Config) string {
	type field struct {
		name string
		a, b any
	}
	for _, f := range []field{
		{"format", c.Format, d.Format}, {"dataset", c.Dataset, d.Dataset}, {"architecture", c.Architecture, d.Architecture},
		{"input", c.Input, d.Input}, {"classes", c.Classes, d.Classes}, {"train samples", c.TrainSamples, d.TrainSamples},
		{"test samples", c.TestSamples, d.TestSamples}, {"split seed", c.SplitSeed, d.SplitSeed}, {"batch", c.Batch, d.Batch},
	} {
		if fmt.Sprint(f.a) != fmt.Sprint(f.b) {
			return fmt.Sprintf("%s %v vs %v", f.name, f.a, f.b)
		}
	}
	return ""
}

// Epoch is one line of a model's result.jsonl: its metrics after an epoch
// of training (epoch 0: the initial weights, with no training metrics).
// Training metrics are averages over the epoch's batches as the model saw
// them (with dropout, weights changing); test metrics are measured after
// the epoch.
type Epoch struct {
	Epoch         int      `json:"epoch"`
	TrainLoss     *float64 `json:"train_loss"`
	TrainAccuracy *float64 `json:"train_accuracy"`
	TestLoss      float64  `json:"test_loss"`
	TestAccuracy  float64  `json:"test_accuracy"`
	// Seconds is the wall time of the epoch (training and test) of the
	// population the model trained in.
	Seconds float64 `json:"seconds"`
}

// Params is a model's params.json.
type Params struct {
	ID string `json:"id"`
	Hyper
	Architecture string `json:"architecture"`
	Dataset      string `json:"dataset"`
	Parameters   int    `json:"parameters"`
}

// Model is a zoo member as stored.
type Model struct {
	Params
	Epochs []Epoch // result.jsonl, in order
}

// Final is the last epoch's metrics, or nil when there are none.
func (m *Model) Final() *Epoch {
	if len(m.Epochs) == 0 {
		return nil
	}
	return &m.Epochs[len(m.Epochs)-1]
}

// Zoo is an opened zoo directory.
type Zoo struct {
	Dir    string
	Config Config
	Models []Model // in the order of Config.Models
}

// Paths inside a zoo directory.
const (
	configFile     = "zoo.json"
	modelsDir      = "models"
	paramsFile     = "params.json"
	resultFile     = "result.jsonl"
	modelFile      = "model.onnx"
	optimizerFile  = "optimizer.safetensors"
	checkpointStem = "checkpoint_"
	lockFile       = dirlock.Name
)

func modelDir(dir, id string) string { return filepath.Join(dir, modelsDir, id) }

// CheckpointDir is the directory of a model's checkpoint after epoch e
// (e = 0: the initial weights).
func CheckpointDir(dir, id string, epoch int) string {
	return filepath.Join(modelDir(dir, id), fmt.Sprintf("%s%06d", checkpointStem, epoch))
}

// ErrNotZoo is matched (errors.Is) by Open's error for a directory without
// zoo.json.
var ErrNotZoo = errors.New("zoo: not a zoo directory")

// Open reads a zoo directory: its zoo.json and every model's params.json
// and result.jsonl. Models not started yet have no epochs.
func Open(dir string) (*Zoo, error) {
	cfg, err := readConfig(dir)
	if err != nil {
		return nil, err
	}
	z := &Zoo{Dir: dir, Config: *cfg}
	for _, id := range cfg.Models {
		m := Model{}
		if err := readJSON(filepath.Join(modelDir(dir, id), paramsFile), &m.Params); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				m.Params = Params{ID: id}
				z.Models = append(z.Models, m)
				continue
			}
			return nil, err
		}
		if m.ID != id {
			return nil, fmt.Errorf("zoo: %s: params.json has id %q", modelDir(dir, id), m.ID)
		}
		if m.Epochs, err = readResults(dir, id); err != nil {
			return nil, err
		}
		z.Models = append(z.Models, m)
	}
	return z, nil
}

func readConfig(dir string) (*Config, error) {
	var cfg Config
	err := readJSON(filepath.Join(dir, configFile), &cfg)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s", ErrNotZoo, dir, configFile)
	}
	if err != nil {
		return nil, err
	}
	if cfg.Format != FormatVersion {
		return nil, fmt.Errorf("zoo: %s: format %d, this hyperrep reads format %d", dir, cfg.Format, FormatVersion)
	}
	return &cfg, nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("zoo: %s: %v", path, err)
	}
	return nil
}

// writeJSON writes v, indented, atomically.
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, append(data, '\n'))
}

// readResults reads a model's result.jsonl; a missing file is no epochs.
func readResults(dir, id string) ([]Epoch, error) {
	path := filepath.Join(modelDir(dir, id), resultFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Epoch
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var e Epoch
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("zoo: %s:%d: %v", path, line, err)
		}
		if e.Epoch != len(out) {
			return nil, fmt.Errorf("zoo: %s:%d: epoch %d, want %d", path, line, e.Epoch, len(out))
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// writeResults rewrites a model's result.jsonl whole, atomically: appending
// would leave a half line behind a crash.
func writeResults(dir, id string, epochs []Epoch) error {
	var buf bytes.Buffer
	for _, e := range epochs {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		buf.Write(append(line, '\n'))
	}
	return atomicfile.WriteBytes(filepath.Join(modelDir(dir, id), resultFile), buf.Bytes())
}

// done returns how many epochs of a model are complete: the longest prefix
// 0..e of its result.jsonl whose checkpoints hold both the model and the
// optimiser state, minus one (-1 when not even epoch 0 is).
func done(dir, id string, epochs []Epoch) int {
	last := -1
	for _, e := range epochs {
		cp := CheckpointDir(dir, id, e.Epoch)
		if !isFile(filepath.Join(cp, modelFile)) || !isFile(filepath.Join(cp, optimizerFile)) {
			break
		}
		last = e.Epoch
	}
	return last
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// lock takes the zoo directory for this process (see internal/dirlock).
func lock(dir string) (unlock func(), err error) {
	if unlock, err = dirlock.Lock(dir, "trained"); err != nil {
		return nil, fmt.Errorf("zoo: %w", err)
	}
	return unlock, nil
}

// Merge writes to dst, a new directory, the union of the given zoos: shards
// of one grid, or zoos trained alike on different grids. It refuses zoos
// trained differently (dataset, architecture, split, batch, epochs), an
// unfinished model, and a model present twice. Files are hard-linked where
// the file system allows, copied (atomically) otherwise.
func Merge(dst string, srcs ...string) error {
	if len(srcs) == 0 {
		return errors.New("zoo: merge: no zoo to merge")
	}
	// zoo.json is written last: a directory without it is at most a merge
	// that was interrupted, and is merged into again.
	if isFile(filepath.Join(dst, configFile)) {
		return fmt.Errorf("zoo: merge: %s is a zoo already; merge into a new directory", dst)
	}
	var zoos []*Zoo
	from := map[string]string{}
	for _, src := range srcs {
		z, err := Open(src)
		if err != nil {
			return err
		}
		if len(zoos) > 0 {
			first := zoos[0]
			if d := first.Config.sameTraining(&z.Config); d != "" {
				return fmt.Errorf("zoo: merge: %s and %s were trained differently (%s)", first.Dir, src, d)
			}
			if first.Config.Epochs != z.Config.Epochs {
				return fmt.Errorf("zoo: merge: %s has %d epochs, %s %d", first.Dir, first.Config.Epochs, src, z.Config.Epochs)
			}
		}
		for _, m := range z.Models {
			if prev, ok := from[m.ID]; ok {
				return fmt.Errorf("zoo: merge: model %s is in both %s and %s", m.ID, prev, src)
			}
			from[m.ID] = src
			if got := done(src, m.ID, m.Epochs); got < z.Config.Epochs {
				return fmt.Errorf("zoo: merge: %s is unfinished: model %s has %d of %d epochs (rerun its training command)", src, m.ID, max(got, 0), z.Config.Epochs)
			}
		}
		zoos = append(zoos, z)
	}
	cfg := zoos[0].Config
	cfg.Shard, cfg.Models = "", nil
	for i, z := range zoos {
		if i > 0 {
			cfg.Grid = unionGrid(cfg.Grid, z.Config.Grid)
		}
		for _, m := range z.Models {
			cfg.Models = append(cfg.Models, m.ID)
			if err := copyTree(modelDir(z.Dir, m.ID), modelDir(dst, m.ID)); err != nil {
				return err
			}
		}
	}
	slices.Sort(cfg.Models)
	return writeJSON(filepath.Join(dst, configFile), cfg)
}

// unionGrid merges two grids list by list, keeping a's order and adding
// b's new values.
func unionGrid(a, b Grid) Grid {
	a.Activation = union(a.Activation, b.Activation)
	a.Init = union(a.Init, b.Init)
	a.Optimizer = union(a.Optimizer, b.Optimizer)
	a.LR = union(a.LR, b.LR)
	a.WeightDecay = union(a.WeightDecay, b.WeightDecay)
	a.Momentum = union(a.Momentum, b.Momentum)
	a.Dropout = union(a.Dropout, b.Dropout)
	a.Seeds = union(a.Seeds, b.Seeds)
	return a
}

func union[S ~[]E, E comparable](a, b S) S {
	out := slices.Clone(a)
	for _, v := range b {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// copyTree recreates the files under src at dst, hard links where possible;
// temporary files of interrupted writes are skipped.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if strings.HasPrefix(d.Name(), ".") || !d.Type().IsRegular() {
			return nil
		}
		if os.Link(path, target) == nil {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return atomicfile.WriteBytes(target, data)
	})
}

package zoo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/runtime"
)

// smallJob is a zoo that trains in about a second: 4 models in two
// populations (with and without dropout), 3 epochs of 256 images.
func smallJob() Job {
	return Job{Dataset: "mnist", Architecture: "cnn-s", Epochs: 3, TrainSamples: 256, TestSamples: 200, Workers: 2,
		Grid: Grid{Activation: []string{"relu"}, LR: []float64{1e-3, 3e-3}, Dropout: []float64{0, 0.25}, Seeds: Seeds{0}}}
}

func needMNIST(t *testing.T) {
	t.Helper()
	if _, err := dataset.Load("mnist", "test"); err != nil {
		t.Skip(err)
	}
}

func TestTrain(t *testing.T) {
	needMNIST(t)
	dir := t.TempDir()
	job := smallJob()
	var timing Timing
	job.Timing = &timing
	if err := Train(context.Background(), dir, job); err != nil {
		t.Fatal(err)
	}
	if timing.Graphs <= 0 || timing.Training <= 0 || timing.Scoring <= 0 || timing.Checkpoints <= 0 {
		t.Errorf("timing of a whole run: %+v, want every part positive", timing)
	}
	z, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(z.Models) != 4 || z.Config.Parameters != 2464 || z.Config.TrainSamples != 256 || z.Config.Epochs != 3 {
		t.Fatalf("zoo.json: %+v", z.Config)
	}
	test, err := dataset.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	test = test.Slice(0, 200)
	for _, m := range z.Models {
		if len(m.Epochs) != 4 || m.Epochs[0].TrainLoss != nil || m.Final().TrainLoss == nil {
			t.Fatalf("%s: epochs %+v", m.ID, m.Epochs)
		}
		if m.Final().TestLoss >= m.Epochs[0].TestLoss {
			t.Errorf("%s: test loss %.3f after training, %.3f before", m.ID, m.Final().TestLoss, m.Epochs[0].TestLoss)
		}
		// The metrics in result.jsonl are what ORT finds on the exported
		// checkpoint, a separate path through Conv, MaxPool and Gemm.
		for _, e := range []int{0, 3} {
			path := filepath.Join(CheckpointDir(dir, m.ID, e), modelFile)
			mod, err := onnx.Read(path)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := mod.Marshal()
			res, err := runtime.Evaluate(context.Background(), raw, test, runtime.EvalOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Epochs[e]; math.Abs(res.Accuracy-got.TestAccuracy) > 1e-9 || math.Abs(res.Loss-got.TestLoss) > 1e-4 {
				t.Errorf("%s epoch %d: result.jsonl says accuracy %.4f loss %.5f, the checkpoint scores %.4f %.5f",
					m.ID, e, got.TestAccuracy, got.TestLoss, res.Accuracy, res.Loss)
			}
		}
	}
	// A rerun of the finished job does nothing; more epochs continue.
	before := snapshot(t, dir)
	if err := Train(context.Background(), dir, job); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, dir); !sameCheckpoints(before, after) {
		t.Error("rerunning a finished job changed its checkpoints")
	}
	if timing.Total() != 0 {
		t.Errorf("timing of a rerun with nothing to do: %+v", timing)
	}
	job.Epochs = 4
	if err := Train(context.Background(), dir, job); err != nil {
		t.Fatal(err)
	}
	if timing.Training <= 0 || timing.Scoring <= 0 || timing.Checkpoints <= 0 {
		t.Errorf("timing of a resumed run: %+v, want training, scoring and checkpoints", timing)
	}
	if z, _ := Open(dir); len(z.Models[0].Epochs) != 5 || z.Config.Epochs != 4 {
		t.Errorf("after training on to 4 epochs: %d epochs, zoo.json says %d", len(z.Models[0].Epochs), z.Config.Epochs)
	}
}

func TestTrainRefusesOtherJob(t *testing.T) {
	needMNIST(t)
	dir := t.TempDir()
	job := smallJob()
	job.Epochs = 1
	if err := Train(context.Background(), dir, job); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Job){
		"batch":  func(j *Job) { j.Batch = 16 },
		"grid":   func(j *Job) { j.Grid.Seeds = Seeds{0, 1} },
		"shard":  func(j *Job) { j.Shard, j.Shards = 0, 2 },
		"arch":   func(j *Job) { j.Architecture = "mlp" },
		"subset": func(j *Job) { j.SplitSeed = 5 },
	} {
		j := smallJob()
		j.Epochs = 1
		change(&j)
		if err := Train(context.Background(), dir, j); err == nil || !strings.Contains(err.Error(), "another directory") {
			t.Errorf("%s changed: %v", name, err)
		}
	}
}

// snapshot reads every file of a zoo.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel == lockFile {
			return nil
		}
		files[rel], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// sameCheckpoints compares two zoos' checkpoints byte for byte and their
// results but for the seconds.
func sameCheckpoints(a, b map[string][]byte) bool { return diffZoos(a, b) == "" }

// diffZoos names a file in which two zoos differ, or returns "".
func diffZoos(a, b map[string][]byte) string {
	for name := range b {
		if _, ok := a[name]; !ok {
			return name + " (only in the second)"
		}
	}
	for name, x := range a {
		y, ok := b[name]
		switch {
		case !ok:
			return name + " (only in the first)"
		case strings.HasSuffix(name, resultFile):
			if !slices.Equal(withoutSeconds(x), withoutSeconds(y)) {
				return name
			}
		case !bytes.Equal(x, y):
			return name
		}
	}
	return ""
}

func withoutSeconds(jsonl []byte) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(jsonl)), "\n") {
		var e Epoch
		if json.Unmarshal([]byte(line), &e) != nil {
			return nil
		}
		e.Seconds = 0
		b, _ := json.Marshal(e)
		out = append(out, string(b))
	}
	return out
}

// TestResumeAfterCancel stops a run in the middle of epoch 2 and resumes
// it: every checkpoint must be the bytes of an uninterrupted run.
func TestResumeAfterCancel(t *testing.T) {
	needMNIST(t)
	ref := t.TempDir()
	if err := Train(context.Background(), ref, smallJob()); err != nil {
		t.Fatal(err)
	}
	for _, at := range []float64{0.1, 0.45, 0.6, 0.95} {
		dir := t.TempDir()
		job := smallJob()
		ctx, cancel := context.WithCancel(context.Background())
		job.Progress = func(done, total int64) {
			if float64(done) >= at*float64(total) {
				cancel()
			}
		}
		if err := Train(ctx, dir, job); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled at %.0f%%: %v", 100*at, err)
		}
		if err := Train(context.Background(), dir, smallJob()); err != nil {
			t.Fatal(err)
		}
		if !sameCheckpoints(snapshot(t, ref), snapshot(t, dir)) {
			t.Errorf("cancelled at %.0f%% and resumed: the zoo differs from an uninterrupted run", 100*at)
		}
	}
}

// TestHelperTrain is not a test: TestResumeAfterKill runs the test binary
// with it to have a training process to kill.
func TestHelperTrain(t *testing.T) {
	dir := os.Getenv("ZOO_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestResumeAfterKill")
	}
	if err := Train(context.Background(), dir, smallJob()); err != nil {
		t.Fatal(err)
	}
}

// TestResumeAfterKill kills a training process (SIGKILL, no chance to
// clean up) at several moments and resumes each time; the zoo must end
// byte for byte as an uninterrupted run's.
func TestResumeAfterKill(t *testing.T) {
	needMNIST(t)
	ref := t.TempDir()
	if err := Train(context.Background(), ref, smallJob()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	id := smallJob().Grid
	ids, _ := id.Models()
	// Kill once the first checkpoint of epoch 1, then of epoch 2, appears:
	// other models of the run are then mid-epoch or mid-write.
	var kills atomic.Int32
	for _, e := range []int{1, 2} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTrain$")
		cmd.Env = append(os.Environ(), "ZOO_HELPER_DIR="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		mark := filepath.Join(CheckpointDir(dir, ids[len(ids)-1].ID(), e), modelFile)
		deadline := time.Now().Add(60 * time.Second)
		for !isFile(mark) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if cmd.Process.Kill() == nil {
			kills.Add(1)
		}
		cmd.Wait()
	}
	if kills.Load() == 0 {
		t.Log("the process finished before it could be killed")
	}
	if err := Train(context.Background(), dir, smallJob()); err != nil {
		t.Fatal(err)
	}
	if d := diffZoos(snapshot(t, ref), snapshot(t, dir)); d != "" {
		t.Errorf("killed and resumed: the zoo differs from an uninterrupted run in %s", d)
	}
}

func TestMerge(t *testing.T) {
	needMNIST(t)
	job := smallJob()
	job.Epochs = 1
	whole, a, b := t.TempDir(), t.TempDir(), t.TempDir()
	if err := Train(context.Background(), whole, job); err != nil {
		t.Fatal(err)
	}
	for i, dir := range []string{a, b} {
		j := job
		j.Shard, j.Shards = i, 2
		if err := Train(context.Background(), dir, j); err != nil {
			t.Fatal(err)
		}
	}
	merged := filepath.Join(t.TempDir(), "merged")
	if err := Merge(merged, a, b); err != nil {
		t.Fatal(err)
	}
	// Shards train the same models as the whole grid, to the bit.
	wantFiles, gotFiles := snapshot(t, whole), snapshot(t, merged)
	delete(wantFiles, configFile)
	delete(gotFiles, configFile)
	if d := diffZoos(wantFiles, gotFiles); d != "" {
		t.Errorf("merged shards differ from the zoo trained whole in %s", d)
	}
	z, err := Open(merged)
	if err != nil || len(z.Models) != 4 || z.Config.Shard != "" {
		t.Fatalf("merged zoo: %v %+v", err, z)
	}
	for name, srcs := range map[string][]string{
		"twice":       {a, a},
		"not a zoo":   {a, t.TempDir()},
		"other batch": {a, trainOther(t, func(j *Job) { j.Batch = 16 })},
	} {
		if err := Merge(filepath.Join(t.TempDir(), "m"), srcs...); err == nil {
			t.Errorf("merge %s succeeded", name)
		}
	}
	if err := Merge(merged, a); err == nil {
		t.Error("merge into an existing zoo succeeded")
	}
}

func trainOther(t *testing.T, change func(*Job)) string {
	dir := t.TempDir()
	job := smallJob()
	job.Epochs = 1
	job.Grid.Seeds = Seeds{7}
	change(&job)
	if err := Train(context.Background(), dir, job); err != nil {
		t.Fatal(err)
	}
	return dir
}

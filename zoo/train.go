package zoo

import (
	"github.com/hyperrep/hyperrep/internal/atomicfile"

	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/runtime"
)

// Job is a zoo to train: the data, the architecture, the grid, and how.
type Job struct {
	Dataset      string // "mnist", "fashion-mnist" or "idx:DIR"
	Architecture string // one of Architectures
	Grid         Grid
	Epochs       int
	Batch        int   // samples per step and model; 0 means 32
	TrainSamples int   // 0 means the whole training set
	TestSamples  int   // 0 means the whole test set
	SplitSeed    int64 // draws the TrainSamples
	// Shard and Shards select the Shard-th (0-based) of Shards contiguous,
	// near-equal blocks of the grid's models; Shards 0 means all models.
	Shard, Shards int
	// Workers is the number of populations trained at once, each in its
	// own single-threaded ORT session; 0 means one per CPU.
	Workers int
	// Population is the most models one graph trains; 0 means
	// DefaultPopulation. Populations are also split so that every worker
	// has one.
	Population int
	// Progress, if set, is called after every step with the model-samples
	// trained so far and in all (those done before a resume excluded);
	// calls come from the workers' goroutines, one at a time.
	Progress func(done, total int64)
	// Timing, if set, is filled when Train returns with where the workers
	// spent their time.
	Timing *Timing
}

// Timing is where the workers of a Train call spent their time, summed
// over the workers. Scoring every model on the test images before
// training and after each epoch can cost a quarter of a small zoo's time;
// TestSamples trades it against the precision of the test metrics.
type Timing struct {
	Graphs      time.Duration // building and loading the populations' graphs
	Training    time.Duration // training steps, the filling of their batches included
	Scoring     time.Duration // scoring the models on the test images
	Checkpoints time.Duration // drawing initial weights, writing checkpoints and results, reading them to resume
}

// Total is the sum of the parts.
func (t Timing) Total() time.Duration { return t.Graphs + t.Training + t.Scoring + t.Checkpoints }

// DefaultPopulation is the largest population a graph holds by default.
// On these 2-core machines, with one graph per core, cnn-s trained at
// about the same speed per model with 2 to 4 models per graph, 9 % slower
// with 1 and 20 % slower with 8, as a step's tensors outgrow the cache
// (BenchmarkLayoutParallel); 2 is the smallest population whose results
// do not depend on its size (see chunk).
const DefaultPopulation = 2

// Train trains the job's models into dir, a zoo directory, resuming where a
// previous run of the same job stopped: every model continues from its
// last complete checkpoint, and since data order, dropout and optimiser
// state are functions of the seed, the epoch and the checkpoint, the
// result is the same as an uninterrupted run. Cancelling ctx stops the
// training between steps; what was finished stays.
func Train(ctx context.Context, dir string, job Job) error {
	if job.Batch == 0 {
		job.Batch = 32
	}
	if job.Population == 0 {
		job.Population = DefaultPopulation
	}
	if job.Workers == 0 {
		job.Workers = goruntime.NumCPU()
	}
	switch {
	case job.Epochs < 1:
		return fmt.Errorf("zoo: %d epochs: want 1 or more", job.Epochs)
	case job.Batch < 1 || job.TrainSamples < 0 || job.TestSamples < 0 || job.Population < 1 || job.Workers < 1:
		return fmt.Errorf("zoo: batch %d, train samples %d, test samples %d, population %d, workers %d: want positive sizes",
			job.Batch, job.TrainSamples, job.TestSamples, job.Population, job.Workers)
	case job.Shards < 0 || job.Shards > 0 && (job.Shard < 0 || job.Shard >= job.Shards):
		return fmt.Errorf("zoo: shard %d of %d: want 0 <= shard < shards", job.Shard, job.Shards)
	}
	models, err := job.Grid.Models()
	if err != nil {
		return err
	}
	if job.Shards > 0 {
		models = models[job.Shard*len(models)/job.Shards : (job.Shard+1)*len(models)/job.Shards]
		if len(models) == 0 {
			return fmt.Errorf("zoo: shard %d of %d holds none of the grid's models", job.Shard, job.Shards)
		}
	}
	train, test, err := openDataset(job.Dataset, job.TrainSamples, job.TestSamples, job.SplitSeed)
	if err != nil {
		return err
	}
	arch, err := NewArch(job.Architecture, train.C, train.H, train.W, train.Classes)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("zoo: %w", err)
	}
	unlock, err := lock(dir)
	if err != nil {
		return err
	}
	defer unlock()
	r := &run{dir: dir, job: job, arch: arch, train: train, test: test}
	if err := r.prepare(models); err != nil {
		return err
	}
	err = r.trainAll(ctx)
	if job.Timing != nil {
		*job.Timing = r.timing()
	}
	return err
}

// openDataset is dataset.Open with the two splits decoded at once, which
// takes a tenth of a second off every run's start, keeping trainSamples
// training samples drawn as dataset.Subset draws them with seed and the
// first testSamples test samples (0: all); only those are scaled to
// floats.
func openDataset(name string, trainSamples, testSamples int, seed int64) (train, test *dataset.Set, err error) {
	var trainPick, testPick dataset.Pick
	if trainSamples > 0 {
		// As Subset, but a sample count of the whole set or more keeps
		// its order.
		trainPick = func(n int) []int {
			if trainSamples < n {
				return dataset.Drawn(trainSamples, seed)(n)
			}
			return dataset.First(n)(n)
		}
	}
	if testSamples > 0 {
		testPick = dataset.First(testSamples)
	}
	var testErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		test, testErr = dataset.LoadPick(name, "test", testPick)
	}()
	train, err = dataset.LoadPick(name, "train", trainPick)
	wg.Wait()
	if err == nil {
		err = testErr
	}
	if err != nil {
		return nil, nil, err
	}
	// As dataset.Open: a custom dataset may lack its last classes in one
	// split, and the model needs outputs for all.
	c := max(train.Classes, test.Classes)
	train.Classes, test.Classes = c, c
	return train, test, nil
}

// run is one call of Train.
type run struct {
	dir         string
	job         Job
	arch        *Arch
	train, test *dataset.Set
	models      []*member
	done, total atomic.Int64
	spent       [stages]atomic.Int64 // nanoseconds per stage, over all workers
	progress    sync.Mutex           // serialises calls of job.Progress
}

// report adds n model-samples to the progress and tells job.Progress.
func (r *run) report(n int64) {
	r.progress.Lock()
	defer r.progress.Unlock()
	done := r.done.Add(n)
	if r.job.Progress != nil {
		r.job.Progress(done, r.total.Load())
	}
}

// stage is a part of Timing.
type stage int

const (
	stageGraphs stage = iota
	stageTraining
	stageScoring
	stageCheckpoints
	stages
)

// spend adds the time since t0 to stage k and returns the time now.
func (r *run) spend(k stage, t0 time.Time) time.Time {
	now := time.Now()
	r.spent[k].Add(int64(now.Sub(t0)))
	return now
}

// timing returns the time spent so far.
func (r *run) timing() Timing {
	d := func(k stage) time.Duration { return time.Duration(r.spent[k].Load()) }
	return Timing{Graphs: d(stageGraphs), Training: d(stageTraining), Scoring: d(stageScoring), Checkpoints: d(stageCheckpoints)}
}

// member is a model being trained: its hyperparameters and results.
type member struct {
	hyper  Hyper
	id     string
	epochs []Epoch // complete epochs, 0 first
}

// prepare writes or checks zoo.json, writes each model's params.json and
// finds how far each model got.
func (r *run) prepare(models []Hyper) error {
	job := r.job
	cfg := Config{Format: FormatVersion, Dataset: job.Dataset, Architecture: r.arch.Name,
		Input: [3]int{r.arch.C, r.arch.H, r.arch.W}, Classes: r.arch.Classes, Parameters: r.arch.NumParams(),
		Grid: job.Grid.withDefaults(), TrainSamples: r.train.N, TestSamples: r.test.N, SplitSeed: job.SplitSeed,
		Epochs: job.Epochs, Batch: job.Batch}
	if job.Shards > 0 {
		cfg.Shard = fmt.Sprintf("%d/%d", job.Shard, job.Shards)
	}
	for _, h := range models {
		cfg.Models = append(cfg.Models, h.ID())
	}
	if old, err := readConfig(r.dir); err == nil {
		if d := old.sameTraining(&cfg); d != "" {
			return fmt.Errorf("zoo: %s holds a zoo trained differently (%s); train into another directory", r.dir, d)
		}
		if !slices.Equal(old.Models, cfg.Models) || old.Shard != cfg.Shard {
			return fmt.Errorf("zoo: %s holds a zoo of other models (another grid or shard); train into another directory", r.dir)
		}
	} else if !errors.Is(err, ErrNotZoo) {
		return err
	}
	if err := os.MkdirAll(filepath.Join(r.dir, modelsDir), 0o755); err != nil {
		return fmt.Errorf("zoo: %w", err)
	}
	atomicfile.RemoveTemps(r.dir)
	if err := writeJSON(filepath.Join(r.dir, configFile), cfg); err != nil {
		return err
	}
	steps := int64((r.train.N + job.Batch - 1) / job.Batch)
	for _, h := range models {
		m := &member{hyper: h, id: h.ID()}
		md := modelDir(r.dir, m.id)
		if err := os.MkdirAll(md, 0o755); err != nil {
			return fmt.Errorf("zoo: %w", err)
		}
		p := Params{ID: m.id, Hyper: h, Architecture: r.arch.Name, Dataset: job.Dataset, Parameters: r.arch.NumParams()}
		if err := writeJSON(filepath.Join(md, paramsFile), p); err != nil {
			return err
		}
		epochs, err := readResults(r.dir, m.id)
		if err != nil {
			return err
		}
		m.epochs = epochs[:done(r.dir, m.id, epochs)+1]
		r.models = append(r.models, m)
	}
	for _, c := range r.plan() {
		from := max(c.start(), 0)
		r.total.Add(int64(len(c.members)) * int64(job.Epochs-from) * steps * int64(job.Batch))
	}
	return nil
}

// chunk is the models trained together in one graph. A model alone is
// trained in a population of two, with a copy of itself whose results are
// dropped: a graph of one model sums some gradients in another order than
// any larger population (TestPopulationBitwise), and a model must train to
// the same bits whichever shard, worker count or population size put it
// alone.
type chunk struct {
	spec    popSpec   // spec.models is the population's size
	members []*member // the models, as many or one fewer
}

// slot is the model in slot p of the population.
func (c *chunk) slot(p int) *member { return c.members[min(p, len(c.members)-1)] }

// start is the last epoch all members completed (-1: not even the initial
// checkpoint); the chunk trains on from there.
func (c *chunk) start() int {
	s := len(c.members[0].epochs) - 1
	for _, m := range c.members {
		s = min(s, len(m.epochs)-1)
	}
	return s
}

// plan groups the models into populations: models sharing activation,
// optimiser and the use of dropout, in grid order, cut into near-equal
// chunks of at most Population models, cut further while there are fewer
// chunks than workers, but never below two models (see chunk).
func (r *run) plan() []*chunk {
	type key struct {
		act, opt string
		dropout  bool
	}
	var keys []key
	groups := map[key][]*member{}
	for _, m := range r.models {
		k := key{m.hyper.Activation, m.hyper.Optimizer, m.hyper.Dropout > 0}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], m)
	}
	var parts [][]*member
	for _, k := range keys {
		parts = append(parts, split(groups[k], (len(groups[k])+r.job.Population-1)/r.job.Population)...)
	}
	for len(parts) < r.job.Workers {
		i := 0 // the largest part
		for j := range parts {
			if len(parts[j]) > len(parts[i]) {
				i = j
			}
		}
		if len(parts[i]) < 4 {
			break
		}
		parts = slices.Replace(parts, i, i+1, split(parts[i], 2)...)
	}
	var out []*chunk
	for _, p := range parts {
		h := p[0].hyper
		out = append(out, &chunk{members: p, spec: popSpec{arch: r.arch, act: h.Activation, models: max(len(p), 2),
			batch: r.job.Batch, dropout: h.Dropout > 0, opt: h.Optimizer, layout: layoutPhase}})
	}
	return out
}

// split cuts s into n near-equal consecutive parts.
func split[T any](s []T, n int) [][]T {
	var out [][]T
	for i := range n {
		out = append(out, s[i*len(s)/n:(i+1)*len(s)/n])
	}
	return out
}

// trainAll trains every chunk, Workers at a time.
func (r *run) trainAll(ctx context.Context) error {
	chunks := r.plan()
	queue := make(chan *chunk, len(chunks))
	for _, c := range chunks {
		if c.start() < r.job.Epochs {
			queue <- c
		}
	}
	close(queue)
	// A worker that fails stops the others; their errors are then
	// cancellations, and the first real error is the run's.
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	// Each worker keeps to one thread and Go keeps a P spare (see
	// runtime.RunWorkers): 10 % on the bench job, with the same results.
	errs := make([]error, r.job.Workers)
	runtime.RunWorkers(r.job.Workers, func(w int) {
		wk := &worker{run: r, sessions: map[popSpec]*session{}}
		defer wk.close()
		for c := range queue {
			if err := wk.train(inner, c); err != nil {
				errs[w] = err
				cancel()
				return
			}
		}
	})
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return ctx.Err()
}

// worker trains chunks one after the other, keeping the sessions it made.
type worker struct {
	run      *run
	sessions map[popSpec]*session
}

// session is a population's training and evaluation graphs, loaded.
type session struct {
	step *stepper
	eval *evaluator
}

func (w *worker) close() {
	for _, s := range w.sessions {
		s.step.Close()
		s.eval.Close()
	}
}

func (w *worker) session(spec popSpec) (*session, error) {
	if s, ok := w.sessions[spec]; ok {
		return s, nil
	}
	opts := runtime.Options{Threads: 1}
	st, err := newStepper(spec, opts)
	if err != nil {
		return nil, err
	}
	ev, err := newEvaluator(spec, min(evalBatch, w.run.test.N), opts)
	if err != nil {
		st.Close()
		return nil, err
	}
	s := &session{step: st, eval: ev}
	w.sessions[spec] = s
	return s, nil
}

// evalBatch is the number of test images per evaluation run.
const evalBatch = 64

// train trains one chunk from its last complete epoch to the job's last.
func (w *worker) train(ctx context.Context, c *chunk) error {
	r := w.run
	t := time.Now()
	s, err := w.session(c.spec)
	if err != nil {
		return err
	}
	t = r.spend(stageGraphs, t)
	start := c.start()
	if start < 0 {
		if err := w.begin(s, c); err != nil {
			return err
		}
		start = 0
	} else {
		err := w.load(s, c, start)
		r.spend(stageCheckpoints, t)
		if err != nil {
			return err
		}
	}
	for e := start + 1; e <= r.job.Epochs; e++ {
		t0 := time.Now()
		trainLoss, trainAcc, err := w.epoch(ctx, s.step, c, e)
		t = r.spend(stageTraining, t0)
		if err != nil {
			return err
		}
		testLoss, testAcc, err := s.eval.evaluate(s.step.currentWeights(), r.test)
		t = r.spend(stageScoring, t)
		if err != nil {
			return err
		}
		secs := t.Sub(t0).Seconds()
		for p, m := range c.members {
			m.epochs = append(m.epochs[:e], Epoch{Epoch: e, TrainLoss: &trainLoss[p], TrainAccuracy: &trainAcc[p],
				TestLoss: testLoss[p], TestAccuracy: testAcc[p], Seconds: secs})
		}
		err = w.save(s, c, e)
		r.spend(stageCheckpoints, t)
		if err != nil {
			return err
		}
	}
	return nil
}

// begin draws the members' initial weights, zeroes the optimiser state,
// scores the initial weights and saves them as epoch 0.
func (w *worker) begin(s *session, c *chunk) error {
	r := w.run
	t := time.Now()
	n := r.arch.NumParams()
	flat := s.step.currentWeights().Float32s()
	for p := range c.spec.models {
		m := c.slot(p)
		ws, err := initWeights(r.arch, m.hyper.Init, m.hyper.Seed)
		if err != nil {
			return err
		}
		dst := flat[p*n : (p+1)*n]
		for _, t := range ws {
			dst = dst[copy(dst, t):]
		}
	}
	for _, v := range s.step.currentState() {
		clear(v.Float32s())
	}
	t0 := r.spend(stageCheckpoints, t)
	loss, acc, err := s.eval.evaluate(s.step.currentWeights(), r.test)
	t = r.spend(stageScoring, t0)
	if err != nil {
		return err
	}
	for p, m := range c.members {
		m.epochs = []Epoch{{Epoch: 0, TestLoss: loss[p], TestAccuracy: acc[p], Seconds: t.Sub(t0).Seconds()}}
	}
	err = w.save(s, c, 0)
	r.spend(stageCheckpoints, t)
	return err
}

package runtime

import (
	"context"
	"fmt"
	"math"
	goruntime "runtime"
	"sync"

	"github.com/hyperrep/hyperrep/dataset"
	ort "github.com/yalue/onnxruntime_go"
)

// EvalOptions configure Evaluate.
type EvalOptions struct {
	// Options are the session's; here Threads zero means one thread per
	// CPU, since an evaluation usually has the machine to itself.
	Options
	// BatchSize is the number of samples per run for models whose batch
	// dimension is open; zero means 1000. A model with a fixed batch size
	// runs with that size.
	BatchSize int
	// Progress, if set, is called after each batch with the number of
	// samples done so far and the total, on the calling goroutine.
	Progress func(done, total int)
}

// Result is a classifier's score on a dataset.
type Result struct {
	Accuracy float64 // fraction of samples whose largest logit is at their label
	Loss     float64 // mean cross-entropy of softmax(logits) against the labels, in nats
	N        int     // samples scored
}

// Evaluate runs a classifier over every sample of set and scores its first
// output as logits. The model must have one float32 input shaped [N, C, H,
// W], [N, H, W] (one channel) or [N, C*H*W], where N may be open or fixed
// (a fixed N other than the set's size is met by padding the last batch
// with zeros and ignoring the padded rows), and its first output must be
// float32 [N, K] with K at least set.Classes. Cancelling ctx stops the run
// in progress.
func Evaluate(ctx context.Context, model []byte, set *dataset.Set, opts EvalOptions) (Result, error) {
	if set.N == 0 {
		return Result{}, fmt.Errorf("runtime: evaluating on %s/%s: the set has no samples", set.Name, set.Split)
	}
	s, err := newSession(model, opts.Options, goruntime.NumCPU())
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	e, err := newEvaluation(s, set, opts.BatchSize)
	if err != nil {
		return Result{}, err
	}
	return e.run(ctx, opts.Progress)
}

// evaluation is one pass of a model over a dataset, and how the model takes
// it: the shape of one sample as the model wants it, the batch size, and
// whether that size is the model's.
type evaluation struct {
	s       *Session
	set     *dataset.Set
	sample  []int64 // the input's dimensions after the batch
	batch   int
	fixed   bool
	classes int64 // the output's second dimension, -1 if open
	ro      *ort.RunOptions
	score   score
}

func newEvaluation(s *Session, set *dataset.Set, batchSize int) (*evaluation, error) {
	if len(s.inputs) != 1 || s.inputs[0].DType != Float32 {
		return nil, fmt.Errorf("runtime: model inputs %v: want one float32 input of images", s.inputs)
	}
	in, out := s.inputs[0], s.outputs[0]
	e := &evaluation{s: s, set: set, sample: sampleShape(in.Shape, set)}
	if e.sample == nil {
		return nil, fmt.Errorf("runtime: model input %q has shape %s, which cannot take %s samples of %dx%dx%d",
			in.Name, shapeString(in.Shape), set.Name, set.C, set.H, set.W)
	}
	// An output declared without a shape is checked when it runs.
	matrix := len(out.Shape) == 2
	if out.DType != Float32 || !matrix && !s.unknown[0] || matrix && out.Shape[1] >= 0 && out.Shape[1] < int64(set.Classes) {
		return nil, fmt.Errorf("runtime: model output %q is %s%s; want float32 [N K] logits with K >= the %d classes of %s",
			out.Name, out.DType, shapeString(out.Shape), set.Classes, set.Name)
	}
	e.classes = -1
	if matrix {
		e.classes = out.Shape[1]
	}
	switch {
	case in.Shape[0] > 0:
		e.batch, e.fixed = int(in.Shape[0]), true
	case batchSize > 0:
		e.batch = min(batchSize, set.N)
	default:
		e.batch = min(1000, set.N)
	}
	return e, nil
}

// sampleShape returns the dimensions after the batch that feed set's
// samples to an input declared as shape, or nil if none do.
func sampleShape(shape []int64, set *dataset.Set) []int64 {
	var want []int64
	switch len(shape) {
	case 2:
		want = []int64{int64(set.SampleSize())}
	case 3:
		if set.C != 1 {
			return nil
		}
		want = []int64{int64(set.H), int64(set.W)}
	case 4:
		want = []int64{int64(set.C), int64(set.H), int64(set.W)}
	default:
		return nil
	}
	if !fits(append([]int64{0}, want...), append([]int64{-1}, shape[1:]...)) {
		return nil
	}
	return want
}

func (e *evaluation) shape(batch int) ort.Shape {
	return append(ort.Shape{int64(batch)}, e.sample...)
}

// run feeds the set through the session in batches, reusing one input
// tensor (and one output tensor when the output's shape is known) for all
// full batches.
func (e *evaluation) run(ctx context.Context, progress func(int, int)) (Result, error) {
	var err error
	if e.ro, err = ort.NewRunOptions(); err != nil {
		return Result{}, fmt.Errorf("runtime: %s", oneLine(err))
	}
	var mu sync.Mutex // keeps Terminate from racing with Destroy
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if e.ro != nil {
			e.ro.Terminate()
		}
	})
	defer func() {
		stop()
		mu.Lock()
		e.ro.Destroy()
		e.ro = nil
		mu.Unlock()
	}()

	d, total := e.set.SampleSize(), e.set.N
	buf := make([]float32, e.batch*d)
	full, err := e.buffers(e.batch, buf)
	if err != nil {
		return Result{}, err
	}
	defer full.destroy()
	for i := 0; i < total; i += e.batch {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		n := min(e.batch, total-i)
		copy(buf, e.set.Images[i*d:(i+n)*d])
		bufs := full
		if n < e.batch && e.fixed {
			clear(buf[n*d:])
		} else if n < e.batch {
			if bufs, err = e.buffers(n, buf[:n*d]); err != nil {
				return Result{}, err
			}
			defer bufs.destroy()
		}
		if err := e.runBatch(ctx, bufs, i, n); err != nil {
			return Result{}, err
		}
		if progress != nil {
			progress(i+n, total)
		}
	}
	return e.score.result(), nil
}

// buffers are the ORT values for one batch size: the input over a Go slice
// and, when the number of classes is known, a preallocated output.
type buffers struct {
	in  *ort.Tensor[float32]
	out *ort.Tensor[float32] // nil: ORT allocates the output
}

func (e *evaluation) buffers(batch int, buf []float32) (*buffers, error) {
	in, err := ort.NewTensor(e.shape(batch), buf)
	if err != nil {
		return nil, fmt.Errorf("runtime: input tensor: %s", oneLine(err))
	}
	b := &buffers{in: in}
	if e.classes > 0 {
		if b.out, err = ort.NewEmptyTensor[float32](ort.Shape{int64(batch), e.classes}); err != nil {
			b.destroy()
			return nil, fmt.Errorf("runtime: output tensor: %s", oneLine(err))
		}
	}
	return b, nil
}

func (b *buffers) destroy() {
	b.in.Destroy()
	if b.out != nil {
		b.out.Destroy()
	}
}

// runBatch runs one batch whose first n rows are samples i..i+n-1 and adds
// their scores. Outputs other than the first are dropped.
func (e *evaluation) runBatch(ctx context.Context, b *buffers, i, n int) error {
	s, set := e.s, e.set
	// The other outputs still need what Run gives them: a model may also
	// output, say, a scalar loss.
	var first ort.Value
	if b.out != nil {
		first = b.out
	}
	outs, err := s.run([]ort.Value{b.in}, first, e.ro)
	if b.out == nil {
		defer destroy(outs)
	} else {
		defer destroy(outs[1:])
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("runtime: evaluating samples %d to %d: %s", i, i+n-1, oneLine(err))
	}
	logits, ok := outs[0].(*ort.Tensor[float32])
	shape := outs[0].GetShape()
	rows := b.in.GetShape()[0]
	if !ok || len(shape) != 2 || shape[0] != rows || shape[1] < int64(set.Classes) {
		return fmt.Errorf("runtime: model output %q has shape %v for a batch of %d; want [%d K] logits with K >= %d",
			s.outputs[0].Name, shape, rows, rows, set.Classes)
	}
	k := int(shape[1])
	e.score.add(logits.GetData()[:n*k], k, set.Labels[i:i+n])
	return nil
}

// score accumulates accuracy and cross-entropy.
type score struct {
	correct int
	loss    float64
	n       int
}

// add scores rows of k logits. The loss is log-sum-exp minus the label's
// logit, with the row's maximum subtracted inside the exponentials so that
// large logits cannot overflow them.
func (sc *score) add(logits []float32, k int, labels []uint8) {
	for r, label := range labels {
		row := logits[r*k : (r+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		m := float64(row[best])
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v) - m)
		}
		sc.loss += m + math.Log(sum) - float64(row[label])
		if best == int(label) {
			sc.correct++
		}
	}
	sc.n += len(labels)
}

func (sc *score) result() Result {
	return Result{
		Accuracy: float64(sc.correct) / float64(sc.n),
		Loss:     sc.loss / float64(sc.n),
		N:        sc.n,
	}
}

package zoo

import (
	"context"
	"math"

	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/runtime"
)

// dataOrder is the order in which a model sees the n training samples in
// an epoch: a function of its seed and the epoch alone, so that a resumed
// run repeats it.
func dataOrder(seed int64, epoch, n int) []int {
	return stream(seed, streamData, uint64(epoch), 0).Perm(n)
}

// epoch trains a chunk for one epoch (1-based e) and returns each model's
// mean training loss and accuracy over the epoch's samples.
func (w *worker) epoch(ctx context.Context, st *stepper, c *chunk, e int) (loss, acc []float64, err error) {
	r := w.run
	set, B, P := r.train, r.job.Batch, c.spec.models
	steps := (set.N + B - 1) / B
	orders := make([][]int, P)
	for p := range P {
		orders[p] = dataOrder(c.slot(p).hyper.Seed, e, set.N)
	}
	// Per-run inputs: the hyperparameters.
	lr, wd := st.input("lr").Float32s(), st.input("weight_decay").Float32s()
	for p := range P {
		m := c.slot(p)
		lr[p], wd[p] = float32(m.hyper.LR), float32(m.hyper.WeightDecay)
		if v := st.input("momentum"); v != nil {
			v.Float32s()[p] = float32(m.hyper.Momentum)
		}
	}
	images, labels, weights := st.input("images").Float32s(), st.input("labels").Int64s(), st.input("sample_weights").Float32s()
	var masks []maskFill
	if c.spec.dropout {
		for _, ms := range c.spec.maskShapes(B) {
			masks = append(masks, maskFill{data: st.input(ms.name).Float32s(), shape: ms.shape})
		}
	}
	loss, acc = make([]float64, P), make([]float64, P)
	for s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		lo, hi := s*B, min((s+1)*B, set.N)
		n := hi - lo
		fillBatch(images, labels, weights, set, orders, lo, hi, B, c.spec.arch.layers[0].k == 0)
		for p := range P {
			fillMasks(masks, c.slot(p).hyper, e, s, p, P, B)
		}
		if v := st.input("step"); v != nil {
			v.Float32s()[0] = float32((e-1)*steps + s + 1)
		}
		if err := st.step(); err != nil {
			return nil, nil, err
		}
		ml, mc := st.loss.Float32s(), st.correct.Float32s()
		for p := range P {
			loss[p] += float64(ml[p]) * float64(n)
			acc[p] += float64(mc[p])
		}
		r.report(int64(len(c.members) * B))
	}
	for p := range loss {
		loss[p] /= float64(set.N)
		acc[p] /= float64(set.N)
	}
	return loss, acc, nil
}

// fillBatch puts samples [lo, hi) of each model's order into the step's
// inputs, zero-weighted padding after them up to B: images in the layout
// of imageInput (model-major for an MLP), labels and the weights 1/n of
// the n real samples, which make each model's loss its batch mean.
func fillBatch(images []float32, labels []int64, weights []float32, set *dataset.Set, orders [][]int, lo, hi, B int, mlp bool) {
	P, d, n := len(orders), set.SampleSize(), hi-lo
	for p := range P {
		for b := range B {
			off := (b*P + p) * d // [B, P·C, H, W]
			if mlp {
				off = (p*B + b) * d // [P, B, D]
			}
			dst := images[off : off+d]
			if b < n {
				i := orders[p][lo+b]
				copy(dst, set.Image(i))
				labels[p*B+b], weights[p*B+b] = int64(set.Labels[i]), 1/float32(n)
			} else {
				clear(dst)
				labels[p*B+b], weights[p*B+b] = 0, 0
			}
		}
	}
}

// maskFill is a dropout mask input: its memory and its shape, [B, P·O, h,
// w] after a convolution, [P, B, O] after a fully connected layer.
type maskFill struct {
	data  []float32
	shape []int64
}

// fillMasks draws model p's dropout masks for step s of epoch e: each unit
// kept with probability 1-rate and scaled by 1/(1-rate), from a stream of
// the seed, the epoch and the step, in an order (layer, sample, unit) that
// does not depend on the population, so that a model draws the same masks
// alone or with others. Each unit takes 32 random bits, two per draw of
// the stream: with a mask per unit per sample, drawing is a tenth of a
// training step's time, and float64 draws would double that.
func fillMasks(masks []maskFill, h Hyper, e, s, p, P, B int) {
	if len(masks) == 0 {
		return
	}
	r := stream(h.Seed, streamDropout, uint64(e), uint64(s))
	keep := float32(1 / (1 - h.Dropout))
	threshold := uint32(min(math.Round(h.Dropout*(1<<32)), math.MaxUint32))
	var bits uint64
	have := false
	next := func() uint32 { // the stream's 64-bit draws, low half first
		if have {
			have = false
			return uint32(bits >> 32)
		}
		bits, have = r.Uint64(), true
		return uint32(bits)
	}
	for _, m := range masks {
		var units, start, stride int
		if len(m.shape) == 3 { // [P, B, O]
			units = int(m.shape[2])
			start, stride = p*B*units, units
		} else { // [B, P·O, h, w]
			units = int(m.shape[1]*m.shape[2]*m.shape[3]) / P
			start, stride = p*units, P*units
		}
		for b := range B {
			row := m.data[start+b*stride : start+b*stride+units]
			for i := range row {
				if threshold == 0 || next() >= threshold {
					row[i] = keep
				} else {
					row[i] = 0
				}
			}
		}
	}
}

// evaluator scores a population on a dataset that every model sees. What
// the evaluation graph computes from the weights alone (their views, the
// phase and Toeplitz matrices, the NCHWc reorders) is a graph of its own,
// prep, run once per evaluate instead of once per batch (splitPrep).
type evaluator struct {
	spec     popSpec
	batch    int
	prep     *runtime.Session // weights -> prepared
	sess     *runtime.Session
	images   *runtime.Value   // [batch, D]
	labels   *runtime.Value   // [batch]
	wts      *runtime.Value   // [batch]
	prepared []*runtime.Value // prep's outputs, sess's inputs after wts
	loss     *runtime.Value   // [P]
	hits     *runtime.Value   // [P]
}

func newEvaluator(spec popSpec, batch int, opts runtime.Options) (*evaluator, error) {
	g, err := spec.evalGraph(batch)
	if err != nil {
		return nil, err
	}
	ev := &evaluator{spec: spec, batch: batch}
	var prepared []io
	ev.prep, prepared, err = g.splitPrep(opts)
	if err != nil {
		return nil, err
	}
	if ev.sess, err = g.load(opts, "evaluation"); err != nil {
		ev.Close()
		return nil, err
	}
	vals := []**runtime.Value{&ev.images, &ev.labels, &ev.wts}
	for i, v := range g.inputs[:3] {
		if *vals[i], err = runtime.NewValue(runtime.DType(v.dtype), v.shape); err != nil {
			ev.Close()
			return nil, err
		}
	}
	for _, v := range prepared {
		val, err := runtime.NewValue(runtime.DType(v.dtype), v.shape)
		if err != nil {
			ev.Close()
			return nil, err
		}
		ev.prepared = append(ev.prepared, val)
	}
	for i, v := range []**runtime.Value{&ev.loss, &ev.hits} {
		if *v, err = runtime.NewValue(runtime.DType(g.outputs[i].dtype), g.outputs[i].shape); err != nil {
			ev.Close()
			return nil, err
		}
	}
	return ev, nil
}

// prepare runs the weights' part of the evaluation graph on the flat
// weights [P, NumParams].
func (ev *evaluator) prepare(weights *runtime.Value) error {
	return ev.prep.RunValues([]*runtime.Value{weights}, ev.prepared)
}

// inputs are the evaluation session's inputs, the prepared weights last.
func (ev *evaluator) inputs() []*runtime.Value {
	return append([]*runtime.Value{ev.images, ev.labels, ev.wts}, ev.prepared...)
}

// evaluate returns each model's mean cross-entropy and accuracy on set,
// with the flat weights [P, NumParams] in weights.
func (ev *evaluator) evaluate(weights *runtime.Value, set *dataset.Set) (loss, acc []float64, err error) {
	P, d := ev.spec.models, set.SampleSize()
	if err := ev.prepare(weights); err != nil {
		return nil, nil, err
	}
	loss, acc = make([]float64, P), make([]float64, P)
	images, labels, wts := ev.images.Float32s(), ev.labels.Int64s(), ev.wts.Float32s()
	in := ev.inputs()
	for lo := 0; lo < set.N; lo += ev.batch {
		n := min(ev.batch, set.N-lo)
		copy(images, set.Images[lo*d:(lo+n)*d])
		clear(images[n*d:])
		for b := range ev.batch {
			labels[b], wts[b] = 0, 0
			if b < n {
				labels[b], wts[b] = int64(set.Labels[lo+b]), 1
			}
		}
		if err := ev.sess.RunValues(in, []*runtime.Value{ev.loss, ev.hits}); err != nil {
			return nil, nil, err
		}
		for p := range P {
			loss[p] += float64(ev.loss.Float32s()[p])
			acc[p] += float64(ev.hits.Float32s()[p])
		}
	}
	for p := range P {
		loss[p] /= float64(set.N)
		acc[p] /= float64(set.N)
	}
	return loss, acc, nil
}

// Close releases the session and the Values.
func (ev *evaluator) Close() error {
	for _, v := range append([]*runtime.Value{ev.images, ev.labels, ev.wts, ev.loss, ev.hits}, ev.prepared...) {
		if v != nil {
			v.Destroy()
		}
	}
	var err error
	for _, s := range []*runtime.Session{ev.prep, ev.sess} {
		if s != nil {
			if e := s.Close(); err == nil {
				err = e
			}
		}
	}
	return err
}

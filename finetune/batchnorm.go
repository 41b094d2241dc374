package finetune

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/runtime"
)

// bnBatch is the number of samples per run when recomputing BatchNorm
// statistics of a model whose batch dimension is open.
const bnBatch = 256

// RecomputeBatchNorm sets the running mean and variance of every
// BatchNormalization node of m to the statistics of its input over the
// samples of set, and returns the number of nodes it set. The model runs
// in eval mode, layer by layer in topological order, so that each layer's
// input is computed with the statistics already recomputed before it: the
// exported model then normalises each layer's input, over set, to zero
// mean and unit variance before scale and bias. The variance is the
// unbiased one (divided by count − 1), as PyTorch stores in running_var
// and uses in eval mode; the difference from the biased one is a factor
// of 1 + 1/count, count being samples times spatial positions.
//
// The statistics are written into the initializers in their own dtype.
// set must be non-empty; the model's input must take its samples as
// Evaluate's does.
func RecomputeBatchNorm(ctx context.Context, m *onnx.Model, set *dataset.Set, opts runtime.Options) (int, error) {
	g := m.Graph()
	ix, err := onnx.NewIndex(g)
	if err != nil {
		return 0, err
	}
	var bns []*pb.NodeProto
	for _, k := range ix.Order {
		if n := g.Node[k]; n.GetOpType() == "BatchNormalization" && n.GetDomain() == "" {
			bns = append(bns, n)
		}
	}
	if len(bns) == 0 {
		return 0, nil
	}
	if set.N == 0 {
		return 0, fmt.Errorf("finetune: recomputing batch norm statistics on %s/%s: the set has no samples", set.Name, set.Split)
	}
	sig, err := inspect(m, set)
	if err != nil {
		return 0, err
	}
	for _, n := range bns {
		if len(n.Input) != 5 || m.Initializer(n.Input[3]) == nil || m.Initializer(n.Input[4]) == nil {
			return 0, fmt.Errorf("%w: BatchNormalization %q: running mean and variance are not initializers", ErrUnsupported, n.GetName())
		}
		mean, variance, err := channelStats(ctx, m, sig, n.Input[0], set, opts)
		if err != nil {
			return 0, fmt.Errorf("finetune: BatchNormalization %q: %w", n.GetName(), err)
		}
		mt, vt := m.Initializer(n.Input[3]), m.Initializer(n.Input[4])
		if c, err := onnx.NumElements(mt.GetDims()); err != nil || c != int64(len(mean)) {
			return 0, fmt.Errorf("finetune: BatchNormalization %q: running mean %v for %d channels", n.GetName(), mt.GetDims(), len(mean))
		}
		if err := onnx.SetFloat64s(mt, mean); err != nil {
			return 0, err
		}
		if err := onnx.SetFloat64s(vt, variance); err != nil {
			return 0, err
		}
	}
	return len(bns), nil
}

// channelStats runs m over set with the value x as its output and returns
// the mean and unbiased variance of x [N, C, ...] per channel.
func channelStats(ctx context.Context, m *onnx.Model, sig signature, x string, set *dataset.Set, opts runtime.Options) (mean, variance []float64, err error) {
	probe := m.Clone()
	pg := probe.Graph()
	pg.Output = []*pb.ValueInfoProto{{Name: proto.String(x), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
		TensorType: &pb.TypeProto_Tensor{ElemType: proto.Int32(onnx.Float)}}}}}
	raw, err := probe.Marshal()
	if err != nil {
		return nil, nil, err
	}
	s, err := runtime.NewSession(raw, opts)
	if err != nil {
		return nil, nil, err
	}
	defer s.Close()
	batch := sig.fixedBatch
	if batch == 0 {
		batch = min(bnBatch, set.N)
	}
	d := set.SampleSize()
	buf := make([]float32, batch*d)
	var acc moments
	for lo := 0; lo < set.N; lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		n := min(batch, set.N-lo)
		b := n
		if sig.fixedBatch > 0 {
			b = batch // padded with zeros, whose rows are ignored
		}
		copy(buf, set.Images[lo*d:(lo+n)*d])
		clear(buf[n*d : b*d])
		out, err := s.Run(runtime.NewTensor(append([]int64{int64(b)}, sig.sample...), buf[:b*d]))
		if err != nil {
			return nil, nil, err
		}
		y := out[0]
		v, ok := y.Data.([]float32)
		if !ok || len(y.Shape) < 2 || y.Shape[0] != int64(b) {
			return nil, nil, fmt.Errorf("input is %s %v; want float32 [%d, C, ...]", y.DType, y.Shape, b)
		}
		acc.add(v, y.Shape, n)
	}
	mean, variance = acc.result()
	return mean, variance, nil
}

// moments accumulates per-channel count, mean and sum of squared
// deviations, batch by batch, in float64: each batch's are computed in two
// passes and merged by Chan et al.'s update, which loses no precision to
// large means as sums of squares would.
type moments struct {
	count      float64
	mean, m2   []float64
	bmean, bm2 []float64
}

// add adds the first n samples of x, shaped [N, C, ...].
func (a *moments) add(x []float32, shape []int64, n int) {
	c := int(shape[1])
	inner := 1
	for _, d := range shape[2:] {
		inner *= int(d)
	}
	if a.mean == nil {
		a.mean, a.m2 = make([]float64, c), make([]float64, c)
		a.bmean, a.bm2 = make([]float64, c), make([]float64, c)
	}
	clear(a.bmean)
	clear(a.bm2)
	for i := range n {
		for ch := range c {
			var s float64
			for _, v := range x[(i*c+ch)*inner : (i*c+ch+1)*inner] {
				s += float64(v)
			}
			a.bmean[ch] += s
		}
	}
	bn := float64(n * inner)
	for ch := range c {
		a.bmean[ch] /= bn
	}
	for i := range n {
		for ch := range c {
			mu, s := a.bmean[ch], 0.0
			for _, v := range x[(i*c+ch)*inner : (i*c+ch+1)*inner] {
				dv := float64(v) - mu
				s += dv * dv
			}
			a.bm2[ch] += s
		}
	}
	tot := a.count + bn
	for ch := range c {
		delta := a.bmean[ch] - a.mean[ch]
		a.mean[ch] += delta * bn / tot
		a.m2[ch] += a.bm2[ch] + delta*delta*a.count*bn/tot
	}
	a.count = tot
}

// result is the mean and the unbiased variance per channel.
func (a *moments) result() (mean, variance []float64) {
	variance = make([]float64, len(a.m2))
	for ch, m2 := range a.m2 {
		variance[ch] = m2 / max(a.count-1, 1)
	}
	return a.mean, variance
}

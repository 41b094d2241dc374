package finetune

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/runtime"
)

func floats(t *testing.T, m *onnx.Model, name string) []float64 {
	t.Helper()
	v, err := onnx.Float64s(m.Initializer(name))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// closeTo fails unless got and want agree to within tol, relative to
// max(|want|, 1e-3).
func closeTo(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(got[i] - want[i]); d > tol*max(math.Abs(want[i]), 1e-3) {
			t.Errorf("%s[%d] = %.7g, want %.7g", what, i, got[i], want[i])
		}
	}
}

// The first BatchNorm of cnn-bn normalises conv1's output: its statistics,
// computed here by a convolution written out in Go, are what
// RecomputeBatchNorm finds through ORT.
func TestRecomputeBatchNormFirstLayer(t *testing.T) {
	_, test := mnist(t, 1, 200)
	m := readFixture(t, fixtures.CNNBN)
	w, b := floats(t, m, "conv1.weight"), floats(t, m, "conv1.bias") // [8, 1, 3, 3], [8]; padding 1
	const C, H, W = 8, 28, 28
	sum, sq := make([]float64, C), make([]float64, C)
	for i := range test.N {
		img := test.Image(i)
		for c := range C {
			for y := range H {
				for x := range W {
					v := b[c]
					for ky := range 3 {
						for kx := range 3 {
							if yy, xx := y+ky-1, x+kx-1; yy >= 0 && yy < H && xx >= 0 && xx < W {
								v += w[c*9+ky*3+kx] * float64(img[yy*W+xx])
							}
						}
					}
					sum[c] += v
					sq[c] += v * v
				}
			}
		}
	}
	count := float64(test.N * H * W)
	mean, variance := make([]float64, C), make([]float64, C)
	for c := range C {
		mean[c] = sum[c] / count
		variance[c] = (sq[c] - count*mean[c]*mean[c]) / (count - 1) // unbiased
	}
	n, err := RecomputeBatchNorm(context.Background(), m, test, runtime.Options{})
	if err != nil || n != 2 {
		t.Fatalf("RecomputeBatchNorm: %d layers, %v", n, err)
	}
	closeTo(t, "bn1.running_mean", floats(t, m, "bn1.running_mean"), mean, 1e-4)
	closeTo(t, "bn1.running_var", floats(t, m, "bn1.running_var"), variance, 1e-4)
}

// Every layer, residual blocks included, against ORT's own
// BatchNormalization in training mode: with momentum 0 and the whole set
// as one batch, a node outputs as running statistics the batch's mean and
// (biased) variance of its input, computed with the earlier layers
// normalised by their batch statistics, which are what
// RecomputeBatchNorm wrote for them.
func TestRecomputeBatchNormAllLayers(t *testing.T) {
	_, test := mnist(t, 1, 100)
	for _, name := range []string{fixtures.CNNBN, fixtures.ResNetTiny} {
		m := readFixture(t, name)
		ref := m.Clone()
		if _, err := RecomputeBatchNorm(context.Background(), m, test, runtime.Options{}); err != nil {
			t.Fatal(err)
		}
		g := ref.Graph()
		for _, o := range ref.Proto.OpsetImport {
			o.Version = proto.Int64(15)
		}
		g.Output = nil
		var stats [][2]string
		for _, n := range g.Node {
			if n.GetOpType() != "BatchNormalization" {
				continue
			}
			n.Attribute = slices.DeleteFunc(n.Attribute, func(a *pb.AttributeProto) bool { return a.GetName() == "momentum" })
			n.Attribute = append(n.Attribute, onnx.Int("training_mode", 1), onnx.FloatAttr("momentum", 0))
			out := [2]string{n.Output[0] + "_mean", n.Output[0] + "_var"}
			n.Output = append(n.Output[:1], out[0], out[1])
			for _, o := range out {
				g.Output = append(g.Output, &pb.ValueInfoProto{Name: proto.String(o), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
					TensorType: &pb.TypeProto_Tensor{ElemType: proto.Int32(onnx.Float)}}}})
			}
			stats = append(stats, [2]string{n.Input[3], n.Input[4]})
		}
		raw, err := ref.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		s, err := runtime.NewSession(raw, runtime.Options{})
		if err != nil {
			t.Fatal(err)
		}
		outs, err := s.Run(runtime.NewTensor([]int64{int64(test.N), 1, 28, 28}, test.Images))
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		for k, st := range stats {
			wantMean := to64(outs[2*k].Data.([]float32))
			wantVar := to64(outs[2*k+1].Data.([]float32))
			gotVar := floats(t, m, st[1])
			// Biased from unbiased: count is the batch times the spatial
			// positions of the layer's input.
			count := float64(test.N)
			for _, d := range layerSpatial(t, m, k) {
				count *= float64(d)
			}
			for i := range gotVar {
				gotVar[i] *= (count - 1) / count
			}
			// The earlier layers normalise by the unbiased variance here
			// and by the biased one in ORT: a relative 1/count (5e-5 at
			// 14×14) per layer, which adds up over resnet-tiny's five.
			closeTo(t, name+" "+st[0], floats(t, m, st[0]), wantMean, 1e-3)
			closeTo(t, name+" "+st[1], gotVar, wantVar, 1e-3)
		}
	}
}

func to64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// layerSpatial is the spatial size of the k-th BatchNorm's input, read by
// running the model on one sample.
func layerSpatial(t *testing.T, m *onnx.Model, k int) []int64 {
	t.Helper()
	probe := m.Clone()
	var x string
	for _, n := range probe.Graph().Node {
		if n.GetOpType() == "BatchNormalization" {
			if k == 0 {
				x = n.Input[0]
				break
			}
			k--
		}
	}
	probe.Graph().Output = []*pb.ValueInfoProto{{Name: proto.String(x), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
		TensorType: &pb.TypeProto_Tensor{ElemType: proto.Int32(onnx.Float)}}}}}
	raw, _ := probe.Marshal()
	s, err := runtime.NewSession(raw, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(runtime.NewTensor([]int64{1, 1, 28, 28}, make([]float32, 784)))
	if err != nil {
		t.Fatal(err)
	}
	return out[0].Shape[2:]
}

// A model whose running statistics were lost (as after sampling weights)
// gets its accuracy back.
func TestRecomputeBatchNormRecovers(t *testing.T) {
	train, test := mnist(t, 2000, 2000)
	m := readFixture(t, fixtures.CNNBN)
	acc := func(m *onnx.Model) float64 {
		raw, _ := m.Marshal()
		res, err := runtime.Evaluate(context.Background(), raw, test, runtime.EvalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res.Accuracy
	}
	orig := acc(m)
	for _, st := range []string{"bn1.running_mean", "bn2.running_mean", "bn1.running_var", "bn2.running_var"} {
		v := floats(t, m, st)
		for i := range v {
			if st[len(st)-3:] == "var" {
				v[i] = 1 // PyTorch's initial statistics
			} else {
				v[i] = 0
			}
		}
		if err := onnx.SetFloat64s(m.Initializer(st), v); err != nil {
			t.Fatal(err)
		}
	}
	lost := acc(m)
	if _, err := RecomputeBatchNorm(context.Background(), m, train, runtime.Options{}); err != nil {
		t.Fatal(err)
	}
	got := acc(m)
	t.Logf("accuracy %.4f as trained, %.4f with reset statistics, %.4f recomputed on %d samples", orig, lost, got, train.N)
	if lost > orig-0.05 || got < orig-0.005 {
		t.Errorf("accuracy %.4f as trained, %.4f with reset statistics, %.4f recomputed", orig, lost, got)
	}
}

// A fixed batch dimension is kept in the saved model; training runs at
// the model's batch size, and statistics are computed with padding.
func TestFixedBatch(t *testing.T) {
	train, test := mnist(t, 256, 300)
	m := readFixture(t, fixtures.CNNBN)
	dim := m.Graph().Input[0].Type.GetTensorType().Shape.Dim[0]
	dim.Value = &pb.TensorShapeProto_Dimension_DimValue{DimValue: 32}
	var final *onnx.Model
	res, err := Run(context.Background(), []*onnx.Model{m}, train, test, Config{Epochs: 1, RecomputeBatchNorm: true, BatchNormSamples: 100},
		func(_ int, _ Epoch, m *onnx.Model) error { final = m; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got := final.Graph().Input[0].Type.GetTensorType().Shape.Dim[0].GetDimValue(); got != 32 {
		t.Errorf("saved model has batch %d, want 32", got)
	}
	if res[0][1].TestAccuracy < 0.9 {
		t.Errorf("metrics %+v", res[0])
	}
	// At another batch size, the same model is refused only if its graph
	// needs its own; cnn-bn's Flatten does not.
	if err := Check(m, train, Config{Batch: 16}); err != nil {
		t.Errorf("Check at batch 16: %v", err)
	}
}

// A graph that holds its fixed batch size in a constant trains at that
// size only, and says so at others.
func TestBatchInGraph(t *testing.T) {
	train, test := mnist(t, 64, 100)
	m := readFixture(t, fixtures.CNNS)
	g := m.Graph()
	g.Input[0].Type.GetTensorType().Shape.Dim[0].Value = &pb.TensorShapeProto_Dimension_DimValue{DimValue: 1}
	for _, n := range g.Node {
		if n.GetOpType() == "Flatten" {
			n.OpType, n.Attribute = proto.String("Reshape"), nil
			n.Input = append(n.Input, "batch_one")
			g.Initializer = append(g.Initializer, onnx.NewInt64Tensor("batch_one", []int64{2}, []int64{1, -1}))
		}
	}
	err := Check(m, train, Config{Batch: 32})
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "fixes its batch at 1") {
		t.Errorf("Check at batch 32: %v", err)
	}
	if _, err := Run(context.Background(), []*onnx.Model{m}, train, test, Config{Batch: 1, Epochs: 1}, nil); err != nil {
		t.Errorf("Run at batch 1: %v", err)
	}
}

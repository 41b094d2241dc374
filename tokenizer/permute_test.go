package tokenizer

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/runtime"
)

// cnn: Conv-BN-Relu-MaxPool, Conv with per-channel Mul and Add constants,
// LeakyRelu, Flatten into Gemm (transB=1), Relu, Dropout, Gemm (transB=0).
func cnn() *onnx.Model {
	n := newNet("cnn")
	x := n.Input("x", onnx.Float, -1, 3, 8, 8)
	x = n.Node("Relu", []string{n.bn(n.conv(x, "conv1", 8, 3, 3, true), "bn1", 8)})
	x = n.Node("MaxPool", []string{x}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2))
	x = n.conv(x, "conv2", 16, 8, 3, false)
	x = n.Node("Mul", []string{x, n.pos("scale2", 0.5, 2, 16, 1, 1)})
	x = n.Node("Add", []string{n.w("shift2", 0.5, 1, 16, 1, 1), x})
	x = n.Node("Flatten", []string{n.Node("LeakyRelu", []string{x}, onnx.FloatAttr("alpha", 0.1))})
	x = n.Node("Dropout", []string{n.Node("Relu", []string{n.gemm(x, "fc1", 12, 256, true)})})
	n.Output(n.gemm(x, "fc2", 5, 12, false), onnx.Float, -1, 5)
	return n.Model()
}

// mlp: MatMul+Add, GELU written with Erf, MatMul+Add, LayerNormalization,
// Sigmoid, Gemm (transB=0) with a [1, N] bias, Tanh, SiLU, MatMul.
func mlp() *onnx.Model {
	n := newNet("mlp")
	x := n.linear(n.Input("x", onnx.Float, -1, 6), "fc1", 12, 6)
	e := n.Node("Erf", []string{n.Node("Div", []string{x, n.Float("sqrt2", nil, []float32{1.4142135})})})
	e = n.Node("Add", []string{e, n.Float("one", []int64{1}, []float32{1})})
	x = n.Node("Mul", []string{n.Node("Mul", []string{x, e}), n.Float("half", nil, []float32{0.5})})
	x = n.linear(x, "fc2", 10, 12)
	x = n.NodeAs("ln", "LayerNormalization", []string{x, n.pos("ln.scale", 0.5, 1.5, 10), n.w("ln.bias", 0.2, 10)})
	x = n.Node("Sigmoid", []string{x})
	x = n.NodeAs("fc3", "Gemm", []string{x, n.w("fc3.weight", 0.5, 10, 7), n.w("fc3.bias", 0.1, 1, 7)})
	x = n.Node("Tanh", []string{x})
	x = n.Node("Mul", []string{x, n.Node("Sigmoid", []string{x})})
	n.Output(n.NodeAs("fc4", "MatMul", []string{x, n.w("fc4.weight", 0.5, 7, 3)}), onnx.Float, -1, 3)
	return n.Model()
}

// residual: conv1's output feeds conv2 and, around it, an Add.
func residual() *onnx.Model {
	n := newNet("residual")
	x := n.Input("x", onnx.Float, -1, 4, 6, 6)
	r := n.Node("Relu", []string{n.conv(x, "conv1", 8, 4, 3, true)})
	x = n.Node("Relu", []string{n.Node("Add", []string{n.conv(r, "conv2", 8, 8, 3, true), r})})
	x = n.Node("Relu", []string{n.conv(x, "conv3", 8, 8, 1, true)})
	x = n.Node("Flatten", []string{n.Node("GlobalAveragePool", []string{x})})
	n.Output(n.gemm(x, "fc", 3, 8, true), onnx.Float, -1, 3)
	return n.Model()
}

// deconv: ConvTranspose, PRelu, InstanceNormalization, 1×1 Conv, Reshape to
// [N, -1], MatMul, Relu, MatMul.
func deconv() *onnx.Model {
	n := newNet("deconv")
	x := n.Input("x", onnx.Float, -1, 4, 5, 5)
	x = n.NodeAs("deconv", "ConvTranspose", []string{x, n.w("deconv.weight", 0.3, 4, 6, 3, 3), n.w("deconv.bias", 0.1, 6)})
	x = n.Node("PRelu", []string{x, n.pos("slope", 0, 0.5, 6, 1, 1)})
	x = n.Node("InstanceNormalization", []string{x, n.pos("in.scale", 0.5, 1.5, 6), n.w("in.bias", 0.2, 6)})
	x = n.Node("Relu", []string{n.conv(x, "conv", 8, 6, 1, true)})
	x = n.Node("Reshape", []string{x, n.Int64s("flat", 0, -1)})
	x = n.Node("Relu", []string{n.NodeAs("mm1", "MatMul", []string{x, n.w("mm1.weight", 0.1, 8*7*7, 5)})})
	n.Output(n.NodeAs("mm2", "MatMul", []string{x, n.w("mm2.weight", 0.5, 5, 3)}), onnx.Float, -1, 3)
	return n.Model()
}

// refused: a depthwise convolution, a Softmax over channels and a shared
// per-channel constant keep every layer as it is.
func refused() *onnx.Model {
	n := newNet("refused")
	x := n.Input("x", onnx.Float, -1, 4, 5, 5)
	x = n.Node("Relu", []string{n.conv(x, "conv1", 8, 4, 3, true)})
	x = n.NodeAs("dw", "Conv", []string{x, n.w("dw.weight", 0.3, 8, 1, 3, 3)}, onnx.Int("group", 8), onnx.Ints("pads", 1, 1, 1, 1))
	x = n.Node("Softmax", []string{n.conv(x, "conv3", 6, 8, 1, true)}, onnx.Int("axis", 1))
	shared := n.w("shared", 0.5, 5, 1, 1)
	x = n.Node("Mul", []string{n.conv(x, "conv4", 5, 6, 1, true), shared})
	x = n.Node("Add", []string{n.conv(x, "conv5", 5, 5, 1, true), shared})
	n.Output(n.conv(x, "conv6", 2, 5, 1, true), onnx.Float, -1, 2, 5, 5)
	return n.Model()
}

func randomInput(rng *rand.Rand, shape ...int64) runtime.Tensor {
	k, _ := onnx.NumElements(shape)
	v := make([]float32, k)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return runtime.NewTensor(shape, v)
}

func TestPermute(t *testing.T) {
	needORT(t)
	tests := []struct {
		name     string
		model    func() *onnx.Model
		input    []int64
		permuted []string
		reasons  map[string]string // layer -> part of why it stays
	}{
		{"cnn", cnn, []int64{3, 3, 8, 8}, []string{"conv1", "conv2", "fc1"}, map[string]string{"fc2": "graph output"}},
		{"mlp", mlp, []int64{4, 6}, []string{"fc1", "fc2", "fc3"}, map[string]string{"fc4": "graph output"}},
		{"residual", residual, []int64{2, 4, 6, 6}, []string{"conv3"}, map[string]string{
			"conv1": "Add", "conv2": "combines its units with"}},
		{"deconv", deconv, []int64{2, 4, 5, 5}, []string{"deconv", "conv", "mm1"}, nil},
		{"refused", refused, []int64{1, 4, 5, 5}, nil, map[string]string{
			"conv1": "grouped convolution", "dw": "grouped convolution (group 8)", "conv3": "Softmax",
			"conv4": `"shared" is also read elsewhere`, "conv5": `"shared" is also read elsewhere`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.model()
			before := m.Clone()
			p, res, err := PermuteLayers(m, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(m.Proto, before.Proto) {
				t.Error("PermuteLayers changed its argument")
			}
			var got []string
			for _, r := range res {
				if r.Permuted {
					got = append(got, r.Layer)
				} else if want, ok := tt.reasons[r.Layer]; ok && !strings.Contains(r.Reason, want) {
					t.Errorf("layer %s left because %q, want a reason containing %q", r.Layer, r.Reason, want)
				}
			}
			if !slices.Equal(got, tt.permuted) {
				t.Errorf("permuted %v, want %v; report: %+v", got, tt.permuted, res)
			}
			in := randomInput(rand.New(rand.NewPCG(3, 4)), tt.input...)
			checkSame(t, m, p, in)
			if changed := changedTensors(m, p); (len(changed) > 0) != (len(tt.permuted) > 0) {
				t.Errorf("tensors changed: %v", changed)
			}
			again, _ := Permute(m, 1)
			if !proto.Equal(again.Proto, p.Proto) {
				t.Error("the same seed gave another result")
			}
			other, _ := Permute(m, 2)
			if len(tt.permuted) > 0 && proto.Equal(other.Proto, p.Proto) {
				t.Error("seeds 1 and 2 gave the same result")
			}
		})
	}
}

// checkSame runs both models on in and wants the same outputs, within 1e-5
// relative.
func checkSame(t *testing.T, m, p *onnx.Model, in ...runtime.Tensor) {
	t.Helper()
	want, err := runModel(m, slices.Clone(in))
	if err != nil {
		t.Fatal(err)
	}
	got, err := runModel(p, slices.Clone(in))
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		// Permuted units change the order of sums: allow 1e-5 of each
		// value and of the largest, which deep stacks of float32 layers need.
		scale := 0.0
		for _, x := range floats(want[i]) {
			scale = max(scale, math.Abs(x))
		}
		if diff := closeTo(got[i], want[i], 1e-5, 1e-5*scale+1e-7); diff != "" {
			t.Errorf("output %d of the permuted model: %s", i, diff)
		}
	}
}

// changedTensors lists the initializers whose values differ.
func changedTensors(a, b *onnx.Model) []string {
	var out []string
	for _, t := range a.Graph().GetInitializer() {
		if !proto.Equal(t, b.Initializer(t.GetName())) {
			out = append(out, t.GetName())
		}
	}
	return out
}

// TestPermuteCatchesBrokenChains makes sure the comparison above can fail:
// permuting a layer's rows without the next layer's columns changes the
// outputs.
func TestPermuteCatchesBrokenChains(t *testing.T) {
	needORT(t)
	m := cnn()
	p := m.Clone()
	permuteAxis(p.Initializer("conv2.weight"), 0, 1, []int{1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	in := randomInput(rand.New(rand.NewPCG(3, 4)), 2, 3, 8, 8)
	want, err := runModel(m, []runtime.Tensor{in})
	if err != nil {
		t.Fatal(err)
	}
	got, err := runModel(p, []runtime.Tensor{in})
	if err != nil {
		t.Fatal(err)
	}
	if closeTo(got[0], want[0], 1e-5, 1e-6) == "" {
		t.Error("swapping two filters of conv2 alone left the outputs unchanged")
	}
}

// TestPermuteFixtures permutes the exported models of package fixtures and
// runs them on their test inputs.
func TestPermuteFixtures(t *testing.T) {
	needORT(t)
	tests := []struct {
		model    string
		permuted int
		layers   int
	}{
		{fixtures.CNNS, 4, 5},
		{fixtures.CNNBN, 3, 4},
		{fixtures.MLP, 2, 3},
		{fixtures.OnnxHelperCNN, 2, 3},
		{fixtures.TransposeLinear, 1, 2},
		{fixtures.ResNetTiny, 2, 7},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			m, err := onnx.Read(fixtures.Path(tt.model))
			if err != nil {
				t.Fatal(err)
			}
			p, res, err := PermuteLayers(m, 7)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, r := range res {
				if r.Permuted {
					n++
				} else {
					t.Logf("%s %s (%d units) stays: %s", r.Op, r.Layer, r.Units, r.Reason)
				}
			}
			if n != tt.permuted || len(res) != tt.layers {
				t.Errorf("permuted %d of %d layers, want %d of %d", n, len(res), tt.permuted, tt.layers)
			}
			inPath, outPath := fixtures.TestData(tt.model)
			in, err := readTensor(inPath)
			if err != nil {
				t.Fatal(err)
			}
			want, err := readTensor(outPath)
			if err != nil {
				t.Fatal(err)
			}
			got, err := runModel(p, []runtime.Tensor{in})
			if err != nil {
				t.Fatal(err)
			}
			if diff := closeTo(got[0], want, 1e-4, 1e-5); diff != "" {
				t.Errorf("permuted model against the exporter's outputs: %s", diff)
			}
			checkSame(t, m, p, in)
		})
	}
}

// TestPermuteBackend permutes every backend test model: those with a
// permuted layer must still reproduce their expected outputs, and the others
// must come back unchanged.
func TestPermuteBackend(t *testing.T) {
	names := backendModels(t)
	needORT(t)
	known := knownFailures(t)
	var permuted []string
	for _, name := range names {
		m := readBackend(t, name)
		p, res, err := PermuteLayers(m, 1)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !slices.ContainsFunc(res, func(r PermuteResult) bool { return r.Permuted }) {
			if !proto.Equal(p.Proto, m.Proto) {
				t.Errorf("%s: no layer permuted, yet the model changed", name)
			}
			continue
		}
		permuted = append(permuted, name)
		if _, ok := known[name]; ok {
			continue
		}
		in, err := backendInputs(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkSame(t, m, p, in...)
	}
	t.Logf("%d backend models have a layer Permute reorders: %v", len(permuted), permuted)
}

// TestPermuteResNet50: in ResNet-50 the layers inside the bottlenecks and
// the stem (read by two convolutions, both of which follow) are permuted,
// the last convolution of each block and the projections, which meet in a
// residual Add, and the classifier are not.
func TestPermuteResNet50(t *testing.T) {
	if testing.Short() {
		t.Skip("ResNet-50 takes seconds")
	}
	needORT(t)
	m := benchResNet50()
	p, res, err := PermuteLayers(m, 5)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range res {
		if r.Permuted {
			n++
		}
	}
	if n != 33 || len(res) != 54 {
		t.Errorf("permuted %d of %d layers, want 33 of 54", n, len(res))
	}
	checkSame(t, m, p, randomInput(rand.New(rand.NewPCG(5, 6)), 1, 3, 224, 224))
}

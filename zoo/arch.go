package zoo

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/hyperrep/hyperrep/onnx"
)

// Activations a zoo's models may use.
var Activations = []string{"tanh", "relu", "sigmoid", "gelu"}

// Architectures lists the names NewArch accepts.
var Architectures = []string{"cnn-s", "cnn-l", "mlp"}

// layer is one weight-bearing layer: a convolution (k > 0, optionally
// followed by a 2×2 max-pool) or a fully connected layer (k == 0). Every
// layer but the last is followed by the activation, and by dropout while
// training.
type layer struct {
	name    string
	in, out int
	k       int
	pool    bool
}

// Arch is a classifier architecture for images of one shape: the layers of
// a zoo's models, fixed by name and input shape, with the activation left
// open.
type Arch struct {
	Name    string
	C, H, W int // input channels, rows, columns
	Classes int

	layers []layer
	// spatial[i] is the side (rows, columns) of layer i's input; for fully
	// connected layers, 1.
	spatial [][2]int
}

// NewArch returns the named architecture for inputs of c×h×w and the given
// number of classes:
//
//   - "cnn-s", the small CNN of the Model Zoos (Schürholt et al., 2022):
//     Conv(c→8, 5×5) MaxPool(2) act, Conv(8→6, 5×5) MaxPool(2) act,
//     Conv(6→4, 2×2) act, Flatten, Gemm(→20) act, Gemm(20→classes);
//     2,464 parameters on 1×28×28 and 10 classes, 2,864 on 3×28×28. (On
//     3×32×32 the flattened features are 4×4×4, not 36, and the count is
//     3,424: the Model Zoos' 2,864 for CIFAR-10 is the 28×28 pipeline.)
//   - "cnn-l", the large CNN of the Model Zoos: three blocks of
//     Conv(3×3) MaxPool(2) act with 16, 32 and 15 channels, Flatten,
//     Gemm(→20) act, Gemm(20→classes); 10,853 parameters on 3×32×32 (the
//     Model Zoos' CIFAR-10 figure), 9,665 on 1×28×28.
//   - "mlp": Flatten, Gemm(→64) act, Gemm(64→32) act, Gemm(32→classes);
//     52,650 parameters on 1×28×28.
func NewArch(name string, c, h, w, classes int) (*Arch, error) {
	if c < 1 || h < 1 || w < 1 || classes < 2 {
		return nil, fmt.Errorf("zoo: architecture %s for %dx%dx%d inputs and %d classes: want positive sizes and 2 or more classes", name, c, h, w, classes)
	}
	a := &Arch{Name: name, C: c, H: h, W: w, Classes: classes}
	switch name {
	case "cnn-s":
		a.layers = []layer{{"conv1", c, 8, 5, true}, {"conv2", 8, 6, 5, true}, {"conv3", 6, 4, 2, false}}
		a.layers = append(a.layers, layer{name: "fc1", out: 20}, layer{name: "fc2", in: 20, out: classes})
	case "cnn-l":
		a.layers = []layer{{"conv1", c, 16, 3, true}, {"conv2", 16, 32, 3, true}, {"conv3", 32, 15, 3, true}}
		a.layers = append(a.layers, layer{name: "fc1", out: 20}, layer{name: "fc2", in: 20, out: classes})
	case "mlp":
		a.layers = []layer{{name: "fc1", in: c * h * w, out: 64}, {name: "fc2", in: 64, out: 32}, {name: "fc3", in: 32, out: classes}}
	default:
		return nil, fmt.Errorf("zoo: unknown architecture %q (want %s)", name, strings.Join(Architectures, ", "))
	}
	// Walk the image through the convolutions to size the first Gemm.
	hh, ww := h, w
	for i := range a.layers {
		l := &a.layers[i]
		if l.k == 0 {
			if l.in == 0 {
				l.in = a.layers[i-1].out * hh * ww
			}
			a.spatial = append(a.spatial, [2]int{1, 1})
			hh, ww = 1, 1
			continue
		}
		a.spatial = append(a.spatial, [2]int{hh, ww})
		hh, ww = hh-l.k+1, ww-l.k+1
		if l.pool {
			hh, ww = hh/2, ww/2
		}
		if hh < 1 || ww < 1 {
			return nil, fmt.Errorf("zoo: architecture %s needs larger inputs than %dx%d", name, h, w)
		}
	}
	return a, nil
}

// Param describes one weight tensor of an architecture, in the layout of
// the exported ONNX model: Conv weights [out, in, k, k], Gemm weights
// [out, in] (transB=1), biases [out].
type Param struct {
	Name          string // "conv1.weight", "conv1.bias", ...
	Shape         []int64
	FanIn, FanOut int // as torch.nn.init computes them; 0 for biases
}

// Size is the number of values of the tensor.
func (p Param) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= int(d)
	}
	return n
}

// Params lists the architecture's weight tensors, each layer's weight then
// its bias, in layer order.
func (a *Arch) Params() []Param {
	var ps []Param
	for _, l := range a.layers {
		kk := max(l.k*l.k, 1)
		w := Param{Name: l.name + ".weight", Shape: []int64{int64(l.out), int64(l.in)}, FanIn: l.in * kk, FanOut: l.out * kk}
		if l.k > 0 {
			w.Shape = append(w.Shape, int64(l.k), int64(l.k))
		}
		ps = append(ps, w, Param{Name: l.name + ".bias", Shape: []int64{int64(l.out)}})
	}
	return ps
}

// NumParams is the number of weight values of a model.
func (a *Arch) NumParams() int {
	n := 0
	for _, p := range a.Params() {
		n += p.Size()
	}
	return n
}

func (a *Arch) String() string {
	return fmt.Sprintf("%s on %dx%dx%d, %d classes, %d parameters", a.Name, a.C, a.H, a.W, a.Classes, a.NumParams())
}

// checkActivation reports an activation the architectures do not know.
func checkActivation(act string) error {
	if !slices.Contains(Activations, act) {
		return fmt.Errorf("zoo: unknown activation %q (want %s)", act, strings.Join(Activations, ", "))
	}
	return nil
}

// activate emits the activation of x. Gelu is an opset-20 op; opset 17
// spells it with Erf, exactly as PyTorch's default (non-tanh) GELU.
func activate(b *onnx.Builder, act, x string) string {
	switch act {
	case "tanh":
		return b.Node("Tanh", []string{x})
	case "relu":
		return b.Node("Relu", []string{x})
	case "sigmoid":
		return b.Node("Sigmoid", []string{x})
	}
	// 0.5·x·(1 + erf(x/√2)), its constants as Constant nodes: initializers
	// would count as weights to onnx.Layers and the tokenizer.
	half := constNode(b, "gelu.half", 0.5)
	one := constNode(b, "gelu.one", 1)
	invSqrt2 := constNode(b, "gelu.inv_sqrt2", float32(1/math.Sqrt2))
	e := b.Node("Erf", []string{b.Node("Mul", []string{x, invSqrt2})})
	return b.Node("Mul", []string{b.Node("Mul", []string{x, half}), b.Node("Add", []string{e, one})})
}

// constFloat is a float32 scalar initializer, added once per name.
func constFloat(b *onnx.Builder, name string, v float32) string {
	for _, t := range b.Graph().GetInitializer() {
		if t.GetName() == name {
			return name
		}
	}
	return b.Float(name, nil, []float32{v})
}

// constNode is a float32 scalar Constant node, added once per name.
func constNode(b *onnx.Builder, name string, v float32) string {
	for _, n := range b.Graph().GetNode() {
		if n.GetOpType() == "Constant" && len(n.Output) == 1 && n.Output[0] == name {
			return name
		}
	}
	return b.NodeAs(name, "Constant", nil, onnx.TensorAttr("value", onnx.NewFloatTensor(name, nil, []float32{v})))
}

// Model returns the eval-mode ONNX model of one member of the architecture
// with the given activation and weights (one slice per Param, in order):
// input "input" float32 [N, C, H, W] with N symbolic, output "logits"
// float32 [N, Classes]; Conv, MaxPool, Flatten and Gemm (transB=1) as
// PyTorch exports them, no dropout. Initializers are named after the
// Params.
func (a *Arch) Model(act string, weights [][]float32) (*onnx.Model, error) {
	if err := checkActivation(act); err != nil {
		return nil, err
	}
	ps := a.Params()
	if len(weights) != len(ps) {
		return nil, fmt.Errorf("zoo: %s: %d weight tensors, want %d", a.Name, len(weights), len(ps))
	}
	for i, p := range ps {
		if len(weights[i]) != p.Size() {
			return nil, fmt.Errorf("zoo: %s: %s has %d values, want %d", a.Name, p.Name, len(weights[i]), p.Size())
		}
	}
	b := onnx.NewBuilder(a.Name, 0)
	x := b.Input("input", onnx.Float, -1, int64(a.C), int64(a.H), int64(a.W))
	flat := false
	for i, l := range a.layers {
		w := b.Float(ps[2*i].Name, ps[2*i].Shape, weights[2*i])
		bias := b.Float(ps[2*i+1].Name, ps[2*i+1].Shape, weights[2*i+1])
		if l.k > 0 {
			x = b.NodeAs(l.name, "Conv", []string{x, w, bias}, onnx.Ints("kernel_shape", int64(l.k), int64(l.k)))
			if l.pool {
				x = b.Node("MaxPool", []string{x}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2))
			}
		} else {
			if !flat {
				x = b.Node("Flatten", []string{x}, onnx.Int("axis", 1))
				flat = true
			}
			if i == len(a.layers)-1 {
				b.NodeOut(l.name, "Gemm", []string{x, w, bias}, []string{"logits"}, onnx.Int("transB", 1))
				break
			}
			x = b.NodeAs(l.name, "Gemm", []string{x, w, bias}, onnx.Int("transB", 1))
		}
		x = activate(b, act, x)
	}
	b.Output("logits", onnx.Float, -1, int64(a.Classes))
	return b.Model(), nil
}

// Weights reads the weights of a model that Model wrote, one slice per
// Param, checking that every tensor is there with its shape.
func (a *Arch) Weights(m *onnx.Model) ([][]float32, error) {
	var out [][]float32
	for _, p := range a.Params() {
		t := m.Initializer(p.Name)
		if t == nil {
			return nil, fmt.Errorf("zoo: model has no tensor %q of %s", p.Name, a.Name)
		}
		if !slices.Equal(t.GetDims(), p.Shape) {
			return nil, fmt.Errorf("zoo: tensor %q has shape %v, want %v", p.Name, t.GetDims(), p.Shape)
		}
		v, err := onnx.Float32s(t)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

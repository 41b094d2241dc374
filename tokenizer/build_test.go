package tokenizer

import (
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/hyperrep/hyperrep/onnx"
)

// net wraps onnx.Builder with seeded random weights for test models.
type net struct {
	*onnx.Builder
	rng *rand.Rand
}

func newNet(name string) *net {
	return &net{Builder: onnx.NewBuilder(name, 0), rng: rand.New(rand.NewPCG(1, 2))}
}

// w adds a float32 initializer of normal random values scaled by scale.
func (n *net) w(name string, scale float64, dims ...int64) string {
	k, _ := onnx.NumElements(dims)
	v := make([]float32, k)
	for i := range v {
		v[i] = float32(n.rng.NormFloat64() * scale)
	}
	return n.Float(name, dims, v)
}

// pos adds a float32 initializer of random values in [lo, hi).
func (n *net) pos(name string, lo, hi float64, dims ...int64) string {
	k, _ := onnx.NumElements(dims)
	v := make([]float32, k)
	for i := range v {
		v[i] = float32(lo + (hi-lo)*n.rng.Float64())
	}
	return n.Float(name, dims, v)
}

// bn adds an inference-mode BatchNormalization of c channels.
func (n *net) bn(x, name string, c int64) string {
	return n.NodeAs(name, "BatchNormalization", []string{x,
		n.pos(name+".scale", 0.5, 1.5, c), n.w(name+".bias", 0.2, c),
		n.w(name+".mean", 0.2, c), n.pos(name+".var", 0.5, 2, c)})
}

// conv adds a Conv of the given kernel, padded to keep the size.
func (n *net) conv(x, name string, cout, cin, k int64, bias bool) string {
	in := []string{x, n.w(name+".weight", 0.3, cout, cin, k, k)}
	if bias {
		in = append(in, n.w(name+".bias", 0.1, cout))
	}
	p := (k - 1) / 2
	return n.NodeAs(name, "Conv", in, onnx.Ints("pads", p, p, p, p))
}

// gemm adds a Gemm with W [out, in] (transB=1) or [in, out].
func (n *net) gemm(x, name string, out, in int64, transB bool) string {
	dims := []int64{in, out}
	if transB {
		dims = []int64{out, in}
	}
	return n.NodeAs(name, "Gemm", []string{x, n.w(name+".weight", 0.3, dims...), n.w(name+".bias", 0.1, out)},
		onnx.Int("transB", b2i(transB)))
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// linear adds MatMul with W [in, out] followed by Add of a bias, as
// exporters write torch.matmul(x, W) + b.
func (n *net) linear(x, name string, out, in int64) string {
	h := n.NodeAs(name, "MatMul", []string{x, n.w(name+".weight", 0.3, in, out)})
	return n.NodeAs(name+"_add", "Add", []string{h, n.w(name+".bias", 0.1, out)})
}

// resNet50 builds ResNet-50 (He et al., 2016) for 224×224 RGB images as
// ONNX: the stem, 16 bottleneck blocks in stages of 3, 4, 6 and 3 with
// projection shortcuts, and the 2048→1000 classifier; every convolution is
// bias-free and followed by BatchNormalization, as in torchvision. Weights
// are random normal (He-scaled), BatchNormalization statistics random: the
// model has the shapes and the 25,557,032 parameters of the real one (plus
// 53,120 running statistics, 25,610,152 float32 values in all), not its
// accuracy.
func resNet50() *onnx.Model {
	n := newNet("resnet50")
	n.Input("input", onnx.Float, -1, 3, 224, 224)
	k := 0
	convBN := func(x string, cout, cin, kernel, stride int64, relu bool) string {
		k++
		name := "conv" + strconv.Itoa(k)
		p := (kernel - 1) / 2
		w := n.w(name+".weight", math.Sqrt(2/float64(cin*kernel*kernel)), cout, cin, kernel, kernel)
		y := n.NodeAs(name, "Conv", []string{x, w}, onnx.Ints("pads", p, p, p, p), onnx.Ints("strides", stride, stride))
		y = n.bn(y, "bn"+strconv.Itoa(k), cout)
		if relu {
			y = n.Node("Relu", []string{y})
		}
		return y
	}
	x := convBN("input", 64, 3, 7, 2, true)
	x = n.Node("MaxPool", []string{x}, onnx.Ints("kernel_shape", 3, 3), onnx.Ints("strides", 2, 2), onnx.Ints("pads", 1, 1, 1, 1))
	cin := int64(64)
	for s, blocks := range []int{3, 4, 6, 3} {
		width := int64(64) << s
		for b := 0; b < blocks; b++ {
			stride := int64(1)
			if b == 0 && s > 0 {
				stride = 2
			}
			y := convBN(x, width, cin, 1, 1, true)
			y = convBN(y, width, width, 3, stride, true)
			y = convBN(y, 4*width, width, 1, 1, false)
			skip := x
			if b == 0 {
				skip = convBN(x, 4*width, cin, 1, stride, false)
			}
			x = n.Node("Relu", []string{n.Node("Add", []string{y, skip})})
			cin = 4 * width
		}
	}
	x = n.Node("Flatten", []string{n.Node("GlobalAveragePool", []string{x})})
	x = n.gemm(x, "fc", 1000, 2048, true)
	n.Output(x, onnx.Float, -1, 1000)
	return n.Model()
}

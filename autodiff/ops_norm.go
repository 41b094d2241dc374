package autodiff

import (
	"fmt"
	"slices"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// Normalisation layers: BatchNormalization, in training mode (statistics
// of the batch) and in inference mode (running statistics held constant),
// and LayerNormalization. Both normalise x over some axes,
// x̂ = (x − μ)·r with r = (σ² + ε)^-½, then scale and shift it; the backward
// pass recomputes μ and r rather than asking the forward node for them.

func init() {
	shapeRules["BatchNormalization"] = shapeBatchNorm
	gradRules["BatchNormalization"] = gradBatchNorm
	shapeRules["LayerNormalization"] = shapeLayerNorm
	gradRules["LayerNormalization"] = gradLayerNorm
}

func shapeBatchNorm(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	x := in[0].Shape
	if len(in) != 5 || len(x) < 2 {
		return nil, fmt.Errorf("BatchNormalization of %v with %d inputs: want [N, C, ...] and scale, B, mean, var", x, len(in))
	}
	for k, name := range []string{"scale", "B", "input_mean", "input_var"} {
		if !slices.Equal(in[1+k].Shape, x[1:2]) {
			return nil, fmt.Errorf("BatchNormalization %s %v for %d channels", name, in[1+k].Shape, x[1])
		}
	}
	return []Tensor{{in[0].DType, slices.Clone(x)}, {in[3].DType, x[1:2]}, {in[4].DType, x[1:2]}}, nil
}

// normStats holds the statistics of x over the normalised axes, each kept
// at size 1 so that it broadcasts against x.
type normStats struct {
	axes  []int64
	count int64  // elements per statistic
	xc    string // x − μ
	r     string // (σ² + ε)^-½
	xhat  string // (x − μ)·r
}

// normalise emits the statistics of x over axes, σ² without Bessel's
// correction as both ops compute it.
func normalise(c *Context, x string, axes []int64, eps float32) normStats {
	xt := c.Type(x)
	s := normStats{axes: axes, count: 1}
	for _, a := range axes {
		s.count *= xt.Shape[a]
	}
	mean := c.Op("ReduceMean", []string{x}, onnx.Ints("axes", axes...), onnx.Int("keepdims", 1))
	s.xc = c.Op("Sub", []string{x, mean})
	v := c.Op("ReduceMean", []string{c.Op("Mul", []string{s.xc, s.xc})}, onnx.Ints("axes", axes...), onnx.Int("keepdims", 1))
	s.r = c.Op("Reciprocal", []string{c.Op("Sqrt", []string{c.Op("Add", []string{v, c.Scalar(float64(eps), xt.DType)})})})
	s.xhat = c.Op("Mul", []string{s.xc, s.r})
	return s
}

// backward is dx for g = dL/dx̂ and, where not "", extra gradients dmean
// and dvar of the statistics μ and σ² themselves (a BatchNormalization's
// running statistics, a LayerNormalization's Mean and InvStdDev outputs):
//
//	dx = r·(g − mean(g) − x̂·mean(g·x̂)) + (dμ + 2·dσ²·(x − μ))/count
func (s normStats) backward(c *Context, g, dmean, dvar string, dtype int32) string {
	mean := func(v string) string {
		return c.Op("ReduceMean", []string{v}, onnx.Ints("axes", s.axes...), onnx.Int("keepdims", 1))
	}
	centred := c.Op("Sub", []string{g, mean(g)})
	dx := c.Op("Mul", []string{s.r, c.Op("Sub", []string{centred, c.Op("Mul", []string{s.xhat, mean(c.Op("Mul", []string{g, s.xhat}))})})})
	var extra []string
	if dmean != "" {
		extra = append(extra, c.Op("Mul", []string{dmean, c.Scalar(1/float64(s.count), dtype)}))
	}
	if dvar != "" {
		extra = append(extra, c.Op("Mul", []string{s.xc, c.Op("Mul", []string{dvar, c.Scalar(2/float64(s.count), dtype)})}))
	}
	if len(extra) > 0 {
		dx = c.Op("Sum", append([]string{dx}, extra...))
	}
	return dx
}

func gradBatchNorm(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	x := n.Input[0]
	xt := c.Type(x)
	for _, in := range n.Input[1:] {
		if c.Type(in).DType != xt.DType {
			return nil, fmt.Errorf("gradient of BatchNormalization with %s x and %s %q is not supported", onnx.DTypeName(xt.DType), onnx.DTypeName(c.Type(in).DType), in)
		}
	}
	// Per-channel values as [1, C, 1...], and the axes they reduce over.
	perChannel := make([]int64, len(xt.Shape))
	var axes []int64
	for i := range perChannel {
		perChannel[i] = 1
		if i != 1 {
			axes = append(axes, int64(i))
		}
	}
	perChannel[1] = xt.Shape[1]
	bn := batchNorm{c: c, n: n, dtype: xt.DType, axes: axes, perChannel: perChannel, dx: make([]string, 5)}
	if onnx.AttrInt(n, "training_mode", 0) != 0 {
		bn.training(dy)
	} else if dy[0] != "" {
		bn.inference(dy[0])
	}
	return bn.dx, nil
}

// batchNorm gathers what both modes of the BatchNormalization rule use.
type batchNorm struct {
	c          *Context
	n          *pb.NodeProto
	dtype      int32
	axes       []int64 // all but the channel axis
	perChannel []int64 // [1, C, 1...]
	dx         []string
}

func (bn *batchNorm) channel(v string) string { return bn.c.Reshape(v, bn.perChannel) }

// sum reduces over all but the channel axis to [C].
func (bn *batchNorm) sum(v string) string {
	return bn.c.Op("ReduceSum", []string{v, bn.c.Int64s(bn.axes...)}, onnx.Int("keepdims", 0))
}

// needs reports whether input k wants a gradient.
func (bn *batchNorm) needs(k int) bool { return bn.c.Needs(bn.n.Input[k]) }

// training: y = scale·x̂ + B with the batch's statistics, which also move
// the running ones: running = input·momentum + batch·(1 − momentum).
func (bn *batchNorm) training(dy []string) {
	c, n := bn.c, bn.n
	momentum := float64(onnx.AttrFloat(n, "momentum", 0.9))
	var dmean, dvar string
	for k, d := range []*string{&dmean, &dvar} {
		if len(dy) <= 1+k || dy[1+k] == "" {
			continue
		}
		if bn.needs(3 + k) {
			bn.dx[3+k] = c.Op("Mul", []string{dy[1+k], c.Scalar(momentum, bn.dtype)})
		}
		*d = bn.channel(c.Op("Mul", []string{dy[1+k], c.Scalar(1-momentum, bn.dtype)}))
	}
	if !bn.needs(0) && !bn.needs(1) && !bn.needs(2) {
		return
	}
	s := normalise(c, n.Input[0], bn.axes, onnx.AttrFloat(n, "epsilon", 1e-5))
	g := ""
	if dy[0] != "" {
		if bn.needs(1) {
			bn.dx[1] = bn.sum(c.Op("Mul", []string{dy[0], s.xhat}))
		}
		if bn.needs(2) {
			bn.dx[2] = bn.sum(dy[0])
		}
		g = c.Op("Mul", []string{dy[0], bn.channel(n.Input[1])})
	}
	if !bn.needs(0) {
		return
	}
	if g == "" { // only the running statistics carry a gradient
		g = c.Op("Expand", []string{c.Scalar(0, bn.dtype), c.Int64s(c.Type(n.Input[0]).Shape...)})
	}
	bn.dx[0] = s.backward(c, g, dmean, dvar, bn.dtype)
}

// inference: y = scale·(x − mean)·r + B with r = (var + ε)^-½ from the
// inputs, which are constants of the pass, not functions of x.
func (bn *batchNorm) inference(dy string) {
	c, n := bn.c, bn.n
	eps := c.Scalar(float64(onnx.AttrFloat(n, "epsilon", 1e-5)), bn.dtype)
	r := c.Op("Reciprocal", []string{c.Op("Sqrt", []string{c.Op("Add", []string{n.Input[4], eps})})}) // [C]
	gain := c.Op("Mul", []string{n.Input[1], r})                                                      // scale·r, [C]
	if bn.needs(0) {
		bn.dx[0] = c.Op("Mul", []string{dy, bn.channel(gain)})
	}
	var sum, sumHat string // Σ dy, Σ dy·(x − mean)·r
	if bn.needs(2) || bn.needs(3) {
		sum = bn.sum(dy)
	}
	if bn.needs(1) || bn.needs(4) {
		xhat := c.Op("Mul", []string{c.Op("Sub", []string{n.Input[0], bn.channel(n.Input[3])}), bn.channel(r)})
		sumHat = bn.sum(c.Op("Mul", []string{dy, xhat}))
	}
	if bn.needs(1) {
		bn.dx[1] = sumHat
	}
	if bn.needs(2) {
		bn.dx[2] = sum
	}
	if bn.needs(3) { // ∂y/∂mean = −scale·r
		bn.dx[3] = c.Op("Neg", []string{c.Op("Mul", []string{sum, gain})})
	}
	if bn.needs(4) { // ∂y/∂var = −½·scale·r²·x̂
		half := c.Op("Mul", []string{gain, c.Op("Mul", []string{r, c.Scalar(-0.5, bn.dtype)})})
		bn.dx[4] = c.Op("Mul", []string{sumHat, half})
	}
}

func shapeLayerNorm(_ *Shapes, n *pb.NodeProto, in []Tensor) ([]Tensor, error) {
	x := in[0].Shape
	axis, err := normAxis(onnx.AttrInt(n, "axis", -1), len(x))
	if err != nil {
		return nil, err
	}
	for k := 1; k < len(in); k++ {
		if in[k].DType == 0 {
			continue
		}
		if _, err := broadcast(x[axis:], in[k].Shape); err != nil || len(in[k].Shape) > len(x)-axis {
			return nil, fmt.Errorf("LayerNormalization of %v over axes from %d: %s %v", x, axis, []string{"", "Scale", "B"}[k], in[k].Shape)
		}
	}
	stats := slices.Clone(x)
	for i := axis; i < len(stats); i++ {
		stats[i] = 1
	}
	stash := int32(onnx.AttrInt(n, "stash_type", int64(onnx.Float)))
	return []Tensor{{in[0].DType, slices.Clone(x)}, {stash, stats}, {stash, slices.Clone(stats)}}, nil
}

// gradLayerNorm: y = x̂·Scale + B, normalised over the axes from axis on;
// its optional Mean and InvStdDev outputs are μ and r.
func gradLayerNorm(c *Context, n *pb.NodeProto, dy []string) ([]string, error) {
	x, scale := n.Input[0], n.Input[1]
	xt := c.Type(x)
	axis, err := normAxis(onnx.AttrInt(n, "axis", -1), len(xt.Shape))
	if err != nil {
		return nil, err
	}
	s := normalise(c, x, axisRange(axis, len(xt.Shape)-axis), onnx.AttrFloat(n, "epsilon", 1e-5))
	dx := make([]string, len(n.Input))
	if dy[0] != "" {
		if c.Needs(scale) {
			dx[1] = c.Unbroadcast(c.Op("Mul", []string{dy[0], s.xhat}), xt.Shape, c.Type(scale).Shape)
		}
		if len(n.Input) > 2 && n.Input[2] != "" && c.Needs(n.Input[2]) {
			dx[2] = c.Unbroadcast(dy[0], xt.Shape, c.Type(n.Input[2]).Shape)
		}
	}
	if !c.Needs(x) {
		return dx, nil
	}
	// Mean and InvStdDev may come in the stash type; their gradients join
	// x's in x's.
	stat := func(k int) string {
		if len(dy) <= k || dy[k] == "" {
			return ""
		}
		if c.Type(n.Output[k]).DType != xt.DType {
			return c.Op("Cast", []string{dy[k]}, onnx.Int("to", int64(xt.DType)))
		}
		return dy[k]
	}
	dmean, dvar := stat(1), ""
	if dinv := stat(2); dinv != "" { // r = (σ² + ε)^-½, so ∂r/∂σ² = −½·r³
		r3 := c.Op("Mul", []string{s.r, c.Op("Mul", []string{s.r, s.r})})
		dvar = c.Op("Mul", []string{dinv, c.Op("Mul", []string{r3, c.Scalar(-0.5, xt.DType)})})
	}
	g := c.Op("Expand", []string{c.Scalar(0, xt.DType), c.Int64s(xt.Shape...)})
	if dy[0] != "" {
		g = c.Op("Mul", []string{dy[0], scale})
	}
	dx[0] = s.backward(c, g, dmean, dvar, xt.DType)
	return dx, nil
}

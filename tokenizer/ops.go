package tokenizer

import (
	"fmt"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// Ops that treat every element on its own. The extra inputs of Clip (min
// and max) are scalars.
var elementwise = map[string]bool{
	"Relu": true, "LeakyRelu": true, "Tanh": true, "Sigmoid": true, "HardSigmoid": true,
	"Elu": true, "Selu": true, "Celu": true, "Gelu": true, "Erf": true, "Softplus": true, "Softsign": true,
	"HardSwish": true, "Mish": true, "ThresholdedRelu": true, "Abs": true, "Neg": true, "Exp": true,
	"Log": true, "Sqrt": true, "Reciprocal": true, "Sin": true, "Cos": true, "Floor": true, "Ceil": true,
	"Round": true, "Sign": true, "Identity": true, "Cast": true, "Clip": true,
}

// Ops combining two inputs elementwise with numpy broadcasting (from opset
// 7 on; before, broadcasting followed other rules).
var binaryOps = map[string]bool{
	"Add": true, "Sub": true, "Mul": true, "Div": true, "Pow": true, "PRelu": true, "Max": true, "Min": true,
}

// Ops that work on each channel (axis 1) on its own.
var perChannel = map[string]bool{
	"MaxPool": true, "AveragePool": true, "LpPool": true,
	"GlobalAveragePool": true, "GlobalMaxPool": true, "GlobalLpPool": true,
}

// visit handles node j: nothing when it does not read the units; else it
// must either read them as a layer's data input, or pass them on unit by
// unit.
func (c *chain) visit(j int) error {
	n := c.p.g.Node[j]
	var s *shape
	for _, in := range n.Input {
		if t, ok := c.values[in]; ok {
			if s != nil && *s != t {
				return fmt.Errorf("%s meets its units in two layouts", c.p.node(j))
			}
			s = &t
		}
	}
	if s == nil {
		return nil
	}
	if !defaultDomain(n) {
		return fmt.Errorf("its units reach %s of domain %q", c.p.node(j), n.GetDomain())
	}
	op := n.GetOpType()
	var err error
	switch {
	case hasUnits[op]:
		return c.next(j, *s)
	case op == "Dropout":
		if err := c.dropout(j); err != nil {
			return err
		}
		return c.pass(j, *s, 2) // the output and its mask
	case elementwise[op]:
		err = c.scalars(n, 1)
	case binaryOps[op]:
		*s, err = c.binary(j, *s)
	case perChannel[op]:
		if !s.channels() {
			return fmt.Errorf("%s does not pool over channels here", c.p.node(j))
		}
		err = c.only(n)
	case op == "BatchNormalization" || op == "InstanceNormalization":
		err = c.norm(j, s.channels())
	case op == "LayerNormalization":
		axis := onnx.AttrInt(n, "axis", -1)
		err = c.norm(j, !s.flat && s.last() && (axis == -1 || s.rank >= 1 && axis == int64(s.rank-1)))
	case op == "Flatten" || op == "Reshape":
		*s, err = c.flatten(j, *s)
	default:
		return fmt.Errorf("its units reach %s, which may mix them", c.p.node(j))
	}
	if err != nil {
		return err
	}
	return c.pass(j, *s, 1)
}

// pass marks the first n outputs of node j as holding the units; its other
// outputs must be unused.
func (c *chain) pass(j int, s shape, n int) error {
	for k, out := range c.p.g.Node[j].Output {
		switch {
		case out == "":
		case k < n:
			if err := c.carry(out, s); err != nil {
				return err
			}
		case len(c.p.ix.Consumers[out]) > 0 || c.p.outputs[out] || c.p.inner[out]:
			return fmt.Errorf("output %d of %s is used", k, c.p.node(j))
		}
	}
	return nil
}

// only checks that the units are n's first input and its only other inputs
// are absent.
func (c *chain) only(n *pb.NodeProto) error {
	for k, in := range n.Input {
		if k > 0 && in != "" {
			return fmt.Errorf("%s %q has an input %q besides the units", n.GetOpType(), n.GetName(), in)
		}
	}
	return c.first(n)
}

func (c *chain) first(n *pb.NodeProto) error {
	if _, ok := c.values[n.Input[0]]; !ok {
		return fmt.Errorf("its units reach %s %q as input other than the first", n.GetOpType(), n.GetName())
	}
	return nil
}

// scalars checks that the units are n's first input and its inputs from
// from on are absent or scalar constants.
func (c *chain) scalars(n *pb.NodeProto, from int) error {
	for _, in := range n.Input[from:] {
		if in == "" {
			continue
		}
		t := c.constant(in)
		if k, err := onnx.NumElements(t.GetDims()); t == nil || err != nil || k != 1 {
			return fmt.Errorf("input %q of %s %q is not a scalar constant", in, n.GetOpType(), n.GetName())
		}
	}
	return c.first(n)
}

// dropout accepts a Dropout in inference mode, an identity: in training
// mode it draws a random mask, which no two runs share anyway.
func (c *chain) dropout(j int) error {
	n := c.p.g.Node[j]
	if err := c.scalars(n, 1); err != nil {
		return err
	}
	if len(n.Input) > 2 && n.Input[2] != "" {
		if v, err := onnx.Int64s(c.constant(n.Input[2])); err != nil || v[0] != 0 {
			return fmt.Errorf("%s may run in training mode", c.p.node(j))
		}
	}
	return nil
}

// binary handles an elementwise op of two inputs, each the units or a
// constant; anything else (a residual connection) is refused.
func (c *chain) binary(j int, s shape) (shape, error) {
	n := c.p.g.Node[j]
	if len(n.Input) != 2 {
		return s, fmt.Errorf("%s has %d inputs", c.p.node(j), len(n.Input))
	}
	if c.p.opset < 7 {
		return s, fmt.Errorf("%s broadcasts by the rules of opset %d", c.p.node(j), c.p.opset)
	}
	if n.GetOpType() == "PRelu" {
		if err := c.first(n); err != nil {
			return s, err
		}
	}
	for _, in := range n.Input {
		if _, ok := c.values[in]; ok {
			continue
		}
		if c.constant(in) == nil {
			return s, fmt.Errorf("%s combines its units with %q from elsewhere", c.p.node(j), in)
		}
		var err error
		if s, err = c.perUnit(in, s, n); err != nil {
			return s, err
		}
	}
	return s, nil
}

// norm handles a normalisation over each unit (ok says whether the units lie
// where the op works on them one by one): its scale, bias, mean and
// variance are permuted with the units. Its outputs beyond the first
// (training statistics) must be unused.
func (c *chain) norm(j int, ok bool) error {
	n := c.p.g.Node[j]
	if !ok {
		return fmt.Errorf("%s does not normalise each unit on its own here", c.p.node(j))
	}
	if err := c.first(n); err != nil {
		return err
	}
	for _, in := range n.Input[1:] {
		if in == "" {
			continue
		}
		t := c.constant(in)
		if t == nil || len(t.Dims) != 1 || int(t.Dims[0]) != c.units {
			return fmt.Errorf("input %q of %s is not a constant of %d values", in, c.p.node(j), c.units)
		}
		if err := c.edit(in, 0, 1); err != nil {
			return err
		}
	}
	return nil
}

// flatten handles Flatten at axis 1 and Reshape to [N, -1] of channels:
// each channel becomes a block of consecutive features.
func (c *chain) flatten(j int, s shape) (shape, error) {
	n := c.p.g.Node[j]
	if !s.channels() {
		return s, fmt.Errorf("%s does not flatten channels here", c.p.node(j))
	}
	if n.GetOpType() == "Flatten" {
		if err := c.only(n); err != nil {
			return s, err
		}
		if axis := onnx.AttrInt(n, "axis", 1); axis != 1 && axis != int64(1-s.rank) {
			return s, fmt.Errorf("%s flattens at axis %d", c.p.node(j), axis)
		}
	} else if err := c.reshape(j); err != nil {
		return s, err
	}
	if s.rank == 2 {
		return s, nil
	}
	return shape{rank: 2, k: 0, flat: true}, nil
}

// reshape accepts a Reshape to a constant shape [0, -1]: the batch axis
// kept, everything else flattened.
func (c *chain) reshape(j int) error {
	n := c.p.g.Node[j]
	if len(n.Input) != 2 || onnx.AttrInt(n, "allowzero", 0) != 0 {
		return fmt.Errorf("%s is not a reshape to a constant shape", c.p.node(j))
	}
	if err := c.first(n); err != nil {
		return err
	}
	t := c.constant(n.Input[1])
	if t == nil || t.GetDataType() != onnx.Int64 || onnx.CheckTensor(t) != nil {
		return fmt.Errorf("%s does not reshape to a constant shape", c.p.node(j))
	}
	v, err := onnx.Int64s(t)
	if err != nil || len(v) != 2 || v[0] != 0 || v[1] != -1 {
		return fmt.Errorf("%s reshapes to %v, not [0 -1]", c.p.node(j), v)
	}
	return nil
}

// next handles a layer that reads the units as its input units: its weight
// is permuted along its input axis.
func (c *chain) next(j int, s shape) error {
	n := c.p.g.Node[j]
	for k, in := range n.Input {
		if _, ok := c.values[in]; ok && k > 0 {
			return fmt.Errorf("its units reach %s as input %d", c.p.node(j), k)
		}
	}
	var w weight
	if len(n.Input) >= 2 {
		w = c.weight(n.Input[1])
	}
	if w.name == "" {
		return fmt.Errorf("its units reach %s, whose weight is not a constant", c.p.node(j))
	}
	d := w.dims
	axis := 0
	switch op := n.GetOpType(); op {
	case "Conv", "ConvTranspose":
		if g := onnx.AttrInt(n, "group", 1); g != 1 {
			return fmt.Errorf("its units reach a grouped convolution, %s (group %d)", c.p.node(j), g)
		}
		if !s.channels() || len(d) != s.rank {
			return fmt.Errorf("its units do not reach %s as channels", c.p.node(j))
		}
		if op == "Conv" {
			axis = 1
		}
	case "Gemm", "MatMul":
		if len(d) != 2 || !s.last() || op == "Gemm" && onnx.AttrInt(n, "transA", 0) != 0 {
			return fmt.Errorf("its units do not reach %s as the columns of its input", c.p.node(j))
		}
		if op == "Gemm" && onnx.AttrInt(n, "transB", 0) != 0 {
			axis = 1
		}
	}
	in := int(d[axis])
	block := 1
	if s.flat && c.units > 0 && in%c.units == 0 {
		block = in / c.units
	}
	if in != c.units*block {
		return fmt.Errorf("%s reads %d input units, want %d", c.p.node(j), in, c.units)
	}
	return c.edit(w.name, w.axis(axis), block)
}

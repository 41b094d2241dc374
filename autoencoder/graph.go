package autoencoder

import (
	"fmt"
	"math"

	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// The autoencoder as ONNX graphs, top to bottom. N is the number of
// sequences (windows of one model's tokens), T the tokens per sequence, W
// the token width, D the model width, H the heads, L the latent width. The
// same functions build the training graph (static N and T, a loss on top)
// and the exported encoder.onnx and decoder.onnx (symbolic N and T): every
// Reshape copies the leading axes (0) rather than naming them.

// graph is a graph being built with the autoencoder's parameters.
type graph struct {
	b      *onnx.Builder
	a      Arch
	values map[string][]float32 // parameter values to use, by name; others are drawn
	rnd    *rng.Source          // draws the parameters not in values
	params []string             // in the order they were made
	consts map[string]string
}

func newGraph(name string, a Arch, values map[string][]float32, seed uint64) *graph {
	return &graph{b: onnx.NewBuilder(name, onnx.DefaultOpset), a: a, values: values, rnd: rng.New(seed), consts: map[string]string{}}
}

// encoder maps tokens to per-token latents and the model embedding: their
// mean, or with Pooling "token" the latent of a learned compression token
// put in front of the sequence. Tokens whose mask is all zero are padding:
// no token attends to them and the mean leaves them out.
func (g *graph) encoder(tokens, mask, positions string) (latents, embedding string) {
	a := g.a
	x := g.op("Mul", tokens, mask)                             // [N, T, W]
	valid := g.op("Min", g.reduceSum(mask, 0, 2), g.scalar(1)) // [N, T, W] -> [N, T]: 0 for padding
	in, width := x, a.Width
	if a.Squares {
		in, width = g.concat(2, x, g.op("Mul", x, x)), 2*a.Width // [N, T, W] ++ [N, T, W] -> [N, T, 2W]
	}
	h := g.op("Add", g.linear("enc.in", in, width, a.D), g.positions("enc.pos", positions)) // [N, T, D]
	keys := valid
	if a.Pooling == PoolToken {
		zero := g.op("Mul", g.reshape(g.slice(positions, 0, 1, 1, 2), 0, 1), g.int64Scalar(0))                 // [N, T, 3] -> [N, 1, 1] -> [N, 1]
		token := g.param("enc.token", normal(0.02), 1, int64(a.D))                                             // [1, D]
		h = g.concat(1, g.b.Node("Gather", []string{token, zero}), h)                                          // [N, 1, D] ++ [N, T, D] -> [N, 1+T, D]
		keys = g.concat(1, g.op("Add", g.op("Mul", g.slice(valid, 0, 1, 1), g.scalar(0)), g.scalar(1)), valid) // [N, 1+T]
	}
	bias := g.unsqueeze(g.op("Mul", g.op("Sub", keys, g.scalar(1)), g.scalar(1e9)), 1, 2) // [N, T'] -> [N, 1, 1, T']
	for i := range a.Layers {
		h = g.block(fmt.Sprintf("enc.%d", i), h, bias) // [N, T', D]
	}
	latents = g.linear("enc.out", g.layerNorm("enc.ln", h), a.D, a.Latent) // [N, T', L]
	if a.Pooling == PoolToken {
		embedding = g.reshape(g.slice(latents, 0, 1, 1), 0, int64(a.Latent)) // [N, 1, L] -> [N, L]
		latents = g.slice(latents, 1, math.MaxInt64, 1)                      // [N, T, L]
		return latents, embedding
	}
	v := g.unsqueeze(valid, 2)                         // [N, T, 1]
	sum := g.reduceSum(g.op("Mul", latents, v), 0, 1)  // [N, T, L] -> [N, L]
	embedding = g.op("Div", sum, g.reduceSum(v, 0, 1)) // [N, L] / [N, 1]
	return latents, embedding
}

// decoder maps per-token latents back to tokens. It has no padding: every
// token attends to every other.
func (g *graph) decoder(latents, positions string) string {
	a := g.a
	h := g.op("Add", g.linear("dec.in", latents, a.Latent, a.D), g.positions("dec.pos", positions)) // [N, T, D]
	for i := range a.Layers {
		h = g.block(fmt.Sprintf("dec.%d", i), h, "") // [N, T, D]
	}
	return g.linear("dec.out", g.layerNorm("dec.ln", h), a.D, a.Width) // [N, T, W]
}

// block is a pre-LayerNorm transformer block: x + attention(ln(x)), then
// x + MLP(ln(x)). bias, added to the attention scores, masks keys out; ""
// for none.
func (g *graph) block(p, x, bias string) string {
	a := g.a
	dh := int64(a.D / a.Heads)
	heads := func(y string, perm ...int64) string {
		return g.transpose(g.reshape(y, 0, 0, int64(a.Heads), dh), perm...) // [N, T, D] -> [N, T, H, D/H] -> perm
	}
	h := g.layerNorm(p+".ln1", x)                                                                          // [N, T, D]
	q := heads(g.op("Mul", g.linear(p+".q", h, a.D, a.D), g.scalar(1/math.Sqrt(float64(dh)))), 0, 2, 1, 3) // [N, H, T, D/H]
	k := heads(g.linear(p+".k", h, a.D, a.D), 0, 2, 3, 1)                                                  // [N, H, D/H, T]
	v := heads(g.linear(p+".v", h, a.D, a.D), 0, 2, 1, 3)                                                  // [N, H, T, D/H]
	att := g.op("MatMul", q, k)                                                                            // [N, H, T, T]
	if bias != "" {
		att = g.op("Add", att, bias) // [N, H, T, T] + [N, 1, 1, T]
	}
	att = g.b.Node("Softmax", []string{att}, onnx.Int("axis", -1))                    // [N, H, T, T]
	y := g.reshape(g.transpose(g.op("MatMul", att, v), 0, 2, 1, 3), 0, 0, int64(a.D)) // [N, H, T, D/H] -> [N, T, D]
	x = g.op("Add", x, g.linearScaled(p+".proj", y, a.D, a.D))                        // [N, T, D]
	m := g.gelu(g.linear(p+".fc", g.layerNorm(p+".ln2", x), a.D, 4*a.D))              // [N, T, 4D]
	return g.op("Add", x, g.linearScaled(p+".fc2", m, 4*a.D, a.D))                    // [N, T, D]
}

// positions sums the learned embeddings of a token's three positions:
// global index, layer and row.
func (g *graph) positions(p, positions string) string {
	var sum string
	for i, name := range []string{"global", "layer", "row"} {
		idx := g.b.Node("Gather", []string{positions, g.int64Scalar(int64(i))}, onnx.Int("axis", 2)) // [N, T, 3] -> [N, T]
		table := g.param(p+"."+name, normal(0.02), int64(g.a.Positions[i]), int64(g.a.D))            // [P_i, D]
		e := g.b.Node("Gather", []string{table, idx})                                                // [N, T, D]
		if sum == "" {
			sum = e
		} else {
			sum = g.op("Add", sum, e)
		}
	}
	return sum
}

// loss is (1−γ)·masked MSE of the reconstruction against target plus
// γ·NT-Xent(τ) between the projected embeddings of the two views of each
// model: sequences i and i+N/2 are views of one model.
func (g *graph) loss(recon, target, mask, embedding string, n int, gamma, tau float64) (loss, rec, ntxent string) {
	d := g.op("Mul", g.op("Sub", recon, target), mask)                         // [N, T, W]
	rec = g.op("Div", g.reduceSum(g.op("Mul", d, d), 0), g.reduceSum(mask, 0)) // []
	loss = rec
	if gamma == 0 {
		return loss, rec, ""
	}
	a := g.a
	z := g.linear("proj.1", embedding, a.Latent, a.Latent)                                   // [N, L]
	z = g.linear("proj.2", g.op("Relu", z), a.Latent, a.Project)                             // [N, P]
	norm := g.op("Sqrt", g.op("Add", g.reduceSum(g.op("Mul", z, z), 1, 1), g.scalar(1e-12))) // [N, 1]
	z = g.op("Div", z, norm)                                                                 // [N, P]
	sim := g.op("MatMul", z, g.transpose(z, 1, 0))                                           // [N, N]
	sim = g.op("Add", g.op("Mul", sim, g.scalar(1/tau)), g.notSelf(n))                       // [N, N]
	ntxent = g.b.Node("SoftmaxCrossEntropyLoss", []string{sim, g.partners(n)})               // []
	loss = g.op("Add", g.op("Mul", rec, g.scalar(1-gamma)), g.op("Mul", ntxent, g.scalar(gamma)))
	return loss, rec, ntxent
}

// notSelf is [N, N] with −1e9 on the diagonal: a view is no candidate for
// its own partner.
func (g *graph) notSelf(n int) string {
	v := make([]float32, n*n)
	for i := range n {
		v[i*n+i] = -1e9
	}
	return g.b.Float(g.b.Fresh("not_self"), []int64{int64(n), int64(n)}, v)
}

// partners is each view's partner: i+N/2 for the first half, i−N/2 for the
// second.
func (g *graph) partners(n int) string {
	v := make([]int64, n)
	for i := range v {
		v[i] = int64((i + n/2) % n)
	}
	return g.b.Initializer(onnx.NewInt64Tensor(g.b.Fresh("partners"), []int64{int64(n)}, v))
}

// linear is x·W + b with W [in, out], the weights drawn as GPT-2's.
func (g *graph) linear(p, x string, in, out int) string {
	return g.affine(p, x, in, out, 0.02)
}

// linearScaled is linear for the projections into the residual stream,
// whose weights GPT-2 shrinks by √(2·layers) so that the stream's variance
// does not grow with depth.
func (g *graph) linearScaled(p, x string, in, out int) string {
	return g.affine(p, x, in, out, 0.02/math.Sqrt(float64(2*g.a.Layers)))
}

func (g *graph) affine(p, x string, in, out int, std float64) string {
	w := g.param(p+".weight", normal(std), int64(in), int64(out))
	bias := g.param(p+".bias", constant(0), int64(out))
	return g.op("Add", g.op("MatMul", x, w), bias) // [..., in] -> [..., out]
}

func (g *graph) layerNorm(p, x string) string {
	scale := g.param(p+".weight", constant(1), int64(g.a.D))
	bias := g.param(p+".bias", constant(0), int64(g.a.D))
	return g.b.Node("LayerNormalization", []string{x, scale, bias}, onnx.Int("axis", -1), onnx.FloatAttr("epsilon", 1e-5))
}

// gelu is GELU in its exact form, x·Φ(x) = x·(½ + ½·erf(x/√2)): Gelu
// itself is an opset-20 op.
func (g *graph) gelu(x string) string {
	phi := g.op("Add", g.op("Mul", g.op("Erf", g.op("Mul", x, g.scalar(1/math.Sqrt2))), g.scalar(0.5)), g.scalar(0.5))
	return g.op("Mul", x, phi)
}

// drawFn draws a parameter's initial values.
type drawFn func(r *rng.Source, v []float32)

func normal(std float64) drawFn {
	return func(r *rng.Source, v []float32) {
		for i := range v {
			v[i] = float32(std * r.Normal())
		}
	}
}

func constant(c float32) drawFn {
	return func(_ *rng.Source, v []float32) {
		for i := range v {
			v[i] = c
		}
	}
}

// param adds a float32 parameter: its value from g.values if there, drawn
// otherwise. Drawing follows the order parameters are made in, so a seed
// gives the same weights as long as the graph is the same.
func (g *graph) param(name string, draw drawFn, dims ...int64) string {
	n := 1
	for _, d := range dims {
		n *= int(d)
	}
	v, ok := g.values[name]
	if !ok || len(v) != n {
		v = make([]float32, n)
		draw(g.rnd, v)
	}
	g.params = append(g.params, name)
	return g.b.Float(name, dims, v)
}

func (g *graph) op(op string, inputs ...string) string { return g.b.Node(op, inputs) }

func (g *graph) transpose(x string, perm ...int64) string {
	return g.b.Node("Transpose", []string{x}, onnx.Ints("perm", perm...))
}

func (g *graph) reshape(x string, shape ...int64) string {
	return g.op("Reshape", x, g.ints(shape...))
}

// slice takes [start, end) along each of axes.
func (g *graph) slice(x string, start, end int64, axes ...int64) string {
	starts, ends := make([]int64, len(axes)), make([]int64, len(axes))
	for i := range axes {
		starts[i], ends[i] = start, end
	}
	return g.op("Slice", x, g.ints(starts...), g.ints(ends...), g.ints(axes...))
}

func (g *graph) concat(axis int64, xs ...string) string {
	return g.b.Node("Concat", xs, onnx.Int("axis", axis))
}

func (g *graph) unsqueeze(x string, axes ...int64) string {
	return g.op("Unsqueeze", x, g.ints(axes...))
}

// reduceSum sums over axes (all of them when none are given).
func (g *graph) reduceSum(x string, keep int64, axes ...int64) string {
	if len(axes) == 0 {
		return g.b.Node("ReduceSum", []string{x}, onnx.Int("keepdims", keep))
	}
	return g.b.Node("ReduceSum", []string{x, g.ints(axes...)}, onnx.Int("keepdims", keep))
}

// scalar is a float32 constant of shape [], made once per value.
func (g *graph) scalar(v float64) string {
	key := fmt.Sprint("f", v)
	if name, ok := g.consts[key]; ok {
		return name
	}
	g.consts[key] = g.b.Float(g.b.Fresh("c"), nil, []float32{float32(v)})
	return g.consts[key]
}

func (g *graph) int64Scalar(v int64) string {
	key := fmt.Sprint("i", v)
	if name, ok := g.consts[key]; ok {
		return name
	}
	g.consts[key] = g.b.Initializer(onnx.NewInt64Tensor(g.b.Fresh("i"), nil, []int64{v}))
	return g.consts[key]
}

// ints is a 1-D int64 constant (shapes, axes), made once per value.
func (g *graph) ints(v ...int64) string {
	key := fmt.Sprint("s", v)
	if name, ok := g.consts[key]; ok {
		return name
	}
	g.consts[key] = g.b.Int64s(g.b.Fresh("ints"), v...)
	return g.consts[key]
}

// dim is a tensor dimension: fixed, or symbolic and named (ONNX's
// dim_param) when negative.
type dim struct {
	size int64
	name string
}

// input declares a graph input of the given dtype and dimensions.
func (g *graph) input(name string, dtype int32, dims ...dim) string {
	g.b.Input(name, dtype, sizes(dims)...)
	nameDims(g.b.Graph().Input[len(g.b.Graph().Input)-1], dims)
	return name
}

// output declares a graph output, renaming the value it is.
func (g *graph) output(name, value string, dims ...dim) {
	g.b.NodeAs(name, "Identity", []string{value})
	g.b.Output(name, onnx.Float, sizes(dims)...)
	nameDims(g.b.Graph().Output[len(g.b.Graph().Output)-1], dims)
}

func sizes(dims []dim) []int64 {
	s := make([]int64, len(dims))
	for i, d := range dims {
		s[i] = d.size
	}
	return s
}

// nameDims gives the symbolic dimensions of v their own names: the
// builder names them all "N".
func nameDims(v *pb.ValueInfoProto, dims []dim) {
	for i, d := range v.GetType().GetTensorType().GetShape().GetDim() {
		if dims[i].size < 0 {
			d.Value = &pb.TensorShapeProto_Dimension_DimParam{DimParam: dims[i].name}
		}
	}
}

package zoo

import (
	"github.com/hyperrep/hyperrep/runtime"

	"fmt"
	"slices"

	"github.com/hyperrep/hyperrep/autodiff"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// A population is P models of one architecture and activation trained in
// one ORT graph. Each model has its own weights, data, learning rate,
// weight decay and dropout masks; nothing mixes across models, so each
// model's gradient is the one it would have alone.
//
// Layout (chosen by BenchmarkLayout and the op measurements of
// ops_bench_test.go): image batches are [B, P·C, H, W], model p's B images
// in the channels of group p, and every convolution is a Conv with group=P.
// (Measured on these machines, a grouped Conv costs what P single-model
// Convs cost, while im2col by Gather and batched MatMul ran 5-8x slower.)
// A convolution followed by a 2×2 max-pool is written as one stride-2
// convolution over the four pooling phases: its weight [P·4·O, C, k+1,
// k+1] holds the k×k kernel at the four offsets (a MatMul of the weight by
// a constant 0/1 matrix, so its gradient flows back to the k×k weight), and
// the pool is the elementwise Max of the four phase outputs (ties share the
// gradient equally, as with autodiff's MaxPool rule). This avoids
// MaxPool's gradient, which on ORT needs either MaxPool's slow Indices
// output or comparisons that broadcast along the innermost axis, both
// several times the cost of the convolution. A small unpooled convolution
// that feeds a fully connected layer (cnn-s's last) is a batched MatMul by
// its Toeplitz matrix instead (toeplitz). Fully connected layers are
// batched MatMuls over [P, B, features]. The weights of all models are one
// flat [P, NumParams] tensor, so that the optimiser is a dozen elementwise
// ops over all of them (per-tensor updates cost ~150 small ORT nodes, a
// sixth of a step), and concatPaddedSlices turns the gradient of the four
// phase slices into one Concat.
//
// layoutPool writes the convolutions as the eval model does (Conv, then
// MaxPool); with P=1 it is the plain single-model training graph, the
// reference of the equivalence tests and the baseline of the benchmarks.
type layout int

const (
	layoutPhase layout = iota
	layoutPool
)

// popSpec fixes the graph of a population.
type popSpec struct {
	arch    *Arch
	act     string
	models  int
	batch   int
	dropout bool   // training graphs take dropout masks
	opt     string // "adam", "adamw" or "sgd"
	layout  layout
	// plainConvs keeps ONNX's Conv where lowerConvs would use ORT's
	// NCHWc kernels (for comparing the two).
	plainConvs bool
}

// Adam's constants, as PyTorch's defaults.
const (
	adamBeta1 = 0.9
	adamBeta2 = 0.999
	adamEps   = 1e-8
)

// stateNames lists the optimiser state kept per parameter.
func stateNames(opt string) []string {
	if opt == "sgd" {
		return []string{"momentum_buffer"}
	}
	return []string{"exp_avg", "exp_avg_sq"}
}

// io is a graph input or output: its name and shape.
type io struct {
	name  string
	dtype int32
	shape []int64
}

// popGraph is a built population graph and how to feed it.
type popGraph struct {
	model   *onnx.Model
	inputs  []io
	outputs []io
	types   map[string]autodiff.Tensor // of the values infer saw
	// inferErr is why infer found no types; the graph keeps its Convs
	// (TestGraphsUseNCHWc).
	inferErr error
}

// infer records the static types of the values of g, a graph on its way to
// becoming g's model, for lower. A graph whose shapes autodiff cannot infer
// keeps its Convs.
func (g *popGraph) infer(gr *pb.GraphProto) {
	sh, err := autodiff.InferShapes(gr)
	if err != nil {
		g.inferErr = err
		return
	}
	g.types = sh.Types
}

// lower moves the model's convolutions to ORT's NCHWc kernels where this
// machine has them (lowerConvs).
func (g *popGraph) lower(s *popSpec) {
	if s.plainConvs || g.types == nil {
		g.types = nil
		return
	}
	if s.blocked() {
		lowerConvs(g.model, g.types, nchwcBlock())
	}
	g.types = nil
}

// blocked reports whether the spec's graphs get ORT's NCHWc convolutions
// (lower).
func (s *popSpec) blocked() bool { return !s.plainConvs && nchwcBlock() > 0 }

// imageInput is the layout of a population's image input: [B, P·C, H, W]
// for convolutional architectures, [P, B, C·H·W] for the MLP.
func (s *popSpec) imageInput(batch int) []int64 {
	a, p, b := s.arch, int64(s.models), int64(batch)
	if a.layers[0].k == 0 {
		return []int64{p, b, int64(a.C * a.H * a.W)}
	}
	return []int64{b, p * int64(a.C), int64(a.H), int64(a.W)}
}

// maskShapes gives the shape of the dropout mask after each hidden layer.
func (s *popSpec) maskShapes(batch int) []io {
	a, p, b := s.arch, int64(s.models), int64(batch)
	var out []io
	for i, l := range a.layers[:len(a.layers)-1] {
		name := "dropout." + l.name
		if l.k == 0 {
			out = append(out, io{name, onnx.Float, []int64{p, b, int64(l.out)}})
			continue
		}
		h, w := a.spatial[i][0]-l.k+1, a.spatial[i][1]-l.k+1
		if l.pool {
			h, w = h/2, w/2
		}
		out = append(out, io{name, onnx.Float, []int64{b, p * int64(l.out), int64(h), int64(w)}})
	}
	return out
}

// weightsInput is the flat weights of all models, [P, NumParams]: each
// model's Params one after the other, in the order of Arch.Params. One flat
// tensor keeps the optimiser's update to a dozen elementwise ops over all
// weights, where per-tensor updates cost ~150 small ORT nodes.
func (s *popSpec) weightsInput() io {
	return io{"weights", onnx.Float, []int64{int64(s.models), int64(s.arch.NumParams())}}
}

// unflatten emits each Param of every model, [P, ...], as a view of the
// flat weights, named after the Param.
func (s *popSpec) unflatten(b *onnx.Builder, flat string) []string {
	var names []string
	off := int64(0)
	for _, p := range s.arch.Params() {
		n := int64(p.Size())
		v := b.Node("Slice", []string{flat, int64s(b, off), int64s(b, off+n), int64s(b, 1)})
		names = append(names, b.NodeAs(p.Name, "Reshape", []string{v, int64s(b, slices.Concat([]int64{int64(s.models)}, p.Shape)...)}))
		off += n
	}
	return names
}

// forward emits the models' logits [P, B, classes] from the image input x;
// masks, if given, are the names of the dropout masks after each hidden
// layer. With shared, x holds one batch that every model sees, [B, C, H,
// W] or [B, D] (an MLP's), and the first layer is one Conv or MatMul
// producing every model's units.
func (s *popSpec) forward(b *onnx.Builder, x string, batch int, masks []string, shared bool) string {
	a := s.arch
	P, B := int64(s.models), int64(batch)
	flat := false // x is [P, B, features] after a convolution (toeplitz)
	for i, l := range a.layers {
		w, bias := l.name+".weight", l.name+".bias"
		O, C := int64(l.out), int64(l.in)
		if l.k > 0 {
			h, wd := int64(a.spatial[i][0]), int64(a.spatial[i][1])
			if s.toeplitz(i) && !(shared && i == 0) {
				x, flat = s.toeplitzConv(b, x, l, w, bias, B, h, wd), true
				if masks != nil { // a hidden layer's, as toeplitz layers are
					// The mask's [B, P·O, h', w'] as [P, B, O·h'·w'].
					oh, ow := h-int64(l.k)+1, wd-int64(l.k)+1
					masks[i] = b.Node("Transpose", []string{reshape(b, masks[i], B, P, O*oh*ow)}, onnx.Ints("perm", 1, 0, 2))
				}
			} else {
				x = s.conv(b, x, l, w, bias, B, h, wd, shared && i == 0, shared)
			}
		} else {
			if i > 0 && a.layers[i-1].k > 0 && !flat {
				// [B, P·O', h, w] -> [B, P, F] -> [P, B, F]
				x = reshape(b, x, B, P, C)
				x = b.Node("Transpose", []string{x}, onnx.Ints("perm", 1, 0, 2))
			}
			// [P, B, in] · [P, in, out] + [P, 1, out] -> [P, B, out]
			// (shared: [B, in] broadcasts over the models)
			wt := b.Node("Transpose", []string{w}, onnx.Ints("perm", 0, 2, 1))
			x = b.Node("Add", []string{b.Node("MatMul", []string{x, wt}), reshape(b, bias, P, 1, O)})
		}
		if i == len(a.layers)-1 {
			break
		}
		x = activate(b, s.act, x)
		if masks != nil {
			x = b.Node("Mul", []string{x, masks[i]})
		}
	}
	return x
}

// toeplitz reports whether layer i, a convolution, runs as a batched
// MatMul by its Toeplitz matrix: a small convolution without pooling whose
// output goes to a fully connected layer, as cnn-s's last (6→4 channels,
// 2×2 on 4×4). ORT runs such a Conv per image and group, as tiny GEMMs
// (and its gradients likewise), where the whole layer is one MatMul over
// [P, B, C·h·w] by a matrix of C·h·w × O·h'·w' entries, most of them zero.
// On cnn-s at P=2 this made a training step 4-6 % faster and evaluation
// 2 % (BenchmarkLayoutParallel, BenchmarkEvaluate).
func (s *popSpec) toeplitz(i int) bool {
	a := s.arch
	l := a.layers[i]
	if s.layout != layoutPhase || l.k == 0 || l.pool || i+1 >= len(a.layers) || a.layers[i+1].k != 0 {
		return false
	}
	h, w := a.spatial[i][0], a.spatial[i][1]
	in, out := l.in*h*w, (h-l.k+1)*(w-l.k+1)
	return in*l.out*out <= toeplitzMax && l.in*l.k*l.k*out*in <= toeplitzMax
}

// toeplitzMax bounds the entries of a Toeplitz matrix per model and of the
// constant that builds it (toeplitzConv): 3,456 and 20,736 on cnn-s.
const toeplitzMax = 1 << 16

// toeplitzConv emits layer l of every model on x [B, P·C, h, w] as
// [P, B, C·h·w] · T[P, C·h·w, O·h'·w'] + bias, giving [P, B, O·h'·w'] in
// the order (o, y, x) a Flatten gives. Tᵀ is each model's weights as [P,
// O, C·k·k] times a constant 0/1 matrix E [C·k·k, h'·w'·C·h·w] that places
// the kernel at each output position, so that the gradient flows back to
// the weights through a MatMul too.
func (s *popSpec) toeplitzConv(b *onnx.Builder, x string, l layer, w, bias string, B, h, wd int64) string {
	P, O, C, k := int64(s.models), int64(l.out), int64(l.in), int64(l.k)
	oh, ow := h-k+1, wd-k+1
	in, out := C*h*wd, oh*ow // input values and output positions per channel
	e := make([]float32, C*k*k*out*in)
	for c := range C {
		for dy := range k {
			for dx := range k {
				row := ((c*k+dy)*k + dx) * out * in
				for i := range oh {
					for j := range ow {
						e[row+(i*ow+j)*in+(c*h+i+dy)*wd+j+dx] = 1
					}
				}
			}
		}
	}
	em := b.Float(b.Fresh(l.name+".toeplitz"), []int64{C * k * k, out * in}, e)
	// [P, O, C·k·k] · E -> [P, O·h'·w', C·h·w], Tᵀ
	tt := reshape(b, b.Node("MatMul", []string{reshape(b, w, P, O, C*k*k), em}), P, O*out, in)
	x = b.Node("Transpose", []string{reshape(b, x, B, P, in)}, onnx.Ints("perm", 1, 0, 2))
	y := b.Node("MatMul", []string{x, b.Node("Transpose", []string{tt}, onnx.Ints("perm", 0, 2, 1))})
	// [P, B, O, h'·w'] + [P, 1, O, 1]
	y = b.Node("Add", []string{reshape(b, y, P, B, O, out), reshape(b, bias, P, 1, O, 1)})
	return reshape(b, y, P, B, O*out)
}

// conv emits layer l of every model on x [B, P·C, h, w], pooled if the
// layer pools, bias added: [B, P·O, h', w']. With shared, x is [B, C, h,
// w], one batch for all models. eval marks the evaluation graph, which
// picks the form of a pooled convolution by evalForm.
func (s *popSpec) conv(b *onnx.Builder, x string, l layer, w, bias string, B, h, wd int64, shared, eval bool) string {
	P, O, C, k := int64(s.models), int64(l.out), int64(l.in), int64(l.k)
	group := P
	if shared {
		group = 1
	}
	// A layer every model sees the same images through is one Conv; with
	// ORT's NCHWc kernels, its Conv and MaxPool run on the blocked layout
	// (lowerConvs, poolBlocked) and beat the four phases, since nothing
	// differentiates them.
	form := formPhases
	if eval && l.pool && !shared {
		form = s.evalForm(l)
	}
	if form == formRows {
		return s.convRows(b, x, l, w, bias, B, h, wd)
	}
	if !l.pool || s.layout == layoutPool || shared && s.blocked() || form == formPool {
		// [P, O, C, k, k] -> [P·O, C, k, k]
		y := b.Node("Conv", []string{x, reshape(b, w, P*O, C, k, k), reshape(b, bias, P*O)},
			onnx.Int("group", group), onnx.Ints("kernel_shape", k, k))
		if l.pool {
			y = b.Node("MaxPool", []string{y}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2))
		}
		return y
	}
	// The four pooling phases (dy, dx) as one kernel of side k+1:
	// [P, O, C, k·k] · E[k·k, 4·(k+1)²] -> [P, O, C, 4, (k+1)²]
	// -> [P, 4, O, C, (k+1)²] -> [P·4·O, C, k+1, k+1].
	k1 := k + 1
	e := b.Float(b.Fresh(l.name+".phases"), []int64{k * k, 4 * k1 * k1}, phaseMatrix(int(k)))
	pw := b.Node("MatMul", []string{reshape(b, w, P, O, C, k*k), e})
	pw = b.Node("Transpose", []string{reshape(b, pw, P, O, C, 4, k1*k1)}, onnx.Ints("perm", 0, 3, 1, 2, 4))
	pw = reshape(b, pw, P*4*O, C, k1, k1)
	oh, ow := (h-k+1)/2, (wd-k+1)/2
	y := b.Node("Conv", []string{x, pw}, onnx.Int("group", group), onnx.Ints("kernel_shape", k1, k1), onnx.Ints("strides", 2, 2))
	// [B, P·4·O, oh, ow] -> [B, P, 4, O, oh·ow]; the max of the phases.
	y = reshape(b, y, B, P, 4, O, oh*ow)
	phases := make([]string, 4)
	for ph := range phases {
		phases[ph] = b.Node("Slice", []string{y, int64s(b, int64(ph)), int64s(b, int64(ph+1)), int64s(b, 2)})
	}
	y = b.Node("Max", phases)
	// The bias, the same for the four phases, goes after their max.
	// [B, P, 1, O, oh·ow] + [P, 1, O, 1] -> [B, P·O, oh, ow]
	y = b.Node("Add", []string{y, reshape(b, bias, P, 1, O, 1)})
	return reshape(b, y, B, P*O, oh, ow)
}

// Forms of a pooled convolution in the evaluation graph.
const (
	formPhases = iota // four pooling phases as channels (conv)
	formRows          // two row phases as channels, columns by MaxPool (convRows)
	formPool          // Conv, then MaxPool
)

// evalForm picks the form of pooled layer l (not the first) in the
// evaluation graph, where nothing differentiates it: on ORT's NCHWc
// kernels, the one of fewest multiply-adds per pooled output, counting the
// output channels per model padded to whole blocks: 4·O·k² for Conv and
// MaxPool (used only where O is whole blocks, so that the MaxPool pools
// the blocked layout), 2·2O·k(k+1) for two row phases, 4O·(k+1)² for four
// phases. cnn-s's second layer (O = 6, k = 5, blocks of 16) takes the row
// phases, 17 % fewer than the four (15,360 against 18,432 per model and
// position); scoring ran 9 % faster. Without the NCHWc kernels the four
// phases stay (the ONNX Conv measurements of evalGraph).
func (s *popSpec) evalForm(l layer) int {
	bs := nchwcBlock()
	if !s.blocked() || bs%2 != 0 || s.layout != layoutPhase {
		return formPhases
	}
	O, k := int64(l.out), int64(l.k)
	form, best := formPhases, wholeBlocks(4*O, bs)*(k+1)*(k+1)
	if c := 2 * wholeBlocks(2*O, bs) * k * (k + 1); c < best {
		form, best = formRows, c
	}
	if c := 4 * O * k * k; O%bs == 0 && c < best {
		form = formPool
	}
	return form
}

// convRows emits pooled layer l of every model on x [B, P·C, h, w] as two
// row phases: one stride-(2, 1) Conv whose (k+1)×k kernel holds the k×k
// one at rows 0 and 1, the columns pooled by a 1×2 MaxPool and the rows by
// the max of the two phases: [B, P·O, h', w']. The bias is the Conv's, the
// same for both phases (max(a+b, c+b) = max(a, c)+b in floats too). On
// ORT's NCHWc kernels the output channels per model, 2·O, are padded to
// whole blocks here, O to O' (zero weights and bias, dropped after the
// max), so that the lowered Conv's output needs no unpadding and the
// MaxPool pools the blocked layout (poolBlocked).
func (s *popSpec) convRows(b *onnx.Builder, x string, l layer, w, bias string, B, h, wd int64) string {
	P, O, C, k := int64(s.models), int64(l.out), int64(l.in), int64(l.k)
	k1 := k + 1
	Op := O
	if bs := nchwcBlock(); s.blocked() {
		Op = wholeBlocks(2*O, bs) / 2
	}
	e := make([]float32, k*k*2*k1*k)
	for ph := range int64(2) {
		for i := range k {
			for j := range k {
				e[(i*k+j)*2*k1*k+ph*k1*k+(i+ph)*k+j] = 1
			}
		}
	}
	em := b.Float(b.Fresh(l.name+".rows"), []int64{k * k, 2 * k1 * k}, e)
	wr := reshape(b, w, P, O, C*k*k)
	br := bias
	if Op > O {
		wr = b.Node("Pad", []string{wr, int64s(b, 0, 0, 0, 0, Op-O, 0)})
		br = b.Node("Pad", []string{br, int64s(b, 0, 0, 0, Op-O)})
	}
	// [P, O', C, k·k] · E[k·k, 2·(k+1)·k] -> [P, O', C, 2, (k+1)·k]
	// -> [P, 2, O', C, (k+1)·k] -> [P·2·O', C, k+1, k].
	pw := b.Node("MatMul", []string{reshape(b, wr, P, Op, C, k*k), em})
	pw = b.Node("Transpose", []string{reshape(b, pw, P, Op, C, 2, k1*k)}, onnx.Ints("perm", 0, 3, 1, 2, 4))
	pw = reshape(b, pw, P*2*Op, C, k1, k)
	pb := b.Node("Expand", []string{reshape(b, br, P, 1, Op), int64s(b, P, 2, Op)})
	oh, cols := (h-k+1)/2, wd-k+1
	y := b.Node("Conv", []string{x, pw, reshape(b, pb, P*2*Op)}, onnx.Int("group", P),
		onnx.Ints("kernel_shape", k1, k), onnx.Ints("strides", 2, 1))
	y = b.Node("MaxPool", []string{y}, onnx.Ints("kernel_shape", 1, 2), onnx.Ints("strides", 1, 2))
	ow := cols / 2
	// [B, P·2·O', oh, ow] -> [B, P, 2, O', oh·ow]; the max of the phases
	// (a ReduceMax after reduceMaxPhases).
	y = reshape(b, y, B, P, 2, Op, oh*ow)
	phases := make([]string, 2)
	for ph := range phases {
		phases[ph] = b.Node("Slice", []string{y, int64s(b, int64(ph)), int64s(b, int64(ph+1)), int64s(b, 2)})
	}
	y = b.Node("Max", phases)
	if Op > O {
		y = b.Node("Slice", []string{y, int64s(b, 0), int64s(b, O), int64s(b, 3)})
	}
	return reshape(b, y, B, P*O, oh, ow)
}

// phaseMatrix places a k×k kernel, flattened, at the four offsets (dy, dx)
// ∈ {0,1}² of a (k+1)×(k+1) kernel, phase dy·2+dx.
func phaseMatrix(k int) []float32 {
	k1 := k + 1
	m := make([]float32, k*k*4*k1*k1)
	for ph := range 4 {
		dy, dx := ph/2, ph%2
		for i := range k {
			for j := range k {
				m[(i*k+j)*4*k1*k1+ph*k1*k1+(i+dy)*k1+j+dx] = 1
			}
		}
	}
	return m
}

// reshape emits a Reshape of x to a static shape.
func reshape(b *onnx.Builder, x string, shape ...int64) string {
	return b.Node("Reshape", []string{x, int64s(b, shape...)})
}

// int64s is a constant 1-D int64 tensor, emitted once per value.
func int64s(b *onnx.Builder, v ...int64) string {
	name := "i64"
	for _, x := range v {
		name += fmt.Sprintf("_%d", x)
	}
	for _, t := range b.Graph().GetInitializer() {
		if t.GetName() == name {
			return name
		}
	}
	return b.Int64s(name, v...)
}

// trainGraph builds one training step of the population: forward, loss,
// gradients (autodiff) and the optimiser's update. Inputs, in order:
// images, labels [P·B] int64, sample weights [P·B] (1/n for the n real
// samples of a model's batch, 0 for padding), the dropout masks if any,
// the flat weights [P, NumParams], the optimiser state (as many tensors of
// that shape as stateNames lists), then lr and weight_decay [P, 1], and
// momentum [P, 1] (sgd) or step [] (adam, adamw: the 1-based step count).
// Outputs: each model's loss (its weighted sum, the batch mean) and correct
// count [P], then the new weights and state. The max over the pooling
// phases and its gradient are then fused (fuseMaxGradients,
// reduceMaxPhases), and in the phase layout the convolutions' input
// gradients become MatMuls and ScatterNDs (scatterTransposedConvs).
func (s *popSpec) trainGraph() (*popGraph, error) {
	g, err := s.gradientGraph()
	if err != nil {
		return nil, err
	}
	fuseMaxGradients(g.model.Graph())
	reduceMaxPhases(g.model.Graph())
	if s.layout == layoutPhase && g.types != nil {
		scatterTransposedConvs(g.model.Graph(), g.types)
	}
	g.lower(s)
	return g, nil
}

// gradientGraph is trainGraph as autodiff writes it, before fusion.
func (s *popSpec) gradientGraph() (*popGraph, error) {
	P, B := int64(s.models), int64(s.batch)
	b := onnx.NewBuilder("population", autodiff.Opset)
	g := &popGraph{}
	in := func(b *onnx.Builder, v io) string {
		g.inputs = append(g.inputs, v)
		return b.Input(v.name, v.dtype, v.shape...)
	}
	x := in(b, io{"images", onnx.Float, s.imageInput(s.batch)})
	labels := in(b, io{"labels", onnx.Int64, []int64{P * B}})
	weights := in(b, io{"sample_weights", onnx.Float, []int64{P * B}})
	var masks []string
	if s.dropout {
		for _, m := range s.maskShapes(s.batch) {
			masks = append(masks, in(b, m))
		}
	}
	wv := s.weightsInput()
	flat := in(b, wv)
	params := s.unflatten(b, flat)
	logits := s.forward(b, x, s.batch, masks, false)
	K := int64(s.arch.Classes)
	scores := reshape(b, logits, P*B, K)
	ce := b.Node("SoftmaxCrossEntropyLoss", []string{scores, labels}, onnx.Str("reduction", "none"))
	perSample := b.Node("Mul", []string{ce, weights})
	loss := b.NodeAs("loss", "ReduceSum", []string{perSample}, onnx.Int("keepdims", 0))
	b.Output(loss, onnx.Float)

	res, err := autodiff.Gradients(b.Model().Graph(), loss, params)
	if err != nil {
		return nil, fmt.Errorf("zoo: population graph: %w", err)
	}
	gr := res.Graph
	concatPaddedSlices(gr)
	g.infer(gr)
	gr.Output = nil
	e := onnx.Extend(gr, autodiff.Opset, "step/")
	out := func(name string, dtype int32, shape []int64) {
		e.Output(name, dtype, shape...)
		g.outputs = append(g.outputs, io{name, dtype, shape})
	}
	modelLoss, correct := metrics(e, scores, perSample, labels, weights, P, B)
	out(e.NodeAs("model_loss", "Identity", []string{modelLoss}), onnx.Float, []int64{P})
	out(e.NodeAs("model_correct", "Identity", []string{correct}), onnx.Float, []int64{P})

	// The gradient of the flat weights: [P, ...] per Param -> [P, NumParams].
	var parts []string
	for i, p := range s.arch.Params() {
		parts = append(parts, reshape(e, res.Grads[params[i]], P, int64(p.Size())))
	}
	grad := e.Node("Concat", parts, onnx.Int("axis", 1))
	var state []string
	for _, sn := range stateNames(s.opt) {
		state = append(state, in(e, io{sn, onnx.Float, wv.shape}))
	}
	u := &update{b: e, opt: s.opt, lr: in(e, io{"lr", onnx.Float, []int64{P, 1}}),
		wd: in(e, io{"weight_decay", onnx.Float, []int64{P, 1}})}
	if s.opt == "sgd" {
		u.momentum = in(e, io{"momentum", onnx.Float, []int64{P, 1}})
	} else {
		u.step = in(e, io{"step", onnx.Float, nil})
	}
	nw, ns := u.apply(flat, grad, state)
	out(e.NodeAs("new_weights", "Identity", []string{nw}), onnx.Float, wv.shape)
	for k, sn := range stateNames(s.opt) {
		out(e.NodeAs("new_"+sn, "Identity", []string{ns[k]}), onnx.Float, wv.shape)
	}
	g.model = e.Model()
	return g, nil
}

// metrics emits each model's summed sample loss and its count of correct
// predictions among real samples, both [P].
func metrics(b *onnx.Builder, logits, perSample, labels, weights string, P, B int64) (loss, correct string) {
	loss = b.Node("ReduceSum", []string{reshape(b, perSample, P, B), int64s(b, 1)}, onnx.Int("keepdims", 0))
	pred := b.Node("ArgMax", []string{logits}, onnx.Int("axis", 1), onnx.Int("keepdims", 0))
	hit := b.Node("And", []string{
		b.Node("Equal", []string{pred, labels}),
		b.Node("Greater", []string{weights, constFloat(b, "metrics.zero", 0)}),
	})
	hitf := b.Node("Cast", []string{hit}, onnx.Int("to", int64(onnx.Float)))
	correct = b.Node("ReduceSum", []string{reshape(b, hitf, P, B), int64s(b, 1)}, onnx.Int("keepdims", 0))
	return loss, correct
}

// evalGraph builds the forward pass of the population on a batch of images
// that every model sees: inputs images [B, C·H·W], labels [B] int64,
// sample weights [B] (1 for real samples, 0 for padding), then the weights;
// outputs each model's summed cross-entropy and correct count [P].
func (s *popSpec) evalGraph(batch int) (*popGraph, error) {
	a := s.arch
	P, B, D := int64(s.models), int64(batch), int64(a.C*a.H*a.W)
	b := onnx.NewBuilder("population_eval", autodiff.Opset)
	g := &popGraph{}
	in := func(v io) string {
		g.inputs = append(g.inputs, v)
		return b.Input(v.name, v.dtype, v.shape...)
	}
	shared := in(io{"images", onnx.Float, []int64{B, D}})
	labels := in(io{"labels", onnx.Int64, []int64{B}})
	weights := in(io{"sample_weights", onnx.Float, []int64{B}})
	s.unflatten(b, in(s.weightsInput()))
	x := shared
	if a.layers[0].k > 0 {
		x = reshape(b, shared, B, int64(a.C), int64(a.H), int64(a.W))
	}
	// The first layer is shared. With ONNX's Conv kernels the phase
	// layout is the faster forward pass for the layers after it (7.7 µs
	// per model-sample for cnn-s against 10 µs with Conv and MaxPool);
	// on the NCHWc ones (lower) it took 5.6 µs, and 4.4 µs with the
	// shared layer as Conv and MaxPool on the blocked layout.
	logits := reshape(b, s.forward(b, x, batch, nil, true), P*B, int64(a.Classes))
	g.infer(b.Graph())
	// Every model is scored on the same labels and weights: [B] -> [P·B].
	lab := reshape(b, b.Node("Expand", []string{reshape(b, labels, 1, B), int64s(b, P, B)}), P*B)
	wts := reshape(b, b.Node("Expand", []string{reshape(b, weights, 1, B), int64s(b, P, B)}), P*B)
	ce := b.Node("SoftmaxCrossEntropyLoss", []string{logits, lab}, onnx.Str("reduction", "none"))
	loss, correct := metrics(b, logits, b.Node("Mul", []string{ce, wts}), lab, wts, P, B)
	for _, o := range []struct{ name, v string }{{"model_loss", loss}, {"model_correct", correct}} {
		b.NodeAs(o.name, "Identity", []string{o.v})
		b.Output(o.name, onnx.Float, P)
		g.outputs = append(g.outputs, io{o.name, onnx.Float, []int64{P}})
	}
	g.model = b.Model()
	reduceMaxPhases(g.model.Graph())
	g.lower(s)
	return g, nil
}

// splitPrep moves the nodes of the evaluation graph g that depend on its
// weights input alone (with constants), in the standard domain, into a
// graph of their own and opens it: that session maps the weights to the
// values the rest of g reads, which replace the weights among g's inputs,
// in the order of prepared. Their shapes are what the session gives on
// zero weights.
func (g *popGraph) splitPrep(opts runtime.Options) (prep *runtime.Session, prepared []io, err error) {
	const weights = "weights"
	gr := g.model.Graph()
	_, inits := graphIndex(gr)
	derived := map[string]bool{weights: true}
	var hoisted, kept []*pb.NodeProto
	for _, n := range gr.Node {
		dep, ok := false, n.GetDomain() == "" || n.GetDomain() == "ai.onnx"
		for _, in := range n.Input {
			switch {
			case in == "":
			case derived[in]:
				dep = true
			case inits[in] == nil:
				ok = false
			}
		}
		if !dep || !ok {
			kept = append(kept, n)
			continue
		}
		hoisted = append(hoisted, n)
		for _, o := range n.Output {
			derived[o] = true
		}
	}
	var boundary []string
	seen := map[string]bool{}
	for _, n := range kept {
		for _, in := range n.Input {
			if derived[in] && !seen[in] {
				if in == weights {
					return nil, nil, fmt.Errorf("zoo: the evaluation graph reads its weights unprepared")
				}
				seen[in] = true
				boundary = append(boundary, in)
			}
		}
	}
	var win io
	for _, v := range g.inputs {
		if v.name == weights {
			win = v
		}
	}
	b := onnx.NewBuilder("population_prep", autodiff.Opset)
	b.Input(weights, win.dtype, win.shape...)
	pg := b.Graph()
	pg.Node = hoisted
	used := map[string]bool{}
	for _, n := range hoisted {
		for _, in := range n.Input {
			if t := inits[in]; t != nil && !used[in] {
				used[in] = true
				pg.Initializer = append(pg.Initializer, t)
			}
		}
	}
	for _, v := range boundary {
		name := v
		tt := &pb.TypeProto_Tensor{ElemType: ptr(int32(onnx.Float))}
		pg.Output = append(pg.Output, &pb.ValueInfoProto{Name: &name, Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{TensorType: tt}}})
	}
	prep, err = (&popGraph{model: b.Model()}).load(opts, "evaluation's weights")
	if err != nil {
		return nil, nil, err
	}
	n := win.shape[0] * win.shape[1]
	outs, err := prep.Run(runtime.NewTensor(win.shape, make([]float32, n)))
	if err != nil {
		prep.Close()
		return nil, nil, err
	}
	for i, v := range boundary {
		prepared = append(prepared, io{v, onnx.Float, outs[i].Shape})
	}
	// g without them: the prepared values as inputs, the weights' gone.
	gr.Node = kept
	var ins []*pb.ValueInfoProto
	var ios []io
	for i, v := range gr.Input {
		if v.GetName() != weights {
			ins = append(ins, v)
			ios = append(ios, g.inputs[i])
		}
	}
	gr.Input = ins
	e := onnx.Extend(gr, autodiff.Opset, "prep/")
	for _, v := range prepared {
		e.Input(v.name, v.dtype, v.shape...)
	}
	g.inputs = append(ios, prepared...)
	gr.Initializer = slices.DeleteFunc(gr.Initializer, func(t *pb.TensorProto) bool {
		for _, n := range kept {
			if slices.Contains(n.Input, t.GetName()) {
				return false
			}
		}
		return true
	})
	return prep, prepared, nil
}

// update emits optimiser steps with per-model hyperparameters, as PyTorch
// computes them: Adam and SGD add weight_decay·w to the gradient (L2),
// AdamW decays the weight itself; SGD's momentum buffer starts at zero,
// which for dampening 0 equals PyTorch's first-step copy of the gradient.
// autodiff's optimisers do the same per parameter group, with the
// hyperparameters as constants and a scalar learning rate per group; a
// population needs them per model, as [P, 1] tensors over its flat
// weights, so they are emitted here (and checked against autodiff.Trainer
// in TestPopulationMatchesTrainer).
// load opens the graph in ONNX Runtime; what names it in errors.
func (g *popGraph) load(opts runtime.Options, what string) (*runtime.Session, error) {
	raw, err := g.model.Marshal()
	if err != nil {
		return nil, err
	}
	sess, err := runtime.NewSession(raw, opts)
	if err != nil {
		return nil, fmt.Errorf("zoo: loading the %s graph: %w", what, err)
	}
	return sess, nil
}

type update struct {
	b                      *onnx.Builder
	opt                    string
	lr, wd, momentum, step string // [P, 1], [P, 1], [P, 1], []
}

// apply returns the new weights and state given the weights w, their
// gradient and the state, all [P, N].
func (u *update) apply(w, grad string, state []string) (string, []string) {
	b := u.b
	c := func(v float64) string { return constFloat(b, fmt.Sprintf("opt.c%g", v), float32(v)) }
	mul := func(x, y string) string { return b.Node("Mul", []string{x, y}) }
	add := func(x, y string) string { return b.Node("Add", []string{x, y}) }
	sub := func(x, y string) string { return b.Node("Sub", []string{x, y}) }
	div := func(x, y string) string { return b.Node("Div", []string{x, y}) }
	g := grad
	if u.opt != "adamw" {
		g = add(g, mul(u.wd, w))
	}
	if u.opt == "sgd" {
		buf := add(mul(u.momentum, state[0]), g)
		return sub(w, mul(u.lr, buf)), []string{buf}
	}
	if u.opt == "adamw" {
		w = mul(w, sub(c(1), mul(u.lr, u.wd)))
	}
	m := add(mul(c(adamBeta1), state[0]), mul(c(1-adamBeta1), g))
	v := add(mul(c(adamBeta2), state[1]), mul(c(1-adamBeta2), mul(g, g)))
	bc1 := sub(c(1), b.Node("Pow", []string{c(adamBeta1), u.step}))
	bc2 := sub(c(1), b.Node("Pow", []string{c(adamBeta2), u.step}))
	denom := add(div(b.Node("Sqrt", []string{v}), b.Node("Sqrt", []string{bc2})), c(adamEps))
	return sub(w, mul(div(u.lr, bc1), div(m, denom))), []string{m, v}
}

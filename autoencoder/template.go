package autoencoder

import (
	"fmt"
	"math"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/runtime"
	"github.com/hyperrep/hyperrep/tokenizer"
)

// Mappings: how DecodeTemplate fills a template of another architecture
// than the zoo's (other widths, more or fewer layers) from latents in the
// zoo's layout. Both map every layer of the template to a layer of the zoo
// (see mapLayers) and unit u of a layer to unit u mod U of its source, U
// the source's units.
const (
	// MapUnits decodes the latents as the zoo's model, then fills each
	// template tensor from its source tensor value by value: every index
	// modulo the source's size along that axis, and weights along the
	// input axis divided by how many template inputs share a source
	// input. This is Net2Net's widening (Chen et al., 2016): a template
	// that only widens the zoo's layers computes exactly the function of
	// the decoded zoo model.
	MapUnits = "units"
	// MapTokens is SANE's way: the template's tokens are decoded in the
	// template's order, each from the latent of its source token (same
	// row modulo the source's rows, same token of the row modulo the
	// source row's tokens) at that token's position, since positions
	// beyond the zoo's have no trained embedding. A row longer than its
	// source is padded with zeros past the source's values; a shorter
	// one is cut.
	MapTokens = "tokens"
)

// DecodeTemplate turns per-token latents in the zoo's layout [Tokens·Latent]
// into weights written into a copy of template, whatever its architecture:
// a template laid out as the zoo's is Decode's; any other is filled by
// mapping (MapUnits or MapTokens).
func (m *Model) DecodeTemplate(latents []float32, template *onnx.Model, mapping string) (*onnx.Model, error) {
	if mapping != MapUnits && mapping != MapTokens {
		return nil, fmt.Errorf("autoencoder: mapping %q, want %s or %s", mapping, MapUnits, MapTokens)
	}
	if len(latents) != m.frame.tokens*m.Meta.Arch.Latent {
		return nil, fmt.Errorf("autoencoder: %d latent values, want %d tokens × %d", len(latents), m.frame.tokens, m.Meta.Arch.Latent)
	}
	t, err := tokenizer.Tokenize(template, tokenizer.Options{TokenSize: m.Meta.Config.TokenSize})
	if err != nil {
		return nil, err
	}
	if m.frame.fits(t) == "" {
		return m.decodeInto(latents, t, template)
	}
	if len(t.Layout.Layers) == 0 {
		return nil, fmt.Errorf("autoencoder: the template has no weights")
	}
	src := mapLayers(m.Meta.Layout, t.Layout)
	zr, tr := rowStarts(m.frame.positions), rowStarts(int32s(t.Positions))
	out := *t
	out.Exact = nil
	out.Values = make([]float32, len(t.Values))
	if mapping == MapTokens {
		err = m.fillTokens(out.Values, latents, t, src, zr, tr)
	} else {
		err = m.fillUnits(out.Values, latents, t, src, zr, tr)
	}
	if err != nil {
		return nil, err
	}
	return tokenizer.Detokenize(&out, template)
}

// Fits reports whether model's weights are laid out as the zoo's: nil if
// they are, an error matching ErrLayout (or the tokenizer's) if not.
func (m *Model) Fits(model *onnx.Model) error {
	_, _, err := m.tokens(model)
	return err
}

// MapLayers returns, for each layer of template's token layout, the index
// of the zoo's layer (in Meta.Layout) DecodeTemplate fills it from.
func (m *Model) MapLayers(template *onnx.Model) ([]int, error) {
	t, err := tokenizer.Tokenize(template, tokenizer.Options{TokenSize: m.Meta.Config.TokenSize})
	if err != nil {
		return nil, err
	}
	return mapLayers(m.Meta.Layout, t.Layout), nil
}

// mapLayers maps each template layer to a zoo layer: the template's last
// layer (the classifier) to the zoo's last; every other layer to the zoo
// layer of the same op (Gemm and MatMul count as one) and the same rank
// among the layers of that op, the zoo's last layer left out, or to the
// last such layer when the template has more: extra layers are filled as
// identities where their shape allows (see identity), else repeat the
// deepest hidden layer of their kind. A layer whose op the zoo lacks
// maps by relative depth among all layers.
func mapLayers(zoo, tpl tokenizer.Layout) []int {
	kind := func(op string) string {
		if op == "Gemm" || op == "MatMul" {
			return "dense"
		}
		return op
	}
	nz, nt := len(zoo.Layers), len(tpl.Layers)
	group := map[string][]int{} // the zoo's hidden layers by kind
	for i, x := range zoo.Layers[:nz-1] {
		group[kind(x.Op)] = append(group[kind(x.Op)], i)
	}
	src := make([]int, nt)
	rank := map[string]int{}
	for i, x := range tpl.Layers {
		k := kind(x.Op)
		q := rank[k]
		rank[k]++
		switch z := group[k]; {
		case i == nt-1:
			src[i] = nz - 1
		case len(z) > 0:
			src[i] = z[min(q, len(z)-1)]
		case nt == 1:
			src[i] = 0
		default:
			src[i] = int(math.Round(float64(i) * float64(nz-1) / float64(nt-1)))
		}
	}
	return src
}

// rowStarts maps (layer, row) to the index of the row's first token.
func rowStarts(positions []int64) map[[2]int64]int {
	r := map[[2]int64]int{}
	for k := 0; k < len(positions)/3; k++ {
		key := [2]int64{positions[3*k+1], positions[3*k+2]}
		if _, ok := r[key]; !ok {
			r[key] = k
		}
	}
	return r
}

func int32s(p []int32) []int64 {
	out := make([]int64, len(p))
	for i, v := range p {
		out[i] = int64(v)
	}
	return out
}

// rowTokens counts the tokens of row (layer, row) starting at token k.
func rowTokens(positions []int64, k int) int {
	n := 0
	for j := k; j < len(positions)/3 && positions[3*j+1] == positions[3*k+1] && positions[3*j+2] == positions[3*k+2]; j++ {
		n++
	}
	return n
}

// fillTokens is MapTokens.
func (m *Model) fillTokens(dst, latents []float32, t *tokenizer.Tokens, src []int, zr, tr map[[2]int64]int) error {
	f, l, w := m.frame, m.Meta.Arch.Latent, t.Width
	n := t.Len()
	tp := int32s(t.Positions)
	from := make([]int, n) // the zoo token each template token is decoded from
	for k := range n {
		layer, row := tp[3*k+1], tp[3*k+2]
		q := k - tr[[2]int64{layer, row}]
		s := int64(src[layer])
		srows := int64(m.Meta.Layout.Layers[s].Rows)
		start, ok := zr[[2]int64{s, row % srows}]
		if !ok {
			return fmt.Errorf("autoencoder: the zoo's layer %d has no row %d", s, row%srows)
		}
		from[k] = start + q%rowTokens(f.positions, start)
	}
	z := make([]float32, n*l)
	pos := make([]int64, n*3)
	for k, s := range from {
		copy(z[k*l:(k+1)*l], latents[s*l:(s+1)*l])
		copy(pos[3*k:3*k+3], f.positions[3*s:3*s+3])
	}
	norm, err := m.decodeSeq(z, pos, n)
	if err != nil {
		return err
	}
	for k, s := range from {
		for c := range w {
			if f.mask[s*w+c] != 0 && t.Mask[k*w+c] != 0 {
				nm := f.norms[f.group[s*w+c]]
				dst[k*w+c] = float32(float64(norm[k*w+c])*nm.Std + nm.Mean)
			}
		}
	}
	return nil
}

// fillUnits is MapUnits.
func (m *Model) fillUnits(dst, latents []float32, t *tokenizer.Tokens, src []int, zr, tr map[[2]int64]int) error {
	f, w := m.frame, t.Width
	norm, err := m.decodeSeq(latents, f.positions, f.tokens)
	if err != nil {
		return err
	}
	raw := make([]float32, len(norm))
	f.denormalise(raw, norm)
	copy(dst, t.Values) // tensors without a source keep the template's values
	seen := map[int]bool{}
	for j, tl := range t.Layout.Layers {
		sl := m.Meta.Layout.Layers[src[j]]
		extra := seen[src[j]] && j != len(t.Layout.Layers)-1
		seen[src[j]] = true
		if extra && identity(dst, tl, j, w, tr) {
			continue
		}
		for ti, tt := range tl.Tensors {
			if ti >= len(sl.Tensors) {
				continue
			}
			st := sl.Tensors[ti]
			tDims, sDims := otherDims(tt), otherDims(st)
			sameRank := len(tDims) == len(sDims)
			in := -1 // the input axis among the other dims, for weights
			if tt.Role == onnx.RoleWeight && sameRank && len(tDims) > 0 {
				in = 0
			}
			idx := make([]int, len(tDims))
			for u := range tt.Units {
				su := u % max(st.Units, 1)
				tStart, ok1 := tr[[2]int64{int64(j), int64(tt.Row + u)}]
				sStart, ok2 := zr[[2]int64{int64(src[j]), int64(st.Row + su)}]
				if !ok1 || !ok2 {
					continue
				}
				for i := range tt.PerRow {
					si := 0
					scale := 1.0
					if sameRank {
						// i as a multi-index over tDims, mapped axis by axis.
						rem := i
						for a := len(tDims) - 1; a >= 0; a-- {
							idx[a] = rem % tDims[a]
							rem /= tDims[a]
						}
						stride := 1
						for a := len(sDims) - 1; a >= 0; a-- {
							si += (idx[a] % sDims[a]) * stride
							stride *= sDims[a]
						}
						if in >= 0 && tDims[in] > sDims[in] {
							r := idx[in] % sDims[in]
							scale = 1 / float64((tDims[in]-1-r)/sDims[in]+1)
						}
					} else {
						si = i % max(st.PerRow, 1)
					}
					tc, sc := tt.Offset+i, st.Offset+si
					tk, sk := tStart+tc/w, sStart+sc/w
					dst[tk*w+tc%w] = float32(float64(raw[sk*w+sc%w]) * scale)
				}
			}
		}
	}
	return nil
}

// identity fills layer j of the template, an extra layer the zoo has no
// counterpart of, as Net2Net deepens (Chen et al., 2016): a weight whose
// units match its inputs becomes the identity (1 at the kernel's centre),
// its bias 0, so that the layer passes its input on and, under ReLU after
// ReLU, the deeper model computes the zoo model's function. Reports
// whether it did; a layer of another shape is left to the usual mapping.
func identity(dst []float32, tl tokenizer.Layer, j, w int, tr map[[2]int64]int) bool {
	var weight *tokenizer.Tensor
	for i := range tl.Tensors {
		if tl.Tensors[i].Role == onnx.RoleWeight {
			weight = &tl.Tensors[i]
		}
	}
	if weight == nil || weight.UnitAxis != 0 {
		return false
	}
	dims := otherDims(*weight)
	if len(dims) == 0 || dims[0] != weight.Units {
		return false
	}
	for _, tt := range tl.Tensors {
		if tt.Role != onnx.RoleWeight && tt.Role != onnx.RoleBias {
			continue
		}
		for u := range tt.Units {
			start, ok := tr[[2]int64{int64(j), int64(tt.Row + u)}]
			if !ok {
				continue
			}
			for i := range tt.PerRow {
				v := float32(0)
				if tt.Role == onnx.RoleWeight {
					// i as a multi-index over the row's dims: input
					// channel first, then the kernel's axes.
					rem, centre := i, true
					for a := len(dims) - 1; a >= 1; a-- {
						centre = centre && rem%dims[a] == dims[a]/2
						rem /= dims[a]
					}
					if centre && rem == u {
						v = 1
					}
				}
				tc := tt.Offset + i
				dst[(start+tc/w)*w+tc%w] = v
			}
		}
	}
	return true
}

// otherDims are a tensor's dims without its unit axis: the shape of one row.
func otherDims(t tokenizer.Tensor) []int {
	var d []int
	for a, v := range t.Dims {
		if a != t.UnitAxis {
			d = append(d, int(v))
		}
	}
	return d
}

// decodeSeq decodes n tokens' latents [n·Latent] at their positions [n·3]
// window by window (windows of Meta.Window, or all n tokens when fewer,
// Meta.Stride apart) and averages the windows: normalised values [n·W].
func (m *Model) decodeSeq(latents []float32, positions []int64, n int) ([]float32, error) {
	f, l := m.frame, m.Meta.Arch.Latent
	w := min(m.Meta.Window, n)
	starts := windows(n, w, m.Meta.Stride)
	sum := make([]float32, n*f.width)
	count := make([]float32, n)
	for lo := 0; lo < len(starts); lo += windowsPerRun {
		part := starts[lo:min(lo+windowsPerRun, len(starts))]
		k := len(part)
		z := make([]float32, 0, k*w*l)
		pos := make([]int64, 0, k*w*3)
		for _, s := range part {
			z = append(z, latents[s*l:(s+w)*l]...)
			pos = append(pos, positions[3*s:3*(s+w)]...)
		}
		out, err := m.dec.Run(runtime.NewTensor([]int64{int64(k), int64(w), int64(l)}, z),
			runtime.NewTensor([]int64{int64(k), int64(w), 3}, pos))
		if err != nil {
			return nil, fmt.Errorf("autoencoder: decoder: %w", err)
		}
		y := out[0].Data.([]float32)
		for j, s := range part {
			dst := sum[s*f.width : (s+w)*f.width]
			for i, v := range y[j*w*f.width : (j+1)*w*f.width] {
				dst[i] += v
			}
			for k := s; k < s+w; k++ {
				count[k]++
			}
		}
	}
	for i := range sum {
		sum[i] /= count[i/f.width]
	}
	return sum, nil
}

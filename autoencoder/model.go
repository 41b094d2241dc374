package autoencoder

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/runtime"
	"github.com/hyperrep/hyperrep/tokenizer"
)

// Model is a fitted hyper-representation, as Fit writes it: encoder.onnx
// and decoder.onnx in ONNX Runtime sessions, and what hyperrep.json says
// about tokens, normalisation and windows.
type Model struct {
	Meta Meta
	// Template is template.onnx, a checkpoint of the zoo: the graph
	// decoded weights go into when no other template is given.
	Template *onnx.Model

	frame    *frame
	enc, dec *runtime.Session
}

// windowsPerRun caps the windows encoded or decoded in one ORT run.
const windowsPerRun = 64

// ErrLayout is matched (errors.Is) by the errors of a model whose tokens
// are not laid out as the hyper-representation's zoo's are.
var ErrLayout = errors.New("autoencoder: the model's weights are not laid out as the zoo's")

// Open loads the hyper-representation in dir. The caller must Close it.
func Open(dir string, opts runtime.Options) (*Model, error) {
	data, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("autoencoder: %s is not a hyper-representation (no %s)", dir, metaFile)
		}
		return nil, fmt.Errorf("autoencoder: %w", err)
	}
	m := &Model{}
	if err := json.Unmarshal(data, &m.Meta); err != nil {
		return nil, fmt.Errorf("autoencoder: %s: %v", filepath.Join(dir, metaFile), err)
	}
	if m.Meta.Format != FormatVersion {
		return nil, fmt.Errorf("autoencoder: %s: format %d, this hyperrep reads format %d", dir, m.Meta.Format, FormatVersion)
	}
	if m.Template, err = onnx.Read(filepath.Join(dir, templateFile)); err != nil {
		return nil, err
	}
	t, err := tokenizer.Tokenize(m.Template, tokenizer.Options{TokenSize: m.Meta.Config.TokenSize})
	if err != nil {
		return nil, err
	}
	m.frame = newFrame(t, m.Meta.Config.Normalise)
	if m.frame.tokens != m.Meta.Tokens || !sameGroups(m.Meta.Norms, m.frame.groups) || m.Meta.Window < 1 ||
		m.Meta.Window > m.Meta.Tokens || m.Meta.Stride < 1 {
		return nil, fmt.Errorf("autoencoder: %s: hyperrep.json does not match its template", dir)
	}
	m.frame.norms = m.Meta.Norms
	for _, s := range []struct {
		file string
		dst  **runtime.Session
	}{{encoderFile, &m.enc}, {decoderFile, &m.dec}} {
		b, err := os.ReadFile(filepath.Join(dir, s.file))
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("autoencoder: %w", err)
		}
		if *s.dst, err = runtime.NewSession(b, opts); err != nil {
			m.Close()
			return nil, fmt.Errorf("autoencoder: %s: %w", s.file, err)
		}
	}
	return m, nil
}

// Close releases the sessions.
func (m *Model) Close() error {
	var err error
	for _, s := range []*runtime.Session{m.enc, m.dec} {
		if s != nil {
			err = errors.Join(err, s.Close())
		}
	}
	m.enc, m.dec = nil, nil
	return err
}

// tokens returns model's tokens, and their values normalised.
func (m *Model) tokens(model *onnx.Model) (*tokenizer.Tokens, []float32, error) {
	t, err := tokenizer.Tokenize(model, tokenizer.Options{TokenSize: m.Meta.Config.TokenSize})
	if err != nil {
		return nil, nil, err
	}
	if diff := m.frame.fits(t); diff != "" {
		return nil, nil, fmt.Errorf("%w: %s", ErrLayout, diff)
	}
	norm := make([]float32, len(t.Values))
	m.frame.normalise(norm, t.Values)
	return t, norm, nil
}

// Embed returns the embedding of each model.
func (m *Model) Embed(models ...*onnx.Model) ([][]float32, error) {
	_, emb, err := m.Encode(models...)
	return emb, err
}

// Encode returns, for each model, its per-token latents [Tokens·Latent]
// and its embedding [Latent]. Models longer than a window are encoded in
// overlapping windows: a token's latent is the mean over the windows that
// hold it, the embedding the mean over the tokens (with PoolToken, the mean
// of the windows' embeddings).
func (m *Model) Encode(models ...*onnx.Model) (latents, embeddings [][]float32, err error) {
	values := make([][]float32, len(models))
	for i, model := range models {
		if _, values[i], err = m.tokens(model); err != nil {
			return nil, nil, err
		}
	}
	return m.encode(values)
}

// encode runs the encoder over the windows of normalised token values.
func (m *Model) encode(values [][]float32) (latents, embeddings [][]float32, err error) {
	f, w, l := m.frame, m.Meta.Window, m.Meta.Arch.Latent
	starts := windows(f.tokens, w, m.Meta.Stride)
	latents = make([][]float32, len(values))
	embeddings = make([][]float32, len(values)) // the windows' mean, for PoolToken
	count := make([]float32, f.tokens)
	for _, s := range starts {
		for k := s; k < s+w; k++ {
			count[k]++
		}
	}
	type job struct{ model, start int }
	var jobs []job
	for i := range values {
		latents[i] = make([]float32, f.tokens*l)
		embeddings[i] = make([]float32, l)
		for _, s := range starts {
			jobs = append(jobs, job{i, s})
		}
	}
	for lo := 0; lo < len(jobs); lo += windowsPerRun {
		part := jobs[lo:min(lo+windowsPerRun, len(jobs))]
		b := newBatch(f, len(part), w)
		for j, jb := range part {
			if err := f.view(b.slot(j), values[jb.model], nil, nil, jb.start); err != nil {
				return nil, nil, err
			}
		}
		n, t, W := int64(len(part)), int64(w), int64(f.width)
		out, err := m.enc.Run(runtime.NewTensor([]int64{n, t, W}, b.tokens), runtime.NewTensor([]int64{n, t, W}, b.mask),
			runtime.NewTensor([]int64{n, t, 3}, b.positions))
		if err != nil {
			return nil, nil, fmt.Errorf("autoencoder: encoder: %w", err)
		}
		z, e := out[0].Data.([]float32), out[1].Data.([]float32)
		for j, jb := range part {
			for c := range l {
				embeddings[jb.model][c] += e[j*l+c] / float32(len(starts))
			}
			dst := latents[jb.model][jb.start*l : (jb.start+w)*l]
			for i, v := range z[j*w*l : (j+1)*w*l] {
				dst[i] += v
			}
		}
	}
	for i, z := range latents {
		e := make([]float64, l)
		for k := range f.tokens {
			for c := range l {
				z[k*l+c] /= count[k]
				e[c] += float64(z[k*l+c])
			}
		}
		if m.Meta.Pooling != PoolToken {
			for c := range e {
				embeddings[i][c] = float32(e[c] / float64(f.tokens))
			}
		}
	}
	return latents, embeddings, nil
}

// Decode turns per-token latents [Tokens·Latent] into weights, written
// into a copy of template (Model.Template when nil), which must be laid
// out as the zoo's models are.
func (m *Model) Decode(latents []float32, template *onnx.Model) (*onnx.Model, error) {
	if template == nil {
		template = m.Template
	}
	t, _, err := m.tokens(template)
	if err != nil {
		return nil, err
	}
	return m.decodeInto(latents, t, template)
}

// Reconstruct encodes and decodes a model: the weights the
// hyper-representation makes of it, in a copy of it.
func (m *Model) Reconstruct(model *onnx.Model) (*onnx.Model, error) {
	t, norm, err := m.tokens(model)
	if err != nil {
		return nil, err
	}
	z, _, err := m.encode([][]float32{norm})
	if err != nil {
		return nil, err
	}
	return m.decodeInto(z[0], t, model)
}

// decodeInto decodes latents window by window, averages the windows,
// undoes the normalisation, and writes the values into t (the template's
// tokens) and t into a copy of template.
func (m *Model) decodeInto(latents []float32, t *tokenizer.Tokens, template *onnx.Model) (*onnx.Model, error) {
	f, l := m.frame, m.Meta.Arch.Latent
	if len(latents) != f.tokens*l {
		return nil, fmt.Errorf("autoencoder: %d latent values, want %d tokens × %d", len(latents), f.tokens, l)
	}
	sum, err := m.decodeSeq(latents, f.positions, f.tokens)
	if err != nil {
		return nil, err
	}
	out := *t
	out.Values = make([]float32, len(sum))
	f.denormalise(out.Values, sum)
	out.Exact = nil
	return tokenizer.Detokenize(&out, template)
}

// windows are the starts of the windows of w tokens that cover n tokens,
// stride apart, the last ending at the last token.
func windows(n, w, stride int) []int {
	if n <= w {
		return []int{0}
	}
	var s []int
	for st := 0; st+w < n; st += stride {
		s = append(s, st)
	}
	return append(s, n-w)
}

// newBatch allocates the inputs of n sequences of t tokens.
func newBatch(f *frame, n, t int) *batch {
	return &batch{f: f, n: n, t: t, tokens: make([]float32, n*t*f.width), target: make([]float32, n*t*f.width),
		mask: make([]float32, n*t*f.width), positions: make([]int64, n*t*3)}
}

// sameGroups reports whether the normalisations norms are of the groups,
// in their order.
func sameGroups(norms, groups []Norm) bool {
	if len(norms) != len(groups) {
		return false
	}
	for i, g := range groups {
		if norms[i].Layer != g.Layer || norms[i].Tensor != g.Tensor {
			return false
		}
	}
	return true
}

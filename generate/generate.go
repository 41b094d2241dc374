package generate

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hyperrep/hyperrep/autoencoder"
	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
)

// Methods of drawing samples.
const (
	KDEMethod         = "kde"         // a Gaussian KDE on the anchors
	GaussianMethod    = "gaussian"    // one Gaussian fitted to the anchors
	InterpolateMethod = "interpolate" // points on the segment between two models
)

// Spaces the density lives in.
const (
	// TokenSpace: the per-token latents of a model, [Tokens·Latent]
	// values, what the decoder reads.
	TokenSpace = "tokens"
	// EmbeddingSpace: the pooled embedding [Latent]. A drawn embedding e
	// goes back to token latents through its anchor a (the KDE's kernel,
	// the Gaussian's nearest): a's token latents shifted by e - emb(a),
	// whose mean is then e.
	EmbeddingSpace = "embedding"
)

// Options say what to draw.
type Options struct {
	Method string // KDEMethod (default), GaussianMethod or InterpolateMethod
	N      int    // samples to draw
	Seed   uint64
	// Anchors is the anchor set: "topN" or "all" (ParseTop); "" is
	// "top30". Where filters the checkpoints first (ParseFilter).
	Anchors, Where string
	// Bandwidth is the KDE's rule: Scott (default), Silverman or a factor.
	Bandwidth string
	Space     string // EmbeddingSpace (default) or TokenSpace
	// Template is the graph the samples' weights go into, TemplateName its
	// name for the record. Nil: the best anchor's checkpoint (for
	// InterpolateMethod, the first model). Anchors are kept to those whose
	// activation is the template's (see Activation), since weights trained
	// for one nonlinearity do not work under another.
	Template     *onnx.Model
	TemplateName string
	// Mapping fills a template of another architecture than the zoo's:
	// autoencoder.MapUnits (default) or autoencoder.MapTokens.
	Mapping string
	// Between are the two models InterpolateMethod goes between, laid out
	// as the zoo's; BetweenNames their names for the record.
	Between      [2]*onnx.Model
	BetweenNames [2]string
	// BatchNorm, if set, is called on every sample of a template with
	// BatchNormalization nodes, to recompute their running statistics.
	BatchNorm func(*onnx.Model) (*onnx.Model, error)
	// Progress, if set, is called after each anchor encoded and each
	// sample decoded, with the steps done and in all.
	Progress func(done, total int)
}

// Sample is one drawn model and how it was drawn.
type Sample struct {
	Model  *onnx.Model
	Record Record
}

// Record is a sample's line of samples.jsonl.
type Record struct {
	File     string `json:"file"`
	Method   string `json:"method"`
	Space    string `json:"space,omitempty"`
	Index    int    `json:"index"`
	Seed     uint64 `json:"seed"` // sample Index draws from the stream (Seed, Index)
	Template string `json:"template"`
	// Activation is the template's; anchors of other activations were
	// left out. Empty when the template's could not be told.
	Activation string `json:"activation,omitempty"`
	Mapping    string `json:"mapping,omitempty"` // for a template of another architecture
	// Anchors: the selection and how many checkpoints it kept.
	Anchors   string   `json:"anchors,omitempty"`
	Where     string   `json:"where,omitempty"`
	Count     int      `json:"anchor_count,omitempty"`
	Bandwidth string   `json:"bandwidth,omitempty"`
	Factor    float64  `json:"bandwidth_factor,omitempty"`
	Lambda    *float64 `json:"shrinkage,omitempty"` // the Gaussian's λ
	// Parent is the anchor the sample was drawn around: the KDE's kernel,
	// the Gaussian's nearest anchor.
	Parent *Anchor `json:"parent,omitempty"`
	// Parents and T: an interpolation's two models and where between them
	// (0: the first, 1: the second).
	Parents   []string `json:"parents,omitempty"`
	T         *float64 `json:"t,omitempty"`
	BatchNorm string   `json:"batchnorm,omitempty"` // "recomputed", or "template's" when it was not
}

// Activation tells the activation of a zoo-made graph by its ops: "relu",
// "tanh", "sigmoid" or "gelu" (Erf), or "" when it has none or several.
func Activation(m *onnx.Model) string {
	found := map[string]bool{}
	for _, n := range m.Graph().GetNode() {
		switch n.GetOpType() {
		case "Relu":
			found["relu"] = true
		case "Tanh":
			found["tanh"] = true
		case "Sigmoid":
			found["sigmoid"] = true
		case "Erf", "Gelu":
			found["gelu"] = true
		}
	}
	if len(found) != 1 {
		return ""
	}
	for a := range found {
		return a
	}
	return ""
}

func hasBatchNorm(m *onnx.Model) bool {
	for _, n := range m.Graph().GetNode() {
		if n.GetOpType() == "BatchNormalization" {
			return true
		}
	}
	return false
}

// streamSeed is the seed of sample i's stream.
func streamSeed(seed uint64, i int) uint64 {
	return rng.New(seed ^ 0x9e3779b97f4a7c15*uint64(i+1)).Uint64()
}

// Run draws opts.N samples from the hyper-representation m of the zoo in
// zooDir (not read for InterpolateMethod) and decodes them into the
// template. Samples are the same for the same options and seed.
func Run(m *autoencoder.Model, zooDir string, opts Options) ([]Sample, error) {
	if opts.Method == "" {
		opts.Method = KDEMethod
	}
	if opts.Space == "" {
		opts.Space = EmbeddingSpace
	}
	if opts.Mapping == "" {
		opts.Mapping = autoencoder.MapUnits
	}
	switch {
	case opts.N < 1:
		return nil, fmt.Errorf("generate: %d samples, want at least 1", opts.N)
	case opts.Method != KDEMethod && opts.Method != GaussianMethod && opts.Method != InterpolateMethod:
		return nil, fmt.Errorf("generate: method %q, want %s, %s or %s", opts.Method, KDEMethod, GaussianMethod, InterpolateMethod)
	case opts.Space != TokenSpace && opts.Space != EmbeddingSpace:
		return nil, fmt.Errorf("generate: space %q, want %s or %s", opts.Space, TokenSpace, EmbeddingSpace)
	case opts.Mapping != autoencoder.MapUnits && opts.Mapping != autoencoder.MapTokens:
		return nil, fmt.Errorf("generate: mapping %q, want %s or %s", opts.Mapping, autoencoder.MapUnits, autoencoder.MapTokens)
	}
	if opts.Method == InterpolateMethod {
		return interpolate(m, opts)
	}
	return sampleDensity(m, zooDir, opts)
}

// anchors selects, reads and encodes the anchors, and settles the template.
// encoded is called after each anchor encoded, with the anchors in all.
func anchors(m *autoencoder.Model, zooDir string, opts *Options, rec *Record, encoded func(total int)) ([]Anchor, [][]float32, [][]float32, error) {
	if opts.Anchors == "" {
		opts.Anchors = "top30"
	}
	top, err := ParseTop(opts.Anchors)
	if err != nil {
		return nil, nil, nil, err
	}
	f, err := ParseFilter(opts.Where)
	if err != nil {
		return nil, nil, nil, err
	}
	z, cps, err := autoencoder.Checkpoints(zooDir)
	if err != nil {
		return nil, nil, nil, err
	}
	if zi := m.Meta.Zoo; zi.Architecture != "" && (z.Config.Architecture != zi.Architecture) {
		return nil, nil, nil, fmt.Errorf("generate: zoo %s is of %s, the hyper-representation was fitted on %s", zooDir, z.Config.Architecture, zi.Architecture)
	}
	as, err := SelectAnchors(z, cps, top, f)
	if err != nil {
		return nil, nil, nil, err
	}
	if opts.Template == nil {
		if opts.Template, err = onnx.Read(as[0].Path); err != nil {
			return nil, nil, nil, err
		}
		opts.TemplateName = fmt.Sprintf("%s@%d", as[0].Model, as[0].Epoch)
		rec.Activation = as[0].Hyper.Activation
	} else {
		rec.Activation = Activation(opts.Template)
	}
	if rec.Activation != "" {
		kept := slices.DeleteFunc(slices.Clone(as), func(a Anchor) bool { return a.Hyper.Activation != rec.Activation })
		if len(kept) == 0 {
			var acts []string
			for _, a := range as {
				if !slices.Contains(acts, a.Hyper.Activation) {
					acts = append(acts, a.Hyper.Activation)
				}
			}
			return nil, nil, nil, fmt.Errorf("generate: the template's activation is %s, the anchors' %s", rec.Activation, strings.Join(acts, ", "))
		}
		as = kept
	}
	models := make([]*onnx.Model, len(as))
	lat := make([][]float32, 0, len(as))
	emb := make([][]float32, 0, len(as))
	const chunk = 32
	for lo := 0; lo < len(as); lo += chunk {
		part := as[lo:min(lo+chunk, len(as))]
		for i, a := range part {
			if models[lo+i], err = onnx.Read(a.Path); err != nil {
				return nil, nil, nil, err
			}
		}
		l, e, err := m.Encode(models[lo : lo+len(part)]...)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", part[0].Path, err)
		}
		lat, emb = append(lat, l...), append(emb, e...)
		for range part {
			encoded(len(as))
		}
	}
	rec.Anchors, rec.Where, rec.Count = opts.Anchors, f.String(), len(as)
	return as, lat, emb, nil
}

func sampleDensity(m *autoencoder.Model, zooDir string, opts Options) ([]Sample, error) {
	base := Record{Method: opts.Method, Space: opts.Space, Seed: opts.Seed}
	done, total := 0, opts.N
	step := func() {
		done++
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	as, lat, emb, err := anchors(m, zooDir, &opts, &base, func(anchors int) {
		total = anchors + opts.N
		step()
	})
	if err != nil {
		return nil, err
	}
	points := lat
	if opts.Space == EmbeddingSpace {
		points = emb
	}
	x := make([][]float64, len(points))
	for i, p := range points {
		x[i] = make([]float64, len(p))
		for j, v := range p {
			x[i][j] = float64(v)
		}
	}
	var s Sampler
	switch opts.Method {
	case KDEMethod:
		if opts.Bandwidth == "" {
			opts.Bandwidth = Scott
		}
		f, err := BandwidthFactor(opts.Bandwidth, len(x), len(x[0]))
		if err != nil {
			return nil, err
		}
		s = NewKDE(x, f)
		base.Bandwidth, base.Factor = opts.Bandwidth, f
	case GaussianMethod:
		g := NewGaussian(x)
		s, base.Lambda = g, &g.Lambda
	}
	base.Template, base.Mapping = opts.TemplateName, mappingOf(m, opts)
	out := make([]Sample, opts.N)
	draw := make([]float64, len(x[0]))
	l := m.Meta.Arch.Latent
	for i := range out {
		r := rng.New(streamSeed(opts.Seed, i))
		p := s.Sample(r, draw)
		z := make([]float32, len(lat[p]))
		if opts.Space == EmbeddingSpace {
			for k := range z {
				z[k] = lat[p][k] + float32(draw[k%l]-x[p][k%l])
			}
		} else {
			for k, v := range draw {
				z[k] = float32(v)
			}
		}
		rec := base
		rec.Index, rec.Parent = i, &as[p]
		if out[i], err = decode(m, z, opts, rec); err != nil {
			return nil, err
		}
		step()
	}
	return out, nil
}

// mappingOf is the mapping to record: none for a template of the zoo's layout.
func mappingOf(m *autoencoder.Model, opts Options) string {
	if m.Fits(opts.Template) == nil {
		return ""
	}
	return opts.Mapping
}

func decode(m *autoencoder.Model, z []float32, opts Options, rec Record) (Sample, error) {
	model, err := m.DecodeTemplate(z, opts.Template, opts.Mapping)
	if err != nil {
		return Sample{}, err
	}
	if hasBatchNorm(model) {
		rec.BatchNorm = "template's"
		if opts.BatchNorm != nil {
			if model, err = opts.BatchNorm(model); err != nil {
				return Sample{}, err
			}
			rec.BatchNorm = "recomputed"
		}
	}
	return Sample{Model: model, Record: rec}, nil
}

func interpolate(m *autoencoder.Model, opts Options) ([]Sample, error) {
	a, b := opts.Between[0], opts.Between[1]
	if a == nil || b == nil {
		return nil, errors.New("generate: interpolate wants two models")
	}
	lat, _, err := m.Encode(a, b)
	if err != nil {
		return nil, err
	}
	if opts.Template == nil {
		opts.Template, opts.TemplateName = a, opts.BetweenNames[0]
	}
	rec := Record{Method: InterpolateMethod, Seed: opts.Seed, Template: opts.TemplateName, Activation: Activation(opts.Template),
		Mapping: mappingOf(m, opts), Parents: opts.BetweenNames[:]}
	za, zb := toFloat64(lat[0]), toFloat64(lat[1])
	p := make([]float64, len(za))
	out := make([]Sample, opts.N)
	for i := range out {
		t := 0.5
		if opts.N > 1 {
			t = float64(i) / float64(opts.N-1)
		}
		Lerp(p, za, zb, t)
		z := make([]float32, len(p))
		for k, v := range p {
			z[k] = float32(v)
		}
		r := rec
		r.Index, r.T = i, &t
		if out[i], err = decode(m, z, opts, r); err != nil {
			return nil, err
		}
		if opts.Progress != nil {
			opts.Progress(i+1, opts.N)
		}
	}
	return out, nil
}

func toFloat64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

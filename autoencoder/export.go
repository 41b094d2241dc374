package autoencoder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/hyperrep/hyperrep/internal/atomicfile"
	"github.com/hyperrep/hyperrep/runtime"
	"github.com/hyperrep/hyperrep/tokenizer"
	"github.com/hyperrep/hyperrep/zoo"
)

// FormatVersion is the version of the hyperrep.json this package writes
// and reads.
const FormatVersion = 1

// Meta is hyperrep.json: everything needed to tokenize, normalise and
// window a model for encoder.onnx and decoder.onnx, and where they came
// from.
type Meta struct {
	Format int    `json:"format"`
	Config Config `json:"config"`
	Arch   Arch   `json:"arch"`
	// A model's weights are Tokens tokens of Config.TokenSize values,
	// tokenized as package tokenizer does; Layout says where each weight
	// sits. The encoder sees windows of Window contiguous tokens, Stride
	// apart; a model with fewer tokens is one window of all of them.
	Tokens int              `json:"tokens"`
	Window int              `json:"window"`
	Stride int              `json:"stride"`
	Layout tokenizer.Layout `json:"layout"`
	// Norms normalise the values of each layer (Layout's order), or of
	// each tensor of each layer with Config.Normalise NormTensor, before
	// the encoder, (v − mean) / std, and are undone after the decoder.
	Norms []Norm `json:"normalisation"`
	// Pooling is how the embedding is made: "mean" of the token latents,
	// or the latent of a learned compression "token".
	Pooling string   `json:"pooling"`
	Zoo     ZooInfo  `json:"zoo"`
	Split   Split    `json:"split"`
	Batch   int      `json:"batch"` // models per step, as trained (Config.Batch capped by the training checkpoints)
	Log     []Epoch  `json:"log"`
	Params  int      `json:"parameters"` // of encoder, decoder and projection head
	IO      []string `json:"io"`         // the exported graphs' inputs and outputs, in words
	Version Versions `json:"versions"`
}

// ZooInfo says which zoo a hyper-representation was fitted on.
type ZooInfo struct {
	Dir          string `json:"dir"`
	Dataset      string `json:"dataset"`
	Architecture string `json:"architecture"`
	Models       int    `json:"models"`
	Checkpoints  int    `json:"checkpoints"`
}

func zooInfo(dir string, z *zoo.Zoo, checkpoints int) ZooInfo {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return ZooInfo{Dir: dir, Dataset: z.Config.Dataset, Architecture: z.Config.Architecture, Models: len(z.Models), Checkpoints: checkpoints}
}

// Versions are those of the software that fitted the hyper-representation.
type Versions struct {
	Hyperrep    string `json:"hyperrep"`
	ONNXRuntime string `json:"onnxruntime"`
	Go          string `json:"go"`
	Opset       int    `json:"opset"`
}

func versions() Versions {
	v := Versions{Hyperrep: "(devel)", ONNXRuntime: runtime.Version(), Go: goruntime.Version(), Opset: 17}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.Hyperrep = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v.Hyperrep += " " + s.Value[:12]
			}
		}
	}
	return v
}

var poolingDoc = map[string]string{
	PoolMean:  "the mean of the token latents",
	PoolToken: "the latent of a learned compression token the encoder puts in front of the tokens",
}

var ioDoc = []string{
	`encoder.onnx: tokens float32 [batch, tokens, W] (normalised values, 0 where mask is 0), mask float32 [batch, tokens, W] (1 where a weight sits; a token without any is padding), positions int64 [batch, tokens, 3] (global index, layer, row) -> latents float32 [batch, tokens, L], embedding float32 [batch, L] (the mean latent of the tokens that are not padding, or the compression token's latent: see "pooling")`,
	`decoder.onnx: latents float32 [batch, tokens, L], positions int64 [batch, tokens, 3] -> tokens float32 [batch, tokens, W] (normalised values; undo the normalisation and keep those under mask 1)`,
	`windows: a model of more than "window" tokens is encoded window by window, "stride" apart, the last one ending at the last token; a token's latent is the mean over the windows that hold it, the model's embedding the mean over its tokens (with pooling "token", the mean of the windows' embeddings); decoded windows are averaged alike`,
}

// meta is the hyperrep.json of the fit's current state.
func (f *fit) meta() Meta {
	n := 0
	for _, p := range f.params {
		n += len(f.tr.Value(p).Float32s())
	}
	return Meta{Format: FormatVersion, Config: f.cfg, Arch: f.arch, Tokens: f.data.tokens, Window: f.window,
		Stride: max(1, f.window/2), Layout: f.data.layout, Norms: f.data.norms, Pooling: f.cfg.Pooling, Zoo: f.zoo, Split: f.split,
		Batch: f.b, Log: f.st.Log, Params: n, IO: ioDoc, Version: versions()}
}

// export writes encoder.onnx, decoder.onnx, template.onnx, hyperrep.json
// and README.md with the current weights.
func (f *fit) export() error {
	values := map[string][]float32{}
	for _, p := range f.params {
		values[p] = f.tr.Value(p).Float32s()
	}
	if err := encoderModel(f.arch, values).Write(filepath.Join(f.dir, encoderFile)); err != nil {
		return err
	}
	if err := decoderModel(f.arch, values).Write(filepath.Join(f.dir, decoderFile)); err != nil {
		return err
	}
	if err := f.data.template.Write(filepath.Join(f.dir, templateFile)); err != nil {
		return err
	}
	meta := f.meta()
	data, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(f.dir, metaFile), append(data, '\n')); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(f.dir, readmeFile), modelCard(&meta))
}

// modelCard is README.md: what the hyper-representation is, what it was
// fitted on, how it did, and how to use it without hyperrep.
func modelCard(m *Meta) []byte {
	var b bytes.Buffer
	c, a := m.Config, m.Arch
	fmt.Fprintf(&b, "# Hyper-representation of %s\n\n", zooName(m.Zoo))
	fmt.Fprintf(&b, "A SANE-style transformer autoencoder over the weights of the %s models (%s on %s) of the zoo at `%s`, "+
		"fitted by hyperrep %s with ONNX Runtime %s.\n\n", thousands(m.Zoo.Models), m.Zoo.Architecture, m.Zoo.Dataset, m.Zoo.Dir,
		m.Version.Hyperrep, m.Version.ONNXRuntime)
	fmt.Fprintf(&b, "## Data\n\n")
	fmt.Fprintf(&b, "- %s checkpoints of %s models; split by model (seed %d): %d models to train on, %d to validate, %d held out for tests (listed in hyperrep.json).\n",
		thousands(m.Zoo.Checkpoints), thousands(m.Zoo.Models), m.Split.Seed, len(m.Split.Train), len(m.Split.Validation), len(m.Split.Test))
	fmt.Fprintf(&b, "- Each checkpoint is %d tokens of %d values (%d layers); the autoencoder sees windows of %d tokens.\n",
		m.Tokens, c.TokenSize, len(m.Layout.Layers), m.Window)
	per := "per layer"
	if c.Normalise == NormTensor {
		per = "per tensor (a layer's weights, biases, … each on its own)"
	}
	fmt.Fprintf(&b, "- Values are normalised %s with the mean and standard deviation over the training models.\n\n", per)
	fmt.Fprintf(&b, "## Model\n\n")
	in := fmt.Sprintf("Linear(%d→%d)", a.Width, a.D)
	if a.Squares {
		in = fmt.Sprintf("Linear(%d→%d) of each token's values and their squares", 2*a.Width, a.D)
	}
	fmt.Fprintf(&b, "- Encoder: %s + learned embeddings of (global index, layer, row) → %d pre-LayerNorm blocks "+
		"(%d heads, GELU MLP of %d) → LayerNorm → Linear(%d→%d) per token; the embedding is %s.\n",
		in, a.Layers, a.Heads, 4*a.D, a.D, a.Latent, poolingDoc[m.Pooling])
	fmt.Fprintf(&b, "- Decoder: Linear(%d→%d) + positions → %d blocks → LayerNorm → Linear(%d→%d).\n", a.Latent, a.D, a.Layers, a.D, a.Width)
	fmt.Fprintf(&b, "- %s parameters. Loss: %.3g·masked MSE + %.3g·NT-Xent (τ = %g, projection to %d).\n",
		thousands(m.Params), 1-c.Gamma, c.Gamma, c.Temperature, a.Project)
	fmt.Fprintf(&b, "- Augmentations: permutation %v, multiplicative noise σ = %g, token masking %g, random windows.\n", c.Permute, c.Noise, c.MaskRate)
	fmt.Fprintf(&b, "- AdamW (lr %g one-cycle, weight decay %g, clip %g), %d models × 2 views per step.\n\n", c.LR, c.WeightDecay, c.ClipNorm, m.Batch)
	fmt.Fprintf(&b, "## Training\n\n")
	if len(m.Log) == 0 {
		fmt.Fprintf(&b, "No epoch finished yet.\n\n")
	} else {
		last := m.Log[len(m.Log)-1]
		fmt.Fprintf(&b, "%d epochs, %d steps, %.0f s. Training losses are over augmented views, as trained on; "+
			"validation losses over permuted windows without noise or masked tokens, so \"val recon\" is how well the "+
			"validation models themselves are reconstructed (MSE of normalised values).\n\n```\n", last.Epoch, last.Steps, last.Seconds)
		tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "epoch\ttrain loss\ttrain recon\tval loss\tval recon\tval ntxent\n")
		for i, e := range m.Log {
			if len(m.Log) > 12 && i > 4 && i < len(m.Log)-5 {
				if i == 5 {
					fmt.Fprintf(tw, "...\t\t\t\t\t\n")
				}
				continue
			}
			vl, vr, vn := "-", "-", "-"
			if v := e.Validation; v != nil {
				vl, vr = fmt.Sprintf("%.4f", v.Loss), fmt.Sprintf("%.4f", v.Reconstruction)
				if v.NTXent != nil {
					vn = fmt.Sprintf("%.4f", *v.NTXent)
				}
			}
			fmt.Fprintf(tw, "%d\t%.4f\t%.4f\t%s\t%s\t%s\n", e.Epoch, e.Train.Loss, e.Train.Reconstruction, vl, vr, vn)
		}
		tw.Flush()
		fmt.Fprintf(&b, "```\n\n")
	}
	fmt.Fprintf(&b, "## Use\n\n")
	fmt.Fprintf(&b, "`hyperrep embed --hr DIR` and `hyperrep reconstruct --hr DIR` do the following; any ONNX Runtime can too.\n\n")
	for _, s := range m.IO {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	fmt.Fprintf(&b, "\nProbe results are not part of this card yet.\n")
	return b.Bytes()
}

func zooName(z ZooInfo) string {
	if z.Architecture == "" {
		return filepath.Base(z.Dir)
	}
	return fmt.Sprintf("a %s zoo", z.Architecture)
}

// thousands writes n with comma separators.
func thousands(n int) string {
	s := fmt.Sprint(n)
	var out strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out.WriteByte(',')
		}
		out.WriteRune(r)
	}
	return out.String()
}

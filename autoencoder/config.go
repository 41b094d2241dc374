package autoencoder

import (
	"fmt"
	"math"
	"time"

	"github.com/hyperrep/hyperrep/runtime"
)

// Config is how Fit trains a hyper-representation: the autoencoder's
// sizes, the loss, the augmentations and the optimiser.
type Config struct {
	TokenSize int    `json:"token_size"` // W: values per token
	Context   int    `json:"context"`    // tokens per training window; models with more train in windows
	D         int    `json:"d"`
	Layers    int    `json:"layers"` // blocks of the encoder, and again of the decoder
	Heads     int    `json:"heads"`
	Latent    int    `json:"latent"`
	Project   int    `json:"projection"` // output width of the NT-Xent projection head
	Pooling   string `json:"pooling"`    // PoolMean or PoolToken
	// Normalise is NormTensor or NormLayer: whether each tensor of a
	// layer (weight, bias, …) has its own mean and standard deviation, or
	// a layer's values share one. Empty is NormLayer, as configurations
	// saved before the choice existed were fitted.
	Normalise string `json:"normalise,omitempty"`
	// Squares feeds the encoder each normalised value's square beside
	// the value: a linear map of a token's values keeps their scale but
	// mixes away how they spread, which tells trained weights from
	// initial ones.
	Squares bool `json:"squares,omitempty"`

	Gamma       float64 `json:"gamma"`       // weight of NT-Xent; 1−Gamma is the reconstruction's
	Temperature float64 `json:"temperature"` // of NT-Xent

	Permute  bool    `json:"permute"`   // permute hidden units (function-preserving)
	Noise    float64 `json:"noise"`     // standard deviation of multiplicative weight noise
	MaskRate float64 `json:"mask_rate"` // probability that a token's input is zeroed

	Epochs      int     `json:"epochs"`
	Batch       int     `json:"batch"` // models per step, two views each
	LR          float64 `json:"lr"`    // peak of a one-cycle schedule
	WeightDecay float64 `json:"weight_decay"`
	ClipNorm    float64 `json:"clip_norm"` // 0: no clipping

	Seed       uint64  `json:"seed"`
	Validation float64 `json:"validation"` // share of the zoo's models held out for validation
	Test       float64 `json:"test"`       // and for testing (never seen by Fit)
}

// DefaultConfig is SANE's recipe scaled to a 2-core machine: d 128, 4 + 4
// blocks of 4 heads, latent 32, γ 0.05, τ 0.1, windows of 64 tokens of 32
// values, 300 epochs. On a cnn-s zoo of 56 models × 6 checkpoints that is
// 2,400 steps, about 15 minutes on 2 cores, and the held-out models'
// reconstructions keep their MNIST accuracy within 2 points on average.
// (Tokens of 64 values would squeeze each into a latent of half its size,
// and the reconstructions lose 10 points and more.)
func DefaultConfig() Config {
	return Config{
		TokenSize: 32, Context: 64, D: 128, Layers: 4, Heads: 4, Latent: 32, Project: 32, Pooling: PoolMean, Normalise: NormTensor, Squares: true,
		Gamma: 0.05, Temperature: 0.1,
		Permute: true, Noise: 0.05, MaskRate: 0.1,
		Epochs: 300, Batch: 32, LR: 1e-3, WeightDecay: 1e-4, ClipNorm: 1,
		Seed: 0, Validation: 0.15, Test: 0.15,
	}
}

// check reports a configuration Fit cannot train with.
func (c Config) check() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"token size", c.TokenSize}, {"context", c.Context}, {"d", c.D}, {"layers", c.Layers}, {"heads", c.Heads},
		{"latent", c.Latent}, {"projection", c.Project}, {"epochs", c.Epochs}, {"batch", c.Batch}} {
		if f.v <= 0 {
			return fmt.Errorf("autoencoder: %s %d, want at least 1", f.name, f.v)
		}
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case c.Pooling != PoolMean && c.Pooling != PoolToken:
		return fmt.Errorf("autoencoder: pooling %q, want %q or %q", c.Pooling, PoolMean, PoolToken)
	case c.Normalise != "" && c.Normalise != NormLayer && c.Normalise != NormTensor:
		return fmt.Errorf("autoencoder: normalise %q, want %q or %q", c.Normalise, NormLayer, NormTensor)
	case c.D%c.Heads != 0:
		return fmt.Errorf("autoencoder: d %d is not a multiple of %d heads", c.D, c.Heads)
	case !(c.Gamma >= 0 && c.Gamma <= 1):
		return fmt.Errorf("autoencoder: gamma %v, want a weight in [0, 1]", c.Gamma)
	case !(c.Temperature > 0) || !finite(c.Temperature):
		return fmt.Errorf("autoencoder: temperature %v, want a positive number", c.Temperature)
	case !(c.Noise >= 0) || !finite(c.Noise):
		return fmt.Errorf("autoencoder: noise %v, want 0 or more", c.Noise)
	case !(c.MaskRate >= 0 && c.MaskRate < 1):
		return fmt.Errorf("autoencoder: mask rate %v, want a probability in [0, 1)", c.MaskRate)
	case !(c.LR > 0) || !finite(c.LR):
		return fmt.Errorf("autoencoder: learning rate %v, want a positive number", c.LR)
	case !(c.WeightDecay >= 0) || !finite(c.WeightDecay) || !(c.ClipNorm >= 0) || !finite(c.ClipNorm):
		return fmt.Errorf("autoencoder: weight decay %v, clip norm %v: want both 0 or more", c.WeightDecay, c.ClipNorm)
	case !(c.Validation >= 0 && c.Test >= 0 && c.Validation+c.Test < 1):
		return fmt.Errorf("autoencoder: validation %v and test %v shares, want two shares that leave models to train on", c.Validation, c.Test)
	}
	return nil
}

// arch is the autoencoder's shape for a zoo whose tokens need position
// tables of the given sizes.
func (c Config) arch(positions [3]int) Arch {
	return Arch{Width: c.TokenSize, D: c.D, Layers: c.Layers, Heads: c.Heads, Latent: c.Latent, Project: c.Project, Pooling: c.Pooling,
		Squares: c.Squares, Positions: positions}
}

// Options are how Fit runs, as opposed to what it learns.
type Options struct {
	Runtime runtime.Options // ONNX Runtime's threads and device
	// Progress, if not nil, is called as work advances: stage "tokenize"
	// counts checkpoints, stage "train" counts steps over all epochs.
	Progress func(stage string, done, total int)
	// SaveEvery is how often the state to resume from and the exported
	// files are saved (at the end of an epoch when one ends in time, else
	// between steps); 0 means every minute. Fit also saves when it ends
	// or is cancelled.
	SaveEvery time.Duration
}

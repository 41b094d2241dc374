package zoo

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/hyperrep/hyperrep/internal/rng"
)

// mix64 is SplitMix64's output function, a bijective avalanche of 64 bits;
// stream hashes a seed and a use into a generator's seed with it.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Purposes of the random streams a model draws; each (seed, purpose, i, j)
// names an independent stream.
const (
	streamInit uint64 = iota + 1
	streamData
	streamDropout
)

// stream returns the generator for one use of a model's seed: the initial
// values of parameter i (j unused), the data order of epoch i, the dropout
// masks of step j of epoch i.
func stream(seed int64, purpose, i, j uint64) *rng.Source {
	h := mix64(uint64(seed) ^ 0x5a0c3d2e1f406b7a)
	h = mix64(h ^ purpose*0x9e3779b97f4a7c15)
	h = mix64(h ^ (i+1)*0xd1b54a32d192ed03)
	h = mix64(h ^ (j+1)*0x8cb92ba72f3d8dd7)
	return rng.New(h)
}

// Inits lists the weight initialisations, named after torch.nn.init.
var Inits = []string{"uniform", "normal", "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal"}

// initWeights draws a model's initial weights, one slice per Param. Weights
// follow the named scheme, with fan-in and fan-out as torch.nn.init counts
// them (kernel area times channels); biases start at zero.
//
//	uniform          U(-a, a), a = 1/√fan_in (PyTorch's default for layers)
//	normal           N(0, 1/fan_in)
//	kaiming_uniform  U(-a, a), a = √(6/fan_in) (gain √2)
//	kaiming_normal   N(0, 2/fan_in)
//	xavier_uniform   U(-a, a), a = √(6/(fan_in+fan_out))
//	xavier_normal    N(0, 2/(fan_in+fan_out))
//
// The values depend on the architecture, the scheme and the seed only, so
// that models differing in other hyperparameters start from the same
// point, as in the Model Zoos.
func initWeights(a *Arch, scheme string, seed int64) ([][]float32, error) {
	if !slices.Contains(Inits, scheme) {
		return nil, fmt.Errorf("zoo: unknown init %q (want %s)", scheme, strings.Join(Inits, ", "))
	}
	var out [][]float32
	for i, p := range a.Params() {
		v := make([]float32, p.Size())
		out = append(out, v)
		if p.FanIn == 0 {
			continue // bias
		}
		fi, fo := float64(p.FanIn), float64(p.FanOut)
		var bound, std float64
		switch scheme {
		case "uniform":
			bound = 1 / math.Sqrt(fi)
		case "normal":
			std = 1 / math.Sqrt(fi)
		case "kaiming_uniform":
			bound = math.Sqrt(6 / fi)
		case "kaiming_normal":
			std = math.Sqrt(2 / fi)
		case "xavier_uniform":
			bound = math.Sqrt(6 / (fi + fo))
		case "xavier_normal":
			std = math.Sqrt(2 / (fi + fo))
		}
		r := stream(seed, streamInit, uint64(i), 0)
		for k := range v {
			if std > 0 {
				v[k] = float32(std * r.Normal())
			} else {
				v[k] = float32(bound * (2*r.Float64() - 1))
			}
		}
	}
	return out, nil
}

package generate

import (
	"fmt"
	"math"
	"strconv"

	"github.com/hyperrep/hyperrep/internal/rng"
)

// Sampler draws points of a density fitted on anchor points.
type Sampler interface {
	// Sample draws one point into dst and returns the index of the anchor
	// it belongs to: a KDE's kernel, a Gaussian's nearest anchor.
	Sample(r *rng.Source, dst []float64) int
}

// Bandwidth rules of the KDE: the kernel of each anchor is a Gaussian
// with a diagonal covariance, standard deviation Factor·σ_i along
// dimension i, σ_i the anchors' standard deviation there.
const (
	Scott     = "scott"     // Factor n^(-1/(d+4))
	Silverman = "silverman" // Factor (n(d+2)/4)^(-1/(d+4))
)

// BandwidthFactor returns the factor of rule (Scott, Silverman, or a
// positive number, the factor itself) for n anchors in d dimensions, as
// scipy.stats.gaussian_kde computes it.
func BandwidthFactor(rule string, n, d int) (float64, error) {
	switch rule {
	case Scott:
		return math.Pow(float64(n), -1/float64(d+4)), nil
	case Silverman:
		return math.Pow(float64(n)*float64(d+2)/4, -1/float64(d+4)), nil
	}
	f, err := strconv.ParseFloat(rule, 64)
	if err != nil || !(f > 0) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("generate: bandwidth %q, want scott, silverman or a positive factor", rule)
	}
	return f, nil
}

// moments returns the mean and the standard deviation (n-1 denominator,
// 0 for one point) of each dimension.
func moments(points [][]float64) (mean, std []float64) {
	n, d := len(points), len(points[0])
	mean, std = make([]float64, d), make([]float64, d)
	for _, p := range points {
		for i, v := range p {
			mean[i] += v
		}
	}
	for i := range mean {
		mean[i] /= float64(n)
	}
	if n < 2 {
		return mean, std
	}
	for _, p := range points {
		for i, v := range p {
			x := v - mean[i]
			std[i] += x * x
		}
	}
	for i := range std {
		std[i] = math.Sqrt(std[i] / float64(n-1))
	}
	return mean, std
}

// KDE is a Gaussian kernel density estimate with a diagonal bandwidth.
type KDE struct {
	Points [][]float64
	// H is the kernel's standard deviation along each dimension.
	H []float64
}

// NewKDE fits a KDE on points (n × d) with bandwidth factor·σ_i.
func NewKDE(points [][]float64, factor float64) *KDE {
	_, std := moments(points)
	h := make([]float64, len(std))
	for i, s := range std {
		h[i] = factor * s
	}
	return &KDE{Points: points, H: h}
}

// Sample picks an anchor uniformly and adds its kernel's noise.
func (k *KDE) Sample(r *rng.Source, dst []float64) int {
	i := int(r.Below(uint64(len(k.Points))))
	for j, v := range k.Points[i] {
		dst[j] = v + k.H[j]*r.Normal()
	}
	return i
}

// Gaussian is one normal distribution fitted to the anchors, with the
// Ledoit-Wolf-type shrinkage covariance (1-λ)·S + λ·diag(S) of Schäfer and
// Strimmer (2005, target "D"): S, the sample covariance, has rank n-1 at
// most and is useless alone when there are fewer anchors than dimensions;
// diag(S) alone would draw every latent value independently and lose how
// the tokens of a model move together. λ is estimated from the anchors.
type Gaussian struct {
	Mean, Std []float64
	Lambda    float64
	centred   [][]float64 // anchors minus the mean
	points    [][]float64
}

// NewGaussian fits a Gaussian to points (n ≥ 1, each of d values).
func NewGaussian(points [][]float64) *Gaussian {
	mean, std := moments(points)
	g := &Gaussian{Mean: mean, Std: std, Lambda: 1, points: points}
	n, d := len(points), len(mean)
	g.centred = make([][]float64, n)
	for k, p := range points {
		c := make([]float64, d)
		for i, v := range p {
			c[i] = v - mean[i]
		}
		g.centred[k] = c
	}
	if n < 3 {
		return g
	}
	// Standardised data: shrinking the correlations towards 0.
	x := make([][]float64, n)
	for k, c := range g.centred {
		x[k] = make([]float64, d)
		for i, v := range c {
			if std[i] > 0 {
				x[k][i] = v / std[i]
			}
		}
	}
	// With w_kij = x_ki·x_kj and w̄_ij their mean over k, the estimate is
	// λ = Σ_{i≠j} Var(r_ij) / Σ_{i≠j} r_ij², r_ij = n/(n-1)·w̄_ij and
	// Var(r_ij) = n/(n-1)³·Σ_k (w_kij - w̄_ij)². The sums over all i, j
	// come from the n×n Gram matrix; the diagonal i = j is subtracted.
	nf := float64(n)
	var sumW2, sumGram2, diagW2, diagMean2 float64
	gram := make([]float64, n*n)
	for k := range n {
		for l := k; l < n; l++ {
			var s float64
			for i, v := range x[k] {
				s += v * x[l][i]
			}
			gram[k*n+l], gram[l*n+k] = s, s
		}
		sumW2 += gram[k*n+k] * gram[k*n+k]
	}
	for _, v := range gram {
		sumGram2 += v * v
	}
	for i := range d {
		var m float64
		for k := range n {
			v := x[k][i] * x[k][i]
			diagW2 += v * v
			m += v
		}
		m /= nf
		diagMean2 += m * m
	}
	meanW2 := sumGram2 / (nf * nf) // Σ_ij w̄_ij²
	dev := (sumW2 - nf*meanW2) - (diagW2 - nf*diagMean2)
	varR := nf / math.Pow(nf-1, 3) * dev
	r2 := nf * nf / ((nf - 1) * (nf - 1)) * (meanW2 - diagMean2)
	if r2 > 0 {
		g.Lambda = math.Max(0, math.Min(1, varR/r2))
	}
	return g
}

// Sample draws mean + √(1-λ)·Cᵀz/√(n-1) + √λ·σ∘ε (C the centred anchors,
// z and ε standard normal), whose covariance is (1-λ)·S + λ·diag(S), and
// returns the nearest anchor.
func (g *Gaussian) Sample(r *rng.Source, dst []float64) int {
	copy(dst, g.Mean)
	n := len(g.centred)
	if n > 1 && g.Lambda < 1 {
		a := math.Sqrt((1 - g.Lambda) / float64(n-1))
		for _, c := range g.centred {
			z := a * r.Normal()
			for i, v := range c {
				dst[i] += z * v
			}
		}
	}
	b := math.Sqrt(g.Lambda)
	for i, s := range g.Std {
		dst[i] += b * s * r.Normal()
	}
	return nearest(g.points, dst)
}

// nearest is the index of the point closest to x.
func nearest(points [][]float64, x []float64) int {
	best, bd := 0, math.Inf(1)
	for k, p := range points {
		var d float64
		for i, v := range p {
			e := v - x[i]
			d += e * e
		}
		if d < bd {
			best, bd = k, d
		}
	}
	return best
}

// Lerp writes (1-t)·a + t·b into dst.
func Lerp(dst, a, b []float64, t float64) {
	for i := range dst {
		dst[i] = (1-t)*a[i] + t*b[i]
	}
}

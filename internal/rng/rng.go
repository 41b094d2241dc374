// Package rng is the project's source of pseudo-random numbers: SplitMix64
// (Steele, Lea and Flood, 2014) with unbiased bounded draws. Its streams are
// fixed by the algorithm, so a seed gives the same data orders, permutations
// and initial weights with every Go version and on every platform; the
// streams of math/rand have changed between Go versions and may again.
package rng

import (
	"math"
	"math/bits"
)

// Source is a SplitMix64 generator. The zero value is seeded with 0.
type Source struct{ state uint64 }

// New returns a generator seeded with seed.
func New(seed uint64) *Source { return &Source{state: seed} }

// Uint64 returns the next 64 random bits.
func (r *Source) Uint64() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Below returns a uniform integer in [0, n), n > 0, by Lemire's
// multiply-and-reject method, which has no modulo bias.
func (r *Source) Below(n uint64) uint64 {
	hi, lo := bits.Mul64(r.Uint64(), n)
	if lo < n {
		floor := -n % n
		for lo < floor {
			hi, lo = bits.Mul64(r.Uint64(), n)
		}
	}
	return hi
}

// Float64 returns a uniform float64 in [0, 1) with 53 random bits.
func (r *Source) Float64() float64 { return float64(r.Uint64()>>11) / (1 << 53) }

// Normal returns a standard normal value (Box–Muller; one value per call, so
// that the stream does not depend on how many values were drawn before).
func (r *Source) Normal() float64 {
	u := 1 - r.Float64() // (0, 1]: the logarithm stays finite
	v := r.Float64()
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*v)
}

// Shuffle calls swap for the Fisher–Yates shuffle of n elements: for i from
// n-1 down to 1, swap(i, j) with j uniform in [0, i].
func (r *Source) Shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, int(r.Below(uint64(i+1))))
	}
}

// Perm returns a uniform random permutation of [0, n).
func (r *Source) Perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r.Shuffle(n, func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

package dataset

import "math/bits"

// splitMix64 is Steele, Lea and Flood's SplitMix64 generator (the one
// Java's SplittableRandom and many seeders use). Its output for a seed is
// fixed by the algorithm, which is the point: math/rand's streams have
// changed between Go versions and may again.
type splitMix64 struct{ state uint64 }

func (r *splitMix64) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// below returns a uniform integer in [0, n), n > 0, by Lemire's
// multiply-and-reject method, which has no modulo bias.
func (r *splitMix64) below(n uint64) uint64 {
	hi, lo := bits.Mul64(r.next(), n)
	if lo < n {
		threshold := -n % n
		for lo < threshold {
			hi, lo = bits.Mul64(r.next(), n)
		}
	}
	return hi
}

// shuffle calls swap for the Fisher–Yates shuffle of n elements drawn from
// seed: for i from n-1 down to 1, swap(i, j) with j uniform in [0, i].
func shuffle(n int, seed int64, swap func(i, j int)) {
	r := splitMix64{state: uint64(seed)}
	for i := n - 1; i > 0; i-- {
		swap(i, int(r.below(uint64(i+1))))
	}
}

// Perm returns a pseudo-random permutation of 0..n-1 determined by seed
// alone. It is the order Shuffle puts a Set in, and Subset draws its
// prefix; it will not change between releases.
func Perm(n int, seed int64) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	shuffle(n, seed, func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

package dataset

import "github.com/hyperrep/hyperrep/internal/rng"

// Perm returns a pseudo-random permutation of 0..n-1 determined by seed
// alone. It is the order Shuffle puts a Set in, and Subset draws its
// prefix; it will not change between releases.
func Perm(n int, seed int64) []int {
	return rng.New(uint64(seed)).Perm(n)
}

package tokenizer

import (
	"fmt"
	"slices"
	"testing"

	"github.com/hyperrep/hyperrep/internal/rng"
)

// Frozen: a seed must give the same permutations in every release.
func TestPermGolden(t *testing.T) {
	if got, want := rng.New(1).Perm(8), []int{0, 3, 7, 1, 2, 6, 5, 4}; !slices.Equal(got, want) {
		t.Errorf("Perm(8) for seed 1 = %v, want %v", got, want)
	}
}

func TestPermUniform(t *testing.T) {
	r := rng.New(42)
	const n = 60000
	count := map[string]int{}
	for range n {
		count[fmt.Sprint(r.Perm(3))]++
	}
	if len(count) != 6 {
		t.Fatalf("%d distinct permutations of 3, want 6", len(count))
	}
	for p, c := range count {
		// 10000 expected, standard deviation about 91.
		if c < 9500 || c > 10500 {
			t.Errorf("%s drawn %d times in %d", p, c, n)
		}
	}
}

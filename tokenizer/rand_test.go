package tokenizer

import (
	"fmt"
	"slices"
	"testing"
)

func TestSplitMix(t *testing.T) {
	// The first outputs for seed 0 of the reference implementation
	// (https://prng.di.unimi.it/splitmix64.c).
	r := &splitMix{}
	for _, want := range []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f} {
		if got := r.next(); got != want {
			t.Fatalf("next() = %#x, want %#x", got, want)
		}
	}
	// Frozen: a seed must give the same permutations in every release.
	r = &splitMix{s: 1}
	if got, want := r.perm(8), []int{0, 3, 7, 1, 2, 6, 5, 4}; !slices.Equal(got, want) {
		t.Errorf("perm(8) for seed 1 = %v, want %v", got, want)
	}
}

func TestPermUniform(t *testing.T) {
	r := &splitMix{s: 42}
	const n = 60000
	count := map[string]int{}
	for range n {
		count[fmt.Sprint(r.perm(3))]++
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

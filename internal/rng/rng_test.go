package rng

import (
	"math"
	"slices"
	"testing"
)

// The first outputs of SplitMix64 seeded with 0 and 1234567, from the
// algorithm's reference implementation.
func TestReferenceValues(t *testing.T) {
	r := New(0)
	for _, want := range []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f} {
		if got := r.Uint64(); got != want {
			t.Fatalf("seed 0: got %#x, want %#x", got, want)
		}
	}
	r = New(1234567)
	for _, want := range []uint64{6457827717110365317, 3203168211198807973, 9817491932198370423} {
		if got := r.Uint64(); got != want {
			t.Fatalf("seed 1234567: got %d, want %d", got, want)
		}
	}
}

func TestDistributions(t *testing.T) {
	r := New(7)
	const n = 200000
	var sum, sq float64
	counts := make([]int, 10)
	for i := 0; i < n; i++ {
		x := r.Normal()
		sum += x
		sq += x * x
		counts[r.Below(10)]++
		if f := r.Float64(); f < 0 || f >= 1 {
			t.Fatalf("Float64 = %v", f)
		}
	}
	if mean, v := sum/n, sq/n-(sum/n)*(sum/n); math.Abs(mean) > 0.01 || math.Abs(v-1) > 0.02 {
		t.Errorf("Normal: mean %v, variance %v", mean, v)
	}
	for d, c := range counts {
		if math.Abs(float64(c)/n-0.1) > 0.005 {
			t.Errorf("Below(10) gave %d %d times in %d", d, c, n)
		}
	}
	p := New(3).Perm(50)
	s := slices.Clone(p)
	slices.Sort(s)
	for i, v := range s {
		if v != i {
			t.Fatalf("Perm is not a permutation: %v", p)
		}
	}
	if slices.Equal(p, New(4).Perm(50)) || !slices.Equal(p, New(3).Perm(50)) {
		t.Error("Perm does not depend on the seed alone")
	}
}

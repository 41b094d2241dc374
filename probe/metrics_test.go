package probe

import (
	"math"
	"testing"
)

func TestR2AndMSE(t *testing.T) {
	for _, tc := range []struct {
		name    string
		y, pred []float64
		r2, mse float64
	}{
		{"perfect", []float64{1, 2, 3}, []float64{1, 2, 3}, 1, 0},
		{"mean", []float64{1, 2, 3}, []float64{2, 2, 2}, 0, 2.0 / 3},
		{"one off", []float64{1, 2, 3}, []float64{1, 2, 4}, 0.5, 1.0 / 3},
		{"worse than mean", []float64{1, 2, 3}, []float64{3, 2, 1}, -3, 8.0 / 3},
		{"constant truth", []float64{2, 2}, []float64{1, 3}, math.NaN(), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := R2(tc.y, tc.pred); !same(got, tc.r2, 1e-12) {
				t.Errorf("R2 = %v, want %v", got, tc.r2)
			}
			if got := MSE(tc.y, tc.pred); !same(got, tc.mse, 1e-12) {
				t.Errorf("MSE = %v, want %v", got, tc.mse)
			}
		})
	}
}

// The expected values are counted by hand, pair by pair (and agree with
// scipy.stats.kendalltau, whose default is τ-b).
func TestKendallTau(t *testing.T) {
	for _, tc := range []struct {
		name string
		x, y []float64
		want float64
	}{
		{"identical", []float64{1, 2, 3, 4, 5}, []float64{1, 2, 3, 4, 5}, 1},
		{"reversed", []float64{1, 2, 3, 4, 5}, []float64{9, 7, 5, 3, 1}, -1},
		// C = 5, D = 1 of 6 pairs.
		{"one swap", []float64{1, 2, 3, 4}, []float64{1, 3, 2, 4}, 4.0 / 6},
		// C = 4, D = 0; one pair tied in x, another in y: 4/√(5·5).
		{"ties in both", []float64{1, 2, 2, 3}, []float64{1, 2, 3, 3}, 0.8},
		// The pair tied in x and y counts in both tie counts: 2/√(2·2).
		{"pair tied in both", []float64{1, 1, 2}, []float64{1, 1, 2}, 1},
		// C = 3, D = 4, Tx = 1, Ty = 2 of 10 pairs: −1/√(9·8).
		{"mixed", []float64{1, 2, 2, 3, 4}, []float64{2, 1, 3, 3, 1}, -1 / math.Sqrt(72)},
		{"constant", []float64{1, 2, 3}, []float64{5, 5, 5}, math.NaN()},
		{"one value", []float64{1}, []float64{1}, math.NaN()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := KendallTau(tc.x, tc.y); !same(got, tc.want, 1e-12) {
				t.Errorf("KendallTau = %v, want %v", got, tc.want)
			}
			if got := KendallTau(tc.y, tc.x); !same(got, tc.want, 1e-12) {
				t.Errorf("KendallTau swapped = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAccuracy(t *testing.T) {
	if got := Accuracy([]string{"a", "b", "c", "a"}, []string{"a", "b", "a", "b"}); got != 0.5 {
		t.Errorf("Accuracy = %v, want 0.5", got)
	}
	if got := Accuracy(nil, nil); !math.IsNaN(got) {
		t.Errorf("Accuracy of nothing = %v, want NaN", got)
	}
}

func TestMetricsPanicOnLengthMismatch(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("R2 of 2 values and 3 predictions did not panic")
		}
	}()
	R2([]float64{1, 2}, []float64{1, 2, 3})
}

// same reports whether a and b agree within tol, NaN agreeing with NaN.
func same(a, b, tol float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= tol
}

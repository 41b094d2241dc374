package probe

import "math"

// Names of the metrics in a Report.
const (
	MetricR2         = "r2"
	MetricKendallTau = "kendall_tau"
	MetricAccuracy   = "accuracy"
)

// The metrics panic when their arguments differ in length: that is a
// programming error, as with gonum's stat package.
func sameLen(a, b int) {
	if a != b {
		panic("probe: length mismatch")
	}
}

// R2 is the coefficient of determination of pred as predictions of y,
// 1 − Σ(y−pred)² / Σ(y−ȳ)², with ȳ the mean of y itself (not of any training
// data): 1 for perfect predictions, 0 for predicting ȳ, negative for worse.
// It is NaN when y has fewer than two values or all are equal.
func R2(y, pred []float64) float64 {
	sameLen(len(y), len(pred))
	if len(y) < 2 {
		return math.NaN()
	}
	var res float64
	for i, v := range y {
		res += (v - pred[i]) * (v - pred[i])
	}
	tot := spread(y)
	if tot == 0 {
		return math.NaN()
	}
	return 1 - res/tot
}

// spread is Σ(y−ȳ)², the squared deviations of y from its own mean.
func spread(y []float64) float64 {
	mean := 0.0
	for _, v := range y {
		mean += v
	}
	mean /= float64(len(y))
	tot := 0.0
	for _, v := range y {
		tot += (v - mean) * (v - mean)
	}
	return tot
}

// MSE is the mean squared error of pred as predictions of y, NaN for no
// values.
func MSE(y, pred []float64) float64 {
	sameLen(len(y), len(pred))
	if len(y) == 0 {
		return math.NaN()
	}
	s := 0.0
	for i, v := range y {
		s += (v - pred[i]) * (v - pred[i])
	}
	return s / float64(len(y))
}

// KendallTau is Kendall's τ-b of x and y, the rank correlation corrected for
// ties:
//
//	τ_b = (C − D) / √((P − Tx)(P − Ty))
//
// over the P = n(n−1)/2 pairs, of which C are concordant, D discordant, Tx
// tied in x and Ty tied in y (a pair tied in both counts in both and is
// neither concordant nor discordant). It is NaN when x or y is constant or
// there are fewer than two values. The count runs over all pairs, O(n²),
// which takes well under a second for the ten thousands of test samples of
// the zoos this is meant for.
func KendallTau(x, y []float64) float64 {
	sameLen(len(x), len(y))
	n := len(x)
	var c, d, tx, ty int64
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			sx, sy := sign(x[i]-x[j]), sign(y[i]-y[j])
			if sx == 0 {
				tx++
			}
			if sy == 0 {
				ty++
			}
			switch sx * sy {
			case 1:
				c++
			case -1:
				d++
			}
		}
	}
	p := int64(n) * int64(n-1) / 2
	den := math.Sqrt(float64(p-tx) * float64(p-ty))
	if den == 0 {
		return math.NaN()
	}
	return float64(c-d) / den
}

func sign(v float64) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// Accuracy is the fraction of pred equal to y, NaN for no values.
func Accuracy(y, pred []string) float64 {
	sameLen(len(y), len(pred))
	if len(y) == 0 {
		return math.NaN()
	}
	k := 0
	for i := range y {
		if y[i] == pred[i] {
			k++
		}
	}
	return float64(k) / float64(len(y))
}

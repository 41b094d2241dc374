package probe

import (
	"math"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/internal/rng"
	"gonum.org/v1/gonum/mat"
)

// A one-feature ridge regression worked by hand: x = (0, 4) standardises to
// z = (−1, 1) (mean 2, sd 2), y − ȳ = (−1, 1); with n = 2 and λ = 1,
// β = zᵀy / (zᵀz + nλ) = 2/4 = 0.5 per sd, so 0.25 per unit of x, and the
// intercept is ȳ − 2·0.25 = 0.5.
func TestRidgeByHand(t *testing.T) {
	r, err := FitRidge(mat.NewDense(2, 1, []float64{0, 4}), []float64{0, 2}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !same(r.Coef[0], 0.25, 1e-12) || !same(r.Intercept, 0.5, 1e-12) {
		t.Errorf("coef %v, intercept %v; want 0.25, 0.5", r.Coef[0], r.Intercept)
	}
	pred, _ := r.Predict(mat.NewDense(1, 1, []float64{2}))
	if !same(pred[0], 1, 1e-12) {
		t.Errorf("prediction at the mean %v, want 1", pred[0])
	}
}

// TestRidgeSpan checks that predictions stay within the targets the fit
// saw: y = x on x ∈ [0, 4] predicts 9 as 4 and −3 as 0, and within the
// span predicts as the plain linear fit; a Ridge without a Span (a probe
// saved before it existed) extrapolates.
func TestRidgeSpan(t *testing.T) {
	r, err := FitRidge(mat.NewDense(5, 1, []float64{0, 1, 2, 3, 4}), []float64{0, 1, 2, 3, 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Span == nil || r.Span[0] != 0 || r.Span[1] != 4 {
		t.Fatalf("span %v, want [0, 4]", r.Span)
	}
	x := mat.NewDense(3, 1, []float64{9, -3, 2.5})
	pred, _ := r.Predict(x)
	if !same(pred[0], 4, 1e-12) || !same(pred[1], 0, 1e-12) || !same(pred[2], 2.5, 1e-9) {
		t.Errorf("predictions %v, want [4 0 2.5]", pred)
	}
	r.Span = nil
	pred, _ = r.Predict(x)
	if !same(pred[0], 9, 1e-9) || !same(pred[1], -3, 1e-9) {
		t.Errorf("without a span: predictions %v, want 9 and -3 first", pred)
	}
}

// With λ → 0 ridge is ordinary least squares with an intercept, which gonum
// solves by QR.
func TestRidgeZeroPenaltyIsOLS(t *testing.T) {
	r := rng.New(1)
	n, p := 50, 4
	x := gaussian(r, n, p)
	y := linear(r, x, []float64{1, -2, 0.5, 3}, 0.3)
	design := mat.NewDense(n, p+1, nil)
	for i := 0; i < n; i++ {
		design.Set(i, 0, 1)
		for j := 0; j < p; j++ {
			design.Set(i, j+1, x.At(i, j))
		}
	}
	var ols mat.VecDense
	if err := ols.SolveVec(design, mat.NewVecDense(n, y)); err != nil {
		t.Fatal(err)
	}
	for _, lambda := range []float64{0, 1e-12} {
		fit, err := FitRidge(x, y, lambda)
		if err != nil {
			t.Fatal(err)
		}
		if !same(fit.Intercept, ols.AtVec(0), 1e-9) {
			t.Errorf("λ=%v: intercept %v, OLS %v", lambda, fit.Intercept, ols.AtVec(0))
		}
		for j := 0; j < p; j++ {
			if !same(fit.Coef[j], ols.AtVec(j+1), 1e-9) {
				t.Errorf("λ=%v: coef %d = %v, OLS %v", lambda, j, fit.Coef[j], ols.AtVec(j+1))
			}
		}
	}
}

// Against the primal normal equations (ZᵀZ + nλI)β = Zᵀ(y − ȳ) solved by
// Cholesky, for n > p and for p > n, where FitRidge goes through the
// n×n kernel instead.
func TestRidgeMatchesNormalEquations(t *testing.T) {
	for _, tc := range []struct{ n, p int }{{30, 5}, {10, 40}} {
		r := rng.New(uint64(tc.n))
		x := gaussian(r, tc.n, tc.p)
		y := normals(r, tc.n)
		const lambda = 0.3
		fit, err := FitRidge(x, y, lambda)
		if err != nil {
			t.Fatal(err)
		}
		sc := fitScaler(x)
		z := sc.apply(x)
		ymean := 0.0
		for _, v := range y {
			ymean += v / float64(tc.n)
		}
		yc := make([]float64, tc.n)
		for i := range y {
			yc[i] = y[i] - ymean
		}
		var a mat.SymDense
		a.SymOuterK(1, z.T())
		for j := 0; j < tc.p; j++ {
			a.SetSym(j, j, a.At(j, j)+float64(tc.n)*lambda)
		}
		var ch mat.Cholesky
		if !ch.Factorize(&a) {
			t.Fatal("not positive definite")
		}
		var zty, beta mat.VecDense
		zty.MulVec(z.T(), mat.NewVecDense(tc.n, yc))
		if err := ch.SolveVecTo(&beta, &zty); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < tc.p; j++ {
			if want := beta.AtVec(j) / sc.scale[j]; !same(fit.Coef[j], want, 1e-9) {
				t.Errorf("n=%d p=%d: coef %d = %v, normal equations %v", tc.n, tc.p, j, fit.Coef[j], want)
			}
		}
	}
}

func TestSelectRidgePlanted(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(r *rng.Source) (*mat.Dense, []float64)
	}{
		{"n > p", func(r *rng.Source) (*mat.Dense, []float64) {
			x := gaussian(r, 600, 20)
			return x, linear(r, x, normals(rng.New(7), 20), 0.05)
		}},
		// Thousands of correlated features for a few hundred samples, as
		// with the flattened weights of a small CNN.
		{"p >> n", func(r *rng.Source) (*mat.Dense, []float64) {
			x, latent := lowRank(r, rng.New(8), 600, 2000, 5, 0.01)
			return x, linear(r, latent, []float64{1, -1, 0.5, 2, 0}, 0.01)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, y := tc.make(rng.New(2))
			xs, ys := split(x, y, 300, 100, 200)
			fit, val, err := SelectRidge(xs[0], ys[0], xs[1], ys[1], nil)
			if err != nil {
				t.Fatal(err)
			}
			pred, err := fit.Predict(xs[2])
			if err != nil {
				t.Fatal(err)
			}
			if r2 := R2(ys[2], pred); r2 < 0.99 || val < 0.99 {
				t.Errorf("test R² %v, validation R² %v (λ %v); want both > 0.99", r2, val, fit.Lambda)
			}
		})
	}
}

func TestSelectRidgeNoise(t *testing.T) {
	for _, p := range []int{10, 1000} {
		r := rng.New(uint64(p))
		x := gaussian(r, 600, p)
		y := normals(r, 600)
		xs, ys := split(x, y, 300, 100, 200)
		fit, _, err := SelectRidge(xs[0], ys[0], xs[1], ys[1], nil)
		if err != nil {
			t.Fatal(err)
		}
		pred, _ := fit.Predict(xs[2])
		if r2 := R2(ys[2], pred); r2 > 0.03 {
			t.Errorf("p=%d: test R² on noise %v (λ %v), want ≤ about 0", p, r2, fit.Lambda)
		}
	}
}

// A constant feature must neither break the fit nor get a coefficient.
func TestRidgeConstantFeature(t *testing.T) {
	r := rng.New(3)
	x := gaussian(r, 40, 3)
	for i := 0; i < 40; i++ {
		x.Set(i, 1, 7)
	}
	y := linear(r, x, []float64{2, 0, -1}, 0.01)
	fit, err := FitRidge(x, y, 1e-6)
	if err != nil {
		t.Fatal(err)
	}
	if fit.Coef[1] != 0 || !same(fit.Coef[0], 2, 0.02) || !same(fit.Coef[2], -1, 0.02) {
		t.Errorf("coef %v, want about (2, 0, −1) with exactly 0 for the constant", fit.Coef)
	}
}

func TestRidgeErrors(t *testing.T) {
	x := mat.NewDense(3, 2, []float64{1, 2, 3, 4, 5, 6})
	nan := mat.NewDense(3, 2, []float64{1, 2, math.NaN(), 4, 5, 6})
	fit, _ := FitRidge(x, []float64{1, 2, 3}, 1)
	for _, tc := range []struct {
		name string
		err  func() error
		want string
	}{
		{"targets", func() error { _, err := FitRidge(x, []float64{1, 2}, 1); return err }, "3 samples of features, 2 targets"},
		{"one sample", func() error { _, err := FitRidge(mat.NewDense(1, 2, nil), []float64{1}, 1); return err }, "want at least 2"},
		{"nan feature", func() error { _, err := FitRidge(nan, []float64{1, 2, 3}, 1); return err }, "NaN at row 1, column 0"},
		{"nan target", func() error { _, err := FitRidge(x, []float64{1, math.NaN(), 3}, 1); return err }, "value 1 is NaN"},
		{"penalty", func() error { _, err := FitRidge(x, []float64{1, 2, 3}, -1); return err }, "ridge penalty -1"},
		{"grid", func() error {
			_, _, err := SelectRidge(x, []float64{1, 2, 3}, x, []float64{1, 2, 3}, []float64{1, -2})
			return err
		}, "penalty -2 in the grid"},
		{"validation width", func() error {
			_, _, err := SelectRidge(x, []float64{1, 2, 3}, mat.NewDense(1, 3, nil), []float64{1}, nil)
			return err
		}, "validation features is 1×3, want 1×2"},
		{"predict width", func() error { _, err := fit.Predict(mat.NewDense(1, 3, nil)); return err }, "3 features, the ridge regression was fitted on 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestRidgeGrid(t *testing.T) {
	g := RidgeGrid()
	if len(g) != 21 || !same(g[0], 1e-6, 1e-20) || !same(g[20], 1e4, 1e-9) || !same(g[1], math.Sqrt(10)*1e-6, 1e-18) {
		t.Errorf("RidgeGrid = %v", g)
	}
}

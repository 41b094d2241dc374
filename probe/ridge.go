package probe

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// Ridge is a fitted ridge regression, y ≈ x·Coef + Intercept, in the units
// of the features it was fitted on, its predictions held to the span of
// the targets it was fitted on.
//
// It minimises (1/n)·Σ(yᵢ − b − zᵢ·β)² + Lambda·‖β‖² over the features z
// standardised on the n fitting samples, with the intercept b unpenalised;
// Coef and Intercept are β and b carried back to the raw features.
type Ridge struct {
	Lambda    float64   `json:"lambda"`
	Coef      []float64 `json:"coef"` // one per feature
	Intercept float64   `json:"intercept"`
	// Span is the least and the largest target of the fitting samples.
	// Predict clips to it: a linear fit extrapolates past what it saw (a
	// test accuracy of 1.2, a negative epoch), and for a target that lies
	// within the span clipping can only bring a prediction closer. Nil
	// (probes saved before it existed) leaves predictions as they are.
	Span *[2]float64 `json:"span,omitempty"`
}

// RidgeGrid returns the penalties SelectRidge tries by default: 10^-6 to
// 10^4 in steps of half a decade, 21 values. On standardised features λ is
// on the scale of the mean squared error per unit ‖β‖², so the grid runs
// from practically unpenalised least squares to shrinking everything to
// the mean, for a few features as for thousands of correlated ones.
func RidgeGrid() []float64 { return logGrid(-6, 4, 2) }

// FitRidge fits a ridge regression of y on the rows of x [n, p], with n ≥ 2
// and λ ≥ 0. With λ = 0 it is least squares, the minimum-norm solution when
// the features do not determine one.
func FitRidge(x mat.Matrix, y []float64, lambda float64) (*Ridge, error) {
	if lambda < 0 || math.IsNaN(lambda) || math.IsInf(lambda, 0) {
		return nil, fmt.Errorf("probe: ridge penalty %v, want a finite value ≥ 0", lambda)
	}
	d, err := ridgeDesign(x, y)
	if err != nil {
		return nil, err
	}
	return newRidgeFit(d, y).model(lambda), nil
}

// SelectRidge picks from grid (RidgeGrid when empty) the penalty whose fit
// on the training samples has the least squared error on the validation
// samples, the larger penalty on a tie, and returns the fit with that
// penalty on training and validation samples together, with its validation
// R² before refitting.
func SelectRidge(xTrain mat.Matrix, yTrain []float64, xVal mat.Matrix, yVal []float64, grid []float64) (*Ridge, float64, error) {
	train, err := ridgeDesign(xTrain, yTrain)
	if err != nil {
		return nil, 0, err
	}
	xv, err := validation(xVal, len(yVal), train.x)
	if err != nil {
		return nil, 0, err
	}
	return selectRidge(train, yTrain, xv, yVal, grid, func() (*design, error) {
		_, p := train.x.Dims()
		all := mat.NewDense(len(yTrain)+len(yVal), p, nil)
		all.Stack(train.x, xv)
		return newDesign(all)
	})
}

// selectRidge is SelectRidge on prepared samples; all prepares the training
// samples followed by the validation samples.
func selectRidge(train *design, yTrain []float64, xVal *mat.Dense, yVal []float64, grid []float64, all func() (*design, error)) (*Ridge, float64, error) {
	grid, err := checkGrid(grid, RidgeGrid())
	if err != nil {
		return nil, 0, err
	}
	if err := finite(yVal, "validation targets"); err != nil {
		return nil, 0, err
	}
	f := newRidgeFit(train, yTrain)
	best, bestMSE, bestR2 := 0.0, math.Inf(1), math.NaN()
	for _, l := range grid {
		pred, _ := f.model(l).Predict(xVal)
		// <= prefers the larger penalty on a tie: the grid ascends.
		if e := MSE(yVal, pred); e <= bestMSE || math.IsInf(bestMSE, 1) {
			best, bestMSE, bestR2 = l, e, R2(yVal, pred)
		}
	}
	d, err := all()
	if err != nil {
		return nil, 0, err
	}
	return newRidgeFit(d, append(slices.Clone(yTrain), yVal...)).model(best), bestR2, nil
}

// Predict returns the predictions for the rows of x [m, p], within Span.
func (r *Ridge) Predict(x mat.Matrix) ([]float64, error) {
	m, p := x.Dims()
	if p != len(r.Coef) {
		return nil, fmt.Errorf("probe: %d features, the ridge regression was fitted on %d", p, len(r.Coef))
	}
	out := make([]float64, m)
	if m == 0 {
		return out, nil
	}
	mat.NewVecDense(m, out).MulVec(x, mat.NewVecDense(p, r.Coef))
	for i := range out {
		out[i] += r.Intercept
		if r.Span != nil {
			out[i] = min(max(out[i], r.Span[0]), r.Span[1])
		}
	}
	return out, nil
}

// ridgeDesign checks and prepares the samples of a ridge regression.
func ridgeDesign(x mat.Matrix, y []float64) (*design, error) {
	n, p := x.Dims()
	if n != len(y) {
		return nil, fmt.Errorf("probe: %d samples of features, %d targets", n, len(y))
	}
	if n < 2 {
		return nil, fmt.Errorf("probe: %d samples to fit a ridge regression on, want at least 2", n)
	}
	xd, err := dense(x, n, p, "features")
	if err != nil {
		return nil, err
	}
	if err := finite(y, "targets"); err != nil {
		return nil, err
	}
	return newDesign(xd)
}

// validation checks the validation features against the training ones.
func validation(x mat.Matrix, n int, train *mat.Dense) (*mat.Dense, error) {
	if n == 0 {
		return nil, fmt.Errorf("probe: no validation samples to choose the penalty on")
	}
	_, p := train.Dims()
	return dense(x, n, p, "validation features")
}

// ridgeFit holds what the solutions for every penalty share: with c the
// coordinates of the samples and s2 the squared singular values, the
// coefficients in the coordinates are a(λ) = (cᵀ(y − ȳ)) / (s2 + nλ).
type ridgeFit struct {
	d     *design
	ymean float64
	cty   []float64 // cᵀ(y − ȳ) [r]
	span  [2]float64
}

func newRidgeFit(d *design, y []float64) *ridgeFit {
	f := &ridgeFit{d: d, span: [2]float64{slices.Min(y), slices.Max(y)}}
	for _, v := range y {
		f.ymean += v
	}
	f.ymean /= float64(len(y))
	if r := d.rank(); r > 0 {
		yc := make([]float64, len(y))
		for i, v := range y {
			yc[i] = v - f.ymean
		}
		cty := mat.NewVecDense(r, nil)
		cty.MulVec(d.c.T(), mat.NewVecDense(len(yc), yc)) // [r, n]·[n] -> [r]
		f.cty = cty.RawVector().Data
	}
	return f
}

// model is the fit with penalty λ, in the units of the raw features.
func (f *ridgeFit) model(lambda float64) *Ridge {
	n, _ := f.d.x.Dims()
	a := make([]float64, len(f.cty))
	for i := range a {
		a[i] = f.cty[i] / (f.d.s2[i] + float64(n)*lambda)
	}
	span := f.span
	r := &Ridge{Lambda: lambda, Coef: f.d.lift(a, 1), Intercept: f.ymean, Span: &span}
	r.Intercept += f.d.sc.unscale(r.Coef, 1)[0]
	return r
}

// finite checks that every value of v is a number.
func finite(v []float64, what string) error {
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("probe: %s: value %d is %v", what, i, x)
		}
	}
	return nil
}

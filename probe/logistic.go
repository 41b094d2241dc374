package probe

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize"
)

// Logistic is a fitted multinomial logistic regression: the predicted class
// of a row x is the k maximising x·Coef[:, k] + Intercept[k].
//
// It minimises (1/n)·Σ −log softmax(zᵢ·W + b)[yᵢ] + (Lambda/2)·‖W‖² over
// the features z standardised on the n fitting samples, with the intercepts
// b unpenalised; Coef and Intercept are W and b carried back to the raw
// features.
type Logistic struct {
	Lambda    float64   `json:"lambda"`
	Classes   []string  `json:"classes"`   // sorted; K of them
	Coef      []float64 `json:"coef"`      // [p, K], row-major
	Intercept []float64 `json:"intercept"` // [K]
}

// LogisticGrid returns the penalties SelectLogistic tries by default: 10^-5
// to 10^2 in steps of a decade, 8 values. At 10^2 the weights are all but
// zero and the prediction is close to the majority class; at 10^-5,
// separable classes are separated with a wide margin.
func LogisticGrid() []float64 { return logGrid(-5, 2, 1) }

// The limits of L-BFGS: past a thousand iterations the objective of a
// nearly separable problem creeps down without changing a prediction.
const (
	logitIterations = 1000
	logitGradTol    = 1e-6
)

// FitLogistic fits a multinomial logistic regression of labels on the rows
// of x [n, p], with n ≥ 1 and λ ≥ 0, by L-BFGS. Every label is a class; a
// single class gives a model that always predicts it. With λ = 0 and
// separable classes the weights grow until the iteration limit.
func FitLogistic(x mat.Matrix, labels []string, lambda float64) (*Logistic, error) {
	if lambda < 0 || math.IsNaN(lambda) || math.IsInf(lambda, 0) {
		return nil, fmt.Errorf("probe: logistic penalty %v, want a finite value ≥ 0", lambda)
	}
	d, err := logitDesign(x, labels)
	if err != nil {
		return nil, err
	}
	return newLogitFit(d, labels).fit(lambda, nil)
}

// SelectLogistic picks from grid (LogisticGrid when empty) the penalty whose
// fit on the training samples has the highest accuracy on the validation
// samples, breaking ties by the lower validation cross-entropy and then by
// the larger penalty, and returns the fit with that penalty on training
// and validation samples together, with its validation accuracy before
// refitting. Validation labels that no training sample has count as errors.
func SelectLogistic(xTrain mat.Matrix, yTrain []string, xVal mat.Matrix, yVal []string, grid []float64) (*Logistic, float64, error) {
	train, err := logitDesign(xTrain, yTrain)
	if err != nil {
		return nil, 0, err
	}
	xv, err := validation(xVal, len(yVal), train.x)
	if err != nil {
		return nil, 0, err
	}
	return selectLogistic(train, yTrain, xv, yVal, grid, func() (*design, error) {
		_, p := train.x.Dims()
		all := mat.NewDense(len(yTrain)+len(yVal), p, nil)
		all.Stack(train.x, xv)
		return newDesign(all)
	})
}

// selectLogistic is SelectLogistic on prepared samples; all prepares the
// training samples followed by the validation samples.
func selectLogistic(train *design, yTrain []string, xVal *mat.Dense, yVal []string, grid []float64, all func() (*design, error)) (*Logistic, float64, error) {
	grid, err := checkGrid(grid, LogisticGrid())
	if err != nil {
		return nil, 0, err
	}
	f := newLogitFit(train, yTrain)
	var (
		best, bestAcc, bestLoss = 0.0, -1.0, math.Inf(1)
		theta                   []float64
	)
	// From the largest penalty down, each fit starting where the previous
	// ended: the solutions move little from one penalty to the next.
	for _, l := range slices.Backward(grid) {
		if theta, err = f.solve(l, theta); err != nil {
			return nil, 0, err
		}
		m := f.model(l, theta)
		pred, _ := m.Predict(xVal)
		acc, loss := Accuracy(yVal, pred), m.crossEntropy(xVal, yVal)
		if acc > bestAcc || acc == bestAcc && loss < bestLoss {
			best, bestAcc, bestLoss = l, acc, loss
		}
	}
	d, err := all()
	if err != nil {
		return nil, 0, err
	}
	m, err := newLogitFit(d, append(slices.Clone(yTrain), yVal...)).fit(best, nil)
	return m, bestAcc, err
}

// Predict returns the predicted class of each row of x [m, p]; a tie goes
// to the class first in Classes.
func (l *Logistic) Predict(x mat.Matrix) ([]string, error) {
	s, err := l.scores(x)
	if err != nil {
		return nil, err
	}
	m, _ := s.Dims()
	out := make([]string, m)
	for i := range out {
		row := s.RawRowView(i)
		out[i] = l.Classes[argmax(row)]
	}
	return out, nil
}

// scores returns x·Coef + Intercept [m, K].
func (l *Logistic) scores(x mat.Matrix) (*mat.Dense, error) {
	m, p := x.Dims()
	k := len(l.Classes)
	if k == 0 || len(l.Intercept) != k || len(l.Coef) != p*k {
		return nil, fmt.Errorf("probe: %d features, the logistic regression was fitted on %d", p, len(l.Coef)/max(k, 1))
	}
	s := mat.NewDense(m, k, nil)
	s.Mul(x, mat.NewDense(p, k, l.Coef))
	for i := 0; i < m; i++ {
		row := s.RawRowView(i)
		for c := range row {
			row[c] += l.Intercept[c]
		}
	}
	return s, nil
}

// crossEntropy is the mean −log probability of the true class over the rows
// whose class the model knows.
func (l *Logistic) crossEntropy(x mat.Matrix, y []string) float64 {
	sum, n := l.crossEntropySum(x, y)
	if n == 0 {
		return math.Inf(1)
	}
	return sum / float64(n)
}

// crossEntropySum is the summed −log probability of the true class over the
// n rows whose class the model knows.
func (l *Logistic) crossEntropySum(x mat.Matrix, y []string) (sum float64, n int) {
	s, err := l.scores(x)
	if err != nil {
		return math.Inf(1), 0
	}
	for i, label := range y {
		c, ok := slices.BinarySearch(l.Classes, label)
		if !ok {
			continue
		}
		row := s.RawRowView(i)
		sum += logSumExp(row) - row[c]
		n++
	}
	return sum, n
}

// logitFit is a problem set up for solving at any penalty, in the
// coordinates of the samples' design: the weights of the standardised
// features are W = V·Aᵀ with A [K, r]: stored class by class, so that the
// products with the coordinates run along r, not along the few classes.
type logitFit struct {
	d       *design
	classes []string
	y       []int     // class of each sample
	prior   []float64 // log class frequencies: the intercepts to start from
}

// logitDesign checks and prepares the samples of a logistic regression.
func logitDesign(x mat.Matrix, labels []string) (*design, error) {
	n, p := x.Dims()
	if n != len(labels) {
		return nil, fmt.Errorf("probe: %d samples of features, %d labels", n, len(labels))
	}
	if n == 0 {
		return nil, fmt.Errorf("probe: no samples to fit a logistic regression on")
	}
	xd, err := dense(x, n, p, "features")
	if err != nil {
		return nil, err
	}
	return newDesign(xd)
}

func newLogitFit(d *design, labels []string) *logitFit {
	f := &logitFit{d: d, classes: slices.Compact(slices.Sorted(slices.Values(labels)))}
	f.y = make([]int, len(labels))
	count := make([]float64, len(f.classes))
	for i, label := range labels {
		f.y[i], _ = slices.BinarySearch(f.classes, label)
		count[f.y[i]]++
	}
	f.prior = make([]float64, len(f.classes))
	for c := range count {
		f.prior[c] = math.Log(count[c] / float64(len(labels)))
	}
	return f
}

// fit solves at penalty λ from start and returns the model.
func (f *logitFit) fit(lambda float64, start []float64) (*Logistic, error) {
	theta, err := f.solve(lambda, start)
	if err != nil {
		return nil, err
	}
	return f.model(lambda, theta), nil
}

// solve minimises the objective at penalty λ from start (A then b; nil: A
// zero and b the log priors) and returns the minimiser.
func (f *logitFit) solve(lambda float64, start []float64) ([]float64, error) {
	r, k := f.d.rank(), len(f.classes)
	if start == nil {
		start = make([]float64, r*k+k)
		copy(start[r*k:], f.prior)
	}
	if k == 1 {
		return start, nil
	}
	obj := f.objective(lambda)
	prob := optimize.Problem{
		Func: func(x []float64) float64 { return obj.at(x).f },
		Grad: func(g, x []float64) { copy(g, obj.at(x).grad) },
	}
	settings := &optimize.Settings{
		GradientThreshold: logitGradTol,
		MajorIterations:   logitIterations,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-12, Relative: 1e-10, Iterations: 25},
	}
	res, err := optimize.Minimize(prob, start, settings, &optimize.LBFGS{})
	if res == nil {
		return nil, fmt.Errorf("probe: logistic regression: %w", err)
	}
	// A failed line search near the minimum still leaves the best point
	// found, which is what we want; only a point that is not one is an error.
	if err := finite(res.X, "logistic regression solution"); err != nil {
		return nil, err
	}
	return res.X, nil
}

// model carries a solution θ = (A, b) back to the raw features.
func (f *logitFit) model(lambda float64, theta []float64) *Logistic {
	r, k := f.d.rank(), len(f.classes)
	at := make([]float64, r*k) // Aᵀ [r, K]
	for c := 0; c < k; c++ {
		for j := 0; j < r; j++ {
			at[j*k+c] = theta[c*r+j]
		}
	}
	m := &Logistic{Lambda: lambda, Classes: f.classes, Coef: f.d.lift(at, k), Intercept: slices.Clone(theta[r*k:])}
	for c, d := range f.d.sc.unscale(m.Coef, k) {
		m.Intercept[c] += d
	}
	return m
}

// objective evaluates the loss and its gradient together and remembers the
// last point, since L-BFGS asks for both at the same point one after the
// other.
type objective struct {
	f           *logitFit
	lambda      float64
	x           []float64
	val         evaluation
	scores, res *mat.Dense // [n, K] buffers
}

type evaluation struct {
	f    float64
	grad []float64
}

func (f *logitFit) objective(lambda float64) *objective {
	n, k := len(f.y), len(f.classes)
	return &objective{f: f, lambda: lambda, scores: mat.NewDense(n, k, nil), res: mat.NewDense(n, k, nil)}
}

func (o *objective) at(x []float64) evaluation {
	if o.x != nil && slices.Equal(o.x, x) {
		return o.val
	}
	f := o.f
	n, r, k := len(f.y), f.d.rank(), len(f.classes)
	a, b := x[:r*k], x[r*k:]
	if r > 0 {
		o.scores.Mul(f.d.c, mat.NewDense(k, r, a).T()) // [n, r]·[r, K] -> [n, K]
	} else {
		o.scores.Zero()
	}
	grad := make([]float64, len(x))
	loss := 0.0
	for i := 0; i < n; i++ {
		s, g := o.scores.RawRowView(i), o.res.RawRowView(i)
		for c := range s {
			s[c] += b[c]
		}
		lse := logSumExp(s)
		loss += lse - s[f.y[i]]
		// The residual softmax − onehot is the gradient of the loss with
		// respect to the scores.
		for c := range s {
			g[c] = math.Exp(s[c]-lse) / float64(n)
			grad[r*k+c] += g[c]
		}
		g[f.y[i]] -= 1 / float64(n)
		grad[r*k+f.y[i]] -= 1 / float64(n)
	}
	loss /= float64(n)
	if r > 0 {
		ga := mat.NewDense(k, r, grad[:r*k])
		ga.Mul(o.res.T(), f.d.c) // [K, n]·[n, r] -> [K, r]
		for i, v := range a {
			loss += o.lambda / 2 * v * v
			grad[i] += o.lambda * v
		}
	}
	o.x = append(o.x[:0], x...)
	o.val = evaluation{loss, grad}
	return o.val
}

func logSumExp(s []float64) float64 {
	m := s[argmax(s)]
	sum := 0.0
	for _, v := range s {
		sum += math.Exp(v - m)
	}
	return m + math.Log(sum)
}

// argmax returns the index of the largest value, the first on a tie.
func argmax(s []float64) int {
	k := 0
	for i, v := range s {
		if v > s[k] {
			k = i
		}
	}
	return k
}

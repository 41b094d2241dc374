package probe

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/hyperrep/hyperrep/internal/rng"
)

// DefaultFolds is the number of folds of the cross-validation over the
// training models that chooses a probe's penalty when Options.Folds is 0.
const DefaultFolds = 5

// modelFolds divides the samples pool (indices into models) into k folds,
// or into as many as there are models when they are fewer, keeping the
// samples of a model together: models are dealt out in an order drawn by
// seed, so that the folds depend on the set of models, not on the order of
// the samples.
func modelFolds(pool []int, models []string, k int, seed uint64) ([][]int, error) {
	ids := make([]string, 0, len(pool))
	for _, i := range pool {
		ids = append(ids, models[i])
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if len(ids) < 2 {
		return nil, fmt.Errorf("probe: %d training models, want at least 2 to cross-validate on", len(ids))
	}
	k = min(k, len(ids))
	fold := make(map[string]int, len(ids))
	for rank, i := range rng.New(seed).Perm(len(ids)) {
		fold[ids[i]] = rank % k
	}
	out := make([][]int, k)
	for _, i := range pool {
		out[fold[models[i]]] = append(out[fold[models[i]]], i)
	}
	return out, nil
}

// rest is every fold but fold f, concatenated.
func rest(folds [][]int, f int) []int {
	var out []int
	for g, idx := range folds {
		if g != f {
			out = append(out, idx...)
		}
	}
	return out
}

// cvRidge chooses from grid the penalty whose fits on all folds but one
// have the least squared error summed over the held-out folds (the larger
// penalty on a tie), and returns the fit with it on all folds together,
// with the R² of the held-out predictions at that penalty.
func cvRidge(c *designs, y []float64, folds [][]int, grid []float64) (*Ridge, float64, error) {
	grid, err := checkGrid(grid, RidgeGrid())
	if err != nil {
		return nil, 0, err
	}
	perFold := make([][]float64, len(folds)) // squared error per penalty
	err = eachFold(len(folds), func(f int) error {
		hold, in := folds[f], rest(folds, f)
		d, err := c.get(in)
		if err != nil {
			return err
		}
		fit, xh, yh := newRidgeFit(d, pick(y, in)), rows(c.x, hold), pick(y, hold)
		perFold[f] = make([]float64, len(grid))
		for k, l := range grid {
			pred, err := fit.model(l).Predict(xh)
			if err != nil {
				return err
			}
			perFold[f][k] = MSE(yh, pred) * float64(len(hold))
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	sse := make([]float64, len(grid))
	for _, e := range perFold { // in fold order: the sums do not depend on scheduling
		for k := range sse {
			sse[k] += e[k]
		}
	}
	best := 0
	for k := range grid {
		// <= prefers the larger penalty on a tie: the grid ascends.
		if sse[k] <= sse[best] {
			best = k
		}
	}
	all := slices.Concat(folds...)
	d, err := c.get(all)
	if err != nil {
		return nil, 0, err
	}
	ya := pick(y, all)
	sst := spread(ya)
	score := 1 - sse[best]/sst
	if sst == 0 {
		score = math.NaN()
	}
	return newRidgeFit(d, ya).model(grid[best]), score, nil
}

// cvLogistic chooses from grid the penalty whose fits on all folds but one
// classify the most held-out samples correctly, breaking ties by the lower
// held-out cross-entropy and then by the larger penalty, and returns the
// fit with it on all folds together, with the held-out accuracy at that
// penalty. A held-out label that its fold's training samples lack counts as
// an error.
func cvLogistic(c *designs, labels []string, folds [][]int, grid []float64) (*Logistic, float64, error) {
	grid, err := checkGrid(grid, LogisticGrid())
	if err != nil {
		return nil, 0, err
	}
	foldCorrect := make([][]int, len(folds))
	foldLoss := make([][]float64, len(folds))
	err = eachFold(len(folds), func(f int) error {
		hold, in := folds[f], rest(folds, f)
		d, err := c.get(in)
		if err != nil {
			return err
		}
		fit, xh, yh := newLogitFit(d, pick(labels, in)), rows(c.x, hold), pick(labels, hold)
		foldCorrect[f], foldLoss[f] = make([]int, len(grid)), make([]float64, len(grid))
		var theta []float64
		// From the largest penalty down, each fit starting where the
		// previous ended.
		for k := len(grid) - 1; k >= 0; k-- {
			if theta, err = fit.solve(grid[k], theta); err != nil {
				return err
			}
			m := fit.model(grid[k], theta)
			pred, err := m.Predict(xh)
			if err != nil {
				return err
			}
			for i := range yh {
				if pred[i] == yh[i] {
					foldCorrect[f][k]++
				}
			}
			foldLoss[f][k], _ = m.crossEntropySum(xh, yh)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	correct := make([]int, len(grid))
	loss := make([]float64, len(grid))
	for f := range folds { // in fold order: the sums do not depend on scheduling
		for k := range grid {
			correct[k] += foldCorrect[f][k]
			loss[k] += foldLoss[f][k]
		}
	}
	best := len(grid) - 1
	for k := len(grid) - 2; k >= 0; k-- {
		if correct[k] > correct[best] || correct[k] == correct[best] && loss[k] < loss[best] {
			best = k
		}
	}
	all := slices.Concat(folds...)
	d, err := c.get(all)
	if err != nil {
		return nil, 0, err
	}
	m, err := newLogitFit(d, pick(labels, all)).fit(grid[best], nil)
	return m, float64(correct[best]) / float64(len(all)), err
}

// pick returns v's values at idx.
func pick[T any](v []T, idx []int) []T {
	out := make([]T, len(idx))
	for k, i := range idx {
		out[k] = v[i]
	}
	return out
}

// eachFold runs do for folds 0..n-1, as many at once as there are CPUs,
// and returns the error of the lowest fold that failed.
func eachFold(n int, do func(f int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	var wg sync.WaitGroup
	for f := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[f] = do(f)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

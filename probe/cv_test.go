package probe

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/hyperrep/hyperrep/internal/rng"
	"gonum.org/v1/gonum/mat"
)

func TestModelFolds(t *testing.T) {
	var models []string
	var pool []int
	for m := 0; m < 11; m++ {
		for e := 0; e < 3; e++ {
			models = append(models, fmt.Sprintf("m%02d", m))
			pool = append(pool, len(models)-1)
		}
	}
	folds, err := modelFolds(pool, models, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(folds) != 5 {
		t.Fatalf("%d folds, want 5", len(folds))
	}
	seen := map[int]bool{}
	foldOf := map[string]int{}
	for f, idx := range folds {
		// 11 models in 5 folds: 2 or 3 models, 6 or 9 samples.
		if len(idx) != 6 && len(idx) != 9 {
			t.Errorf("fold %d has %d samples, want 6 or 9", f, len(idx))
		}
		for _, i := range idx {
			if seen[i] {
				t.Errorf("sample %d in two folds", i)
			}
			seen[i] = true
			if g, ok := foldOf[models[i]]; ok && g != f {
				t.Errorf("model %s in folds %d and %d", models[i], g, f)
			}
			foldOf[models[i]] = f
		}
	}
	if len(seen) != len(pool) {
		t.Errorf("%d of %d samples in folds", len(seen), len(pool))
	}
	// The order of the samples does not change which model goes where.
	rev := slices.Clone(pool)
	slices.Reverse(rev)
	again, _ := modelFolds(rev, models, 5, 0)
	for f, idx := range again {
		for _, i := range idx {
			if foldOf[models[i]] != f {
				t.Errorf("model %s: fold %d, then %d with the samples reversed", models[i], foldOf[models[i]], f)
			}
		}
	}
	// Fewer models than folds: one fold per model.
	few, err := modelFolds(pool[:9], models, 5, 0)
	if err != nil || len(few) != 3 {
		t.Errorf("3 models: %d folds, %v", len(few), err)
	}
	if _, err := modelFolds(pool[:3], models, 5, 0); err == nil {
		t.Error("one model was cross-validated")
	}
}

// cvData is a regression and a classification over samples grouped in
// models, with a relation the folds have to find the penalty for.
func cvData(n, p, perModel int) (x *mat.Dense, y []float64, labels, models []string, pool []int) {
	r := rng.New(5)
	x = mat.NewDense(n, p, nil)
	w := make([]float64, p)
	for j := range w {
		w[j] = r.Normal() / math.Sqrt(float64(p))
	}
	for i := 0; i < n; i++ {
		v := 0.0
		for j := 0; j < p; j++ {
			x.Set(i, j, r.Normal())
			v += w[j] * x.At(i, j)
		}
		y = append(y, v+0.5*r.Normal())
		// The class is the largest of three features, blurred.
		c := 0
		for j := 1; j < 3; j++ {
			if x.At(i, j)+0.3*r.Normal() > x.At(i, c) {
				c = j
			}
		}
		labels = append(labels, []string{"a", "b", "c"}[c])
		models = append(models, fmt.Sprintf("m%02d", i/perModel))
		pool = append(pool, i)
	}
	return x, y, labels, models, pool
}

// cvRidge against folds fitted one by one with FitRidge.
func TestCVRidgeBruteForce(t *testing.T) {
	for _, p := range []int{6, 80} { // primal and dual
		x, y, _, models, pool := cvData(60, p, 4)
		folds, err := modelFolds(pool, models, 5, 0)
		if err != nil {
			t.Fatal(err)
		}
		grid := RidgeGrid()
		best, bestSSE := 0.0, math.Inf(1)
		for _, l := range grid {
			sse := 0.0
			for f, hold := range folds {
				in := rest(folds, f)
				r, err := FitRidge(rows(x, in), pick(y, in), l)
				if err != nil {
					t.Fatal(err)
				}
				pred, _ := r.Predict(rows(x, hold))
				for k, i := range hold {
					sse += (pred[k] - y[i]) * (pred[k] - y[i])
				}
			}
			if sse <= bestSSE {
				best, bestSSE = l, sse
			}
		}
		mean := 0.0
		for _, v := range y {
			mean += v / float64(len(y))
		}
		sst := 0.0
		for _, v := range y {
			sst += (v - mean) * (v - mean)
		}
		got, score, err := cvRidge(&designs{x: x, m: map[string]*design{}}, y, folds, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.Lambda != best {
			t.Errorf("p=%d: λ %g, want %g", p, got.Lambda, best)
		}
		if want := 1 - bestSSE/sst; math.Abs(score-want) > 1e-9 {
			t.Errorf("p=%d: held-out R² %v, want %v", p, score, want)
		}
		if best == grid[0] || best == grid[len(grid)-1] {
			t.Errorf("p=%d: λ %g at the end of the grid: the data do not test the choice", p, best)
		}
		ref, _ := FitRidge(x, y, best)
		for j := range ref.Coef {
			if math.Abs(got.Coef[j]-ref.Coef[j]) > 1e-8 {
				t.Fatalf("p=%d: coefficient %d is %v, refit on all samples gives %v", p, j, got.Coef[j], ref.Coef[j])
			}
		}
	}
}

// cvLogistic against folds fitted one by one with FitLogistic.
func TestCVLogisticBruteForce(t *testing.T) {
	x, _, labels, models, pool := cvData(60, 5, 4)
	folds, err := modelFolds(pool, models, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	grid := LogisticGrid()
	correct := make([]int, len(grid))
	for k, l := range grid {
		for f, hold := range folds {
			in := rest(folds, f)
			m, err := FitLogistic(rows(x, in), pick(labels, in), l)
			if err != nil {
				t.Fatal(err)
			}
			pred, _ := m.Predict(rows(x, hold))
			for j, i := range hold {
				if pred[j] == labels[i] {
					correct[k]++
				}
			}
		}
	}
	got, acc, err := cvLogistic(&designs{x: x, m: map[string]*design{}}, labels, folds, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := slices.Index(grid, got.Lambda)
	if k < 0 || correct[k] != slices.Max(correct) {
		t.Errorf("λ %g with %d correct held-out samples; counts per λ %v", got.Lambda, correct[max(k, 0)], correct)
	}
	if want := float64(slices.Max(correct)) / 60; math.Abs(acc-want) > 1e-12 {
		t.Errorf("held-out accuracy %v, want %v", acc, want)
	}
	if acc < 0.5 {
		t.Errorf("held-out accuracy %v: the labels depend on the features, chance is 1/3", acc)
	}
}

// Without validation models the penalty is still chosen, on the training
// models' folds, and agrees with the choice on the same samples made
// explicitly.
func TestRunFoldsWithoutValidation(t *testing.T) {
	z := newSynthZoo(24, 6)
	for id, p := range z.data.Split {
		if p == Validation {
			z.data.Split[id] = Train
		}
	}
	res, err := Run(&z.data, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Probe("good", TestAcc)
	if p == nil || p.Ridge == nil {
		t.Fatalf("probe of test_acc from good: %+v", p)
	}
	if r2 := R2(p.True, p.Predicted); r2 < 0.99 {
		t.Errorf("planted test accuracy: R² %v", r2)
	}
	var pool []int
	for i, m := range z.data.Models {
		if z.data.Split[m] == Train {
			pool = append(pool, i)
		}
	}
	folds, _ := modelFolds(pool, z.data.Models, DefaultFolds, 0)
	x := mat.DenseCopyOf(z.data.Features[0].X)
	want, _, err := cvRidge(&designs{x: x, m: map[string]*design{}}, z.data.Targets[0].Values, folds, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want.Lambda != p.Ridge.Lambda {
		t.Errorf("λ %g, want %g", p.Ridge.Lambda, want.Lambda)
	}
}

package probe

import (
	"math"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/internal/rng"
	"gonum.org/v1/gonum/mat"
)

// classesOf labels each row of scores [n, K] with the name of its largest
// column.
func classesOf(scores mat.Matrix, names []string) []string {
	n, _ := scores.Dims()
	out := make([]string, n)
	for i := range out {
		out[i] = names[argmax(mat.Row(nil, i, scores))]
	}
	return out
}

func TestSelectLogisticPlanted(t *testing.T) {
	names := []string{"relu", "tanh", "gelu", "sigmoid"}
	for _, tc := range []struct {
		name string
		make func(r *rng.Source) (*mat.Dense, []string)
	}{
		// Classes far apart: separable.
		{"separable", func(r *rng.Source) (*mat.Dense, []string) {
			x := gaussian(r, 600, 10)
			y := make([]string, 600)
			for i := range y {
				c := int(r.Below(4))
				y[i] = names[c]
				x.Set(i, c, x.At(i, c)+8)
			}
			return x, y
		}},
		// The class is the argmax of a linear function of the features.
		{"linear", func(r *rng.Source) (*mat.Dense, []string) {
			x := gaussian(r, 600, 5)
			var s mat.Dense
			s.Mul(x, gaussian(rng.New(9), 5, 4))
			return x, classesOf(&s, names)
		}},
		// p ≫ n: the class is the argmax of the latent factors behind
		// thousands of correlated features.
		{"p >> n", func(r *rng.Source) (*mat.Dense, []string) {
			x, latent := lowRank(r, rng.New(10), 600, 2000, 4, 0.01)
			return x, classesOf(latent, names)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, y := tc.make(rng.New(4))
			xs, ys := split(x, y, 300, 100, 200)
			m, val, err := SelectLogistic(xs[0], ys[0], xs[1], ys[1], nil)
			if err != nil {
				t.Fatal(err)
			}
			pred, err := m.Predict(xs[2])
			if err != nil {
				t.Fatal(err)
			}
			if acc := Accuracy(ys[2], pred); acc < 0.95 || val < 0.95 {
				t.Errorf("test accuracy %v, validation %v (λ %v); want ≈ 1", acc, val, m.Lambda)
			}
		})
	}
}

func TestSelectLogisticNoise(t *testing.T) {
	for _, p := range []int{10, 1000} {
		r := rng.New(uint64(p) + 100)
		x := gaussian(r, 1000, p)
		y := make([]string, 1000)
		for i := range y {
			y[i] = []string{"a", "b", "c", "d"}[r.Below(4)]
		}
		xs, ys := split(x, y, 400, 200, 400)
		m, _, err := SelectLogistic(xs[0], ys[0], xs[1], ys[1], nil)
		if err != nil {
			t.Fatal(err)
		}
		pred, _ := m.Predict(xs[2])
		// Chance is 1/4; 400 test samples put two standard deviations at ±0.04.
		if acc := Accuracy(ys[2], pred); acc > 0.32 || acc < 0.18 {
			t.Errorf("p=%d: accuracy on noise %v (λ %v), want about 0.25", p, acc, m.Lambda)
		}
	}
}

// At the fit, the gradient of the objective over the standardised features
// vanishes: (1/n)·Zᵀ(P − Y) + λW = 0 and Σ(P − Y) = 0. Checked for p > n too,
// where the fit runs in the row space of Z only.
func TestLogisticOptimality(t *testing.T) {
	for _, tc := range []struct{ n, p int }{{80, 5}, {30, 60}} {
		r := rng.New(uint64(tc.p))
		x := gaussian(r, tc.n, tc.p)
		y := make([]string, tc.n)
		for i := range y {
			y[i] = []string{"x", "y", "z"}[r.Below(3)]
		}
		const lambda = 0.1
		m, err := FitLogistic(x, y, lambda)
		if err != nil {
			t.Fatal(err)
		}
		sc := fitScaler(x)
		z := sc.apply(x)
		k := len(m.Classes)
		w := mat.NewDense(tc.p, k, nil) // the weights per standardised feature
		for j := 0; j < tc.p; j++ {
			for c := 0; c < k; c++ {
				w.Set(j, c, m.Coef[j*k+c]*sc.scale[j])
			}
		}
		s, _ := m.scores(x)
		res := mat.NewDense(tc.n, k, nil)
		bias := make([]float64, k)
		for i := 0; i < tc.n; i++ {
			row := s.RawRowView(i)
			lse := logSumExp(row)
			for c := range row {
				v := math.Exp(row[c] - lse)
				if m.Classes[c] == y[i] {
					v--
				}
				res.Set(i, c, v/float64(tc.n))
				bias[c] += v / float64(tc.n)
			}
		}
		var g mat.Dense
		g.Mul(z.T(), res)
		g.Add(&g, scaled(lambda, w))
		if norm := mat.Norm(&g, math.Inf(1)); norm > 1e-5 {
			t.Errorf("n=%d p=%d: weight gradient at the fit has norm %v", tc.n, tc.p, norm)
		}
		for c, b := range bias {
			if math.Abs(b) > 1e-5 {
				t.Errorf("n=%d p=%d: intercept gradient %d is %v", tc.n, tc.p, c, b)
			}
		}
	}
}

func scaled(f float64, a mat.Matrix) *mat.Dense {
	var out mat.Dense
	out.Scale(f, a)
	return &out
}

func TestLogisticOneClass(t *testing.T) {
	x := gaussian(rng.New(5), 5, 3)
	m, err := FitLogistic(x, []string{"adam", "adam", "adam", "adam", "adam"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	pred, err := m.Predict(gaussian(rng.New(6), 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	if pred[0] != "adam" || pred[1] != "adam" {
		t.Errorf("predictions %v, want adam", pred)
	}
}

// Classes are sorted strings whatever they look like: learning rates are
// categories too.
func TestLogisticClassesAreStrings(t *testing.T) {
	x := mat.NewDense(6, 1, []float64{-3, -2, -1, 1, 2, 3})
	y := []string{"0.01", "0.01", "0.01", "0.001", "0.001", "0.001"}
	m, err := FitLogistic(x, y, 1e-3)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(m.Classes, ",") != "0.001,0.01" {
		t.Errorf("classes %v", m.Classes)
	}
	pred, _ := m.Predict(mat.NewDense(2, 1, []float64{-5, 5}))
	if pred[0] != "0.01" || pred[1] != "0.001" {
		t.Errorf("predictions %v, want [0.01 0.001]", pred)
	}
}

func TestLogisticErrors(t *testing.T) {
	x := mat.NewDense(3, 2, []float64{1, 2, 3, 4, 5, 6})
	m, _ := FitLogistic(x, []string{"a", "b", "a"}, 1)
	for _, tc := range []struct {
		name string
		err  func() error
		want string
	}{
		{"labels", func() error { _, err := FitLogistic(x, []string{"a"}, 1); return err }, "3 samples of features, 1 labels"},
		{"penalty", func() error { _, err := FitLogistic(x, []string{"a", "b", "a"}, math.NaN()); return err }, "logistic penalty NaN"},
		{"no validation", func() error {
			_, _, err := SelectLogistic(x, []string{"a", "b", "a"}, &mat.Dense{}, nil, nil)
			return err
		}, "no validation samples"},
		{"predict width", func() error { _, err := m.Predict(mat.NewDense(1, 3, nil)); return err }, "3 features, the logistic regression was fitted on 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

package probe

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// scaler standardises features, z = (x − mean) / scale, with the mean and the
// population standard deviation of the samples it was fitted on. A constant
// feature keeps scale 1: centred, it is zero, and the penalty then keeps its
// coefficient at zero instead of blowing up noise.
type scaler struct{ mean, scale []float64 }

func fitScaler(x *mat.Dense) scaler {
	n, p := x.Dims()
	s := scaler{mean: make([]float64, p), scale: make([]float64, p)}
	raw := x.RawMatrix()
	for i := 0; i < n; i++ {
		row := raw.Data[i*raw.Stride : i*raw.Stride+p]
		for j, v := range row {
			s.mean[j] += v
		}
	}
	for j := range s.mean {
		s.mean[j] /= float64(n)
	}
	for i := 0; i < n; i++ {
		row := raw.Data[i*raw.Stride : i*raw.Stride+p]
		for j, v := range row {
			d := v - s.mean[j]
			s.scale[j] += d * d
		}
	}
	for j := range s.scale {
		sd := math.Sqrt(s.scale[j] / float64(n))
		// Below this a "varying" feature is rounding noise around a constant.
		if sd == 0 || sd <= 1e-12*math.Abs(s.mean[j]) {
			sd = 1
		}
		s.scale[j] = sd
	}
	return s
}

// apply returns the standardised copy of x [n, p].
func (s scaler) apply(x *mat.Dense) *mat.Dense {
	n, p := x.Dims()
	z := mat.NewDense(n, p, nil)
	for i := 0; i < n; i++ {
		src, dst := x.RawRowView(i), z.RawRowView(i)
		for j, v := range src {
			dst[j] = (v - s.mean[j]) / s.scale[j]
		}
	}
	return z
}

// unscale turns coefficients w [p, k] of standardised features into those
// of the raw features, in place, and returns the matching change of the
// intercepts [k]: x·w' + b + shift = z·w + b.
func (s scaler) unscale(w []float64, k int) (shift []float64) {
	shift = make([]float64, k)
	for j := range s.mean {
		for c := 0; c < k; c++ {
			w[j*k+c] /= s.scale[j]
			shift[c] -= s.mean[j] * w[j*k+c]
		}
	}
	return shift
}

// design is a set of samples ready for fitting linear models with an L2
// penalty: their raw features x [n, p], the scaler fitted on them, and the
// standardised features z in coordinates of an orthonormal basis V [p, r]
// of their row space. The penalised solution lies in that space, so fitting
// r coefficients per output there is exact, and r ≤ min(n, p).
//
// V comes from the eigendecomposition of the smaller of zᵀz [p, p] and zzᵀ
// [n, n]. When p > n, V = zᵀ·U·diag(1/σ) is never formed: the coordinates
// are U·diag(σ), and weights are carried back to the features through zᵀ
// (lift), which keeps thousands of features for hundreds of samples as
// cheap as the n×n kernel.
type design struct {
	x  *mat.Dense // raw features [n, p]
	sc scaler
	s2 []float64  // squared singular values of the standardised features [r]
	c  *mat.Dense // coordinates z·V [n, r]; nil when r = 0
	v  *mat.Dense // V [p, r], when p ≤ n
	// When p > n: the standardised features [n, p] and U·diag(1/σ) [n, r].
	z, ui *mat.Dense
}

// newDesign prepares the samples x [n, p] (checked finite by the caller).
// Directions whose squared singular value is below a relative tolerance are
// dropped: the samples have no extent along them worth fitting.
func newDesign(x *mat.Dense) (*design, error) {
	n, p := x.Dims()
	d := &design{x: x, sc: fitScaler(x)}
	z := d.sc.apply(x)
	var g mat.SymDense
	if p <= n {
		g.SymOuterK(1, z.T()) // zᵀz [p, p]
	} else {
		g.SymOuterK(1, z) // zzᵀ [n, n]
	}
	var e mat.EigenSym
	if !e.Factorize(&g, true) {
		return nil, errors.New("probe: eigendecomposition of the features did not converge")
	}
	vals := e.Values(nil) // ascending
	var vecs mat.Dense
	e.VectorsTo(&vecs)
	top := vals[len(vals)-1]
	// Eigenvalues of a Gram matrix are accurate to about its size times the
	// machine epsilon relative to the largest.
	tol := top * 1e-13 * float64(max(n, p))
	var keep []int
	for i := len(vals) - 1; i >= 0; i-- {
		if vals[i] > tol && vals[i] > 0 {
			keep = append(keep, i)
		}
	}
	if len(keep) == 0 {
		return d, nil
	}
	r := len(keep)
	d.s2 = make([]float64, r)
	m, _ := vecs.Dims()
	w := mat.NewDense(m, r, nil) // the kept eigenvectors
	for c, i := range keep {
		d.s2[c] = vals[i]
		w.SetCol(c, mat.Col(nil, i, &vecs))
	}
	d.c = mat.NewDense(n, r, nil)
	if p <= n {
		d.v = w
		d.c.Mul(z, w) // [n, p]·[p, r] -> [n, r]
		return d, nil
	}
	d.z, d.ui = z, w
	for c := 0; c < r; c++ {
		s := math.Sqrt(d.s2[c])
		for i := 0; i < n; i++ {
			d.c.Set(i, c, w.At(i, c)*s)
			d.ui.Set(i, c, w.At(i, c)/s)
		}
	}
	return d, nil
}

// rank is r, the number of coordinates.
func (d *design) rank() int { return len(d.s2) }

// lift returns V·a [p, k] for coefficients a [r, k] in the coordinates: the
// weights of the standardised features.
func (d *design) lift(a []float64, k int) []float64 {
	_, p := d.x.Dims()
	out := make([]float64, p*k)
	r := d.rank()
	if r == 0 {
		return out
	}
	w := mat.NewDense(p, k, out)
	if d.v != nil {
		w.Mul(d.v, mat.NewDense(r, k, a)) // [p, r]·[r, k]
		return out
	}
	n, _ := d.x.Dims()
	t := mat.NewDense(n, k, nil)
	t.Mul(d.ui, mat.NewDense(r, k, a)) // [n, r]·[r, k] -> [n, k]
	w.Mul(d.z.T(), t)                  // [p, n]·[n, k] -> [p, k]
	return out
}

// rows returns a copy of the rows idx of x.
func rows(x mat.Matrix, idx []int) *mat.Dense {
	_, p := x.Dims()
	if len(idx) == 0 || p == 0 {
		return &mat.Dense{}
	}
	out := mat.NewDense(len(idx), p, nil)
	for k, i := range idx {
		mat.Row(out.RawRowView(k), i, x)
	}
	return out
}

// dense returns x as a *mat.Dense, copying only when it is another kind of
// matrix, after checking that it is n×p with finite values.
func dense(x mat.Matrix, n, p int, what string) (*mat.Dense, error) {
	r, c := x.Dims()
	if r != n || c != p {
		return nil, fmt.Errorf("probe: %s is %d×%d, want %d×%d", what, r, c, n, p)
	}
	d, ok := x.(*mat.Dense)
	if !ok {
		d = mat.DenseCopyOf(x)
	}
	for i := 0; i < r; i++ {
		for j, v := range d.RawRowView(i) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("probe: %s has %v at row %d, column %d", what, v, i, j)
			}
		}
	}
	return d, nil
}

// logGrid returns 10^lo, …, 10^hi in steps of 10^(1/perDecade).
func logGrid(lo, hi, perDecade int) []float64 {
	var g []float64
	for k := lo * perDecade; k <= hi*perDecade; k++ {
		g = append(g, math.Pow(10, float64(k)/float64(perDecade)))
	}
	return g
}

// checkGrid returns a sorted copy of grid, or def when grid is empty, after
// checking that every value is finite and not negative.
func checkGrid(grid, def []float64) ([]float64, error) {
	if len(grid) == 0 {
		return def, nil
	}
	for _, l := range grid {
		if l < 0 || math.IsNaN(l) || math.IsInf(l, 0) {
			return nil, fmt.Errorf("probe: penalty %v in the grid, want finite values ≥ 0", l)
		}
	}
	return slices.Sorted(slices.Values(grid)), nil
}

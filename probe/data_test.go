package probe

import (
	"github.com/hyperrep/hyperrep/internal/rng"
	"gonum.org/v1/gonum/mat"
)

// gaussian returns an n×p matrix of standard normal values.
func gaussian(r *rng.Source, n, p int) *mat.Dense {
	x := mat.NewDense(n, p, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < p; j++ {
			x.Set(i, j, r.Normal())
		}
	}
	return x
}

// lowRank returns features [n, p] that are a fixed linear image of k latent
// factors [n, k] plus a little isotropic noise, as weights are highly
// correlated functions of a few properties of a model. The map is drawn
// from mix, so that two calls with sources seeded alike share it.
func lowRank(r, mix *rng.Source, n, p, k int, noise float64) (x, latent *mat.Dense) {
	latent = gaussian(r, n, k)
	m := gaussian(mix, k, p)
	x = mat.NewDense(n, p, nil)
	x.Mul(latent, m)
	for i := 0; i < n; i++ {
		for j := 0; j < p; j++ {
			x.Set(i, j, x.At(i, j)+noise*r.Normal()+3) // offset: standardising matters
		}
	}
	return x, latent
}

// linear returns x·w + noise·ε.
func linear(r *rng.Source, x mat.Matrix, w []float64, noise float64) []float64 {
	n, _ := x.Dims()
	y := make([]float64, n)
	mat.NewVecDense(n, y).MulVec(x, mat.NewVecDense(len(w), w))
	for i := range y {
		y[i] += noise * r.Normal()
	}
	return y
}

func normals(r *rng.Source, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = r.Normal()
	}
	return v
}

// split cuts the rows of x and y into consecutive parts of the given sizes.
func split[T any](x *mat.Dense, y []T, sizes ...int) ([]*mat.Dense, [][]T) {
	var xs []*mat.Dense
	var ys [][]T
	_, p := x.Dims()
	at := 0
	for _, s := range sizes {
		xs = append(xs, mat.DenseCopyOf(x.Slice(at, at+s, 0, p)))
		ys = append(ys, y[at:at+s])
		at += s
	}
	return xs, ys
}

package generate

import (
	"math"
	"testing"

	"github.com/hyperrep/hyperrep/internal/rng"
)

func TestBandwidthFactor(t *testing.T) {
	for _, c := range []struct {
		rule string
		n, d int
		want float64
	}{
		{Scott, 100, 4, math.Pow(100, -1.0/8)},
		{Silverman, 100, 4, math.Pow(150, -1.0/8)},
		{Scott, 80, 32, 0.8854}, // what the measurements of doc.go used
		{Silverman, 1, 1, math.Pow(0.75, -0.2)},
		{"0.25", 10, 10, 0.25},
	} {
		got, err := BandwidthFactor(c.rule, c.n, c.d)
		if err != nil || math.Abs(got-c.want) > 1e-4 {
			t.Errorf("%s n=%d d=%d: %v, %v, want %v", c.rule, c.n, c.d, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "0", "-1", "scot", "inf", "NaN"} {
		if _, err := BandwidthFactor(bad, 10, 2); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// testPoints are n correlated points in 3 dimensions.
func testPoints(n int, seed uint64) [][]float64 {
	r := rng.New(seed)
	p := make([][]float64, n)
	for i := range p {
		a, b := r.Normal(), r.Normal()
		p[i] = []float64{1 + a, -2 + 0.5*a + 0.5*b, 3 + 2*b}
	}
	return p
}

// drawMoments draws m points and returns their mean and covariance.
func drawMoments(s Sampler, d, m int, seed uint64) ([]float64, [][]float64) {
	r := rng.New(seed)
	x := make([]float64, d)
	mean := make([]float64, d)
	sq := make([][]float64, d)
	for i := range sq {
		sq[i] = make([]float64, d)
	}
	for range m {
		s.Sample(r, x)
		for i := range x {
			mean[i] += x[i]
			for j := range x {
				sq[i][j] += x[i] * x[j]
			}
		}
	}
	for i := range mean {
		mean[i] /= float64(m)
	}
	for i := range sq {
		for j := range sq {
			sq[i][j] = sq[i][j]/float64(m) - mean[i]*mean[j]
		}
	}
	return mean, sq
}

// covariance is the sample covariance (n-1 denominator) of points.
func covariance(p [][]float64) ([]float64, [][]float64) {
	mean, _ := moments(p)
	d := len(mean)
	c := make([][]float64, d)
	for i := range c {
		c[i] = make([]float64, d)
		for j := range c[i] {
			for _, x := range p {
				c[i][j] += (x[i] - mean[i]) * (x[j] - mean[j])
			}
			c[i][j] /= float64(len(p) - 1)
		}
	}
	return mean, c
}

func TestKDEMoments(t *testing.T) {
	p := testPoints(40, 1)
	k := NewKDE(p, 0.5)
	mean, s := covariance(p)
	// The mixture's mean is the points' mean; its covariance is their
	// covariance with denominator n, plus the kernel's.
	m, c := drawMoments(k, 3, 200000, 2)
	for i := range 3 {
		if math.Abs(m[i]-mean[i]) > 0.02*math.Sqrt(s[i][i])+0.01 {
			t.Errorf("mean[%d] %.4f, want %.4f", i, m[i], mean[i])
		}
		for j := range 3 {
			want := s[i][j] * 39 / 40
			if i == j {
				want += k.H[i] * k.H[i]
				if math.Abs(k.H[i]-0.5*math.Sqrt(s[i][i])) > 1e-12 {
					t.Errorf("H[%d] %v, want 0.5·σ", i, k.H[i])
				}
			}
			if math.Abs(c[i][j]-want) > 0.03*math.Sqrt(s[i][i]*s[j][j]) {
				t.Errorf("cov[%d][%d] %.4f, want %.4f", i, j, c[i][j], want)
			}
		}
	}
}

// shrinkage is λ computed the long way, over every pair of dimensions.
func shrinkage(p [][]float64) float64 {
	mean, std := moments(p)
	n, d := len(p), len(mean)
	x := make([][]float64, n)
	for k := range p {
		x[k] = make([]float64, d)
		for i := range mean {
			x[k][i] = (p[k][i] - mean[i]) / std[i]
		}
	}
	var num, den float64
	nf := float64(n)
	for i := range d {
		for j := range d {
			if i == j {
				continue
			}
			var wbar float64
			for k := range n {
				wbar += x[k][i] * x[k][j]
			}
			wbar /= nf
			var v float64
			for k := range n {
				e := x[k][i]*x[k][j] - wbar
				v += e * e
			}
			num += nf / math.Pow(nf-1, 3) * v
			r := nf / (nf - 1) * wbar
			den += r * r
		}
	}
	return math.Max(0, math.Min(1, num/den))
}

func TestGaussianShrinkage(t *testing.T) {
	for _, c := range []struct{ n, d int }{{50, 3}, {6, 20}, {30, 30}} {
		r := rng.New(uint64(c.n))
		p := make([][]float64, c.n)
		for k := range p {
			a := r.Normal()
			p[k] = make([]float64, c.d)
			for i := range p[k] {
				p[k][i] = a*float64(i%3) + r.Normal()
			}
		}
		g := NewGaussian(p)
		if want := shrinkage(p); math.Abs(g.Lambda-want) > 1e-9 {
			t.Errorf("n=%d d=%d: λ %.6f, want %.6f", c.n, c.d, g.Lambda, want)
		}
	}
}

func TestGaussianMoments(t *testing.T) {
	p := testPoints(30, 3)
	g := NewGaussian(p)
	if !(g.Lambda > 0 && g.Lambda < 0.5) {
		t.Fatalf("λ %v: want a small shrinkage for 30 points in 3 dimensions", g.Lambda)
	}
	mean, s := covariance(p)
	m, c := drawMoments(g, 3, 200000, 4)
	for i := range 3 {
		if math.Abs(m[i]-mean[i]) > 0.02*math.Sqrt(s[i][i]) {
			t.Errorf("mean[%d] %.4f, want %.4f", i, m[i], mean[i])
		}
		for j := range 3 {
			want := (1 - g.Lambda) * s[i][j]
			if i == j {
				want = s[i][i]
			}
			if math.Abs(c[i][j]-want) > 0.03*math.Sqrt(s[i][i]*s[j][j]) {
				t.Errorf("cov[%d][%d] %.4f, want %.4f", i, j, c[i][j], want)
			}
		}
	}
}

func TestSamplersAreDeterministic(t *testing.T) {
	p := testPoints(10, 5)
	for _, s := range []Sampler{NewKDE(p, 0.3), NewGaussian(p)} {
		a, b := make([]float64, 3), make([]float64, 3)
		ia, ib := s.Sample(rng.New(9), a), s.Sample(rng.New(9), b)
		if ia != ib || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] {
			t.Errorf("%T: same seed, %v (%d) and %v (%d)", s, a, ia, b, ib)
		}
	}
}

func TestLerp(t *testing.T) {
	a, b, d := []float64{1, 2}, []float64{3, -2}, make([]float64, 2)
	for _, c := range []struct {
		t    float64
		want []float64
	}{{0, a}, {1, b}, {0.25, []float64{1.5, 1}}} {
		Lerp(d, a, b, c.t)
		if d[0] != c.want[0] || d[1] != c.want[1] {
			t.Errorf("t=%v: %v, want %v", c.t, d, c.want)
		}
	}
}

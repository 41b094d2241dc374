package autoencoder

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/tokenizer"
)

// The permutation found on the index template is the one Permute applies
// to the model itself.
func TestPermuterMatchesPermute(t *testing.T) {
	for _, c := range []struct {
		fixture string
		width   int
	}{{fixtures.CNNS, 64}, {fixtures.CNNS, 32}, {fixtures.MLP, 64}, {fixtures.CNNBN, 48}} {
		m, err := onnx.Read(fixtures.Path(c.fixture))
		if err != nil {
			t.Fatal(err)
		}
		p, err := newPermuter(m, c.width)
		if err != nil {
			t.Fatalf("%s: %v", c.fixture, err)
		}
		orig, err := tokenizer.Tokenize(m, tokenizer.Options{TokenSize: c.width})
		if err != nil {
			t.Fatal(err)
		}
		for _, seed := range []int64{1, 2, 99} {
			from, err := p.perm(seed)
			if err != nil {
				t.Fatal(err)
			}
			pm, err := tokenizer.Permute(m, seed)
			if err != nil {
				t.Fatal(err)
			}
			want, err := tokenizer.Tokenize(pm, tokenizer.Options{TokenSize: c.width})
			if err != nil {
				t.Fatal(err)
			}
			moved := 0
			for i, v := range want.Values {
				if orig.Mask[i] == 0 {
					continue
				}
				if got := orig.Values[from[i]]; got != v {
					t.Fatalf("%s/%d seed %d: value %d is %g, Permute gives %g", c.fixture, c.width, seed, i, got, v)
				}
				if int(from[i]) != i {
					moved++
				}
			}
			if moved == 0 {
				t.Errorf("%s/%d seed %d: nothing moved", c.fixture, c.width, seed)
			}
		}
	}
}

func TestWindows(t *testing.T) {
	for _, c := range []struct {
		n, w, stride int
		want         []int
	}{
		{10, 10, 5, []int{0}},
		{5, 10, 5, []int{0}},
		{66, 64, 32, []int{0, 2}},
		{100, 32, 16, []int{0, 16, 32, 48, 64, 68}},
		{96, 32, 32, []int{0, 32, 64}},
		{11, 4, 3, []int{0, 3, 6, 7}},
	} {
		got := windows(c.n, c.w, c.stride)
		if !slices.Equal(got, c.want) {
			t.Errorf("windows(%d, %d, %d) = %v, want %v", c.n, c.w, c.stride, got, c.want)
		}
		covered := make([]bool, c.n)
		for _, s := range got {
			for k := s; k < min(s+c.w, c.n); k++ {
				covered[k] = true
			}
		}
		if slices.Contains(covered, false) {
			t.Errorf("windows(%d, %d, %d) leave tokens out", c.n, c.w, c.stride)
		}
	}
}

func TestSplitModels(t *testing.T) {
	ids := []string{"f", "a", "c", "e", "b", "d", "h", "g", "j", "i"}
	for _, c := range []struct {
		val, test   float64
		nVal, nTest int
	}{{0.2, 0.2, 2, 2}, {0, 0, 0, 0}, {0.15, 0.15, 2, 2}, {0.5, 0.49, 5, 4}} {
		s := splitModels(ids, 7, c.val, c.test)
		if len(s.Validation) != c.nVal || len(s.Test) != c.nTest || len(s.Train) != len(ids)-c.nVal-c.nTest {
			t.Errorf("shares %g, %g: split %d/%d/%d", c.val, c.test, len(s.Train), len(s.Validation), len(s.Test))
		}
		all := slices.Concat(s.Train, s.Validation, s.Test)
		slices.Sort(all)
		want := slices.Sorted(slices.Values(ids))
		if !slices.Equal(all, want) {
			t.Errorf("split %+v does not partition the models", s)
		}
		reversed := slices.Clone(ids)
		slices.Reverse(reversed)
		if again := splitModels(reversed, 7, c.val, c.test); !sameSplit(s, again) {
			t.Errorf("split depends on the models' order")
		}
	}
}

func TestConfigCheck(t *testing.T) {
	for _, c := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) {}, ""},
		{func(c *Config) { c.D = 30 }, "not a multiple"},
		{func(c *Config) { c.Layers = 0 }, "layers 0"},
		{func(c *Config) { c.Gamma = 1.5 }, "gamma"},
		{func(c *Config) { c.Temperature = 0 }, "temperature"},
		{func(c *Config) { c.MaskRate = 1 }, "mask rate"},
		{func(c *Config) { c.LR = math.NaN() }, "learning rate"},
		{func(c *Config) { c.Noise = -1 }, "noise"},
		{func(c *Config) { c.Validation, c.Test = 0.5, 0.5 }, "shares"},
		{func(c *Config) { c.ClipNorm = -1 }, "clip norm"},
	} {
		cfg := DefaultConfig()
		c.change(&cfg)
		err := cfg.check()
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("check: %v, want %q", err, c.want)
		}
	}
}

func TestNormaliseRoundTrip(t *testing.T) {
	m, err := onnx.Read(fixtures.Path(fixtures.CNNS))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Tokenize(m, tokenizer.Options{TokenSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	r := rng.New(3)
	samples := make([][]float32, 5)
	for i := range samples {
		samples[i] = make([]float32, len(tok.Values))
		for k, v := range tok.Values {
			samples[i][k] = v * float32(1+r.Normal()*0.3)
		}
	}
	for _, mode := range []string{NormLayer, NormTensor} {
		f := newFrame(tok, mode)
		// The groups: a layer's values, or each tensor's (as many values
		// as the layout gives the tensor).
		count := make([]int, len(f.groups))
		for i, g := range f.group {
			if f.mask[i] != 0 {
				count[g]++
				if mode == NormLayer && g != f.layer[i/f.width] {
					t.Fatalf("%s: value %d is in group %d, its layer is %d", mode, i, g, f.layer[i/f.width])
				}
			}
		}
		want := []int{}
		for _, l := range tok.Layout.Layers {
			n := 0
			for _, ts := range l.Tensors {
				if mode == NormTensor {
					want = append(want, ts.Units*ts.PerRow)
				}
				n += ts.Units * ts.PerRow
			}
			if mode == NormLayer {
				want = append(want, n)
			}
		}
		if !slices.Equal(count, want) {
			t.Fatalf("%s: values per group %v, want %v", mode, count, want)
		}
		f.fitNorms(samples)
		norm, back := make([]float32, len(tok.Values)), make([]float32, len(tok.Values))
		f.normalise(norm, samples[0])
		f.denormalise(back, norm)
		for i, v := range samples[0] {
			if math.Abs(float64(back[i]-v)) > 1e-6*(1+math.Abs(float64(v))) {
				t.Fatalf("%s: value %d: %g normalised and back is %g", mode, i, v, back[i])
			}
		}
		// Over all samples each group has mean 0 and variance 1.
		for g := range f.norms {
			var s, s2, n float64
			for _, v := range samples {
				nv := make([]float32, len(v))
				f.normalise(nv, v)
				for i, x := range nv {
					if f.mask[i] != 0 && f.group[i] == g {
						s, s2, n = s+float64(x), s2+float64(x)*float64(x), n+1
					}
				}
			}
			if mean, v := s/n, s2/n-(s/n)*(s/n); math.Abs(mean) > 1e-5 || math.Abs(v-1) > 1e-4 {
				t.Errorf("%s: group %d normalised: mean %g, variance %g", mode, g, mean, v)
			}
		}
	}
}

// TestConfigDiffers checks what a resumed fit compares: everything but the
// epochs, with a configuration saved before Normalise existed read as
// normalised per layer, and one without Squares (left out when false) as
// without squares.
func TestConfigDiffers(t *testing.T) {
	def := DefaultConfig()
	for _, c := range []struct {
		saved, now func(*Config)
		want       string
	}{
		{func(c *Config) {}, func(c *Config) { c.Epochs *= 2 }, ""},
		{func(c *Config) { c.Normalise = "" }, func(c *Config) { c.Normalise = NormLayer }, ""},
		{func(c *Config) { c.Normalise = "" }, func(c *Config) { c.Normalise = NormTensor }, "normalise layer (now tensor)"},
		{func(c *Config) {}, func(c *Config) { c.Normalise = NormLayer }, "normalise tensor (now layer)"},
		{func(c *Config) {}, func(c *Config) { c.D = 32 }, "d 128 (now 32)"},
		{func(c *Config) { c.Squares = false }, func(c *Config) {}, "squares false (now true)"},
		{func(c *Config) {}, func(c *Config) { c.Squares = false }, "squares true (now false)"},
		{func(c *Config) { c.Normalise, c.Squares = "", false }, func(c *Config) { c.D = 32 },
			"d 128 (now 32), normalise layer (now tensor), squares false (now true)"},
	} {
		saved, now := def, def
		c.saved(&saved)
		c.now(&now)
		if got := saved.differs(now); got != c.want {
			t.Errorf("differs: %q, want %q", got, c.want)
		}
	}
}

// TestGroupsOfFixtures checks the per-tensor grouping on every fixture
// model (merged BatchNormalization, Gemm and MatMul biases, bias-free
// layers, residual blocks): each group holds as many values as the
// layout gives its tensor, and, in the models whose weights are all
// float32 initializers, each value sits in the group of the tensor it
// came from (marked by giving tensor k the value k+1 throughout).
func TestGroupsOfFixtures(t *testing.T) {
	for _, name := range fixtures.Models() {
		m, err := onnx.Read(fixtures.Path(name))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := tokenizer.Tokenize(m, tokenizer.Options{TokenSize: 16})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f := newFrame(tok, NormTensor)
		count := make([]int, len(f.groups))
		for i, g := range f.group {
			if f.mask[i] != 0 {
				count[g]++
			}
		}
		k := 0
		for _, l := range tok.Layout.Layers {
			for _, ts := range l.Tensors {
				if g := f.groups[k]; g.Layer != l.Name || g.Tensor != ts.Name {
					t.Fatalf("%s: group %d is %+v, want layer %s tensor %s", name, k, g, l.Name, ts.Name)
				}
				if count[k] != ts.Units*ts.PerRow {
					t.Errorf("%s: %s/%s: %d values in its group, want %d", name, l.Name, ts.Name, count[k], ts.Units*ts.PerRow)
				}
				k++
			}
		}
		if k != len(f.groups) {
			t.Errorf("%s: %d groups, want %d", name, len(f.groups), k)
		}
		// With every float32 initializer of tensor k of the layout set to
		// k+1, each value's group is its value less one.
		index := map[string]int{}
		k = 0
		for _, l := range tok.Layout.Layers {
			for _, ts := range l.Tensors {
				index[ts.Name] = k
				k++
			}
		}
		g := m.Graph()
		marked := 0
		for i, init := range g.GetInitializer() {
			k, ok := index[init.GetName()]
			if !ok || init.GetDataType() != onnx.Float {
				continue
			}
			n := 1
			for _, d := range init.GetDims() {
				n *= int(d)
			}
			v := make([]float32, n)
			for j := range v {
				v[j] = float32(k + 1)
			}
			g.Initializer[i] = onnx.NewFloatTensor(init.GetName(), init.GetDims(), v)
			marked++
		}
		if marked != len(index) {
			continue // tensors of other types, or from Constant nodes
		}
		tok, err = tokenizer.Tokenize(m, tokenizer.Options{TokenSize: 16})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, v := range tok.Values {
			if f.mask[i] != 0 && int(v) != f.group[i]+1 {
				t.Fatalf("%s: value %d is of tensor %d, in group %d", name, i, int(v)-1, f.group[i])
			}
		}
		t.Logf("%s: %d tensors, each value in its tensor's group", name, len(index))
	}
}

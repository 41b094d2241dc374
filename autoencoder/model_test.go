package autoencoder

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hyperrep/hyperrep/autodiff"
	"github.com/hyperrep/hyperrep/fixtures"
	"github.com/hyperrep/hyperrep/internal/rng"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/runtime"
	"github.com/hyperrep/hyperrep/tokenizer"
)

// The exported encoder, run in plain ORT, gives the embeddings that the
// training graph's forward pass computes from the same batch.
func TestEncoderMatchesTrainingGraph(t *testing.T) {
	for _, pooling := range []string{PoolMean, PoolToken} {
		t.Run(pooling, func(t *testing.T) { testEncoderMatches(t, pooling) })
	}
}

func testEncoderMatches(t *testing.T, pooling string) {
	dir, m := fitTiny(t, func(c *Config) { c.Pooling = pooling })
	defer m.Close()
	cfg := m.Meta.Config
	st, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 2 * m.Meta.Batch
	model, params := trainingModel(m.Meta.Arch, n, m.Meta.Window, cfg.Gamma, cfg.Temperature, st.weights, 0)
	tr, err := autodiff.NewTrainer(model, autodiff.Config{Loss: outLoss, Outputs: []string{OutputEmbed},
		Groups: []autodiff.Group{{Params: params, Optimizer: autodiff.AdamW{}, Schedule: autodiff.ConstantLR(1e-3)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	_, cps, err := Checkpoints(tinyZoo)
	if err != nil {
		t.Fatal(err)
	}
	d, err := loadCheckpoints(cps, cfg.TokenSize, cfg.Normalise, m.Meta.Split, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPermuter(d.template, cfg.TokenSize)
	if err != nil {
		t.Fatal(err)
	}
	b := &batch{f: d.frame, n: n, t: m.Meta.Window, tokens: tr.Value(InputTokens).Float32s(), target: tr.Value(inputTarget).Float32s(),
		mask: tr.Value(InputMask).Float32s(), positions: tr.Value(InputPositions).Int64s()}
	aug := &augment{noise: 0.1, maskRate: 0.2, permute: p}
	for j := range n {
		if err := d.view(b.slot(j), d.values[j%len(d.values)], stream(5, uint64(j)), aug, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.Eval(); err != nil {
		t.Fatal(err)
	}
	shape := []int64{int64(n), int64(m.Meta.Window), int64(cfg.TokenSize)}
	out, err := m.enc.Run(runtime.NewTensor(shape, b.tokens), runtime.NewTensor(shape, b.mask),
		runtime.NewTensor([]int64{int64(n), int64(m.Meta.Window), 3}, b.positions))
	if err != nil {
		t.Fatal(err)
	}
	want, got := tr.Value(OutputEmbed).Float32s(), out[1].Data.([]float32)
	if len(got) != len(want) {
		t.Fatalf("encoder gives %d embedding values, training graph %d", len(got), len(want))
	}
	worst := 0.0
	for i := range want {
		worst = max(worst, math.Abs(float64(got[i]-want[i])))
	}
	if worst > 1e-5 {
		t.Errorf("encoder.onnx and the training graph differ by up to %g", worst)
	}
}

// Reconstructed and decoded models fit their templates: Detokenize takes
// the decoder's tokens, and the result runs as the original does.
func TestReconstructFitsTemplate(t *testing.T) {
	m, err := Open(fittedDir(t), runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	orig := lastTinyCheckpoint(t)
	rec, err := m.Reconstruct(orig)
	if err != nil {
		t.Fatal(err)
	}
	z, emb, err := m.Encode(orig)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := m.Decode(z[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := tokenizer.Tokenize(rec, tokenizer.Options{TokenSize: m.Meta.Config.TokenSize})
	b, _ := tokenizer.Tokenize(dec, tokenizer.Options{TokenSize: m.Meta.Config.TokenSize})
	if !slices.Equal(a.Values, b.Values) {
		t.Error("Reconstruct and Decode(Encode) give different weights")
	}
	o, _ := tokenizer.Tokenize(orig, tokenizer.Options{TokenSize: m.Meta.Config.TokenSize})
	if slices.Equal(a.Values, o.Values) || !slices.Equal(a.Mask, o.Mask) || !slices.Equal(a.Positions, o.Positions) {
		t.Error("the reconstruction is the original, or is laid out otherwise")
	}
	// The embedding is the mean of the token latents.
	l := m.Meta.Arch.Latent
	for c := range l {
		var s float64
		for k := range m.Meta.Tokens {
			s += float64(z[0][k*l+c])
		}
		if d := math.Abs(s/float64(m.Meta.Tokens) - float64(emb[0][c])); d > 1e-5 {
			t.Fatalf("embedding value %d is %g off the mean latent", c, d)
		}
	}
	for _, model := range []*onnx.Model{orig, rec} {
		data, err := model.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		s, err := runtime.NewSession(data, runtime.Options{})
		if err != nil {
			t.Fatal(err)
		}
		in := make([]float32, 28*28)
		res, err := s.Run(runtime.NewTensor([]int64{1, 1, 28, 28}, in))
		s.Close()
		if err != nil || len(res[0].Data.([]float32)) != 10 {
			t.Fatalf("model does not run: %v", err)
		}
	}
	// A model of another architecture is refused.
	mlp, err := onnx.Read(fixtures.Path(fixtures.MLP))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reconstruct(mlp); !errors.Is(err, ErrLayout) {
		t.Errorf("reconstructing an MLP: %v, want ErrLayout", err)
	}
}

// The exported graphs take any batch and any number of tokens up to the
// position tables' sizes.
func TestExportedGraphsAreSymbolic(t *testing.T) {
	m, err := Open(fittedDir(t), runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	w, l := int64(m.Meta.Config.TokenSize), int64(m.Meta.Arch.Latent)
	for _, c := range []struct{ n, t int64 }{{1, 1}, {3, 7}, {2, int64(m.Meta.Tokens)}} {
		tok := make([]float32, c.n*c.t*w)
		mask := make([]float32, len(tok))
		for i := range mask {
			mask[i] = 1
		}
		pos := make([]int64, c.n*c.t*3)
		for i := range c.n * c.t {
			pos[3*i] = i % c.t
		}
		out, err := m.enc.Run(runtime.NewTensor([]int64{c.n, c.t, w}, tok), runtime.NewTensor([]int64{c.n, c.t, w}, mask),
			runtime.NewTensor([]int64{c.n, c.t, 3}, pos))
		if err != nil {
			t.Fatalf("encoder on [%d, %d]: %v", c.n, c.t, err)
		}
		if !slices.Equal(out[0].Shape, []int64{c.n, c.t, l}) || !slices.Equal(out[1].Shape, []int64{c.n, l}) {
			t.Errorf("encoder on [%d, %d] gives %v and %v", c.n, c.t, out[0].Shape, out[1].Shape)
		}
		dec, err := m.dec.Run(out[0], runtime.NewTensor([]int64{c.n, c.t, 3}, pos))
		if err != nil || !slices.Equal(dec[0].Shape, []int64{c.n, c.t, w}) {
			t.Errorf("decoder on [%d, %d]: %v", c.n, c.t, err)
		}
	}
	// Padding tokens (mask all zero) change neither the embedding nor the
	// other tokens' latents.
	one := func(t int64, pad bool) ([]float32, []float32) {
		tok := make([]float32, t*w)
		mask := make([]float32, t*w)
		pos := make([]int64, t*3)
		for i := range tok {
			tok[i] = float32(i%5) - 2
			mask[i] = 1
		}
		if pad {
			clear(mask[(t-1)*w:])
		}
		for i := range t {
			pos[3*i] = i
		}
		out, err := m.enc.Run(runtime.NewTensor([]int64{1, t, w}, tok), runtime.NewTensor([]int64{1, t, w}, mask),
			runtime.NewTensor([]int64{1, t, 3}, pos))
		if err != nil {
			panic(err)
		}
		return out[0].Data.([]float32), out[1].Data.([]float32)
	}
	z4, e4 := one(4, false)
	z5, e5 := one(5, true)
	for i := range e4 {
		if math.Abs(float64(e4[i]-e5[i])) > 1e-5 {
			t.Fatalf("a padding token changes the embedding: %v vs %v", e4, e5)
		}
	}
	for i := range z4 {
		if math.Abs(float64(z4[i]-z5[i])) > 1e-5 {
			t.Fatalf("a padding token changes latent %d: %g vs %g", i, z4[i], z5[i])
		}
	}
}

// A fit interrupted mid-epoch and resumed ends with the weights, optimiser
// state and log of a fit that ran through.
func TestResumeEqualsUninterrupted(t *testing.T) {
	cfg := tinyConfig(3)
	straight := t.TempDir()
	want, err := Fit(context.Background(), tinyZoo, straight, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	resumed := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	stopAt := want[0].Steps + 2 // in the second epoch
	_, err = Fit(ctx, tinyZoo, resumed, cfg, Options{Progress: func(stage string, done, _ int) {
		if stage == "train" && done == stopAt {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted fit: %v, want context.Canceled", err)
	}
	st, err := readState(resumed)
	if err != nil || st.Steps != stopAt || len(st.Log) != 1 {
		t.Fatalf("state after the interruption: %v, %d steps, %d epochs logged; want %d, 1", err, st.Steps, len(st.Log), stopAt)
	}
	got, err := Fit(context.Background(), tinyZoo, resumed, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d epochs logged, want %d", len(got), len(want))
	}
	for i := range want {
		got[i].Seconds, want[i].Seconds = 0, 0
		if a, b := jsonOf(got[i]), jsonOf(want[i]); a != b {
			t.Errorf("epoch %d: resumed %s, straight %s", i+1, a, b)
		}
	}
	a, err := readState(straight)
	if err != nil {
		t.Fatal(err)
	}
	b, err := readState(resumed)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range a.weights {
		if !slices.Equal(v, b.weights[name]) {
			t.Fatalf("weight %s differs after resuming", name)
		}
	}
	for name, v := range a.optim {
		if !slices.Equal(v, b.optim[name]) {
			t.Fatalf("optimiser state %s differs after resuming", name)
		}
	}
	// Asking again for what is done trains nothing and exports again.
	os.Remove(filepath.Join(resumed, encoderFile))
	if _, err := Fit(context.Background(), tinyZoo, resumed, cfg, Options{}); err != nil || !exists(filepath.Join(resumed, encoderFile)) {
		t.Errorf("refitting a finished fit: %v", err)
	}
	// Another configuration in the same directory is refused.
	other := cfg
	other.D = 32
	if _, err := Fit(context.Background(), tinyZoo, resumed, other, Options{}); err == nil {
		t.Error("a fit with another d resumed an existing directory")
	}
}

// TestNormalisations fits per tensor and per layer (a configuration
// without Normalise, as saved before it existed, is per layer) and checks
// what hyperrep.json records, that Open takes each, and that Open refuses
// normalisations that do not fit the template.
func TestNormalisations(t *testing.T) {
	orig := lastTinyCheckpoint(t)
	tok, err := tokenizer.Tokenize(orig, tokenizer.Options{TokenSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	tensors := 0
	for _, l := range tok.Layout.Layers {
		tensors += len(l.Tensors)
	}
	for _, mode := range []string{NormTensor, ""} {
		dir, m := fitTiny(t, func(c *Config) { c.Normalise = mode })
		norms := m.Meta.Norms
		want := len(tok.Layout.Layers)
		if mode == NormTensor {
			want = tensors
		}
		if len(norms) != want {
			t.Errorf("%q: %d normalisations, want %d", mode, len(norms), want)
		}
		for _, n := range norms {
			if (n.Tensor != "") != (mode == NormTensor) || !(n.Std > 0) {
				t.Errorf("%q: normalisation %+v", mode, n)
			}
		}
		if _, err := m.Reconstruct(orig); err != nil {
			t.Errorf("%q: %v", mode, err)
		}
		m.Close()
		// The other mode's grouping does not fit these normalisations.
		raw, err := os.ReadFile(filepath.Join(dir, metaFile))
		if err != nil {
			t.Fatal(err)
		}
		var meta map[string]any
		if err := json.Unmarshal(raw, &meta); err != nil {
			t.Fatal(err)
		}
		other := NormLayer
		if mode != NormTensor {
			other = NormTensor
		}
		meta["config"].(map[string]any)["normalise"] = other
		raw, _ = json.Marshal(meta)
		if err := os.WriteFile(filepath.Join(dir, metaFile), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if m, err := Open(dir, runtime.Options{}); err == nil {
			m.Close()
			t.Errorf("%q: Open took normalisations of the other kind", mode)
		}
	}
}

// TestSquaresInput checks that with Arch.Squares the encoder reads each
// value's square beside it: with the weights of the values zeroed, tokens
// and their negation encode alike; with those of the squares zeroed, they
// do not, and without Squares enc.in has W rows.
func TestSquaresInput(t *testing.T) {
	const W, T = 4, 3
	a := Arch{Width: W, D: 8, Layers: 1, Heads: 2, Latent: 4, Project: 4, Pooling: PoolMean, Squares: true, Positions: [3]int{T, 1, T}}
	r := rng.New(9)
	tokens, neg, mask := make([]float32, T*W), make([]float32, T*W), make([]float32, T*W)
	for i := range tokens {
		tokens[i], mask[i] = float32(r.Normal()), 1
		neg[i] = -tokens[i]
	}
	positions := []int64{0, 0, 0, 1, 0, 1, 2, 0, 2}
	encode := func(a Arch, values map[string][]float32, x []float32) []float32 {
		raw, err := encoderModel(a, values).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		s, err := runtime.NewSession(raw, runtime.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		out, err := s.Run(runtime.NewTensor([]int64{1, T, W}, x), runtime.NewTensor([]int64{1, T, W}, mask),
			runtime.NewTensor([]int64{1, T, 3}, positions))
		if err != nil {
			t.Fatal(err)
		}
		return out[1].Data.([]float32)
	}
	weights := func(zeroFrom, zeroTo int) map[string][]float32 {
		w := make([]float32, 2*W*a.D) // [2W, D]: the values' rows, then the squares'
		for i := range w {
			if row := i / a.D; row < zeroFrom || row >= zeroTo {
				w[i] = float32(r.Normal())
			}
		}
		return map[string][]float32{"enc.in.weight": w}
	}
	squaresOnly := weights(0, W)
	if a, b := encode(a, squaresOnly, tokens), encode(a, squaresOnly, neg); !slices.Equal(a, b) {
		t.Errorf("reading squares only, x and -x encode to %v and %v", a, b)
	}
	valuesOnly := weights(W, 2*W)
	if a, b := encode(a, valuesOnly, tokens), encode(a, valuesOnly, neg); slices.Equal(a, b) {
		t.Error("reading values, x and -x encode alike")
	}
	a.Squares = false
	for _, init := range encoderModel(a, nil).Graph().GetInitializer() {
		if init.GetName() == "enc.in.weight" && init.GetDims()[0] != W {
			t.Errorf("without squares enc.in.weight is %v", init.GetDims())
		}
	}
}

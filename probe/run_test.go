package probe

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/internal/rng"
	"gonum.org/v1/gonum/mat"
)

// synthZoo is a zoo in numbers: models × epochs checkpoints with accuracies
// that grow over the epochs, two hyperparameters, a representation "good"
// that is a noisy linear image of the properties and one, "noise", that
// knows nothing.
type synthZoo struct {
	data       Data
	train, val []string
	test       []string
}

func newSynthZoo(models, epochs int) *synthZoo {
	r := rng.New(11)
	z := &synthZoo{}
	var (
		testAcc, trainAcc, gap, epoch []float64
		act, lr                       []string
		latent                        []float64
	)
	for m := 0; m < models; m++ {
		id := fmt.Sprintf("m%02d", m)
		quality := 1 / (1 + math.Exp(-r.Normal()))
		a, l := []string{"relu", "tanh"}[m%2], []string{"0.001", "0.01"}[m/2%2]
		for e := 0; e < epochs; e++ {
			te := 0.1 + 0.8*(1-math.Exp(-float64(e)/2))*quality
			tr, g := math.NaN(), math.NaN()
			if e > 0 {
				g = 0.02 * float64(e) * quality
				tr = te + g
			}
			z.data.Models = append(z.data.Models, id)
			testAcc, trainAcc, gap, epoch = append(testAcc, te), append(trainAcc, tr), append(gap, g), append(epoch, float64(e))
			act, lr = append(act, a), append(lr, l)
			ind := func(b bool) float64 {
				if b {
					return 1
				}
				return -1
			}
			latent = append(latent, te, ifNaN(tr, te), float64(e)/float64(epochs), ind(a == "relu"), ind(l == "0.01"))
		}
		// A quarter of the models, with both values of each hyperparameter.
		if m%8 == 3 || m%8 == 4 {
			z.test = append(z.test, id)
		} else {
			z.train = append(z.train, id)
		}
	}
	n := len(z.data.Models)
	lat := mat.NewDense(n, 5, latent)
	good := mat.NewDense(n, 16, nil)
	good.Mul(lat, gaussian(rng.New(12), 5, 16))
	for i := 0; i < n; i++ {
		for j := 0; j < 16; j++ {
			good.Set(i, j, good.At(i, j)+1e-4*r.Normal())
		}
	}
	z.data.Features = []FeatureSet{{"good", good}, {"noise", gaussian(r, n, 16)}}
	z.data.Targets = []Target{
		{Name: TestAcc, Values: testAcc, Tau: true},
		{Name: TrainAcc, Values: trainAcc},
		{Name: GenGap, Values: gap},
		{Name: Epoch, Values: epoch},
		{Name: "activation", Labels: act},
		{Name: "lr", Labels: lr},
	}
	var err error
	if z.data.Split, err = SplitModels(z.train, z.test, 0.25, 1); err != nil {
		panic(err)
	}
	return z
}

func ifNaN(v, alt float64) float64 {
	if math.IsNaN(v) {
		return alt
	}
	return v
}

func TestRun(t *testing.T) {
	z := newSynthZoo(48, 6)
	calls := 0
	res, err := Run(&z.data, &Options{Progress: func(done, total int) {
		calls++
		if done != calls || total != 12 {
			t.Errorf("progress %d/%d at call %d", done, total, calls)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 12 {
		t.Errorf("%d progress calls, want 12", calls)
	}
	var got []string
	for _, row := range res.Report.Rows {
		got = append(got, row.Property+"/"+row.Metric)
	}
	want := "test_acc/r2 test_acc/kendall_tau train_acc/r2 gen_gap/r2 epoch/r2 activation/accuracy lr/accuracy"
	if strings.Join(got, " ") != want || strings.Join(res.Report.Columns, " ") != "good noise" {
		t.Fatalf("rows %v, columns %v; want %s, good noise", got, res.Report.Columns, want)
	}
	for _, row := range res.Report.Rows {
		good, noise := row.Values[0], row.Values[1]
		if good < 0.95 {
			t.Errorf("%s %s from the good representation: %v, want ≈ 1", row.Property, row.Metric, good)
		}
		// R² of noise is at most about 0 (below when the test models'
		// mean differs from the training models'), τ about 0; accuracy
		// about chance, 0.5.
		lo, hi := math.Inf(-1), 0.1
		switch row.Metric {
		case MetricKendallTau:
			lo = -0.1
		case MetricAccuracy:
			lo, hi = 0.25, 0.75
		}
		if noise < lo || noise > hi {
			t.Errorf("%s %s from noise: %v, want in [%v, %v]", row.Property, row.Metric, noise, lo, hi)
		}
	}
	// Scored on the checkpoints of test models only, each once, and
	// without the unknown training accuracy of epoch 0.
	test := map[string]bool{}
	for _, id := range z.test {
		test[id] = true
	}
	for _, p := range res.Probes {
		for _, i := range p.Test {
			if !test[z.data.Models[i]] {
				t.Fatalf("%s from %s scored on sample %d of training model %s", p.Property, p.Representation, i, z.data.Models[i])
			}
		}
		want := len(z.test) * 6
		if p.Property == TrainAcc || p.Property == GenGap {
			want = len(z.test) * 5
		}
		if len(p.Test) != want {
			t.Errorf("%s from %s: %d test samples, want %d", p.Property, p.Representation, len(p.Test), want)
		}
	}
	if p := res.Probe("good", "activation"); p == nil || p.Logistic == nil || p.Ridge != nil {
		t.Errorf("probe of activation from good: %+v", p)
	}
}

// A representation that is absent is a column that is absent.
func TestRunOneRepresentation(t *testing.T) {
	z := newSynthZoo(24, 3)
	z.data.Features = z.data.Features[1:]
	z.data.Targets = z.data.Targets[:1]
	res, err := Run(&z.data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Report.Columns) != 1 || res.Report.Columns[0] != "noise" || len(res.Report.Rows[0].Values) != 1 {
		t.Errorf("report %+v", res.Report)
	}
}

func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(d *Data)
		want   string
		folds  int
	}{
		{"model without part", func(d *Data) { delete(d.Split, d.Models[0]) }, `model "m00" has no part in the split`, 0},
		{"reserved name", func(d *Data) { d.Features[0].Name = "metric" }, `representation name "metric"`, 0},
		{"repeated name", func(d *Data) { d.Features[1].Name = "good" }, `representation name "good"`, 0},
		{"rows", func(d *Data) { d.Features[0].X = mat.NewDense(3, 16, nil) }, "representation good is 3×16, want 144×16", 0},
		{"both kinds", func(d *Data) { d.Targets[0].Labels = make([]string, len(d.Models)) }, "test_acc needs either values or labels", 0},
		{"length", func(d *Data) { d.Targets[4].Labels = d.Targets[4].Labels[:5] }, "activation has 5 values for 144 samples", 0},
		{"no validation", func(d *Data) {
			for id, p := range d.Split {
				if p == Validation {
					d.Split[id] = Train
				}
			}
		}, "test_acc: 0 validation samples", 1},
		{"negative folds", func(d *Data) {}, "-1 folds", -1},
		{"one training model", func(d *Data) {
			for id, p := range d.Split {
				if p != Test && id != "m00" {
					d.Split[id] = Unused
				}
			}
			d.Split["m00"] = Train
		}, "1 training models, want at least 2", 0},
		{"nan feature", func(d *Data) { d.Features[1].X.(*mat.Dense).Set(5, 2, math.NaN()) }, "representation noise has NaN at row 5, column 2", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := newSynthZoo(24, 6)
			tc.change(&z.data)
			_, err := Run(&z.data, &Options{Folds: tc.folds})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestSplitModels(t *testing.T) {
	train := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	s1, err := SplitModels(train, []string{"x", "y"}, 0.25, 3)
	if err != nil {
		t.Fatal(err)
	}
	// The order of the training models does not matter.
	rev := slices.Clone(train)
	slices.Reverse(rev)
	s2, _ := SplitModels(rev, []string{"x", "y"}, 0.25, 3)
	count := map[Part]int{}
	for id, p := range s1 {
		count[p]++
		if s2[id] != p {
			t.Errorf("model %s: %v, then %v with the training models reversed", id, p, s2[id])
		}
	}
	if count[Train] != 6 || count[Validation] != 2 || count[Test] != 2 {
		t.Errorf("parts %v, want 6 train, 2 validation, 2 test", count)
	}
	s3, _ := SplitModels(train, nil, 0.25, 4)
	if fmt.Sprint(s3) == fmt.Sprint(s1) {
		t.Error("another seed drew the same validation models")
	}
	// A tiny fraction still gives one validation model.
	s4, _ := SplitModels(train, nil, 0.01, 3)
	if n := countPart(s4, Validation); n != 1 {
		t.Errorf("%d validation models, want 1", n)
	}
	if _, err := SplitModels([]string{"a"}, []string{"a"}, 0.2, 1); err == nil {
		t.Error("a model in both training and test was accepted")
	}
	if _, err := SplitModels(train, nil, 1, 1); err == nil {
		t.Error("validation fraction 1 was accepted")
	}
}

func countPart(s map[string]Part, p Part) int {
	n := 0
	for _, q := range s {
		if q == p {
			n++
		}
	}
	return n
}

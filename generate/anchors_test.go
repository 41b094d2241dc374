package generate

import (
	"math"
	"strings"
	"testing"

	"github.com/hyperrep/hyperrep/autoencoder"
	"github.com/hyperrep/hyperrep/zoo"
)

func ptr(v float64) *float64 { return &v }

// testZoo is two models of three epochs each, without files.
func testZoo() (*zoo.Zoo, []autoencoder.Checkpoint) {
	z := &zoo.Zoo{Dir: "z"}
	var cps []autoencoder.Checkpoint
	for i, act := range []string{"relu", "tanh"} {
		m := zoo.Model{Params: zoo.Params{ID: act, Hyper: zoo.Hyper{Activation: act, Optimizer: "adam", LR: 0.001, Seed: int64(i)}}}
		for e := range 3 {
			ep := zoo.Epoch{Epoch: e, TestAccuracy: 0.1 + 0.3*float64(e) + 0.05*float64(i), TestLoss: 1}
			if e > 0 {
				ep.TrainAccuracy = ptr(ep.TestAccuracy + 0.02)
			}
			m.Epochs = append(m.Epochs, ep)
			cps = append(cps, autoencoder.Checkpoint{Model: act, Epoch: e})
		}
		z.Models = append(z.Models, m)
	}
	return z, cps
}

func TestFilter(t *testing.T) {
	z, cps := testZoo()
	for _, c := range []struct {
		where string
		want  []string // model@epoch, best first, of all checkpoints passing
	}{
		{"", []string{"tanh@2", "relu@2", "tanh@1", "relu@1", "tanh@0", "relu@0"}},
		{"test_acc>0.5", []string{"tanh@2", "relu@2"}},
		{"test_acc>=0.4, epoch<2", []string{"tanh@1", "relu@1"}},
		{"activation==relu && epoch!=0", []string{"relu@2", "relu@1"}},
		{"activation = tanh", []string{"tanh@2", "tanh@1", "tanh@0"}},
		{"model!='relu', epoch<=0", []string{"tanh@0"}},
		{"gen_gap>0.01", []string{"tanh@2", "relu@2", "tanh@1", "relu@1"}}, // NaN at epoch 0 fails
		{"train_acc!=0.5", []string{"tanh@2", "relu@2", "tanh@1", "relu@1", "tanh@0", "relu@0"}},
		{"lr==0.001,optimizer==adam,seed==1", []string{"tanh@2", "tanh@1", "tanh@0"}},
	} {
		f, err := ParseFilter(c.where)
		if err != nil {
			t.Fatalf("%q: %v", c.where, err)
		}
		as, err := SelectAnchors(z, cps, 1, f)
		if err != nil {
			t.Fatalf("%q: %v", c.where, err)
		}
		var got []string
		for _, a := range as {
			got = append(got, a.Model+"@"+string(rune('0'+a.Epoch)))
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%q: %v, want %v", c.where, got, c.want)
		}
	}
}

func TestFilterErrors(t *testing.T) {
	for _, c := range []struct{ where, want string }{
		{"accuracy>0.9", `unknown property "accuracy"`},
		{"test_acc>high", "wants a number"},
		{"activation>relu", "compare it with == or !="},
		{"test_acc", "is not NAME OP VALUE"},
		{"test_acc>0.9,", "empty comparison"},
		{"epoch==", "has no value"},
	} {
		_, err := ParseFilter(c.where)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.where, err, c.want)
		}
	}
	z, cps := testZoo()
	f, _ := ParseFilter("test_acc>2")
	if _, err := SelectAnchors(z, cps, 1, f); err == nil || !strings.Contains(err.Error(), "passes the filter") {
		t.Errorf("no checkpoint passing: %v", err)
	}
}

func TestTop(t *testing.T) {
	z, cps := testZoo()
	for _, c := range []struct {
		s    string
		frac float64
		n    int
	}{{"top30", 0.3, 2}, {"top50", 0.5, 3}, {"top1", 0.01, 1}, {"all", 1, 6}, {"top100", 1, 6}, {"top12.5", 0.125, 1}} {
		f, err := ParseTop(c.s)
		if err != nil || math.Abs(f-c.frac) > 1e-12 {
			t.Errorf("%s: %v, %v, want %v", c.s, f, err, c.frac)
			continue
		}
		as, _ := SelectAnchors(z, cps, f, Filter{})
		if len(as) != c.n || as[0].Model != "tanh" || as[0].Epoch != 2 {
			t.Errorf("%s: %d anchors, first %v, want %d, tanh@2", c.s, len(as), as[0], c.n)
		}
	}
	for _, s := range []string{"top0", "top101", "best30", "top", "top-5", "30"} {
		if _, err := ParseTop(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

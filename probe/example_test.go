package probe_test

import (
	"fmt"
	"math"
	"os"

	"github.com/hyperrep/hyperrep/probe"
	"gonum.org/v1/gonum/mat"
)

// Run on twelve models of four checkpoints each, with a representation that
// determines the test accuracy and the activation, and one that holds only
// the epoch, which tells something of the accuracy but nothing of the
// activation.
func ExampleRun() {
	var (
		models          []string
		acc, epoch, rep []float64
		act             []string
	)
	for m := 0; m < 12; m++ {
		for e := 1; e <= 4; e++ {
			models = append(models, fmt.Sprintf("model%d", m))
			quality := 0.5 + 0.5*math.Mod(0.618*float64(m), 1)
			a := 0.2 + 0.15*float64(e)*quality
			acc, epoch = append(acc, a), append(epoch, float64(e))
			act = append(act, []string{"relu", "tanh"}[m%2])
			rep = append(rep, a, float64(m%2)+0.01*math.Cos(float64(7*m+e)))
		}
	}
	split, _ := probe.SplitModels(
		[]string{"model0", "model1", "model2", "model3", "model4", "model5", "model6", "model7", "model8"},
		[]string{"model9", "model10", "model11"}, 0.25, 1)
	res, err := probe.Run(&probe.Data{
		Features: []probe.FeatureSet{
			{Name: "hyperrep", X: mat.NewDense(48, 2, rep)},
			{Name: "epochs", X: mat.NewDense(48, 1, epoch)},
		},
		Targets: []probe.Target{
			{Name: probe.TestAcc, Values: acc, Tau: true},
			{Name: "activation", Labels: act},
		},
		Models: models,
		Split:  split,
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	res.Report.WriteTable(os.Stdout)
	// Output:
	// property    metric       hyperrep  epochs
	// test_acc    r2              1.000   0.850
	// test_acc    kendall_tau     1.000   0.838
	// activation  accuracy        1.000   0.333
}

func ExampleKendallTau() {
	// Four of six pairs agree, one is tied in x and one in y.
	fmt.Printf("%.2f\n", probe.KendallTau([]float64{1, 2, 2, 3}, []float64{1, 2, 3, 3}))
	// Output: 0.80
}

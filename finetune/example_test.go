package finetune_test

import (
	"context"
	"fmt"
	"log"

	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/finetune"
	"github.com/hyperrep/hyperrep/onnx"
)

// Fine-tune a model for two epochs on 10,000 MNIST training images and
// print its test accuracy before and after.
func Example() {
	m, err := onnx.Read("fixtures/cnn-s.onnx")
	if err != nil {
		log.Fatal(err)
	}
	train, test, err := dataset.Open("mnist")
	if err != nil {
		log.Fatal(err)
	}
	train = train.Subset(10000, 0)
	cfg := finetune.Config{Optimizer: "adam", LR: 1e-3, Batch: 32, Epochs: 2}
	res, err := finetune.Run(context.Background(), []*onnx.Model{m}, train, test, cfg,
		func(i int, e finetune.Epoch, m *onnx.Model) error {
			return m.Write(fmt.Sprintf("cnn-s_epoch_%02d.onnx", e.Epoch))
		})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range res[0] {
		fmt.Printf("epoch %d: test accuracy %.2f %%\n", e.Epoch, 100*e.TestAccuracy)
	}
}

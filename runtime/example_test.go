package runtime_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/hyperrep/hyperrep/dataset"
	"github.com/hyperrep/hyperrep/runtime"
)

func ExampleSession_Run() {
	model, err := os.ReadFile("testdata/linear_nchw.onnx")
	if err != nil {
		log.Fatal(err)
	}
	s, err := runtime.NewSession(model, runtime.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	fmt.Println(s.Inputs(), s.Outputs())

	x := make([]float32, 2*1*28*28) // two black images
	out, err := s.Run(runtime.NewTensor([]int64{2, 1, 28, 28}, x))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out[0].DType, out[0].Shape, out[0].Data.([]float32)[:3])
	// Output:
	// ["x" float32[? 1 28 28]] ["logits" float32[? 10]]
	// float32 [2 10] [-0.5 0 0.5]
}

func ExampleEvaluate() {
	model, err := os.ReadFile("model.onnx")
	if err != nil {
		log.Fatal(err)
	}
	test, err := dataset.Load("mnist", "test")
	if err != nil {
		log.Fatal(err)
	}
	r, err := runtime.Evaluate(context.Background(), model, test, runtime.EvalOptions{
		Progress: func(done, total int) { fmt.Printf("\r%d/%d", done, total) },
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\naccuracy %.2f%%, loss %.4f on %d samples\n", 100*r.Accuracy, r.Loss, r.N)
}

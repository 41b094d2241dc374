package tokenizer_test

import (
	"fmt"
	"log"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/tokenizer"
)

// linear is x -> Gemm(W [2,3], b [2]) -> y.
func linear() *onnx.Model {
	b := onnx.NewBuilder("linear", 0)
	x := b.Input("x", onnx.Float, 1, 3)
	w := b.Float("fc.weight", []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	bias := b.Float("fc.bias", []int64{2}, []float32{7, 8})
	b.Output(b.NodeAs("fc", "Gemm", []string{x, w, bias}, onnx.Int("transB", 1)), onnx.Float, 1, 2)
	return b.Model()
}

func Example() {
	m := linear()
	// Each output unit is a row: its weights, then its bias. Rows of 4
	// values take two tokens of 3.
	tok, err := tokenizer.Tokenize(m, tokenizer.Options{TokenSize: 3})
	if err != nil {
		log.Fatal(err)
	}
	w := tok.Width
	for k := range tok.Len() {
		fmt.Println(tok.Positions[3*k:3*k+3], tok.Values[k*w:(k+1)*w], tok.Mask[k*w:(k+1)*w])
	}
	back, err := tokenizer.Detokenize(tok, m)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(proto.Equal(back.Proto, m.Proto))
	// Output:
	// [0 0 0] [1 2 3] [1 1 1]
	// [1 0 0] [7 0 0] [1 0 0]
	// [2 0 1] [4 5 6] [1 1 1]
	// [3 0 1] [8 0 0] [1 0 0]
	// true
}

func ExamplePermuteLayers() {
	b := onnx.NewBuilder("mlp", 0)
	x := b.Input("x", onnx.Float, 1, 2)
	h := b.NodeAs("fc1", "Gemm", []string{x, b.Float("w1", []int64{3, 2}, []float32{1, 2, 3, 4, 5, 6})}, onnx.Int("transB", 1))
	h = b.Node("Relu", []string{h})
	y := b.NodeAs("fc2", "Gemm", []string{h, b.Float("w2", []int64{1, 3}, []float32{1, 2, 3})}, onnx.Int("transB", 1))
	b.Output(y, onnx.Float, 1, 1)

	p, res, err := tokenizer.PermuteLayers(b.Model(), 1)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res {
		if r.Permuted {
			fmt.Printf("%s (%d units): permuted\n", r.Layer, r.Units)
		} else {
			fmt.Printf("%s (%d units): left as it is, %s\n", r.Layer, r.Units, r.Reason)
		}
	}
	// fc1's rows and fc2's columns moved together.
	w1, _ := onnx.Float32s(p.Initializer("w1"))
	w2, _ := onnx.Float32s(p.Initializer("w2"))
	fmt.Println(w1, w2)
	// Output:
	// fc1 (3 units): permuted
	// fc2 (1 units): left as it is, it has only 1 unit
	// [1 2 5 6 3 4] [1 3 2]
}

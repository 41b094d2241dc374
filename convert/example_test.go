package convert_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/hyperrep/hyperrep/convert"
)

func ExampleEncodeSafetensors() {
	tensors := map[string]convert.Tensor{
		"tokens":    convert.Float32Tensor([]int64{2, 2}, []float32{0.5, -1, 2, 0}),
		"positions": convert.Int32Tensor([]int64{2, 3}, []int32{0, 0, 0, 0, 1, 0}),
	}
	var buf bytes.Buffer
	if err := convert.EncodeSafetensors(&buf, tensors, map[string]string{"layout": "v1"}); err != nil {
		log.Fatal(err)
	}
	data := buf.Bytes()
	fmt.Printf("%s\n", bytes.TrimRight(data[8:len(data)-40], " "))

	f, err := convert.DecodeSafetensors(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		log.Fatal(err)
	}
	v, err := f.Tensors["tokens"].Float32s()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(f.Tensors["tokens"].Shape, v, f.Metadata["layout"])
	// Output:
	// {"__metadata__":{"layout":"v1"},"tokens":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"positions":{"dtype":"I32","shape":[2,3],"data_offsets":[16,40]}}
	// [2 2] [0.5 -1 2 0] v1
}

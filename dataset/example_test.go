package dataset_test

import (
	"fmt"
	"log"

	"github.com/hyperrep/hyperrep/dataset"
)

func ExamplePerm() {
	// The same seed gives the same order on every machine and Go version.
	fmt.Println(dataset.Perm(10, 1))
	// Output: [9 0 1 4 8 2 3 7 6 5]
}

func ExampleLoad() {
	test, err := dataset.Load("fashion-mnist", "test")
	if err != nil {
		log.Fatal(err)
	}
	// A fixed random tenth of the test set, in batches of 100.
	sub := test.Subset(1000, 42)
	for i := 0; i < sub.N; i += 100 {
		batch := sub.Slice(i, min(i+100, sub.N))
		_ = batch.Images // [100, 1, 28, 28]
	}
	fmt.Println(sub)
}

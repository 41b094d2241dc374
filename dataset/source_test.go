package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeSplits writes both splits of the tiny set into dir, the training
// split gzip-compressed and the test split plain, as IDX directories may
// mix them.
func writeSplits(t *testing.T, dir string) {
	t.Helper()
	write(t, dir, "train-images-idx3-ubyte.gz", gz(tinyImages))
	write(t, dir, "train-labels-idx1-ubyte.gz", gz(tinyLabels))
	write(t, dir, "t10k-images-idx3-ubyte", tinyImages)
	write(t, dir, "t10k-labels-idx1-ubyte", idxFile(magicLabels, []uint32{3}, []byte{0, 4, 1}))
}

func TestOpenIDXDir(t *testing.T) {
	dir := t.TempDir()
	writeSplits(t, dir)
	train, test, err := Open("idx:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	if train.Name != "idx:"+dir || train.Split != "train" || test.Split != "test" {
		t.Errorf("names %q/%q and %q/%q", train.Name, train.Split, test.Name, test.Split)
	}
	// Classes come from the largest label of either split.
	if train.Classes != 5 || test.Classes != 5 {
		t.Errorf("classes %d and %d, want 5 and 5", train.Classes, test.Classes)
	}
	if !slices.Equal(test.Labels, []uint8{0, 4, 1}) {
		t.Errorf("test labels %v", test.Labels)
	}
}

func TestLoadErrors(t *testing.T) {
	empty := t.TempDir()
	half := t.TempDir()
	write(t, half, "train-images-idx3-ubyte", tinyImages)
	tests := []struct {
		name, split string
		want        string
		notFound    bool
	}{
		{"foo", "train", `dataset: unknown dataset "foo" (want mnist, fashion-mnist or idx:DIR)`, false},
		{"idx:" + empty, "train", "no train-images-idx3-ubyte[.gz] in " + empty, true},
		{"idx:" + half, "train", "no train-labels-idx1-ubyte[.gz] in " + half, true},
		{"idx:" + half, "test", "no t10k-images-idx3-ubyte[.gz]", true},
		{"mnist", "validation", `dataset: unknown split "validation" (want train or test)`, false},
	}
	for _, tt := range tests {
		_, err := Load(tt.name, tt.split)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%q, %q) = %v, want error containing %q", tt.name, tt.split, err, tt.want)
			continue
		}
		if errors.Is(err, ErrNotFound) != tt.notFound {
			t.Errorf("Load(%q, %q): errors.Is(ErrNotFound) = %v, want %v", tt.name, tt.split, !tt.notFound, tt.notFound)
		}
	}
}

// TestPlainFirst checks that a file there both plain and gzip-compressed
// is read plain: the two copies here differ in their labels, and only the
// plain one's are 2, 0, 1.
func TestPlainFirst(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "train-images-idx3-ubyte.gz", gz(tinyImages))
	write(t, dir, "train-images-idx3-ubyte", tinyImages)
	write(t, dir, "train-labels-idx1-ubyte.gz", gz(idxFile(magicLabels, []uint32{3}, []byte{1, 1, 1})))
	write(t, dir, "train-labels-idx1-ubyte", tinyLabels)
	s, err := Load("idx:"+dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Labels, []uint8{2, 0, 1}) {
		t.Errorf("labels %v, want the plain file's 2, 0, 1", s.Labels)
	}
}

// TestSearchPath checks that $HYPERREP_DATA comes first and that a dataset
// nowhere to be found gives the one-line hint.
func TestSearchPath(t *testing.T) {
	root := t.TempDir()
	writeSplits(t, filepath.Join(mkdir(t, root, "mnist")))
	t.Setenv("HYPERREP_DATA", root)
	s, err := Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 3 || s.Classes != 10 || s.Name != "mnist" {
		t.Errorf("got %v, want the 3 planted samples with 10 classes", s)
	}

	// With every location pointing at empty directories, nothing is found.
	t.Setenv("HYPERREP_DATA", t.TempDir())
	t.Setenv("GOMODCACHE", t.TempDir())
	t.Chdir(t.TempDir())
	_, err = Load("mnist", "train")
	want := `dataset: mnist not found; run "make setup" or set HYPERREP_DATA to a directory holding mnist/`
	if err == nil || err.Error() != want || !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want %s", err, want)
	}
}

func mkdir(t *testing.T, parts ...string) string {
	t.Helper()
	p := filepath.Join(parts...)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRealDatasets loads MNIST and Fashion-MNIST where this machine has
// them (after `make setup`, or with the Go module cache and Debian's
// dataset-fashion-mnist).
func TestRealDatasets(t *testing.T) {
	tests := []struct {
		name        string
		firstLabels []uint8 // the first training labels, as published
	}{
		{"mnist", []uint8{5, 0, 4, 1, 9, 2, 1, 3, 1, 4}},
		{"fashion-mnist", []uint8{9, 0, 0, 3, 0, 2, 7, 2, 5, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			splits := []string{"test", "train"}
			if testing.Short() {
				splits = splits[:1]
			}
			for _, split := range splits {
				s, err := Load(tt.name, split)
				if err != nil {
					t.Fatal(err)
				}
				checkReal(t, s, map[string]int{"train": 60000, "test": 10000}[split])
				if split == "train" && !slices.Equal(s.Labels[:10], tt.firstLabels) {
					t.Errorf("first labels %v, want %v", s.Labels[:10], tt.firstLabels)
				}
			}
		})
	}
}

func checkReal(t *testing.T, s *Set, n int) {
	t.Helper()
	if s.N != n || s.C != 1 || s.H != 28 || s.W != 28 || s.Classes != 10 {
		t.Fatalf("%v, want %d samples of 1x28x28 in 10 classes", s, n)
	}
	var count [10]int
	for _, l := range s.Labels {
		if l >= 10 {
			t.Fatalf("label %d out of range", l)
		}
		count[l]++
	}
	for c, k := range count {
		if k < n/20 {
			t.Errorf("class %d has only %d of %d samples", c, k, n)
		}
	}
	lo, hi := slices.Min(s.Images), slices.Max(s.Images)
	if lo != 0 || hi != 1 {
		t.Errorf("pixels span [%v, %v], want [0, 1]", lo, hi)
	}
}

// TestLoadPick checks that loading picked samples gives what loading the
// whole split and then taking them gives: Drawn as Subset, First as Slice,
// with the classes of the whole split.
func TestLoadPick(t *testing.T) {
	dir := t.TempDir()
	const n = 50
	pix := make([]byte, n*4)
	labels := make([]byte, n)
	for i := range pix {
		pix[i] = byte(i * 7)
	}
	for i := range labels {
		labels[i] = byte(i % 3)
	}
	labels[n-1] = 6 // the largest label is outside every pick below
	write(t, dir, "train-images-idx3-ubyte.gz", gz(idxFile(magicImages, []uint32{n, 2, 2}, pix)))
	write(t, dir, "train-labels-idx1-ubyte", idxFile(magicLabels, []uint32{n}, labels))
	name := "idx:" + dir
	all, err := Load(name, "train")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		what string
		pick Pick
		want *Set
	}{
		{"Drawn(10, 7)", Drawn(10, 7), all.Subset(10, 7)},
		{"Drawn(n, 3)", Drawn(n, 3), all.Subset(n, 3)},
		{"Drawn(0, 3)", Drawn(0, 3), all.Subset(0, 3)},
		{"First(5)", First(5), all.Slice(0, 5)},
		{"First(n+9)", First(n + 9), all},
	} {
		got, err := LoadPick(name, "train", tt.pick)
		if err != nil {
			t.Fatal(err)
		}
		if got.N != tt.want.N || got.Classes != 7 || got.Name != name || got.Split != "train" ||
			!slices.Equal(got.Images, tt.want.Images) || !slices.Equal(got.Labels, tt.want.Labels) {
			t.Errorf("%s: got %v with labels %v, want %v with labels %v", tt.what, got, got.Labels, tt.want, tt.want.Labels)
		}
	}
	if _, err := LoadPick(name, "train", func(int) []int { return []int{3, n} }); err == nil || !strings.Contains(err.Error(), "picked sample 50 of 50") {
		t.Errorf("a pick past the end: error %v", err)
	}
}

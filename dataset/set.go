package dataset

import "github.com/hyperrep/hyperrep/internal/rng"

import "fmt"

// Set is one split of a dataset, held in memory.
type Set struct {
	Name  string // the name it was loaded by: "mnist", "fashion-mnist", "idx:DIR"
	Split string // "train" or "test"

	N, C, H, W int // samples, channels, rows, columns
	Classes    int // labels lie in [0, Classes)

	// Images holds the pixels as [N, C, H, W] in row-major order, scaled
	// from bytes to [0, 1].
	Images []float32
	Labels []uint8 // [N]
}

// SampleSize returns the number of values in one sample, C*H*W.
func (s *Set) SampleSize() int { return s.C * s.H * s.W }

// Image returns the pixels of sample i; the slice shares the Set's memory.
func (s *Set) Image(i int) []float32 {
	d := s.SampleSize()
	return s.Images[i*d : (i+1)*d : (i+1)*d]
}

// Slice returns samples [i, j) as a Set that shares s's memory; batches are
// slices. Like slicing, it panics if the range is out of bounds.
func (s *Set) Slice(i, j int) *Set {
	if i < 0 || j < i || j > s.N {
		panic(fmt.Sprintf("dataset: Slice(%d, %d) of %d samples", i, j, s.N))
	}
	t := *s
	d := s.SampleSize()
	t.N = j - i
	t.Images = s.Images[i*d : j*d : j*d]
	t.Labels = s.Labels[i:j:j]
	return &t
}

// Shuffle reorders the samples in place so that sample i becomes the one
// that was at Perm(N, seed)[i].
func (s *Set) Shuffle(seed int64) {
	d := s.SampleSize()
	tmp := make([]float32, d)
	rng.New(uint64(seed)).Shuffle(s.N, func(i, j int) {
		if i == j {
			return
		}
		a, b := s.Image(i), s.Image(j)
		copy(tmp, a)
		copy(a, b)
		copy(b, tmp)
		s.Labels[i], s.Labels[j] = s.Labels[j], s.Labels[i]
	})
}

// Subset returns a copy of n samples drawn without replacement, in the
// order Perm(N, seed) lists them: the same seed and a larger n give a
// superset that starts with the same samples. An n of N or more returns all
// samples, shuffled.
func (s *Set) Subset(n int, seed int64) *Set {
	n = max(0, min(n, s.N))
	idx := Perm(s.N, seed)[:n]
	t := *s
	t.N = n
	t.Images = make([]float32, n*s.SampleSize())
	t.Labels = make([]uint8, n)
	s.Gather(t.Images, t.Labels, idx)
	return &t
}

// Gather copies the samples idx[0], idx[1], ... into images and labels,
// which must have room for len(idx) samples; it is the way to assemble a
// batch of shuffled samples into buffers reused across steps.
func (s *Set) Gather(images []float32, labels []uint8, idx []int) {
	d := s.SampleSize()
	if len(images) < len(idx)*d || len(labels) < len(idx) {
		panic(fmt.Sprintf("dataset: Gather of %d samples of %d values into %d values and %d labels", len(idx), d, len(images), len(labels)))
	}
	for k, i := range idx {
		copy(images[k*d:(k+1)*d], s.Image(i))
		labels[k] = s.Labels[i]
	}
}

// String describes the set, e.g. "mnist/test: 10000 samples of 1x28x28, 10 classes".
func (s *Set) String() string {
	return fmt.Sprintf("%s/%s: %d samples of %dx%dx%d, %d classes", s.Name, s.Split, s.N, s.C, s.H, s.W, s.Classes)
}

package dataset

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"slices"
)

// ErrFormat is wrapped by the errors about files that are not well-formed
// IDX files of unsigned bytes.
var ErrFormat = errors.New("dataset: malformed IDX file")

// ErrNotFound is wrapped by the errors about datasets that are not on this
// machine.
var ErrNotFound = errors.New("dataset: not found")

// taggedError carries a full message and a sentinel for errors.Is, so that
// the message need not repeat the sentinel's text.
type taggedError struct {
	msg string
	tag error
}

func (e *taggedError) Error() string { return e.msg }
func (e *taggedError) Unwrap() error { return e.tag }

func formatErr(path, format string, args ...any) error {
	return &taggedError{msg: "dataset: " + path + ": " + fmt.Sprintf(format, args...), tag: ErrFormat}
}

// IDX magic numbers: two zero bytes, the element type (0x08 = unsigned
// byte), the number of dimensions.
const (
	magicImages = 0x00000803
	magicLabels = 0x00000801
)

// maxBytes bounds what a header may ask for, far above any real dataset,
// so that sizes near the int64 limit cannot overflow later arithmetic.
const maxBytes = 1 << 40

// ReadIDX reads a split from an images file (magic 0x00000803, [N, rows,
// cols] unsigned bytes) and a labels file (magic 0x00000801, [N] unsigned
// bytes), each gzip-compressed or plain. Name and Split of the result are
// left empty; Classes is the largest label plus one.
func ReadIDX(imagesPath, labelsPath string) (*Set, error) {
	return readIDXPick(imagesPath, labelsPath, nil)
}

// readIDXPick is ReadIDX keeping the samples pick lists, in its order (all
// of them for a nil pick). Only those are scaled to floats; Classes still
// counts the labels of every sample.
func readIDXPick(imagesPath, labelsPath string, pick Pick) (*Set, error) {
	dims, pix, err := readIDX(imagesPath, magicImages)
	if err != nil {
		return nil, err
	}
	ldims, labels, err := readIDX(labelsPath, magicLabels)
	if err != nil {
		return nil, err
	}
	if ldims[0] != dims[0] {
		return nil, fmt.Errorf("dataset: %s has %d images, %s has %d labels", imagesPath, dims[0], labelsPath, ldims[0])
	}
	s := &Set{N: dims[0], C: 1, H: dims[1], W: dims[2], Labels: labels}
	if len(labels) > 0 {
		s.Classes = int(slices.Max(labels)) + 1
	}
	d := s.SampleSize()
	if pick == nil {
		s.Images = make([]float32, len(pix))
		scale(s.Images, pix)
		return s, nil
	}
	idx := pick(s.N)
	s.N = len(idx)
	s.Images, s.Labels = make([]float32, len(idx)*d), make([]uint8, len(idx))
	for k, i := range idx {
		if i < 0 || i >= len(labels) {
			return nil, fmt.Errorf("dataset: %s: picked sample %d of %d", imagesPath, i, len(labels))
		}
		scale(s.Images[k*d:(k+1)*d], pix[i*d:(i+1)*d])
		s.Labels[k] = labels[i]
	}
	return s, nil
}

// scale puts the bytes pix into dst as floats in [0, 1].
func scale(dst []float32, pix []byte) {
	for i, p := range pix {
		dst[i] = float32(p) / 255
	}
}

// readIDX reads an IDX file of unsigned bytes with the given magic and
// returns its dimensions and data.
func readIDX(path string, magic uint32) ([]int, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("dataset: %w", err)
	}
	br := bufio.NewReader(f)
	var r io.Reader = br
	// For plain files the size on disk bounds the data; for gzip only the
	// size its trailer states hints at it, so the buffer starts there and
	// otherwise grows with what arrives.
	present, hint := st.Size(), st.Size()
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, formatErr(path, "%v", err)
		}
		defer zr.Close()
		r, present, hint = zr, -1, gzipSize(f, st.Size())
	}
	dims, err := readHeader(r, path, magic)
	if err != nil {
		return nil, nil, err
	}
	want, err := dataSize(dims, path)
	if err != nil {
		return nil, nil, err
	}
	if present >= 0 {
		present -= int64(4 + 4*len(dims))
		if present != want {
			return nil, nil, formatErr(path, "header says %s, file holds %d bytes, want %d", describe(dims), present, want)
		}
	}
	if hint >= 0 {
		hint -= int64(4 + 4*len(dims))
	}
	data, extra, err := readBody(r, want, hint)
	got := int64(len(data)) + extra
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, nil, formatErr(path, "header says %s, file holds %d bytes, want %d (the gzip stream is cut short)", describe(dims), got, want)
	case err != nil:
		return nil, nil, formatErr(path, "after %d bytes of data: %v", got, err)
	case got != want:
		return nil, nil, formatErr(path, "header says %s, file holds %d bytes, want %d", describe(dims), got, want)
	}
	return dims, data, nil
}

// gzipSize is the size a gzip file of n bytes says its data has (the
// ISIZE field of its last member, the size modulo 2³²), or -1 where that
// cannot be right: deflate expands at most about 1032-fold. It is only a
// hint for the buffer, so that a large file is not read into a buffer
// grown by doubling; a wrong one costs a copy, not a wrong result.
func gzipSize(f *os.File, n int64) int64 {
	var b [4]byte
	if n < 18 {
		return -1
	}
	if _, err := f.ReadAt(b[:], n-4); err != nil {
		return -1
	}
	size := int64(binary.LittleEndian.Uint32(b[:]))
	if size > 1032*n {
		return -1
	}
	return size
}

func readHeader(r io.Reader, path string, magic uint32) ([]int, error) {
	var m uint32
	if err := binary.Read(r, binary.BigEndian, &m); err != nil {
		return nil, formatErr(path, "reading magic number: %v", err)
	}
	if m != magic {
		return nil, formatErr(path, "magic number 0x%08x, want 0x%08x (%s)", m, magic, kind(magic))
	}
	raw := make([]uint32, magic&0xff)
	if err := binary.Read(r, binary.BigEndian, raw); err != nil {
		return nil, formatErr(path, "reading %d dimensions: %v", len(raw), err)
	}
	dims := make([]int, len(raw))
	for i, d := range raw {
		dims[i] = int(d)
	}
	return dims, nil
}

// dataSize multiplies the dimensions, refusing products that overflow or
// exceed maxBytes.
func dataSize(dims []int, path string) (int64, error) {
	n := uint64(1)
	for _, d := range dims {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > maxBytes {
			return 0, formatErr(path, "header says %s, more than %d bytes", describe(dims), uint64(maxBytes))
		}
		n = lo
	}
	return int64(n), nil
}

// readBody reads up to want bytes and counts the extra bytes that follow.
// Its buffer starts at the size hint (the bytes present on disk, the size
// a gzip trailer states, or -1 when unknown) and otherwise grows with the
// data read, so a header that overstates the size cannot cause a large
// allocation.
func readBody(r io.Reader, want, hint int64) (data []byte, extra int64, err error) {
	const chunk = 1 << 20
	buf := make([]byte, 0, min(want, max(hint, chunk)))
	for int64(len(buf)) < want {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(want-int64(len(buf)), max(int64(len(buf)), chunk))))
		}
		n, err := r.Read(buf[len(buf):min(int64(cap(buf)), want)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, 0, nil
		}
		if err != nil {
			return buf, 0, err
		}
	}
	// Reading to the end also makes gzip verify its checksum.
	extra, err = io.Copy(io.Discard, r)
	return buf, extra, err
}

func kind(magic uint32) string {
	if magic == magicImages {
		return "IDX images of unsigned bytes"
	}
	return "IDX labels of unsigned bytes"
}

func describe(dims []int) string {
	if len(dims) == 3 {
		return fmt.Sprintf("%d images of %dx%d", dims[0], dims[1], dims[2])
	}
	return fmt.Sprintf("%d labels", dims[0])
}

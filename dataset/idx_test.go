package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
)

// idxFile encodes an IDX file of unsigned bytes with the given magic and
// dimensions; data may disagree with the dimensions, to make lying headers.
func idxFile(magic uint32, dims []uint32, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	binary.Write(&b, binary.BigEndian, dims)
	b.Write(data)
	return b.Bytes()
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func write(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tiny is 3 images of 2x2 with pixel values 0, 51, 102, ... and labels 2, 0, 1.
var (
	tinyPixels = []byte{0, 51, 102, 153, 204, 255, 0, 51, 102, 153, 204, 255}
	tinyImages = idxFile(magicImages, []uint32{3, 2, 2}, tinyPixels)
	tinyLabels = idxFile(magicLabels, []uint32{3}, []byte{2, 0, 1})
)

func TestReadIDX(t *testing.T) {
	for _, compress := range []bool{false, true} {
		dir := t.TempDir()
		enc := func(b []byte) []byte { return b }
		if compress {
			enc = gz
		}
		s, err := ReadIDX(write(t, dir, "i", enc(tinyImages)), write(t, dir, "l", enc(tinyLabels)))
		if err != nil {
			t.Fatalf("gzip %v: %v", compress, err)
		}
		if s.N != 3 || s.C != 1 || s.H != 2 || s.W != 2 || s.Classes != 3 {
			t.Errorf("gzip %v: got N=%d C=%d H=%d W=%d Classes=%d, want 3 1 2 2 3", compress, s.N, s.C, s.H, s.W, s.Classes)
		}
		for i, p := range tinyPixels {
			if want := float32(p) / 255; s.Images[i] != want {
				t.Errorf("gzip %v: pixel %d = %v, want %v", compress, i, s.Images[i], want)
			}
		}
		if !bytes.Equal(s.Labels, []byte{2, 0, 1}) {
			t.Errorf("gzip %v: labels %v, want [2 0 1]", compress, s.Labels)
		}
	}
}

func TestReadIDXErrors(t *testing.T) {
	truncatedGzip := gz(tinyImages)
	truncatedGzip = truncatedGzip[:len(truncatedGzip)-12]
	corruptGzip := gz(tinyImages)
	corruptGzip[len(corruptGzip)-8] ^= 0xff // the CRC-32 of the trailer
	tests := []struct {
		name   string
		images []byte
		labels []byte
		want   string // substring of the error
		format bool   // whether it must wrap ErrFormat
	}{
		{"labels as images", tinyLabels, tinyLabels, "magic number 0x00000801, want 0x00000803", true},
		{"images as labels", tinyImages, tinyImages, "magic number 0x00000803, want 0x00000801", true},
		{"empty", nil, tinyLabels, "reading magic number: EOF", true},
		{"short header", tinyImages[:9], tinyLabels, "reading 3 dimensions", true},
		{"short data", tinyImages[:len(tinyImages)-1], tinyLabels, "header says 3 images of 2x2, file holds 11 bytes, want 12", true},
		{"short data gz", gz(tinyImages[:len(tinyImages)-1]), tinyLabels, "header says 3 images of 2x2, file holds 11 bytes, want 12", true},
		{"trailing data", append(append([]byte{}, tinyImages...), 7, 7), tinyLabels, "file holds 14 bytes, want 12", true},
		{"trailing data gz", gz(append(append([]byte{}, tinyImages...), 7, 7)), tinyLabels, "file holds 14 bytes, want 12", true},
		{"truncated gz", truncatedGzip, tinyLabels, "gzip stream is cut short", true},
		{"corrupt gz", corruptGzip, tinyLabels, "checksum", true},
		{"overflow", idxFile(magicImages, []uint32{0xffffffff, 0xffffffff, 0xffffffff}, nil), tinyLabels, "more than", true},
		{"count mismatch", tinyImages, idxFile(magicLabels, []uint32{2}, []byte{1, 2}), "has 3 images", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := ReadIDX(write(t, dir, "images", tt.images), write(t, dir, "labels", tt.labels))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "dataset: ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line starting with \"dataset: \"", err)
			}
			if errors.Is(err, ErrFormat) != tt.format {
				t.Errorf("errors.Is(%v, ErrFormat) = %v, want %v", err, !tt.format, tt.format)
			}
		})
	}
}

// TestLyingHeaderAllocation checks that a header claiming 78 GB of pixels
// in a file of a few bytes fails without allocating what it claims.
func TestLyingHeaderAllocation(t *testing.T) {
	dir := t.TempDir()
	liar := idxFile(magicImages, []uint32{100_000_000, 28, 28}, make([]byte, 1000))
	labels := write(t, dir, "labels", tinyLabels)
	for _, b := range [][]byte{liar, gz(liar)} {
		images := write(t, dir, "images", b)
		var before, after goruntime.MemStats
		goruntime.ReadMemStats(&before)
		_, err := ReadIDX(images, labels)
		goruntime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "header says 100000000 images of 28x28, file holds 1000 bytes, want 78400000000") {
			t.Errorf("got error %v", err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
			t.Errorf("reading a lying header allocated %d bytes", grew)
		}
	}
}

// TestGzipSizeHint checks the buffer hint from a gzip trailer: a true one
// reads the pixels into one buffer; the last member's size in a file of
// two members understates the data and still reads it whole; and a
// trailer claiming more than deflate can expand to is no hint, and fails
// compress/gzip's check without a buffer of its size.
func TestGzipSizeHint(t *testing.T) {
	dir := t.TempDir()
	pix := make([]byte, 3<<20)
	for i := range pix {
		pix[i] = byte(i % 251)
	}
	raw := idxFile(magicImages, []uint32{uint32(len(pix) / 4), 2, 2}, pix)
	labels := write(t, dir, "labels", idxFile(magicLabels, []uint32{uint32(len(pix) / 4)}, make([]byte, len(pix)/4)))
	hint := func(b []byte) int64 {
		f, err := os.Open(write(t, dir, "probe.gz", b))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return gzipSize(f, int64(len(b)))
	}
	read := func(b []byte) (*Set, uint64, error) {
		images := write(t, dir, "images.gz", b)
		var before, after goruntime.MemStats
		goruntime.ReadMemStats(&before)
		s, err := ReadIDX(images, labels)
		goruntime.ReadMemStats(&after)
		return s, after.TotalAlloc - before.TotalAlloc, err
	}
	check := func(what string, s *Set, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for i, p := range pix {
			if s.Images[i] != float32(p)/255 {
				t.Fatalf("%s: pixel %d is %v, want %v", what, i, s.Images[i], float32(p)/255)
			}
		}
	}

	one := gz(raw)
	if h := hint(one); h != int64(len(raw)) {
		t.Errorf("one member: hint %d, want %d", h, len(raw))
	}
	s, grew, err := read(one)
	check("one member", s, err)
	// The pixels as bytes once and as floats once; growing the byte
	// buffer from 1 MiB by doubling would add twice the bytes.
	if limit := uint64(5*len(pix) + 1<<20); grew > limit {
		t.Errorf("one member: reading allocated %d bytes, want at most %d", grew, limit)
	}

	two := append(gz(raw[:len(raw)/3]), gz(raw[len(raw)/3:])...)
	if h := hint(two); h != int64(len(raw)-len(raw)/3) {
		t.Errorf("two members: hint %d, want %d", h, len(raw)-len(raw)/3)
	}
	s, _, err = read(two)
	check("two members", s, err)

	liar := gz(idxFile(magicImages, []uint32{1, 2, 2}, []byte{1, 2, 3, 4}))
	binary.LittleEndian.PutUint32(liar[len(liar)-4:], 1<<32-1)
	if h := hint(liar); h != -1 {
		t.Errorf("trailer of 4 GiB in %d bytes: hint %d, want -1", len(liar), h)
	}
	if _, grew, err := read(liar); err == nil || grew > 8<<20 {
		t.Errorf("trailer of 4 GiB: error %v after allocating %d bytes", err, grew)
	}
}

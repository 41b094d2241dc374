package convert

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/hyperrep/hyperrep/internal/atomicfile"
)

// ErrFormat is matched (errors.Is) by every error about data that is not a
// well-formed safetensors file.
var ErrFormat = errors.New("convert: malformed safetensors")

// formatError carries its own message and matches ErrFormat.
type formatError struct{ msg string }

func (e *formatError) Error() string        { return e.msg }
func (e *formatError) Is(target error) bool { return target == ErrFormat }

func formatErr(format string, args ...any) error {
	return &formatError{fmt.Sprintf(format, args...)}
}

// maxHeader is the reference implementation's limit on the JSON header, so
// that we refuse what Python would refuse.
const maxHeader = 100_000_000

// metadataKey is the header key holding the free-form string metadata.
const metadataKey = "__metadata__"

// A File is the content of a safetensors file. Both maps are non-nil after
// a successful read.
type File struct {
	Tensors  map[string]Tensor
	Metadata map[string]string
}

// ReadSafetensors reads and validates the safetensors file at path.
func ReadSafetensors(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("convert: %s is not a regular file", path)
	}
	file, err := decode(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("convert: %s: %w", path, err)
	}
	return file, nil
}

// DecodeSafetensors reads and validates a safetensors file of size bytes from
// r. Nothing the data claims is allocated before it is checked against size;
// the tensors' bytes are read with one ReadAt into one buffer they share.
func DecodeSafetensors(r io.ReaderAt, size int64) (*File, error) {
	file, err := decode(r, size)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	return file, nil
}

// entry is one tensor of a header, with its byte range in the data buffer.
type entry struct {
	name       string
	dtype      string
	shape      []int64
	begin, end int64
}

func decode(r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, formatErr("file has %d bytes, want at least 8 for the header length", size)
	}
	var prefix [8]byte
	if err := readFull(r, prefix[:], 0); err != nil {
		return nil, fmt.Errorf("reading header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	if n > uint64(size-8) {
		return nil, formatErr("header length %d exceeds the %d bytes after the length field", n, size-8)
	}
	if n > maxHeader {
		return nil, formatErr("header length %d exceeds the limit of %d", n, maxHeader)
	}
	header := make([]byte, n)
	if err := readFull(r, header, 8); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	dataLen := size - 8 - int64(n)
	entries, metadata, err := parseHeader(header, dataLen)
	if err != nil {
		return nil, err
	}
	if err := checkLayout(entries, dataLen); err != nil {
		return nil, err
	}
	data := make([]byte, dataLen)
	if err := readFull(r, data, 8+int64(n)); err != nil {
		return nil, fmt.Errorf("reading tensor data: %w", err)
	}
	f := &File{Tensors: make(map[string]Tensor, len(entries)), Metadata: metadata}
	for _, e := range entries {
		// The full slice expression keeps an append to one tensor's Data
		// from overwriting the next tensor in the shared buffer.
		f.Tensors[e.name] = Tensor{DType: e.dtype, Shape: e.shape, Data: data[e.begin:e.end:e.end]}
	}
	return f, nil
}

// readFull reads len(p) bytes at off, treating a short read as the file
// being shorter than its stated size.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// parseHeader decodes the JSON header and checks each tensor on its own: a
// known dtype, a shape whose size fits, and offsets that lie inside the
// dataLen-byte buffer and span exactly that size.
func parseHeader(header []byte, dataLen int64) ([]entry, map[string]string, error) {
	// encoding/json would replace invalid UTF-8 with U+FFFD; the reference
	// rejects it, and so do we, so that names survive a round trip unchanged.
	if !utf8.Valid(header) {
		return nil, nil, formatErr("header is not valid UTF-8")
	}
	// Validating first lets every syntax error read the same way, with its
	// position; after it, objectMembers only finds structural problems.
	if !json.Valid(header) {
		err := json.Unmarshal(header, new(any))
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, nil, formatErr("header is not valid JSON: %v at byte %d", se, se.Offset)
		}
		return nil, nil, formatErr("header is not valid JSON: %v", err)
	}
	members, err := objectMembers(header)
	if err != nil {
		return nil, nil, formatErr("header: %v", err)
	}
	metadata := map[string]string{}
	entries := make([]entry, 0, len(members))
	for _, m := range members {
		if m.key == metadataKey {
			if metadata, err = parseMetadata(m.value); err != nil {
				return nil, nil, formatErr("header: %s: %v", metadataKey, err)
			}
			continue
		}
		e, err := parseEntry(m.key, m.value, dataLen)
		if err != nil {
			return nil, nil, formatErr("header: tensor %q: %v", m.key, err)
		}
		entries = append(entries, e)
	}
	return entries, metadata, nil
}

type member struct {
	key   string
	value json.RawMessage
}

// objectMembers returns the members of the JSON object in data, which must be
// one valid JSON value (json.Valid, or a RawMessage from it), in order. A
// duplicate key is an error: encoding/json would silently keep the last one,
// and a file whose meaning depends on which duplicate wins is not to be
// trusted.
func objectMembers(data []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // a valid number may still overflow float64
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("found %s, want an object", jsonKind(data))
	}
	var members []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok { // Token reports a syntax error first; this is a backstop
			return nil, fmt.Errorf("found %v, want an object key", tok)
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("key %q: %v", key, err)
		}
		members = append(members, member{key, value})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	return members, nil
}

// jsonKind names the kind of the JSON value raw for an error message;
// quoting the value itself could make the message long or multi-line.
func jsonKind(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// short returns s cut to a length fit for an error message.
func short(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// parseMetadata decodes the __metadata__ object: string values only, and
// null meaning none, as in the reference.
func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	metadata := map[string]string{}
	if string(raw) == "null" {
		return metadata, nil
	}
	members, err := objectMembers(raw)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		var s *string
		if err := json.Unmarshal(m.value, &s); err != nil || s == nil {
			return nil, fmt.Errorf("key %q: value is %s, want a string", m.key, jsonKind(m.value))
		}
		metadata[m.key] = *s
	}
	return metadata, nil
}

// parseEntry decodes one tensor's {"dtype", "shape", "data_offsets"} object.
// Unknown fields are rejected rather than dropped: writing the file back would
// lose them silently.
func parseEntry(name string, raw json.RawMessage, dataLen int64) (entry, error) {
	e := entry{name: name}
	members, err := objectMembers(raw)
	if err != nil {
		return e, err
	}
	var dtype *string
	var shape, offsets []uint64
	for _, m := range members {
		switch m.key {
		case "dtype":
			if err := json.Unmarshal(m.value, &dtype); err != nil || dtype == nil {
				return e, fmt.Errorf("dtype is %s, want a string", jsonKind(m.value))
			}
		case "shape":
			if shape, err = parseUints(m.value); err != nil {
				return e, fmt.Errorf("shape: %v", err)
			}
		case "data_offsets":
			if offsets, err = parseUints(m.value); err != nil {
				return e, fmt.Errorf("data_offsets: %v", err)
			}
			if len(offsets) != 2 {
				return e, fmt.Errorf("data_offsets has %d values, want 2", len(offsets))
			}
		default:
			return e, fmt.Errorf("unknown field %q", m.key)
		}
	}
	switch {
	case dtype == nil:
		return e, errors.New("no dtype")
	case shape == nil:
		return e, errors.New("no shape")
	case offsets == nil:
		return e, errors.New("no data_offsets")
	}
	e.dtype = *dtype
	e.shape = make([]int64, len(shape))
	for i, d := range shape {
		if d > math.MaxInt64 {
			return e, fmt.Errorf("shape element %d is %d, more than an int64 holds", i, d)
		}
		e.shape[i] = int64(d)
	}
	size, err := byteSize(e.dtype, e.shape)
	if err != nil {
		return e, err
	}
	begin, end := offsets[0], offsets[1]
	if begin > end {
		return e, fmt.Errorf("data_offsets [%d, %d] end before they begin", begin, end)
	}
	if end > uint64(dataLen) {
		return e, fmt.Errorf("data_offsets [%d, %d] run past the %d-byte data buffer", begin, end, dataLen)
	}
	e.begin, e.end = int64(begin), int64(end)
	if e.end-e.begin != size {
		return e, fmt.Errorf("data_offsets [%d, %d] span %d bytes, want %d for %s %s", begin, end, end-begin, size, e.dtype, shapeString(e.shape))
	}
	return e, nil
}

// parseUints decodes a JSON array of non-negative integers. It goes through
// json.Number because unmarshalling straight into []uint64 would accept
// numbers written as JSON strings ("3") and null for the whole array.
func parseUints(raw json.RawMessage) ([]uint64, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var values *[]any
	if err := dec.Decode(&values); err != nil || values == nil {
		return nil, fmt.Errorf("found %s, want an array of integers", jsonKind(raw))
	}
	out := make([]uint64, len(*values))
	var err error
	for i, v := range *values {
		num, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("element %d is not a number", i)
		}
		if out[i], err = strconv.ParseUint(string(num), 10, 64); err != nil {
			return nil, fmt.Errorf("element %d is %s, want an integer in [0, 2^64)", i, short(string(num)))
		}
	}
	return out, nil
}

// checkLayout checks that the tensors tile the data buffer: sorted by offset,
// each begins where the previous one ends, the first at 0 and the last at
// dataLen. This is the reference's rule; it rules out overlapping tensors
// (two names sharing bytes) and bytes that belong to no tensor.
func checkLayout(entries []entry, dataLen int64) error {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.begin, b.begin), cmp.Compare(a.end, b.end), cmp.Compare(a.name, b.name))
	})
	var next int64
	for i, e := range sorted {
		if e.begin < next {
			p := sorted[i-1]
			return formatErr("tensor %q data_offsets [%d, %d] overlap tensor %q [%d, %d]", e.name, e.begin, e.end, p.name, p.begin, p.end)
		}
		if e.begin > next {
			return formatErr("bytes [%d, %d) of the data buffer belong to no tensor", next, e.begin)
		}
		next = e.end
	}
	if next != dataLen {
		return formatErr("bytes [%d, %d) of the data buffer belong to no tensor", next, dataLen)
	}
	return nil
}

// WriteSafetensors writes tensors and metadata to a safetensors file at path,
// atomically: the tensors are validated before anything is written, the bytes
// go to a temporary file in the same directory that is synced and renamed
// over path, and on any error path is left as it was. A nil or empty metadata
// map writes no __metadata__ entry.
func WriteSafetensors(path string, tensors map[string]Tensor, metadata map[string]string) error {
	header, order, err := prepare(tensors, metadata)
	if err != nil {
		return fmt.Errorf("convert: write %s: %w", path, err)
	}
	err = atomicfile.Write(path, func(f *os.File) error {
		w := bufio.NewWriterSize(f, 1<<20)
		if err := writeFile(w, header, order, tensors); err != nil {
			return err
		}
		return w.Flush()
	})
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	return nil
}

// EncodeSafetensors writes tensors and metadata to w in the safetensors
// format, streaming each tensor's Data as it is: nothing is copied. It
// validates every tensor before writing anything. Tensors are laid out in
// the reference implementation's order (descending dtype alignment, then
// name), metadata keys are sorted, so equal input gives equal bytes.
func EncodeSafetensors(w io.Writer, tensors map[string]Tensor, metadata map[string]string) error {
	header, order, err := prepare(tensors, metadata)
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	if err := writeFile(w, header, order, tensors); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	return nil
}

func writeFile(w io.Writer, header []byte, order []string, tensors map[string]Tensor) error {
	if _, err := w.Write(header); err != nil {
		return err
	}
	for _, name := range order {
		if _, err := w.Write(tensors[name].Data); err != nil {
			return err
		}
	}
	return nil
}

// prepare validates the tensors and returns the length field and JSON header
// (padded to 8 bytes so the data buffer starts aligned), together with the
// order in which the tensors' bytes follow it.
func prepare(tensors map[string]Tensor, metadata map[string]string) ([]byte, []string, error) {
	order := make([]string, 0, len(tensors))
	for name, t := range tensors {
		if name == metadataKey {
			return nil, nil, fmt.Errorf("tensor name %q is reserved for metadata", name)
		}
		// The header is JSON text: anything else could not be read back as
		// the same name.
		if !utf8.ValidString(name) {
			return nil, nil, fmt.Errorf("tensor name %q is not valid UTF-8", name)
		}
		size, err := byteSize(t.DType, t.Shape)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		if int64(len(t.Data)) != size {
			return nil, nil, fmt.Errorf("tensor %q: data has %d bytes, want %d for %s %s", name, len(t.Data), size, t.DType, shapeString(t.Shape))
		}
		order = append(order, name)
	}
	slices.SortFunc(order, func(a, b string) int {
		return cmp.Or(cmp.Compare(dtypes[tensors[b].DType].rank, dtypes[tensors[a].DType].rank), cmp.Compare(a, b))
	})
	keys := make([]string, 0, len(metadata))
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, nil, fmt.Errorf("metadata %q: %q is not valid UTF-8", k, v)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)

	// The 8 bytes of the length field come first; they are filled in last.
	b := make([]byte, 8, 8+64*(len(tensors)+len(metadata)+1))
	b = append(b, '{')
	if len(keys) > 0 {
		b = appendString(b, metadataKey)
		b = append(b, ":{"...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, metadata[k])
		}
		b = append(b, '}')
	}
	var offset int64
	for i, name := range order {
		t := tensors[name]
		if i > 0 || len(keys) > 0 {
			b = append(b, ',')
		}
		b = appendString(b, name)
		b = append(b, `:{"dtype":`...)
		b = appendString(b, t.DType)
		b = append(b, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendInt(b, offset, 10)
		b = append(b, ',')
		offset += int64(len(t.Data))
		b = strconv.AppendInt(b, offset, 10)
		b = append(b, "]}"...)
	}
	b = append(b, '}')
	for len(b)%8 != 0 {
		b = append(b, ' ')
	}
	binary.LittleEndian.PutUint64(b, uint64(len(b)-8))
	return b, order, nil
}

// appendString appends s as a JSON string escaped the way serde_json does
// (which differs from encoding/json: no escaping of <, >, & or U+2028), so
// that our headers are byte-identical to the reference implementation's.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

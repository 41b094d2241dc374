package tokenizer

import (
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
)

// A span is a block of a tensor's values: k consecutive units, each of
// inner values, for rows consecutive indices o of the axes before the unit
// axis. Its values are converted together through a small buffer. Value i
// of unit j at row r is element e+r*skip+j*inner+i of the tensor and goes to
// index pos+j*stride+r*inner+i of the token buffer.
type span struct {
	t              *pb.TensorProto
	e, skip        int
	rows, k, inner int
	pos, stride    int
}

// walk visits the layout with tokens of width w. It calls group for every
// group of rows with the index of its first token, and each for every span
// of a tensor's values, in the tensor's element order.
func (p *plan) walk(w int, group func(layer int, g group, start int), each func(s span)) {
	tok := 0
	for li := range p.layout.Layers {
		l := &p.layout.Layers[li]
		ti := 0
		for _, g := range l.groups() {
			group(li, g, tok)
			stride := tokensPerRow(g.length, w) * w
			for _, tt := range g.tensors {
				spans(tt, p.tensors[li][ti], tok*w, stride, each)
				ti++
			}
			tok += g.rows * tokensPerRow(g.length, w)
		}
	}
}

// chunk is the most values a span holds.
const chunk = 4096

// largeUnit is the unit length from which values are converted straight
// between a tensor and the token buffer, one unit at a time.
const largeUnit = 64

// spans cuts one tensor into spans. Unit u of the tensor starts at token
// buffer index base+u*stride+tt.Offset. With the unit axis moved to the
// front, element (o, u, i) of the tensor (o indexing the axes before the unit
// axis, i those after it) is value o*inner+i of unit u's part of the row.
//
// Short units come in tiles of several o, so that each unit's values land
// in the token buffer together: a MatMul weight [K, N] gives rows of one
// value per k, which written one at a time would touch a cache line per
// value.
func spans(tt Tensor, t *pb.TensorProto, base, stride int, each func(s span)) {
	units := tt.Units
	if units == 0 || tt.PerRow == 0 {
		return
	}
	inner := 1
	for _, d := range tt.Dims[min(tt.UnitAxis+1, len(tt.Dims)):] {
		inner *= int(d)
	}
	outer := tt.PerRow / inner
	rows, k := 1, units
	if inner < largeUnit {
		rows = largeUnit / inner
		k = chunk / (rows * inner)
	}
	for o := 0; o < outer; o += rows {
		for u := 0; u < units; u += k {
			each(span{t: t, e: (o*units + u) * inner, skip: units * inner,
				rows: min(rows, outer-o), k: min(k, units-u), inner: inner,
				pos: base + u*stride + tt.Offset + o*inner, stride: stride})
		}
	}
}

// read copies a span of a tensor into the token buffer, and into the exact
// one if not nil, through buf and buf64.
func (s span) read(values []float32, exact []float64, buf []float32, buf64 []float64) {
	if s.inner >= largeUnit {
		for j := 0; j < s.k; j++ {
			p := s.pos + j*s.stride
			onnx.ReadFloats(s.t, s.e+j*s.inner, values[p:p+s.inner], part(exact, p, s.inner))
		}
		return
	}
	n := s.k * s.inner
	for r := 0; r < s.rows; r++ {
		onnx.ReadFloats(s.t, s.e+r*s.skip, buf[r*n:(r+1)*n], part(buf64, r*n, n))
	}
	move(s, values, buf, false)
	if exact != nil {
		move(s, exact, buf64, false)
	}
}

// write is read the other way round.
func (s span) write(values []float32, exact []float64, buf []float32, buf64 []float64) {
	if s.inner >= largeUnit {
		for j := 0; j < s.k; j++ {
			p := s.pos + j*s.stride
			onnx.WriteFloats(s.t, s.e+j*s.inner, values[p:p+s.inner], part(exact, p, s.inner))
		}
		return
	}
	n := s.k * s.inner
	move(s, values, buf, true)
	if exact != nil {
		move(s, exact, buf64, true)
	}
	for r := 0; r < s.rows; r++ {
		onnx.WriteFloats(s.t, s.e+r*s.skip, buf[r*n:(r+1)*n], part(buf64, r*n, n))
	}
}

// part is x[i:i+n], or nil for a nil x.
func part[T any](x []T, i, n int) []T {
	if x == nil {
		return nil
	}
	return x[i : i+n]
}

// move copies a span's values from buf, which holds them in tensor order,
// into the token buffer tok, or back when gather is set.
func move[T float32 | float64](s span, tok, buf []T, gather bool) {
	n := s.k * s.inner
	for j := 0; j < s.k; j++ {
		p := s.pos + j*s.stride
		for r := 0; r < s.rows; r++ {
			a := tok[p+r*s.inner : p+(r+1)*s.inner]
			b := buf[r*n+j*s.inner : r*n+(j+1)*s.inner]
			if gather {
				a, b = b, a
			}
			if s.inner == 1 {
				a[0] = b[0] // the common case of MatMul weights, spared a call
			} else {
				copy(a, b)
			}
		}
	}
}

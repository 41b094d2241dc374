package runtime

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/onnx/pb"
)

// plusOne is the model y = x + 1 for x of the given dtype and shape.
func plusOne(t *testing.T, dtype pb.TensorProto_DataType, shape []int64) *Session {
	t.Helper()
	one := &pb.TensorProto{Name: proto.String("one"), DataType: proto.Int32(int32(dtype))}
	switch dtype {
	case pb.TensorProto_FLOAT:
		one.FloatData = []float32{1}
	case pb.TensorProto_DOUBLE:
		one.DoubleData = []float64{1}
	case pb.TensorProto_INT64:
		one.Int64Data = []int64{1}
	}
	g := &pb.GraphProto{Name: proto.String("plus_one"),
		Node:        []*pb.NodeProto{node("Add", []string{"x", "one"}, "y")},
		Input:       []*pb.ValueInfoProto{tensorInfo("x", dtype, shape)},
		Output:      []*pb.ValueInfoProto{tensorInfo("y", dtype, shape)},
		Initializer: []*pb.TensorProto{one},
	}
	s, err := NewSession(marshalModel(t, g, 8), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustValue(t *testing.T, dtype DType, shape []int64) *Value {
	t.Helper()
	v, err := NewValue(dtype, shape)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Destroy)
	return v
}

// asFloats reads any numeric view as float64s, for comparing.
func asFloats(v *Value) []float64 {
	var out []float64
	switch d := v.Tensor().Data.(type) {
	case []float32:
		for _, x := range d {
			out = append(out, float64(x))
		}
	case []float64:
		out = append(out, d...)
	case []int64:
		for _, x := range d {
			out = append(out, float64(x))
		}
	}
	return out
}

func setFloats(v *Value, x []float64) {
	switch d := v.Tensor().Data.(type) {
	case []float32:
		for i := range d {
			d[i] = float32(x[i])
		}
	case []float64:
		copy(d, x)
	case []int64:
		for i := range d {
			d[i] = int64(x[i])
		}
	}
}

// TestValueSwap feeds y = x + 1 its own output k times, swapping the two
// Values, with RunValues and with a pair of Bindings; writes through a view
// between runs must be seen by the next.
func TestValueSwap(t *testing.T) {
	tests := []struct {
		dtype pb.TensorProto_DataType
		shape []int64
	}{
		{pb.TensorProto_FLOAT, []int64{2, 3}},
		{pb.TensorProto_DOUBLE, []int64{5}},
		{pb.TensorProto_INT64, []int64{1, 2, 2}},
		{pb.TensorProto_FLOAT, []int64{}},
		{pb.TensorProto_DOUBLE, []int64{}},
	}
	const k = 7
	for _, tt := range tests {
		dt := DType(tt.dtype)
		name := fmt.Sprint(dt, tt.shape)
		s := plusOne(t, tt.dtype, tt.shape)
		for _, bound := range []bool{false, true} {
			a, b := mustValue(t, dt, tt.shape), mustValue(t, dt, tt.shape)
			n := len(asFloats(a))
			start := make([]float64, n)
			for i := range start {
				start[i] = float64(10 * i)
			}
			setFloats(a, start)
			var even, odd *Binding
			if bound {
				var err error
				if even, err = s.Bind([]*Value{a}, []*Value{b}); err != nil {
					t.Fatal(err)
				}
				if odd, err = s.Bind([]*Value{b}, []*Value{a}); err != nil {
					t.Fatal(err)
				}
			}
			x, y := a, b
			for step := range k {
				var err error
				switch {
				case !bound:
					err = s.RunValues([]*Value{x}, []*Value{y})
				case step%2 == 0:
					err = even.Run()
				default:
					err = odd.Run()
				}
				if err != nil {
					t.Fatalf("%s step %d: %v", name, step, err)
				}
				x, y = y, x
			}
			got := asFloats(x)
			for i := range got {
				if got[i] != start[i]+k {
					t.Fatalf("%s bound=%v: after %d runs got %v, want %v + %d", name, bound, k, got, start, k)
				}
			}
			// A write through the view is what the next run reads.
			setFloats(x, make([]float64, n))
			if bound {
				err := map[bool]*Binding{true: even, false: odd}[k%2 == 0].Run()
				if err != nil {
					t.Fatal(err)
				}
			} else if err := s.RunValues([]*Value{x}, []*Value{y}); err != nil {
				t.Fatal(err)
			}
			if got := asFloats(y); got[n-1] != 1 {
				t.Errorf("%s bound=%v: after zeroing the input got %v, want ones", name, bound, got)
			}
			if bound {
				even.Close()
				odd.Close()
			}
		}
	}
}

// TestBindingAllocs checks that a bound run allocates no Go memory.
func TestBindingAllocs(t *testing.T) {
	s := plusOne(t, pb.TensorProto_FLOAT, []int64{64, 64})
	a, b := mustValue(t, Float32, []int64{64, 64}), mustValue(t, Float32, []int64{64, 64})
	even, err := s.Bind([]*Value{a}, []*Value{b})
	if err != nil {
		t.Fatal(err)
	}
	odd, err := s.Bind([]*Value{b}, []*Value{a})
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if err := even.Run(); err != nil {
			t.Fatal(err)
		}
		if err := odd.Run(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per pair of bound runs, want 0", allocs)
	}
	if got := a.Float32s()[0]; got != 2*21 {
		t.Errorf("after 21 pairs of runs got %v, want 42", got)
	}
	// Closing the session closes its bindings.
	s.Close()
	if err := even.Run(); err == nil || !strings.Contains(err.Error(), "closed binding") {
		t.Errorf("run after the session closed: got %v", err)
	}
}

func TestValueErrors(t *testing.T) {
	s := plusOne(t, pb.TensorProto_FLOAT, []int64{2, 3})
	good := mustValue(t, Float32, []int64{2, 3})
	dead := mustValue(t, Float32, []int64{2, 3})
	dead.Destroy()
	tests := []struct {
		name    string
		in, out []*Value
		want    string
	}{
		{"count", []*Value{good}, nil, "runtime: got 1 input and 0 output values, model has 1 inputs and 1 outputs"},
		{"dtype", []*Value{mustValue(t, Float64, []int64{2, 3})}, []*Value{good}, `runtime: input "x": got a float64 value, model wants float32`},
		{"shape", []*Value{good}, []*Value{mustValue(t, Float32, []int64{3, 2})}, `runtime: output "y": got a value of shape [3 2], model wants [2 3]`},
		{"destroyed", []*Value{dead}, []*Value{good}, `runtime: input "x": value is nil or destroyed`},
		{"nil", []*Value{good}, []*Value{nil}, `runtime: output "y": value is nil or destroyed`},
	}
	for _, tt := range tests {
		err := s.RunValues(tt.in, tt.out)
		if err == nil || err.Error() != tt.want {
			t.Errorf("RunValues %s: got %v, want %s", tt.name, err, tt.want)
		}
		if _, err := s.Bind(tt.in, tt.out); err == nil || err.Error() != tt.want {
			t.Errorf("Bind %s: got %v, want %s", tt.name, err, tt.want)
		}
	}

	if _, err := NewValue(String, []int64{2}); err == nil || !strings.Contains(err.Error(), "dtype string is not supported") {
		t.Errorf("string value: got %v", err)
	}
	if _, err := NewValue(Float32, []int64{2, -1}); err == nil || !strings.Contains(err.Error(), "invalid shape") {
		t.Errorf("negative dim: got %v", err)
	}
	if err := good.Set(NewTensor([]int64{3, 2}, make([]float32, 6))); err == nil {
		t.Error("Set with another shape succeeded")
	}
	if err := good.Set(NewTensor([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})); err != nil || good.Float32s()[5] != 6 {
		t.Errorf("Set: %v, %v", err, good.Float32s())
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "viewing a float32 value as []float64") {
				t.Errorf("Float64s of a float32 value: recovered %v", r)
			}
		}()
		good.Float64s()
	}()
	s.Close()
	if err := s.RunValues([]*Value{good}, []*Value{good}); err == nil || !strings.Contains(err.Error(), "closed session") {
		t.Errorf("run on a closed session: got %v", err)
	}
}

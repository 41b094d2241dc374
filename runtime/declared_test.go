package runtime

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hyperrep/hyperrep/onnx/pb"
)

// tensorInfo declares a tensor value; dims nil declares no shape, a
// negative dim a symbolic one.
func tensorInfo(name string, dtype pb.TensorProto_DataType, dims []int64) *pb.ValueInfoProto {
	tt := &pb.TypeProto_Tensor{ElemType: proto.Int32(int32(dtype))}
	if dims != nil {
		tt.Shape = &pb.TensorShapeProto{}
		for _, d := range dims {
			dim := &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: d}}
			if d < 0 {
				dim.Value = &pb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}
			}
			tt.Shape.Dim = append(tt.Shape.Dim, dim)
		}
	}
	return &pb.ValueInfoProto{Name: proto.String(name), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{TensorType: tt}}}
}

func node(op string, in []string, out string, attrs ...*pb.AttributeProto) *pb.NodeProto {
	return &pb.NodeProto{OpType: proto.String(op), Input: in, Output: []string{out}, Name: proto.String(out), Attribute: attrs}
}

// marshalModel wraps a graph in an opset-17 model of the given IR version.
func marshalModel(t *testing.T, g *pb.GraphProto, ir int64) []byte {
	t.Helper()
	m := &pb.ModelProto{IrVersion: proto.Int64(ir), Graph: g,
		OpsetImport: []*pb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}}}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// oldIRModel lists its initializer w among the inputs, as IR 3 required:
// y = x + w, with w [2] float64.
func oldIRModel(t *testing.T) []byte {
	w := &pb.TensorProto{Name: proto.String("w"), Dims: []int64{2}, DataType: proto.Int32(int32(pb.TensorProto_DOUBLE)), DoubleData: []float64{1, 2}}
	g := &pb.GraphProto{Name: proto.String("old"),
		Node:        []*pb.NodeProto{node("Add", []string{"x", "w"}, "y")},
		Input:       []*pb.ValueInfoProto{tensorInfo("x", pb.TensorProto_DOUBLE, []int64{-1, 2}), tensorInfo("w", pb.TensorProto_DOUBLE, []int64{2})},
		Output:      []*pb.ValueInfoProto{tensorInfo("y", pb.TensorProto_DOUBLE, []int64{-1, 2})},
		Initializer: []*pb.TensorProto{w},
	}
	return marshalModel(t, g, 3)
}

func TestDescribe(t *testing.T) {
	seq := &pb.ValueInfoProto{Name: proto.String("s"), Type: &pb.TypeProto{Value: &pb.TypeProto_SequenceType{
		SequenceType: &pb.TypeProto_Sequence{ElemType: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
			TensorType: &pb.TypeProto_Tensor{ElemType: proto.Int32(1)}}}}}}}
	seqModel := marshalModel(t, &pb.GraphProto{Name: proto.String("seq"),
		Node:   []*pb.NodeProto{node("SequenceLength", []string{"s"}, "n")},
		Input:  []*pb.ValueInfoProto{seq},
		Output: []*pb.ValueInfoProto{tensorInfo("n", pb.TensorProto_INT64, []int64{})},
	}, 8)
	noInputs := marshalModel(t, &pb.GraphProto{Name: proto.String("const"),
		Node:   []*pb.NodeProto{node("Constant", nil, "c", &pb.AttributeProto{Name: proto.String("value_float"), Type: pb.AttributeProto_FLOAT.Enum(), F: proto.Float32(1)})},
		Output: []*pb.ValueInfoProto{tensorInfo("c", pb.TensorProto_FLOAT, []int64{})},
	}, 8)
	tests := []struct {
		name  string
		model []byte
		want  string // inputs, outputs, scalar and unknown flags; or the error
	}{
		{"linear_nchw.onnx", readModel(t, "linear_nchw.onnx"), `["x" float32[? 1 28 28]] ["logits" float32[? 10]] [false] [false]`},
		{"linear_flat64.onnx", readModel(t, "linear_flat64.onnx"), `["x" float32[64 784]] ["logits" float32[64 10]] [false] [false]`},
		{"shapes.onnx", readModel(t, "shapes.onnx"), `["x" float32[3 4] "s" int64[2]] ["relu" float32[] "reshaped" float32[] "sum" float32[]] [false false true] [true true false]`},
		{"undeclared_scalar.onnx", readModel(t, "undeclared_scalar.onnx"), `["x" float32[3 4]] ["sum" float32[]] [false] [true]`},
		{"identity_string.onnx", readModel(t, "identity_string.onnx"), `["x" string[?]] ["y" string[?]] [false] [false]`},
		{"initializers listed as inputs", oldIRModel(t), `["x" float64[? 2]] ["y" float64[? 2]] [false] [false]`},
		{"sequence input", seqModel, `runtime: loading model: input "s" is a sequence; only dense tensors are supported`},
		{"no inputs", noInputs, `runtime: model has 0 inputs and 1 outputs; running it needs at least one of each`},
		{"empty", nil, "runtime: empty model"},
		{"garbage", []byte("not a model"), "runtime: loading model: not an ONNX model: malformed protobuf"},
		{"no graph", []byte{0x08, 0x08}, "runtime: loading model: the model has no graph"},
	}
	for _, tt := range tests {
		sig, err := describe(tt.model)
		got := fmt.Sprint(sig.inputs, sig.outputs, sig.scalar, sig.unknown)
		if err != nil {
			got = err.Error()
		}
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestDescribeDamaged cuts a model at every byte: the damage must be an
// error or go unseen (a cut between fields), never a panic.
func TestDescribeDamaged(t *testing.T) {
	b := readModel(t, "shapes.onnx")
	var errs int
	for i := range b {
		if _, err := describe(b[:i]); err != nil {
			errs++
		}
	}
	if errs < len(b)/2 {
		t.Errorf("only %d of %d truncations were errors", errs, len(b))
	}
}

// TestOldIRModel runs a model that lists its initializer as an input: the
// session must not ask for it.
func TestOldIRModel(t *testing.T) {
	s, err := NewSession(oldIRModel(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(NewTensor([]int64{1, 2}, []float64{10, 20}))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(out[0].Data); got != "[11 22]" {
		t.Errorf("got %s, want [11 22]", got)
	}
}

// TestUndeclaredOutputs mixes outputs declared without a shape that turn
// out to be scalars with ones that turn out to be tensors, in both orders:
// each must be learnt on its own.
func TestUndeclaredOutputs(t *testing.T) {
	sum := node("ReduceSum", []string{"x"}, "sum", &pb.AttributeProto{Name: proto.String("keepdims"), Type: pb.AttributeProto_INT.Enum(), I: proto.Int64(0)})
	relu := node("Relu", []string{"x"}, "relu")
	for _, order := range [][]string{{"sum", "relu", "sum2"}, {"relu", "sum", "sum2"}} {
		g := &pb.GraphProto{Name: proto.String("mixed"),
			Node:  []*pb.NodeProto{sum, relu, node("Identity", []string{"sum"}, "sum2")},
			Input: []*pb.ValueInfoProto{tensorInfo("x", pb.TensorProto_FLOAT, []int64{3, 4})},
		}
		for _, o := range order {
			g.Output = append(g.Output, tensorInfo(o, pb.TensorProto_FLOAT, nil))
		}
		s, err := NewSession(marshalModel(t, g, 8), Options{})
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, 12)
		for i := range x {
			x[i] = float32(i) - 2
		}
		for run := range 3 {
			out, err := s.Run(NewTensor([]int64{3, 4}, x))
			if err != nil {
				t.Fatalf("%v, run %d: %v", order, run, err)
			}
			var got []string
			for _, o := range out {
				got = append(got, fmt.Sprint(o.Shape))
			}
			want := map[string]string{"sum": "[]", "sum2": "[]", "relu": "[3 4]"}
			for i, o := range order {
				if got[i] != want[o] {
					t.Errorf("%v, run %d: output %s has shape %s, want %s", order, run, o, got[i], want[o])
				}
			}
		}
		s.Close()
	}
}

// TestEvaluateUndeclaredLogits evaluates a model whose logits are declared
// without a shape, which is checked when the model runs, and one whose
// logits are declared a scalar, which is refused.
func TestEvaluateUndeclaredLogits(t *testing.T) {
	set := planted(120)
	for _, scalar := range []bool{false, true} {
		var m pb.ModelProto
		if err := proto.Unmarshal(readModel(t, "linear_nchw.onnx"), &m); err != nil {
			t.Fatal(err)
		}
		tt := m.Graph.Output[0].Type.GetTensorType()
		tt.Shape = nil
		if scalar {
			tt.Shape = &pb.TensorShapeProto{}
		}
		b, err := proto.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Evaluate(context.Background(), b, set, EvalOptions{BatchSize: 50})
		if scalar {
			want := `runtime: model output "logits" is float32[]; want float32 [N K] logits`
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("logits declared a scalar: got %v, want %s", err, want)
			}
			continue
		}
		if want := referenceScore(set, 10); err != nil || got.Accuracy != want.Accuracy || math.Abs(got.Loss-want.Loss) > 1e-5 {
			t.Errorf("undeclared logits: got %+v, %v; want %+v", got, err, want)
		}
	}
}

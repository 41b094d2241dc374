package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/onnx/pb"
	"github.com/hyperrep/hyperrep/tokenizer"
)

func init() {
	register(&command{
		name:    "inspect",
		args:    "MODEL.onnx... [--json] [--token-size N]",
		summary: "list a model's weight-bearing layers, their tensors and roles, and its token count",
		help: `
Reads each model, walks its graph in topological order and lists every
weight-bearing layer (Conv, Gemm, MatMul, BatchNormalization, ...) with its
tensors, their roles (weight, bias, scale, running_mean, running_var,
recurrence, other), shapes and dtypes, then the number of parameters and of
tokens the tokenizer makes of them.

Examples:
  hyperrep inspect fixtures/cnn-s.onnx
  hyperrep inspect model.onnx --json | jq .parameters`,
		setup: func(fs *flag.FlagSet) func([]string) error {
			asJSON := fs.Bool("json", false, "print one JSON object per model on a line")
			size := fs.Int("token-size", 0, "token width used to count tokens (0: the longest row, capped at 256)")
			return func(args []string) error {
				if len(args) == 0 {
					return usagef("no model given")
				}
				for _, path := range args {
					rep, err := inspect(path, *size)
					if err != nil {
						return err
					}
					if *asJSON {
						if err := json.NewEncoder(out).Encode(rep); err != nil {
							return err
						}
						continue
					}
					printInspect(rep)
				}
				return nil
			}
		},
	})
}

type valueReport struct {
	Name  string   `json:"name"`
	DType string   `json:"dtype"`
	Shape []string `json:"shape"`
}

type paramReport struct {
	Name     string  `json:"name"`
	Role     string  `json:"role"`
	Shape    []int64 `json:"shape"`
	DType    string  `json:"dtype"`
	Size     int64   `json:"size"`
	UnitAxis int     `json:"unit_axis"`
}

type layerReport struct {
	Name   string        `json:"name"`
	Op     string        `json:"op"`
	Params []paramReport `json:"params"`
}

type inspectReport struct {
	Model      string         `json:"model"`
	IRVersion  int64          `json:"ir_version"`
	Opsets     map[string]int `json:"opsets"`
	Producer   string         `json:"producer"`
	Inputs     []valueReport  `json:"inputs"`
	Outputs    []valueReport  `json:"outputs"`
	Layers     []layerReport  `json:"layers"`
	Parameters int64          `json:"parameters"`
	Tokens     int            `json:"tokens"`
	TokenWidth int            `json:"token_width"`
}

func inspect(path string, tokenSize int) (*inspectReport, error) {
	m, err := onnx.Read(path)
	if err != nil {
		return nil, err
	}
	layers, err := m.Layers()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	toks, err := tokenizer.Tokenize(m, tokenizer.Options{TokenSize: tokenSize})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p := m.Proto
	rep := &inspectReport{Model: path, IRVersion: p.GetIrVersion(), Opsets: map[string]int{},
		Producer: strings.TrimSpace(p.GetProducerName() + " " + p.GetProducerVersion()),
		Tokens:   toks.Len(), TokenWidth: toks.Width, Layers: []layerReport{}}
	for _, o := range p.GetOpsetImport() {
		d := o.GetDomain()
		if d == "" {
			d = "ai.onnx"
		}
		rep.Opsets[d] = int(o.GetVersion())
	}
	inits := map[string]bool{}
	for _, t := range m.Graph().GetInitializer() {
		inits[t.GetName()] = true
	}
	for _, v := range m.Graph().GetInput() {
		if !inits[v.GetName()] {
			rep.Inputs = append(rep.Inputs, valueOf(v))
		}
	}
	for _, v := range m.Graph().GetOutput() {
		rep.Outputs = append(rep.Outputs, valueOf(v))
	}
	for _, l := range layers {
		lr := layerReport{Name: l.Name, Op: l.Op}
		for _, q := range l.Params {
			lr.Params = append(lr.Params, paramReport{Name: q.Name, Role: string(q.Role), Shape: q.Dims,
				DType: dtypeLabel(q.DType), Size: q.Size(), UnitAxis: q.UnitAxis})
			rep.Parameters += q.Size()
		}
		rep.Layers = append(rep.Layers, lr)
	}
	return rep, nil
}

func valueOf(v *pb.ValueInfoProto) valueReport {
	r := valueReport{Name: v.GetName(), Shape: []string{}}
	tt := v.GetType().GetTensorType()
	if tt == nil {
		r.DType = "non-tensor"
		return r
	}
	r.DType = dtypeLabel(tt.GetElemType())
	for _, d := range tt.GetShape().GetDim() {
		switch {
		case d.GetDimParam() != "":
			r.Shape = append(r.Shape, d.GetDimParam())
		case d.GetValue() == nil:
			r.Shape = append(r.Shape, "?")
		default:
			r.Shape = append(r.Shape, fmt.Sprint(d.GetDimValue()))
		}
	}
	return r
}

func printInspect(r *inspectReport) {
	fmt.Fprintf(out, "%s: IR %d, opsets %v, producer %q\n", r.Model, r.IRVersion, r.Opsets, r.Producer)
	for _, v := range r.Inputs {
		fmt.Fprintf(out, "  input  %s %s [%s]\n", v.Name, v.DType, strings.Join(v.Shape, ","))
	}
	for _, v := range r.Outputs {
		fmt.Fprintf(out, "  output %s %s [%s]\n", v.Name, v.DType, strings.Join(v.Shape, ","))
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tlayer\top\ttensor\trole\tshape\tdtype\tvalues")
	for i, l := range r.Layers {
		for j, p := range l.Params {
			idx, name, op := fmt.Sprint(i), l.Name, l.Op
			if j > 0 {
				idx, name, op = "", "", ""
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%v\t%s\t%d\n", idx, name, op, p.Name, p.Role, p.Shape, p.DType, p.Size)
		}
	}
	tw.Flush()
	fmt.Fprintf(out, "  %d layers, %s parameters, %d tokens of width %d\n",
		len(r.Layers), thousands(r.Parameters), r.Tokens, r.TokenWidth)
}

// dtypeLabel names a dtype the way frameworks do: float32, int64, bfloat16.
func dtypeLabel(dt int32) string {
	switch dt {
	case onnx.Float:
		return "float32"
	case onnx.Double:
		return "float64"
	}
	return strings.ToLower(onnx.DTypeName(dt))
}

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

package main

import (
	"encoding/json"
	"flag"
	"fmt"

	"github.com/hyperrep/hyperrep/convert"
	"github.com/hyperrep/hyperrep/onnx"
	"github.com/hyperrep/hyperrep/tokenizer"
)

func init() {
	register(&command{
		name:    "tokenize",
		args:    "MODEL.onnx -o TOKENS.safetensors [--token-size N]",
		summary: "turn a model's weights into tokens (a safetensors file)",
		help: `
Each weight tensor becomes rows, one per output unit (a Conv's output channel,
a Gemm's or MatMul's output column); the unit's bias and the parameters of a
BatchNormalization or LayerNormalization that follows are appended to its row.
Rows are cut into tokens of a fixed width, zero-padded, with a mask saying
which values are weights and a position per token (global index, layer, row).

The file holds "tokens" [T, W] float32 (float64 when the model has float64
weights), "mask" [T, W] uint8, "positions" [T, 3] int32, and the layout in its
metadata, so "hyperrep detokenize" needs only it and the model as template.

Examples:
  hyperrep tokenize fixtures/cnn-s.onnx -o cnn-s.safetensors
  hyperrep tokenize resnet.onnx -o r.safetensors --token-size 64`,
		setup: func(fs *flag.FlagSet) func([]string) error {
			o := fs.String("o", "", "output token file (required)")
			size := fs.Int("token-size", 0, "token width W (0: the longest row, capped at 256)")
			asJSON := fs.Bool("json", false, "print a JSON summary instead of a sentence")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("want one model, got %d arguments", len(args))
				}
				if *o == "" {
					return usagef("no output file: use -o TOKENS.safetensors")
				}
				m, err := onnx.Read(args[0])
				if err != nil {
					return err
				}
				t, err := tokenizer.Tokenize(m, tokenizer.Options{TokenSize: *size})
				if err != nil {
					return err
				}
				if err := convert.WriteTokens(*o, t); err != nil {
					return err
				}
				var values int
				for _, v := range t.Mask {
					values += int(v)
				}
				if *asJSON {
					return json.NewEncoder(out).Encode(map[string]any{"model": args[0], "output": *o,
						"tokens": t.Len(), "width": t.Width, "values": values, "layers": len(t.Layout.Layers)})
				}
				fmt.Fprintf(out, "%s: %d tokens of width %d (%s weights from %d layers) -> %s\n",
					args[0], t.Len(), t.Width, thousands(int64(values)), len(t.Layout.Layers), *o)
				return nil
			}
		},
	})
	register(&command{
		name:    "detokenize",
		args:    "TOKENS.safetensors --template MODEL.onnx -o OUT.onnx",
		summary: "rebuild a model from tokens, taking the architecture from a template",
		help: `
Writes the template with every weight replaced by the value in the tokens, in
the template's own dtype and encoding; everything else (graph, non-float
initializers, metadata) is the template's. Tokens made from the template give
back the template bit for bit. Values under mask 0 are ignored. Tokens that do
not fit the template (other layers, shapes, dtypes) are refused.

Example:
  hyperrep detokenize cnn-s.safetensors --template fixtures/cnn-s.onnx -o rebuilt.onnx`,
		setup: func(fs *flag.FlagSet) func([]string) error {
			tmpl := fs.String("template", "", "model whose architecture the tokens fill (required)")
			o := fs.String("o", "", "output model (required)")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("want one token file, got %d arguments", len(args))
				}
				if *tmpl == "" || *o == "" {
					return usagef("need --template MODEL.onnx and -o OUT.onnx")
				}
				t, err := convert.ReadTokens(args[0])
				if err != nil {
					return err
				}
				m, err := onnx.Read(*tmpl)
				if err != nil {
					return err
				}
				rebuilt, err := tokenizer.Detokenize(t, m)
				if err != nil {
					return err
				}
				if err := rebuilt.Write(*o); err != nil {
					return err
				}
				fmt.Fprintf(out, "%s + %s -> %s\n", args[0], *tmpl, *o)
				return nil
			}
		},
	})
	register(&command{
		name:    "permute",
		args:    "MODEL.onnx --seed S -o OUT.onnx [--json]",
		summary: "permute hidden units at random without changing what the model computes",
		help: `
Reorders the output units of each Conv, Gemm and MatMul layer (with its bias
and the normalisation that follows) and the matching inputs of the next layer:
the weights change, the function does not. Layers whose units meet a residual
connection, reach a graph output, or pass through an op not known to act unit
by unit are left as they are; the report says which and why. The same seed
gives the same permutation.

Example:
  hyperrep permute fixtures/cnn-s.onnx --seed 7 -o permuted.onnx`,
		setup: func(fs *flag.FlagSet) func([]string) error {
			seed := fs.Int64("seed", 0, "seed of the permutation")
			o := fs.String("o", "", "output model (required)")
			asJSON := fs.Bool("json", false, "print the per-layer report as JSON")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("want one model, got %d arguments", len(args))
				}
				if *o == "" {
					return usagef("no output file: use -o OUT.onnx")
				}
				m, err := onnx.Read(args[0])
				if err != nil {
					return err
				}
				pm, report, err := tokenizer.PermuteLayers(m, *seed)
				if err != nil {
					return err
				}
				if err := pm.Write(*o); err != nil {
					return err
				}
				return printPermute(args[0], *o, report, *asJSON)
			}
		},
	})
}

func printPermute(in, outPath string, report []tokenizer.PermuteResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(out).Encode(map[string]any{"model": in, "output": outPath, "layers": report})
	}
	n := 0
	for _, r := range report {
		if r.Permuted {
			n++
		}
	}
	fmt.Fprintf(out, "%s: permuted %d of %d layers -> %s\n", in, n, len(report), outPath)
	for _, r := range report {
		if r.Permuted {
			fmt.Fprintf(out, "  %-28s %-14s %d units permuted\n", r.Layer, r.Op, r.Units)
		} else {
			fmt.Fprintf(out, "  %-28s %-14s kept: %s\n", r.Layer, r.Op, r.Reason)
		}
	}
	return nil
}

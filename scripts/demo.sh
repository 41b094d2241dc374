#!/usr/bin/env bash
# make demo: the built-in default job on the fixture models. For each model:
# inspect it, tokenize its weights and rebuild it from the tokens (checking the
# rebuilt file is byte-for-byte the same model), permute its hidden units, and
# evaluate original, rebuilt and permuted models on the MNIST test set.
set -euo pipefail
bin=${1:-bin/hyperrep}
out=${2:-out/demo}
mkdir -p "$out"
models=(fixtures/cnn-s.onnx fixtures/cnn-bn.onnx fixtures/mlp.onnx)

for m in "${models[@]}"; do
  name=$(basename "$m" .onnx)
  echo "== $name"
  "$bin" inspect "$m"
  "$bin" tokenize "$m" -o "$out/$name.safetensors"
  "$bin" detokenize "$out/$name.safetensors" --template "$m" -o "$out/$name.rebuilt.onnx"
  if cmp -s "$m" "$out/$name.rebuilt.onnx"; then
    echo "rebuilt from its tokens: byte-identical to $m"
  else
    echo "rebuilt from its tokens: DIFFERS from $m" >&2; exit 1
  fi
  "$bin" permute "$m" --seed 1 -o "$out/$name.permuted.onnx"
  echo
done

echo "== accuracy on the MNIST test set (original, rebuilt from tokens, permuted)"
files=()
for m in "${models[@]}"; do
  name=$(basename "$m" .onnx)
  files+=("$m" "$out/$name.rebuilt.onnx" "$out/$name.permuted.onnx")
done
"$bin" eval "${files[@]}" --dataset mnist
echo
echo "demo outputs are in $out/"

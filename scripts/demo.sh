#!/usr/bin/env bash
# make demo: the built-in default job. For each fixture model: inspect it,
# tokenize its weights and rebuild it from the tokens (checking the rebuilt
# file is byte-for-byte the same model), permute its hidden units, and
# evaluate original, rebuilt and permuted models on the MNIST test set. Then
# the pipeline: train a small model zoo in ONNX Runtime, fit a
# hyper-representation of it, probe the held-out models' properties, sample
# new models from it, and fine-tune them next to random initialisations;
# ends in out/demo/REPORT.md. A rerun resumes what is done.
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
echo "== a small model zoo: cnn-s, 4 activations x 4 seeds, 3 epochs of 5,000 MNIST images"
zoo="$out/zoo-cnn-s-16"
"$bin" zoo train --arch cnn-s --dataset mnist --activation tanh,relu,sigmoid,gelu --seeds 4 --epochs 3 \
  --train-samples 5000 -o "$zoo"
"$bin" zoo ls "$zoo"

echo
echo "== a hyper-representation of that zoo: a small transformer autoencoder over its weight tokens"
echo "   (a quick fit of a tiny zoo; 'hyperrep fit' with its defaults on 50+ models is the real thing)"
"$bin" fit --zoo "$zoo" -o "$out/hr" --epochs 200 --d 64 --layers 2 --heads 2 --latent 16
"$bin" embed --hr "$out/hr" --zoo "$zoo" -o "$out/embeddings.csv"

echo
echo "== predicting the held-out models' properties from their weights: hyper-representation vs s(W) vs W"
"$bin" probe --hr "$out/hr" --zoo "$zoo" -o "$out/report"
echo
echo "== new models drawn from the hyper-representation: KDE on the embeddings of the best 30 % of checkpoints"
"$bin" sample --hr "$out/hr" --zoo "$zoo" -n 8 --force -o "$out/samples"
"$bin" eval "$out"/samples/*.onnx --dataset mnist

echo
echo "== fine-tuning samples next to the zoo's random initialisations (2 epochs of 5,000 images)"
"$bin" bench-generation --hr "$out/hr" --zoo "$zoo" -n 8 --epochs 2 -o "$out/generation"

{
  echo "# hyperrep demo"
  echo
  echo "A zoo of 16 cnn-s models (4 activations x 4 seeds, 3 epochs of 5,000 MNIST images), a"
  echo "hyper-representation fitted on it, probes of its held-out models, and models sampled from it."
  echo
  echo "## Predicting properties of held-out models from their weights"
  echo
  cat "$out/report/report.md"
  echo
  echo "![predicted vs true test accuracy](report/predicted_test_acc.png)"
  echo "![PCA of the embeddings](report/pca.png)"
  echo
  echo "## Sampled models, fine-tuned"
  echo
  cat "$out/generation/report.md"
  echo
  echo "![test accuracy per epoch of fine-tuning](generation/generation.png)"
} > "$out/REPORT.md.tmp" && mv "$out/REPORT.md.tmp" "$out/REPORT.md"
echo
echo "demo outputs are in $out/; the report is $out/REPORT.md"

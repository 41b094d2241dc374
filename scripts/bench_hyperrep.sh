#!/bin/sh
# Hyper-representation training speed: one step of the autoencoder (forward,
# backward, AdamW) in ONNX Runtime, BenchmarkAutoencoderStep, against the
# PyTorch step of ../shared/bench/torch_hyperrep_reference.py, in one run on
# this machine (the machines are shared and noisy; only ratios within one run
# mean much). Both: 32 models x 2 views, 64 tokens of width 64, d=128, 4 heads,
# 4 + 4 blocks, latent 32, masked MSE + NT-Xent, AdamW, on a fixed random
# batch. hyperrep runs with ORT on 1 and on 2 threads; PyTorch on 1 thread,
# its fastest setting here. The bar: hyperrep's time at most 1x PyTorch's.
#
# Usage: scripts/bench_hyperrep.sh   (from anywhere; GO, PYTHON and SHARED
# override the go command, the Python with torch, and ../shared)
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}
SHARED=${SHARED:-../shared}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3

bench=$("$GO" test ./autoencoder -run '^$' -bench '^BenchmarkAutoencoderStep$' -benchtime 5x)
one=$(echo "$bench" | sed -n 's|^BenchmarkAutoencoderStep/threads=1.* \([0-9.]*\) ms/step$|\1|p')
two=$(echo "$bench" | sed -n 's|^BenchmarkAutoencoderStep/threads=2.* \([0-9.]*\) ms/step$|\1|p')
echo "hyperrep autoencoder step, 32 models x 2 views, T=64 W=64 d=128 L=4+4: $one ms/step (1 thread), $two ms/step (2 threads)"
REF="$SHARED/bench/torch_hyperrep_reference.py"
if [ -f "$REF" ] && "$PY" -c 'import torch' 2>/dev/null; then
	line=$("$PY" "$REF" --threads 1)
	echo "$line"
	theirs=$(echo "$line" | sed -n 's|.*: \([0-9.]*\) ms/step.*|\1|p')
	echo "$one $two $theirs" | awk '{ printf "hyperrep / PyTorch step time: %.2fx (1 thread), %.2fx (2 threads); bar <= 1x, aim 0.5x\n", $1 / $3, $2 / $3 }'
else
	echo "PyTorch reference skipped: needs $REF and python3-torch"
fi

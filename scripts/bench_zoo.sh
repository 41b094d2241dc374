#!/bin/sh
# Zoo training throughput: "hyperrep zoo train" against the PyTorch per-model
# loop of ../shared/bench/torch_zoo_reference.py, in one run on this machine
# (the machines are shared and noisy; only ratios within one run mean much).
# Both train the Model Zoos cnn-s on 10,000 MNIST-sized samples per epoch,
# batch 32, Adam, on every core, and count from process start (hyperrep's
# MNIST decoding included). hyperrep also writes a checkpoint per model and
# epoch and scores every model on test images before training and after
# each epoch, as a zoo needs; the PyTorch loop does neither. So hyperrep runs
# twice: scoring on the 10,000 test images (the default), and on 1,000.
#
# Usage: scripts/bench_zoo.sh [BIN]   (BIN defaults to bin/hyperrep)
set -eu
BIN=${1:-bin/hyperrep}
SHARED=${SHARED:-$(dirname "$0")/../../shared}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# zoo TEST_SAMPLES prints hyperrep's model-epochs/s.
zoo() {
	rm -rf "$OUT/zoo"
	"$BIN" zoo train --arch cnn-s --dataset mnist --optimizer adam --seeds 16 --epochs 2 \
		--train-samples 10000 --test-samples "$1" --batch 32 -o "$OUT/zoo" 2>/dev/null |
		sed -n 's|.* \([0-9.]*\) model-epochs/s.*|\1|p'
}

full=$(zoo 0)
echo "hyperrep zoo train, cnn-s, 16 models x 2 epochs of 10000 samples, batch 32, Adam, test on 10000: $full model-epochs/s"
REF="$SHARED/bench/torch_zoo_reference.py"
theirs=
if [ -f "$REF" ] && "$PY" -c 'import torch' 2>/dev/null; then
	line=$("$PY" "$REF" --procs 2 --samples 10000 --batch 32)
	echo "$line"
	theirs=$(echo "$line" | sed -n 's|.* \([0-9.]*\) model-epochs/s$|\1|p')
else
	echo "PyTorch reference skipped: needs $REF and python3-torch"
fi
small=$(zoo 1000)
echo "hyperrep zoo train, the same, test on 1000: $small model-epochs/s"
if [ -n "$theirs" ]; then
	echo "$full $small $theirs" | awk '{ printf "zoo training speed-up over the PyTorch loop: %.1fx (test on 10000), %.1fx (test on 1000)\n", $1 / $3, $2 / $3 }'
fi

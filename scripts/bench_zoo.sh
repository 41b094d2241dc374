#!/bin/sh
# Zoo training throughput: "hyperrep zoo train" against the PyTorch per-model
# loop of ../shared/bench/torch_zoo_reference.py, on this machine, in
# interleaved rounds (the machines are shared and noisy), and the median of
# each figure over the rounds.
# Both train the Model Zoos cnn-s on 10,000 MNIST-sized samples per epoch,
# batch 32, Adam, on every core, and count from process start (hyperrep's
# MNIST decoding, PyTorch's import). Both do the same 32 model-epochs (16
# models x 2 epochs; PyTorch: 2 processes x 8 models x 2 epochs), since the
# start-up weighs less on a longer run: the PyTorch loop's default 8
# model-epochs ran at 2.1-2.7 model-epochs/s, 32 at 2.6-3.3. hyperrep also
# writes a checkpoint per model and epoch and scores every model on test
# images before training and after each epoch, as a zoo needs; the PyTorch
# loop does neither. So hyperrep runs twice a round: scoring on the 10,000
# test images (the default), and on 1,000.
#
# The PyTorch loop's own speed varies run to run on these shared machines
# (2.2 to 3.2 model-epochs/s with 2 processes, 1.0 to 1.5 with one, in
# back-to-back runs), far more than hyperrep's, hence 5 rounds.
#
# Usage: scripts/bench_zoo.sh [BIN]   (BIN defaults to bin/hyperrep;
# ROUNDS=N sets the rounds, 5 by default)
set -eu
BIN=${1:-bin/hyperrep}
ROUNDS=${ROUNDS:-5}
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

# median prints the median of the numbers on its standard input.
median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# spread prints the range of the numbers on its standard input.
spread() {
	sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'
}

REF="$SHARED/bench/torch_zoo_reference.py"
torch=
if [ -f "$REF" ] && "$PY" -c 'import torch' 2>/dev/null; then
	torch=yes
fi
: >"$OUT/full"
: >"$OUT/small"
: >"$OUT/torch"
round=1
while [ "$round" -le "$ROUNDS" ]; do
	full=$(zoo 0)
	echo "$full" >>"$OUT/full"
	line="PyTorch reference skipped: needs $REF and python3-torch"
	if [ -n "$torch" ]; then
		line=$("$PY" "$REF" --procs 2 --models 8 --epochs 2 --samples 10000 --batch 32)
		echo "$line" | sed -n 's|.* \([0-9.]*\) model-epochs/s$|\1|p' >>"$OUT/torch"
	fi
	small=$(zoo 1000)
	echo "$small" >>"$OUT/small"
	echo "round $round of $ROUNDS: hyperrep $full (test on 10000), $small (test on 1000); $line"
	round=$((round + 1))
done
full=$(median <"$OUT/full")
small=$(median <"$OUT/small")
echo "hyperrep zoo train, cnn-s, 16 models x 2 epochs of 10000 samples, batch 32, Adam, test on 10000: $full model-epochs/s (median of $ROUNDS, range $(spread <"$OUT/full"))"
echo "hyperrep zoo train, the same, test on 1000: $small model-epochs/s (median of $ROUNDS, range $(spread <"$OUT/small"))"
if [ -n "$torch" ]; then
	theirs=$(median <"$OUT/torch")
	echo "torch per-model loop, 32 model-epochs of 10000 samples, batch 32, 2 procs: $theirs model-epochs/s (median of $ROUNDS, range $(spread <"$OUT/torch"))"
	echo "$full $small $theirs" | awk '{ printf "zoo training speed-up over the PyTorch loop: %.1fx (test on 10000), %.1fx (test on 1000)\n", $1 / $3, $2 / $3 }'
fi

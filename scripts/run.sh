#!/usr/bin/env bash
# Builds herm and runs the server with the embedded defaults: SQLite in ./herm-data, listening
# on 127.0.0.1:8080.
#
# With no arguments this is the quickstart: it also sets up a model and a demo deployment and
# says how to talk to it. The model is, in this order:
#   - Anthropic, when ANTHROPIC_API_KEY is set (HERM_QUICKSTART_MODEL, default claude-sonnet-4-5);
#   - OpenAI, when OPENAI_API_KEY is set (default gpt-4o-mini);
#   - any OpenAI-compatible server you run, when HERM_QUICKSTART_BASE_URL is set (for example
#     http://127.0.0.1:11434/v1 for Ollama; HERM_QUICKSTART_MODEL names its model);
#   - otherwise a real local model with no key: llama.cpp's server with Gemma 3 270M
#     (scripts/local-model.sh: built once under ~/.cache/herm, started in seconds after).
# The admin key is kept in herm-data/admin.key (mode 0600); API keys are read from the
# environment at call time, never written anywhere.
#
# With arguments it only runs the server: scripts/run.sh --addr 0.0.0.0:8080 --config herm.toml
set -euo pipefail
cd "$(dirname "$0")/.."
# The sandbox: a Docker engine and the default image (skipped when present). Without them,
# herm still runs; deployments then have no shell or file tools.
if scripts/docker.sh && scripts/build-image.sh; then :; else
  echo "warning: no Docker engine; deployments will run without a sandbox" >&2
fi
# HERM_BIN: a herm binary already built (the test script passes its debug build).
if [ -n "${HERM_BIN:-}" ]; then
  herm="$HERM_BIN"
else
  cargo build --release --locked -p herm
  herm="${CARGO_TARGET_DIR:-target}/release/herm"
fi
if [ "$#" -gt 0 ]; then
  exec "$herm" serve "$@"
fi

data="${HERM_DATA_DIR:-herm-data}"
features=""
local_model=""
mkdir -p "$data"
chmod 700 "$data"
if [ ! -s "$data/admin.key" ]; then
  (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$data/admin.key")
fi
config="$data/quickstart.toml"
if [ -n "${ANTHROPIC_API_KEY:-}" ]; then
  model="anthropic/${HERM_QUICKSTART_MODEL:-claude-sonnet-4-5}"
  provider='[providers.anthropic]
kind = "anthropic"
api_key_env = "ANTHROPIC_API_KEY"'
elif [ -n "${OPENAI_API_KEY:-}" ]; then
  model="openai/${HERM_QUICKSTART_MODEL:-gpt-4o-mini}"
  provider='[providers.openai]
kind = "openai"
api_key_env = "OPENAI_API_KEY"'
elif [ -n "${HERM_QUICKSTART_BASE_URL:-}" ]; then
  model="mine/${HERM_QUICKSTART_MODEL:?set HERM_QUICKSTART_MODEL to the model your server serves}"
  provider="[providers.mine]
kind = \"openai-compatible\"
base_url = \"$HERM_QUICKSTART_BASE_URL\""
else
  url=$(scripts/local-model.sh start "${HERM_QUICKSTART_MODEL_PORT:-8081}")
  local_model=1
  model="local/gemma-3-270m"
  # A 270M model answers; it does not pick tools well: the demo offers it none of herm's own.
  features='features: {memory: false, automations: false}'
  # Small window; the server reports no usage, so herm estimates it (marked `estimated`).
  provider="[providers.local]
kind = \"openai-compatible\"
base_url = \"$url\"

[providers.local.models.gemma-3-270m]
context_window = 8192
max_output_tokens = 256"
fi
cat > "$config" <<TOML
# Written by scripts/run.sh (the quickstart); edit freely or pass your own --config.
[storage]
data_dir = "$data"

[engine]
default_model = "$model"

$provider
TOML

# The file exists before herm starts, so reading it never races the redirection.
: > "$data/serve.out"
HERM_ADMIN_KEY="$(cat "$data/admin.key")" "$herm" serve --config "$config" >> "$data/serve.out" &
pid=$!
# Stopping the quickstart stops herm and the local model server it started.
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; [ -z "$local_model" ] || scripts/local-model.sh stop' EXIT INT TERM
url=""
for _ in $(seq 1 300); do
  url=$(sed -n 's/^herm listening on //p' "$data/serve.out" | head -n1)
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "herm did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "herm did not start in 30 s" >&2; exit 1; }
export HERM_URL="$url"
key=(--api-key-file "$data/admin.key")
dep=""
if [ -s "$data/demo-deployment" ]; then
  dep=$(cat "$data/demo-deployment")
  curl -sf -H "Authorization: Bearer $(cat "$data/admin.key")" "$url/v1/deployments/$dep" >/dev/null || dep=""
fi
if [ -z "$dep" ]; then
  demo="$data/demo-deployment.yaml"
  cat > "$demo" <<YAML
customer_id: demo
name: demo agent
system_prompt: |
  You are a helpful assistant running on herm. Answer briefly.
model: $model
$features
YAML
  created=$("$herm" deploy -f "$demo" "${key[@]}") || { echo "creating the demo deployment failed" >&2; exit 1; }
  dep=$(echo "$created" | sed -n 's/.*"deployment_id": "\(dep_[A-Za-z0-9]*\)".*/\1/p' | head -n1)
  [ -n "$dep" ] || { echo "creating the demo deployment answered no id: $created" >&2; exit 1; }
  echo "$dep" > "$data/demo-deployment"
fi
# Ready when its sandbox is (a few seconds with Docker; at once without a sandbox).
for _ in $(seq 1 600); do
  # A failed request (herm busy starting the sandbox) is asked again, not fatal.
  state=$(curl -sf -H "Authorization: Bearer $(cat "$data/admin.key")" "$url/v1/deployments/$dep" \
    | sed -n 's/.*"status":"\([a-z_]*\)".*/\1/p' | head -n1) || state=""
  kill -0 "$pid" 2>/dev/null || { echo "herm stopped; see $data/serve.out and the lines above" >&2; exit 1; }
  [ "$state" = ready ] && break
  [ "$state" = error ] && { echo "the demo deployment failed to provision" >&2; break; }
  sleep 0.2
done
cat <<TEXT

herm is running at $url with $model.
  talk to the demo agent:  $herm chat $dep ${key[*]}
  the console:             $url/console  (key: cat $data/admin.key)
  what it did:             $herm usage --deployment $dep ${key[*]}
Stop with Ctrl-C.
TEXT
wait $pid

#!/usr/bin/env bash
# Exercises the quickstart end to end on a real local model: scripts/run.sh with no API key
# (so it sets up llama.cpp's server with Gemma 3 270M, once, under ~/.cache/herm), then one
# message through `herm chat` to the demo deployment, which must come back as a completed
# run with a non-empty answer and estimated usage. Runs in a temporary data directory on a
# free port; stops everything it started.
# Usage: scripts/quickstart-check.sh   (HERM_BIN=target/debug/herm to use a binary already built)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
unset ANTHROPIC_API_KEY OPENAI_API_KEY HERM_QUICKSTART_BASE_URL
export HERM_DATA_DIR="$work/data" HERM_SERVER__ADDR=127.0.0.1:0 HERM_QUICKSTART_MODEL_PORT=18081
scripts/run.sh > "$work/run.out" 2> "$work/run.err" &
runner=$!
trap 'kill $runner 2>/dev/null || true; wait $runner 2>/dev/null || true; scripts/local-model.sh stop; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
for _ in $(seq 1 6000); do
  grep -q "^herm is running at" "$work/run.out" 2>/dev/null && break
  kill -0 $runner 2>/dev/null || { echo "the quickstart failed:"; tail -n 40 "$work/run.err"; tail -n 20 "$work/run.out"; tail -n 20 "$HERM_DATA_DIR/serve.out" 2>/dev/null; exit 1; }
  sleep 0.5
done
grep -q "^herm is running at" "$work/run.out" || { echo "the quickstart did not come up"; tail -n 40 "$work/run.err"; exit 1; }
url=$(sed -n 's/^herm is running at \(http[^ ]*\) with.*/\1/p' "$work/run.out")
dep=$(cat "$HERM_DATA_DIR/demo-deployment")
herm="${HERM_BIN:-${CARGO_TARGET_DIR:-target}/release/herm}"
SECONDS=0
answer=$(echo "Say hello in three words." | HERM_URL="$url" "$herm" chat "$dep" --api-key-file "$HERM_DATA_DIR/admin.key")
took=$SECONDS
echo "answer: $answer"
key=$(cat "$HERM_DATA_DIR/admin.key")
thread=$(curl -sf -H "Authorization: Bearer $key" "$url/v1/deployments/$dep" | python3 -c 'import json,sys; print(json.load(sys.stdin)["thread_id"])')
curl -sf -H "Authorization: Bearer $key" "$url/v1/threads/$thread/events?limit=100" > "$work/events.json"
python3 - "$work/events.json" <<'PY'
import json, sys
events = json.load(open(sys.argv[1]))["data"]
status = [e for e in events if e["type"] == "run_status"][-1]
calls = [e for e in events if e["type"] == "model_call"]
said = [e for e in events if e["type"] == "agent_message"]
assert status["status"] == "completed", status
assert calls and calls[-1]["estimated"] is True and calls[-1]["output_tokens"] > 0, calls
assert said and said[-1]["content"].strip(), said
print(f"ok: run completed; {calls[-1]['input_tokens']} input and {calls[-1]['output_tokens']} output tokens (estimated) in {calls[-1]['duration_ms']} ms")
PY
echo "one message answered by the local model in about ${took} s (chat round trip)"

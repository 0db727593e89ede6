#!/usr/bin/env bash
# Holds herm to its own OpenAPI document with a third-party fuzzer: Schemathesis (pinned,
# installed once into .tools/schemathesis) runs every phase (examples, coverage, fuzzing,
# stateful, following the document's links) against a live herm built by `cargo test`.
# Any server error, undocumented status code, response that breaks its schema, wrong content
# type or header, schema-violating request accepted, auth ignored, or resource that vanishes
# or survives its deletion fails the run.
#
# `positive_data_acceptance` (every schema-valid request must succeed) is left out: some
# rules cannot be said in a schema (a secret reference must name a stored secret, an inline
# skill needs `content`, a provider must be configured), and herm refuses those with a
# documented 4xx by design.
#
# The two SSE streams (`…/events/stream`, `GET /v1/deployments/{id}/events`) are left out:
# they never end by design, so a fuzzer cannot judge a response; the black-box SSE tests
# cover them.
# Usage: scripts/api-contract.sh [path to the herm binary | --install]   (default: target/debug/herm)
set -euo pipefail
cd "$(dirname "$0")/.."
SCHEMATHESIS_VERSION=4.32.5
venv=.tools/schemathesis
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$venv"
  # The package index can be out of reach for a while (name resolution failing): try again
  # for a few minutes before giving up.
  for attempt in 1 2 3 4 5 6; do
    "$venv/bin/pip" install --quiet --retries 10 "schemathesis==$SCHEMATHESIS_VERSION" && break
    [ "$attempt" -lt 6 ] || exit 1
    echo "installing Schemathesis failed (attempt $attempt); trying again in 30 s" >&2
    sleep 30
  done
fi
# `--install` only installs (scripts/test.sh does it before building, while nothing else runs).
[ "${1:-}" != "--install" ] || exit 0
bin="${1:-${CARGO_TARGET_DIR:-target}/debug/herm}"
work=$(mktemp -d)
key="contract-admin-key-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat > "$work/herm.toml" <<'TOML'
[sandbox]
backend = "none"
TOML
HERM_ADMIN_KEY="$key" HERM_LOG=warn "$bin" serve --addr 127.0.0.1:0 --data-dir "$work/data" --config "$work/herm.toml" \
  > "$work/out" 2> "$work/log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
url=""
for _ in $(seq 1 300); do
  url=$(sed -n 's/^herm listening on //p' "$work/out" | head -n1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "herm did not start; its log:"; cat "$work/log"; exit 1; }
status=0
"$venv/bin/st" run "$url/v1/openapi.json" \
  --header "Authorization: Bearer $key" \
  --phases examples,coverage,fuzzing,stateful \
  --checks all \
  --exclude-checks positive_data_acceptance \
  --exclude-path-regex '/events/stream$|^/v1/deployments/\{deployment_id\}/events$' \
  --max-examples "${CONTRACT_MAX_EXAMPLES:-25}" \
  --workers 1 \
  --request-timeout 10 \
  --seed "${CONTRACT_SEED:-20261201}" \
  --generation-database none \
  --no-color || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- herm log (warnings and errors) ---"
  tail -n 50 "$work/log"
fi
exit $status

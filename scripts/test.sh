#!/usr/bin/env bash
# Runs every check and test of the project: formatting, lints, unit tests, the store
# conformance suite and the black-box tests against the real `herm` binary, with a real
# Docker engine for the sandbox tests (installed and started here if needed) and real MCP
# servers for the integration tests (installed here if needed).
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The only toolchain herm needs is Rust (SQLite is compiled in). rustfmt and clippy ship
# with it; add them if this toolchain lacks them.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

# The sandbox tests run against a real Docker engine and herm's locally built image.
scripts/docker.sh
scripts/build-image.sh
# The MCP tests and the canary suite talk to real MCP servers (npm reference servers and
# the Python SDK), installed once into .mcp-peers.
scripts/mcp-peers.sh >/dev/null
# The console's tests drive a real headless browser.
scripts/browser.sh
# The PostgreSQL store's tests run against a real server (a fresh `herm_test` database).
HERM_TEST_DATABASE_URL=$(scripts/postgres.sh --test)
export HERM_TEST_DATABASE_URL HERM_REQUIRE_POSTGRES=1
# The API contract's fuzzer, installed now with the other tools rather than after the build.
scripts/api-contract.sh --install

export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The in-sandbox exec helper is compiled by build.rs with rustc alone, outside cargo's
# targets: hold it to the same lints.
mkdir -p "${CARGO_TARGET_DIR:-target}"
# It is herm-sandbox's code (the one crate that starts processes): its clippy.toml applies.
CLIPPY_CONF_DIR=crates/herm-sandbox clippy-driver --edition 2024 -C panic=abort -D warnings -D clippy::all -D clippy::unwrap_used -D clippy::expect_used \
  crates/herm-sandbox/helper/main.rs -o "${CARGO_TARGET_DIR:-target}/herm-helper-lint"
status=0
results=$(mktemp)
set +e
cargo test --workspace --locked 2>&1 | tee "$results"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
set -e
# The API contract: a third-party fuzzer (Schemathesis) against a live herm built above;
# counted as one test.
contract=passed
scripts/api-contract.sh || { status=1; contract=failed; }
# The quickstart on a real local model (llama.cpp's server with Gemma 3 270M, set up once
# under ~/.cache/herm: the first time builds llama.cpp, several minutes), through
# scripts/run.sh with no API key, up to one answered message; counted as one test.
quickstart=passed
HERM_BIN="${CARGO_TARGET_DIR:-target}/debug/herm" scripts/quickstart-check.sh || { status=1; quickstart=failed; }
# Sandboxes that tests left behind (a failed test does not clean up after itself, and a
# herm killed with SIGKILL leaves its pool of ready containers).
docker ps -aq --filter label=herm.managed | xargs -r docker rm -f >/dev/null 2>&1 || true
docker volume ls -q --filter label=herm.managed | xargs -r docker volume rm >/dev/null 2>&1 || true
# Network namespaces of the namespaces backend's test deployments (holders lead their groups).
for pid in $(pgrep -f 'herm-netns:' || true); do kill -KILL -- "-$pid" 2>/dev/null || true; done
pkill -KILL -f '^slirp4netns --configure --mtu=65520 --disable-host-loopback' 2>/dev/null || true
# One closing line for the whole run: cargo's tests and the contract.
passed=$(awk '/^test result:/ {p += $4} END {print p + 0}' "$results")
failed=$(awk '/^test result:/ {f += $6} END {print f + 0}' "$results")
if [ "$contract" = passed ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
if [ "$quickstart" = passed ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
rm -f "$results"
[ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "$passed passed, $failed failed"
exit $status

#!/usr/bin/env bash
# Builds herm and runs the server with the embedded defaults: SQLite in ./herm-data, listening
# on 127.0.0.1:8080. On first start it prints an admin API key once.
# Usage: scripts/run.sh [extra `herm serve` flags, e.g. --addr 0.0.0.0:8080 --config herm.toml]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p herm
exec ./target/release/herm serve "$@"

#!/usr/bin/env bash
# Builds herm and runs the server with the embedded defaults: SQLite in ./herm-data, listening
# on 127.0.0.1:8080. On first start it prints an admin API key once.
# Usage: scripts/run.sh [extra `herm serve` flags, e.g. --addr 0.0.0.0:8080 --config herm.toml]
set -euo pipefail
cd "$(dirname "$0")/.."
# The sandbox: a Docker engine and the default image (skipped when present). Without them,
# herm still runs; deployments then have no shell or file tools.
if scripts/docker.sh && scripts/build-image.sh; then :; else
  echo "warning: no Docker engine; deployments will run without a sandbox" >&2
fi
cargo build --release --locked -p herm
exec "${CARGO_TARGET_DIR:-target}/release/herm" serve "$@"

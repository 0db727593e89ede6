#!/usr/bin/env bash
# Runs every check and test of the project: formatting, lints, unit tests, the store
# conformance suite and the black-box tests against the real `herm` binary.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The only toolchain herm needs is Rust (SQLite is compiled in). rustfmt and clippy ship
# with it; add them if this toolchain lacks them.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

#!/usr/bin/env bash
# The scale-out benchmark: herm's step benchmark on PostgreSQL (started here by
# scripts/postgres.sh) with one node and with three nodes sharing the database, each against
# PostgreSQL's own single-row commit measured in the same run. The nodes are engines in one
# process (each with its own pool, node id and workers): on one machine this measures the
# database's share of a step, not added machines.
# Usage: scripts/bench-cluster.sh [herm bench flags, e.g. --threads 1,100,1000]
set -euo pipefail
cd "$(dirname "$0")/.."
url=$(scripts/postgres.sh)
cargo build --release --locked -p herm
for nodes in 1 3; do
  target/release/herm bench --store postgres --database-url "$url" --nodes "$nodes" "$@"
done

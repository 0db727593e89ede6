#!/usr/bin/env bash
# Makes a PostgreSQL server available for herm's PostgreSQL store: installs Debian's
# `postgresql` if needed, starts its cluster when nothing answers, and creates the `herm`
# role (password `herm`, loopback only) and the `herm` database. Idempotent. Prints the
# database URL on stdout. With `--test`, the URL of `herm_test` instead, a database made
# afresh (the tests read it from HERM_TEST_DATABASE_URL; each test works in its own schema),
# and the databases earlier runs of the cluster tests made (`herm_c_…`) dropped.
# Usage: scripts/postgres.sh [--test]
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
fi
cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
if [ -z "$cluster" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -n1)
  pg_createcluster "$version" main >/dev/null
  cluster="$version main"
fi
port=$(pg_lsclusters --no-header | awk 'NR==1 {print $3}')
if ! pg_lsclusters --no-header | awk 'NR==1 {print $4}' | grep -q online; then
  # A server killed without shutting down leaves a pid file that stops the next start.
  pgrep -x postgres >/dev/null 2>&1 || rm -f /var/lib/postgresql/*/main/postmaster.pid
  # shellcheck disable=SC2086
  pg_ctlcluster $cluster start
fi
for _ in $(seq 1 60); do
  su postgres -c "psql -qAt -p $port -c 'SELECT 1'" >/dev/null 2>&1 && break
  sleep 0.5
done
su postgres -c "psql -qAt -p $port" >/dev/null <<'SQL'
SELECT 'CREATE ROLE herm LOGIN PASSWORD ''herm'' CREATEDB'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'herm') \gexec
SELECT 'CREATE DATABASE herm OWNER herm'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'herm') \gexec
SQL
if [ "${1:-}" = "--test" ]; then
  su postgres -c "psql -qAt -p $port" >/dev/null <<'SQL'
DROP DATABASE IF EXISTS herm_test WITH (FORCE);
CREATE DATABASE herm_test OWNER herm;
SELECT format('DROP DATABASE %I WITH (FORCE)', datname) FROM pg_database
WHERE datname LIKE 'herm\_c\_%' \gexec
SQL
  echo "postgres://herm:herm@127.0.0.1:$port/herm_test"
else
  echo "postgres://herm:herm@127.0.0.1:$port/herm"
fi

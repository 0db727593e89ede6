#!/usr/bin/env bash
# Installs the real MCP peers the integration tests and the MCP benchmark talk to: the
# official reference servers from the npm registry (server-everything, server-filesystem)
# and the Python `mcp` SDK (pip) for the bearer-token server in tests/peers/; also
# Anthropic's official Python SDK (pinned), which the Claude Managed Agents API's tests drive.
# Cached: a second run with everything present does nothing.
# Usage: scripts/mcp-peers.sh   (installs into $HERM_MCP_PEERS, default ./.mcp-peers)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${HERM_MCP_PEERS:-$PWD/.mcp-peers}"
mkdir -p "$dir"
everything="$dir/node_modules/@modelcontextprotocol/server-everything/package.json"
filesystem="$dir/node_modules/@modelcontextprotocol/server-filesystem/package.json"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null
fi
if [ ! -f "$everything" ] || [ ! -f "$filesystem" ]; then
  npm install --silent --no-audit --no-fund --prefix "$dir" \
    @modelcontextprotocol/server-everything@2026.8.31 \
    @modelcontextprotocol/server-filesystem@2026.8.31 >/dev/null
fi
if [ ! -x "$dir/venv/bin/python" ] || ! "$dir/venv/bin/python" - <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
import mcp  # noqa: F401
sys.exit(0 if version("anthropic") == "2.10.0" else 1)
PY
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install -q --disable-pip-version-check "mcp==2.3.0" "uvicorn" "anthropic==2.10.0"
fi
echo "$dir"

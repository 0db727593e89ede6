#!/usr/bin/env bash
# Installs what the console's browser tests drive: Debian's Chromium and its chromedriver.
# Skips the work when both are present.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null

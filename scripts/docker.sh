#!/usr/bin/env bash
# Makes the sandbox backends available: bubblewrap, and a Docker engine: installs Debian's docker.io if needed, starts dockerd in
# the background when none answers, and waits for its socket. Idempotent.
# Usage: scripts/docker.sh
set -euo pipefail
# docker.io for the Docker backend; bubblewrap (and slirp4netns for its network) for the
# namespaces backend; iproute2 for the network tests (`ip` inside a namespace).
if ! command -v dockerd >/dev/null 2>&1 || ! command -v bwrap >/dev/null 2>&1 || ! command -v slirp4netns >/dev/null 2>&1 \
  || ! command -v ip >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io bubblewrap slirp4netns iproute2 >/dev/null
fi
if docker info >/dev/null 2>&1; then
  exit 0
fi
# A daemon killed without shutting down (a machine's processes are ended between sessions)
# leaves pid files that make the next one refuse to start.
if ! pgrep -x dockerd >/dev/null 2>&1; then
  rm -f /var/run/docker.pid /run/docker/containerd/containerd.pid
fi
nohup dockerd >/tmp/herm-dockerd.log 2>&1 &
pid=$!
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 1
done
echo "dockerd did not start; see /tmp/herm-dockerd.log" >&2
tail -20 /tmp/herm-dockerd.log >&2 || true
exit 1

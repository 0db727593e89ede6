#!/usr/bin/env bash
# Builds herm's default sandbox image locally, with no container registry: a Debian root
# filesystem made by debootstrap from this machine's configured Debian package sources,
# imported into the local Docker engine as herm-sandbox:default. Skips the work when the
# image exists and was built from the same package list (pass --force to rebuild).
# Usage: scripts/build-image.sh [--force] [IMAGE]
set -euo pipefail
force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
image="${1:-herm-sandbox:default}"

# What agents get: a shell and the usual tools, Python, ffmpeg for audio and video, and
# poppler's pdftoppm for PDF pages.
packages=bash,coreutils,findutils,grep,sed,procps,python3,python3-pip,python3-venv,curl,git,jq,ca-certificates,ffmpeg,poppler-utils
# An image built from another package list is rebuilt.
stamp=$(printf '%s' "$packages" | sha256sum | cut -c1-16)
if [ "$force" = 0 ] && [ "$(docker image inspect -f '{{ index .Config.Labels "herm.packages" }}' "$image" 2>/dev/null)" = "$stamp" ]; then
  echo "sandbox image $image is present"
  exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -q >/dev/null; apt-get install -y -q debootstrap >/dev/null; }

# The first Debian archive among the configured sources (deb822 or one-line format).
mirror=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
if [ -z "$mirror" ]; then
  mirror=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
fi
[ -n "$mirror" ] || { echo "no Debian package source is configured" >&2; exit 1; }
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")

root=$(mktemp -d /tmp/herm-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "building $image from $suite (this takes a few minutes)"
debootstrap --variant=minbase \
  --include="$packages" \
  "$suite" "$root" "$mirror" >/tmp/herm-debootstrap.log 2>&1 || { tail -20 /tmp/herm-debootstrap.log >&2; exit 1; }
# Nothing of the build host's package caches goes into the image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
mkdir -p "$root/workspace"
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV HOME=/workspace' \
  --change 'WORKDIR /workspace' \
  --change "LABEL herm.packages=$stamp" \
  - "$image" >/dev/null
echo "sandbox image $image built"

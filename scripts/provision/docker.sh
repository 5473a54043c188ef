#!/usr/bin/env bash
# What the packaging tests need: Docker's engine (docker.io), Debian's image registry (docker-registry,
# the CNCF distribution server) and debootstrap (builds the local base image, since no image can be
# pulled here). Idempotent: apt runs only when one of them is missing.
set -euo pipefail

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "docker.sh: ${missing[*]} missing and not root; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "docker.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi
echo "docker.sh: $(dockerd --version); $(docker-registry --version 2>&1 | head -n 1); debootstrap $(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null || echo '?')"

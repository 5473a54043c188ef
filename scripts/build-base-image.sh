#!/usr/bin/env bash
# Build the local base image the packaging tests use, since no image can be pulled here:
# debootstrap minbase bookworm + python3, python3-venv, python3-pip and ca-certificates, the host's CA
# bundle copied in (so pip inside `docker build` trusts the same TLS as this host), then `docker import`.
# Cached: does nothing when the image already exists. Concurrent calls wait on one lock, so
# `services.sh start` may run it in the background while a test fixture waits for it.
#
#   LEGION_BASE_IMAGE   image name (default legion-base:bookworm)
#   DEBIAN_MIRROR       mirror URL (default: the first Debian URI in apt's sources, else deb.debian.org)
#   --force             rebuild even if the image exists
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${LEGION_BASE_IMAGE:-legion-base:bookworm}"
SUITE=bookworm
STATE=.ci/services
mkdir -p "$STATE"
force=0
[ "${1:-}" = "--force" ] && force=1

exec 9>"$STATE/base-image.lock"
flock 9

if [ "$force" -eq 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "build-base-image: $IMAGE exists (cached)"
  exit 0
fi

mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror="$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
    | grep -Eo 'https?://[^ ]*/debian/?' | grep -v security | head -n 1 || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca_bundle" ] || { echo "build-base-image: $ca_bundle is missing (install ca-certificates)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "build-base-image: debootstrap is missing (scripts/provision/docker.sh)" >&2; exit 1; }

root="$(mktemp -d "${TMPDIR:-/tmp}/legion-base.XXXXXX")"
cleanup() {  # debootstrap mounts proc and sys in the target: unmount before removing, never cross a mount
  awk -v r="$root" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT
start=$(date +%s)
echo "build-base-image: debootstrap $SUITE from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  "$SUITE" "$root" "$mirror" >"$STATE/debootstrap.log" 2>&1 \
  || { tail -n 30 "$STATE/debootstrap.log" >&2; echo "build-base-image: debootstrap failed (log $STATE/debootstrap.log)" >&2; exit 1; }

cp "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
# Smaller image: no package caches, indexes, docs or man pages.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
printf 'deb %s %s main\n' "$mirror" "$SUITE" >"$root/etc/apt/sources.list"

tar --numeric-owner -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "debootstrap --variant=minbase $SUITE + python3, venv, pip" - "$IMAGE" >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo "build-base-image: $IMAGE built in $(( $(date +%s) - start ))s, $(( size / 1000000 )) MB"

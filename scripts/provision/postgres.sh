#!/usr/bin/env bash
# PostgreSQL server binaries for the registry tests (the tests start their own throwaway cluster).
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

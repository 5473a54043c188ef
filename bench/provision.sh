#!/usr/bin/env bash
# The model-server tests need no system package (they start real `legion-ci serve` processes and use
# httpx, PyJWT, cryptography and schemathesis from the venv). The serving benchmark (`make bench`,
# bench/serving/run.py) drives the servers with wrk and hey, both Debian packages; they are installed
# here (by bench/run.sh, not by the tests) so the benchmark runs on a fresh machine. Idempotent: apt runs only when one of them is missing.
set -euo pipefail

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v hey >/dev/null 2>&1 || missing+=(hey)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "serving.sh: ${missing[*]} missing and not root; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 0  # only the benchmark needs them; the tests do not
  fi
  echo "serving.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" || { apt-get update -q && apt-get install -y -q "${missing[@]}"; }
fi
echo "serving.sh: $(wrk --version 2>&1 | head -n 1 | cut -c1-40); hey $(dpkg-query -W -f='${Version}' hey 2>/dev/null || echo '?')"

#!/usr/bin/env bash
# Tools the Jenkins tests need: npm-groovy-lint 16 (lints every rendered Jenkinsfile; CodeNarc runs on
# the machine's Java 17, so nothing is downloaded at lint time). Idempotent: installs only when missing.
set -euo pipefail

want_major=16
have=""
if command -v npm-groovy-lint >/dev/null 2>&1; then
  have="$(npm-groovy-lint --version 2>/dev/null | grep -Eo 'npm-groovy-lint(:| version)? *v?[0-9]+' | grep -Eo '[0-9]+$' || true)"
fi
if [ "$have" != "$want_major" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "jenkins.sh: npm is missing (Node 20 is expected on this machine)" >&2
    exit 1
  fi
  npm install -g --no-audit --no-fund "npm-groovy-lint@${want_major}"
fi
command -v java >/dev/null 2>&1 || { echo "jenkins.sh: java is missing (npm-groovy-lint needs Java 17)" >&2; exit 1; }
echo "jenkins.sh: npm-groovy-lint $(npm-groovy-lint --version 2>/dev/null | head -n 3 | tr '\n' ' ')"

#!/usr/bin/env bash
# What the report tests need: Debian's chromium (headless: opens the gate and perf HTML reports and
# checks that their plots rendered). Idempotent: installs only when missing.
set -euo pipefail

if ! [ -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
echo "reports.sh: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium missing')"

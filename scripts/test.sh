#!/usr/bin/env bash
# The test command behind `make test`: lint (scripts/lint.sh), install what the tests need on this machine, start the
# services they use (stopped by PID on exit), then run the whole suite. pytest's "no tests
# collected" (exit 5) counts as a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

bash scripts/lint.sh

for script in scripts/provision/*.sh; do
  [ -e "$script" ] || continue
  echo "== provision: $script"
  bash "$script"
done

if [ -x scripts/services.sh ]; then
  trap 'bash scripts/services.sh stop' EXIT
  bash scripts/services.sh start
fi

echo "== pytest"
set +e
"$BIN/python" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"

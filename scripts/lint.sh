#!/usr/bin/env bash
# Lint, as `make test` (and so CI) runs it first: ruff check, ruff format --check, mypy (strict over
# legion_ci, per pyproject.toml; the tests too). Fails on the first finding. ansible-lint (production
# profile) runs inside the suite, tests/integration/test_ansible_lint.py, beside the playbook checks.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
echo "== lint: ruff check"
"$BIN/ruff" check legion_ci tests bench
echo "== lint: ruff format --check"
"$BIN/ruff" format --check legion_ci tests bench
echo "== lint: mypy legion_ci tests"
"$BIN/mypy" legion_ci tests

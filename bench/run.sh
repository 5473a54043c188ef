#!/usr/bin/env bash
# `make bench`: the benchmarks, each running its peers side by side and printing ratios.
#   bench/serving/run.py  our model server vs MLflow, MLServer and a bare Starlette app (wrk, hey)
#   bench/router/run.py   the A/B router's added latency vs calling a model server directly
#   bench/startup/run.py  start-up: CLI, `legion-ci serve` vs a bare uvicorn app (time to first answer), pipeline
# Results are written beside each script under results/. Pass BENCH=serving, BENCH=router or BENCH=startup for one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/provision.sh
for name in ${BENCH:-serving router startup}; do
  if [ -f "bench/$name/run.py" ]; then
    echo "== bench/$name"
    .venv/bin/python "bench/$name/run.py"
  fi
done

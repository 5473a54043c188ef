#!/usr/bin/env bash
# The Kubernetes-side tests (helm charts, ansible role) need no system package: no helm binary, no cluster.
# Everything comes from PyPI (requirements): helm-python-sdk (Helm's Go SDK as a shared library),
# kubernetes-validate, cloudcoil-models-prometheus-operator, ansible (bundles kubernetes.core), ansible-lint.
# This script only checks that the venv has them and that the Helm library loads on this machine.
set -euo pipefail

python="${PYTHON:-$(dirname "$0")/../../.venv/bin/python}"
[ -x "$python" ] || { echo "helm.sh: no python at $python (set PYTHON)" >&2; exit 1; }

"$python" - <<'PY'
import importlib, sys
missing = [m for m in ("helm_python", "kubernetes_validate", "cloudcoil.models.prometheus_operator.v1",
                       "ansible_collections.kubernetes.core") if importlib.util.find_spec(m.split(".")[0]) is None]
if missing:
    sys.exit(f"helm.sh: missing python modules {missing}: pip install -r requirements.txt")
import helm_python
print(f"helm.sh: Helm SDK {helm_python.helm_sdk_version()} via helm-python-sdk {helm_python.__version__}")
PY
for tool in ansible-playbook ansible-lint; do
  [ -x "$(dirname "$python")/$tool" ] || command -v "$tool" >/dev/null || { echo "helm.sh: $tool is missing" >&2; exit 1; }
done

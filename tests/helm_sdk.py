"""Render and lint Helm charts in-process with helm-python-sdk (Helm's Go SDK): no helm binary, no cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from legion_ci.core.errors import DeployError

WARNING = 2  # helm lint severities: 1 info, 2 warning, 3 error
ERROR = 3
_SEVERITY = {1: "INFO", 2: "WARNING", 3: "ERROR"}


class ChartError(DeployError):
    """A chart could not be loaded, its values were refused by its schema, or a template failed."""

    def __init__(self, chart_dir: str | os.PathLike[str], detail: str) -> None:
        self.chart_dir = str(chart_dir)
        self.detail = detail.strip()
        super().__init__(f"helm chart {self.chart_dir}: {self.detail}")


def _sdk() -> Any:
    """The helm_python module, or a clear error when helm-python-sdk is not installed."""
    try:
        import helm_python
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DeployError("helm-python-sdk is not installed: pip install helm-python-sdk") from exc
    return helm_python


def _chart_path(chart_dir: str | os.PathLike[str]) -> Path:
    path = Path(chart_dir)
    if not (path / "Chart.yaml").is_file():
        raise ChartError(path, "no Chart.yaml here: not a chart directory")
    return path


def render_chart(
    chart_dir: str | os.PathLike[str],
    values: dict[str, Any] | None = None,
    release: str = "legion",
    namespace: str = "default",
) -> list[dict[str, Any]]:
    """Render the chart as `helm install --dry-run` would (schema checked, `lookup` empty); return its manifests."""
    helm = _sdk()
    path = _chart_path(chart_dir)
    try:
        helm.validate_release_name(release)
        with helm.Chart.load(path) as chart:
            rendered: dict[str, str] = chart.render(
                values or {}, name=release, namespace=namespace, revision=1, is_install=True
            )
    except helm.HelmError as exc:
        raise ChartError(path, f"{type(exc).__name__}: {exc}") from None
    manifests: list[dict[str, Any]] = []
    for template in sorted(rendered):
        if template.endswith("NOTES.txt"):
            continue
        try:
            docs = list(yaml.safe_load_all(rendered[template]))
        except yaml.YAMLError as exc:
            raise ChartError(path, f"{template} rendered invalid YAML: {exc}") from None
        for doc in docs:
            if doc is None:
                continue
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                raise ChartError(path, f"{template} rendered a document that is not a Kubernetes object")
            manifests.append(doc)
    return manifests


def lint_chart(
    chart_dir: str | os.PathLike[str],
    values: dict[str, Any] | None = None,
    strict: bool = True,
    namespace: str = "default",
    kube_version: str | None = None,
) -> list[str]:
    """Run `helm lint` (strict: warnings count) then a render; return problems as 'SEVERITY path: message'."""
    helm = _sdk()
    path = _chart_path(chart_dir)
    try:
        report = helm.lint(path, values, strict=strict, namespace=namespace, kube_version=kube_version)
    except helm.HelmError as exc:
        raise ChartError(path, f"{type(exc).__name__}: {exc}") from None
    floor = WARNING if strict else ERROR
    problems = [
        f"{_SEVERITY.get(m['severity'], 'UNKNOWN')} {m['path']}: {str(m['error']).strip()}"
        for m in report.get("messages", [])
        if m["severity"] >= floor or m["severity"] == 0
    ]
    seen = {str(m["error"]).strip() for m in report.get("messages", [])}
    problems += [f"ERROR {e.strip()}" for e in map(str, report.get("errors", [])) if e.strip() not in seen]
    if not problems:
        # helm lint only logs a template's `fail`/`required`; a real render surfaces them as errors.
        try:
            render_chart(path, values, namespace=namespace)
        except ChartError as exc:
            problems.append(f"ERROR render: {exc.detail}")
    return problems

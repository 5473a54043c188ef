"""The layer rule of docs/architecture.md, as the import-linter contracts in pyproject.toml state it.

The first test checks the package as it is and fails with the broken contract's own report (which
import, in which file and line, and what to do instead). The second shows that the contracts can fail:
a copy of the package with one forbidden import added is refused, naming that import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(source_root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` over the legion_ci package found in `source_root`, with the contracts there."""
    env = {**os.environ, "PYTHONPATH": str(source_root), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(source_root / "pyproject.toml")],
        cwd=source_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _broken_part(report: str) -> str:
    start = report.find("Broken contracts")
    return report[start:] if start >= 0 else report


def test_the_package_keeps_every_layer_contract() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, (
        "an import breaks the layer rule of docs/architecture.md:\n" + _broken_part(done.stdout) + done.stderr
    )
    assert "0 broken" in done.stdout


def test_the_contracts_name_the_layers_of_the_tree() -> None:
    """Every folder of legion_ci is in the layer contract: a new folder must be placed in the picture."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["id"] == "layers")["layers"]
    placed = {name.strip() for layer in layers for name in layer.split("|")}
    packages = {p.parent.name for p in (ROOT / "legion_ci").glob("*/__init__.py")}
    modules = {p.stem for p in (ROOT / "legion_ci").glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert packages | modules == placed, (
        f"not placed in a layer: {sorted((packages | modules) - placed)}; "
        f"placed but gone: {sorted(placed - (packages | modules))}"
    )


def test_a_production_module_importing_deploy_is_refused(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "legion_ci", tmp_path / "legion_ci", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    app = tmp_path / "legion_ci" / "router" / "app.py"
    app.write_text(app.read_text() + "\nfrom legion_ci.deploy import local_router  # noqa: E402\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    report = _broken_part(done.stdout)
    assert "legion_ci.router is not allowed to import legion_ci.deploy" in report
    assert "legion_ci.router.app -> legion_ci.deploy.local_router" in report

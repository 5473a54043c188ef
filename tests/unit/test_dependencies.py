"""What legion-ci runs at run time is declared as a runtime dependency (issue 12, item 11): the gate runs a
model's own tests with `python -m pytest`, so pytest must come with `pip install legion-ci` and with
`make venv`, not only with the dev tools."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from legion_ci.package.requirements import PIPELINE_ONLY
from legion_ci.quality.modeltests import runner

ROOT = Path(__file__).resolve().parents[2]


def _names(lines: list[str]) -> set[str]:
    return {
        canonicalize_name(Requirement(line).name)
        for line in (raw.split("#")[0].strip() for raw in lines)
        if line and not line.startswith("-")
    }


def test_the_gate_runs_pytest_as_a_module() -> None:
    assert '"pytest"' in Path(runner.__file__).read_text(encoding="utf-8")


def test_pytest_is_a_runtime_dependency_of_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "pytest" in _names(project["dependencies"])


def test_pytest_is_pinned_in_the_runtime_requirements_not_only_the_dev_tools() -> None:
    runtime = _names((ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines())
    dev = _names((ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines())
    assert "pytest" in runtime
    assert "pytest" not in dev  # one pin, in one place


def test_model_images_leave_pytest_out() -> None:
    """A model server never runs the gate: pytest is a pipeline tool, kept out of the image's closure."""
    assert "pytest" in PIPELINE_ONLY

"""Run a model repository's own tests in a pytest subprocess; one gate check per test."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from legion_ci.core.errors import StageError
from legion_ci.quality.checks import Check
from legion_ci.quality.modeltests.plugin import ENV_ARTIFACT, ENV_PRODUCTION

TIMEOUT = 900.0  # seconds the model's tests may take, all together
CONFIG_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
DETAIL_CHARS = 6000
# pytest's exit codes (pytest.ExitCode): what each means for the gate
OK, TESTS_FAILED, INTERRUPTED, INTERNAL_ERROR, USAGE_ERROR, NO_TESTS = 0, 1, 2, 3, 4, 5


@dataclass
class ModelTests:
    """What running the model's tests produced."""

    checks: list[Check] = field(default_factory=list)
    exit_code: int | None = None
    log: Path | None = None
    junit: Path | None = None


def run_model_tests(
    model_dir: Path,
    tests: str,
    artifact: Path,
    production: Path | None,
    out_dir: Path,
    required: bool = False,
    timeout: float = TIMEOUT,
) -> ModelTests:
    """Run MODEL_DIR/<tests> against `artifact`; a missing folder is a skipped check unless `required`."""
    folder = (model_dir / tests).resolve()
    if not folder.is_dir():
        message = f"gate.tests: folder {tests!r} not found in {str(model_dir)!r}"
        if required:
            return ModelTests([Check("test", "model tests", False, message)])
        return ModelTests(
            [Check("test", "model tests", True, f"skipped: no {tests}/ folder beside legion.yaml", skipped=True)]
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    junit, log = out_dir / "model-tests.xml", out_dir / "model-tests.log"
    junit.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "legion_ci.quality.modeltests.plugin",
        "-p",
        "no:cacheprovider",
        str(folder),
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit1",
        "-o",
        "junit_logging=no",
        f"--rootdir={model_dir}",
        "-rfEs",
        *_config_args(model_dir, folder, out_dir),
    ]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k not in (ENV_ARTIFACT, ENV_PRODUCTION)
    }
    # Installed pytest plugins are not auto-loaded: they cost seconds and a model's tests should not depend on
    # whatever happens to be installed; the model's own pytest.ini can name one with `addopts = -p NAME`.
    env.update(
        {
            ENV_ARTIFACT: str(artifact),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PYTHONPATH": os.pathsep.join(p for p in (str(model_dir), env.get("PYTHONPATH", "")) if p),
        }
    )
    if production is not None:
        env[ENV_PRODUCTION] = str(production)
    try:
        with log.open("w", encoding="utf-8") as out:
            done = subprocess.run(
                command,
                cwd=model_dir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
            )
    except subprocess.TimeoutExpired:
        return ModelTests(
            [
                Check(
                    "test",
                    "model tests",
                    False,
                    f"the model's tests did not finish within {timeout:.0f}s (output: {log})",
                )
            ],
            None,
            log,
        )
    result = ModelTests(exit_code=done.returncode, log=log, junit=junit if junit.is_file() else None)
    if done.returncode == NO_TESTS:
        result.checks = [
            Check("test", "model tests", True, f"skipped: pytest collected no tests in {tests}/", skipped=True)
        ]
        return result
    if done.returncode == INTERNAL_ERROR:
        raise StageError(
            "gate", f"pytest failed internally running the model's tests (exit 3): {_tail(log)} (output: {log})"
        )
    result.checks = parse_junit(junit, model_dir) if junit.is_file() else []
    if done.returncode != OK and not any(not c.passed for c in result.checks):
        result.checks.append(
            Check(
                "test",
                "model tests",
                False,
                f"pytest exited with status {done.returncode}: {_tail(log)} (output: {log})",
                detail=_tail(log, 40),
            )
        )
    return result


def _config_args(model_dir: Path, folder: Path, out_dir: Path) -> list[str]:
    """Use the model's own pytest config if it has one; never legion-ci's (or any folder's above the model)."""
    places = [folder, *folder.parents] if folder.is_relative_to(model_dir) else [folder]
    for place in places:
        if any((place / name).is_file() for name in CONFIG_FILES):
            return []
        if place == model_dir:
            break
    empty = out_dir / "pytest.ini"
    empty.write_text("[pytest]\n", encoding="utf-8")
    return ["-c", str(empty)]


def _tail(log: Path, lines: int = 3) -> str:
    text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines() if log.is_file() else []
    return "\n".join(text[-lines:]) if lines > 3 else " / ".join(t.strip() for t in text[-lines:]) or "(no output)"


def parse_junit(path: Path, model_dir: Path) -> list[Check]:
    """One Check per <testcase> of pytest's JUnit XML (xunit1: with file and line)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise StageError("gate", f"{path}: pytest wrote unreadable JUnit XML: {exc}") from None
    checks = []
    for case in root.iter("testcase"):
        file = case.get("file") or case.get("classname", "").replace(".", "/") + ".py"
        name = f"{file}::{case.get('name', '?')}" if case.get("name") else file
        seconds = float(case.get("time") or 0.0)
        failure = next((case.find(tag) for tag in ("failure", "error") if case.find(tag) is not None), None)
        skipped = case.find("skipped")
        if failure is not None:
            first = (failure.get("message") or "").strip().splitlines()
            what = "error" if failure.tag == "error" else "failed"
            reason = first[0][:300] if first else "(no message)"
            checks.append(
                Check(
                    "test",
                    name,
                    False,
                    f"{name} {what}: {reason}",
                    detail=(failure.text or "")[-DETAIL_CHARS:],
                    seconds=seconds,
                )
            )
        elif skipped is not None:
            checks.append(
                Check(
                    "test", name, True, f"skipped: {skipped.get('message') or 'skipped'}", skipped=True, seconds=seconds
                )
            )
        else:
            checks.append(Check("test", name, True, f"passed in {seconds:.2f}s", seconds=seconds))
    return checks

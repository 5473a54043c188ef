"""A bad LEGION_* value, as a user meets it through the real CLI: exit status 2, one line naming the
variable, the value and what was expected, no traceback, and nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT


def run(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LEGION_")}
    full.update({"LEGION_HOME": str(home), **env})
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", *args], capture_output=True, text=True, env=full, cwd=ROOT, timeout=120
    )


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        (
            {"LEGION_TRAFFIC_WEIGHT": "abc"},
            ("run", "examples/iris"),
            "LEGION_TRAFFIC_WEIGHT='abc' is not valid (expected a whole number from 1 to 100)",
        ),
        (
            {"LEGION_TRAFFIC_WEIGHT": "150"},
            ("deploy", "examples/iris"),
            "LEGION_TRAFFIC_WEIGHT='150' is not valid (expected a whole number from 1 to 100)",
        ),
        (
            {"LEGION_REGISTRY_URL": "localhost:5432/legion"},
            ("models",),
            "LEGION_REGISTRY_URL='localhost:5432/legion' is not valid (expected an SQLAlchemy URL such as "
            "sqlite:///PATH or postgresql+psycopg://HOST/DB)",
        ),
        (
            {"LEGION_JWT_MAX_TTL": "a week"},
            ("token", "create", "--model", "iris"),
            "LEGION_JWT_MAX_TTL='a week' is not valid (expected a duration such as 3600, 90s, 30m, 12h or 7d)",
        ),
        (
            {"LEGION_AUTH": "disabled"},
            ("serve", "examples/iris"),
            "LEGION_AUTH='disabled' is not valid (expected on or off)",
        ),
        (
            {"LEGION_TARGET": "prod"},
            ("run", "examples/iris"),
            "LEGION_TARGET='prod' is not valid (expected local or kubernetes)",
        ),
    ],
)
def test_a_bad_setting_stops_the_command_naming_it(
    tmp_path: Path, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    home = tmp_path / "home"
    done = run(home, env, *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"error: {message}\n"
    assert done.stdout == ""
    assert not home.exists()  # nothing half-written


def test_a_bad_flag_value_names_the_flag(tmp_path: Path) -> None:
    done = run(tmp_path / "home", {}, "models", "--registry-url", "registry.db")
    assert done.returncode == 2
    assert done.stderr.startswith("error: --registry-url='registry.db' is not valid (expected an SQLAlchemy URL")

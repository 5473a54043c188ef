"""pytest plugin for a model's own tests: fixtures `model`, `artifact`, `test_data`, `production_model`.

The gate runs `python -m pytest -p legion_ci.quality.modeltests.plugin MODEL_DIR/tests` with the candidate's
artifact folder in LEGION_TEST_ARTIFACT and production's (when there is one) in
LEGION_TEST_PRODUCTION_ARTIFACT. By hand: `--legion-artifact PATH [--legion-production-artifact PATH]`.
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd
import pytest

from legion_ci.core.artifact import Artifact
from legion_ci.core.settings import PREFIX, Settings, env_name, load_settings

ENV_ARTIFACT = env_name("test_artifact")
ENV_PRODUCTION = env_name("test_production_artifact")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("legion-ci", "legion-ci model fixtures")
    group.addoption(
        "--legion-artifact",
        default=None,
        metavar="PATH",
        help=f"the candidate's artifact folder (default: ${ENV_ARTIFACT})",
    )
    group.addoption(
        "--legion-production-artifact",
        default=None,
        metavar="PATH",
        help=f"production's artifact folder (default: ${ENV_PRODUCTION}; none: production_model skips)",
    )


def _path(config: pytest.Config, option: str, env: str) -> str | None:
    """The command-line option, else the setting behind `env` (read once per test session)."""
    given = config.getoption(option)
    if given:
        return str(given)
    value = getattr(_settings(), env.removeprefix(PREFIX).lower())
    return str(value) if value else None


@functools.cache
def _settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def artifact(pytestconfig: pytest.Config) -> Artifact:
    """The candidate's artifact (manifest, schema, metrics, path)."""
    path = _path(pytestconfig, "legion_artifact", ENV_ARTIFACT)
    if path is None:
        raise pytest.UsageError(
            f"no candidate artifact: run these tests through `legion-ci gate`, or give "
            f"--legion-artifact PATH (or set {ENV_ARTIFACT}) naming an artifact folder"
        )
    return Artifact.open(path)


@pytest.fixture(scope="session")
def model(artifact: Artifact) -> Any:
    """The candidate's fitted estimator."""
    return artifact.model


@pytest.fixture(scope="session")
def test_data(artifact: Artifact) -> tuple[pd.DataFrame, pd.Series]:
    """The held-out split the gate measures on: (x, y)."""
    from legion_ci.quality.gate import load_holdout

    return load_holdout(artifact)


@pytest.fixture(scope="session")
def production_artifact(pytestconfig: pytest.Config) -> Artifact:
    """Production's artifact; tests that use it are skipped when there is no production version yet."""
    path = _path(pytestconfig, "legion_production_artifact", ENV_PRODUCTION)
    if path is None:
        pytest.skip("no production version yet")
    return Artifact.open(path)


@pytest.fixture(scope="session")
def production_model(production_artifact: Artifact) -> Any:
    """Production's fitted estimator (skipped when there is none)."""
    return production_artifact.model

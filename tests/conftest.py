"""Fixtures every test folder shares: a private LEGION_HOME, its settings and registry, the examples."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from legion_ci.core.registry import Registry
from legion_ci.core.settings import Settings, load_settings

pytest_plugins = ["tests.s3"]  # the stand-in S3 server fixture, started only by tests that ask for it

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def legion_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "legion-home"
    monkeypatch.setenv("LEGION_HOME", str(home))
    monkeypatch.delenv("LEGION_REGISTRY_URL", raising=False)
    return home


@pytest.fixture
def settings(legion_home: Path) -> Settings:
    return load_settings()


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    reg = Registry.from_settings(settings)
    yield reg
    reg.close()


@pytest.fixture
def iris_dir(tmp_path: Path) -> Path:
    """A private copy of examples/iris that a test may edit."""
    return Path(shutil.copytree(EXAMPLES / "iris", tmp_path / "iris"))


@pytest.fixture
def diabetes_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(EXAMPLES / "diabetes", tmp_path / "diabetes"))

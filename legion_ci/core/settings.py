"""Settings in one typed place. Precedence: default < environment < command line."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Where legion-ci keeps its state. Every path lives under `home` unless overridden."""

    home: Path
    registry_url: str

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def deployments_dir(self) -> Path:
        return self.home / "deployments"

    @property
    def feedback_dir(self) -> Path:
        return self.home / "feedback"


def load_settings(home: str | None = None, registry_url: str | None = None) -> Settings:
    """Build settings from defaults, then LEGION_HOME / LEGION_REGISTRY_URL, then the arguments."""
    home_path = Path(home or os.environ.get("LEGION_HOME") or Path.home() / ".legion").expanduser()
    url = registry_url or os.environ.get("LEGION_REGISTRY_URL") or f"sqlite:///{home_path / 'registry.db'}"
    return Settings(home=home_path.resolve(), registry_url=url)

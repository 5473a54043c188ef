"""Where an artifact came from: git state, source and package versions, the Jenkins build."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("scikit-learn", "numpy", "pandas", "scipy", "skops", "legion-ci")
SKIP_DIRS = {".git", ".legion", "__pycache__", ".pytest_cache", ".venv", "out"}


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(folder: Path) -> dict[str, Any]:
    """Commit, branch and dirty flag of the repository holding `folder` (all None outside git)."""
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "branch": None, "dirty": None}
    branch = os.environ.get("BRANCH_NAME") or _git(folder, "rev-parse", "--abbrev-ref", "HEAD")
    status = _git(folder, "status", "--porcelain", "--", ".")
    return {"commit": commit, "branch": branch, "dirty": bool(status)}


def source_fingerprint(folder: Path) -> str:
    """sha256 over every source file of the model folder (names and bytes), skipping caches."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_dir() or any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def jenkins_build() -> dict[str, str] | None:
    """BUILD_URL and friends when running under Jenkins."""
    keys = ("BUILD_URL", "BUILD_NUMBER", "JOB_NAME", "BUILD_TAG")
    found = {k.lower(): os.environ[k] for k in keys if os.environ.get(k)}
    return found or None

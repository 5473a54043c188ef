"""A wheel of legion-ci for the image (it is not on PyPI): built once per source tree, then cached."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from legion_ci.core.errors import ConfigError, ExternalToolError

SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "setup.py", "MANIFEST.in")
PACKAGE = "legion_ci"
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")
KEEP = 5  # cached wheels kept (newest first); a working tree that changes makes a new one each time
EPOCH = "315532800"  # 1980-01-01, the earliest zip timestamp: the same tree gives the same wheel bytes


def source_tree() -> Path:
    """The folder holding pyproject.toml and the legion_ci package this process runs from."""
    root = Path(__file__).resolve().parents[2]
    if not ((root / "pyproject.toml").is_file() and (root / PACKAGE).is_dir()):
        raise ConfigError(
            f"legion-ci runs from {root}, which is not a source tree (no pyproject.toml): "
            "set LEGION_CI_WHEEL to a legion_ci-*.whl to install in images"
        )
    return root


def _files(root: Path) -> list[Path]:
    found = [root / name for name in SOURCE_FILES if (root / name).is_file()]
    found += sorted(
        p for p in (root / PACKAGE).rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    return found


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in _files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_wheel(cache_dir: Path, root: Path | None = None) -> Path:
    """`pip wheel --no-deps` of a copy of the tree (the working tree gets no build/ folder), cached
    under `cache_dir` by the tree's content hash."""
    root = root or source_tree()
    target = cache_dir / tree_hash(root)
    found = sorted(target.glob("legion_ci-*.whl"))
    if found:
        return found[-1]
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wheel-", dir=cache_dir) as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        for path in _files(root):
            dest = src / path.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(src)]
        done = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH}, timeout=600
        )
        if done.returncode != 0:
            raise ExternalToolError(
                "pip", "pip wheel --no-deps " + str(root), done.returncode, done.stdout + done.stderr
            )
        wheel = next(out.glob("legion_ci-*.whl"))
        staged = Path(tmp) / "done"
        staged.mkdir()
        shutil.move(str(wheel), staged / wheel.name)
        try:
            os.rename(staged, target)  # atomic: a concurrent build of the same tree simply loses
        except OSError:
            if not any(target.glob("legion_ci-*.whl")):
                raise
    _prune(cache_dir, keep=target)
    return sorted(target.glob("legion_ci-*.whl"))[-1]


def _prune(cache_dir: Path, keep: Path) -> None:
    entries = sorted(
        (p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in [p for p in entries if p != keep][KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)

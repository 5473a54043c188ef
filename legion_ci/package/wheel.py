"""A wheel of legion-ci for the image (it is not on PyPI), cached by content.

Run from a source tree (an editable install), it is `pip wheel --no-deps` of a copy of that tree.
Installed from a wheel, there is no tree to build from: the installed distribution's own files (as its
RECORD lists them, less what the installer wrote) are packed back into a wheel with the same contents.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path, PurePosixPath

from legion_ci.core import resources
from legion_ci.core.errors import ConfigError, ExternalToolError

SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "setup.py", "MANIFEST.in")
PACKAGE = "legion_ci"
DISTRIBUTION = "legion-ci"
KEEP = 5  # cached wheels kept (newest first); a working tree that changes makes a new one each time
EPOCH = "315532800"  # 1980-01-01, the earliest zip timestamp: the same tree gives the same wheel bytes
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
CACHES = {"__pycache__", ".ansible", ".mypy_cache", ".pytest_cache"}
INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}  # written by pip, not in the wheel


def source_tree() -> Path:
    """The folder holding pyproject.toml and the legion_ci package this process runs from."""
    root = resources.checkout_root()
    if root is None:
        raise ConfigError(
            f"legion-ci runs from {resources.package_dir()}, an installed package, not a source tree "
            "(no pyproject.toml beside it)"
        )
    return root


def _is_source(relative: Path) -> bool:
    return not (CACHES & set(relative.parts)) and relative.suffix != ".pyc"


def _files(root: Path) -> list[Path]:
    found = [root / name for name in SOURCE_FILES if (root / name).is_file()]
    for folder in (PACKAGE, *resources.BUNDLED):
        found += sorted(p for p in (root / folder).rglob("*") if _is_source(p.relative_to(root)) and p.is_file())
    return found


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in _files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_wheel(cache_dir: Path, root: Path | None = None) -> Path:
    """The legion-ci wheel for images, cached under `cache_dir` by the content it is made from: built
    from the source tree this process runs from (or `root`), else repacked from the installed package."""
    root = root or resources.checkout_root()
    if root is None:
        files = installed_files()
        return _cached(cache_dir, _files_hash(files), lambda out: _repack(files, out))
    return _cached(cache_dir, tree_hash(root), lambda out: _pip_wheel(root, out))


def _cached(cache_dir: Path, key: str, make: Callable[[Path], Path]) -> Path:
    target = cache_dir / key
    found = sorted(target.glob("legion_ci-*.whl"))
    if found:
        return found[-1]
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wheel-", dir=cache_dir) as tmp:
        wheel = make(Path(tmp))
        staged = Path(tmp) / "done"
        staged.mkdir()
        shutil.move(str(wheel), staged / wheel.name)
        try:
            os.rename(staged, target)  # atomic: a concurrent build of the same content simply loses
        except OSError:
            if not any(target.glob("legion_ci-*.whl")):
                raise
    _prune(cache_dir, keep=target)
    return sorted(target.glob("legion_ci-*.whl"))[-1]


def _pip_wheel(root: Path, tmp: Path) -> Path:
    """`pip wheel --no-deps` of a copy of the tree (the working tree gets no build/ folder)."""
    src, out = tmp / "src", tmp / "out"
    for path in _files(root):
        dest = src / path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(src)]
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH}, timeout=600
    )
    if done.returncode != 0:
        raise ExternalToolError("pip", "pip wheel --no-deps " + str(root), done.returncode, done.stdout + done.stderr)
    return next(out.glob("legion_ci-*.whl"))


def installed_files() -> dict[str, Path]:
    """The installed legion-ci distribution's files that came from its wheel (archive name -> path)."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise ConfigError(
            f"legion-ci is neither a source tree nor an installed distribution (no {DISTRIBUTION} metadata); "
            "set LEGION_CI_WHEEL to a legion_ci-*.whl to install in images"
        ) from None
    running = Path(resources.package_dir() / "__init__.py").resolve()
    if Path(str(dist.locate_file(f"{PACKAGE}/__init__.py"))).resolve() != running:
        raise ConfigError(
            f"the installed {DISTRIBUTION} distribution does not hold the running package {running.parent} "
            "(expected one install of legion-ci); set LEGION_CI_WHEEL to a legion_ci-*.whl to install in images"
        )
    found: dict[str, Path] = {}
    for entry in dist.files or []:
        name = PurePosixPath(str(entry))
        if name.parts[0] == ".." or CACHES & set(name.parts) or name.suffix == ".pyc":
            continue  # scripts outside site-packages are made again from entry_points.txt at install
        if name.parts[0].endswith(".dist-info") and name.name in INSTALLER_FILES:
            continue
        found[str(name)] = Path(str(dist.locate_file(entry)))
    return found


def _files_hash(files: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for name, path in sorted(files.items()):
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _repack(files: dict[str, Path], tmp: Path) -> Path:
    """A wheel of the installed files, with a new RECORD; named from its dist-info folder and WHEEL tags."""
    dist_info = next(n.split("/")[0] for n in sorted(files) if n.split("/")[0].endswith(".dist-info"))
    wheel_meta = files[f"{dist_info}/WHEEL"].read_text()
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")]
    wheel = tmp / f"{dist_info.removesuffix('.dist-info')}-{tags[0] if tags else 'py3-none-any'}.whl"
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in sorted(files.items()):
            data = path.read_bytes()
            info = zipfile.ZipInfo(name, ZIP_EPOCH)
            info.external_attr = (path.stat().st_mode & 0o755 | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
            records.append(f"{name},{_record_hash(data)},{len(data)}")
        record = f"{dist_info}/RECORD"
        info = zipfile.ZipInfo(record, ZIP_EPOCH)
        info.external_attr = 0o644 << 16
        archive.writestr(info, "\n".join([*records, f"{record},,"]) + "\n")
    return wheel


def _prune(cache_dir: Path, keep: Path) -> None:
    entries = sorted(
        (p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in [p for p in entries if p != keep][KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)

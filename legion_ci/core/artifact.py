"""A trained model on disk: the model file and its manifest.json (legion_ci.core.manifest); packable as a tarball."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from legion_ci.core.errors import ArtifactError
from legion_ci.core.manifest import InputSchema, Manifest, ModelFile

MANIFEST = "manifest.json"
SKOPS_FILE = "model.skops"
JOBLIB_FILE = "model.joblib"
# Types an artifact may contain without being trusted by hand: scikit-learn, numpy and scipy.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_id(identity: dict[str, Any]) -> str:
    """Content address of a training: same commit, source, data, params and seed give the same id."""
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model: Any, folder: Path) -> ModelFile:
    """Save with skops (safe to load); fall back to joblib with a sha256 checked before loading."""
    import skops.io as sio

    try:
        sio.dump(model, folder / SKOPS_FILE)
        return ModelFile(format="skops", file=SKOPS_FILE, sha256=sha256_file(folder / SKOPS_FILE))
    except Exception:
        (folder / SKOPS_FILE).unlink(missing_ok=True)
    import joblib

    joblib.dump(model, folder / JOBLIB_FILE)
    return ModelFile(format="joblib", file=JOBLIB_FILE, sha256=sha256_file(folder / JOBLIB_FILE))


@dataclass(frozen=True)
class Artifact:
    """An artifact folder; `open` checks it is complete."""

    path: Path
    manifest: Manifest

    @classmethod
    def open(cls, path: str | Path) -> Artifact:
        folder = Path(path)
        file = folder / MANIFEST
        if not file.is_file():
            raise ArtifactError(f"{folder}: not an artifact (no {MANIFEST})")
        return cls(folder, Manifest.load(file))

    @property
    def id(self) -> str:
        return self.manifest.artifact_id

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.manifest.metrics)

    @property
    def schema(self) -> InputSchema:
        return self.manifest.input_schema

    @property
    def feature_names(self) -> list[str]:
        return self.schema.names

    @property
    def task(self) -> str:
        return self.manifest.task

    def verify(self) -> Path:
        """The model file, after checking its sha256 against the manifest."""
        info = self.manifest.model
        file = self.path / info.file
        if not file.is_file():
            raise ArtifactError(f"{self.path}: model file {info.file} is missing")
        actual = sha256_file(file)
        if actual != info.sha256:
            raise ArtifactError(
                f"{file}: sha256 {actual[:12]}… does not match the manifest's {info.sha256[:12]}…; refusing to load"
            )
        return file

    @cached_property
    def model(self) -> Any:
        """The fitted estimator, loaded only after its integrity (and, for skops, its types) are checked."""
        file = self.verify()
        if self.manifest.model.format == "skops":
            import skops.io as sio

            untrusted = sio.get_untrusted_types(file=file)
            refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
            if refused:
                raise ArtifactError(f"{file}: holds types outside scikit-learn/numpy/scipy: {refused}")
            return sio.load(file, trusted=untrusted)
        import joblib

        return joblib.load(file)

    def pack(self, dest: str | Path) -> Path:
        """A gzipped tarball of the artifact for transport (written atomically)."""
        target = Path(dest)
        if target.is_dir():
            target = target / f"{self.name}-{self.version}-{self.id}.tar.gz"
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".pack-")
        os.close(fd)
        with tarfile.open(tmp, "w:gz") as tar:
            for item in sorted(self.path.iterdir()):
                tar.add(item, arcname=item.name)
        os.replace(tmp, target)
        return target


def unpack(tarball: str | Path, dest: str | Path) -> Artifact:
    """Extract a packed artifact into `dest` (refusing links and paths outside it) and open it."""
    target = Path(dest)
    staging = Path(tempfile.mkdtemp(dir=target.parent if target.parent.exists() else None, prefix=".unpack-"))
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            tar.extractall(staging, filter="data")
        Artifact.open(staging).verify()
        if target.exists():
            shutil.rmtree(staging)
        else:
            os.replace(staging, target)
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArtifactError(f"{tarball}: cannot unpack artifact: {exc}") from None
    return Artifact.open(target)


def publish(staging: Path, store: Path) -> Artifact:
    """Move a finished staging folder into the store under its artifact id; an existing one wins."""
    art = Artifact.open(staging)
    final = store / art.name / art.id
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, final)
    except OSError:
        if not (final / MANIFEST).is_file():
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return Artifact.open(final)

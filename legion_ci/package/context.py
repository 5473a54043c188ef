"""The build context, assembled from an allowlist: nothing reaches the Docker engine that is not named
here (no .env, no key file, no stray folder of the artifact or the repository)."""

from __future__ import annotations

import io
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from legion_ci.core.artifact import MANIFEST, Artifact
from legion_ci.core.errors import ArtifactError

SPOOL_BYTES = 64 << 20  # contexts up to this size stay in memory


@dataclass
class BuildContext:
    """{path in the context: file on disk or bytes}."""

    files: dict[str, Path | bytes] = field(default_factory=dict)

    def add(self, name: str, source: Path | bytes) -> None:
        if name in self.files:
            raise ValueError(f"build context: {name} added twice")
        self.files[name] = source

    def names(self) -> list[str]:
        return sorted(self.files)

    def size(self) -> int:
        return sum(len(s) if isinstance(s, bytes) else s.stat().st_size for s in self.files.values())

    def tar(self) -> IO[bytes]:
        """An uncompressed tar with fixed owners, modes and times, so the same files give the same layers."""
        out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - returned open
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for directory in sorted({str(Path(n).parent) for n in self.files} - {"."}):
                info = tarfile.TarInfo(directory)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            for name in self.names():
                source = self.files[name]
                data = source if isinstance(source, bytes) else source.read_bytes()
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        out.seek(0)
        return out


def model_files(art: Artifact) -> dict[str, Path]:
    """The artifact files an image needs: the manifest and the model file it names (checked by sha256).
    Everything else in the artifact folder (the held-out data, notes) stays out."""
    name = art.manifest.model.file
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        raise ArtifactError(f"{art.path / MANIFEST}: model.file {name!r} is not a plain file name")
    return {f"model/{MANIFEST}": art.path / MANIFEST, f"model/{name}": art.verify()}


def assemble(
    art: Artifact,
    dockerfile: str,
    requirements: str,
    wheel: Path,
    ca_bundle: Path | None = None,
    pip_conf: str | None = None,
) -> BuildContext:
    """Dockerfile, requirements.txt, wheels/<legion-ci wheel>, model/<manifest and model file>, and the
    deps stage's optional build/ca.pem and build/pip.conf."""
    context = BuildContext()
    context.add("Dockerfile", dockerfile.encode())
    context.add("requirements.txt", requirements.encode())
    context.add(f"wheels/{wheel.name}", wheel)
    for name, path in model_files(art).items():
        context.add(name, path)
    if ca_bundle is not None:
        context.add("build/ca.pem", ca_bundle)
    if pip_conf is not None:
        context.add("build/pip.conf", pip_conf.encode())
    return context

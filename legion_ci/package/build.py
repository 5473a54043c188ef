"""Package one artifact: render, assemble the context, build, tag, push. The whole flow reads top to bottom."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from legion_ci.core.artifact import Artifact
from legion_ci.core.errors import ConfigError
from legion_ci.package import metadata
from legion_ci.package.context import BuildContext, assemble
from legion_ci.package.dockerfile import DockerfileInputs, render
from legion_ci.package.engine import Engine, Log
from legion_ci.package.options import ENV_REGISTRY, PackageOptions, registry_auth
from legion_ci.package.requirements import requirements
from legion_ci.package.wheel import build_wheel


@dataclass(frozen=True)
class PackagedImage:
    """What a packaging produced; `digest` is None when the image was not pushed."""

    image: str  # REPOSITORY:VERSION-ARTIFACTID8, the reference unique to this artifact
    references: list[str]
    image_id: str
    digest: str | None
    size_bytes: int
    seconds: float

    @property
    def pinned(self) -> str | None:
        """REPOSITORY@DIGEST: what a deployment should run."""
        return f"{self.image.rsplit(':', 1)[0]}@{self.digest}" if self.digest else None


def prepare(
    art: Artifact, options: PackageOptions, cache_dir: Path, model_dir: Path | None = None
) -> tuple[str, str, BuildContext]:
    """(Dockerfile, requirements.txt, context) for the artifact; touches no Docker engine."""
    source = options.source_url or (metadata.git_remote(model_dir) if model_dir else None)
    wheel = options.wheel or build_wheel(cache_dir / "wheels")
    inputs = DockerfileInputs(
        name=art.name,
        version=art.version,
        artifact_id=art.id,
        base_image=options.base_image,
        wheel=wheel.name,
        labels=metadata.labels(art, options.base_image, source),
        ca_bundle=options.ca_bundle is not None,
        pip_conf=options.pip_index_url is not None,
    )
    dockerfile, reqs = render(inputs), requirements(art, wheel)
    pip_conf = f"[global]\nindex-url = {options.pip_index_url}\n" if options.pip_index_url else None
    return dockerfile, reqs, assemble(art, dockerfile, reqs, wheel, options.ca_bundle, pip_conf)


def package(
    art: Artifact, options: PackageOptions, workdir: Path, cache_dir: Path, log: Log, model_dir: Path | None = None
) -> PackagedImage:
    """Build the artifact's image, tag it VERSION and VERSION-ARTIFACTID8, push both when asked.
    The rendered Dockerfile, requirements.txt and the context's file list are kept in `workdir`."""
    if options.push and not options.registry:
        raise ConfigError(f"nothing to push to: set {ENV_REGISTRY} (e.g. 127.0.0.1:5000), or build without pushing")
    auth = registry_auth(options) if options.push else None  # checked before the long build, never logged
    clock = time.monotonic()
    engine = Engine.connect()
    name = metadata.image_name(art, options.registry, options.namespace, options.extra_tags)
    dockerfile, reqs, context = prepare(art, options, cache_dir, model_dir)
    _write(workdir / "Dockerfile", dockerfile)
    _write(workdir / "requirements.txt", reqs)
    _write(workdir / "context.txt", "\n".join(context.names()) + "\n")
    log(f"context: {', '.join(context.names())} ({context.size() / 1e6:.1f} MB)")
    engine.ensure_image(options.base_image, log)
    with context.tar() as tar:
        image_id = engine.build(tar, name.references[0], log)
    for tag in name.tags:
        engine.tag(image_id, name.repository, tag)
    digest = None
    if options.push:
        for tag in name.tags:
            log(f"pushing {name.repository}:{tag}")
            digest = engine.push(name.repository, tag, auth, log)
    return PackagedImage(
        name.unique, name.references, image_id, digest, engine.image_size(image_id), time.monotonic() - clock
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)

"""Stage package: the candidate as a Docker image with its lineage in labels, pushed to the image
registry, its digest recorded on the version. The local demo needs no Docker: see `skip_reason`."""

from __future__ import annotations

import time

from legion_ci.core.errors import StageError
from legion_ci.core.status import StageStatus
from legion_ci.package.build import package
from legion_ci.package.options import ENV_REGISTRY, PackageOptions
from legion_ci.pipeline.stages.base import StageContext, StageResult


def skip_reason(target: str, registry: str | None) -> str | None:
    """Why the stage does no work here, or None when it must build and push.

    The local target runs model servers as processes, so without an image registry an image would
    serve nobody: the stage is skipped. Kubernetes pulls images, so it always packages (and fails
    without a registry or a Docker engine); so does any run that names a registry."""
    if target == "local" and not registry:
        return f"skipped: target is local and no image registry is configured (set {ENV_REGISTRY} to build and push)"
    return None


def run(ctx: StageContext) -> StageResult:
    options = PackageOptions.from_settings(ctx.settings)
    reason = skip_reason(ctx.target, options.registry)
    if reason:
        return StageResult(StageStatus.SKIPPED, reason, {"skipped": True})
    if not options.registry:
        raise StageError(
            "package",
            f"target {ctx.target!r} pulls images from a registry: set {ENV_REGISTRY} (e.g. registry.example.com/ml)",
        )
    version, art = ctx.candidate, ctx.candidate_artifact
    workdir = ctx.stage_dir()
    log_file = workdir / "build.log"
    clock = time.monotonic()
    with log_file.open("w", encoding="utf-8") as build_log:

        def log(line: str) -> None:
            build_log.write(f"{time.monotonic() - clock:7.1f}s {line}\n")  # the file says where the time went
            ctx.log(line)

        built = package(art, options, workdir, ctx.settings.home / "cache", log, ctx.model_dir)
    if built.digest is None:  # package() pushes whenever a registry is set
        raise StageError("package", f"{built.image} was built but not pushed")
    ctx.registry.set_image(version.id, built.image, built.digest)
    return StageResult(
        StageStatus.PASSED,
        f"pushed {built.image} ({built.digest[:19]}…, {built.size_bytes / 1e6:.0f} MB) in {built.seconds:.0f}s",
        {
            "image": built.image,
            "digest": built.digest,
            "pinned": built.pinned,
            "references": built.references,
            "image_id": built.image_id,
            "size_bytes": built.size_bytes,
            "build_log": str(log_file),
        },
    )

"""Stage train: run train.py in its own process, evaluate on the held-out split, publish and register
the artifact. Same commit, source, data, params and seed reuse the artifact instead of training again."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from legion_ci.core import lineage
from legion_ci.core.artifact import MANIFEST, Artifact, artifact_id, write_json_atomic
from legion_ci.core.errors import ArtifactError, NotFoundError, StageFailed
from legion_ci.core.manifest import (
    DataLineage,
    ExportedModel,
    FeedbackWindow,
    GitInfo,
    JenkinsBuild,
    LoggedMetrics,
    Manifest,
    describe_invalid,
)
from legion_ci.core.registry import VersionRecord
from legion_ci.core.status import StageStatus
from legion_ci.core.store import Store, manifest_digest, open_version
from legion_ci.pipeline.stages.base import StageContext, StageResult, keeps_outputs
from legion_ci.quality.metrics import evaluate
from legion_ci.toolchain import ENV_EXTRA_DATA, ENV_MODEL_DIR, ENV_OUTPUT_DIR, EXPORT_FILE, METRICS_FILE
from legion_ci.training.data import Dataset, load_dataset, split

HOLDOUT = "holdout.csv"


def identity(ctx: StageContext, data_fingerprint: str) -> dict[str, Any]:
    """The inputs that decide an artifact: a change to any of them is a new artifact."""
    spec = ctx.loaded.spec
    return {
        "name": spec.name,
        "version": spec.version,
        "commit": lineage.git_info(ctx.model_dir)["commit"],
        "source": lineage.source_fingerprint(ctx.model_dir),
        "data": data_fingerprint,
        "params": spec.train.params,
        "seed": spec.train.seed,
        "test_size": spec.train.test_size,
        "stratify": spec.train.stratify,
    }


@keeps_outputs
def run(ctx: StageContext) -> StageResult:
    spec = ctx.loaded.spec
    extra = [Path(p) for p in ctx.options.extra_data]
    window = None
    if ctx.run.flow == "retrain":
        fed, window = feedback_data(ctx)
        extra += fed
    dataset = load_dataset(spec.train, ctx.model_dir, extra)
    ident = identity(ctx, dataset.fingerprint)
    aid = artifact_id(ident)
    existing = _reusable(ctx, spec.name, aid)
    if existing is not None:
        production = ctx.registry.alias(spec.name, "production")
        halt = None
        if ctx.run.flow == "retrain" and production is not None and production.id == existing.id:
            halt = "no new data or code since production was trained; nothing to retrain"
        shutil.copyfile(open_version(ctx.settings, existing).path / MANIFEST, ctx.stage_dir() / MANIFEST)
        return StageResult(
            StageStatus.PASSED,
            f"reused artifact {aid} (same commit, source, data, params and seed)",
            {"version_id": existing.id, "artifact_id": aid, "path": existing.path, "reused": True},
            halt=halt,
        )

    version = ctx.registry.free_version(spec.name, spec.version)
    bumped = (
        f" (version {spec.version} names another artifact of {spec.name}; registered as {version}: "
        "set `version` in legion.yaml to choose)"
        if version != spec.version
        else ""
    )
    if bumped:
        ctx.log(bumped.strip(" ()"))
    store = Store.from_settings(ctx.settings)
    staging = store.staging_dir(spec.name, aid)
    try:
        _train(ctx, staging, extra)
        manifest = _manifest(ctx, staging, ident, aid, dataset, extra, version, window)
        parts = split(dataset, spec.train)
        holdout = parts.x_test.copy()
        holdout["target"] = parts.y_test.to_numpy()
        holdout.to_csv(staging / HOLDOUT, index=False)
        write_json_atomic(staging / MANIFEST, manifest.to_json())
        art = Artifact.open(staging)
        manifest = manifest.with_metrics(evaluate(art.model, parts.x_test, parts.y_test, art.task))
        write_json_atomic(staging / MANIFEST, manifest.to_json())
        published = store.publish(staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    art, uri = published.artifact, published.uri
    record, created = ctx.registry.register_version(art.manifest, uri, manifest_digest(art.path))
    shutil.copyfile(art.path / MANIFEST, ctx.stage_dir() / MANIFEST)  # archived by Jenkins with the run folder
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(art.metrics.items()))
    verb = "registered" if created else "already registered"
    return StageResult(
        StageStatus.PASSED,
        f"{verb} {spec.name} {art.version} artifact {aid}: {metrics}{bumped}",
        {"version_id": record.id, "artifact_id": aid, "path": uri, "reused": not created},
    )


def feedback_data(ctx: StageContext) -> tuple[list[Path], FeedbackWindow | None]:
    """All the ground truth the store holds, each labelled request once (its newest valid label), checked
    against the production model's target, exported once per run (a rerun of the stage reads the same
    file, so it trains on the same rows). The window is cumulative and does not depend on which versions
    were registered since: a halted or failed retrain consumes nothing, late ground truth for an old
    prediction is used, and the lineage (`data.feedback`) records rows, time range and fingerprint, and
    how many labels are new since what trained production. A rerun on another agent takes the two files
    from the store (the graph keeps them), never from the workspace of the first attempt."""
    from legion_ci.feedback.export import export_feedback
    from legion_ci.feedback.labels import Target

    name = ctx.loaded.spec.name
    out, record = ctx.stage_dir() / "feedback.csv", ctx.stage_dir() / "feedback.json"
    for local in (out, record):
        if not local.is_file():
            kept = ctx.earlier_file("train", local.name)
            if kept is not None and kept != local:
                shutil.copyfile(kept, local)
    if not out.is_file():
        production = ctx.registry.alias(name, "production")
        versions = ctx.registry.versions(name)
        basis = production or (versions[-1] if versions else None)
        target = None
        if basis is not None:
            exported = basis.manifest.model
            target = Target.of(exported.task, exported.classes, exported.target, f"model {name} {basis.version}")
        try:
            done = export_feedback(ctx.settings, name, None, out, target)
        except NotFoundError:
            out.write_text("")
            record.unlink(missing_ok=True)
            ctx.log("feedback: no capture store for this model; training on the spec's data alone")
            return [], None
        prior = production.manifest.data.feedback if production is not None else None
        since = datetime.fromisoformat(prior.last_feedback).timestamp() if prior and prior.last_feedback else None
        window = FeedbackWindow(
            rows=done.rows,
            requests=done.requests,
            fingerprint=done.fingerprint,
            first_prediction=_iso(done.first_prediction),
            last_prediction=_iso(done.last_prediction),
            last_feedback=_iso(done.last_feedback),
            new_requests=done.labelled_after(since),
            left_out=done.left_out,
        )
        write_json_atomic(record, window.to_json())
        ctx.log(f"feedback: {done.summary()}")
        if production is not None:
            trained = f"{prior.requests} labelled request(s) up to {prior.last_feedback}" if prior else "no feedback"
            ctx.log(
                f"feedback: {window.new_requests} labelled request(s) new since production "
                f"{production.version} (trained on {trained})"
            )
    used = FeedbackWindow.model_validate_json(record.read_text()) if record.is_file() else None
    return ([out] if used is not None and used.rows > 0 else []), used


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds") if ts is not None else None


def _reusable(ctx: StageContext, name: str, aid: str) -> VersionRecord | None:
    if ctx.options.retrain_from_scratch:
        return None
    try:
        version = ctx.registry.version_by_artifact(name, aid)
        open_version(ctx.settings, version)  # fetched and checked: a damaged one is trained again
        return version
    except (NotFoundError, ArtifactError):  # unknown, or damaged on disk: train again
        return None


def _train(ctx: StageContext, staging: Path, extra: list[Path]) -> None:
    """Run train.py; its output streams to the log and to train.log in the run folder."""
    import os

    spec = ctx.loaded.spec
    env = {
        **os.environ,
        ENV_MODEL_DIR: str(ctx.model_dir),
        ENV_OUTPUT_DIR: str(staging),
        ENV_EXTRA_DATA: os.pathsep.join(str(p) for p in extra),
        "PYTHONUNBUFFERED": "1",
    }
    log_file = ctx.stage_dir() / "train.log"
    tail: list[str] = []
    with (
        log_file.open("w", encoding="utf-8") as log,
        subprocess.Popen(
            [sys.executable, spec.train.entrypoint],
            cwd=ctx.model_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc,
    ):
        assert proc.stdout is not None
        in_traceback = False
        for line in proc.stdout:
            log.write(line)
            tail = [*tail, line.rstrip()][-30:]
            # The full traceback stays in train.log; the console gets the error line and the log's path.
            if line.startswith("Traceback (most recent call last)"):
                in_traceback = True
            elif in_traceback and not line[:1].isspace():
                in_traceback = False
            if not in_traceback:
                ctx.log(line.rstrip())
    if proc.returncode != 0:
        last = next((t for t in reversed(tail) if t.strip()), "(no output)")
        raise StageFailed(
            "train",
            f"{spec.train.entrypoint} exited with status {proc.returncode}: {last.strip()} (full output: {log_file})",
        )
    if not (staging / EXPORT_FILE).is_file():
        raise StageFailed(
            "train",
            f"{spec.train.entrypoint} finished without exporting a model; call "
            f"legion_ci.toolchain.export(model) after fitting it (output: {log_file})",
        )


def _manifest(
    ctx: StageContext,
    staging: Path,
    ident: dict[str, Any],
    aid: str,
    dataset: Dataset,
    extra: list[Path],
    version: str,
    window: FeedbackWindow | None,
) -> Manifest:
    """Lineage from here, the model's own record from export.json (in its namespace, so it cannot
    overwrite a lineage key), metrics train.py logged."""
    spec = ctx.loaded.spec
    export_file, logged_file = staging / EXPORT_FILE, staging / METRICS_FILE
    try:
        exported = ExportedModel.model_validate_json(export_file.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise StageFailed(
            "train",
            describe_invalid(f"{EXPORT_FILE} written by {spec.train.entrypoint} (toolchain.export) is invalid", exc),
        ) from None
    try:
        logged = LoggedMetrics.validate_json(logged_file.read_text(encoding="utf-8")) if logged_file.is_file() else {}
    except ValidationError as exc:
        raise StageFailed(
            "train",
            describe_invalid(
                f"{METRICS_FILE} written by {spec.train.entrypoint} (toolchain.log_metric) is invalid", exc
            ),
        ) from None
    export_file.unlink()
    logged_file.unlink(missing_ok=True)
    return Manifest(
        name=spec.name,
        version=version,
        artifact_id=aid,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        git=GitInfo(**lineage.git_info(ctx.model_dir)),
        source_fingerprint=ident["source"],
        data=DataLineage(
            source=dataset.source, fingerprint=dataset.fingerprint, extra=[str(p) for p in extra], feedback=window
        ),
        params=spec.train.params,
        seed=spec.train.seed,
        metrics=logged,
        logged_metrics=sorted(logged),
        packages=lineage.package_versions(),
        jenkins=JenkinsBuild(**build) if (build := lineage.jenkins_build()) else None,
        run_id=ctx.run.id,
        model=exported,
    )

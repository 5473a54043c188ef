"""The registry: models, versions, aliases, runs with per-stage results, deployments and locks.

The tables below describe the schema for queries; the schema itself is made by the Alembic
migrations in legion_ci/core/migrations (a test keeps the two equal).

SQLite under LEGION_HOME by default (WAL, writes in BEGIN IMMEDIATE transactions so concurrent
processes queue instead of failing); any SQLAlchemy URL works, PostgreSQL included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from legion_ci.core.errors import NotFoundError, RegistryError
from legion_ci.core.manifest import Manifest
from legion_ci.core.registry_schema import ensure_current
from legion_ci.core.settings import Settings
from legion_ci.core.status import ACTIVE_DEPLOYMENT, DeploymentStatus, RunStatus, StageStatus, stored

metadata = MetaData()
models = Table("models", metadata, Column("name", String(64), primary_key=True), Column("created_at", String(40)))
versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(64), ForeignKey("models.name"), nullable=False),
    Column("version", String(64), nullable=False),
    Column("artifact_id", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("manifest", JSON, nullable=False),
    Column("image", Text),
    Column("image_digest", String(100)),
    Column("created_at", String(40)),
    Column("manifest_digest", String(100)),  # "sha256:<hex>" of manifest.json; NULL on rows before 0003
    UniqueConstraint("model", "artifact_id", name="uq_version_artifact"),
)
aliases = Table(
    "aliases",
    metadata,
    Column("model", String(64), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("updated_at", String(40)),
)
runs = Table(
    "runs",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("model", String(64), nullable=False),
    Column("model_dir", Text, nullable=False),
    Column("flow", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", String(40)),
    Column("updated_at", String(40)),
)
stage_results = Table(
    "stage_results",
    metadata,
    Column("run_id", String(200), ForeignKey("runs.id"), primary_key=True),
    Column("stage", String(32), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("summary", Text),
    Column("outputs", JSON),
    Column("attempts", Integer, nullable=False, default=1),
    Column("started_at", String(40)),
    Column("finished_at", String(40)),
    Column("seconds", Float),
)
deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(64), nullable=False),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("target", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("weight", Integer, nullable=False),
    Column("endpoints", JSON),  # [{"url": ..., "pid": ...}, ...] for local replicas
    Column("detail", JSON),
    Column("created_at", String(40)),
    Column("updated_at", String(40)),
)
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("version_id", Integer, ForeignKey("versions.id")),
    Column("run_id", String(200)),
    Column("summary", Text),
    Column("detail", JSON),
    Column("created_at", String(40)),
    Index("ix_events_model", "model", "id"),
)
locks = Table(
    "locks",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("owner", Text, nullable=False),
    Column("host", String(255)),
    Column("pid", Integer),
    Column("acquired_at", String(40)),
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class VersionRecord:
    id: int
    model: str
    version: str
    artifact_id: str
    path: str
    manifest: Manifest
    image: str | None
    image_digest: str | None
    created_at: str
    manifest_digest: str | None = None  # sha256 of the manifest.json train published; None: an older row

    @property
    def label(self) -> str:
        return f"{self.model} {self.version} ({self.artifact_id[:8]})"


def _version(row: Row[Any]) -> VersionRecord:
    """A versions row, its stored manifest parsed (manifests of every readable schema version)."""
    fields = dict(row._mapping)
    source = f"registry version {fields['id']} ({fields['model']} {fields['version']})"
    fields["manifest"] = Manifest.parse(fields["manifest"], source)
    return VersionRecord(**fields)


@dataclass(frozen=True)
class RunRecord:
    id: str
    model: str
    model_dir: str
    flow: str
    status: RunStatus
    created_at: str
    updated_at: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", stored(RunStatus, self.status))  # the stored string, as a member


@dataclass(frozen=True)
class StageRecord:
    run_id: str
    stage: str
    status: StageStatus
    summary: str
    outputs: dict[str, Any]
    attempts: int
    started_at: str | None
    finished_at: str | None
    seconds: float | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", stored(StageStatus, self.status))


@dataclass(frozen=True)
class EventRecord:
    """Something decided about a model, with its evidence (a rollout evaluation's decision)."""

    id: int
    model: str
    kind: str
    action: str
    version_id: int | None
    run_id: str | None
    summary: str
    detail: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class DeploymentRecord:
    id: int
    model: str
    version_id: int
    target: str
    status: DeploymentStatus
    weight: int
    endpoints: list[dict[str, Any]]
    detail: dict[str, Any]
    created_at: str
    updated_at: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", stored(DeploymentStatus, self.status))


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN IMMEDIATE
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def open_engine(url: str) -> Engine:
    """An engine for the registry at `url` (SQLite: its folder created, WAL, writes in BEGIN IMMEDIATE)."""
    try:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30})
            _sqlite_setup(engine)
            return engine
        return create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError) as exc:
        raise RegistryError(f"cannot open registry {safe_url(url)}: {exc}") from None


class Registry:
    """All registry reads and writes go through here. Opening one checks its schema revision
    (and may upgrade it: legion_ci.core.registry_schema says when)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = open_engine(url)
        try:
            ensure_current(self.engine, self._safe_url())
        except (SQLAlchemyError, ImportError) as exc:
            raise RegistryError(f"cannot open registry {self._safe_url()}: {exc}") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        return cls(settings.registry_url)

    def _safe_url(self) -> str:
        return safe_url(self.url)

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """One transaction; database errors become RegistryError."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise RegistryError(f"registry {self._safe_url()}: {exc.__class__.__name__}: {exc}") from None

    def close(self) -> None:
        self.engine.dispose()

    # -- models and versions -------------------------------------------------------------
    def register_version(
        self, manifest: Manifest, path: str, manifest_digest: str | None = None
    ) -> tuple[VersionRecord, bool]:
        """Add a version for an artifact; the same artifact registered again returns the first record.
        `manifest_digest` ("sha256:<hex>" of the published manifest.json) is what every fetch checks.

        A version string names one artifact of a model: another artifact under a version string already
        registered is refused (RegistryError naming both; `free_version` picks one that is free).
        Concurrent writers race on two unique keys: the model row and the (model, artifact) row. A
        loser of either race retries its whole transaction, which then sees the winner's rows.
        """
        name, aid = manifest.name, manifest.artifact_id
        for _attempt in range(5):
            try:
                with self.tx() as conn:
                    if conn.execute(select(models.c.name).where(models.c.name == name)).first() is None:
                        conn.execute(models.insert().values(name=name, created_at=now()))
                    existing = conn.execute(
                        select(versions).where(versions.c.model == name, versions.c.artifact_id == aid)
                    ).first()
                    if existing is not None:
                        return _version(existing), False
                    taken = conn.execute(
                        select(versions.c.artifact_id).where(
                            versions.c.model == name, versions.c.version == manifest.version
                        )
                    ).first()
                    if taken is not None and taken[0] == aid:
                        continue  # a concurrent writer registered this very artifact between the reads
                    if taken is not None:
                        raise RegistryError(
                            f"model {name!r} version {manifest.version!r} is already registered for artifact "
                            f"{taken[0]}, so artifact {aid} cannot take it; one version string names one "
                            f"artifact (bump `version` in legion.yaml)"
                        )
                    conn.execute(
                        versions.insert().values(
                            model=name,
                            version=manifest.version,
                            artifact_id=aid,
                            path=path,
                            manifest=manifest.to_json(),
                            created_at=now(),
                            manifest_digest=manifest_digest,
                        )
                    )
                return self.version_by_artifact(name, aid), True
            except IntegrityError:
                continue  # a concurrent writer inserted the model or this artifact first: look again
        raise RegistryError(f"registry {self._safe_url()}: could not register {name} {aid} after 5 attempts")

    def free_version(self, model: str, wanted: str) -> str:
        """`wanted` when no artifact of `model` has it yet, else the lowest higher patch that is free
        (1.0.0 taken: 1.0.1; a pre-release or build suffix is kept: 1.0.0-rc1 taken: 1.0.1-rc1)."""
        taken = {v.version for v in self.versions(model)}
        if wanted not in taken:
            return wanted
        core, sep, suffix = wanted.partition("-") if "-" in wanted.split("+")[0] else wanted.partition("+")
        parts = core.split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise RegistryError(f"model {model!r} version {wanted!r} is taken and is not MAJOR.MINOR.PATCH to bump")
        major, minor, patch = (int(p) for p in parts)
        while True:
            patch += 1
            candidate = f"{major}.{minor}.{patch}{sep}{suffix}"
            if candidate not in taken:
                return candidate

    def version_by_artifact(self, model: str, artifact_id: str) -> VersionRecord:
        with self.tx() as conn:
            row = conn.execute(
                select(versions).where(versions.c.model == model, versions.c.artifact_id == artifact_id)
            ).first()
        if row is None:
            raise NotFoundError(f"model {model!r} has no artifact {artifact_id!r}")
        return _version(row)

    def registered_digest(self, ref: str) -> str | None:
        """The manifest digest recorded for the artifact a row names by `ref` (`.../NAME/ARTIFACT_ID`, the
        row's own path or URI); None when no row names it so, or the row predates digests."""
        ref = ref.rstrip("/")
        *_, model, artifact_id = ["", "", *ref.split("/")]
        try:
            version = self.version_by_artifact(model, artifact_id)
        except NotFoundError:
            return None
        return version.manifest_digest if version.path.rstrip("/") == ref else None

    def version_by_id(self, version_id: int) -> VersionRecord:
        with self.tx() as conn:
            row = conn.execute(select(versions).where(versions.c.id == version_id)).first()
        if row is None:
            raise NotFoundError(f"no version with id {version_id}")
        return _version(row)

    def resolve(self, model: str, ref: str) -> VersionRecord:
        """A version by alias (production), artifact id (prefix) or version string (newest of it)."""
        alias = self.alias(model, ref)
        if alias is not None:
            return alias
        candidates = [v for v in self.versions(model) if v.artifact_id.startswith(ref) or v.version == ref]
        if not candidates:
            known = ", ".join(sorted({v.version for v in self.versions(model)})) or "none"
            raise NotFoundError(f"model {model!r} has no version, alias or artifact {ref!r} (versions: {known})")
        return candidates[-1]

    def versions(self, model: str) -> list[VersionRecord]:
        with self.tx() as conn:
            rows = conn.execute(select(versions).where(versions.c.model == model).order_by(versions.c.id)).all()
        return [_version(r) for r in rows]

    def model_names(self) -> list[str]:
        with self.tx() as conn:
            return [r[0] for r in conn.execute(select(models.c.name).order_by(models.c.name))]

    def run_model_names(self) -> list[str]:
        """Every model that has a run, registered versions or not (a run may fail before its first version)."""
        with self.tx() as conn:
            return [r[0] for r in conn.execute(select(runs.c.model).distinct().order_by(runs.c.model))]

    def remove_version(self, version_id: int) -> None:
        """Delete a version that nothing uses, with the retired deployments that name it (events that name it
        keep their text and lose the link). In the same transaction, refuses (RegistryError) a version an
        alias points at or an active deployment serves."""
        with self.tx() as conn:
            row = conn.execute(select(versions).where(versions.c.id == version_id).with_for_update()).first()
            if row is None:
                raise NotFoundError(f"no version with id {version_id}")
            label = f"{row.model} {row.version} ({row.artifact_id[:8]})"
            named = conn.execute(select(aliases.c.alias).where(aliases.c.version_id == version_id)).scalars().all()
            if named:
                raise RegistryError(f"{label} is {', '.join(sorted(named))}; not removed")
            live = conn.execute(
                select(deployments.c.id).where(
                    deployments.c.version_id == version_id,
                    deployments.c.status.in_([s.value for s in ACTIVE_DEPLOYMENT]),
                )
            ).first()
            if live is not None:
                raise RegistryError(f"{label} is deployed (deployment {live[0]}); not removed")
            conn.execute(deployments.delete().where(deployments.c.version_id == version_id))
            # Rollout decisions stay as history; their summary and detail still name the version.
            conn.execute(events.update().where(events.c.version_id == version_id).values(version_id=None))
            conn.execute(versions.delete().where(versions.c.id == version_id))

    def remove_run(self, run_id: str) -> None:
        """Delete a run and its stages' records."""
        with self.tx() as conn:
            conn.execute(stage_results.delete().where(stage_results.c.run_id == run_id))
            conn.execute(runs.delete().where(runs.c.id == run_id))

    def set_image(self, version_id: int, image: str, digest: str) -> None:
        with self.tx() as conn:
            conn.execute(versions.update().where(versions.c.id == version_id).values(image=image, image_digest=digest))

    # -- aliases -------------------------------------------------------------------------
    def alias(self, model: str, alias: str) -> VersionRecord | None:
        with self.tx() as conn:
            row = conn.execute(
                select(versions)
                .join(aliases, aliases.c.version_id == versions.c.id)
                .where(aliases.c.model == model, aliases.c.alias == alias)
            ).first()
        return _version(row) if row else None

    def set_alias(self, model: str, alias: str, version_id: int) -> int | None:
        """Point `alias` at a version; returns the version id it pointed at before (None if new)."""
        with self.tx() as conn:
            row = conn.execute(
                select(aliases.c.version_id).where(aliases.c.model == model, aliases.c.alias == alias)
            ).first()
            if row is None:
                conn.execute(aliases.insert().values(model=model, alias=alias, version_id=version_id, updated_at=now()))
                return None
            conn.execute(
                aliases.update()
                .where(aliases.c.model == model, aliases.c.alias == alias)
                .values(version_id=version_id, updated_at=now())
            )
            return int(row[0])

    def aliases_of(self, model: str) -> dict[str, int]:
        with self.tx() as conn:
            rows = conn.execute(select(aliases.c.alias, aliases.c.version_id).where(aliases.c.model == model)).all()
        return {r[0]: r[1] for r in rows}

    # -- runs ----------------------------------------------------------------------------
    def ensure_run(self, run_id: str, model: str, model_dir: str, flow: str) -> RunRecord:
        """Create the run if it is new; an existing run is returned as it is (reruns reuse it)."""
        try:
            with self.tx() as conn:
                if conn.execute(select(runs.c.id).where(runs.c.id == run_id)).first() is None:
                    conn.execute(
                        runs.insert().values(
                            id=run_id,
                            model=model,
                            model_dir=model_dir,
                            flow=flow,
                            status=RunStatus.RUNNING,
                            created_at=now(),
                            updated_at=now(),
                        )
                    )
        except IntegrityError:
            pass
        run = self.run(run_id)
        if run.model != model:
            raise RegistryError(f"run {run_id!r} belongs to model {run.model!r}, not {model!r}; use another --run-id")
        return run

    def run(self, run_id: str) -> RunRecord:
        with self.tx() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"no run {run_id!r} (list runs with `legion-ci runs`)")
        return RunRecord(**row._mapping)

    def runs(self, model: str | None = None, limit: int | None = 20) -> list[RunRecord]:
        """The newest runs first (of one model, or all); `limit` None: every run."""
        query = select(runs).order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit)
        if model:
            query = query.where(runs.c.model == model)
        with self.tx() as conn:
            return [RunRecord(**r._mapping) for r in conn.execute(query).all()]

    def set_run_status(self, run_id: str, status: RunStatus) -> None:
        with self.tx() as conn:
            conn.execute(
                runs.update().where(runs.c.id == run_id).values(status=RunStatus(status).value, updated_at=now())
            )

    def record_stage(
        self,
        run_id: str,
        stage: str,
        status: StageStatus,
        summary: str = "",
        outputs: dict[str, Any] | None = None,
        started_at: str | None = None,
        seconds: float | None = None,
    ) -> None:
        """Insert or update one stage's result; attempts counts the reruns."""
        status = StageStatus(status)
        values = dict(
            status=status.value,
            summary=summary,
            outputs=json.loads(json.dumps(outputs or {}, default=str)),
            started_at=started_at,
            finished_at=now() if status.finished else None,
            seconds=seconds,
        )
        with self.tx() as conn:
            row = conn.execute(
                select(stage_results.c.attempts).where(stage_results.c.run_id == run_id, stage_results.c.stage == stage)
            ).first()
            if row is None:
                conn.execute(stage_results.insert().values(run_id=run_id, stage=stage, attempts=1, **values))
            else:
                attempts = row[0] + (1 if status is StageStatus.RUNNING else 0)
                conn.execute(
                    stage_results.update()
                    .where(stage_results.c.run_id == run_id, stage_results.c.stage == stage)
                    .values(attempts=attempts, **values)
                )
            conn.execute(runs.update().where(runs.c.id == run_id).values(updated_at=now()))

    def stages(self, run_id: str) -> dict[str, StageRecord]:
        with self.tx() as conn:
            rows = conn.execute(select(stage_results).where(stage_results.c.run_id == run_id)).all()
        return {r.stage: StageRecord(**r._mapping) for r in rows}

    # -- deployments -----------------------------------------------------------------------
    def add_deployment(
        self,
        model: str,
        version_id: int,
        target: str,
        weight: int,
        endpoints: list[dict[str, Any]],
        detail: dict[str, Any] | None = None,
        status: DeploymentStatus = DeploymentStatus.SERVING,
    ) -> DeploymentRecord:
        with self.tx() as conn:
            result = conn.execute(
                deployments.insert().values(
                    model=model,
                    version_id=version_id,
                    target=target,
                    status=DeploymentStatus(status).value,
                    weight=weight,
                    endpoints=endpoints,
                    detail=detail or {},
                    created_at=now(),
                    updated_at=now(),
                )
            )
            new_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return self.deployment(new_id)

    def deployment(self, deployment_id: int) -> DeploymentRecord:
        with self.tx() as conn:
            row = conn.execute(select(deployments).where(deployments.c.id == deployment_id)).first()
        if row is None:
            raise NotFoundError(f"no deployment {deployment_id}")
        return DeploymentRecord(**row._mapping)

    def update_deployment(self, deployment_id: int, **fields: Any) -> None:
        if "status" in fields:
            fields["status"] = DeploymentStatus(fields["status"]).value
        with self.tx() as conn:
            conn.execute(
                deployments.update().where(deployments.c.id == deployment_id).values(updated_at=now(), **fields)
            )

    def set_weights(self, weights: dict[int, int], **fields: Any) -> None:
        """Set several deployments' weights in one transaction (a router sees all or none of the change);
        `fields` (e.g. status) apply to the deployments whose weight becomes 0."""
        if "status" in fields:
            fields["status"] = DeploymentStatus(fields["status"]).value
        with self.tx() as conn:
            for deployment_id, weight in weights.items():
                extra = fields if weight == 0 else {}
                conn.execute(
                    deployments.update()
                    .where(deployments.c.id == deployment_id)
                    .values(weight=weight, updated_at=now(), **extra)
                )

    def deployments(self, model: str | None = None, active_only: bool = True) -> list[DeploymentRecord]:
        query = select(deployments).order_by(deployments.c.id)
        if model:
            query = query.where(deployments.c.model == model)
        if active_only:
            query = query.where(deployments.c.status.in_([s.value for s in ACTIVE_DEPLOYMENT]))
        with self.tx() as conn:
            return [DeploymentRecord(**r._mapping) for r in conn.execute(query).all()]

    # -- events ----------------------------------------------------------------------------
    def add_event(
        self,
        model: str,
        kind: str,
        action: str,
        summary: str,
        detail: dict[str, Any] | None = None,
        version_id: int | None = None,
        run_id: str | None = None,
    ) -> EventRecord:
        """Record a decision about `model` with its evidence (`detail`, made JSON-safe)."""
        with self.tx() as conn:
            result = conn.execute(
                events.insert().values(
                    model=model,
                    kind=kind,
                    action=action,
                    version_id=version_id,
                    run_id=run_id,
                    summary=summary,
                    detail=json.loads(json.dumps(detail or {}, default=str)),
                    created_at=now(),
                )
            )
            new_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            row = conn.execute(select(events).where(events.c.id == new_id)).one()
        return EventRecord(**row._mapping)

    def events(
        self, model: str, kind: str | None = None, version_id: int | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """A model's events, oldest first (the newest `limit`)."""
        query = select(events).where(events.c.model == model).order_by(events.c.id.desc()).limit(limit)
        if kind:
            query = query.where(events.c.kind == kind)
        if version_id is not None:
            query = query.where(events.c.version_id == version_id)
        with self.tx() as conn:
            rows = conn.execute(query).all()
        return [EventRecord(**r._mapping) for r in reversed(rows)]

    # -- locks -----------------------------------------------------------------------------
    def try_lock(self, name: str, owner: str, host: str, pid: int) -> dict[str, Any] | None:
        """Take the lock; returns None when taken, else the holder's record."""
        try:
            with self.tx() as conn:
                row = conn.execute(select(locks).where(locks.c.name == name)).first()
                if row is not None:
                    return dict(row._mapping)
                conn.execute(locks.insert().values(name=name, owner=owner, host=host, pid=pid, acquired_at=now()))
                return None
        except IntegrityError:
            return {"name": name, "owner": "another process", "host": host, "pid": None}

    def release_lock(self, name: str, owner: str | None = None) -> bool:
        with self.tx() as conn:
            query = locks.delete().where(locks.c.name == name)
            if owner is not None:
                query = query.where(locks.c.owner == owner)
            return bool(conn.execute(query).rowcount)

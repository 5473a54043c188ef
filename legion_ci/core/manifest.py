"""manifest.json, an artifact's contract: what was trained from what, and the model file with its input schema.

Version 2 (this one) keeps what `toolchain.export` recorded about the model in its own namespace,
`model`, so nothing a train.py exports can overwrite a lineage key, and stores the data fingerprint
once (`data.fingerprint`). Version 1 (no `schema_version`; the exported keys merged at the top level
and `data_fingerprint` beside `data`) is what legion-ci wrote before; it is read and converted, never
written. A manifest newer than this code reads is refused with a message saying so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from legion_ci.core.errors import ArtifactError

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
Task = Literal["classification", "regression"]
LoggedMetrics = TypeAdapter(dict[str, float])  # what toolchain.log_metric wrote


class ManifestError(ArtifactError):
    """A manifest is not valid JSON, lacks a field, or holds a value of the wrong type."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Feature(_Record):
    """One input column: its name and dtype (float64, int64, bool or string)."""

    name: str
    dtype: str = "float64"


class InputSchema(_Record):
    """The features a model takes, example rows and the model's own predictions for them."""

    features: list[Feature] = Field(min_length=1)
    example: list[list[Any]] = []
    example_predictions: list[Any] = []
    allow_nan: bool = False

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]


class ModelFile(_Record):
    """The saved estimator: skops (safe to load) or joblib, and the sha256 checked before loading."""

    format: Literal["skops", "joblib"]
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ExportedModel(ModelFile):
    """What `toolchain.export` wrote: the model file and how to call it (its own namespace in the manifest)."""

    task: Task = "classification"
    classes: list[Any] | None = None
    estimator: str | None = None
    target: str = "target"
    input_schema: InputSchema


class GitInfo(_Record):
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None


class FeedbackWindow(_Record):
    """The feedback-loop ground truth an artifact was trained on (a retrain's export of the capture store):
    every labelled request up to `last_feedback`, each once, so the next retrain knows what is new."""

    rows: int
    requests: int
    fingerprint: str  # sha256 of the exported rows
    first_prediction: str | None = None  # ISO times of the predictions the rows come from
    last_prediction: str | None = None
    last_feedback: str | None = None  # the newest ground truth used: the window's end
    new_requests: int = 0  # labelled after what trained the production version of the time
    left_out: dict[str, int] = {}  # request ids left out, per reason (legion_ci.feedback.export.REASONS)


class DataLineage(_Record):
    """The training data: where it came from, its fingerprint, and extra files (feedback) added to it."""

    source: str | None = None
    fingerprint: str | None = None
    extra: list[str] = []
    feedback: FeedbackWindow | None = None


class JenkinsBuild(_Record):
    build_url: str | None = None
    build_number: str | None = None
    job_name: str | None = None
    build_tag: str | None = None


class Manifest(_Record):
    """The current manifest.json. Build it with keywords; read one with `Manifest.load` or `Manifest.parse`."""

    schema_version: Literal[2] = 2
    name: str
    version: str
    artifact_id: str
    created_at: str | None = None
    run_id: str | None = None
    git: GitInfo = GitInfo()
    source_fingerprint: str | None = None
    data: DataLineage = DataLineage()
    params: dict[str, Any] = {}
    seed: int | None = None
    packages: dict[str, str] = {}
    jenkins: JenkinsBuild | None = None
    metrics: dict[str, float] = {}
    logged_metrics: list[str] = []
    model: ExportedModel

    @property
    def input_schema(self) -> InputSchema:
        return self.model.input_schema

    @property
    def task(self) -> Task:
        return self.model.task

    def with_metrics(self, metrics: dict[str, float]) -> Manifest:
        """A copy with `metrics` added to (and overriding) the recorded ones."""
        return self.model_copy(update={"metrics": {**self.metrics, **metrics}})

    @classmethod
    def parse(cls, raw: Any, source: str) -> Manifest:
        """Validate a manifest of any readable version; `source` (a file, a registry row) names it in errors."""
        if not isinstance(raw, dict):
            raise ManifestError(f"{source}: a manifest is a JSON object, got {type(raw).__name__}")
        version = raw.get("schema_version", 1)
        if version not in READABLE_VERSIONS:
            if isinstance(version, int) and version > SCHEMA_VERSION:
                raise ManifestError(
                    f"{source}: field 'schema_version': {version} is newer than this legion-ci reads "
                    f"(versions {', '.join(map(str, READABLE_VERSIONS))}); upgrade legion-ci"
                )
            raise ManifestError(
                f"{source}: field 'schema_version': {version!r} is not a manifest version "
                f"(expected one of {', '.join(map(str, READABLE_VERSIONS))})"
            )
        try:
            if version == 1:
                return ManifestV1.model_validate(raw).upgrade()
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ManifestError(describe_invalid(f"{source}: invalid manifest", exc)) from None

    @classmethod
    def load(cls, file: Path) -> Manifest:
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ManifestError(f"{file}: cannot read manifest: {exc.strerror}") from None
        except ValueError as exc:
            raise ManifestError(f"{file}: unreadable manifest (not JSON): {exc}") from None
        return cls.parse(raw, str(file))


class ManifestV1(BaseModel):
    """The manifest legion-ci wrote before schema versions: export's keys beside the lineage keys."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    version: str
    artifact_id: str
    created_at: str | None = None
    run_id: str | None = None
    git: GitInfo = GitInfo()
    source_fingerprint: str | None = None
    data: DataLineage | None = None
    data_fingerprint: str | None = None
    params: dict[str, Any] = {}
    seed: int | None = None
    packages: dict[str, str] = {}
    jenkins: JenkinsBuild | None = None
    metrics: dict[str, float] = {}
    logged_metrics: list[str] = []
    model: ModelFile
    task: Task = "classification"
    classes: list[Any] | None = None
    estimator: str | None = None
    target: str = "target"
    input_schema: InputSchema

    def upgrade(self) -> Manifest:
        data = self.data or DataLineage(fingerprint=self.data_fingerprint)
        if data.fingerprint is None and self.data_fingerprint is not None:
            data = data.model_copy(update={"fingerprint": self.data_fingerprint})
        return Manifest(
            name=self.name,
            version=self.version,
            artifact_id=self.artifact_id,
            created_at=self.created_at,
            run_id=self.run_id,
            git=self.git,
            source_fingerprint=self.source_fingerprint,
            data=data,
            params=self.params,
            seed=self.seed,
            packages=self.packages,
            jenkins=self.jenkins,
            metrics=self.metrics,
            logged_metrics=self.logged_metrics,
            model=ExportedModel(
                **self.model.model_dump(),
                task=self.task,
                classes=self.classes,
                estimator=self.estimator,
                target=self.target,
                input_schema=self.input_schema,
            ),
        )


def describe_invalid(heading: str, exc: ValidationError) -> str:
    """`heading`, then one line per problem: the field's dotted path, what is wrong, and the value found."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        found = "" if err["type"] == "missing" else f" (got {err['input']!r:.60})"
        problems.append(f"  - field {where!r}: {err['msg']}{found}")
    return heading + "\n" + "\n".join(problems)

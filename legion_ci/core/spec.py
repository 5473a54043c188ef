"""legion.yaml, the model's spec: schema, defaults and validation with errors that name the field."""

from __future__ import annotations

import difflib
import itertools
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from legion_ci.core import cron
from legion_ci.core.errors import SpecError

SPEC_FILE = "legion.yaml"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
DURATION = re.compile(r"^(\d+)\s*(s|m|h)?$")
LONG_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
# Grammars of the values that reach Jenkins, Kubernetes or a shell (checked with fullmatch, ASCII only).
# An OCI image reference as github.com/distribution/reference defines it: [host[:port]/]path[:tag][@digest].
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_HOST = rf"(?:{_DOMAIN}|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(
    rf"(?:{_HOST}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",
    re.ASCII,
)
IMAGE_REFERENCE_MAX = 255
# A Jenkins label expression: label atoms joined by && || -> <-> ! and parentheses, on one line.
_LABEL_WORD = r"[A-Za-z0-9_.:/+@=()!&|<>-]+"
LABEL_EXPRESSION = re.compile(rf"(?=.*[A-Za-z0-9]){_LABEL_WORD}(?: {_LABEL_WORD})*", re.ASCII)
EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
    re.ASCII,
)
SLACK_CHANNEL = re.compile(r"[#@]?[A-Za-z0-9][A-Za-z0-9._-]{0,79}", re.ASCII)
DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _grammar(value: str, pattern: re.Pattern[str], expected: str, max_len: int = 255) -> str:
    """`value` when it matches `pattern` whole (and is at most `max_len` long), else a ValueError naming it."""
    if len(value) > max_len or not pattern.fullmatch(value):
        raise ValueError(f"not {expected}")
    return value


# The datasets scikit-learn ships inside its wheel (no download): what `sklearn:load_<name>` may name.
# tests/unit/test_spec.py checks that each one exists and loads, so a scikit-learn upgrade cannot drift from it.
BUNDLED_DATASETS = ("load_breast_cancer", "load_diabetes", "load_digits", "load_iris", "load_linnerud", "load_wine")
CLASSIFIER_METRICS = ("accuracy", "f1", "roc_auc", "precision", "recall", "log_loss")
REGRESSOR_METRICS = ("r2", "rmse", "mae")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bound(_Strict):
    """A metric threshold: the metric must be at least `min` and at most `max`."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("give at least one of min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class TrainSpec(_Strict):
    entrypoint: str = "train.py"
    data: str = Field(description="a CSV path relative to the model folder, or sklearn:load_<name>")
    target: str = Field("target", description="the label column of a CSV")
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 42
    test_size: float = Field(0.2, gt=0, lt=1)
    stratify: bool = True

    @field_validator("data")
    @classmethod
    def _data_form(cls, v: str) -> str:
        if v.startswith("sklearn:") and v.removeprefix("sklearn:") not in BUNDLED_DATASETS:
            name = v.removeprefix("sklearn:")
            close = difflib.get_close_matches(name, BUNDLED_DATASETS, n=1) or difflib.get_close_matches(
                f"load_{name}", BUNDLED_DATASETS, n=1
            )
            hint = f"did you mean sklearn:{close[0]}? " if close else ""
            choices = ", ".join(f"sklearn:{d}" for d in BUNDLED_DATASETS)
            raise ValueError(f"{v!r} is not a dataset bundled with scikit-learn; {hint}(one of {choices})")
        return v


class CompareSpec(_Strict):
    """Champion/challenger: the candidate may not lose more than `max_regression` on `metric`. A retrain must
    also improve: by more than nothing, or by `min_delta` when given (0 accepts a tie); on a tie, a
    `tie_breaker` metric decides (the candidate must be strictly better on it)."""

    enabled: bool = True
    metric: str | None = None
    max_regression: float = Field(0.0, ge=0)
    min_delta: float | None = Field(
        None, ge=0, description="least improvement a retrain must show on `metric`; 0 accepts a tie (default: > 0)"
    )
    tie_breaker: str | None = Field(None, description="metric that decides a tie on `metric` in a retrain")

    @field_validator("metric", "tie_breaker")
    @classmethod
    def _held_out_metric(cls, v: str | None) -> str | None:
        known = CLASSIFIER_METRICS + REGRESSOR_METRICS
        if v is not None and v not in known:
            close = difflib.get_close_matches(v, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"{v!r} is not a held-out metric the gate computes; {hint}(one of {', '.join(known)})")
        return v

    @model_validator(mode="after")
    def _tie_breaker_differs(self) -> CompareSpec:
        if self.tie_breaker is not None and self.tie_breaker == self.metric:
            raise ValueError(f"tie_breaker {self.tie_breaker!r} is the compared metric itself; name a second one")
        return self


class GateSpec(_Strict):
    thresholds: dict[str, Bound] = Field(default_factory=dict)
    compare_to_production: CompareSpec = Field(default_factory=CompareSpec)
    tests: str = "tests"
    allow_schema_change: bool = False
    allow_nan: bool = False


class SlaSpec(_Strict):
    p95_ms: float | None = Field(100.0, gt=0)
    p99_ms: float | None = Field(None, gt=0)
    min_rps: float | None = Field(None, ge=0)
    max_error_rate: float = Field(0.0, ge=0, le=1)


class PerfSpec(_Strict):
    enabled: bool = True
    users: int = Field(10, ge=1)
    spawn_rate: float = Field(10, gt=0)
    duration: int = Field(10, ge=1, description="seconds; '30s', '2m' accepted")
    sla: SlaSpec = Field(default_factory=SlaSpec)

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        if isinstance(v, str):
            m = DURATION.match(v.strip())
            if not m:
                raise ValueError(f"{v!r} is not a duration (expected seconds, or e.g. '30s', '2m', '1h')")
            return int(m[1]) * {"s": 1, "m": 60, "h": 3600, None: 1}[m[2]]
        return v


class DeploySpec(_Strict):
    target: Literal["local", "kubernetes"] = "local"
    replicas: int = Field(1, ge=1, le=64)
    traffic_weight: int = Field(20, ge=1, le=100, description="percent of traffic a new version gets first")
    auth: bool = True
    namespace: str = "legion"

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        return _grammar(v, DNS_LABEL, "a Kubernetes namespace (expected a DNS label: a-z, 0-9 and '-', 1-63 chars)", 63)


class CaptureSpec(_Strict):
    enabled: bool = True
    sample_rate: float = Field(1.0, ge=0, le=1)


class ServingSpec(_Strict):
    capture: CaptureSpec = Field(default_factory=CaptureSpec)
    max_rows: int = Field(1000, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1024)


class ScheduleSpec(_Strict):
    retrain: str | None = Field(None, description="Jenkins cron syntax, e.g. 'H 3 * * *'")

    @field_validator("retrain")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                cron.parse(v)
            except cron.CronSyntaxError as exc:
                raise ValueError(str(exc)) from None
        return v


class NotifySpec(_Strict):
    email: list[str] = Field(default_factory=list)
    slack: str | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, v: list[str]) -> list[str]:
        for address in v:
            _grammar(address, EMAIL, "an e-mail address (expected name@domain, e.g. ml-team@example.com)", 254)
        return v

    @field_validator("slack")
    @classmethod
    def _slack(cls, v: str | None) -> str | None:
        if v is not None:
            _grammar(v, SLACK_CHANNEL, "a Slack channel (expected e.g. '#ml-alerts', '@user' or a channel id)", 80)
        return v


class AgentSpec(_Strict):
    """Where Jenkins runs the pipeline: a node label, or a pod on the Kubernetes plugin."""

    label: str | None = None
    kubernetes_image: str | None = None

    @field_validator("label")
    @classmethod
    def _label(cls, v: str | None) -> str | None:
        if v is not None:
            expected = (
                "a Jenkins label expression (expected label names of letters, digits and _ . : / + @ = -, "
                "joined by spaces, &&, ||, !, ->, <-> and parentheses, on one line)"
            )
            _grammar(v, LABEL_EXPRESSION, expected, 200)
        return v

    @field_validator("kubernetes_image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v is not None:
            expected = (
                "an OCI image reference (expected [registry[:port]/]repository[:tag][@sha256:digest], "
                f"lowercase repository, at most {IMAGE_REFERENCE_MAX} characters, e.g. "
                "'registry.example.com/ml/agent:1.0')"
            )
            _grammar(v, IMAGE_REFERENCE, expected, IMAGE_REFERENCE_MAX)
        return v


# The metrics a rollout can decide on: each is the mean of a per-row score, so its two streams (production's
# and the candidate's labelled rows) can be compared as they come. `error_rate` and the losses: lower is better.
ROLLOUT_METRICS = ("accuracy", "error_rate", "mae", "mse")


class GuardSpec(_Strict):
    """Bounds on the candidate that roll it back at the next evaluation, whatever its metric."""

    max_error_rate: float = Field(0.05, ge=0, le=1, description="share of invokes answered with a 5xx")
    max_p99_ms: float | None = Field(None, gt=0, description="p99 of the candidate's own answer time")
    min_requests: int = Field(20, ge=1, description="requests the candidate must have answered before a guard acts")


class RolloutSpec(_Strict):
    """How a deployed candidate reaches production: at once (immediate), through canary steps, or after a
    shadow period, each step decided by `legion-ci evaluate` on joined predictions and ground truth."""

    strategy: Literal["immediate", "canary", "shadow"] = "immediate"
    steps: tuple[int, ...] = Field((5, 20, 50, 100), description="canary traffic percents, increasing, last 100")
    metric: str | None = Field(None, description="per-row metric decided on; default from the gate's comparison")
    margin: float = Field(0.02, ge=0, description="non-inferiority margin, in the metric's units")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="chance of a wrong decision over every evaluation")
    min_labelled: int = Field(100, ge=10, description="labelled rows each variant needs before a decision")
    max_duration: int = Field(7 * 86400, ge=60, description="seconds; '12h', '7d' accepted")
    at_max_duration: Literal["keep", "promote"] = "keep"
    schedule: str = Field("H * * * *", description="Jenkins cron of the <model>-rollout job")
    shadow_share: float = Field(1.0, gt=0, le=1, description="share of production requests mirrored (shadow)")
    guard: GuardSpec = Field(default_factory=GuardSpec)

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str | None) -> str | None:
        if v is not None and v not in ROLLOUT_METRICS:
            close = difflib.get_close_matches(v, ROLLOUT_METRICS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"{v!r} is not a per-row metric a rollout can decide on; {hint}(one of {', '.join(ROLLOUT_METRICS)})"
            )
        return v

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("give at least one step (e.g. [5, 20, 50, 100])")
        if any(s < 1 or s > 100 for s in v):
            raise ValueError(f"{list(v)}: every step is a percent from 1 to 100")
        if any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError(f"{list(v)}: steps must increase")
        if v[-1] != 100:
            raise ValueError(f"{list(v)}: the last step must be 100 (the candidate takes all traffic)")
        return v

    @field_validator("max_duration", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        if isinstance(v, str):
            m = LONG_DURATION.match(v.strip())
            if not m:
                raise ValueError(f"{v!r} is not a duration (expected seconds, or e.g. '90m', '12h', '7d')")
            return int(m[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]
        return v

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        try:
            cron.parse(v)
        except cron.CronSyntaxError as exc:
            raise ValueError(str(exc)) from None
        return v


class ModelSpec(_Strict):
    name: str
    version: str
    description: str = ""
    train: TrainSpec
    gate: GateSpec = Field(default_factory=GateSpec)
    perf: PerfSpec = Field(default_factory=PerfSpec)
    deploy: DeploySpec = Field(default_factory=DeploySpec)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    notify: NotifySpec = Field(default_factory=NotifySpec)
    agent: AgentSpec = Field(default_factory=AgentSpec)

    @field_validator("description")
    @classmethod
    def _description(cls, v: str) -> str:
        found = _CONTROL.search(v)
        if found:
            raise ValueError(
                f"holds the control character U+{ord(found.group()):04X} at position {found.start()} "
                "(expected printable text; newlines and tabs are fine)"
            )
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(f"{v!r} is not a model name (expected lowercase letters, digits and '-', 1-40 chars)")
        return v

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> Any:
        if not isinstance(v, str) or not SEMVER.match(v):
            raise ValueError(f"{v!r} is not a semantic version (expected MAJOR.MINOR.PATCH, e.g. 1.2.0, as a string)")
        return v


class LoadedSpec(BaseModel):
    """A validated spec and the folder it came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)
    spec: ModelSpec
    model_dir: Path
    raw: dict[str, Any]

    @property
    def file(self) -> Path:
        return self.model_dir / SPEC_FILE


def _describe(error: Any) -> str:
    path = ".".join(str(p) for p in error["loc"]) or "(top level)"
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return f"{path}: unknown field (value {value!r}); check the spelling against the schema in docs/spec.md"
    if kind == "missing":
        return f"{path}: required field is missing"
    msg = error["msg"].removeprefix("Value error, ")
    return f"{path}: {msg} (got {value!r})"


def parse_spec(data: Any, file: str) -> ModelSpec:
    """Validate already-loaded YAML data; raise SpecError naming every bad field."""
    if not isinstance(data, dict):
        raise SpecError(file, [f"(top level): expected a mapping of fields, got {type(data).__name__}"])
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(file, [_describe(e) for e in exc.errors()]) from None


MAX_SPEC_BYTES = 256 * 1024


class StrictLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML is untyped here
    """SafeLoader that refuses what makes a spec read differently from how it looks: a key given twice
    (last-wins would hide the first value a reviewer reads) and aliases (`*name`, which can also expand a
    few hundred bytes into gigabytes)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in legion.yaml; write the value out", mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {str(key)[:60]!r} appears twice (lines {seen[key]} and {line})",
                    key_node.start_mark,
                )
            if isinstance(key, (str, int, float, bool)):
                seen[key] = line
        return super().construct_mapping(node, deep)


def load_spec(model_dir: str | Path) -> LoadedSpec:
    """Read and validate MODEL_DIR/legion.yaml, then check that the files it names exist."""
    folder = Path(model_dir).resolve()
    file = folder / SPEC_FILE
    if not folder.is_dir():
        raise SpecError(str(file), [f"model folder {str(folder)!r} does not exist"])
    if not file.is_file():
        raise SpecError(str(file), [f"no {SPEC_FILE} in {str(folder)!r} (expected the model's spec there)"])
    size = file.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError(str(file), [f"{size} bytes, over the limit of {MAX_SPEC_BYTES} bytes for a spec"])
    try:
        raw = yaml.load(file.read_text(encoding="utf-8"), Loader=StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SpecError(str(file), [f"not valid YAML: {exc}"]) from None
    spec = parse_spec(raw, str(file))
    problems = check_files(spec, folder, raw)
    if problems:
        raise SpecError(str(file), problems)
    return LoadedSpec(spec=spec, model_dir=folder, raw=raw)


def _inside(folder: Path, field: str, value: str, kind: str) -> tuple[Path | None, str | None]:
    """`value` resolved (symlinks followed) against the model folder; a problem when it lands outside it."""
    root = folder.resolve()
    target = (root / value).resolve()
    if not target.is_relative_to(root):
        return None, (
            f"{field}: {value!r} resolves to {str(target)!r}, outside the model folder {str(root)!r} "
            f"(expected a {kind} inside it)"
        )
    return target, None


def check_files(spec: ModelSpec, folder: Path, raw: dict[str, Any] | None = None) -> list[str]:
    """Files the spec points at must exist inside the model folder (after symlinks are resolved: a link
    out of the folder is refused like an absolute path). `gate.tests` is optional when left at its default
    (a model without tests), but a folder the spec names explicitly must be there."""
    problems = []
    tests, outside = _inside(folder, "gate.tests", spec.gate.tests, "folder")
    named_tests = isinstance(raw, dict) and "tests" in (raw.get("gate") or {})
    if outside and named_tests:
        problems.append(outside)
    elif named_tests and tests is not None and not tests.is_dir():
        problems.append(
            f"gate.tests: folder {spec.gate.tests!r} not found in {str(folder)!r} "
            "(expected the model's pytest tests there; remove the field to run none)"
        )
    entry, outside = _inside(folder, "train.entrypoint", spec.train.entrypoint, "Python file")
    if outside:
        problems.append(outside)
    elif entry is not None and not entry.is_file():
        problems.append(f"train.entrypoint: file {spec.train.entrypoint!r} not found in {str(folder)!r}")
    if not spec.train.data.startswith("sklearn:"):
        data, outside = _inside(folder, "train.data", spec.train.data, "CSV")
        if outside:
            problems.append(outside)
        elif data is not None and not data.is_file():
            problems.append(f"train.data: file {spec.train.data!r} not found in {str(folder)!r} (expected a CSV)")
    return problems

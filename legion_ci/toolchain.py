"""What a model's train.py imports: `init()` for params and data, `log_metric`, `export`.

legion-ci's train stage runs train.py in its own process and tells it, through environment
variables, where the model folder is and where to write. Run by hand (`python train.py`), the
toolchain finds legion.yaml beside the script and writes to `.legion/train-out/` there.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from legion_ci.core.artifact import save_model, write_json_atomic
from legion_ci.core.errors import LegionError
from legion_ci.core.manifest import ExportedModel, Feature, InputSchema
from legion_ci.core.settings import Settings, env_name, load_settings
from legion_ci.core.spec import ModelSpec, load_spec
from legion_ci.training.data import Split, load_dataset, split

ENV_MODEL_DIR = env_name("model_dir")
ENV_OUTPUT_DIR = env_name("train_output")
ENV_EXTRA_DATA = env_name("extra_data")
EXAMPLE_ROWS = 5
EXPORT_FILE = "export.json"
METRICS_FILE = "logged_metrics.json"


class ToolchainError(LegionError):
    """train.py used the toolchain wrongly (a non-number metric, export of an unfitted model, ...)."""


@dataclass
class TrainContext:
    """What `init()` hands to train.py."""

    spec: ModelSpec
    params: dict[str, Any]
    seed: int
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series
    data_fingerprint: str
    output_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [str(c) for c in self.x_train.columns]


_context: TrainContext | None = None


def _model_dir(settings: Settings) -> Path:
    if settings.model_dir:
        return settings.model_dir
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    return Path(main).resolve().parent if main else Path.cwd()


def init() -> TrainContext:
    """Load the spec, the data and the deterministic split; returns the context train.py works with."""
    global _context
    settings = load_settings()  # train.py's process: the settings the train stage passed down
    folder = _model_dir(settings)
    loaded = load_spec(folder)
    extra = [Path(p) for p in (settings.extra_data or "").split(os.pathsep) if p]
    dataset = load_dataset(loaded.spec.train, folder, extra)
    _check_target(dataset.target, loaded.spec.train.target, extra)
    parts: Split = split(dataset, loaded.spec.train)
    out = settings.train_output or folder / ".legion" / "train-out"
    out.mkdir(parents=True, exist_ok=True)
    _context = TrainContext(
        spec=loaded.spec,
        params=dict(loaded.spec.train.params),
        seed=loaded.spec.train.seed,
        x_train=parts.x_train,
        x_test=parts.x_test,
        y_train=parts.y_train,
        y_test=parts.y_test,
        data_fingerprint=dataset.fingerprint,
        output_dir=out,
    )
    return _context


def _kind(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    return "number" if isinstance(value, (int, float, np.integer, np.floating)) else "text"


def _check_target(target: pd.Series, name: str, extra: list[Path]) -> None:
    """A target column of one kind: labels of another kind (text among numbers, e.g. "class_7" from an extra
    file) would fail deep in scikit-learn with a TypeError; name them and where they may come from."""
    if target.dtype.kind != "O":
        return
    kinds = target.map(_kind)
    counts = kinds.value_counts()
    if len(counts) < 2:
        return
    usual = str(counts.index[0])
    odd = target[kinds != usual]
    looks = pd.to_numeric(pd.Series(odd.unique()), errors="coerce").notna().tolist()
    first = sorted(zip(looks, odd.unique().tolist(), strict=True), key=lambda p: p[0])  # the plainly wrong first
    shown = ", ".join(repr(v) for _, v in first[:5])
    source = f" (extra data: {', '.join(map(str, extra))})" if extra else ""
    raise ToolchainError(
        f"train.target: column {name!r} mixes kinds of labels: {len(odd)} row(s) are not {usual}s, e.g. {shown}"
        f"{source}; a target takes one kind (the model's classes or numbers)"
    )


def _require() -> TrainContext:
    if _context is None:
        raise ToolchainError("call legion_ci.toolchain.init() before log_metric() or export()")
    return _context


def log_metric(name: str, value: float) -> None:
    """Record a metric; it must be a finite number."""
    ctx = _require()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ToolchainError(f"log_metric({name!r}, {value!r}): value must be a number, got {type(value).__name__}")
    if not math.isfinite(float(value)):
        raise ToolchainError(f"log_metric({name!r}, {value!r}): value must be finite")
    ctx.metrics[str(name)] = float(value)
    write_json_atomic(ctx.output_dir / METRICS_FILE, ctx.metrics)


def _dtype_name(series: pd.Series) -> str:
    kind = series.dtype.kind
    return {"f": "float64", "i": "int64", "u": "int64", "b": "bool"}.get(kind, "string")


def _plain(values: Any) -> list[Any]:
    plain: list[Any] = json.loads(pd.Series(list(values)).to_json(orient="values"))
    return plain  # numpy scalars -> JSON types


def export(model: Any) -> Path:
    """Save the fitted model with its input schema (feature names, dtypes, example rows and their predictions)."""
    ctx = _require()
    from sklearn.base import is_classifier
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not hasattr(model, "predict"):
        raise ToolchainError(f"export(): {type(model).__name__} has no predict(); export a fitted estimator")
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise ToolchainError(f"export(): {type(model).__name__} is not fitted; call fit() first") from None
    example = ctx.x_test.head(EXAMPLE_ROWS)
    predictions = model.predict(example)
    classifier = is_classifier(model)
    info = save_model(model, ctx.output_dir)
    export_record = ExportedModel(
        **info.model_dump(),
        task="classification" if classifier else "regression",
        classes=_plain(model.classes_) if classifier and hasattr(model, "classes_") else None,
        estimator=f"{type(model).__module__}.{type(model).__name__}",
        input_schema=InputSchema(
            features=[Feature(name=str(c), dtype=_dtype_name(ctx.x_test[c])) for c in ctx.x_test.columns],
            example=json.loads(example.to_json(orient="values")),
            example_predictions=_plain(predictions),
        ),
        target=str(ctx.y_train.name),
    )
    write_json_atomic(ctx.output_dir / EXPORT_FILE, export_record.to_json())
    return ctx.output_dir

"""Training data: a CSV beside legion.yaml or a dataset bundled with scikit-learn, with a fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from legion_ci.core.errors import LegionError
from legion_ci.core.spec import TrainSpec


class DataError(LegionError):
    """The training data cannot be read or does not fit the spec."""


@dataclass(frozen=True)
class Dataset:
    features: pd.DataFrame
    target: pd.Series
    fingerprint: str  # sha256 of the rows, in a stable CSV form
    source: str


@dataclass(frozen=True)
class Split:
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


def _fingerprint(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.to_csv(index=False, lineterminator="\n").encode()).hexdigest()


def _load_sklearn(name: str) -> pd.DataFrame:
    import sklearn.datasets as datasets

    loader = getattr(datasets, name, None)
    if loader is None or not name.startswith("load_"):
        raise DataError(
            f"train.data: sklearn:{name} is not a dataset bundled with scikit-learn (e.g. sklearn:load_iris)"
        )
    bunch = loader(as_frame=True)
    frame: pd.DataFrame = bunch.frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    if "target" not in frame.columns:
        frame["target"] = bunch.target
    return frame


def _load_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"train.data: cannot read {str(path)!r} as CSV: {exc}") from None


def load_dataset(train: TrainSpec, model_dir: Path, extra: list[Path] | None = None) -> Dataset:
    """Load the spec's data, append `extra` CSVs (e.g. exported feedback) with the same columns."""
    if train.data.startswith("sklearn:"):
        frame, target = _load_sklearn(train.data.split(":", 1)[1]), "target"
    else:
        frame, target = _load_csv(model_dir / train.data), train.target
    for path in extra or []:
        more = _load_csv(path)
        missing = sorted(set(frame.columns) - set(more.columns))
        if missing:
            raise DataError(f"{path}: extra training data lacks columns {missing}")
        frame = pd.concat([frame, more[frame.columns]], ignore_index=True)
    if target not in frame.columns:
        raise DataError(
            f"train.target: column {target!r} not in {train.data} (columns: {', '.join(map(str, frame.columns))})"
        )
    if frame.empty:
        raise DataError(f"train.data: {train.data} has no rows")
    return Dataset(frame.drop(columns=[target]), frame[target], _fingerprint(frame), train.data)


def split(ds: Dataset, train: TrainSpec) -> Split:
    """The deterministic train/test split every stage agrees on."""
    stratify = ds.target if train.stratify and _looks_categorical(ds.target) else None
    try:
        x_tr, x_te, y_tr, y_te = train_test_split(
            ds.features, ds.target, test_size=train.test_size, random_state=train.seed, stratify=stratify
        )
    except ValueError as exc:
        raise DataError(f"train.test_size: cannot split {len(ds.target)} rows: {exc}") from None
    return Split(x_tr, x_te, y_tr, y_te)


def _looks_categorical(y: pd.Series) -> bool:
    return y.dtype.kind in "iubO" and y.nunique() <= max(20, len(y) // 50)


def class_names(train: TrainSpec, classes: list[Any]) -> list[str] | None:
    """What a dataset bundled with scikit-learn calls its integer classes (load_iris: setosa, versicolor,
    virginica), for reports; None for a CSV (its classes are already what the column holds) or no names."""
    if not train.data.startswith("sklearn:") or not classes:
        return None
    import sklearn.datasets as datasets

    loader = getattr(datasets, train.data.split(":", 1)[1], None)
    try:
        names = getattr(loader(), "target_names", None) if callable(loader) else None
    except (OSError, ValueError, TypeError):
        return None
    if names is None or not all(isinstance(c, int) and 0 <= c < len(names) for c in classes):
        return None
    return [str(names[c]) for c in classes]

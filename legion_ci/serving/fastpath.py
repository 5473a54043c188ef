"""Plain-numpy equivalents of common estimators' predict, for rows the server has already validated.

scikit-learn re-validates every input (array API dispatch, feature names, dtype and finiteness checks):
about 200 us of a one-row predict that costs under 10 us of arithmetic. Once our own schema check has
produced a finite float64 matrix of the right width, those checks have nothing left to find. `compile_model`
returns the arithmetic alone for the estimators it knows, or None; the predictor only uses it after
checking that it gives the estimator's own answers (see predictor.py).

A `LinearPlan` (scalers, then a linear model) is plain data: it can be saved to an .npz file and run by a
process that never imports scikit-learn, pandas or scipy (see server.py: the slim server).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Fn = Callable[[np.ndarray], np.ndarray]


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    result: np.ndarray = shifted
    return result


def _expit(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        result: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return result


@dataclass
class LinearPlan:
    """Elementwise scaling steps, then `x @ coef + intercept`, then a class or a value."""

    steps: list[tuple[str, list[np.ndarray]]]  # ("sub"|"div"|"muladd"|"clip", arrays)
    kind: str  # "binary", "multiclass" or "regression"
    coef: np.ndarray  # (features,) or (features, classes)
    intercept: np.ndarray
    classes: np.ndarray | None
    logistic: bool  # probabilities by expit/softmax (LogisticRegression)
    exportable = True

    def transform(self, x: np.ndarray) -> np.ndarray:
        for op, args in self.steps:
            if op == "sub":
                x = x - args[0]
            elif op == "div":
                x = x / args[0]
            elif op == "muladd":
                x = x * args[0] + args[1]
            else:
                x = np.clip(x, args[0], args[1])
        return x

    def scores(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            result: np.ndarray = self.transform(x) @ self.coef + self.intercept
        return result

    def predict(self, x: np.ndarray) -> np.ndarray:
        s = self.scores(x)
        if self.kind == "binary":
            labels: np.ndarray = self.classes[(s > 0).astype(np.intp)]  # type: ignore[index]
            return labels
        if self.kind == "multiclass":
            labels = self.classes[np.argmax(s, axis=1)]  # type: ignore[index]
            return labels
        return s

    def proba(self, x: np.ndarray) -> np.ndarray:
        s = self.scores(x)
        if self.kind == "binary":
            p = _expit(s)
            return np.column_stack([1.0 - p, p])
        with np.errstate(over="ignore", invalid="ignore"):
            return _softmax(s)

    @property
    def has_proba(self) -> bool:
        return self.logistic and self.kind != "regression"

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {"coef": self.coef, "intercept": np.asarray(self.intercept)}
        if self.classes is not None:
            arrays["classes"] = self.classes
        meta: dict[str, Any] = {"kind": self.kind, "logistic": self.logistic, "steps": []}
        for i, (op, args) in enumerate(self.steps):
            meta["steps"].append([op, len(args)])
            for j, a in enumerate(args):
                arrays[f"step{i}_{j}"] = np.asarray(a)
        arrays["meta"] = np.array(json.dumps(meta))
        with path.open("wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> LinearPlan:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            steps = [(op, [data[f"step{i}_{j}"] for j in range(n)]) for i, (op, n) in enumerate(meta["steps"])]
            classes = data.get("classes", None)
            return cls(steps, meta["kind"], data["coef"], data["intercept"], classes, bool(meta["logistic"]))


@dataclass
class Compiled:
    """A compiled model that needs scikit-learn at run time (trees call its Cython tree code)."""

    predict: Fn
    proba_fn: Fn | None
    exportable = False

    def proba(self, x: np.ndarray) -> np.ndarray:
        assert self.proba_fn is not None
        return self.proba_fn(x)

    @property
    def has_proba(self) -> bool:
        return self.proba_fn is not None


def _steps(step: Any) -> list[tuple[str, list[np.ndarray]]] | None:
    """A transformer step as elementwise operations, for the scalers that are plain arithmetic."""
    kind = type(step).__name__
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return []
    if kind == "StandardScaler":
        out: list[tuple[str, list[np.ndarray]]] = []
        if step.with_mean:
            out.append(("sub", [np.asarray(step.mean_, dtype=np.float64)]))
        if step.with_std:
            out.append(("div", [np.asarray(step.scale_, dtype=np.float64)]))
        return out
    if kind == "MinMaxScaler":
        out = [("muladd", [np.asarray(step.scale_, dtype=np.float64), np.asarray(step.min_, dtype=np.float64)])]
        if step.clip:
            lo, hi = step.feature_range
            out.append(("clip", [np.asarray(float(lo)), np.asarray(float(hi))]))
        return out
    return None


def _linear(est: Any, steps: list[tuple[str, list[np.ndarray]]]) -> LinearPlan | None:
    from sklearn.base import is_classifier, is_regressor

    coef, intercept = getattr(est, "coef_", None), getattr(est, "intercept_", None)
    if not isinstance(coef, np.ndarray) or intercept is None or coef.dtype.kind != "f":
        return None
    intercept = np.asarray(intercept, dtype=np.float64)
    logistic = type(est).__name__ == "LogisticRegression"
    if is_classifier(est):
        classes = np.asarray(est.classes_)
        if classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes):
            classes = np.array([str(c) for c in classes])
        if classes.dtype.kind == "O" or coef.ndim != 2:
            return None
        if coef.shape[0] == 1:
            return LinearPlan(
                steps, "binary", np.ascontiguousarray(coef[0]), intercept.reshape(-1)[:1].reshape(()), classes, logistic
            )
        return LinearPlan(steps, "multiclass", np.ascontiguousarray(coef.T), intercept, classes, logistic)
    if is_regressor(est) and coef.ndim == 1:
        return LinearPlan(steps, "regression", coef.astype(np.float64), intercept.reshape(()), None, False)
    return None


def _trees(est: Any) -> Compiled | None:
    kind = type(est).__name__
    trees = [est] if kind.startswith(("DecisionTree", "ExtraTree")) else list(getattr(est, "estimators_", []))
    if not trees:
        return None
    structures = [t.tree_ for t in trees]
    count = float(len(structures))

    def total(x: np.ndarray, width: int | None) -> np.ndarray:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        out = structures[0].predict(x32)
        out = (out[:, :width] if width else out[:, 0]).copy()
        for tree in structures[1:]:
            more = tree.predict(x32)
            out += more[:, :width] if width else more[:, 0]
        if count > 1:
            out /= count
        result: np.ndarray = out
        return result

    if kind.endswith("Classifier"):
        classes = est.classes_
        n = len(classes)
        return Compiled(lambda x: classes[np.argmax(total(x, n), axis=1)], lambda x: total(x, n))
    return Compiled(lambda x: total(x, None), None)


TREES = {
    "DecisionTreeClassifier",
    "ExtraTreeClassifier",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "DecisionTreeRegressor",
    "ExtraTreeRegressor",
    "RandomForestRegressor",
    "ExtraTreesRegressor",
}


def _estimator(est: Any, steps: list[tuple[str, list[np.ndarray]]]) -> LinearPlan | Compiled | None:
    if getattr(est, "n_outputs_", 1) != 1:
        return None
    module = type(est).__module__
    if module.startswith("sklearn.linear_model") or type(est).__name__ == "LinearSVC":
        return _linear(est, steps)
    if type(est).__name__ in TREES and not steps:
        return _trees(est)
    return None


def compile_model(model: Any) -> LinearPlan | Compiled | None:
    """The plain-numpy form of a known estimator or pipeline (scalers, then a linear model or trees)."""
    if type(model).__name__ == "Pipeline":
        *transformers, (_, final) = model.steps
        steps: list[tuple[str, list[np.ndarray]]] = []
        for _, step in transformers:
            more = _steps(step)
            if more is None:
                return None
            steps.extend(more)
        return _estimator(final, steps)
    return _estimator(model, [])

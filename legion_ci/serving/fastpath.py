"""Plain-numpy equivalents of common estimators' predict, for rows the server has already validated.

scikit-learn re-validates every input (array API dispatch, feature names, dtype and finiteness checks):
about 200 us of a one-row predict that costs under 10 us of arithmetic. Once our own schema check has
produced a finite float64 matrix of the right width, those checks have nothing left to find. `compile_model`
returns the arithmetic alone for the estimators it knows, or None; the predictor only uses it after
checking that it gives the estimator's own answers (see predictor.py).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

Fn = Callable[[np.ndarray], np.ndarray]


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _transform(step: Any) -> Fn | None:
    """A transformer step as a function of X, for the scalers that are plain arithmetic."""
    kind = type(step).__name__
    if step is None or step == "passthrough":
        return lambda x: x
    if kind == "StandardScaler":
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None
        if mean is None and scale is None:
            return lambda x: x
        if mean is None:
            return lambda x: x / scale
        if scale is None:
            return lambda x: x - mean
        return lambda x: (x - mean) / scale
    if kind == "MinMaxScaler":
        mul, add = step.scale_, step.min_
        if step.clip:
            lo, hi = step.feature_range
            return lambda x: np.clip(x * mul + add, lo, hi)
        return lambda x: x * mul + add
    return None


def _linear_classifier(est: Any) -> tuple[Fn, Fn | None] | None:
    coef, intercept, classes = est.coef_, est.intercept_, est.classes_
    if not isinstance(coef, np.ndarray) or coef.ndim != 2:
        return None
    coef_t = np.ascontiguousarray(coef.T)
    if coef.shape[0] == 1:
        w, b = coef_t[:, 0], float(np.ravel(intercept)[0])

        def predict(x: np.ndarray) -> np.ndarray:
            return classes[(x @ w + b > 0).astype(np.intp)]

        def proba(x: np.ndarray) -> np.ndarray:
            p = _expit(x @ w + b)
            return np.column_stack([1.0 - p, p])
    else:
        def predict(x: np.ndarray) -> np.ndarray:
            return classes[np.argmax(x @ coef_t + intercept, axis=1)]

        def proba(x: np.ndarray) -> np.ndarray:
            return _softmax(x @ coef_t + intercept)

    return predict, proba if type(est).__name__ == "LogisticRegression" else None


def _linear_regressor(est: Any) -> tuple[Fn, Fn | None] | None:
    coef, intercept = est.coef_, est.intercept_
    if not isinstance(coef, np.ndarray):
        return None
    coef_t = np.ascontiguousarray(coef.T)
    return (lambda x: x @ coef_t + intercept), None


def _tree_classifier(trees: list[Any], classes: np.ndarray) -> tuple[Fn, Fn]:
    n = len(classes)
    structures = [t.tree_ for t in trees]

    def proba(x: np.ndarray) -> np.ndarray:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        total = structures[0].predict(x32)[:, :n].copy()
        for tree in structures[1:]:
            total += tree.predict(x32)[:, :n]
        if len(structures) > 1:
            total /= len(structures)
        return total

    return (lambda x: classes[np.argmax(proba(x), axis=1)]), proba


def _tree_regressor(trees: list[Any]) -> Fn:
    structures = [t.tree_ for t in trees]

    def predict(x: np.ndarray) -> np.ndarray:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        total = structures[0].predict(x32)[:, 0].copy()
        for tree in structures[1:]:
            total += tree.predict(x32)[:, 0]
        if len(structures) > 1:
            total /= len(structures)
        return total

    return predict


def _estimator(est: Any) -> tuple[Fn, Fn | None] | None:
    from sklearn.base import is_classifier, is_regressor

    kind = type(est).__name__
    module = type(est).__module__
    if getattr(est, "n_outputs_", 1) != 1:
        return None
    if module.startswith("sklearn.linear_model") or kind == "LinearSVC":
        if is_classifier(est):
            return _linear_classifier(est)
        if is_regressor(est) and hasattr(est, "coef_") and hasattr(est, "intercept_"):
            return _linear_regressor(est)
        return None
    if kind in ("DecisionTreeClassifier", "ExtraTreeClassifier"):
        return _tree_classifier([est], est.classes_)
    if kind in ("RandomForestClassifier", "ExtraTreesClassifier"):
        return _tree_classifier(list(est.estimators_), est.classes_)
    if kind in ("DecisionTreeRegressor", "ExtraTreeRegressor"):
        return _tree_regressor([est]), None
    if kind in ("RandomForestRegressor", "ExtraTreesRegressor"):
        return _tree_regressor(list(est.estimators_)), None
    return None


def compile_model(model: Any) -> tuple[Fn, Fn | None] | None:
    """(predict, predict_proba or None) as plain numpy for a known estimator or pipeline; None otherwise."""
    if type(model).__name__ == "Pipeline":
        steps = [s for _, s in model.steps]
        transforms = [_transform(s) for s in steps[:-1]]
        final = _estimator(steps[-1])
        if final is None or any(t is None for t in transforms):
            return None
        chain = [t for t in transforms if t is not None]
        predict, proba = final

        def run(fn: Fn) -> Fn:
            def apply(x: np.ndarray) -> np.ndarray:
                for t in chain:
                    x = t(x)
                return fn(x)

            return apply

        return run(predict), (run(proba) if proba else None)
    return _estimator(model)

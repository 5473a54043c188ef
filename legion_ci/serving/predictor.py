"""The model behind the server: the fastest way to call it that gives the artifact's own answers.

Three tiers, chosen once at start-up and checked there against scikit-learn on the schema's example rows
and a few hundred rows drawn around them:
  compiled  plain numpy arithmetic for known estimators (fastpath.py), on the validated float64 matrix;
  array     the estimator's own predict on that matrix (for models that do not need column names);
  frame     the estimator's own predict on a pandas DataFrame with the schema's names and dtypes.
A compiled LinearPlan that passed the check is `exportable`: the slim server runs it without scikit-learn.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from legion_ci.serving.fastpath import Compiled, LinearPlan, compile_model
from legion_ci.serving.validation import NUMERIC, Rows

if TYPE_CHECKING:
    from legion_ci.core.manifest import Feature

log = logging.getLogger(__name__)
PROBE_ROWS = 256

Fn = Callable[[Rows], np.ndarray]


def _dtypes(features: list[Feature]) -> dict[str, str]:
    kinds = {"f": "float64", "i": "int64", "b": "bool"}
    return {f.name: kinds.get(NUMERIC.get(f.dtype, "s"), "object") for f in features}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return bool(np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True))
    return bool(np.array_equal(a, b))


class Predictor:
    """`predict(rows)` and `proba(rows)` on validated rows; `tier` says which path is in use."""

    def __init__(self, tier: str, predict: Fn, proba: Fn | None, plan: LinearPlan | None = None) -> None:
        self.tier = tier
        self._predict = predict
        self._proba = proba
        self.has_proba = proba is not None
        self.plan = plan  # set when the whole predictor runs without scikit-learn

    @classmethod
    def from_plan(cls, plan: LinearPlan) -> Predictor:
        proba = (lambda r: plan.proba(r.matrix)) if plan.has_proba else None
        return cls("compiled", lambda r: plan.predict(r.matrix), proba, plan)

    @classmethod
    def for_model(cls, model: Any, features: list[Feature], example: list[list[Any]], numeric: bool) -> Predictor:
        """The fastest tier that gives `model`'s own answers on the probe rows."""
        import pandas as pd

        names = [f.name for f in features]
        dtypes = _dtypes(features)
        has_proba = hasattr(model, "predict_proba")

        def frame(rows: list[list[Any]]) -> Any:
            return pd.DataFrame(rows, columns=names).astype(dtypes)

        fallback = cls(
            "frame",
            lambda r: model.predict(frame(r.rows)),
            (lambda r: model.predict_proba(frame(r.rows))) if has_proba else None,
        )
        if not numeric or not example:
            return fallback
        probe = _probe(np.asarray(example, dtype=np.float64), names, dtypes)
        try:
            want = model.predict(frame(probe.tolist()))
            want_proba = model.predict_proba(frame(probe.tolist())) if has_proba else None
        except Exception as exc:
            log.info("probe rows rejected by the model (%s); using the DataFrame path", exc)
            return fallback
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        array_proba = (lambda r: model.predict_proba(r.matrix)) if has_proba else None
        compiled = compile_model(model)
        if compiled is not None and _agrees(compiled.predict, probe, want):
            proba: Fn | None = None
            plan_ok = isinstance(compiled, LinearPlan)
            if want_proba is not None:
                if compiled.has_proba and _agrees(compiled.proba, probe, want_proba):
                    proba = lambda r: compiled.proba(r.matrix)  # noqa: E731
                else:
                    proba, plan_ok = array_proba, False
            plan = compiled if plan_ok and isinstance(compiled, LinearPlan) else None
            return cls("compiled", lambda r: compiled.predict(r.matrix), proba, plan)
        if _agrees(model.predict, probe, want):
            proba_ok = want_proba is not None and _agrees(model.predict_proba, probe, want_proba)
            return cls("array", lambda r: model.predict(r.matrix), array_proba if proba_ok else fallback._proba)
        return fallback

    def predict(self, rows: Rows) -> np.ndarray:
        return self._predict(rows)

    def proba(self, rows: Rows) -> np.ndarray | None:
        return self._proba(rows) if self._proba is not None else None


def _probe(example: np.ndarray, names: list[str], dtypes: dict[str, str]) -> np.ndarray:
    """The example rows plus rows drawn around them (a fixed seed, so start-up is deterministic)."""
    rng = np.random.default_rng(0)
    lo, hi = example.min(axis=0), example.max(axis=0)
    pad = np.maximum(hi - lo, np.abs(hi) * 0.1 + 1e-3)
    drawn = rng.uniform(lo - pad, hi + pad, size=(PROBE_ROWS, example.shape[1]))
    ints = [i for i, n in enumerate(names) if dtypes[n] in ("int64", "bool")]
    drawn[:, ints] = np.round(drawn[:, ints])
    bools = [i for i, n in enumerate(names) if dtypes[n] == "bool"]
    drawn[:, bools] = np.clip(drawn[:, bools], 0, 1)
    return np.vstack([example, drawn])


def _agrees(fn: Callable[[np.ndarray], np.ndarray], probe: np.ndarray, want: np.ndarray) -> bool:
    try:
        return _same(fn(probe), want)
    except Exception:
        return False


__all__ = ["Compiled", "LinearPlan", "Predictor"]

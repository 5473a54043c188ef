"""The model behind the server: the fastest way to call it that gives the artifact's own answers.

Three tiers, chosen once at start-up and checked there against scikit-learn on the schema's example rows
and a few hundred rows drawn around them:
  compiled  plain numpy arithmetic for known estimators (fastpath.py), on the validated float64 matrix;
  array     the estimator's own predict on that matrix (for models that do not need column names);
  frame     the estimator's own predict on a pandas DataFrame with the schema's names and dtypes.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd

from legion_ci.serving.fastpath import compile_model
from legion_ci.serving.validation import NUMERIC, Rows

log = logging.getLogger(__name__)
PROBE_ROWS = 256

Fn = Callable[[Any], np.ndarray]


def _dtypes(features: list[dict[str, Any]]) -> dict[str, str]:
    kinds = {"f": "float64", "i": "int64", "b": "bool"}
    return {str(f["name"]): kinds.get(NUMERIC.get(str(f.get("dtype")), "s"), "object") for f in features}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return bool(np.allclose(a, b, rtol=1e-9, atol=1e-12))
    return bool(np.array_equal(a, b))


class Predictor:
    """`predict(rows)` and `proba(rows)` on validated rows; `tier` says which path is in use."""

    def __init__(self, model: Any, features: list[dict[str, Any]], example: list[list[Any]],
                 numeric: bool) -> None:
        self.model = model
        self.names = [str(f["name"]) for f in features]
        self.dtypes = _dtypes(features)
        self.has_proba = hasattr(model, "predict_proba")
        self.tier = "frame"
        self._predict: Fn = lambda r: model.predict(self._frame(r.rows))
        self._proba: Fn | None = (lambda r: model.predict_proba(self._frame(r.rows))) if self.has_proba else None
        if numeric and example:
            self._choose(np.asarray(example, dtype=np.float64))

    def _frame(self, rows: list[list[Any]]) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=self.names).astype(self.dtypes)

    def _probe(self, example: np.ndarray) -> np.ndarray:
        """The example rows plus rows drawn around them (a fixed seed, so start-up is deterministic)."""
        rng = np.random.default_rng(0)
        lo, hi = example.min(axis=0), example.max(axis=0)
        pad = np.maximum(hi - lo, np.abs(hi) * 0.1 + 1e-3)
        drawn = rng.uniform(lo - pad, hi + pad, size=(PROBE_ROWS, example.shape[1]))
        ints = [i for i, n in enumerate(self.names) if self.dtypes[n] in ("int64", "bool")]
        drawn[:, ints] = np.round(drawn[:, ints])
        bools = [i for i, n in enumerate(self.names) if self.dtypes[n] == "bool"]
        drawn[:, bools] = np.clip(drawn[:, bools], 0, 1)
        return np.vstack([example, drawn])

    def _choose(self, example: np.ndarray) -> None:
        probe = self._probe(example)
        frame = self._frame(probe.tolist())
        try:
            want = self.model.predict(frame)
            want_proba = self.model.predict_proba(frame) if self.has_proba else None
        except Exception as exc:  # noqa: BLE001 - the model's own failure on drawn rows: keep the frame tier
            log.info("probe rows rejected by the model (%s); using the DataFrame path", exc)
            return
        compiled = compile_model(self.model)
        if compiled is not None:
            predict, proba = compiled
            if self._agrees(predict, probe, want):
                self.tier = "compiled"
                self._predict = lambda r: predict(r.array)
                if want_proba is not None:
                    if proba is not None and self._agrees(proba, probe, want_proba):
                        self._proba = lambda r: proba(r.array)
                    else:
                        self._proba = self._array_proba()
                return
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        if self._agrees(self.model.predict, probe, want):
            self.tier = "array"
            self._predict = lambda r: self.model.predict(r.array)
            if want_proba is not None and self._agrees(self.model.predict_proba, probe, want_proba):
                self._proba = self._array_proba()

    def _array_proba(self) -> Fn:
        return lambda r: self.model.predict_proba(r.array)

    @staticmethod
    def _agrees(fn: Callable[[np.ndarray], np.ndarray], probe: np.ndarray, want: np.ndarray) -> bool:
        try:
            return _same(fn(probe), want)
        except Exception:  # noqa: BLE001 - a path that fails on the probe is simply not used
            return False

    def predict(self, rows: Rows) -> np.ndarray:
        return self._predict(rows)

    def proba(self, rows: Rows) -> np.ndarray | None:
        return self._proba(rows) if self._proba is not None else None

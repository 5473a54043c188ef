"""Standard metrics of a model on held-out data: the numbers the gate and comparisons use."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

CLASSIFIER = ("accuracy", "f1", "precision", "recall", "roc_auc", "log_loss")
REGRESSOR = ("r2", "rmse", "mae")
LOWER_IS_BETTER = {"log_loss", "rmse", "mae", "mse"}


def evaluate(model: Any, x: pd.DataFrame, y: pd.Series, task: str) -> dict[str, float]:
    """Metrics of `model` on (x, y); classifiers get probability metrics when they expose predict_proba."""
    pred = model.predict(x)
    if task == "regression":
        return {
            "r2": float(skm.r2_score(y, pred)),
            "rmse": float(math.sqrt(skm.mean_squared_error(y, pred))),
            "mae": float(skm.mean_absolute_error(y, pred)),
        }
    labels = np.unique(np.concatenate([np.asarray(y), np.asarray(pred)]))
    average = "binary" if len(labels) <= 2 else "macro"
    result = {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "f1": float(skm.f1_score(y, pred, average=average, zero_division=0)),
        "precision": float(skm.precision_score(y, pred, average=average, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, average=average, zero_division=0)),
    }
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(x)
        classes = list(getattr(model, "classes_", range(proba.shape[1])))
        try:
            if len(classes) == 2:
                result["roc_auc"] = float(skm.roc_auc_score(y, proba[:, 1]))
            else:
                result["roc_auc"] = float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
            result["log_loss"] = float(skm.log_loss(y, proba, labels=classes))
        except ValueError:
            pass  # a class missing from the held-out rows: the probability metrics are undefined
    return result


def better(metric: str, candidate: float, reference: float) -> float:
    """How much better the candidate is (positive) or worse (negative), whatever the metric's direction."""
    return reference - candidate if metric in LOWER_IS_BETTER else candidate - reference

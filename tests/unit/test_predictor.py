"""The predictor tiers give each estimator's own answers; plans survive a save and load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from legion_ci.core.manifest import Feature
from legion_ci.serving.fastpath import LinearPlan
from legion_ci.serving.predictor import Predictor
from legion_ci.serving.validation import Validator

IRIS = load_iris(as_frame=True).frame
X_IRIS, Y_IRIS = IRIS.drop(columns=["target"]), IRIS["target"]
DIAB = load_diabetes(as_frame=True).frame
X_DIAB, Y_DIAB = DIAB.drop(columns=["target"]), DIAB["target"]


def features(x: pd.DataFrame) -> list[Feature]:
    kinds = {"f": "float64", "i": "int64", "b": "bool"}
    return [Feature(name=str(c), dtype=kinds.get(x[c].dtype.kind, "string")) for c in x.columns]


def build(model: Any, x: pd.DataFrame) -> tuple[Predictor, Validator]:
    feats = features(x)
    validator = Validator(feats, max_rows=1000)
    return Predictor.for_model(model, feats, x.head(5).to_numpy().tolist(), validator.numeric), validator


CASES = [
    ("binary logistic", LogisticRegression(max_iter=500), X_IRIS, (Y_IRIS == 1).astype(int), "compiled", True),
    ("multiclass logistic", LogisticRegression(max_iter=500), X_IRIS, Y_IRIS, "compiled", True),
    (
        "string classes",
        LogisticRegression(max_iter=500),
        X_IRIS,
        Y_IRIS.map({0: "a", 1: "b", 2: "c"}),
        "compiled",
        True,
    ),
    (
        "scaled pipeline",
        make_pipeline(StandardScaler(), MinMaxScaler(), LogisticRegression(max_iter=500)),
        X_IRIS,
        Y_IRIS,
        "compiled",
        True,
    ),
    ("hinge sgd", SGDClassifier(random_state=0), X_IRIS, Y_IRIS, "compiled", True),
    ("ridge", Ridge(), X_DIAB, Y_DIAB, "compiled", True),
    ("tree", DecisionTreeClassifier(random_state=0), X_IRIS, Y_IRIS, "compiled", False),
    ("forest regressor", RandomForestRegressor(n_estimators=10, random_state=0), X_DIAB, Y_DIAB, "compiled", False),
    ("boosting", GradientBoostingClassifier(n_estimators=10, random_state=0), X_IRIS, Y_IRIS, "array", False),
]


@pytest.mark.parametrize(("label", "model", "x", "y", "tier", "slim"), CASES, ids=[c[0] for c in CASES])
def test_tiers_answer_like_the_estimator(
    label: str, model: Any, x: pd.DataFrame, y: pd.Series, tier: str, slim: bool, tmp_path: Path
) -> None:
    model.fit(x, y)
    predictor, validator = build(model, x)
    assert predictor.tier == tier
    assert (predictor.plan is not None) == slim
    rng = np.random.default_rng(3)
    rows = (x.sample(50, random_state=1).to_numpy() * rng.uniform(0.8, 1.2, size=(50, x.shape[1]))).tolist()
    checked = validator.invoke({"instances": rows}, proba=True)
    want = model.predict(pd.DataFrame(rows, columns=x.columns))
    assert np.array_equal(predictor.predict(checked), want) or np.allclose(predictor.predict(checked), want)
    if hasattr(model, "predict_proba"):
        proba = predictor.proba(checked)
        assert proba is not None
        assert np.allclose(proba, model.predict_proba(pd.DataFrame(rows, columns=x.columns)))
    if predictor.plan is not None:
        predictor.plan.save(tmp_path / "plan.npz")
        slim_predictor = Predictor.from_plan(LinearPlan.load(tmp_path / "plan.npz"))
        assert np.array_equal(slim_predictor.predict(checked), predictor.predict(checked))
        assert slim_predictor.has_proba == predictor.has_proba


def test_models_that_need_column_names_use_the_frame() -> None:
    x = pd.DataFrame({"city": ["a", "b", "c", "a"] * 10, "size": np.arange(40, dtype=float)})
    y = (x["size"] > 20).astype(int)
    model = make_pipeline(
        ColumnTransformer([("c", OneHotEncoder(), ["city"])], remainder="passthrough"), LogisticRegression()
    ).fit(x, y)
    predictor, validator = build(model, x)
    assert predictor.tier == "frame"
    rows = validator.invoke([{"city": "b", "size": 30.0}, {"city": "a", "size": 1.0}])
    assert predictor.predict(rows).tolist() == model.predict(pd.DataFrame(rows.rows, columns=x.columns)).tolist()

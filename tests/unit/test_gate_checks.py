"""The gate's checks on their own: thresholds, schema, NaN/inf, champion/challenger; each says by how much."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from legion_ci.core.artifact import Artifact, save_model, write_json_atomic
from legion_ci.core.errors import ArtifactError
from legion_ci.core.manifest import ExportedModel, Feature, InputSchema, Manifest
from legion_ci.core.spec import GateSpec
from legion_ci.quality.checks import bound_check
from legion_ci.quality.gate import (
    comparison_check,
    evaluate_both,
    load_holdout,
    nan_check,
    schema_check,
    threshold_checks,
)

FEATURES = [Feature(name=n, dtype="float64") for n in ("a", "b", "c")]


def gate(**fields: Any) -> GateSpec:
    return GateSpec.model_validate(fields)


def make_artifact(folder: Path, model: Any, artifact_id: str, features: list[str] | None = None) -> Artifact:
    """A real artifact folder (model file, manifest, held-out rows) as the train stage writes one."""
    frame = load_iris(as_frame=True).frame
    x, y = frame.drop(columns=["target"]), frame["target"]
    cols = features or list(x.columns)
    model.fit(x[cols], y)
    folder.mkdir(parents=True)
    info = save_model(model, folder)
    holdout = x[cols].iloc[::3].copy()
    holdout["target"] = y.iloc[::3].to_numpy()
    holdout.to_csv(folder / "holdout.csv", index=False)
    manifest = Manifest(
        name="iris",
        version="1.0.0",
        artifact_id=artifact_id,
        model=ExportedModel(
            **info.model_dump(),
            task="classification",
            input_schema=InputSchema(features=[Feature(name=c, dtype="float64") for c in cols]),
        ),
    )
    write_json_atomic(folder / "manifest.json", manifest.to_json())
    return Artifact.open(folder)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    return make_artifact(tmp_path_factory.mktemp("a") / "good", LogisticRegression(max_iter=500), "good0000")


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    return make_artifact(tmp_path_factory.mktemp("a") / "bad", DummyClassifier(strategy="most_frequent"), "bad00000")


def test_a_minimum_missed_says_by_how_much() -> None:
    check = bound_check("threshold", "accuracy", "accuracy", 0.91, 0.99, None)
    assert not check.passed
    assert check.message == "accuracy 0.91 is below the minimum 0.99 by 0.08"
    assert check.margin == pytest.approx(-0.08) and check.bound == 0.99


def test_a_maximum_missed_and_a_bound_kept() -> None:
    over = bound_check("sla", "p95 latency", "p95 latency", 12.0, None, 0.01, unit=" ms")
    assert not over.passed and over.message == "p95 latency 12 ms is above the maximum 0.01 ms by 11.99 ms"
    kept = bound_check("threshold", "log_loss", "log_loss", 0.2, None, 0.5)
    assert kept.passed and kept.margin == pytest.approx(0.3) and "0.3 to spare" in kept.message


def test_thresholds_cover_held_out_and_logged_metrics_and_name_a_missing_one() -> None:
    spec = gate(thresholds={"accuracy": {"min": 0.9}, "train_accuracy": {"min": 0.99}, "r2": {"min": 0.1}})
    checks = {c.name: c for c in threshold_checks(spec, {"accuracy": 0.95, "train_accuracy": 0.98})}
    assert checks["accuracy"].passed
    assert not checks["train_accuracy"].passed and "below the minimum 0.99 by 0.01" in checks["train_accuracy"].message
    assert not checks["r2"].passed
    assert checks["r2"].message == (
        "gate.thresholds.r2: metric 'r2' was not measured (measured: accuracy, train_accuracy)"
    )


def test_schema_equal_changed_allowed_and_without_production() -> None:
    same = schema_check(gate(), InputSchema(features=FEATURES), InputSchema(features=FEATURES))
    assert same.passed and not same.skipped
    changed = InputSchema(features=[FEATURES[0], Feature(name="b", dtype="int64"), Feature(name="d", dtype="float64")])
    refused = schema_check(gate(), changed, InputSchema(features=FEATURES), "production 1.0.0 (abcd1234)")
    assert not refused.passed
    assert "added features ['d']" in refused.message and "removed features ['c']" in refused.message
    assert "feature 'b' dtype float64 -> int64" in refused.message
    assert "gate.allow_schema_change" in refused.message
    assert schema_check(gate(allow_schema_change=True), changed, InputSchema(features=FEATURES)).passed
    reordered = schema_check(gate(), InputSchema(features=FEATURES[::-1]), InputSchema(features=FEATURES))
    assert not reordered.passed and "feature order" in reordered.message
    assert schema_check(gate(), changed, None).skipped


def test_nan_and_inf_in_training_data_fail_unless_allowed() -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [np.inf, 1.0, -np.inf], "label": ["x", None, "y"]})
    check = nan_check(gate(), frame, "data.csv")
    assert not check.passed and check.value == 4
    assert "'a': 1 NaN" in check.message and "'b': 2 inf" in check.message and "'label': 1 NaN" in check.message
    assert "gate.allow_nan" in check.message
    assert nan_check(gate(allow_nan=True), frame, "data.csv").passed
    assert nan_check(gate(), frame.dropna().replace([np.inf, -np.inf], 0), "data.csv").passed


def test_a_worse_candidate_fails_the_comparison_by_a_stated_margin(good: Artifact, bad: Artifact) -> None:
    spec = gate(compare_to_production={"metric": "accuracy", "max_regression": 0.02})
    check, prod = comparison_check(spec, bad, good)
    assert not check.passed and prod["accuracy"] > 0.9
    assert "regresses by" in check.message and "more than the allowed 0.02" in check.message
    assert check.margin is not None and check.margin < -0.5


def test_comparison_passes_skips_and_demands_improvement_on_retrain(good: Artifact, bad: Artifact) -> None:
    spec = gate(compare_to_production={"metric": "accuracy"})
    assert comparison_check(spec, good, bad)[0].passed
    assert comparison_check(spec, good, None)[0].skipped
    assert comparison_check(gate(compare_to_production={"enabled": False}), bad, good)[0].skipped
    same, _ = comparison_check(spec, good, good, require_improvement=True)
    assert same.passed  # the same artifact against itself is not a regression
    tie = Artifact(good.path, good.manifest.model_copy(update={"artifact_id": "other000"}))
    no_better, _ = comparison_check(spec, tie, good, require_improvement=True)
    assert not no_better.passed and "no better" in no_better.message


def test_production_that_cannot_read_the_candidates_rows(good: Artifact, tmp_path: Path) -> None:
    narrow = make_artifact(
        tmp_path / "narrow",
        LogisticRegression(max_iter=500),
        "narrow00",
        features=["sepal length (cm)", "sepal width (cm)"],
    )
    assert evaluate_both(narrow, good)[1] is None
    refused, _ = comparison_check(gate(), narrow, good)
    assert not refused.passed and "petal length (cm)" in refused.message
    assert comparison_check(gate(allow_schema_change=True), narrow, good)[0].skipped


def test_a_missing_holdout_is_an_artifact_error(good: Artifact, tmp_path: Path) -> None:
    broken = Artifact(tmp_path, good.manifest)
    with pytest.raises(ArtifactError, match=r"holdout\.csv"):
        load_holdout(broken)


def test_verdict_fails_forces_and_halts() -> None:
    from legion_ci.pipeline.stages.gate import verdict
    from legion_ci.quality.checks import Check
    from legion_ci.quality.gate import NO_IMPROVEMENT

    ok = Check("threshold", "f1", True, "f1 0.95 within min 0.9")
    low = Check("threshold", "accuracy", False, "accuracy 0.8 is below the minimum 0.9 by 0.1")
    same = Check(
        "comparison",
        "no regression vs production (accuracy)",
        False,
        "candidate accuracy 0.95 vs production 0.95: the candidate is no better",
        code=NO_IMPROVEMENT,
    )
    assert verdict([ok], None).status == "passed"
    failed = verdict([ok, low], None)
    assert failed.status == "failed" and failed.reason == low.message and failed.failed == [low]
    forced = verdict([ok, low], "hotfix")
    assert forced.status == "forced" and forced.forced == "hotfix" and forced.failed == [low]
    halted = verdict([ok, same], None)
    assert halted.status == "halted" and halted.halt == f"{same.message}; nothing to deploy"
    assert halted.checks[1].skipped and not halted.failed
    assert verdict([low, same], None).status == "failed"  # a real failure is never hidden behind a halt
    assert verdict([same], "deploy anyway").status == "forced"


# -- the tie rule (issue 12, item 5) ------------------------------------------------------------------
def _retrain(spec: GateSpec, good: Artifact, cand: dict[str, float], prod: dict[str, float]) -> Any:
    other = Artifact(good.path, good.manifest.model_copy(update={"artifact_id": "other000"}))
    return comparison_check(spec, other, good, require_improvement=True, metrics=(cand, prod))[0]


def test_a_production_at_the_best_possible_score_is_said_to_be_unbeatable(good: Artifact) -> None:
    check = _retrain(gate(compare_to_production={"metric": "accuracy"}), good, {"accuracy": 1.0}, {"accuracy": 1.0})
    assert not check.passed and check.code == "no-improvement"
    assert "production already scores the best possible accuracy (1)" in check.message
    assert "no retrain can ever beat it on accuracy" in check.message
    assert "min_delta: 0" in check.message and "tie_breaker: METRIC" in check.message
    lower = _retrain(gate(compare_to_production={"metric": "rmse"}), good, {"rmse": 0.0}, {"rmse": 0.0})
    assert "best possible rmse (0)" in lower.message


def test_an_ordinary_tie_names_the_tie_rule_too(good: Artifact) -> None:
    check = _retrain(gate(), good, {"accuracy": 0.9}, {"accuracy": 0.9})
    assert not check.passed and "a tie" in check.message and "min_delta: 0" in check.message
    assert "best possible" not in check.message


def test_min_delta_zero_accepts_a_tie(good: Artifact) -> None:
    spec = gate(compare_to_production={"metric": "accuracy", "min_delta": 0})
    check = _retrain(spec, good, {"accuracy": 1.0}, {"accuracy": 1.0})
    assert check.passed and not check.skipped and "accepted by gate.compare_to_production.min_delta 0" in check.message
    worse = _retrain(spec, good, {"accuracy": 0.98}, {"accuracy": 1.0})
    assert not worse.passed and worse.code == "no-improvement"


def test_min_delta_demands_that_much_improvement(good: Artifact) -> None:
    spec = gate(compare_to_production={"metric": "accuracy", "min_delta": 0.05})
    short = _retrain(spec, good, {"accuracy": 0.92}, {"accuracy": 0.9})
    assert not short.passed and "less than gate.compare_to_production.min_delta 0.05" in short.message
    assert _retrain(spec, good, {"accuracy": 0.96}, {"accuracy": 0.9}).passed


def test_a_tie_breaker_decides_a_tie(good: Artifact) -> None:
    spec = gate(compare_to_production={"metric": "accuracy", "tie_breaker": "log_loss"})
    won = _retrain(spec, good, {"accuracy": 1.0, "log_loss": 0.05}, {"accuracy": 1.0, "log_loss": 0.10})
    assert won.passed and "decided by the tie breaker log_loss 0.0500 vs 0.1000" in won.message
    lost = _retrain(spec, good, {"accuracy": 1.0, "log_loss": 0.10}, {"accuracy": 1.0, "log_loss": 0.10})
    assert not lost.passed and "the tie breaker log_loss 0.1000 vs 0.1000 is no better" in lost.message
    missing = _retrain(spec, good, {"accuracy": 1.0}, {"accuracy": 1.0})
    assert not missing.passed and "tie_breaker 'log_loss' cannot be computed" in missing.message
    assert _retrain(spec, good, {"accuracy": 0.95, "log_loss": 0.01}, {"accuracy": 0.9, "log_loss": 0.5}).passed


def test_a_tie_rule_is_checked_in_the_spec() -> None:
    with pytest.raises(ValueError, match="did you mean 'log_loss'"):
        gate(compare_to_production={"tie_breaker": "logloss"})
    with pytest.raises(ValueError, match="is the compared metric itself"):
        gate(compare_to_production={"metric": "f1", "tie_breaker": "f1"})
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        gate(compare_to_production={"min_delta": -0.1})

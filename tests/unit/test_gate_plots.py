"""The gate report against production: metrics on an axis zoomed to their values (and saying so), short row
labels, the difference written out, class names from the data, production's confusion matrix beside the
candidate's."""

from __future__ import annotations

import re
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from legion_ci.core.spec import Bound, TrainSpec
from legion_ci.reports import gate_plots
from legion_ci.reports.gate_report import GateEvidence, write_gate_reports
from legion_ci.reports.model import ReportHead, ReportStatus
from legion_ci.training.data import class_names

SPECIES = ["setosa", "versicolor", "virginica"]
LONG_LABEL = "production 1.0.0 (16597c3f70bd2e58)"


def ticks(svg: str, key: str, axis: str, axes: int = 1) -> list[str]:
    """The tick labels of one axes of a figure, as the SVG holds them."""
    group = re.search(rf'<g id="{key}-axes_{axes}">(.*?)<g id="{key}-axes_{axes + 1}">', svg, re.S)
    body = group[1] if group else svg
    return re.findall(rf'<g id="{key}-{axis}tick_\d+">.*?<text[^>]*>([^<]*)</text>', body, re.S)


def test_a_small_difference_is_shown_on_a_zoomed_axis_that_says_so() -> None:
    svg = gate_plots.metrics_bar_svg({"accuracy": 0.985}, {"accuracy": 1.0}, {"accuracy": Bound(min=0.95)})
    xs = [float(t.replace("\u2212", "-")) for t in ticks(svg, "metrics", "x")]
    assert min(xs) >= 0.9 and max(xs) <= 1.01, xs  # not 0 to 1, where 0.985 and 1.000 look the same
    assert "axis zoomed, not from 0" in svg
    assert "Δ -0.0150 vs production: worse" in svg
    assert ticks(svg, "metrics", "y") == ["candidate", "production"]  # short rows: the plot keeps its width
    assert LONG_LABEL not in svg


def test_an_axis_near_zero_starts_at_zero_and_says_nothing() -> None:
    svg = gate_plots.metrics_bar_svg({"log_loss": 0.08}, {"log_loss": 0.05}, {"log_loss": Bound(max=0.5)})
    assert ticks(svg, "metrics", "x")[0] in ("0.0", "0.00", "0")
    assert "zoomed" not in svg and "Δ +0.0300 vs production: worse" in svg and "lower is better" in svg


def test_without_production_the_candidate_stands_alone_on_its_own_scale() -> None:
    svg = gate_plots.metrics_bar_svg({"r2": 0.45, "rmse": 55.0}, None, {})
    assert ticks(svg, "metrics", "y") == ["candidate"] and "no production to compare" in svg
    assert "zoomed" not in svg  # one value alone: nothing to zoom in on
    assert [t for t in ticks(svg, "metrics", "x")][:1] in (["0.0"], ["0.00"], ["0"])


def evidence_with_production() -> GateEvidence:
    x, y = load_iris(return_X_y=True)
    cand = LogisticRegression(max_iter=500).fit(x[::2], y[::2])
    prod = LogisticRegression(C=0.01, max_iter=500).fit(x[::2], y[::2])
    return GateEvidence(
        "classification",
        y[1::2].tolist(),
        cand.predict(x[1::2]).tolist(),
        cand.predict_proba(x[1::2]),
        [0, 1, 2],
        {"accuracy": 0.96, "f1": 0.96},
        {},
        {"accuracy": 0.8, "f1": 0.79},
        LONG_LABEL,
        {},
        prod.predict(x[1::2]).tolist(),
        SPECIES,
    )


def test_gate_page_has_both_confusion_matrices_with_class_names(tmp_path: Path) -> None:
    head = ReportHead("gate", "Quality gate", "iris", "1.1.0", "0" * 16, "r", ReportStatus.PASSED, "ok")
    page = Path(write_gate_reports(tmp_path, head, [], evidence_with_production(), [], {})["html"]).read_text()
    candidate = re.search(r'<figure data-plot="confusion".*?</figure>', page, re.S)
    production = re.search(r'<figure data-plot="confusion-production".*?</figure>', page, re.S)
    assert candidate and production
    assert ticks(candidate[0], "confusion", "x") == SPECIES and ticks(candidate[0], "confusion", "y") == SPECIES
    assert ticks(production[0], "confusion-production", "x") == SPECIES
    assert "Candidate · accuracy" in candidate[0] and "Production · accuracy" in production[0]
    assert LONG_LABEL in production[0]  # the caption names production; the plot's title stays short
    assert page.index('data-plot="confusion"') < page.index('data-plot="confusion-production"')
    roc = re.search(r'<figure data-plot="roc".*?</figure>', page, re.S)
    assert roc and all(f"{name} · AUC" in roc[0] for name in SPECIES)
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_class_names_come_from_a_bundled_dataset_only() -> None:
    assert class_names(TrainSpec(data="sklearn:load_iris"), [0, 1, 2]) == SPECIES
    assert class_names(TrainSpec(data="sklearn:load_breast_cancer"), [0, 1]) == ["malignant", "benign"]
    assert class_names(TrainSpec(data="sklearn:load_iris"), [0, 7]) is None  # not the dataset's codes
    assert class_names(TrainSpec(data="sklearn:load_diabetes"), [0, 1]) is None  # a regressor has none
    assert class_names(TrainSpec(data="data.csv"), ["cat", "dog"]) is None  # a CSV's classes are names already

"""Reports: JUnit XML Jenkins can read, strict JSON, self-contained HTML with the verdict first and the plots."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge

from legion_ci.core.spec import Bound, SlaSpec
from legion_ci.quality.checks import Check
from legion_ci.quality.perf.results import HistoryPoint, RequestStats
from legion_ci.reports.gate_report import GateEvidence, write_gate_reports
from legion_ci.reports.junit import junit_xml
from legion_ci.reports.model import ReportHead, ReportStatus, headline
from legion_ci.reports.perf_report import PerfEvidence, write_perf_reports

CHECKS = [
    Check("threshold", "accuracy", False, "accuracy 0.91 is below the minimum 0.99 by 0.08", 0.91, 0.99, margin=-0.08),
    Check("threshold", "f1", True, "f1 0.95 within min 0.9 (0.05 to spare)", 0.95, 0.9, margin=0.05),
    Check(
        "test",
        "tests/test_model.py::test_x",
        False,
        "tests/test_model.py::test_x failed: assert 1 == 2",
        detail="E   assert 1 == 2\x1b[0m",
        seconds=0.25,
    ),
    Check(
        "comparison", "no regression vs production (accuracy)", True, "skipped: no production version yet", skipped=True
    ),
]
EXTERNAL = re.compile(
    r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//"""
    r"""|url\(\s*["']?(?:https?:)?//|@import""",
    re.IGNORECASE,
)


def head(status: ReportStatus = ReportStatus.FAILED, forced: str | None = None, stage: str = "gate") -> ReportHead:
    return ReportHead(
        stage,
        "Quality gate" if stage == "gate" else "Performance test",
        "iris",
        "1.0.0",
        "0123456789abcdef",
        "iris-run-1",
        status,
        headline(CHECKS, "checks"),
        forced,
        1.5,
    )


def classifier_evidence() -> GateEvidence:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x[::2], y[::2])
    return GateEvidence(
        "classification",
        y[1::2].tolist(),
        model.predict(x[1::2]).tolist(),
        model.predict_proba(x[1::2]),
        [0, 1, 2],
        {"accuracy": 0.95, "f1": 0.94, "log_loss": 0.2},
        {"train_accuracy": 0.98},
        {"accuracy": 0.97, "f1": 0.96, "log_loss": 0.1},
        "production 1.0.0 (fedcba98)",
        {"accuracy": Bound(min=0.99)},
    )


def regressor_evidence() -> GateEvidence:
    x, y = load_diabetes(return_X_y=True)
    model = Ridge().fit(x[::2], y[::2])
    return GateEvidence(
        "regression",
        y[1::2].tolist(),
        model.predict(x[1::2]).tolist(),
        None,
        [],
        {"r2": 0.4, "rmse": 58.0, "mae": 47.0},
        {},
        None,
        None,
        {"rmse": Bound(max=65)},
    )


def test_junit_has_one_testcase_per_check_and_failures_carry_the_reason() -> None:
    root = ET.fromstring(junit_xml(head(), CHECKS))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "4" and suite.get("failures") == "2"
    assert suite.get("skipped") == "1" and suite.get("errors") == "0"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert len(cases) == 4
    failure = cases["accuracy"].find("failure")
    assert failure is not None and failure.get("message") == "accuracy 0.91 is below the minimum 0.99 by 0.08"
    assert cases["accuracy"].get("classname") == "legion.iris.gate.threshold"
    test_failure = cases["tests/test_model.py::test_x"].find("failure")
    assert test_failure is not None and test_failure.text is not None
    assert "assert 1 == 2" in test_failure.text and "\x1b" not in test_failure.text
    assert cases["no regression vs production (accuracy)"].find("skipped") is not None
    assert cases["f1"].find("failure") is None


def test_junit_of_a_forced_gate_keeps_its_failures_and_names_the_reason() -> None:
    root = ET.fromstring(junit_xml(head(ReportStatus.FORCED, "hotfix, ticket ML-7"), CHECKS))
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["forced_reason"] == "hotfix, ticket ML-7" and props["status"] == "forced"
    assert root.find("testsuite").get("failures") == "2"  # type: ignore[union-attr]
    assert "FORCED" in (root.find("testsuite/system-out").text or "")  # type: ignore[union-attr]


def test_junit_of_a_broken_stage_has_an_error_testcase() -> None:
    root = ET.fromstring(junit_xml(head(ReportStatus.ERROR), [], error="holdout.csv: cannot read"))
    (error,) = root.iter("error")
    assert error.get("message") == "holdout.csv: cannot read"
    assert root.find("testsuite").get("errors") == "1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "evidence, plots",
    [(classifier_evidence, ("metrics", "confusion", "roc")), (regressor_evidence, ("metrics", "pva", "residuals"))],
)
def test_gate_html_is_self_contained_verdict_first_with_its_plots(tmp_path: Path, evidence, plots) -> None:
    paths = write_gate_reports(tmp_path, head(), CHECKS, evidence(), [("model", "iris 1.0.0")], {"flow": "push"})
    page = Path(paths["html"]).read_text()
    assert not EXTERNAL.search(page) and "http://" not in page and "https://" not in page
    banner = page.index('id="verdict"')
    assert page.index("accuracy 0.91 is below the minimum 0.99 by 0.08") > banner
    assert page.index("accuracy 0.91 is below the minimum 0.99 by 0.08") < page.index('id="checks"')
    assert 'data-status="failed"' in page and ">FAILED<" in page
    for key in plots:
        figure = re.search(rf'<figure data-plot="{key}".*?</figure>', page, re.S)
        assert figure, key
        assert re.search(rf'id="{key}-data', figure[0]), f"{key}: no data marks"
    assert page.count("<svg") == len(plots)
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "ids must be unique across the inline SVGs"
    summary = json.loads(Path(paths["summary"]).read_text(), parse_constant=lambda c: pytest.fail(f"JSON has {c}"))
    assert summary["status"] == "failed" and summary["counts"] == {
        "total": 4,
        "passed": 1,
        "failed": 2,
        "skipped": 1,
        "halted": 0,
    }
    assert ET.parse(paths["junit"]).getroot().tag == "testsuites"


def test_forced_gate_page_says_forced_and_why(tmp_path: Path) -> None:
    paths = write_gate_reports(tmp_path, head(ReportStatus.FORCED, "hotfix <b>now</b>"), CHECKS, None, [], {})
    page = Path(paths["html"]).read_text()
    assert 'data-status="forced"' in page and ">FORCED<" in page
    assert "hotfix &lt;b&gt;now&lt;/b&gt;" in page and "<b>now</b>" not in page
    assert json.loads(Path(paths["summary"]).read_text())["forced_reason"] == "hotfix <b>now</b>"


def test_perf_reports_with_history_and_a_missed_sla(tmp_path: Path) -> None:
    total = RequestStats("Aggregated", 900, 0, 4.0, 5.0, 0.4, 40.0, 300.0, 4.0, 11.0, 16.0)
    history = [HistoryPoint(float(t), 5, 290.0 + t, 0.0, 4.0, 11.0 + t, 16.0 + t, 300 * t, 0) for t in range(4)]
    history.insert(0, HistoryPoint(0.0, 0, 0.0, 0.0, float("nan"), float("nan"), float("nan"), 0, 0))
    checks = [
        Check(
            "sla",
            "p95 latency",
            False,
            "p95 latency 11 ms is above the maximum 0.01 ms by 10.99 ms",
            11.0,
            0.01,
            margin=-10.99,
        )
    ]
    ev = PerfEvidence(
        users=5,
        spawn_rate=5.0,
        duration=3,
        auth=True,
        url="http://127.0.0.1:1",
        pid=1,
        locustfile="/x/locustfile.py",
        locustfile_source="generated",
        total=total,
        requests=[total],
        history=history,
    )
    paths = write_perf_reports(tmp_path, head(ReportStatus.FAILED, stage="perf"), checks, ev, SlaSpec(p95_ms=0.01), {})
    page = Path(paths["html"]).read_text()
    assert "p95 latency 11 ms is above the maximum 0.01 ms by 10.99 ms" in page
    assert 'href="locust.html"' in page and Path(paths["locust"]).is_file()  # a stand-in: Locust wrote none
    for key in ("latency", "throughput"):
        assert re.search(rf'<figure data-plot="{key}".*?id="{key}-data.*?</figure>', page, re.S), key
    assert not EXTERNAL.search(page.replace('href="http://127.0.0.1:1"', ""))
    summary = json.loads(Path(paths["summary"]).read_text())
    assert summary["totals"]["p95_ms"] == 11.0 and summary["totals"]["error_rate"] == 0.0


def test_skipped_perf_still_writes_every_report(tmp_path: Path) -> None:
    skipped = ReportHead(
        "perf",
        "Performance test",
        "iris",
        "1.0.0",
        "0123456789abcdef",
        "r",
        ReportStatus.SKIPPED,
        "skipped by request: load test lab down",
    )
    paths = write_perf_reports(tmp_path, skipped, [], None, SlaSpec(), {"reason": "load test lab down"})
    assert set(paths) == {"html", "junit", "summary", "locust"} and all(Path(p).is_file() for p in paths.values())
    page = Path(paths["html"]).read_text()
    assert ">SKIPPED<" in page and "load test lab down" in page
    assert "load test lab down" in Path(paths["locust"]).read_text()
    junit = ET.parse(paths["junit"]).getroot()
    assert junit.get("tests") == "1" and junit.get("skipped") == "1"
    (skip,) = junit.iter("skipped")
    assert "load test lab down" in (skip.get("message") or "")


def test_summary_json_is_strict_even_with_nan(tmp_path: Path) -> None:
    nan = Check("sla", "p99 latency", False, "p99 latency unknown: no request succeeded", value=float("nan"))
    paths = write_perf_reports(tmp_path, head(ReportStatus.FAILED, stage="perf"), [nan], None, SlaSpec(), {})
    text = Path(paths["summary"]).read_text()
    assert "NaN" not in text and json.loads(text)["checks"][0]["value"] is None
    assert np.isnan(nan.value)  # type: ignore[arg-type]

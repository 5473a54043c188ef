"""The reports in a real browser: headless Chromium lays them out, and the DOM it dumps shows that every
plot was drawn (its SVG has a size, its data marks have geometry) and that nothing was fetched."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge

from legion_ci.core.spec import Bound, SlaSpec
from legion_ci.quality.checks import Check
from legion_ci.quality.perf.results import read_history, read_stats
from legion_ci.reports.gate_report import GateEvidence, write_gate_reports
from legion_ci.reports.model import ReportHead, ReportStatus
from legion_ci.reports.perf_report import PerfEvidence, write_perf_reports

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
)
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(), reason="Debian's chromium is missing (scripts/provision/reports.sh installs it)"
)


def rendered_dom(page: Path, profile: Path | None = None) -> str:
    """The DOM of `page` after Chromium loaded it (and ran its inline script), as HTML text."""
    profile_dir = Path(tempfile.mkdtemp(prefix="chromium-", dir=profile))
    try:
        done = subprocess.run(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile_dir}",
                "--window-size=1280,2000",
                "--dump-dom",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(profile_dir, ignore_errors=True)
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


def figures(dom: str) -> dict[str, tuple[str, int]]:
    """plot key -> (rendered size "WxH", data marks with geometry) as the page's script recorded them."""
    found = {}
    for tag in re.findall(r"<figure\b[^>]*>", dom):
        key = re.search(r'data-plot="([^"]+)"', tag)
        size = re.search(r'data-rendered="([^"]+)"', tag)
        marks = re.search(r'data-marks="(\d+)"', tag)
        if key:
            found[key[1]] = (size[1] if size else "missing", int(marks[1]) if marks else -1)
    return found


def assert_drawn(dom: str, expected: dict[str, int]) -> None:
    drawn = figures(dom)
    assert set(drawn) == set(expected), drawn
    for key, least in expected.items():
        size, marks = drawn[key]
        width, _, height = size.partition("x")
        assert width.isdigit() and int(width) > 200 and int(height) > 150, (key, size)
        assert marks >= least, (key, marks, least)


def head(status: ReportStatus, stage: str = "gate") -> ReportHead:
    return ReportHead(
        stage,
        "Quality gate" if stage == "gate" else "Performance test",
        "iris",
        "1.0.0",
        "0123456789abcdef",
        "browser-run",
        status,
        "accuracy 0.9 is below the minimum 0.99 by 0.09",
    )


CHECKS = [
    Check("threshold", "accuracy", False, "accuracy 0.9 is below the minimum 0.99 by 0.09", 0.9, 0.99, margin=-0.09)
]


def test_classifier_gate_report_renders_confusion_matrix_roc_and_metrics(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x[::2], y[::2])
    evidence = GateEvidence(
        "classification",
        y[1::2].tolist(),
        model.predict(x[1::2]).tolist(),
        model.predict_proba(x[1::2]),
        [0, 1, 2],
        {"accuracy": 0.9, "f1": 0.9, "roc_auc": 0.99},
        {},
        {"accuracy": 0.97, "f1": 0.96, "roc_auc": 0.99},
        "production 1.0.0 (fedcba98)",
        {"accuracy": Bound(min=0.99)},
    )
    paths = write_gate_reports(tmp_path, head(ReportStatus.FAILED), CHECKS, evidence, [], {})
    dom = rendered_dom(Path(paths["html"]), tmp_path)
    # metrics: 3 metrics x 2 bars; confusion: 9 cells' counts + the mesh; roc: 3 curves
    assert_drawn(dom, {"metrics": 6, "confusion": 10, "roc": 3})
    assert 'data-status="failed"' in dom and "accuracy 0.9 is below the minimum 0.99 by 0.09" in dom
    assert dom.count("<svg") == 3


def test_regressor_gate_report_renders_predicted_vs_actual_and_residuals(tmp_path: Path) -> None:
    x, y = load_diabetes(return_X_y=True)
    model = Ridge().fit(x[::2], y[::2])
    evidence = GateEvidence(
        "regression",
        y[1::2].tolist(),
        model.predict(x[1::2]).tolist(),
        None,
        [],
        {"r2": 0.45, "rmse": 55.0, "mae": 45.0},
        {},
        None,
        None,
        {"rmse": Bound(max=65)},
    )
    paths = write_gate_reports(tmp_path, head(ReportStatus.PASSED), [], evidence, [], {})
    dom = rendered_dom(Path(paths["html"]), tmp_path)
    assert_drawn(dom, {"metrics": 3, "pva": 1, "residuals": 2})
    points = re.search(r'<g id="pva-data-points".*?</g>\s*</g>', dom, re.S)
    assert points and points[0].count("<use") == len(y[1::2])  # one mark per held-out row


HISTORY = """Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,\
Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,\
Total Max Response Time,Total Average Content Size
1700000000,0,,Aggregated,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,0,0,0,0.0,0,0,0
1700000001,5,,Aggregated,0.000000,0.000000,5,7,8,8,10,11,14,17,26,40,40,1354,0,5,5.7,0.6,40.0,52.0
1700000002,5,,Aggregated,410.000000,0.000000,4,5,6,7,8,10,12,17,23,40,40,3361,0,4,4.4,0.5,40.0,52.0
1700000003,5,,Aggregated,980.500000,1.000000,4,6,7,7,9,11,14,16,23,40,40,6220,1,4,4.9,0.3,40.0,52.0
"""
STATS = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,\
Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
POST,invoke,6220,1,4,4.9,0.33,56.0,52.0,1540.2,0.2,4,6,7,7,9,11,14,16,55,57,57
,Aggregated,6220,1,4,4.9,0.33,56.0,52.0,1540.2,0.2,4,6,7,7,9,11,14,16,55,57,57
"""


def test_perf_report_renders_latency_and_throughput_over_time(tmp_path: Path) -> None:
    (tmp_path / "locust_stats_history.csv").write_text(HISTORY)
    (tmp_path / "locust_stats.csv").write_text(STATS)
    total, rows = read_stats(tmp_path / "locust_stats.csv")
    evidence = PerfEvidence(
        users=5,
        spawn_rate=5.0,
        duration=3,
        auth=False,
        url="http://127.0.0.1:9",
        locustfile_source="generated",
        total=total,
        requests=rows,
        history=read_history(tmp_path / "locust_stats_history.csv"),
    )
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
    paths = write_perf_reports(tmp_path, head(ReportStatus.FAILED, "perf"), checks, evidence, SlaSpec(p95_ms=0.01), {})
    dom = rendered_dom(Path(paths["html"]), tmp_path)
    assert_drawn(dom, {"latency": 3, "throughput": 3})
    assert "p95 latency 11 ms is above the maximum 0.01 ms by 10.99 ms" in dom and 'href="locust.html"' in dom

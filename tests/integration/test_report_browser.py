"""The reports in a real browser, as a person on a laptop sees them: headless Chromium lays them out at
1366x768, takes a screenshot, and the DOM it dumps shows that every plot was drawn (its SVG has a size, its
data marks have geometry), that no two text boxes of a plot overlap (getBoundingClientRect of every <text>,
as the browser placed it with its own fonts), that every plotting area is wide enough to read, and that the
page needs no sideways scrolling."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge

from legion_ci.core.spec import Bound, SlaSpec
from legion_ci.quality.checks import Check
from legion_ci.quality.perf.results import (
    RequestStats,
    Sampler,
    read_history,
    read_samples,
    read_stats,
    with_sampled_rate,
)
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


LAPTOP = (1366, 768)  # the most common laptop screen
MIN_PLOT_WIDTH = 150  # px: a plotting area narrower than this (a bar squeezed beside a long label) is unreadable
# Measures the page as laid out and writes the result into <body data-layout="...">, which --dump-dom keeps:
# every pair of overlapping text boxes inside a plot, each plotting area's size, and the page's width.
LAYOUT = """
<script>
window.addEventListener('load', function () {
  function cut(a, b) {
    var w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    var h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    return w > 1 && h > 1;  // more than a pixel each way: touching is not overlapping
  }
  var out = {overlaps: [], areas: [], scroll: document.documentElement.scrollWidth, viewport: window.innerWidth};
  document.querySelectorAll('figure[data-plot]').forEach(function (fig) {
    var key = fig.getAttribute('data-plot'), svg = fig.querySelector('svg');
    if (!svg) return;
    var texts = [];
    svg.querySelectorAll('text').forEach(function (t) {
      var r = t.getBoundingClientRect(), s = t.textContent.trim();
      if (s && r.width > 0 && r.height > 0) texts.push({s: s, r: r});
    });
    for (var i = 0; i < texts.length; i++)
      for (var j = i + 1; j < texts.length; j++)
        if (cut(texts[i].r, texts[j].r)) out.overlaps.push([key, texts[i].s, texts[j].s]);
    svg.querySelectorAll('g[id*="-axes_"]').forEach(function (axes) {
      var patch = axes.querySelector(':scope > g[id*="-patch_"]');
      if (!patch) return;
      var r = patch.getBoundingClientRect();
      if (r.width > 0) out.areas.push([key, Math.round(r.width), Math.round(r.height)]);
    });
    out.areas.push([key + ' (svg)', Math.round(svg.getBoundingClientRect().width), 0]);
  });
  document.body.setAttribute('data-layout', JSON.stringify(out));
});
</script>
"""


def chromium(page: Path, profile: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    profile_dir = Path(tempfile.mkdtemp(prefix="chromium-", dir=profile))
    try:
        return subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile_dir}", *args, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(profile_dir, ignore_errors=True)


def rendered_dom(page: Path, profile: Path | None = None, size: tuple[int, int] = (1280, 2000)) -> str:
    """The DOM of `page` after Chromium loaded it (and ran its inline script), as HTML text."""
    done = chromium(page, profile, f"--window-size={size[0]},{size[1]}", "--dump-dom")
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def laptop_layout(page: Path, profile: Path) -> dict:
    """The page at 1366x768: a screenshot beside it (page.png), and its layout as the browser measured it."""
    shot = page.with_suffix(".png")
    done = chromium(page, profile, f"--window-size={LAPTOP[0]},{LAPTOP[1]}", f"--screenshot={shot}")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    assert png_size(shot) == LAPTOP
    probe = page.with_name(f"layout-{page.name}")
    probe.write_text(page.read_text().replace("</body>", LAYOUT + "</body>"))
    dom = rendered_dom(probe, profile, LAPTOP)
    found = re.search(r'<body[^>]*data-layout="([^"]*)"', dom)
    assert found, "the layout probe did not run"
    return dict(json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&")))


def assert_readable(layout: dict, plots: set[str]) -> None:
    """No text box of a plot overlaps another, every plotting area is wide enough, nothing scrolls sideways."""
    assert layout["overlaps"] == [], f"overlapping text in the plots: {layout['overlaps']}"
    measured = {key.removesuffix(" (svg)") for key, _, _ in layout["areas"]}
    assert plots <= measured, (plots, layout["areas"])
    narrow = [a for a in layout["areas"] if a[1] < MIN_PLOT_WIDTH]
    assert narrow == [], f"plotting areas narrower than {MIN_PLOT_WIDTH}px at 1366px: {narrow}"
    assert layout["scroll"] <= layout["viewport"], f"the page scrolls sideways: {layout}"


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
    production = LogisticRegression(C=0.05, max_iter=500).fit(x[::2], y[::2])
    evidence = GateEvidence(
        "classification",
        y[1::2].tolist(),
        model.predict(x[1::2]).tolist(),
        model.predict_proba(x[1::2]),
        [0, 1, 2],
        {"accuracy": 0.985, "f1": 0.9849, "precision": 0.986, "recall": 0.985, "roc_auc": 0.999, "log_loss": 0.08},
        {},
        {"accuracy": 1.0, "f1": 1.0, "precision": 1.0, "recall": 1.0, "roc_auc": 1.0, "log_loss": 0.05},
        "production 1.0.0 (16597c3f70bd2e58)",
        {"accuracy": Bound(min=0.99), "log_loss": Bound(max=0.5)},
        production.predict(x[1::2]).tolist(),
        ["setosa", "versicolor", "virginica"],
    )
    paths = write_gate_reports(tmp_path, head(ReportStatus.FAILED), CHECKS, evidence, [], {})
    dom = rendered_dom(Path(paths["html"]), tmp_path)
    # metrics: 6 metrics x 2 dots; each confusion matrix: 9 cells' counts + the mesh; roc: 3 curves
    assert_drawn(dom, {"metrics": 12, "confusion": 10, "confusion-production": 10, "roc": 3})
    assert 'data-status="failed"' in dom and "accuracy 0.9 is below the minimum 0.99 by 0.09" in dom
    assert dom.count("<svg") == 4
    assert_readable(
        laptop_layout(Path(paths["html"]), tmp_path), {"metrics", "confusion", "confusion-production", "roc"}
    )


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
    assert_readable(laptop_layout(Path(paths["html"]), tmp_path), {"metrics", "pva", "residuals"})


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
    assert_readable(laptop_layout(Path(paths["html"]), tmp_path), {"latency", "throughput"})


def test_sampled_perf_report_with_a_far_sla_is_readable_at_laptop_width(tmp_path: Path) -> None:
    sampler = Sampler()
    sampler.begin(1000.0)
    for i in range(4 * 900):  # 4 s at 900 req/s, 12-21 ms
        sampler.record(1000.0 + (i + 1) / 900, 12.0 + i % 10, failed=False, users=10)
    sampler.write(str(tmp_path / "locust_samples.csv"))
    samples = read_samples(tmp_path / "locust_samples.csv")
    total = with_sampled_rate(RequestStats("Aggregated", 3600, 0, 16, 16, 12, 21, 670.0, 16, 20, 21), samples)
    evidence = PerfEvidence(10, 10.0, 4, False, total=total, requests=[total], history=samples)
    sla = SlaSpec(p95_ms=250, p99_ms=400)
    paths = write_perf_reports(tmp_path, head(ReportStatus.PASSED, "perf"), [], evidence, sla, {})
    dom = rendered_dom(Path(paths["html"]), tmp_path)
    assert_drawn(dom, {"latency": 3, "throughput": 3})
    assert "off the scale" in dom and "mean 900/s" in dom
    assert_readable(laptop_layout(Path(paths["html"]), tmp_path), {"latency", "throughput"})

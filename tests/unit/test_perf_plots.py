"""The perf report's numbers over time: half-second samples, one throughput for the headline and the plot, and a
latency axis scaled to the data rather than to a far-away SLA bound."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from legion_ci.core.spec import SlaSpec
from legion_ci.quality.perf.results import (
    HistoryPoint,
    RequestStats,
    Sampler,
    mean_rps,
    read_samples,
    with_sampled_rate,
)
from legion_ci.reports import perf_plots
from legion_ci.reports.model import ReportHead, ReportStatus
from legion_ci.reports.perf_report import PerfEvidence, write_perf_reports


def sampled(tmp_path: Path, seconds: float = 5.2, per_second: int = 900, latency_ms: float = 12.0) -> Path:
    """A sampler fed a steady load for `seconds`, written as Locust's quitting hook writes it."""
    sampler = Sampler()
    sampler.begin(1000.0)
    step = 1.0 / per_second
    n = int(seconds * per_second)
    for i in range(n):
        ms = latency_ms + (i % 10)  # 12-21 ms
        sampler.record(1000.0 + (i + 1) * step, ms, failed=i % 500 == 0, users=5)
    path = tmp_path / "locust_samples.csv"
    sampler.write(str(path))
    return path


def test_samples_are_half_second_bins_covering_the_run(tmp_path: Path) -> None:
    points = read_samples(sampled(tmp_path, seconds=5.2))
    assert len(points) == 11  # 10 full half seconds and the last 0.2 s
    assert all(p.width == 0.5 for p in points[:-1]) and points[-1].width == pytest.approx(0.2, abs=1e-3)
    assert [p.seconds for p in points[:3]] == [0.0, 0.5, 1.0]
    assert points[-1].total_requests == int(5.2 * 900)
    assert points[3].rps == pytest.approx(900, rel=0.01) and 12 <= points[3].p50_ms <= points[3].p95_ms <= 21


def test_the_headline_is_the_mean_of_the_plotted_rates(tmp_path: Path) -> None:
    points = read_samples(sampled(tmp_path))
    weighted = sum(p.rps * p.width for p in points) / sum(p.width for p in points)
    assert mean_rps(points) == pytest.approx(weighted)
    locust = RequestStats("Aggregated", points[-1].total_requests, 10, 15, 15, 12, 21, 670.0, 15, 20, 21)
    total = with_sampled_rate(locust, points)
    assert total.rps == pytest.approx(900, rel=0.01) and total.requests == locust.requests
    assert with_sampled_rate(locust, []) is locust  # no samples (an old run): Locust's own figure stays


def test_a_sampler_that_saw_nothing_writes_a_header_only(tmp_path: Path) -> None:
    path = tmp_path / "locust_samples.csv"
    Sampler().write(str(path))
    assert path.read_text().splitlines() == ["seconds,width,users,requests,failures,p50_ms,p95_ms,p99_ms"]
    assert read_samples(path) == [] and read_samples(tmp_path / "absent.csv") == []


def _ylim_top(svg: str) -> float:
    """The highest y tick label of the latency plot: how far up the axis goes."""
    ticks = re.findall(r'<g id="latency-ytick_\d+">.*?<text[^>]*>([\d.,]+)</text>', svg, re.S)
    return max(float(t.replace(",", "")) for t in ticks)


def test_latency_axis_fits_the_data_and_names_a_far_sla_instead_of_drawing_it(tmp_path: Path) -> None:
    points = read_samples(sampled(tmp_path))
    svg = perf_plots.latency_svg(points, 250.0, None)
    assert svg is not None
    assert _ylim_top(svg) <= 30  # 12-21 ms latencies are not flattened under a 250 ms line
    assert "SLA p95 250 ms" in svg and "off the scale" in svg


def test_a_near_sla_bound_is_drawn_on_the_axis(tmp_path: Path) -> None:
    points = read_samples(sampled(tmp_path))
    svg = perf_plots.latency_svg(points, 40.0, 30.0)
    assert svg is not None
    assert _ylim_top(svg) >= 40 and "off the scale" not in svg
    assert "SLA p95 40 ms" in svg and "SLA p99 30 ms" in svg


def test_perf_page_shows_one_throughput_in_the_headline_and_the_plot(tmp_path: Path) -> None:
    points = read_samples(sampled(tmp_path))
    locust = RequestStats("Aggregated", points[-1].total_requests, 10, 15, 15, 12, 21, 670.0, 15, 20, 21)
    total = with_sampled_rate(locust, points)
    ev = PerfEvidence(users=5, spawn_rate=5, duration=5, auth=False, total=total, requests=[], history=points)
    head = ReportHead("perf", "Performance test", "iris", "1.0.0", "0" * 16, "r", ReportStatus.PASSED, "ok")
    page = Path(write_perf_reports(tmp_path, head, [], ev, SlaSpec(p95_ms=250), {})["html"]).read_text()
    card = re.search(r'<div class="v">([\d,.]+)/s</div><div class="k">throughput</div>', page)
    assert card and float(card[1].replace(",", "")) == pytest.approx(900, rel=0.01)
    shown = f"{total.rps:,.0f}/s"
    assert f"mean {shown}" in page  # the dashed line on the throughput plot, labelled with the same number
    steps = re.search(r'<g id="throughput-data-rps">.*?<path d="([^"]+)"', page, re.S)
    assert steps and steps[1].count("L") >= 2 * len(points) - 1  # a step per half-second bin


def test_locust_history_without_samples_still_plots(tmp_path: Path) -> None:
    history = [HistoryPoint(float(t), 5, 300.0, 0.0, 4.0, 11.0, 16.0, 300 * t, 0) for t in range(4)]
    assert perf_plots.latency_svg(history, 100.0, None) is not None
    assert perf_plots.throughput_svg(history) is not None

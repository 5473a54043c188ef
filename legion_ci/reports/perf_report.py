"""The perf test's reports in the run's perf folder: report.html (verdict, SLA table, latency over time, a link
to Locust's own report), junit.xml, summary.json; and a stand-in locust.html when Locust did not run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from legion_ci.core.spec import SlaSpec
from legion_ci.quality.checks import Check
from legion_ci.quality.perf.results import HistoryPoint, RequestStats
from legion_ci.reports import html, perf_plots
from legion_ci.reports.files import write_json, write_text_atomic
from legion_ci.reports.junit import write_junit
from legion_ci.reports.model import ReportHead, ReportStatus, counts

FILES = {"html": "report.html", "junit": "junit.xml", "summary": "summary.json", "locust": "locust.html"}


@dataclass
class PerfEvidence:
    """What one Locust run measured, and how it was run."""

    users: int
    spawn_rate: float
    duration: int
    auth: bool
    url: str | None = None
    pid: int | None = None
    locustfile: str | None = None
    locustfile_source: str | None = None
    total: RequestStats | None = None
    requests: list[RequestStats] = field(default_factory=list)
    history: list[HistoryPoint] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _ms(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:,.1f} ms" if value < 10 else f"{value:,.0f} ms"


def _bound(check: Check, sla: SlaSpec) -> str:
    spec = {
        "p95 latency": ("p95_ms", sla.p95_ms, " ms", "≤"),
        "p99 latency": ("p99_ms", sla.p99_ms, " ms", "≤"),
        "throughput": ("min_rps", sla.min_rps, " req/s", "≥"),
        "error rate": ("max_error_rate", sla.max_error_rate, "", "≤"),
    }.get(check.name)
    if spec is None:
        return "—"
    name, value, unit, op = spec
    if value is None:
        return f'<span class="kind">not set (perf.sla.{name})</span>'
    shown = f"{value:.2%}" if name == "max_error_rate" else f"{value:g}{unit}"
    return f"{op} {escape(shown)} <span class=kind>perf.sla.{name}</span>"


def _measured(check: Check) -> str:
    if check.value is None:
        return "—"
    if check.name == "error rate":
        return f"{check.value:.2%}"
    if check.name == "throughput":
        return f"{check.value:,.1f} req/s"
    return _ms(check.value) if "latency" in check.name else html.num(check.value)


def sla_table(checks: list[Check], sla: SlaSpec) -> str:
    rows = []
    for c in checks:
        badge = f'<span class="badge b-{c.verdict}">{c.verdict.upper()}</span>'
        rows.append((badge, f"<strong>{escape(c.name)}</strong>", _measured(c), _bound(c, sla), escape(c.message)))
    return html.table(("verdict", "bound", "measured", "required", "by how much"), rows, numeric=(2,), cls="sla")


def cards(total: RequestStats) -> str:
    items = [
        ("requests", f"{total.requests:,}"),
        ("failures", f"{total.failures:,}"),
        ("throughput", f"{total.rps:,.1f}/s"),
        ("median", _ms(total.p50_ms)),
        ("p95", _ms(total.p95_ms)),
        ("p99", _ms(total.p99_ms)),
        ("max", _ms(total.max_ms)),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
            for k, v in items
        )
        + "</div>"
    )


def requests_table(rows: list[RequestStats], total: RequestStats) -> str:
    body = [
        (
            escape(r.name),
            f"{r.requests:,}",
            f"{r.failures:,}",
            _ms(r.median_ms),
            _ms(r.average_ms),
            _ms(r.p95_ms),
            _ms(r.p99_ms),
            _ms(r.max_ms),
            f"{r.rps:,.1f}",
        )
        for r in [*rows, total]
    ]
    return html.table(
        ("request", "count", "failures", "median", "average", "p95", "p99", "max", "req/s"),
        body,
        numeric=(1, 2, 3, 4, 5, 6, 7, 8),
    )


def render(
    head: ReportHead, checks: list[Check], ev: PerfEvidence | None, sla: SlaSpec, error: str | None = None
) -> str:
    sections = []
    if error:
        sections.append(html.section("What went wrong", f"<pre>{escape(error)}</pre>", "error"))
    if checks:
        sections.append(html.section("Service level", sla_table(checks, sla), "sla"))
    locust_link = (
        '<p>Locust\'s own report, with every chart it draws: <a href="locust.html">locust.html</a> · '
        'raw numbers: <a href="locust_stats.csv">locust_stats.csv</a>, '
        '<a href="locust_stats_history.csv">locust_stats_history.csv</a> · '
        '<a href="locust.log">locust.log</a> · <a href="server.log">server.log</a></p>'
    )
    if ev is not None and ev.total is not None:
        sections.append(html.section("Measured", cards(ev.total) + locust_link, "measured"))
        sampled = bool(ev.history) and ev.history[0].width < 1
        window = (
            "of the requests answered in each half second"
            if sampled
            else "over Locust's trailing 10-second window, one point a second"
        )
        figures = [
            html.figure(
                perf_plots.latency_svg(ev.history, sla.p95_ms, sla.p99_ms),
                f"Percentiles {window}; red: the SLA's bounds (a bound far above every measured value is named "
                "in the legend instead of drawn, so the lines keep the axis). The verdict uses the whole run's "
                "percentiles.",
                "latency",
                wide=True,
            ),
            html.figure(
                perf_plots.throughput_svg(ev.history, ev.total.rps if sampled else None),
                (
                    f"Requests and failures answered in each half second; dashed: their mean over the run, "
                    f"{ev.total.rps:,.1f} req/s, the throughput above and the one the SLA checks. Below: users running."
                    if sampled
                    else "Requests and failures per second (Locust's trailing average); below: users running."
                ),
                "throughput",
                wide=True,
            ),
        ]
        sections.append(html.section("Over time", f'<div class="plots">{"".join(figures)}</div>', "plots"))
        sections.append(html.section("Requests", requests_table(ev.requests, ev.total), "requests"))
        if ev.failures:
            rows = [
                (escape(f["method"]), escape(f["name"]), escape(f["error"]), escape(f["occurrences"]))
                for f in ev.failures
            ]
            sections.append(
                html.section(
                    "Failures", html.table(("method", "request", "error", "times"), rows, numeric=(3,)), "failures"
                )
            )
    if ev is not None:
        load = [
            ("users", str(ev.users)),
            ("spawn rate", f"{ev.spawn_rate:g} users/s"),
            ("duration", f"{ev.duration}s" + _measured_span(ev)),
            ("locustfile", escape(f"{ev.locustfile_source or '?'}: {ev.locustfile or '?'}")),
            (
                "server",
                escape(
                    f"{ev.url or 'not started'} (the candidate's own, started for this test; prediction "
                    f"capture off; auth {'on: a short-lived token' if ev.auth else 'off'})"
                ),
            ),
            (
                "user class",
                "FastHttpUser, no wait between requests: each user sends its next request when the last is answered",
            ),
        ]
        if ev.timings:
            load.append(("time", escape(", ".join(f"{k} {v:.1f}s" for k, v in ev.timings.items()))))
        sections.append(html.section("Load", html.facts(load), "load"))
    return html.page(head, checks, sections)


def _measured_span(ev: PerfEvidence) -> str:
    """How long requests were actually answered for, from the samples (Locust may stop early or late)."""
    if not ev.history or ev.history[0].width >= 1:
        return ""
    span = sum(p.width for p in ev.history)
    return f" asked; requests were answered over {span:.1f}s ({len(ev.history)} half-second samples)"


def locust_stand_in(head: ReportHead) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Locust did not run</title>'
        f"<style>{html.CSS}</style></head><body><main><h1>Locust did not run for {escape(head.label)}</h1>"
        f'<p>{escape(head.headline)}</p><p><a href="report.html">The perf report</a></p></main></body></html>\n'
    )


def write_perf_reports(
    folder: Path,
    head: ReportHead,
    checks: list[Check],
    evidence: PerfEvidence | None,
    sla: SlaSpec,
    extra: dict[str, Any],
    error: str | None = None,
) -> dict[str, str]:
    """Write report.html, junit.xml and summary.json (and locust.html if Locust wrote none)."""
    paths = {kind: folder / name for kind, name in FILES.items()}
    if not paths["locust"].is_file() or evidence is None or evidence.total is None:
        write_text_atomic(paths["locust"], locust_stand_in(head))
    total = evidence.total if evidence else None
    summary = {
        **head.as_dict(),
        "passed": head.status is ReportStatus.PASSED,
        "counts": counts(checks),
        "error": error,
        "checks": [c.as_dict() for c in checks],
        "sla": sla.model_dump(),
        "load": None
        if evidence is None
        else {
            "users": evidence.users,
            "spawn_rate": evidence.spawn_rate,
            "duration": evidence.duration,
            "url": evidence.url,
            "server_pid": evidence.pid,
            "locustfile": evidence.locustfile,
            "locustfile_source": evidence.locustfile_source,
            "auth": evidence.auth,
        },
        "totals": total.as_dict() if total else None,
        "requests": [r.as_dict() for r in evidence.requests] if evidence else [],
        "reports": {k: str(v) for k, v in paths.items()},
        **extra,
    }
    write_junit(paths["junit"], head, checks, error)
    write_text_atomic(paths["html"], render(head, checks, evidence, sla, error))
    write_json(paths["summary"], summary)
    return {k: str(v) for k, v in paths.items()}

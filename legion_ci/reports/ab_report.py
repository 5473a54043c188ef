"""The A/B report of a rollout evaluation: self-contained HTML (the gain over production with its confidence
sequence at each evaluation, each variant's metric per hour, the traffic split, labelled rows, latency and
errors per variant, the decision and why), the same as JSON, and JUnit in which a rollback is a failed test
case. Written by the evaluate stage and by `legion-ci ab report NAME`; reads the evaluation summaries that
legion_ci.rollout.evaluation.summary makes (the registry events' detail), decides nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from legion_ci.quality.checks import Check
from legion_ci.reports import html
from legion_ci.reports.files import write_json, write_text_atomic
from legion_ci.reports.junit import write_junit
from legion_ci.reports.model import ReportHead, ReportStatus
from legion_ci.reports.svg import MUTED, PALETTE, figure, to_svg

FILES = {"html": "report.html", "summary": "summary.json", "junit": "junit.xml"}


def _variants(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(v["role"]): v for v in data.get("variants", [])}


def head_of(data: dict[str, Any]) -> ReportHead:
    cand = _variants(data).get("candidate", {})
    decision = data.get("decision", {})
    rolled_back = decision.get("action") == "rollback"
    return ReportHead(
        stage="evaluate",
        title="A/B rollout",
        model=str(data.get("model", "")),
        version=str(cand.get("version", "")),
        artifact_id=str(cand.get("artifact_id", "")),
        run_id=str(data.get("run_id", "")),
        status=ReportStatus.FAILED if rolled_back else ReportStatus.PASSED,
        headline=f"{decision.get('action', '?')}: {decision.get('reason', '')}",
    )


def checks_of(data: dict[str, Any]) -> list[Check]:
    """The guards as checks, then the decision: failed when it rolled the candidate back."""
    policy, cand = data.get("policy", {}), _variants(data).get("candidate", {})
    decision = data.get("decision", {})
    requests = cand.get("requests")
    waiting = requests is None or requests < int(policy.get("min_requests", 0))
    checks = []
    rate, bound = cand.get("error_rate"), float(policy.get("max_error_rate", 1.0))
    if waiting or rate is None:
        checks.append(Check("guard", "error_rate", True, f"waiting for requests (seen: {requests})", skipped=True))
    else:
        ok = rate <= bound
        msg = f"candidate error rate {rate:.2%} of {requests} requests (bound {bound:.2%})"
        checks.append(Check("guard", "error_rate", ok, msg, rate, bound, margin=bound - rate))
    p99, p99_bound = cand.get("p99_ms"), policy.get("max_p99_ms")
    if p99_bound is None or p99 is None or waiting:
        checks.append(Check("guard", "p99_latency", True, "no p99 bound set, or no requests yet", skipped=True))
    else:
        ok = p99 <= p99_bound
        msg = f"candidate p99 {p99:.3g} ms (bound {p99_bound:.3g} ms)"
        checks.append(Check("guard", "p99_latency", ok, msg, p99, p99_bound, margin=p99_bound - p99))
    action = str(decision.get("action", ""))
    interval = decision.get("interval") or {}
    checks.append(
        Check(
            "decision",
            f"rollout {action}",
            action != "rollback",
            str(decision.get("reason", "")),
            interval.get("gain"),
            -float(policy.get("margin", 0.0)),
            margin=None if interval.get("low") is None else interval["low"] + float(policy.get("margin", 0.0)),
            detail=str(data.get("done", "")),
        )
    )
    return checks


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def gain_svg(history: Sequence[dict[str, Any]]) -> str | None:
    """The candidate's gain over production with its confidence sequence, at each evaluation."""
    points = [
        (h.get("since", 0) + h.get("elapsed_s", 0), h["decision"]["interval"])
        for h in history
        if (h.get("decision") or {}).get("interval")
    ]
    if not points:
        return None
    margin = float(history[-1].get("policy", {}).get("margin", 0.0))
    xs = [(t - points[0][0]) / 3600 for t, _ in points]
    with figure(9.6, 3.4) as (fig, ax):
        ax.fill_between(
            xs,
            [i["low"] for _, i in points],
            [i["high"] for _, i in points],
            color=PALETTE[0],
            alpha=0.18,
            label="confidence sequence",
            gid="data-band",
        )
        ax.plot(
            xs, [i["gain"] for _, i in points], color=PALETTE[0], marker="o", linewidth=2, label="gain", gid="data-gain"
        )
        ax.axhline(-margin, color="#cf222e", linestyle="--", linewidth=1.4, label=f"-margin ({-margin:g})")
        ax.axhline(0, color=MUTED, linewidth=0.8)
        ax.set_xlabel("hours since the first evaluation")
        ax.set_ylabel(f"{history[-1].get('metric', '')} gain (candidate - production)")
        ax.set_title("Gain over production at each evaluation", loc="left")
        ax.legend(loc="upper left", ncols=3)
        return to_svg(fig, "gain")


def hourly_svg(data: dict[str, Any]) -> str | None:
    """Each variant's metric per hour of labelled rows."""
    variants = [v for v in data.get("variants", []) if v.get("hourly")]
    if not variants:
        return None
    with figure(9.6, 3.2) as (fig, ax):
        for i, v in enumerate(variants):
            hours = sorted(v["hourly"], key=int)
            xs = [_when(int(h) * 3600) for h in hours]
            ax.plot(
                xs,
                [v["hourly"][h][1] for h in hours],
                marker="o",
                color=PALETTE[i % len(PALETTE)],
                linewidth=2,
                label=f"{v['role']} {v['version']}",
                gid=f"data-{v['role']}",
            )
        ax.set_ylabel(str(data.get("metric", "")))
        ax.set_title("Metric per hour of labelled rows", loc="left")
        ax.legend(loc="best")
        fig.autofmt_xdate()
        return to_svg(fig, "hourly")


def weights_svg(history: Sequence[dict[str, Any]]) -> str | None:
    """The candidate's share of the traffic at each evaluation (after its decision)."""
    if not history:
        return None
    t0 = history[0].get("since", 0) + history[0].get("elapsed_s", 0)
    xs, ys = [], []
    for h in history:
        d = h.get("decision", {})
        xs.append((h.get("since", 0) + h.get("elapsed_s", 0) - t0) / 3600)
        ys.append(d.get("weight_to") if d.get("weight_to") is not None else d.get("weight_from", 0))
    with figure(9.6, 2.6) as (fig, ax):
        ax.step(xs, ys, where="post", color=PALETTE[1], linewidth=2, marker="o", gid="data-weight")
        ax.set_ylim(-5, 105)
        ax.set_xlabel("hours since the first evaluation")
        ax.set_ylabel("candidate %")
        ax.set_title("Traffic split", loc="left")
        return to_svg(fig, "weights")


def _num(v: Any, digits: int = 4, unit: str = "") -> str:
    return html.num(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None, digits, unit)


def variants_table(data: dict[str, Any]) -> str:
    rows = []
    for v in data.get("variants", []):
        interval = v.get("interval")
        shown = f"{_num(v.get('mean'))}" + (f" [{_num(interval[0])}, {_num(interval[1])}]" if interval else "")
        rows.append(
            [
                escape(str(v.get("role"))),
                escape(str(v.get("version"))),
                f"{v.get('weight')}%",
                str(v.get("labelled", 0)),
                shown,
                escape(str(v.get("requests") if v.get("requests") is not None else "—")),
                escape(str(v.get("errors") if v.get("errors") is not None else "—")),
                _num(v.get("error_rate")),
                _num(v.get("p99_ms"), 3, " ms"),
            ]
        )
    headers = [
        "variant",
        "version",
        "traffic",
        "labelled rows",
        f"{escape(str(data.get('metric')))} [interval]",
        "requests",
        "5xx",
        "error rate",
        "p99",
    ]
    return html.table(headers, rows, numeric=(2, 3, 4, 5, 6, 7, 8))


def history_table(history: Sequence[dict[str, Any]]) -> str:
    rows = []
    for h in history:
        d = h.get("decision", {})
        i = d.get("interval") or {}
        when = _when(h.get("since", 0) + h.get("elapsed_s", 0)).isoformat(timespec="minutes")
        interval = f"{_num(i.get('gain'))} [{_num(i.get('low'))}, {_num(i.get('high'))}]" if i else "—"
        labelled = " / ".join(str(v.get("labelled", 0)) for v in h.get("variants", []))
        rows.append(
            [
                escape(when),
                escape(str(d.get("action"))),
                f"{d.get('weight_from')}%",
                interval,
                labelled,
                escape(str(d.get("reason", ""))),
            ]
        )
    return html.table(
        ["time (UTC)", "decision", "traffic", "gain [interval]", "labelled (cand / prod)", "why"],
        rows,
        numeric=(2, 3, 4),
    )


def render(data: dict[str, Any], history: Sequence[dict[str, Any]]) -> str:
    head, checks = head_of(data), checks_of(data)
    policy, decision = data.get("policy", {}), data.get("decision", {})
    facts = [
        ("decision", f"<strong>{escape(str(decision.get('action')))}</strong>"),
        ("why", escape(str(decision.get("reason", "")))),
        ("done", escape(str(data.get("done") or "nothing changed"))),
        ("strategy", escape(f"{policy.get('strategy')} (steps {policy.get('steps')})")),
        ("metric", escape(f"{data.get('metric')} ({'higher' if data.get('higher_is_better') else 'lower'} is better)")),
        (
            "test",
            escape(
                f"normal-mixture confidence sequence, alpha {policy.get('alpha')}, margin {policy.get('margin')}, "
                f"min_labelled {policy.get('min_labelled')} (docs/rollout.md)"
            ),
        ),
        ("evidence since", escape(_when(float(data.get("since", 0))).isoformat(timespec="seconds"))),
    ]
    plots = [
        html.figure(
            gain_svg(history),
            "gain and its confidence sequence; below the dashed line is worse than allowed",
            "gain",
            True,
        ),
        html.figure(hourly_svg(data), "mean per-row metric of each hour's labelled rows", "hourly", True),
        html.figure(weights_svg(history), "the candidate's traffic share after each evaluation", "weights", True),
    ]
    sections = [
        html.section("Decision", html.facts(facts), "decision"),
        html.section("Guards and decision", html.checks_table(checks), "checks"),
        html.section("Variants", variants_table(data), "variants"),
        html.section("Over time", f'<div class="plots">{"".join(plots)}</div>', "plots"),
        html.section("Evaluations", history_table(history), "history"),
    ]
    return html.page(head, checks, sections)


def write_ab_reports(folder: Path, data: dict[str, Any], history: Sequence[dict[str, Any]]) -> list[Path]:
    """report.html, summary.json (this evaluation and the ones before it) and junit.xml in `folder`."""
    paths = {kind: folder / name for kind, name in FILES.items()}
    head, checks = head_of(data), checks_of(data)
    write_junit(paths["junit"], head, checks)
    write_text_atomic(paths["html"], render(data, history))
    write_json(paths["summary"], {**data, "checks": [c.as_dict() for c in checks], "history": list(history)})
    return list(paths.values())

"""The gate's reports: report.html (verdict, checks, plots), junit.xml and summary.json in the run's gate folder."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from legion_ci.core.spec import Bound
from legion_ci.quality.checks import Check
from legion_ci.quality.metrics import CLASSIFIER, LOWER_IS_BETTER, REGRESSOR, better
from legion_ci.reports import gate_plots, html
from legion_ci.reports.files import write_json, write_text_atomic
from legion_ci.reports.junit import write_junit
from legion_ci.reports.model import ReportHead, ReportStatus, counts

log = logging.getLogger(__name__)
FILES = {"html": "report.html", "junit": "junit.xml", "summary": "summary.json"}


@dataclass
class GateEvidence:
    """What the plots are drawn from: the candidate on its held-out rows, and production's metrics there."""

    task: str
    y_true: list[Any]
    y_pred: list[Any]
    proba: np.ndarray | None
    classes: list[Any]
    candidate_metrics: dict[str, float]
    logged_metrics: dict[str, float] = field(default_factory=dict)
    production_metrics: dict[str, float] | None = None
    production_label: str | None = None
    thresholds: dict[str, Bound] = field(default_factory=dict)
    production_pred: list[Any] | None = None  # production's predictions on the same rows, when there is one
    class_names: list[str] | None = None  # what each of `classes` is called in the data (iris: setosa, ...)


def _plot(make: Callable[[], str | None], what: str) -> str | None:
    """A plot, or a note instead of it: a plot that cannot be drawn never costs the report."""
    try:
        return make()
    except Exception as exc:
        log.warning("cannot draw the %s: %s", what, exc)
        return f'<p class="kind">The {escape(what)} could not be drawn: {escape(str(exc))}</p>'


def plots(ev: GateEvidence) -> list[str]:
    production = ev.production_label or "production"
    compared = (
        f"the candidate (blue) and {production} (grey)"
        if ev.production_metrics is not None
        else "the candidate (nothing in production yet)"
    )
    figures = [
        html.figure(
            _plot(
                lambda: gate_plots.metrics_bar_svg(ev.candidate_metrics, ev.production_metrics, ev.thresholds),
                "metrics chart",
            ),
            f"Held-out metrics of {compared}, on the same rows. Each axis is zoomed to the values it shows "
            "(it says so when it does not start at 0); Δ is the candidate minus production. Dashed red lines are "
            "the spec's thresholds.",
            "metrics",
            wide=True,
        )
    ]
    if ev.task == "classification":
        figures.append(
            html.figure(
                _plot(
                    lambda: gate_plots.confusion_matrix_svg(ev.y_true, ev.y_pred, ev.classes, ev.class_names),
                    "confusion matrix",
                ),
                f"The candidate on {len(ev.y_true)} held-out rows. Rows are the true class, columns the "
                "predicted one; the diagonal is right.",
                "confusion",
            )
        )
        prod_pred = ev.production_pred
        if prod_pred is not None:
            figures.append(
                html.figure(
                    _plot(
                        lambda: gate_plots.confusion_matrix_svg(
                            ev.y_true, prod_pred, ev.classes, ev.class_names, "Production", "confusion-production"
                        ),
                        "production's confusion matrix",
                    ),
                    f"{production} on the same {len(ev.y_true)} rows, for comparison.",
                    "confusion-production",
                )
            )
        proba = ev.proba
        if proba is not None:
            figures.append(
                html.figure(
                    _plot(lambda: gate_plots.roc_svg(ev.y_true, proba, ev.classes, ev.class_names), "ROC curve"),
                    "The candidate's true against false positive rate as the decision threshold moves.",
                    "roc",
                )
            )
    else:
        figures.append(
            html.figure(
                _plot(lambda: gate_plots.predicted_vs_actual_svg(ev.y_true, ev.y_pred), "predicted-vs-actual plot"),
                "Each held-out row; points on the dashed line are predicted exactly.",
                "pva",
            )
        )
        figures.append(
            html.figure(
                _plot(lambda: gate_plots.residuals_svg(ev.y_true, ev.y_pred), "residuals plot"),
                "Residuals should scatter evenly around zero, whatever the prediction.",
                "residuals",
                wide=True,  # the distribution beside the scatter needs the width to be read
            )
        )
    return figures


def metrics_table(ev: GateEvidence) -> str:
    order = [m for m in (*CLASSIFIER, *REGRESSOR) if m in ev.candidate_metrics]
    rows = []
    for metric in order:
        cand = ev.candidate_metrics[metric]
        prod = (ev.production_metrics or {}).get(metric)
        delta = "—" if prod is None else f"{better(metric, cand, prod):+.4f}"
        bound = ev.thresholds.get(metric)
        limit = (
            " ".join(f"{k} {v:g}" for k, v in (("min", bound.min), ("max", bound.max)) if v is not None)
            if bound
            else "—"
        )
        direction = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        rows.append(
            (
                f"<strong>{escape(metric)}</strong> <span class=kind>{direction}</span>",
                html.num(cand),
                html.num(prod),
                delta,
                escape(limit),
            )
        )
    for metric, value in sorted(ev.logged_metrics.items()):
        bound = ev.thresholds.get(metric)
        limit = (
            " ".join(f"{k} {v:g}" for k, v in (("min", bound.min), ("max", bound.max)) if v is not None)
            if bound
            else "—"
        )
        rows.append(
            (
                f"<strong>{escape(metric)}</strong> <span class=kind>logged by train.py</span>",
                html.num(value),
                "—",
                "—",
                escape(limit),
            )
        )
    label = escape(ev.production_label or "production (none yet)")
    return html.table(
        ("metric", "candidate", label, "candidate better by", "threshold"), rows, numeric=(1, 2, 3), cls="metrics"
    )


def render(
    head: ReportHead,
    checks: Sequence[Check],
    evidence: GateEvidence | None,
    facts: Sequence[tuple[str, str]],
    error: str | None = None,
) -> str:
    sections = []
    if error:
        sections.append(html.section("What went wrong", f"<pre>{escape(error)}</pre>", "error"))
    sections.append(html.section("Checks", html.checks_table(checks) if checks else "<p>No check ran.</p>", "checks"))
    if evidence is not None:
        sections.append(html.section("Candidate against production", metrics_table(evidence), "metrics"))
        sections.append(
            html.section("Held-out evaluation", f'<div class="plots">{"".join(plots(evidence))}</div>', "plots")
        )
    sections.append(html.section("Candidate", html.facts(facts), "candidate"))
    return html.page(head, checks, sections)


def write_gate_reports(
    folder: Path,
    head: ReportHead,
    checks: list[Check],
    evidence: GateEvidence | None,
    facts: Sequence[tuple[str, str]],
    extra: dict[str, Any],
    error: str | None = None,
) -> dict[str, str]:
    """Write the three reports; returns their paths by kind."""
    paths = {kind: folder / name for kind, name in FILES.items()}
    summary = {
        **head.as_dict(),
        "passed": head.status is ReportStatus.PASSED,
        "counts": counts(checks),
        "checks": [c.as_dict() for c in checks],
        "error": error,
        "metrics": {
            "candidate": evidence.candidate_metrics if evidence else None,
            "logged": evidence.logged_metrics if evidence else None,
            "production": evidence.production_metrics if evidence else None,
            "production_label": evidence.production_label if evidence else None,
        },
        "reports": {k: str(v) for k, v in paths.items()},
        **extra,
    }
    write_junit(paths["junit"], head, checks, error)
    write_text_atomic(paths["html"], render(head, checks, evidence, facts, error))
    write_json(paths["summary"], summary)
    return {k: str(v) for k, v in paths.items()}

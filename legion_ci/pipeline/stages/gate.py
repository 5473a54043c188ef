"""Stage gate: nothing is deployed that misses a threshold, fails its own tests, regresses against
production or changes its input schema unannounced. Reports land in the run's gate/ folder either way."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from legion_ci.core.artifact import Artifact
from legion_ci.core.errors import LegionError, StageFailed
from legion_ci.core.status import StageStatus
from legion_ci.core.store import open_version
from legion_ci.pipeline.stages.base import StageContext, StageResult, keeps_outputs
from legion_ci.quality.checks import HALTED, Check
from legion_ci.quality.gate import (
    NO_IMPROVEMENT,
    comparison_check,
    evaluate_both,
    load_holdout,
    nan_check,
    schema_check,
    threshold_checks,
)
from legion_ci.quality.modeltests.runner import run_model_tests
from legion_ci.reports.gate_report import GateEvidence, write_gate_reports
from legion_ci.reports.model import ReportHead, ReportStatus, Stopwatch, headline
from legion_ci.training.data import class_names, load_dataset

TITLE = "Quality gate"


@keeps_outputs
def run(ctx: StageContext) -> StageResult:
    spec = ctx.loaded.spec
    clock = time.monotonic()
    candidate = ctx.candidate_artifact
    production_record = ctx.registry.alias(spec.name, "production")
    production = open_version(ctx.settings, production_record) if production_record else None
    prod_label = f"production {production.version} ({production.id[:8]})" if production else None
    folder = ctx.stage_dir()
    checks: list[Check] = []
    evidence: GateEvidence | None = None
    watch = Stopwatch()

    def head(status: ReportStatus, line: str, forced: str | None = None) -> ReportHead:
        return ReportHead(
            "gate",
            TITLE,
            candidate.name,
            candidate.version,
            candidate.id,
            ctx.run.id,
            status,
            line,
            forced,
            time.monotonic() - clock,
        )

    try:
        checks += data_checks(ctx, candidate, production, prod_label)
        watch.lap("data checks")
        cand_metrics, prod_metrics = evaluate_both(candidate, production)
        checks += threshold_checks(spec.gate, {**candidate.metrics, **cand_metrics})
        watch.lap("evaluation")
        tests = run_model_tests(
            ctx.model_dir,
            spec.gate.tests,
            candidate.path,
            production.path if production else None,
            folder,
            required="tests" in (ctx.loaded.raw.get("gate") or {}),
        )
        checks += tests.checks
        watch.lap("model tests")
        comparison, _ = comparison_check(
            spec.gate, candidate, production, ctx.run.flow == "retrain", metrics=(cand_metrics, prod_metrics)
        )
        checks.append(comparison)
        evidence = _evidence(candidate, cand_metrics, prod_metrics, prod_label, spec.gate.thresholds, production)
        evidence.class_names = class_names(spec.train, evidence.classes)
        watch.lap("comparison")
    except LegionError as exc:
        write_gate_reports(
            folder,
            head(ReportStatus.ERROR, exc.message),
            checks,
            evidence,
            _facts(ctx, candidate, prod_label),
            {"flow": ctx.run.flow, "timings": watch.phases},
            error=exc.message,
        )
        raise

    v = verdict(checks, ctx.options.force_reason)
    for check in v.checks:  # as the verdict reads them: a retrain no better than production says HALTED
        ctx.log(f"{check.verdict.upper():7} {check.name}: {check.message}")
    extra = {"flow": ctx.run.flow, "production": prod_label, "timings": watch.phases}
    facts = [*_facts(ctx, candidate, prod_label), ("time", escape(watch.line()))]
    reports = write_gate_reports(folder, head(v.status, v.reason, v.forced), v.checks, evidence, facts, extra)
    watch.lap("reports")
    ctx.log(f"time: {watch.line()}")
    for name, path in reports.items():
        ctx.log(f"{name}: {path}")
    outputs: dict[str, Any] = {
        "checks": len(v.checks),
        "failed": [c.as_dict() for c in v.failed],
        "reports": reports,
        "forced": v.forced is not None,
        "force_reason": v.forced,
        "candidate": candidate.id,
    }
    if v.status is ReportStatus.FAILED:
        raise StageFailed("gate", v.reason, {"checks": [c.as_dict() for c in v.checks], "reports": reports})
    if v.forced:
        ctx.log(f"FORCED: the gate failed ({len(v.failed)} check(s)) and was overridden: {v.forced}")
        return StageResult(StageStatus.PASSED, f"FORCED: {v.forced} (the gate failed: {v.reason})", outputs)
    return StageResult(StageStatus.PASSED, v.reason, outputs, halt=v.halt)


@dataclass(frozen=True)
class Verdict:
    """What the gate decides from its checks and a person's --force."""

    status: ReportStatus  # passed, failed, forced or halted
    reason: str
    checks: list[Check]
    failed: list[Check]
    forced: str | None = None
    halt: str | None = None


def verdict(checks: list[Check], force_reason: str | None) -> Verdict:
    """Failed checks fail the gate, unless forced (recorded, never silent). A retrain that merely does not
    beat production halts the flow instead: not an error, nothing is deployed."""
    failed = [c for c in checks if not c.passed]
    if not failed:
        return Verdict(ReportStatus.PASSED, headline(checks, "checks"), checks, [])
    if force_reason:
        return Verdict(ReportStatus.FORCED, headline(checks, "checks"), checks, failed, forced=force_reason)
    if all(c.code == NO_IMPROVEMENT for c in failed):
        halt = f"{failed[0].message}; nothing to deploy"
        kept = [
            replace(c, passed=True, skipped=True, message=halt, code=HALTED) if c.code == NO_IMPROVEMENT else c
            for c in checks
        ]
        return Verdict(ReportStatus.HALTED, halt, kept, [], halt=halt)
    return Verdict(ReportStatus.FAILED, headline(checks, "checks"), checks, failed)


def data_checks(
    ctx: StageContext, candidate: Artifact, production: Artifact | None, prod_label: str | None
) -> list[Check]:
    """The input schema against production's, and the training data (what train used) for NaN/inf."""
    spec = ctx.loaded.spec
    extra = [Path(p) for p in ctx.options.extra_data]
    # The ground truth a retrain added, as train exported it: from the store, since train may have run on
    # another agent whose workspace is gone.
    feedback = ctx.earlier_file("train", "feedback.csv") if ctx.run.flow == "retrain" else None
    if feedback is not None and len(feedback.read_text().splitlines()) > 1:
        extra.append(feedback)
    dataset = load_dataset(spec.train, ctx.model_dir, extra)
    frame = dataset.features.assign(**{str(dataset.target.name or "target"): dataset.target})
    return [
        schema_check(
            spec.gate, candidate.schema, production.schema if production else None, prod_label or "production"
        ),
        nan_check(spec.gate, frame, dataset.source),
    ]


def _evidence(
    candidate: Artifact,
    cand_metrics: dict[str, float],
    prod_metrics: dict[str, float] | None,
    prod_label: str | None,
    thresholds: Any,
    production: Artifact | None = None,
) -> GateEvidence:
    x, y = load_holdout(candidate)
    model = candidate.model
    predicted = model.predict(x)
    proba = model.predict_proba(x) if candidate.task == "classification" and hasattr(model, "predict_proba") else None
    classes: list[Any] = []
    if candidate.task == "classification":
        known = list(getattr(model, "classes_", []))
        classes = known + [c for c in np.unique(np.asarray(y)).tolist() if c not in known]
    logged = {k: v for k, v in candidate.metrics.items() if k in candidate.manifest.logged_metrics}
    prod_pred: list[Any] | None = None
    if production is not None and candidate.task == "classification" and production.task == candidate.task:
        try:  # production's confusion matrix on the same rows; a changed schema may make that impossible
            prod_pred = np.asarray(production.model.predict(x[production.feature_names])).tolist()
        except (KeyError, ValueError, TypeError):
            prod_pred = None
    return GateEvidence(
        candidate.task,
        np.asarray(y).tolist(),
        np.asarray(predicted).tolist(),
        proba if proba is not None and len(classes) == proba.shape[1] else None,
        [c.item() if hasattr(c, "item") else c for c in classes],
        cand_metrics,
        logged,
        prod_metrics,
        prod_label,
        dict(thresholds),
        prod_pred,
    )


def _facts(ctx: StageContext, art: Artifact, prod_label: str | None) -> list[tuple[str, str]]:
    m = art.manifest
    commit = m.git.commit or "not in git"
    if m.git.dirty:
        commit += " (uncommitted changes)"
    return [
        ("model", escape(f"{art.name} {art.version}")),
        ("artifact", escape(f"{art.id} · {art.path}")),
        ("estimator", escape(m.model.estimator or "?")),
        ("task", escape(art.task)),
        ("trained", escape(m.created_at or "?")),
        ("commit", escape(commit)),
        ("data", escape(f"{m.data.source or '?'} · sha256 {(m.data.fingerprint or '?')[:16]}")),
        ("params", escape(json.dumps(m.params, sort_keys=True))),
        ("production", escape(prod_label or "none yet")),
        ("run", escape(f"{ctx.run.id} ({ctx.run.flow} flow)")),
        (
            "model tests",
            '<a href="model-tests.log">model-tests.log</a> · <a href="model-tests.xml">pytest JUnit</a>'
            if (ctx.stage_dir() / "model-tests.log").is_file()
            else "none run",
        ),
    ]

"""A check: one named verdict with the value, the bound, by how much and why. The gate, the perf SLA and a
model's own tests each give a list of them; the reports and the stages read them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

HALTED = "halted"  # Check.code (and verdict) of the check that ended the flow on purpose: the stage's status word


@dataclass(frozen=True)
class Check:
    """One verdict; `kind` groups checks in reports (data, threshold, test, comparison, sla)."""

    kind: str
    name: str
    passed: bool
    message: str
    value: float | None = None
    bound: float | None = None
    skipped: bool = False
    margin: float | None = None  # how far the value is from the bound: positive = inside, negative = missed by
    detail: str = ""  # longer text for reports (a test's traceback, the offending rows)
    seconds: float | None = None
    code: str = ""  # a machine-readable reason where a stage acts on it (gate.NO_IMPROVEMENT, HALTED)

    @property
    def verdict(self) -> str:
        if self.skipped:
            return HALTED if self.code == HALTED else "skipped"
        return "passed" if self.passed else "failed"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def _fmt(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if math.isfinite(value) else str(value)


def bound_check(
    kind: str, name: str, label: str, value: float, low: float | None, high: float | None, unit: str = ""
) -> Check:
    """`value` against [low, high]; the message says which bound missed and by how much."""
    shown = f"{label} {_fmt(value)}{unit}"
    if low is not None and value < low:
        return Check(
            kind,
            name,
            False,
            f"{shown} is below the minimum {_fmt(low)}{unit} by {_fmt(low - value)}{unit}",
            value,
            low,
            margin=value - low,
        )
    if high is not None and value > high:
        return Check(
            kind,
            name,
            False,
            f"{shown} is above the maximum {_fmt(high)}{unit} by {_fmt(value - high)}{unit}",
            value,
            high,
            margin=high - value,
        )
    limits = " and ".join(f"{word} {_fmt(v)}{unit}" for word, v in (("min", low), ("max", high)) if v is not None)
    margins = [
        m
        for m in ((value - low) if low is not None else None, (high - value) if high is not None else None)
        if m is not None
    ]
    margin = min(margins) if margins else None
    spare = f" ({_fmt(margin)}{unit} to spare)" if margin is not None else ""
    return Check(
        kind, name, True, f"{shown} within {limits}{spare}", value, low if low is not None else high, margin=margin
    )

"""Thousands of simulated A/B rollouts at once, decided by the rule of `decision.decide` (without guards):
each hour a stream gets `rows_per_hour` labelled rows split by the candidate's current weight; the
evaluation looks at everything so far, rolls back on INFERIOR, advances a step (or promotes from the
step before 100) on NON_INFERIOR, and keeps testing otherwise, until `hours` have passed.

Used by tests/unit/test_rollout_statistics.py and by `python -m legion_ci.rollout.simulate`, which prints
the figures in docs/rollout.md.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

import numpy as np

from legion_ci.rollout import sequential

ROLLED_BACK, UNDECIDED, PROMOTED = -1, 0, 1


@dataclass(frozen=True)
class Scenario:
    gain: float  # the candidate's true gain over production (larger is better)
    margin: float = 0.02
    alpha: float = 0.05
    steps: tuple[int, ...] = (5, 20, 50, 100)
    min_labelled: int = 100
    rows_per_hour: int = 1000
    hours: int = 7 * 24
    streams: int = 4000
    kind: str = "bernoulli"  # per-row correctness (production accuracy `base`), or "gaussian" losses
    base: float = 0.8  # production's accuracy, or its mean loss
    sd: float = 1.0  # the per-row sd of a gaussian loss
    seed: int = 0


@dataclass(frozen=True)
class Outcome:
    promoted: float  # share of streams promoted
    rolled_back: float
    undecided: float
    median_rows: float | None  # labelled rows (both variants) at the decision, over decided streams
    median_hours: float | None


def run(sc: Scenario) -> Outcome:
    rng = np.random.default_rng(sc.seed)
    n = sc.streams
    steps = np.asarray(sc.steps)
    step = np.zeros(n, dtype=np.int64)
    count = np.zeros((2, n))  # [candidate, production]
    mean = np.zeros((2, n))
    m2 = np.zeros((2, n))  # sum of squared deviations
    state = np.full(n, UNDECIDED)
    rows_at = np.full(n, np.nan)
    hour_at = np.full(n, np.nan)
    higher = sc.kind == "bernoulli"
    # the candidate's true mean: a gain in accuracy, or a loss that much lower
    truth = (sc.base + sc.gain, sc.base) if higher else (sc.base - sc.gain, sc.base)
    for hour in range(1, sc.hours + 1):
        live = state == UNDECIDED
        if not live.any():
            break
        weight = steps[step] / 100.0
        to_c = rng.binomial(sc.rows_per_hour, weight)
        for arm, rows in ((0, to_c), (1, sc.rows_per_hour - to_c)):
            rows = np.where(live, rows, 0)
            if higher:
                hits = rng.binomial(rows, truth[arm])
                b_mean = np.divide(hits, rows, out=np.zeros(n), where=rows > 0)
                b_m2 = hits * (1 - b_mean) ** 2 + (rows - hits) * b_mean**2
            else:
                b_mean = truth[arm] + rng.standard_normal(n) * sc.sd / np.sqrt(np.maximum(rows, 1))
                b_m2 = sc.sd**2 * rng.chisquare(np.maximum(rows - 1, 1)) * (rows > 1)
            total = count[arm] + rows
            delta = b_mean - mean[arm]
            safe = np.maximum(total, 1)
            mean[arm] = np.where(rows > 0, mean[arm] + delta * rows / safe, mean[arm])
            m2[arm] = np.where(rows > 0, m2[arm] + b_m2 + delta**2 * count[arm] * rows / safe, m2[arm])
            count[arm] = total
        var = m2 / np.maximum(count, 1)
        tau = sequential.mixing_scale(sc.margin, np.sqrt((var[0] + var[1]) / 2))
        _, low, high = sequential.difference(
            count[0], mean[0], var[0], count[1], mean[1], var[1], higher_is_better=higher, alpha=sc.alpha, tau=tau
        )
        found = sequential.verdict(low, high, sc.margin)
        ready = live & (np.minimum(count[0], count[1]) >= sc.min_labelled)
        back = ready & (found == sequential.INFERIOR)
        ahead = ready & (found == sequential.NON_INFERIOR)
        last = steps[np.minimum(step + 1, len(steps) - 1)] >= 100
        promote = ahead & last
        step = np.where(ahead & ~last, step + 1, step)
        done = back | promote
        state = np.where(back, ROLLED_BACK, np.where(promote, PROMOTED, state))
        rows_at = np.where(done, count[0] + count[1], rows_at)
        hour_at = np.where(done, hour, hour_at)
    decided = state != UNDECIDED
    return Outcome(
        promoted=float(np.mean(state == PROMOTED)),
        rolled_back=float(np.mean(state == ROLLED_BACK)),
        undecided=float(np.mean(~decided)),
        median_rows=float(np.median(rows_at[decided])) if decided.any() else None,
        median_hours=float(np.median(hour_at[decided])) if decided.any() else None,
    )


# The scenarios docs/rollout.md reports: accuracy 0.80 in production, margin 0.02, alpha 0.05, steps
# 5/20/50/100, 1000 labelled rows an hour, a week of hourly looks.
FIGURES: dict[str, Scenario] = {
    "no difference (a wrong decision is a rollback)": Scenario(gain=0.0),
    "worse by the margin, 0.02 (a wrong decision is a promotion)": Scenario(gain=-0.02),
    "no difference, margin 0 (any decision is wrong)": Scenario(gain=0.0, margin=0.0),
    "worse by 0.05 (power: rollback)": Scenario(gain=-0.05),
    "worse by 0.20 (power: rollback)": Scenario(gain=-0.20),
    "better by 0.02 (power: promotion)": Scenario(gain=0.02),
    "regression loss, no difference (sd 1, margin 0.1)": Scenario(gain=0.0, kind="gaussian", base=1.0, margin=0.1),
    "regression loss, worse by 0.1 (margin 0.1)": Scenario(gain=-0.1, kind="gaussian", base=1.0, margin=0.1),
    "regression loss, worse by 0.3 (power: rollback)": Scenario(gain=-0.3, kind="gaussian", base=1.0, margin=0.1),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=4000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = {}
    for name, sc in FIGURES.items():
        out = run(Scenario(**{**asdict(sc), "streams": args.streams}))
        results[name] = asdict(out)
        if not args.json:
            rows = f"{out.median_rows:.0f}" if out.median_rows is not None else "-"
            hours = f"{out.median_hours:.0f}" if out.median_hours is not None else "-"
            print(f"| {name} | {out.promoted:.4f} | {out.rolled_back:.4f} | {out.undecided:.4f} | {rows} | {hours} |")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

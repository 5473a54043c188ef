"""The rollout's sequential test, tested as a procedure: thousands of simulated A/B rollouts (seeded, no
servers), each evaluated every hour for a week. Wrong decisions stay under alpha however often it looks;
a real difference is found, and the figures are those docs/rollout.md reports."""

from __future__ import annotations

import dataclasses

import pytest

from legion_ci.rollout import sequential
from legion_ci.rollout.simulate import FIGURES, Scenario, run

ALPHA = 0.05


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
def test_no_true_difference_is_rarely_rolled_back(kind: str) -> None:
    base, margin = (0.8, 0.02) if kind == "bernoulli" else (1.0, 0.1)
    out = run(Scenario(gain=0.0, kind=kind, base=base, margin=margin, streams=3000, seed=1))
    assert out.rolled_back <= ALPHA


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
def test_a_candidate_worse_by_the_margin_is_rarely_promoted(kind: str) -> None:
    base, margin = (0.8, 0.02) if kind == "bernoulli" else (1.0, 0.1)
    out = run(Scenario(gain=-margin, kind=kind, base=base, margin=margin, streams=3000, seed=2))
    assert out.promoted <= ALPHA


def test_with_margin_zero_no_decision_is_made_on_equal_variants_beyond_alpha() -> None:
    """Superiority: with no true difference both a promotion and a rollback are wrong; together <= alpha."""
    out = run(Scenario(gain=0.0, margin=0.0, streams=3000, seed=3))
    assert out.promoted + out.rolled_back <= ALPHA


def test_even_hourly_looks_over_a_month_and_a_loose_alpha_stay_under_it() -> None:
    out = run(Scenario(gain=0.0, margin=0.0, alpha=0.2, hours=30 * 24, rows_per_hour=300, streams=2000, seed=4))
    assert out.promoted + out.rolled_back <= 0.2


def test_a_truly_worse_candidate_is_rolled_back_with_power() -> None:
    out = run(dataclasses.replace(FIGURES["worse by 0.05 (power: rollback)"], streams=2000, seed=5))
    assert out.rolled_back >= 0.9 and out.promoted == 0.0
    assert out.median_rows is not None and out.median_rows < 60_000


def test_a_truly_better_candidate_is_promoted_with_power() -> None:
    out = run(dataclasses.replace(FIGURES["better by 0.02 (power: promotion)"], streams=2000, seed=6))
    assert out.promoted >= 0.9 and out.rolled_back <= ALPHA


def test_the_interval_widens_with_fewer_rows_and_lower_alpha() -> None:
    wide = sequential.mixture_radius(0.01, 0.02, 0.05)
    assert sequential.mixture_radius(0.001, 0.02, 0.05) < wide < sequential.mixture_radius(0.01, 0.02, 0.01)


def test_verdicts() -> None:
    assert sequential.verdict(-0.01, 0.03, 0.02) == sequential.NON_INFERIOR
    assert sequential.verdict(-0.09, -0.03, 0.02) == sequential.INFERIOR
    assert sequential.verdict(-0.05, 0.01, 0.02) == sequential.UNDECIDED

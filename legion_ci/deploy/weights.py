"""Traffic weights of a model's deployments: percentages that add up to 100 whenever anything serves."""

from __future__ import annotations

TOTAL = 100


def rebalance(current: dict[int, int], fixed: dict[int, int]) -> dict[int, int]:
    """Weights for every deployment in `current` and `fixed`: the fixed ones as given, the others scaled
    (largest remainder, so they stay whole numbers) to share what the fixed ones leave of 100.

    >>> rebalance({1: 100}, {2: 20})
    {1: 80, 2: 20}
    >>> rebalance({1: 80, 2: 20}, {2: 0})
    {1: 100, 2: 0}
    """
    for deployment_id, weight in fixed.items():
        if not 0 <= weight <= TOTAL:
            raise ValueError(f"weight {weight} of deployment {deployment_id} is not a percentage (expected 0-100)")
    left = max(0, TOTAL - sum(fixed.values()))
    others = {k: v for k, v in current.items() if k not in fixed}
    base = sum(others.values())
    if not base:  # nothing else carries traffic: the others stay at 0
        return {**{k: 0 for k in others}, **fixed}
    exact = {k: v * left / base for k, v in others.items()}
    scaled = {k: int(x) for k, x in exact.items()}
    short = left - sum(scaled.values())
    for k in sorted(exact, key=lambda k: (scaled[k] - exact[k], k))[:short]:
        scaled[k] += 1
    return {**scaled, **fixed}


def first_weight(requested: int, others: dict[int, int]) -> int:
    """A new version's starting weight: as requested beside live traffic, or all of it when alone."""
    return requested if any(w > 0 for w in others.values()) else TOTAL

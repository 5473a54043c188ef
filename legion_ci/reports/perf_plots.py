"""The perf report's plots, as inline SVG: latency percentiles and throughput over the run."""

from __future__ import annotations

import math
from collections.abc import Sequence

from legion_ci.quality.perf.results import HistoryPoint
from legion_ci.reports.svg import MUTED, PALETTE, figure, to_svg

BOUND = "#cf222e"


def _series(points: Sequence[HistoryPoint], attr: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for p in points:
        value = getattr(p, attr)
        if not math.isnan(value):
            xs.append(p.seconds)
            ys.append(value)
    return xs, ys


def latency_svg(points: Sequence[HistoryPoint], p95_bound: float | None, p99_bound: float | None) -> str | None:
    """p50, p95 and p99 latency over the run (Locust's rolling window), with the SLA's bounds dashed."""
    wanted = (("p50_ms", "p50", PALETTE[2]), ("p95_ms", "p95", PALETTE[0]), ("p99_ms", "p99", PALETTE[1]))
    lines = [(attr, label, color) for attr, label, color in wanted if _series(points, attr)[0]]
    if not lines:
        return None
    with figure(9.6, 3.8) as (fig, ax):
        for attr, label, color in lines:
            xs, ys = _series(points, attr)
            ax.plot(xs, ys, color=color, linewidth=2, marker="o", markersize=3, label=label, gid=f"data-{label}")
        for bound, label in ((p95_bound, "SLA p95"), (p99_bound, "SLA p99")):
            if bound is not None:
                ax.axhline(
                    bound,
                    color=BOUND,
                    linestyle="--" if label.endswith("p95") else ":",
                    linewidth=1.4,
                    label=f"{label} {bound:g} ms",
                )
        top = max([max(_series(points, attr)[1]) for attr, _, _ in lines] + [b for b in (p95_bound, p99_bound) if b])
        ax.set_ylim(0, top * 1.3)  # room for the legend above the highest line
        ax.set_xlabel("seconds into the test")
        ax.set_ylabel("response time (ms)")
        ax.set_title("Latency percentiles over time", loc="left")
        ax.legend(loc="upper left", ncols=5)
        return to_svg(fig, "latency")


def throughput_svg(points: Sequence[HistoryPoint]) -> str | None:
    """Requests and failures per second, with the number of users on the right axis."""
    xs, rps = _series(points, "rps")
    if not xs:
        return None
    with figure(9.6, 3.2) as (fig, ax):
        ax.plot(xs, rps, color=PALETTE[0], linewidth=2, label="requests/s", gid="data-rps")
        fx, fps = _series(points, "failures_per_s")
        ax.plot(fx, fps, color=BOUND, linewidth=1.6, label="failures/s", gid="data-failures")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("seconds into the test")
        ax.set_ylabel("per second")
        users = ax.twinx()
        users.step(
            [p.seconds for p in points],
            [p.users for p in points],
            where="post",
            color=MUTED,
            linestyle="--",
            linewidth=1.2,
            label="users",
            gid="data-users",
        )
        users.set_ylabel("users", color=MUTED)
        users.set_ylim(bottom=0, top=max(p.users for p in points) * 1.25 + 1)
        users.grid(False)
        users.spines["right"].set_visible(True)
        handles = ax.get_legend_handles_labels()[0] + users.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper left", ncols=3)
        ax.set_title("Throughput and users over time", loc="left")
        return to_svg(fig, "throughput")

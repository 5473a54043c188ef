"""The perf report's plots, as inline SVG: latency percentiles and throughput over the run.

Both are drawn from the same points as the headline (legion_ci.quality.perf.results): half-second bins when
the sampler ran, Locust's once-a-second history otherwise. The latency axis is scaled to the data; an SLA bound
far above it is named in the legend as off the scale instead of squashing the lines to the bottom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from matplotlib.lines import Line2D

from legion_ci.quality.perf.results import HistoryPoint
from legion_ci.reports.svg import INK, MUTED, PALETTE, figure, to_svg

BOUND = "#cf222e"
# A bound up to this many times the highest measured value is drawn on the axis; above it, the axis would
# spend most of its height on empty space, so the bound is named in the legend instead.
ON_SCALE = 2.5


def _series(points: Sequence[HistoryPoint], attr: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for p in points:
        value = getattr(p, attr)
        if not math.isnan(value):
            xs.append(p.seconds + (p.width / 2 if p.width < 1 else 0.0))
            ys.append(value)
    return xs, ys


def latency_svg(points: Sequence[HistoryPoint], p95_bound: float | None, p99_bound: float | None) -> str | None:
    """p50, p95 and p99 latency over the run on an axis scaled to them, with the SLA's bounds."""
    wanted = (("p50_ms", "p50", PALETTE[2]), ("p95_ms", "p95", PALETTE[0]), ("p99_ms", "p99", PALETTE[1]))
    lines = [(attr, label, color) for attr, label, color in wanted if _series(points, attr)[0]]
    if not lines:
        return None
    data_top = max(max(_series(points, attr)[1]) for attr, _, _ in lines) or 1.0
    bounds = [(b, name) for b, name in ((p95_bound, "p95"), (p99_bound, "p99")) if b is not None]
    on_scale = [(b, name) for b, name in bounds if b <= data_top * ON_SCALE]
    top = max([data_top] + [b for b, _ in on_scale]) * 1.12
    with figure(9.6, 3.6) as (fig, ax):
        for attr, label, color in lines:
            xs, ys = _series(points, attr)
            ax.plot(xs, ys, color=color, linewidth=2, marker="o", markersize=2.5, label=label, gid=f"data-{label}")
        for bound, name in bounds:
            style: Literal["--", ":"] = "--" if name == "p95" else ":"
            if (bound, name) in on_scale:
                ax.axhline(bound, color=BOUND, linestyle=style, linewidth=1.4, label=f"SLA {name} {bound:g} ms")
            else:  # named, not drawn: the legend says where it is
                ax.add_line(
                    Line2D(
                        [],
                        [],
                        color=BOUND,
                        linestyle=style,
                        marker="^",
                        markersize=6,
                        label=f"SLA {name} {bound:g} ms\n(off the scale: {bound / data_top:.0f}x the top)",
                    )
                )
        ax.set_ylim(0, top)
        ax.set_xlim(left=0)
        ax.set_xlabel("seconds into the test")
        ax.set_ylabel("response time (ms)")
        ax.set_title("Latency percentiles over time", loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        return to_svg(fig, "latency")


def throughput_svg(points: Sequence[HistoryPoint], headline_rps: float | None = None) -> str | None:
    """Requests and failures per second, the mean the headline reports, and the users running below."""
    xs, rps = _series(points, "rps")
    if not xs:
        return None
    edges = [p.seconds for p in points] + [points[-1].seconds + points[-1].width]
    with figure(9.6, 4.0, nrows=2, sharex=True, height_ratios=[3, 1]) as (fig, (ax, users)):
        stepped = points[0].width < 1  # half-second bins: each is a step; Locust's history: a line through rows
        if stepped:
            ax.stairs(
                [p.rps for p in points],
                edges,
                color=PALETTE[0],
                linewidth=2,
                label="requests/s",
                gid="data-rps",
                baseline=None,
            )
            ax.stairs(
                [p.failures_per_s for p in points],
                edges,
                color=BOUND,
                linewidth=1.4,
                label="failures/s",
                gid="data-failures",
                baseline=None,
            )
        else:
            ax.plot(xs, rps, color=PALETTE[0], linewidth=2, label="requests/s", gid="data-rps")
            fx, fps = _series(points, "failures_per_s")
            ax.plot(fx, fps, color=BOUND, linewidth=1.4, label="failures/s", gid="data-failures")
        if headline_rps is not None and math.isfinite(headline_rps):
            ax.axhline(headline_rps, color=INK, linestyle="--", linewidth=1.2, label=f"mean {headline_rps:,.0f}/s")
        ax.set_ylim(bottom=0, top=max(max(p.rps for p in points), headline_rps or 0.0) * 1.12 or 1.0)
        ax.set_ylabel("per second")
        ax.set_title("Throughput over time" + (" (half-second bins)" if stepped else ""), loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        users.stairs(
            [p.users for p in points], edges, color=MUTED, linewidth=1.4, label="users", gid="data-users", baseline=None
        )
        users.set_ylim(0, max(p.users for p in points) * 1.25 + 1)
        users.set_ylabel("users")
        users.set_xlabel("seconds into the test")
        users.set_xlim(left=0, right=edges[-1])
        users.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        return to_svg(fig, "throughput")

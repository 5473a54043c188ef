"""The gate report's plots, as inline SVG: confusion matrix, ROC, predicted-vs-actual, residuals, metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator
from sklearn import metrics as skm

from legion_ci.core.spec import Bound
from legion_ci.quality.metrics import CLASSIFIER, LOWER_IS_BETTER, REGRESSOR, better
from legion_ci.reports.svg import GRID, INK, MUTED, PALETTE, figure, to_svg

CANDIDATE, PRODUCTION, BOUND = PALETTE[0], "#8c959f", "#cf222e"
AT_MOST_ONE = {"accuracy", "f1", "precision", "recall", "roc_auc", "r2"}


def class_labels(labels: Sequence[object], names: Sequence[str] | None) -> list[str]:
    """What a class is called on a plot: its name where the data has one, else its value."""
    if names is not None and len(names) == len(labels):
        return [str(n) for n in names]
    return [str(c) for c in labels]


def confusion_matrix_svg(
    y_true: Sequence[object],
    y_pred: Sequence[object],
    labels: Sequence[object],
    names: Sequence[str] | None = None,
    who: str = "Candidate",
    key: str = "confusion",
) -> str:
    """Counts of true (rows) against predicted (columns) classes; the diagonal is right."""
    matrix = skm.confusion_matrix(y_true, y_pred, labels=list(labels))
    n = len(labels)
    shown = class_labels(labels, names)
    longest = max((len(s) for s in shown), default=1)
    size = min(5.2, 2.4 + 0.55 * n)
    with figure(size + 0.6 + 0.06 * min(longest, 24), size + 0.04 * min(longest, 24)) as (fig, ax):
        mesh = ax.pcolormesh(
            matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1), edgecolors="white", linewidth=1.5
        )
        mesh.set_gid("data-cells")
        top = matrix.max() or 1
        for i in range(n):
            for j in range(n):
                count = int(matrix[i, j])
                ax.text(
                    j + 0.5,
                    i + 0.5,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=10,
                    fontweight="bold" if i == j else "normal",
                    color="white" if count > top * 0.55 else INK,
                    gid=f"data-count-{i}-{j}",
                )
        ticks = np.arange(n) + 0.5
        ax.set_xticks(ticks, shown, rotation=30 if longest > 6 else 0, ha="right" if longest > 6 else "center")
        ax.set_yticks(ticks, shown)
        ax.set_xlim(0, n)
        ax.set_ylim(n, 0)
        ax.grid(False)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        accuracy = np.trace(matrix) / max(matrix.sum(), 1)
        ax.set_title(f"{who} · accuracy {accuracy:.3f}", loc="left")
        return to_svg(fig, key)


def roc_svg(
    y_true: Sequence[object], proba: np.ndarray, classes: Sequence[object], names: Sequence[str] | None = None
) -> str | None:
    """ROC curve per class (one against the rest); None when probabilities make no curve."""
    y = np.asarray(y_true)
    curves = []
    called = dict(zip(classes, class_labels(classes, names), strict=True))
    targets = [(classes[1], proba[:, 1])] if len(classes) == 2 else list(zip(classes, proba.T, strict=True))
    for cls, score in targets:
        positive = y == cls
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = skm.roc_curve(positive, score)
        curves.append((cls, fpr, tpr, skm.auc(fpr, tpr)))
    if not curves:
        return None
    with figure(5.2, 4.0) as (fig, ax):
        ax.plot([0, 1], [0, 1], linestyle="--", color=MUTED, linewidth=1, label="chance")
        for i, (cls, fpr, tpr, area) in enumerate(curves):
            label = f"{called[cls]} · AUC {area:.3f}"
            ax.plot(
                fpr,
                tpr,
                color=PALETTE[i % len(PALETTE)],
                linewidth=2,
                label=label,
                gid=f"data-roc-{i}",
                drawstyle="steps-post",
            )
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.02)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("ROC curve" + (" (one class against the rest)" if len(classes) > 2 else ""), loc="left")
        ax.legend(loc="lower right")
        return to_svg(fig, "roc")


def predicted_vs_actual_svg(y_true: Sequence[float], y_pred: Sequence[float]) -> str:
    """Each held-out row as a point; on the diagonal the prediction is exact."""
    actual, predicted = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    pad = (high - low) * 0.04 or 1.0
    with figure(5.2, 4.4) as (fig, ax):
        ax.plot(
            [low - pad, high + pad],
            [low - pad, high + pad],
            linestyle="--",
            color=MUTED,
            linewidth=1,
            label="perfect prediction",
        )
        ax.scatter(
            actual,
            predicted,
            s=16,
            color=CANDIDATE,
            alpha=0.7,
            edgecolors="none",
            gid="data-points",
            label=f"{len(actual)} held-out rows",
        )
        ax.set_xlim(low - pad, high + pad)
        ax.set_ylim(low - pad, high + pad)
        ax.set_aspect("equal")
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.set_title(f"Predicted vs actual · R² {skm.r2_score(actual, predicted):.3f}", loc="left")
        ax.legend(loc="upper left")
        return to_svg(fig, "pva")


def residuals_svg(y_true: Sequence[float], y_pred: Sequence[float]) -> str:
    """Residuals (actual - predicted) against the prediction, with their distribution beside."""
    actual, predicted = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    residual = actual - predicted
    with figure(8.4, 4.0, ncols=2, width_ratios=[3, 1], sharey=True) as (fig, (ax, hist)):
        ax.axhline(0, color=MUTED, linestyle="--", linewidth=1)
        ax.scatter(predicted, residual, s=16, color=PALETTE[1], alpha=0.7, edgecolors="none", gid="data-points")
        ax.set_xlabel("predicted")
        ax.set_ylabel("residual (actual - predicted)")
        ax.set_title(f"Residuals · MAE {np.abs(residual).mean():.3g} · bias {residual.mean():+.3g}", loc="left")
        _, _, bars = hist.hist(
            residual, bins=min(30, max(5, len(residual) // 5)), orientation="horizontal", color=PALETTE[1], alpha=0.7
        )
        for i, bar in enumerate(bars):
            bar.set_gid(f"data-hist-{i}")
        hist.axhline(0, color=MUTED, linestyle="--", linewidth=1)
        hist.set_xlabel("rows")
        return to_svg(fig, "residuals")


def _axis(values: Sequence[float], limits: Sequence[float], at_most_one: bool) -> tuple[float, float, bool]:
    """An x range that shows the differences between `values` (and where the thresholds are): zoomed in around
    them, and saying so, when starting at zero would squeeze them together at the right edge. A metric that
    cannot pass 1 (accuracy, r2, ...) gets only a sliver of room beyond it, for the dot."""
    low, high = min([*values, *limits]), max([*values, *limits])
    if len(values) + len(limits) == 1:  # nothing to compare it with: its own scale, from 0
        if at_most_one and 0 <= high <= 1:
            return 0.0, 1.0 + 0.01, False
        return min(0.0, low * 1.3), max(high * 1.3, 0.0) or 1.0, False
    pad = max((high - low) * 0.35, abs(high) * 0.004, 1e-3)
    right = high + pad
    if at_most_one and high <= 1.0:
        right = min(right, 1.0 + pad * 0.25)
    if low >= 0 and low - pad <= right * 0.25:  # close enough to zero: start there
        return 0.0, right, False
    return low - pad, right, low >= 0


def _difference(metric: str, cand: float, prod: float) -> str:
    gain = better(metric, cand, prod)
    word = "better" if gain > 0 else "worse" if gain < 0 else "the same"
    return f"Δ {cand - prod:+.4f} vs production: {word}"


def metrics_bar_svg(
    candidate: Mapping[str, float],
    production: Mapping[str, float] | None,
    thresholds: Mapping[str, Bound],
    production_label: str = "production",
) -> str:
    """Candidate against production per held-out metric, each on its own axis, zoomed to their values (the axis
    says so), the difference written under it and thresholds dashed. `production_label` goes in the caption:
    the rows here are short, "candidate" and "production", so the plots keep their width."""
    del production_label  # named by the figure's caption (gate_report.plots), not squeezed beside the dots
    order = [m for m in (*CLASSIFIER, *REGRESSOR) if m in candidate]
    columns = min(3, max(1, len(order)))
    rows = -(-len(order) // columns) or 1
    with figure(3.5 * columns + 0.2, 1.75 * rows + 0.2, nrows=rows, ncols=columns, squeeze=False) as (fig, axes):
        for index, ax in enumerate(axes.flat):
            if index >= len(order):
                ax.set_visible(False)
                continue
            metric = order[index]
            names, values, colors = ["candidate"], [candidate[metric]], [CANDIDATE]
            prod = production.get(metric) if production is not None else None
            if prod is not None:
                names.append("production")
                values.append(prod)
                colors.append(PRODUCTION)
            bound = thresholds.get(metric)
            limits = [v for v in ((bound.min, bound.max) if bound else ()) if v is not None]
            left, right, zoomed = _axis(values, limits, metric in AT_MOST_ONE)
            ax.set_xlim(left, right)
            for limit in limits:
                ax.axvline(limit, color=BOUND, linestyle="--", linewidth=1.4, zorder=1)
            positions = [1.0, 0.0][: len(values)]
            if len(values) == 2:
                ax.plot(values, positions, color=GRID, linewidth=2, zorder=2)
            middle = (left + right) / 2
            for pos, value, color, label in zip(positions, values, colors, names, strict=True):
                ax.plot([value], [pos], "o", color=color, markersize=9, zorder=3, gid=f"data-{metric}-{label}")
                ax.annotate(
                    f"{value:.4g}",
                    (value, pos),
                    xytext=(8 if value <= middle else -8, 0),
                    textcoords="offset points",
                    ha="left" if value <= middle else "right",
                    va="center",
                    fontsize=8,
                    color=INK,
                )
            ax.set_ylim(-0.6, 1.6)
            ax.set_yticks(positions, names)
            ax.tick_params(axis="y", length=0)
            ax.grid(axis="y", visible=False)
            direction = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
            ax.set_title(metric, loc="left")
            notes = [_difference(metric, values[0], values[1]) if len(values) == 2 else "no production to compare"]
            notes.append(direction + (" · axis zoomed, not from 0" if zoomed else ""))
            ax.set_xlabel("\n".join(notes), fontsize=7.5, color=MUTED)
            ax.tick_params(axis="x", labelsize=7.5)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
            ax.spines["left"].set_color(GRID)
        return to_svg(fig, "metrics")

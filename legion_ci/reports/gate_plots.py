"""The gate report's plots, as inline SVG: confusion matrix, ROC, predicted-vs-actual, residuals, metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn import metrics as skm

from legion_ci.core.spec import Bound
from legion_ci.quality.metrics import CLASSIFIER, LOWER_IS_BETTER, REGRESSOR
from legion_ci.reports.svg import GRID, INK, MUTED, PALETTE, figure, to_svg

CANDIDATE, PRODUCTION, BOUND = PALETTE[0], "#8c959f", "#cf222e"


def confusion_matrix_svg(y_true: Sequence[object], y_pred: Sequence[object], labels: Sequence[object]) -> str:
    """Counts of true (rows) against predicted (columns) classes; the diagonal is right."""
    matrix = skm.confusion_matrix(y_true, y_pred, labels=list(labels))
    n = len(labels)
    size = min(5.2, 2.2 + 0.55 * n)
    with figure(size + 0.6, size) as (fig, ax):
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
        ax.set_xticks(ticks, [str(c) for c in labels])
        ax.set_yticks(ticks, [str(c) for c in labels])
        ax.set_xlim(0, n)
        ax.set_ylim(n, 0)
        ax.grid(False)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        accuracy = np.trace(matrix) / max(matrix.sum(), 1)
        ax.set_title(f"Confusion matrix · accuracy {accuracy:.3f}", loc="left")
        return to_svg(fig, "confusion")


def roc_svg(y_true: Sequence[object], proba: np.ndarray, classes: Sequence[object]) -> str | None:
    """ROC curve per class (one against the rest); None when probabilities make no curve."""
    y = np.asarray(y_true)
    curves = []
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
            label = f"class {cls} · AUC {area:.3f}" if len(classes) > 2 else f"AUC {area:.3f}"
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
    with figure(6.4, 4.0, ncols=2, width_ratios=[3, 1], sharey=True) as (fig, (ax, hist)):
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


def metrics_bar_svg(
    candidate: Mapping[str, float],
    production: Mapping[str, float] | None,
    thresholds: Mapping[str, Bound],
    production_label: str = "production",
) -> str:
    """Candidate against production per held-out metric, each on its own scale, thresholds marked."""
    order = [m for m in (*CLASSIFIER, *REGRESSOR) if m in candidate]
    columns = min(3, max(1, len(order)))
    rows = -(-len(order) // columns) or 1
    with figure(2.6 * columns + 0.4, 1.35 * rows + 0.7, nrows=rows, ncols=columns, squeeze=False) as (fig, axes):
        for index, ax in enumerate(axes.flat):
            if index >= len(order):
                ax.set_visible(False)
                continue
            metric = order[index]
            names, values, colors = ["candidate"], [candidate[metric]], [CANDIDATE]
            if production is not None and metric in production:
                names.append(production_label)
                values.append(production[metric])
                colors.append(PRODUCTION)
            positions = np.arange(len(values))[::-1] + (2 - len(values))
            ax.set_axisbelow(True)
            for pos, value, color, label in zip(positions, values, colors, names, strict=True):
                ax.barh(pos, value, color=color, height=0.6, gid=f"data-{metric}-{label.split()[0]}")
                ax.text(value, pos, f" {value:.3f}", va="center", ha="left", fontsize=8, color=INK)
            bound = thresholds.get(metric)
            top = max(values)
            for limit in (bound.min, bound.max) if bound else ():
                if limit is not None:
                    ax.axvline(limit, color=BOUND, linestyle="--", linewidth=1.4, zorder=5)
                    top = max(top, limit)
            ax.set_xlim(0, top * 1.32 if top > 0 else 1)
            ax.set_ylim(-0.6, 1.6)
            ax.set_yticks(positions, names)
            ax.tick_params(axis="y", length=0)
            ax.grid(axis="y", visible=False)
            arrow = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
            ax.set_title(f"{metric}  ", loc="left")
            ax.set_title(arrow, loc="right", fontsize=7, color=MUTED, fontweight="normal")
            ax.spines["left"].set_color(GRID)
        return to_svg(fig, "metrics")

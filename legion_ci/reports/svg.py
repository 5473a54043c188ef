"""Matplotlib figures as inline SVG: text kept as text, ids made unique per figure, nothing external."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib
from matplotlib.figure import Figure

INK, MUTED, GRID = "#1f2328", "#59636e", "#d1d9e0"
PALETTE = ("#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#0a7b83", "#6e7781")
STYLE: dict[str, Any] = {
    "svg.fonttype": "none",  # <text> elements: small, selectable, searchable
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.edgecolor": GRID,
    "axes.labelcolor": INK,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlecolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.6,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "figure.dpi": 72,
}
_IDS = re.compile(r'\bid="([^"]+)"')
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}


@contextmanager
def figure(width: float = 5.2, height: float = 3.6, **subplots: Any) -> Iterator[tuple[Figure, Any]]:
    """A Figure (no pyplot global state) and its axes, drawn with the report's style."""
    with matplotlib.rc_context(STYLE):  # type: ignore[arg-type]
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(**subplots)
        yield fig, axes


def to_svg(fig: Figure, key: str) -> str:
    """The figure as an <svg> element for inlining; every id is prefixed with `key` so figures never clash.

    A `gid` of "data" on an artist becomes id="<key>-data": what tests and the page's check look for.
    """
    buf = io.StringIO()
    with matplotlib.rc_context({**STYLE, "svg.hashsalt": key}):  # type: ignore[dict-item]
        fig.savefig(buf, format="svg", metadata=_NO_METADATA)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    ids = set(_IDS.findall(text))
    text = _IDS.sub(lambda m: f'id="{key}-{m[1]}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{key}-{m[1]})" if m[1] in ids else m[0], text)
    text = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'href="#{key}-{m[1]}"', text).replace("xlink:href=", "href=")
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text, count=2)
    text = re.sub(
        r'<svg\b([^>]*?)\swidth="([\d.]+)pt"\s+height="([\d.]+)pt"',
        lambda m: f'<svg{m[1]} width="{float(m[2]) * 4 / 3:.0f}" height="{float(m[3]) * 4 / 3:.0f}"',
        text,
        count=1,
    )
    return text.replace("<svg", f'<svg class="plot" role="img" data-key="{key}"', 1)

"""The HTML of a report: one self-contained page (inline CSS and SVG, nothing fetched), verdict first."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape

from legion_ci.quality.checks import Check
from legion_ci.reports.model import ReportHead, ReportStatus, counts

WORDS = {status: status.value.upper() for status in ReportStatus}
CSS = """
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--pass:#1a7f37;--pass-bg:#dafbe1;
--fail:#cf222e;--fail-bg:#ffebe9;--warn:#9a6700;--warn-bg:#fff8c5;--skip:#59636e;--skip-bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--ink);background:#fff}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
header.top{display:flex;justify-content:space-between;align-items:baseline;gap:16px;flex-wrap:wrap;
border-bottom:1px solid var(--line);padding-bottom:10px}
header.top h1{font-size:20px;margin:0}
header.top .meta{color:var(--muted);font-size:13px}
.banner{margin:18px 0 8px;border-radius:10px;padding:16px 20px;border:1px solid;border-left-width:8px}
.banner .word{font-size:26px;font-weight:800;letter-spacing:.04em}
.banner .why{font-size:16px;margin-top:4px;font-weight:600}
.banner .also{margin:8px 0 0;padding-left:20px}
.banner .count{color:var(--muted);margin-top:6px;font-size:13px}
.s-passed{background:var(--pass-bg);border-color:var(--pass);color:#0f5323}
.s-failed,.s-error{background:var(--fail-bg);border-color:var(--fail);color:#82071e}
.s-forced{background:var(--warn-bg);border-color:var(--warn);color:#633c01}
.s-skipped{background:var(--skip-bg);border-color:var(--skip);color:var(--ink)}
.s-halted{background:#ddf4ff;border-color:#0969da;color:#0a3069}
.forced-note{background:var(--warn-bg);border:1px solid var(--warn);border-radius:8px;padding:10px 14px;margin:8px 0}
h2{font-size:16px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--soft);font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.v-failed td{background:#fff5f5}
.badge{display:inline-block;min-width:64px;text-align:center;border-radius:999px;padding:1px 10px;font-size:12px;
font-weight:700;letter-spacing:.03em}
.b-passed{background:var(--pass-bg);color:var(--pass)}.b-failed{background:var(--fail-bg);color:var(--fail)}
.b-skipped{background:var(--skip-bg);color:var(--skip);border:1px solid var(--line)}
.b-halted{background:#ddf4ff;color:#0969da;border:1px solid #0969da}
.kind{color:var(--muted);font-size:12px}
details{margin-top:4px}summary{cursor:pointer;color:var(--muted);font-size:12px}
pre{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:8px 10px;overflow:auto;
font-size:12px;max-height:320px;white-space:pre-wrap}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:18px}
figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:12px;background:#fff}
figure.wide{grid-column:1/-1}
figure svg{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{color:var(--muted);font-size:12px;margin-top:6px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:150px}
.card .v{font-size:20px;font-weight:700;font-variant-numeric:tabular-nums}.card .k{color:var(--muted);font-size:12px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;font-size:13px;margin:0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;word-break:break-all}
a{color:#0969da}
footer{margin-top:36px;color:var(--muted);font-size:12px;border-top:1px solid var(--line);padding-top:10px}
"""
# Marks each figure with the size its SVG was laid out at and how many data marks have geometry:
# evidence (for people and tests) that the plots rendered. The report reads the same without it.
SCRIPT = """
document.addEventListener('DOMContentLoaded',function(){
 document.querySelectorAll('figure[data-plot]').forEach(function(fig){
  var svg=fig.querySelector('svg');if(!svg){fig.setAttribute('data-rendered','no');return;}
  var box=svg.getBoundingClientRect(),marks=0;
  svg.querySelectorAll('[id*="-data"]').forEach(function(g){
   try{var b=g.getBBox();if(b.width>0||b.height>0)marks++;}catch(e){}
  });
  fig.setAttribute('data-rendered',box.width>0&&box.height>0?Math.round(box.width)+'x'+Math.round(box.height):'no');
  fig.setAttribute('data-marks',String(marks));
 });
});
"""


def num(value: float | None, digits: int = 4, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    return escape(text + unit)


def banner(head: ReportHead, checks: Sequence[Check]) -> str:
    """The verdict and the reason first; then every other failed check."""
    failed = [c for c in checks if not c.passed]
    n = counts(list(checks))
    others = "".join(f"<li>{escape(c.message)}</li>" for c in failed[1:])
    why = escape(
        failed[0].message if failed and head.status in (ReportStatus.FAILED, ReportStatus.FORCED) else head.headline
    )
    tally = (
        f"{n['passed']} passed · {n['failed']} failed · {n['skipped'] - n['halted']} skipped"
        + (f" · {n['halted']} halted" if n["halted"] else "")
        + (f" · {head.seconds:.1f}s" if head.seconds is not None else "")
    )
    forced = ""
    if head.status is ReportStatus.FORCED:
        forced = (
            f'<div class="forced-note"><strong>Forced past a failed {escape(head.title.lower())}.</strong> '
            f"Reason given: “{escape(head.forced_reason or '')}”. The failed checks below still stand.</div>"
        )
    return (
        f'<section class="banner s-{head.status}" id="verdict" data-status="{head.status}">'
        f'<div class="word">{WORDS[head.status]}</div><div class="why">{why}</div>'
        + (f'<ul class="also">{others}</ul>' if others else "")
        + f'<div class="count">{tally}</div></section>{forced}'
    )


def checks_table(checks: Iterable[Check], value_unit: dict[str, str] | None = None) -> str:
    """Every check with its verdict, failures first."""
    ordered = sorted(checks, key=lambda c: (c.passed, c.skipped))
    rows = []
    for c in ordered:
        unit = (value_unit or {}).get(c.name, "")
        margin = "" if c.margin is None else num(c.margin, 4, unit)
        detail = f"<details><summary>details</summary><pre>{escape(c.detail)}</pre></details>" if c.detail else ""
        rows.append(
            f'<tr class="v-{c.verdict}" data-kind="{escape(c.kind)}"><td><span class="badge b-{c.verdict}">'
            f'{c.verdict.upper()}</span></td><td><span class="kind">{escape(c.kind)}</span></td>'
            f"<td><strong>{escape(c.name)}</strong><br>{escape(c.message)}{detail}</td>"
            f'<td class="num">{num(c.value, 4, unit)}</td><td class="num">{num(c.bound, 4, unit)}</td>'
            f'<td class="num">{margin}</td></tr>'
        )
    return (
        '<table class="checks"><thead><tr><th>verdict</th><th>kind</th><th>check</th><th class="num">value</th>'
        '<th class="num">bound</th><th class="num">margin</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = (), cls: str = "") -> str:
    """A plain table; cells are HTML already (escape what you pass)."""
    head = "".join(f'<th class="num">{h}</th>' if i in numeric else f"<th>{h}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{v}</td>' if i in numeric else f"<td>{v}</td>" for i, v in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def figure(svg: str | None, caption: str, key: str, wide: bool = False) -> str:
    if svg is None:
        return ""
    cls = ' class="wide"' if wide else ""
    return f'<figure data-plot="{key}" id="plot-{key}"{cls}>{svg}<figcaption>{escape(caption)}</figcaption></figure>'


def facts(items: Iterable[tuple[str, str]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def page(head: ReportHead, checks: Sequence[Check], sections: Iterable[str]) -> str:
    """The whole document: title bar, verdict banner, then the sections in order."""
    title = f"{head.title} · {head.label} · {WORDS[head.status]}"
    meta = f"run {escape(head.run_id)} · {escape(head.generated_at)}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
        f'<header class="top"><h1>{escape(head.title)} · {escape(head.label)}</h1>'
        f'<div class="meta">legion-ci · {meta}</div></header>'
        + banner(head, checks)
        + "".join(sections)
        + f"<footer>Generated by legion-ci for {escape(head.model)} {escape(head.version)}, artifact "
        f"{escape(head.artifact_id)}. This page is self-contained: it loads nothing from anywhere.</footer>"
        f"</main><script>{SCRIPT}</script></body></html>\n"
    )


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'

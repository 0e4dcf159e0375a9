"""The conformance report for people: one self-contained HTML page.

The page holds the device's identity, a summary (counts per verdict and per category), one
table per category (id, clause, verdict in colour, title, detail), and inline SVG bar charts
of the performance measurements (operations per second per mechanism, p50/p99 latencies).
It needs no template engine, no JavaScript and nothing fetched: a lab archives one file, and
a browser opened years later shows the same page.

Everything that comes from the device or the suite (labels, serial numbers, details, error
messages) is escaped with :func:`html.escape`: a token can name itself ``<script>``, and the
page must still be inert. The JSON report (``Report.to_json()``) stays the record; this page
is rendered from it and says nothing the JSON does not; ``runner.write_reports`` writes both.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..clock import utc_and_jalali
from ..pagestyle import PAGE_CSS

__all__ = [
    "VERDICTS",
    "bar_chart_svg",
    "count_verdicts",
    "performance_series",
    "render_html",
    "report_dict",
    "write_html",
]

#: The verdicts in the order a summary shows them, with the colour each is drawn in.
VERDICTS: tuple[str, ...] = ("pass", "fail", "error", "not_applicable", "not_checked")
_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "error": "#9a6700", "not_applicable": "#6e7781",
            "not_checked": "#8250df"}
#: The verdicts a reader must see first: the device broke a clause, the suite could not judge,
#: or the suite could not check here.
ATTENTION = ("fail", "error", "not_checked")
#: A latency percentile measurement: ``p50``, ``p99_ms``, ``p99.9_us``.
_PERCENTILE = re.compile(r"^(?:(?P<what>[a-z0-9]+)_)?p(?P<q>\d+(?:\.\d+)?)_(?P<unit>ms|us|s)$")
#: A series of a latency chart, as :func:`performance_series` names it: ``p50``, ``digest p99``.
_SERIES = re.compile(r"^(?:(\S+) )?p(\d+(?:\.\d+)?)$")
# Eight colours told apart in colour and in greyscale print; a series keeps its colour across charts.
_BAR_COLOURS = ("#0969da", "#bc4c00", "#1a7f37", "#8250df", "#cf222e", "#4d2d00", "#0a3069", "#bf3989")
#: Chart titles for the measurements the suite is known to make; others are titled by their key.
_TITLES = {"ops_per_s": "operations per second (higher is better)"}


def report_dict(report: object) -> dict[str, Any]:
    """The report as plain JSON data: from a ``Report`` (its ``to_json()``), JSON text or bytes,
    or a mapping. Rendering from the JSON form means the page shows exactly what the signed
    JSON says."""
    if hasattr(report, "to_json"):
        return json.loads(report.to_json())  # type: ignore[union-attr]
    if isinstance(report, (bytes, bytearray, str)):
        return json.loads(report)
    if isinstance(report, Mapping):
        return dict(report)
    raise TypeError(f"not a report: {type(report).__name__}; give a Report, its JSON, or a dict")


def _json_sha256(report: object) -> str | None:
    """The SHA-256 of the report's JSON bytes, as an approval names it; None for a bare dict
    (whose JSON text, and so its hash, is not known)."""
    text = report.to_json() if hasattr(report, "to_json") else report  # type: ignore[union-attr]
    if isinstance(text, str):
        text = text.encode("utf-8")
    return hashlib.sha256(text).hexdigest() if isinstance(text, (bytes, bytearray)) else None


def _verdict(result: Mapping[str, Any]) -> str:
    v = result.get("verdict")
    return str(v.get("value", v) if isinstance(v, Mapping) else v)


def count_verdicts(report: object) -> dict[str, dict[str, int]]:
    """Counts of each verdict: ``{"all": {...}, "<category>": {...}}``, every verdict present
    (zero when none), categories in the order they first appear."""
    data = report_dict(report)
    out: dict[str, dict[str, int]] = {"all": dict.fromkeys(VERDICTS, 0)}
    for r in data.get("results", []):
        v, cat = _verdict(r), str(r.get("category", "-"))
        out.setdefault(cat, dict.fromkeys(VERDICTS, 0))
        for key in ("all", cat):
            out[key][v] = out[key].get(v, 0) + 1
    return out


def performance_series(report: object) -> dict[str, list[tuple[str, dict[str, float]]]]:
    """The performance measurements to chart: ``{chart: [(case id, {series: value})]}``.

    Latency percentiles of one unit (``p50_ms``, ``p99_ms``, ``digest_p50_ms``) share a chart,
    one bar per percentile (series ``p50``, ``digest p50``); operations per second share one
    chart, one bar for one session (``ops_per_s``) and one for each ``ops_per_s_4_processes``
    (series ``4 processes``); any other rate (``*_per_s``) is a chart of its own. Pass bounds (``bound_*``) stay in the detail text: drawn, a smartcard's
    bound of seconds would flatten every measured bar. Other categories' counts are not charted.
    """
    charts: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for r in report_dict(report).get("results", []):
        if r.get("category") != "performance":
            continue
        rows: dict[str, dict[str, float]] = {}
        for key, value in (r.get("measurements") or {}).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or key.startswith("bound"):
                continue
            m = _PERCENTILE.match(key)
            if m:
                chart, series = f"latency ({m['unit']})", " ".join(filter(None, (m["what"], f"p{m['q']}")))
            elif key == "ops_per_s" or key.startswith("ops_per_s_"):
                # One session's rate and the rates from N sessions and N processes side by side.
                chart, series = "ops_per_s", key[len("ops_per_s_"):].replace("_", " ") or "1 session"
            elif key.endswith("_per_s"):
                chart = series = key
            else:
                continue
            rows.setdefault(chart, {})[series] = float(value)
        for chart, values in rows.items():
            # The case id names the mechanism in a few characters; titles are sentences.
            charts.setdefault(chart, []).append((str(r.get("id")), values))
    return charts


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _when(text: object) -> str:
    """An ISO 8601 time as UTC with its Solar Hijri (Jalali) date, as Iranian readers expect."""
    try:
        moment = datetime.fromisoformat(str(text)).astimezone(timezone.utc)
    except ValueError:
        return str(text)
    return utc_and_jalali(moment)


def _number(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.3g}"


def bar_chart_svg(title: str, rows: Sequence[tuple[str, Mapping[str, float]]]) -> str:
    """A horizontal bar chart as inline SVG on a logarithmic scale (a power of ten per grid line):
    180,000 operations per second and 12 sit on one chart and both read. One group per row, one
    bar per series in the series' own colour (named in the legend), the value written at the end
    of its bar. The SVG scales to the page's width (A4 included)."""
    series = sorted({s for _, values in rows for s in values}, key=_series_order)
    positive = [v for _, values in rows for v in values.values() if v > 0]
    low = 10 ** math.floor(math.log10(min(positive))) if positive else 1.0
    if positive and min(positive) <= low * 1.5:
        low /= 10  # the smallest bar is never a sliver at the axis
    high = 10 ** math.ceil(math.log10(max(positive))) if positive else 10.0
    if high <= low:
        high = low * 10
    label_w, bar_w, bar_h, gap = 230, 380, 16, 10
    group_h = bar_h * len(series) + gap
    legend_rows = (len(series) + 2) // 3 if len(series) > 1 else 0
    top = 30 + 20 * legend_rows + 16
    height = top + group_h * len(rows) + 6
    width = label_w + bar_w + 90

    def x_of(value: float) -> float:
        if value <= 0:
            return 0.0
        return bar_w * max(0.0, math.log10(value / low)) / math.log10(high / low)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" viewBox="0 0 {width} {height}" '
             f'width="100%" style="max-width: {width}px" aria-label="{_e(title)}">',
             f'<text x="0" y="16" font-weight="bold">{_e(title)} (logarithmic scale)</text>']
    for i, s in enumerate(series if legend_rows else ()):
        x, y = label_w + (i % 3) * 130, 26 + 20 * (i // 3)
        parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{_BAR_COLOURS[i % len(_BAR_COLOURS)]}"/>'
                     f'<text x="{x + 16}" y="{y + 11}">{_e(s)}</text>')
    decade = low
    while decade <= high * 1.0001:
        gx = label_w + x_of(decade)
        parts.append(f'<line x1="{gx:.1f}" y1="{top - 4}" x2="{gx:.1f}" y2="{height - 6}" stroke="#d0d7de"/>'
                     f'<text x="{gx:.1f}" y="{top - 6}" text-anchor="middle" fill="#57606a">{_e(_number(decade))}</text>')
        decade *= 10
    y = top
    for label, values in rows:
        parts.append(f'<text x="{label_w - 6}" y="{y + bar_h * len(series) / 2 + 4:.0f}" text-anchor="end">'
                     f'{_e(label[:34])}</text>')
        for i, s in enumerate(series):
            if s not in values:
                continue
            w = max(1.0, x_of(values[s]))
            bar_y = y + i * bar_h
            parts.append(f'<rect x="{label_w}" y="{bar_y}" width="{w:.1f}" height="{bar_h - 2}" '
                         f'fill="{_BAR_COLOURS[i % len(_BAR_COLOURS)]}"><title>{_e(label)} {_e(s)}: '
                         f'{_e(values[s])}</title></rect>'
                         f'<text x="{label_w + w + 4:.1f}" y="{bar_y + bar_h - 5}">{_e(_number(values[s]))}</text>')
        y += group_h
    parts.append("</svg>")
    return "".join(parts)


def _series_order(name: str) -> tuple[str, float, str]:
    m = _SERIES.match(name)
    return (m.group(1) or "", float(m.group(2)), name) if m else (name, 0.0, name)


_STYLE = """
body { font-family: "Vazirmatn", "DejaVu Sans", sans-serif; margin: 2em; color: #1f2328; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
.verdict { font-weight: bold; color: #fff; border-radius: 4px; padding: 1px 6px; white-space: nowrap; }
""" + "".join(f".v-{v} {{ background: {c}; }}\n" for v, c in _COLOURS.items()) + """
.detail { white-space: pre-wrap; font-family: monospace; font-size: 90%; overflow-wrap: anywhere; max-width: 60em; }
.chart text { font-size: 12px; }
""" + PAGE_CSS


def _badge(verdict: str) -> str:
    cls = verdict if verdict in _COLOURS else "error"
    return f'<span class="verdict v-{_e(cls)}">{_e(verdict)}</span>'


def _value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return _e(", ".join(str(v) for v in value)) if value else "-"
    if isinstance(value, Mapping):
        return _e(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return _e("-" if value in (None, "") else value)


def _device_table(device: Mapping[str, Any]) -> str:  # also the run's settings: names and values
    rows = "".join(f"<tr><th>{_e(k.replace('_', ' '))}</th><td>{_value(v)}</td></tr>" for k, v in device.items())
    return f'<table class="device">{rows}</table>'


def _summary_table(counts: Mapping[str, Mapping[str, int]]) -> str:
    head = "".join(f"<th>{_badge(v)}</th>" for v in VERDICTS)
    rows = "".join(f"<tr><th>{_e(cat)}</th>" + "".join(f"<td>{c.get(v, 0)}</td>" for v in VERDICTS)
                   + f"<td>{sum(c.values())}</td></tr>"
                   # The categories first, the totals ("all") as the last row.
                   for cat, c in sorted(counts.items(), key=lambda item: item[0] == "all"))
    return f'<table class="summary"><tr><th>category</th>{head}<th>total</th></tr>{rows}</table>'


def _measured(measurements: Mapping[str, Any] | None) -> str:
    return _e(", ".join(f"{k} {_number(v) if isinstance(v, (int, float)) else v}"
                        for k, v in (measurements or {}).items()) or "-")


def _category_table(results: Sequence[Mapping[str, Any]]) -> str:
    measured = any(r.get("measurements") for r in results)
    rows = []
    for r in results:
        duration = r.get("duration_s")
        shown = f"{duration:.3f} s" if isinstance(duration, (int, float)) else "-"
        rows.append(f"<tr><td>{_e(r.get('id'))}</td><td>{_e(r.get('clause'))}</td><td>{_badge(_verdict(r))}</td>"
                    f"<td>{_e(r.get('title'))}</td><td class=\"detail\">{_e(r.get('detail'))}</td>"
                    + (f"<td>{_measured(r.get('measurements'))}</td>" if measured else "")
                    + f"<td>{_e(shown)}</td></tr>")
    return ("<table class=\"results\"><tr><th>id</th><th>clause</th><th>verdict</th><th>title</th><th>detail</th>"
            + ("<th>measurements</th>" if measured else "") + "<th>time</th></tr>" + "".join(rows) + "</table>")


def _required_section(data: Mapping[str, Any]) -> list[str]:
    """Where the report stands against the case set its device class must pass for an approval
    (conformance.required): each required case that did not pass, with its verdict and why."""
    from .model import REGISTRY
    from .registry import load_cases
    from .required import DEVICE_CLASSES, required_shortfall

    cls = (data.get("settings") or {}).get("device_class")
    if cls not in DEVICE_CLASSES:
        return []
    load_cases()
    count, short = required_shortfall(str(cls), data.get("results") or [], REGISTRY)
    head = f'<h2 id="required">Required for approval as {_e(cls)}</h2>'
    if not short:
        return [head, f"<p>All {count} cases a {_e(cls)} must pass passed.</p>"]
    rows = "".join(f"<tr><td>{_e(i)}</td><td>{_badge(v) if v != 'not run' else _e(v)}</td>"
                   f"<td class=\"detail\">{_e(why)}</td></tr>" for i, v, why in short)
    return [head, f"<p><strong>{len(short)} of the {count} cases a {_e(cls)} must pass did not pass</strong>; "
                  "no approval is made until each is checked and passes.</p>",
            f'<table class="results"><tr><th>id</th><th>verdict</th><th>why</th></tr>{rows}</table>']


def render_html(report: object) -> str:
    """The report as one HTML page (UTF-8, no scripts, no external resources)."""
    data = report_dict(report)
    counts = count_verdicts(data)
    device = data.get("device") or {}
    results = data.get("results") or []
    by_category: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        by_category.setdefault(str(r.get("category", "-")), []).append(r)
    total = counts["all"]
    failed = total.get("fail", 0) + total.get("error", 0)
    unchecked = total.get("not_checked", 0)
    outcome = ("passed: no case failed or erred" if not failed and results
               else f"not passed: {failed} case(s) failed or erred" if failed else "no cases were run")
    if unchecked:
        outcome += f"; {unchecked} case(s) could not be checked here"
    stopped = (data.get("settings") or {}).get("stopped_early")
    if stopped:
        outcome = f"not passed: the run stopped early: {stopped}; " + outcome
    attention = [r for r in results if _verdict(r) in ATTENTION]
    title = f"Conformance report: {device.get('token_label') or device.get('library_description') or 'device'}"
    charts = performance_series(data)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
           f"<h1>{_e(title)}</h1>",
           f"<p>Tool: {_e(data.get('tool'))}; started {_e(_when(data.get('started_at')))}, "
           f"finished {_e(_when(data.get('finished_at')))}.</p>",
           f"<p><strong>{_e(outcome)}</strong></p>",
           f"<p>report.json SHA-256 (named by an approval): <code>{_e(_json_sha256(report) or '-')}</code></p>",
           "<h2>Summary</h2>", _summary_table(counts), *_required_section(data)]
    if attention:
        # First what needs the lab's attention, each with its clause and what was seen, so that a
        # reader need not scan hundreds of rows for them.
        out += [f'<h2 id="attention">Failed, erred and not checked ({len(attention)})</h2>', _category_table(attention)]
    out += ["<h2>Device</h2>", _device_table(device)]
    if data.get("settings"):
        out += ["<h2>Settings of the run</h2>", _device_table(data["settings"])]
    if charts:
        out.append("<h2>Performance</h2>")
        out.extend(f"<div>{bar_chart_svg(_TITLES.get(name, name), rows)}</div>" for name, rows in charts.items())
    for cat, rows in by_category.items():
        out += [f'<h2 id="cat-{_e(cat)}">{_e(cat)}</h2>', _category_table(rows)]
    out.append("</body></html>\n")
    return "\n".join(out)


def write_html(report: object, out_dir: str | Path, name: str = "report.html") -> Path:
    """Write :func:`render_html` of ``report`` to ``out_dir/name``; return the path."""
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(report), encoding="utf-8")
    os.replace(tmp, path)  # a browser never shows half a page
    return path

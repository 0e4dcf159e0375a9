"""The compliance report as one self-contained HTML page (no scripts, everything escaped) and
as plain text, for the Root CA's reviewers and the CA under review."""

from __future__ import annotations

import html
from typing import Any

from ..clock import utc_and_jalali
from ..pagestyle import PAGE_CSS
from . import ComplianceReport
from .model import Severity

__all__ = ["render_html", "render_text"]

_COLOURS = {"error": "#cf222e", "warning": "#9a6700", "info": "#57606a"}
_CSS = """
body { font-family: "Vazirmatn", "DejaVu Sans", sans-serif; margin: 2em; color: #1f2328; max-width: 80em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
.sev { font-weight: bold; color: #fff; border-radius: 4px; padding: 1px 6px; }
.verdict-ok { color: #1a7f37; } .verdict-bad { color: #cf222e; }
code { font-size: 90%; }
td code { white-space: nowrap; }  /* a rule id on one line */
@media print { td code { white-space: normal; } }
""" + "".join(f".sev-{k} {{ background: {v}; }}\n" for k, v in _COLOURS.items()) + PAGE_CSS


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _value(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def render_html(report: ComplianceReport) -> str:
    verdict = ("No error: the CPS may go on to the next licensing stage." if report.ok else
               "Errors found: the CPS (or what the CA issues) breaks the national CP or the CPS itself.")
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
             f"<title>CPS compliance: {_e(report.cps_title or report.cps_path)}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>CPS compliance report: level {report.level}</h1>",
             f'<p class="{"verdict-ok" if report.ok else "verdict-bad"}"><strong>{_e(verdict)}</strong></p>',
             "<table>",
             f"<tr><th>CPS</th><td>{_e(report.cps_title)}<br><code>{_e(report.cps_path)}</code></td></tr>",
             f"<tr><th>SHA-256</th><td><code>{_e(report.cps_sha256)}</code></td></tr>",
             f"<tr><th>Assurance level</th><td>{report.level}</td></tr>",
             f"<tr><th>Certificate policy</th><td>{_e(report.policy)}</td></tr>",
             f"<tr><th>Artefacts</th><td>{_e(report.artefacts_dir or 'none given')}</td></tr>",
             f"<tr><th>Checked</th><td>{_e(utc_and_jalali(report.checked_at))}</td></tr>",
             "</table>", "<h2>Summary</h2><table><tr><th>stage</th>"]
    parts += [f"<th>{_e(s.value)}</th>" for s in Severity]
    parts.append("</tr>")
    counts = report.counts()
    for stage, _ in report.by_stage():
        parts.append(f"<tr><td>{_e(stage.title)}</td>" + "".join(
            f"<td>{counts[stage.value][s.value]}</td>" for s in Severity) + "</tr>")
    parts.append("</table>")
    for stage, findings in report.by_stage():
        parts.append(f"<h2>{_e(stage.title)}</h2>")
        if not findings:
            parts.append("<p>No finding.</p>")
            continue
        parts.append("<table><tr><th>severity</th><th>rule</th><th>place</th><th>finding</th><th>requirement</th>"
                     "<th>fix</th></tr>")
        for f in findings:
            parts.append(f'<tr><td><span class="sev sev-{_e(f.severity.value)}">{_e(f.severity.value)}</span></td>'
                         f"<td><code>{_e(f.rule)}</code></td><td>{_e(f.place)}</td><td>{_e(f.message)}</td>"
                         f"<td>{_e(f.requirement)}</td><td>{_e(f.fix)}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>What the CPS states</h2>")
    if report.claims:
        parts.append("<table><tr><th>value</th><th>certificate</th><th>level</th><th>stated</th><th>section</th>"
                     "<th>words</th></tr>")
        for c in report.claims:
            parts.append(f"<tr><td>{_e(c.name)}</td><td>{_e(c.kind or '')}</td><td>{_e(c.level or 'all')}</td>"
                         f"<td>{_e(_value(c.value))}</td><td>{_e(c.section)}</td><td>{_e(c.text)}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>No value could be read.</p>")
    if report.artefacts:
        # One small table per artefact (its own fields only): a single table of every field of
        # every kind ran to some twenty columns, past the right edge of a screen and of A4.
        parts.append("<h2>What the CA really issues</h2>")
        for row in report.artefacts:
            name = row.get("file") or row.get("kind") or "artefact"
            parts.append(f"<h3>{_e(name)}</h3><table>" + "".join(
                f"<tr><th>{_e(k)}</th><td>{_e(_value(v))}</td></tr>" for k, v in sorted(row.items())
                if k != "file" and v not in (None, "", [], ())) + "</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_text(report: ComplianceReport) -> str:
    """Plain text, one finding per paragraph, grouped by licensing stage."""
    lines = [f"CPS {report.cps_path} at assurance level {report.level} against {report.policy}",
             f"sha256 {report.cps_sha256}"]
    for stage, findings in report.by_stage():
        if not findings:
            continue
        lines += ["", stage.title]
        for f in findings:
            lines.append(f"  {f.severity.value.upper()} {f.rule} at {f.place}: {f.message}")
            if f.requirement:
                lines.append(f"    requirement: {f.requirement}")
            lines.append(f"    fix: {f.fix}")
    n = sum(1 for f in report.findings if f.severity is Severity.ERROR)
    lines += ["", "no error" if report.ok else f"{n} error(s)"]
    return "\n".join(lines) + "\n"

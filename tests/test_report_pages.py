"""The HTML reports a lab and an inspector read (issue 12 item 10), looked at in a real browser:
Debian's Chromium driven by Playwright. On A4 (print) and at 1,400 px (screen) no part of the
page runs past the right edge, however long the details, ids and tables are."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from iranpki.compliance import ComplianceReport
from iranpki.compliance.model import Finding, Severity, Stage
from iranpki.compliance.report import render_html as cps_html
from iranpki.conformance import CaseResult, Verdict, reporting

from .test_conformance_reports import sample_report

A4_WIDTH = 794  # CSS pixels at 96 dpi
SCREEN = 1400


def _overflow(browser: object, page_html: str, width: int, media: str, shot: Path | None = None) -> list[str]:
    """The elements whose right edge lies past the page's width, in ``media`` at ``width`` px."""
    page = browser.new_page(viewport={"width": width, "height": 1123})  # type: ignore[attr-defined]
    try:
        page.set_content(page_html)
        page.emulate_media(media=media)
        if shot is not None:
            page.screenshot(path=str(shot), full_page=False)
        return page.evaluate("""() => { const w = document.documentElement.clientWidth; const out = [];
            for (const el of document.querySelectorAll('body *')) { const r = el.getBoundingClientRect();
              if (r.right > w + 1) out.push(el.tagName + ' ' + (el.textContent || '').slice(0, 50)); }
            return out.slice(0, 5); }""")
    finally:
        page.close()


def _long_conformance_report(tmp_path: Path) -> str:
    module = tmp_path / "libvendor.so"
    module.write_bytes(b"module")
    report = sample_report(module, fail=True)
    long = "CKR_FUNCTION_FAILED " + "0123456789abcdef" * 40  # a detail with a very long word
    report.results.append(CaseResult("SEC-WYCHEPROOF-RSA-PSS-4096-SHA512-LONG-ID", "security", "PKCS#11 3.0 §5.13",
                                     "a case with a long id and a long detail", Verdict.FAIL, long))
    return reporting.render_html(report)


def _long_cps_report() -> str:
    findings = [Finding("CPS-CLAIM-OCSP-VALIDITY-HOURS-LEVEL-4", Severity.ERROR, Stage.POLICIES, "CPS 4.9.10",
                        "the OCSP responses are valid " + "much longer than allowed " * 20, "shorten them",
                        "national CP, level 4: at most 96 hours")]
    artefacts = [{"file": f"certs/example-{i}.pem", **{f"field_{k}": f"value-{k}-" + "x" * 30 for k in range(20)}}
                 for i in range(3)]
    report = ComplianceReport("gica-cps.md", hashlib.sha256(b"x").hexdigest(), "CPS of GICA", 4, "National CP",
                              "samples", datetime(2026, 12, 2, tzinfo=timezone.utc), findings, [], artefacts)
    return cps_html(report)


@pytest.mark.parametrize("width, media", [(A4_WIDTH, "print"), (SCREEN, "screen")])
def test_reports_fit_the_page(browser: object, tmp_path: Path, width: int, media: str) -> None:
    for name, page in (("conformance", _long_conformance_report(tmp_path)), ("cps", _long_cps_report())):
        wide = _overflow(browser, page, width, media)
        assert not wide, f"{name} report at {width} px ({media}): past the right edge: {wide}"


def test_the_checker_sees_an_overflow(browser: object) -> None:
    """The check above must be able to fail: a table too wide for A4."""
    page = "<table><tr>" + "".join(f"<td style='white-space:nowrap'>column {i} {'x' * 40}</td>" for i in range(20))
    assert _overflow(browser, page + "</tr></table>", A4_WIDTH, "print")


def test_performance_charts_are_logarithmic_with_a_colour_per_series(browser: object, tmp_path: Path) -> None:
    """Issue 12 item 9: 180,000/s and 12/s both read on one chart (a power of ten per grid line),
    each series has a colour of its own, and the charts fit A4; the screenshot is looked at."""
    import re

    from iranpki.conformance.reporting import bar_chart_svg

    svg = bar_chart_svg("ops", [("PERF-A", {"1 session": 180000.0, "4 processes": 12.0}),
                                ("PERF-B", {"1 session": 900.0, "4 sessions": 50.0, "2 processes": 7.0})])
    assert "logarithmic scale" in svg
    legend = dict(re.findall(r'<rect x="\d+" y="\d+" width="12" height="12" fill="(#[0-9a-f]{6})"/><text[^>]*>([^<]+)<', svg))
    assert len(legend) == 4 and len(set(legend)) == 4  # four series, four colours
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="[\d.]+" width="([\d.]+)" height="14"', svg)]
    assert min(widths) > 20  # the smallest value is a bar, not a sliver beside the largest
    page = _long_conformance_report(tmp_path)
    assert not _overflow(browser, page, A4_WIDTH, "print", shot=tmp_path / "a4.png")
    assert (tmp_path / "a4.png").stat().st_size > 10_000

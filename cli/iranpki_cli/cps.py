"""`iranpki cps check|render`: a CPS against the national CP, and the CP as an RFC 3647 document."""

from __future__ import annotations

import os

import click
from rich.markup import escape

from iranpki.compliance import ComplianceReport, Severity, check_cps
from iranpki.compliance.report import render_html, render_text
from iranpki.errors import ComplianceError, ConfigError
from iranpki.policy import load_policy

from .common import json_option
from .handling import HandledGroup, report_error
from .render import console, table, when

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "dim"}


@click.group(cls=HandledGroup)
def cps() -> None:
    """Certification Practice Statements: check one against the national CP and what the CA issues.

    \b
    Example:
      iranpki cps check policies/examples/general-intermediate-ca-cps.md --level 2
      iranpki cps check gica-cps.md --level 2 --artifacts ./samples --format html --out report.html
      iranpki cps render --out national-cp.md
    """


def _write(text: str, out: str | None) -> None:
    if out:
        tmp = f"{out}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out)
    else:
        click.echo(text, nl=not text.endswith("\n"))


def _show(report: ComplianceReport) -> None:
    console.print(f"[bold]{escape(report.cps_title or report.cps_path)}[/] at assurance level {report.level}, "
                  f"against {escape(report.policy)}; checked {when(report.checked_at)}", highlight=False)
    counts = report.counts()
    table("Findings per licensing stage", ["stage", *[s.value for s in Severity]],
          [[stage.title, *[str(counts[stage.value][s.value]) for s in Severity]] for stage, _ in report.by_stage()])
    for stage, findings in report.by_stage():
        if not findings:
            continue
        console.print(f"\n[bold]{escape(stage.title)}[/]", highlight=False)
        for f in findings:
            console.print(f"[{_STYLE[f.severity]}]{f.severity.value}[/] [bold]{escape(f.rule)}[/] "
                          f"{escape(f.place)}: {escape(f.message)}", highlight=False, soft_wrap=True)
            if f.requirement:
                console.print(f"    requirement: {escape(f.requirement)}", highlight=False, soft_wrap=True)
            console.print(f"    fix: {escape(f.fix)}", highlight=False, soft_wrap=True)
    errors = sum(1 for f in report.findings if f.severity is Severity.ERROR)
    console.print("\n[green]no error[/]" if report.ok else f"\n[bold red]{errors} error(s)[/]")


@cps.command()
@click.argument("cps_file", metavar="CPS.md", type=click.Path(dir_okay=False))
@click.option("--level", required=True, type=click.IntRange(1, 4), help="The assurance level (1-4) the CPS is for.")
@click.option("--artifacts", "--artefacts", "artefacts_dir", type=click.Path(file_okay=False), default=None,
              help="A folder of the CA certificate, sample certificates, CRLs and OCSP responses to check too.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="File to write (default: stdout).")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
              help="A CP YAML file (default: the national CP shipped with iranpki).")
@json_option
def check(cps_file: str, level: int, artefacts_dir: str | None, fmt: str, out: str | None,
          policy_path: str | None, as_json: bool) -> None:
    """Check CPS.md (Markdown, RFC 3647 headings) against the national CP for --level, and the
    artefacts in --artifacts against both. Exit status 0 without ERROR, 1 with one, 2 when the
    CPS, the folder or the CP cannot be read.

    \b
    Example:
      iranpki cps check gica-cps.md --level 2
      iranpki cps check gica-cps.md --level 2 --artifacts ./samples --format html --out report.html
    """
    if as_json:
        fmt = "json"  # --json as every command takes it: the report as JSON (same as --format json)
    try:
        report = check_cps(cps_file, level, artefacts_dir=artefacts_dir, policy=load_policy(policy_path))
    except (ComplianceError, ConfigError) as exc:
        report_error(exc, as_json=fmt == "json")
        raise click.exceptions.Exit(2) from None
    if fmt == "json":
        _write(report.to_json() + "\n", out)
    elif fmt == "html":
        _write(render_html(report), out)
    elif out:
        _write(render_text(report), out)
    else:
        _show(report)
    click.get_current_context().exit(0 if report.ok else 1)


@cps.command()
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="File to write (default: stdout).")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
              help="A CP YAML file (default: the national CP shipped with iranpki).")
def render(out: str | None, policy_path: str | None) -> None:
    """Write the national CP out as an RFC 3647 document in Markdown.

    \b
    Example:
      iranpki cps render --out national-cp.md
    """
    from iranpki.compliance.render import render_cp

    _write(render_cp(load_policy(policy_path)), out)


__all__ = ["cps"]

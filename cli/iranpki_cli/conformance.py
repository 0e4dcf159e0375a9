"""`iranpki conformance run|list`: the PKCS#11 conformance suite of the national evaluation lab."""

from __future__ import annotations

import os
import sys

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from iranpki.conformance import (
    CATEGORIES,
    REGISTRY,
    CaseResult,
    Report,
    Verdict,
    select,
)
from iranpki.conformance.required import REQUIRED, required_shortfall
from iranpki.conformance.runner import RunOptions, load_cases, run_suite, write_reports
from iranpki.keys import SecretSource

from .common import _prompt, json_option, pin_source
from .handling import HandledGroup
from .render import console, emit_json, err_console, table

SO_PIN_ENV = "IRANPKI_PKCS11_SO_PIN"
_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "bold red", Verdict.NOT_APPLICABLE: "dim", Verdict.ERROR: "bold magenta"}


@click.group(cls=HandledGroup)
def conformance() -> None:
    """The PKCS#11 conformance suite the lab runs against tokens and HSMs before approval.

    Every case runs in a worker process: a module that crashes or hangs gets the verdict
    "error" for that case and the run goes on. PINs come from IRANPKI_PKCS11_PIN and
    IRANPKI_PKCS11_SO_PIN (or a prompt), never from the command line.

    \b
    Example:
      export IRANPKI_PKCS11_PIN=... IRANPKI_PKCS11_SO_PIN=...
      iranpki conformance list --categories security
      iranpki conformance run --module /usr/lib/softhsm/libsofthsm2.so --token "Lab Test" --out ./report
      iranpki conformance sign-report ./report/report.json --key 'pkcs11:token=Lab;object=seal' --cert lab.pem
      iranpki conformance approve ./report/report.json --key 'pkcs11:token=Lab;object=seal' --cert lab.pem \\
          --days 365 --out approval.p7m
      iranpki conformance verify-report ./report/report.json --approval approval.p7m --module /path/to/module.so
    """


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _so_pin() -> SecretSource | None:
    """The SO PIN from IRANPKI_PKCS11_SO_PIN or a prompt. It is optional: without it (no
    terminal to ask on), the cases that need it are judged not applicable."""
    if os.environ.get(SO_PIN_ENV) or sys.stdin.isatty():
        return SecretSource(env=SO_PIN_ENV, prompt=_prompt, what="SO PIN")
    return None


@conformance.command("list")
@click.option("--categories", default=None, help=f"Comma-separated, among {', '.join(CATEGORIES)} (default: all).")
@json_option
def list_(categories: str | None, as_json: bool) -> None:
    """List the cases: id, category, the clause each checks, and what it needs from the device.

    \b
    Example:
      iranpki conformance list
      iranpki conformance list --categories security --json
    """
    load_cases()
    try:
        cases = select(_split(categories))
    except (KeyError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        emit_json([{"id": c.id, "category": c.category, "clause": c.clause, "title": c.title,
                    "needs": list(c.needs)} for c in cases])
        return
    table(f"{len(cases)} conformance cases", ["id", "category", "clause", "needs"],
          [[c.id, c.category, c.clause, ", ".join(c.needs) or "-"] for c in cases])


def _summary(report: Report) -> None:
    s = report.summary
    verdicts = [v.value for v in Verdict]
    rows = [[cat, *[str(counts[v]) for v in verdicts]] for cat, counts in s["by_category"].items()]
    rows.append(["total", *[str(s["by_verdict"][v]) for v in verdicts]])
    table(f"{report.device.token_label} ({report.device.token_manufacturer}, {report.device.token_model})",
          ["category", *verdicts], rows)
    bad = [r for r in report.results if r.verdict in (Verdict.FAIL, Verdict.ERROR)]
    for r in bad:
        console.print(f"[{_STYLE[r.verdict]}]{r.verdict.value}[/] {escape(r.id)}: {escape(r.detail)}", highlight=False,
                      soft_wrap=True)
    cls = report.settings.get("device_class")
    if cls in REQUIRED:
        count, short = required_shortfall(cls, ({"id": r.id, "verdict": r.verdict.value, "detail": r.detail}
                                                for r in report.results), REGISTRY)
        if short:
            listed = ", ".join(f"{i} ({v})" for i, v, _ in short[:8]) + (f" and {len(short) - 8} more"
                                                                         if len(short) > 8 else "")
            console.print(f"[yellow]for approval as {escape(cls)}[/]: {len(short)} of {count} required cases did not "
                          f"pass: {escape(listed)}", highlight=False, soft_wrap=True)
        else:
            console.print(f"for approval as {escape(cls)}: all {count} required cases passed", highlight=False)


@conformance.command()
@click.option("--module", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The vendor's PKCS#11 module (.so) under test.")
@click.option("--token", "token_label", required=True, help="The label of the token under test.")
@click.option("--categories", default=None, help=f"Comma-separated, among {', '.join(CATEGORIES)} (default: all).")
@click.option("--cases", "case_ids", default=None, help="Comma-separated case ids (see `conformance list`).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the report (report.json).")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True,
              help="Seconds a case may take before its worker is killed and the case judged 'error'.")
@click.option("--disposable", is_flag=True,
              help="Run even though the token holds objects (the suite changes and destroys objects and the PIN).")
@click.option("--device-class", type=click.Choice(["hsm", "usb-token", "smartcard"]), default="hsm", show_default=True,
              help="The performance bounds to judge by: an HSM serving a CA, OCSP or TSA, or a citizen's card.")
@click.option("--perf-seconds", type=click.FloatRange(0.05), default=1.0, show_default=True,
              help="Seconds each performance measurement runs (after a warm-up of a third of that).")
@click.option("--parallel", type=click.IntRange(2), default=4, show_default=True,
              help="N in the performance cases' N sessions and N processes.")
@click.option("--plugin", "plugins", multiple=True,
              help="A module or .py file with more cases (a lab's own). The report records each, with its "
                   "SHA-256, and no approval is made from such a report.")
@json_option
def run(module: str, token_label: str, categories: str | None, case_ids: str | None, out_dir: str | None,
        timeout_s: float, disposable: bool, device_class: str, perf_seconds: float, parallel: int,
        plugins: tuple[str, ...], as_json: bool) -> None:
    """Run the suite against one token; exit status 1 if any case fails or ends in error.

    \b
    Example:
      export IRANPKI_PKCS11_PIN=... IRANPKI_PKCS11_SO_PIN=...
      iranpki conformance run --module /usr/lib/vendor/pkcs11.so --token "Lab Test" --out ./report
    """
    perf = {"IRANPKI_CONFORMANCE_DEVICE_CLASS": device_class, "IRANPKI_CONFORMANCE_PERF_SECONDS": str(perf_seconds),
            "IRANPKI_CONFORMANCE_PARALLEL": str(parallel)}
    options = RunOptions(module=module, token=token_label, categories=_split(categories), ids=_split(case_ids),
                         timeout_s=timeout_s, disposable=disposable, plugins=plugins, env=perf,
                         log_path=os.path.join(out_dir, "workers.log") if out_dir else None)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    try:
        load_cases(plugins)
        select(options.categories, options.ids)
    except (KeyError, ValueError) as exc:
        raise click.UsageError(str(exc).strip('"')) from None
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.fields[case]}"), console=err_console,
                        disable=as_json, transient=True)
    task = progress.add_task("conformance", total=None, case="")

    def on_start(cases: list) -> None:
        progress.update(task, total=len(cases))

    def on_result(r: CaseResult) -> None:
        progress.update(task, advance=1, case=r.id)
        if r.verdict in (Verdict.FAIL, Verdict.ERROR):
            progress.console.print(f"[{_STYLE[r.verdict]}]{r.verdict.value}[/] {escape(r.id)}: {escape(r.detail)}",
                                   highlight=False)

    with progress:
        report = run_suite(options, pin_source(), _so_pin(), on_start=on_start, on_result=on_result)
    written = write_reports(report, out_dir) if out_dir else []
    if as_json:
        emit_json(report.to_dict())
    else:
        _summary(report)
        if report.settings.get("stopped_early"):
            err_console.print(f"[red]the run stopped early[/]: {escape(report.settings['stopped_early'])}",
                              highlight=False)
        for p in written:
            console.print(f"report written: {escape(str(p))}", highlight=False)
    click.get_current_context().exit(0 if report.ok else 1)


__all__ = ["conformance"]


from . import conformance_reports  # noqa: E402 - the lab's sign-report, approve, verify-report join the group

conformance_reports.register(conformance)

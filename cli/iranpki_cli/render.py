"""Presentation: rich tables for people, JSON for scripts, Gregorian and Jalali dates."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.table import Table

from iranpki.clock import utc_and_jalali

# Where the output is not a terminal (a pipe, a file, a log), nothing is wrapped: a serial, a
# date or a key URI split over two lines cannot be copied or grepped, so the width is unbounded
# there (rich would otherwise assume 80 columns, or $COLUMNS). On a terminal, tables fit it.
_UNWRAPPED = 1 << 14


def _make(stderr: bool) -> Console:
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return Console(stderr=stderr, soft_wrap=stderr)
    return Console(stderr=stderr, width=_UNWRAPPED, soft_wrap=True)


console = _make(False)
# Errors are never hard-wrapped: operators grep them in logs.
err_console = _make(True)


def when(moment: datetime | None) -> str:
    return "-" if moment is None else utc_and_jalali(moment)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    t = Table(title=title, show_lines=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*r)
    console.print(t)


def fields(title: str, pairs: list[tuple[str, str]]) -> None:
    t = Table(title=title, show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for k, v in pairs:
        t.add_row(k, v)
    console.print(t)


@contextmanager
def progress_counter(what: str) -> Iterator[Callable[[int], None] | None]:
    """A callback that shows a running count of ``what`` on a terminal (stderr), for long work
    (a CRL of millions of entries, millions of OCSP responses); None where stderr is no terminal,
    so logs and scripts get nothing but the result."""
    if not err_console.is_terminal:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TextColumn("{task.completed:,}"),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda n: bar.update(task, completed=n)

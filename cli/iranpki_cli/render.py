"""Presentation: rich tables for people, JSON for scripts, Gregorian and Jalali dates."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.table import Table

from iranpki.clock import utc_and_jalali

console = Console()
# Errors are never hard-wrapped: operators grep them in logs.
err_console = Console(stderr=True, soft_wrap=True)


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

"""`iranpki tsa serve|stamp` (in progress)."""

from __future__ import annotations

import click


@click.group()
def tsa() -> None:
    """Time-stamp authority (RFC 3161 with RFC 5816)."""

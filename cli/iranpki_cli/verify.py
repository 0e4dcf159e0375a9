"""`iranpki verify FILE` (in progress)."""

from __future__ import annotations

import click


@click.command()
def verify() -> None:
    """Validate a certificate, a signed PDF or a CMS signature against the national root."""
    raise click.UsageError("iranpki verify is not built yet")

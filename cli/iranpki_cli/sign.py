"""`iranpki sign pdf|cms|mail` (in progress)."""

from __future__ import annotations

import click


@click.group()
def sign() -> None:
    """Sign documents: PDF (PAdES), CMS, S/MIME mail."""

"""`iranpki ocsp serve` (in progress)."""

from __future__ import annotations

import click


@click.group()
def ocsp() -> None:
    """OCSP responder (RFC 6960, RFC 9919 lightweight profile)."""

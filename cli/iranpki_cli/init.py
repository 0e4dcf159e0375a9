"""`iranpki init DIR`: make a workspace."""

from __future__ import annotations

import click

from iranpki.workspace import Workspace

from .common import json_option
from .handling import HandledCommand
from .render import console, emit_json


@click.command(cls=HandledCommand)
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--repository-url", required=True,
              help="Base URL where CRLs and CA certificates are published (goes into certificates).")
@click.option("--ocsp-url", default="", help="Base URL of the OCSP responders (each CA adds /NAME).")
@click.option("--module", "pkcs11_module", default=None, help="PKCS#11 module (default: SoftHSM2).")
@json_option
def init(directory: str, repository_url: str, ocsp_url: str, pkcs11_module: str | None, as_json: bool) -> None:
    """Make a workspace in DIRECTORY: settings, an empty store, a folder for software keys.

    \b
    Example:
      iranpki init ./ca --repository-url http://repo.example.ir --ocsp-url http://ocsp.example.ir
    """
    ws = Workspace.init(directory, repository_url=repository_url, ocsp_url=ocsp_url, pkcs11_module=pkcs11_module)
    if as_json:
        emit_json({"home": str(ws.home.resolve()), "store": str(ws.store_path.resolve())})
    else:
        console.print(f"workspace ready in [bold]{ws.home.resolve()}[/] (store {ws.store_path.name})")

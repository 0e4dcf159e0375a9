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
@click.option("--store", default=None, metavar="URL",
              help="The store on a database server, postgresql://USER@HOST:PORT/DATABASE (default: a SQLite file "
                   "in the workspace). The password never goes here: IRANPKI_STORE_PASSWORD or --store-password-file.")
@click.option("--store-password-file", default=None, metavar="FILE",
              help="A file (relative to the workspace) whose first line is the database password.")
@json_option
def init(directory: str, repository_url: str, ocsp_url: str, pkcs11_module: str | None, store: str | None,
         store_password_file: str | None, as_json: bool) -> None:
    """Make a workspace in DIRECTORY: settings, an empty store, a folder for software keys.

    \b
    Example:
      iranpki init ./ca --repository-url http://repo.example.ir --ocsp-url http://ocsp.example.ir
      iranpki init ./node2 --repository-url http://repo.example.ir --store postgresql://ca@db1:5432/iranpki
    """
    if store is not None and not store.startswith("postgresql://"):
        raise click.BadParameter(f"{store!r} is not a postgresql:// URL; leave --store out for a SQLite store in the "
                                 "workspace", param_hint="--store")
    ws = Workspace.init(directory, repository_url=repository_url, ocsp_url=ocsp_url, pkcs11_module=pkcs11_module,
                        store=store, store_password_file=store_password_file)
    shown = ws.store_location if ws.store_is_server else str(ws.store_path.resolve())
    if as_json:
        emit_json({"home": str(ws.home.resolve()), "store": shown})
    else:
        console.print(f"workspace ready in [bold]{ws.home.resolve()}[/] (store {shown})", highlight=False)

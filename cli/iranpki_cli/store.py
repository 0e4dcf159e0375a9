"""`iranpki store`: the workspace's store, and its move onto a database server.

\b
Example (the SQLite store of ./ca into a new PostgreSQL database, then the workspace uses it):
  IRANPKI_STORE_PASSWORD=... iranpki store migrate --to postgresql://ca@db1:5432/iranpki --switch
"""

from __future__ import annotations

import click

from .common import home_option, json_option, workspace
from .handling import HandledGroup
from .render import console, emit_json


@click.group(cls=HandledGroup)
def store() -> None:
    """The workspace's store: SQLite on one machine, PostgreSQL for several."""


@store.command("migrate")
@click.option("--to", "url", required=True, metavar="URL",
              help="The new store: postgresql://USER@HOST:PORT/DATABASE, an empty database. The password comes from "
                   "IRANPKI_STORE_PASSWORD (or a file named by IRANPKI_STORE_PASSWORD_FILE), never from here.")
@click.option("--switch", is_flag=True,
              help="After a copy that checks out, make the workspace use the new store (iranpki.yaml).")
@home_option
@json_option
def migrate(url: str, switch: bool, home: str, as_json: bool) -> None:
    """Copy the workspace's SQLite store into a new PostgreSQL store and check the copy: row
    counts of every table, every certificate (serial, hash, status), and the audit log verified
    in the copy. Stop the CA's services first; the copy reads one snapshot either way."""
    from iranpki.store import open_store
    from iranpki.store.migrate import copy_store
    from iranpki.workspace import CONFIG_NAME

    if not url.startswith("postgresql://"):
        raise click.BadParameter(f"{url!r} is not a postgresql:// URL", param_hint="--to")
    ws = workspace(home)
    if ws.store_is_server:
        raise click.UsageError(f"this workspace's store is {ws.store_location} already; migrate copies a SQLite store")
    target = open_store(url, clock=ws.clock, create=True)
    try:
        report = copy_store(ws.store, target, progress=None if as_json else
                            lambda table, n: console.print(f"  {table}: {n} rows", highlight=False))
    finally:
        target.close()
    out = {"to": target.path, "rows": report.rows, "certificates_sha256": report.certificates_sha256,
           "audit_events": report.audit_events, "problems": report.problems, "switched": False}
    if report.ok and switch:
        ws.switch_store(url)
        out["switched"] = True
    if as_json:
        emit_json(out)
    else:
        for p in report.problems:
            console.print(f"[red]problem[/]: {p}", highlight=False)
        if report.ok:
            console.print(f"copied and checked: {sum(report.rows.values())} rows, {report.rows.get('certificates', 0)} "
                          f"certificates (SHA-256 {report.certificates_sha256[:16]}... on both sides), "
                          f"{report.audit_events} audit events verified in the copy", highlight=False)
            console.print(f"{CONFIG_NAME} now uses {target.path}" if switch else
                          f"to use it: iranpki store migrate ... --switch, or set store: {target.path} in {CONFIG_NAME}",
                          highlight=False)
    if not report.ok:
        raise click.exceptions.Exit(1)

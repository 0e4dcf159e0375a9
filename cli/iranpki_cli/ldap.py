"""`iranpki ldap`: publishing CA certificates, CRLs and (where the subscriber agreed) certificates
to an LDAP directory, through the store's outbox (iranpki.publish, docs/multi-node.md).

\b
Example (iranpki.yaml: ldap: {url: ldap://dir.example.ir, base_dn: 'dc=pki,dc=ir',
         bind_dn: 'cn=publisher,dc=pki,dc=ir', password_file: ldap.pw}):
  iranpki ldap enable                 # from now on the outbox takes what is recorded
  iranpki ldap publish --watch        # take it to the directory, and keep doing so
  iranpki ldap status
"""

from __future__ import annotations

import time

import click

from iranpki.store import AuditEvent

from .common import home_option, json_option, workspace
from .handling import HandledGroup
from .render import console, emit_json


@click.group(cls=HandledGroup)
def ldap() -> None:
    """Publishing to an LDAP directory, through the store's outbox."""


@ldap.command()
@home_option
@json_option
def enable(home: str, as_json: bool) -> None:
    """Turn publishing on: every CA certificate and each newest CRL go into the outbox now, and
    from now on every CA certificate, CRL and consenting subscriber's certificate as it is recorded."""
    ws = workspace(home)
    put = ws.store.set_publishing(True, AuditEvent("publish.enabled", "ldap", "operator", {}))
    out = {"publishing": True, "queued": put, **ws.store.outbox_counts()}
    if as_json:
        emit_json(out)
    else:
        console.print(f"publishing on; {put} item(s) queued now; {out['pending']} waiting for `iranpki ldap publish`",
                      highlight=False)


@ldap.command()
@home_option
def disable(home: str) -> None:
    """Turn publishing off (what is queued stays, and is published)."""
    workspace(home).store.set_publishing(False, AuditEvent("publish.disabled", "ldap", "operator", {}))
    console.print("publishing off")


@ldap.command()
@home_option
@click.option("--watch", is_flag=True, help="Keep going: publish what comes every --interval seconds.")
@click.option("--interval", type=click.FloatRange(0.2, 3600), default=5.0, show_default=True)
@json_option
def publish(home: str, watch: bool, interval: float, as_json: bool) -> None:
    """Take the outbox to the directory, in order. A directory that is down or refuses leaves the
    item first in the outbox (its error recorded); exit status 1 then, unless --watch."""
    publisher = workspace(home).ldap_publisher()
    while True:
        run = publisher.run_once()
        out = {"published": run.published, "pending": run.pending, "error": run.error}
        if as_json and not watch:
            emit_json(out)
        elif not as_json:
            console.print(f"published {run.published}, {run.pending} waiting"
                          + (f"; stopped: {run.error}" if run.error else ""), highlight=False)
        if not watch:
            if run.error:
                raise click.exceptions.Exit(1)
            return
        time.sleep(interval)


@ldap.command()
@home_option
@json_option
def status(home: str, as_json: bool) -> None:
    """Whether publishing is on, and the outbox: waiting, published, the first waiting item's error."""
    store = workspace(home).store
    pending = store.outbox_pending(1)
    out = {"publishing": store.publishing(), **store.outbox_counts(),
           "first_waiting": None if not pending else {"kind": pending[0].kind, "ca": pending[0].ca,
                                                      "since": pending[0].created_at.isoformat(),
                                                      "attempts": pending[0].attempts, "error": pending[0].last_error}}
    if as_json:
        emit_json(out)
    else:
        console.print(f"publishing {'on' if out['publishing'] else 'off'}: {out['pending']} waiting, "
                      f"{out['published']} published" + (f"; first waiting: {out['first_waiting']}" if pending else ""),
                      highlight=False)

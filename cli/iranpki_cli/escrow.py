"""`iranpki escrow`: the key-recovery key to which the RA archives subscribers' encryption keys
(iranpki.keys.escrow, docs/key-backup.md).

\b
Example (the key-recovery key on the CA's token, then the RA archives to it):
  iranpki escrow init --token GICA --label key-recovery
  iranpki escrow list
"""

from __future__ import annotations

import click

from .common import home_option, json_option, pin_source, workspace
from .handling import HandledGroup
from .render import console, emit_json, table, when


@click.group(cls=HandledGroup)
def escrow() -> None:
    """The key-recovery key: subscribers' encryption keys are archived to it and recovered with it."""


@escrow.command("init")
@click.option("--token", required=True, help="Label of the token (the CA's) that will hold the key-recovery key.")
@click.option("--label", default="key-recovery", show_default=True, help="Label of the key on the token.")
@click.option("--name", default=None, help="Name of the key in the store (default: the label).")
@click.option("--curve", type=click.Choice(["P-256", "P-384"]), default="P-256", show_default=True)
@home_option
@json_option
def init(token: str, label: str, name: str | None, curve: str, home: str, as_json: bool) -> None:
    """Make the key-recovery key on the token (EC, for key agreement only, never extractable; it
    cannot sign) and register its public key: from now on the RA archives the keys of the
    profiles the CP escrows to it. The user PIN comes from IRANPKI_PKCS11_PIN or a prompt."""
    record = workspace(home).create_recovery_key(token, label, name=name, curve=curve, secret=pin_source())
    out = {"name": record.name, "key": record.key, "public_key_sha256": record.sha256,
           "registered_at": record.registered_at.isoformat()}
    if as_json:
        emit_json(out)
    else:
        console.print(f"key-recovery key {record.name} made on token {token} ({curve}): {record.key}\n"
                      f"public key SHA-256 {record.sha256}; the RA archives to it from now on", highlight=False)


@escrow.command("list")
@home_option
@json_option
def list_keys(home: str, as_json: bool) -> None:
    """The key-recovery keys, the one archived to (the newest) first."""
    keys = workspace(home).store.recovery_keys()
    rows = [{"name": k.name, "key": k.key, "public_key_sha256": k.sha256, "registered_at": k.registered_at.isoformat(),
             "archived_to": i == 0} for i, k in enumerate(keys)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        console.print("no key-recovery key yet: iranpki escrow init --token TOKEN", highlight=False)
        return
    table("key-recovery keys", ["name", "key", "public key SHA-256", "registered", "archived to"],
          [[r["name"], r["key"], r["public_key_sha256"][:16] + "...", when(k.registered_at),
            "yes" if r["archived_to"] else ""] for r, k in zip(rows, keys)])

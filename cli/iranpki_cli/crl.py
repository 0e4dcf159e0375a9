"""`iranpki crl generate|list|publish`."""

from __future__ import annotations

import click

from iranpki.store import CrlRecord

from .common import home_option, json_option, key_secrets, workspace
from .handling import HandledGroup
from .render import console, emit_json, iso, progress_counter, table, when


@click.group(cls=HandledGroup)
def crl() -> None:
    """Certificate revocation lists (RFC 5280): complete, delta and partitioned CRLs.

    \b
    Example:
      iranpki crl generate --ca gica2               # every shard's complete CRL
      iranpki crl generate --ca gica2 --delta       # delta CRLs against the newest complete ones
      iranpki crl publish --to /srv/repository      # CA certificates and newest CRLs, as the URLs say
    """


def _info(r: CrlRecord) -> dict:
    return {"ca": r.ca, "number": r.number, "kind": r.kind, "shard": r.shard, "base_number": r.base_number,
            "this_update": iso(r.this_update), "next_update": iso(r.next_update), "entries": r.entries,
            "sha256": r.sha256, "path": r.path}


def _table(title: str, records: list[CrlRecord]) -> None:
    table(title, ["CA", "number", "kind", "shard", "entries", "this update", "next update", "file"],
          [[r.ca, str(r.number), r.kind + (f" (base {r.base_number})" if r.base_number else ""),
            "-" if r.shard is None else str(r.shard), str(r.entries), when(r.this_update), when(r.next_update),
            r.path.rsplit("/", 1)[-1]] for r in records])


@crl.command()
@home_option
@click.option("--ca", "ca_name", required=True, help="The CA whose CRL to generate.")
@click.option("--delta", is_flag=True, help="A delta CRL against the newest complete CRL (RFC 5280 5.2.4).")
@click.option("--shard", type=int, default=None, help="Only this shard of a partitioned CA (default: all).")
@click.option("--due", is_flag=True,
              help="Only if the complete CRLs are due: a status change since the newest one, none yet, or past "
                   "half its validity. Run it from cron hourly: every revocation is then on a complete CRL, which "
                   "relying parties that read no delta CRLs see, within the hour.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False), default=None,
              help="Passphrase of a software CA key (else IRANPKI_KEY_PASSPHRASE or a prompt).")
@json_option
def generate(home: str, ca_name: str, delta: bool, shard: int | None, due: bool, passphrase_file: str | None,
             as_json: bool) -> None:
    """Generate, sign and record the CA's CRL (each shard's, unless --shard names one). On a
    terminal, a running count of the entries shows while it works.

    \b
    Example:
      iranpki crl generate --ca gica2
      iranpki crl generate --ca gica2 --delta --json
      iranpki crl generate --ca gica2 --due          # from cron, hourly
    """
    if due and (delta or shard is not None):
        raise click.UsageError("--due decides on the complete CRLs of every shard; leave out --delta and --shard")
    if due:
        why = workspace(home).crl_due(ca_name)
        if why is None:
            if as_json:
                emit_json([])
            else:
                console.print(f"the complete CRLs of {ca_name} are not due: nothing changed since them and they are "
                              "within the first half of their validity", highlight=False)
            return
        if not as_json:
            console.print(f"the complete CRLs of {ca_name} are due: {why}", highlight=False)
    with progress_counter(f"CRL of {ca_name}: revoked entries") as progress:
        done = workspace(home).generate_crls(ca_name, delta=delta, shard=shard, secret=key_secrets(passphrase_file),
                                             progress=progress)
    records = [g.record for g in done]
    if as_json:
        emit_json([_info(r) for r in records])
    else:
        _table(f"CRLs generated for {ca_name}", records)


@crl.command("list")
@home_option
@click.option("--ca", "ca_name", default=None, help="Only this CA's CRLs.")
@json_option
def list_(home: str, ca_name: str | None, as_json: bool) -> None:
    """List the CRLs the workspace generated (the register in the store).

    \b
    Example:
      iranpki crl list --ca gica2
    """
    records = workspace(home).store.list_crls(ca_name)
    if as_json:
        emit_json([_info(r) for r in records])
    else:
        _table("CRLs", records)


@crl.command()
@home_option
@click.option("--to", "target", required=True, type=click.Path(file_okay=False),
              help="The repository folder the web server serves at the repository URL.")
@click.option("--ca", "ca_names", multiple=True, help="Only these CAs (repeatable; default: all).")
@json_option
def publish(home: str, target: str, ca_names: tuple[str, ...], as_json: bool) -> None:
    """Write the CA certificates and the newest CRLs into the repository folder, laid out as the
    URLs in the certificates say (certs/NAME.crt, crl/NAME[-K].crl, crl/NAME[-K]-delta.crl).
    Each file is replaced atomically: a reader never sees half of one.

    \b
    Example:
      iranpki crl publish --to /srv/repository
      iranpki crl publish --to /srv/repository --ca gica2 --json
    """
    done = workspace(home).publish(target, list(ca_names) or None)
    if as_json:
        emit_json([{"path": p, "what": w} for p, w in done])
    else:
        table(f"Published to {target}", ["file", "what"], [[p, w] for p, w in done])

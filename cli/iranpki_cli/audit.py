"""`iranpki audit`: the tamper-evident audit log (iranpki.audit, docs/audit.md).

\b
Example (the audit key on the CA's token):
  iranpki key generate --token GICA --label audit --algorithm p256
  iranpki audit checkpoint --key 'pkcs11:token=GICA;object=audit' --out cp-1.txt
  iranpki audit verify --checkpoint cp-1.txt
  iranpki audit prove 42 --out proof.json
  iranpki audit check-proof proof.json --checkpoint cp-1.txt --vkey "$(cat audit.vkey)"
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import click

from iranpki import audit as audit_log

from .common import home_option, json_option, key_secrets, workspace
from .handling import HandledGroup
from .render import console, emit_json, table, when

_FILE = click.Path(exists=True, dir_okay=False)


@click.group(cls=HandledGroup)
def audit() -> None:
    """The audit log as a Merkle tree: checkpoints, verification, proofs for inspectors."""


def _write_new(path: str, text: str) -> None:
    """Write a file that must not exist yet (evidence is never overwritten)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise click.UsageError(f"{path} exists; evidence is never overwritten: choose another name") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _origin(ws) -> str:  # noqa: ANN001 - a Workspace
    roots = [c.name for c in ws.store.list_cas() if c.kind == "root"]
    return f"iranpki.audit/{roots[0] if roots else Path(ws.home).name}".replace(" ", "-")


@audit.command("checkpoint")
@click.option("--key", "key_ref", required=True, help="The audit key (ECDSA P-256 or P-384): a PKCS#11 URI or a key file.")
@click.option("--origin", default=None, help="The log's name in the note (default iranpki.audit/ROOT-CA-NAME).")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Also write the signed note here (new file).")
@click.option("--passphrase-file", type=_FILE, default=None, help="Passphrase of a software audit key.")
@click.option("--tsa", "tsa_url", default=None,
              help="Also have the note time-stamped by this TSA (RFC 3161): the reply goes to OUT.tsr (needs --out).")
@home_option
@json_option
def checkpoint(key_ref: str, origin: str | None, out: str | None, passphrase_file: str | None, tsa_url: str | None,
               home: str, as_json: bool) -> None:
    """Verify the log, then sign a checkpoint of it (size, root hash, time) with the audit key
    and keep it; give it to the inspector, who keeps it apart from the CA. With --tsa, a TSA
    vouches for the time too (`openssl ts -verify -data OUT -in OUT.tsr` checks it)."""
    if tsa_url and not out:
        raise click.UsageError("--tsa writes the time-stamp beside the note: give --out as well")
    if out and (Path(out).exists() or (tsa_url and Path(out + ".tsr").exists())):
        raise click.UsageError(f"{out} (or {out}.tsr) exists; evidence is never overwritten: choose another name")
    ws = workspace(home)
    with ws.open_key(key_ref, key_secrets(passphrase_file)) as signer:
        note = audit_log.checkpoint(ws.store, signer, origin or _origin(ws))
    stamped = None
    if tsa_url:  # asked first: a TSA that fails leaves no file behind, and a rerun may go on
        import hashlib

        from iranpki.tsa.client import fetch_stamp

        stamp = fetch_stamp(tsa_url, hashlib.sha256(note.encode("utf-8")).digest())
        fd = os.open(f"{out}.tsr", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(stamp.reply)
        stamped = stamp.gen_time.isoformat()
    if out:
        _write_new(out, note)
    vkey = ws.store.get_meta(audit_log.VKEY_META)
    if as_json:
        emit_json({"note": note, "vkey": vkey, "out": out, "time_stamped_at": stamped})
    else:
        click.echo(note, nl=False)
        console.print(f"verifier key (give it to inspectors once): {vkey}", highlight=False, soft_wrap=True)


@audit.command("vkey")
@home_option
def vkey(home: str) -> None:
    """The verifier key of this store's checkpoints (name+keyid+key)."""
    found = workspace(home).store.get_meta(audit_log.VKEY_META)
    if not found:
        raise click.ClickException("no checkpoint was made yet: iranpki audit checkpoint --key ... makes the first")
    click.echo(found)


@audit.command("verify")
@click.option("--checkpoint", "notes", multiple=True, type=_FILE, help="A checkpoint an inspector kept (repeatable).")
@click.option("--vkey", default=None, help="The verifier key to trust (default: the store's; an inspector gives his own).")
@home_option
@json_option
def verify(notes: tuple[str, ...], vkey: str | None, home: str, as_json: bool) -> None:
    """Recompute the tree from every event and check it against the checkpoints: an edited,
    deleted, inserted, reordered or cut-off event is found, at its position. Exit 1 if so."""
    ws = workspace(home)
    result = audit_log.verify_store(ws.store, vkey, [Path(n).read_text(encoding="utf-8") for n in notes])
    info = {"ok": result.ok, "events": result.events, "root": result.root.hex(), "checkpoints": result.checkpoints,
            "first_bad": result.first_bad, "problems": [{"position": p.position, "what": p.what} for p in result.problems]}
    if as_json:
        emit_json(info)
    elif result.ok:
        console.print(f"audit log verified: {result.events} events, root {result.root.hex()}, "
                      f"{len(result.checkpoints)} checkpoint(s) hold", highlight=False)
    else:
        for p in result.problems:
            console.print(f"[bold red]event {p.position}[/]: {p.what}", highlight=False)
    if not result.ok:
        raise click.exceptions.Exit(1)


@audit.command("prove")
@click.argument("seq", type=click.IntRange(1))
@click.option("--size", type=click.IntRange(1), default=None, help="The tree's size (a checkpoint's); default: all.")
@click.option("--out", default=None, type=click.Path(dir_okay=False))
@home_option
def prove(seq: int, size: int | None, out: str | None, home: str) -> None:
    """The inclusion proof of event SEQ (RFC 9162), with the event's data, as JSON."""
    text = json.dumps(audit_log.prove(workspace(home).store, seq, size), ensure_ascii=False, indent=1) + "\n"
    _write_new(out, text) if out else click.echo(text, nl=False)


@audit.command("consistency")
@click.argument("old", type=click.IntRange(1))
@click.argument("new", type=click.IntRange(1))
@click.option("--out", default=None, type=click.Path(dir_okay=False))
@home_option
def consistency(old: int, new: int, out: str | None, home: str) -> None:
    """The consistency proof from the tree of OLD events to that of NEW (RFC 9162), as JSON."""
    text = json.dumps(audit_log.prove_consistency(workspace(home).store, old, new), indent=1) + "\n"
    _write_new(out, text) if out else click.echo(text, nl=False)


@audit.command("check-proof")
@click.argument("proof", type=_FILE)
@click.option("--checkpoint", "note", required=True, type=_FILE, help="The checkpoint the proof leads to.")
@click.option("--old-checkpoint", "old_note", type=_FILE, default=None,
              help="For a consistency proof: the older checkpoint the inspector kept.")
@click.option("--vkey", required=True, help="The audit verifier key the inspector trusts.")
def check_proof(proof: str, note: str, old_note: str | None, vkey: str) -> None:
    """Check a proof offline, with no store: an event is in the signed log, or the log grew
    append-only from an old checkpoint to a new one. Exit 1 if it does not hold."""
    try:
        said = audit_log.check_proof(json.loads(Path(proof).read_text(encoding="utf-8")), vkey,
                                 Path(note).read_text(encoding="utf-8"),
                                 Path(old_note).read_text(encoding="utf-8") if old_note else None)
    except (audit_log.ProofError, KeyError, TypeError, ValueError) as exc:
        console.print(f"[bold red]refused[/]: {exc}", highlight=False)
        raise click.exceptions.Exit(1) from None
    console.print(f"ok: {said}", highlight=False)


@audit.command("export")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day (UTC).")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day (UTC).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The bundle (JSON) to write; new file.")
@click.option("--key", "key_ref", required=True, help="The audit key, which signs a checkpoint for the bundle.")
@click.option("--passphrase-file", type=_FILE, default=None)
@home_option
def export(start: datetime | None, end: datetime | None, out: str, key_ref: str, passphrase_file: str | None,
           home: str) -> None:
    """The events of a period for an inspection: each with its data and its inclusion proof in a
    checkpoint signed now, with the earlier checkpoints and a consistency proof from each; one
    file `iranpki audit check-bundle` checks offline with the verifier key."""
    from datetime import timedelta

    ws = workspace(home)
    with ws.open_key(key_ref, key_secrets(passphrase_file)) as signer:
        note = audit_log.checkpoint(ws.store, signer, _origin(ws))
    vkey_text = ws.store.get_meta(audit_log.VKEY_META) or ""
    cp = audit_log.open_checkpoint(note, vkey_text)
    leaves = ws.store.audit_leaves(cp.size)
    tree = audit_log.Subtrees(leaves)
    low = start.replace(tzinfo=timezone.utc) if start else None
    high = end.replace(tzinfo=timezone.utc) + timedelta(days=1) if end else None

    def entry(row) -> dict:  # noqa: ANN001
        return {"seq": row[0], "leaf_data": audit_log.leaf_data(*row[:6]).decode("utf-8"),
                "path": [p.hex() for p in audit_log.inclusion_proof(row[0] - 1, leaves, tree)]}

    events, before, after = [], None, None
    for row in ws.store.audit_rows():
        if row[0] > cp.size:
            break
        at = datetime.fromisoformat(row[1])
        if low and at < low:
            before = row  # the last event before the period: shows nothing of it was left out
        elif high and at >= high:
            after = row
            break
        else:
            events.append(entry(row))
    earlier = [{"note": n, "consistency": [p.hex() for p in audit_log.consistency_proof(size, leaves, tree)]}
               for size, _, _, n in ws.store.checkpoints() if 0 < size < cp.size]
    bundle = {"type": "iranpki-audit-bundle", "vkey": vkey_text, "checkpoint": note, "size": cp.size,
              "from": start.date().isoformat() if start else None, "to": end.date().isoformat() if end else None,
              "events": events, "before": entry(before) if before else None, "after": entry(after) if after else None,
              "earlier_checkpoints": earlier}
    _write_new(out, json.dumps(bundle, ensure_ascii=False, indent=1) + "\n")
    console.print(f"{len(events)} events, with proofs in the checkpoint of {cp.size} and {len(earlier)} earlier "
                  f"checkpoint(s) linked: {out}", highlight=False)


@audit.command("check-bundle")
@click.argument("bundle", type=_FILE)
@click.option("--vkey", required=True, help="The audit verifier key the inspector trusts (not the bundle's own).")
def check_bundle(bundle: str, vkey: str) -> None:
    """Check an exported bundle offline: its checkpoint signed by VKEY, every event in it, and
    every earlier checkpoint a prefix of it. Exit 1 if anything does not hold."""
    try:
        data = json.loads(Path(bundle).read_text(encoding="utf-8"))
        cp = audit_log.open_checkpoint(data["checkpoint"], vkey)
        listed = [e for e in (data.get("before"), *data["events"], data.get("after")) if e]
        for e in listed:
            audit_log.check_proof({"type": "inclusion", "seq": e["seq"], "size": cp.size, "leaf_data": e["leaf_data"],
                                   "path": e["path"]}, vkey, data["checkpoint"])
        # Nothing of the period left out: its events follow one another, from the one after the
        # last event before it (or the first) to the one before the first event after it (or the last).
        seqs = [e["seq"] for e in listed]
        first = 1 if data.get("before") is None else None
        if seqs != list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False:
            raise audit_log.ProofError(f"the bundle's events are not one unbroken stretch: {seqs[:8]}...")
        if seqs and first is not None and seqs[0] != 1:
            raise audit_log.ProofError(f"the bundle starts at event {seqs[0]} and names no event before its period")
        if seqs and data.get("after") is None and seqs[-1] != cp.size:
            raise audit_log.ProofError(f"the bundle ends at event {seqs[-1]} of {cp.size} and names no event after "
                                       "its period")
        for old in data["earlier_checkpoints"]:
            o = audit_log.open_checkpoint(old["note"], vkey)
            audit_log.check_consistency(o.size, cp.size, o.root, cp.root, [bytes.fromhex(p) for p in old["consistency"]])
    except (audit_log.ProofError, KeyError, TypeError, ValueError, IndexError) as exc:
        console.print(f"[bold red]refused[/]: {exc}", highlight=False)
        raise click.exceptions.Exit(1) from None
    console.print(f"ok: {len(data['events'])} events in the log of {cp.size} signed at {when(cp.at)}; "
                  f"{len(data['earlier_checkpoints'])} earlier checkpoint(s) are prefixes of it", highlight=False)


@audit.command("show")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="The newest N events.")
@home_option
@json_option
def show(limit: int, home: str, as_json: bool) -> None:
    """The newest events, with their times in the Jalali calendar beside the Gregorian."""
    events = workspace(home).store.audit_log(limit)
    if as_json:
        emit_json([{"seq": s, "at": at.isoformat(), "event": e.event, "subject": e.subject, "actor": e.actor,
                    "details": e.details} for s, at, e in events])
        return
    table("audit log", ["seq", "when", "event", "subject", "actor", "details"],
          [[str(s), when(at), e.event, e.subject, e.actor, json.dumps(e.details, ensure_ascii=False)[:120]]
           for s, at, e in events])


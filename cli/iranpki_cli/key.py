"""`iranpki key generate|list`."""

from __future__ import annotations

import click

from iranpki.keys import KeySpec

from .common import home_option, json_option, key_secrets, pin_source, workspace
from .handling import HandledGroup
from .render import console, emit_json, table, when


@click.group(cls=HandledGroup)
def key() -> None:
    """Key pairs on tokens (PKCS#11) or in encrypted software files.

    \b
    Example:
      IRANPKI_PKCS11_PIN=... iranpki key generate --token "CA Token" --label gica2 --algorithm p384
      iranpki key list --token "CA Token"
    """


@key.command()
@home_option
@click.option("--algorithm", "-a", required=True, help="rsa2048, rsa3072, rsa4096, p256 or p384.")
@click.option("--label", required=True, help="Name of the key (token object label or file name).")
@click.option("--token", default=None, help="Token label; without it the key is a software key (level 1 only).")
@click.option("--passphrase-file", type=click.Path(dir_okay=False), default=None,
              help="File whose first line is the software key's passphrase (else IRANPKI_KEY_PASSPHRASE or a prompt).")
@click.option("--pubout", type=click.Path(dir_okay=False), default=None,
              help="Also write the public key here (PEM), e.g. for `iranpki cert issue --public-key`.")
@click.option("--backup", is_flag=True,
              help="On a token: make the key so that it can be backed up M of N (`iranpki key backup`): still "
                   "sensitive, wrappable only under a key the security officer trusts. Without it the key can never "
                   "leave the token.")
@json_option
def generate(home: str, algorithm: str, label: str, token: str | None, passphrase_file: str | None,
             pubout: str | None, backup: bool, as_json: bool) -> None:
    """Generate a key pair: private, sensitive and non-extractable on a token.

    \b
    Example:
      iranpki key generate --token "Root CA" --label root-g3 --algorithm rsa4096
      iranpki key generate --label tsa-2026 --algorithm p256 --pubout tsa.pub   # software key
    """
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spec = KeySpec.parse(algorithm)
    ws = workspace(home)
    if backup and not token:
        raise click.UsageError("--backup is for a key on a token; a software key is backed up as its encrypted file")
    signer = ws.generate_key(spec, label=label, token=token,
                             secret=pin_source() if token else key_secrets(passphrase_file), backup=backup)
    public_pem = signer.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    if pubout:
        with open(pubout, "wb") as f:
            f.write(public_pem)
    if as_json:
        emit_json({"reference": str(signer.reference), "algorithm": str(spec), "label": label,
                   "public_key": public_pem.decode("ascii")})
    else:
        console.print(f"generated {spec} key [bold]{label}[/]\nreference: {signer.reference}", highlight=False)


@key.command("list")
@home_option
@click.option("--token", default=None, help="Also list the private keys present on this token (needs the PIN).")
@json_option
def list_(home: str, token: str | None, as_json: bool) -> None:
    """List the keys recorded in the workspace, or the keys on a token.

    \b
    Example:
      iranpki key list
      iranpki key list --token GICA --json
    """
    ws = workspace(home)
    if token:
        from iranpki.keys.pkcs11 import list_keys

        keys = list_keys(token, module=ws.config.pkcs11_module, pin=pin_source())
        if as_json:
            emit_json([{**k.__dict__, "id": k.id.hex()} for k in keys])
            return
        table(f"Private keys on token {token!r}", ["label", "id", "algorithm", "sensitive", "extractable", "uri"],
              [[k.label, k.id.hex(), k.key_spec, str(k.sensitive), str(k.extractable), k.uri] for k in keys])
        return
    records = ws.store.list_key_records()
    if as_json:
        emit_json([{**r.__dict__, "created_at": r.created_at.isoformat()} for r in records])
        return
    table("Keys recorded in the workspace", ["label", "backend", "algorithm", "created", "reference"],
          [[r.label, r.backend, r.key_spec, when(r.created_at), r.reference] for r in records])


_FILE = click.Path(exists=True, dir_okay=False)


def _so_pin():  # noqa: ANN202 - a SecretSource
    from iranpki.keys import SecretSource

    from .common import _prompt

    return SecretSource(env="IRANPKI_PKCS11_SO_PIN", prompt=_prompt, what="security officer PIN")


@key.command("backup")
@click.argument("key_ref")
@click.option("--custodian", "custodians", multiple=True, required=True, type=_FILE,
              help="A custodian's RSA certificate (PEM), to which their share is encrypted (repeatable, 2 to 16).")
@click.option("--threshold", "-m", type=click.IntRange(2, 16), required=True, help="How many custodians restore it.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="A new folder for the backup.")
@home_option
@json_option
def backup_command(key_ref: str, custodians: tuple[str, ...], threshold: int, out: str, home: str,
                   as_json: bool) -> None:
    """Back up a token key M of N: wrapped on the token under a fresh key-encryption key, which
    is split among the custodians, each share encrypted to one custodian's certificate. The
    security officer's PIN (IRANPKI_PKCS11_SO_PIN or a prompt) marks that key trusted for the wrap.

    \b
    Example:
      iranpki key backup 'pkcs11:token=Root CA;object=root-g4' -m 2 --custodian a.pem --custodian b.pem \\
          --custodian c.pem --out backup-root-g4
    """
    from pathlib import Path

    from iranpki.keys.backup import backup_key
    from iranpki.store import AuditEvent

    ws = workspace(home)
    done = backup_key(key_ref, [Path(c).read_bytes() for c in custodians], threshold, out, pin=pin_source(),
                      so_pin=_so_pin(), module=ws.config.pkcs11_module)
    ws.store.add_audit_event(AuditEvent("key.backup", key_ref, "operator", {
        "backup": done.backup_id, "threshold": threshold, "custodians": len(custodians),
        "public_key_sha256": done.spki_sha256}))
    info = {"backup": done.backup_id, "folder": str(done.folder), "threshold": threshold,
            "custodians": len(custodians), "public_key_sha256": done.spki_sha256}
    emit_json(info) if as_json else console.print(
        f"backup {done.backup_id}: {done.folder} ({threshold} of {len(custodians)} custodians restore it)",
        highlight=False)


@key.command("share-open")
@click.argument("share", type=_FILE)
@click.option("--certificate", required=True, type=_FILE, help="The custodian's certificate (PEM).")
@click.option("--key", "key_file", required=True, type=_FILE, help="The custodian's private key (PEM, encrypted).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The opened share (a new file, 0600).")
@click.option("--passphrase-file", type=_FILE, default=None)
def share_open(share: str, certificate: str, key_file: str, out: str, passphrase_file: str | None) -> None:
    """A custodian opens their share with their key, for a restore or a PIN join. (openssl cms
    -decrypt does the same.)"""
    import os
    from pathlib import Path

    from iranpki.keys.backup import open_share

    from .common import secret_source

    text = Path(key_file).read_bytes()
    passphrase = None if b"ENCRYPTED" not in text else secret_source(passphrase_file).get(key_file).encode()
    opened = open_share(Path(share).read_bytes(), Path(certificate).read_bytes(), text, passphrase)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(opened)
    console.print(f"share opened: {out} (give it to the restore, then destroy it)", highlight=False)


@key.command("restore")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--share", "shares", multiple=True, required=True, type=_FILE, help="An opened share (repeatable).")
@click.option("--token", required=True, help="The token to restore onto (a fresh one).")
@click.option("--label", default=None, help="The restored key's label (default: the backed-up key's).")
@home_option
@json_option
def restore(folder: str, shares: tuple[str, ...], token: str, label: str | None, home: str, as_json: bool) -> None:
    """Restore a backed-up key onto a token with M custodians' opened shares; its public key is
    compared with the one backed up, and it must sign what that public key verifies."""
    from pathlib import Path

    from iranpki.keys.backup import restore_key
    from iranpki.store import AuditEvent

    ws = workspace(home)
    uri = restore_key(folder, [Path(s).read_bytes() for s in shares], token, pin=pin_source(), label=label,
                      module=ws.config.pkcs11_module)
    ws.store.add_audit_event(AuditEvent("key.restored", uri, "operator", {"backup": Path(folder).name,
                                                                        "shares": len(shares)}))
    emit_json({"key": uri}) if as_json else console.print(f"restored and checked: {uri}", highlight=False)

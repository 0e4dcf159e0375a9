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
@json_option
def generate(home: str, algorithm: str, label: str, token: str | None, passphrase_file: str | None,
             pubout: str | None, as_json: bool) -> None:
    """Generate a key pair: private, sensitive and non-extractable on a token.

    \b
    Example:
      iranpki key generate --token "Root CA" --label root-g3 --algorithm rsa4096
      iranpki key generate --label tsa-2026 --algorithm p256 --pubout tsa.pub   # software key
    """
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spec = KeySpec.parse(algorithm)
    ws = workspace(home)
    signer = ws.generate_key(spec, label=label, token=token,
                             secret=pin_source() if token else key_secrets(passphrase_file))
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

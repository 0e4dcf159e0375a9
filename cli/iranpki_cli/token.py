"""`iranpki token list`."""

from __future__ import annotations

import click

from iranpki.keys import SecretSource
from iranpki.keys.pkcs11 import list_tokens

from .common import _prompt, json_option, pin_source
from .handling import HandledGroup
from .render import console, emit_json, table


@click.group(cls=HandledGroup)
def token() -> None:
    """PKCS#11 tokens and HSMs.

    \b
    Example:
      iranpki token list --module /usr/lib/softhsm/libsofthsm2.so
    """


@token.command("list")
@click.option("--module", default=None, help="PKCS#11 module (default: IRANPKI_PKCS11_MODULE or SoftHSM2).")
@json_option
def list_(module: str | None, as_json: bool) -> None:
    """List the tokens the module sees (no login needed).

    \b
    Example:
      iranpki token list
      iranpki token list --json
    """
    tokens = list_tokens(module)
    if as_json:
        emit_json([t.__dict__ for t in tokens])
        return
    table("Tokens", ["label", "manufacturer", "model", "serial", "slot", "PIN locked"],
          [[t.label, t.manufacturer, t.model, t.serial, str(t.slot), "yes" if t.user_pin_locked else "no"]
           for t in tokens])


@token.command()
@click.option("--label", required=True, help="Label of the new token (at most 32 bytes).")
@click.option("--module", default=None, help="PKCS#11 module (default: IRANPKI_PKCS11_MODULE or SoftHSM2).")
@json_option
def init(label: str, module: str | None, as_json: bool) -> None:
    """Initialise a free token and set its user PIN.

    The security officer PIN comes from IRANPKI_PKCS11_SO_PIN and the user PIN from
    IRANPKI_PKCS11_PIN, or from prompts; never from the command line.

    \b
    Example:
      export IRANPKI_PKCS11_SO_PIN=... IRANPKI_PKCS11_PIN=...
      iranpki token init --label "Root CA"
    """
    from iranpki.keys.pkcs11 import init_token

    info = init_token(label, SecretSource(env="IRANPKI_PKCS11_SO_PIN", prompt=_prompt, what="SO PIN"),
                      pin_source(), module=module)
    if as_json:
        emit_json(info.__dict__)
    else:
        console.print(f"token [bold]{info.label}[/] initialised (serial {info.serial})", highlight=False)


_FILE = click.Path(exists=True, dir_okay=False)


@token.command("pin-split")
@click.option("--token", "token_label", required=True)
@click.option("--custodian", "custodians", multiple=True, required=True, type=_FILE,
              help="A custodian's RSA certificate (PEM) (repeatable).")
@click.option("--threshold", "-m", type=click.IntRange(2, 16), required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="A new folder for the shares.")
def pin_split(token_label: str, custodians: tuple[str, ...], threshold: int, out: str) -> None:
    """Split the token's user PIN (IRANPKI_PKCS11_PIN or a prompt; checked by logging in) M of N
    among custodians: from now on the key is activated only when M of them join
    (`iranpki token pin-join`). Change the PIN first, so that nobody knows it whole."""
    from pathlib import Path

    from iranpki.keys.backup import split_pin
    from iranpki.keys.pkcs11 import list_keys

    from .common import pin_source

    source = pin_source()
    value = source.get(f"token {token_label!r}")
    list_keys(token_label, pin=SecretSource(prompt=lambda _: value))  # a wrong PIN is refused here
    folder = split_pin(value, [Path(c).read_bytes() for c in custodians], threshold, out, token=token_label)
    click.echo(f"the PIN of token {token_label!r} is split {threshold} of {len(custodians)}: {folder}")


@token.command("pin-join", context_settings={"ignore_unknown_options": True})
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--share", "shares", multiple=True, required=True, type=_FILE, help="An opened share (repeatable).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def pin_join(folder: str, shares: tuple[str, ...], command: tuple[str, ...]) -> None:
    """Activate the key for one command: M custodians' shares give the PIN, which the command
    gets in IRANPKI_PKCS11_PIN (never on a command line); fewer, wrong or corrupted shares are
    refused.

    \b
    Example:
      iranpki token pin-join pin-root --share a.json --share b.json -- iranpki crl generate --ca root
    """
    import os
    import subprocess
    from pathlib import Path

    from iranpki.keys.backup import join_pin

    token_label, value = join_pin(folder, [Path(s).read_bytes() for s in shares])
    env = {**os.environ, "IRANPKI_PKCS11_PIN": value}
    raise SystemExit(subprocess.call(list(command), env=env))

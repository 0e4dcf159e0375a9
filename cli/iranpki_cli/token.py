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

"""What every command shares: the workspace option, secrets, certificate output and the relying
party's trust. Errors are turned into messages in handling.py."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from iranpki.keys import PASSPHRASE_ENV, PIN_ENV, KeySecrets, SecretSource
from iranpki.workspace import HOME_ENV, Workspace

F = TypeVar("F", bound=Callable[..., Any])

home_option = click.option(
    "--home", type=click.Path(file_okay=False), envvar=HOME_ENV, default=".", show_default=True,
    help=f"The workspace folder made by `iranpki init` (or set {HOME_ENV}).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")


def _prompt(what: str) -> str:
    if not sys.stdin.isatty():
        raise click.UsageError(f"no {what} given and no terminal to ask on; set it in the environment")
    return click.prompt(what, hide_input=True, err=True)


def pin_source() -> SecretSource:
    """The token user PIN: from IRANPKI_PKCS11_PIN, else a prompt. Never an argument."""
    return SecretSource(env=PIN_ENV, prompt=_prompt, what="user PIN")


def secret_source(passphrase_file: str | None = None) -> SecretSource:
    """A software key's passphrase: from a file, IRANPKI_KEY_PASSPHRASE, else a prompt."""
    return SecretSource(env=PASSPHRASE_ENV, file=passphrase_file, prompt=_prompt, what="passphrase")


def key_secrets(passphrase_file: str | None = None) -> KeySecrets:
    """The PIN and the passphrase offered to open a key: its backend takes the kind it needs."""
    return KeySecrets(pin=pin_source(), passphrase=secret_source(passphrase_file))


def workspace(home: str) -> Workspace:
    return Workspace.open(home)


def relying_party_workspace(home: str | None) -> Workspace | None:
    """The workspace a relying-party command (verify, tsa stamp, sign) trusts besides the national
    root: the one named by --home or IRANPKI_HOME, else one in the current folder, else none."""
    from pathlib import Path

    from iranpki.workspace import CONFIG_NAME

    if home is not None:
        return Workspace.open(home)
    return Workspace.open(".") if (Path(".") / CONFIG_NAME).exists() else None


def relying_party_roots(home: str | None, trust_files: tuple[str, ...] = ()) -> list[bytes]:
    """The one trust rule (iranpki.validation.relying_party_roots): --trust files replace the
    default, which is the national root and the workspace's root CAs."""
    from iranpki.validation import relying_party_roots as rule

    explicit = [open(f, "rb").read() for f in trust_files] or None  # noqa: SIM115 - small files
    if explicit is not None:
        return rule(explicit)  # given roots replace the default: no workspace is opened for it
    ws = relying_party_workspace(home)
    return ws.trust_roots() if ws is not None else rule(None)


def export_options(func: F) -> F:
    """--format, --chain and --out, shared by `ca export` and `cert export`."""
    func = click.option("--out", type=click.Path(dir_okay=False), default=None,
                        help="File to write (default: stdout).")(func)
    func = click.option("--chain", is_flag=True, help="Append the issuing CAs up to the root (PEM only).")(func)
    return click.option("--format", "fmt", type=click.Choice(["pem", "der"]), default="pem",
                        show_default=True)(func)  # type: ignore[return-value]


def write_certificates(ders: list[bytes], fmt: str, out: str | None) -> None:
    """Write one DER certificate, or PEM certificates in order, to ``out`` or stdout."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    if fmt == "der":
        if len(ders) > 1:
            raise click.UsageError("--chain needs --format pem (DER holds one certificate)")
        data = ders[0]
    else:
        data = b"".join(x509.load_der_x509_certificate(d).public_bytes(Encoding.PEM) for d in ders)
    if out:
        with open(out, "wb") as f:
            f.write(data)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


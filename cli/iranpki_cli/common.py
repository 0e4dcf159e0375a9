"""What every command shares: the workspace option, secrets, and turning errors into messages."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.markup import escape

from iranpki.errors import IranPkiError, ProfileViolationError
from iranpki.keys import PASSPHRASE_ENV, SecretSource
from iranpki.keys.pkcs11 import PIN_ENV
from iranpki.workspace import HOME_ENV, Workspace

from .render import err_console

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


class KeySecret(SecretSource):
    """Chooses PIN or passphrase by the key reference it is asked for."""

    def __init__(self, passphrase_file: str | None = None):
        super().__init__()
        self._pin = pin_source()
        self._pass = secret_source(passphrase_file)

    def get(self, for_what: str) -> str:
        return (self._pin if for_what.startswith("token") else self._pass).get(for_what)


def workspace(home: str) -> Workspace:
    return Workspace.open(home)


def handle_errors(func: F) -> F:
    """Library errors become one clear message and exit status 1; a trace only with --verbose."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except IranPkiError as exc:
            ctx = click.get_current_context()
            if ctx.find_root().params.get("verbose"):
                raise
            if isinstance(exc, ProfileViolationError):
                err_console.print(f"[bold red]refused:[/] the request breaks profile {exc.profile!r}:")
                for v in exc.violations:
                    err_console.print(f"  - [bold]{escape(v.attribute)}[/] = {escape(repr(v.value))}: {escape(v.rule)}",
                                      highlight=False)
                err_console.print("Correct the request and submit it again.")
            else:
                err_console.print("[bold red]error:[/] " + escape(str(exc)), highlight=False)
            ctx.exit(1)

    return wrapper  # type: ignore[return-value]



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

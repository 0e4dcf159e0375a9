"""`iranpki ceremony check|run CEREMONY.yaml`: key ceremonies (iranpki.ceremony, docs/ceremonies.md).

\b
Example:
  iranpki ceremony check root-g4.yaml              # read and show it, change nothing
  iranpki ceremony run root-g4.yaml --home ./ca    # carry it out; the transcript is in its outputs
"""

from __future__ import annotations

from pathlib import Path

import click

from iranpki.ceremony import load_ceremony, run

from .common import home_option, json_option, secret_source, workspace
from .handling import HandledGroup
from .render import console, emit_json, fields

_FILE = click.Path(exists=True, dir_okay=False)


@click.group(cls=HandledGroup)
def ceremony() -> None:
    """Key ceremonies driven by one reviewed YAML file, with a signed transcript."""


@ceremony.command("check")
@click.argument("file", type=_FILE)
@json_option
def check(file: str, as_json: bool) -> None:
    """Read a ceremony file and show what it will do; nothing is changed."""
    plan = load_ceremony(Path(file).read_bytes(), file)
    info = plan.model_dump(exclude_none=True)
    if as_json:
        emit_json(info)
    else:
        fields(f"ceremony {plan.id}: {plan.title}", [(k, str(v)) for k, v in info.items()])


@ceremony.command("run")
@click.argument("file", type=_FILE)
@click.option("--passphrase-file", type=_FILE, default=None,
              help="Passphrase of software keys (else IRANPKI_KEY_PASSPHRASE or a prompt); token PINs come from "
                   "IRANPKI_PKCS11_PIN or a prompt.")
@home_option
@json_option
def run_command(file: str, passphrase_file: str | None, home: str, as_json: bool) -> None:
    """Carry out the ceremony: lint a throwaway copy, sign on the token, lint and verify again,
    write the outputs and the transcript signed by the ceremony's officer, record it in the
    audit log. Outputs go to a new folder; nothing is overwritten."""
    import hashlib

    source = Path(file).read_bytes()
    plan = load_ceremony(source, file)
    ws = workspace(home)
    secret = secret_source(passphrase_file)
    out = run(ws, plan, source, base=Path(file).resolve().parent, secret=secret, officer_secret=secret)
    transcript = (out / "transcript.json").read_bytes()
    info = {"ceremony": plan.id, "outputs": str(out), "transcript_sha256": hashlib.sha256(transcript).hexdigest(),
            "files": sorted(p.name for p in out.iterdir())}
    if as_json:
        emit_json(info)
    else:
        console.print(f"ceremony {plan.id} done: {out}", highlight=False)
        for name in info["files"]:
            console.print(f"  {name}", highlight=False)

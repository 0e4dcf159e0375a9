"""`iranpki conformance sign-report|approve|verify-report`: the lab's signatures over a report.

\b
Example (the lab's key on a token, its organisational-seal certificate):
  export IRANPKI_PKCS11_PIN=...
  iranpki conformance sign-report out/report.json --key 'pkcs11:token=Lab;object=seal' \\
      --cert lab.pem --chain gica2.pem --out out/report.json.p7s
  iranpki conformance approve out/report.json --key 'pkcs11:token=Lab;object=seal' \\
      --cert lab.pem --chain gica2.pem --days 365 --out approval.p7m
  iranpki conformance verify-report out/report.json --approval approval.p7m \\
      --module /usr/lib/vendor/libpkcs11.so --trust root.pem
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from iranpki.conformance import attestation
from iranpki.inputs import load_asn1_certificates

from .common import json_option
from .handling import HandledCommand
from .render import emit_json, err_console, table
from .sign import _chain, _done, _key_options, _open, _scheme, _subject

__all__ = ["approve", "register", "sign_report", "verify_report"]

_FILE = click.Path(exists=True, dir_okay=False)


@click.command("sign-report", cls=HandledCommand)
@click.argument("report", type=_FILE)
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="The detached signature (DER) to write; default REPORT.p7s beside the report.")
@_key_options
def sign_report(report: str, out: str | None, key_ref: str, cert_file: str, chain_files: tuple[str, ...],
                passphrase_file: str | None, signature: str | None, home: str | None, as_json: bool) -> None:
    """Sign a report.json with the lab's key (detached CMS over its exact bytes).

    \b
    Example:
      iranpki conformance sign-report out/report.json --key lab.key --cert lab.pem --chain gica1.pem
    Check it with: openssl cms -verify -binary -inform DER -in out/report.json.p7s \\
      -content out/report.json -CAfile root.pem -purpose any
    """
    cert = Path(cert_file).read_bytes()
    out = out or report + ".p7s"
    with _open(key_ref, passphrase_file, home) as signer:
        data = attestation.sign_report(Path(report).read_bytes(), signer, cert, _chain(chain_files),
                                       scheme=_scheme(signature))
    Path(out).write_bytes(data)
    _done(as_json, "Report signed", {"out": out, "report": report, "signer": _subject(cert), "bytes": len(data)})


@click.command(cls=HandledCommand)
@click.argument("report", type=_FILE)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The approval (.p7m, DER) to write.")
@click.option("--days", "valid_days", type=click.IntRange(1, attestation.MAX_VALID_DAYS), default=365,
              show_default=True, help="How long the approval is valid, from now.")
@click.option("--id", "approval_id", default=None, help="The approval number (default: a random UUID).")
@_key_options
def approve(report: str, out: str, valid_days: int, approval_id: str | None, key_ref: str, cert_file: str,
            chain_files: tuple[str, ...], passphrase_file: str | None, signature: str | None, home: str | None,
            as_json: bool) -> None:
    """Issue the approval certificate for a report with no failed or erred case.

    The approval is CMS SignedData holding JSON that names the module (file, SHA-256, library
    and token), the report's SHA-256 and summary, the validity period and the lab.

    \b
    Example:
      iranpki conformance approve out/report.json --key 'pkcs11:token=Lab;object=seal' \\
          --cert lab.pem --chain gica2.pem --days 365 --out approval.p7m
    """
    cert = Path(cert_file).read_bytes()
    with _open(key_ref, passphrase_file, home) as signer:
        data = attestation.approve(Path(report).read_bytes(), signer, cert, _chain(chain_files),
                                   valid_days=valid_days, approval_id=approval_id, scheme=_scheme(signature))
    Path(out).write_bytes(data)
    _done(as_json, "Approval issued", {"out": out, "report": report, "valid_days": valid_days,
                                       "signer": _subject(cert), "bytes": len(data)})


@click.command("verify-report", cls=HandledCommand)
@click.argument("report", type=_FILE)
@click.option("--signature", "signature_file", type=_FILE, default=None,
              help="The lab's detached signature (default: REPORT.p7s beside the report, if present).")
@click.option("--approval", "approval_file", type=_FILE, default=None, help="An approval (.p7m) to check as well.")
@click.option("--module", "module_path", type=_FILE, default=None,
              help="The PKCS#11 module file: its SHA-256 must be the one the approval names.")
@click.option("--trust", "trust_files", multiple=True, type=_FILE,
              help="Trust root(s) (PEM or DER); default the national root shipped with iranpki.")
@json_option
def verify_report(report: str, signature_file: str | None, approval_file: str | None, module_path: str | None,
                  trust_files: tuple[str, ...], as_json: bool) -> None:
    """Verify a report's signature and/or approval; exit 0 when everything given verifies, else 1.

    \b
    Example:
      iranpki conformance verify-report report.json --approval approval.p7m \\
          --module /usr/lib/vendor/libpkcs11.so --trust root.pem --json
    """
    if signature_file is None and Path(report + ".p7s").is_file():
        signature_file = report + ".p7s"
    if signature_file is None and approval_file is None:
        raise click.UsageError(f"nothing to verify: no {report}.p7s beside the report; give --signature or --approval")
    if module_path is not None and approval_file is None:
        raise click.UsageError("--module is checked against an approval; give --approval as well")
    roots = [c.dump() for f in trust_files for c in load_asn1_certificates(Path(f).read_bytes(), f)] or None
    data = Path(report).read_bytes()
    checks: list[dict[str, Any]] = []
    if signature_file is not None:
        try:
            signed = attestation.verify_report(data, Path(signature_file).read_bytes(), roots)
            checks.append({"check": "signature", "file": signature_file, "ok": True, **signed.to_dict()})
        except attestation.AttestationError as exc:
            checks.append({"check": "signature", "file": signature_file, "ok": False, "problems": exc.problems})
    if approval_file is not None:
        try:
            approval = attestation.verify_approval(Path(approval_file).read_bytes(), roots, report_json=data,
                                                   module_path=module_path)
            checks.append({"check": "approval", "file": approval_file, "ok": True, **approval.to_dict()})
        except attestation.AttestationError as exc:
            checks.append({"check": "approval", "file": approval_file, "ok": False, "problems": exc.problems})
    ok = all(c["ok"] for c in checks)
    if as_json:
        emit_json({"ok": ok, "report": report, "checks": checks})
    else:
        rows = [[c["check"], c["file"], "ok" if c["ok"] else "REFUSED", _said(c)] for c in checks]
        table("Report verification", ["check", "file", "result", "details"], rows)
        for c in checks:
            for p in c.get("problems", []):
                err_console.print(f"[bold red]refused:[/] {c['check']}: {escape(p)}", highlight=False)
    if not ok:
        click.get_current_context().exit(1)


def _said(check: dict[str, Any]) -> str:
    if not check["ok"]:
        return "; ".join(check["problems"])
    if check["check"] == "signature":
        return f"signed by {check['signer']}"
    m = check["module"]
    return (f"{check['approval_id']}: {m.get('library_description')} {m.get('library_version')} "
            f"({m.get('file')}), valid until {check['valid_until']}, by {check['lab']}")


def register(group: click.Group) -> None:
    """Add the report commands to the `conformance` group."""
    for command in (sign_report, approve, verify_report):
        group.add_command(command)

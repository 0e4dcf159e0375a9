"""`iranpki cert issue|revoke|list|show|export`."""

from __future__ import annotations

from datetime import datetime

import click
from cryptography import x509

from iranpki.ca import MAX_CSR_BYTES
from iranpki.errors import RequestError
from iranpki.store import CertificateRecord, Reason
from iranpki.workspace import MAX_KEY_FILE

from .common import (
    export_options,
    home_option,
    json_option,
    key_secrets,
    workspace,
    write_certificates,
)
from .handling import HandledGroup
from .render import console, emit_json, fields, iso, table, when

# One byte past the library's limit (MAX_CSR_BYTES, MAX_KEY_FILE: both 64 KiB) is read, so that a
# larger file is refused after 64 KiB + 1 bytes, never read whole.
_MAX_INPUT = max(MAX_CSR_BYTES, MAX_KEY_FILE)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read(_MAX_INPUT + 1)
    if len(data) > _MAX_INPUT:
        raise RequestError(f"{path} is larger than {_MAX_INPUT} bytes; a CSR or public key is a few KiB. "
                           "Check that the file is a certificate request or a public key")
    return data


def _info(r: CertificateRecord) -> dict:
    return {"serial": f"{r.serial:x}", "ca": r.ca, "profile": r.profile, "subject": r.subject,
            "not_before": iso(r.not_before), "not_after": iso(r.not_after), "status": r.status,
            "revoked_at": iso(r.revoked_at), "reason": r.reason.name if r.reason else None,
            "invalidity_date": iso(r.invalidity_date), "sha256": r.fingerprint, "issued_at": iso(r.issued_at)}


@click.group(cls=HandledGroup)
def cert() -> None:
    """End-entity certificates: issue, revoke, list, show, export.

    \b
    Example:
      iranpki cert issue --ca gica2 --profile ssl-server --csr site.csr --out site.pem
      iranpki cert issue --ca gica2 --profile personal-signature --public-key ali.pub \\
          --subject 'C=IR,SN=محمدی,GN=علی,serialNumber=0499370899,CN=علی محمدی'
      iranpki cert revoke 4defad5db85abeaca31fc8679337dda5 --reason keyCompromise
    """


@cert.command()
@home_option
@click.option("--ca", "ca_name", required=True, help="The issuing CA.")
@click.option("--profile", "profile_name", required=True, help="See `iranpki profile list`.")
@click.option("--csr", type=click.Path(exists=True, dir_okay=False), default=None, help="PKCS#10 request (PEM or DER).")
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Public key (PEM or DER) when there is no CSR; give --subject too.")
@click.option("--subject", default=None, help="Subject fields, e.g. 'C=IR,O=...,CN=...' (overrides the CSR's).")
@click.option("--dns", multiple=True, help="DNS subjectAltName (repeatable).")
@click.option("--ip", multiple=True, help="IP subjectAltName (repeatable).")
@click.option("--email", multiple=True, help="rfc822Name subjectAltName (repeatable).")
@click.option("--days", type=int, default=None, help="Validity in days (default: the profile's).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the PEM certificate here.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False), default=None)
@click.option("--publish", is_flag=True,
              help="The subscriber agreed that the certificate be published in the directory (iranpki ldap).")
@json_option
def issue(home: str, ca_name: str, profile_name: str, csr: str | None, public_key: str | None,
          subject: str | None, dns: tuple[str, ...], ip: tuple[str, ...], email: tuple[str, ...], days: int | None,
          out: str | None, passphrase_file: str | None, publish: bool, as_json: bool) -> None:
    """Issue a certificate; it is recorded before it is written out.

    \b
    Example:
      iranpki cert issue --ca gica2 --profile ssl-server --csr site.csr --out site.pem
      iranpki cert issue --ca gica2 --profile personal-signature --public-key ali.pub \\
          --subject 'C=IR,SN=محمدی,GN=علی,serialNumber=0499370899,CN=علی محمدی' --json
    """
    ws = workspace(home)
    issued = ws.issue(ca_name, profile_name, csr=_read(csr) if csr else None,
                      public_key=_read(public_key) if public_key else None, subject=subject,
                      dns=list(dns), ips=list(ip), emails=list(email), validity_days=days,
                      secret=key_secrets(passphrase_file), publish=publish)
    if out:
        with open(out, "wb") as f:
            f.write(issued.pem)
    if as_json:
        emit_json({**_info(issued.record), "pem": issued.pem.decode()})
    elif out:
        console.print(f"issued serial [bold]{issued.record.serial:x}[/] to {out}", highlight=False)
    else:
        click.echo(issued.pem.decode(), nl=False)


@cert.command()
@home_option
@click.argument("serial", metavar="SERIAL|CERT.pem")
@click.option("--reason", required=True, type=click.Choice([r.name for r in Reason], case_sensitive=False),
              help="RFC 5280 CRLReason.")
@click.option("--invalidity-date", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%SZ"]),
              default=None, help="When the key was known or suspected compromised (UTC, e.g. 2026-01-01T00:00:00Z).")
@json_option
def revoke(home: str, serial: str, reason: str, invalidity_date: datetime | None, as_json: bool) -> None:
    """Revoke a certificate, named by its serial (hex) or its certificate file (certificateHold
    can later be made final or lifted with removeFromCRL).

    \b
    Example:
      iranpki cert revoke 6105d201c7bbeff574a885718022dce4 --reason keyCompromise
      iranpki cert revoke site.pem --reason superseded --json
    """
    ws = workspace(home)
    from datetime import timezone

    if invalidity_date is not None and invalidity_date.tzinfo is None:
        invalidity_date = invalidity_date.replace(tzinfo=timezone.utc)
    record = ws.revoke(ws.find_certificate(serial).serial, reason, invalidity_date=invalidity_date)
    if as_json:
        emit_json(_info(record))
    else:
        console.print(f"certificate {record.serial:x}: {record.status}"
                      + (f" since {when(record.revoked_at)} ({record.reason.name})" if record.reason else ""),
                      highlight=False)


@cert.command("list")
@home_option
@click.option("--ca", "ca_name", default=None, help="Only this CA's certificates.")
@click.option("--status", type=click.Choice(["valid", "revoked"]), default=None)
@click.option("--profile", "profile_name", default=None, help="Only certificates of this profile.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
              help="At most this many (a page).")
@click.option("--after", "after_serial", default=None, metavar="SERIAL",
              help="The next page: the certificates listed after this one (the last serial of the previous page).")
@json_option
def list_(home: str, ca_name: str | None, status: str | None, profile_name: str | None, limit: int,
          after_serial: str | None, as_json: bool) -> None:
    """List certificates (oldest first), a page at a time: every page costs the same however many
    certificates the store holds.

    \b
    Example:
      iranpki cert list --ca gica2 --limit 20
      iranpki cert list --ca gica2 --limit 20 --after 6105d201c7bbeff574a885718022dce4   # the next page
      iranpki cert list --status revoked --json
    """
    ws = workspace(home)
    after = ws.find_certificate(after_serial) if after_serial else None
    records = list(ws.store.iter_certificates(ca=ca_name, status=status, profile=profile_name, limit=limit,
                                              after=after))
    if as_json:
        emit_json([_info(r) for r in records])
        return
    table("Certificates", ["serial", "CA", "profile", "subject", "valid until", "status"],
          [[f"{r.serial:x}", r.ca, r.profile, r.subject, when(r.not_after), r.status] for r in records])


@cert.command()
@home_option
@click.argument("serial", metavar="SERIAL|CERT.pem")
@json_option
def show(home: str, serial: str, as_json: bool) -> None:
    """Show one certificate.

    \b
    Example:
      iranpki cert show 6105d201c7bbeff574a885718022dce4
    """
    r = workspace(home).find_certificate(serial)
    if as_json:
        emit_json(_info(r))
        return
    c = x509.load_der_x509_certificate(r.certificate)
    try:
        san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = ", ".join(str(n.value) for n in san)
    except x509.ExtensionNotFound:
        names = "-"
    rows = [("serial", f"{r.serial:x}"), ("issued by CA", r.ca), ("profile", r.profile), ("subject", r.subject),
            ("subjectAltName", names), ("valid from", when(r.not_before)), ("valid until", when(r.not_after)),
            ("status", r.status), ("SHA-256", r.fingerprint), ("issued at", when(r.issued_at))]
    if r.revoked_at:
        rows += [("revoked at", when(r.revoked_at)), ("reason", r.reason.name if r.reason else "-"),
                 ("invalidity date", when(r.invalidity_date))]
    fields("Certificate", rows)


@cert.command()
@home_option
@click.argument("serial", metavar="SERIAL|CERT.pem")
@export_options
def export(home: str, serial: str, fmt: str, chain: bool, out: str | None) -> None:
    """Export a certificate (and its chain).

    \b
    Example:
      iranpki cert export 6105d201c7bbeff574a885718022dce4 --chain --out site-chain.pem
    """
    ws = workspace(home)
    r = ws.find_certificate(serial)
    write_certificates([r.certificate, *(ws.chain(r.ca) if chain else [])], fmt, out)

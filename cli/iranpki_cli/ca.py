"""`iranpki ca create-root|create-intermediate|list|show`."""

from __future__ import annotations

import hashlib

import click
from cryptography import x509

from iranpki.ca import ca_purpose
from iranpki.policy import load_policy
from iranpki.profiles import subject_text
from iranpki.store import CaRecord

from .common import (
    export_options,
    home_option,
    json_option,
    key_secrets,
    workspace,
    write_certificates,
)
from .handling import HandledGroup
from .render import emit_json, fields, iso, table, when

# The national CP's CA purposes (policies/national-cp.yaml, ca_purposes).
PURPOSES = [p.id for p in load_policy().ca_purposes]


@click.group(cls=HandledGroup)
def ca() -> None:
    """Certificate authorities: the root and its intermediates (one per assurance level and purpose).

    \b
    Example:
      iranpki ca create-root --name root --key 'pkcs11:token=Root%20CA;object=root' \\
          --subject 'C=IR,O=I.R.Government,OU=Root CA,CN=Islamic Republic of Iran Root CA-G3'
      iranpki ca create-intermediate --parent root --level 2 --purpose signing --name gica2 \\
          --key 'pkcs11:token=GICA;object=gica2' --subject 'C=IR,O=GICA,CN=General Intermediate CA Level 2'
    """


def _info(r: CaRecord) -> dict:
    cert = x509.load_der_x509_certificate(r.certificate)
    return {"name": r.name, "kind": r.kind, "level": r.level, "purpose": ca_purpose(cert), "parent": r.parent,
            "subject": subject_text(cert.subject), "serial": f"{cert.serial_number:x}",
            "not_before": iso(cert.not_valid_before_utc), "not_after": iso(cert.not_valid_after_utc),
            "key": r.key_reference, "sha256": hashlib.sha256(r.certificate).hexdigest(),
            "repository_url": r.repository_url, "ocsp_url": r.ocsp_url, "signature": r.signature,
            "crl_shards": r.crl_shards}


def _show(r: CaRecord, as_json: bool) -> None:
    info = _info(r)
    if as_json:
        emit_json(info)
        return
    cert = x509.load_der_x509_certificate(r.certificate)
    fields(f"CA {r.name}", [
        ("kind", r.kind + (f", assurance level {r.level}" if r.level else "")
         + (f", for {info['purpose']}" if info["purpose"] else "")),
        ("issued by", r.parent or "(self-signed)"), ("subject", info["subject"]), ("serial", info["serial"]),
        ("valid from", when(cert.not_valid_before_utc)), ("valid until", when(cert.not_valid_after_utc)),
        ("key", r.key_reference), ("signs with", r.signature), ("CRL shards", str(r.crl_shards)),
        ("SHA-256", info["sha256"]),
    ])


@ca.command("create-root")
@home_option
@click.option("--name", required=True, help="Name of the CA in this workspace.")
@click.option("--key", "key_ref", required=True, help="The root key: a pkcs11: URI or a software key name.")
@click.option("--subject", required=True, help="e.g. 'C=IR,O=I.R.Government,OU=Root CA,CN=...'.")
@click.option("--validity-days", type=int, default=None, help="Default: the root profile's (20 years).")
@click.option("--profile", "profile_name", default="root", show_default=True)
@click.option("--signature", default=None, metavar="SCHEME",
              help="How the CA signs: sha256, sha384, sha512, or with -pss for RSA-PSS (e.g. sha256-pss). "
                   "Default: matched to the key.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False), default=None)
@click.option("--crl-shards", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="Partition the CA's CRL into N shards; each certificate names its shard's CRL.")
@json_option
def create_root(home: str, name: str, key_ref: str, subject: str, validity_days: int | None,
                profile_name: str, signature: str | None, passphrase_file: str | None, crl_shards: int,
                as_json: bool) -> None:
    """Create the self-signed root CA.

    \b
    Example:
      iranpki ca create-root --name root --key 'pkcs11:token=Root%20CA;object=root-g3' \\
          --subject 'C=IR,O=I.R.Government,OU=Root CA,CN=Islamic Republic of Iran Root CA-G3'
    """
    ws = workspace(home)
    authority = ws.create_root(name, key_ref, subject, validity_days=validity_days, profile=profile_name,
                               signature=signature, secret=key_secrets(passphrase_file), crl_shards=crl_shards)
    _show(authority.record, as_json)


@ca.command("create-intermediate")
@home_option
@click.option("--name", required=True)
@click.option("--parent", required=True, help="The CA that certifies it (the root).")
@click.option("--level", type=click.IntRange(1, 4), required=True, help="Assurance level 1-4.")
@click.option("--purpose", required=True, type=click.Choice(PURPOSES),
              help="What this CA certificate issues (the national CP's CA purposes): tls (ssl-server), signing "
                   "(personal-signature, organisational-seal, smime), code-signing, time-stamping (tsa). Its "
                   "extended key usages go into the certificate; see docs/hierarchy.md.")
@click.option("--key", "key_ref", required=True, help="The intermediate's key (pkcs11: URI; software only at level 1).")
@click.option("--subject", required=True)
@click.option("--validity-days", type=int, default=None)
@click.option("--signature", default=None, metavar="SCHEME",
              help="How the CA signs: sha256, sha384, sha512, or with -pss for RSA-PSS (e.g. sha256-pss). "
                   "Default: matched to the key.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False), default=None,
              help="Passphrase of the new CA's software key (else IRANPKI_KEY_PASSPHRASE or a prompt).")
@click.option("--parent-passphrase-file", type=click.Path(dir_okay=False), default=None,
              help="Passphrase of the parent's software key (else IRANPKI_KEY_PASSPHRASE or a prompt).")
@click.option("--crl-shards", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="Partition the CA's CRL into N shards; each certificate names its shard's CRL.")
@json_option
def create_intermediate(home: str, name: str, parent: str, level: int, purpose: str, key_ref: str, subject: str,
                        validity_days: int | None, signature: str | None, passphrase_file: str | None,
                        parent_passphrase_file: str | None, crl_shards: int, as_json: bool) -> None:
    """Have the root certify an intermediate CA for one assurance level and one purpose.

    \b
    Example:
      iranpki ca create-intermediate --parent root --level 2 --purpose signing --name gica2 \\
          --key 'pkcs11:token=GICA;object=gica2' --subject 'C=IR,O=ECDC,CN=General Intermediate CA Level 2'
    """
    ws = workspace(home)
    authority = ws.create_intermediate(name, parent, level, key_ref, subject, validity_days=validity_days,
                                       signature=signature, parent_secret=key_secrets(parent_passphrase_file),
                                       secret=key_secrets(passphrase_file), crl_shards=crl_shards, purpose=purpose)
    _show(authority.record, as_json)


@ca.command("set-crl-shards")
@home_option
@click.argument("name")
@click.argument("shards", type=click.IntRange(1, 4096))
@json_option
def set_crl_shards(home: str, name: str, shards: int, as_json: bool) -> None:
    """Partition the CA's CRL into SHARDS (may grow, never shrink: issued certificates keep theirs).

    \b
    Example:
      iranpki ca set-crl-shards gica2 16
    """
    from iranpki.store import AuditEvent

    ws = workspace(home)
    record = ws.store.set_crl_shards(name, shards, AuditEvent("ca.crl_shards", name, details={"shards": shards}))
    _show(record, as_json)


@ca.command("list")
@home_option
@json_option
def list_(home: str, as_json: bool) -> None:
    """List the CAs of the workspace.

    \b
    Example:
      iranpki ca list
      iranpki ca list --json
    """
    records = workspace(home).store.list_cas()
    if as_json:
        emit_json([_info(r) for r in records])
        return
    rows = []
    for r in records:
        cert = x509.load_der_x509_certificate(r.certificate)
        rows.append([r.name, r.kind, str(r.level or "-"), ca_purpose(cert) or "-", r.parent or "-",
                     subject_text(cert.subject), when(cert.not_valid_after_utc)])
    table("Certificate authorities", ["name", "kind", "level", "purpose", "parent", "subject", "valid until"], rows)


@ca.command()
@home_option
@click.argument("name")
@json_option
def show(home: str, name: str, as_json: bool) -> None:
    """Show one CA.

    \b
    Example:
      iranpki ca show gica2
    """
    _show(workspace(home).store.get_ca(name), as_json)


@ca.command()
@home_option
@click.argument("name")
@export_options
def export(home: str, name: str, fmt: str, chain: bool, out: str | None) -> None:
    """Export a CA certificate (and its chain up to the root).

    \b
    Example:
      iranpki ca export gica2 --out gica2.pem
      iranpki ca export gica2 --chain --out gica2-chain.pem
    """
    ws = workspace(home)
    write_certificates(ws.chain(name) if chain else [ws.store.get_ca(name).certificate], fmt, out)

"""`iranpki sign pdf|cms|mail|pe`: sign documents, files, mail and Windows programs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from iranpki import signing
from iranpki.inputs import load_asn1_certificates
from iranpki.keys import SignatureScheme, Signer, open_signer
from iranpki.workspace import HOME_ENV, Workspace

from .common import json_option, key_secrets, relying_party_roots
from .handling import HandledGroup
from .render import emit_json, fields

F = TypeVar("F", bound=Callable[..., Any])
_FILE = click.Path(exists=True, dir_okay=False)


@click.group(cls=HandledGroup)
def sign() -> None:
    """Sign documents: PDF (PAdES B-B, B-T, B-LT), CMS over any file, S/MIME mail, Windows PE.

    The key is a PKCS#11 URI (PIN from IRANPKI_PKCS11_PIN or a prompt) or a software key file
    (passphrase from --passphrase-file, IRANPKI_KEY_PASSPHRASE or a prompt); never an argument.

    \b
    Example:
      export IRANPKI_PKCS11_PIN=...
      iranpki sign pdf contract.pdf --out contract-signed.pdf --key 'pkcs11:token=Ali;object=sign' \\
          --cert ali.pem --chain gica2.pem --level B-T --tsa http://tsa.example.ir/
      iranpki sign cms release.tar.gz --out release.tar.gz.p7s --key ali.key --cert ali.pem --chain gica2.pem
      iranpki sign mail --in note.eml --out note-signed.eml --key ali.key --cert ali.pem --encrypt-to reza.pem
    """


_optional_home = click.option(
    "--home", type=click.Path(file_okay=False), envvar=HOME_ENV, default=None,
    help=f"A workspace whose PKCS#11 module and key names --key may use (or set {HOME_ENV}); not needed otherwise.")


def _key_options(func: F) -> F:
    func = json_option(func)
    func = _optional_home(func)
    func = click.option("--signature", default=None,
                        help="Signature scheme: HASH or HASH-pss (sha256, sha384-pss, ...); default by key size.")(func)
    func = click.option("--passphrase-file", type=_FILE, default=None,
                        help="Passphrase of a software key (else IRANPKI_KEY_PASSPHRASE or a prompt).")(func)
    func = click.option("--chain", "chain_files", multiple=True, type=_FILE,
                        help="PEM file(s) of the issuing CAs, embedded in the signature (repeatable).")(func)
    func = click.option("--cert", "cert_file", required=True, type=_FILE, help="The signer's certificate (PEM or DER).")(func)
    return click.option("--key", "key_ref", required=True,
                        help="The signing key: a PKCS#11 URI (pkcs11:token=...;object=...) or a key file.")(func)  # type: ignore[return-value]


def _open(key_ref: str, passphrase_file: str | None, home: str | None) -> Signer:
    """The key: through the workspace when there is one (its module, its key names), else as given."""
    if home is not None:
        return Workspace.open(home).open_key(key_ref, key_secrets(passphrase_file))
    return open_signer(key_ref, key_secrets(passphrase_file))


def _chain(files: tuple[str, ...]) -> list[bytes]:
    return [c.dump() for f in files for c in load_asn1_certificates(Path(f).read_bytes(), f)]


def _scheme(text: str | None) -> SignatureScheme | None:
    return SignatureScheme.parse(text) if text else None


def _done(as_json: bool, title: str, info: dict[str, Any]) -> None:
    if as_json:
        emit_json(info)
    else:
        fields(title, [(k, str(v)) for k, v in info.items()])


def _subject(cert: bytes) -> str:
    return load_asn1_certificates(cert, "the certificate")[0].subject.human_friendly


@sign.command()
@click.argument("pdf", type=_FILE)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The signed PDF to write.")
@_key_options
@click.option("--level", type=click.Choice(signing.PADES_LEVELS), default="B-B", show_default=True,
              help="PAdES baseline level: B-T adds a time-stamp, B-LT also the validation data.")
@click.option("--tsa", "tsa_url", default=None, help="RFC 3161 time-stamping URL (needed for B-T and B-LT).")
@click.option("--root", "root_files", multiple=True, type=_FILE,
              help="Trust root(s) the B-LT validation data leads to; replace the default (the national root "
                   "and the workspace's roots, as `iranpki verify` trusts).")
@click.option("--crl", "crl_files", multiple=True, type=_FILE,
              help="CRLs to embed for B-LT (one per CA in the chain); else --fetch.")
@click.option("--fetch", is_flag=True, help="For B-LT, fetch CRLs and OCSP responses named in the certificates.")
@click.option("--reason", default=None, help="Why the document is signed (shown by PDF readers).")
@click.option("--location", default=None, help="Where it is signed.")
@click.option("--field", "field_name", default="Signature1", show_default=True, help="The signature field's name.")
def pdf(pdf: str, out: str, key_ref: str, cert_file: str, chain_files: tuple[str, ...], passphrase_file: str | None,
        signature: str | None, home: str | None, as_json: bool, level: str, tsa_url: str | None, root_files: tuple[str, ...],
        crl_files: tuple[str, ...], fetch: bool, reason: str | None, location: str | None, field_name: str) -> None:
    """Sign a PDF as PAdES B-B, B-T or B-LT (an incremental update; earlier signatures stay valid).

    \b
    Example:
      iranpki sign pdf contract.pdf --out signed.pdf --key 'pkcs11:token=Ali;object=sign' \\
          --cert ali.pem --chain gica2.pem --level B-T --tsa http://127.0.0.1:3161/
    """
    cert = Path(cert_file).read_bytes()
    roots = relying_party_roots(home, root_files)
    with _open(key_ref, passphrase_file, home) as signer:
        data = signing.sign_pdf(Path(pdf).read_bytes(), signer, cert, chain=_chain(chain_files), level=level,  # type: ignore[arg-type]
                                tsa_url=tsa_url, trust_roots=roots, crls=[Path(f).read_bytes() for f in crl_files],
                                allow_fetching=fetch, field_name=field_name, reason=reason, location=location,
                                scheme=_scheme(signature))
    Path(out).write_bytes(data)
    _done(as_json, "PDF signed", {"out": out, "level": level, "field": field_name, "signer": _subject(cert),
                                   "bytes": len(data)})


@sign.command()
@click.argument("file", type=_FILE)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The signature (.p7s, DER) to write.")
@_key_options
@click.option("--attached", is_flag=True, help="Embed the file in the signature (default: detached).")
@click.option("--tsa", "tsa_url", default=None, help="RFC 3161 time-stamping URL for a signature time-stamp.")
def cms(file: str, out: str, key_ref: str, cert_file: str, chain_files: tuple[str, ...], passphrase_file: str | None,
        signature: str | None, home: str | None, as_json: bool, attached: bool, tsa_url: str | None) -> None:
    """Sign any file (script, archive, document) as CMS SignedData, detached or attached.

    Check it with: openssl cms -verify -binary -inform DER -in F.p7s -content FILE -CAfile root.pem -purpose any

    \b
    Example:
      iranpki sign cms report.tar.gz --out report.tar.gz.p7s --key 'pkcs11:token=Ali;object=sign' --cert ali.pem
    """
    cert = Path(cert_file).read_bytes()
    with _open(key_ref, passphrase_file, home) as signer:
        data = signing.sign_cms(file, signer, cert, chain=_chain(chain_files), attached=attached,
                                scheme=_scheme(signature), tsa_url=tsa_url)
    Path(out).write_bytes(data)
    _done(as_json, "CMS signature written", {"out": out, "attached": attached, "signer": _subject(cert),
                                             "bytes": len(data)})


@sign.command()
@click.option("--in", "msg", required=True, type=_FILE, help="The message (RFC 5322: headers, blank line, body).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The S/MIME message to write.")
@_key_options
@click.option("--encrypt-to", "recipients", multiple=True, type=_FILE,
              help="Also encrypt to this recipient's certificate (repeatable; RSA S/MIME certificates).")
def mail(msg: str, out: str, key_ref: str, cert_file: str, chain_files: tuple[str, ...], passphrase_file: str | None,
         signature: str | None, home: str | None, as_json: bool, recipients: tuple[str, ...]) -> None:
    """Sign a mail message as S/MIME (multipart/signed); with --encrypt-to, sign then encrypt it.

    \b
    Example:
      iranpki sign mail --in letter.eml --out signed.eml --key 'pkcs11:token=Ali;object=sign' --cert ali.pem
    """
    cert = Path(cert_file).read_bytes()
    with _open(key_ref, passphrase_file, home) as signer:
        data = signing.sign_mail(Path(msg).read_bytes(), signer, cert, chain=_chain(chain_files),
                                 scheme=_scheme(signature), encrypt_to=[Path(r).read_bytes() for r in recipients])
    Path(out).write_bytes(data)
    _done(as_json, "Mail signed" + (" and encrypted" if recipients else ""),
          {"out": out, "signer": _subject(cert), "encrypted_to": [_subject(Path(r).read_bytes()) for r in recipients],
           "bytes": len(data)})


@sign.command()
@click.argument("exe", type=_FILE)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The signed program to write.")
@click.option("--key", "key_file", required=True, type=_FILE, help="The signing key file (PEM; software keys only).")
@click.option("--cert", "cert_file", required=True, type=_FILE, help="The code-signing certificate.")
@click.option("--chain", "chain_files", multiple=True, type=_FILE, help="PEM file(s) of the issuing CAs.")
@click.option("--passphrase-file", type=_FILE, default=None,
              help="Passphrase of the key (else IRANPKI_KEY_PASSPHRASE or a prompt).")
@click.option("--description", default=None, help="The program's name shown by Windows.")
@click.option("--url", default=None, help="The publisher's URL shown by Windows.")
@click.option("--tsa", "tsa_url", default=None, help="RFC 3161 time-stamping URL.")
@json_option
def pe(exe: str, out: str, key_file: str, cert_file: str, chain_files: tuple[str, ...], passphrase_file: str | None,
       description: str | None, url: str | None, tsa_url: str | None, as_json: bool) -> None:
    """Authenticode-sign a Windows program (.exe, .dll) with osslsigncode.

    \b
    Example:
      iranpki sign pe setup.exe --out setup-signed.exe --key dev.key --cert dev.pem \\
          --tsa http://127.0.0.1:3161/
    """
    cert = Path(cert_file).read_bytes()
    signing.sign_pe(exe, out, key_file=key_file, certificate=cert, chain=_chain(chain_files),
                    passphrase=key_secrets(passphrase_file), description=description, url=url, timestamp_url=tsa_url)
    _done(as_json, "Program signed", {"out": out, "signer": _subject(cert)})

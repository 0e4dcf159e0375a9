"""`iranpki ra desk ...`: the desk client a registration officer runs at the office. Each command
is one call to the RA's API (`iranpki ra serve`), authenticated by the officer's client
certificate, plus the token work at the desk: the key made on the subscriber's token in the
reader, the issued certificate written back onto it, the proofing statement signed with the
officer's key. No CA key is anywhere near it."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .common import json_option, key_secrets, pin_source
from .handling import HandledGroup
from .ra_client import RaClient, Upload
from .render import console, emit_json, fields, table

F = TypeVar("F", bound=Callable[..., Any])
_FILE = click.Path(exists=True, dir_okay=False)


def _connection(func: F) -> F:
    func = click.option("--server-name", default=None, envvar="IRANPKI_RA_SERVER_NAME",
                        help="The name the server's certificate carries, when --server gives an address.")(func)
    func = click.option("--trust", type=_FILE, default=None, envvar="IRANPKI_RA_TRUST",
                        help="CA certificates (PEM) that verify the RA server (default: the system's).")(func)
    func = click.option("--client-key", type=_FILE, envvar="IRANPKI_RA_KEY",
                        help="The key of the officer's client certificate (PEM; a passphrase from "
                             "IRANPKI_KEY_PASSPHRASE).")(func)
    func = click.option("--client-cert", type=_FILE, envvar="IRANPKI_RA_CERT",
                        help="The officer's client certificate (PEM), profile ra-officer.")(func)
    func = click.option("--server", envvar="IRANPKI_RA_URL",
                        help="The RA's URL, e.g. https://ra.example.ir:8443 (or IRANPKI_RA_URL).")(func)
    return json_option(func)  # type: ignore[return-value]


def _client(kw: dict[str, Any]) -> RaClient:
    for option, env, value in (("--server", "IRANPKI_RA_URL", kw.get("server")),
                               ("--client-cert", "IRANPKI_RA_CERT", kw.get("client_cert")),
                               ("--client-key", "IRANPKI_RA_KEY", kw.get("client_key"))):
        if not value:
            raise click.UsageError(f"the desk needs {option} (or {env} in the environment): the RA's URL and the "
                                   "officer's client certificate and key")
    return RaClient(kw.pop("server"), certificate=kw.pop("client_cert"), key=kw.pop("client_key"),
                    key_password=os.environ.get("IRANPKI_KEY_PASSPHRASE"), trust=kw.pop("trust"),
                    server_name=kw.pop("server_name"))


def _show(record: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        emit_json(record)
        return
    rows = [(k, str(record.get(k))) for k in ("id", "kind", "profile", "level", "ca", "state", "office",
                                              "key_location", "serial", "expires_at", "subject") if k in record]
    if "applicant" in record:
        rows += [(f"applicant {k}", v) for k, v in record["applicant"].items()]
    fields(title, rows)


@click.group(cls=HandledGroup)
def desk() -> None:
    """The registration office's desk: the queue, receiving an applicant, proofing, the key on
    the token, approval, the certificate onto the token, and the hand-over, through the RA.

    \b
    The officer's connection (or the options on each command):
      export IRANPKI_RA_URL=https://ra.example.ir:8443 IRANPKI_RA_CERT=officer.pem IRANPKI_RA_KEY=officer.key
    \b
    Example (a personal signature on a token at level 1):
      iranpki ra desk receive --national-code 0499370899           # the code typed at the prompt
      iranpki ra desk proof 3f2a... --method in-person --document national-id-card:1234567:id.jpg \\
          --statement "ID card checked against the applicant"
      iranpki ra desk key 3f2a... --token Ali --label signature      # PIN from IRANPKI_PKCS11_PIN
      iranpki ra desk approve 3f2a...                                 # another officer
      iranpki ra desk certificate 3f2a... --token Ali --label signature
      iranpki ra desk hand-over 3f2a... --token Ali
    """


@desk.command("queue")
@_connection
def queue(as_json: bool, **kw: Any) -> None:
    """The office's open requests, oldest first."""
    found = _client(kw).call("GET", "/office/queue")
    if as_json:
        emit_json(found)
    else:
        table("the office's queue", ["id", "kind", "profile", "level", "state", "key at", "expires"],
              [[r["id"], r["kind"], r["profile"], str(r["level"]), r["state"], r["key_location"] or "-",
                r["expires_at"][:16]] for r in found])


@desk.command("show")
@click.argument("request_id")
@_connection
def show(request_id: str, as_json: bool, **kw: Any) -> None:
    """A request of the office, with the applicant's details."""
    _show(_client(kw).call("GET", f"/office/requests/{request_id}"), as_json, f"request {request_id}")


_tracking_code = click.option(
    "--tracking-code", envvar="IRANPKI_RA_TRACKING_CODE", prompt="tracking code", hide_input=True,
    help="The applicant's tracking code: from IRANPKI_RA_TRACKING_CODE or typed at the prompt (it is the "
         "applicant's credential: never on the command line, where ps and the shell's history keep it).")


@desk.command("receive")
@_tracking_code
@click.option("--national-code", "second_factor", required=True,
              help="The applicant's national code (an organisation's national ID), from their ID card.")
@_connection
def receive(tracking_code: str, second_factor: str, as_json: bool, **kw: Any) -> None:
    """The applicant is at the desk: open their request by its tracking code."""
    record = _client(kw).call("POST", "/office/receive", {"tracking_code": tracking_code,
                                                          "second_factor": second_factor})
    _show(record, as_json, f"request {record['id']} received")


def _document(text: str) -> tuple[str, str, Path]:
    kind, sep, rest = text.partition(":")
    number, sep2, path = rest.partition(":")
    if not (sep and sep2 and kind and number and path):
        raise click.BadParameter(f"{text!r}: give KIND:NUMBER:FILE, e.g. national-id-card:0012345678:id.jpg",
                                 param_hint="--document")
    if not Path(path).is_file():
        raise click.BadParameter(f"{path!r} is not a file", param_hint="--document")
    return kind, number, Path(path)


@desk.command("proof")
@click.argument("request_id")
@click.option("--method", required=True, help="The proofing method (in-person, in-person-two-documents, ...).")
@click.option("--document", "documents", multiple=True, required=True,
              help="A document checked, KIND:NUMBER:SCAN-FILE (JPEG, PNG or PDF up to 5 MB; repeatable).")
@click.option("--statement", required=True, help="What was checked, in the officer's words.")
@click.option("--sign-key", default=None,
              help="The officer's key that signs the statement: a PKCS#11 URI (pkcs11:token=...;object=...) or a "
                   "key file (default: --client-key).")
@click.option("--passphrase-file", type=_FILE, default=None, help="Passphrase of a software --sign-key.")
@_connection
def proof(request_id: str, method: str, documents: tuple[str, ...], statement: str, sign_key: str | None,
          passphrase_file: str | None, as_json: bool, **kw: Any) -> None:
    """Record the identity proofing: the documents with their scans, and the statement signed
    (detached CMS) with the officer's key, the key of the client certificate."""
    from iranpki import signing
    from iranpki.keys import open_signer

    parsed = [_document(d) for d in documents]
    cert_file, key_file = kw["client_cert"], kw["client_key"]
    client = _client(kw)  # the connection's settings checked before the key is opened
    certificate = Path(cert_file).read_bytes()
    signer = open_signer(sign_key or key_file, key_secrets(passphrase_file))
    signature = signing.sign_cms(statement.encode("utf-8"), signer, certificate)
    files = [Upload("scan", path.name, path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream")
             for _, _, path in parsed]
    files.append(Upload("statement_signature", "statement.p7s", signature, "application/pkcs7-signature"))
    record = client.call("POST", f"/office/requests/{request_id}/proof", files=files, form={
        "method": method, "statement": statement, "document_kind": [k for k, _, _ in parsed],
        "document_number": [n for _, n, _ in parsed]})
    _show(record, as_json, f"request {request_id} proofed")


@desk.command("key")
@click.argument("request_id")
@click.option("--token", default=None, help="The subscriber's token in the reader: the key is made on it.")
@click.option("--label", default="signature", show_default=True, help="The key's label on the token.")
@click.option("--spec", default="p256", show_default=True, help="Key type and size: p256, p384, rsa3072, ...")
@click.option("--module", default=None, help="The token's PKCS#11 module (default: SoftHSM2's).")
@click.option("--csr", type=_FILE, default=None,
              help="Instead of --token: the subscriber's own PKCS#10 request (PEM or DER) brought to the desk.")
@_connection
def key(request_id: str, token: str | None, label: str, spec: str, module: str | None, csr: str | None,
        as_json: bool, **kw: Any) -> None:
    """Make the subscriber's key on the token in the reader (PIN from IRANPKI_PKCS11_PIN or a
    prompt) and bind it to the request with its CSR and the token's make, model and serial."""
    import base64

    from iranpki.keys import KeySpec
    from iranpki.ra import key_at_desk

    if (token is None) == (csr is None):
        raise click.UsageError("give --token (the key is made on it) or --csr (the subscriber's request)")
    if token is not None:
        made = key_at_desk(token, label, KeySpec.parse(spec), module=module, pin=pin_source())
        body: dict[str, Any] = {"csr": base64.b64encode(made.csr).decode("ascii"), "device": made.device}
    else:
        data = Path(csr or "").read_bytes()
        body = {"csr": data.decode("ascii", "replace") if b"-----BEGIN" in data else base64.b64encode(data).decode("ascii")}
    record = _client(kw).call("POST", f"/office/requests/{request_id}/key", body)
    _show(record, as_json, f"request {request_id}: key bound")


def _simple(name: str, path: str, doc: str, *, reason: bool = False) -> None:
    def command(request_id: str, as_json: bool, reason_text: str | None = None, **kw: Any) -> None:
        body = {"reason": reason_text} if reason else None
        _show(_client(kw).call("POST", f"/office/requests/{request_id}/{path}", body), as_json,
              f"request {request_id}")

    command.__doc__ = doc
    command = _connection(command)
    if reason:
        command = click.option("--reason", "reason_text", required=True, help="Why; the applicant reads it.")(command)
    desk.command(name)(click.argument("request_id")(command))


_simple("approve", "approve", "Approve a request of the office (an approving officer; not the one who proofed it).")
_simple("reject", "reject", "Reject a request, saying why.", reason=True)
_simple("cancel", "cancel", "Cancel a request (the applicant asked at the desk).")


@desk.command("certificate")
@click.argument("request_id")
@click.option("--token", default=None, help="Write the certificate onto this token, beside the key --label.")
@click.option("--label", default="signature", show_default=True)
@click.option("--module", default=None, help="The token's PKCS#11 module (default: SoftHSM2's).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write it (PEM) to this file.")
@_connection
def certificate(request_id: str, token: str | None, label: str, module: str | None, out: str | None,
                as_json: bool, **kw: Any) -> None:
    """The certificate issued for the request: onto the subscriber's token beside its key, and/or
    to a file."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from iranpki.keys.pkcs11 import store_certificate

    issued = _client(kw).call("GET", f"/office/requests/{request_id}/certificate")
    der = x509.load_pem_x509_certificate(issued["pem"].encode("ascii")).public_bytes(Encoding.DER)
    if token is not None:
        store_certificate(f"pkcs11:token={token};object={label}", der, module=module, pin=pin_source())
    if out is not None:
        Path(out).write_text(issued["pem"], encoding="ascii")
    if as_json:
        emit_json({"request": request_id, "serial": issued["serial"], "token": token, "out": out})
    else:
        console.print(f"certificate {issued['serial']}" + (f" written onto token {token}" if token else "")
                      + (f", saved to {out}" if out else ""), highlight=False)


@desk.command("hand-over")
@click.argument("request_id")
@click.option("--token", default=None, help="The token in the reader; its serial is read from it.")
@click.option("--token-serial", default=None, help="Instead of --token: the token's serial as printed on it.")
@click.option("--module", default=None, help="The token's PKCS#11 module (default: SoftHSM2's).")
@_connection
def hand_over(request_id: str, token: str | None, token_serial: str | None, module: str | None, as_json: bool,
              **kw: Any) -> None:
    """Record that the token with the certificate was handed to the subscriber."""
    from iranpki.ra import token_device

    if (token is None) == (token_serial is None):
        raise click.UsageError("give --token (read from the reader) or --token-serial")
    serial = token_serial if token is None else token_device(token, module=module)["serial"]
    _show(_client(kw).call("POST", f"/office/requests/{request_id}/hand-over", {"token_serial": serial}), as_json,
          f"request {request_id}: token handed over")


@desk.command("accept")
@click.argument("request_id")
@_tracking_code
@click.option("--national-code", "second_factor", required=True, help="The subscriber's national code (or ID).")
@click.option("--key", "key_ref", required=True,
              help="The new key: pkcs11:token=...;object=... (the subscriber types the PIN) or a key file.")
@click.option("--passphrase-file", type=_FILE, default=None, help="Passphrase of a software key.")
@_connection
def accept(request_id: str, tracking_code: str, second_factor: str, key_ref: str, passphrase_file: str | None,
           as_json: bool, **kw: Any) -> None:
    """The subscriber accepts the certificate at the desk: the acceptance text, signed with the
    new key, is sent with their tracking code."""
    import base64

    from iranpki.keys import SignatureScheme, open_signer

    client = _client(kw)
    applicant = (tracking_code, second_factor)
    text = client.call("GET", f"/requests/{request_id}/acceptance", applicant=applicant)["text"]
    signer = open_signer(key_ref, key_secrets(passphrase_file))
    scheme = SignatureScheme(signer.key_spec.default_hash)
    signature = signer.sign_checked(text.encode("utf-8"), scheme)
    record = client.call("POST", f"/requests/{request_id}/accept", {
        "signature": base64.b64encode(signature).decode("ascii"), "scheme": str(scheme)}, applicant=applicant)
    _show(record, as_json, f"request {request_id} accepted")

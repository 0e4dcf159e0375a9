"""The RA's JSON API (OpenAPI 3.1 at ``/api/ra/openapi.json``; committed in docs/ra-openapi.json).

Applicants authenticate with the tracking code and their second factor (national code or ID) in
the ``X-Tracking-Code`` and ``X-Second-Factor`` headers, rate limited per client address;
officers with the TLS client certificate on their token, which the server verified and hands
over as ``SSL_CLIENT_CERT``. Every call is one engine call; every refusal is a JSON error naming
the field or the rule, never a trace. Binary values in JSON (CSRs, signatures) are base64 or PEM;
identity scans are uploaded as multipart form files.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.http import HttpRequest, HttpResponse
from ninja import File, Form, NinjaAPI, Schema, Status
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.files import UploadedFile
from ninja.security import APIKeyHeader
from ninja.security.base import AuthBase

from iranpki.errors import (
    ConcurrentChangeError,
    IranPkiError,
    NotFoundError,
    PinError,
    RateLimitedError,
    RequestError,
    RuleRefusedError,
)
from iranpki.ra import KEY_MATERIAL, Actor, Document, RegistrationAuthority
from iranpki.ra.engine import MAX_DOCUMENT_BYTES
from iranpki.store import RequestRecord

api = NinjaAPI(title="iranpki registration authority", version="1",
               description="Registration of certificate requests, their status for the applicant, and the "
                           "registration office's queue (docs/registration.md).")
_local = threading.local()
_factory: Callable[[], RegistrationAuthority] | None = None


def use_engine(factory: Callable[[], RegistrationAuthority] | None) -> None:
    """Serve the engines ``factory`` makes (one per thread) instead of the workspace's at
    IRANPKI_HOME: for an application embedding the API over its own store, and for tests."""
    global _factory
    _factory = factory
    _local.__dict__.clear()


def engine() -> RegistrationAuthority:
    """This thread's engine over the workspace's store (a store connection is not shared)."""
    ra = getattr(_local, "ra", None)
    if ra is None or getattr(_local, "factory", None) is not _factory:
        if _factory is not None:
            ra = _factory()
        else:
            from iranpki.workspace import Workspace

            ra = Workspace.open(os.environ.get("IRANPKI_HOME")).registration()
        _local.ra, _local.factory = ra, _factory
    return ra


class Applicant(Schema):
    national_code: str | None = None
    national_id: str | None = None
    given_name: str | None = None
    surname: str | None = None
    mobile: str | None = None
    organisation: str | None = None


class Names(Schema):
    dns: list[str] = []
    ips: list[str] = []
    emails: list[str] = []


class Registration(Schema):
    profile: str
    level: int
    ca: str
    applicant: Applicant
    subject: str
    key_location: str
    names: Names | None = None


class Change(Schema):
    kind: str
    serial: str
    second_factor: str
    reason: str | None = None
    key_location: str | None = None
    #: A recovery only: the passphrase the recovered key will be handed out under (PKCS#12).
    passphrase: str | None = None


class Lookup(Schema):
    tracking_code: str
    second_factor: str


class Inquiry(Schema):
    mobile: str


class ApplicantKey(Schema):
    csr: str | None = None
    passphrase: str | None = None


class Passphrase(Schema):
    passphrase: str


class Acceptance(Schema):
    signature: str
    scheme: str = "sha256"


class Device(Schema):
    manufacturer: str
    model: str
    serial: str


class DeskKey(Schema):
    csr: str
    device: Device | None = None


class Reason(Schema):
    reason: str


class HandOver(Schema):
    token_serial: str


class RequestOut(Schema):
    id: str
    kind: str
    profile: str
    level: int
    ca: str
    state: str
    office: str | None
    key_location: str | None
    serial: str | None
    expires_at: str


class RequestDetail(RequestOut):
    subject: str
    applicant: dict[str, str]
    names: dict[str, list[str]]
    reason: str | None
    device: dict[str, str]
    proofing: dict[str, Any]
    created_at: str
    updated_at: str


class Registered(Schema):
    request: RequestOut
    tracking_code: str


class CertificateOut(Schema):
    serial: str
    pem: str


class AcceptanceText(Schema):
    text: str


class Error(Schema):
    error: dict[str, Any]


def _out(r: RequestRecord) -> dict[str, Any]:
    return {"id": r.id, "kind": r.kind, "profile": r.profile, "level": r.level, "ca": r.ca, "state": r.state,
            "office": r.office, "key_location": r.key_location, "serial": None if r.serial is None else f"{r.serial:x}",
            "expires_at": r.expires_at.isoformat()}


#: Kept out of what an officer reads back: the encrypted software key and large signatures.
_PRIVATE_PROOFING = (*KEY_MATERIAL, "statement_signature")


def _detail(r: RequestRecord) -> dict[str, Any]:
    return {**_out(r), "subject": r.subject, "applicant": dict(r.applicant), "names": dict(r.names),
            "reason": r.reason, "device": dict(r.device), "created_at": r.created_at.isoformat(),
            "updated_at": r.updated_at.isoformat(),
            "proofing": {k: v for k, v in r.proofing.items() if k not in _PRIVATE_PROOFING}}


def _client(request: HttpRequest) -> str:
    """The client address rate limits count by: an IPv4 address, or an IPv6 address's /64 (a
    host rotating addresses within its network counts as one)."""
    import ipaddress

    from django.conf import settings

    address = request.META.get("REMOTE_ADDR", "unknown")
    if address in settings.TRUSTED_PROXIES:
        # Behind the TLS front end: the client is the last address it added.
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if forwarded:
            address = forwarded[-1]
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def _binary(value: str, field: str) -> bytes:
    """A binary value given in JSON: PEM (its base64 body) or base64."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        lines = [line for line in text.splitlines() if line and not line.startswith("-----")]
        text = "".join(lines)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{field}: not base64 or PEM; give the DER bytes in base64 (or the PEM text)") from None


class OfficerCertificate(AuthBase):
    """An officer: the TLS client certificate on their token, verified by the server against the
    CAs of the national hierarchy, then matched to an enrolled, active officer of an active office."""

    openapi_type = "mutualTLS"
    openapi_description = "the registration officer's client certificate (profile ra-officer) on their token"

    def __call__(self, request: HttpRequest) -> Actor:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        pem = request.META.get("SSL_CLIENT_CERT")
        if not pem or request.META.get("SSL_CLIENT_VERIFY") != "SUCCESS":
            raise RuleRefusedError("this call is for registration officers: connect with the client certificate on "
                                   "your token", rule="officer")
        der = x509.load_pem_x509_certificate(pem.encode("ascii")).public_bytes(Encoding.DER)
        return engine().authenticate(der)


class TrackingCode(APIKeyHeader):
    """An applicant: the request's tracking code, with the second factor in ``X-Second-Factor``."""

    param_name = "X-Tracking-Code"
    openapi_description = "the tracking code of the request; the applicant's national code (or ID) goes in " \
                          "X-Second-Factor"

    def authenticate(self, request: HttpRequest, key: str | None) -> Actor:
        factor = request.headers.get("X-Second-Factor")
        if not key or not factor:
            raise RuleRefusedError("this call is for the applicant: send the tracking code in X-Tracking-Code and "
                                   "the national code (or ID) in X-Second-Factor", rule="applicant")
        return engine().applicant(key, factor, client=_client(request))


officer_auth = OfficerCertificate()
applicant_auth = TrackingCode()
#: Refusals that say the caller may not act at all (403), rather than not now (409).
_FORBIDDEN_RULES = ("officer", "officer-certificate", "office-status", "actor", "applicant", "office", "roles")


def _error(request: HttpRequest, status: int, code: str, message: str, **details: Any):  # noqa: ANN202
    return api.create_response(request, {"error": {"code": code, "message": message, **details}}, status=status)


@api.exception_handler(NinjaValidationError)
def _invalid(request: HttpRequest, exc: NinjaValidationError):  # noqa: ANN202
    first = exc.errors[0] if exc.errors else {}
    field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "payload", "form", "file"))
    return _error(request, 400, "invalid", f"{field or 'the request'}: {first.get('msg', 'invalid')}", field=field)


@api.exception_handler(IranPkiError)
def _refused(request: HttpRequest, exc: IranPkiError):  # noqa: ANN202
    if isinstance(exc, RateLimitedError):
        response = _error(request, 429, "rate-limited", str(exc), retry_after=exc.retry_after)
        response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, RuleRefusedError):
        status = 403 if exc.rule in _FORBIDDEN_RULES else 409
        return _error(request, status, "rule", str(exc), rule=exc.rule, request_id=exc.request)
    if isinstance(exc, ConcurrentChangeError):
        return _error(request, 409, "changed", str(exc))
    if isinstance(exc, NotFoundError):
        return _error(request, 404, "not-found", str(exc))
    if isinstance(exc, PinError):
        return _error(request, 403, "passphrase", str(exc))
    # Any other refusal of the input (an unknown level, a signature scheme not offered, ...).
    return _error(request, 400, "invalid", str(exc), kind=type(exc).__name__)


@api.exception_handler(HttpError)
def _http(request: HttpRequest, exc: HttpError):  # noqa: ANN202
    if isinstance(exc, AuthenticationError):
        return _unauthenticated(request, exc)
    message = "the body is not JSON (or not the form this call takes); send application/json as the OpenAPI " \
              "document describes" if exc.status_code == 400 else str(exc)
    return _error(request, exc.status_code, "invalid" if exc.status_code == 400 else "http", message)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError):  # noqa: ANN202
    return _error(request, 401, "unauthenticated", "this call needs the applicant's tracking code or an officer's "
                  "client certificate")


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: Exception):  # noqa: ANN202
    return _error(request, 413, "too-large", "the request body is larger than the RA accepts: a JSON body up to "
                  "1 MB, each identity scan up to 5 MB")


@api.exception_handler(TooManyFilesSent)
def _too_many(request: HttpRequest, exc: Exception):  # noqa: ANN202
    return _error(request, 413, "too-many-files", "more files than the RA accepts in one call (8); send the "
                  "documents the level needs")


@api.exception_handler(Exception)
def _fault(request: HttpRequest, exc: Exception):  # noqa: ANN202
    import logging
    import secrets as _secrets

    incident = _secrets.token_hex(4)
    # The trace goes to the server's log (its standard error), under an incident number the
    # answer gives; never to the client. Headers and bodies (codes, passphrases) are not logged.
    logging.getLogger("iranpki_portals").error("incident %s: %s %s failed", incident, request.method, request.path,
                                               exc_info=exc)
    return _error(request, 500, "internal", f"the RA could not answer (incident {incident}); nothing was changed "
                  "by this call. The operator finds the cause in the server's log under that number",
                  incident=incident)


# ---- the applicant ---------------------------------------------------------------------------

@api.post("/requests", response={201: Registered, 400: Error, 404: Error, 409: Error, 429: Error},
          summary="Register a request", tags=["applicant"])
def register(request: HttpRequest, body: Registration):  # noqa: ANN201
    applicant = {k: v for k, v in body.applicant.dict().items() if v is not None}
    names = body.names.dict() if body.names else None
    made = engine().register(profile=body.profile, level=body.level, ca=body.ca, applicant=applicant,
                             subject=body.subject, key_location=body.key_location,
                             names={k: v for k, v in (names or {}).items() if v} or None, client=_client(request))
    return Status(201, {"request": _out(made.request), "tracking_code": made.code})


@api.post("/changes", response={201: Registered, 400: Error, 404: Error, 409: Error, 429: Error},
          summary="Ask to revoke, suspend, release, renew, re-key a certificate or recover its archived key",
          tags=["applicant"])
def change(request: HttpRequest, body: Change):  # noqa: ANN201
    try:
        serial = int(body.serial, 16)
    except ValueError:
        raise RequestError(f"serial: {body.serial!r} is not a hexadecimal serial number (as `iranpki cert show` "
                           "prints it)") from None
    made = engine().request_change(body.kind, serial, second_factor=body.second_factor, reason=body.reason,
                                   key_location=body.key_location, passphrase=body.passphrase,
                                   client=_client(request))
    return Status(201, {"request": _out(made.request), "tracking_code": made.code})


@api.post("/requests/lookup", response={200: RequestOut, 400: Error, 404: Error, 429: Error},
          summary="A request's status, for its applicant", tags=["applicant"])
def lookup(request: HttpRequest, body: Lookup):  # noqa: ANN201
    return _out(engine().lookup(body.tracking_code, body.second_factor, client=_client(request)))


@api.post("/requests/{request_id}/inquiry", auth=applicant_auth,
          response={200: RequestOut, 400: Error, 403: Error, 404: Error, 409: Error, 429: Error},
          summary="Level 1 with no visit: proof identity by the registries", tags=["applicant"])
def inquiry(request: HttpRequest, request_id: str, body: Inquiry):  # noqa: ANN201
    _own(request, request_id)
    return _out(engine().inquire(request_id, mobile=body.mobile))


@api.post("/requests/{request_id}/key", auth=applicant_auth,
          response={200: RequestOut, 400: Error, 403: Error, 404: Error, 409: Error, 429: Error},
          summary="Bind the key: the phone's or the applicant's CSR, or a passphrase for a software key",
          tags=["applicant"])
def applicant_key(request: HttpRequest, request_id: str, body: ApplicantKey):  # noqa: ANN201
    csr = _binary(body.csr, "csr") if body.csr else None
    return _out(engine().bind_key(request.auth, request_id, csr=csr, passphrase=body.passphrase))


@api.get("/requests/{request_id}/certificate", auth=applicant_auth,
         response={200: CertificateOut, 403: Error, 404: Error, 409: Error, 429: Error},
         summary="The certificate issued for the request", tags=["applicant"])
def applicant_certificate(request: HttpRequest, request_id: str):  # noqa: ANN201
    return _certificate(_own(request, request_id))


@api.post("/requests/{request_id}/pkcs12", auth=applicant_auth,
          response={403: Error, 404: Error, 409: Error, 429: Error},
          summary="Download the software key and certificate, once (PKCS#12)", tags=["applicant"],
          openapi_extra={"responses": {200: {"description": "the PKCS#12 file (PBES2 with AES-256, PBKDF2-SHA256)",
                                               "content": {"application/x-pkcs12": {
                                                   "schema": {"type": "string", "format": "binary"}}}}}})
def pkcs12(request: HttpRequest, request_id: str, body: Passphrase):  # noqa: ANN201
    data = engine().pkcs12(request.auth, request_id, body.passphrase)
    response = HttpResponse(data, content_type="application/x-pkcs12")
    response["Content-Disposition"] = f'attachment; filename="{request_id}.p12"'
    response["Cache-Control"] = "no-store"
    return response


@api.get("/requests/{request_id}/acceptance", auth=applicant_auth,
         response={200: AcceptanceText, 403: Error, 404: Error, 409: Error, 429: Error},
         summary="The text the subscriber signs with the new key to accept the certificate", tags=["applicant"])
def acceptance_text(request: HttpRequest, request_id: str):  # noqa: ANN201
    return {"text": engine().acceptance_text(_own(request, request_id)).decode("utf-8")}


@api.post("/requests/{request_id}/accept", auth=applicant_auth,
          response={200: RequestOut, 400: Error, 403: Error, 404: Error, 409: Error, 429: Error},
          summary="Accept the certificate: the acceptance text signed with its key (base64)", tags=["applicant"])
def accept(request: HttpRequest, request_id: str, body: Acceptance):  # noqa: ANN201
    return _out(engine().accept(request.auth, request_id, _binary(body.signature, "signature"), scheme=body.scheme))


@api.get("/requests/{request_id}/change-text", auth=applicant_auth,
         response={200: AcceptanceText, 403: Error, 404: Error, 409: Error, 429: Error},
         summary="The text to sign with the current certificate's key, to ask for a change with no visit",
         tags=["applicant"])
def change_text(request: HttpRequest, request_id: str):  # noqa: ANN201
    return {"text": engine().change_text(_own(request, request_id)).decode("utf-8")}


@api.post("/requests/{request_id}/current-key", auth=applicant_auth,
          response={200: RequestOut, 400: Error, 403: Error, 404: Error, 409: Error, 429: Error},
          summary="Proof a change with no visit: the change text signed with the current certificate's key",
          tags=["applicant"])
def current_key(request: HttpRequest, request_id: str, body: Acceptance):  # noqa: ANN201
    return _out(engine().proof_by_current_key(request.auth, request_id, _binary(body.signature, "signature"),
                                              scheme=body.scheme))


@api.post("/requests/{request_id}/cancel", auth=applicant_auth,
          response={200: RequestOut, 403: Error, 404: Error, 409: Error, 429: Error},
          summary="Cancel an open request", tags=["applicant"])
def applicant_cancel(request: HttpRequest, request_id: str):  # noqa: ANN201
    return _out(engine().cancel(request.auth, request_id))


def _own(request: HttpRequest, request_id: str) -> RequestRecord:
    """The request the applicant's tracking code opened, which must be ``request_id``."""
    actor: Actor = request.auth
    if actor.id != request_id:
        raise RuleRefusedError(f"the tracking code given is not that of request {request_id}", rule="applicant",
                               request=request_id)
    return engine().store.get_request(request_id)


def _certificate(record: RequestRecord) -> dict[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    if record.serial is None or record.state not in ("issued", "accepted") or \
            record.kind not in ("issue", "renew", "rekey"):
        raise RuleRefusedError(f"request {record.id} is {record.state}; it has no certificate issued for it",
                               rule="state", request=record.id)
    der = engine().store.get_certificate(record.serial).certificate
    pem = x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode("ascii")
    return {"serial": f"{record.serial:x}", "pem": pem}


# ---- the registration office -----------------------------------------------------------------

def at_office(officer: Actor, request_id: str) -> RequestRecord:
    """A request of the officer's office; or one proved with no visit (no office), to a CA the
    office serves, while it waits for approval or after it was carried out: what the queue shows."""
    record = engine().store.get_request(request_id)
    if record.office is None and record.state in ("awaiting-approval", "approved", "issued", "accepted") and \
            record.proofing.get("method") in ("signed-with-current-key", "automated-inquiry") and \
            record.ca in engine().store.get_office(officer.office or "").cas:
        return record
    if record.office is None or record.office != officer.office:
        raise RuleRefusedError(f"request {request_id} is not at office {officer.office}", rule="office",
                               request=request_id)
    return record


def _at_office(request: HttpRequest, request_id: str) -> RequestRecord:
    return at_office(request.auth, request_id)


@api.get("/office/queue", auth=officer_auth, response={200: list[RequestOut], 403: Error},
         summary="The officer's office's open requests", tags=["office"])
def queue(request: HttpRequest):  # noqa: ANN201
    from iranpki.ra import OPEN_STATES

    office = engine().store.get_office(request.auth.office or "")
    own = engine().store.list_requests(office=office.code, states=OPEN_STATES, limit=500)
    # Requests proofed with no visit (by the registries, or signed with the current key) wait for
    # an approving officer of any office that serves their CA.
    remote = [r for ca in office.cas for r in engine().store.list_requests(ca=ca, states=("awaiting-approval",),
                                                                        limit=500) if r.office is None]
    return [_out(r) for r in sorted(own + remote, key=lambda r: r.created_at)]


@api.post("/office/receive", auth=officer_auth,
          response={200: RequestDetail, 400: Error, 403: Error, 404: Error, 409: Error, 429: Error},
          summary="The applicant at the desk: open the request by its tracking code", tags=["office"])
def receive(request: HttpRequest, body: Lookup):  # noqa: ANN201
    return _detail(engine().receive(request.auth, body.tracking_code, body.second_factor))


@api.get("/office/requests/{request_id}", auth=officer_auth, response={200: RequestDetail, 403: Error, 404: Error},
         summary="A request of the office, with the applicant's details and the proofing", tags=["office"])
def office_request(request: HttpRequest, request_id: str):  # noqa: ANN201
    return _detail(_at_office(request, request_id))


@api.post("/office/requests/{request_id}/proof", auth=officer_auth,
          response={200: RequestOut, 400: Error, 403: Error, 404: Error, 409: Error, 413: Error},
          summary="Record the identity proofing: method, documents with their scans, the signed statement",
          tags=["office"])
def proof(request: HttpRequest, request_id: str, method: Form[str], document_kind: Form[list[str]],  # noqa: ANN201
          document_number: Form[list[str]], scan: File[list[UploadedFile]], statement: Form[str] = "",
          statement_signature: UploadedFile | None = File(None)):
    if not len(document_kind) == len(document_number) == len(scan):
        raise RequestError(f"document_kind ({len(document_kind)}), document_number ({len(document_number)}) and scan "
                           f"({len(scan)}) are given once per document, in the same order")
    documents = []
    for kind, number, upload in zip(document_kind, document_number, scan, strict=True):
        if upload.size is None or upload.size > MAX_DOCUMENT_BYTES:
            raise RequestError(f"scan {upload.name!r}: {upload.size} bytes; a scan is at most "
                               f"{MAX_DOCUMENT_BYTES // (1024 * 1024)} MB")
        documents.append(Document(kind, number, upload.read(), upload.content_type or ""))
    signature = None
    if statement_signature is not None:
        if statement_signature.size is None or statement_signature.size > 64 * 1024:
            raise RequestError("statement_signature: a detached CMS signature is at most 64 kB")
        signature = statement_signature.read()
    return _out(engine().proof(request.auth, request_id, method=method, documents=documents, statement=statement,
                               statement_signature=signature))


@api.post("/office/requests/{request_id}/key", auth=officer_auth,
          response={200: RequestOut, 400: Error, 403: Error, 404: Error, 409: Error},
          summary="Bind the key made on the token at the desk (its CSR and the token's identity)", tags=["office"])
def desk_key(request: HttpRequest, request_id: str, body: DeskKey):  # noqa: ANN201
    device = body.device.dict() if body.device else None
    return _out(engine().bind_key(request.auth, request_id, csr=_binary(body.csr, "csr"), device=device))


@api.post("/office/requests/{request_id}/approve", auth=officer_auth,
          response={200: RequestOut, 403: Error, 404: Error, 409: Error},
          summary="Approve a request (an approving officer)", tags=["office"])
def approve(request: HttpRequest, request_id: str):  # noqa: ANN201
    return _out(engine().approve(request.auth, request_id))


@api.post("/office/requests/{request_id}/reject", auth=officer_auth,
          response={200: RequestOut, 400: Error, 403: Error, 404: Error, 409: Error},
          summary="Reject a request, saying why", tags=["office"])
def reject(request: HttpRequest, request_id: str, body: Reason):  # noqa: ANN201
    return _out(engine().reject(request.auth, request_id, body.reason))


@api.post("/office/requests/{request_id}/cancel", auth=officer_auth,
          response={200: RequestOut, 403: Error, 404: Error, 409: Error},
          summary="Cancel a request (the applicant asked at the desk)", tags=["office"])
def office_cancel(request: HttpRequest, request_id: str):  # noqa: ANN201
    return _out(engine().cancel(request.auth, request_id))


@api.get("/office/requests/{request_id}/certificate", auth=officer_auth,
         response={200: CertificateOut, 403: Error, 404: Error, 409: Error},
         summary="The certificate issued for the request, to write onto the token", tags=["office"])
def office_certificate(request: HttpRequest, request_id: str):  # noqa: ANN201
    return _certificate(_at_office(request, request_id))


@api.post("/office/requests/{request_id}/hand-over", auth=officer_auth,
          response={200: RequestOut, 400: Error, 403: Error, 404: Error, 409: Error},
          summary="Record that the token was handed to the subscriber", tags=["office"])
def hand_over(request: HttpRequest, request_id: str, body: HandOver):  # noqa: ANN201
    return _out(engine().hand_over(request.auth, request_id, body.token_serial))

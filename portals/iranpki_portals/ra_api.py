"""The RA's JSON API (OpenAPI 3.1 at ``/api/ra/openapi.json``; committed in docs/ra-openapi.json).

Applicants authenticate with the tracking code and their second factor (national code or ID),
rate limited per client address; officers with the TLS client certificate on their token, which
the server verified and hands over as ``SSL_CLIENT_CERT``. Every call is one engine call; every
refusal is a JSON error naming the field or the rule, never a trace.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.http import HttpRequest
from ninja import NinjaAPI, Schema
from ninja.errors import ValidationError as NinjaValidationError

from iranpki.errors import (
    ConcurrentChangeError,
    IranPkiError,
    NotFoundError,
    RateLimitedError,
    RequestError,
    RuleRefusedError,
    ValidationError,
)
from iranpki.ra import Actor, RegistrationAuthority
from iranpki.store import RequestRecord

api = NinjaAPI(title="iranpki registration authority", version="1",
               description="Registration of certificate requests, their status for the applicant, and the "
                           "registration office's queue (docs/registration.md).")
_local = threading.local()


def engine() -> RegistrationAuthority:
    """This thread's engine over the workspace's store (a store connection is not shared)."""
    ra = getattr(_local, "ra", None)
    if ra is None:
        from iranpki.workspace import Workspace

        ra = _local.ra = Workspace.open(os.environ.get("IRANPKI_HOME")).registration()
    return ra


class Applicant(Schema):
    national_code: str | None = None
    national_id: str | None = None
    given_name: str | None = None
    surname: str | None = None
    mobile: str | None = None


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


class Lookup(Schema):
    tracking_code: str
    second_factor: str


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


class Registered(Schema):
    request: RequestOut
    tracking_code: str


class Error(Schema):
    error: dict[str, Any]


def _out(r: RequestRecord) -> dict[str, Any]:
    return {"id": r.id, "kind": r.kind, "profile": r.profile, "level": r.level, "ca": r.ca, "state": r.state,
            "office": r.office, "key_location": r.key_location, "serial": None if r.serial is None else f"{r.serial:x}",
            "expires_at": r.expires_at.isoformat()}


def _client(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "unknown")


def _officer(request: HttpRequest) -> Actor:
    """The officer whose verified client certificate this connection presented."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    pem = request.META.get("SSL_CLIENT_CERT")
    if not pem or request.META.get("SSL_CLIENT_VERIFY") != "SUCCESS":
        raise RuleRefusedError("this call is for registration officers: connect with the client certificate on "
                               "your token", rule="officer")
    der = x509.load_pem_x509_certificate(pem.encode("ascii")).public_bytes(Encoding.DER)
    return engine().authenticate(der)


def _error(request: HttpRequest, status: int, code: str, message: str, **details: Any):  # noqa: ANN202
    return api.create_response(request, {"error": {"code": code, "message": message, **details}}, status=status)


@api.exception_handler(NinjaValidationError)
def _invalid(request: HttpRequest, exc: NinjaValidationError):  # noqa: ANN202
    first = exc.errors[0] if exc.errors else {}
    field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "payload"))
    return _error(request, 400, "invalid", f"{field or 'the request'}: {first.get('msg', 'invalid')}", field=field)


@api.exception_handler(IranPkiError)
def _refused(request: HttpRequest, exc: IranPkiError):  # noqa: ANN202
    if isinstance(exc, RateLimitedError):
        response = _error(request, 429, "rate-limited", str(exc), retry_after=exc.retry_after)
        response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, RuleRefusedError):
        status = 403 if exc.rule in ("officer", "officer-certificate", "office-status", "actor") else 409
        return _error(request, status, "rule", str(exc), rule=exc.rule, request_id=exc.request)
    if isinstance(exc, ConcurrentChangeError):
        return _error(request, 409, "changed", str(exc))
    if isinstance(exc, NotFoundError):
        return _error(request, 404, "not-found", str(exc))
    if isinstance(exc, (RequestError, ValidationError)):
        return _error(request, 400, "invalid", str(exc))
    return _error(request, 400, type(exc).__name__, str(exc))


@api.exception_handler(Exception)
def _fault(request: HttpRequest, exc: Exception):  # noqa: ANN202
    return _error(request, 500, "internal", "the RA could not answer; nothing was changed by this call if it "
                  "returned this error. The operator finds the cause in the audit log")


@api.post("/requests", response={201: Registered, 400: Error, 404: Error, 409: Error}, summary="Register a request")
def register(request: HttpRequest, body: Registration):  # noqa: ANN201
    applicant = {k: v for k, v in body.applicant.dict().items() if v is not None}
    names = body.names.dict() if body.names else None
    made = engine().register(profile=body.profile, level=body.level, ca=body.ca, applicant=applicant,
                             subject=body.subject, key_location=body.key_location,
                             names={k: v for k, v in (names or {}).items() if v} or None)
    return 201, {"request": _out(made.request), "tracking_code": made.code}


@api.post("/requests/lookup", response={200: RequestOut, 400: Error, 404: Error, 429: Error},
          summary="A request's status, for its applicant")
def lookup(request: HttpRequest, body: Lookup):  # noqa: ANN201
    return _out(engine().lookup(body.tracking_code, body.second_factor, client=_client(request)))


@api.get("/office/queue", response={200: list[RequestOut], 403: Error}, summary="The officer's office's open requests")
def queue(request: HttpRequest):  # noqa: ANN201
    from iranpki.ra import OPEN_STATES

    officer = _officer(request)
    return [_out(r) for r in engine().store.list_requests(office=officer.office, states=OPEN_STATES, limit=500)]


@api.post("/office/requests/{request_id}/approve", response={200: RequestOut, 403: Error, 404: Error, 409: Error},
          summary="Approve a request (an approving officer)")
def approve(request: HttpRequest, request_id: str):  # noqa: ANN201
    return _out(engine().approve(_officer(request), request_id))

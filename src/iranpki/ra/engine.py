"""The registration authority: requests from registration to issuance, checked at every step.

A request of kind ``issue`` moves::

    submitted --receive--> awaiting-proofing --proof--> proofed --bind_key--> awaiting-approval
        --approve (as many as the level asks)--> approved --(CA side) issued--> issued --accept--> accepted

and any open request may end ``rejected`` (by an officer), ``cancelled`` (by the applicant or an
officer) or ``expired`` (past its expiry). A level-1 request whose key is on the applicant's phone
or in a software file may be proofed by automated inquiry (:meth:`RegistrationAuthority.inquire`)
with no visit. Requests about an existing certificate (revoke, suspend, release, renew, re-key,
and ``recover``: its archived encryption key back to its subscriber, see :mod:`iranpki.keys.escrow`)
take the same path; ``issued`` then means carried out.

Every transition names who (an :class:`Actor`), where (the officer's office) and when; it is
checked against the rules (:mod:`iranpki.ra.rules` and the national CP) and written with its
request event and audit event in one transaction, compared against the version read, so of two
officers acting at once exactly one wins. A refused transition raises
:class:`~iranpki.errors.RuleRefusedError` naming the rule. The engine holds no CA key: issuance
is done by the CA side (:mod:`iranpki.ra.worker`), which reads approved requests from the store.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from ..clock import Clock, SystemClock
from ..errors import (
    ConcurrentChangeError,
    NotFoundError,
    RateLimitedError,
    RequestError,
    RuleRefusedError,
)
from ..identity import check_legal_entity_id, check_national_code
from ..inputs import one_certificate
from ..names import check_text
from ..policy import CertificatePolicy, load_policy
from ..profiles import load_profile
from ..store import AuditEvent, Store
from ..store.registration import (
    DeviceApprovalRecord,
    EvidenceRecord,
    OfficeRecord,
    OfficerRecord,
    RequestEvent,
    RequestRecord,
    RequestUpdate,
)
from .codes import code_hash, new_code, normalise_code
from .registry import IdentityRegistry
from .rules import RaRules, load_rules

__all__ = [
    "CHANGE_KINDS",
    "KEY_MATERIAL",
    "REQUEST_KINDS",
    "OPEN_STATES",
    "STATES",
    "Actor",
    "Document",
    "Registered",
    "RegistrationAuthority",
]

REQUEST_KINDS = ("issue", "renew", "rekey", "revoke", "suspend", "release", "recover")
CHANGE_KINDS = ("revoke", "suspend", "release", "renew", "rekey", "recover")
#: What a request's proofing holds of keys (encrypted, archived, sealed): never shown or exported.
KEY_MATERIAL = ("software_key", "archived_key", "transport", "sealed_key")
#: Changes that alter the certificate; one at a time (a recovery of its archived key does not).
_STATUS_CHANGES = ("revoke", "suspend", "release", "renew", "rekey")
STATES = ("submitted", "awaiting-proofing", "proofed", "awaiting-approval", "approved", "issued", "accepted",
          "rejected", "cancelled", "expired")
OPEN_STATES = ("submitted", "awaiting-proofing", "proofed", "awaiting-approval", "approved")
OFFICE_STATUSES = ("active", "suspended", "cancelled")
#: A scan larger than this is refused unread; the types are checked by their first bytes.
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
#: Failed automated inquiries of one request before it needs a visit.
MAX_INQUIRIES = 3
#: Wrong passphrases for a request's software key before it is locked.
MAX_PASSPHRASE_TRIES = 5
#: Documents an applicant may upload to one request before the visit.
MAX_APPLICANT_DOCUMENTS = 8
#: Wrong one-time codes of an officer in ONE_TIME_CODE_WINDOW before their logins are refused for it.
MAX_ONE_TIME_CODE_FAILURES = 5
ONE_TIME_CODE_WINDOW = timedelta(minutes=15)
_MAGIC = {"image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",), "application/pdf": (b"%PDF-",)}


@dataclass(frozen=True)
class Actor:
    """Who acts: an ``officer`` (of ``office``, with ``roles``), the ``applicant`` (having shown
    the tracking code and second factor), the CA ``operator``, the CA-side ``worker`` or the
    identity ``registry``."""

    kind: Literal["officer", "applicant", "operator", "worker", "registry"]
    id: str
    office: str | None = None
    roles: tuple[str, ...] = ()
    #: For an applicant: the tracking code shown (:meth:`RegistrationAuthority.applicant`), checked
    #: against the request's code hash at every step; an applicant Actor made without it is refused.
    credential: str = field(default="", repr=False, compare=False)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class Document:
    """An identity document an officer checked: its kind (``national-id-card``, ...), number,
    and the scan (JPEG, PNG or PDF)."""

    kind: str
    number: str
    data: bytes
    media_type: str


@dataclass(frozen=True)
class Registered:
    """A new request and its tracking code (shown to the applicant once; only its hash is kept)."""

    request: RequestRecord
    code: str = field(repr=False)


class RegistrationAuthority:
    """The engine over a store. Thread-safe as far as the store is."""

    def __init__(self, store: Store, *, rules: RaRules | None = None, policy: CertificatePolicy | None = None,
                 clock: Clock | None = None, registry: IdentityRegistry | None = None):
        self.store = store
        self.policy = policy or load_policy()
        self.rules = rules or load_rules(policy=self.policy)
        self.clock = clock or SystemClock()
        self.registry = registry

    # ---- offices and officers (the CA operator) ----------------------------------------------

    def create_office(self, code: str, name: str, city: str, cas: Sequence[str], actor: Actor) -> OfficeRecord:
        self._operator(actor)
        check_text(code, "office code")
        if not code or len(code) > 32 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in code):
            raise RequestError(f"office code {code!r} must be 1 to 32 ASCII letters, digits, '-' or '_'")
        for ca in cas:
            self.store.get_ca(ca)
        if not cas:
            raise RequestError("an office serves at least one CA; give --ca NAME")
        record = OfficeRecord(code, check_text(name, "office name"), check_text(city, "city"), tuple(cas), "active",
                              self.clock.now())
        self.store.add_office(record, AuditEvent("ra.office.created", code, str(actor),
                                                 {"name": name, "city": city, "cas": list(cas)}))
        return record

    def set_office_status(self, code: str, status: str, actor: Actor) -> OfficeRecord:
        self._operator(actor)
        if status not in OFFICE_STATUSES:
            raise RequestError(f"office status {status!r} must be one of {', '.join(OFFICE_STATUSES)}")
        current = self.store.get_office(code)
        if current.status == "cancelled" and status != "cancelled":
            raise RuleRefusedError(f"office {code!r} is cancelled; a cancelled office is not reopened: create a new one",
                                   rule="office-status")
        return self.store.set_office_status(code, status, AuditEvent("ra.office.status", code, str(actor),
                                                                     {"from": current.status, "to": status}))

    def check_enrolment(self, officer_id: str, office: str, roles: Sequence[str], actor: Actor) -> None:
        """Refuse an enrolment before anything is made for it (a certificate issued for nothing)."""
        self._operator(actor)
        check_text(officer_id, "officer id")
        unknown = [r for r in roles if r not in self.rules.roles]
        if unknown or not roles:
            raise RequestError(f"officer roles {list(roles)!r}: each must be one of {', '.join(self.rules.roles)}")
        if self.store.get_office(office).status != "active":
            raise RuleRefusedError(f"office {office!r} is not active; officers are enrolled in active offices only",
                                   rule="office-status")
        if any(o.id == officer_id for o in self.store.list_officers()):
            from ..errors import DuplicateError

            raise DuplicateError(f"officer {officer_id!r} is enrolled already; choose another id")

    def remove_officer(self, officer_id: str, actor: Actor) -> OfficerRecord:
        """An officer who leaves: they can do nothing from now on (their history stays)."""
        self._operator(actor)
        return self.store.set_officer_status(officer_id, "removed", AuditEvent("ra.officer.removed", officer_id,
                                                                               str(actor)))

    def enrol_officer(self, officer_id: str, office: str, name: str, roles: Sequence[str], actor: Actor, *,
                      certificate: bytes | None = None) -> OfficerRecord:
        """Record an officer of ``office``; ``certificate`` (DER) is the officer's client
        certificate on the officer's token (profile ``ra-officer``), by which they authenticate."""
        self.check_enrolment(officer_id, office, roles, actor)
        fingerprint = hashlib.sha256(certificate).hexdigest() if certificate is not None else None
        record = OfficerRecord(officer_id, office, check_text(name, "officer name"), tuple(dict.fromkeys(roles)),
                               "active", self.clock.now(), certificate, fingerprint)
        self.store.add_officer(record, AuditEvent("ra.officer.enrolled", officer_id, str(actor),
                                                  {"office": office, "roles": list(roles), "certificate": fingerprint}))
        return record

    def enrol_one_time_codes(self, officer_id: str, actor: Actor) -> str:
        """Give officer ``officer_id`` a new one-time-code (TOTP, RFC 6238: HMAC-SHA1, 6 digits,
        30 seconds, as authenticator apps make them) secret, replacing any before; the CA
        operator's. Returns the ``otpauth://`` URI to load into the officer's authenticator, shown
        once (the store keeps the secret, never a log)."""
        import base64
        from urllib.parse import quote

        self._operator(actor)
        officer = self.store.get_officer(officer_id)
        secret = secrets.token_bytes(20)
        self.store.set_officer_totp(officer.id, secret, self.clock.now(),
                                    AuditEvent("ra.officer.one-time-codes", officer.id, str(actor), {}))
        label = quote(f"iranpki RA:{officer.id}")
        return (f"otpauth://totp/{label}?secret={base64.b32encode(secret).decode('ascii').rstrip('=')}"
                f"&issuer={quote('iranpki RA')}&algorithm=SHA1&digits=6&period=30")

    def check_one_time_code(self, officer: Actor, code: str) -> Actor:
        """The officer's second factor at login: ``code`` from their authenticator, valid in this
        30-second step or the one before or after (clocks drift), used once only (a code seen is
        refused again), and at most MAX_ONE_TIME_CODE_FAILURES wrong codes in 15 minutes."""
        from cryptography.hazmat.primitives.hashes import SHA1
        from cryptography.hazmat.primitives.twofactor import InvalidToken
        from cryptography.hazmat.primitives.twofactor.totp import TOTP

        current = self.officer(officer.id)
        secret = self.store.officer_totp(current.id)
        if secret is None:
            raise RuleRefusedError(f"officer {current.id!r} has no one-time codes enrolled; the CA operator enrols "
                                   f"them (iranpki ra officer codes {current.id})", rule="one-time-code")
        now = self.clock.now()
        failures = f"otp-failed:{current.id}"
        if self.store.count_attempts(failures, now - ONE_TIME_CODE_WINDOW) >= MAX_ONE_TIME_CODE_FAILURES:
            raise RateLimitedError(f"too many wrong one-time codes for officer {current.id!r}; try again in 15 "
                                   "minutes", retry_after=int(ONE_TIME_CODE_WINDOW.total_seconds()))
        typed = "".join(code.split())
        totp = TOTP(secret, 6, SHA1(), 30, enforce_key_length=False)
        moment = int(now.timestamp())
        for step in (0, -30, 30):
            try:
                if typed.isdigit() and len(typed) == 6:
                    totp.verify(typed.encode("ascii"), moment + step)
                else:
                    raise InvalidToken
            except InvalidToken:
                continue
            used = f"otp-used:{current.id}:{(moment + step) // 30}"
            # Recorded and counted in one transaction: of two sign-ins with one code, one wins.
            if self.store.count_attempts(used, now - timedelta(minutes=3), add_at=now) > 1:
                raise RuleRefusedError("this one-time code was used already; wait for the next one",
                                       rule="one-time-code")
            return current
        self.store.count_attempts(failures, now - ONE_TIME_CODE_WINDOW, add_at=now)
        raise RuleRefusedError("the one-time code is not the one your authenticator shows now (6 digits)",
                               rule="one-time-code")

    def record_device_approval(self, attestation: bytes, actor: Actor, *, trust_roots: Sequence[bytes] | None = None,
                               intermediates: Sequence[bytes] = ()) -> DeviceApprovalRecord:
        """Record a lab approval of a token model (the attestation ``iranpki conformance approve``
        makes), verified now against the lab's certificate path to ``trust_roots`` (default: the
        national root). Only tokens of an approved model, within the approval's period, take keys
        at the desk."""
        from ..conformance.attestation import verify_approval

        self._operator(actor)
        approval = verify_approval(attestation, trust_roots, intermediates=intermediates, at=self.clock.now())
        counts = approval.summary.get("by_verdict") or {}
        if any(int(counts.get(v) or 0) for v in ("fail", "error")):
            raise RuleRefusedError(f"approval {approval.approval_id} rests on a report with failed or erred cases "
                                   f"({counts}); no token model is approved on it", rule="device-approval")
        module = approval.module
        manufacturer, model = (module.get("token_manufacturer") or "").strip(), (module.get("token_model") or "").strip()
        if not manufacturer or not model:
            raise RequestError(f"approval {approval.approval_id} names no token manufacturer and model")
        record = DeviceApprovalRecord(approval.approval_id, manufacturer, model, approval.issued_at, approval.valid_until,
                                      approval.lab, self.clock.now())
        self.store.add_device_approval(record, attestation, AuditEvent(
            "ra.device.approved", approval.approval_id, str(actor),
            {"manufacturer": manufacturer, "model": model, "valid_until": approval.valid_until.isoformat(),
             "lab": approval.lab, "signer": approval.signer}))
        return record

    def _check_device(self, record: RequestRecord, device: dict[str, str]) -> None:
        manufacturer, model = device.get("manufacturer", "").strip(), device.get("model", "").strip()
        now = self.clock.now()
        valid = [a for a in self.store.device_approvals(manufacturer, model) if a.issued_at <= now <= a.valid_until]
        if not valid:
            raise RuleRefusedError(f"the token in the reader ({manufacturer} {model}, serial {device.get('serial')}) is "
                                   "not of a model the lab approved, or its approval has lapsed; use an approved token",
                                   rule="device-approval", request=record.id)

    def officer(self, officer_id: str) -> Actor:
        """The acting officer, refused when the officer or their office may not act now."""
        record = self.store.get_officer(officer_id)
        return self._officer_actor(record)

    def authenticate(self, certificate: bytes) -> Actor:
        """The officer whose enrolled client certificate is ``certificate`` (DER), if it is still
        valid and not revoked; the TLS layer has verified that the client holds its key."""
        from cryptography import x509

        record = self.store.officer_by_fingerprint(hashlib.sha256(certificate).hexdigest())
        if record is None:
            raise RuleRefusedError("this certificate belongs to no enrolled registration officer", rule="officer")
        cert = x509.load_der_x509_certificate(certificate)
        now = self.clock.now()
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise RuleRefusedError(f"officer {record.id!r}'s certificate is valid {cert.not_valid_before_utc:%Y-%m-%d} to "
                                   f"{cert.not_valid_after_utc:%Y-%m-%d}, not now; the CA operator issues a new one",
                                   rule="officer-certificate")
        try:
            stored = self.store.get_certificate(cert.serial_number)
        except NotFoundError:
            raise RuleRefusedError(f"officer {record.id!r}'s certificate was not issued by a CA of this store, so its "
                                   "revocation cannot be checked; enrol a certificate a CA here issued",
                                   rule="officer-certificate") from None
        if stored.certificate != certificate or stored.revoked_at is not None:
            raise RuleRefusedError(f"officer {record.id!r}'s certificate is revoked", rule="officer-certificate")
        return self._officer_actor(record)

    def _officer_actor(self, record: OfficerRecord) -> Actor:
        if record.status != "active":
            raise RuleRefusedError(f"officer {record.id!r} is {record.status}", rule="officer")
        office = self.store.get_office(record.office)
        if office.status != "active":
            raise RuleRefusedError(f"office {office.code!r} is {office.status}: its officers can do nothing; its "
                                   "pending requests are listed to the CA", rule="office-status")
        return Actor("officer", record.id, record.office, record.roles)

    # ---- registration (the applicant) --------------------------------------------------------

    def register(self, *, profile: str, level: int, ca: str, applicant: dict[str, str], subject: str,
                 key_location: str, actor: Actor | None = None, names: dict[str, list[str]] | None = None,
                 client: str | None = None) -> Registered:
        """A new request to issue a certificate of ``profile`` at ``level`` from ``ca``. The
        applicant's ``national_code`` (a person) or ``national_id`` (an organisation) is the
        second factor of every later lookup. ``names`` adds ``dns``, ``ips`` and ``emails`` to
        the certificate (an S/MIME address, a server's names), checked by the profile at issuance.
        Registrations from one ``client`` (an address) are limited per window by the rules."""
        from ..ca import parse_subject

        self._throttle(f"register:{client}", self.rules.lookup.registrations_per_window, "registrations", client)

        load_profile(profile)
        self.rules.profile(profile)
        rule = self.rules.level(level)
        record = self.store.get_ca(ca)
        self._ca_serves(record, profile, level)
        allowed = self.rules.allowed_key_locations(profile, level, self.policy)
        if key_location not in allowed:
            raise RuleRefusedError(
                f"a {profile} certificate at level {level} may not have its key at {key_location!r}; allowed: "
                f"{', '.join(allowed) or 'none (the CP asks for more than a subscriber key location offers)'}",
                rule="key-location")
        parse_subject(subject)
        names = {k: [check_text(str(v), f"{k} name") for v in vs] for k, vs in (names or {}).items()}
        if set(names) - {"dns", "ips", "emails"}:
            raise RequestError(f"names {sorted(set(names) - {'dns', 'ips', 'emails'})} are not offered; give dns, ips "
                               "or emails")
        applicant = self._applicant(applicant)
        if self.escrowed(profile):
            self._recovery_key()  # refused now, not after the visit
        code = new_code()
        now = self.clock.now()
        request = RequestRecord(
            id=secrets.token_hex(8), code_hash=code_hash(code), kind="issue", profile=profile, level=level, ca=ca,
            state="submitted", applicant=applicant, subject=subject, key_location=key_location, created_at=now,
            updated_at=now, expires_at=now + timedelta(days=rule.request_expiry_days), names=names)
        who = actor or Actor("applicant", request.id)
        self.store.add_request(request, RequestEvent(request.id, now, str(who), None, None, "submitted",
                                                     {"profile": profile, "level": level, "ca": ca}),
                               AuditEvent("ra.request.submitted", request.id, str(who),
                                          {"kind": "issue", "profile": profile, "level": level, "ca": ca}))
        return Registered(request, code)

    def offers(self) -> list[tuple[str, int, str, tuple[str, ...]]]:
        """What an applicant may ask for here: (profile, level, the CA that issues it, the key
        locations allowed), for every profile the rules take and level a CA of this store serves."""
        out = []
        cas = [c for c in self.store.list_cas() if c.kind == "intermediate"]
        for profile in sorted(self.rules.profiles):
            for level in (1, 2, 3, 4):
                locations = self.rules.allowed_key_locations(profile, level, self.policy)
                if not locations:
                    continue
                for ca in cas:
                    try:
                        self._ca_serves(ca, profile, level)
                    except RuleRefusedError:
                        continue
                    out.append((profile, level, ca.name, locations))
                    break
        return out

    def request_change(self, kind: str, serial: int, *, second_factor: str, reason: str | None = None,
                       key_location: str | None = None, passphrase: str | None = None,
                       client: str | None = None) -> Registered:
        """A request to revoke, suspend, release, renew, re-key or recover the key of the
        certificate ``serial``, by its subscriber (``second_factor``: the national code or
        legal-entity ID the certificate names). A re-key names where the new key will be
        (``key_location``), as a new request would. A recovery (of an archived encryption key,
        whatever the certificate's status now) takes the ``passphrase`` that will protect the
        recovered key: a transport key is made under it here, so that the key reaches the
        subscriber alone. A wrong serial or second factor counts as a failed lookup of ``client``,
        as a guessed tracking code does."""
        if kind not in CHANGE_KINDS:
            raise RequestError(f"request kind {kind!r} must be one of {', '.join(CHANGE_KINDS)}")
        self._throttle(f"lookup:{client}", self.rules.lookup.failures_per_window, "failed lookups", client,
                       count=False)
        self._throttle(f"register:{client}", self.rules.lookup.registrations_per_window, "registrations", client)
        try:
            cert = self.store.get_certificate(serial)
        except NotFoundError:
            cert = None
        if cert is None or not _names_subscriber(cert.certificate, second_factor):
            # A certificate that names no identifier (an S/MIME address): its subscriber is the
            # applicant of the request it was issued for.
            issued_for = [r for r in self.store.list_requests(serial=serial, states=("issued", "accepted"))
                          if r.kind in ("issue", "renew", "rekey")]
            if cert is None or not any(_same_factor(r, second_factor) for r in issued_for):
                if client is not None:
                    now = self.clock.now()
                    self.store.count_attempts(f"lookup:{client}", now - timedelta(
                        minutes=self.rules.lookup.window_minutes), add_at=now)
                raise NotFoundError(f"no certificate {serial:x} of a subscriber with that national code or ID")
        carried: dict[str, object] = {}
        if kind == "recover":
            carried["transport"] = self._transport(serial, passphrase)
        elif kind == "renew" and self.archived_key(serial) is not None:
            carried["archive_of"] = f"{serial:x}"  # the renewed certificate's key is the archived one
        if kind != "recover" and passphrase is not None:
            raise RequestError(f"only a recovery takes a passphrase; a {kind} does not")
        if kind == "renew" and self.escrowed(cert.profile) and "archive_of" not in carried:
            raise RuleRefusedError(f"certificate {serial:x} is a {cert.profile} certificate whose key was not archived; "
                                   "a renewal would certify it again unrecoverable: ask for a re-key (a new key, "
                                   "archived) instead", rule="key-recovery")
        if kind != "recover":  # a recovery changes nothing of the certificate: it neither waits nor blocks
            self._no_other_change(serial)
        if kind == "release" and cert.status != "on hold":
            raise RuleRefusedError(f"certificate {serial:x} is {cert.status}; only a suspended one is released",
                                   rule="certificate-status")
        if kind not in ("release", "recover") and cert.status != "valid":
            raise RuleRefusedError(f"certificate {serial:x} is {cert.status}", rule="certificate-status")
        if kind in ("revoke", "suspend") and reason is None:
            reason = "certificateHold" if kind == "suspend" else "unspecified"
        if reason is not None:
            from ..store import Reason

            try:
                reason = Reason.parse(reason).name
            except ValueError as exc:
                raise RequestError(str(exc)) from None
        ca = self.store.get_ca(cert.ca)
        if kind == "rekey":
            allowed = self.rules.allowed_key_locations(cert.profile, ca.level or 1, self.policy)
            if key_location not in allowed:
                raise RuleRefusedError(f"the new key of a level {ca.level} {cert.profile} certificate may be at "
                                       f"{', '.join(allowed) or 'nowhere a subscriber offers'}; not {key_location!r}",
                                       rule="key-location")
        elif key_location is not None:
            raise RequestError(f"only a re-key names a key location; a {kind} keeps the key it has")
        code = new_code()
        now = self.clock.now()
        request = RequestRecord(
            id=secrets.token_hex(8), code_hash=code_hash(code), kind=kind, profile=cert.profile, level=ca.level or 1,
            ca=cert.ca, state="submitted", applicant={"second_factor": _factor(second_factor).decode("utf-8")},
            subject=cert.subject,
            key_location=key_location, created_at=now, updated_at=now,
            expires_at=now + timedelta(days=self.rules.level(ca.level or 1).request_expiry_days), serial=serial,
            reason=reason, proofing=carried)
        self.store.add_request(request, RequestEvent(request.id, now, f"applicant:{request.id}", None, None, "submitted",
                                                     {"kind": kind, "serial": f"{serial:x}"}),
                               AuditEvent("ra.request.submitted", request.id, f"applicant:{request.id}",
                                          {"kind": kind, "serial": f"{serial:x}", "reason": reason}))
        return Registered(request, code)

    def archived_key(self, serial: int) -> tuple[RequestRecord, dict[str, object]] | None:
        """The request certificate ``serial`` was issued for and the archive of its key, if the
        key was archived (an escrowed profile's software key, :meth:`bind_key`)."""
        for _ in range(100):  # a renewal keeps the key: follow it to the request that archived it
            issued = [r for r in self.store.list_requests(serial=serial, states=("issued", "accepted"))
                      if r.kind in ("issue", "rekey", "renew")]
            for r in issued:
                if r.kind in ("issue", "rekey") and isinstance(r.proofing.get("archived_key"), dict):
                    return r, r.proofing["archived_key"]  # type: ignore[return-value]
            renewed = next((r for r in issued if r.kind == "renew" and "archive_of" in r.proofing), None)
            if renewed is None:
                return None
            serial = int(str(renewed.proofing["archive_of"]), 16)
        return None

    def _transport(self, serial: int, passphrase: str | None) -> dict[str, str]:
        """A recovery's transport key under the subscriber's ``passphrase`` (public key and
        encrypted private key, base64 and PEM), if certificate ``serial``'s key was archived."""
        import base64

        from ..keys import escrow

        if self.policy.key_recovery is None or "recover" not in self.rules.changes:
            raise RuleRefusedError("this CA's policy recovers no key (the CP has no key_recovery, or the RA rules no "
                                   "changes.recover)", rule="key-recovery")
        if self.archived_key(serial) is None:
            escrowed = ", ".join(self.policy.key_recovery.profiles) if self.policy.key_recovery else "none"
            raise RuleRefusedError(f"the key of certificate {serial:x} was not archived, so it cannot be recovered: only "
                                   f"the encryption keys of the profiles the CP escrows ({escrowed}) made by the RA "
                                   "are; a signature key never is", rule="key-recovery")
        if passphrase is None or len(passphrase) < escrow.MIN_PASSPHRASE:
            raise RequestError(f"a recovered key is handed out under the subscriber's passphrase of at least "
                               f"{escrow.MIN_PASSPHRASE} characters, given when asking; give one")
        public, private = escrow.transport_key(passphrase)
        return {"public": base64.b64encode(public).decode("ascii"), "private": base64.b64encode(private).decode("ascii")}

    def _no_other_change(self, serial: int, but: str | None = None) -> None:
        """Refuse while another change of certificate ``serial`` is proved and not yet decided.
        Only a proved one blocks: a request anyone who knows the serial and national code can
        file must not stop the subscriber's own (the first proved goes on, the others wait). A
        recovery of the archived key neither blocks nor waits: it changes nothing of the certificate."""
        pending = [r for r in self.store.list_requests(serial=serial, states=("proofed", "awaiting-approval", "approved"))
                   if r.kind in _STATUS_CHANGES and r.id != but]
        if pending:
            raise RuleRefusedError(f"certificate {serial:x} has an open {pending[0].kind} request already "
                                   f"({pending[0].id}); it is decided first", rule="pending-change",
                                   request=but)

    def _throttle(self, key: str, limit: int, what: str, client: str | None, *, count: bool = True) -> None:
        """Refuse when ``client`` made ``limit`` ``what`` in the rules' window; else count this one."""
        if client is None:
            return
        now = self.clock.now()
        minutes = self.rules.lookup.window_minutes
        since = now - timedelta(minutes=minutes)
        if self.store.count_attempts(key, since) >= limit:
            raise RateLimitedError(f"too many {what} from {client}; try again in {minutes} minutes",
                                   retry_after=minutes * 60)
        if count:
            self.store.count_attempts(key, since, add_at=now)

    def submit_document(self, applicant: Actor, request_id: str, document: Document) -> RequestRecord:
        """The applicant uploads a document's scan before the visit (checked as an officer's
        scan is: kind, size, type by its first bytes); the officer compares it with the original
        at the desk. Kept in the step that records it; at most MAX_APPLICANT_DOCUMENTS."""
        record = self.store.get_request(request_id)
        applicant = self._applicant_may(applicant, record)
        if record.state not in ("submitted", "awaiting-proofing"):
            raise RuleRefusedError(f"request {request_id} is {record.state}; documents are uploaded before proofing",
                                   rule="state", request=request_id)
        self._check_document(document)
        have = self.store.list_evidence(request_id)
        if len(have) >= MAX_APPLICANT_DOCUMENTS:
            raise RuleRefusedError(f"request {request_id} has {len(have)} documents already; at most "
                                   f"{MAX_APPLICANT_DOCUMENTS} are uploaded", rule="documents", request=request_id)
        digest = hashlib.sha256(document.data).hexdigest()
        if any(e.sha256 == digest for e in have):
            raise RequestError("this scan was uploaded already; upload each document once")
        evidence = ((EvidenceRecord(request_id, digest, document.kind, document.number, document.media_type,
                                    len(document.data), str(applicant), self.clock.now()), document.data),)
        return self._move(record, applicant, record.state, expect=(record.state,), evidence=evidence,
                          details={"document": {"kind": document.kind, "sha256": digest, "size": len(document.data)}})

    def certificates_of(self, applicant: Actor) -> list[tuple[RequestRecord, object]]:
        """The certificates issued to the applicant who showed a tracking code: every request of
        theirs (same national code or ID) that issued one, with the certificate's record, newest
        first. Only once the identity behind this request was proved (proofed at an office, by
        the registries or with a certificate's key): anyone may register with a national code."""
        record = self.store.get_request(applicant.id)
        self._applicant_may(applicant, record)
        if not record.proofing.get("method"):
            return []
        factor = next(record.applicant[k] for k in ("national_code", "national_id", "second_factor")
                      if record.applicant.get(k))
        out = []
        for r in self.store.list_requests(second_factor=factor, states=("issued", "accepted"), limit=500):
            if r.kind in ("issue", "renew", "rekey") and r.serial is not None:
                out.append((r, self.store.get_certificate(r.serial)))
        return sorted(out, key=lambda x: x[1].issued_at, reverse=True)

    def lookup(self, code: str, second_factor: str, *, client: str) -> RequestRecord:
        """The request of tracking ``code``, for its applicant (``second_factor``). Failures are
        counted per ``client`` (an address): past the rules' limit in the window, every lookup
        from it is refused until the window has passed, right or wrong."""
        now = self.clock.now()
        window = timedelta(minutes=self.rules.lookup.window_minutes)
        key = f"lookup:{client}"
        if self.store.count_attempts(key, now - window) >= self.rules.lookup.failures_per_window:
            raise RateLimitedError(f"too many failed tracking-code lookups from {client}; try again in "
                                   f"{self.rules.lookup.window_minutes} minutes",
                                   retry_after=self.rules.lookup.window_minutes * 60)
        try:
            record = self.store.request_by_code(code_hash(code))
        except RequestError:  # a mistyped code: said so, and counted like any failure
            self.store.count_attempts(key, now - window, add_at=now)
            raise
        if record is None or not _same_factor(record, second_factor):
            self.store.count_attempts(key, now - window, add_at=now)
            raise NotFoundError("no request has this tracking code and national code (or ID); check both on the "
                                "registration receipt")
        return record

    # ---- at the office (officers) ------------------------------------------------------------

    def receive(self, officer: Actor, code: str, second_factor: str) -> RequestRecord:
        """The applicant at the desk: the officer opens the request by its code."""
        officer = self.officer(officer.id)  # who the store says this is, before any code is looked up
        record = self.lookup(code, second_factor, client=f"officer:{officer.id}")
        officer = self._officer_may(officer, record, "proofing")
        return self._move(record, officer, "awaiting-proofing", expect=("submitted",), changes={"office": officer.office})

    def proof(self, officer: Actor, request_id: str, *, method: str, documents: Sequence[Document],
              statement: str = "", statement_signature: bytes | None = None) -> RequestRecord:
        """Record the identity proofing: the method (one the level accepts), the documents checked
        (those the level and profile need), with their scans, and the officer's statement of what
        was checked. An officer enrolled with a certificate signs the statement with the token's
        key: ``statement_signature`` is a detached CMS over its UTF-8 text, checked to be by that
        certificate and kept (``openssl cms -verify`` checks it too)."""
        record = self.store.get_request(request_id)
        officer = self._officer_may(officer, record, "proofing")
        if record.state != "awaiting-proofing":
            raise RuleRefusedError(f"request {request_id} is {record.state}, not awaiting proofing", rule="state",
                                   request=request_id)
        if record.office != officer.office:
            raise RuleRefusedError(f"request {request_id} is at office {record.office!r}, not {officer.office!r}",
                                   rule="office", request=request_id)
        accepted = self.rules.accepted_proofing(record.level, self.policy)
        if record.kind in CHANGE_KINDS:
            accepted = tuple(m for m in accepted if m != "automated-inquiry")
        if record.kind in CHANGE_KINDS:
            # The change's rule names the weakest proofing it takes (a recovery also the CP's floor).
            known = {m.id for m in self.policy.identity_proofing_methods}
            rule = self.rules.changes.get(record.kind)
            ranks = [self.policy.identity_method(m).rank for m in (rule.proofing if rule else ()) if m in known]
            if record.kind == "recover":
                if self.policy.key_recovery is None:
                    raise RuleRefusedError("this CA's policy recovers no key (the CP has no key_recovery)",
                                           rule="key-recovery", request=request_id)
                ranks = [max([*ranks, self.policy.identity_method(self.policy.key_recovery.proofing).rank])]
            if ranks:
                accepted = tuple(m for m in accepted if self.policy.identity_method(m).rank >= min(ranks))
        if record.kind in _STATUS_CHANGES:
            self._no_other_change(record.serial or 0, but=record.id)
        if method not in accepted:
            raise RuleRefusedError(f"proofing by {method!r} does not satisfy level {record.level}; accepted: "
                                   f"{', '.join(accepted)}", rule="proofing-method", request=request_id)
        needed = self.rules.documents_for(record.profile, record.level) if record.kind in ("issue", "renew", "rekey") \
            else ("national-id-card",)
        have = {d.kind for d in documents}
        missing = [d for d in needed if d not in have]
        if missing:
            raise RuleRefusedError(f"level {record.level} {record.profile} needs the documents {', '.join(missing)} "
                                   "as well", rule="documents", request=request_id)
        for d in documents:
            self._check_document(d)
        digests = [hashlib.sha256(d.data).digest() for d in documents]
        if len(set(digests)) != len(digests):
            raise RequestError("two documents were given the same scan; give each document's own scan")
        signed = self._check_statement(officer, record, statement, statement_signature)
        now = self.clock.now()
        evidence = tuple((EvidenceRecord(request_id, hashlib.sha256(d.data).hexdigest(), d.kind, d.number, d.media_type,
                                         len(d.data), officer.id, now), d.data) for d in documents)
        proofing = {"method": method, "officer": officer.id, "office": officer.office, "at": now.isoformat(),
                    "documents": [{"kind": e.kind, "number": e.number, "sha256": e.sha256} for e, _ in evidence],
                    "statement": statement, "approvals": []}
        proofing.update(_carried(record))
        if signed is not None:
            import base64

            proofing["statement_signature"] = base64.b64encode(signed).decode("ascii")
        changes: dict[str, object] = {"proofing": proofing}
        target = "proofed"
        if record.kind in CHANGE_KINDS and not self._needs_new_key(record):
            # Nothing to bind: the request about the certificate goes to its approvals.
            target = "approved" if self._approvals_needed(record) == 0 else "awaiting-approval"
        # The scans are kept in the transaction that records the proofing: both, or neither.
        return self._move(record, officer, target, expect=("awaiting-proofing",), changes=changes,
                          details={"method": method, "documents": [{"kind": e.kind, "sha256": e.sha256, "size": e.size}
                                                                   for e, _ in evidence]}, evidence=evidence)

    def _check_statement(self, officer: Actor, record: RequestRecord, statement: str,
                         signature: bytes | None) -> bytes | None:
        enrolled = self.store.get_officer(officer.id).certificate
        if enrolled is None:
            return None  # an officer without a token certificate: the statement is recorded as given
        if signature is None:
            raise RuleRefusedError(f"officer {officer.id!r} signs the proofing statement with their token's key: give "
                                   "a detached CMS signature over its UTF-8 text", rule="signed-statement",
                                   request=record.id)
        from asn1crypto import cms as asn1_cms

        from .. import signing

        try:
            info = asn1_cms.ContentInfo.load(signature)
            certs = [c.chosen.dump() for c in (info["content"]["certificates"] or []) if c.name == "certificate"]
        except (ValueError, TypeError, KeyError) as exc:
            raise RequestError(f"the statement's signature is not a CMS SignedData ({exc})") from None
        if enrolled not in certs:
            raise RuleRefusedError(f"the statement is not signed with officer {officer.id!r}'s enrolled certificate",
                                   rule="signed-statement", request=record.id)
        result = signing.verify_cms(statement.encode("utf-8"), signature, [enrolled], moment=self.clock.now())
        if not (result.intact and result.valid):
            raise RuleRefusedError("the statement's signature does not verify over the statement: "
                                   + "; ".join(result.problems), rule="signed-statement", request=record.id)
        return signature

    def change_text(self, record: RequestRecord) -> bytes:
        """What the subscriber signs with the current key to ask for a change with no visit (UTF-8)."""
        if record.kind not in CHANGE_KINDS or record.serial is None:
            raise RuleRefusedError(f"request {record.id} is not about an existing certificate", rule="state",
                                   request=record.id)
        return (f"I ask for the {record.kind} of certificate {record.serial:x} issued by {record.ca} to "
                f"{record.subject}, on request {record.id}.").encode("utf-8")

    def proof_by_current_key(self, applicant: Actor, request_id: str, signature: bytes, *,
                             scheme: str = "sha256") -> RequestRecord:
        """Proofing with no visit for a change the rules allow so (``signed-with-current-key`` at
        the request's level): :meth:`change_text` signed with the key of the certificate the
        request concerns, which must be valid now. The signature is kept. A re-key then binds its
        new key; the others go to their approvals."""
        import base64

        from cryptography import x509

        from ..keys.base import SignatureScheme, signature_valid

        record = self.store.get_request(request_id)
        applicant = self._applicant_may(applicant, record)
        rule = self.rules.changes.get(record.kind)
        if rule is None or "signed-with-current-key" not in rule.proofing or record.level not in rule.current_key_levels:
            raise RuleRefusedError(f"a {record.kind} of a level {record.level} certificate needs a visit to a "
                                   "registration office", rule="proofing-method", request=request_id)
        if record.state != "submitted":
            raise RuleRefusedError(f"request {request_id} is {record.state}, not submitted", rule="state",
                                   request=request_id)
        self._no_other_change(record.serial or 0, but=record.id)
        current = self.store.get_certificate(record.serial or 0)
        now = self.clock.now()
        if current.status != "valid" or current.not_after <= now:
            raise RuleRefusedError(f"certificate {current.serial:x} is {current.status if current.status != 'valid' else 'expired'}; "
                                   "only a valid certificate's key can ask for a change", rule="certificate-status",
                                   request=request_id)
        key = x509.load_der_x509_certificate(current.certificate).public_key()
        if not signature_valid(key, signature, self.change_text(record), SignatureScheme.parse(scheme)):
            raise RuleRefusedError("the request is not signed by the key of the certificate it concerns, over this "
                                   "request's text", rule="current-key", request=request_id)
        proofing = {"method": "signed-with-current-key", "officer": None, "office": None, "at": now.isoformat(),
                    "signature": base64.b64encode(signature).decode("ascii"), "scheme": scheme, "documents": [],
                    "statement": "", "approvals": [], **_carried(record)}
        target = "proofed"
        if not self._needs_new_key(record):
            target = "approved" if self._approvals_needed(record) == 0 else "awaiting-approval"
        return self._move(record, applicant, target, expect=("submitted",), changes={"proofing": proofing},
                          details={"method": "signed-with-current-key",
                                   "signature_sha256": hashlib.sha256(signature).hexdigest()})

    def inquire(self, request_id: str, *, mobile: str) -> RequestRecord:
        """Level-1 proofing with no visit: the civil registry confirms the applicant's national
        code, name and that they are alive; the mobile operator that ``mobile`` is theirs."""
        record = self.store.get_request(request_id)
        if self.registry is None:
            raise RuleRefusedError("no identity registry is configured; this request needs a visit to an office",
                                   rule="registry", request=request_id)
        if "automated-inquiry" not in self.rules.accepted_proofing(record.level, self.policy) or \
                record.key_location not in ("phone", "software-pkcs12") or record.kind != "issue":
            raise RuleRefusedError(f"a level {record.level} request with its key at {record.key_location} needs a "
                                   "visit to a registration office", rule="proofing-method", request=request_id)
        key = f"inquiry:{request_id}"
        failed = self.store.count_attempts(key, record.created_at)
        if failed >= MAX_INQUIRIES:
            raise RuleRefusedError(f"automated inquiry failed {failed} times for request {request_id}; it needs a visit "
                                   "to a registration office now", rule="automated-inquiry", request=request_id)
        national_code = record.applicant.get("national_code", "")
        person = self.registry.person(national_code)
        problems = []
        if person is None or not person.alive:
            problems.append("the civil registry has no living person with this national code")
        elif (person.given_name, person.surname) != (record.applicant.get("given_name"), record.applicant.get("surname")):
            problems.append("the name registered differs from the civil registry's")
        if not self.registry.mobile_owned_by(mobile, national_code):
            problems.append("the mobile number is not registered to this national code")
        actor = Actor("registry", self.registry.name)
        if problems:
            # Which check failed is not said: the answer would tell a stranger what the registries hold.
            self.store.count_attempts(key, record.created_at, add_at=self.clock.now())
            raise RuleRefusedError("the registries did not confirm this national code, name and mobile number "
                                   f"together; check them ({MAX_INQUIRIES - failed - 1} tries left), or visit a "
                                   "registration office", rule="automated-inquiry", request=request_id)
        proofing = {"method": "automated-inquiry", "officer": None, "office": None,
                    "at": self.clock.now().isoformat(), "registry": self.registry.name, "mobile": mobile,
                    "documents": [], "statement": "", "approvals": []}
        return self._move(record, actor, "proofed", expect=("submitted",), changes={"proofing": proofing},
                          details={"method": "automated-inquiry", "registry": self.registry.name})

    def bind_key(self, actor: Actor, request_id: str, *, csr: bytes | None, device: dict[str, str] | None = None,
                 passphrase: str | None = None) -> RequestRecord:
        """Bind the subscriber's key: a CSR made on the token at the desk (with the token's
        ``device`` information), the subscriber's own or the phone's CSR. For a software key
        (``software-pkcs12``) no CSR: the key is made here and kept only encrypted under the
        applicant's ``passphrase`` (PKCS#8, PBES2 with AES-256), until it is handed out once in a
        PKCS#12 file (:meth:`pkcs12`)."""
        from ..ca import request_from_csr

        record = self.store.get_request(request_id)
        if record.state != "proofed":
            raise RuleRefusedError(f"request {request_id} is {record.state}; a key is bound after proofing",
                                   rule="state", request=request_id)
        location = record.key_location
        if location is None:
            raise RuleRefusedError(f"a {record.kind} request binds no new key", rule="state", request=request_id)
        if location == "desk-token":
            actor = self._officer_may(actor, record, "proofing")
            if not device or not all(device.get(k) for k in ("manufacturer", "model", "serial")):
                raise RequestError("a key on a token needs the token's manufacturer, model and serial, as the "
                                   "token reports them")
            self._check_device(record, device)
        elif actor.kind == "officer":
            actor = self._officer_may(actor, record, "proofing")
        else:
            actor = self._applicant_may(actor, record)
        encrypted_key = archived = None
        escrowed = self.escrowed(record.profile)
        if escrowed and location != "software-pkcs12":
            raise RuleRefusedError(f"the key of a {record.profile} certificate is archived for recovery, so it is made "
                                   f"here (software-pkcs12); not at {location}", rule="key-recovery", request=request_id)
        if location == "software-pkcs12":
            if csr is not None:
                raise RequestError("a software key is made here and handed out in a PKCS#12 file; give no CSR")
            recovery = self._recovery_key(request_id) if escrowed else None
            csr, encrypted_key, pkcs8 = _software_key(record.subject, passphrase)
            if recovery is not None:
                from ..keys import escrow

                archived = escrow.archive_key(pkcs8, load_profile(record.profile).key_usage.for_key("ec"), recovery,
                                              context=archive_context(record.id))
            del pkcs8
        else:
            if csr is None:
                raise RequestError(f"a key at {location} is bound by its CSR; give the PKCS#10 request")
            request_from_csr(csr)  # proof of possession, size and syntax
        approvals = self._approvals_needed(record)
        target = "approved" if approvals == 0 else "awaiting-approval"
        changes: dict[str, object] = {"csr": csr, "device": dict(device or {})}
        if encrypted_key is not None:
            import base64

            changes["proofing"] = {**record.proofing, "software_key": base64.b64encode(encrypted_key).decode("ascii")}
            if archived is not None:
                changes["proofing"]["archived_key"] = archived  # type: ignore[index]
        if target == "approved":
            changes["expires_at"] = self.clock.now() + timedelta(days=self.rules.level(record.level).approval_expiry_days)
        details: dict[str, object] = {"device": dict(device or {}), "csr": csr is not None}
        if archived is not None:
            details["archived_to"] = archived["recovery_key_sha256"]
        return self._move(record, actor, target, expect=("proofed",), changes=changes, details=details)

    def escrowed(self, profile: str) -> bool:
        """Whether the CP archives the keys of ``profile`` (its key_recovery)."""
        return self.policy.key_recovery is not None and profile in self.policy.key_recovery.profiles

    def _recovery_key(self, request_id: str | None = None):  # noqa: ANN202 - an EC public key
        """The key-recovery key archived to: the newest registered."""
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        keys = self.store.recovery_keys()
        if not keys:
            raise RuleRefusedError("no key-recovery key is registered, so an escrowed key cannot be archived; the CA "
                                   "operator makes one (iranpki escrow init)", rule="key-recovery", request=request_id)
        return load_der_public_key(keys[0].public_key)

    def approve(self, officer: Actor, request_id: str) -> RequestRecord:
        """One approval. The level says how many, by whom; the proofing officer never approves
        the same request, and no officer approves it twice."""
        record = self.store.get_request(request_id)
        officer = self._officer_may(officer, record, None)
        roles = self.rules.level(record.level).approvals.roles
        if not set(roles) & set(officer.roles):
            raise RuleRefusedError(f"officer {officer.id!r} does not hold an approving role ({', '.join(roles)}); holds "
                                   f"{', '.join(officer.roles)}", rule="roles", request=request_id)
        if record.state != "awaiting-approval":
            raise RuleRefusedError(f"request {request_id} is {record.state}, not awaiting approval", rule="state",
                                   request=request_id)
        proofing = dict(record.proofing)
        approvals = list(proofing.get("approvals", []))  # type: ignore[arg-type]
        if proofing.get("officer") == officer.id:
            raise RuleRefusedError(f"officer {officer.id!r} proofed request {request_id}; another officer must "
                                   "approve it", rule="separation", request=request_id)
        if officer.id in approvals:
            raise RuleRefusedError(f"officer {officer.id!r} approved request {request_id} already; the level needs "
                                   "another officer", rule="dual-control", request=request_id)
        approvals.append(officer.id)
        proofing["approvals"] = approvals
        done = len(approvals) >= self._approvals_needed(record)
        changes: dict[str, object] = {"proofing": proofing}
        if done:
            changes["expires_at"] = self.clock.now() + timedelta(days=self.rules.level(record.level).approval_expiry_days)
        return self._move(record, officer, "approved" if done else "awaiting-approval",
                          expect=("awaiting-approval",), changes=changes, details={"approval": len(approvals)})

    def reject(self, officer: Actor, request_id: str, reason: str) -> RequestRecord:
        record = self.store.get_request(request_id)
        officer = self._officer_may(officer, record, None)
        if not reason.strip():
            raise RequestError("say why the request is rejected; the applicant reads it")
        return self._move(record, officer, "rejected", expect=OPEN_STATES, details={"reason": check_text(reason, "reason")})

    def hand_over(self, officer: Actor, request_id: str, token_serial: str) -> RequestRecord:
        """The officer hands the token with the issued certificate to the subscriber: recorded
        once, for the token the key was made on (its serial as the token reports it)."""
        record = self.store.get_request(request_id)
        officer = self._officer_may(officer, record, "proofing")
        if record.state not in ("issued", "accepted") or record.key_location != "desk-token":
            raise RuleRefusedError(f"request {request_id} is {record.state} with its key at {record.key_location}; a "
                                   "token is handed over after issuance", rule="state", request=request_id)
        if "handed_over" in record.proofing:
            raise RuleRefusedError(f"the token of request {request_id} was handed over already "
                                   f"({record.proofing['handed_over']})", rule="state", request=request_id)
        if not secrets.compare_digest(token_serial.strip(), record.device.get("serial", "")):
            raise RuleRefusedError(f"the token {token_serial!r} is not the one the key was made on "
                                   f"({record.device.get('serial')!r})", rule="device", request=request_id)
        now = self.clock.now()
        proofing = {**record.proofing, "handed_over": {"at": now.isoformat(), "officer": officer.id,
                                                       "token": token_serial.strip()}}
        return self._move(record, officer, record.state, expect=(record.state,), changes={"proofing": proofing},
                          details={"handed_over": token_serial.strip()})

    def refuse(self, worker: Actor, request_id: str, reason: str) -> RequestRecord:
        """The CA side rejects an approved request it can never carry out (its certificate was
        revoked or expired meanwhile), saying why."""
        if worker.kind != "worker":
            raise RuleRefusedError(f"{worker} is not the CA side", rule="actor", request=request_id)
        record = self.store.get_request(request_id)
        return self._move(record, worker, "rejected", expect=("approved",), details={"reason": reason})

    def cancel(self, actor: Actor, request_id: str) -> RequestRecord:
        record = self.store.get_request(request_id)
        if actor.kind == "officer":
            actor = self._officer_may(actor, record, None)
        elif actor.kind != "operator":
            actor = self._applicant_may(actor, record)
        return self._move(record, actor, "cancelled", expect=OPEN_STATES)

    def applicant(self, code: str, second_factor: str, *, client: str) -> Actor:
        """The applicant of a request, once the code and second factor are shown."""
        return Actor("applicant", self.lookup(code, second_factor, client=client).id, credential=normalise_code(code))

    # ---- the CA side and the subscriber --------------------------------------------------------

    def mark_issued(self, worker: Actor, request_id: str, serial: int) -> RequestRecord:
        """Record what the CA side did for an approved request (the certificate it issued, or the
        one it revoked, suspended or released). Only the worker may; only once."""
        update = self.issued_update(worker, self.store.get_request(request_id), serial)
        return self.store.update_request(update.request_id, update.version, update.changes, update.event, update.audit)

    def issued_update(self, worker: Actor, record: RequestRecord, serial: int) -> RequestUpdate:
        """The change that marks ``record`` issued with ``serial``, for the CA side to make in the
        certificate's own transaction (:meth:`iranpki.ca.CertificateAuthority.issue`'s ``for_request``)."""
        if worker.kind != "worker":
            raise RuleRefusedError(f"{worker} is not the CA side; only it issues", rule="actor", request=record.id)
        return self.transition(record, worker, "issued", expect=("approved",), changes={"serial": serial},
                               details={"serial": f"{serial:x}"})

    def mark_recovered(self, worker: Actor, record: RequestRecord, pkcs8: bytes) -> RequestRecord:
        """Record a recovery the CA side carried out: the archived key it opened on the token
        (``pkcs8``), checked to be the certificate's key, sealed to the subscriber's transport key
        (made under their passphrase when they asked), so that only they open it."""
        import base64

        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_private_key

        from ..keys import escrow

        if record.kind != "recover":
            raise RuleRefusedError(f"request {record.id} is a {record.kind}, not a recovery", rule="state",
                                   request=record.id)
        cert = x509.load_der_x509_certificate(self.store.get_certificate(record.serial or 0).certificate)
        spki = PublicFormat.SubjectPublicKeyInfo
        if load_der_private_key(pkcs8, None).public_key().public_bytes(Encoding.DER, spki) != \
                cert.public_key().public_bytes(Encoding.DER, spki):
            raise RuleRefusedError(f"the recovered key is not the key of certificate {record.serial:x}; nothing was "
                                   "handed out", rule="key-recovery", request=record.id)
        transport = record.proofing.get("transport")
        if not isinstance(transport, dict):
            raise RuleRefusedError(f"request {record.id} has no transport key to seal the recovered key to",
                                   rule="key-recovery", request=record.id)
        sealed = escrow.seal(pkcs8, base64.b64decode(str(transport["public"])), context=recovery_context(record.id))
        update = self.issued_update(worker, record, record.serial or 0)
        collect_by = self.clock.now() + timedelta(days=self.rules.level(record.level).approval_expiry_days)
        update = RequestUpdate(update.request_id, update.version,
                               {**update.changes, "proofing": {**record.proofing, "sealed_key": sealed,
                                                               "collect_by": collect_by.isoformat()}}, update.event,
                               AuditEvent("ra.key.recovered", record.id, str(worker),
                                          {**update.audit.details, "serial": f"{record.serial:x}",
                                           "sealed_to": hashlib.sha256(base64.b64decode(str(transport["public"])))
                                           .hexdigest()}))
        return self.store.update_request(update.request_id, update.version, update.changes, update.event, update.audit)

    def pkcs12(self, applicant: Actor, request_id: str, passphrase: str) -> bytes:
        """Hand out the software key and its certificate once, in a PKCS#12 file encrypted under
        ``passphrase`` (PBES2: PBKDF2-HMAC-SHA256 and AES-256-CBC, SHA-256 MAC; ``openssl
        pkcs12`` opens it). The encrypted key is removed from the store in the same step. For a
        recovery, the recovered key, opened with the passphrase given when asking."""
        import base64

        from cryptography.hazmat.primitives.serialization import load_der_private_key
        from cryptography.hazmat.primitives.serialization import pkcs12 as _p12

        from ..errors import PinError
        from ..keys import escrow

        record = self.store.get_request(request_id)
        applicant = self._applicant_may(applicant, record)
        held = "sealed_key" if record.kind == "recover" else "software_key"
        if record.state != "issued" or held not in record.proofing:
            raise RuleRefusedError(f"request {request_id} has no {'recovered' if held == 'sealed_key' else 'software'} "
                                   f"key to hand out (it is {record.state}; a key is handed out once, after "
                                   f"{'the recovery' if held == 'sealed_key' else 'issuance'})", rule="state",
                                   request=request_id)
        what = "recovered" if held == "sealed_key" else "software"
        again = ("ask for a new recovery of the certificate's key" if held == "sealed_key" else
                 "ask for the certificate's revocation and register again")
        collect_by = record.proofing.get("collect_by")
        if collect_by is not None and datetime.fromisoformat(str(collect_by)) <= self.clock.now():
            self._drop_key(record, held, f"not collected by {collect_by}")
            raise RuleRefusedError(f"the recovered key of request {request_id} was not collected by {collect_by} and "
                                   f"was removed; {again}", rule="expiry", request=request_id)
        attempts = f"pkcs12:{request_id}"
        failed = self.store.count_attempts(attempts, record.created_at)
        try:
            if held == "sealed_key":
                transport = record.proofing["transport"]
                key = load_der_private_key(escrow.unseal(
                    record.proofing["sealed_key"], base64.b64decode(str(transport["private"])),  # type: ignore[index,arg-type]
                    passphrase, context=recovery_context(request_id)), None)
            else:
                key, _, _ = _p12.load_key_and_certificates(base64.b64decode(str(record.proofing["software_key"])),
                                                           passphrase.encode("utf-8"))
        except (ValueError, escrow.PassphraseError):
            self.store.count_attempts(attempts, record.created_at, add_at=self.clock.now())
            if failed + 1 >= MAX_PASSPHRASE_TRIES:
                # Locked: the key is removed, so that no more guesses can be made at it, here or on a copy.
                self._drop_key(record, held, f"{failed + 1} wrong passphrases")
                raise RuleRefusedError(f"the {what} key of request {request_id} was removed after {failed + 1} wrong "
                                       f"passphrases; {again}", rule="passphrase-tries", request=request_id) from None
            raise PinError(f"wrong passphrase for the {what} key of this request "
                           f"({MAX_PASSPHRASE_TRIES - failed - 1} tries left)") from None
        cert = one_certificate(self.store.get_certificate(record.serial or 0).certificate)
        data = _pkcs12(key, cert, passphrase)
        proofing = {k: v for k, v in record.proofing.items() if k not in (held, "transport", "collect_by")}
        self._move(record, applicant, "issued", expect=("issued",), changes={"proofing": proofing},
                   details={"pkcs12": f"handed out; the {'sealed' if held == 'sealed_key' else 'encrypted'} key was "
                                      "removed from the store"})
        return data

    def _drop_key(self, record: RequestRecord, held: str, why: str) -> None:
        """Remove a key that will not be handed out (locked, or not collected), audited with why."""
        proofing = {k: v for k, v in record.proofing.items() if k not in (held, "transport", "collect_by")}
        self._move(record, Actor("worker", "ra"), record.state, expect=(record.state,), changes={"proofing": proofing},
                   details={"key_removed": why})

    def acceptance_text(self, record: RequestRecord) -> bytes:
        """What the subscriber signs with the new key to accept the certificate (UTF-8)."""
        if record.serial is None:
            raise RuleRefusedError(f"request {record.id} has no certificate yet", rule="state", request=record.id)
        return (f"I accept certificate {record.serial:x} issued by {record.ca} to {record.subject} on request "
                f"{record.id}, and the obligations of a subscriber the CPS states.").encode("utf-8")

    def accept(self, applicant: Actor, request_id: str, signature: bytes, *, scheme: str = "sha256") -> RequestRecord:
        """The subscriber accepts the certificate by signing :meth:`acceptance_text` with its key:
        the signature is verified with the certificate's public key and kept, as proof that the
        key works and that the subscriber accepted. Once only."""
        from cryptography import x509

        from ..keys.base import SignatureScheme, signature_valid

        record = self.store.get_request(request_id)
        applicant = self._applicant_may(applicant, record)
        if record.state != "issued" or record.kind not in ("issue", "renew", "rekey"):
            raise RuleRefusedError(f"request {request_id} is {record.state}; a certificate is accepted once, after "
                                   "issuance", rule="state", request=request_id)
        cert = x509.load_der_x509_certificate(self.store.get_certificate(record.serial or 0).certificate)
        text = self.acceptance_text(record)
        if not signature_valid(cert.public_key(), signature, text, SignatureScheme.parse(scheme)):
            raise RuleRefusedError("the acceptance is not signed by the certificate's key over this request's "
                                   "acceptance text", rule="acceptance", request=request_id)
        import base64

        proofing = {**record.proofing, "acceptance": {"signature": base64.b64encode(signature).decode("ascii"),
                                                      "scheme": scheme, "text": text.decode("utf-8")}}
        return self._move(record, applicant, "accepted", expect=("issued",), changes={"proofing": proofing},
                          details={"signature_sha256": hashlib.sha256(signature).hexdigest()})

    def evidence_kept_until(self, record: RequestRecord, evidence: EvidenceRecord) -> datetime:
        """Until when a document scan is kept: the CP's archive retention for the request's level,
        from when it was recorded."""
        return _years_after(evidence.at, self.policy.level(record.level).records.archive_retention_years)

    def purge_evidence(self, actor: Actor) -> int:
        """Remove the scans whose retention (the CP's archive period of their level) has passed,
        of requests no longer open; the CA operator's, audited with the number removed. A scan is
        never removed before its time: a request still open keeps all of its scans."""
        self._operator(actor)
        now = self.clock.now()
        cutoffs = {n: _years_after(now, -self.policy.level(n).records.archive_retention_years) for n in (1, 2, 3, 4)}
        return self.store.purge_evidence(cutoffs, OPEN_STATES, AuditEvent(
            "ra.evidence.purged", "evidence", str(actor),
            {f"level {n}": f"recorded before {c:%Y-%m-%d}" for n, c in cutoffs.items()}))

    def expire_due(self, actor: Actor | None = None) -> list[str]:
        """Move every open request past its expiry to ``expired``; their ids."""
        moved: list[str] = []
        while due := self.store.list_requests(states=OPEN_STATES, expires_before=self.clock.now(), limit=500):
            for record in due:  # each in its own transaction: a request that moved on meanwhile is skipped
                try:
                    self._move(record, actor or Actor("worker", "expiry"), "expired", expect=OPEN_STATES)
                except ConcurrentChangeError:
                    continue
                moved.append(record.id)
        return moved

    # ---- rules -------------------------------------------------------------------------------

    def _needs_new_key(self, record: RequestRecord) -> bool:
        rule = self.rules.changes.get(record.kind)
        return bool(rule and rule.new_key)

    def _approvals_needed(self, record: RequestRecord) -> int:
        rule = self.rules.level(record.level)
        if record.kind in ("renew", "rekey"):
            # A new certificate: never fewer approvals than the level asks of one.
            change = self.rules.changes.get(record.kind)
            return max(rule.approvals.count, change.approvals if change else 1)
        if record.kind == "recover":  # never fewer than the CP's key_recovery asks, whatever the rules say
            if self.policy.key_recovery is None or "recover" not in self.rules.changes:
                raise RuleRefusedError("this CA's policy recovers no key (the CP has no key_recovery, or the RA rules "
                                       "no changes.recover)", rule="key-recovery", request=record.id)
            return max(self.rules.changes["recover"].approvals, self.policy.key_recovery.approvals)
        if record.kind in CHANGE_KINDS:
            return self.rules.changes[record.kind].approvals if record.kind in self.rules.changes else 1
        if record.proofing.get("method") == "automated-inquiry" and rule.remote_approvals is not None:
            return rule.remote_approvals
        return rule.approvals.count

    def _officer_may(self, actor: Actor, record: RequestRecord, role: str | None) -> Actor:
        """The officer as the store knows them now (never the office or roles the caller claims),
        if they may act on ``record`` with ``role``."""
        if actor.kind != "officer":
            raise RuleRefusedError(f"{actor} is not a registration officer", rule="actor", request=record.id)
        current = self.officer(actor.id)  # the officer and the office as they are now
        if role is not None and role not in current.roles:
            raise RuleRefusedError(f"officer {actor.id!r} does not hold the {role} role (holds "
                                   f"{', '.join(current.roles)})", rule="roles", request=record.id)
        office = self.store.get_office(current.office or "")
        if record.ca not in office.cas:
            raise RuleRefusedError(f"office {office.code!r} does not serve CA {record.ca!r}", rule="office",
                                   request=record.id)
        if record.office is not None and record.office != current.office:
            raise RuleRefusedError(f"request {record.id} is handled by office {record.office!r}, not "
                                   f"{current.office!r}", rule="office", request=record.id)
        return current

    def _applicant_may(self, actor: Actor, record: RequestRecord) -> Actor:
        """The applicant of ``record``, if ``actor`` showed its tracking code."""
        if actor.kind != "applicant" or actor.id != record.id or not actor.credential or \
                not secrets.compare_digest(code_hash(actor.credential), record.code_hash):
            raise RuleRefusedError(f"{actor} has not shown the tracking code of request {record.id}", rule="actor",
                                   request=record.id)
        return actor

    def _operator(self, actor: Actor) -> None:
        if actor.kind != "operator":
            raise RuleRefusedError(f"{actor} is not the CA operator; offices and officers are the operator's",
                                   rule="actor")

    def _ca_serves(self, ca, profile: str, level: int) -> None:  # noqa: ANN001 - a CaRecord
        from cryptography import x509

        from ..ca import ca_purpose

        if ca.kind != "intermediate" or ca.level != level:
            raise RuleRefusedError(f"CA {ca.name!r} is not a level {level} issuing CA", rule="ca")
        purpose_id = ca_purpose(x509.load_der_x509_certificate(ca.certificate), self.policy)
        if purpose_id is not None and profile not in self.policy.purpose(purpose_id).issues:
            raise RuleRefusedError(f"CA {ca.name!r} ({purpose_id}) does not issue {profile}; it issues "
                                   f"{', '.join(self.policy.purpose(purpose_id).issues)}", rule="ca")

    def _applicant(self, applicant: dict[str, str]) -> dict[str, str]:
        out = {k: check_text(str(v), f"applicant {k}") for k, v in applicant.items()}
        if "national_code" in out:
            out["national_code"] = check_national_code(out["national_code"])
        elif "national_id" in out:
            out["national_id"] = check_legal_entity_id(out["national_id"])
        else:
            raise RequestError("the applicant's national_code (a person) or national_id (an organisation) is "
                               "needed: it is the second factor of every later lookup")
        return out

    def _check_document(self, d: Document) -> None:
        if d.kind not in self.rules.documents:
            raise RequestError(f"document kind {d.kind!r} must be one of {', '.join(self.rules.documents)}")
        if len(d.data) > MAX_DOCUMENT_BYTES:
            raise RequestError(f"the {d.kind} scan is {len(d.data)} bytes; at most {MAX_DOCUMENT_BYTES} are kept")
        magic = _MAGIC.get(d.media_type)
        if magic is None:
            raise RequestError(f"a scan of type {d.media_type!r} is not kept; give JPEG, PNG or PDF")
        if not d.data.startswith(magic):
            raise RequestError(f"the {d.kind} scan is not a {d.media_type} file (its first bytes say otherwise)")
        check_text(d.number, "document number")
        if not 1 <= len(d.number) <= 40:
            raise RequestError(f"a document number has 1 to 40 characters; {len(d.number)} were given")

    def _move(self, record: RequestRecord, actor: Actor, to: str, *, expect: Sequence[str],
              changes: dict[str, object] | None = None, details: dict[str, object] | None = None,
              evidence: tuple[tuple[EvidenceRecord, bytes], ...] = ()) -> RequestRecord:
        update = self.transition(record, actor, to, expect=expect, changes=changes, details=details, evidence=evidence)
        return self.store.update_request(update.request_id, update.version, update.changes, update.event,
                                         update.audit, evidence=update.evidence)

    def transition(self, record: RequestRecord, actor: Actor, to: str, *, expect: Sequence[str],
                   changes: dict[str, object] | None = None, details: dict[str, object] | None = None,
                   evidence: tuple[tuple[EvidenceRecord, bytes], ...] = ()) -> RequestUpdate:
        """The change that moves ``record`` to ``to``, checked (state, expiry) but not yet made:
        the store makes it, alone or in the transaction of the certificate issued for it."""
        now = self.clock.now()
        if record.state not in expect:
            raise RuleRefusedError(f"request {record.id} is {record.state}; it cannot become {to}", rule="state",
                                   request=record.id)
        if record.state in OPEN_STATES and to not in ("expired",) and record.expires_at <= now:
            raise RuleRefusedError(f"request {record.id} expired on {record.expires_at:%Y-%m-%d %H:%M} UTC; register "
                                   "again", rule="expiry", request=record.id)
        event = RequestEvent(record.id, now, str(actor), actor.office, record.state, to, details or {})
        audit = AuditEvent(f"ra.request.{to}", record.id, str(actor),
                           {"from": record.state, "office": actor.office, **(details or {})})
        return RequestUpdate(record.id, record.version, {**(changes or {}), "state": to, "updated_at": now}, event,
                             audit, evidence)


def _years_after(moment: datetime, years: int) -> datetime:
    """``moment`` moved by whole calendar ``years`` (29 February to 28 February)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def _software_key(subject: str, passphrase: str | None) -> tuple[bytes, bytes, bytes]:
    """A new P-256 key: its CSR (proof of possession), the key encrypted under ``passphrase``,
    and its PKCS#8 (for archival; never stored as it is)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes as _hashes
    from cryptography.hazmat.primitives import serialization as _ser
    from cryptography.hazmat.primitives.asymmetric import ec

    from ..keys.software import MIN_PASSPHRASE

    if passphrase is None or len(passphrase) < MIN_PASSPHRASE:
        raise RequestError(f"a software key is kept encrypted under the applicant's passphrase of at least "
                           f"{MIN_PASSPHRASE} characters; give one")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, _hashes.SHA256())
    pkcs8 = key.private_bytes(_ser.Encoding.DER, _ser.PrivateFormat.PKCS8, _ser.NoEncryption())
    return csr.public_bytes(_ser.Encoding.DER), _pkcs12(key, None, passphrase), pkcs8


def _pkcs12(key, cert, passphrase: str) -> bytes:  # noqa: ANN001 - a private key and a certificate
    """PKCS#12 under ``passphrase``: PBES2 (PBKDF2-HMAC-SHA256, 600,000 rounds, AES-256-CBC), SHA-256 MAC."""
    from cryptography.hazmat.primitives import hashes as _hashes
    from cryptography.hazmat.primitives import serialization as _ser
    from cryptography.hazmat.primitives.serialization import pkcs12 as _p12

    encryption = (_ser.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(600_000)
                  .key_cert_algorithm(_p12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(_hashes.SHA256())
                  .build(passphrase.encode("utf-8")))
    return _p12.serialize_key_and_certificates(b"subscriber", key, cert, None, encryption)


def archive_context(request_id: str) -> str:
    """What an archived key is bound to: the request that made it."""
    return f"iranpki request {request_id}"


def recovery_context(request_id: str) -> str:
    """What a recovered key sealed to its subscriber is bound to: the recovery request."""
    return f"iranpki recovery {request_id}"


def _carried(record: RequestRecord) -> dict[str, object]:
    """What a change request keeps through its proofing: a recovery's transport key, and the
    certificate whose archived key a renewal keeps."""
    return {k: record.proofing[k] for k in ("transport", "archive_of") if k in record.proofing}


def _names_subscriber(certificate: bytes, second_factor: str) -> bool:
    """Whether the certificate's subject names ``second_factor``: its serialNumber (a person's
    national code) or its organizationIdentifier (NTRIR- and a legal-entity ID), exactly."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from ..errors import IdentifierError

    given = _factor(second_factor).decode("utf-8")
    try:
        wanted = {check_national_code(given)} if len(given) <= 10 else {check_legal_entity_id(given)}
    except IdentifierError:
        return False
    subject = x509.load_der_x509_certificate(certificate).subject
    named = {str(a.value) for a in subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)}
    named |= {str(a.value).removeprefix("NTRIR-") for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)}
    return any(secrets.compare_digest(w.encode("utf-8"), n.encode("utf-8")) for w in wanted for n in named)


def _factor(text: str) -> bytes:
    """A national code or ID as compared: Persian and Arabic-Indic digits as ASCII ones (a Persian
    keyboard types them), outer spaces removed; bytes, so that any text compares without error."""
    from ..identity import _DIGIT_MAP

    return text.strip().translate(_DIGIT_MAP).encode("utf-8")


def _same_factor(record: RequestRecord, second_factor: str) -> bool:
    given = _factor(second_factor)
    expected = [record.applicant.get(k) for k in ("national_code", "national_id", "second_factor")]
    return any(secrets.compare_digest(given, _factor(e)) for e in expected if e)

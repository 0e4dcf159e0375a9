"""The store's part for registration: offices, officers, requests with their history, identity
evidence, and the attempts a rate limit counts (:mod:`iranpki.ra` is the engine over it).

A request changes only by :meth:`Registrations.update_request`, which compares the version the
caller read: of two officers acting on the same request at once, exactly one wins, and the other
hears that the request changed. Every change writes its request event and its audit event in
the same transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime

from .events import AuditEvent

__all__ = [
    "DeviceApprovalRecord",
    "EvidenceRecord",
    "OfficeRecord",
    "OfficerRecord",
    "Registrations",
    "RequestEvent",
    "RequestRecord",
    "RequestUpdate",
]


@dataclass(frozen=True)
class OfficeRecord:
    """A registration office: ``code`` (its identifier), the CAs it serves, its status
    (``active``, ``suspended``, ``cancelled``)."""

    code: str
    name: str
    city: str
    cas: tuple[str, ...]
    status: str
    created_at: datetime


@dataclass(frozen=True)
class OfficerRecord:
    """A registration officer of ``office`` with ``roles``; authenticated by the certificate the
    national hierarchy issued to the officer's token (its SHA-256 ``fingerprint``)."""

    id: str
    office: str
    name: str
    roles: tuple[str, ...]
    status: str  # active, removed
    created_at: datetime
    certificate: bytes | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class RequestRecord:
    """A request to the RA. ``code_hash`` is the SHA-256 of its tracking code (the code itself
    is never stored); ``applicant`` holds what the applicant gave (national code, names, mobile
    number, organisation); ``serial`` is the certificate issued for it, or the one it is about
    (revoke, suspend, release, renew, re-key); ``version`` grows with every change."""

    id: str
    code_hash: str
    kind: str
    profile: str
    level: int
    ca: str
    state: str
    applicant: dict[str, str]
    subject: str
    key_location: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    version: int = 1
    office: str | None = None
    csr: bytes | None = None
    serial: int | None = None
    reason: str | None = None
    device: dict[str, str] = field(default_factory=dict)
    proofing: dict[str, object] = field(default_factory=dict)
    #: Names for the certificate beyond the subject: ``dns``, ``ips``, ``emails`` (lists).
    names: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestEvent:
    """One change of a request: who (``actor``), where (``office``), when, from which state to
    which, and what else it recorded (``details``)."""

    request: str
    at: datetime
    actor: str
    office: str | None
    from_state: str | None
    to_state: str
    details: dict[str, object] = field(default_factory=dict)
    seq: int | None = None


@dataclass(frozen=True)
class EvidenceRecord:
    """A scan of an identity document, stored by its SHA-256, with what the officer checked."""

    request: str
    sha256: str
    kind: str
    number: str
    media_type: str
    size: int
    officer: str
    at: datetime


@dataclass(frozen=True)
class DeviceApprovalRecord:
    """A lab approval of a token or HSM model (``iranpki conformance approve``), verified when
    recorded: the token's manufacturer and model as the token reports them, and the period."""

    approval_id: str
    manufacturer: str
    model: str
    issued_at: datetime
    valid_until: datetime
    lab: str
    recorded_at: datetime


@dataclass(frozen=True)
class RecoveryKeyRecord:
    """A key-recovery key (:mod:`iranpki.keys.escrow`): its name, its PKCS#11 URI on the CA's
    token (the CA side opens it; the PIN is never stored) and its public key (SubjectPublicKeyInfo
    DER), to which the RA archives encryption keys. The newest registered is the one archived to;
    older ones stay, for the keys archived to them."""

    name: str
    key: str
    public_key: bytes
    registered_at: datetime

    @property
    def sha256(self) -> str:
        import hashlib

        return hashlib.sha256(self.public_key).hexdigest()


@dataclass(frozen=True)
class RequestUpdate:
    """A change of a request, as :meth:`Registrations.update_request` takes it; also given to
    :meth:`Certificates.add_certificate` to be made in the certificate's own transaction (the
    certificate issued for a request and the request marked issued: both, or neither)."""

    request_id: str
    version: int
    changes: dict[str, object]
    event: RequestEvent
    audit: AuditEvent
    evidence: tuple[tuple[EvidenceRecord, bytes], ...] = ()


class Registrations(ABC):
    """Offices, officers, requests, evidence and attempt counts."""

    @abstractmethod
    def add_office(self, record: OfficeRecord, audit: AuditEvent) -> None:
        """Record an office; DuplicateError if its code exists."""

    @abstractmethod
    def get_office(self, code: str) -> OfficeRecord: ...

    @abstractmethod
    def list_offices(self) -> list[OfficeRecord]: ...

    @abstractmethod
    def set_office_status(self, code: str, status: str, audit: AuditEvent) -> OfficeRecord: ...

    @abstractmethod
    def add_officer(self, record: OfficerRecord, audit: AuditEvent) -> None:
        """Record an officer; DuplicateError if the id or the certificate is known already."""

    @abstractmethod
    def get_officer(self, officer_id: str) -> OfficerRecord: ...

    @abstractmethod
    def set_officer_status(self, officer_id: str, status: str, audit: AuditEvent) -> OfficerRecord:
        """``active`` or ``removed`` (a removed officer can do nothing)."""

    @abstractmethod
    def officer_by_fingerprint(self, fingerprint: str) -> OfficerRecord | None: ...

    @abstractmethod
    def list_officers(self, office: str | None = None) -> list[OfficerRecord]: ...

    @abstractmethod
    def set_officer_totp(self, officer_id: str, secret: bytes, at: datetime, audit: AuditEvent) -> None:
        """Keep (or replace) the officer's one-time-code secret, with its audit, in one transaction."""

    @abstractmethod
    def officer_totp(self, officer_id: str) -> bytes | None:
        """The officer's one-time-code secret, or None if none was enrolled."""

    @abstractmethod
    def add_recovery_key(self, record: RecoveryKeyRecord, audit: AuditEvent) -> None:
        """Register a key-recovery key with its audit, in one transaction; DuplicateError on a
        name or public key registered before."""

    @abstractmethod
    def recovery_keys(self) -> list[RecoveryKeyRecord]:
        """The key-recovery keys, the newest (the one archived to) first."""

    @abstractmethod
    def add_request(self, record: RequestRecord, event: RequestEvent, audit: AuditEvent) -> None:
        """Record a new request with its first event; DuplicateError on a repeated id or code."""

    @abstractmethod
    def get_request(self, request_id: str) -> RequestRecord: ...

    @abstractmethod
    def request_by_code(self, code_hash: str) -> RequestRecord | None: ...

    @abstractmethod
    def list_requests(self, *, office: str | None = None, states: tuple[str, ...] | None = None,
                      ca: str | None = None, serial: int | None = None, expires_before: datetime | None = None,
                      limit: int = 100, second_factor: str | None = None) -> list[RequestRecord]:
        """Requests oldest first, filtered by office, states, CA, the certificate they are about
        or were issued (``serial``), expiry (before ``expires_before``), and the applicant's
        national code or ID (``second_factor``)."""

    @abstractmethod
    def update_request(self, request_id: str, version: int, changes: dict[str, object], event: RequestEvent,
                       audit: AuditEvent, *, evidence: tuple[tuple[EvidenceRecord, bytes], ...] = ()) -> RequestRecord:
        """Apply ``changes`` (fields of RequestRecord) if the request is still at ``version``,
        with its event, its audit and the document scans of ``evidence`` in one transaction;
        ConcurrentChangeError (and nothing kept) if it moved on."""

    @abstractmethod
    def request_events(self, request_id: str) -> list[RequestEvent]: ...

    @abstractmethod
    def list_evidence(self, request_id: str) -> list[EvidenceRecord]: ...

    @abstractmethod
    def evidence_data(self, sha256: str) -> bytes: ...

    @abstractmethod
    def purge_evidence(self, cutoffs: dict[int, datetime], keep_states: tuple[str, ...], audit: AuditEvent) -> int:
        """Remove the document scans recorded before ``cutoffs[level]`` for requests of that level
        that are in none of ``keep_states``, with ``audit`` (its details gain ``documents``, the
        number removed) in one transaction; the number removed."""

    @abstractmethod
    def add_device_approval(self, record: DeviceApprovalRecord, attestation: bytes, audit: AuditEvent) -> None:
        """Keep a verified lab approval and its signed attestation; DuplicateError if recorded."""

    @abstractmethod
    def device_approvals(self, manufacturer: str | None = None, model: str | None = None) -> list[DeviceApprovalRecord]:
        """The recorded approvals, of one manufacturer and model when given."""

    @abstractmethod
    def device_approval_attestation(self, approval_id: str) -> bytes:
        """The signed approval (CMS, DER) recorded as ``approval_id``, as the lab made it."""

    @abstractmethod
    def count_attempts(self, key: str, since: datetime, *, add_at: datetime | None = None) -> int:
        """How many attempts ``key`` made since ``since``, counting one more at ``add_at`` when
        given, atomically (a rate limit shared by every process of the store)."""

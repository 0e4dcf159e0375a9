"""The store interface, one part per concern: key records, CAs and certificates, revocation
and CRL numbers, OCSP responses, counters, and the audit log (the RA's requests come next).

Every method that changes state takes the :class:`AuditEvent` describing the change and writes
it in the same transaction as the change, so the log never disagrees with the data. A method
returns only after its transaction has committed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from .events import AuditEvent
from .registration import Registrations, RequestUpdate

__all__ = [
    "Outbox",
    "OutboxItem",
    "AuditEvent",
    "AuditTrail",
    "CaRecord",
    "CertificateRecord",
    "Certificates",
    "Counters",
    "CrlRecord",
    "KeyRecord",
    "KeyRecords",
    "OcspResponseRecord",
    "OcspResponses",
    "Reason",
    "Revocations",
    "RevokedSnapshot",
    "Store",
    "serial_text",
]


class Reason(Enum):
    """CRLReason (RFC 5280 section 5.3.1); value 7 is not used."""

    unspecified = 0
    keyCompromise = 1
    cACompromise = 2
    affiliationChanged = 3
    superseded = 4
    cessationOfOperation = 5
    certificateHold = 6
    removeFromCRL = 8
    privilegeWithdrawn = 9
    aACompromise = 10

    @classmethod
    def parse(cls, text: str) -> Reason:
        key = text.strip().replace("-", "").replace("_", "").lower()
        for r in cls:
            if r.name.lower() == key:
                return r
        raise ValueError(
            f"unknown revocation reason {text!r}; must be one of {', '.join(r.name for r in cls)}"
        )


def serial_text(serial: int) -> str:
    """The store's key for a serial number: 40 hex digits, so text order is number order."""
    return f"{serial:040x}"




@dataclass(frozen=True)
class KeyRecord:
    reference: str
    backend: str  # "pkcs11" or "software"
    key_spec: str
    label: str
    created_at: datetime


@dataclass(frozen=True)
class CaRecord:
    name: str
    kind: str  # "root" or "intermediate"
    level: int | None
    parent: str | None
    certificate: bytes  # DER
    key_reference: str
    repository_url: str
    ocsp_url: str
    created_at: datetime
    #: How this CA signs: "sha256", "sha384-pss", ... (iranpki.keys.SignatureScheme text form).
    signature: str = "sha256"
    #: How many CRL partitions (shards) the CA publishes; each certificate's shard is fixed at issuance.
    crl_shards: int = 1


@dataclass(frozen=True)
class CertificateRecord:
    serial: int
    ca: str
    profile: str
    subject: str
    not_before: datetime
    not_after: datetime
    certificate: bytes  # DER
    fingerprint: str  # SHA-256, hex
    issued_at: datetime
    revoked_at: datetime | None = None
    reason: Reason | None = None
    invalidity_date: datetime | None = None
    #: The CRL partition the certificate belongs to (0 when the CA is not partitioned).
    shard: int = 0
    #: The store's sequence number of the last status change (None: never changed).
    status_seq: int | None = None
    #: At issuance only: the subscriber agreed to its publication in the directory (not stored;
    #: the store puts the certificate in its publication outbox when publishing is on).
    publish: bool = False

    @property
    def status(self) -> str:
        if self.revoked_at is None:
            return "valid"
        return "on hold" if self.reason is Reason.certificateHold else "revoked"


@dataclass(frozen=True)
class CrlRecord:
    """One CRL the CA issued (the register; the CRL itself is the file at ``path``)."""

    ca: str
    number: int
    kind: str  # "full" or "delta"
    shard: int | None  # None: the CA is not partitioned
    base_number: int | None  # delta CRLs: the number of the complete CRL they update
    this_update: datetime
    next_update: datetime
    #: The store's status sequence the CRL reflects: every change up to it is in the CRL.
    status_seq: int
    entries: int
    sha256: str
    path: str


@dataclass(frozen=True)
class OcspResponseRecord:
    """A pre-produced OCSP response for one certificate and one CertID hash."""

    ca: str
    serial: int
    hash: str  # "sha1" or "sha256": the CertID hash the response answers
    response: bytes  # DER OCSPResponse
    this_update: datetime
    next_update: datetime
    status_seq: int  # the certificate's status_seq (0: never changed) when it was signed
    #: The certificate's status_seq now, when read with the response (None: not read). A larger
    #: value than ``status_seq`` means the status changed after the response was signed.
    current_status_seq: int | None = None


class RevokedSnapshot:
    """Revoked entries of one CA (and shard) as one consistent snapshot, streamed in serial order.

    ``rows`` yields plain tuples ``(serial_hex, revoked_at, reason, invalidity_date)``: the serial as
    40 hex digits, times as ISO 8601 text in UTC (``YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00``), the
    reason as its RFC 5280 code or None. Plain tuples, not records: a national CRL has millions.
    ``status_seq`` is the highest status change the snapshot holds.
    """

    def __init__(self, status_seq: int, rows: Iterator[tuple[str, str, int | None, str | None]],
                 crl_number: int | None = None):
        self.status_seq = status_seq
        self.rows = rows
        #: With ``crl_number=True``: the CRL number allocated atomically with the snapshot, so that
        #: a higher number never holds an older state, even when processes generate at once.
        self.crl_number = crl_number


class KeyRecords(ABC):
    """The keys the workspace generated (their references, never their secrets)."""

    @abstractmethod
    def add_key(self, record: KeyRecord, audit: AuditEvent) -> None: ...

    @abstractmethod
    def list_key_records(self) -> list[KeyRecord]: ...


class Certificates(ABC):
    """CAs and the certificates they issued."""

    @abstractmethod
    def add_ca(self, record: CaRecord, certificate: CertificateRecord | None, audit: AuditEvent) -> None:
        """Record a CA and (for a CA certified by another CA of this store) its certificate."""

    @abstractmethod
    def get_ca(self, name: str) -> CaRecord: ...

    @abstractmethod
    def list_cas(self) -> list[CaRecord]: ...

    @abstractmethod
    def add_certificate(self, record: CertificateRecord, audit: AuditEvent, *,
                        request_update: RequestUpdate | None = None) -> None:
        """Record an issued certificate. Raises DuplicateError if its serial exists. With
        ``request_update``, the RA request it was issued for changes in the same transaction
        (ConcurrentChangeError, and no certificate, if the request moved on)."""

    @abstractmethod
    def add_certificates(self, items: list[tuple[CertificateRecord, AuditEvent]], *,
                         request_update: RequestUpdate | None = None) -> None:
        """Record several certificates in one transaction: all of them, or none."""

    @abstractmethod
    def get_certificate(self, serial: int) -> CertificateRecord: ...

    @abstractmethod
    def iter_certificates(self, ca: str | None = None, status: str | None = None,
                          profile: str | None = None, limit: int | None = None,
                          after: CertificateRecord | None = None) -> Iterator[CertificateRecord]:
        """Certificates in issuance order (oldest first), filtered; ``after`` continues a listing
        after that certificate (a keyset page: the cost of a page does not grow with the store)."""
        ...


class Revocations(ABC):
    """Revocation state, its change sequence, and the CRLs made from it (numbers, register)."""

    @abstractmethod
    def set_revocation(self, serial: int, revoked_at: datetime | None, reason: Reason | None,
                       invalidity_date: datetime | None, audit: AuditEvent,
                       expect_reason: Reason | None | str = "any", *,
                       request_update: RequestUpdate | None = None) -> CertificateRecord:
        """Change the revocation state of ``serial`` atomically.

        ``expect_reason`` guards against a concurrent change: the update happens only when the
        current reason still equals it (``None`` = not revoked; ``"any"`` = no guard). With
        ``request_update``, the RA request asking for it moves in the same transaction.
        """

    @abstractmethod
    def status_seq(self) -> int:
        """The highest status change sequence of the store (0 when nothing was ever revoked)."""

    @abstractmethod
    def status_changes(self, since_seq: int, limit: int = 1000) -> list[tuple[int, str, int]]:
        """Status changes after ``since_seq``: ``(status_seq, ca, serial)`` in sequence order."""

    @abstractmethod
    def certificate_status(self, ca: str, serial: int) -> tuple[str | None, str | None, int | None, int] | None:
        """``(revoked_at, not_after, reason, status_seq)`` of a certificate of ``ca``, or None if unknown.

        A narrow read for responders: times as ISO text, no certificate body."""

    @abstractmethod
    def set_crl_shards(self, ca: str, shards: int, audit: AuditEvent) -> CaRecord:
        """Partition the CA's CRL into ``shards``; the number may grow, never shrink."""

    @abstractmethod
    def next_crl_number(self, ca: str) -> int:
        """Allocate the CA's next CRL number (RFC 5280 5.2.3), atomically across processes."""

    @abstractmethod
    def add_crl(self, record: CrlRecord, audit: AuditEvent, der: bytes | None = None) -> None:
        """Record a CRL; with ``der`` (the CRL itself) and publishing on, put it in the
        publication outbox in the same transaction, superseding an older one not yet published."""

    @abstractmethod
    def latest_crl(self, ca: str, kind: str = "full", shard: int | None = None) -> CrlRecord | None: ...

    @abstractmethod
    def list_crls(self, ca: str | None = None) -> list[CrlRecord]: ...

    @abstractmethod
    def revoked_snapshot(self, ca: str, shard: int | None = None, since_seq: int | None = None,
                         crl_number: bool = False) -> AbstractContextManager[RevokedSnapshot]:
        """Stream the revoked certificates of ``ca`` (in ``shard``) in serial order.

        With ``since_seq``: only the certificates whose status changed after that sequence
        (for a delta CRL), including those released from hold, whose reason is then 8
        (removeFromCRL) and whose time is that of the release.
        """


class OcspResponses(ABC):
    """Pre-produced OCSP responses and what is due for signing."""

    @abstractmethod
    def put_ocsp_responses(self, records: list[OcspResponseRecord]) -> None:
        """Store pre-produced responses; a response for an older status never replaces a newer one."""

    @abstractmethod
    def get_ocsp_response(self, ca: str, serial: int, hash: str) -> OcspResponseRecord | None:
        """The pre-produced response, with the certificate's current status sequence beside it."""
        ...

    @abstractmethod
    def ocsp_due(self, ca: str, hash: str, due: datetime, limit: int = 500, after: int | None = None) -> list[int]:
        """Serials of ``ca`` with no response for ``hash`` or one whose nextUpdate is before ``due``,
        or whose status changed after it was signed; in serial order, above ``after`` if given."""


class Counters(ABC):
    """Numbers handed out once (time-stamp serials) and the services' small state."""

    @abstractmethod
    def next_numbers(self, name: str, count: int = 1) -> int:
        """Reserve ``count`` numbers of the counter ``name`` (e.g. time-stamp serials); return the
        first. Numbers only increase, are never handed out twice, across processes and restarts."""

    @abstractmethod
    def put_meta(self, key: str, value: str) -> None:
        """Set a small named value (a service's heartbeat); not audited: it records no decision."""

    @abstractmethod
    def get_meta(self, key: str) -> str | None: ...


class AuditTrail(ABC):
    """The audit log. Every change above writes its event in the same transaction as the change,
    and the event's leaf in the audit tree (:mod:`iranpki.audit`) with it."""

    @abstractmethod
    def audit_log(self, limit: int | None = None) -> list[tuple[int, datetime, AuditEvent]]: ...

    @abstractmethod
    def add_audit_event(self, audit: AuditEvent) -> None:
        """Record an event that goes with no other change (a ceremony's transcript, say)."""

    @abstractmethod
    def audit_rows(self, after: int = 0, batch: int = 5000) -> Iterator[tuple[int, str, str, str, str, str, bytes | None]]:
        """Every event after seq ``after`` exactly as stored (seq, at and details as text, actor,
        event, subject) with its stored leaf hash or None, in seq order, read in batches."""

    @abstractmethod
    def audit_leaves(self, size: int | None = None) -> list[bytes]:
        """The stored leaf hashes in order (the first ``size``)."""

    @abstractmethod
    def audit_size(self) -> tuple[int, int]:
        """(events, leaves)."""

    @abstractmethod
    def add_checkpoint(self, size: int, root: bytes, at: datetime, note: str) -> None:
        """Keep a signed checkpoint of the tree at ``size`` (one per size)."""

    @abstractmethod
    def checkpoints(self) -> list[tuple[int, bytes, datetime, str]]:
        """The kept checkpoints: (size, root, time, signed note), by size."""


@dataclass(frozen=True)
class OutboxItem:
    """Something to publish (``iranpki.publish``): a CA certificate (``ca``), a complete CRL
    (``crl``), an offline root's ARL (``arl``), a delta CRL (``delta``) or a subscriber's
    certificate (``user``), of CA ``ca`` (a CRL's ``shard``; a user certificate's ``serial``)."""

    seq: int
    kind: str
    ca: str
    payload: bytes
    created_at: datetime
    serial: int | None = None
    shard: int | None = None
    attempts: int = 0
    last_error: str | None = None


class Outbox(ABC):
    """The publication outbox: what the CA side records (a CA certificate, a CRL, a certificate
    its subscriber agreed to publish) is put here in the same transaction, while publishing is
    on, and a publisher (``iranpki ldap publish``) takes it out in order once the directory has
    it. A directory that is down never blocks signing: the outbox waits."""

    @abstractmethod
    def publishing(self) -> bool: ...

    @abstractmethod
    def set_publishing(self, on: bool, audit: AuditEvent, *, enqueue_current: bool = True) -> int:
        """Turn publishing on or off; turning it on puts every CA certificate and the newest CRLs
        in the outbox (``enqueue_current``). Returns how many items were put."""

    @abstractmethod
    def outbox_pending(self, limit: int = 100) -> list[OutboxItem]:
        """Items not yet published, oldest first."""

    @abstractmethod
    def outbox_done(self, seq: int) -> None: ...

    @abstractmethod
    def outbox_failed(self, seq: int, error: str) -> None: ...

    @abstractmethod
    def outbox_counts(self) -> dict[str, int]:
        """``pending`` and ``published`` items."""


class Store(KeyRecords, Certificates, Revocations, OcspResponses, Counters, AuditTrail, Outbox, Registrations):
    """What the CA core and the RA need of a store, one interface per concern. SQLite and
    PostgreSQL implement it; every backend passes the contract in ``tests/store_contract.py``."""

    #: Why the store is open read-only (a read-only file or disk), or None when it can be changed.
    read_only: str | None = None

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

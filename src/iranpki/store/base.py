"""The store interface: CAs, certificates, revocations, key records and the audit log.

Every method that changes state takes the :class:`AuditEvent` describing the change and writes
it in the same transaction as the change, so the log never disagrees with the data. A method
returns only after its transaction has committed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

__all__ = [
    "AuditEvent",
    "CaRecord",
    "CertificateRecord",
    "KeyRecord",
    "Reason",
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
class AuditEvent:
    event: str  # key.generated, ca.created, cert.issued, cert.revoked, ...
    subject: str  # what the event is about (CA name, serial, key reference)
    actor: str = "iranpki"
    details: dict[str, object] = field(default_factory=dict)


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

    @property
    def status(self) -> str:
        if self.revoked_at is None:
            return "valid"
        return "on hold" if self.reason is Reason.certificateHold else "revoked"


class Store(ABC):
    """What the CA core needs of a store. SQLite implements it; PostgreSQL will."""

    @abstractmethod
    def add_key(self, record: KeyRecord, audit: AuditEvent) -> None: ...

    @abstractmethod
    def list_key_records(self) -> list[KeyRecord]: ...

    @abstractmethod
    def add_ca(self, record: CaRecord, certificate: CertificateRecord | None, audit: AuditEvent) -> None:
        """Record a CA and (for a CA certified by another CA of this store) its certificate."""

    @abstractmethod
    def get_ca(self, name: str) -> CaRecord: ...

    @abstractmethod
    def list_cas(self) -> list[CaRecord]: ...

    @abstractmethod
    def add_certificate(self, record: CertificateRecord, audit: AuditEvent) -> None:
        """Record an issued certificate. Raises DuplicateError if its serial exists."""

    @abstractmethod
    def add_certificates(self, items: list[tuple[CertificateRecord, AuditEvent]]) -> None:
        """Record several certificates in one transaction: all of them, or none."""

    @abstractmethod
    def get_certificate(self, serial: int) -> CertificateRecord: ...

    @abstractmethod
    def iter_certificates(self, ca: str | None = None, status: str | None = None,
                          profile: str | None = None, limit: int | None = None) -> Iterator[CertificateRecord]: ...

    @abstractmethod
    def set_revocation(self, serial: int, revoked_at: datetime | None, reason: Reason | None,
                       invalidity_date: datetime | None, audit: AuditEvent,
                       expect_reason: Reason | None | str = "any") -> CertificateRecord:
        """Change the revocation state of ``serial`` atomically.

        ``expect_reason`` guards against a concurrent change: the update happens only when the
        current reason still equals it (``None`` = not revoked; ``"any"`` = no guard).
        """

    @abstractmethod
    def audit_log(self, limit: int | None = None) -> list[tuple[int, datetime, AuditEvent]]: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

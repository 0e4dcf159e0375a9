"""The audit event every change of the store is written with (one module of its own, so that
each part of the store interface can name it)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AuditEvent"]


@dataclass(frozen=True)
class AuditEvent:
    event: str  # key.generated, ca.created, cert.issued, cert.revoked, ...
    subject: str  # what the event is about (CA name, serial, key reference)
    actor: str = "iranpki"
    details: dict[str, object] = field(default_factory=dict)

"""Certificate stores: the :class:`Store` interface and its SQLite backend."""

from __future__ import annotations

from .base import (
    AuditEvent,
    CaRecord,
    CertificateRecord,
    CrlRecord,
    KeyRecord,
    OcspResponseRecord,
    Reason,
    RevokedSnapshot,
    Store,
    serial_text,
)
from .sqlite import SqliteStore

__all__ = ["AuditEvent", "CaRecord", "CertificateRecord", "CrlRecord", "KeyRecord", "OcspResponseRecord", "Reason",
           "RevokedSnapshot", "SqliteStore", "Store", "serial_text"]

"""Certificate stores: the :class:`Store` interface and its SQLite backend."""

from __future__ import annotations

from .base import AuditEvent, CaRecord, CertificateRecord, KeyRecord, Reason, Store, serial_text
from .sqlite import SqliteStore

__all__ = ["AuditEvent", "CaRecord", "CertificateRecord", "KeyRecord", "Reason", "SqliteStore", "Store",
           "serial_text"]

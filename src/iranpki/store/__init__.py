"""Certificate stores: the :class:`Store` interface, its backends, and :func:`open_store`, the one
way to open a store from a location (a workspace's ``store`` setting, a benchmark's file)."""

from __future__ import annotations

from .base import (
    AuditEvent,
    AuditTrail,
    CaRecord,
    CertificateRecord,
    Certificates,
    Counters,
    CrlRecord,
    KeyRecord,
    KeyRecords,
    OcspResponseRecord,
    OcspResponses,
    Outbox,
    OutboxItem,
    Reason,
    Revocations,
    RevokedSnapshot,
    Store,
    serial_text,
)
from .registration import (
    DeviceApprovalRecord,
    EvidenceRecord,
    OfficeRecord,
    OfficerRecord,
    RecoveryKeyRecord,
    Registrations,
    RequestEvent,
    RequestRecord,
    RequestUpdate,
)
from .sqlite import SqliteStore

__all__ = ["BACKENDS", "AuditEvent", "AuditTrail", "CaRecord", "CertificateRecord", "Certificates", "Counters",
           "CrlRecord", "KeyRecord", "KeyRecords", "OcspResponseRecord", "OcspResponses", "Outbox", "OutboxItem", "Reason", "Revocations",
           "RevokedSnapshot", "SqliteStore", "Store", "open_store", "serial_text",
           "DeviceApprovalRecord", "EvidenceRecord", "OfficeRecord", "OfficerRecord", "RecoveryKeyRecord", "Registrations", "RequestEvent", "RequestRecord", "RequestUpdate"]

import os  # noqa: E402 - below the re-exports, which are this module's API
from collections.abc import Callable  # noqa: E402

from ..clock import Clock  # noqa: E402
from ..errors import ConfigError  # noqa: E402


def _sqlite(location: str, clock: Clock | None, create: bool, **_: str | None) -> Store:
    return SqliteStore(location, clock, create=create)


def _postgresql(location: str, clock: Clock | None, create: bool, password_file: str | None = None) -> Store:
    try:
        from .postgresql import PostgresStore
    except ImportError:
        raise ConfigError("a PostgreSQL store needs psycopg 3: pip install 'iranpki[postgresql]'") from None
    return PostgresStore("postgresql://" + location, clock, create=create, password_file=password_file)


#: Store backends by the scheme of their location (``sqlite:///path``; a plain path is SQLite;
#: ``postgresql://user@host:port/database``, the password from the environment).
#: A backend is a callable ``(location without the scheme, clock, create, password_file=None) -> Store``.
BACKENDS: dict[str, Callable[..., Store]] = {"sqlite": _sqlite, "postgresql": _postgresql}


def open_store(location: str | os.PathLike[str], *, clock: Clock | None = None, create: bool = False,
               password_file: str | None = None) -> Store:
    """Open the store at ``location``: a file path (SQLite), or a URL as SQLAlchemy writes them,
    ``sqlite:///relative/file``, ``sqlite:////absolute/file`` or ``postgresql://user@host:port/db``.
    ``create`` makes a new store where there is none; ``password_file`` holds a database server's
    password (else the environment gives it). A scheme no backend serves is a ConfigError naming
    the schemes that are."""
    text = os.fspath(location)
    scheme, sep, rest = text.partition("://")
    if not sep or os.sep in scheme or len(scheme) < 2:  # a plain path (C:\ is no scheme either)
        scheme, rest = "sqlite", text
    elif scheme == "sqlite":
        rest = rest[1:] if rest.startswith("/") else rest  # sqlite:///abs/path -> /abs/path
    backend = BACKENDS.get(scheme)
    if backend is None:
        raise ConfigError(f"store location {text!r} names the scheme {scheme!r}, which no store backend serves; "
                          f"give one of: {', '.join(f'{s}://' for s in BACKENDS)} or a file path")
    return backend(rest, clock, create, password_file=password_file)

"""SQLite tables and queries of the registration part (:class:`Registrations`), mixed into
:class:`iranpki.store.sqlite.SqliteStore` (schema version 4)."""

from __future__ import annotations

import hashlib
import json
import functools
import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from ..errors import ConcurrentChangeError, DuplicateError, NotFoundError, StoreError
from .events import AuditEvent
from .registration import (
    DeviceApprovalRecord,
    EvidenceRecord,
    OfficerRecord,
    OfficeRecord,
    RecoveryKeyRecord,
    Registrations,
    RequestEvent,
    RequestRecord,
    RequestUpdate,
)

F = TypeVar("F", bound=Callable[..., Any])


def _needs_v4(method: F) -> F:
    """A read of the registration tables, which a store older than version 4 (open read-only,
    so not upgraded) does not have: said so, instead of SQLite's 'no such table'."""
    @functools.wraps(method)
    def checked(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN001
        version = getattr(self, "schema_version", 4)
        if version < 4:
            raise StoreError(f"the store {getattr(self, 'path', '')} has schema version {version} and is open read-only "
                             f"({getattr(self, 'read_only', None)}), so it has no registration records yet; open it "
                             "once on a writable disk with this iranpki, which upgrades it")
        return method(self, *args, **kwargs)

    return checked  # type: ignore[return-value]


SCHEMA_V4 = """
CREATE TABLE IF NOT EXISTS ra_offices(
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT NOT NULL,
    cas TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'cancelled')),
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ra_officers(
    id TEXT PRIMARY KEY,
    office TEXT NOT NULL REFERENCES ra_offices(code),
    name TEXT NOT NULL,
    roles TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'removed')),
    created_at TEXT NOT NULL,
    certificate BLOB,
    fingerprint TEXT UNIQUE);
CREATE TABLE IF NOT EXISTS ra_requests(
    id TEXT PRIMARY KEY,
    code_hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    profile TEXT NOT NULL,
    level INTEGER NOT NULL CHECK (level BETWEEN 1 AND 4),
    ca TEXT NOT NULL REFERENCES cas(name),
    state TEXT NOT NULL,
    applicant TEXT NOT NULL,
    subject TEXT NOT NULL,
    key_location TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    office TEXT REFERENCES ra_offices(code),
    csr BLOB,
    serial TEXT,
    reason TEXT,
    device TEXT NOT NULL,
    proofing TEXT NOT NULL,
    names TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS ra_requests_by_office ON ra_requests(office, state, created_at);
CREATE INDEX IF NOT EXISTS ra_requests_by_state ON ra_requests(state, created_at);
CREATE INDEX IF NOT EXISTS ra_requests_by_serial ON ra_requests(serial) WHERE serial IS NOT NULL;
CREATE INDEX IF NOT EXISTS ra_requests_by_expiry ON ra_requests(expires_at);
CREATE TABLE IF NOT EXISTS ra_events(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request TEXT NOT NULL REFERENCES ra_requests(id),
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    office TEXT,
    from_state TEXT,
    to_state TEXT NOT NULL,
    details TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ra_events_by_request ON ra_events(request, seq);
CREATE TABLE IF NOT EXISTS ra_blobs(
    sha256 TEXT PRIMARY KEY,
    data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ra_evidence(
    request TEXT NOT NULL REFERENCES ra_requests(id),
    sha256 TEXT NOT NULL REFERENCES ra_blobs(sha256),
    kind TEXT NOT NULL,
    number TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    officer TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (request, sha256));
CREATE TABLE IF NOT EXISTS ra_device_approvals(
    approval_id TEXT PRIMARY KEY,
    manufacturer TEXT NOT NULL,
    model TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    lab TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    attestation BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS ra_device_approvals_by_model ON ra_device_approvals(manufacturer, model);
CREATE TABLE IF NOT EXISTS ra_attempts(
    key TEXT NOT NULL,
    at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ra_attempts_by_key ON ra_attempts(key, at);
"""

#: Version 5: each officer's one-time-code (TOTP) secret, for the office portal's second factor.
SCHEMA_V5 = """
CREATE TABLE IF NOT EXISTS ra_officer_totp(
    officer TEXT PRIMARY KEY REFERENCES ra_officers(id),
    secret BLOB NOT NULL,
    enrolled_at TEXT NOT NULL);
"""

SCHEMA_V7 = """
CREATE TABLE IF NOT EXISTS recovery_keys(
    name TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    public_key BLOB NOT NULL UNIQUE,
    registered_at TEXT NOT NULL);
"""

_REQUEST_COLUMNS = ("id", "code_hash", "kind", "profile", "level", "ca", "state", "applicant", "subject", "key_location",
                    "created_at", "updated_at", "expires_at", "version", "office", "csr", "serial", "reason", "device",
                    "proofing", "names")
_JSON = {"applicant", "device", "proofing", "names"}
_TIMES = {"created_at", "updated_at", "expires_at"}


def _t(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _column(name: str, value: object) -> object:
    if name in _JSON:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if name in _TIMES:
        return _t(value)  # type: ignore[arg-type]
    if name == "serial":
        return None if value is None else f"{value:040x}"
    return value


def _request(row: tuple) -> RequestRecord:
    values = dict(zip(_REQUEST_COLUMNS, row))
    for name in _JSON:
        values[name] = json.loads(values[name])
    for name in _TIMES:
        values[name] = datetime.fromisoformat(values[name])
    values["serial"] = None if values["serial"] is None else int(values["serial"], 16)
    values["csr"] = None if values["csr"] is None else bytes(values["csr"])
    return RequestRecord(**values)


def _office(row: tuple) -> OfficeRecord:
    return OfficeRecord(row[0], row[1], row[2], tuple(json.loads(row[3])), row[4], datetime.fromisoformat(row[5]))


def _officer(row: tuple) -> OfficerRecord:
    return OfficerRecord(row[0], row[1], row[2], tuple(json.loads(row[3])), row[4], datetime.fromisoformat(row[5]),
                         None if row[6] is None else bytes(row[6]), row[7])


class SqliteRegistrations(Registrations):
    """The registration part over the SqliteStore's connection (``_tx``, ``_lock``, ``_db``)."""

    _db: sqlite3.Connection

    def _event(self, db: sqlite3.Connection, event: RequestEvent) -> None:
        db.execute("INSERT INTO ra_events(request, at, actor, office, from_state, to_state, details) "
                   "VALUES (?,?,?,?,?,?,?)",
                   (event.request, _t(event.at), event.actor, event.office, event.from_state, event.to_state,
                    json.dumps(event.details, sort_keys=True, ensure_ascii=False, default=str)))

    # ---- offices and officers ------------------------------------------------------------------

    def add_office(self, record: OfficeRecord, audit: AuditEvent) -> None:
        try:
            with self._tx() as db:  # type: ignore[attr-defined]
                db.execute("INSERT INTO ra_offices VALUES (?,?,?,?,?,?)",
                           (record.code, record.name, record.city, json.dumps(list(record.cas)), record.status,
                            _t(record.created_at)))
                self._audit(db, audit)  # type: ignore[attr-defined]
        except sqlite3.IntegrityError:
            raise DuplicateError(f"an office with code {record.code!r} exists already; choose another code") from None

    @_needs_v4
    def get_office(self, code: str) -> OfficeRecord:
        with self._lock:  # type: ignore[attr-defined]
            row = self._db.execute("SELECT * FROM ra_offices WHERE code=?", (code,)).fetchone()
        if row is None:
            raise NotFoundError(f"no registration office with code {code!r}; the CA operator lists the offices it created")
        return _office(row)

    @_needs_v4
    def list_offices(self) -> list[OfficeRecord]:
        with self._lock:  # type: ignore[attr-defined]
            rows = self._db.execute("SELECT * FROM ra_offices ORDER BY code").fetchall()
        return [_office(r) for r in rows]

    def set_office_status(self, code: str, status: str, audit: AuditEvent) -> OfficeRecord:
        with self._tx() as db:  # type: ignore[attr-defined]
            # A cancelled office stays cancelled, whatever another process decided meanwhile.
            if db.execute("UPDATE ra_offices SET status=? WHERE code=? AND (status != 'cancelled' OR ? = 'cancelled')",
                          (status, code, status)).rowcount != 1:
                if db.execute("SELECT 1 FROM ra_offices WHERE code=?", (code,)).fetchone() is None:
                    raise NotFoundError(f"no registration office with code {code!r}")
                raise StoreError(f"office {code!r} is cancelled; a cancelled office is not reopened: create a new one")
            self._audit(db, audit)  # type: ignore[attr-defined]
        return self.get_office(code)

    def set_officer_status(self, officer_id: str, status: str, audit: AuditEvent) -> OfficerRecord:
        with self._tx() as db:  # type: ignore[attr-defined]
            if db.execute("UPDATE ra_officers SET status=? WHERE id=?", (status, officer_id)).rowcount != 1:
                raise NotFoundError(f"no registration officer {officer_id!r}")
            self._audit(db, audit)  # type: ignore[attr-defined]
        return self.get_officer(officer_id)

    def add_officer(self, record: OfficerRecord, audit: AuditEvent) -> None:
        try:
            with self._tx() as db:  # type: ignore[attr-defined]
                db.execute("INSERT INTO ra_officers VALUES (?,?,?,?,?,?,?,?)",
                           (record.id, record.office, record.name, json.dumps(list(record.roles)), record.status,
                            _t(record.created_at), record.certificate, record.fingerprint))
                self._audit(db, audit)  # type: ignore[attr-defined]
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" in str(exc):
                raise NotFoundError(f"no registration office with code {record.office!r}") from None
            raise DuplicateError(f"officer {record.id!r} or their certificate is recorded already") from None

    @_needs_v4
    def get_officer(self, officer_id: str) -> OfficerRecord:
        with self._lock:  # type: ignore[attr-defined]
            row = self._db.execute("SELECT * FROM ra_officers WHERE id=?", (officer_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no registration officer {officer_id!r}; the CA operator lists the officers it enrolled")
        return _officer(row)

    @_needs_v4
    def officer_by_fingerprint(self, fingerprint: str) -> OfficerRecord | None:
        with self._lock:  # type: ignore[attr-defined]
            row = self._db.execute("SELECT * FROM ra_officers WHERE fingerprint=?", (fingerprint,)).fetchone()
        return None if row is None else _officer(row)

    @_needs_v4
    def list_officers(self, office: str | None = None) -> list[OfficerRecord]:
        with self._lock:  # type: ignore[attr-defined]
            if office is None:
                rows = self._db.execute("SELECT * FROM ra_officers ORDER BY office, id").fetchall()
            else:
                rows = self._db.execute("SELECT * FROM ra_officers WHERE office=? ORDER BY id", (office,)).fetchall()
        return [_officer(r) for r in rows]

    def set_officer_totp(self, officer_id: str, secret: bytes, at: datetime, audit: AuditEvent) -> None:
        with self._tx() as db:  # type: ignore[attr-defined]
            if db.execute("SELECT 1 FROM ra_officers WHERE id=?", (officer_id,)).fetchone() is None:
                raise NotFoundError(f"no registration officer {officer_id!r}")
            db.execute("INSERT INTO ra_officer_totp VALUES (?,?,?) ON CONFLICT(officer) DO UPDATE SET "
                       "secret=excluded.secret, enrolled_at=excluded.enrolled_at", (officer_id, secret, _t(at)))
            self._audit(db, audit)  # type: ignore[attr-defined]

    @_needs_v4
    def officer_totp(self, officer_id: str) -> bytes | None:
        if getattr(self, "schema_version", 5) < 5:
            return None
        with self._lock:  # type: ignore[attr-defined]
            row = self._db.execute("SELECT secret FROM ra_officer_totp WHERE officer=?", (officer_id,)).fetchone()
        return None if row is None else bytes(row[0])

    # ---- key-recovery keys ---------------------------------------------------------------------

    def add_recovery_key(self, record: RecoveryKeyRecord, audit: AuditEvent) -> None:
        with self._tx() as db:  # type: ignore[attr-defined]
            try:
                db.execute("INSERT INTO recovery_keys VALUES (?,?,?,?)",
                           (record.name, record.key, record.public_key, _t(record.registered_at)))
            except sqlite3.IntegrityError:
                raise DuplicateError(f"a key-recovery key named {record.name!r} or with this public key is registered "
                                     "already; choose another name, or another key") from None
            self._audit(db, audit)  # type: ignore[attr-defined]

    def recovery_keys(self) -> list[RecoveryKeyRecord]:
        if getattr(self, "schema_version", 7) < 7:
            return []
        with self._lock:  # type: ignore[attr-defined]
            rows = self._db.execute("SELECT name, key, public_key, registered_at FROM recovery_keys "
                                    "ORDER BY registered_at DESC, name DESC").fetchall()
        return [RecoveryKeyRecord(r[0], r[1], bytes(r[2]), datetime.fromisoformat(r[3])) for r in rows]

    # ---- requests ------------------------------------------------------------------------------

    def add_request(self, record: RequestRecord, event: RequestEvent, audit: AuditEvent) -> None:
        values = [_column(name, getattr(record, name)) for name in _REQUEST_COLUMNS]
        try:
            with self._tx() as db:  # type: ignore[attr-defined]
                db.execute(f"INSERT INTO ra_requests VALUES ({','.join('?' * len(values))})", values)
                self._event(db, event)
                self._audit(db, audit)  # type: ignore[attr-defined]
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" in str(exc):
                raise NotFoundError(f"the request names a CA ({record.ca!r}) or office this store does not hold") from None
            raise DuplicateError("a request with this id or tracking code exists already; register again") from None

    @_needs_v4
    def get_request(self, request_id: str) -> RequestRecord:
        with self._lock:  # type: ignore[attr-defined]
            row = self._db.execute("SELECT * FROM ra_requests WHERE id=?", (request_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no request {request_id!r}")
        return _request(row)

    @_needs_v4
    def request_by_code(self, code_hash: str) -> RequestRecord | None:
        with self._lock:  # type: ignore[attr-defined]
            row = self._db.execute("SELECT * FROM ra_requests WHERE code_hash=?", (code_hash,)).fetchone()
        return None if row is None else _request(row)

    @_needs_v4
    def list_requests(self, *, office: str | None = None, states: tuple[str, ...] | None = None,
                      ca: str | None = None, serial: int | None = None, expires_before: datetime | None = None,
                      limit: int = 100, second_factor: str | None = None) -> list[RequestRecord]:
        where: list[str] = []
        args: list[object] = []
        if second_factor is not None:
            where.append("(json_extract(applicant, '$.national_code')=? OR json_extract(applicant, '$.national_id')=? "
                         "OR json_extract(applicant, '$.second_factor')=?)")
            args.extend([second_factor] * 3)
        for column, value in (("office", office), ("ca", ca), ("serial", None if serial is None else f"{serial:040x}")):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        if expires_before is not None:
            where.append("expires_at <= ?")
            args.append(_t(expires_before))
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(states)
        sql = "SELECT * FROM ra_requests" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:  # type: ignore[attr-defined]
            rows = self._db.execute(sql + " ORDER BY created_at, id LIMIT ?", [*args, int(limit)]).fetchall()
        return [_request(r) for r in rows]

    def update_request(self, request_id: str, version: int, changes: dict[str, object], event: RequestEvent,
                       audit: AuditEvent, *, evidence: tuple[tuple[EvidenceRecord, bytes], ...] = ()) -> RequestRecord:
        with self._tx() as db:  # type: ignore[attr-defined]
            return self._update_request_in(db, RequestUpdate(request_id, version, changes, event, audit, evidence))

    def _update_request_in(self, db: sqlite3.Connection, update: RequestUpdate) -> RequestRecord:
        """Apply ``update`` inside the caller's transaction (compare-and-set on the version)."""
        changes = update.changes
        unknown = set(changes) - set(_REQUEST_COLUMNS) | ({"id", "code_hash", "version", "created_at"} & set(changes))
        if unknown:
            raise StoreError(f"a request's {', '.join(sorted(unknown))} cannot be changed")
        names = list(changes)
        done = db.execute(
            f"UPDATE ra_requests SET {', '.join(f'{n}=?' for n in names)}{', ' if names else ''}version=version+1 "
            "WHERE id=? AND version=?",
            [*(_column(n, changes[n]) for n in names), update.request_id, update.version]).rowcount
        if done != 1:
            exists = db.execute("SELECT version FROM ra_requests WHERE id=?", (update.request_id,)).fetchone()
            if exists is None:
                raise NotFoundError(f"no request {update.request_id!r}")
            raise ConcurrentChangeError(
                f"request {update.request_id} changed while this was decided (version {exists[0]}, not "
                f"{update.version}); nothing was changed: read it again")
        self._event(db, update.event)
        self._audit(db, update.audit)  # type: ignore[attr-defined]
        for record, data in update.evidence:
            self._add_evidence(db, record, data)
        row = db.execute("SELECT * FROM ra_requests WHERE id=?", (update.request_id,)).fetchone()
        return _request(row)

    @_needs_v4
    def request_events(self, request_id: str) -> list[RequestEvent]:
        with self._lock:  # type: ignore[attr-defined]
            rows = self._db.execute("SELECT seq, request, at, actor, office, from_state, to_state, details FROM ra_events "
                                    "WHERE request=? ORDER BY seq", (request_id,)).fetchall()
        return [RequestEvent(r[1], datetime.fromisoformat(r[2]), r[3], r[4], r[5], r[6], json.loads(r[7]), r[0])
                for r in rows]

    # ---- evidence and attempts -----------------------------------------------------------------

    def _add_evidence(self, db: sqlite3.Connection, record: EvidenceRecord, data: bytes) -> None:
        if record.request is None or hashlib.sha256(data).hexdigest() != record.sha256:
            raise StoreError(f"the document's SHA-256 is not {record.sha256}; nothing was kept")
        db.execute("INSERT INTO ra_blobs VALUES (?, ?) ON CONFLICT(sha256) DO NOTHING", (record.sha256, data))
        db.execute("INSERT INTO ra_evidence VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(request, sha256) DO NOTHING",
                   (record.request, record.sha256, record.kind, record.number, record.media_type, record.size,
                    record.officer, _t(record.at)))

    @_needs_v4
    def list_evidence(self, request_id: str) -> list[EvidenceRecord]:
        with self._lock:  # type: ignore[attr-defined]
            rows = self._db.execute("SELECT * FROM ra_evidence WHERE request=? ORDER BY at, sha256",
                                    (request_id,)).fetchall()
        return [EvidenceRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], datetime.fromisoformat(r[7])) for r in rows]

    @_needs_v4
    def evidence_data(self, sha256: str) -> bytes:
        with self._lock:  # type: ignore[attr-defined]
            row = self._db.execute("SELECT data FROM ra_blobs WHERE sha256=?", (sha256,)).fetchone()
        if row is None:
            raise NotFoundError(f"no document with SHA-256 {sha256}")
        return bytes(row[0])

    @_needs_v4
    def purge_evidence(self, cutoffs: dict[int, datetime], keep_states: tuple[str, ...], audit: AuditEvent) -> int:
        import dataclasses

        removed = 0
        keep = ",".join("?" * len(keep_states)) or "NULL"
        with self._tx() as db:  # type: ignore[attr-defined]
            for level, cutoff in sorted(cutoffs.items()):
                removed += db.execute(
                    f"DELETE FROM ra_evidence WHERE at < ? AND request IN (SELECT id FROM ra_requests WHERE level=? "
                    f"AND state NOT IN ({keep}))", (_t(cutoff), level, *keep_states)).rowcount
            db.execute("DELETE FROM ra_blobs WHERE sha256 NOT IN (SELECT sha256 FROM ra_evidence)")
            self._audit(db, dataclasses.replace(audit, details={**audit.details, "documents": removed}))  # type: ignore[attr-defined]
        return removed

    def add_device_approval(self, record: DeviceApprovalRecord, attestation: bytes, audit: AuditEvent) -> None:
        try:
            with self._tx() as db:  # type: ignore[attr-defined]
                db.execute("INSERT INTO ra_device_approvals VALUES (?,?,?,?,?,?,?,?)",
                           (record.approval_id, record.manufacturer, record.model, _t(record.issued_at),
                            _t(record.valid_until), record.lab, _t(record.recorded_at), attestation))
                self._audit(db, audit)  # type: ignore[attr-defined]
        except sqlite3.IntegrityError:
            raise DuplicateError(f"approval {record.approval_id!r} is recorded already") from None

    @_needs_v4
    def device_approvals(self, manufacturer: str | None = None, model: str | None = None) -> list[DeviceApprovalRecord]:
        sql = "SELECT approval_id, manufacturer, model, issued_at, valid_until, lab, recorded_at FROM ra_device_approvals"
        args: list[str] = []
        if manufacturer is not None and model is not None:
            sql += " WHERE manufacturer=? AND model=?"
            args = [manufacturer, model]
        with self._lock:  # type: ignore[attr-defined]
            rows = self._db.execute(sql + " ORDER BY issued_at, approval_id", args).fetchall()
        return [DeviceApprovalRecord(r[0], r[1], r[2], datetime.fromisoformat(r[3]), datetime.fromisoformat(r[4]), r[5],
                                     datetime.fromisoformat(r[6])) for r in rows]

    @_needs_v4
    def device_approval_attestation(self, approval_id: str) -> bytes:
        with self._lock:  # type: ignore[attr-defined]
            row = self._db.execute("SELECT attestation FROM ra_device_approvals WHERE approval_id=?",
                                   (approval_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no approval {approval_id!r} is recorded")
        return bytes(row[0])

    @_needs_v4
    def count_attempts(self, key: str, since: datetime, *, add_at: datetime | None = None) -> int:
        if add_at is None:  # a read: no write transaction for the common case, a lookup that succeeds
            with self._lock:  # type: ignore[attr-defined]
                return int(self._db.execute("SELECT COUNT(*) FROM ra_attempts WHERE key=? AND at >= ?",
                                            (key, _t(since))).fetchone()[0])
        with self._tx() as db:  # type: ignore[attr-defined]
            db.execute("DELETE FROM ra_attempts WHERE key=? AND at < ?", (key, _t(since)))
            db.execute("INSERT INTO ra_attempts VALUES (?, ?)", (key, _t(add_at)))
            return int(db.execute("SELECT COUNT(*) FROM ra_attempts WHERE key=? AND at >= ?",
                                  (key, _t(since))).fetchone()[0])

"""The embedded store: one SQLite file in WAL mode.

- Every change runs in one ``BEGIN IMMEDIATE`` transaction together with its audit row, so the
  write lock is taken up front (no deadlock between two writers upgrading read locks) and a
  crash at any point leaves either the whole change or none of it.
- ``synchronous=FULL``: a commit is on disk before the caller gets the certificate, so even a
  power cut never loses a certificate that was handed out.
- Several processes may write at once; SQLite serialises them and ``busy_timeout`` makes a
  writer wait for the lock instead of failing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from ..clock import Clock, SystemClock
from ..errors import DuplicateError, NotFoundError, SchemaError, StoreError
from .registration import RequestUpdate
from .sqlite_registration import SCHEMA_V4, SCHEMA_V5, SCHEMA_V7, SqliteRegistrations
from .base import (
    AuditEvent,
    CaRecord,
    CertificateRecord,
    CrlRecord,
    KeyRecord,
    OcspResponseRecord,
    OutboxItem,
    Reason,
    RevokedSnapshot,
    Store,
    serial_text,
)

__all__ = ["SqliteStore"]

SCHEMA_VERSION = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys(
    reference TEXT PRIMARY KEY,
    backend TEXT NOT NULL CHECK (backend IN ('pkcs11', 'software')),
    key_spec TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cas(
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('root', 'intermediate')),
    level INTEGER CHECK (level BETWEEN 1 AND 4),
    parent TEXT REFERENCES cas(name),
    certificate BLOB NOT NULL,
    key_reference TEXT NOT NULL,
    repository_url TEXT NOT NULL,
    ocsp_url TEXT NOT NULL,
    created_at TEXT NOT NULL,
    signature TEXT NOT NULL,
    crl_shards INTEGER NOT NULL DEFAULT 1 CHECK (crl_shards BETWEEN 1 AND 4096));
CREATE TABLE IF NOT EXISTS certificates(
    serial TEXT PRIMARY KEY CHECK (length(serial) = 40),
    ca TEXT NOT NULL REFERENCES cas(name),
    profile TEXT NOT NULL,
    subject TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    certificate BLOB NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    issued_at TEXT NOT NULL,
    revoked_at TEXT,
    reason INTEGER CHECK (reason IS NULL OR reason IN (0,1,2,3,4,5,6,8,9,10)),
    invalidity_date TEXT,
    shard INTEGER NOT NULL DEFAULT 0,
    status_seq INTEGER,
    status_changed_at TEXT,
    CHECK ((revoked_at IS NULL) = (reason IS NULL)));
CREATE INDEX IF NOT EXISTS certificates_by_ca ON certificates(ca, serial);
CREATE TABLE IF NOT EXISTS audit(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    subject TEXT NOT NULL,
    details TEXT NOT NULL);
"""

#: Version 8: the publication outbox (a CA certificate, a CRL, a subscriber's certificate, to
#: publish in the directory; iranpki.publish).
SCHEMA_V8 = """
CREATE TABLE IF NOT EXISTS publish_outbox(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('ca', 'crl', 'arl', 'delta', 'user')),
    ca TEXT NOT NULL,
    serial TEXT,
    shard INTEGER,
    payload BLOB NOT NULL,
    created_at TEXT NOT NULL,
    done_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT);
CREATE INDEX IF NOT EXISTS publish_outbox_pending ON publish_outbox(seq) WHERE done_at IS NULL;
"""

#: Version 6: the audit log's Merkle tree (iranpki.audit): each event's leaf hash, written with the
#: event, and the signed checkpoints.
_SCHEMA_V6 = """
CREATE TABLE IF NOT EXISTS audit_tree(
    seq INTEGER PRIMARY KEY,
    leaf BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit_checkpoints(
    size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    at TEXT NOT NULL,
    note TEXT NOT NULL);
"""

_SCHEMA_V2 = """
-- Covering: a CRL is read from this index alone, in serial order, without visiting the table.
CREATE INDEX IF NOT EXISTS certificates_revoked_by_shard
    ON certificates(ca, shard, serial, revoked_at, reason, invalidity_date) WHERE revoked_at IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS certificates_status_seq ON certificates(status_seq) WHERE status_seq IS NOT NULL;
CREATE TABLE IF NOT EXISTS counters(
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS crl_numbers(
    ca TEXT PRIMARY KEY REFERENCES cas(name),
    last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS crls(
    ca TEXT NOT NULL REFERENCES cas(name),
    number INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('full', 'delta')),
    shard INTEGER,
    base_number INTEGER,
    this_update TEXT NOT NULL,
    next_update TEXT NOT NULL,
    status_seq INTEGER NOT NULL,
    entries INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (ca, number));
CREATE TABLE IF NOT EXISTS ocsp_responses(
    ca TEXT NOT NULL,
    serial TEXT NOT NULL,
    hash TEXT NOT NULL,
    response BLOB NOT NULL,
    this_update TEXT NOT NULL,
    next_update TEXT NOT NULL,
    status_seq INTEGER NOT NULL,
    PRIMARY KEY (ca, serial, hash)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ocsp_responses_by_next ON ocsp_responses(ca, next_update);
"""

# Version 3: every list a client pages through reads an index in its own order (issued_at,
# serial), so a page costs the same at a thousand certificates and at a million (keyset pages:
# "after this (issued_at, serial)", never OFFSET). The status filter "valid" walks the same
# indexes (nearly every certificate is valid); "revoked" has its own, partial one.
_SCHEMA_V3 = """
CREATE INDEX IF NOT EXISTS certificates_by_issue ON certificates(issued_at, serial);
CREATE INDEX IF NOT EXISTS certificates_by_ca_issue ON certificates(ca, issued_at, serial);
CREATE INDEX IF NOT EXISTS certificates_by_profile_issue ON certificates(profile, issued_at, serial);
CREATE INDEX IF NOT EXISTS certificates_revoked_by_issue ON certificates(issued_at, serial)
    WHERE revoked_at IS NOT NULL;
"""

# Version 1 -> 2: CRL shards, status change sequence (delta CRLs, OCSP refresh), CRL numbers,
# the CRL register and pre-produced OCSP responses.
_MIGRATE_1_2 = """
ALTER TABLE cas ADD COLUMN crl_shards INTEGER NOT NULL DEFAULT 1 CHECK (crl_shards BETWEEN 1 AND 4096);
ALTER TABLE certificates ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
ALTER TABLE certificates ADD COLUMN status_seq INTEGER;
ALTER TABLE certificates ADD COLUMN status_changed_at TEXT;
DROP INDEX IF EXISTS certificates_revoked;
"""


#: The schema's history from version 3 on, one for every backend (iranpki.store.postgresql
#: translates the DDL): (version, the DDL that takes a store of the version before to it, the name
#: of a data step run in the same transaction, or None). A new version is one entry here.
UPGRADES: tuple[tuple[int, str, str | None], ...] = (
    (4, SCHEMA_V4, None),  # the registration tables (offices, officers, requests): new tables only
    (5, SCHEMA_V5, None),  # the officers' one-time-code secrets: a new table only
    (6, _SCHEMA_V6, "_leaves_for_old_events"),  # the audit log's tree, and a leaf for every older event
    (7, SCHEMA_V7, None),  # the key-recovery keys: a new table only
    (8, SCHEMA_V8, None),  # the publication outbox: a new table only
)


def _t(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


def _d(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _create_private(path: str) -> None:
    """Create the empty store file readable by its owner only (0600). SQLite gives the -wal and
    -shm files it makes beside it the same permissions, so the whole store stays private."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create the store {path}: {exc.strerror}; {_access_advice(path)}") from None


def _make_private(path: str) -> None:
    """Take group and other access away from a store made by an older version (it was 0644)."""
    for name in (path, path + "-wal", path + "-shm"):
        try:
            mode = os.stat(name).st_mode
            if mode & 0o077:
                os.chmod(name, mode & 0o700)
        except OSError:
            pass  # absent, or a read-only disk: opening reports what matters


def _unwritable(path: str) -> str | None:
    """Why the store cannot be written here (a read-only disk or folder), or None."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "the disk is mounted read-only"
    except OSError:
        return None
    if not os.access(path, os.W_OK) or not os.access(folder, os.W_OK):
        return "no write permission on the store or its folder"
    return None


def _access_advice(path: str) -> str:
    if not os.access(path, os.R_OK):
        return "check that the store file exists and belongs to the user running iranpki"
    if _unwritable(path):
        return "the store is on a read-only disk or folder; remount it read-write or run as the workspace's owner"
    return "check free disk space and the store file's owner and permissions"


def _connect_read_only(path: str, why: str) -> sqlite3.Connection:
    """A read-only connection to a store that cannot be written here. SQLite reads a WAL store
    read-only when it may make the -shm file; where it cannot (a read-only disk with no -shm
    left), the file is opened as immutable, which is right because nothing here can change it."""
    uri = "file:" + urllib.parse.quote(os.path.abspath(path))
    last: Exception | None = None
    for flags in ("?mode=ro", "?mode=ro&immutable=1"):
        if "immutable" in flags and os.path.exists(path + "-wal") and os.path.getsize(path + "-wal") > 0:
            # An immutable open ignores the -wal file, and so the last changes (a revocation among
            # them): better no answer than an old one.
            raise StoreError(f"the store {path} has changes in {path}-wal that cannot be read here ({why}); "
                             "copy the workspace folder to a writable disk and read it there") from None
        try:
            db = sqlite3.connect(uri + flags, uri=True, timeout=60, isolation_level=None, check_same_thread=False)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            db.execute("PRAGMA foreign_keys=ON")
            return db
        except sqlite3.Error as exc:
            last = exc
    raise StoreError(f"cannot read the store {path} ({why}): {last}; {_access_advice(path)}") from None


class SqliteStore(SqliteRegistrations, Store):
    def __init__(self, path: str, clock: Clock | None = None, *, create: bool = False):
        if not create and not os.path.exists(path):
            raise StoreError(f"no store at {path}; run `iranpki init DIR` first, or check --home")
        self.path = path
        self.clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._pid = os.getpid()
        #: Why the store is open read-only (a read-only disk or folder), or None when it is writable.
        self.read_only: str | None = None
        if create and not os.path.exists(path):
            _create_private(path)
        _make_private(path)
        try:
            self._db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=60000")
        except sqlite3.Error as exc:
            why = _unwritable(path)
            if why is None or create:
                raise StoreError(f"cannot open the store {path}: {exc}; {_access_advice(path)}") from None
            self._db = _connect_read_only(path, why)
            self.read_only = why
        else:
            # A store file that is read-only in a writable folder opens without complaint; every
            # change would then fail half-way, so it is opened read-only from the start.
            why = None if create else _unwritable(path)
            if why is not None:
                self._db.close()
                self._db = _connect_read_only(path, why)
                self.read_only = why
        self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            cur = self._db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'")
            if cur.fetchone() is None:
                # A new, empty store: create the schema in one transaction.
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for stmt in filter(str.strip, (_SCHEMA + _SCHEMA_V2 + _SCHEMA_V3 + SCHEMA_V4 + SCHEMA_V5 + _SCHEMA_V6 + SCHEMA_V7 + SCHEMA_V8).split(";")):
                        self._db.execute(stmt)
                    self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                     (str(SCHEMA_VERSION),))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is not None and row[0] == "1" and self.read_only is None:
                self._upgrade_1_2()
                row = ("2",)
            if row is not None and row[0] == "2" and self.read_only is None:
                self._upgrade_2_3()
                row = ("3",)
            for version, statements, then in UPGRADES:
                if row is not None and row[0] == str(version - 1) and self.read_only is None:
                    self._upgrade(str(version - 1), str(version), statements,
                                  then=getattr(self, then) if then else None)
                    row = (str(version),)
            #: The schema this store has; a read-only store of version 2, 3 or 4 is read as it is.
            self.schema_version = int(row[0]) if row is not None else 0
            if self.read_only is not None and row is not None and row[0] in ("2", "3", "4", "5", "6", "7"):
                return
            if row is None or int(row[0]) != SCHEMA_VERSION:
                found = row[0] if row else "none"
                hint = (" Open it once on a writable disk with this iranpki, which upgrades it" if self.read_only
                        and row is not None and int(row[0]) < SCHEMA_VERSION else " Use the iranpki version that wrote it")
                raise SchemaError(
                    f"the store {self.path} has schema version {found}; this iranpki reads version "
                    f"{SCHEMA_VERSION}.{hint}"
                )

    def _upgrade_1_2(self) -> None:
        self._upgrade("1", "2", _MIGRATE_1_2 + _SCHEMA_V2)

    def _upgrade_2_3(self) -> None:
        # Indexes only: a store with a million certificates takes seconds, once.
        self._upgrade("2", "3", _SCHEMA_V3)

    def _upgrade(self, old: str, new: str, statements: str, then=None) -> None:  # noqa: ANN001
        # One transaction: a crash half-way leaves a store of the old version that the next open upgrades.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == old:
                for stmt in filter(str.strip, statements.split(";")):
                    self._db.execute(stmt)
                if then is not None:
                    then(self._db)
                self._db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (new,))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if os.getpid() != self._pid:
            raise StoreError("a store opened before fork() cannot be used in the child; open it again")
        if self.read_only is not None:
            raise StoreError(f"the store {self.path} is open read-only ({self.read_only}); nothing was changed. "
                             "Reads work; to change the store, run on a writable disk as the workspace's owner")
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreError(f"the store {self.path} is busy or unwritable: {exc}; {_access_advice(self.path)}") from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                # A full disk or a store made read-only under us: the transaction is rolled back
                # whole (SQLite may have done it already), so nothing half-recorded remains.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"the store {self.path} could not record the change ({exc}); nothing was "
                                 f"changed. {_access_advice(self.path)}") from None
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _audit(self, db: sqlite3.Connection, audit: AuditEvent) -> None:
        from ..audit import leaf_data, leaf_hash

        at = _t(self.clock.now())
        details = json.dumps(audit.details, sort_keys=True, ensure_ascii=False, default=str)
        seq = db.execute("INSERT INTO audit(at, actor, event, subject, details) VALUES (?,?,?,?,?)",
                         (at, audit.actor, audit.event, audit.subject, details)).lastrowid
        # The event's leaf in the audit tree, in the event's own transaction.
        db.execute("INSERT INTO audit_tree(seq, leaf) VALUES (?, ?)",
                   (seq, leaf_hash(leaf_data(int(seq), at, audit.actor, audit.event, audit.subject, details))))

    @staticmethod
    def _leaves_for_old_events(db: sqlite3.Connection) -> None:
        from ..audit import leaf_data, leaf_hash

        def leaf(r: tuple) -> tuple[int, bytes]:
            try:
                return r[0], leaf_hash(leaf_data(*r))
            except (ValueError, TypeError) as exc:  # rfc8785's errors are ValueErrors too
                raise StoreError(f"audit event {r[0]} cannot be given its leaf ({exc}); the store was not upgraded. "
                                 "Its details are not JSON iranpki writes: the event was changed by hand") from None

        rows = db.execute("SELECT seq, at, actor, event, subject, details FROM audit ORDER BY seq")
        db.executemany("INSERT INTO audit_tree(seq, leaf) VALUES (?, ?)", (leaf(r) for r in rows.fetchall()))

    # ---- the audit tree (iranpki.audit) --------------------------------------------------------

    def add_audit_event(self, audit: AuditEvent) -> None:
        with self._tx() as db:
            self._audit(db, audit)

    def audit_rows(self, after: int = 0, batch: int = 5000) -> Iterator[tuple[int, str, str, str, str, str, bytes | None]]:
        """Every event as stored, with its leaf (None if it has none), in seq order; read in
        batches, so that memory stays bounded however long the log."""
        self._needs_tree()
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT a.seq, a.at, a.actor, a.event, a.subject, a.details, t.leaf FROM audit a "
                    "LEFT JOIN audit_tree t ON t.seq = a.seq WHERE a.seq > ? ORDER BY a.seq LIMIT ?",
                    (after, batch)).fetchall()
            if not rows:
                return
            for r in rows:
                yield r[0], r[1], r[2], r[3], r[4], r[5], None if r[6] is None else bytes(r[6])
            after = rows[-1][0]

    def audit_leaves(self, size: int | None = None) -> list[bytes]:
        """The stored leaf hashes, in order (the first ``size``)."""
        sql = "SELECT leaf FROM audit_tree ORDER BY seq" + ("" if size is None else f" LIMIT {int(size)}")
        with self._lock:
            return [bytes(r[0]) for r in self._db.execute(sql)]

    def audit_size(self) -> tuple[int, int]:
        """(the last event's seq, leaves) in the store, read in one statement (one snapshot)."""
        self._needs_tree()
        with self._lock:
            row = self._db.execute("SELECT (SELECT COALESCE(MAX(seq), 0) FROM audit), "
                                   "(SELECT COUNT(*) FROM audit_tree)").fetchone()
        return int(row[0]), int(row[1])

    def _needs_tree(self) -> None:
        if getattr(self, "schema_version", 6) < 6:
            raise StoreError(f"the store {self.path} has schema version {self.schema_version} and is open read-only "
                             f"({self.read_only}), so its audit log has no tree yet; open it once on a writable disk "
                             "with this iranpki, which upgrades it")

    def add_checkpoint(self, size: int, root: bytes, at: datetime, note: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO audit_checkpoints VALUES (?,?,?,?) ON CONFLICT(size) DO NOTHING",
                       (size, root, _t(at), note))

    def checkpoints(self) -> list[tuple[int, bytes, datetime, str]]:
        with self._lock:
            rows = self._db.execute("SELECT size, root, at, note FROM audit_checkpoints ORDER BY size").fetchall()
        return [(r[0], bytes(r[1]), _d(r[2]), r[3]) for r in rows]  # type: ignore[misc]

    # ---- keys ----------------------------------------------------------------------------------

    def add_key(self, record: KeyRecord, audit: AuditEvent) -> None:
        try:
            with self._tx() as db:
                db.execute("INSERT INTO keys VALUES (?,?,?,?,?)",
                           (record.reference, record.backend, record.key_spec, record.label, _t(record.created_at)))
                self._audit(db, audit)
        except sqlite3.IntegrityError:
            raise DuplicateError(f"a key {record.reference} is already recorded") from None

    def list_key_records(self) -> list[KeyRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM keys ORDER BY created_at").fetchall()
        return [KeyRecord(r[0], r[1], r[2], r[3], _d(r[4])) for r in rows]  # type: ignore[arg-type]

    # ---- CAs -----------------------------------------------------------------------------------

    def add_ca(self, record: CaRecord, certificate: CertificateRecord | None, audit: AuditEvent) -> None:
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO cas VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (record.name, record.kind, record.level, record.parent, record.certificate,
                     record.key_reference, record.repository_url, record.ocsp_url, _t(record.created_at),
                     record.signature, record.crl_shards),
                )
                if certificate is not None:
                    self._insert_certificate(db, certificate)
                self._audit(db, audit)
                self._enqueue(db, "ca", record.name, record.certificate)
        except sqlite3.IntegrityError as exc:
            if "cas.name" in str(exc):
                raise DuplicateError(f"a CA named {record.name!r} exists already; choose another name") from None
            raise DuplicateError(f"the CA certificate of {record.name!r} collides with a stored one: {exc}") from None

    def _ca(self, row: tuple) -> CaRecord:
        return CaRecord(row[0], row[1], row[2], row[3], bytes(row[4]), row[5], row[6], row[7], _d(row[8]),  # type: ignore[arg-type]
                        row[9], row[10])

    def get_ca(self, name: str) -> CaRecord:
        with self._lock:
            row = self._db.execute("SELECT * FROM cas WHERE name=?", (name,)).fetchone()
        if row is None:
            known = [c.name for c in self.list_cas()]
            raise NotFoundError(f"no CA named {name!r}; CAs in this store: {', '.join(known) or 'none'}")
        return self._ca(row)

    def list_cas(self) -> list[CaRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM cas ORDER BY created_at, name").fetchall()
        return [self._ca(r) for r in rows]

    # ---- certificates --------------------------------------------------------------------------

    def _insert_certificate(self, db: sqlite3.Connection, r: CertificateRecord) -> None:
        db.execute(
            "INSERT INTO certificates VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,NULL)",
            (serial_text(r.serial), r.ca, r.profile, r.subject, _t(r.not_before), _t(r.not_after),
             r.certificate, r.fingerprint, _t(r.issued_at), _t(r.revoked_at),
             None if r.reason is None else r.reason.value, _t(r.invalidity_date), r.shard),
        )

    def add_certificate(self, record: CertificateRecord, audit: AuditEvent, *,
                        request_update: RequestUpdate | None = None) -> None:
        self.add_certificates([(record, audit)], request_update=request_update)

    def add_certificates(self, items: list[tuple[CertificateRecord, AuditEvent]], *,
                         request_update: RequestUpdate | None = None) -> None:
        record = None
        try:
            with self._tx() as db:
                publishing = any(r.publish for r, _ in items) and self._publishing_in(db)
                for record, audit in items:
                    self._insert_certificate(db, record)
                    self._audit(db, audit)
                    if publishing and record.publish:
                        self._enqueue(db, "user", record.ca, record.certificate, serial=record.serial, check=False)
                if request_update is not None:
                    self._update_request_in(db, request_update)
        except sqlite3.IntegrityError as exc:
            assert record is not None
            if "certificates.serial" in str(exc):
                raise DuplicateError(f"serial number {record.serial:x} is already used") from None
            if "certificates.fingerprint" in str(exc):
                raise DuplicateError(f"certificate {record.serial:x} is already recorded (same SHA-256)") from None
            raise StoreError(f"the store refused the certificate {record.serial:x}: {exc}") from None

    @staticmethod
    def _cert(row: tuple) -> CertificateRecord:
        return CertificateRecord(
            serial=int(row[0], 16), ca=row[1], profile=row[2], subject=row[3],
            not_before=_d(row[4]), not_after=_d(row[5]), certificate=bytes(row[6]),  # type: ignore[arg-type]
            fingerprint=row[7], issued_at=_d(row[8]), revoked_at=_d(row[9]),  # type: ignore[arg-type]
            reason=None if row[10] is None else Reason(row[10]), invalidity_date=_d(row[11]),
            shard=row[12], status_seq=row[13],
        )

    def get_certificate(self, serial: int) -> CertificateRecord:
        with self._lock:
            row = self._db.execute("SELECT * FROM certificates WHERE serial=?", (serial_text(serial),)).fetchone()
        if row is None:
            raise NotFoundError(f"no certificate with serial number {serial:x} in this store; see `iranpki cert list`")
        return self._cert(row)

    def iter_certificates(self, ca: str | None = None, status: str | None = None,
                          profile: str | None = None, limit: int | None = None,
                          after: CertificateRecord | None = None) -> Iterator[CertificateRecord]:
        where, args = [], []
        if ca is not None:
            where.append("ca=?")
            args.append(ca)
        if profile is not None:
            where.append("profile=?")
            args.append(profile)
        if status == "valid":
            where.append("revoked_at IS NULL")
        elif status == "revoked":
            where.append("revoked_at IS NOT NULL")
        elif status is not None:
            raise StoreError(f"unknown status filter {status!r}; must be valid or revoked")
        # The index each filter pages through (schema version 3); named, so that the planner never
        # falls back to scanning the table and sorting it.
        index = ("certificates_revoked_by_issue" if status == "revoked" else
                 "certificates_by_ca_issue" if ca is not None else
                 "certificates_by_profile_issue" if profile is not None else "certificates_by_issue")
        # A read-only store of version 2 has none of them: it is read the slow way, but read.
        hint = f" INDEXED BY {index}" if self.schema_version >= 3 else ""
        base = (f"SELECT * FROM certificates{hint} WHERE "
                + " AND ".join(where + ["(issued_at, serial) > (?, ?)"]) + " ORDER BY issued_at, serial LIMIT ?")
        # Keyset pages: nothing is loaded whole, and no lock is held while the caller works.
        last: tuple[str, str] = (_t(after.issued_at), serial_text(after.serial)) if after is not None else ("", "")
        left = limit if limit is not None else -1
        while left != 0:
            page = 500 if left < 0 else min(500, left)
            with self._lock:
                rows = self._db.execute(base, [*args, *last, page]).fetchall()
            if not rows:
                return
            for row in rows:
                yield self._cert(row)
            last = (rows[-1][8], rows[-1][0])
            if left > 0:
                left -= len(rows)

    def set_revocation(self, serial: int, revoked_at: datetime | None, reason: Reason | None,
                       invalidity_date: datetime | None, audit: AuditEvent,
                       expect_reason: Reason | None | str = "any", *,
                       request_update: RequestUpdate | None = None) -> CertificateRecord:
        key = serial_text(serial)
        with self._tx() as db:
            row = db.execute("SELECT reason FROM certificates WHERE serial=?", (key,)).fetchone()
            if row is None:
                raise NotFoundError(f"no certificate with serial number {serial:x} in this store")
            current = None if row[0] is None else Reason(row[0])
            if expect_reason != "any" and current != expect_reason:
                raise StoreError(
                    f"certificate {serial:x} changed while it was being revoked (now {current}); try again"
                )
            # status_seq orders every status change of the store: delta CRLs list the changes
            # after their base's sequence, and OCSP responders re-sign what changed after theirs.
            db.execute(
                "UPDATE certificates SET revoked_at=?, reason=?, invalidity_date=?, status_changed_at=?, "
                "status_seq=(SELECT COALESCE(MAX(status_seq), 0) + 1 FROM certificates) WHERE serial=?",
                (_t(revoked_at), None if reason is None else reason.value, _t(invalidity_date),
                 _t(self.clock.now()), key),
            )
            self._audit(db, audit)
            if request_update is not None:
                self._update_request_in(db, request_update)
            row = db.execute("SELECT * FROM certificates WHERE serial=?", (key,)).fetchone()
        return self._cert(row)

    # ---- CRLs and OCSP -----------------------------------------------------------------------------

    def set_crl_shards(self, ca: str, shards: int, audit: AuditEvent) -> CaRecord:
        current = self.get_ca(ca)
        if not 1 <= shards <= 4096:
            raise StoreError(f"CRL shards {shards} out of range; must be 1 to 4096")
        if current.crl_shards == 1 and shards > 1 and self._has_certificates(ca):
            raise StoreError(
                f"CA {ca!r} has issued certificates whose CRL distribution point names its single CRL; "
                "partitioning it now would leave them without a CRL. Partition a CA when it is created "
                "(--crl-shards), or create a new CA certificate for the partitioned CRL"
            )
        if shards < current.crl_shards:
            raise StoreError(
                f"CA {ca!r} has {current.crl_shards} CRL shards; the number can grow but not shrink, since "
                "issued certificates name their shard's CRL in their distribution point"
            )
        with self._tx() as db:
            db.execute("UPDATE cas SET crl_shards=? WHERE name=?", (shards, ca))
            self._audit(db, audit)
        return self.get_ca(ca)

    def next_numbers(self, name: str, count: int = 1) -> int:
        if count < 1:
            raise StoreError(f"count {count} must be at least 1")
        with self._tx() as db:
            # BEGIN IMMEDIATE: two processes never get the same number, and a committed number is
            # never handed out again, across restarts.
            db.execute("INSERT INTO counters VALUES (?, 0) ON CONFLICT(name) DO NOTHING", (name,))
            db.execute("UPDATE counters SET value = value + ? WHERE name=?", (count, name))
            last = int(db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()[0])
        return last - count + 1

    def _has_certificates(self, ca: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM certificates WHERE ca=? LIMIT 1", (ca,)).fetchone() is not None

    def next_crl_number(self, ca: str) -> int:
        self.get_ca(ca)
        with self._tx() as db:
            # BEGIN IMMEDIATE holds the write lock: two processes never read the same last number.
            db.execute("INSERT INTO crl_numbers VALUES (?, 0) ON CONFLICT(ca) DO NOTHING", (ca,))
            db.execute("UPDATE crl_numbers SET last = last + 1 WHERE ca=?", (ca,))
            return int(db.execute("SELECT last FROM crl_numbers WHERE ca=?", (ca,)).fetchone()[0])

    def add_crl(self, record: CrlRecord, audit: AuditEvent, der: bytes | None = None) -> None:
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO crls VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (record.ca, record.number, record.kind, record.shard, record.base_number,
                     _t(record.this_update), _t(record.next_update), record.status_seq, record.entries,
                     record.sha256, record.path),
                )
                self._audit(db, audit)
                if der is not None and self._publishing_in(db):
                    kind = "delta" if record.kind == "delta" else (
                        "arl" if db.execute("SELECT kind FROM cas WHERE name=?", (record.ca,)).fetchone()[0] == "root"
                        else "crl")
                    # A newer CRL supersedes one of the same CA, kind and shard not yet published.
                    db.execute("UPDATE publish_outbox SET done_at=?, last_error='superseded' WHERE done_at IS NULL "
                               "AND kind=? AND ca=? AND shard IS ?", (_t(self.clock.now()), kind, record.ca, record.shard))
                    self._enqueue(db, kind, record.ca, der, shard=record.shard, check=False)
        except sqlite3.IntegrityError:
            raise DuplicateError(f"CRL number {record.number} of CA {record.ca!r} is already recorded") from None

    @staticmethod
    def _crl(row: tuple) -> CrlRecord:
        return CrlRecord(row[0], row[1], row[2], row[3], row[4], _d(row[5]), _d(row[6]), row[7],  # type: ignore[arg-type]
                         row[8], row[9], row[10])

    def latest_crl(self, ca: str, kind: str = "full", shard: int | None = None) -> CrlRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM crls WHERE ca=? AND kind=? AND shard IS ? ORDER BY number DESC LIMIT 1",
                (ca, kind, shard)).fetchone()
        return None if row is None else self._crl(row)

    def list_crls(self, ca: str | None = None) -> list[CrlRecord]:
        with self._lock:
            if ca is None:
                rows = self._db.execute("SELECT * FROM crls ORDER BY ca, number").fetchall()
            else:
                rows = self._db.execute("SELECT * FROM crls WHERE ca=? ORDER BY number", (ca,)).fetchall()
        return [self._crl(r) for r in rows]

    @contextmanager
    def revoked_snapshot(self, ca: str, shard: int | None = None, since_seq: int | None = None,
                         crl_number: bool = False) -> Iterator[RevokedSnapshot]:
        # A connection of its own in one read transaction, on a snapshot: the sequence read first
        # and the rows streamed after agree, while writers go on.
        with self._reader() as db:
            number = None
            if crl_number:
                # The snapshot is taken while this store holds the write lock to allocate the
                # number: no change can commit between the two, so CRL numbers follow snapshots.
                self.get_ca(ca)
                with self._tx() as w:
                    self._begin_snapshot(db)
                    seq = db.execute("SELECT COALESCE(MAX(status_seq), 0) FROM certificates").fetchone()[0]
                    w.execute("INSERT INTO crl_numbers VALUES (?, 0) ON CONFLICT(ca) DO NOTHING", (ca,))
                    w.execute("UPDATE crl_numbers SET last = last + 1 WHERE ca=?", (ca,))
                    number = int(w.execute("SELECT last FROM crl_numbers WHERE ca=?", (ca,)).fetchone()[0])
            else:
                self._begin_snapshot(db)
                seq = db.execute("SELECT COALESCE(MAX(status_seq), 0) FROM certificates").fetchone()[0]
            sql, args = self._revoked_query(ca, shard, since_seq)
            yield RevokedSnapshot(int(seq), self._stream(db, sql, args), number)

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own, for one long read (a CRL's entries)."""
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA query_only=ON")
            yield db
        finally:
            db.close()

    @staticmethod
    def _begin_snapshot(db: sqlite3.Connection) -> None:
        db.execute("BEGIN")  # WAL: the first read fixes the snapshot

    @staticmethod
    def _stream(db: sqlite3.Connection, sql: str, args: list) -> Iterator[tuple]:
        # The cursor itself streams the rows: one step per row, no Python frame per row.
        return db.execute(sql, args)

    def _revoked_query(self, ca: str, shard: int | None, since_seq: int | None) -> tuple[str, list]:
        """The query a revoked snapshot streams: (serial, revoked at, reason, invalidity date) in
        serial order, of the whole CA, one shard, or the changes after ``since_seq`` (a delta)."""
        where, args = ["ca=?"], [ca]
        if shard is None and self.get_ca(ca).crl_shards == 1:
            # Every certificate of an unpartitioned CA is in shard 0 (set_crl_shards refuses to
            # partition a CA that has issued): naming the shard lets the database read the covering
            # index of revoked certificates in serial order, and nothing else.
            shard = 0
        if shard is not None:
            where.append("shard=?")
            args.append(shard)
        if since_seq is None:
            sql = ("SELECT serial, revoked_at, reason, invalidity_date FROM certificates "
                   f"WHERE {' AND '.join(where)} AND revoked_at IS NOT NULL ORDER BY serial")
        else:
            # Released from hold: listed once more with removeFromCRL (RFC 5280 5.3.1).
            # The changes since the base are few: find them through the status sequence, not
            # by visiting every certificate of the CA (a national CA has millions).
            sql = ("SELECT serial, COALESCE(revoked_at, status_changed_at), COALESCE(reason, 8), "
                   "invalidity_date FROM certificates INDEXED BY certificates_status_seq "
                   f"WHERE {' AND '.join(where)} AND status_seq > ? ORDER BY serial")
            args.append(since_seq)
        return sql, args

    def status_seq(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(status_seq), 0) FROM certificates").fetchone()[0])

    def status_changes(self, since_seq: int, limit: int = 1000) -> list[tuple[int, str, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT status_seq, ca, serial FROM certificates WHERE status_seq > ? ORDER BY status_seq LIMIT ?",
                (since_seq, limit)).fetchall()
        return [(r[0], r[1], int(r[2], 16)) for r in rows]

    def certificate_status(self, ca: str, serial: int) -> tuple[str | None, str | None, int | None, int] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT revoked_at, not_after, reason, COALESCE(status_seq, 0) FROM certificates "
                "WHERE serial=? AND ca=?", (serial_text(serial), ca)).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def put_ocsp_responses(self, records: list[OcspResponseRecord]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT INTO ocsp_responses VALUES (?,?,?,?,?,?,?) ON CONFLICT(ca, serial, hash) DO UPDATE SET "
                "response=excluded.response, this_update=excluded.this_update, next_update=excluded.next_update, "
                "status_seq=excluded.status_seq WHERE excluded.status_seq >= ocsp_responses.status_seq",
                [(r.ca, serial_text(r.serial), r.hash, r.response, _t(r.this_update), _t(r.next_update),
                  r.status_seq) for r in records])

    def get_ocsp_response(self, ca: str, serial: int, hash: str) -> OcspResponseRecord | None:
        with self._lock:
            # One read gives the response and the certificate's status now, so a responder never
            # serves a response signed before the last change (a refresher that fell behind).
            row = self._db.execute(
                "SELECT r.response, r.this_update, r.next_update, r.status_seq, COALESCE(c.status_seq, 0) "
                "FROM ocsp_responses r LEFT JOIN certificates c ON c.serial=r.serial AND c.ca=r.ca "
                "WHERE r.ca=? AND r.serial=? AND r.hash=?", (ca, serial_text(serial), hash)).fetchone()
        if row is None:
            return None
        return OcspResponseRecord(ca, serial, hash, bytes(row[0]), _d(row[1]), _d(row[2]), row[3], row[4])  # type: ignore[arg-type]

    def put_meta(self, key: str, value: str) -> None:
        if not key.startswith("service."):
            raise StoreError(f"meta key {key!r} is not a service's; only service.* keys may be set")
        with self._tx() as db:
            db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def ocsp_due(self, ca: str, hash: str, due: datetime, limit: int = 500, after: int | None = None) -> list[int]:
        # In serial order from ``after``: a caller walks the CA once, linearly, through
        # certificates_by_ca and the responses' primary key, however many certificates it has.
        with self._lock:
            rows = self._db.execute(
                "SELECT c.serial FROM certificates c LEFT JOIN ocsp_responses r "
                "ON r.ca=c.ca AND r.serial=c.serial AND r.hash=? WHERE c.ca=? AND c.serial > ? AND "
                "(r.serial IS NULL OR r.next_update < ? OR COALESCE(c.status_seq, 0) > r.status_seq) "
                "ORDER BY c.serial LIMIT ?",
                (hash, ca, "" if after is None else serial_text(after), _t(due), limit)).fetchall()
        return [int(r[0], 16) for r in rows]

    # ---- the publication outbox ----------------------------------------------------------------

    _PUBLISHING = "service.publish.ldap"

    def _publishing_in(self, db) -> bool:  # noqa: ANN001 - the transaction's connection
        if getattr(self, "schema_version", 8) < 8:
            return False
        row = db.execute("SELECT value FROM meta WHERE key=?", (self._PUBLISHING,)).fetchone()
        return row is not None and row[0] == "on"

    def _enqueue(self, db, kind: str, ca: str, payload: bytes, *, serial: int | None = None,  # noqa: ANN001
                 shard: int | None = None, check: bool = True) -> None:
        if check and not self._publishing_in(db):
            return
        db.execute("INSERT INTO publish_outbox(kind, ca, serial, shard, payload, created_at) VALUES (?,?,?,?,?,?)",
                   (kind, ca, None if serial is None else serial_text(serial), shard, payload, _t(self.clock.now())))

    def publishing(self) -> bool:
        with self._lock:
            return self._publishing_in(self._db)

    def set_publishing(self, on: bool, audit: AuditEvent, *, enqueue_current: bool = True) -> int:
        from pathlib import Path

        put = 0
        with self._tx() as db:
            was = self._publishing_in(db)
            db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                       (self._PUBLISHING, "on" if on else "off"))
            self._audit(db, audit)
            if on and not was and enqueue_current:
                # What the directory should hold now: every CA certificate and each newest CRL.
                for name, kind, cert in db.execute("SELECT name, kind, certificate FROM cas ORDER BY created_at").fetchall():
                    self._enqueue(db, "ca", name, bytes(cert), check=False)
                    put += 1
                    newest = db.execute(
                        "SELECT c.kind, c.shard, c.path FROM crls c WHERE c.ca=? AND c.number = (SELECT MAX(number) "
                        "FROM crls d WHERE d.ca=c.ca AND d.kind=c.kind AND (d.shard = c.shard OR (d.shard IS NULL AND "
                        "c.shard IS NULL)))", (name,)).fetchall()
                    for crl_kind, shard, path in newest:
                        try:
                            der = Path(path).read_bytes()
                        except OSError:
                            continue  # a CRL file not on this machine: the next CRL is published
                        self._enqueue(db, "delta" if crl_kind == "delta" else "arl" if kind == "root" else "crl",
                                      name, der, shard=shard, check=False)
                        put += 1
        return put

    def outbox_pending(self, limit: int = 100) -> list[OutboxItem]:
        if getattr(self, "schema_version", 8) < 8:
            return []
        with self._lock:
            rows = self._db.execute("SELECT seq, kind, ca, payload, created_at, serial, shard, attempts, last_error "
                                    "FROM publish_outbox WHERE done_at IS NULL ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [OutboxItem(r[0], r[1], r[2], bytes(r[3]), _d(r[4]), None if r[5] is None else int(r[5], 16), r[6],  # type: ignore[arg-type]
                           r[7], r[8]) for r in rows]

    def outbox_done(self, seq: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE publish_outbox SET done_at=?, last_error=NULL WHERE seq=?", (_t(self.clock.now()), seq))

    def outbox_failed(self, seq: int, error: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE publish_outbox SET attempts=attempts+1, last_error=? WHERE seq=?", (error[:500], seq))

    def outbox_counts(self) -> dict[str, int]:
        if getattr(self, "schema_version", 8) < 8:
            return {"pending": 0, "published": 0}
        with self._lock:
            row = self._db.execute("SELECT COALESCE(SUM(CASE WHEN done_at IS NULL THEN 1 ELSE 0 END), 0), "
                                   "COALESCE(SUM(CASE WHEN done_at IS NULL THEN 0 ELSE 1 END), 0) "
                                   "FROM publish_outbox").fetchone()
        return {"pending": int(row[0]), "published": int(row[1])}

    # ---- audit ---------------------------------------------------------------------------------

    def audit_log(self, limit: int | None = None) -> list[tuple[int, datetime, AuditEvent]]:
        sql = "SELECT seq, at, actor, event, subject, details FROM audit ORDER BY seq"
        if limit is not None:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(limit)}) AS recent ORDER BY seq"
        with self._lock:
            rows = self._db.execute(sql).fetchall()
        return [(r[0], _d(r[1]), AuditEvent(event=r[3], subject=r[4], actor=r[2], details=json.loads(r[5])))  # type: ignore[misc]
                for r in rows]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None  # type: ignore[assignment]

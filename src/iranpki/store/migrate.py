"""A SQLite workspace's store copied into PostgreSQL, and the copy checked (``iranpki store migrate``).

The copy reads the SQLite store in one snapshot (a CA that keeps working meanwhile is copied as
it was when the copy began) and writes every table into a new, empty PostgreSQL store in one
transaction under the store's write lock: a copy that fails leaves the target empty. It is then
checked against the source, not trusted:

- every table has as many rows in the copy as in the snapshot;
- the certificates agree one by one: serial, SHA-256, status and the status change's number, in
  serial order, hashed on both sides;
- the copy's audit log verifies (``iranpki.audit.verify_store``: every leaf from its event, no
  gap, every checkpoint the store kept) and has as many events as the source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import StoreError
from .postgresql import PostgresStore
from .sqlite import SqliteStore

__all__ = ["TABLES", "CopyReport", "check_copy", "copy_store"]

#: Every table of the store, parents before the tables that refer to them.
TABLES = ("meta", "keys", "cas", "certificates", "audit", "audit_tree", "audit_checkpoints", "counters",
          "crl_numbers", "crls", "ocsp_responses", "ra_offices", "ra_officers", "ra_officer_totp", "ra_requests",
          "ra_events", "ra_blobs", "ra_evidence", "ra_device_approvals", "ra_attempts", "recovery_keys")
#: Identity columns whose sequence continues after the copied rows.
_IDENTITIES = (("audit", "seq"), ("ra_events", "seq"))
_BATCH = 2000


@dataclass
class CopyReport:
    rows: dict[str, int] = field(default_factory=dict)
    certificates_sha256: str = ""
    audit_events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _certificates_digest(db, sql: str) -> str:  # noqa: ANN001 - a sqlite3 or psycopg-like connection
    h = hashlib.sha256()
    for row in db.execute(sql):
        h.update(repr(tuple(row)).encode("utf-8"))
    return h.hexdigest()


_CERTIFICATES = ("SELECT serial, fingerprint, revoked_at, reason, invalidity_date, status_seq FROM certificates "
                 "ORDER BY serial")


def copy_store(source: SqliteStore, target: PostgresStore,
               progress: Callable[[str, int], None] | None = None) -> CopyReport:
    """Copy ``source`` into the new, empty ``target`` and check the copy (see the module)."""
    if source.schema_version != target.schema_version:
        raise StoreError(f"the SQLite store has schema version {source.schema_version} and the target "
                         f"{target.schema_version}; open the SQLite store once with this iranpki, which upgrades it")
    report = CopyReport()
    with source._reader() as src:
        src.execute("BEGIN")  # one snapshot for every table
        present = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                            "AND name NOT LIKE 'sqlite_%'")}
        unknown = sorted(present - set(TABLES))
        if unknown:
            raise StoreError(f"the SQLite store has tables the copy does not know ({', '.join(unknown)}); use the "
                             "iranpki version that made them")
        with target._tx() as dst:
            for table in TABLES:
                held = dst.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                if held > (1 if table == "meta" else 0):
                    raise StoreError(f"the target store {target.path} is not empty ({table} has {held} rows); copy "
                                     "into a new database")
            for table in TABLES:
                columns = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
                where = " WHERE key != 'schema_version'" if table == "meta" else ""
                order = " ORDER BY created_at" if table == "cas" else ""
                insert = (f"INSERT INTO {table} ({', '.join(columns)}) "
                          f"VALUES ({', '.join('?' * len(columns))})")
                rows = src.execute(f"SELECT {', '.join(columns)} FROM {table}{where}{order}")
                copied = 0
                pending: list[tuple] = []
                for row in (_parents_first(rows.fetchall()) if table == "cas" else rows):
                    pending.append(tuple(row))
                    if len(pending) >= _BATCH:
                        dst.executemany(insert, pending)
                        copied += len(pending)
                        pending = []
                        if progress:
                            progress(table, copied)
                if pending:
                    dst.executemany(insert, pending)
                    copied += len(pending)
                report.rows[table] = copied
                if progress:
                    progress(table, copied)
            for table, column in _IDENTITIES:
                dst.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                            f"(SELECT COALESCE(MAX({column}), 0) + 1 FROM {table}), false)")
        expected = {table: src.execute(f"SELECT COUNT(*) FROM {table}" + (
            " WHERE key != 'schema_version'" if table == "meta" else "")).fetchone()[0] for table in TABLES}
        source_digest = _certificates_digest(src, _CERTIFICATES)
    return check_copy(target, expected, source_digest, report)


def check_copy(target: PostgresStore, expected: dict[str, int], source_digest: str,
               report: CopyReport | None = None) -> CopyReport:
    """Check a copy against what the source held: the row count of each table (``expected``),
    the certificates' digest, and the audit log verified in the copy."""
    from ..audit import verify_store

    report = report or CopyReport(rows=dict(expected))
    for table in TABLES:
        held = target._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] - (1 if table == "meta" else 0)
        if held != expected[table]:
            report.problems.append(f"{table}: {expected[table]} rows in the SQLite store, {held} in the copy")
    report.certificates_sha256 = _certificates_digest(target._db, _CERTIFICATES)
    if report.certificates_sha256 != source_digest:
        report.problems.append("the certificates differ between the SQLite store and the copy")
    verification = verify_store(target)
    report.audit_events = verification.events
    report.problems += [f"audit log: {p.what}" for p in verification.problems]
    if verification.events != expected["audit"]:
        report.problems.append(f"audit log: {expected['audit']} events in the SQLite store, {verification.events} in "
                               "the copy")
    return report


def _parents_first(rows: list) -> list:  # noqa: ANN001
    """CA rows with each parent before its children (column 3 is the parent's name)."""
    done: set[str] = set()
    out: list = []
    left = list(rows)
    while left:
        ready = [r for r in left if r[3] is None or r[3] in done]
        if not ready:
            raise StoreError("the CAs' parents form a loop; the SQLite store is damaged")
        for r in ready:
            out.append(r)
            done.add(r[0])
        left = [r for r in left if r[0] not in done]
    return out

"""A SQLite workspace's store copied into PostgreSQL, and the copy checked (``iranpki store migrate``).

The copy reads the SQLite store in one snapshot (a CA that keeps working meanwhile is copied as
it was when the copy began) and writes every table into a new, empty PostgreSQL store in one
transaction under the store's write lock: a copy that fails leaves the target empty. It is then
checked against the source, not trusted:

- every table has as many rows in the copy as in the snapshot, and the same rows: every column of
  every row, in primary-key order, hashed on both sides (a counter, a CRL number, a key reference
  or a certificate's bytes that differ are found);
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
          "ra_events", "ra_blobs", "ra_evidence", "ra_device_approvals", "ra_attempts", "recovery_keys",
          "publish_outbox")
#: Identity columns whose sequence continues after the copied rows.
_IDENTITIES = (("audit", "seq"), ("ra_events", "seq"), ("publish_outbox", "seq"))
_BATCH = 2000


@dataclass
class CopyReport:
    rows: dict[str, int] = field(default_factory=dict)
    #: What the source held: each table's rows and the digest of all their columns.
    expected: dict[str, tuple[int, str]] = field(default_factory=dict)
    certificates_sha256: str = ""
    audit_events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


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
        expected = {table: _table_digest(src, table, _layout(src, table)) for table in TABLES}
    report.expected = expected
    return check_copy(target, expected, report)


def _layout(src, table: str) -> tuple[list[str], list[str]]:  # noqa: ANN001 - a sqlite3 connection
    """A table's columns, and the columns that order its rows (its primary key, else all)."""
    info = list(src.execute(f"PRAGMA table_info({table})"))
    columns = [r[1] for r in info]
    key = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5] > 0]
    return columns, key or columns


def _table_digest(db, table: str, layout: tuple[list[str], list[str]]) -> tuple[int, str]:  # noqa: ANN001
    """(rows, SHA-256 of every column of every row in key order): the same on both backends for
    the same data (keys are text in the "C" collation or integers, never NULL)."""
    columns, key = layout
    where = " WHERE key != 'schema_version'" if table == "meta" else ""
    h = hashlib.sha256()
    count = 0
    for row in db.execute(f"SELECT {', '.join(columns)} FROM {table}{where} ORDER BY {', '.join(key)}"):
        h.update(repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)).encode("utf-8"))
        count += 1
    return count, h.hexdigest()


def check_copy(target: PostgresStore, expected: dict[str, tuple[int, str]],
               report: CopyReport | None = None) -> CopyReport:
    """Check a copy against what the source held (``expected``: each table's rows and the
    digest of all their columns, :func:`_table_digest`), and verify the copy's audit log."""
    from ..audit import verify_store

    report = report or CopyReport(rows={t: n for t, (n, _) in expected.items()}, expected=expected)
    layouts = {table: _pg_layout(target, table) for table in TABLES}
    for table in TABLES:
        rows, digest = _table_digest(target._db, table, layouts[table])
        if rows != expected[table][0]:
            report.problems.append(f"{table}: {expected[table][0]} rows in the SQLite store, {rows} in the copy")
        elif digest != expected[table][1]:
            report.problems.append(f"{table}: the rows differ between the SQLite store and the copy")
        if table == "certificates":
            report.certificates_sha256 = digest
    verification = verify_store(target)
    report.audit_events = verification.events
    report.problems += [f"audit log: {p.what}" for p in verification.problems]
    if verification.events != expected["audit"][0]:
        report.problems.append(f"audit log: {expected['audit'][0]} events in the SQLite store, {verification.events} "
                               "in the copy")
    return report


def _pg_layout(target: PostgresStore, table: str) -> tuple[list[str], list[str]]:
    """The same layout read from PostgreSQL's catalog (columns in their order, the primary key)."""
    columns = [r[0] for r in target._db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? "
        "ORDER BY ordinal_position", (table,))]
    key = [r[0] for r in target._db.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = ?::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)", (table,))]
    return columns, key or columns


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

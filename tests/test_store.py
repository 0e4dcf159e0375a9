"""The store never loses a handed-out certificate and never holds half a change."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import iranpki.ca as ca_mod
from iranpki.errors import DuplicateError, SchemaError, StoreError
from iranpki.keys import KeySpec
from iranpki.store import SqliteStore
from iranpki.workspace import Workspace

from .conftest import new_key
from .samples import request

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A workspace with a software root and level-1 intermediate (keys encrypted on disk)."""
    monkeypatch.setenv("IRANPKI_KEY_PASSPHRASE", PASSPHRASE)
    ws = Workspace.init(tmp_path / "ws", repository_url="http://repo.test.ir", ocsp_url="http://ocsp.test.ir")
    ws.generate_key(KeySpec.parse("p384"), label="root")
    ws.generate_key(KeySpec.parse("p256"), label="gica1")
    ws.create_root("root", "root", "C=IR,O=Test,CN=Test Root")
    ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=Test,CN=Test Level 1")
    ws.close()
    return Workspace.open(tmp_path / "ws")


def _counts(path: Path) -> tuple[int, int]:
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        certs = db.execute("SELECT count(*) FROM certificates WHERE profile != 'intermediate-level1'").fetchone()[0]
        audits = db.execute("SELECT count(*) FROM audit WHERE event = 'cert.issued'").fetchone()[0]
        return certs, audits
    finally:
        db.close()


def test_audit_row_and_certificate_commit_together(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    authority = workspace.open_ca("gica1")
    before = _counts(workspace.store_path)

    def broken_audit(self, db, audit):  # the audit write fails after the certificate row went in
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    monkeypatch.setattr(SqliteStore, "_audit", broken_audit)
    with pytest.raises(StoreError, match="could not record the change .*disk I/O error.*nothing was changed"):
        authority.issue("tsa", request("tsa", new_key().public_key()))
    assert _counts(workspace.store_path) == before  # neither row, not half of the change


def test_colliding_serial_is_retried_and_never_handed_out(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    authority = workspace.open_ca("gica1")
    first = authority.issue("tsa", request("tsa", new_key().public_key()))
    serials = iter([first.record.serial, (1 << 126) | 12345])
    monkeypatch.setattr(ca_mod, "_new_serial", lambda: next(serials))
    second = authority.issue("tsa", request("tsa", new_key().public_key()))
    assert second.record.serial == (1 << 126) | 12345
    assert second.certificate.serial_number == second.record.serial
    assert workspace.store.get_certificate(first.record.serial).fingerprint == first.record.fingerprint


def test_the_store_refuses_a_duplicate_serial(workspace: Workspace) -> None:
    authority = workspace.open_ca("gica1")
    issued = authority.issue("tsa", request("tsa", new_key().public_key()))
    from iranpki.store import AuditEvent

    with pytest.raises(DuplicateError, match="already"):
        workspace.store.add_certificate(issued.record, AuditEvent("cert.issued", "x"))


def test_serials_are_positive_random_and_long(workspace: Workspace) -> None:
    authority = workspace.open_ca("gica1")
    serials = [authority.issue("tsa", request("tsa", new_key().public_key())).record.serial for _ in range(20)]
    assert len(set(serials)) == 20
    for s in serials:
        assert 2**126 <= s < 2**127  # positive, 16 octets, 126 random bits (>= 64 required)
    # The low 64 bits differ across serials (they come from the CSPRNG, not a counter).
    assert len({s & (2**64 - 1) for s in serials}) == 20


CRASH_SCRIPT = textwrap.dedent("""
    import sys
    from cryptography.hazmat.primitives.asymmetric import ec
    from iranpki.workspace import Workspace
    from iranpki.ca import IssueRequest, parse_subject
    ws = Workspace.open(sys.argv[1])
    authority = ws.open_ca("gica1")
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    while True:
        cert = authority.issue("tsa", IssueRequest(parse_subject("C=IR,O=T,CN=TSA"), key))
        # Handing out = writing it where the caller can see it.
        sys.stdout.write(f"{cert.record.serial:x}\\n")
        sys.stdout.flush()
""")


def test_a_killed_issuer_leaves_a_consistent_store(workspace: Workspace, tmp_path: Path) -> None:
    script = tmp_path / "issue_forever.py"
    script.write_text(CRASH_SCRIPT)
    workspace.close()
    handed_out: list[str] = []
    for round_ in range(3):  # kill at different moments
        proc = subprocess.Popen([sys.executable, str(script), str(workspace.home)], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "IRANPKI_KEY_PASSPHRASE": PASSPHRASE})
        deadline = time.monotonic() + 30
        got = 0
        assert proc.stdout is not None
        while got < 20 + 7 * round_ and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            handed_out.append(line.strip())
            got += 1
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()
        handed_out += [s for s in rest.split("\n") if s]
        proc.wait(timeout=10)
        assert got > 0
    store = SqliteStore(str(workspace.store_path))
    for serial in handed_out:
        store.get_certificate(int(serial, 16))  # every certificate handed out is recorded
    certs, audits = _counts(workspace.store_path)
    assert certs == audits  # and each has its audit row
    assert certs >= len(handed_out)


def _issue_many(home: str, n: int, queue) -> None:
    os.environ["IRANPKI_KEY_PASSPHRASE"] = PASSPHRASE
    ws = Workspace.open(home)
    authority = ws.open_ca("gica1")
    key = new_key().public_key()
    serials = [authority.issue("tsa", request("tsa", key)).record.serial for _ in range(n)]
    queue.put(serials)


def test_four_concurrent_issuers_never_duplicate_a_serial(workspace: Workspace) -> None:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_issue_many, args=(str(workspace.home), 60, queue)) for _ in range(4)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=240) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    serials = [s for r in results for s in r]
    assert len(serials) == 240 and len(set(serials)) == 240
    certs, audits = _counts(workspace.store_path)
    assert certs == audits == 240


def test_a_store_from_another_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    SqliteStore(str(path), create=True).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(SchemaError, match="schema version 99"):
        SqliteStore(str(path))
    with pytest.raises(StoreError, match="iranpki init"):
        SqliteStore(str(tmp_path / "missing.sqlite3"))


def test_batch_issuance_is_all_or_nothing(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from iranpki.errors import ProfileViolationError

    authority = workspace.open_ca("gica1")
    good = [request("tsa", new_key().public_key()) for _ in range(5)]
    issued = authority.issue_many("tsa", good)
    assert len({c.record.serial for c in issued}) == 5
    for c in issued:
        assert workspace.store.get_certificate(c.record.serial).fingerprint == c.record.fingerprint
    before = _counts(workspace.store_path)
    bad = good[:2] + [request("tsa", new_key().public_key(), subject=[("C", "IR"), ("CN", "no O")])]
    with pytest.raises(ProfileViolationError, match="request 2: subject O"):
        authority.issue_many("tsa", bad)
    # A collision inside the batch: the whole batch is signed again under new serials.
    taken = issued[0].record.serial
    serials = iter([taken, (1 << 126) | 1, (1 << 126) | 2, (1 << 126) | 3])
    monkeypatch.setattr(ca_mod, "_new_serial", lambda: next(serials))
    again = authority.issue_many("tsa", good[:2])
    assert [c.record.serial for c in again] == [(1 << 126) | 2, (1 << 126) | 3]
    assert _counts(workspace.store_path) == (before[0] + 2, before[1] + 2)


def test_issue_refuses_ca_profiles(workspace: Workspace) -> None:
    from iranpki.errors import IssuanceError

    with pytest.raises(IssuanceError, match="create_intermediate"):
        workspace.open_ca("gica1").issue("intermediate-level1", request("tsa", new_key().public_key()))


def test_listing_pages_follow_an_index_and_continue_after_a_certificate(workspace: Workspace) -> None:
    """Review item 24: every listing filter reads an index in its own order (no table scan, no
    sort), and `after` gives the next page; the pages together are the whole listing."""
    authority = workspace.open_ca("gica1")
    issued = [authority.issue("tsa", request("tsa", new_key().public_key())).record for _ in range(7)]
    workspace.revoke(issued[2].serial, "superseded")
    store = workspace.store
    whole = [r.serial for r in store.iter_certificates(ca="gica1")]
    # Oldest first; certificates of the same second in serial order.
    assert set(whole[-7:]) == {r.serial for r in issued}
    pages, after = [], None
    while page := list(store.iter_certificates(ca="gica1", limit=3, after=after)):
        pages += [r.serial for r in page]
        after = page[-1]
    assert pages == whole
    assert [r.serial for r in store.iter_certificates(status="revoked")] == [issued[2].serial]
    tsa = [r for r in store.iter_certificates(profile="tsa")]
    assert [r.serial for r in store.iter_certificates(profile="tsa", after=tsa[4])] == [r.serial for r in tsa[5:]]
    for sql in ("SELECT * FROM certificates INDEXED BY certificates_by_issue WHERE (issued_at, serial) > (?, ?) "
                "ORDER BY issued_at, serial LIMIT 10",
                "SELECT * FROM certificates INDEXED BY certificates_by_ca_issue WHERE ca=? AND (issued_at, serial) > "
                "(?, ?) ORDER BY issued_at, serial LIMIT 10"):
        plan = " ".join(str(row[3]) for row in store._db.execute("EXPLAIN QUERY PLAN " + sql, ("x",) * sql.count("?")))
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan


def test_a_version_2_store_gets_the_listing_indexes(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    SqliteStore(str(path), create=True).close()
    db = sqlite3.connect(path)
    for name in ("certificates_by_issue", "certificates_by_ca_issue", "certificates_by_profile_issue",
                 "certificates_revoked_by_issue"):
        db.execute(f"DROP INDEX {name}")
    for table in ("audit_tree", "audit_checkpoints", "ra_officer_totp", "ra_evidence", "ra_blobs", "ra_events",
                  "ra_attempts", "ra_requests", "ra_officers", "ra_offices"):
        db.execute(f"DROP TABLE {table}")  # a store of version 2 had none of the registration tables
    db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    db.commit()
    db.close()
    SqliteStore(str(path)).close()
    db = sqlite3.connect(path)
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    # Upgraded through version 3 (the listing indexes), 4 (the registration tables) and 5 (the
    # officers' one-time-code secrets) to 6 (the audit tree, with a leaf for each older event).
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "8"
    assert db.execute("SELECT COUNT(*) FROM audit_tree").fetchone()[0] == db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    assert {"certificates_by_issue", "certificates_by_ca_issue", "certificates_revoked_by_issue"} <= names
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"ra_offices", "ra_officers", "ra_requests", "ra_events", "ra_evidence", "ra_officer_totp", "audit_tree"} <= tables
    db.close()


def test_a_read_only_store_file_opens_read_only_and_nothing_is_half_done(tmp_path: Path) -> None:
    """A store file without write permission in a writable folder (review of this change): it is
    read, and a key generation stops before a key is made that could not be recorded."""
    import shutil
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="iranpki-ro-"))  # pytest's folders are 0700: the other user must see in
    tmp_path.chmod(0o755)
    ws = Workspace.init(tmp_path / "ws", repository_url="http://repo.test.ir")
    ws.close()
    store = tmp_path / "ws" / "iranpki.sqlite3"
    store.chmod(0o444)
    (tmp_path / "ws").chmod(0o777)
    code = ("import os\nfrom iranpki.workspace import Workspace\nfrom iranpki.keys import KeySpec\n"
            f"ws = Workspace.open({str(tmp_path / 'ws')!r})\nprint(ws.store.read_only is not None)\n"
            "print(list(ws.store.iter_certificates()))\n"
            "try:\n    ws.generate_key(KeySpec.parse('p256'), label='k')\nexcept Exception as e:\n"
            "    print(type(e).__name__)\n")
    # As an unprivileged user: root writes through any permission.
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "IRANPKI_KEY_PASSPHRASE": "a passphrase long enough"})
    try:
        assert out.stdout.split() == ["True", "[]", "ConfigError"], out.stdout + out.stderr
        assert not (tmp_path / "ws" / "keys" / "k.pem").exists()
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_read_only_version_3_store_says_it_has_no_registration_records(tmp_path: Path) -> None:
    """A store of version 3 on which this user cannot write is read as it is; the RA's commands
    say the store must be upgraded once where it can be written, not SQLite's 'no such table'."""
    import shutil
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="iranpki-ro3-"))
    tmp_path.chmod(0o755)
    Workspace.init(tmp_path / "ws", repository_url="http://repo.test.ir").close()
    store = tmp_path / "ws" / "iranpki.sqlite3"
    db = sqlite3.connect(store)
    for table in ("audit_tree", "audit_checkpoints", "ra_officer_totp", "ra_evidence", "ra_blobs", "ra_events",
                  "ra_attempts", "ra_requests", "ra_officers", "ra_offices"):
        db.execute(f"DROP TABLE {table}")
    db.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    db.commit()
    db.close()
    store.chmod(0o444)
    (tmp_path / "ws").chmod(0o755)
    iranpki = str(Path(sys.executable).parent / "iranpki")
    try:
        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", iranpki, *args,
                                   "--home", str(tmp_path / "ws")], capture_output=True, text=True, timeout=60)

        listed = run("cert", "list")
        assert listed.returncode == 0, listed.stderr
        for command in (["ra", "requests"], ["ra", "office", "list"], ["ra", "officer", "list"]):
            refused = run(*command)
            assert refused.returncode != 0 and "schema version 3" in refused.stderr and \
                "upgrades it" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_stores_open_through_one_factory(tmp_path) -> None:
    """Issue 14 item 4: the workspace, the benchmarks and the examples open stores by location
    through iranpki.store.open_store; a location no backend serves is refused by name."""
    import pytest

    from iranpki.errors import ConfigError
    from iranpki.store import SqliteStore, open_store

    plain = open_store(tmp_path / "a.sqlite3", create=True)
    url = open_store(f"sqlite:///{tmp_path}/b.sqlite3", create=True)
    assert isinstance(plain, SqliteStore) and isinstance(url, SqliteStore) and url.path == f"{tmp_path}/b.sqlite3"
    plain.close()
    url.close()
    with pytest.raises(ConfigError, match=r"names the scheme 'mysql', which no store backend serves; give one "
                                          r"of: sqlite://, postgresql:// or a file path"):
        open_store("mysql://db.example.ir/iranpki")
    with pytest.raises(ConfigError, match="holds a password; take it out of the URL") as shown:
        open_store("postgresql://ca:secret@db.example.ir/iranpki")
    assert "secret" not in str(shown.value)
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    direct = subprocess.run(["grep", "-rln", r"SqliteStore(", "src/iranpki/workspace.py", "benchmarks", "examples"],
                            cwd=root, capture_output=True, text=True).stdout.split()
    assert direct == [], direct

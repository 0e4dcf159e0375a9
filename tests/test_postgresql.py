"""The store on PostgreSQL (issue 18), beyond the store contract every backend passes
(tests/test_store_contract.py): a SQLite workspace moved into PostgreSQL with `iranpki store
migrate`, its copy checked and shown to catch a bad one; the workspace then working on the
server (issuance, a revocation openssl finds in the CRL, the audit log verified); and two
issuing processes on one database at once, with no serial twice, no CRL number skipped or
repeated, and an audit log with no gap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iranpki.keys import SecretSource
from iranpki.workspace import Workspace

from .conftest import REPO, ROOT_SUBJECT, new_database

PASSPHRASE = "a passphrase long enough"
PEM = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo


def _public_key() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(*PEM)


def _workspace(home: Path, *, store: str | None = None, ocsp_url: str = "") -> Workspace:
    """A workspace with a root and a level-1 signing CA (software keys)."""
    from .conftest import software_workspace

    return software_workspace(home, store=store, ocsp_url=ocsp_url, name="pg")


def _iranpki(home: Path, *args: str, code: int = 0) -> str:
    from iranpki_cli.main import cli

    result = CliRunner().invoke(cli, [*args, "--home", str(home)])
    assert result.exit_code == code, result.output
    return result.output


def test_a_sqlite_workspace_moves_to_postgresql_and_goes_on_there(postgresql: dict, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRANPKI_KEY_PASSPHRASE", PASSPHRASE)
    home = tmp_path / "ca"
    ws = _workspace(home)
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    issued = [ws.issue("gica1", "smime", subject="CN=ali@example.ir", emails=["ali@example.ir"],
                       public_key=_public_key(), secret=secret) for _ in range(5)]
    ws.close()
    _iranpki(home, "cert", "revoke", f"{issued[1].record.serial:x}", "--reason", "keyCompromise")
    _iranpki(home, "crl", "generate", "--ca", "gica1")
    url = new_database(postgresql)
    # A password in the URL is refused, and shown nowhere.
    refused = _iranpki(home, "store", "migrate", "--to", url.replace("iranpki@", "iranpki:hunter2@"), code=1)
    assert "holds a password" in refused and "hunter2" not in refused
    moved = json.loads(_iranpki(home, "store", "migrate", "--to", url, "--switch", "--json"))
    assert moved["problems"] == [] and moved["switched"], moved
    assert moved["rows"]["certificates"] == 6 and moved["rows"]["audit"] == moved["audit_events"] > 10
    # The workspace now works on the server: the SQLite file is left as it was.
    sqlite_file = home / "iranpki.sqlite3"
    before = sqlite_file.stat().st_mtime_ns
    ws = Workspace.open(home)
    assert ws.store_is_server and type(ws.store).__name__ == "PostgresStore"
    later = ws.issue("gica1", "smime", subject="CN=ali@example.ir", emails=["ali@example.ir"],
                     public_key=_public_key(), secret=secret)
    assert later.record.serial not in {i.record.serial for i in issued}
    ws.close()
    _iranpki(home, "cert", "revoke", f"{later.record.serial:x}", "--reason", "superseded")
    _iranpki(home, "crl", "generate", "--ca", "gica1")
    assert sqlite_file.stat().st_mtime_ns == before
    # openssl reads the CRL made from the server: both revoked serials, its number after the copied one's.
    ws = Workspace.open(home)
    crl = ws.store.latest_crl("gica1")
    assert crl.number == 2
    text = subprocess.run(["openssl", "crl", "-in", str(Path(crl.path) if os.path.isabs(crl.path) else home / crl.path),
                           "-inform", "DER", "-noout", "-text"], capture_output=True, text=True)
    assert text.returncode == 0, text.stderr
    for serial in (issued[1].record.serial, later.record.serial):
        assert f"{serial:X}"[-16:] in text.stdout.upper().replace(":", ""), serial
    ws.close()
    verified = _iranpki(home, "audit", "verify", "--json")
    assert json.loads(verified)["ok"], verified


def test_the_copy_check_catches_a_bad_copy(postgresql: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iranpki.errors import StoreError
    from iranpki.store import open_store
    from iranpki.store.migrate import check_copy, copy_store

    monkeypatch.setenv("IRANPKI_KEY_PASSPHRASE", PASSPHRASE)
    ws = _workspace(tmp_path / "ca")
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    for _ in range(3):
        ws.issue("gica1", "smime", subject="CN=ali@example.ir", emails=["ali@example.ir"], public_key=_public_key(),
                 secret=secret)
    ws.generate_crls("gica1", secret=secret)
    target = open_store(new_database(postgresql), create=True)
    good = copy_store(ws.store, target)
    assert good.ok, good.problems
    # Into a store that holds something: refused, nothing written.
    with pytest.raises(StoreError, match="not empty"):
        copy_store(ws.store, target)
    # A copy that lost a status, an audit event's words, or a row: each is named.
    db = target._db
    db.execute("UPDATE certificates SET revoked_at='2026-12-01T00:00:00+00:00', reason=1 WHERE serial="
               "(SELECT MAX(serial) FROM certificates WHERE ca='gica1')")
    db.execute("UPDATE audit SET actor='someone else' WHERE seq=3")
    db.execute("DELETE FROM keys WHERE label='gica1'")
    db.execute("UPDATE crl_numbers SET last = 0")  # the next CRL numbers would be handed out again
    db.execute("UPDATE cas SET key_reference = 'file:elsewhere.pem' WHERE name = 'gica1'")
    bad = check_copy(target, good.expected)
    said = "\n".join(bad.problems)
    for named in ("certificates: the rows differ", "event 3 was changed", "keys: 2 rows", "cas: the rows differ"):
        assert named in said, said
    assert "crl_numbers: the rows differ" in said, said
    target.close()
    ws.close()


_NODE = """
import os, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from iranpki.keys import SecretSource
from iranpki.workspace import Workspace

ws = Workspace.open(sys.argv[1])
secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
serials = []
for i in range(int(sys.argv[2])):
    key = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    serials.append(ws.issue("gica1", "smime", subject="CN=ali@example.ir", emails=["ali@example.ir"],
                            public_key=key, secret=secret).record.serial)
    if i % 5 == 0:
        ws.generate_crls("gica1", secret=secret)
print(" ".join(f"{s:x}" for s in serials))
"""


def _run_nodes(tmp_path: Path, per_node: int, on_host) -> list[str]:  # noqa: ANN001
    """The two nodes' workspaces (node1, node2) issuing ``per_node`` each at once, each command
    prefixed by ``on_host(name)`` (a network namespace, or nothing); every serial, checked unique."""
    nodes = [subprocess.Popen([*on_host(name), sys.executable, "-c", _NODE, str(tmp_path / name), str(per_node)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for name in ("node1", "node2")]
    serials = []
    for node in nodes:
        out, err = node.communicate(timeout=300)
        assert node.returncode == 0, err
        serials += out.split()
    assert len(serials) == 2 * per_node == len(set(serials))
    return serials


def test_two_issuing_processes_on_one_database(postgresql: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two nodes (processes, each with its own workspace folder holding the CA's key file) issue
    and make CRLs at once on one PostgreSQL store."""
    import shutil

    monkeypatch.setenv("IRANPKI_KEY_PASSPHRASE", PASSPHRASE)
    url = new_database(postgresql)
    first = _workspace(tmp_path / "node1", store=url)
    first.close()
    # The second node: the same settings and key files, another folder (another machine).
    shutil.copytree(tmp_path / "node1", tmp_path / "node2")
    per_node = 30
    serials = _run_nodes(tmp_path, per_node, lambda name: [])
    ws = Workspace.open(tmp_path / "node1")
    numbers = sorted(c.number for c in ws.store.list_crls("gica1"))
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) == 2 * ((per_node + 4) // 5), numbers
    listed = {f"{c.serial:x}" for c in ws.store.iter_certificates(ca="gica1")}
    assert set(serials) <= listed
    from iranpki.audit import verify_store

    verification = verify_store(ws.store)
    assert verification.ok and verification.events > 2 * per_node, verification.problems
    # Every certificate verifies under its CA (issued by either node).
    ca = x509.load_der_x509_certificate(ws.store.get_ca("gica1").certificate)
    for serial in serials[:: per_node // 3]:
        x509.load_der_x509_certificate(ws.store.get_certificate(int(serial, 16)).certificate).verify_directly_issued_by(ca)
    ws.close()


def test_the_ocsp_responder_answers_from_postgresql(postgresql: dict, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`iranpki ocsp serve` on a workspace whose store is PostgreSQL: openssl ocsp hears good and
    revoked, and a revocation made meanwhile (by another process, `iranpki cert revoke`) is
    answered as revoked, never good again."""
    import socket
    import time

    from .conftest import start_listening

    monkeypatch.setenv("IRANPKI_KEY_PASSPHRASE", PASSPHRASE)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = tmp_path / "ca"
    ws = _workspace(home, store=new_database(postgresql), ocsp_url=f"http://127.0.0.1:{port}")
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    certs = {name: ws.issue("gica1", "smime", subject="CN=ali@example.ir", emails=["ali@example.ir"],
                            public_key=_public_key(), secret=secret) for name in ("good", "revoked")}
    ws.revoke(certs["revoked"].record.serial, "keyCompromise")
    for name, der in (("root", ws.store.get_ca("root").certificate), ("gica1", ws.store.get_ca("gica1").certificate),
                      *((n, c.record.certificate) for n, c in certs.items())):
        (tmp_path / f"{name}.pem").write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
    ws.close()
    server, _, lines = start_listening([str(Path(sys.executable).parent / "iranpki"), "ocsp", "serve", "--home", str(home),
                                        "--ca", "gica1", "--port", str(port), "--workers", "1"], dict(os.environ),
                                       "OCSP responder")

    def status(name: str) -> str:
        said = subprocess.run(["openssl", "ocsp", "-issuer", str(tmp_path / "gica1.pem"), "-cert",
                               str(tmp_path / f"{name}.pem"), "-url", f"http://127.0.0.1:{port}", "-CAfile",
                               str(tmp_path / "root.pem")], capture_output=True, text=True, timeout=30)
        assert "Response verify OK" in said.stderr + said.stdout, said.stdout + said.stderr
        return said.stdout.split(f"{name}.pem: ")[1].split()[0]

    try:
        assert (status("good"), status("revoked")) == ("good", "revoked")
        _iranpki(home, "cert", "revoke", f"{certs['good'].record.serial:x}", "--reason", "superseded")
        seen = []
        for _ in range(40):  # the responder's refresher, or its check of the status on each answer
            seen.append(status("good"))
            if seen[-1] == "revoked":
                break
            time.sleep(0.5)
        assert seen[-1] == "revoked", seen
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert not [line for line in lines if "Traceback" in line], lines


def test_two_nodes_on_hosts_of_their_own_issue_through_a_real_network(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The same two issuing nodes, each on a host of its own (a network namespace) and the
    database on a third, reached over the network between them: 10.x.y.z, not loopback."""
    import shutil

    from .hosts import network, new_cluster, remove_cluster

    monkeypatch.setenv("IRANPKI_KEY_PASSPHRASE", PASSPHRASE)
    with network("db", "node1", "node2") as hosts:
        cluster = new_cluster(host=hosts["db"].ip, netns=hosts["db"].netns, clients=hosts["_network"].ip)
        try:
            monkeypatch.setenv("IRANPKI_STORE_PASSWORD", cluster.password)
            assert cluster.host.startswith("10.")  # on the database's host, not this machine's loopback
            # The first node makes the workspace and the CAs, from its own host.
            made = subprocess.run(hosts["node1"].command(sys.executable, "-c", _SETUP, str(tmp_path / "node1"),
                                                         cluster.url(), REPO, ROOT_SUBJECT),
                                  capture_output=True, text=True, env=dict(os.environ), timeout=300)
            assert made.returncode == 0, made.stderr
            shutil.copytree(tmp_path / "node1", tmp_path / "node2")
            per_node = 20
            _run_nodes(tmp_path, per_node, lambda name: hosts[name].command())  # unique serials, checked there
            check = subprocess.run(hosts["node1"].command(sys.executable, "-c", _CHECK, str(tmp_path / "node1")),
                                   capture_output=True, text=True, env=dict(os.environ), timeout=120)
            assert check.returncode == 0, check.stderr
            numbers, events, ok = json.loads(check.stdout)
            assert ok and numbers == list(range(1, len(numbers) + 1)) and len(numbers) == 2 * (per_node // 5), numbers
            assert events > 2 * per_node
            # Seen from the database's side: the two nodes' connections came from their own addresses.
            seen = subprocess.run(hosts["db"].command(
                "runuser", "-u", "postgres", "--", f"{cluster.bindir}/psql", "-h", cluster.host, "-U", "iranpki",
                "-d", "postgres", "-At", "-c", "SELECT count(*) FROM audit"), capture_output=True, text=True,
                env={**os.environ, "PGPASSWORD": cluster.password}, timeout=60)
            assert seen.returncode == 0 and int(seen.stdout) == events, seen.stderr
        finally:
            remove_cluster(cluster)


_SETUP = """
import sys
from iranpki.keys import KeySpec, SecretSource
from iranpki.workspace import Workspace

home, url, repo, root_subject = sys.argv[1:5]
ws = Workspace.init(home, repository_url=repo, store=url)
secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
ws.generate_key(KeySpec.parse("p384"), label="root", secret=secret)
ws.generate_key(KeySpec.parse("p256"), label="gica1", secret=secret)
ws.create_root("root", "root", root_subject, secret=secret)
ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=GICA,CN=GICA Level 1 (pg)", secret=secret,
                       parent_secret=secret, purpose="signing")
ws.close()
"""

_CHECK = """
import json, sys
from iranpki.audit import verify_store
from iranpki.workspace import Workspace

ws = Workspace.open(sys.argv[1])
numbers = sorted(c.number for c in ws.store.list_crls("gica1"))
v = verify_store(ws.store)
print(json.dumps([numbers, v.events, v.ok]))
"""


def _ask(port: int, request: bytes) -> tuple[int, str, str | None]:
    """(HTTP status, OCSP response status, the certificate's status or None) from a responder."""
    import urllib.error
    import urllib.request

    from asn1crypto import ocsp as asn1_ocsp

    post = urllib.request.Request(f"http://127.0.0.1:{port}/", data=request,
                                  headers={"Content-Type": "application/ocsp-request"})
    try:
        with urllib.request.urlopen(post, timeout=10) as answer:
            code, body = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, "", None
    parsed = asn1_ocsp.OCSPResponse.load(body)
    status = parsed["response_status"].native
    if status != "successful":
        return code, status, None
    single = parsed.basic_ocsp_response["tbs_response_data"]["responses"][0]
    return code, status, single["cert_status"].name


def test_responders_on_a_streaming_replica(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OCSP responders answering from a hot standby (pg_basebackup, streaming): a revocation on
    the primary is answered revoked on the replica within the replica lag (measured, printed);
    with the primary stopped the replica's responder answers from what it has, then, past the
    lag the CP allows, only revocations (tryLater for the rest); with the replica stopped it
    answers tryLater, never a wrong status, never an HTTP error; and it comes back with the replica."""
    import shutil
    import time

    import yaml

    from .conftest import start_listening
    from .hosts import free_port, new_cluster, new_standby, remove_cluster

    monkeypatch.setenv("IRANPKI_KEY_PASSPHRASE", PASSPHRASE)
    primary = new_cluster()
    standby = None
    servers = []
    try:
        monkeypatch.setenv("IRANPKI_STORE_PASSWORD", primary.password)
        url = primary.new_database()
        home = tmp_path / "primary"
        ws = _workspace(home, store=url)
        secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
        certs = {name: ws.issue("gica1", "smime", subject="CN=ali@example.ir", emails=["ali@example.ir"],
                                public_key=_public_key(), secret=secret) for name in ("good", "later", "revoked")}
        ws.revoke(certs["revoked"].record.serial, "keyCompromise")
        pems = {"gica1": ws.store.get_ca("gica1").certificate, **{n: c.record.certificate for n, c in certs.items()}}
        for name, der in pems.items():
            (tmp_path / f"{name}.pem").write_bytes(x509.load_der_x509_certificate(der).public_bytes(
                serialization.Encoding.PEM))
        ws.close()
        requests = {}
        for name in certs:
            subprocess.run(["openssl", "ocsp", "-issuer", str(tmp_path / "gica1.pem"), "-cert", str(tmp_path / f"{name}.pem"),
                            "-no_nonce", "-reqout", str(tmp_path / f"{name}.req")], check=True, capture_output=True)
            requests[name] = (tmp_path / f"{name}.req").read_bytes()
        standby = new_standby(primary)
        # The replica's node: the same workspace, its store the standby's copy of the database.
        replica = tmp_path / "replica"
        shutil.copytree(home, replica)
        config = yaml.safe_load((replica / "iranpki.yaml").read_text())
        config["store"] = url.replace(f":{primary.port}/", f":{standby.port}/")
        (replica / "iranpki.yaml").write_text(yaml.safe_dump(config))
        iranpki = str(Path(sys.executable).parent / "iranpki")
        primary_port, replica_port = free_port(), free_port()
        for where, port, extra in ((home, primary_port, []), (replica, replica_port, ["--max-source-lag", "5"])):
            server, _, lines = start_listening([iranpki, "ocsp", "serve", "--home", str(where), "--ca", "gica1", "--port",
                                                str(port), "--workers", "1", *extra], dict(os.environ), "OCSP responder")
            servers.append((server, lines))

        def replica_says(name: str) -> tuple[int, str, str | None]:
            return _ask(replica_port, requests[name])

        def until(name: str, wanted: tuple, seconds: float) -> list:
            seen = []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                seen.append(replica_says(name))
                if seen[-1] == wanted:
                    return seen
                time.sleep(0.1)
            raise AssertionError(f"{name}: {seen[-5:]}\n" + "\n".join(servers[-1][1][-40:]))

        ok_good, ok_revoked = (200, "successful", "good"), (200, "successful", "revoked")
        until("good", ok_good, 30)  # once the primary's clock has reached the replica
        assert replica_says("revoked") == ok_revoked
        # A revocation on the primary, answered on the replica within the replica's lag.
        started = time.monotonic()
        _iranpki(home, "cert", "revoke", f"{certs['later'].record.serial:x}", "--reason", "superseded")
        seen = until("later", ok_revoked, 30)
        lag = time.monotonic() - started
        assert all(s in (ok_good, ok_revoked) for s in seen), seen  # good until the change arrived, never an error
        print(f"\nreplica: a revocation on the primary was answered revoked on the replica after {lag * 1000:.0f} ms "
              f"({len(seen)} requests)")
        # The primary stops: the replica's responder answers from what it has ...
        primary.stop()
        stopped = time.monotonic()
        assert replica_says("good") == ok_good and replica_says("revoked") == ok_revoked
        # ... until its copy is older than the lag allowed: then only revocations, tryLater for "good".
        seen = until("good", (200, "try_later", None), 15)
        assert time.monotonic() - stopped >= 3 and all(s in (ok_good, (200, "try_later", None)) for s in seen), seen
        assert replica_says("revoked") == ok_revoked and replica_says("later") == ok_revoked
        health = json.loads(subprocess.run(["curl", "-s", f"http://127.0.0.1:{replica_port}/health"], capture_output=True,
                                           text=True, timeout=10).stdout or "{}")
        assert health.get("source", {}).get("too_old") is True, health
        # The replica stops too: tryLater (or a cached answer), never a wrong status, never an HTTP error.
        standby.stop()
        answers = [replica_says(name) for name in ("good", "revoked", "good", "later")]
        assert all(a in ((200, "try_later", None), ok_revoked) for a in answers), answers
        assert answers[0] == (200, "try_later", None)
        # It comes back: the responder reconnects and answers from the copy again.
        standby.start()
        until("revoked", ok_revoked, 30)
        assert replica_says("good") == (200, "try_later", None)  # the primary is still away
    finally:
        for server, _ in servers:
            server.terminate()
            server.wait(timeout=30)
        for cluster in (standby, primary):
            if cluster is not None:
                remove_cluster(cluster)
    for _, lines in servers[1:]:
        assert not [line for line in lines if "Traceback" in line], "\n".join(lines)


def test_an_older_postgresql_store_is_upgraded_by_the_same_history(postgresql: dict) -> None:
    """The schema's versions are one history for both backends: a PostgreSQL store of version 6
    (before the key-recovery keys) is brought to the current version when opened, once."""
    from iranpki.store import RecoveryKeyRecord, open_store
    from iranpki.store.base import AuditEvent
    from iranpki.store.sqlite import SCHEMA_VERSION

    url = new_database(postgresql)
    open_store(url, create=True).close()
    import psycopg

    with psycopg.connect(url, password=postgresql["password"], autocommit=True) as conn:
        conn.execute("DROP TABLE recovery_keys")
        conn.execute("UPDATE meta SET value='6' WHERE key='schema_version'")
    store = open_store(url)
    assert store.schema_version == SCHEMA_VERSION == 8
    store.add_recovery_key(RecoveryKeyRecord("krk", "pkcs11:token=T;object=krk", b"0\x01", store.clock.now()),
                           AuditEvent("escrow.key.created", "krk", "operator", {}))
    assert [k.name for k in store.recovery_keys()] == ["krk"]
    store.close()
    assert open_store(url).schema_version == 8  # a second open finds it upgraded

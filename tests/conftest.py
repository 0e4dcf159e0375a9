"""Fixtures: a fresh SoftHSM2 token set per test session with random PINs, a CA hierarchy whose
keys live on those tokens, and the independent checkers (openssl, pkilint, pkcs11-tool).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from iranpki.ca import CertificateAuthority, create_intermediate, create_root, parse_subject
from iranpki.keys import KeySpec, SecretSource, SoftwareSigner
from iranpki.store import SqliteStore

VECTORS = Path(__file__).parent / "vectors"
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
ROOT_SUBJECT = "C=IR,O=I.R.Government,OU=Root CA,CN=Islamic Republic of Iran Root CA-G3 (test)"
REPO = "http://repository.test.ir"
OCSP = "http://ocsp.test.ir"


def pytest_configure(config: pytest.Config) -> None:
    # Every peer the tests need: a missing one fails the run here, it never turns a test into a skip.
    for tool in ("openssl", "softhsm2-util", "pkcs11-tool", "osslsigncode", "wrk", "gcc", "ip", "unshare", "chromium",
                 "certutil", "certtool"):
        if shutil.which(tool) is None:
            raise pytest.UsageError(f"{tool} is missing; run scripts/setup.sh (the README's test command does)")
    # The second PKCS#11 module the conformance suite runs on (test_conformance_opencryptoki.py).
    if shutil.which("pkcsslotd", path=os.environ.get("PATH", "") + ":/usr/sbin") is None or not list(
            Path("/usr/lib").glob("*/opencryptoki/libopencryptoki.so.0")):
        raise pytest.UsageError("openCryptoki is missing; run scripts/setup.sh (the README's test command does)")


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private SoftHSM2 token directory with two tokens and random PINs, for this session."""
    from iranpki.keys.pkcs11 import init_token

    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
    pin, so_pin = secrets.token_hex(8), secrets.token_hex(8)
    os.environ["SOFTHSM2_CONF"] = str(conf)
    os.environ["IRANPKI_PKCS11_PIN"] = pin
    for label in ("Root CA", "GICA", "Test"):
        init_token(label, SecretSource(env=None, prompt=lambda _: so_pin), SecretSource(prompt=lambda _: pin),
                   module=SOFTHSM_MODULE)
    yield {"conf": str(conf), "pin": pin, "so_pin": so_pin, "module": SOFTHSM_MODULE}


@pytest.fixture(scope="session")
def postgresql() -> Iterator[dict[str, str]]:
    """A private PostgreSQL cluster for this session (Debian's server, run as the postgres user,
    in a folder of its own, on 127.0.0.1 and a free port, password authentication; tests/hosts.py).
    Its admin URL holds no password: that is in IRANPKI_STORE_PASSWORD, as an operator gives it."""
    from .hosts import new_cluster, remove_cluster

    cluster = new_cluster()
    os.environ["IRANPKI_STORE_PASSWORD"] = cluster.password
    try:
        yield {"url": cluster.url(), "host": cluster.host, "port": str(cluster.port), "password": cluster.password,
               "bindir": cluster.bindir, "base": str(cluster.base)}
    finally:
        remove_cluster(cluster)


def new_database(postgresql: dict[str, str]) -> str:
    """A new, empty database in the session's cluster; its URL (no password)."""
    import psycopg

    name = "t_" + secrets.token_hex(6)
    with psycopg.connect(postgresql["url"], password=postgresql["password"], autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgresql["url"].rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def recovery_token(softhsm: dict[str, str]) -> str:
    """A token of its own for key-recovery keys (key agreement only), so that the tokens whose
    keys all sign stay so."""
    from iranpki.keys.pkcs11 import init_token

    init_token("Recovery", SecretSource(env=None, prompt=lambda _: softhsm["so_pin"]),
               SecretSource(prompt=lambda _: softhsm["pin"]), module=SOFTHSM_MODULE)
    return "Recovery"


@pytest.fixture(scope="session")
def hierarchy(softhsm: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Root (RSA 4096, token "Root CA") and level-2 intermediate (P-384, token "GICA")."""
    from iranpki.keys.pkcs11 import generate_keypair

    base = tmp_path_factory.mktemp("hierarchy")
    store = SqliteStore(str(base / "store.sqlite3"), create=True)
    root_key = generate_keypair("Root CA", "root", KeySpec.parse("rsa4096"))
    root = create_root(store, root_key, "root", parse_subject(ROOT_SUBJECT), repository_url=REPO, ocsp_url=OCSP)
    gica_key = generate_keypair("GICA", "gica2", KeySpec.parse("p384"))
    gica2 = create_intermediate(root, gica_key, "gica2", 2,
                                parse_subject("C=IR,O=E-Commerce Development Center,CN=GICA Level 2 (test)"),
                                ocsp_url=OCSP + "/gica2")
    root_pem = base / "root.pem"
    root_pem.write_bytes(root.certificate.public_bytes(serialization.Encoding.PEM))
    gica_pem = base / "gica2.pem"
    gica_pem.write_bytes(gica2.certificate.public_bytes(serialization.Encoding.PEM))
    return {"store": store, "root": root, "gica2": gica2, "root_pem": root_pem, "gica2_pem": gica_pem, "dir": base}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's new store goes, once on each backend: a SQLite file, and a new database in
    the session's PostgreSQL cluster."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    return new_database(request.getfixturevalue("postgresql"))


def store_copied(sqlite_file: Path, location: str, clock=None):  # noqa: ANN001, ANN201 - a Clock, a Store
    """The store at ``location`` holding what the SQLite store ``sqlite_file`` holds (a module's
    prepared CAs): a file copy, or `iranpki store migrate`'s checked copy into PostgreSQL."""
    from iranpki.store import open_store

    if not location.startswith("postgresql://"):
        shutil.copy(sqlite_file, location)
        return open_store(location, clock=clock)
    from iranpki.store.migrate import copy_store

    source = SqliteStore(str(sqlite_file))
    target = open_store(location, clock=clock, create=True)
    try:
        report = copy_store(source, target)
    finally:
        source.close()
    assert report.ok, report.problems
    return target


def software_workspace(home: Path, *, store: str | None = None, ocsp_url: str = "", name: str = "test"):  # noqa: ANN201
    """A workspace with a root and a level-1 signing CA "gica1", their keys software files under
    IRANPKI_KEY_PASSPHRASE (which the caller sets); open."""
    from iranpki.workspace import Workspace

    ws = Workspace.init(home, repository_url=REPO, store=store, ocsp_url=ocsp_url)
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    ws.generate_key(KeySpec.parse("p384"), label="root", secret=secret)
    ws.generate_key(KeySpec.parse("p256"), label="gica1", secret=secret)
    ws.create_root("root", "root", ROOT_SUBJECT, secret=secret)
    ws.create_intermediate("gica1", "root", 1, "gica1", f"C=IR,O=GICA,CN=GICA Level 1 ({name})", secret=secret,
                           parent_secret=secret, purpose="signing")
    return ws


def stored_bytes(location: str) -> bytes:
    """Everything a store holds as its disk (SQLite: the file, its WAL) or a dump shows it
    (PostgreSQL: pg_dump, whose bytea is hex: both raw and hex are given)."""
    if not location.startswith("postgresql://"):
        return b"".join(p.read_bytes() for p in Path(location).parent.glob(Path(location).name + "*"))
    import glob

    bindir = os.path.dirname(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))[-1])
    done = subprocess.run([f"{bindir}/pg_dump", "--no-owner", location], capture_output=True, timeout=120,
                          env={**os.environ, "PGPASSWORD": os.environ["IRANPKI_STORE_PASSWORD"]})
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout + done.stdout.hex().encode()


@pytest.fixture
def software_ca(store_location: str) -> CertificateAuthority:
    """A throw-away root and level-1 intermediate with software keys, in a store of its own (on
    each backend)."""
    from iranpki.store import open_store

    store = open_store(store_location, create=True)
    root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                       parse_subject(ROOT_SUBJECT), repository_url=REPO, profile="root",
                       ocsp_url=OCSP)
    return create_intermediate(root, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), "gica1", 1,
                               parse_subject("C=IR,O=GICA,CN=GICA Level 1 (test)"))


def new_key(kind: str = "p256"):
    if kind.startswith("rsa"):
        return rsa.generate_private_key(65537, int(kind[3:]))
    return ec.generate_private_key(ec.SECP384R1() if kind == "p384" else ec.SECP256R1())


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def openssl_verify(root: Path, untrusted: Path | None, cert: Path, purpose: str | None) -> subprocess.CompletedProcess[str]:
    cmd = ["openssl", "verify", "-x509_strict", "-CAfile", str(root)]
    if untrusted is not None:
        cmd += ["-untrusted", str(untrusted)]
    if purpose:
        cmd += ["-purpose", purpose]
    return run([*cmd, str(cert)])


def openssl_has_purpose(purpose: str) -> bool:
    out = run(["openssl", "verify", "-purpose", purpose, "/dev/null"])
    return "Invalid purpose" not in out.stderr + out.stdout


def openssl_purpose_for(purpose: str | None, certificate: Path) -> str:
    """The ``openssl verify -purpose`` a certificate is held to. OpenSSL's smimeencrypt purpose
    asks for keyEncipherment, which an EC key never has (it encrypts by key agreement, RFC 5480
    3), so an EC encryption certificate is verified for "any" here; NSS checks it as an e-mail
    recipient and ``openssl cms`` encrypts to it and decrypts with its key (test_key_recovery)."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    if purpose == "smimeencrypt" and isinstance(cert.public_key(), ec.EllipticCurvePublicKey):
        return "any"
    return purpose or "any"


def pkilint(tool: str, *files: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """The codes of every finding of WARNING or above from a pkilint command."""
    exe = str(Path(sys.executable).parent / tool)
    out = run([exe, "lint", "-s", "WARNING", "-f", "JSON", *extra, *map(str, files)])
    try:
        report = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"{tool} did not run: {out.stderr or out.stdout}") from None
    return [f["code"] for r in report["results"] for f in r["finding_descriptions"]]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def start_listening(cmd: list[str], env: dict[str, str], what: str, timeout: float = 60.0,
                    host: str = "127.0.0.1") -> tuple[subprocess.Popen[str], int, list[str]]:
    """Start a server command in a process group of its own and wait for its line
    'listening on http://HOST:PORT'. Returns the process, the port and the (growing) output lines;
    a server that exits or stays silent past ``timeout`` is killed and fails the test."""
    import re
    import signal
    import threading
    import time

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True, stdin=subprocess.DEVNULL)
    lines: list[str] = []
    port: list[int] = []
    ready = threading.Event()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            found = re.search(rf"listening on https?://{re.escape(host)}:(\d+)", line)
            if found and not ready.is_set():
                port.append(int(found.group(1)))
                ready.set()

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            raise AssertionError(f"the {what} did not start:\n" + "\n".join(lines))
    return proc, port[0], lines


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201 - a Playwright Browser
    """Debian's Chromium, headless, driven by Playwright (browsers cannot be downloaded here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()

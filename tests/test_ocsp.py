"""The OCSP responder, run as operators run it (`iranpki ocsp serve`, worker processes, a refresher)
and judged by independent clients: `openssl ocsp`, pyhanko-certvalidator, pkilint, `cryptography`,
and raw HTTP for what clients get wrong. CA keys are software keys, and PKCS#11 keys on SoftHSM2.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from hypothesis import given, settings
from hypothesis import strategies as st

from iranpki.ca import CertificateAuthority, IssueRequest, parse_subject
from iranpki.clock import FixedClock
from iranpki.keys import PASSPHRASE_ENV, KeySpec
from iranpki.ocsp import MalformedRequestError, OcspService, find_responder_certificate, parse_request
from iranpki.ocsp.codec import _fast_cert_id, _parse_full
from iranpki.store import SqliteStore
from iranpki.workspace import Workspace

from .conftest import pkilint, run, start_listening

IRANPKI = str(Path(sys.executable).parent / "iranpki")
HOST = "127.0.0.1"
PASSPHRASE = secrets.token_urlsafe(16)
SUBJECT = "C=IR,ST=Tehran,O=Example Co"
START_TIMEOUT = 60.0


# ---- helpers --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pem(path: Path, der: bytes) -> Path:
    path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
    return path


@dataclass
class Server:
    """`iranpki ocsp serve` in a process of its own; stopped (and checked to stop cleanly) at the end."""

    args: list[str]
    env: dict[str, str]
    port: int = 0
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start(self, prepared: bool = True) -> Server:
        """Start it; with ``prepared``, wait until /health says the first pass of pre-produced
        responses is done (the responder listens before it), so tests see the steady state."""
        self.proc, self.port, self.lines = start_listening(
            [IRANPKI, "ocsp", "serve", *self.args, "--host", HOST, "--port", str(self.port)], self.env,
            "responder", START_TIMEOUT, HOST)
        deadline, started = time.monotonic() + START_TIMEOUT, time.time() - 1
        while prepared:
            beat = self.health()[1].get("refresher") or {}
            if beat.get("first_pass_done") and beat.get("at", 0) >= started:  # this refresher's, not a copied one
                break
            assert time.monotonic() < deadline, "the first pass never ended:\n" + "\n".join(self.lines)
            time.sleep(0.05)
        return self

    def health(self) -> tuple[int, dict]:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            conn.request("GET", "/health")
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    def children(self) -> set[int]:
        assert self.proc is not None
        out = run(["pgrep", "-P", str(self.proc.pid)])
        return {int(p) for p in out.stdout.split()}

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal the supervisor only; it must stop its children itself."""
        assert self.proc is not None
        kids = self.children()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(20)
            left = [pid for pid in kids if _alive(pid)]
        finally:
            self.kill()
        assert not left, f"children {left} outlived the responder"
        return code

    def kill(self) -> None:
        """SIGKILL to the whole process group (whatever is left of it)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def request(cert: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm = hashes.SHA1(),
            nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def cert_id(issuer: x509.Certificate, serial: int, hash_name: str = "sha1") -> asn1_ocsp.CertId:
    cert = asn1_x509.Certificate.load(issuer.public_bytes(serialization.Encoding.DER))
    name = cert["tbs_certificate"]["subject"].dump()
    key = cert["tbs_certificate"]["subject_public_key_info"]["public_key"].contents[1:]
    return asn1_ocsp.CertId({"hash_algorithm": {"algorithm": hash_name},
                             "issuer_name_hash": hashlib.new(hash_name, name).digest(),
                             "issuer_key_hash": hashlib.new(hash_name, key).digest(), "serial_number": serial})


def multi_request(ids: list[asn1_ocsp.CertId], nonce: bytes | None = None) -> bytes:
    tbs: dict = {"request_list": [{"req_cert": cid} for cid in ids]}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "extn_value": asn1_core.OctetString(nonce)}]
    return asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def ocsp(self) -> ocsp.OCSPResponse:
        assert self.status == 200 and self.headers["content-type"] == "application/ocsp-response", self
        return ocsp.load_der_ocsp_response(self.body)


def post(port: int, body: bytes, path: str = "/", conn: http.client.HTTPConnection | None = None) -> Answer:
    c = conn or http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        c.request("POST", path, body, {"Content-Type": "application/ocsp-request"})
        r = c.getresponse()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        if conn is None:
            c.close()


def get(port: int, path: str) -> Answer:
    c = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        c.close()


def raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def openssl_ocsp(pki: Pki, port: int, *args: str) -> str:
    out = run(["openssl", "ocsp", "-url", f"http://{HOST}:{port}/", "-CAfile", str(pki.root_pem),
               "-timeout", "10", *args])
    return out.stdout + out.stderr


def verify_signature(resp: ocsp.OCSPResponse, key) -> None:  # noqa: ANN001 - a cryptography public key
    assert resp.signature_hash_algorithm is not None
    key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))


# ---- the PKI and the responders -------------------------------------------------------------------

@dataclass
class Pki:
    home: Path
    base: Path
    env: dict[str, str]
    root_pem: Path
    ca_pem: Path
    ca: x509.Certificate
    certs: dict[str, x509.Certificate]
    pems: dict[str, Path]


def _build(base: Path, port: int) -> Pki:
    """A root and a level-1 CA with software keys; the certificates name ``port`` as their OCSP URL."""
    home = base / "ws"
    os.environ[PASSPHRASE_ENV] = PASSPHRASE
    ws = Workspace.init(home, repository_url="http://127.0.0.1:1/repo", ocsp_url=f"http://{HOST}:{port}")
    for label, spec in (("root", "p384"), ("gica1", "p256"), ("responder", "p256")):
        ws.generate_key(KeySpec.parse(spec), label=label)
    ws.create_root("root", "root", "C=IR,O=I.R.Government,OU=Root CA,CN=OCSP Test Root")
    ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=GICA,CN=GICA Level 1 OCSP Test")
    authority = ws.open_ca("gica1")
    certs = {}
    for name in ("good", "good2", "revoked", "later", "hold"):
        key = ec.generate_private_key(ec.SECP256R1())
        issued = authority.issue("ssl-server", IssueRequest(parse_subject(SUBJECT), key.public_key(),
                                                            dns=[f"{name}.example.ir"]))
        certs[name] = issued.certificate
    ws.revoke(certs["revoked"].serial_number, "keyCompromise")
    ws.revoke(certs["hold"].serial_number, "certificateHold")
    pems = {name: pem(base / f"{name}.pem", c.public_bytes(serialization.Encoding.DER)) for name, c in certs.items()}
    chain = ws.chain("gica1")
    ws.close()
    return Pki(home, base, {**os.environ, PASSPHRASE_ENV: PASSPHRASE}, pem(base / "root.pem", chain[1]),
               pem(base / "gica1.pem", chain[0]), x509.load_der_x509_certificate(chain[0]), certs, pems)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    saved = os.environ.get(PASSPHRASE_ENV)
    try:
        yield _build(tmp_path_factory.mktemp("ocsp"), free_port())
    finally:
        if saved is None:
            os.environ.pop(PASSPHRASE_ENV, None)
        else:
            os.environ[PASSPHRASE_ENV] = saved


def _copy(pki: Pki, name: str) -> Path:
    """A copy of the workspace: a responder with another identity gets a store of its own."""
    target = pki.base / name
    shutil.copytree(pki.home, target)
    db = sqlite3.connect(target / "iranpki.sqlite3")
    db.execute("DELETE FROM meta WHERE key LIKE 'service.%'")  # another responder's heartbeat is not ours
    db.commit()
    db.close()
    return target


@pytest.fixture(scope="module")
def served(pki: Pki) -> Iterator[Server]:
    """The CA-key responder for root and gica1, pre-produced responses, on the port the AIA names."""
    port = int(x509.load_der_x509_certificate(pki.ca.public_bytes(serialization.Encoding.DER))
               .extensions.get_extension_for_class(x509.AuthorityInformationAccess).value[0]
               .access_location.value.rsplit(":", 1)[1])
    server = Server(["--home", str(pki.home), "--ca", "root", "--ca", "gica1", "--workers", "2", "--timeout", "2"],
                    pki.env, port).start()
    yield server
    assert server.stop(signal.SIGTERM) == 0


@pytest.fixture(scope="module")
def delegated(pki: Pki) -> Iterator[tuple[Server, Path]]:
    """A delegated responder (its own key, a certificate the CA issues at start), on a copy of the store."""
    home = _copy(pki, "ws-delegated")
    server = Server(["--home", str(home), "--ca", "gica1", "--responder-key", "responder", "--workers", "2"],
                    pki.env).start()
    ws = None
    try:
        ws = Workspace.open(home)
        signer = ws.open_key("responder")
        record = find_responder_certificate(ws.store, "gica1", signer.public_key)
        assert record is not None and record.profile == "ocsp-signer"
        yield server, pem(pki.base / "responder.pem", record.certificate)
    finally:
        if ws is not None:
            ws.close()
        assert server.stop(signal.SIGINT) == 0  # Ctrl-C stops every child, as SIGTERM does


# ---- judged by openssl ------------------------------------------------------------------------------

@pytest.mark.parametrize("digest", ["-sha1", "-sha256"])
@pytest.mark.parametrize("nonce", ["-no_nonce", "-nonce"])
def test_openssl_reads_and_verifies_ca_key_responses(pki: Pki, served: Server, digest: str, nonce: str) -> None:
    issuer = ["-issuer", str(pki.ca_pem), digest]
    good = openssl_ocsp(pki, served.port, *issuer, "-cert", str(pki.pems["good"]), nonce, "-resp_text")
    assert "Response verify OK" in good and f"{pki.pems['good']}: good" in good, good
    assert ("Hash Algorithm: sha256" if digest == "-sha256" else "Hash Algorithm: sha1") in good
    assert ("OCSP Nonce" in good) == (nonce == "-nonce") and "WARNING" not in good, good
    revoked = openssl_ocsp(pki, served.port, *issuer, "-cert", str(pki.pems["revoked"]), nonce, "-resp_text")
    assert "Response verify OK" in revoked and f"{pki.pems['revoked']}: revoked" in revoked, revoked
    assert "Reason: keyCompromise" in revoked and re.search(r"Revocation Time: \w+ +\d+ [\d:]+ \d{4} GMT", revoked)
    hold = openssl_ocsp(pki, served.port, *issuer, "-cert", str(pki.pems["hold"]), nonce)
    assert f"{pki.pems['hold']}: revoked" in hold and "Reason: certificateHold" in hold, hold
    unknown = openssl_ocsp(pki, served.port, *issuer, "-serial", "0x1a2b3c4d5e6f", nonce)
    assert "Response verify OK" in unknown and "0x1a2b3c4d5e6f: unknown" in unknown, unknown


@pytest.mark.parametrize("digest", ["-sha1", "-sha256"])
def test_openssl_reads_and_verifies_delegated_responses(pki: Pki, delegated: tuple[Server, Path], digest: str) -> None:
    server, responder = delegated
    args = ["-issuer", str(pki.ca_pem), digest, "-VAfile", str(responder)]
    for name, want in (("good", "good"), ("revoked", "revoked")):
        for nonce in ("-no_nonce", "-nonce"):
            out = openssl_ocsp(pki, server.port, *args, "-cert", str(pki.pems[name]), nonce, "-resp_text")
            assert "Response verify OK" in out and f"{pki.pems[name]}: {want}" in out, out
            assert "OCSP Responder" in out  # the responder certificate travels in the response
    out = openssl_ocsp(pki, server.port, *args, "-serial", "0x77", "-resp_text")
    assert "Response verify OK" in out and "0x77: unknown" in out, out
    # Without -VAfile openssl builds the responder's chain itself: responder -> gica1 -> root.
    out = openssl_ocsp(pki, server.port, "-issuer", str(pki.ca_pem), "-verify_other", str(pki.ca_pem),
                       "-cert", str(pki.pems["good"]))
    assert "Response verify OK" in out and ": good" in out, out
    purpose = run(["openssl", "verify", "-CAfile", str(pki.root_pem), "-untrusted", str(pki.ca_pem),
                   "-purpose", "ocsphelper", str(responder)])
    assert purpose.returncode == 0, purpose.stdout + purpose.stderr


def test_unknown_issuer_is_unauthorized(pki: Pki, served: Server) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=Some Other CA,O=Elsewhere,C=IR")
    now = datetime.now(timezone.utc)
    foreign = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(other.public_key())
               .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
               .sign(other, hashes.SHA256()))
    foreign_pem = pem(pki.base / "foreign.pem", foreign.public_bytes(serialization.Encoding.DER))
    out = openssl_ocsp(pki, served.port, "-issuer", str(foreign_pem), "-serial", "5")
    assert "unauthorized (6)" in out, out
    answer = post(served.port, multi_request([cert_id(foreign, 5, "sha256")]))
    assert answer.ocsp.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    # In a request for several certificates, the foreign one is "unknown" (RFC 6960 2.2), ours answered.
    answer = post(served.port, multi_request([cert_id(foreign, 5), cert_id(pki.ca, pki.certs["revoked"].serial_number)]))
    statuses = [r.certificate_status for r in answer.ocsp.responses]
    assert statuses == [ocsp.OCSPCertStatus.UNKNOWN, ocsp.OCSPCertStatus.REVOKED]


# ---- judged by pyhanko-certvalidator and pkilint ------------------------------------------------------

def test_pyhanko_validates_through_the_responder(pki: Pki, served: Server) -> None:
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator.errors import RevokedError
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

    def load(path: Path) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(asn1_pem.unarmor(path.read_bytes())[2])

    async def validate(name: str) -> None:
        backend = AIOHttpFetcherBackend()
        try:
            ctx = ValidationContext(trust_roots=[load(pki.root_pem)], allow_fetching=True,
                                    revocation_mode="hard-fail", fetcher_backend=backend)
            validator = CertificateValidator(load(pki.pems[name]), intermediate_certs=[load(pki.ca_pem)],
                                             validation_context=ctx)
            await validator.async_validate_usage({"digital_signature"})
            assert ctx.revinfo_manager  # the OCSP responses it fetched were used for the whole path
        finally:
            await backend.close()

    asyncio.run(validate("good"))
    with pytest.raises(RevokedError, match="revoked"):
        asyncio.run(validate("revoked"))


def test_pkilint_finds_nothing(pki: Pki, served: Server, delegated: tuple[Server, Path]) -> None:
    files = []
    for label, port in (("ca-key", served.port), ("delegated", delegated[0].port)):
        for name, body in (("good", request(pki.certs["good"], pki.ca)),
                           ("revoked", request(pki.certs["revoked"], pki.ca, hashes.SHA256(), os.urandom(16))),
                           ("unknown", multi_request([cert_id(pki.ca, 0x1234)])),
                           ("several", multi_request([cert_id(pki.ca, pki.certs["good"].serial_number),
                                                      cert_id(pki.ca, pki.certs["hold"].serial_number)],
                                                     os.urandom(32)))):
            answer = post(port, body)
            assert answer.ocsp.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
            path = pki.base / f"{label}-{name}.der"
            path.write_bytes(answer.body)
            files.append(path)
    for path in files:
        assert pkilint("lint_ocsp_response", path) == [], path.name


# ---- HTTP: GET and POST, hashes, several certificates, caching ---------------------------------------

@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256()], ids=["sha1", "sha256"])
def test_get_and_post(pki: Pki, served: Server, algorithm: hashes.HashAlgorithm) -> None:
    for name, want in (("good", ocsp.OCSPCertStatus.GOOD), ("revoked", ocsp.OCSPCertStatus.REVOKED)):
        body = request(pki.certs[name], pki.ca, algorithm)
        b64 = base64.b64encode(body).decode()
        answers = [post(served.port, body), post(served.port, body, "/gica1"),
                   get(served.port, "/" + quote(b64, safe="")), get(served.port, "/gica1/" + quote(b64, safe="")),
                   get(served.port, "/gica1/" + b64)]  # '/' and '+' of the base64 left unescaped, as some clients do
        for answer in answers:
            resp = answer.ocsp
            assert resp.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
            assert resp.certificate_status is want and resp.serial_number == pki.certs[name].serial_number
            assert isinstance(resp.hash_algorithm, type(algorithm))
            verify_signature(resp, pki.ca.public_key())
        assert len({a.body for a in answers}) == 1  # one pre-produced response, however it was asked for


def test_three_certificates_in_one_request(pki: Pki, served: Server) -> None:
    nonce = os.urandom(20)
    serials = [pki.certs["good"].serial_number, pki.certs["revoked"].serial_number, 0xDEADBEEF]
    body = multi_request([cert_id(pki.ca, s, h) for s, h in zip(serials, ("sha1", "sha256", "sha1"))], nonce)
    answer = post(served.port, body)
    resp = answer.ocsp
    singles = list(resp.responses)
    assert [r.serial_number for r in singles] == serials
    assert [r.certificate_status for r in singles] == [ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED,
                                                       ocsp.OCSPCertStatus.UNKNOWN]
    assert singles[1].revocation_reason is x509.ReasonFlags.key_compromise
    assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    assert resp.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(pki.ca.public_key()).digest
    verify_signature(resp, pki.ca.public_key())
    assert "max-age" not in answer.headers["cache-control"]  # signed for this request: not to be cached


def _http_date(value: str) -> datetime:
    return parsedate_to_datetime(value).astimezone(timezone.utc)


def test_caching_headers(pki: Pki, served: Server) -> None:
    first = post(served.port, request(pki.certs["good"], pki.ca))
    now = datetime.now(timezone.utc)
    resp = first.ocsp
    h = first.headers
    assert int(h["content-length"]) == len(first.body)
    assert _http_date(h["last-modified"]) == resp.this_update_utc
    assert _http_date(h["expires"]) == resp.next_update_utc
    cache = re.fullmatch(r"max-age=(\d+), public, no-transform, must-revalidate", h["cache-control"])
    assert cache is not None, h["cache-control"]
    assert abs(int(cache.group(1)) - (resp.next_update_utc - now).total_seconds()) <= 2
    assert re.fullmatch(r'"[0-9a-f]{16,64}"', h["etag"]) and _http_date(h["date"]) <= now + timedelta(seconds=1)
    again = post(served.port, request(pki.certs["good"], pki.ca))
    assert again.body == first.body and again.headers["etag"] == h["etag"]
    # With a nonce the response is signed for the request: echoed nonce, and no caching.
    nonced = post(served.port, request(pki.certs["good"], pki.ca, nonce=os.urandom(16)))
    assert nonced.ocsp.extensions.get_extension_for_class(x509.OCSPNonce)
    assert "max-age" not in nonced.headers["cache-control"] and "no-cache" in nonced.headers["cache-control"]
    assert "etag" not in nonced.headers and "expires" not in nonced.headers


def test_revocation_by_another_process_shows_within_a_second(pki: Pki, served: Server) -> None:
    cert = pki.certs["later"]
    body = request(cert, pki.ca)
    before = post(served.port, body)
    assert before.ocsp.certificate_status is ocsp.OCSPCertStatus.GOOD
    out = subprocess.run([IRANPKI, "cert", "revoke", "--home", str(pki.home), f"{cert.serial_number:x}",
                          "--reason", "superseded"], capture_output=True, text=True, env=pki.env, timeout=60)
    revoked_at = time.monotonic()  # the CLI has returned: its transaction is committed
    assert out.returncode == 0, out.stderr
    while True:
        after = post(served.port, body)
        elapsed = time.monotonic() - revoked_at
        if after.ocsp.certificate_status is ocsp.OCSPCertStatus.REVOKED:
            break
        assert elapsed < 1.0, "the revocation did not show within one second"
        time.sleep(0.02)
    assert after.ocsp.revocation_reason is x509.ReasonFlags.superseded
    # The first revoked answer may be signed for the request (the worker saw the pre-produced one
    # predate the change); the refresher's re-signed one follows within its poll interval.
    while "etag" not in after.headers:
        assert time.monotonic() - revoked_at < 10, "the refresher did not re-sign the response"
        time.sleep(0.05)
        after = post(served.port, body)
    assert after.ocsp.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert after.headers["etag"] != before.headers["etag"] and "max-age=" in after.headers["cache-control"]
    assert after.ocsp.this_update_utc >= before.ocsp.this_update_utc
    sha256 = post(served.port, request(cert, pki.ca, hashes.SHA256()))  # both CertID hashes were re-signed
    assert sha256.ocsp.certificate_status is ocsp.OCSPCertStatus.REVOKED and "max-age=" in sha256.headers["cache-control"]


def test_keep_alive_and_connection_close(pki: Pki, served: Server) -> None:
    conn = http.client.HTTPConnection(HOST, served.port, timeout=10)
    try:
        post(served.port, request(pki.certs["good"], pki.ca), conn=conn)
        sock = conn.sock
        for name in ("good", "revoked", "good2", "hold", "good"):
            answer = post(served.port, request(pki.certs[name], pki.ca, hashes.SHA256()), conn=conn)
            assert answer.ocsp.serial_number == pki.certs[name].serial_number
            assert "connection" not in answer.headers
        assert conn.sock is sock  # five requests, one connection
    finally:
        conn.close()
    body = request(pki.certs["good"], pki.ca)
    # Three pipelined requests in one write; then Connection: close ends the connection.
    one = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    last = f"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    out = raw(served.port, one + one + last)
    assert out.count(b"HTTP/1.1 200 OK") == 3 and out.count(b"Connection: close") == 1
    # Expect: 100-continue gets its interim answer before the body is sent.
    with socket.create_connection((HOST, served.port), timeout=10) as s:
        s.sendall(f"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body)
        assert s.recv(100).startswith(b"HTTP/1.1 200 OK")
    # HTTP/1.0 closes unless the client asks to keep the connection.
    out = raw(served.port, f"POST / HTTP/1.0\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    assert out.startswith(b"HTTP/1.1 200 OK") and out.endswith(post(served.port, body).body)


# ---- what clients get wrong ---------------------------------------------------------------------------

def test_bad_requests_never_cost_a_worker(pki: Pki, served: Server) -> None:
    workers = served.children()
    assert len(workers) == 3  # the refresher and two workers
    malformed = [b"", b"garbage" * 10, os.urandom(300), b"\x30\x03\x02\x01\x01",
                 request(pki.certs["good"], pki.ca)[:-1],
                 multi_request([cert_id(pki.ca, 1)], os.urandom(33)),  # a nonce longer than RFC 9654 allows
                 multi_request([cert_id(pki.ca, n) for n in range(1, 102)])]  # more certificates than served
    for body in malformed:
        answer = post(served.port, body)
        assert answer.status == 200 and answer.ocsp.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        assert answer.body == b"\x30\x03\x0a\x01\x01"
    assert get(served.port, "/not-base64!").ocsp.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert get(served.port, "/").ocsp.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    too_big = raw(served.port, b"POST / HTTP/1.1\r\nContent-Length: 70000\r\n\r\n" + b"0" * 1000)
    assert too_big.startswith(b"HTTP/1.1 413 ")
    assert raw(served.port, b"GET /" + b"A" * 9000 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 431 ")
    assert raw(served.port, b"POST / HTTP/1.1\r\n" + b"X-Pad: y\r\n" * 2000).startswith(b"HTTP/1.1 431 ")
    assert raw(served.port, b"PUT / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").startswith(b"HTTP/1.1 405 ")
    assert raw(served.port, b"hello\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(served.port, b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab").startswith(
        b"HTTP/1.1 400 ")
    assert raw(served.port, b"POST / HTTP/1.1\r\nContent-Length : 2\r\n\r\nab").startswith(b"HTTP/1.1 400 ")
    assert get(served.port, "/" + "/" * 3000).ocsp.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert raw(served.port, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").startswith(
        b"HTTP/1.1 501 ")
    with socket.create_connection((HOST, served.port)) as s:
        s.sendall(b"POST / HTTP/1.1\r\nContent-Length: 50\r\n\r\n")  # and the client vanishes mid-body
    # Still answering, correctly, with the same processes.
    good = post(served.port, request(pki.certs["good"], pki.ca, nonce=os.urandom(16)))
    assert good.ocsp.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert served.children() == workers
    assert not [line for line in served.lines if "Traceback" in line or "stopped" in line], served.lines


def test_answers_stay_right_under_concurrent_load(pki: Pki, served: Server) -> None:
    """Eight clients on kept-alive connections while a ninth sends garbage: every answer is right."""
    wants = {name: (request(pki.certs[name], pki.ca, algorithm), status)
             for name, algorithm, status in (("good", hashes.SHA1(), ocsp.OCSPCertStatus.GOOD),
                                             ("revoked", hashes.SHA256(), ocsp.OCSPCertStatus.REVOKED),
                                             ("hold", hashes.SHA1(), ocsp.OCSPCertStatus.REVOKED))}
    wrong: list[str] = []

    def client(n: int) -> None:
        conn = http.client.HTTPConnection(HOST, served.port, timeout=10)
        try:
            for i in range(60):
                name = list(wants)[(n + i) % len(wants)]
                body, status = wants[name]
                resp = post(served.port, body, conn=conn).ocsp
                if resp.certificate_status is not status or resp.serial_number != pki.certs[name].serial_number:
                    wrong.append(f"{name}: {resp.certificate_status}")
        except Exception as exc:  # noqa: BLE001 - collected and reported by the test
            wrong.append(repr(exc))
        finally:
            conn.close()

    def vandal() -> None:
        for i in range(60):
            post(served.port, os.urandom(i + 1))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)] + [threading.Thread(target=vandal)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not wrong, wrong[:5]


def test_a_child_that_dies_is_replaced(pki: Pki, served: Server) -> None:
    body = request(pki.certs["good2"], pki.ca)
    before = served.children()
    victim = max(before)  # usually a worker (started last); the refresher would be replaced alike
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while served.children() == before or len(served.children()) < len(before):
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        time.sleep(0.05)
    assert victim not in served.children()
    # Every connection is answered, whichever worker's socket the kernel picks.
    for _ in range(20):
        assert post(served.port, body).ocsp.certificate_status is ocsp.OCSPCertStatus.GOOD


def test_slow_clients_are_cut_off(pki: Pki, served: Server) -> None:
    body = request(pki.certs["good"], pki.ca)
    with socket.create_connection((HOST, served.port), timeout=10) as slow:
        slow.sendall(f"POST / HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        start = time.monotonic()
        # Other clients are served meanwhile.
        assert post(served.port, body).ocsp.certificate_status is ocsp.OCSPCertStatus.GOOD
        slow.sendall(body[10:11])  # a trickle does not buy more time
        reply = b""
        while chunk := slow.recv(4096):
            reply += chunk
        waited = time.monotonic() - start
    assert reply.startswith(b"HTTP/1.1 408 ") and 1.5 <= waited <= 4.5, (reply, waited)


# ---- modes, keys on tokens, renewal -----------------------------------------------------------------

def _hierarchy_workspace(hierarchy: dict, base: Path) -> tuple[Path, dict[str, x509.Certificate]]:
    """A workspace over a copy of the session's SoftHSM2 hierarchy store, with certificates of its own."""
    home = base / "ws-pkcs11"
    home.mkdir()
    copy = base / "pkcs11.sqlite3"
    src, dst = sqlite3.connect(hierarchy["store"].path), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    (home / "iranpki.yaml").write_text(f"store: {copy}\nrepository_url: http://repository.test.ir\n"
                                       "ocsp_url: http://ocsp.test.ir\n")
    store = SqliteStore(str(copy))
    gica2 = CertificateAuthority(store.get_ca("gica2"), hierarchy["gica2"].signer, store)
    certs = {}
    for name in ("good", "revoked"):
        key = ec.generate_private_key(ec.SECP256R1())
        certs[name] = gica2.issue("ssl-server", IssueRequest(parse_subject(SUBJECT), key.public_key(),
                                                             dns=[f"{name}.example.ir"])).certificate
    gica2.revoke(certs["revoked"].serial_number, "affiliationChanged")
    store.close()
    return home, certs


def test_pkcs11_keys_each_worker_logs_in(hierarchy: dict, tmp_path: Path) -> None:
    from iranpki.keys.pkcs11 import generate_keypair

    home, certs = _hierarchy_workspace(hierarchy, tmp_path)
    label = f"ocsp-{secrets.token_hex(4)}"
    generate_keypair("Test", label, KeySpec.parse("p256"))
    paths = {name: pem(tmp_path / f"{name}.pem", c.public_bytes(serialization.Encoding.DER)) for name, c in certs.items()}
    root, issuer = str(hierarchy["root_pem"]), str(hierarchy["gica2_pem"])
    env = dict(os.environ)  # SOFTHSM2_CONF and IRANPKI_PKCS11_PIN from the softhsm fixture; no PIN in argv
    for extra in (["--signing", "on-demand"], ["--responder-key", f"pkcs11:token=Test;object={label}"]):
        server = Server(["--home", str(home), "--ca", "gica2", "--workers", "2", *extra], env).start()
        try:
            for name, want in (("good", "good"), ("revoked", "revoked")):
                for nonce in ("-nonce", "-no_nonce"):
                    out = run(["openssl", "ocsp", "-url", server.url, "-CAfile", root, "-issuer", issuer,
                               "-cert", str(paths[name]), nonce, "-timeout", "10"]
                              + (["-verify_other", issuer] if "--responder-key" in extra else []))
                    text = out.stdout + out.stderr
                    assert "Response verify OK" in text and f"{paths[name]}: {want}" in text, text
            assert "Reason: affiliationChanged" in text
            # Both workers answer (a connection per request spreads them): each logged in on its own.
            answers = [post(server.port, request(certs["good"], hierarchy["gica2"].certificate, nonce=os.urandom(8)))
                       for _ in range(12)]
            assert all(a.ocsp.certificate_status is ocsp.OCSPCertStatus.GOOD for a in answers)
            if "on-demand" in extra:
                plain = post(server.port, request(certs["good"], hierarchy["gica2"].certificate))
                assert "max-age" not in plain.headers["cache-control"]  # every response signed for its request
                assert plain.ocsp.produced_at_utc >= datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=2)
            pins = os.environ["IRANPKI_PKCS11_PIN"]
            assert not [line for line in server.lines if pins in line]
        finally:
            assert server.stop() == 0


def test_responder_certificate_is_renewed_before_it_expires(pki: Pki, delegated: tuple[Server, Path]) -> None:
    home = pki.base / "ws-delegated"
    first = x509.load_pem_x509_certificate(delegated[1].read_bytes())
    policy_days = 30 - 10  # delegated_responder_days - renew_responder_before_days (national CP)
    start = first.not_valid_before_utc
    home_copy = pki.base / "ws-renewal"
    ws_live = Workspace.open(home)
    try:
        src = sqlite3.connect(ws_live.store_path)
        shutil.copytree(home, home_copy, ignore=shutil.ignore_patterns("*.sqlite3*"))
        dst = sqlite3.connect(home_copy / "iranpki.sqlite3")
        src.backup(dst)
        src.close()
        dst.close()
    finally:
        ws_live.close()
    for days, renewed in ((policy_days - 1, False), (policy_days + 1, True)):
        ws = Workspace.open(home_copy, clock=FixedClock(start + timedelta(days=days)))
        try:
            service = ws.ocsp_service(["gica1"], responder_key="responder")
            current = service.responders["gica1"].certificate
            assert current is not None and (current.serial != first.serial_number) == renewed
            if renewed:
                assert current.not_after > first.not_valid_after_utc and current.profile == "ocsp-signer"
                # A worker (no CA key) picks the new certificate up from the store.
                worker = Workspace.open(home_copy, clock=ws.clock).ocsp_service(
                    ["gica1"], responder_key="responder", renew_responders=False)
                assert worker.responders["gica1"].certificate.serial == current.serial  # type: ignore[union-attr]
                assert worker._issue_responder is None  # it cannot issue: no CA key
            service.close()
        finally:
            ws.close()


def test_prepare_and_start_up_errors(pki: Pki, served: Server) -> None:
    home = _copy(pki, "ws-prepare")
    out = subprocess.run([IRANPKI, "ocsp", "prepare", "--home", str(home), "--ca", "gica1", "--all", "--json"],
                         capture_output=True, text=True, env=pki.env, timeout=60)
    assert out.returncode == 0, out.stderr
    count = len(list(Workspace.open(home).store.iter_certificates(ca="gica1")))
    assert f'"signed": {2 * count}' in out.stdout
    again = subprocess.run([IRANPKI, "ocsp", "prepare", "--home", str(home), "--ca", "gica1", "--json"],
                           capture_output=True, text=True, env=pki.env, timeout=60)
    assert '"signed": 0' in again.stdout  # nothing due any more
    busy = subprocess.run([IRANPKI, "ocsp", "serve", "--home", str(home), "--ca", "gica1", "--port", str(served.port)],
                          capture_output=True, text=True, env=pki.env, timeout=60)
    assert busy.returncode == 1 and f"cannot listen on {HOST}:{served.port}" in busy.stderr, busy.stderr
    bad = subprocess.run([IRANPKI, "ocsp", "serve", "--home", str(home), "--ca", "nosuch", "--port", "0"],
                         capture_output=True, text=True, env=pki.env, timeout=60)
    assert bad.returncode == 1 and "no CA named 'nosuch'" in bad.stderr and "Traceback" not in bad.stderr
    wrong = subprocess.run([IRANPKI, "ocsp", "serve", "--home", str(home), "--ca", "gica1", "--port", "0"],
                           capture_output=True, text=True, env={**pki.env, PASSPHRASE_ENV: "wrong passphrase"},
                           timeout=60, stdin=subprocess.DEVNULL)
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr and "wrong passphrase" not in " ".join(wrong.args)


# ---- the request parser ---------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(hash_name=st.sampled_from(["sha1", "sha256", "sha384", "sha512"]), serial=st.integers(1, 2**159),
       name=st.binary(min_size=1, max_size=40), nonce=st.none() | st.binary(min_size=1, max_size=32),
       null_params=st.booleans())
def test_parse_request_round_trip(hash_name: str, serial: int, name: bytes, nonce: bytes | None,
                                  null_params: bool) -> None:
    size = hashlib.new(hash_name).digest_size
    alg = {"algorithm": hash_name, "parameters": asn1_core.Null() if null_params else None}
    cid = asn1_ocsp.CertId({"hash_algorithm": alg, "issuer_name_hash": hashlib.new(hash_name, name).digest(),
                            "issuer_key_hash": (name * size)[:size], "serial_number": serial})
    data = multi_request([cid], nonce)
    parsed = parse_request(data)
    (got,) = parsed.cert_ids
    assert (got.hash, got.name_hash, got.key_hash, got.serial) == (
        hash_name, cid["issuer_name_hash"].native, cid["issuer_key_hash"].native, serial)
    assert parsed.nonce == nonce
    echoed = asn1_ocsp.CertId.load(got.der, strict=True)
    assert echoed["hash_algorithm"]["algorithm"].native == hash_name
    assert [echoed[f].native for f in ("issuer_name_hash", "issuer_key_hash", "serial_number")] == [
        cid[f].native for f in ("issuer_name_hash", "issuer_key_hash", "serial_number")]
    # The fast path takes exactly the requests without extensions, reads them as the full parser
    # does, and echoes their CertID as sent.
    fast = _fast_cert_id(data)
    assert (fast is not None) == (nonce is None)
    full = _parse_full(data).cert_ids[0]
    assert (full.hash, full.name_hash, full.key_hash, full.serial) == (got.hash, got.name_hash, got.key_hash, got.serial)
    assert fast is None or fast.der == cid.dump()


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400))
def test_parse_request_refuses_garbage_cleanly(data: bytes) -> None:
    try:
        parse_request(data)
    except MalformedRequestError:
        pass


@pytest.fixture(scope="module")
def service(pki: Pki) -> Iterator[OcspService]:
    """The library service itself, in this process, over the main workspace (it only reads the store)."""
    ws = Workspace.open(pki.home)
    svc = ws.ocsp_service(["gica1"], renew_responders=False)
    yield svc
    svc.close()
    ws.close()


def test_without_signing_on_demand_answers_come_from_the_pre_produced_ones(pki: Pki, service: OcspService) -> None:
    policy = service.policy
    strict = policy.model_copy(update={"status": policy.status.model_copy(update={
        "ocsp": policy.status.ocsp.model_copy(update={"sign_on_demand": False})})})
    svc = OcspService(service.store, service.responders.values(), policy=strict)
    plain = svc.respond(request(pki.certs["good"], pki.ca))
    assert plain.cacheable
    # The lightweight profile: a nonce the responder will not sign for is left out, not refused...
    nonced = svc.respond(request(pki.certs["good"], pki.ca, nonce=os.urandom(16)))
    assert nonced.body == plain.body and nonced.cacheable
    # ...and several certificates get the first one's pre-produced response.
    several = svc.respond(multi_request([cert_id(pki.ca, pki.certs["good"].serial_number),
                                         cert_id(pki.ca, pki.certs["revoked"].serial_number)], os.urandom(16)))
    assert several.body == plain.body
    # With the CP as shipped, both are signed for the request.
    assert not service.respond(request(pki.certs["good"], pki.ca, nonce=os.urandom(16))).cacheable


@settings(max_examples=150, deadline=None)
@given(cut=st.integers(0, 200), flip=st.integers(1, 255))
def test_mangled_requests_get_an_ocsp_answer(pki: Pki, service: OcspService, cut: int, flip: int) -> None:
    body = bytearray(request(pki.certs["good"], pki.ca, hashes.SHA256(), b"n" * 16))
    body[cut % len(body)] ^= flip
    reply = service.respond(bytes(body))
    status = ocsp.load_der_ocsp_response(reply.body).response_status
    assert status in (ocsp.OCSPResponseStatus.SUCCESSFUL, ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
                      ocsp.OCSPResponseStatus.UNAUTHORIZED)
    assert status is not ocsp.OCSPResponseStatus.INTERNAL_ERROR


def test_a_flood_of_made_up_serials_costs_a_bounded_number_of_signatures(pki: Pki, service: OcspService) -> None:
    svc = OcspService(service.store, service.responders.values(), unknown_per_second=3)
    statuses = []
    for _ in range(12):
        reply = svc.respond(multi_request([cert_id(pki.ca, int.from_bytes(os.urandom(15), "big"))], None))
        resp = ocsp.load_der_ocsp_response(reply.body)
        statuses.append(resp.response_status)
        if resp.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL:
            assert resp.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    signed = statuses.count(ocsp.OCSPResponseStatus.SUCCESSFUL)
    assert 3 <= signed <= 4 and statuses.count(ocsp.OCSPResponseStatus.TRY_LATER) == 12 - signed
    # The CA's own certificates are still answered, from the pre-produced responses.
    good = ocsp.load_der_ocsp_response(svc.respond(request(pki.certs["good"], pki.ca)).body)
    assert good.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert good.certificate_status is ocsp.OCSPCertStatus.GOOD


# ---- review items 3, 4 and 25: budgets, a refresher that fails, listening at once --------------

def test_two_made_up_cert_ids_take_from_the_same_budget(pki: Pki, service: OcspService) -> None:
    """One token per live signature whatever the request holds: 2 CertIDs (or a made-up one next
    to a real one) are no way around the budget any more."""
    svc = OcspService(service.store, service.responders.values(), unknown_per_second=3)
    statuses = []
    for i in range(12):
        ids = [cert_id(pki.ca, int.from_bytes(os.urandom(15), "big")) for _ in range(2)]
        if i % 3 == 0:
            ids[0] = cert_id(pki.ca, pki.certs["good"].serial_number)
        resp = ocsp.load_der_ocsp_response(svc.respond(multi_request(ids, os.urandom(16))).body)
        statuses.append(resp.response_status)
    signed = statuses.count(ocsp.OCSPResponseStatus.SUCCESSFUL)
    assert 3 <= signed <= 4 and statuses.count(ocsp.OCSPResponseStatus.TRY_LATER) == 12 - signed
    # Several certificates the CA did issue are signed without touching the budget.
    both = [cert_id(pki.ca, pki.certs["good"].serial_number), cert_id(pki.ca, pki.certs["good2"].serial_number)]
    for _ in range(5):
        resp = ocsp.load_der_ocsp_response(svc.respond(multi_request(both, os.urandom(16))).body)
        assert resp.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL


def test_a_response_older_than_the_status_is_never_served(pki: Pki) -> None:
    """The refresher did not re-sign after a revocation (it keeps failing, or is stopped): the
    worker sees that the pre-produced response predates the change and answers from the store."""
    home = _copy(pki, "ws-stale")
    ws = Workspace.open(home)
    try:
        ws.prepare_ocsp(["gica1"])
        svc = ws.ocsp_service(["gica1"], renew_responders=False)
        first = svc.respond(request(pki.certs["good2"], pki.ca))
        assert first.cacheable and ocsp.load_der_ocsp_response(first.body).certificate_status is ocsp.OCSPCertStatus.GOOD
        ws.revoke(pki.certs["good2"].serial_number, "keyCompromise")  # and no refresher runs
        after = svc.respond(request(pki.certs["good2"], pki.ca))
        resp = ocsp.load_der_ocsp_response(after.body)
        assert resp.certificate_status is ocsp.OCSPCertStatus.REVOKED and not after.cacheable
        assert svc.stale_answered == 1
        svc.close()
    finally:
        ws.close()


def _refresher_pid(server: Server, home: Path) -> int:
    """The refresher: the child of the supervisor whose heartbeat is in the store (the pid is not
    published on /health, which faces the public)."""
    db = sqlite3.connect(home / "iranpki.sqlite3")
    try:
        (value,) = db.execute("SELECT value FROM meta WHERE key LIKE 'service.ocsp.refresher.%'").fetchone()
    finally:
        db.close()
    pid = int(json.loads(value)["pid"])
    assert pid in server.children()
    return pid


def test_a_stopped_refresher_is_reported_and_revocations_still_show(pki: Pki) -> None:
    home = _copy(pki, "ws-health")
    ws = Workspace.open(home)
    try:  # a certificate of its own: the module's others may be revoked by earlier tests
        fresh = ws.open_ca("gica1").issue("ssl-server", IssueRequest(
            parse_subject(SUBJECT), ec.generate_private_key(ec.SECP256R1()).public_key(),
            dns=["health.example.ir"])).certificate
    finally:
        ws.close()
    server = Server(["--home", str(home), "--ca", "gica1", "--workers", "1", "--refresher-silence", "2"],
                    pki.env).start()
    try:
        status, report = server.health()
        assert status == 200 and report["status"] == "ok", report
        refresher = _refresher_pid(server, home)
        os.kill(refresher, signal.SIGSTOP)  # alive but silent: the supervisor does not restart it
        try:
            out = subprocess.run([IRANPKI, "cert", "revoke", f"{fresh.serial_number:x}", "--reason",
                                  "superseded", "--home", str(home)], capture_output=True, text=True,
                                 env=pki.env, timeout=60)
            assert out.returncode == 0, out.stderr
            answer = post(server.port, request(fresh, pki.ca)).ocsp
            assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
            deadline = time.monotonic() + 30
            while (health := server.health())[0] == 200:
                assert time.monotonic() < deadline, health
                time.sleep(0.2)
            status, report = health
            assert status == 503 and report["status"] == "degraded"
            assert "silent" in report["problems"][0] and report["changes_not_yet_re_signed"] >= 1
            assert report["worker"]["stale_answered_live"] >= 1
        finally:
            os.kill(refresher, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while server.health()[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        assert server.stop() == 0


def test_the_responder_listens_before_its_responses_are_prepared(pki: Pki) -> None:
    """At national scale the first pass is millions of signatures: the workers listen at once and
    sign what is not ready. Shown deterministically: the store's write lock is held by another
    process, so the refresher cannot store one response, and the responder answers anyway."""
    home = _copy(pki, "ws-lazy")
    db = sqlite3.connect(home / "iranpki.sqlite3", isolation_level=None, timeout=60)
    db.execute("DELETE FROM ocsp_responses")
    db.execute("DELETE FROM meta WHERE key LIKE 'service.%'")
    db.execute("BEGIN IMMEDIATE")  # held: nothing can be written until it ends
    server = None
    try:
        server = Server(["--home", str(home), "--ca", "gica1", "--workers", "1"], pki.env).start(prepared=False)
        answer = post(server.port, request(pki.certs["good"], pki.ca))
        assert answer.ocsp.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert "no-store" in answer.headers["cache-control"]  # signed for the request, not pre-produced
        assert post(server.port, request(pki.certs["revoked"], pki.ca)).ocsp.certificate_status is \
            ocsp.OCSPCertStatus.REVOKED
        assert db.execute("SELECT count(*) FROM ocsp_responses").fetchone()[0] == 0
        db.execute("ROLLBACK")
        deadline = time.monotonic() + START_TIMEOUT
        while not (server.health()[1].get("refresher") or {}).get("first_pass_done"):
            assert time.monotonic() < deadline, "\n".join(server.lines)
            time.sleep(0.1)
        # A SHA-256 CertID: the SHA-1 request above may still be in the worker's cache for a moment.
        answer = post(server.port, request(pki.certs["good"], pki.ca, hashes.SHA256()))
        assert "max-age" in answer.headers["cache-control"], answer.headers
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()
        if server is not None:
            assert server.stop() == 0


def test_one_client_cannot_hold_every_connection(pki: Pki, served: Server) -> None:
    """Idle connections from one address are capped per worker; another address is answered."""
    home = _copy(pki, "ws-conns")
    server = Server(["--home", str(home), "--ca", "gica1", "--workers", "1", "--timeout", "60",
                     "--max-client-connections", "20"], pki.env).start()
    socks: list[socket.socket] = []
    try:
        for _ in range(60):
            socks.append(socket.create_connection((HOST, server.port), timeout=10))
        closed: set[int] = set()
        deadline = time.monotonic() + 20
        while len(closed) < 40 and time.monotonic() < deadline:
            import select

            readable, _, _ = select.select([s for i, s in enumerate(socks) if i not in closed], [], [], 0.5)
            for s in readable:
                if s.recv(1) == b"":
                    closed.add(socks.index(s))
        assert len(closed) == 40, len(closed)  # 20 held, the rest refused at once
        # Another client address (127.0.0.2 is this machine too) is answered meanwhile.
        other = socket.socket()
        other.bind(("127.0.0.2", 0))
        other.settimeout(10)
        other.connect((HOST, server.port))
        body = request(pki.certs["good"], pki.ca)
        other.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
                      b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        reply = b""
        while chunk := other.recv(65536):
            reply += chunk
        other.close()
        assert reply.startswith(b"HTTP/1.1 200 OK")
        resp = ocsp.load_der_ocsp_response(reply.split(b"\r\n\r\n", 1)[1])
        assert resp.certificate_status is ocsp.OCSPCertStatus.GOOD
    finally:
        for s in socks:
            s.close()
        assert server.stop() == 0

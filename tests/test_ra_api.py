"""The RA's JSON API over HTTPS (issue 15, first slice): `iranpki ra serve` on 127.0.0.1 with a
certificate our hierarchy issued; an applicant registers and looks the request up with the
tracking code; a bad field, a guessed code and a missing client certificate each get a JSON
error; an officer authenticated by the ra-officer certificate on the token sees the office's
queue and approves; the OpenAPI 3.1 document served is the one committed in docs/."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iranpki.keys import KeySpec, SecretSource
from iranpki.workspace import Workspace

from .conftest import REPO, ROOT_SUBJECT, start_listening

IRANPKI = str(Path(sys.executable).parent / "iranpki")
ROOT = Path(__file__).resolve().parent.parent
ALI = {"national_code": "0499370899", "given_name": "علی", "surname": "محمدی"}
ALI_SUBJECT = "C=IR,SN=محمدی,GN=علی,serialNumber=0499370899,CN=علی محمدی"
OFFICER_SUBJECT = ("C=IR,O=دفتر پیشخوان تهران,OU=THR-01,title=Registration Officer,SN=احمدی,GN=رضا,"
                   "serialNumber=0012345679,CN=رضا احمدی")


def _pem(key) -> bytes:  # noqa: ANN001
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _officer_certificate(ws: Workspace, secret: SecretSource, base: Path, name: str, **issue: object) -> bytes:
    """An ra-officer certificate from gica1 for a fresh key; both written to BASE/NAME.pem and .key."""
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    issued = ws.issue("gica1", "ra-officer", public_key=pub, subject=OFFICER_SUBJECT, secret=secret, **issue)
    (base / f"{name}.pem").write_bytes(issued.pem)
    (base / f"{name}.key").write_bytes(key.private_bytes(  # encrypted, as iranpki keeps every key file
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(os.environ["IRANPKI_KEY_PASSPHRASE"].encode())))
    return issued.record.certificate


@pytest.fixture(scope="module")
def server(softhsm: dict, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from datetime import timedelta

    from iranpki.clock import FixedClock, SystemClock

    base = tmp_path_factory.mktemp("ra-api")
    home = base / "ws"
    os.environ["IRANPKI_KEY_PASSPHRASE"] = "a passphrase long enough"
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    a_month_ago = FixedClock(SystemClock().now() - timedelta(days=30))
    Workspace.init(home, repository_url=REPO)
    ws = Workspace.open(home, clock=a_month_ago)  # the hierarchy a month old, for an officer's expired certificate
    for label, spec in (("root", "p384"), ("gica1", "p256"), ("gica1tls", "p256")):
        ws.generate_key(KeySpec.parse(spec), label=label, secret=secret)
    ws.create_root("root", "root", ROOT_SUBJECT, secret=secret)
    ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=GICA,CN=GICA Level 1 (api)", secret=secret,
                           parent_secret=secret, purpose="signing")
    ws.create_intermediate("gica1tls", "root", 1, "gica1tls", "C=IR,O=GICA,CN=GICA Level 1 TLS (api)", secret=secret,
                           parent_secret=secret, purpose="tls")
    expired = _officer_certificate(ws, secret, base, "e1", validity_days=1)
    ws.close()
    ws = Workspace.open(home)
    # The server's TLS certificate (ssl-server, for ra.test.ir) and the officers' client certificates (ra-officer).
    tls_key = ec.generate_private_key(ec.SECP256R1())
    pub = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    tls = ws.issue("gica1tls", "ssl-server", public_key=tls_key.public_key().public_bytes(*pub),
                   subject="C=IR,ST=Tehran,L=Tehran,O=GICA", dns=["ra.test.ir"], secret=secret)
    certificates = {name: _officer_certificate(ws, secret, base, name) for name in ("a1", "a2", "p1")}
    certificates["e1"] = expired
    chain = {name: ws.store.get_ca(name).certificate for name in ("root", "gica1", "gica1tls")}
    from cryptography import x509

    pem = {n: x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM) for n, d in chain.items()}
    (base / "server.pem").write_bytes(tls.pem + pem["gica1tls"])
    (base / "server.key").write_bytes(_pem(tls_key))
    (base / "server.key").chmod(0o600)
    (base / "trust.pem").write_bytes(pem["root"] + pem["gica1tls"])
    (base / "client-cas.pem").write_bytes(pem["gica1"] + pem["root"])
    (base / "root.pem").write_bytes(pem["root"])
    (base / "gica1.pem").write_bytes(pem["gica1"])
    for name in ("a1",):
        (base / "officer.pem").write_bytes((base / f"{name}.pem").read_bytes())
        (base / "officer.key").write_bytes((base / f"{name}.key").read_bytes())
    ra = ws.registration()
    from iranpki.ra import Actor

    operator = Actor("operator", "test")
    ra.create_office("THR-01", "دفتر پیشخوان تهران", "Tehran", ["gica1"], operator)
    for name, roles in (("p1", ["proofing"]), ("a1", ["approving"]), ("a2", ["approving"]),
                        ("e1", ["proofing", "approving"])):
        ra.enrol_officer(name, "THR-01", f"Officer {name}", roles, operator, certificate=certificates[name])
    _approve_softhsm(ws, secret, base)
    ws.close()
    env = {**os.environ, "IRANPKI_HOME": str(home)}
    proc, port, lines = start_listening([IRANPKI, "ra", "serve", "--home", str(home), "--port", "0", "--certificate",
                                   str(base / "server.pem"), "--key", str(base / "server.key"), "--client-ca",
                                   str(base / "client-cas.pem"), "--threads", "4"], env, "RA API", host="127.0.0.1")
    try:
        yield {"base": base, "home": home, "port": port, "lines": lines, "softhsm": softhsm}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _approve_softhsm(ws: Workspace, secret: SecretSource, base: Path) -> None:
    """The lab's approval of the SoftHSM v2 model (signed by the lab's organisational seal), recorded."""
    from iranpki.conformance.attestation import approve
    from iranpki.keys import SoftwareSigner

    from .samples import SUBJECTS
    from .test_conformance_reports import sample_report

    lab_key = ec.generate_private_key(ec.SECP256R1())
    lab = ws.issue("gica1", "organisational-seal", subject=SUBJECTS["organisational-seal"], secret=secret,
                   public_key=lab_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    module = base / "libsofthsm2.so"
    module.write_bytes(b"\x7fELF module")
    attestation = approve(sample_report(module).to_json().encode(), SoftwareSigner(lab_key), lab.pem,
                          [(base / "gica1.pem").read_bytes()], valid_days=365)
    from iranpki.ra import Actor

    ws.registration().record_device_approval(attestation, Actor("operator", "test"),
                                             trust_roots=[(base / "root.pem").read_bytes()])


def call(server: dict, method: str, path: str, body: object = None, *, officer: bool = False,
         host: str | None = None) -> tuple[int, dict, dict]:
    context = ssl.create_default_context(cafile=str(server["base"] / "trust.pem"))
    if officer:
        context.load_cert_chain(str(server["base"] / "officer.pem"), str(server["base"] / "officer.key"),
                                password=os.environ["IRANPKI_KEY_PASSPHRASE"])
    conn = http.client.HTTPSConnection("127.0.0.1", server["port"], context=context, timeout=30)
    # The server's certificate names ra.test.ir (a certificate for 127.0.0.1 is refused by the
    # ssl-server profile): connect to 127.0.0.1 and check the name it was issued for.
    import socket

    conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", server["port"]), timeout=30),
                                    server_hostname="ra.test.ir")
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    if host is not None:
        headers["Host"] = host
    conn.request(method, f"/api/ra{path}", body=data, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), json.loads(payload) if payload else {}


def test_an_applicant_registers_and_follows_the_request(server: dict) -> None:
    status, _, made = call(server, "POST", "/requests", {
        "profile": "personal-signature", "level": 1, "ca": "gica1", "applicant": ALI, "subject": ALI_SUBJECT,
        "key_location": "desk-token"})
    assert status == 201, made
    code = made["tracking_code"]
    status, _, seen = call(server, "POST", "/requests/lookup", {"tracking_code": code, "second_factor": "0499370899"})
    assert status == 200 and seen["state"] == "submitted" and seen["id"] == made["request"]["id"]
    # A field of the wrong type, a rule: each a JSON error that names it.
    status, _, bad = call(server, "POST", "/requests", {"profile": "personal-signature", "level": "one"})
    assert status == 400 and bad["error"]["code"] == "invalid" and "level" in bad["error"]["message"]
    status, _, rule = call(server, "POST", "/requests", {
        "profile": "personal-signature", "level": 1, "ca": "gica1", "applicant": ALI, "subject": ALI_SUBJECT,
        "key_location": "hsm-in-the-basement"})
    assert status == 409 and rule["error"]["rule"] == "key-location"


def desk(server: dict, officer: str, *args: str, check: bool = True,
         code: str | None = None) -> dict | subprocess.CompletedProcess:
    """`iranpki ra desk ARGS --json` as officer OFFICER at the desk (the subscriber's PIN in the
    environment, as the officer's terminal would prompt for it)."""
    env = {**os.environ, "IRANPKI_RA_URL": f"https://127.0.0.1:{server['port']}",
           "IRANPKI_RA_CERT": str(server["base"] / f"{officer}.pem"), "IRANPKI_RA_KEY": str(server["base"] / f"{officer}.key"),
           "IRANPKI_RA_TRUST": str(server["base"] / "trust.pem"), "IRANPKI_RA_SERVER_NAME": "ra.test.ir",
           "SOFTHSM2_CONF": server["softhsm"]["conf"], **({"IRANPKI_RA_TRACKING_CODE": code} if code else {})}
    done = subprocess.run([IRANPKI, "ra", "desk", *args, "--json"], capture_output=True, text=True, env=env, timeout=120)
    if not check:
        return done
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _register(server: dict, **overrides: object) -> tuple[str, str]:
    status, _, made = call(server, "POST", "/requests", {
        "profile": "personal-signature", "level": 1, "ca": "gica1", "applicant": ALI, "subject": ALI_SUBJECT,
        "key_location": "desk-token", **overrides})
    assert status == 201, made
    return made["request"]["id"], made["tracking_code"]


def _proofed(server: dict, tmp_path: Path, location: str) -> str:
    _, code = _register(server, key_location=location)
    received = desk(server, "p1", "receive", "--national-code", "0499370899", code=code)
    scan = tmp_path / "id-card.png"
    scan.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    desk(server, "p1", "proof", received["id"], "--method", "in-person", "--document",
         f"national-id-card:0499370899:{scan}", "--statement", "national ID card checked against the applicant")
    return received["id"]


def test_the_desk_client_takes_a_personal_signature_from_the_tracking_code_to_the_token(
        server: dict, tmp_path: Path) -> None:
    """Register, visit, proof (the scan uploaded, the statement signed with the officer's key),
    key made on the SoftHSM2 token in the reader, approval by a second officer, issuance by the
    CA side, the certificate written onto the token, acceptance signed on the token, hand-over:
    each one `iranpki ra desk` command over HTTPS. openssl verifies the certificate, pkcs11-tool
    lists it on the token, and openssl cms verifies the officer's signed statement."""
    import base64
    import secrets

    request_id, code = _register(server)
    received = desk(server, "p1", "receive", "--national-code", "0499370899", code=code)
    assert received["id"] == request_id and received["state"] == "awaiting-proofing"
    assert received["applicant"]["national_code"] == "0499370899"
    assert [r["id"] for r in desk(server, "a1", "queue")] .count(request_id) == 1
    scan = tmp_path / "id-card.png"
    scan.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(256))
    statement = "national ID card 0499370899 checked against the applicant's face"
    desk(server, "p1", "proof", request_id, "--method", "in-person", "--document",
         f"national-id-card:0499370899:{scan}", "--statement", statement)
    label = f"ali-{secrets.token_hex(3)}"
    bound = desk(server, "p1", "key", request_id, "--token", "Test", "--label", label)
    assert bound["state"] == "awaiting-approval"
    refused = desk(server, "p1", "approve", request_id, check=False)  # the proofing officer may not approve
    assert refused.returncode != 0 and "approving role" in refused.stderr
    assert desk(server, "a1", "approve", request_id)["state"] == "approved"
    issued = subprocess.run([IRANPKI, "ra", "issue", "--home", str(server["home"]), "--json"], capture_output=True,
                            text=True, timeout=120)
    assert issued.returncode == 0 and json.loads(issued.stdout)[0]["request"] == request_id, issued.stderr
    cert = tmp_path / "ali.pem"
    desk(server, "p1", "certificate", request_id, "--token", "Test", "--label", label, "--out", str(cert))
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(server["base"] / "root.pem"), "-untrusted",
                               str(server["base"] / "gica1.pem"), str(cert)], capture_output=True, text=True)
    assert verified.returncode == 0 and ": OK" in verified.stdout, verified.stdout + verified.stderr
    listed = subprocess.run(["pkcs11-tool", "--module", server["softhsm"]["module"], "--token-label", "Test",
                             "--list-objects", "--type", "cert"], capture_output=True, text=True)
    assert f"label:      {label}" in listed.stdout, listed.stdout + listed.stderr
    accepted = desk(server, "p1", "accept", request_id, "--national-code", "0499370899",
                    "--key", f"pkcs11:token=Test;object={label}", code=code)
    assert accepted["state"] == "accepted"
    replay = desk(server, "p1", "accept", request_id, "--national-code", "0499370899",
                  "--key", f"pkcs11:token=Test;object={label}", check=False, code=code)
    assert replay.returncode != 0 and "rule state" in replay.stderr
    handed = desk(server, "p1", "hand-over", request_id, "--token", "Test")
    assert handed["state"] == "accepted"
    # The officer's statement, as recorded, verifies with openssl against the officer's certificate.
    ws = Workspace.open(server["home"])
    record = ws.store.get_request(request_id)
    ws.close()
    assert record.proofing["handed_over"]["officer"] == "p1" and record.device["model"] == "SoftHSM v2"
    (tmp_path / "statement.p7s").write_bytes(base64.b64decode(record.proofing["statement_signature"]))
    (tmp_path / "statement.txt").write_text(statement, encoding="utf-8")
    checked = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                              str(tmp_path / "statement.p7s"), "-content", str(tmp_path / "statement.txt"),
                              "-CAfile", str(server["base"] / "client-cas.pem"), "-purpose", "any", "-out", os.devnull], capture_output=True, text=True)
    assert checked.returncode == 0 and "Verification successful" in checked.stderr, checked.stderr
    assert not [line for line in server["lines"] if "Traceback" in line]


def test_officers_whose_certificate_is_forged_or_expired_are_refused_at_tls(server: dict, tmp_path: Path) -> None:
    """A client certificate that the hierarchy did not issue, or one that expired: the TLS
    handshake fails and the desk client says so; without one, an office call gets a JSON 403."""
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    genuine = x509.load_pem_x509_certificate((server["base"] / "a1.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    forged = x509.CertificateBuilder(genuine.subject, genuine.issuer, key.public_key(), genuine.serial_number,
                                     now - timedelta(days=1), now + timedelta(days=30), list(genuine.extensions)
                                     ).sign(key, hashes.SHA256())
    (server["base"] / "forged.pem").write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    (server["base"] / "forged.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(os.environ["IRANPKI_KEY_PASSPHRASE"].encode())))
    for officer in ("forged", "e1"):
        refused = desk(server, officer, "queue", check=False)
        assert refused.returncode != 0 and "TLS with the RA" in refused.stderr, (officer, refused.stderr)
    status, _, answer = call(server, "GET", "/office/queue")
    assert status == 403 and answer["error"]["rule"] == "officer"
    assert not [line for line in server["lines"] if "Traceback" in line]


def test_an_oversized_upload_is_refused_before_it_is_read(server: dict, tmp_path: Path) -> None:
    from iranpki_cli.ra_client import ApiError, RaClient, Upload

    request_id = _register(server)[0]
    client = RaClient(f"https://127.0.0.1:{server['port']}", certificate=str(server["base"] / "p1.pem"),
                      key=str(server["base"] / "p1.key"), trust=str(server["base"] / "trust.pem"),
                      server_name="ra.test.ir", key_password=os.environ["IRANPKI_KEY_PASSPHRASE"])
    big = Upload("scan", "id.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * (25 * 1024 * 1024), "image/png")
    with pytest.raises(ApiError) as refused:
        client.call("POST", f"/office/requests/{request_id}/proof", form={"method": "in-person"}, files=[big])
    assert refused.value.status == 413 and refused.value.error["code"] == "too-large"
    with pytest.raises(ApiError) as refused:  # not JSON where JSON is expected
        client.call("POST", "/requests", form={"profile": "personal-signature"})
    assert refused.value.status == 400


def test_concurrent_approvals_over_the_api_exactly_one_wins(server: dict, tmp_path: Path) -> None:
    """Two approving officers approve the same level-1 request at the same moment: one wins, the
    other is told the request moved on; it is approved once."""
    import threading

    request_id = _proofed(server, tmp_path, "phone")
    desk(server, "p1", "key", request_id, "--csr", str(_csr(tmp_path)))  # the phone's CSR, brought to the desk
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def approve(officer: str) -> None:
        barrier.wait()
        results[officer] = desk(server, officer, "approve", request_id, check=False)

    threads = [threading.Thread(target=approve, args=(o,)) for o in ("a1", "a2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results.values())  # type: ignore[attr-defined]
    assert codes[0] == 0 and codes[1] != 0, results
    ws = Workspace.open(server["home"])
    record = ws.store.get_request(request_id)
    ws.close()
    assert record.state == "approved" and len(record.proofing["approvals"]) == 1


def _csr(tmp_path: Path) -> Path:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
                                                               ).sign(key, hashes.SHA256())
    path = tmp_path / "subscriber.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


def test_the_server_answers_for_the_names_in_its_certificate_and_in_json(server: dict) -> None:
    """Host ra.test.ir (the server certificate's name) is served; another Host, or a path
    outside the API, gets a JSON error, not Django's HTML page."""
    assert call(server, "GET", "/openapi.json", host="ra.test.ir")[0] == 200
    status, _, refused = call(server, "GET", "/openapi.json", host="intranet.example")
    assert status == 400 and refused["error"]["code"] == "bad-request"
    status, _, missing = call(server, "GET", "/../../admin/")
    assert status == 404 and missing["error"]["code"] == "not-found"


def test_a_client_that_connects_and_says_nothing_holds_the_others_briefly(server: dict) -> None:
    """cheroot shakes hands in its one accepting thread: a silent connection holds the next
    client only for the handshake's limit (2 s), not the connection timeout (10 s)."""
    import socket
    import time

    silent = socket.create_connection(("127.0.0.1", server["port"]))
    try:
        started = time.monotonic()
        assert call(server, "GET", "/openapi.json")[0] == 200
        assert time.monotonic() - started < 6
    finally:
        silent.close()


def test_the_openapi_document_is_served_and_committed(server: dict) -> None:
    status, _, document = call(server, "GET", "/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")
    committed = json.loads((ROOT / "docs" / "ra-openapi.json").read_text(encoding="utf-8"))
    assert document == committed, "docs/ra-openapi.json is stale: python -m iranpki_portals.openapi > docs/ra-openapi.json"
    assert {"/api/ra/requests", "/api/ra/requests/lookup", "/api/ra/office/queue"} <= set(document["paths"])


# Last: it spends this client address's lookup failures for the window.
def test_guessing_a_code_is_rate_limited(server: dict) -> None:
    status, _, made = call(server, "POST", "/requests", {
        "profile": "personal-signature", "level": 1, "ca": "gica1", "applicant": ALI, "subject": ALI_SUBJECT,
        "key_location": "desk-token"})
    code = made["tracking_code"]
    statuses = [call(server, "POST", "/requests/lookup", {"tracking_code": code, "second_factor": "0012345678"})[0]
                for _ in range(5)]
    status, headers, limited = call(server, "POST", "/requests/lookup", {"tracking_code": code,
                                                                          "second_factor": "0499370899"})
    assert statuses == [404] * 5 and status == 429 and limited["error"]["code"] == "rate-limited"
    assert headers["Retry-After"] == "900"

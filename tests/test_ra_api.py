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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    base = tmp_path_factory.mktemp("ra-api")
    home = base / "ws"
    os.environ["IRANPKI_KEY_PASSPHRASE"] = "a passphrase long enough"
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    ws = Workspace.init(home, repository_url=REPO)
    for label, spec in (("root", "p384"), ("gica1", "p256"), ("gica1tls", "p256")):
        ws.generate_key(KeySpec.parse(spec), label=label, secret=secret)
    ws.create_root("root", "root", ROOT_SUBJECT, secret=secret)
    ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=GICA,CN=GICA Level 1 (api)", secret=secret,
                           parent_secret=secret, purpose="signing")
    ws.create_intermediate("gica1tls", "root", 1, "gica1tls", "C=IR,O=GICA,CN=GICA Level 1 TLS (api)", secret=secret,
                           parent_secret=secret, purpose="tls")
    # The server's TLS certificate (ssl-server, 127.0.0.1) and an officer's client certificate (ra-officer).
    tls_key, officer_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    pub = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    tls = ws.issue("gica1tls", "ssl-server", public_key=tls_key.public_key().public_bytes(*pub),
                   subject="C=IR,ST=Tehran,L=Tehran,O=GICA", dns=["ra.test.ir"], secret=secret)
    officer = ws.issue("gica1", "ra-officer", public_key=officer_key.public_key().public_bytes(*pub),
                       subject=OFFICER_SUBJECT, secret=secret)
    chain = {name: ws.store.get_ca(name).certificate for name in ("root", "gica1", "gica1tls")}
    from cryptography import x509

    pem = {n: x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM) for n, d in chain.items()}
    (base / "server.pem").write_bytes(tls.pem + pem["gica1tls"])
    (base / "server.key").write_bytes(_pem(tls_key))
    (base / "server.key").chmod(0o600)
    (base / "trust.pem").write_bytes(pem["root"] + pem["gica1tls"])
    (base / "client-cas.pem").write_bytes(pem["gica1"] + pem["root"])
    (base / "officer.pem").write_bytes(officer.pem)
    (base / "officer.key").write_bytes(_pem(officer_key))
    ra = ws.registration()
    from iranpki.ra import Actor

    operator = Actor("operator", "test")
    ra.create_office("THR-01", "دفتر پیشخوان تهران", "Tehran", ["gica1"], operator)
    ra.enrol_officer("p1", "THR-01", "Reza", ["proofing"], operator)
    ra.enrol_officer("a1", "THR-01", "Reza Ahmadi", ["approving"], operator, certificate=officer.record.certificate)
    ws.close()
    env = {**os.environ, "IRANPKI_HOME": str(home)}
    proc, port, lines = start_listening([IRANPKI, "ra", "serve", "--home", str(home), "--port", "0", "--certificate",
                                   str(base / "server.pem"), "--key", str(base / "server.key"), "--client-ca",
                                   str(base / "client-cas.pem"), "--threads", "4"], env, "RA API", host="127.0.0.1")
    try:
        yield {"base": base, "home": home, "port": port, "lines": lines}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def call(server: dict, method: str, path: str, body: object = None, *, officer: bool = False) -> tuple[int, dict, dict]:
    context = ssl.create_default_context(cafile=str(server["base"] / "trust.pem"))
    if officer:
        context.load_cert_chain(str(server["base"] / "officer.pem"), str(server["base"] / "officer.key"))
    conn = http.client.HTTPSConnection("127.0.0.1", server["port"], context=context, timeout=30)
    # The server's certificate names ra.test.ir (a certificate for 127.0.0.1 is refused by the
    # ssl-server profile): connect to 127.0.0.1 and check the name it was issued for.
    import socket

    conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", server["port"]), timeout=30),
                                    server_hostname="ra.test.ir")
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    conn.request(method, f"/api/ra{path}", body=data, headers={"Content-Type": "application/json"} if data else {})
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


def test_officers_authenticate_with_their_token_certificate(server: dict) -> None:
    status, _, refused = call(server, "GET", "/office/queue")
    assert status == 403 and refused["error"]["rule"] == "officer"
    # A request at the office's desk, proofed and bound (the desk client's work, done here in process).
    ws = Workspace.open(server["home"])
    ra = ws.registration()
    reg = ra.register(profile="personal-signature", level=1, ca="gica1", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="phone")
    from iranpki.ra import Document

    request = ra.receive(ra.officer("p1"), reg.code, "0499370899")
    ra.proof(ra.officer("p1"), request.id, method="in-person",
             documents=[Document("national-id-card", "1", b"\x89PNG\r\n\x1a\n scan", "image/png")])
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
                                                               ).sign(key, hashes.SHA256())
    ra.bind_key(ra.officer("p1"), request.id, csr=csr.public_bytes(serialization.Encoding.DER))
    ws.close()
    status, _, queue = call(server, "GET", "/office/queue", officer=True)
    assert status == 200 and [r["id"] for r in queue if r["state"] == "awaiting-approval"] == [request.id]
    status, _, approved = call(server, "POST", f"/office/requests/{request.id}/approve", officer=True)
    assert status == 200 and approved["state"] == "approved"
    status, _, again = call(server, "POST", f"/office/requests/{request.id}/approve", officer=True)
    assert status == 409 and again["error"]["rule"] == "state"
    assert not [line for line in server["lines"] if "Traceback" in line]


def test_the_openapi_document_is_served_and_committed(server: dict) -> None:
    status, _, document = call(server, "GET", "/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")
    committed = json.loads((ROOT / "docs" / "ra-openapi.json").read_text(encoding="utf-8"))
    assert document == committed, "docs/ra-openapi.json is stale: python -m iranpki_portals.openapi > docs/ra-openapi.json"
    assert {"/api/ra/requests", "/api/ra/requests/lookup", "/api/ra/office/queue"} <= set(document["paths"])

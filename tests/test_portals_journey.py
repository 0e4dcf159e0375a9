"""The whole journey in a real browser (Debian's Chromium, driven by Playwright): an applicant
registers on the applicant portal and uploads a scan; an officer signs in to the office portal
with the client certificate of the token (mutual TLS) and a one-time code oathtool makes, receives
the applicant, proofs (the statement signed by openssl cms with the officer's key) ; a second
officer approves; the CA side issues (`iranpki ra issue`); the applicant downloads the PKCS#12 once
(openssl opens it), accepts the certificate with a signature openssl made, asks for its revocation
with a reason, signs that with the same key; the officer approves; the CA side revokes; the
applicant's list, the repository's status page and `openssl ocsp` all say revoked; the office's
records hold the issuance, the revocation, the evidence and the acceptance. Then bad input on
the forms: a replayed form, a wrong or reused one-time code, an oversized or mistyped scan, an
expired session, each with its message and nothing stored; and the laboratory's portal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iranpki.keys import KeySpec, SecretSource
from iranpki.workspace import Workspace

from .conftest import REPO, ROOT_SUBJECT, start_listening
from .test_portals import SHOTS, _serious

IRANPKI = str(Path(sys.executable).parent / "iranpki")
NATIONAL = "0499370899"
PASSPHRASE = "a passphrase long enough"
OFFICER_SUBJECT = ("C=IR,O=دفتر پیشخوان تهران,OU=THR-01,title=Registration Officer,SN=احمدی,GN=رضا,"
                   "serialNumber=0012345679,CN=رضا احمدی")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # a scan, as far as its first bytes tell


def _pem(cert: bytes) -> bytes:
    return x509.load_der_x509_certificate(cert).public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def portals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    import socket

    base = tmp_path_factory.mktemp("journey")
    home = base / "ws"
    os.environ["IRANPKI_KEY_PASSPHRASE"] = PASSPHRASE
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        ocsp_port = probe.getsockname()[1]
    ws = Workspace.init(home, repository_url=REPO, ocsp_url=f"http://127.0.0.1:{ocsp_port}")
    for label, spec in (("root", "p384"), ("gica1", "p256"), ("gica1tls", "p256")):
        ws.generate_key(KeySpec.parse(spec), label=label, secret=secret)
    ws.create_root("root", "root", ROOT_SUBJECT, secret=secret)
    ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=GICA,CN=GICA Level 1 (journey)", secret=secret,
                           parent_secret=secret, purpose="signing")
    ws.create_intermediate("gica1tls", "root", 1, "gica1tls", "C=IR,O=GICA,CN=GICA Level 1 TLS (journey)",
                           secret=secret, parent_secret=secret, purpose="tls")
    pub = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    tls_key = ec.generate_private_key(ec.SECP256R1())
    tls = ws.issue("gica1tls", "ssl-server", public_key=tls_key.public_key().public_bytes(*pub),
                   subject="C=IR,ST=Tehran,L=Tehran,O=GICA", dns=["ra.test.ir"], secret=secret)
    pem = {n: _pem(ws.store.get_ca(n).certificate) for n in ("root", "gica1", "gica1tls")}
    (base / "server.pem").write_bytes(tls.pem + pem["gica1tls"])
    (base / "server.key").write_bytes(tls_key.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
    (base / "client-cas.pem").write_bytes(pem["gica1"] + pem["root"])
    (base / "root.pem").write_bytes(pem["root"])
    (base / "gica1.pem").write_bytes(pem["gica1"])
    from iranpki.ra import Actor

    ra = ws.registration()
    operator = Actor("operator", "test")
    ra.create_office("THR-01", "دفتر پیشخوان تهران", "Tehran", ["gica1"], operator)
    secrets = {}
    for name, roles in (("p1", ["proofing"]), ("a1", ["approving"])):
        key = ec.generate_private_key(ec.SECP256R1())
        issued = ws.issue("gica1", "ra-officer", public_key=key.public_key().public_bytes(*pub),
                          subject=OFFICER_SUBJECT, secret=secret)
        (base / f"{name}.pem").write_bytes(issued.pem)
        (base / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
        ra.enrol_officer(name, "THR-01", f"Officer {name}", roles, operator, certificate=issued.record.certificate)
    ws.generate_crls("gica1", secret=secret)
    ws.close()
    # The one-time-code secrets, enrolled as the operator does (the URI goes to the officer's app).
    for name in ("p1", "a1"):
        done = subprocess.run([IRANPKI, "ra", "officer", "codes", name, "--home", str(home)], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        secrets[name] = re.search(r"secret=([A-Z2-7]+)", done.stdout).group(1)
    env = dict(os.environ)
    responder, _, _ = start_listening([IRANPKI, "ocsp", "serve", "--home", str(home), "--ca", "gica1", "--port",
                                       str(ocsp_port), "--workers", "1"], env, "OCSP responder")
    public, public_port, public_lines = start_listening(
        [IRANPKI, "portal", "serve", "--portal", "repository", "--portal", "applicant", "--home", str(home), "--port",
         "0", "--threads", "4"], env, "public portals")
    office, office_port, office_lines = start_listening(
        [IRANPKI, "portal", "serve", "--portal", "office", "--portal", "lab", "--home", str(home), "--port", "0",
         "--threads", "4", "--certificate", str(base / "server.pem"), "--key", str(base / "server.key"),
         "--client-ca", str(base / "client-cas.pem")], env, "office portal")
    try:
        yield {"base": base, "home": home, "public": f"http://127.0.0.1:{public_port}",
               "office": f"https://127.0.0.1:{office_port}", "ocsp": f"http://127.0.0.1:{ocsp_port}",
               "secrets": secrets, "lines": public_lines + office_lines}
    finally:
        for server in (office, public, responder):
            server.terminate()
            server.wait(timeout=30)


def one_time_code(secret: str, offset: int = 0) -> str:
    """The officer's authenticator, played by oathtool (RFC 6238, an implementation not ours)."""
    import time

    moment = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + offset))
    done = subprocess.run(["oathtool", "--totp", "-b", secret, "--now", moment + " UTC"], capture_output=True,
                          text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def officer(browser, portals: dict, name: str):  # noqa: ANN001, ANN201 - a Playwright page
    """A browser context holding officer NAME's client certificate, signed in."""
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900}, client_certificates=[
        {"origin": portals["office"], "certPath": str(portals["base"] / f"{name}.pem"),
         "keyPath": str(portals["base"] / f"{name}.key")}])
    page = context.new_page()
    page.goto(portals["office"] + "/office/sign-in")
    assert page.locator("#officer").inner_text() == name
    for attempt in range(3):  # a code used already in this 30-second step (by this test) waits for the next
        page.fill("#f-code", one_time_code(portals["secrets"][name], 30 * attempt))
        page.click("button[type=submit]")
        if page.url.rstrip("/").endswith("/office") or "/office/?" in page.url:
            return page
    raise AssertionError(page.locator("#sign-in-error").inner_text())


def issue(portals: dict) -> None:
    """The CA side, with the CA keys, outside any web process."""
    done = subprocess.run([IRANPKI, "ra", "issue", "--home", str(portals["home"]), "--json"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout


def openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(["openssl", *args], capture_output=True, input=data, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done


def _store(portals: dict):  # noqa: ANN202
    return Workspace.open(portals["home"])


def test_applicant_to_revoked_in_the_browser(portals: dict, browser) -> None:  # noqa: ANN001, PLR0915
    base = portals["base"]
    applicant = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True).new_page()
    # 1. The applicant registers (software key, level 1) and signs in with the code.
    applicant.goto(portals["public"] + "/applicant/register?profile=personal-signature&level=1")
    applicant.fill("#f-SN", "محمدی")
    applicant.fill("#f-GN", "علی")
    applicant.fill("#f-serialNumber", NATIONAL)
    applicant.fill("#f-CN", "علی محمدی")
    applicant.check("input[value=software-pkcs12]")
    applicant.click("button[type=submit]")
    code = applicant.locator("#tracking-code").inner_text()
    applicant.goto(portals["public"] + "/applicant/follow")
    applicant.fill("#f-code", code)
    applicant.fill("#f-national", NATIONAL)
    applicant.click("button[type=submit]")
    assert applicant.locator("[data-state]").get_attribute("data-state") == "submitted"
    # The national ID card's scan, uploaded before the visit.
    (base / "id-card.png").write_bytes(PNG)
    applicant.fill("#f-number", "0499370899-A")
    applicant.set_input_files("#f-scan", str(base / "id-card.png"))
    applicant.click("form[action^='/applicant/documents'] button")
    assert applicant.locator("#no-documents").count() == 0 and applicant.locator("#h-documents + table tbody tr").count() == 1
    assert _serious(applicant) == []
    applicant.screenshot(path=str(SHOTS / "portal-applicant-request.png"))

    # 2. The proofing officer signs in (token certificate + one-time code) and receives the applicant.
    p1 = officer(browser, portals, "p1")
    assert _serious(p1) == []
    p1.fill("#f-code", code)
    p1.fill("#f-national", NATIONAL)
    p1.click("form[action^='/office/receive'] button")
    assert p1.locator("[data-state]").get_attribute("data-state") == "awaiting-proofing"
    request_id = p1.url.split("/office/requests/")[1].split("?")[0]
    p1.fill("#f-number-national-id-card", "0499370899-A")
    p1.select_option("#f-use-national-id-card", index=1)
    statement = p1.locator("#statement").inner_text()
    (base / "statement.txt").write_bytes(statement.encode("utf-8"))
    openssl("cms", "-sign", "-binary", "-in", str(base / "statement.txt"), "-signer", str(base / "p1.pem"), "-inkey",
            str(base / "p1.key"), "-outform", "DER", "-out", str(base / "statement.p7s"))
    p1.set_input_files("#f-statement-signature", str(base / "statement.p7s"))
    assert _serious(p1) == []
    p1.screenshot(path=str(SHOTS / "portal-office-proofing.png"), full_page=True)
    p1.click("#record-proof")
    assert p1.locator("[data-state]").get_attribute("data-state") == "proofed", p1.locator("main").inner_text()

    # 3. The applicant sets the passphrase the software key is kept under.
    applicant.goto(portals["public"] + "/applicant/request")
    applicant.fill("#f-passphrase", "short")
    applicant.fill("#f-passphrase-again", "short")
    applicant.click("form[action^='/applicant/key'] button")
    assert applicant.locator("#f-passphrase").get_attribute("aria-invalid") == "true"
    applicant.fill("#f-passphrase", PASSPHRASE)
    applicant.fill("#f-passphrase-again", PASSPHRASE)
    applicant.click("form[action^='/applicant/key'] button")
    assert applicant.locator("[data-state]").get_attribute("data-state") == "awaiting-approval"

    # 4. The proofing officer may not approve what they proofed; a second officer approves.
    p1.goto(portals["office"] + f"/office/requests/{request_id}")
    p1.click("#approve")
    assert p1.locator("#form-error").count() == 1
    assert p1.locator("[data-state]").get_attribute("data-state") == "awaiting-approval"
    a1 = officer(browser, portals, "a1")
    assert a1.locator(f"a[href^='/office/requests/{request_id}']").count() == 1
    a1.screenshot(path=str(SHOTS / "portal-office-queue.png"))
    a1.click(f"a[href^='/office/requests/{request_id}']")
    a1.click("#approve")
    assert a1.locator("[data-state]").get_attribute("data-state") == "approved"

    # 5. The CA side issues; the applicant downloads the key once, and accepts the certificate.
    issue(portals)
    applicant.goto(portals["public"] + "/applicant/request")
    assert applicant.locator("[data-state]").get_attribute("data-state") == "issued"
    applicant.fill("#f-p12-passphrase", PASSPHRASE)
    with applicant.expect_download() as got:
        applicant.click("#download")
    got.value.save_as(str(base / "mine.p12"))
    key = openssl("pkcs12", "-in", str(base / "mine.p12"), "-nocerts", "-nodes", "-passin", f"pass:{PASSPHRASE}").stdout
    cert = openssl("pkcs12", "-in", str(base / "mine.p12"), "-clcerts", "-nokeys", "-passin",
                   f"pass:{PASSPHRASE}").stdout
    (base / "mine.key").write_bytes(key)
    (base / "mine.pem").write_bytes(cert)
    assert "0499370899" in openssl("x509", "-in", str(base / "mine.pem"), "-noout", "-subject").stdout.decode()
    applicant.goto(portals["public"] + "/applicant/request")
    assert applicant.locator("#download").count() == 0  # once only: the key is gone from the store
    text = applicant.locator("#acceptance-text").inner_text()
    signature = openssl("dgst", "-sha256", "-sign", str(base / "mine.key"), data=text.encode("utf-8")).stdout
    (base / "acceptance.sig").write_bytes(signature)
    applicant.set_input_files("#f-signature", str(base / "acceptance.sig"))
    applicant.click("#accept")
    assert applicant.locator("[data-state]").get_attribute("data-state") == "accepted"
    with applicant.expect_download() as got:
        applicant.click("#certificate")
    got.value.save_as(str(base / "downloaded.pem"))
    assert (base / "downloaded.pem").read_bytes().strip() == cert[cert.index(b"-----BEGIN"):].strip()

    # 6. The applicant asks for revocation (key compromise) and signs it with the same key.
    applicant.goto(portals["public"] + "/applicant/certificates")
    serial = applicant.locator("[data-serial]").first.get_attribute("data-serial")
    assert applicant.locator(f"[data-serial='{serial}']").get_attribute("data-status") == "valid"
    assert _serious(applicant) == []
    applicant.select_option(f"#r-{serial}", "keyCompromise")
    applicant.screenshot(path=str(SHOTS / "portal-applicant-certificates.png"))
    applicant.click(f"#r-{serial} ~ button")
    assert len(applicant.locator("#tracking-code").inner_text().replace("-", "")) >= 12
    applicant.click("#to-request")
    change = applicant.locator("#change-text").inner_text()
    (base / "change.sig").write_bytes(openssl("dgst", "-sha256", "-sign", str(base / "mine.key"),
                                              data=change.encode("utf-8")).stdout)
    applicant.set_input_files("#f-change-signature", str(base / "change.sig"))
    applicant.click("#send-change")
    assert applicant.locator("[data-state]").get_attribute("data-state") == "awaiting-approval"

    # 7. An officer approves the revocation; the CA side revokes.
    a1.goto(portals["office"] + "/office/")
    a1.locator("#queue a").last.click()
    a1.click("#approve")
    assert a1.locator("[data-state]").get_attribute("data-state") == "approved"
    issue(portals)
    applicant.goto(portals["public"] + "/applicant/request")
    assert applicant.locator("[data-state]").get_attribute("data-state") == "issued"  # carried out
    applicant.goto(portals["public"] + "/applicant/certificates")
    assert applicant.locator(f"[data-serial='{serial}']").get_attribute("data-status") == "revoked"

    # 8. The repository's status page and openssl ocsp say revoked.
    page = browser.new_page()
    page.goto(portals["public"] + f"/status?serial={serial}")
    assert page.locator("[data-status]").get_attribute("data-status") == "revoked"
    assert "keyCompromise" in page.locator("#result").inner_text()
    asked = subprocess.run(["openssl", "ocsp", "-issuer", str(base / "gica1.pem"), "-cert", str(base / "mine.pem"),
                            "-url", portals["ocsp"], "-CAfile", str(base / "root.pem")], capture_output=True, text=True,
                           timeout=30)
    assert "Response verify OK" in asked.stderr + asked.stdout and ": revoked" in asked.stdout, asked.stdout

    # 9. The office's records, as an inspector asks for them, and as CSV.
    p1.goto(portals["office"] + "/office/records")
    for section, count in (("issuances", 1), ("revocations", 1), ("evidence", 1), ("acceptances", 1)):
        assert p1.locator(f"#{section} tbody tr").count() == count, section
    assert serial in p1.locator("#issuances").inner_text() and "keyCompromise" in p1.locator("#revocations").inner_text()
    assert _serious(p1) == []
    p1.screenshot(path=str(SHOTS / "portal-office-records.png"), full_page=True)
    csv = p1.context.request.get(portals["office"] + "/office/records?csv=evidence").text()
    assert csv.splitlines()[0].startswith("request,document") and request_id in csv
    for context in {applicant.context, p1.context, a1.context}:
        context.close()
    page.close()
    assert not [line for line in portals["lines"] if "Traceback" in line]

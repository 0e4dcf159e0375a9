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
def portals(softhsm, recovery_token: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
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
    for name, roles in (("p1", ["proofing"]), ("a1", ["approving"]), ("a2", ["approving"])):
        key = ec.generate_private_key(ec.SECP256R1())
        issued = ws.issue("gica1", "ra-officer", public_key=key.public_key().public_bytes(*pub),
                          subject=OFFICER_SUBJECT, secret=secret)
        (base / f"{name}.pem").write_bytes(issued.pem)
        (base / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
        ra.enrol_officer(name, "THR-01", f"Officer {name}", roles, operator, certificate=issued.record.certificate)
    # The laboratory's seal (the portal takes reports signed by it only) and another organisation's.
    from .samples import SUBJECTS

    for name in ("lab", "stranger"):
        key = ec.generate_private_key(ec.SECP256R1())
        seal = ws.issue("gica1", "organisational-seal", subject=SUBJECTS["organisational-seal"], secret=secret,
                        public_key=key.public_key().public_bytes(*pub))
        (base / f"{name}.pem").write_bytes(seal.pem)
        (base / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
    ws.generate_crls("gica1", secret=secret)
    # The key-recovery key on the token, to which the RA archives encryption keys.
    ws.create_recovery_key(recovery_token, f"journey-krk-{os.urandom(3).hex()}")
    ws.close()
    # The one-time-code secrets, enrolled as the operator does (the URI goes to the officer's app).
    for name in ("p1", "a1", "a2"):
        done = subprocess.run([IRANPKI, "ra", "officer", "codes", name, "--show", "--home", str(home)], capture_output=True,
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
         "--client-ca", str(base / "client-cas.pem"), "--lab-certificate", str(base / "lab.pem")], env,
        "office portal")
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
    import time

    used = _USED.setdefault(name, [])
    for _ in range(4):
        # A code is taken once: one this module used already for NAME is not typed again; the
        # next step's code is (the server takes the step after now), else the next step is awaited.
        code = next((c for c in (one_time_code(portals["secrets"][name], 0), one_time_code(portals["secrets"][name], 30))
                     if c not in used), None)
        if code is None:
            time.sleep(30 - time.time() % 30 + 0.5)
            continue
        used.append(code)
        page.fill("#f-code", code)
        page.click("button[type=submit]")
        if "/office/sign-in" not in page.url:
            return page
    raise AssertionError(page.locator("#sign-in-error").inner_text())


_USED: dict[str, list[str]] = {}


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
    applicant.goto(portals["public"] + "/applicant/register?profile=smime-encryption&level=1&lang=en")
    assert _serious(applicant) == []
    applicant.screenshot(path=str(SHOTS / "portal-applicant-register-en.png"), full_page=True)
    applicant.goto(portals["public"] + "/applicant/register?profile=personal-signature&level=1")
    applicant.fill("#f-SN", "محمدی")
    applicant.fill("#f-GN", "علی")
    applicant.fill("#f-serialNumber", NATIONAL)
    applicant.fill("#f-CN", "علی محمدی")
    applicant.check("input[value=software-pkcs12]")
    applicant.check("#f-publish")  # the subscriber agrees to the directory
    applicant.screenshot(path=str(SHOTS / "portal-applicant-register.png"), full_page=True)
    applicant.click("button[type=submit]")
    code = applicant.locator("#tracking-code").inner_text()
    applicant.goto(portals["public"] + "/applicant/follow")
    applicant.fill("#f-code", code)
    applicant.fill("#f-national", NATIONAL)
    applicant.click("button[type=submit]")
    assert applicant.locator("[data-state]").get_attribute("data-state") == "submitted"
    ws = _store(portals)
    try:  # the consent is the request's, and so reaches the CA side (IssueRequest.publish)
        [mine] = [r for r in ws.store.list_requests(second_factor=NATIONAL) if r.state == "submitted"]
        assert mine.applicant.get("publish_consent") == "yes"
    finally:
        ws.close()
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


def _proofed_at_the_desk(browser, portals: dict, code: str, mark: str, state: str):  # noqa: ANN001, ANN202
    """Officer p1 receives the applicant of ``code`` and records the proofing: the ID card's scan
    (number and scan marked ``mark``), the statement signed by openssl with p1's key. The page,
    its request now in ``state``."""
    base = portals["base"]
    p1 = officer(browser, portals, "p1")
    p1.fill("#f-code", code)
    p1.fill("#f-national", NATIONAL)
    p1.click("form[action^='/office/receive'] button")
    p1.fill("#f-number-national-id-card", f"0499370899-{mark}")
    p1.set_input_files("#f-scan-national-id-card",
                       {"name": "id.png", "mimeType": "image/png", "buffer": PNG + mark.encode()})
    (base / f"statement-{mark}.txt").write_bytes(p1.locator("#statement").inner_text().encode("utf-8"))
    openssl("cms", "-sign", "-binary", "-in", str(base / f"statement-{mark}.txt"), "-signer", str(base / "p1.pem"),
            "-inkey", str(base / "p1.key"), "-outform", "PEM", "-out", str(base / f"statement-{mark}.pem"))
    p1.set_input_files("#f-statement-signature", str(base / f"statement-{mark}.pem"))
    p1.click("#record-proof")
    assert p1.locator("[data-state]").get_attribute("data-state") == state, p1.locator("main").inner_text()
    return p1


def _registered(portals: dict, key_location: str = "desk-token") -> tuple[str, str]:
    ws = _store(portals)
    try:
        made = ws.registration().register(profile="personal-signature", level=1, ca="gica1",
                                          applicant={"national_code": NATIONAL, "given_name": "علی", "surname": "محمدی"},
                                          subject=f"C=IR,SN=محمدی,GN=علی,serialNumber={NATIONAL},CN=علی محمدی",
                                          key_location=key_location)
        return made.request.id, made.code
    finally:
        ws.close()


def _evidence(portals: dict, request_id: str) -> int:
    ws = _store(portals)
    try:
        return len(ws.store.list_evidence(request_id))
    finally:
        ws.close()


def _signed_in_applicant(browser, url: str, code: str):  # noqa: ANN001, ANN202
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(url + "/applicant/follow")
    page.fill("#f-code", code)
    page.fill("#f-national", NATIONAL.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")))  # a Persian keyboard
    page.click("button[type=submit]")
    assert page.locator("[data-state]").count() == 1
    return page


def test_bad_input_on_the_applicants_forms(portals: dict, browser) -> None:  # noqa: ANN001
    """An oversized scan, a file that is not a scan, a form posted twice, a body past the server's
    limit: each gets its message (in the page's language) and nothing is stored."""
    base = portals["base"]
    request_id, code = _registered(portals)
    page = _signed_in_applicant(browser, portals["public"], code)
    (base / "big.png").write_bytes(PNG + b"\x00" * (5 * 1024 * 1024))
    (base / "note.png").write_bytes(b"<html><script>alert(1)</script></html>")
    for name, message in (("big.png", "بزرگ‌تر از اندازهٔ مجاز"), ("note.png", "JPEG، PNG یا PDF نیست")):
        page.fill("#f-number", "A-1")
        page.set_input_files("#f-scan", str(base / name))
        page.click("form[action^='/applicant/documents'] button")
        assert message in page.locator("#form-error").inner_text()
        assert page.locator("#f-scan").get_attribute("aria-invalid") == "true"
    assert _evidence(portals, request_id) == 0
    # The same form posted twice (its one-time number spent by the first): refused, stored once.
    token = page.locator("form[action^='/applicant/documents'] input[name=once]").get_attribute("value")
    csrf = page.locator("form[action^='/applicant/documents'] input[name=csrfmiddlewaretoken]").get_attribute("value")
    form = {"csrfmiddlewaretoken": csrf, "once": token, "kind": "national-id-card", "number": "A-1",
            "scan": {"name": "id.png", "mimeType": "image/png", "buffer": PNG}}
    first = page.context.request.post(portals["public"] + "/applicant/documents", multipart=form, max_redirects=0)
    again = page.context.request.post(portals["public"] + "/applicant/documents", multipart=form, max_redirects=0)
    assert first.status == 303 and again.status == 409 and "پیش‌تر فرستاده شده" in again.text()
    assert _evidence(portals, request_id) == 1
    # A body past the server's limit is refused before it is read, with a message a person reads.
    import http.client

    conn = http.client.HTTPConnection(portals["public"].removeprefix("http://"), timeout=30)
    conn.putrequest("POST", "/applicant/documents?lang=en")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(25 << 20))  # announced; the server answers before any of it is sent
    conn.endheaders()
    huge = conn.getresponse()
    assert huge.status == 413 and "nothing was stored" in huge.read().decode() and \
        huge.getheader("Content-Type").startswith("text/plain")
    conn.close()
    assert _evidence(portals, request_id) == 1
    # Registering with someone's national code shows none of their certificates (the journey
    # issued one to this code): certificates are listed once the identity was proved.
    page.goto(portals["public"] + "/applicant/certificates")
    assert page.locator("[data-serial]").count() == 0 and page.locator("main").inner_text().count("احراز") == 1
    page.context.close()


def test_officer_sign_in_refuses_wrong_and_reused_codes_and_binds_the_session(portals: dict, browser) -> None:  # noqa: ANN001
    """A wrong one-time code and one used already are refused; a browser with no client
    certificate is told to use the token; a session cookie taken to another officer's
    certificate is no session; malformed addresses and dates get a message, not a fault; an
    officer without the proofing role cannot receive an applicant."""
    anonymous = browser.new_context(ignore_https_errors=True).new_page()
    response = anonymous.goto(portals["office"] + "/office/sign-in")
    assert response.status == 403 and "گواهی" in anonymous.locator("#sign-in-error").inner_text()
    assert _serious(anonymous) == []
    anonymous.goto(portals["office"] + "/office/")
    assert "/office/sign-in" in anonymous.url
    context = browser.new_context(ignore_https_errors=True, client_certificates=[
        {"origin": portals["office"], "certPath": str(portals["base"] / "a1.pem"),
         "keyPath": str(portals["base"] / "a1.key")}])
    page = context.new_page()
    page.goto(portals["office"] + "/office/sign-in?lang=en")
    page.fill("#f-code", "000000" if one_time_code(portals["secrets"]["a1"]) != "000000" else "111111")
    page.click("button[type=submit]")
    assert "not the one your authenticator shows" in page.locator("#sign-in-error").inner_text()
    assert page.locator("#f-code").get_attribute("aria-invalid") == "true" and _serious(page) == []
    page.screenshot(path=str(SHOTS / "portal-office-sign-in.png"))
    signed = officer(browser, portals, "a1")
    used = [c for c in signed.context.cookies() if c["name"] == "sessionid"]
    page.fill("#f-code", _USED["a1"][-1])  # the code the sign-in above used, still in its step
    page.click("button[type=submit]")
    assert "used already" in page.locator("#sign-in-error").inner_text()
    # a1's session cookie in p1's browser: p1's certificate is not the one the session was made with.
    other = browser.new_context(ignore_https_errors=True, client_certificates=[
        {"origin": portals["office"], "certPath": str(portals["base"] / "p1.pem"),
         "keyPath": str(portals["base"] / "p1.key")}])
    other.add_cookies(used)
    stolen = other.new_page()
    stolen.goto(portals["office"] + "/office/")
    assert "/office/sign-in" in stolen.url
    # Malformed addresses and dates: a message, not a fault.
    assert signed.goto(portals["office"] + "/office/records?to=9999-12-31").status == 400
    assert signed.goto(portals["office"] + "/office/requests/..%0d%0aX/approve").status == 404
    assert signed.goto(portals["office"] + "/office/requests/0000000000000000").status == 404
    request_id, tracking = _registered(portals)
    signed.fill("#f-code", tracking)
    signed.fill("#f-national", NATIONAL)
    signed.click("form[action^='/office/receive'] button")
    assert "proofing" in signed.locator("#form-error").inner_text()  # a1 approves; receiving is for proofing officers
    for c in (context, other, signed.context, anonymous.context):
        c.close()


def test_sessions_expire(portals: dict, browser, tmp_path: Path) -> None:  # noqa: ANN001
    """An officer's and an applicant's session end after the idle time (2 seconds here): the
    next page asks them to sign in again and says why; a form posted after it changes nothing."""
    import time

    env = {**os.environ, "IRANPKI_PORTALS_OFFICE_IDLE_SECONDS": "2", "IRANPKI_PORTALS_APPLICANT_IDLE_SECONDS": "2"}
    server, port, _ = start_listening(
        [IRANPKI, "portal", "serve", "--portal", "office", "--portal", "applicant", "--home", str(portals["home"]),
         "--port", "0", "--threads", "2", "--certificate", str(portals["base"] / "server.pem"), "--key",
         str(portals["base"] / "server.key"), "--client-ca", str(portals["base"] / "client-cas.pem")], env,
        "short-session portals")
    try:
        url = f"https://127.0.0.1:{port}"
        page = officer(browser, {**portals, "office": url}, "p1")
        time.sleep(3)
        page.goto(url + "/office/records")
        assert "/office/sign-in" in page.url and "پایان یافته" in page.locator("#sign-in-error").inner_text()
        request_id, code = _registered(portals)
        applicant = browser.new_context(ignore_https_errors=True).new_page()
        applicant.goto(url + "/applicant/follow")
        applicant.fill("#f-code", code)
        applicant.fill("#f-national", NATIONAL)
        applicant.click("button[type=submit]")
        applicant.set_input_files("#f-scan", {"name": "id.png", "mimeType": "image/png", "buffer": PNG})
        applicant.fill("#f-number", "A-1")
        time.sleep(3)
        applicant.click("form[action^='/applicant/documents'] button")
        assert "/applicant/follow" in applicant.url and "پایان یافته" in applicant.locator("#follow-error").inner_text()
        assert _evidence(portals, request_id) == 0
        for p in (page, applicant):
            p.context.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_laboratory_checks_reports_and_lists_the_approved_modules(portals: dict, browser) -> None:  # noqa: ANN001
    """A report with the lab's signature is kept and shown as its HTML (no script runs in it); a
    report changed by one byte after signing, or signed by another organisation's certificate of
    the same PKI, is refused and not kept. The approval the operator records (`iranpki ra device
    approve`) is listed with its certificate, which openssl verifies: the list the desk checks
    tokens against."""
    from concurrent.futures import ThreadPoolExecutor

    from iranpki.conformance.attestation import approve, sign_report
    from iranpki.keys import SoftwareSigner

    from .test_conformance_reports import sample_report

    base = portals["base"]
    module = base / "libsofthsm2.so"
    module.write_bytes(b"\x7fELF module")
    report = sample_report(module).to_json().encode()
    chain = [(base / "gica1.pem").read_bytes()]

    def key(name: str) -> SoftwareSigner:
        return SoftwareSigner(serialization.load_pem_private_key((base / f"{name}.key").read_bytes(), None))

    with ThreadPoolExecutor(1) as pool:  # the lab's tool, off the thread where Playwright runs its event loop
        signature = pool.submit(sign_report, report, key("lab"), (base / "lab.pem").read_bytes(), chain).result()
        stranger = pool.submit(sign_report, report, key("stranger"), (base / "stranger.pem").read_bytes(),
                               chain).result()
        approval = pool.submit(lambda: approve(report, key("lab"), (base / "lab.pem").read_bytes(), chain,
                                               valid_days=365)).result()
    (base / "report.json").write_bytes(report)
    (base / "report.json.p7s").write_bytes(signature)
    (base / "stranger.p7s").write_bytes(stranger)
    (base / "approval.p7m").write_bytes(approval)
    (base / "changed.json").write_bytes(report.replace(b'"pass"', b'"fail"', 1))
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(portals["office"] + "/lab/")
    assert page.locator("#approvals").count() == 0 and _serious(page) == []
    for report_file, signature_file in (("changed.json", "report.json.p7s"), ("report.json", "stranger.p7s")):
        page.set_input_files("#f-report", str(base / report_file))
        page.set_input_files("#f-signature", str(base / signature_file))
        page.click("button[type=submit]")
        assert "پذیرفته نشد" in page.locator("#form-error").inner_text() and page.locator("#reports").count() == 0
    page.set_input_files("#f-report", str(base / "report.json"))
    page.set_input_files("#f-signature", str(base / "report.json.p7s"))
    page.click("button[type=submit]")
    assert page.locator("#note").count() == 1, page.locator("main").inner_text()
    assert page.locator("#reports tbody tr").count() == 1
    # The operator records the approval; the portal lists it.
    done = subprocess.run([IRANPKI, "ra", "device", "approve", str(base / "approval.p7m"), "--trust",
                           str(base / "root.pem"), "--chain", str(base / "gica1.pem"), "--home", str(portals["home"])],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    page.goto(portals["office"] + "/lab/")
    assert "SoftHSM v2" in page.locator("#approvals").inner_text()
    assert _serious(page) == []
    page.screenshot(path=str(SHOTS / "portal-lab.png"), full_page=True)
    response = page.goto(portals["office"] + page.locator("#reports tbody a").first.get_attribute("href"))
    assert "sandbox" in response.headers["content-security-policy"] and page.locator("h1").count() == 1
    assert page.locator("script").count() == 0  # the report's detail that tries to inject one is text
    served = context.request.get(portals["office"] + "/lab/approvals/" + ws_approval_id(portals) + ".p7m").body()
    (base / "served.p7m").write_bytes(served)
    verified = subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-in", str(base / "served.p7m"),
                               "-CAfile", str(base / "root.pem"), "-certfile", str(base / "gica1.pem"), "-purpose",
                               "any"], capture_output=True, timeout=30)
    assert verified.returncode == 0 and b"SoftHSM v2" in verified.stdout, verified.stderr
    context.close()


def ws_approval_id(portals: dict) -> str:
    ws = _store(portals)
    try:
        return ws.store.device_approvals()[0].approval_id
    finally:
        ws.close()


def test_a_key_made_on_a_token_at_the_desk_and_its_hand_over(portals: dict, browser) -> None:  # noqa: ANN001
    """The desk path: the officer binds the CSR the token made, with the token's make, model and
    serial (of a model the lab approved: the laboratory test before this one recorded it); after
    issuance the hand-over names that token, and another token's serial is refused."""
    base = portals["base"]
    request_id, code = _registered(portals)
    p1 = _proofed_at_the_desk(browser, portals, code, "B", "proofed")
    # The token's key and request (made here by openssl, as the desk client makes it on the token).
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            str(base / "token.key"), "-subj", "/CN=token", "-out", str(base / "token.csr"))
    for model, expected in (("Unapproved Model", "proofed"), ("SoftHSM v2", "awaiting-approval")):
        p1.set_input_files("#f-csr", str(base / "token.csr"))
        p1.fill("#f-manufacturer", "SoftHSM project")
        p1.fill("#f-model", model)
        p1.fill("#f-serial", "0123456789abcdef")
        p1.click("form[action$='/key?lang=fa'] button")
        assert p1.locator("[data-state]").get_attribute("data-state") == expected
    a1 = officer(browser, portals, "a1")
    a1.goto(portals["office"] + f"/office/requests/{request_id}")
    a1.click("#approve")
    issue(portals)
    p1.goto(portals["office"] + f"/office/requests/{request_id}")
    for token, handed in (("9999", False), ("0123456789abcdef", True)):
        p1.fill("#f-token", token)
        p1.click("form[action*='/hand-over'] button")
        assert (p1.locator("#form-error").count() == 0) == handed
    assert "0123456789abcdef" in p1.locator("#result").inner_text()
    for page in (p1, a1):
        page.context.close()


def test_a_lost_encryption_key_recovered_in_the_browser(portals: dict, browser) -> None:  # noqa: ANN001
    """Key recovery: an S/MIME encryption certificate whose key the RA made and archived; openssl
    encrypts a message to it; the subscriber, signed in, asks for the key's recovery under a new
    passphrase; the officer proofs them in person, two other officers approve; the CA side opens
    the archive on the token; the subscriber downloads the recovered key once and openssl reads
    the message with it."""
    from iranpki.ra import Document

    base = portals["base"]
    message = "پیام محرمانه برای علی\n"
    # The certificate, as the applicant's earlier journey made it (the engine, for brevity; in a
    # thread of its own, since Playwright's event loop runs in this one and pyHanko checks the
    # statement's signature with asyncio).
    def earlier():  # noqa: ANN202
        ws = _store(portals)
        try:
            ra = ws.registration()
            made = ra.register(profile="smime-encryption", level=1, ca="gica1",
                               applicant={"national_code": NATIONAL, "given_name": "علی", "surname": "محمدی"},
                               subject="CN=ali@example.ir", key_location="software-pkcs12",
                               names={"emails": ["ali@example.ir"]})
            first = ra.receive(ra.officer("p1"), made.code, NATIONAL)
            statement = "identity checked against the national ID card"
            (base / "statement-e.txt").write_text(statement, encoding="utf-8")
            signature = openssl("cms", "-sign", "-binary", "-in", str(base / "statement-e.txt"), "-signer",
                                str(base / "p1.pem"), "-inkey", str(base / "p1.key"), "-outform", "DER").stdout
            ra.proof(ra.officer("p1"), first.id, method="in-person",
                     documents=[Document("national-id-card", "0499370899-R", PNG + b"R", "image/png")],
                     statement=statement, statement_signature=signature)
            ra.bind_key(ra.applicant(made.code, NATIONAL, client="t"), first.id, csr=None, passphrase=PASSPHRASE)
            ra.approve(ra.officer("a1"), first.id)
            return made, first
        finally:
            ws.close()

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        made, first = pool.submit(earlier).result()
    issue(portals)
    ws = _store(portals)
    try:
        ra = ws.registration()
        serial = f"{ra.store.get_request(first.id).serial:x}"
        (base / "enc.pem").write_bytes(_pem(ra.store.get_certificate(int(serial, 16)).certificate))
    finally:
        ws.close()
    (base / "secret.txt").write_text(message, encoding="utf-8")
    openssl("cms", "-encrypt", "-aes256", "-in", str(base / "secret.txt"), "-out", str(base / "secret.p7m"),
            "-recip", str(base / "enc.pem"))

    # The subscriber (who never downloaded the key, and so lost it) asks for its recovery.
    applicant = _signed_in_applicant(browser, portals["public"], made.code)
    applicant.context.set_default_timeout(15000)
    for lang in ("en", "fa"):
        applicant.goto(portals["public"] + f"/applicant/certificates?lang={lang}")
        applicant.locator(f"#rp-{serial}").locator("xpath=ancestor::details").evaluate("d => d.open = true")
        assert _serious(applicant) == []
        applicant.screenshot(path=str(SHOTS / f"portal-applicant-recover-{lang}.png"), full_page=True)
    recovery_passphrase = "گذرواژهٔ تازه برای کلید بازیابی"
    applicant.fill(f"#rp-{serial}", recovery_passphrase)
    applicant.fill(f"#rq-{serial}", recovery_passphrase + "x")
    applicant.click(f"#rq-{serial} ~ button")
    assert applicant.locator("#form-error").count() == 1  # the two passphrases differ; nothing asked
    applicant.locator(f"#rp-{serial}").locator("xpath=ancestor::details").evaluate("d => d.open = true")
    applicant.fill(f"#rp-{serial}", recovery_passphrase)
    applicant.fill(f"#rq-{serial}", recovery_passphrase)
    applicant.click(f"#rq-{serial} ~ button")
    code = applicant.locator("#tracking-code").inner_text()
    applicant.click("#to-request")
    assert applicant.locator("[data-state]").get_attribute("data-state") == "submitted"
    assert applicant.locator("#download").count() == 0

    # In person: p1 proofs; two approving officers besides p1, each once.
    p1 = _proofed_at_the_desk(browser, portals, code, "C", "awaiting-approval")
    request_id = p1.url.split("/office/requests/")[1].split("?")[0]
    for name, state in (("a1", "awaiting-approval"), ("a2", "approved")):
        page = officer(browser, portals, name)
        page.goto(portals["office"] + f"/office/requests/{request_id}")
        page.click("#approve")
        assert page.locator("[data-state]").get_attribute("data-state") == state
        if name == "a1":
            issue(portals)  # one approval: the CA side leaves it alone
            page.reload()
            assert page.locator("[data-state]").get_attribute("data-state") == "awaiting-approval"
        page.context.close()
    issue(portals)

    # The subscriber downloads the recovered key once; openssl reads the message with it.
    applicant.goto(portals["public"] + "/applicant/request?lang=en")
    assert applicant.locator("[data-state]").get_attribute("data-state") == "issued"
    applicant.fill("#f-p12-passphrase", PASSPHRASE)  # the old one: wrong
    applicant.click("#download")
    assert applicant.locator("#form-error").count() == 1
    applicant.fill("#f-p12-passphrase", recovery_passphrase)
    with applicant.expect_download() as got:
        applicant.click("#download")
    got.value.save_as(str(base / "recovered.p12"))
    applicant.goto(portals["public"] + "/applicant/request")
    assert applicant.locator("#download").count() == 0  # once
    key = openssl("pkcs12", "-in", str(base / "recovered.p12"), "-nocerts", "-nodes", "-passin",
                  f"pass:{recovery_passphrase}").stdout
    (base / "recovered.key").write_bytes(key)
    read = openssl("cms", "-decrypt", "-in", str(base / "secret.p7m"), "-inkey", str(base / "recovered.key"),
                   "-recip", str(base / "enc.pem")).stdout
    assert read.decode("utf-8").replace("\r\n", "\n") == message
    # The office's records list the recovery with who proofed and who approved it.
    p1.goto(portals["office"] + "/office/records?lang=en")
    p1.locator("#recoveries").scroll_into_view_if_needed()
    assert _serious(p1) == []
    p1.screenshot(path=str(SHOTS / "portal-office-records-recovery-en.png"), full_page=True)
    p1.goto(portals["office"] + "/office/records")
    row = p1.locator("#recoveries tbody tr", has_text=request_id)
    assert row.count() == 1 and "a1 a2" in row.inner_text() and "p1" in row.inner_text()
    revocations = p1.locator("#revocations")
    assert revocations.count() == 0 or request_id not in revocations.inner_text()
    for context in {applicant.context, p1.context}:
        context.close()
    assert not [line for line in portals["lines"] if "Traceback" in line]


def test_a_mailbox_certificate_is_asked_for_with_the_applicants_own_code(portals: dict, browser) -> None:  # noqa: ANN001
    """A certificate that names no identifier (S/MIME: a mailbox) asks for the mailbox, which
    goes into subjectAltName, and for the applicant's own national code apart (the second factor
    of every later step, not on the certificate); wrong ones are named beside their fields."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    for lang in ("fa", "en"):
        page.goto(portals["public"] + f"/applicant/register?profile=smime-encryption&level=1&lang={lang}")
        assert page.locator("#f-email").count() == 1 and page.locator("#f-own-code").count() == 1
        assert _serious(page) == []
        page.screenshot(path=str(SHOTS / f"portal-applicant-register-mailbox-{lang}.png"), full_page=True)
    page.fill("#f-CN", "ali@example.ir")
    page.fill("#f-email", "not a mailbox")
    page.fill("#f-own-code", "0499370898")  # its check digit is wrong
    page.click("button[type=submit]")
    assert page.locator("#f-email").get_attribute("aria-invalid") == "true"
    assert page.locator("#f-own-code").get_attribute("aria-invalid") == "true"
    assert page.locator("#tracking-code").count() == 0
    page.fill("#f-email", "ali@example.ir")
    page.fill("#f-own-code", NATIONAL)
    page.click("button[type=submit]")
    code = page.locator("#tracking-code").inner_text()
    ws = _store(portals)
    try:
        [made] = [r for r in ws.store.list_requests(second_factor=NATIONAL, states=("submitted",))
                  if r.profile == "smime-encryption"]
        assert made.names == {"emails": ["ali@example.ir"]} and made.applicant["national_code"] == NATIONAL
        assert made.subject == "C=IR,CN=ali@example.ir"
    finally:
        ws.close()
    assert len(code.replace("-", "")) >= 12
    page.context.close()

"""The portals in a real browser (issue 16, first parts: the public repository and the applicant's
registration). `iranpki portal
serve` on 127.0.0.1 over a workspace with a root, a level-1 CA in two CRL shards, a valid and a
revoked certificate; Debian's Chromium, driven by Playwright, reads the pages in Persian and in
English. The CRL the page links to is the file the certificates name, and openssl reads it; the
status page says revoked for the revoked serial and shows nothing personal; a serial that is not
hexadecimal gets its error beside the field; axe-core finds no serious accessibility violation;
the pages carry a Content-Security-Policy with no inline script and refuse framing."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iranpki.keys import KeySpec, SecretSource
from iranpki.workspace import Workspace

from .conftest import REPO, ROOT_SUBJECT, start_listening
from .samples import SUBJECTS

IRANPKI = str(Path(sys.executable).parent / "iranpki")
ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "images"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    base = tmp_path_factory.mktemp("portal")
    home = base / "ws"
    os.environ["IRANPKI_KEY_PASSPHRASE"] = "a passphrase long enough"
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    import socket

    with socket.socket() as probe:  # a free port for the OCSP responder the certificates will name
        probe.bind(("127.0.0.1", 0))
        ocsp_port = probe.getsockname()[1]
    ws = Workspace.init(home, repository_url=REPO, ocsp_url=f"http://127.0.0.1:{ocsp_port}")
    for label, spec in (("root", "p384"), ("gica1", "p256")):
        ws.generate_key(KeySpec.parse(spec), label=label, secret=secret)
    ws.create_root("root", "root", ROOT_SUBJECT, secret=secret)
    ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=GICA,CN=GICA Level 1 (portal)", secret=secret,
                           parent_secret=secret, purpose="signing", crl_shards=2)
    pub = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    issued = [ws.issue("gica1", "personal-signature", subject=SUBJECTS["personal-signature"], secret=secret,
                       public_key=ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(*pub))
              for _ in range(2)]
    ws.revoke(issued[1].record.serial, "keyCompromise")
    ws.generate_crls("gica1", secret=secret)
    ws.generate_crls("root", secret=secret)
    for n, item in enumerate(issued):
        (base / f"cert{n}.pem").write_bytes(item.pem)
    from cryptography import x509

    for name in ("root", "gica1"):
        (base / f"{name}.pem").write_bytes(x509.load_der_x509_certificate(ws.store.get_ca(name).certificate)
                                           .public_bytes(serialization.Encoding.PEM))
    ws.close()
    responder, _, ocsp_lines = start_listening([IRANPKI, "ocsp", "serve", "--home", str(home), "--ca", "gica1",
                                                "--port", str(ocsp_port), "--workers", "1"], dict(os.environ),
                                               "OCSP responder")
    proc, port, lines = start_listening([IRANPKI, "portal", "serve", "--portal", "repository", "--portal", "applicant",
                                         "--home", str(home),
                                         "--port", "0", "--threads", "4"], dict(os.environ), "repository portal")
    try:
        yield {"url": f"http://127.0.0.1:{port}", "home": home, "base": base, "lines": lines,
               "valid": f"{issued[0].record.serial:x}", "revoked": f"{issued[1].record.serial:x}",
               "revoked_shard": issued[1].record.shard, "ocsp": f"http://127.0.0.1:{ocsp_port}"}
    finally:
        for server in (proc, responder):
            server.terminate()
            server.wait(timeout=30)


def _serious(page: object) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']}: {v['help']}" for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def test_the_repository_lists_the_cas_and_serves_the_crls_the_certificates_name(repository: dict, browser) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    response = page.goto(repository["url"] + "/")
    assert response.status == 200
    assert page.locator("html").get_attribute("dir") == "rtl" and page.locator("html").get_attribute("lang") == "fa"
    assert page.locator("h1").inner_text() == "مراکز صدور گواهی"
    assert page.get_by_text("GICA Level 1 (portal)").count() == 1
    assert "۱۴۰" in page.locator("tbody").inner_text() and "آذر" in page.locator("tbody").inner_text()  # Jalali, Persian digits
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    assert page.locator("script").count() == 0 and page.locator("[style]").count() == 0
    assert _serious(page) == []
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "portal-repository.png"))
    # The CRL links are the certificates' own URLs' paths; openssl reads what they serve.
    hrefs = [a.get_attribute("href") for a in page.locator("a[href^='/crl/']").all()]
    assert sorted(hrefs) == ["/crl/gica1-0.crl", "/crl/gica1-1.crl", "/crl/root.crl"], hrefs
    crl = urllib.request.urlopen(repository["url"] + f"/crl/gica1-{repository['revoked_shard']}.crl").read()
    (repository["base"] / "gica1.crl").write_bytes(crl)
    text = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(repository["base"] / "gica1.crl"), "-noout",
                           "-text"], capture_output=True, text=True)
    assert text.returncode == 0 and repository["revoked"].upper() in text.stdout.replace(":", "").upper()
    der = urllib.request.urlopen(repository["url"] + "/certs/gica1.crt").read()
    (repository["base"] / "gica1.crt").write_bytes(der)
    shown = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", str(repository["base"] / "gica1.crt"),
                            "-noout", "-subject"], capture_output=True, text=True)
    assert "GICA Level 1 (portal)" in shown.stdout
    page.close()


def test_a_certificates_status_by_serial_shows_nothing_personal(repository: dict, browser) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(repository["url"] + "/status")
    page.fill("#serial", repository["revoked"])
    page.click("button[type=submit]")
    assert page.locator("[data-status]").get_attribute("data-status") == "revoked"
    assert page.locator("[data-status]").inner_text() == "باطل‌شده"
    assert "keyCompromise" in page.locator("#result").inner_text()
    assert "علی" not in page.content() and "0499370899" not in page.content()  # no subject, no national code
    assert _serious(page) == []
    page.screenshot(path=str(SHOTS / "portal-repository-status.png"))
    page.goto(repository["url"] + f"/status?serial={repository['valid']}&lang=en")
    assert page.locator("html").get_attribute("dir") == "ltr"
    assert page.locator("[data-status]").inner_text() == "valid"
    # Not hexadecimal: the error beside the field, in the page's language; script in it is text.
    page.goto(repository["url"] + "/status?serial=<script>alert(1)</script>")
    assert page.locator("#serial").get_attribute("aria-invalid") == "true"
    assert "شانزده‌شانزدهی" in page.locator("#serial-error").inner_text()
    assert page.locator("script").count() == 0
    response = page.goto(repository["url"] + "/status?serial=abcdef0123")
    assert response.status == 404 and page.locator("#serial-error").count() == 1
    assert _serious(page) == []
    page.close()


def test_the_ocsp_form_asks_the_real_responder_and_openssl_agrees(repository: dict, browser) -> None:  # noqa: ANN001
    """The form asks the responder the certificate names and checks its signed answer; openssl
    ocsp, asked the same, says the same."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    for n, serial, expected, persian in ((0, repository["valid"], "good", "معتبر"),
                                          (1, repository["revoked"], "revoked", "باطل‌شده")):
        page.goto(repository["url"] + "/ocsp")
        page.fill("#serial", serial)
        page.click("button[type=submit]")
        assert page.locator("[data-status]").get_attribute("data-status") == expected
        assert page.locator("[data-status]").inner_text() == persian
        asked = subprocess.run(["openssl", "ocsp", "-issuer", str(repository["base"] / "gica1.pem"), "-cert",
                                str(repository["base"] / f"cert{n}.pem"), "-url", repository["ocsp"], "-CAfile",
                                str(repository["base"] / "root.pem")], capture_output=True, text=True, timeout=30)
        assert "Response verify OK" in asked.stderr + asked.stdout and f": {expected}" in asked.stdout, asked.stdout
    assert "keyCompromise" in page.locator("#result").inner_text()
    assert _serious(page) == []
    page.screenshot(path=str(SHOTS / "portal-repository-ocsp.png"))
    page.close()


def test_the_national_cp_is_rendered(repository: dict, browser) -> None:  # noqa: ANN001
    page = browser.new_page()
    page.goto(repository["url"] + "/policy?lang=en")
    assert page.locator("article h1").count() >= 1 and page.locator("article table").count() >= 1
    assert _serious(page) == []
    page.close()
    assert not [line for line in repository["lines"] if "Traceback" in line]


def test_the_ocsp_client_refuses_an_answer_it_cannot_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    """A response signed by a stranger, or for another certificate, is refused; the CA's own
    signed answer is taken."""
    import datetime as dt
    import io

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509 import ocsp
    from cryptography.x509.oid import NameOID

    from iranpki.ocsp import client

    now = dt.datetime.now(dt.timezone.utc)

    def certificate(name: str, key, issuer_name: str, issuer_key, serial: int) -> x509.Certificate:  # noqa: ANN001
        return x509.CertificateBuilder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]),
                                       x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]),
                                       key.public_key(), serial, now - dt.timedelta(days=1),
                                       now + dt.timedelta(days=30)).sign(issuer_key, hashes.SHA256())

    ca_key, stranger = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("CA", ca_key, "CA", ca_key, 1)
    leaf = certificate("leaf", ec.generate_private_key(ec.SECP256R1()), "CA", ca_key, 77)
    other = certificate("other", ec.generate_private_key(ec.SECP256R1()), "CA", ca_key, 78)

    impostor = certificate("CA", stranger, "CA", stranger, 2)  # same name, another key, self-signed

    def answer(about: x509.Certificate, signed_by, responder: x509.Certificate) -> bytes:  # noqa: ANN001
        built = ocsp.OCSPResponseBuilder().add_response(
            about, ca, hashes.SHA256(), ocsp.OCSPCertStatus.GOOD, now, now + dt.timedelta(hours=1), None, None
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, responder).certificates([responder]).sign(
            signed_by, hashes.SHA256())
        return built.public_bytes(serialization.Encoding.DER)

    der = serialization.Encoding.DER
    for body, refusal in ((answer(leaf, stranger, impostor), "signed neither"),
                          (answer(other, ca_key, ca), "another certificate"), (answer(leaf, ca_key, ca), None)):
        monkeypatch.setattr(client.urllib.request, "urlopen", lambda *a, body=body, **k: io.BytesIO(body))
        if refusal is None:
            assert client.query("http://ocsp.test", leaf.public_bytes(der), ca.public_bytes(der)).status == "good"
        else:
            with pytest.raises(client.OcspClientError, match=refusal):
                client.query("http://ocsp.test", leaf.public_bytes(der), ca.public_bytes(der))


def _requests(repository: dict) -> int:
    ws = Workspace.open(repository["home"])
    try:
        return len(ws.store.list_requests(limit=1000))
    finally:
        ws.close()


def test_an_applicant_registers_in_the_browser_and_follows_the_request(repository: dict, browser) -> None:  # noqa: ANN001
    """The offers come from the profiles, the rules and the CAs; the form is the profile's subject;
    a wrong national code and a name in Latin letters (or with script) are refused beside their
    fields, in Persian, with nothing stored; the right ones give the tracking code once, with
    which the request is followed; a form posted without its CSRF token is refused."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(repository["url"] + "/applicant/")
    assert _serious(page) == []
    page.click("a[href*=\"profile=personal-signature\"][href*=\"level=1\"]")
    assert page.locator("h1").inner_text().startswith("امضای شخصی")
    before = _requests(repository)
    page.fill("#f-SN", "<script>alert(1)</script>")
    page.fill("#f-GN", "Ali")
    page.fill("#f-serialNumber", "0499370898")  # the check digit is wrong
    page.fill("#f-CN", "علی محمدی")
    page.click("button[type=submit]")
    assert page.locator("#f-serialNumber").get_attribute("aria-invalid") == "true"
    assert page.locator("#e-serialNumber").inner_text().startswith("کد ملی درست نیست")
    assert page.locator("#e-GN").inner_text().startswith("این نام باید با حروف فارسی نوشته شود")
    assert page.locator("#e-SN").count() == 1 and page.locator("body script").count() == 0
    assert _requests(repository) == before and _serious(page) == []
    page.screenshot(path=str(SHOTS / "portal-applicant-errors.png"))
    page.fill("#f-SN", "محمدی")
    page.fill("#f-GN", "علی")
    page.fill("#f-serialNumber", "0499370899")
    page.check("input[value=desk-token]")
    page.click("button[type=submit]")
    code = page.locator("#tracking-code").inner_text()
    assert len(code.replace("-", "")) >= 12 and _requests(repository) == before + 1
    page.screenshot(path=str(SHOTS / "portal-applicant-code.png"))
    page.goto(repository["url"] + "/applicant/follow")
    page.fill("#f-code", code)
    page.fill("#f-national", "0499370899")
    page.click("button[type=submit]")
    assert page.locator("[data-state]").get_attribute("data-state") == "submitted"
    assert _serious(page) == []
    page.goto(repository["url"] + "/applicant/follow")
    page.fill("#f-code", code)
    page.fill("#f-national", "0012345679")
    page.click("button[type=submit]")
    assert page.locator("#follow-error").count() == 1 and page.locator("[data-state]").count() == 0
    page.close()
    # The same form posted from elsewhere (no CSRF token and cookie): refused, nothing stored.
    import urllib.error
    import urllib.parse

    data = urllib.parse.urlencode({"profile": "personal-signature", "level": "1", "SN": "محمدی", "GN": "علی",
                                   "serialNumber": "0499370899", "CN": "علی محمدی", "key_location": "desk-token"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(repository["url"] + "/applicant/register", data=data.encode())
    assert refused.value.code == 403 and _requests(repository) == before + 1


def test_the_ocsp_form_is_rate_limited_per_client(repository: dict) -> None:
    """Each OCSP lookup makes the portal ask a responder: past 30 a minute from one address the
    form answers 429 with Retry-After instead. (Last in this module: it spends the minute.)"""
    import urllib.error

    statuses = []
    for _ in range(32):
        try:
            statuses.append(urllib.request.urlopen(repository["url"] + "/ocsp?serial=abcdef").status)
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)
            if exc.code == 429:
                assert 0 < int(exc.headers["Retry-After"]) <= 61
    assert 404 in statuses and statuses[-1] == 429 and statuses.count(429) >= 2

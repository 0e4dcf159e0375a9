"""Relying-party validation (iranpki.validation, `iranpki verify`), NIST PKITS style: each case is a
certificate the test makes (with iranpki's CA or, where iranpki refuses to make it, with
``cryptography`` directly), the expected error class, and the message it must carry. Revocation
comes from our own CRLs (iranpki.crl) and our own OCSP responder (`iranpki ocsp serve`).

PKITS itself (the certificates pyhanko-certvalidator's test fixtures use) is not in the wheel and
could not be fetched here; the cases below follow PKITS section 4 where one applies (4.1.2
invalid signature, 4.2.1/4.2.2 validity, 4.3.1 name chaining, 4.4 revocation, 4.6 basic
constraints, 4.8 policies).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from iranpki import crl
from iranpki.ca import CertificateAuthority, create_intermediate, create_root, parse_subject, revoke
from iranpki.clock import FixedClock
from iranpki.errors import (
    BadSignatureError,
    CertificateExpiredError,
    CertificateNotYetValidError,
    CertificateRevokedError,
    CertificateValidationError,
    InvalidPathError,
    KeyUsageError,
    NameChainingError,
    NoTrustedPathError,
    PathLengthError,
    PolicyNotAcceptableError,
    RevocationUnknownError,
    ValidationInputError,
)
from iranpki.keys import PASSPHRASE_ENV, KeySpec, SoftwareSigner
from iranpki.policy import load_policy
from iranpki.store import SqliteStore
from iranpki.validation import PURPOSES, national_anchors, validate_certificate
from iranpki.workspace import Workspace
from iranpki_cli.main import cli

from .conftest import OCSP, REPO, ROOT_SUBJECT, VECTORS, new_key, utc
from .samples import request
from .test_ocsp import HOST, PASSPHRASE, Server, free_port

T0 = utc(2026, 11, 23, 9, 0, 0)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
G3_SHA256 = "aa7ff637d061295a6a003e9d6621a54f4780bae7aef96043a71b7c2af276d556"


@dataclass
class Pki:
    """A root and a level-1 intermediate with software keys, on a frozen clock."""

    store: SqliteStore
    clock: FixedClock
    root: CertificateAuthority
    ica: CertificateAuthority
    ica_key: ec.EllipticCurvePrivateKey
    root_key: ec.EllipticCurvePrivateKey
    dir: Path

    def issue(self, profile: str = "ssl-server", ca: CertificateAuthority | None = None, **kw: object) -> x509.Certificate:
        key = new_key("rsa3072" if profile == "code-signing" else "p256")
        return (ca or self.ica).issue(profile, request(profile, key.public_key(), **kw)).certificate

    def check(self, cert: x509.Certificate, **kw: object):  # noqa: ANN201 - a ValidationResult
        kw.setdefault("at", T0 + HOUR)
        kw.setdefault("trust_roots", [self.root.certificate])
        kw.setdefault("intermediates", [self.ica.certificate])
        return validate_certificate(cert, **kw).raise_for_error()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("validation")
    clock = FixedClock(T0)
    store = SqliteStore(str(base / "store.sqlite3"), clock, create=True)
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = create_root(store, SoftwareSigner(root_key), "root", parse_subject(ROOT_SUBJECT), repository_url=REPO,
                       ocsp_url=OCSP, clock=clock)
    ica_key = ec.generate_private_key(ec.SECP256R1())
    ica = create_intermediate(root, SoftwareSigner(ica_key), "gica1", 1,
                              parse_subject("C=IR,O=GICA,CN=GICA Level 1 (test)"))
    return Pki(store, clock, root, ica, ica_key, root_key, base)


def _crls(pki: Pki, *cas: CertificateAuthority) -> list[bytes]:
    return [crl.generate_crl(pki.store, ca.record, ca.signer, pki.dir / "crls", clock=pki.clock).der for ca in cas]


def _forge(issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey, *, subject: str, ca: bool = False,
           path_length: int | None = None, issuer_name: x509.Name | None = None,
           key_usage: dict[str, bool] | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate iranpki's CA would refuse to make, signed with ``key`` (the issuer's key)."""
    own = ec.generate_private_key(ec.SECP256R1())
    usage = dict(digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                 key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False)
    usage.update(key_usage or {"digital_signature": True})
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "IR"),
                                        x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name or issuer.subject).public_key(own.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(T0).not_valid_after(T0 + 30 * DAY)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
               .add_extension(x509.KeyUsage(**usage), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(own.public_key()), critical=False))
    return builder.sign(key, hashes.SHA256()), own


# ---- PKITS 4.1-4.3: signatures, validity, names -----------------------------------------------------

def test_valid_chain(pki: Pki) -> None:
    leaf = pki.issue()
    result = pki.check(leaf, purpose="server")
    assert result.subjects == (ROOT_SUBJECT_TEXT(pki), "CN=GICA Level 1 (test),O=GICA,C=IR", result.subject)
    assert result.certificate == leaf and result.purpose == "server"
    assert result.level == 1 and load_policy().level(1).policy_oid in result.policies
    # soft-fail without CRLs or OCSP: the result says that nothing was checked, and for which certificate.
    assert [r.source for r in result.revocation] == [None, None]
    assert all("not checked" in r.detail for r in result.revocation)
    assert result.to_dict()["valid"] is True


def ROOT_SUBJECT_TEXT(pki: Pki) -> str:  # noqa: N802 - reads as the constant it stands for
    from iranpki.profiles import subject_text

    return subject_text(pki.root.certificate.subject)


def test_tampered_certificate_fails_its_signature(pki: Pki) -> None:
    der = bytearray(pki.issue().public_bytes(Encoding.DER))
    der[-3] ^= 0x01  # inside the ECDSA signature's s
    with pytest.raises(BadSignatureError, match="does not verify with the key of its issuer") as err:
        pki.check(bytes(der))
    assert "GICA Level 1 (test)" in str(err.value)


def test_expired_leaf(pki: Pki) -> None:
    leaf = pki.issue(validity_days=1)
    with pytest.raises(CertificateExpiredError, match=r"expired at 2026-11-24 08:59:59 UTC") as err:
        pki.check(leaf, at=T0 + 2 * DAY)
    assert err.value.not_after == leaf.not_valid_after_utc
    assert err.value.certificate == leaf.public_bytes(Encoding.DER)
    assert "validation time 2026-11-25 09:00:00 UTC" in str(err.value)


def test_valid_in_the_past(pki: Pki) -> None:
    """--at: a certificate that has expired since was valid at a time of its life."""
    leaf = pki.issue(validity_days=1)
    assert pki.check(leaf, at=T0 + 12 * HOUR).at == T0 + 12 * HOUR


def test_not_yet_valid(pki: Pki) -> None:
    leaf = pki.issue(not_before=T0 + 10 * DAY)
    with pytest.raises(CertificateNotYetValidError, match=r"is not yet valid until 2026-12-03 09:00:00 UTC") as err:
        pki.check(leaf, at=T0 + DAY)
    assert err.value.not_before == T0 + 10 * DAY


def test_expired_intermediate(pki: Pki) -> None:
    short = create_intermediate(pki.root, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), "short1", 1,
                                parse_subject("C=IR,O=GICA,CN=Short-lived CA (test)"), validity_days=2)
    leaf = pki.issue(ca=short, validity_days=1)
    assert pki.check(leaf, intermediates=[short.certificate], at=T0 + HOUR)
    with pytest.raises(CertificateExpiredError, match=r"CA certificate 'CN=Short-lived CA \(test\),O=GICA,C=IR'.* expired at") as err:
        pki.check(leaf, intermediates=[short.certificate], at=T0 + 3 * DAY)
    assert err.value.subject == "CN=Short-lived CA (test),O=GICA,C=IR"


def test_name_chaining_broken(pki: Pki) -> None:
    """PKITS 4.3.1: signed by the intermediate's key, but naming another issuer."""
    leaf, _ = _forge(pki.ica.certificate, pki.ica_key, subject="Wrongly chained",
                     issuer_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "GICA Level 1 (other)")]))
    with pytest.raises(NameChainingError, match="is not the subject name") as err:
        pki.check(leaf)
    assert "CN=GICA Level 1 (other)" in str(err.value)


def test_path_length_violated(pki: Pki) -> None:
    """PKITS 4.6: the level-1 intermediate (pathLenConstraint 0) certifies another CA."""
    sub, sub_key = _forge(pki.ica.certificate, pki.ica_key, subject="Unlicensed Sub-CA", ca=True, path_length=0)
    leaf, _ = _forge(sub, sub_key, subject="Leaf under the sub-CA")
    with pytest.raises(PathLengthError, match="'CN=Unlicensed Sub-CA,C=IR' .* breaks a pathLenConstraint") as err:
        pki.check(leaf, intermediates=[pki.ica.certificate, sub])
    assert isinstance(err.value, CertificateValidationError) and err.value.subject == "CN=Unlicensed Sub-CA,C=IR"


def test_untrusted_root(pki: Pki) -> None:
    leaf = pki.issue()
    # Default anchors: the national Root CA-G3, which did not issue the test hierarchy.
    with pytest.raises(NoTrustedPathError, match="no path to a trusted root") as err:
        validate_certificate(leaf, intermediates=[pki.ica.certificate], at=T0 + HOUR).raise_for_error()
    assert "Root CA-G3" in str(err.value) and "--chain" in str(err.value)
    # A chain that does end in a root, but not one that is trusted.
    with pytest.raises(NoTrustedPathError, match="no path to a trusted root"):
        validate_certificate(leaf, intermediates=[pki.ica.certificate, pki.root.certificate], at=T0 + HOUR).raise_for_error()
    with pytest.raises(NoTrustedPathError, match="self-signed"):
        validate_certificate(pki.root.certificate, at=T0 + HOUR).raise_for_error()


def test_missing_intermediate(pki: Pki) -> None:
    with pytest.raises(NoTrustedPathError, match="GICA Level 1"):
        pki.check(pki.issue(), intermediates=[])


def test_shipped_national_anchor_is_root_ca_g3() -> None:
    [anchor] = national_anchors()
    assert hashlib.sha256(anchor.public_bytes(Encoding.DER)).hexdigest() == G3_SHA256
    vector = x509.load_pem_x509_certificate((VECTORS / "shared" / "iran-root-ca-g3.pem").read_bytes())
    assert anchor == vector


# ---- PKITS 4.4: revocation from our CRLs and our OCSP responder ------------------------------------------

def test_revoked_on_our_crl(pki: Pki) -> None:
    good, bad = pki.issue(), pki.issue()
    revoke(pki.store, bad.serial_number, "keyCompromise", clock=pki.clock)
    crls = _crls(pki, pki.root, pki.ica)
    with pytest.raises(CertificateRevokedError,
                       match=r"was revoked on 2026-11-23 09:00:00 UTC for reason keyCompromise \(according to its CRL\)") as err:
        pki.check(bad, crls=crls)
    assert (err.value.reason, err.value.source, err.value.revoked_at) == ("keyCompromise", "CRL", T0)
    # hard-fail: with both CRLs, every certificate's status is established from a CRL.
    result = pki.check(good, crls=crls, revocation="hard-fail")
    assert [r.source for r in result.revocation] == ["CRL", "CRL"]


def test_on_hold(pki: Pki) -> None:
    held = pki.issue()
    revoke(pki.store, held.serial_number, "certificateHold", clock=pki.clock)
    with pytest.raises(CertificateRevokedError, match="is on hold since 2026-11-23 09:00:00 UTC") as err:
        pki.check(held, crls=_crls(pki, pki.root, pki.ica))
    assert err.value.reason == "certificateHold"


def test_hard_fail_without_revocation_data(pki: Pki) -> None:
    with pytest.raises(RevocationUnknownError, match="could not be established.*--crl"):
        pki.check(pki.issue(), revocation="hard-fail")


# ---- purposes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("profile", "purpose"), [("ssl-server", "server"), ("personal-signature", "signature"),
                                                   ("personal-signature", "email"), ("code-signing", "code-signing"),
                                                   ("tsa", "timestamping"), ("ocsp-signer", "ocsp-signing"),
                                                   ("ssl-server", "any")])
def test_purpose_allowed(pki: Pki, profile: str, purpose: str) -> None:
    assert pki.check(pki.issue(profile), purpose=purpose).purpose == purpose


@pytest.mark.parametrize(("profile", "purpose", "has"), [
    ("ssl-server", "email", "digitalSignature, serverAuth"),
    ("ssl-server", "code-signing", "digitalSignature, serverAuth"),
    ("tsa", "server", "digitalSignature, timeStamping"),
    ("personal-signature", "timestamping", "digitalSignature, nonRepudiation, clientAuth, emailProtection"),
])
def test_wrong_extended_key_usage(pki: Pki, profile: str, purpose: str, has: str) -> None:
    with pytest.raises(KeyUsageError, match=f"key usage does not allow {purpose}: has {has};") as err:
        pki.check(pki.issue(profile), purpose=purpose)
    assert err.value.purpose == purpose


def test_wrong_key_usage(pki: Pki) -> None:
    leaf, _ = _forge(pki.ica.certificate, pki.ica_key, subject="Encryption only",
                     key_usage={"key_encipherment": True})
    with pytest.raises(KeyUsageError, match="key usage does not allow signature: has keyEncipherment; "
                                            "signature needs keyUsage digitalSignature or nonRepudiation") as err:
        pki.check(leaf, purpose="signature")
    assert err.value.has == ("keyEncipherment",)


# ---- PKITS 4.8: assurance levels through certificate policies -------------------------------------------

def test_level_1_certificate_asked_for_level_3(pki: Pki) -> None:
    leaf = pki.issue()
    assert pki.check(leaf, level=1).level == 1
    with pytest.raises(PolicyNotAcceptableError, match="policy not acceptable at assurance level 3") as err:
        pki.check(leaf, level=3)
    assert "not issued under a national policy of assurance level 3" in str(err.value)
    assert err.value.level == 3 and load_policy().level(1).policy_oid in err.value.policies


def test_higher_level_satisfies_lower(hierarchy: dict) -> None:
    """The level-2 intermediate on a token: its certificates satisfy level 1 and 2, not 3."""
    gica2, root = hierarchy["gica2"], hierarchy["root"]
    leaf = gica2.issue("personal-signature", request("personal-signature", new_key().public_key())).certificate
    options = {"trust_roots": [root.certificate], "intermediates": [gica2.certificate], "purpose": "signature"}
    for asked in (1, 2):
        result = validate_certificate(leaf, level=asked, **options).raise_for_error()
        assert (result.level, result.level_required) == (2, asked)
    with pytest.raises(PolicyNotAcceptableError, match="assurance level 3"):
        validate_certificate(leaf, level=3, **options).raise_for_error()


# ---- inputs --------------------------------------------------------------------------------------------

def test_unusable_inputs(pki: Pki) -> None:
    with pytest.raises(ValidationInputError, match="not an X.509 certificate"):
        validate_certificate(b"hello")
    with pytest.raises(ValidationInputError, match="unknown purpose 'signing'; must be one of: signature"):
        pki.check(pki.issue(), purpose="signing")
    with pytest.raises(ValidationInputError, match="assurance level 5 does not exist"):
        pki.check(pki.issue(), level=5)
    with pytest.raises(ValidationInputError, match="is not a CRL"):
        pki.check(pki.issue(), crls=[b"not a crl"])
    with pytest.raises(ValidationInputError, match="no time zone"):
        pki.check(pki.issue(), at=datetime(2026, 11, 23))
    assert set(PURPOSES) >= {"signature", "server", "email", "code-signing", "timestamping", "ocsp-signing", "any"}


# ---- OCSP: our responder, `iranpki ocsp serve`, asked through the AIA --------------------------------------

@dataclass
class Served:
    home: Path
    certs: dict[str, x509.Certificate]
    pems: dict[str, Path]
    root_pem: Path
    ca_pem: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A workspace (root and level-1 CA, software keys) whose certificates name a responder on
    127.0.0.1, and that responder running for both CAs."""
    base = tmp_path_factory.mktemp("validation-ocsp")
    port, repo_port = free_port(), free_port()
    saved = os.environ.get(PASSPHRASE_ENV)
    os.environ[PASSPHRASE_ENV] = PASSPHRASE
    server = repository = None
    try:
        ws = Workspace.init(base / "ws", repository_url=f"http://{HOST}:{repo_port}/repo",
                            ocsp_url=f"http://{HOST}:{port}")
        for label, spec in (("root", "p384"), ("gica1", "p256")):
            ws.generate_key(KeySpec.parse(spec), label=label)
        ws.create_root("root", "root", "C=IR,O=I.R.Government,OU=Root CA,CN=Validation Test Root")
        ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=GICA,CN=GICA Level 1 Validation Test")
        authority = ws.open_ca("gica1")
        certs = {name: authority.issue("ssl-server", request("ssl-server", new_key().public_key(),
                                                             dns=[f"{name}.example.ir"])).certificate
                 for name in ("good", "revoked")}
        ws.revoke(certs["revoked"].serial_number, "keyCompromise")
        for ca in ("root", "gica1"):
            ws.generate_crls(ca)
        ws.publish(base / "www" / "repo")
        repository = _serve_folder(base / "www", repo_port)
        pems = {name: _pem_file(base / f"{name}.pem", c) for name, c in certs.items()}
        chain = [x509.load_der_x509_certificate(d) for d in ws.chain("gica1")]
        ws.close()
        server = Server(["--home", str(base / "ws"), "--ca", "root", "--ca", "gica1", "--workers", "1"],
                        {**os.environ}, port).start()
        yield Served(base / "ws", certs, pems, _pem_file(base / "root.pem", chain[1]), _pem_file(base / "ca.pem", chain[0]))
    finally:
        if repository is not None:
            repository.terminate()
            repository.wait(10)
        if server is not None:
            assert server.stop(signal.SIGTERM) == 0
        if saved is None:
            os.environ.pop(PASSPHRASE_ENV, None)
        else:
            os.environ[PASSPHRASE_ENV] = saved


def _serve_folder(folder: Path, port: int) -> subprocess.Popen[bytes]:
    """The CA's repository (certificates and CRLs, as `iranpki crl publish` lays them out) over HTTP."""
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", HOST, "--directory", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the repository web server did not start")


def _pem_file(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return path


def test_ocsp_good_and_revoked(served: Served) -> None:
    ws = Workspace.open(served.home)
    try:
        result = ws.validate_certificate(served.certs["good"], purpose="server", ocsp=True, revocation="hard-fail").raise_for_error()
        assert [r.source for r in result.revocation] == ["OCSP", "OCSP"]
        assert f"http://{HOST}" in result.revocation[-1].detail
        with pytest.raises(CertificateRevokedError, match=r"for reason keyCompromise \(according to its OCSP\)") as err:
            ws.validate_certificate(served.certs["revoked"], ocsp=True).raise_for_error()
        assert (err.value.source, err.value.reason) == ("OCSP", "keyCompromise")
        # Without --ocsp nothing is asked: hard-fail then cannot establish the status.
        with pytest.raises(RevocationUnknownError):
            ws.validate_certificate(served.certs["good"], revocation="hard-fail").raise_for_error()
    finally:
        ws.close()


def test_crls_fetched_from_the_distribution_points(served: Served) -> None:
    ws = Workspace.open(served.home)
    try:
        result = ws.validate_certificate(served.certs["good"], fetch=True, revocation="hard-fail").raise_for_error()
        assert [r.source for r in result.revocation] == ["CRL", "CRL"]
        with pytest.raises(CertificateRevokedError, match=r"for reason keyCompromise \(according to its CRL\)"):
            ws.validate_certificate(served.certs["revoked"], fetch=True).raise_for_error()
    finally:
        ws.close()


# ---- the command -------------------------------------------------------------------------------------------

def test_cli_with_workspace_and_ocsp(served: Served) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["verify", str(served.pems["good"]), "--home", str(served.home), "--ocsp",
                             "--revocation", "hard-fail", "--purpose", "server", "--json"])
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert report["valid"] is True and report["kind"] == "certificate" and report["level"] == 1
    assert [r["source"] for r in report["revocation"]] == ["OCSP", "OCSP"]
    assert report["path"][0] == "CN=Validation Test Root,OU=Root CA,O=I.R.Government,C=IR"
    bad = runner.invoke(cli, ["verify", str(served.pems["revoked"]), "--home", str(served.home), "--ocsp", "--json"])
    assert bad.exit_code == 1, bad.output
    report = json.loads(bad.stdout)
    assert report["valid"] is False and report["error"] == "CertificateRevokedError"
    assert report["reason"] == "keyCompromise" and report["source"] == "OCSP"
    # For people: the reason on stderr, no trace.
    bad = runner.invoke(cli, ["verify", str(served.pems["revoked"]), "--home", str(served.home), "--ocsp"])
    assert bad.exit_code == 1 and "invalid:" in bad.stderr and "keyCompromise" in bad.stderr
    assert "Traceback" not in bad.output


def test_cli_files_and_exit_statuses(pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No workspace here: the command falls back to the national root (an explicit --home that is
    # not a workspace is an error instead).
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IRANPKI_HOME", raising=False)
    leaf = pki.issue(validity_days=1)
    files = {"leaf": _pem_file(tmp_path / "leaf.pem", leaf), "root": _pem_file(tmp_path / "root.pem", pki.root.certificate),
             "ca": _pem_file(tmp_path / "ca.pem", pki.ica.certificate)}
    der = tmp_path / "leaf.der"
    der.write_bytes(leaf.public_bytes(Encoding.DER))
    base = ["--trust", str(files["root"]), "--chain", str(files["ca"])]
    runner = CliRunner()
    ok = runner.invoke(cli, ["verify", str(der), *base, "--at", "2026-11-23T12:00:00Z", "--level", "1", "--purpose", "server"])
    assert ok.exit_code == 0, ok.output
    assert "valid:" in ok.stdout and "2.16.364.101.1.1" in ok.stdout
    jalali = runner.invoke(cli, ["verify", str(files["leaf"]), *base, "--at", "1405-09-02T12:00:00", "--json"])
    assert jalali.exit_code == 0 and json.loads(jalali.stdout)["at"] == "2026-11-23T12:00:00+00:00", jalali.output
    expired = runner.invoke(cli, ["verify", str(files["leaf"]), *base, "--at", "2026-11-30", "--json"])
    assert expired.exit_code == 1 and json.loads(expired.stdout)["error"] == "CertificateExpiredError"
    assert json.loads(expired.stdout)["not_after"] == leaf.not_valid_after_utc.isoformat()
    # The national root is the default anchor without a workspace (tmp_path has none).
    untrusted = runner.invoke(cli, ["verify", str(files["leaf"]), "--at", "2026-11-23T12:00:00"])
    assert untrusted.exit_code == 1 and "no path to a trusted root" in untrusted.stderr
    assert "Root CA-G3" in untrusted.stderr
    # Unusable input: exit status 2 and what to give instead.
    junk = tmp_path / "junk.txt"
    junk.write_text("hello")
    for args, says in ((["verify", str(junk)], "is not a file iranpki verify reads"),
                       (["verify", str(tmp_path / "missing.pem")], "cannot read the file"),
                       (["verify", str(files["leaf"]), "--crl", str(junk)], "is not a CRL"),
                       (["verify", str(files["leaf"]), "--at", "soon"], "is not a time")):
        out = runner.invoke(cli, args)
        assert out.exit_code == 2 and says in out.output, (args, out.output)
    not_a_workspace = runner.invoke(cli, ["verify", str(files["leaf"]), "--home", str(tmp_path)])
    assert not_a_workspace.exit_code == 1 and "is not an iranpki workspace" in not_a_workspace.stderr


def test_revoked_intermediate(pki: Pki) -> None:
    """PKITS 4.4.x: the end entity is fine, its CA is revoked on the root's CRL."""
    doomed = create_intermediate(pki.root, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), "doomed1", 1,
                                 parse_subject("C=IR,O=GICA,CN=Compromised CA (test)"))
    leaf = pki.issue(ca=doomed)
    revoke(pki.store, doomed.certificate.serial_number, "cACompromise", clock=pki.clock)
    with pytest.raises(CertificateRevokedError, match=r"CA certificate 'CN=Compromised CA \(test\),O=GICA,C=IR' .*"
                                                      r"for reason cACompromise") as err:
        pki.check(leaf, intermediates=[doomed.certificate], crls=_crls(pki, pki.root, doomed))
    assert err.value.subject == "CN=Compromised CA (test),O=GICA,C=IR"


def test_stale_crl(pki: Pki) -> None:
    leaf = pki.issue("personal-signature")
    crls = _crls(pki, pki.root, pki.ica)  # the CA's CRL is valid for 168 hours (the CP)
    assert pki.check(leaf, crls=crls, at=T0 + 6 * DAY)
    with pytest.raises(RevocationUnknownError, match="out of date at the validation time 2026-12-01 09:00:00 UTC"):
        pki.check(leaf, crls=crls, at=T0 + 8 * DAY)


def test_end_entity_as_issuer(pki: Pki) -> None:
    """PKITS 4.6.1-style: a certificate without cA=TRUE that signed another one."""
    ee, ee_key = _forge(pki.ica.certificate, pki.ica_key, subject="Not a CA")
    leaf, _ = _forge(ee, ee_key, subject="Issued by an end entity")
    with pytest.raises(InvalidPathError, match="'CN=Not a CA,C=IR' .* is not a CA") as err:
        pki.check(leaf, intermediates=[pki.ica.certificate, ee])
    assert err.value.subject == "CN=Not a CA,C=IR"


def test_ca_without_key_cert_sign(pki: Pki) -> None:
    """PKITS 4.7.1-style: a CA certificate whose keyUsage lacks keyCertSign."""
    sub, sub_key = _forge(pki.root.certificate, pki.root_key, subject="CA without keyCertSign", ca=True,
                          key_usage={"digital_signature": True, "key_cert_sign": False, "crl_sign": True})
    leaf, _ = _forge(sub, sub_key, subject="Leaf")
    with pytest.raises(InvalidPathError, match="'CN=CA without keyCertSign,C=IR' .* lacks keyCertSign"):
        pki.check(leaf, intermediates=[sub])


def test_revoked_later_valid_at_signing_time(pki: Pki) -> None:
    """A signature made before the revocation: today's CRL, used retroactively, says it was valid then."""
    later = FixedClock(T0 + 2 * DAY)
    cert = pki.issue("personal-signature")
    revoke(pki.store, cert.serial_number, "superseded", clock=later)
    crls = [crl.generate_crl(pki.store, ca.record, ca.signer, pki.dir / "crls", clock=later).der
            for ca in (pki.root, pki.ica)]
    with pytest.raises(CertificateRevokedError, match="for reason superseded"):
        pki.check(cert, crls=crls, at=T0 + 3 * DAY)
    # At the signing time the CRL is from the future: not used, unless asked.
    with pytest.raises(RevocationUnknownError):
        pki.check(cert, crls=crls, at=T0 + HOUR)
    result = pki.check(cert, crls=crls, at=T0 + HOUR, retroactive=True, revocation="hard-fail")
    assert [r.source for r in result.revocation] == ["CRL", "CRL"]


def test_translate_errors_of_callers_own_pyhanko_validation(pki: Pki) -> None:
    """The signing code runs pyHanko's validation itself; its failures read as ours."""
    import asyncio

    from asn1crypto import x509 as asn1_x509
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator.errors import PathValidationError

    from iranpki.validation import translate_error

    leaf = pki.issue(validity_days=1)
    load = lambda c: asn1_x509.Certificate.load(c.public_bytes(Encoding.DER))  # noqa: E731
    at = T0 + 2 * DAY
    context = ValidationContext(trust_roots=[load(pki.root.certificate)], other_certs=[load(pki.ica.certificate)],
                                moment=at)
    with pytest.raises(PathValidationError) as raised:
        asyncio.run(CertificateValidator(load(leaf), validation_context=context).async_validate_usage(set()))
    err = translate_error(raised.value, load(leaf), at=at)
    assert isinstance(err, CertificateExpiredError) and "expired at 2026-11-24 08:59:59 UTC" in str(err)

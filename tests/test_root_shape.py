"""The root profile can take the shape of the real "Islamic Republic of Iran Root CA-G3"."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from iranpki.ca import create_root, parse_subject
from iranpki.keys import SoftwareSigner
from iranpki.store import SqliteStore

from .conftest import VECTORS, openssl_verify, pkilint

G3_SHA256 = "AA7FF637D061295A6A003E9D6621A54F4780BAE7AEF96043A71B7C2AF276D556"


@pytest.fixture(scope="module")
def real() -> x509.Certificate:
    pem = (VECTORS / "shared" / "iran-root-ca-g3.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.fingerprint(hashes.SHA256()).hex().upper() == G3_SHA256
    return cert


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> x509.Certificate:
    base = tmp_path_factory.mktemp("g3")
    store = SqliteStore(str(base / "s.sqlite3"), create=True)
    key = rsa.generate_private_key(65537, 4096)
    root = create_root(store, SoftwareSigner(key), "root-g3",
                       parse_subject("C=IR,O=I.R.Government,OU=Root CA,CN=Islamic Republic of Iran Root CA-G3"),
                       repository_url="http://repository.test.ir")
    return root.certificate


def _ext_shape(cert: x509.Certificate) -> dict[str, bool]:
    return {e.oid.dotted_string: e.critical for e in cert.extensions}


def test_same_names_byte_for_byte(real, ours) -> None:
    assert ours.subject.public_bytes() == real.subject.public_bytes()
    assert ours.issuer.public_bytes() == ours.subject.public_bytes()


def test_same_key_signature_and_validity(real, ours) -> None:
    assert ours.public_key().key_size == real.public_key().key_size == 4096
    assert ours.signature_algorithm_oid == real.signature_algorithm_oid  # sha256WithRSAEncryption
    ours_days = (ours.not_valid_after_utc - ours.not_valid_before_utc).days
    real_days = (real.not_valid_after_utc - real.not_valid_before_utc).days
    assert abs(ours_days - real_days) <= 1


def test_same_extensions(real, ours) -> None:
    assert _ext_shape(ours) == _ext_shape(real)  # KU and BC critical, SKI; no AKI, no policies
    for cert in (ours, real):
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert bc.ca and bc.path_length is None
    assert ours.extensions.get_extension_for_class(x509.KeyUsage).value == \
        real.extensions.get_extension_for_class(x509.KeyUsage).value
    # The real root's SKI is RFC 5280 method 1 (SHA-1 of the key): ours is made the same way.
    for cert in (ours, real):
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        spk = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        assert ski == hashlib.sha1(spk).digest()


def test_both_self_verify_and_lint_the_same(real, ours, tmp_path: Path) -> None:
    files = {}
    for name, cert in (("real", real), ("ours", ours)):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        result = openssl_verify(files[name], None, files[name], "any")
        assert result.returncode == 0, result.stdout + result.stderr
    assert pkilint("lint_pkix_cert", files["ours"]) == pkilint("lint_pkix_cert", files["real"]) == []

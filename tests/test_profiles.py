"""Every profile's certificate, issued by keys on SoftHSM2, judged by independent peers:
`openssl verify -x509_strict` with the profile's purpose in its chain, and pkilint."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from iranpki.profiles import list_profiles, load_profile

from .conftest import new_key, openssl_has_purpose, openssl_purpose_for, openssl_verify, pkilint
from .samples import KEYS, SUBJECTS, request

END_ENTITY = sorted(SUBJECTS)
LINTERS = {
    "pkix": ("lint_pkix_cert", ()),
    "serverauth": ("lint_cabf_serverauth_cert", ("-t", "OV-FINAL-CERTIFICATE")),
    "smime": ("lint_cabf_smime_cert", ("-t", "MAILBOX-STRICT")),
}


def test_every_end_entity_profile_has_a_sample() -> None:
    # A profile added without a test sample would otherwise go unjudged.
    assert {p.name for p in list_profiles() if p.kind == "end-entity"} == set(END_ENTITY)


@pytest.fixture(scope="module")
def issued(hierarchy: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("issued")
    files = {}
    for name in END_ENTITY:
        for kind in ("p256", KEYS.get(name, "rsa2048")):
            if kind == "p256" and name == "code-signing":
                kind = "p384"
            cert = hierarchy["gica2"].issue(name, request(name, new_key(kind).public_key()))
            path = out / f"{name}-{kind}.pem"
            path.write_bytes(cert.pem)
            files[f"{name}-{kind}"] = path
    return files


def _profile_of(key: str) -> str:
    return key.rsplit("-", 1)[0]


def test_openssl_verifies_each_with_its_purpose(hierarchy: dict, issued: dict[str, Path]) -> None:
    for key, path in issued.items():
        profile = load_profile(_profile_of(key))
        purpose = openssl_purpose_for(profile.openssl_purpose, path)
        if purpose == "codesign" and not openssl_has_purpose("codesign"):
            # OpenSSL before 3.2 has no codesign purpose: verify the chain, check the EKU ourselves.
            purpose = "any"
            eku = x509.load_pem_x509_certificate(path.read_bytes()).extensions.get_extension_for_class(
                x509.ExtendedKeyUsage).value
            assert list(eku) == [ExtendedKeyUsageOID.CODE_SIGNING]
        result = openssl_verify(hierarchy["root_pem"], hierarchy["gica2_pem"], path, purpose)
        assert result.returncode == 0, f"{key}: {result.stdout}{result.stderr}"


def test_openssl_rejects_a_certificate_for_the_wrong_purpose(hierarchy: dict, issued: dict[str, Path]) -> None:
    # The check above must be able to fail: a TSA certificate is no TLS server certificate.
    result = openssl_verify(hierarchy["root_pem"], hierarchy["gica2_pem"], issued["tsa-p256"], "sslserver")
    assert result.returncode != 0


def test_ca_certificates_verify(hierarchy: dict) -> None:
    assert openssl_verify(hierarchy["root_pem"], None, hierarchy["root_pem"], "any").returncode == 0
    result = openssl_verify(hierarchy["root_pem"], None, hierarchy["gica2_pem"], "any")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("suite", ["pkix", "serverauth", "smime"])
def test_pkilint_finds_nothing_of_warning_or_above(issued: dict[str, Path], suite: str) -> None:
    tool, extra = LINTERS[suite]
    checked = 0
    for key, path in issued.items():
        profile = load_profile(_profile_of(key))
        if suite not in profile.lint:
            continue
        allowed = {e.code for e in profile.lint_exceptions}
        findings = pkilint(tool, path, extra=extra)
        unexpected = [f for f in findings if f not in allowed]
        assert not unexpected, f"{key}: {tool} found {unexpected}"
        checked += 1
    assert checked > 0


def test_pkilint_catches_a_bad_certificate(tmp_path: Path) -> None:
    # The lint helper must be able to fail: a certificate without key usage and with a
    # negative-looking validity is flagged.
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = new_key("p256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    from cryptography.hazmat.primitives.serialization import Encoding

    path = tmp_path / "bad.pem"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    assert pkilint("lint_pkix_cert", path)


def test_pkilint_chain_pairs(hierarchy: dict, issued: dict[str, Path]) -> None:
    pairs = [(hierarchy["root_pem"], hierarchy["gica2_pem"])]
    pairs += [(hierarchy["gica2_pem"], p) for p in issued.values()]
    for issuer, subject in pairs:
        findings = pkilint("lint_pkix_signer_signee_cert_chain", issuer, subject)
        assert not findings, f"{issuer.name} -> {subject.name}: {findings}"


def test_lint_exceptions_are_still_needed(issued: dict[str, Path]) -> None:
    # A listed exception whose finding no longer appears is stale and must be removed.
    for key, path in issued.items():
        profile = load_profile(_profile_of(key))
        if not profile.lint_exceptions:
            continue
        findings = set(pkilint("lint_pkix_cert", path))
        for exc in profile.lint_exceptions:
            assert exc.code in findings, f"{profile.name}: exception {exc.code} is no longer needed"


def test_extensions_follow_the_profile(issued: dict[str, Path], hierarchy: dict) -> None:
    level2 = "2.16.364.101.1.2"
    for key, path in issued.items():
        profile = load_profile(_profile_of(key))
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        ext = cert.extensions
        bc = ext.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca is False
        ku = ext.get_extension_for_class(x509.KeyUsage)
        spki = cert.public_key()
        wanted = set(profile.key_usage.for_key("rsa" if isinstance(spki, rsa.RSAPublicKey) else "ec"))
        assert ku.critical and _usages(ku.value) == wanted, (key, _usages(ku.value), wanted)
        policies = [p.policy_identifier.dotted_string for p in ext.get_extension_for_class(x509.CertificatePolicies).value]
        assert level2 in policies
        if profile.policies.extra:
            assert policies[0] == profile.policies.extra[0]
        if profile.ocsp_no_check:
            assert ext.get_extension_for_oid(ExtensionOID.OCSP_NO_CHECK)
        # openssl's "ocsphelper" purpose accepts any leaf and it has no "codesign" before 3.2, so
        # every profile's EKU is checked here too.
        from iranpki.profiles import EKUS

        eku = ext.get_extension_for_class(x509.ExtendedKeyUsage)
        assert list(eku.value) == [EKUS[v] for v in profile.extended_key_usage.values]
        assert eku.critical == profile.extended_key_usage.critical
        if profile.name == "tsa":
            assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
        aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        ski = hierarchy["gica2"].certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        assert aki == ski
        days = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() + 1
        assert days == profile.default_validity_days * 86400


def _usages(ku: x509.KeyUsage) -> set[str]:
    names = {"digitalSignature": "digital_signature", "nonRepudiation": "content_commitment",
             "keyEncipherment": "key_encipherment", "dataEncipherment": "data_encipherment",
             "keyAgreement": "key_agreement", "keyCertSign": "key_cert_sign", "cRLSign": "crl_sign"}
    return {n for n, attr in names.items() if getattr(ku, attr)}


def test_an_rsa_pss_hierarchy_verifies_and_lints(softhsm, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    from iranpki.ca import CertificateAuthority, create_intermediate, create_root, parse_subject
    from iranpki.keys import KeySpec, SignatureScheme
    from iranpki.keys.pkcs11 import generate_keypair
    from iranpki.store import SqliteStore

    store = SqliteStore(str(tmp_path / "s.sqlite3"), create=True)
    root = create_root(store, generate_keypair("Test", "pss-root", KeySpec.parse("rsa3072")), "pss-root",
                       parse_subject("C=IR,O=I.R.Government,OU=Root CA,CN=PSS Test Root"),
                       repository_url="http://repo.test.ir", scheme=SignatureScheme("sha256", "pss"))
    inter = create_intermediate(root, generate_keypair("Test", "pss-l2", KeySpec.parse("rsa2048")), "pss-l2", 2,
                                parse_subject("C=IR,O=GICA,CN=PSS Level 2"), ocsp_url="http://ocsp.test.ir/pss",
                                scheme=SignatureScheme("sha384", "pss"))
    # The scheme is kept with the CA: reopened from the store, it signs with PSS again.
    again = CertificateAuthority(store.get_ca("pss-l2"), inter.signer, store)
    leaf = again.issue("tsa", request("tsa", new_key("p256").public_key()))
    assert leaf.certificate.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.10"
    files = {}
    for name, cert in (("root", root.certificate), ("inter", inter.certificate), ("leaf", leaf.certificate)):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(cert.public_bytes(Encoding.PEM))
        assert not pkilint("lint_pkix_cert", files[name]), name
    # pkilint 0.13's chain linter checks every RSA signature as PKCS#1 v1.5 (certificate_key.py
    # calls verify_signature without the signature algorithm), so a PSS pair shows exactly this one
    # finding. The signatures are checked independently below (cryptography, openssl).
    pss_false_positive = ["pkix.signature_verification_failed"]
    assert pkilint("lint_pkix_signer_signee_cert_chain", files["root"], files["inter"]) == pss_false_positive
    assert pkilint("lint_pkix_signer_signee_cert_chain", files["inter"], files["leaf"]) == pss_false_positive
    inter.certificate.verify_directly_issued_by(root.certificate)
    leaf.certificate.verify_directly_issued_by(inter.certificate)
    result = openssl_verify(files["root"], files["inter"], files["leaf"], "timestampsign")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["ssl-server", "smime", "smime-encryption"])
def test_the_longest_validity_a_profile_allows_lints_clean(hierarchy: dict, tmp_path: Path, name: str) -> None:
    # The CA/B Forum limits (TLS 199 days from 2026-03-15, S/MIME 825) sit at the maximum.
    profile = load_profile(name)
    cert = hierarchy["gica2"].issue(name, request(name, new_key("p256").public_key(),
                                                  validity_days=profile.max_validity_days))
    path = tmp_path / f"{name}.pem"
    path.write_bytes(cert.pem)
    for suite in profile.lint:
        tool, extra = LINTERS[suite]
        allowed = {e.code for e in profile.lint_exceptions}
        assert not [f for f in pkilint(tool, path, extra=extra) if f not in allowed], suite

"""Bad requests each get their own clear error; a request breaking several rules hears of all."""

from __future__ import annotations

import pytest
from asn1crypto import csr as acsr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from iranpki import der
from iranpki.ca import MAX_CSR_BYTES, request_from_csr
from iranpki.errors import ProfileViolationError, RequestError, UnknownProfileError
from iranpki.profiles import load_profile

from .conftest import new_key


def make_csr(key, attrs: list[tuple], sans: list[x509.GeneralName] | None = None) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs]))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


PERSON = [(NameOID.COUNTRY_NAME, "IR"), (NameOID.SURNAME, "محمدی"), (NameOID.GIVEN_NAME, "علی"),
          (NameOID.SERIAL_NUMBER, "0499370899"), (NameOID.COMMON_NAME, "علی محمدی")]


def test_a_good_csr_is_issued(software_ca) -> None:
    cert = software_ca.issue("personal-signature", request_from_csr(make_csr(new_key(), PERSON)))
    assert cert.record.subject.startswith("CN=علی محمدی,serialNumber=0499370899")


def test_wrong_signature_fails_proof_of_possession() -> None:
    data = bytearray(make_csr(new_key(), PERSON))
    data[-5] ^= 0x01  # inside the signature
    with pytest.raises(RequestError, match="proof of possession failed"):
        request_from_csr(bytes(data))


def test_csr_signed_by_another_key_is_refused() -> None:
    # The request info of one key, signed by another: the signature is well formed but not the
    # holder's, so it is no proof of possession.
    good = acsr.CertificationRequest.load(make_csr(new_key(), PERSON))
    info = good["certification_request_info"].dump()
    other = new_key()
    sig = other.sign(info, ec.ECDSA(hashes.SHA256()))
    forged = der.sequence(info, good["signature_algorithm"].dump(), der.bit_string(sig))
    with pytest.raises(RequestError, match="proof of possession failed"):
        request_from_csr(forged)


def test_weak_rsa_key_is_a_violation(software_ca) -> None:
    weak = rsa.generate_private_key(65537, 1024)
    with pytest.raises(ProfileViolationError) as err:
        software_ca.issue("personal-signature", request_from_csr(make_csr(weak, PERSON)))
    [v] = err.value.violations
    assert v.attribute == "public key" and "1024" in v.rule


def test_missing_national_code(software_ca) -> None:
    attrs = [a for a in PERSON if a[0] != NameOID.SERIAL_NUMBER]
    with pytest.raises(ProfileViolationError) as err:
        software_ca.issue("personal-signature", request_from_csr(make_csr(new_key(), attrs)))
    assert [(v.attribute, v.value, v.rule) for v in err.value.violations] == [("subject serialNumber", None, "required")]


@pytest.mark.parametrize("code, problem", [
    ("0499370898", "check digit is 8, expected 9"),
    ("04993708", "check digit is 8, expected"),
    ("049937089X", "expected only digits"),
    ("1111111111", "all ten digits are the same"),
])
def test_malformed_national_code(software_ca, code: str, problem: str) -> None:
    attrs = [(o, code if o == NameOID.SERIAL_NUMBER else v) for o, v in PERSON]
    with pytest.raises(ProfileViolationError) as err:
        software_ca.issue("personal-signature", request_from_csr(make_csr(new_key(), attrs)))
    [v] = err.value.violations
    assert v.attribute == "subject serialNumber" and v.value == code and problem in v.rule
    assert code in str(err.value)


def test_unknown_profile_lists_the_known_ones(software_ca) -> None:
    with pytest.raises(UnknownProfileError) as err:
        load_profile("ssl")
    assert "ssl-server" in str(err.value) and "iranpki profile list" in str(err.value)


def _csr_with_raw_cn(raw: bytes, tag: int = 0x0C) -> bytes:
    """A correctly signed CSR whose commonName holds ``raw`` bytes under string ``tag``."""
    key = new_key()
    marker = "M" * len(raw)
    good = acsr.CertificationRequest.load(make_csr(key, [(NameOID.COMMON_NAME, marker)]))
    info = good["certification_request_info"].dump()
    info = info.replace(bytes((0x0C, len(raw))) + marker.encode(), bytes((tag, len(raw))) + raw)
    sig = key.sign(info, ec.ECDSA(hashes.SHA256()))
    return der.sequence(info, good["signature_algorithm"].dump(), der.bit_string(sig))


def test_non_utf8_name_is_refused() -> None:
    with pytest.raises(RequestError, match="not valid text|UTF-8"):
        request_from_csr(_csr_with_raw_cn(b"\xff\xfe\xfa\xfb"))


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(RequestError, match=f"at most {MAX_CSR_BYTES}"):
        request_from_csr(b"-----BEGIN CERTIFICATE REQUEST-----\n" + b"A" * (MAX_CSR_BYTES + 1))


def test_garbage_is_not_a_csr() -> None:
    with pytest.raises(RequestError, match="not a PKCS#10 certificate request"):
        request_from_csr(b"hello, CA")


def test_every_violation_is_listed(software_ca) -> None:
    attrs = [(NameOID.COUNTRY_NAME, "IR"), (NameOID.SURNAME, "Mohammadi"), (NameOID.GIVEN_NAME, "علی"),
             (NameOID.SERIAL_NUMBER, "0499370898"), (NameOID.COMMON_NAME, "Ali"),
             (NameOID.ORGANIZATION_NAME, "Not allowed here")]
    sans = [x509.DNSName("example.ir")]
    req = request_from_csr(make_csr(rsa.generate_private_key(65537, 1024), attrs, sans), validity_days=9999)
    with pytest.raises(ProfileViolationError) as err:
        software_ca.issue("personal-signature", req)
    got = sorted((v.attribute, v.value) for v in err.value.violations if v.attribute != "public key")
    assert got == [
        ("subject O", "Not allowed here"),
        ("subject SN", "Mohammadi"),
        ("subject serialNumber", "0499370898"),
        ("subjectAltName dns", "example.ir"),
        ("validity", "9999 days"),
        ("validity", got[5][1]),  # also: it would outlive the issuing CA
    ]
    assert got[5][1].startswith("until ")
    [key] = [v for v in err.value.violations if v.attribute == "public key"]
    assert "1024" in key.rule
    text = str(err.value)
    assert "7 place(s)" in text and "Mohammadi" in text and "Persian" in text


def test_ssl_names_are_checked(software_ca) -> None:
    from .samples import request

    key = new_key().public_key()
    bad = request("ssl-server", key, dns=["exa mple.ir", "localhost", "ok.example.ir"], ips=["10.0.0.1", "nope"])
    with pytest.raises(ProfileViolationError) as err:
        software_ca.issue("ssl-server", bad)
    assert {(v.attribute, v.value) for v in err.value.violations} == {
        ("subjectAltName dns", "exa mple.ir"), ("subjectAltName dns", "localhost"),
        ("subjectAltName ip", "10.0.0.1"), ("subjectAltName ip", "nope")}
    with pytest.raises(ProfileViolationError, match="at least one is required"):
        software_ca.issue("ssl-server", request("ssl-server", key, dns=[], ips=[]))


def test_validity_may_not_outlive_the_issuer(software_ca) -> None:
    from .samples import request

    with pytest.raises(ProfileViolationError, match="ends after the issuing CA"):
        software_ca.issue("tsa", request("tsa", new_key().public_key(), validity_days=3653,
                                         not_before=software_ca.certificate.not_valid_after_utc))


def test_level_rules_apply_to_subscriber_keys(tmp_path) -> None:
    # At level 4 the CP asks for RSA of 3072 bits or more, even where a profile allows 2048.
    from iranpki.ca import create_intermediate, create_root, parse_subject
    from iranpki.keys import SoftwareSigner
    from iranpki.policy import load_policy
    from iranpki.store import SqliteStore

    from .samples import request

    assert load_policy().level(4).min_rsa_bits == 3072
    store = SqliteStore(str(tmp_path / "s.sqlite3"), create=True)
    root = create_root(store, SoftwareSigner(new_key("p384")), "root", parse_subject("C=IR,O=T,CN=T Root"),
                       repository_url="http://r.test.ir")
    # A level-4 intermediate needs a token key: software keys are refused above level 1.
    from iranpki.errors import IssuanceError

    with pytest.raises(IssuanceError, match="lab-approved token or HSM"):
        create_intermediate(root, SoftwareSigner(new_key("p384")), "l4", 4, parse_subject("C=IR,O=T,CN=T L4"))
    assert request("tsa", rsa.generate_private_key(65537, 2048).public_key())  # (fixture sanity)

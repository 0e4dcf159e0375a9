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
    assert [(v.attribute, v.value, v.rule) for v in err.value.violations] == [("subject serialNumber", None, "required in this profile; add serialNumber=... to the subject")]


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
    with pytest.raises(RequestError, match="not a readable PKCS#10 certificate request"):
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


# ---- CSRs that gave a trace or the wrong reason (review items 8, 9, 11, 14) -------------------

def _internals(message: str) -> bool:
    return any(s in message for s in ("ParseError", "UnexpectedTag", "cryptography.io", "asn1", "Traceback"))


def test_a_csr_whose_version_is_not_zero() -> None:
    data = bytearray(make_csr(new_key(), PERSON))
    at = data.index(b"\x02\x01\x00")  # the first INTEGER: CertificationRequestInfo.version
    data[at + 2] = 0x5D
    with pytest.raises(RequestError, match=r"version field is 93; a PKCS#10 request has version 0 \(RFC 2986"):
        request_from_csr(bytes(data))


def test_a_csr_with_a_damaged_key_algorithm() -> None:
    data = bytearray(make_csr(new_key(), PERSON))
    oid = bytes.fromhex("06072a8648ce3d0201")  # id-ecPublicKey
    at = data.index(oid)
    data[at + len(oid) - 1] = 0x09
    with pytest.raises(RequestError, match="uses the algorithm 1.2.840.10045.2.9, which iranpki does not certify") as err:
        request_from_csr(bytes(data))
    assert not _internals(str(err.value))


def test_a_sha1_csr_is_refused_for_what_it_is(tmp_path) -> None:
    from .conftest import run

    out = run(["openssl", "req", "-new", "-nodes", "-newkey", "rsa:2048", "-keyout", str(tmp_path / "k"),
               "-subj", "/CN=x", "-sha1", "-out", str(tmp_path / "r.csr")])
    assert out.returncode == 0, out.stderr
    with pytest.raises(RequestError, match="signed with SHA1, which iranpki does not accept") as err:
        request_from_csr((tmp_path / "r.csr").read_bytes())
    assert "proof of possession" not in str(err.value).split("for proof of possession")[0]


@pytest.mark.parametrize("data", [b"hello, CA", b"\x30\x03\x02\x01\x00", b"\x30\x82\xff\xff" + b"\x00" * 40,
                                  b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"])
def test_damaged_csrs_are_described_in_the_users_terms(data: bytes) -> None:
    with pytest.raises(RequestError) as err:
        request_from_csr(data)
    assert not _internals(str(err.value)), str(err.value)


def test_two_csrs_in_one_file_are_refused() -> None:
    one = x509.load_der_x509_csr(make_csr(new_key(), PERSON)).public_bytes(serialization.Encoding.PEM)
    two = x509.load_der_x509_csr(make_csr(new_key(), PERSON)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(RequestError, match="holds 2 PEM blocks"):
        request_from_csr(one + two)
    with pytest.raises(RequestError, match="of type 'PUBLIC KEY', not a CERTIFICATE REQUEST"):
        request_from_csr(new_key().public_key().public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    assert request_from_csr(b"a line of explanation\n" + one).subject


def test_a_name_given_twice_is_certified_once(software_ca) -> None:
    from dataclasses import replace

    sans = [x509.DNSName("www.example.ir"), x509.DNSName("api.example.ir")]
    req = request_from_csr(make_csr(new_key(), [(NameOID.COUNTRY_NAME, "IR"), (NameOID.STATE_OR_PROVINCE_NAME, "Tehran"),
                                                (NameOID.ORGANIZATION_NAME, "Example Co")], sans))
    req = replace(req, dns=[*req.dns, "WWW.example.ir", "new.example.ir"], ips=["185.143.232.7", "185.143.232.7"])
    cert = software_ca.issue("ssl-server", req).certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.example.ir", "api.example.ir", "new.example.ir"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["185.143.232.7"]


def test_an_ordinary_openssl_csr_with_a_cn_is_accepted(software_ca, tmp_path) -> None:
    """`openssl req -subj /C=IR/ST=.../O=.../CN=www.example.ir`: the CN is accepted and goes into
    the SAN (not the subject, where the BR make it NOT RECOMMENDED); a CN that is no name of the
    site is refused, and the error says so."""
    from .conftest import REPO, openssl_verify, pkilint, run

    out = run(["openssl", "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-keyout", str(tmp_path / "k"), "-subj", "/C=IR/ST=Tehran/L=Tehran/O=Example Co/CN=www.example.ir",
               "-out", str(tmp_path / "r.csr")])
    assert out.returncode == 0, out.stderr
    issued = software_ca.issue("ssl-server", request_from_csr((tmp_path / "r.csr").read_bytes()))
    cert = issued.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []  # BR 7.1.4.3: in the SAN only
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.example.ir"]
    (tmp_path / "c.pem").write_bytes(issued.pem)
    assert pkilint("lint_cabf_serverauth_cert", tmp_path / "c.pem", extra=("-t", "OV-FINAL-CERTIFICATE")) == []
    root = software_ca.store.get_ca(software_ca.record.parent)
    (tmp_path / "root.pem").write_bytes(x509.load_der_x509_certificate(root.certificate).public_bytes(
        serialization.Encoding.PEM))
    (tmp_path / "ca.pem").write_bytes(software_ca.certificate.public_bytes(serialization.Encoding.PEM))
    assert openssl_verify(tmp_path / "root.pem", tmp_path / "ca.pem", tmp_path / "c.pem", "sslserver").returncode == 0
    assert REPO in cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value[0].full_name[0].value
    bad = request_from_csr(make_csr(new_key(), [(NameOID.COUNTRY_NAME, "IR"), (NameOID.STATE_OR_PROVINCE_NAME, "Tehran"),
                                                (NameOID.ORGANIZATION_NAME, "Example Co"),
                                                (NameOID.ORGANIZATIONAL_UNIT_NAME, "IT"),
                                                (NameOID.COMMON_NAME, "Example Co Web")],
                                    [x509.DNSName("www.example.ir")]))
    with pytest.raises(ProfileViolationError) as err:
        software_ca.issue("ssl-server", bad)
    rules = {v.attribute: v.rule for v in err.value.violations}
    assert rules["subject OU"].startswith("not allowed in this profile; remove OU from the request")
    assert "subject CN" in rules

"""The artefact checks of `iranpki cps check --artifacts`: real certificates, CRLs and OCSP
responses issued by iranpki (software keys, frozen clock) judged against a CPS's claims and the
CP, and pkilint as a library agreeing with the pkilint command-line tools."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from iranpki import crl, der
from iranpki.ca import CertificateAuthority, create_intermediate, create_root, parse_subject
from iranpki.clock import FixedClock
from iranpki.compliance.artefacts import check_artefacts, classify, describe, load_artefacts
from iranpki.compliance.lint import lint_certificate
from iranpki.compliance.model import Claim, Finding, Severity, Stage
from iranpki.errors import ComplianceError
from iranpki.keys import SoftwareSigner
from iranpki.ocsp import Responder, single_response
from iranpki.policy import CERTIFICATE_KINDS, load_policy
from iranpki.profiles import load_profile
from iranpki.store import SqliteStore

from .conftest import OCSP, REPO, ROOT_SUBJECT, new_key, pkilint, utc
from .samples import KEYS, SUBJECTS, request

T0 = utc(2026, 11, 23, 9, 0, 0)
LEVEL = 2
CP = load_policy()
# Level 2 wants CA keys on a token; where a key lives does not show in what it signs, and these
# tests need the CA's private key in hand to sign broken artefacts with cryptography's builders.
# So issuance here runs under a copy of the CP whose levels accept software keys; every check
# below runs under the real CP.
_SOFTWARE_CP = CP.model_copy(update={"levels": tuple(
    lv.model_copy(update={"keys": lv.keys.model_copy(update={"storage": "software"})}) for lv in CP.levels)})


def _gentime(moment) -> bytes:
    return b"\x18\x0f" + moment.strftime("%Y%m%d%H%M%SZ").encode("ascii")


def _claims(**overrides: int) -> list[Claim]:
    """What a CPS that follows the CP at level 2 states (each value as the CP's limit)."""
    rules = CP.level(LEVEL)
    out = [Claim("validity_days", days, "6.3.2", f"{days} days", kind=kind)
           for kind, days in rules.max_validity_days.items()]
    out += [Claim("crl_next_update_hours", rules.status.crl_next_update_hours, "4.9.7", "at most 7 days"),
            Claim("ocsp_validity_hours", rules.status.ocsp_validity_hours, "4.9.10", "valid for at most 96 hours"),
            Claim("rsa_min_bits", rules.keys.min_rsa_bits, "6.1.5", "2048 bits")]
    for name, value in overrides.items():
        kind = None
        if name.startswith("validity_days_"):
            name, kind = "validity_days", name.removeprefix("validity_days_").replace("_", "-")
        out = [c for c in out if not (c.name == name and c.kind == kind)]
        out.append(Claim(name, value, "6.3.2" if kind else "4.9.7", f"{value}", kind=kind))
    return out


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A root (P-384) and a level-2 intermediate (P-384) with software keys and a frozen clock; one
    certificate of every end-entity profile, the intermediate's CRL, the root's ARL and an OCSP response."""
    base = tmp_path_factory.mktemp("artefacts")
    clock = FixedClock(T0)
    store = SqliteStore(str(base / "store.sqlite3"), clock, create=True)
    root_key, ica_key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    root = create_root(store, SoftwareSigner(root_key), "root", parse_subject(ROOT_SUBJECT), repository_url=REPO,
                       ocsp_url=OCSP, clock=clock)
    root = CertificateAuthority(root.record, root.signer, store, clock=clock, policy=_SOFTWARE_CP)
    ica = create_intermediate(root, SoftwareSigner(ica_key), "gica2", LEVEL,
                              parse_subject("C=IR,O=E-Commerce Development Center,CN=GICA Level 2 (test)"),
                              ocsp_url=OCSP + "/gica2")
    folder = base / "clean"
    (folder / "certs").mkdir(parents=True)
    (folder / "crl").mkdir()
    (folder / "ocsp").mkdir()
    (folder / "certs" / "chain.pem").write_bytes(root.certificate.public_bytes(Encoding.PEM)
                                                 + ica.certificate.public_bytes(Encoding.PEM))
    certs = {}
    for profile in sorted(SUBJECTS):
        cert = ica.issue(profile, request(profile, new_key(KEYS.get(profile, "p256")).public_key())).certificate
        certs[profile] = cert
        suffix = ".der" if profile == "tsa" else ".pem"
        data = cert.public_bytes(Encoding.DER if suffix == ".der" else Encoding.PEM)
        (folder / "certs" / f"{profile}{suffix}").write_bytes(data)
    full = crl.generate_crl(store, ica.record, ica.signer, base / "crls", clock=clock)
    (folder / "crl" / "gica2.crl").write_bytes(full.der)
    arl = crl.generate_crl(store, root.record, root.signer, base / "crls", clock=clock)
    (folder / "crl" / "root.crl").write_bytes(x509.load_der_x509_crl(arl.der).public_bytes(Encoding.PEM))
    responder = Responder(ica.record, ica.signer)
    hours = CP.ocsp_validity_hours(LEVEL)
    single = single_response(responder.cert_id("sha1", certs["ssl-server"].serial_number), (None, None, None, 0),
                             _gentime(T0), _gentime(T0 + timedelta(hours=hours)))
    (folder / "ocsp" / "ssl.ocsp").write_bytes(responder.sign([single], T0))
    return {"folder": folder, "root": root, "ica": ica, "ica_key": ica_key, "certs": certs, "base": base}


def _copy(pki: dict, tmp_path: Path) -> Path:
    target = tmp_path / "artefacts"
    shutil.copytree(pki["folder"], target)
    return target


def _only(tmp_path: Path, name: str, data: bytes) -> list:
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / name).write_bytes(data)
    artefacts, findings = load_artefacts(str(folder))
    assert findings == []
    return artefacts


def _rules(findings: list[Finding]) -> list[str]:
    return sorted(f.rule for f in findings)


def _rebuild(pki: dict, cert: x509.Certificate, subject: x509.Name | None = None, days: int | None = None) -> bytes:
    """``cert`` made again with cryptography's CertificateBuilder, signed by the intermediate's key,
    with another subject or validity."""
    builder = (x509.CertificateBuilder().subject_name(subject or cert.subject).issuer_name(cert.issuer)
               .public_key(cert.public_key()).serial_number(cert.serial_number + 1)
               .not_valid_before(cert.not_valid_before_utc)
               .not_valid_after(cert.not_valid_before_utc + timedelta(days=days) - timedelta(seconds=1) if days
                                else cert.not_valid_after_utc))
    for ext in cert.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    return builder.sign(pki["ica_key"], hashes.SHA384()).public_bytes(Encoding.PEM)


# ---- reading and sorting ------------------------------------------------------------------------

def test_a_clean_folder_reads_whole_and_sorts_every_kind(pki: dict) -> None:
    artefacts, findings = load_artefacts(str(pki["folder"]))
    assert findings == []
    kinds = {a.name: a.kind for a in artefacts}
    # chain.pem holds two PEM blocks: each is an artefact of its own.
    assert kinds["certs/chain.pem#1"] == "root" and kinds["certs/chain.pem#2"] == "intermediate"
    for profile in SUBJECTS:
        name = f"certs/{profile}.der" if profile == "tsa" else f"certs/{profile}.pem"
        assert kinds[name] == load_profile(profile).policy_kind  # an encryption-only S/MIME one is the CP's smime
    assert kinds["crl/gica2.crl"] == "crl" and kinds["crl/root.crl"] == "arl"
    assert {a.type for a in artefacts if a.name == "ocsp/ssl.ocsp"} == {"ocsp"}
    assert {load_profile(p).policy_kind for p in SUBJECTS} | {"intermediate"} == set(CERTIFICATE_KINDS)


def test_a_clean_set_has_no_error(pki: dict) -> None:
    artefacts, _ = load_artefacts(str(pki["folder"]))
    findings = check_artefacts(artefacts, _claims(), CP, LEVEL)
    assert [f for f in findings if f.severity == Severity.ERROR] == []
    # The ssl-server profile accepts pkix.certificate_skid_end_entity_missing (lint_exceptions): pkilint
    # finds it, the check does not report it.
    ssl = next(a for a in artefacts if a.kind == "ssl-server")
    assert "pkix.certificate_skid_end_entity_missing" in {f.code for f in lint_certificate(ssl.der, "ssl-server")}
    assert not [f for f in findings if "skid" in f.message]


def test_describe_gives_the_values_the_checks_use(pki: dict) -> None:
    artefacts, _ = load_artefacts(str(pki["folder"]))
    rows = {r["file"]: r for r in describe(artefacts)}
    ssl = rows["certs/ssl-server.pem"]
    assert ssl["kind"] == "ssl-server" and ssl["key"] == "EC P-256" and ssl["validity_days"] == 199
    assert ssl["signature_hash"] == "sha384" and "2.16.364.101.1.2" in ssl["policy_oids"]
    assert rows["certs/code-signing.pem"]["key"] == "RSA-3072"
    assert rows["crl/gica2.crl"]["next_update_hours"] == 168 and rows["crl/gica2.crl"]["crl_type"] == "CRL"
    assert rows["crl/root.crl"]["crl_type"] == "ARL" and rows["crl/root.crl"]["next_update_hours"] == 8760
    assert rows["ocsp/ssl.ocsp"]["validity_hours"] == 96


def test_a_missing_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ComplianceError, match=str(tmp_path / "nowhere")):
        load_artefacts(str(tmp_path / "nowhere"))


def test_an_unreadable_file_is_a_finding_and_the_rest_is_read(pki: dict, tmp_path: Path) -> None:
    folder = _copy(pki, tmp_path)
    (folder / "certs" / "broken.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB!!!\n-----END CERTIFICATE-----\n")
    (folder / "certs" / "noise.der").write_bytes(b"\x30\x03\x02\x01\x05")
    (folder / "README.md").write_text("what is in this folder\n")
    artefacts, findings = load_artefacts(str(folder))
    assert _rules(findings) == ["ART-UNREADABLE", "ART-UNREADABLE"]
    assert {f.place for f in findings} == {"artefact certs/broken.pem", "artefact certs/noise.der"}
    assert all(f.severity == Severity.ERROR and f.stage == Stage.INSPECTION for f in findings)
    assert len(artefacts) == len(load_artefacts(str(pki["folder"]))[0])


def test_a_root_crl_is_an_arl_without_the_root_in_the_folder(pki: dict, tmp_path: Path) -> None:
    # An intermediate's folder holds its own CA certificate; its issuer names the root.
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "gica2.pem").write_bytes(pki["ica"].certificate.public_bytes(Encoding.PEM))
    shutil.copy(pki["folder"] / "crl" / "root.crl", folder / "root.crl")
    shutil.copy(pki["folder"] / "crl" / "gica2.crl", folder / "gica2.crl")
    artefacts, findings = load_artefacts(str(folder))
    assert findings == []
    assert {a.name: a.kind for a in artefacts if a.crl is not None} == {"root.crl": "arl", "gica2.crl": "crl"}
    # A year's nextUpdate is right for the root's ARL (root.crl_next_update_hours), not for a CA's CRL.
    assert check_artefacts(artefacts, _claims(), CP, LEVEL) == []


def test_a_file_is_read_by_its_content_not_its_suffix(pki: dict, tmp_path: Path) -> None:
    crl_der = (pki["folder"] / "crl" / "gica2.crl").read_bytes()
    [a] = _only(tmp_path, "status.cer", crl_der)
    assert a.type == "crl" and a.kind == "crl"


def test_a_certificate_of_no_known_kind_is_a_warning(tmp_path: Path) -> None:
    key = new_key("p256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "something")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer).public_key(key.public_key())
            .serial_number(7).not_valid_before(T0).not_valid_after(T0 + timedelta(days=30))
            .sign(key, hashes.SHA256()))
    assert classify(cert) is None
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "x.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    _, findings = load_artefacts(str(folder))
    assert [(f.rule, f.severity) for f in findings] == [("ART-UNKNOWN-KIND", Severity.WARNING)]


# ---- against the CPS and the CP -----------------------------------------------------------------

def test_an_ssl_certificate_longer_than_the_cps_says(pki: dict, tmp_path: Path) -> None:
    [a] = _only(tmp_path, "ssl.pem", pki["certs"]["ssl-server"].public_bytes(Encoding.PEM))
    findings = check_artefacts([a], _claims(validity_days_ssl_server=90), CP, LEVEL)
    assert _rules(findings) == ["ART-VALIDITY-CPS"]
    [f] = findings
    assert "199 days" in f.message and "90 days" in f.message
    assert f.requirement.startswith("CPS 6.3.2") and f.stage == Stage.INSPECTION
    assert f.place == "artefact ssl.pem: validity"


def test_a_certificate_longer_than_the_cp_allows(pki: dict, tmp_path: Path) -> None:
    data = _rebuild(pki, pki["certs"]["ssl-server"], days=200)
    [a] = _only(tmp_path, "ssl.pem", data)
    rules = _rules(check_artefacts([a], _claims(), CP, LEVEL))
    assert "ART-VALIDITY-CP" in rules and "ART-VALIDITY-CPS" in rules


def test_the_ca_certificate_is_judged_at_stage_implementation(pki: dict, tmp_path: Path) -> None:
    [a] = _only(tmp_path, "gica2.pem", pki["ica"].certificate.public_bytes(Encoding.PEM))
    findings = check_artefacts([a], _claims(validity_days_intermediate=1826), CP, LEVEL)
    assert [(f.rule, f.stage) for f in findings] == [("ART-VALIDITY-CPS", Stage.IMPLEMENTATION)]


def test_a_crl_whose_next_update_is_past_the_cp(pki: dict, tmp_path: Path) -> None:
    ica = pki["ica"].certificate
    ski = ica.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    late = (x509.CertificateRevocationListBuilder().issuer_name(ica.subject).last_update(T0)
            .next_update(T0 + timedelta(hours=200))
            .add_extension(x509.CRLNumber(99), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
            .sign(pki["ica_key"], hashes.SHA384()))
    [a] = _only(tmp_path, "late.crl", late.public_bytes(Encoding.DER))
    findings = check_artefacts([a], _claims(), CP, LEVEL)
    assert _rules(findings) == ["ART-CRL-NEXT-UPDATE-CP", "ART-CRL-NEXT-UPDATE-CPS"]
    cp = next(f for f in findings if f.rule == "ART-CRL-NEXT-UPDATE-CP")
    assert "200 hours" in cp.message and "168 hours" in cp.message


def test_a_crl_within_the_cp_but_past_the_cps(pki: dict, tmp_path: Path) -> None:
    [a] = _only(tmp_path, "gica2.crl", (pki["folder"] / "crl" / "gica2.crl").read_bytes())
    assert _rules(check_artefacts([a], _claims(crl_next_update_hours=24), CP, LEVEL)) == ["ART-CRL-NEXT-UPDATE-CPS"]


def test_an_ocsp_response_valid_longer_than_the_cps_says(pki: dict, tmp_path: Path) -> None:
    [a] = _only(tmp_path, "r.ocsp", (pki["folder"] / "ocsp" / "ssl.ocsp").read_bytes())
    assert check_artefacts([a], _claims(), CP, LEVEL) == []
    assert _rules(check_artefacts([a], _claims(ocsp_validity_hours=24), CP, LEVEL)) == ["ART-OCSP-VALIDITY-CPS"]
    # Level 4 allows the same 96 hours; the CP check bites when the CP is stricter than the response.
    assert CP.ocsp_validity_hours(4) == 96


def test_a_curve_or_hash_the_cps_does_not_name(pki: dict, tmp_path: Path) -> None:
    [a] = _only(tmp_path, "tsa.der", (pki["folder"] / "certs" / "tsa.der").read_bytes())
    claims = [Claim("ec_curves", ("P-384",), "6.1.5", "ECDSA with P-384"),
              Claim("hashes", ("sha256",), "7.1.3", "sha256WithRSAEncryption, ecdsa-with-SHA256")]
    findings = check_artefacts([a], claims, CP, LEVEL)
    assert _rules(findings) == ["ART-HASH", "ART-KEY-SIZE"]
    assert all(f.requirement.startswith(("CPS 6.1.5", "CPS 7.1.3")) for f in findings)


def test_rsa_2048_at_level_4(pki: dict, tmp_path: Path) -> None:
    [a] = _only(tmp_path, "seal.pem", pki["certs"]["organisational-seal"].public_bytes(Encoding.PEM))
    findings = check_artefacts([a], [], CP, 4)
    # The certificate also carries level 2's policy OID, which level 4 does not accept.
    assert _rules(findings) == ["ART-KEY-SIZE", "ART-POLICY-OID"]
    key = next(f for f in findings if f.rule == "ART-KEY-SIZE")
    assert "RSA-2048" in key.message and "3072" in key.message


# ---- the national validators --------------------------------------------------------------------

def _replace_attribute(name: x509.Name, oid: x509.ObjectIdentifier, value: str,
                       asn1: _ASN1Type | None = None) -> x509.Name:
    rdns = []
    for rdn in name.rdns:
        attrs = []
        for attr in rdn:
            if attr.oid == oid:
                attr = x509.NameAttribute(oid, value, asn1) if asn1 else x509.NameAttribute(oid, value)
            attrs.append(attr)
        rdns.append(x509.RelativeDistinguishedName(attrs))
    return x509.Name(rdns)


def test_a_personal_certificate_with_a_bad_national_code(pki: dict, tmp_path: Path) -> None:
    cert = pki["certs"]["personal-signature"]
    bad = _rebuild(pki, cert, _replace_attribute(cert.subject, NameOID.SERIAL_NUMBER, "0499370898",
                                                 _ASN1Type.PrintableString))
    [a] = _only(tmp_path, "person.pem", bad)
    assert a.kind == "personal-signature"
    findings = check_artefacts([a], _claims(), CP, LEVEL)
    assert _rules(findings) == ["ART-NATIONAL-CODE"]
    assert "0499370898" in findings[0].message and "check digit" in findings[0].message


def test_a_seal_with_a_bad_legal_entity_id(pki: dict, tmp_path: Path) -> None:
    cert = pki["certs"]["organisational-seal"]
    bad = _rebuild(pki, cert, _replace_attribute(cert.subject, NameOID.ORGANIZATION_IDENTIFIER, "NTRIR-10380284791"))
    [a] = _only(tmp_path, "seal.pem", bad)
    assert _rules(check_artefacts([a], _claims(), CP, LEVEL)) == ["ART-LEGAL-ENTITY-ID"]


def _as_printable_string(pki: dict, pem: bytes, text: str) -> bytes:
    """``pem`` with the UTF8String ``text`` re-tagged as a PrintableString, signed again by the
    intermediate's key (cryptography refuses to write Persian letters into a PrintableString; a
    careless CA library does not)."""
    cert = x509.load_pem_x509_certificate(pem)
    utf8 = text.encode("utf-8")
    old = b"\x0c" + der.length(len(utf8)) + utf8
    tbs = cert.tbs_certificate_bytes
    assert tbs.count(old) == 1
    tbs = tbs.replace(old, b"\x13" + old[1:])
    signature = pki["ica_key"].sign(tbs, ec.ECDSA(hashes.SHA384()))
    algorithm = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))["signature_algorithm"].dump()
    return der.sequence(tbs, algorithm, der.bit_string(signature))


@pytest.mark.parametrize("encoding", ["BMPString", "PrintableString"])
def test_a_persian_organisation_name_not_in_utf8string(pki: dict, tmp_path: Path, encoding: str) -> None:
    cert = pki["certs"]["organisational-seal"]
    name = "شرکت نمونه دو"
    if encoding == "BMPString":
        bad = _rebuild(pki, cert, _replace_attribute(cert.subject, NameOID.ORGANIZATION_NAME, name, _ASN1Type.BMPString))
    else:
        utf8 = _rebuild(pki, cert, _replace_attribute(cert.subject, NameOID.ORGANIZATION_NAME, name))
        bad = _as_printable_string(pki, utf8, name)
    [a] = _only(tmp_path, "seal.crt", bad)
    findings = check_artefacts([a], _claims(), CP, LEVEL)
    persian = [f for f in findings if f.rule == "ART-PERSIAN-NAME"]
    assert len(persian) == 1 and encoding in persian[0].message and name in persian[0].message
    # pkilint itself objects to Persian letters in a PrintableString (an ASN.1 constraint); nothing else is wrong.
    assert {f.rule for f in findings} <= {"ART-PERSIAN-NAME", "ART-LINT"}
    assert (encoding == "BMPString") == ({f.rule for f in findings} == {"ART-PERSIAN-NAME"})


def test_a_certificate_under_the_wrong_level(pki: dict, tmp_path: Path) -> None:
    [a] = _only(tmp_path, "tsa.pem", pki["certs"]["tsa"].public_bytes(Encoding.PEM))
    findings = check_artefacts([a], [], CP, 3)
    assert _rules(findings) == ["ART-POLICY-OID"]
    assert "2.16.364.101.1.2" in findings[0].message and "2.16.364.101.1.3" in findings[0].message


# ---- pkilint as a library agrees with the command-line tools ------------------------------------

def test_library_lint_agrees_with_lint_pkix_cert(tmp_path: Path) -> None:
    key = new_key("p256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(T0).not_valid_after(T0 + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    path = tmp_path / "bad.pem"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    cli = pkilint("lint_pkix_cert", path)
    assert cli, "the certificate must have a known problem"
    library = [f.code for f in lint_certificate(cert.public_bytes(Encoding.DER), None, national=False)]
    assert sorted(library) == sorted(cli)
    [a], loaded = load_artefacts(str(tmp_path))
    assert _rules(loaded) == ["ART-UNKNOWN-KIND"]  # no CA flag, no EKU: none of the CP's kinds
    lint_findings = [f for f in check_artefacts([a], [], CP, LEVEL) if f.rule == "ART-LINT"]
    assert sorted(f.place.split("pkilint ")[1] for f in lint_findings) == sorted(cli)


@pytest.mark.parametrize(("profile", "days", "tool", "detect"), [
    # 400 days breaks the TLS BR's 199-day limit (SC-081) for a certificate issued in November 2026.
    ("ssl-server", 400, "lint_cabf_serverauth_cert", "-d"),
    # 900 days is past the S/MIME BR's 825.
    ("smime", 900, "lint_cabf_smime_cert", "-g"),
])
def test_library_lint_agrees_with_the_cabf_linters(pki: dict, tmp_path: Path, profile: str, days: int, tool: str,
                                                   detect: str) -> None:
    data = _rebuild(pki, pki["certs"][profile], days=days)
    path = tmp_path / "long.pem"
    path.write_bytes(data)
    cli = set(pkilint(tool, path, extra=(detect,))) | set(pkilint("lint_pkix_cert", path))
    assert any(c.startswith("cabf.") for c in cli)
    encoded = x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    assert {f.code for f in lint_certificate(encoded, profile, national=False)} == cli


def test_library_lint_agrees_with_lint_crl_and_lint_ocsp_response(pki: dict, tmp_path: Path) -> None:
    from iranpki.compliance.lint import lint_crl, lint_ocsp_response

    # A CRL without cRLNumber and authorityKeyIdentifier (RFC 5280 5.2.1, 5.2.3 MUSTs): known problems.
    ica = pki["ica"].certificate
    bare = (x509.CertificateRevocationListBuilder().issuer_name(ica.subject).last_update(T0)
            .next_update(T0 + timedelta(hours=24)).sign(pki["ica_key"], hashes.SHA384()))
    path = tmp_path / "bare.crl"
    path.write_bytes(bare.public_bytes(Encoding.PEM))
    for crl_type in ("CRL", "ARL"):
        cli = pkilint("lint_crl", path, extra=("-t", crl_type, "-p", "PKIX"))
        assert cli, "the CRL must have a known problem"
        library = lint_crl(bare.public_bytes(Encoding.DER), crl_type)
        assert sorted(f.code for f in library) == sorted(cli)
    response = pki["folder"] / "ocsp" / "ssl.ocsp"
    assert [f.code for f in lint_ocsp_response(response.read_bytes())] == pkilint("lint_ocsp_response", response) == []


@pytest.mark.parametrize(("profile", "days"), [("ssl-server", 400), ("smime", 900)])
def test_reused_cabf_validators_judge_each_certificate_alone(pki: dict, profile: str, days: int) -> None:
    """The CA/B validator trees are built once and reused (building one parses the Public Suffix
    List): a bad certificate's findings do not leak into the next one, nor are they lost after a
    good one."""
    from iranpki.compliance import lint

    good = pki["certs"][profile].public_bytes(Encoding.DER)
    bad = x509.load_pem_x509_certificate(_rebuild(pki, pki["certs"][profile], days=days)).public_bytes(Encoding.DER)
    lint._serverauth_validator.cache_clear()
    lint._smime_validator.cache_clear()
    fresh_bad = lint_certificate(bad, profile, national=False)
    lint._serverauth_validator.cache_clear()
    lint._smime_validator.cache_clear()
    fresh_good = lint_certificate(good, profile, national=False)
    assert fresh_bad != fresh_good
    assert [lint_certificate(d, profile, national=False) for d in (bad, good, bad, good)] == [
        fresh_bad, fresh_good, fresh_bad, fresh_good]

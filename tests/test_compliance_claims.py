"""The values a CPS states (iranpki.compliance.claims), read per assurance level and compared
with the national CP: each break of the CP gives exactly one finding that names the values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iranpki.compliance.claims import (
    CLAIM_NAMES, UNITS, check_claims, convert_duration, extract_claims, parse_duration,
)
from iranpki.compliance.document import parse_cps
from iranpki.compliance.model import Claim, Severity, Stage
from iranpki.policy import load_policy

CP = load_policy()

# A CPS fragment written the way the conventions say (tables with Level columns, per-level
# sentences, several durations in one section).
FRAGMENT = """\
# General Intermediate CA CPS

## 3.2.3 Authentication of individual identity

| Level | Identity proofing |
|---|---|
| 1 | Online registration with automated inquiries against the civil registry; no visit |
| 2 | Online registration, a tracking code, then the applicant appears in person at a registration office |
| 3 | As level 2, with two documents: the national identity card and a birth certificate |
| 4 | As level 3, plus a biometric check: the fingerprint is matched against the card's chip |

### 4.9.5 Time within which CA must process the revocation request

The CA revokes a certificate within 24 hours of a verified revocation request.

### 4.9.7 CRL issuance frequency

| Level | Complete CRL issued at least every | nextUpdate at most after thisUpdate |
|---|---|---|
| 1-3 | 24 hours | 7 days |
| 4 | 12 hours | 24 hours |

In addition, a new complete CRL is issued within 6 hours of a revocation.

### 4.9.10 On-line revocation checking requirements

OCSP responses are refreshed every 2 days and are valid for at most 96 hours (nextUpdate after thisUpdate).

### 5.4.3 Retention period for audit log

Audit logs are kept on site for 2 months and retained for 7 years.

### 5.5.2 Retention period for archive

Archived records are retained for 10 years.

## 6.1.5 Key sizes

| Algorithm | Level | Minimum size / curves |
|---|---|---|
| RSA | 1-3 | 2048 bits |
| RSA | 4 | 3072 bits |
| ECDSA | all | P-256, P-384 |

### 6.2.1 Cryptographic module standards and controls

The CA's own keys are generated and kept in an HSM validated to FIPS 140-2 level 3.
Level 1 subscriber keys may be an encrypted software key file; level 2 and 3 subscriber keys are
generated on a smart card or USB token (FIPS 140-2 level 2); level 4 subscriber keys are kept in a
hardware security module.

### 6.3.2 Certificate operational periods and key pair usage periods

| Certificate | Level | Maximum validity |
|---|---|---|
| CA certificate | 1-4 | 10 years |
| Personal signature | 1-4 | 2 years |
| Organisational seal | 1-4 | 730 days |
| SSL/TLS server | 1-4 | 199 days |
| S/MIME | 1-4 | 27 months |
| Code signing | 1-4 | 39 months |
| Time-stamping (TSA) | 1-4 | 10 years |
| OCSP signer | 1-4 | 1 year |
| Root CA certificate | 1-4 | 20 years |

### 7.1.3 Algorithm object identifiers

Certificates and CRLs are signed with sha256WithRSAEncryption, sha384WithRSAEncryption,
ecdsa-with-SHA256, ecdsa-with-SHA384 or RSASSA-PSS with SHA-512. SHA-1 and MD5 are never used.

### 7.1.6 Certificate policy object identifier

Level 1: 2.16.364.101.1.1; level 2: 2.16.364.101.1.2; level 3: 2.16.364.101.1.3; level 4: 2.16.364.101.1.4.

## 8.1 Frequency or circumstances of assessment

A compliance audit takes place at least once every 12 months, and within 3 months of a change of CA system.
"""

COMMON = {
    ("validity_days", "intermediate"): 3650, ("validity_days", "personal-signature"): 730,
    ("validity_days", "organisational-seal"): 730, ("validity_days", "ssl-server"): 199,
    ("validity_days", "smime"): 822, ("validity_days", "code-signing"): 1187, ("validity_days", "tsa"): 3650,
    ("validity_days", "ocsp-signer"): 365,
    ("ec_curves", None): ("P-256", "P-384"),
    ("hashes", None): ("sha256", "sha384", "sha512"),
    ("crl_publish_within_hours", None): 6, ("revocation_processing_hours", None): 24,
    ("ocsp_validity_hours", None): 96, ("audit_log_retention_years", None): 7,
    ("archive_retention_years", None): 10, ("compliance_audit_months", None): 12,
    ("policy_oids", None): ("2.16.364.101.1.1", "2.16.364.101.1.2", "2.16.364.101.1.3", "2.16.364.101.1.4"),
}
PER_LEVEL = {
    1: {("rsa_min_bits", None): 2048, ("crl_next_update_hours", None): 168,
        ("identity_proofing", None): "automated-inquiry", ("key_storage", None): "software"},
    2: {("rsa_min_bits", None): 2048, ("crl_next_update_hours", None): 168,
        ("identity_proofing", None): "in-person", ("key_storage", None): "token"},
    3: {("rsa_min_bits", None): 2048, ("crl_next_update_hours", None): 168,
        ("identity_proofing", None): "in-person-two-documents", ("key_storage", None): "token"},
    4: {("rsa_min_bits", None): 3072, ("crl_next_update_hours", None): 24,
        ("identity_proofing", None): "in-person-two-documents-biometric", ("key_storage", None): "hsm"},
}


def claims_of(text: str, level: int) -> tuple[dict[tuple[str, str | None], object], list]:
    claims, unread = extract_claims(parse_cps(text, "cps.md"), level, CP)
    got = {(c.name, c.kind): c.value for c in claims}
    assert len(got) == len(claims), "one claim per name and kind"
    return got, unread


def findings_of(text: str, level: int) -> list:
    claims, unread = extract_claims(parse_cps(text, "cps.md"), level, CP)
    assert unread == []
    return check_claims(claims, CP, level)


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_fragment_gives_exactly_the_expected_claims(level: int) -> None:
    got, unread = claims_of(FRAGMENT, level)
    assert got == COMMON | PER_LEVEL[level]
    assert unread == []
    assert check_claims(extract_claims(parse_cps(FRAGMENT), level, CP)[0], CP, level) == []


def test_claims_name_their_section_and_words() -> None:
    claims, _ = extract_claims(parse_cps(FRAGMENT), 4, CP)
    crl = next(c for c in claims if c.name == "crl_next_update_hours")
    assert crl.section == "4.9.7" and crl.level == 4 and "24 hours" in crl.text
    publish = next(c for c in claims if c.name == "crl_publish_within_hours")
    assert publish.level is None and "of a revocation" in publish.text
    assert {c.name for c in claims} == set(CLAIM_NAMES)


def one(findings: list, rule: str) -> object:
    assert [f.rule for f in findings] == [rule], [f.message for f in findings]
    f = findings[0]
    assert f.severity is Severity.ERROR and f.fix and f.requirement.startswith("national CP level ")
    return f


def test_validity_longer_than_the_cp() -> None:
    f = one(findings_of(FRAGMENT.replace("| SSL/TLS server | 1-4 | 199 days |", "| SSL/TLS server | 1-4 | 398 days |"), 2),
            "CPS-CLAIM-VALIDITY")
    assert f.place == "CPS 6.3.2"
    assert f.message == ("CPS 6.3.2 states SSL/TLS server certificates valid 398 days; the national CP allows at most "
                         "199 days at level 2")
    assert f.requirement == "national CP level 2, max_validity_days.ssl-server: at most 199 days"


def test_rsa_1024_at_level_3() -> None:
    f = one(findings_of(FRAGMENT.replace("| RSA | 1-3 | 2048 bits |", "| RSA | 1-3 | 1024 bits |"), 3),
            "CPS-CLAIM-KEY-SIZE")
    assert f.stage is Stage.TECHNICAL and "1024 bits" in f.message and "at least 2048 bits" in f.message


def test_sha1_named_as_allowed() -> None:
    text = FRAGMENT.replace("or RSASSA-PSS with SHA-512.", "or sha1WithRSAEncryption.")
    f = one(findings_of(text, 1), "CPS-CLAIM-HASH")
    assert f.stage is Stage.TECHNICAL and "sha1" in f.message and "sha256, sha384, sha512" in f.message


def test_crl_next_update_10_days_at_level_4() -> None:
    f = one(findings_of(FRAGMENT.replace("| 4 | 12 hours | 24 hours |", "| 4 | 12 hours | 10 days |"), 4),
            "CPS-CLAIM-CRL-NEXT-UPDATE")
    assert f.place == "CPS 4.9.7" and "240 hours" in f.message and "at most 24 hours" in f.message
    # The same CPS is fine at level 2, where its rows 1-3 say 7 days.
    assert findings_of(FRAGMENT.replace("| 4 | 12 hours | 24 hours |", "| 4 | 12 hours | 10 days |"), 2) == []


def test_ocsp_valid_12_days() -> None:
    f = one(findings_of(FRAGMENT.replace("valid for at most 96 hours", "valid for at most 12 days"), 1),
            "CPS-CLAIM-OCSP-VALIDITY")
    assert "288 hours" in f.message and "96 hours" in f.message


def test_identity_by_automated_inquiry_at_level_2() -> None:
    text = FRAGMENT.replace("| 2 | Online registration, a tracking code, then the applicant appears in person at a "
                            "registration office |", "| 2 | Automated inquiries against the civil registry |")
    f = one(findings_of(text, 2), "CPS-CLAIM-IDENTITY")
    assert "automated-inquiry" in f.message and "in-person" in f.message and f.place == "CPS 3.2.3"


def test_software_keys_at_level_2() -> None:
    text = FRAGMENT.replace("Level 1 subscriber keys may be", "Level 1 and 2 subscriber keys may be").replace(
        "level 2 and 3 subscriber keys are", "level 3 subscriber keys are")
    f = one(findings_of(text, 2), "CPS-CLAIM-KEY-STORAGE")
    assert f.stage is Stage.TECHNICAL and "software" in f.message and "token" in f.message


def test_archive_kept_2_years() -> None:
    f = one(findings_of(FRAGMENT.replace("retained for 10 years", "retained for 2 years"), 3),
            "CPS-CLAIM-ARCHIVE-RETENTION")
    assert "2 years" in f.message and "at least 10 years" in f.message


def test_compliance_audit_every_24_months() -> None:
    f = one(findings_of(FRAGMENT.replace("once every 12 months", "once every 24 months"), 1),
            "CPS-CLAIM-COMPLIANCE-AUDIT")
    assert f.place == "CPS 8.1" and "24 months" in f.message and "12 months" in f.message


def test_missing_policy_oid() -> None:
    f = one(findings_of(FRAGMENT.replace("; level 3: 2.16.364.101.1.3", ""), 3), "CPS-CLAIM-POLICY-OID")
    assert "2.16.364.101.1.3" in f.message and f.place == "CPS 7.1.6"


def test_persian_digits_and_units() -> None:
    text = FRAGMENT.replace("retained for 7 years", "نگهداری ۷ سال").replace(
        "within 24 hours of a verified", "ظرف ۴۸ ساعت پس از درخواست")
    got, _ = claims_of(text, 1)
    assert got[("audit_log_retention_years", None)] == 7
    assert got[("revocation_processing_hours", None)] == 48
    text = "حداکثر ۱۰ روز و ۲ هفته"
    assert [(v, u, text[a:b]) for v, u, (a, b) in parse_duration(text)] == [(10, "day", "۱۰ روز"), (2, "week", "۲ هفته")]


def test_two_durations_in_one_sentence_go_to_their_keywords() -> None:
    text = FRAGMENT.replace("In addition, a new complete CRL is issued within 6 hours of a revocation.",
                            "A new CRL follows within 2 hours of a revocation, and nextUpdate is at most 5 days "
                            "after thisUpdate.")
    text = text.replace("| 1-3 | 24 hours | 7 days |\n| 4 | 12 hours | 24 hours |\n", "")
    got, _ = claims_of(text, 1)
    assert got[("crl_publish_within_hours", None)] == 2
    assert got[("crl_next_update_hours", None)] == 120


def test_a_sentence_naming_several_levels() -> None:
    text = FRAGMENT.replace(
        "Audit logs are kept on site for 2 months and retained for 7 years.",
        "Audit logs of level 1 are kept for 3 years, those of levels 2-4 for 8 years.")
    assert claims_of(text, 1)[0][("audit_log_retention_years", None)] == 3
    assert claims_of(text, 3)[0][("audit_log_retention_years", None)] == 8


def test_unreadable_section_gives_unread() -> None:
    text = FRAGMENT.replace("OCSP responses are refreshed every 2 days and are valid for at most 96 hours "
                            "(nextUpdate after thisUpdate).", "OCSP responses are kept fresh.")
    claims, unread = extract_claims(parse_cps(text), 2, CP)
    assert "ocsp_validity_hours" not in {c.name for c in claims}
    assert [(f.rule, f.severity, f.place) for f in unread] == [("CPS-CLAIM-UNREAD", Severity.WARNING, "CPS 4.9.10")]
    assert "OCSP" in unread[0].message and "valid for at most 4 days" in unread[0].fix


def test_missing_section_gives_unread_naming_it() -> None:
    text = FRAGMENT.split("## 8.1")[0]
    _, unread = extract_claims(parse_cps(text), 1, CP)
    assert [f.place for f in unread] == ["CPS 8.1"] and "is missing" in unread[0].message


def test_check_claims_built_by_hand() -> None:
    claim = Claim(name="validity_days", value=3653, section="6.3.2", text="CA certificate | 3653 days",
                  kind="intermediate")
    assert check_claims([claim], CP, 1) == []
    bigger = Claim(name="validity_days", value=3654, section="6.3.2", text="", kind="intermediate")
    assert one(check_claims([bigger], CP, 1), "CPS-CLAIM-VALIDITY")


def test_units_compare_sensibly() -> None:
    assert convert_duration(2, "year", "day") == 730
    assert convert_duration(12, "month", "year") == 1
    assert convert_duration(39, "month", "day") == 1187
    assert convert_duration(18, "month", "year", round_up=False) == 1
    assert convert_duration(90, "minute", "hour") == 2
    assert parse_duration("OID 2.16.364.101.1.2, FIPS 140-2, section 4.9.7") == []


@given(st.integers(min_value=0, max_value=999_999), st.sampled_from(sorted(UNITS)),
       st.sampled_from(["", "s"]), st.sampled_from([" ", "-", "  "]))
def test_parse_duration_round_trip(value: int, unit: str, plural: str, gap: str) -> None:
    text = f"at most {value}{gap}{unit}{plural} after"
    assert parse_duration(text) == [(value, unit, (8, len(text) - len(" after")))]
    assert convert_duration(value, unit, unit) == value


@given(st.integers(min_value=0, max_value=999_999), st.sampled_from(["دقیقه", "ساعت", "روز", "هفته", "ماه", "سال"]))
def test_parse_duration_round_trip_persian(value: int, word: str) -> None:
    persian = str(value).translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
    [(got, unit, _)] = parse_duration(f"حداکثر {persian} {word}")
    assert got == value and unit == dict(zip(["دقیقه", "ساعت", "روز", "هفته", "ماه", "سال"], sorted(
        UNITS, key=UNITS.__getitem__)))[word]


SENTENCES = """\
### 3.2.3 Authentication of individual identity
For level 1, identity is established by automated inquiries against the national registries, for level 2 by an
in-person visit to a registration office. Level 3: as level 2, with a second identity document; level 4 adds a
fingerprint match.

### 4.9.7 CRL issuance frequency
Complete CRLs are issued every 24 hours with a nextUpdate 7 days after thisUpdate; a new CRL is published within
1 hour after any revocation.

### 4.9.10 On-line revocation checking requirements
OCSP responses carry a nextUpdate of 4 days and are re-signed at least 2 days before nextUpdate.

### 6.1.5 Key sizes
Subscriber RSA keys are at least 2048 bits (3072 bits at level 4); ECDSA keys use secp256r1 or secp384r1.

### 6.2.1 Cryptographic module standards and controls
The CA keys are in an HSM (FIPS 140-2 level 3). Subscriber keys at level 1 may be software keys or on a mobile
phone. At levels 2 and 3 keys are generated on a token, never in software. Level 4 keys are kept in an HSM.

### 6.3.2 Certificate operational periods
The CA certificate is valid for 10 years. SSL/TLS server certificates are valid for at most 199 days, personal
signature and organisational seal certificates for 2 years.

### 8.1 Frequency or circumstances of assessment
An annual compliance audit is performed.
"""


@pytest.mark.parametrize(("level", "identity", "storage", "bits"), [
    (1, "automated-inquiry", "software", 2048), (2, "in-person", "token", 2048),
    (3, "in-person-two-documents", "token", 2048), (4, "in-person-two-documents-biometric", "hsm", 3072)])
def test_values_stated_in_sentences(level: int, identity: str, storage: str, bits: int) -> None:
    got, _ = claims_of(SENTENCES, level)
    assert got[("identity_proofing", None)] == identity
    assert got[("key_storage", None)] == storage  # "FIPS 140-2 level 3" is not assurance level 3
    assert got[("rsa_min_bits", None)] == bits
    assert got[("validity_days", "intermediate")] == 3650
    assert got[("validity_days", "ssl-server")] == 199
    assert got[("validity_days", "personal-signature")] == got[("validity_days", "organisational-seal")] == 730
    assert got[("crl_next_update_hours", None)] == 168
    assert got[("crl_publish_within_hours", None)] == 1
    assert got[("ocsp_validity_hours", None)] == 96
    assert got[("compliance_audit_months", None)] == 12
    assert got[("ec_curves", None)] == ("P-256", "P-384")


def test_ocsp_section_with_availability_and_responder_certificate() -> None:
    text = FRAGMENT.replace(
        "OCSP responses are refreshed every 2 days and are valid for at most 96 hours (nextUpdate after thisUpdate).",
        "The responder is available 24 hours a day, 7 days a week. Its delegated responder certificate is valid "
        "for 30 days. OCSP responses are valid for at most 4 days.")
    got, unread = claims_of(text, 1)
    assert got[("ocsp_validity_hours", None)] == 96 and unread == []


def test_working_days_and_negated_methods() -> None:
    text = FRAGMENT.replace("within 24 hours of a verified revocation request", "within 2 working days of a "
                            "verified revocation request")
    f = one(findings_of(text, 1), "CPS-CLAIM-REVOCATION-DELAY")
    assert "48 hours" in f.message and "at most 24 hours" in f.message
    text = FRAGMENT.replace("level 2 and 3 subscriber keys are\ngenerated on a smart card or USB token",
                            "level 2 and 3 subscriber keys are\nnever software keys but a smart card or USB token")
    assert claims_of(text, 2)[0][("key_storage", None)] == "token"


def test_ocsp_sentence_with_refresh_and_revocation_delays() -> None:
    text = FRAGMENT.replace(
        "OCSP responses are refreshed every 2 days and are valid for at most 96 hours (nextUpdate after thisUpdate).",
        "OCSP responses are signed by a delegated responder certificate of the same level and are valid for\n"
        "at most 96 hours (nextUpdate after thisUpdate); a new response is signed at least 48 hours before the\n"
        "nextUpdate of the previous one, and within 1 hour of a revocation.")
    assert claims_of(text, 3)[0][("ocsp_validity_hours", None)] == 96


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_example_cps_states_every_claim_within_the_cp(level: int) -> None:
    from pathlib import Path

    from iranpki.compliance.document import read_cps

    path = Path(__file__).parent.parent / "policies" / "examples" / "general-intermediate-ca-cps.md"
    claims, unread = extract_claims(read_cps(str(path)), level, CP)
    assert unread == []
    assert {c.name for c in claims} == set(CLAIM_NAMES)
    assert {c.kind for c in claims if c.name == "validity_days"} == set(CP.level(level).max_validity_days)
    assert check_claims(claims, CP, level) == []


# --- issue 13 item 6: what real CPS documents do (short excerpts written for the test) ----------

REFERRING = """\
# Example CA Certification Practice Statement

### 4.9.7 CRL issuance frequency

CRLs are issued as described in Section 7.2.

### 6.3.2 Certificate operational periods and key pair usage periods

See Section 7.1 for the validity periods.

## 7.1 Certificate profile

| Certificate | Maximum validity |
|---|---|
| Subordinate CAs | 8 years |
| TLS server certificates | 199 days |

Keys: ECDSA P- 256 and P -384.

### 7.1.6 Certificate policy object identifier

The policy identifiers are listed in Section 7.1.

## 7.2 CRL profile

A complete CRL has a nextUpdate at most 7 days after its thisUpdate.
"""


def test_values_in_section_7_are_read_where_4_9_7_and_6_3_2_refer_there() -> None:
    got, _ = claims_of(REFERRING, 2)
    assert got[("crl_next_update_hours", None)] == 168
    # "Subordinate CAs": a plural kind name is the CA certificate.
    assert got[("validity_days", "intermediate")] == 8 * 365 and got[("validity_days", "ssl-server")] == 199
    # A section's own statement still wins over the one it refers to.
    own = REFERRING.replace("CRLs are issued as described in Section 7.2.",
                            "A complete CRL's nextUpdate is at most 4 days after thisUpdate; see also Section 7.2.")
    assert claims_of(own, 2)[0][("crl_next_update_hours", None)] == 96


def test_curve_names_with_spaces_are_read() -> None:
    text = "## 6.1.5 Key sizes\n\nSubscriber keys are RSA of 2048 bits or ECDSA on P- 256 or P -384.\n"
    assert claims_of(text, 2)[0][("ec_curves", None)] == ("P-256", "P-384")


def test_when_an_investigation_begins_is_not_the_revocation_delay() -> None:
    text = ("### 4.9.5 Time within which CA must process the revocation request\n\n"
            "The CA begins investigating a certificate problem report within 72 hours of receiving it. "
            "The CA revokes the certificate within 24 hours of a verified revocation request.\n")
    assert claims_of(text, 2)[0][("revocation_processing_hours", None)] == 24
    only = ("### 4.9.5 Time within which CA must process the revocation request\n\n"
            "Within 72 hours of receiving a report, the CA begins its investigation.\n")
    assert ("revocation_processing_hours", None) not in claims_of(only, 2)[0]


def test_what_the_real_cps_trial_found_is_read() -> None:
    """Issue 13 item 6, from trying real CPS documents (excerpts written for the test)."""
    # A list item under a lead-in that says what it is about; curve names with typographic hyphens.
    keys = ("## 6.1.5 Key sizes\n\nFor RSA key pairs, the CA SHALL ensure that:\n"
            "- the modulus size, when encoded, is at least 2048 bits; and\n- the modulus size is divisible by 8.\n\n"
            "For ECDSA key pairs:\n- the key is a point on the NIST P\u2010256 or P\u2010384 curve.\n")
    got = claims_of(keys, 2)[0]
    assert got[("rsa_min_bits", None)] == 2048 and got[("ec_curves", None)] == ("P-256", "P-384")
    # "See paragraph 4.10.1", and lists of sections.
    para = ("### 4.9.7 CRL issuance frequency\n\nSee paragraph 4.10.1.\n\n"
            "### 4.10.1 Operational characteristics\n\nA complete CRL's nextUpdate is 5 days after its thisUpdate.\n")
    assert claims_of(para, 2)[0][("crl_next_update_hours", None)] == 120
    listed = para.replace("See paragraph 4.10.1.", "See sections 4.10 and 4.10.1.")
    assert claims_of(listed, 2)[0][("crl_next_update_hours", None)] == 120
    # A section of another document is not this one's.
    other = para.replace("See paragraph 4.10.1.", "As required by Section 4.10.1 of the Baseline Requirements.")
    assert ("crl_next_update_hours", None) not in claims_of(other, 2)[0]
    # A reference up ("§4.9" from 4.9.5) reads that section's own text, not its other parts.
    up = ("## 4.9 Certificate revocation and suspension\n\nThis section covers revocation.\n\n"
          "### 4.9.1 Circumstances for revocation\n\nThe CA revokes within 5 days if a reason applies.\n\n"
          "### 4.9.5 Time within which CA must process the revocation request\n\nThe provisions of §4.9. 5 of "
          "the [SMBR] apply.\n")
    assert ("revocation_processing_hours", None) not in claims_of(up, 2)[0]
    # Profile tables under un-numbered headings: the heading names the kind.
    profiles = ("### 6.3.2 Certificate operational periods\n\nSee [Section 7.1](#71-certificate-profile).\n\n"
                "## 7.1 Certificate profile\n\n### Root CA Certificate Profile\n\n| Field | Description |\n|---|---|\n"
                "| `validity` | At most 3660 days |\n\n### TLS Subordinate CA Certificate Profile\n\n"
                "| Field | Description |\n|---|---|\n| `validity` | At most 1098 days |\n\n"
                "### Subscriber Certificate Profile (TLS server)\n\n| Field | Description |\n|---|---|\n"
                "| `validity` | At most 100 days |\n| `certificatePolicies` | Contains the policy OID 2.23.140.1.2.1 |\n\n"
                "### 7.1.6 Certificate policy object identifier\n\nSee Section 7.1.\n")
    got = claims_of(profiles, 2)[0]
    assert got[("validity_days", "intermediate")] == 1098 and got[("validity_days", "ssl-server")] == 100
    assert got[("policy_oids", None)] == ("2.23.140.1.2.1",)
    # Raw HTML pasted into the Markdown is not read as sentences (its words once made a
    # "signature" certificate of a profile table's 25 years).
    html = ("### 6.3.2 Certificate operational periods\n\n<table><tr><td>Signature algorithm</td><td>sha256</td></tr>"
            "<tr><td>Validity</td><td>25 years</td></tr></table>\n")
    assert ("validity_days", "personal-signature") not in claims_of(html, 2)[0]

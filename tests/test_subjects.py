"""Subject names: Persian text survives issuance byte for byte, as UTF8String."""

from __future__ import annotations

from asn1crypto import x509 as ax509
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from iranpki.ca import parse_subject

from .conftest import new_key
from .samples import request

PERSIAN = "ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهی"
persian_word = st.text(alphabet=PERSIAN, min_size=1, max_size=12)
persian_name = st.lists(persian_word, min_size=1, max_size=3).map(" ".join)
KEY = new_key("p256").public_key()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(given_name=persian_name, surname=persian_name)
def test_persian_names_round_trip(software_ca, given_name: str, surname: str) -> None:
    assume(len(given_name) + len(surname) + 1 <= 64)  # ub-common-name, in characters
    subject = parse_subject(f"C=IR,SN={surname},GN={given_name},serialNumber=0499370899,CN={given_name} {surname}")
    cert = software_ca.issue("personal-signature", request("personal-signature", KEY, subject=subject))
    parsed = ax509.Certificate.load(cert.record.certificate)
    rdns = {rdn[0]["type"].native: rdn[0]["value"] for rdn in parsed.subject.chosen}
    assert rdns["given_name"].name == "utf8_string" and rdns["given_name"].native == given_name
    assert rdns["surname"].name == "utf8_string" and rdns["surname"].native == surname
    assert rdns["serial_number"].name == "printable_string"
    assert rdns["country_name"].name == "printable_string"
    assert [r[0]["type"].native for r in parsed.subject.chosen] == [
        "country_name", "surname", "given_name", "serial_number", "common_name"]


@given(st.lists(st.tuples(st.sampled_from(["C", "O", "OU", "CN", "L"]),
                          st.text(alphabet=st.characters(blacklist_characters="\\,+/=", blacklist_categories=["Cs", "Cc"]),
                                  min_size=1).map(str.strip).filter(bool)), max_size=6))
def test_parse_subject_round_trip(pairs: list[tuple[str, str]]) -> None:
    text = ",".join(f"{k}={v}" for k, v in pairs)
    assert parse_subject(text) == pairs


def test_parse_subject_escapes_and_aliases() -> None:
    assert parse_subject(r"O=Example\, Inc,givenName=علی,surname=محمدی") == [
        ("O", "Example, Inc"), ("GN", "علی"), ("SN", "محمدی")]
    assert parse_subject("/C=IR/O=Example") == [("C", "IR"), ("O", "Example")]


def test_a_long_persian_name_within_64_characters_is_accepted(software_ca) -> None:
    # 60 Persian letters are 120 UTF-8 bytes: RFC 5280 counts characters, so this is allowed.
    gn, sn = "ا" * 30, "ب" * 29
    subject = parse_subject(f"C=IR,SN={sn},GN={gn},serialNumber=0499370899,CN={gn} {sn}")
    cert = software_ca.issue("personal-signature", request("personal-signature", KEY, subject=subject))
    parsed = ax509.Certificate.load(cert.record.certificate)
    assert parsed.subject.native["common_name"] == f"{gn} {sn}"
    assert cert.record.subject.startswith(f"CN={gn} {sn},")


def test_names_relying_parties_cannot_compare_are_refused_at_issuance() -> None:
    """A Persian value that ends with a digit or mixes in Latin letters breaks RFC 4518 name
    comparison (asn1crypto, hence pyHanko's path building, raised on the officer certificate of
    'دفتر پیشخوان تهران ۱'): the profile refuses it with what to write instead. The check agrees
    with asn1crypto's string preparation on every value drawn."""
    from asn1crypto import x509 as asn1_x509
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from iranpki.profiles import bidi_problem

    def asn1crypto_refuses(value: str) -> bool:
        name = asn1_x509.Name.build({"organization_name": value})
        try:
            name.hashable
        except ValueError:
            return True
        return False

    alphabet = st.sampled_from(list("دفترپیشخوانتهرانیک") + list("۱۲۳0123") + list("abcXYZ") + [" ", "-"])

    @settings(max_examples=400, deadline=None, derandomize=True, database=None)
    @given(st.text(alphabet, min_size=1, max_size=12).map(str.strip).filter(bool))
    def agrees(value: str) -> None:
        assert (bidi_problem(value) is not None) == asn1crypto_refuses(value), value

    agrees()
    assert bidi_problem("دفتر پیشخوان تهران ۱") and "begin and end" in bidi_problem("دفتر پیشخوان تهران ۱")
    assert bidi_problem("رضا احمدی p1") and "Latin" in bidi_problem("رضا احمدی p1")
    assert bidi_problem("دفتر پیشخوان شماره ۱ تهران") is None and bidi_problem("Example Co 1") is None
    from iranpki.ca import parse_subject
    from iranpki.profiles import load_profile

    violations: list = []
    load_profile("organisational-seal").normalise_subject(parse_subject(
        "C=IR,O=شرکت نمونه ۲,organizationIdentifier=NTRIR-10380284790,CN=مهر سازمانی شرکت نمونه"), violations)
    assert [v.attribute for v in violations] == ["subject O"] and "RFC 4518" in violations[0].rule

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

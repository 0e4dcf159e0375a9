"""Iranian identifiers: the shared vectors, and properties over every possible code."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iranpki.errors import IdentifierError
from iranpki.identity import (
    check_legal_entity_id,
    check_national_code,
    check_persian_name,
    legal_entity_check_digit,
    national_code_check_digit,
)

# From ../shared/vectors/README.md, "Iranian identifiers".
VALID_CODES = ["11537027", "787833770", "1583250689", "0499370899", "0790419904", "0084575948", "0963695398",
               "0684159414", "0067749828", "0650451252", "4032152314", "0076229645", "4271467685", "0200203241",
               "068415941"]
INVALID_CODES = ["12300000", "123000000", "1230000000", "0000000000", "4444444444", "9999999999", "0684159415",
                 "1111111111"]


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_national_codes(code: str) -> None:
    assert check_national_code(code) == code.zfill(10)


@pytest.mark.parametrize("code", INVALID_CODES)
def test_invalid_national_codes(code: str) -> None:
    with pytest.raises(IdentifierError) as err:
        check_national_code(code)
    assert code in str(err.value)


def test_legal_entity_vectors() -> None:
    assert check_legal_entity_id("10380284790") == "10380284790"
    with pytest.raises(IdentifierError, match="check digit is 1, expected 0"):
        check_legal_entity_id("10380284791")


@pytest.mark.parametrize("bad", ["", "abc", "12345", "049937089x", "04993708990", " "])
def test_malformed_national_codes_say_what_is_wrong(bad: str) -> None:
    with pytest.raises(IdentifierError, match="expected"):
        check_national_code(bad)


def test_persian_digits_are_read() -> None:
    assert check_national_code("۰۴۹۹۳۷۰۸۹۹") == "0499370899"


nine_digits = st.text(alphabet="0123456789", min_size=9, max_size=9).filter(
    lambda s: len(set(s)) > 1 and s[3:9] != "000000")


@given(nine_digits)
def test_national_code_check_digit_property(first: str) -> None:
    good = first + str(national_code_check_digit(first))
    assert check_national_code(good) == good
    # Every other last digit is refused: the checksum detects any single change of it.
    for d in "0123456789":
        if first + d != good:
            with pytest.raises(IdentifierError):
                check_national_code(first + d)


@given(nine_digits, st.integers(0, 8), st.integers(1, 9))
def test_national_code_detects_single_digit_errors(first: str, pos: int, delta: int) -> None:
    good = first + str(national_code_check_digit(first))
    changed = list(good)
    changed[pos] = str((int(changed[pos]) + delta) % 10)
    bad = "".join(changed)
    # Weights 10..2 are prime to 11, so a single-digit change always moves r = sum mod 11. The
    # scheme's one blind spot: r = 1 and r = 10 both give check digit 1.
    r_good = sum(int(d) * (10 - i) for i, d in enumerate(good[:9])) % 11
    r_bad = sum(int(d) * (10 - i) for i, d in enumerate(bad[:9])) % 11
    assert r_good != r_bad
    if {r_good, r_bad} != {1, 10}:
        with pytest.raises(IdentifierError):
            check_national_code(bad)


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_legal_entity_check_digit_property(first: str) -> None:
    good = first + str(legal_entity_check_digit(first))
    assert check_legal_entity_id(good) == good
    for d in "0123456789":
        if first + d != good:
            with pytest.raises(IdentifierError):
                check_legal_entity_id(first + d)


def test_persian_names() -> None:
    assert check_persian_name("علی") == "علی"
    assert check_persian_name("محمد\u200cحسین") == "محمد\u200cحسین"  # ZWNJ in compound names
    for bad in ("Ali", "علی1", "", "   ", "علی<script>"):
        with pytest.raises(IdentifierError):
            check_persian_name(bad)

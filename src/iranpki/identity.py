"""Iranian identifiers carried in certificates, and the checks on Persian names.

- National code (کد ملی), 10 digits, of a natural person. The check digit is
  ``r if r < 2 else 11 - r`` with ``r = sum(d[i] * (10 - i) for i in 0..8) mod 11``.
  Legacy 8- and 9-digit forms are left-padded with zeros. Codes whose ten digits are all the
  same, or whose digits 4 to 9 are all zero, are refused (they are placeholders, not people).
- Legal-entity national ID (شناسه ملی), 11 digits, of an organisation. With
  ``k = d[9] + 2`` and weights 29, 27, 23, 19, 17 repeating,
  ``r = sum((d[i] + k) * w[i mod 5] for i in 0..9) mod 11`` (10 counts as 0) must equal ``d[10]``.

Check functions raise :class:`~iranpki.errors.IdentifierError`; they return the normalised value.
"""

from __future__ import annotations

import unicodedata

from .errors import IdentifierError

__all__ = [
    "check_legal_entity_id",
    "check_national_code",
    "check_persian_name",
    "legal_entity_check_digit",
    "national_code_check_digit",
]

_LEGAL_WEIGHTS = (29, 27, 23, 19, 17)
# Persian and Arabic-Indic digits, which people type on Persian keyboards.
_DIGIT_MAP = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")


def _digits(kind: str, value: str, lengths: tuple[int, ...]) -> str:
    if not isinstance(value, str):
        raise IdentifierError(kind, str(value), "expected a string of digits")
    text = value.strip().translate(_DIGIT_MAP)
    if not text.isascii() or not text.isdigit():
        raise IdentifierError(kind, value, f"expected only digits ({' or '.join(map(str, lengths))} of them)")
    if len(text) not in lengths:
        raise IdentifierError(
            kind, value, f"expected {' or '.join(map(str, lengths))} digits, got {len(text)}"
        )
    return text


def national_code_check_digit(first_nine: str) -> int:
    """The check digit of a national code whose first nine digits are ``first_nine``."""
    r = sum(int(d) * (10 - i) for i, d in enumerate(first_nine)) % 11
    return r if r < 2 else 11 - r


def check_national_code(value: str) -> str:
    """Return the 10-digit national code, or raise :class:`IdentifierError`."""
    kind = "national code"
    code = _digits(kind, value, (8, 9, 10)).zfill(10)
    if len(set(code)) == 1:
        raise IdentifierError(kind, value, "all ten digits are the same (a placeholder, not a person)")
    if code[3:9] == "000000":
        raise IdentifierError(kind, value, "digits 4 to 9 are all zero (no such code is issued)")
    expected = national_code_check_digit(code[:9])
    if int(code[9]) != expected:
        raise IdentifierError(
            kind, value, f"check digit is {code[9]}, expected {expected}; re-type the code from the national card"
        )
    return code


def legal_entity_check_digit(first_ten: str) -> int:
    """The check digit of a legal-entity ID whose first ten digits are ``first_ten``."""
    k = int(first_ten[9]) + 2
    r = sum((int(d) + k) * _LEGAL_WEIGHTS[i % 5] for i, d in enumerate(first_ten)) % 11
    return 0 if r == 10 else r


def check_legal_entity_id(value: str) -> str:
    """Return the 11-digit legal-entity national ID, or raise :class:`IdentifierError`."""
    kind = "legal-entity national ID"
    ident = _digits(kind, value, (11,))
    expected = legal_entity_check_digit(ident[:10])
    if int(ident[10]) != expected:
        raise IdentifierError(
            kind, value, f"check digit is {ident[10]}, expected {expected}; re-type the ID from the registration record"
        )
    return ident


def _is_persian_letter(ch: str) -> bool:
    # The Arabic block holds the Persian letters; ZWNJ (U+200C) joins compound names.
    return ("\u0600" <= ch <= "\u06ff") or ch in "\u200c\u0020"


def check_persian_name(value: str) -> str:
    """Return ``value`` in Unicode NFC if it is a Persian name, else raise.

    A Persian name holds letters of the Arabic block (Persian letters, including the Persian
    forms of yeh and kaf), spaces and zero-width non-joiners, and at least one letter.
    """
    kind = "Persian name"
    if not isinstance(value, str):
        raise IdentifierError(kind, str(value), "expected text")
    text = unicodedata.normalize("NFC", value.strip())
    if not text:
        raise IdentifierError(kind, value, "is empty")
    bad = sorted({ch for ch in text if not _is_persian_letter(ch)})
    if bad:
        shown = ", ".join(f"U+{ord(c):04X} {c!r}" for c in bad[:5])
        raise IdentifierError(
            kind, value, f"holds characters outside the Persian alphabet ({shown}); write the name in Persian letters"
        )
    if not any("\u0621" <= ch <= "\u06d3" for ch in text):
        raise IdentifierError(kind, value, "holds no Persian letter")
    return text

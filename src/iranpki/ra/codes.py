"""Tracking codes: what an applicant gets when registering online and types at the office.

Twelve characters of Crockford's base 32 (digits and letters without I, L, O, U, which are
easily misread) carry 60 random bits; a thirteenth is a check character (ISO 7064 MOD 37-2 over
the same values, as Crockford's check symbol), so a mistyped character is caught before the
store is asked. Shown in groups, ``7K2M-9QXD-4HRTB``; read back ignoring case, spaces, dashes,
and the letters I, L (as 1) and O (as 0) that Crockford maps.

Only the code's SHA-256 is stored: a copy of the store does not reveal the codes.
"""

from __future__ import annotations

import hashlib
import secrets

from ..errors import RequestError

__all__ = ["CODE_BITS", "code_hash", "new_code", "normalise_code"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CHECK = _ALPHABET + "*~$=U"  # Crockford's 37 check symbols
_VALUE = {c: i for i, c in enumerate(_CHECK)}
_VALUE.update({"I": 1, "L": 1, "O": 0})
CODE_BITS = 60
_DATA = CODE_BITS // 5


def _check(values: list[int]) -> str:
    return _CHECK[sum(v * pow(32, len(values) - 1 - i, 37) for i, v in enumerate(values)) % 37]


def new_code() -> str:
    """A new tracking code, grouped for reading: ``XXXX-XXXX-XXXXC``."""
    values = [secrets.randbelow(32) for _ in range(_DATA)]
    text = "".join(_ALPHABET[v] for v in values) + _check(values)
    return f"{text[:4]}-{text[4:8]}-{text[8:]}"


def normalise_code(text: str) -> str:
    """The code as stored (13 characters, upper case), or RequestError saying what is wrong."""
    raw = "".join(c for c in text.upper() if c not in " -\t")
    if len(raw) != _DATA + 1:
        raise RequestError(f"a tracking code has {_DATA + 1} characters (e.g. 7K2M-9QXD-4HRTB); {len(raw)} were given")
    bad = [c for c in raw[:-1] if c not in _VALUE or _VALUE[c] >= 32]
    if bad or raw[-1] not in _VALUE:
        shown = bad[0] if bad else raw[-1]
        raise RequestError(f"{shown!r} is not a character of a tracking code; codes use the digits and the letters "
                           "A-Z without I, L, O and U")
    values = [_VALUE[c] for c in raw[:-1]]
    if _VALUE[raw[-1]] != _VALUE[_check(values)]:
        raise RequestError("the tracking code's check character does not match: a character was mistyped; "
                           "read the code again from the registration receipt")
    return "".join(_ALPHABET[v] for v in values) + _check(values)


def code_hash(code: str) -> str:
    """The SHA-256 the store keeps of a (normalised) tracking code."""
    return hashlib.sha256(normalise_code(code).encode("ascii")).hexdigest()

"""What a CA name, a key label and a token label may be, and files named after them.

A CA's name becomes a file name (``crls/NAME-7.crl``, ``certs/NAME.crt``) and a path segment of
the CRL, certificate and OCSP URLs written into every certificate it issues (RFC 5280 4.2.1.13,
4.2.2.1). A software key's label becomes a file name in the workspace's ``keys/`` folder. So
these are short slugs, checked when they are made, and again wherever a path or URL is built
from one, so that a record written by hand or by an older version can never reach outside its
folder. PKCS#11 labels stay on the token and may be any printable UTF-8 text within the sizes
the standard gives; what they must never carry is bytes that are not text or control
characters, which a module receives as a C string (a label with an undecodable byte once
crashed the process inside the module).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from .errors import InvalidNameError

__all__ = ["CA_NAME_MAX", "check_ca_name", "check_file_label", "check_object_label", "check_text",
           "check_token_label", "inside"]

CA_NAME_MAX = 63
FILE_LABEL_MAX = 64
OBJECT_LABEL_MAX = 128
_CA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_FILE_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _shown(value: object) -> str:
    """``value`` as it may be printed: undecodable bytes and control characters escaped, long
    values cut, so an error about a bad name is itself safe to print."""
    text = value if isinstance(value, str) else repr(value)
    long = isinstance(value, str) and len(value) > 40
    text = text[:40].encode("utf-8", "backslashreplace").decode("utf-8")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return f"'{text}...' ({len(value)} characters)" if long else f"'{text}'"


def check_text(value: str, what: str) -> str:
    """``value`` if it is text that encodes as UTF-8 and holds no control character; else
    :class:`InvalidNameError`. Command lines hand over undecodable bytes as lone surrogates."""
    if not isinstance(value, str):
        raise InvalidNameError(f"{what} must be text; got {type(value).__name__}", value=value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidNameError(
            f"{what} {_shown(value)} holds bytes that are not UTF-8 text; type it again in a UTF-8 terminal",
            value=value) from None
    # U+200C and U+200D (zero-width non-joiner and joiner) are part of written Persian; other
    # format characters (bidi overrides above all) can make a label read as another.
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")
                and c not in "\u200c\u200d"), None)
    if bad is not None:
        raise InvalidNameError(
            f"{what} {_shown(value)} holds the control character U+{ord(bad):04X}; use printable text only",
            value=value)
    return value


def check_ca_name(name: str) -> str:
    """A CA's name: 1 to 63 ASCII letters, digits, ``-`` and ``_``, starting with a letter or digit."""
    if not isinstance(name, str) or not _CA_NAME.fullmatch(name) or len(name) > CA_NAME_MAX:
        raise InvalidNameError(
            f"CA name {_shown(name)} is not allowed; a CA name is 1 to {CA_NAME_MAX} ASCII letters, digits, "
            "'-' and '_', starting with a letter or digit (it becomes a file name and part of the CRL and "
            "OCSP URLs in every certificate), e.g. gica2", value=name)
    return name


def check_file_label(label: str, what: str = "software key label") -> str:
    """A label that becomes a file name: 1 to 64 ASCII letters, digits, ``-``, ``_`` and ``.``,
    starting with a letter or digit (so never ``..`` or a hidden file)."""
    if not isinstance(label, str) or not _FILE_LABEL.fullmatch(label) or len(label) > FILE_LABEL_MAX:
        raise InvalidNameError(
            f"{what} {_shown(label)} is not allowed; it becomes a file name, so use 1 to {FILE_LABEL_MAX} ASCII "
            "letters, digits, '-', '_' and '.', starting with a letter or digit, e.g. tsa-2026", value=label)
    return label


def check_object_label(label: str, what: str = "key label") -> str:
    """A PKCS#11 object label (CKA_LABEL): 1 to 128 characters of printable UTF-8 text."""
    check_text(label, what)
    if not label.strip() or len(label) > OBJECT_LABEL_MAX:
        raise InvalidNameError(
            f"{what} {_shown(label)} must be 1 to {OBJECT_LABEL_MAX} characters of printable text, "
            "not only spaces", value=label)
    return label


def check_token_label(label: str) -> str:
    """A token's label: 1 to 32 bytes of printable UTF-8 (PKCS#11 CK_TOKEN_INFO.label is 32 bytes)."""
    check_text(label, "token label")
    if not label.strip() or len(label.encode("utf-8")) > 32 or label != label.rstrip(" "):
        raise InvalidNameError(
            f"token label {_shown(label)} must be 1 to 32 bytes of UTF-8 text without trailing spaces "
            "(PKCS#11 CK_TOKEN_INFO.label pads with spaces)", value=label)
    return label


def inside(folder: str | Path, name: str) -> Path:
    """``folder / name``, checked to lie inside ``folder`` once both are resolved (symbolic links
    and ``..`` followed); else :class:`InvalidNameError`. Every file named after a CA or label
    is made through this."""
    base = Path(folder).resolve()
    path = (base / name).resolve()
    if path.parent != base and base not in path.parents:
        raise InvalidNameError(f"the file name {_shown(name)} leads outside {base}; refused", value=name)
    return base / name

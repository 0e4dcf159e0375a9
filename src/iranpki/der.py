"""The narrow piece of DER (ITU-T X.690) that iranpki writes itself.

Components (names, extensions, public keys) are encoded by ``cryptography``; this module only
wraps already-encoded parts into the outer structures (TBSCertificate, Certificate, and later
the streamed CRL), where the general libraries are too slow at national scale (docs/architecture.md, measured facts).
Tests check every structure built here against ``cryptography``, ``asn1crypto`` and ``openssl``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

__all__ = [
    "bit_string",
    "context",
    "integer",
    "length",
    "octet_string",
    "oid",
    "problem",
    "sequence",
    "time",
    "tlv",
]


def length(n: int) -> bytes:
    """DER length octets (X.690 8.1.3: short form below 128, else the minimal long form)."""
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + length(len(content)) + content


def sequence(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def integer(value: int) -> bytes:
    """A DER INTEGER: two's complement in the fewest octets (X.690 8.3.2)."""
    size = (value.bit_length() + 8) // 8 if value >= 0 else ((-value - 1).bit_length() + 8) // 8
    return tlv(0x02, value.to_bytes(max(size, 1), "big", signed=True))


def octet_string(content: bytes) -> bytes:
    return tlv(0x04, content)


def bit_string(content: bytes) -> bytes:
    """A BIT STRING of whole octets (no unused bits), as signatures and keys are."""
    return tlv(0x03, b"\x00" + content)


def context(number: int, content: bytes, constructed: bool = True) -> bytes:
    """A context-specific tag [number], explicit (constructed) by default."""
    return tlv((0xA0 if constructed else 0x80) | number, content)


@lru_cache(maxsize=1024)
def oid(dotted: str) -> bytes:
    # Cached: a handful of OIDs are encoded for every certificate.
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray((arcs[0] * 40 + arcs[1],))
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def time(moment: datetime) -> bytes:
    """RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; seconds, always Z."""
    moment = moment.astimezone(timezone.utc)
    if 1950 <= moment.year <= 2049:
        return tlv(0x17, moment.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return tlv(0x18, moment.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


# What a parser's error says, in the words of someone who handed over a file: which part of the
# structure was wrong, never the parser's own types or web pages.
_PROBLEMS = (
    ("UnexpectedTag", "a field of the wrong type"), ("unexpected tag", "a field of the wrong type"),
    ("ShortData", "it ends too early (truncated)"), ("short data", "it ends too early (truncated)"),
    ("ExtraData", "extra bytes after its end"), ("extra data", "extra bytes after its end"),
    ("InvalidLength", "a length that does not fit"), ("invalid length", "a length that does not fit"),
    ("InvalidValue", "a value that is not allowed there"), ("invalid value", "a value that is not allowed there"),
    ("EncodedDefault", "a default value written out, which DER forbids"),
    ("IntegerOverflow", "a number too large"), ("InvalidSetOrdering", "a SET out of DER order"),
    ("UnknownDefinedBy", "an algorithm or type it does not know"),
    ("MalformedFraming", "no PEM block (a '-----BEGIN ...-----' line and its end line)"),
)


def problem(exc: BaseException) -> str:
    """A short description of why ``exc``'s parser refused its input, in plain words (for error
    messages: "the file is not a certificate: it ends too early (truncated), in tbs_cert")."""
    import re

    text = str(exc)
    what = next((words for token, words in _PROBLEMS if token in text), "its structure is damaged")
    where = re.search(r'location: \[([^\]]*)\]', text)
    if where:
        parts = [p.split("::")[-1] for p in re.findall(r'"([^"]+)"', where.group(1))]
        if parts:
            return f"{what}, in {'.'.join(parts)}"
    return what


#: Turns ISO 8601 text (``YYYY-MM-DDTHH:MM:SS+00:00``) into the digits of a DER time, with
#: ``bytes.translate``: the separators deleted, a "+" (of "+00:00") become the "Z".
ISO_DIGITS = (bytes.maketrans(b"+", b"Z"), b"-:T")


def generalized_time(text: str) -> bytes:
    """ISO text (UTC) to a DER GeneralizedTime in whole seconds: invalidityDate (RFC 5280 5.3.2)
    and the OCSP times (RFC 6960 4.2.2.1) always use it."""
    return b"\x18\x0f" + text.encode("ascii").translate(*ISO_DIGITS)[:14] + b"Z"

"""The OCSP messages (RFC 6960 4.1, 4.2; RFC 9919 2): requests parsed, on a fast path for the
common one-certificate request, and the parts of a response encoded byte by byte. The
signing identity is :mod:`.responder`; answering from the store is :mod:`.service`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from enum import IntEnum
from functools import lru_cache

from asn1crypto import ocsp as asn1_ocsp
from cryptography.hazmat.primitives import serialization

from .. import der
from ..der import generalized_time
from ..errors import OcspError

__all__ = ["MAX_CERT_IDS", "PREPRODUCED_HASHES", "CertId", "MalformedRequestError", "OcspRequest", "ResponseStatus", "error_response", "parse_request", "single_response"]

#: CertID hash algorithms by name: OID and digest length.
HASH_ALGORITHMS: dict[str, tuple[str, int]] = {
    "sha1": ("1.3.14.3.2.26", 20),
    "sha256": ("2.16.840.1.101.3.4.2.1", 32),
    "sha384": ("2.16.840.1.101.3.4.2.2", 48),
    "sha512": ("2.16.840.1.101.3.4.2.3", 64),
}
#: The CertID hashes responses are pre-produced for (RFC 9919 2.1.1: SHA-1 and SHA-256).
PREPRODUCED_HASHES = ("sha1", "sha256")
#: A request naming more certificates than this is refused: each costs a store read.
MAX_CERT_IDS = 100
_MAX_NONCE = 32  # RFC 9654 2.1: Nonce ::= OCTET STRING (SIZE(1..32))

_ALG_BY_OID = {oid: name for name, (oid, _) in HASH_ALGORITHMS.items()}
#: AlgorithmIdentifier DER as we write it (parameters NULL, as RFC 9919 2.1.1 shows for SHA-1)...
_ALG_DER = {name: der.sequence(der.oid(oid), b"\x05\x00") for name, (oid, _) in HASH_ALGORITHMS.items()}
#: ...and every encoding the fast path accepts (parameters NULL or absent, RFC 5754 2).
_ALG_FAST = {**{v: k for k, v in _ALG_DER.items()},
             **{der.sequence(der.oid(oid)): name for name, (oid, _) in HASH_ALGORITHMS.items()}}
_HASH_LEN = {name: size for name, (_, size) in HASH_ALGORITHMS.items()}

_NONCE_OID = "1.3.6.1.5.5.7.48.1.2"
_NONCE = der.oid(_NONCE_OID)
_BASIC = der.oid("1.3.6.1.5.5.7.48.1.1")  # id-pkix-ocsp-basic
_GOOD = b"\x80\x00"  # [0] IMPLICIT NULL
_UNKNOWN = b"\x82\x00"  # [2] IMPLICIT UnknownInfo (NULL)
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class ResponseStatus(IntEnum):
    """OCSPResponseStatus (RFC 6960 4.2.1); 4 is not used."""

    successful = 0
    malformedRequest = 1
    internalError = 2
    tryLater = 3
    sigRequired = 5
    unauthorized = 6


class MalformedRequestError(OcspError):
    """A request that is not an OCSPRequest this responder can read (answered malformedRequest)."""


def error_response(status: ResponseStatus) -> bytes:
    """An unsigned OCSPResponse with only a responseStatus (RFC 6960 4.2.1: no responseBytes)."""
    if status is ResponseStatus.successful:
        raise OcspError("a successful response carries a signed BasicOCSPResponse; use a Responder to sign one")
    return b"\x30\x03\x0a\x01" + bytes((status,))


# ---- requests ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CertId:
    """One CertID of a request (RFC 6960 4.1.1)."""

    hash: str | None  # "sha1", "sha256", ...; None: a hash algorithm this responder does not know
    name_hash: bytes
    key_hash: bytes
    serial: int
    der: bytes  # DER, echoed in the SingleResponse so that the client finds its answer


@dataclass(frozen=True, slots=True)
class OcspRequest:
    cert_ids: tuple[CertId, ...]
    nonce: bytes | None = None


def _fast_cert_id(d: bytes) -> CertId | None:
    """The CertID of the request most clients send, or None to let the full parser decide.

    That request (RFC 9919 2.1.1) is five nested SEQUENCEs, each the only content of the one
    around it (OCSPRequest, TBSRequest, requestList, Request, CertID: no version, requestorName,
    extensions or signature), then the CertID's four fields. Every length is checked to close
    exactly where its parent closes, so what passes here is a valid DER OCSPRequest.
    """
    n = len(d)
    if n > 255:
        return None
    try:
        i = start = 0
        for _ in range(5):
            start = i  # the last one is the CertID, echoed whole (header included) in the response
            if d[i] != 0x30:
                return None
            size = d[i + 1]
            if size < 0x80:
                i += 2
            elif size == 0x81 and d[i + 2] >= 0x80:
                size = d[i + 2]
                i += 3
            else:
                return None
            if i + size != n:
                return None
        alg_end = i + 2 + d[i + 1]
        name = _ALG_FAST.get(d[i:alg_end]) if d[i + 1] < 0x80 else None
        if name is None:
            return None
        hl = _HASH_LEN[name]
        i = alg_end
        if d[i] != 0x04 or d[i + 1] != hl or d[i + 2 + hl] != 0x04 or d[i + 3 + hl] != hl:
            return None
        name_hash = d[i + 2:i + 2 + hl]
        i += 4 + hl
        key_hash = d[i:i + hl]
        i += hl
        sl = d[i + 1]
        if d[i] != 0x02 or not 1 <= sl <= 21 or i + 2 + sl != n:
            return None
        first = d[i + 2]
        # A positive INTEGER in the fewest octets (X.690 8.3.2); anything else takes the slow path.
        if first & 0x80 or (first == 0 and sl > 1 and d[i + 3] < 0x80):
            return None
        return CertId(name, name_hash, key_hash, int.from_bytes(d[i + 2:n], "big"), d[start:n])
    except IndexError:
        return None


def _nonce(value: bytes) -> bytes:
    """The Nonce inside an extnValue: exactly one OCTET STRING of 1 to 32 octets (RFC 9654 2.1)."""
    if len(value) < 3 or value[0] != 0x04 or value[1] >= 0x80 or len(value) != 2 + value[1]:
        raise MalformedRequestError(
            f"the nonce extension holds {value[:40].hex()!r}, not one OCTET STRING of 1 to {_MAX_NONCE} octets "
            "(RFC 9654 2.1); send a random nonce of 16 to 32 octets, wrapped in an OCTET STRING")
    if value[1] > _MAX_NONCE:
        raise MalformedRequestError(
            f"the nonce is {value[1]} octets; RFC 9654 allows 1 to {_MAX_NONCE}. Send a shorter nonce")
    return value[2:]


def parse_request(data: bytes) -> OcspRequest:
    """Read an OCSPRequest (DER). Raises :class:`MalformedRequestError` on anything else."""
    fast = _fast_cert_id(data)
    if fast is not None:
        return OcspRequest((fast,))
    return _parse_full(data)


def _parse_full(data: bytes) -> OcspRequest:
    """:func:`parse_request` without the fast path: any OCSPRequest, read with asn1crypto."""
    if not data:
        raise MalformedRequestError("the request is empty; POST a DER OCSPRequest (application/ocsp-request)")
    try:
        req = asn1_ocsp.OCSPRequest.load(data, strict=True)
        tbs = req["tbs_request"]
        if tbs["version"].native != "v1":
            raise MalformedRequestError(f"the request has version {tbs['version'].native!r}; RFC 6960 defines v1 only")
        items = tbs["request_list"]
        if not 1 <= len(items) <= MAX_CERT_IDS:
            raise MalformedRequestError(f"the request names {len(items)} certificates; this responder answers "
                                        f"1 to {MAX_CERT_IDS} per request. Split the request")
        cert_ids = []
        for item in items:
            for ext in item["single_request_extensions"]:
                if ext["critical"].native:
                    raise MalformedRequestError(f"the request carries the critical extension "
                                                f"{ext['extn_id'].dotted}, which this responder does not "
                                                "support (RFC 6960 4.4); leave it out")
            cid = item["req_cert"]
            oid = cid["hash_algorithm"]["algorithm"].dotted
            name = _ALG_BY_OID.get(oid)
            name_hash, key_hash = cid["issuer_name_hash"].native, cid["issuer_key_hash"].native
            serial = cid["serial_number"].native
            # Echoed re-encoded, not as sent: asn1crypto reads leniently, and what it let through
            # (BER, stray octets) must not reach a signed response.
            echo = der.sequence(_ALG_DER[name] if name else der.sequence(der.oid(oid)), der.octet_string(name_hash),
                                der.octet_string(key_hash), der.integer(serial))
            cert_ids.append(CertId(name, name_hash, key_hash, serial, echo))
        nonce = None
        for ext in tbs["request_extensions"]:
            oid = ext["extn_id"].dotted
            if oid == _NONCE_OID:
                nonce = _nonce(ext["extn_value"].contents)
            elif ext["critical"].native:
                raise MalformedRequestError(f"the request carries the critical extension {oid}, which this "
                                            "responder does not support (RFC 6960 4.4); leave it out")
        return OcspRequest(tuple(cert_ids), nonce)
    except MalformedRequestError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever asn1crypto finds wrong in untrusted input
        raise MalformedRequestError(f"the request is not a DER OCSPRequest (RFC 6960 4.1.1): {exc}") from None


# ---- responders ---------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def _gentime(moment: datetime) -> bytes:
    # RFC 9919 2.2.4 / RFC 5280 4.1.2.5.2: GeneralizedTime in UTC, seconds, no fractions.
    # Cached: a responder signing on demand writes the same few seconds thousands of times.
    return b"\x18\x0f" + moment.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ").encode("ascii")


def _wrap(tag: bytes, content: bytes) -> bytes:
    # der.tlv in one call: a response signed on demand nests seven of these.
    return tag + der.length(len(content)) + content


def single_response(cert_id: bytes, status: tuple[str | None, str | None, int | None, int] | None,
                    this_update: bytes, next_update: bytes) -> bytes:
    """A SingleResponse (RFC 6960 4.2.1) for ``status`` as :meth:`Store.certificate_status` gives it
    (None: unknown). ``this_update`` and ``next_update`` are encoded GeneralizedTimes."""
    if status is None:
        cert_status = _UNKNOWN
    elif status[0] is None:
        cert_status = _GOOD
    else:
        reason = status[2]
        # revocationReason [0] EXPLICIT CRLReason, left out for unspecified (BR 7.3 follows the CRL).
        extra = b"\xa0\x03\x0a\x01" + bytes((reason,)) if reason else b""
        cert_status = _wrap(b"\xa1", generalized_time(status[0]) + extra)
    return _wrap(b"\x30", cert_id + cert_status + this_update + b"\xa0\x11" + next_update)


# ---- responder certificates --------------------------------------------------------------------


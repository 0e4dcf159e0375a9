"""The time-stamp protocol's messages (RFC 3161 2.4): requests parsed, on a fast path for the
common request, and the status and parts of a response. Who signs is :mod:`.authority`;
asking and checking a stamp is :mod:`.client`; HTTP is :mod:`.server`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import IntEnum

from asn1crypto import tsp as asn1_tsp

from .. import der
from ..errors import TsaError
from ..policy import TsaPolicy, load_policy

__all__ = ["HASH_OIDS", "MAX_NONCE_BITS", "MAX_REQUEST_BYTES", "FailureInfo", "RejectedRequestError",
           "TimeStampRequest", "parse_request", "rejection"]

log = logging.getLogger("iranpki.tsa")


#: Digest algorithms by name, and the OIDs (NIST CSOR, RFC 3279 for SHA-1 and MD5).
HASH_OIDS = {
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
    "sha1": "1.3.14.3.2.26",
    "md5": "1.2.840.113549.2.5",
}
_HASH_BY_OID = {v: k for k, v in HASH_OIDS.items()}
_WEAK = {"sha1", "md5"}
_HASH_SIZE = {"sha256": 32, "sha384": 48, "sha512": 64, "sha1": 20, "md5": 16}

_ID_SIGNED_DATA = der.oid("1.2.840.113549.1.7.2")
_ID_CT_TSTINFO = der.oid("1.2.840.113549.1.9.16.1.4")
_ID_CONTENT_TYPE = der.oid("1.2.840.113549.1.9.3")
_ID_MESSAGE_DIGEST = der.oid("1.2.840.113549.1.9.4")
_ID_SIGNING_CERT_V2 = der.oid("1.2.840.113549.1.9.16.2.47")

#: The largest nonce echoed: RFC 3161 asks for a large random integer (64 bits are typical);
#: anything above 512 bits is not a nonce but a way to make tokens big.
MAX_NONCE_BITS = 512
#: A request is small: imprint, policy, nonce, a few extensions.
MAX_REQUEST_BYTES = 16 * 1024


class FailureInfo(IntEnum):
    """PKIFailureInfo bits (RFC 3161 2.4.2)."""

    badAlg = 0  # noqa: N815 - the RFC's names
    badRequest = 2  # noqa: N815
    badDataFormat = 5  # noqa: N815
    timeNotAvailable = 14  # noqa: N815
    unacceptedPolicy = 15  # noqa: N815
    unacceptedExtension = 16  # noqa: N815
    addInfoNotAvailable = 17  # noqa: N815
    systemFailure = 25  # noqa: N815


class RejectedRequestError(TsaError):
    """A time-stamp request the TSA refuses; ``failure`` is the PKIFailureInfo bit it answers with."""

    def __init__(self, failure: FailureInfo, message: str):
        self.failure = failure
        super().__init__(message)


# ---- requests -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimeStampRequest:
    """A TimeStampReq that passed every check of :func:`parse_request`."""

    hash_name: str
    digest: bytes
    #: The MessageImprint as the TSTInfo echoes it (the request's AlgorithmIdentifier kept as sent).
    imprint_der: bytes
    policy: str | None
    nonce: int | None
    cert_req: bool


def parse_request(data: bytes, policy: TsaPolicy | None = None) -> TimeStampRequest:
    """Parse and check a DER TimeStampReq (RFC 3161 2.4.1) against the CP's ``policy``; raise
    :class:`RejectedRequestError` with the PKIFailureInfo to answer with."""
    policy = policy or load_policy().status.tsa
    if not data or len(data) > MAX_REQUEST_BYTES or data[0] != 0x30:
        raise RejectedRequestError(FailureInfo.badDataFormat,
                                   "the request is not a DER TimeStampReq (RFC 3161 2.4.1)")
    fields = _fast_fields(data, policy) or _asn1_fields(data)
    version, alg_oid, has_params, digest, imprint_der, req_policy, nonce, cert_req, extensions = fields
    if version != "v1":
        raise RejectedRequestError(FailureInfo.badDataFormat, f"request version {version!r} is not v1 (RFC 3161 2.4.1)")
    hash_name = _HASH_BY_OID.get(alg_oid)
    if hash_name is None or hash_name in _WEAK or hash_name not in policy.hashes:
        raise RejectedRequestError(
            FailureInfo.badAlg, f"the imprint hash {hash_name or alg_oid} is not accepted; "
                                f"use one of {', '.join(policy.hashes)} (RFC 3161 2.4.1)")
    if has_params:
        raise RejectedRequestError(FailureInfo.badDataFormat,
                                   f"the {hash_name} AlgorithmIdentifier has parameters; it takes none or NULL")
    if len(digest) != _HASH_SIZE[hash_name]:
        raise RejectedRequestError(
            FailureInfo.badDataFormat, f"the imprint is {len(digest)} bytes; a {hash_name} hash is "
                                       f"{_HASH_SIZE[hash_name]} (RFC 3161 2.4.1)")
    if req_policy is not None and req_policy != policy.policy_oid:
        raise RejectedRequestError(
            FailureInfo.unacceptedPolicy, f"this TSA stamps under policy {policy.policy_oid}, "
                                          f"not {req_policy}; leave reqPolicy out or ask for {policy.policy_oid}")
    if nonce is not None and (nonce < 0 and (-nonce).bit_length() > MAX_NONCE_BITS or nonce.bit_length() > MAX_NONCE_BITS):
        raise RejectedRequestError(FailureInfo.badDataFormat,
                                   f"the nonce has more than {MAX_NONCE_BITS} bits; send a 64-bit random number")
    critical = [oid for oid, crit in extensions if crit]
    if critical:
        raise RejectedRequestError(FailureInfo.unacceptedExtension,
                                   f"critical request extension {critical[0]} is not supported (RFC 3161 2.4.1)")
    return TimeStampRequest(hash_name, digest, imprint_der, req_policy, nonce, cert_req)


_Fields = tuple[str, str, bool, bytes, bytes, "str | None", "int | None", bool, list[tuple[str, bool]]]
_HASH_DER = {der.oid(oid): oid for oid in HASH_OIDS.values()}


def _asn1_fields(data: bytes) -> _Fields:
    """The fields of any TimeStampReq, read by asn1crypto (strict: no bytes after it)."""
    try:
        req = asn1_tsp.TimeStampReq.load(data, strict=True)
        imprint = req["message_imprint"]
        alg = imprint["hash_algorithm"]
        return (req["version"].native, alg["algorithm"].dotted, alg["parameters"].native is not None,
                imprint["hashed_message"].native, imprint.dump(),
                req["req_policy"].dotted if req["req_policy"].native is not None else None, req["nonce"].native,
                bool(req["cert_req"].native),
                [(e["extn_id"].dotted, bool(e["critical"].native)) for e in req["extensions"]]
                if req["extensions"].native is not None else [])
    except Exception as exc:  # noqa: BLE001 - asn1crypto parses lazily and raises many kinds
        raise RejectedRequestError(FailureInfo.badDataFormat,
                                   f"the request is not a DER TimeStampReq (RFC 3161 2.4.1): {exc}") from None


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """Tag, start of content and end of the DER TLV at ``at`` (short or 1-2 octet long lengths)."""
    tag, size = data[at], data[at + 1]
    at += 2
    if size & 0x80:
        width = size & 0x7F
        if not 1 <= width <= 2:
            raise ValueError("length")
        size = int.from_bytes(data[at:at + width], "big")
        at += width
    if at + size > len(data):
        raise ValueError("short")
    return tag, at, at + size


def _fast_fields(data: bytes, policy: TsaPolicy) -> _Fields | None:
    """The fields of the usual TimeStampReq (version 1, a known hash, our policy or none, a nonce,
    certReq, no extensions) read straight from the DER, about ten times faster than asn1crypto;
    None for anything else, which :func:`_asn1_fields` then reads and judges."""
    try:
        tag, at, end = _tlv(data, 0)
        if tag != 0x30 or end != len(data) or data[at:at + 3] != b"\x02\x01\x01":
            return None
        at += 3
        tag, start, imprint_end = _tlv(data, at)
        alg_tag, alg_at, alg_end = _tlv(data, start)
        _, _, oid_end = _tlv(data, alg_at)
        alg_oid = _HASH_DER.get(data[alg_at:oid_end])
        rest = data[oid_end:alg_end]
        if tag != 0x30 or alg_tag != 0x30 or alg_oid is None or rest not in (b"", b"\x05\x00"):
            return None
        dtag, dstart, dend = _tlv(data, alg_end)
        if dtag != 0x04 or dend != imprint_end:
            return None
        imprint_der = data[at:imprint_end]
        at = imprint_end
        req_policy = nonce = None
        cert_req = False
        if at < end and data[at] == 0x06:
            _, _, pend = _tlv(data, at)
            if data[at:pend] != der.oid(policy.policy_oid):
                return None  # another policy: asn1crypto names it in the refusal
            req_policy, at = policy.policy_oid, pend
        if at < end and data[at] == 0x02:
            _, nstart, nend = _tlv(data, at)
            body = data[nstart:nend]
            if not body or len(body) > 1 and (body[0] == 0 and body[1] < 0x80 or body[0] == 0xFF and body[1] >= 0x80):
                return None  # empty or not minimal: not DER
            nonce, at = int.from_bytes(body, "big", signed=True), nend
        if data[at:end] == b"\x01\x01\xff":
            cert_req, at = True, end
        if at != end:
            return None
        return "v1", alg_oid, False, data[dstart:dend], imprint_der, req_policy, nonce, cert_req, []
    except (IndexError, ValueError):
        return None


# ---- responses ------------------------------------------------------------------------------------

def _status_info(status: int, text: str | None = None, failure: FailureInfo | None = None) -> bytes:
    parts = [der.integer(status)]
    if text is not None:
        parts.append(der.sequence(der.tlv(0x0C, text.encode("utf-8"))))  # PKIFreeText: UTF8String
    if failure is not None:
        # A named BIT STRING in DER: the bits up to the one set, trailing zero bits left out.
        octets = bytearray(failure // 8 + 1)
        octets[failure // 8] = 0x80 >> (failure % 8)
        parts.append(der.tlv(0x03, bytes((7 - failure % 8,)) + bytes(octets)))
    return der.sequence(*parts)


def rejection(failure: FailureInfo, text: str) -> bytes:
    """A TimeStampResp with status rejection, ``text`` as statusString and ``failure`` as failInfo."""
    return der.sequence(_status_info(2, text, failure))


_GRANTED = _status_info(0)


def _gentime(moment: datetime) -> bytes:
    """GeneralizedTime in UTC with milliseconds, trailing zeros (and a bare dot) left out (RFC 3161 2.4.2)."""
    moment = moment.astimezone(timezone.utc)
    text = moment.strftime("%Y%m%d%H%M%S")
    millis = moment.microsecond // 1000
    if millis:
        text += f".{millis:03d}".rstrip("0")
    return der.tlv(0x18, text.encode("ascii") + b"Z")


def _accuracy(ms: int) -> bytes:
    """Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER (1..999) OPTIONAL, ... }."""
    seconds, millis = divmod(ms, 1000)
    parts = []
    if seconds:
        parts.append(der.integer(seconds))
    if millis:
        parts.append(der.tlv(0x80, der.integer(millis)[2:]))
    return der.sequence(*parts)



"""Time-Stamp Protocol: RFC 3161 with ESSCertIDv2 from RFC 5816, tokens as RFC 5652 SignedData.

Implemented here (the HTTP transport, RFC 3161 3.4, is in :mod:`iranpki.tsa.server`):

- RFC 3161 2.4.1 TimeStampReq, with every check the RFC asks of a TSA: version v1; a
  messageImprint whose hash the CP accepts (``status.tsa.hashes``: SHA-256, SHA-384, SHA-512;
  SHA-1, MD5 and unknown hashes are refused with ``badAlg``) and whose hashedMessage has that
  hash's length (else ``badDataFormat``); reqPolicy, when present, must be the CP's
  time-stamping policy (else ``unacceptedPolicy``); the nonce is echoed; certReq puts the TSA
  certificate in the token; any critical extension is unknown to us (``unacceptedExtension``),
  non-critical ones are ignored. Anything that is not one DER TimeStampReq gets ``badDataFormat``;
  a failure of ours gets ``systemFailure``: every request is answered with a TimeStampResp.
- RFC 3161 2.4.2 TimeStampResp: PKIStatusInfo with status granted or rejection, statusString
  and failInfo; TSTInfo v1 with the CP's policy, the request's messageImprint, a serialNumber
  unique across processes and restarts (:class:`SerialBlocks`), genTime in milliseconds (trailing
  zeros dropped, as 2.4.2 requires), the accuracy stated by the CP, ordering false, the nonce.
- RFC 5652 5 SignedData (version 3, eContentType id-ct-TSTInfo, the eContent encapsulated), one
  SignerInfo identified by issuerAndSerialNumber, signed attributes content-type,
  message-digest (5.3, 11.1, 11.2) and signing-certificate-v2 (RFC 5816 2.2.1 / RFC 5035
  ESSCertIDv2 with SHA-256, the default hash, so hashAlgorithm is left out, and issuerSerial).
- RFC 3161 2.3: the TSA certificate has a critical extended key usage holding only
  id-kp-timeStamping (the ``tsa`` profile); :func:`check_tsa_certificate` refuses any other, an
  expired one, or one for another key.

Tokens are assembled from our DER helpers (:mod:`iranpki.der`) around pre-encoded parts: a
stamp costs a little more than one signature. Every signature is verified before the token
leaves (a faulty token or HSM must not issue time-stamps that do not verify). The encoding is
checked by ``openssl ts -verify``, pyHanko and asn1crypto in the tests.

A client side for scripts and for PAdES B-T: :func:`make_request`, :func:`check_reply` and
:func:`fetch_stamp` (one HTTP POST with the standard library, to the URL given and nowhere else).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import IntEnum
from urllib.parse import urlsplit

from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import tsp as asn1_tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from .. import der
from ..clock import Clock, SystemClock
from ..errors import FaultySignatureError, TsaError
from ..keys.base import SignatureScheme, Signer
from ..policy import TsaPolicy, load_policy
from ..store.base import Store

__all__ = [
    "HASH_OIDS",
    "FailureInfo",
    "RejectedRequestError",
    "SerialBlocks",
    "Stamp",
    "TimeStampAuthority",
    "TimeStampRequest",
    "check_reply",
    "check_tsa_certificate",
    "verify_token",
    "fetch_stamp",
    "find_tsa_certificate",
    "make_request",
    "parse_request",
    "rejection",
]

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


class SerialBlocks:
    """Serial numbers for time-stamps from the store's counter ``name``, reserved ``block`` at a
    time (one store transaction per block, not per stamp). Within a process the numbers are unique
    and increasing; across processes and restarts they are unique (the store never hands a number
    out twice) and increase in the order the blocks were reserved: two processes interleave their
    blocks, so one process's stamp may carry a lower number than another's earlier stamp."""

    def __init__(self, store: Store, name: str, block: int = 100):
        if not 1 <= block <= 1_000_000:
            raise TsaError(f"a serial block of {block} is out of range; give 1 to 1000000")
        self.store = store
        self.name = name
        self.block = block
        self._next = 0
        self._end = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            if self._next >= self._end:
                first = self.store.next_numbers(self.name, self.block)
                self._next, self._end = first, first + self.block
            number = self._next
            self._next += 1
            return number


@dataclass(frozen=True)
class _Identity:
    """What the signer and its certificate put in every token, encoded once."""

    scheme: SignatureScheme
    digest_alg: bytes
    signature_alg: bytes
    sid: bytes
    signing_cert_attr: bytes
    certificates: bytes


class TimeStampAuthority:
    """Answers TimeStampReqs with TimeStampResps signed by ``signer`` under ``certificate`` (DER),
    with serial numbers from ``serials`` (a :class:`SerialBlocks`).

    ``chain``: the issuing CA certificates (DER, without the root), sent with the TSA certificate
    when a request sets certReq (RFC 3161 2.4.1 allows more than the TSA's own), so that a
    relying party holding only the national root can build the TSA's path."""

    def __init__(self, signer: Signer, certificate: bytes, serials: Callable[[], int], *,
                 policy: TsaPolicy | None = None, clock: Clock | None = None, chain: Sequence[bytes] = ()):
        self.clock = clock or SystemClock()
        check_tsa_certificate(certificate, signer, self.clock.now())
        self.not_after = x509.load_der_x509_certificate(certificate).not_valid_after_utc
        self.signer = signer
        self.certificate = certificate
        self.serials = serials
        self.policy = policy or load_policy().status.tsa
        self._policy_der = der.oid(self.policy.policy_oid)
        self._accuracy_der = _accuracy(self.policy.accuracy_ms)
        self.public_key = signer.public_key
        cert = asn1_x509.Certificate.load(certificate)
        scheme = SignatureScheme(hash=signer.key_spec.default_hash)
        issuer = cert["tbs_certificate"]["issuer"].dump()
        serial = der.integer(cert["tbs_certificate"]["serial_number"].native)
        # ESSCertIDv2 with the default hash (SHA-256): hashAlgorithm is left out (DER), issuerSerial
        # names the certificate by issuer (a GeneralName directoryName [4]) and serial (RFC 5816 2.2.1).
        ess = der.sequence(der.octet_string(hashlib.sha256(certificate).digest()),
                           der.sequence(der.sequence(der.tlv(0xA4, issuer)), serial))
        self._id = _Identity(
            scheme=scheme,
            digest_alg=der.sequence(der.oid(HASH_OIDS[scheme.hash])),
            signature_alg=scheme.algorithm_identifier(signer.key_spec),
            sid=der.sequence(issuer, serial),
            signing_cert_attr=der.sequence(_ID_SIGNING_CERT_V2, der.tlv(0x31, der.sequence(der.sequence(ess)))),
            # certificates [0] IMPLICIT SET OF: DER orders the members by their encodings.
            certificates=der.tlv(0xA0, b"".join(sorted([certificate, *chain]))),
        )
        self._hash = getattr(hashlib, scheme.hash)

    def close(self) -> None:
        self.signer.close()

    def respond(self, data: bytes) -> bytes:
        """A DER TimeStampResp for the request ``data``, whatever ``data`` holds: a token, or a
        rejection naming the reason. Never raises."""
        try:
            request = parse_request(data, self.policy)
        except RejectedRequestError as exc:
            return rejection(exc.failure, str(exc))
        try:
            return der.sequence(_GRANTED, self.token(request))
        except Exception:  # noqa: BLE001 - the client gets systemFailure, the log the reason
            log.exception("a time-stamp could not be signed")
            return rejection(FailureInfo.systemFailure, "the time-stamp could not be signed; try again later")

    def token(self, request: TimeStampRequest, at: datetime | None = None) -> bytes:
        """The TimeStampToken (a DER ContentInfo holding SignedData) for a checked request."""
        at = at or self.clock.now()
        if at > self.not_after:
            # A TSA that ran past its certificate's end would issue tokens no one can validate.
            raise TsaError(f"the TSA certificate expired on {self.not_after:%Y-%m-%d %H:%M} UTC; issue a new one "
                           "with --profile tsa and restart the TSA")
        ident = self._id
        tst = der.sequence(
            b"\x02\x01\x01",  # version v1
            self._policy_der,
            request.imprint_der,
            der.integer(self.serials()),
            _gentime(at),
            self._accuracy_der,
            der.integer(request.nonce) if request.nonce is not None else b"",
        )
        attrs = sorted((  # SET OF in DER: sorted by encoding (X.690 11.6)
            der.sequence(_ID_CONTENT_TYPE, der.tlv(0x31, _ID_CT_TSTINFO)),
            der.sequence(_ID_MESSAGE_DIGEST, der.tlv(0x31, der.octet_string(self._hash(tst).digest()))),
            ident.signing_cert_attr,
        ))
        signed = b"".join(attrs)
        to_sign = der.tlv(0x31, signed)  # RFC 5652 5.4: signed as an explicit SET OF
        try:
            signature = self.signer.sign_checked(to_sign, ident.scheme)
        except FaultySignatureError:
            raise TsaError(
                f"the key {self.signer.reference} produced a time-stamp signature that does not verify: the token "
                "or HSM is faulty. No token was sent; take the device out of service and report it to the lab"
            ) from None
        signer_info = der.sequence(b"\x02\x01\x01", ident.sid, ident.digest_alg, der.tlv(0xA0, signed),
                                   ident.signature_alg, der.octet_string(signature))
        signed_data = der.sequence(
            b"\x02\x01\x03",  # version 3: eContentType is not id-data (RFC 5652 5.1)
            der.tlv(0x31, ident.digest_alg),
            der.sequence(_ID_CT_TSTINFO, der.context(0, der.octet_string(tst))),
            ident.certificates if request.cert_req else b"",
            der.tlv(0x31, signer_info),
        )
        return der.sequence(_ID_SIGNED_DATA, der.context(0, signed_data))


# ---- the TSA certificate --------------------------------------------------------------------------

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_tsa_certificate(certificate: bytes, signer: Signer, now: datetime) -> None:
    """Raise :class:`TsaError` unless ``certificate`` is a TSA certificate (RFC 3161 2.3: a
    critical extended key usage of id-kp-timeStamping only) for ``signer``'s key, valid at ``now``."""
    cert = x509.load_der_x509_certificate(certificate)
    serial = f"{cert.serial_number:x}"
    fix = "issue one: iranpki cert issue --ca CA --profile tsa --public-key KEY.pem --subject 'C=IR,O=...,CN=...'"
    if cert.public_key().public_bytes(*_SPKI) != signer.public_key.public_bytes(*_SPKI):
        raise TsaError(f"certificate {serial} is not for the key {signer.reference}; give the key it was issued "
                       f"for, or {fix}")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TsaError(f"certificate {serial} has no extended key usage, so it is not a TSA certificate "
                       f"(RFC 3161 2.3 asks for a critical id-kp-timeStamping); {fix}") from None
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        usages = ", ".join(u.dotted_string for u in eku.value)
        raise TsaError(f"certificate {serial} has extended key usage {usages} (critical: {eku.critical}); a TSA "
                       f"certificate has id-kp-timeStamping (1.3.6.1.5.5.7.3.8) alone, critical (RFC 3161 2.3); {fix}")
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise TsaError(f"certificate {serial} is valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                       f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, not now ({now:%Y-%m-%d %H:%M}); {fix}")


def find_tsa_certificate(store: Store, ca: str, signer: Signer, now: datetime, serial: int | None = None) -> bytes:
    """The TSA certificate for ``signer``'s key: the one numbered ``serial``, or the newest valid
    ``tsa``-profile certificate of CA ``ca`` for that key. Raises :class:`TsaError` naming the fix."""
    store.get_ca(ca)  # an unknown CA is reported as such
    if serial is not None:
        record = store.get_certificate(serial)
        if record.revoked_at is not None:
            raise TsaError(f"certificate {serial:x} is revoked; issue a new one with --profile tsa")
        check_tsa_certificate(record.certificate, signer, now)
        return record.certificate
    key = signer.public_key.public_bytes(*_SPKI)
    found = [r for r in store.iter_certificates(ca=ca, status="valid", profile="tsa")
             if x509.load_der_x509_certificate(r.certificate).public_key().public_bytes(*_SPKI) == key]
    if not found:
        raise TsaError(f"CA {ca!r} has issued no valid TSA certificate for the key {signer.reference}; issue one: "
                       f"iranpki cert issue --ca {ca} --profile tsa --public-key KEY.pem --subject 'C=IR,O=...,CN=...'")
    newest = max(found, key=lambda r: r.not_after)
    check_tsa_certificate(newest.certificate, signer, now)
    return newest.certificate


# ---- the client side ------------------------------------------------------------------------------

class _TimeStampResp(asn1_core.Sequence):
    """RFC 3161 2.4.2 TimeStampResp, whose timeStampToken is OPTIONAL (absent in a rejection);
    asn1crypto's ``tsp.TimeStampResp`` requires it."""

    _fields = [("status", asn1_tsp.PKIStatusInfo),
               ("time_stamp_token", asn1_cms.ContentInfo, {"optional": True})]


def make_request(digest: bytes, hash_name: str = "sha256", *, nonce: int | None = None, cert_req: bool = True,
                 policy: str | None = None) -> bytes:
    """A DER TimeStampReq for ``digest`` (already hashed with ``hash_name``)."""
    if hash_name not in HASH_OIDS:
        raise TsaError(f"hash {hash_name!r} is not known; use one of sha256, sha384, sha512")
    if len(digest) != _HASH_SIZE[hash_name]:
        raise TsaError(f"a {hash_name} digest is {_HASH_SIZE[hash_name]} bytes, not {len(digest)}")
    return der.sequence(
        b"\x02\x01\x01",
        der.sequence(der.sequence(der.oid(HASH_OIDS[hash_name])), der.octet_string(digest)),
        der.oid(policy) if policy else b"",
        der.integer(nonce) if nonce is not None else b"",
        b"\x01\x01\xff" if cert_req else b"",
    )


@dataclass(frozen=True)
class Stamp:
    """A granted time-stamp, checked against the request it answers."""

    gen_time: datetime
    serial: int
    policy: str
    accuracy_ms: int | None
    nonce: int | None
    hash_name: str
    token: bytes  # the DER TimeStampToken (ContentInfo)
    reply: bytes  # the whole DER TimeStampResp


def check_reply(reply: bytes, request: bytes) -> Stamp:
    """Check a TimeStampResp against the DER ``request`` it answers: status granted, a SignedData
    of a TSTInfo whose imprint and nonce are the request's. Raises :class:`TsaError` otherwise.
    (The signature and the certificate path are the validator's concern, not this check's.)"""
    req = asn1_tsp.TimeStampReq.load(request)
    try:
        resp = _TimeStampResp.load(reply, strict=True)
        status = resp["status"]["status"].native
        if status not in ("granted", "granted_with_mods"):
            text = " ".join(resp["status"]["status_string"].native or [])
            fail = resp["status"]["fail_info"].native
            raise TsaError(f"the TSA refused the request: status {status}, failInfo "
                           f"{', '.join(sorted(fail)) if fail else 'none'}: {text or 'no reason given'}")
        token = resp["time_stamp_token"]
        if token["content_type"].native != "signed_data":
            raise TsaError(f"the token is a {token['content_type'].native}, not SignedData (RFC 3161 2.4.2)")
        encap = token["content"]["encap_content_info"]
        if encap["content_type"].native != "tst_info":
            raise TsaError(f"the token holds {encap['content_type'].native}, not a TSTInfo (RFC 3161 2.4.2)")
        tst = encap["content"].parsed
        imprint = tst["message_imprint"]
        sent = req["message_imprint"]
        if (imprint["hash_algorithm"]["algorithm"].dotted != sent["hash_algorithm"]["algorithm"].dotted
                or imprint["hashed_message"].native != sent["hashed_message"].native):
            raise TsaError("the token's messageImprint is not the request's: the reply answers another request")
        if tst["nonce"].native != req["nonce"].native:
            raise TsaError(f"the token's nonce {tst['nonce'].native} is not the request's {req['nonce'].native}: "
                           "the reply is a replay or answers another request")
        accuracy = tst["accuracy"]
        ms = None
        if accuracy.native is not None:
            a = accuracy.native
            ms = (a.get("seconds") or 0) * 1000 + (a.get("millis") or 0) + (a.get("micros") or 0) // 1000
        return Stamp(gen_time=tst["gen_time"].native, serial=tst["serial_number"].native,
                     policy=tst["policy"].dotted, accuracy_ms=ms, nonce=tst["nonce"].native,
                     hash_name=_HASH_BY_OID.get(imprint["hash_algorithm"]["algorithm"].dotted, "?"),
                     token=token.dump(), reply=reply)
    except TsaError:
        raise
    except Exception as exc:  # noqa: BLE001 - asn1crypto parses lazily and raises many kinds
        raise TsaError(f"the reply is not a DER TimeStampResp (RFC 3161 2.4.2): {exc}; is the URL a TSA?") from None


def verify_token(token: bytes, trust_roots: Sequence[bytes] | None = None, *,
                 intermediates: Sequence[bytes] = (), crls: Sequence[bytes] = ()) -> object:
    """Verify a TimeStampToken as a relying party: its CMS signature over the TSTInfo (intact,
    valid), and its signer's certificate: a path to ``trust_roots`` (default: the national root),
    the timeStamping extended key usage, valid at the token's genTime. Returns the signer's
    :class:`~iranpki.validation.ValidationResult`; raises :class:`TsaError` for a bad signature and
    a :class:`~iranpki.errors.CertificateValidationError` for a certificate that fails."""
    from .. import signing, validation

    checked = signing.verify_cms(None, token, trust_roots, intermediates=intermediates, crls=crls)
    if not (checked.intact and checked.valid):
        raise TsaError("the time-stamp token's signature does not verify: " + "; ".join(checked.problems)
                       + ". Do not rely on it; ask the TSA again")
    signed_data = asn1_cms.ContentInfo.load(token)["content"]
    tst = signed_data["encap_content_info"]["content"].parsed
    sid = signed_data["signer_infos"][0]["sid"].chosen
    certs = [c.chosen.dump() for c in (signed_data["certificates"] or [])]
    signer_cert = next((c for c in certs if _issuer_serial(c) == (sid["issuer"].dump(), sid["serial_number"].native)),
                       None)
    if signer_cert is None:
        raise TsaError("the time-stamp token does not carry its TSA's certificate; request it with certReq")
    others = [c for c in certs if c != signer_cert]
    return validation.validate_certificate(signer_cert, purpose="timestamping", at=tst["gen_time"].native,
                                           trust_roots=trust_roots, intermediates=[*others, *intermediates],
                                           crls=list(crls))


def _issuer_serial(certificate: bytes) -> tuple[bytes, int]:
    tbs = asn1_x509.Certificate.load(certificate)["tbs_certificate"]
    return tbs["issuer"].dump(), tbs["serial_number"].native


def fetch_stamp(url: str, digest: bytes, hash_name: str = "sha256", *, timeout: float = 30.0,
                cert_req: bool = True) -> Stamp:
    """Ask the TSA at ``url`` (http or https; one POST, RFC 3161 3.4) to stamp ``digest`` with a
    fresh 64-bit nonce, and check the reply (:func:`check_reply`)."""
    request = make_request(digest, hash_name, nonce=secrets.randbits(63) | 1 << 62, cert_req=cert_req)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TsaError(f"TSA URL {url!r} is not http://HOST[:PORT]/PATH or https://...")
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", parts.path or "/", request, {"Content-Type": "application/timestamp-query"})
        answer = conn.getresponse()
        body = answer.read(1024 * 1024)
    except OSError as exc:
        raise TsaError(f"cannot reach the TSA at {url}: {exc}; check the URL and that the TSA runs") from None
    finally:
        conn.close()
    if answer.status != 200:
        raise TsaError(f"the TSA at {url} answered HTTP {answer.status} {answer.reason}; is the URL a TSA?")
    return check_reply(body, request)


"""The time-stamp authority (RFC 3161 2.4.2, 2.3): serial numbers in blocks, the signing
identity and its certificate, and the TimeStampToken, signed and checked before it is sent."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

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
from .codec import (
    _GRANTED,
    _ID_CONTENT_TYPE,
    _ID_CT_TSTINFO,
    _ID_MESSAGE_DIGEST,
    _ID_SIGNED_DATA,
    _ID_SIGNING_CERT_V2,
    HASH_OIDS,
    FailureInfo,
    RejectedRequestError,
    TimeStampRequest,
    _accuracy,
    _gentime,
    parse_request,
    rejection,
)

__all__ = ["SerialBlocks", "TimeStampAuthority", "check_tsa_certificate", "find_tsa_certificate"]

log = logging.getLogger("iranpki.tsa")


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


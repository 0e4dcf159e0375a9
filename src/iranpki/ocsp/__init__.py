"""Online Certificate Status Protocol: RFC 6960 with the lightweight profile of RFC 9919 (which
obsoletes RFC 5019).

Implemented here (the HTTP transport is in :mod:`iranpki.ocsp.server`):

- RFC 6960 4.1 OCSPRequest: one or several CertIDs (4.1.1), SHA-1 or SHA-256 (also SHA-384 and
  SHA-512) as the CertID hash; requestorName and a request signature are accepted and ignored
  (RFC 9919 2.1.2: responders need not check them); an unknown critical extension makes the
  request malformed, an unknown non-critical one is ignored (4.4).
- RFC 6960 4.4.1 and RFC 9654 nonce: 1 to 32 octets, echoed in a response signed for the request
  when the CP allows signing on demand (``status.ocsp.sign_on_demand``); otherwise the request is
  answered without a nonce from the pre-produced responses (the lightweight profile: "the most
  complete response it can").
- RFC 6960 4.2.1 OCSPResponse with the statuses successful, malformedRequest, internalError and
  unauthorized (2.3: a CertID whose issuer this responder does not serve); 4.2.1 BasicOCSPResponse
  with responderID byKey (RFC 9919 2.2.2), producedAt, one SingleResponse per CertID with the
  CertID echoed, certStatus good / revoked (revocationTime, revocationReason; left out for
  unspecified, as the CRL leaves out its reasonCode) / unknown (2.2: a serial the CA did not
  issue, or an issuer it does not serve in a request that names several), thisUpdate and
  nextUpdate (RFC 9919 2.2.4; GeneralizedTime without fractions), and certs holding the
  delegated responder's certificate.
- RFC 6960 4.2.2.2 delegated responders: a certificate of the ``ocsp-signer`` profile
  (id-kp-OCSPSigning, id-pkix-ocsp-nocheck), issued by the CA it answers for, renewed
  ``status.ocsp.renew_responder_before_days`` before it expires; or the CA's own key.
- RFC 9919 4 (freshness) and BR 4.9.10: pre-produced responses, signed ahead for every
  certificate of a CA with both CertID hashes, valid the CA level's ``status.ocsp_validity_hours``, re-signed
  ``refresh_before_hours`` before their nextUpdate and at once when a certificate's status
  changes (the store's status sequence, polled by one refresher process).

Why responses are encoded here, byte by byte, rather than by ``cryptography`` (whose builder
takes one certificate and a private key object, not a :class:`~iranpki.keys.Signer`) or by
``asn1crypto`` (slow): a responder that signs on demand spends its time here. The encoding is
checked in the tests by ``openssl ocsp``, pyhanko-certvalidator, pkilint and ``cryptography``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from enum import IntEnum
from functools import lru_cache

from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .. import der
from ..clock import Clock, SystemClock
from ..der import generalized_time
from ..errors import FaultySignatureError, OcspError
from ..keys.base import SignatureScheme, Signer
from ..policy import CertificatePolicy, load_policy
from ..store.base import CaRecord, CertificateRecord, OcspResponseRecord, Store

__all__ = [
    "MAX_CERT_IDS",
    "PREPRODUCED_HASHES",
    "CertId",
    "MalformedRequestError",
    "OcspError",
    "OcspRequest",
    "OcspService",
    "Reply",
    "Responder",
    "ResponderError",
    "ResponseStatus",
    "ensure_responder_certificate",
    "error_response",
    "find_responder_certificate",
    "parse_request",
]

log = logging.getLogger("iranpki.ocsp")

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


class ResponderError(OcspError):
    """A responder that cannot sign: a wrong key, no responder certificate, a faulty token."""


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


def _issuer_hashes(certificate: bytes) -> dict[str, tuple[bytes, bytes]]:
    """(issuerNameHash, issuerKeyHash) of the CA ``certificate`` for each CertID hash (RFC 6960 4.1.1):
    the hash of its subject's DER as it stands in the certificate, and of its subjectPublicKey's
    value (the BIT STRING without tag, length and unused-bits octet)."""
    cert = asn1_x509.Certificate.load(certificate)
    name = cert["tbs_certificate"]["subject"].dump()
    key = cert["tbs_certificate"]["subject_public_key_info"]["public_key"].contents[1:]
    return {h: (hashlib.new(h, name).digest(), hashlib.new(h, key).digest()) for h in HASH_ALGORITHMS}


class Responder:
    """The signing identity that answers for one CA: the CA's own key, or a delegated responder
    whose certificate the CA issued (RFC 6960 4.2.2.2)."""

    def __init__(self, ca: CaRecord, signer: Signer, certificate: CertificateRecord | None = None, *,
                 include_ca_certificate: bool = False):
        ca_cert = x509.load_der_x509_certificate(ca.certificate)
        key_der = signer.public_key.public_bytes(*_SPKI)
        if certificate is None:
            if key_der != ca_cert.public_key().public_bytes(*_SPKI):
                raise ResponderError(f"the key {signer.reference} is not the key of CA {ca.name!r}; give the CA's "
                                     "own key, or a delegated responder key (--responder-key)")
            self.scheme = SignatureScheme.parse(ca.signature)
            self.not_after = ca_cert.not_valid_after_utc
            # No certs: every client has the CA's certificate (it made the CertID from it), and
            # RFC 6960 4.2.1 says certs SHOULD then be absent. A client that checks the signer
            # against trust anchors only (GnuTLS ocsptool --load-trust) needs the CA's certificate
            # in the response: include_ca_certificate puts it there.
            plain, with_ca = b"", der.context(0, der.sequence(ca.certificate))
        else:
            cert = x509.load_der_x509_certificate(certificate.certificate)
            if cert.public_key().public_bytes(*_SPKI) != key_der:
                raise ResponderError(f"the responder certificate {certificate.serial:x} is not for the key "
                                     f"{signer.reference}; give the key it was issued for")
            try:
                cert.verify_directly_issued_by(ca_cert)
                eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except (ValueError, TypeError, x509.ExtensionNotFound) as exc:
                raise ResponderError(f"certificate {certificate.serial:x} is not an OCSP responder certificate "
                                     f"issued by CA {ca.name!r} ({exc}); issue one with the ocsp-signer profile") from None
            if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
                raise ResponderError(f"certificate {certificate.serial:x} lacks id-kp-OCSPSigning (RFC 6960 4.2.2.2); "
                                     "issue one with the ocsp-signer profile")
            self.scheme = SignatureScheme(hash=signer.key_spec.default_hash)
            self.not_after = cert.not_valid_after_utc
            # certs [0] EXPLICIT SEQUENCE OF Certificate: the responder's certificate, so the client
            # can check that the CA delegated to it (RFC 9919 2.2.2); with include_ca_certificate
            # the CA's too, for a client that builds the path from trust anchors alone.
            plain = der.context(0, der.sequence(certificate.certificate))
            with_ca = der.context(0, der.sequence(certificate.certificate, ca.certificate))
        self.include_ca_certificate = include_ca_certificate
        self.certs, self._other_certs = (with_ca, plain) if include_ca_certificate else (plain, with_ca)
        self.ca = ca
        self.signer = signer
        self.certificate = certificate
        self.public_key: PublicKeyTypes = signer.public_key
        self.algorithm = self.scheme.algorithm_identifier(signer.key_spec)
        # ResponderID byKey [2] EXPLICIT KeyHash: SHA-1 of the responder's subjectPublicKey value.
        key_hash = x509.SubjectKeyIdentifier.from_public_key(signer.public_key).digest  # type: ignore[arg-type]
        self.responder_id = der.context(2, der.octet_string(key_hash))
        self.hashes = _issuer_hashes(ca.certificate)

    @property
    def delegated(self) -> bool:
        return self.certificate is not None

    def cert_id(self, hash_name: str, serial: int) -> bytes:
        """The CertID this CA's certificate ``serial`` has under ``hash_name``, as pre-produced responses carry it."""
        name_hash, key_hash = self.hashes[hash_name]
        return der.sequence(_ALG_DER[hash_name], der.octet_string(name_hash), der.octet_string(key_hash),
                            der.integer(serial))

    def sign(self, singles: Sequence[bytes], produced_at: datetime, nonce: bytes | None = None) -> bytes:
        """A successful OCSPResponse holding ``singles`` (encoded SingleResponses), signed and verified."""
        exts = b""
        if nonce is not None:
            exts = der.context(1, der.sequence(der.sequence(_NONCE, der.octet_string(der.octet_string(nonce)))))
        tbs = _wrap(b"\x30", self.responder_id + _gentime(produced_at) + _wrap(b"\x30", b"".join(singles)) + exts)
        try:
            signature = self.signer.sign_checked(tbs, self.scheme)
        except FaultySignatureError:
            raise ResponderError(
                f"the key {self.signer.reference} produced an OCSP signature that does not verify: the token or HSM "
                "is faulty. The response was not sent; take the device out of service and report it to the lab"
            ) from None
        basic = _wrap(b"\x30", tbs + self.algorithm + _wrap(b"\x03", b"\x00" + signature) + self.certs)
        return _wrap(b"\x30", b"\x0a\x01\x00" + _wrap(b"\xa0", _wrap(b"\x30", _BASIC + _wrap(b"\x04", basic))))

    def signed_it(self, response: bytes) -> bool:
        """Whether ``response`` (one this responder's store holds) was signed by this identity, with
        the certificates it sends: its responderID comes in the first few dozen octets, after the
        headers, and the certs field last (so a responder started with or without the CA's
        certificate re-signs what was made the other way)."""
        return (self.responder_id in response[:96] and response.endswith(self.certs)
                and not response.endswith(self._other_certs))


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

def find_responder_certificate(store: Store, ca: str, public_key: PublicKeyTypes,
                               now: datetime | None = None) -> CertificateRecord | None:
    """The unrevoked, unexpired ``ocsp-signer`` certificate of ``ca`` for ``public_key`` that lasts longest."""
    now = now or datetime.now(timezone.utc)
    want = public_key.public_bytes(*_SPKI)
    best: CertificateRecord | None = None
    for record in store.iter_certificates(ca=ca, status="valid", profile="ocsp-signer"):
        if record.not_after <= now or record.not_before > now:
            continue
        if x509.load_der_x509_certificate(record.certificate).public_key().public_bytes(*_SPKI) != want:
            continue
        if best is None or record.not_after > best.not_after:
            best = record
    return best


def _responder_subject(ca: CaRecord) -> list[tuple[str, str]]:
    subject = x509.load_der_x509_certificate(ca.certificate).subject
    org = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    cn = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    label = str(cn[0].value) if cn else ca.name
    return [("C", "IR"), ("O", str(org[0].value) if org else ca.name), ("CN", f"{label[:49]} OCSP Responder")]


#: Issues a delegated responder certificate: ``(ca name, subject, public key, validity days)`` to
#: the stored record of an ``ocsp-signer`` certificate the CA issued. The responder never holds the
#: issuing engine; whoever wires it (the workspace) opens the CA only when it is called.
IssueResponder = Callable[[str, list[tuple[str, str]], PublicKeyTypes, int], CertificateRecord]


def ensure_responder_certificate(store: Store, ca: CaRecord, key: Signer, issue: IssueResponder, *,
                                 policy: CertificatePolicy | None = None,
                                 clock: Clock | None = None) -> CertificateRecord:
    """The delegated responder certificate of ``ca`` for ``key``: the current one, or a new one
    (profile ``ocsp-signer``, through ``issue``) when there is none or it expires within
    ``status.ocsp.renew_responder_before_days``."""
    policy = policy or load_policy()
    clock = clock or SystemClock()
    now = clock.now()
    rules = policy.status.ocsp
    ca_key = x509.load_der_x509_certificate(ca.certificate).public_key().public_bytes(*_SPKI)
    if key.public_key.public_bytes(*_SPKI) == ca_key:
        raise ResponderError(f"the responder key {key.reference} is CA {ca.name!r}'s own key; leave out "
                             "--responder-key to sign with the CA key, or give a key of its own")
    current = find_responder_certificate(store, ca.name, key.public_key, now)
    if current is not None and current.not_after - now > timedelta(days=rules.renew_responder_before_days):
        return current
    issued = issue(ca.name, _responder_subject(ca), key.public_key, rules.delegated_responder_days)
    log.info("issued OCSP responder certificate %x for CA %s, valid until %s", issued.serial, ca.name,
             issued.not_after.isoformat())
    return issued


# ---- the service ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Reply:
    """A DER OCSPResponse and what HTTP needs to say about it."""

    body: bytes
    #: POSIX times of thisUpdate and nextUpdate (None for an unsigned error response).
    this_update: float | None = None
    next_update: float | None = None
    #: Pre-produced: the same for every client until nextUpdate, so HTTP caches may keep it
    #: (RFC 9919 6). Responses signed for one request are not.
    cacheable: bool = False
    #: Signed live for a request without a nonce (its pre-produced response missing or older
    #: than the status): not for HTTP caches, but the worker may answer the same request with it
    #: for a moment, so repeated requests for one certificate cost one signature, not one each.
    reusable: bool = False


_MALFORMED = Reply(error_response(ResponseStatus.malformedRequest))
_INTERNAL = Reply(error_response(ResponseStatus.internalError))
_UNAUTHORIZED = Reply(error_response(ResponseStatus.unauthorized))
_TRY_LATER = Reply(error_response(ResponseStatus.tryLater))
#: Live signatures per second (per process) for serial numbers the CA never issued.
UNKNOWN_SIGNATURES_PER_SECOND = 50.0


class _Budget:
    """A token bucket: ``rate`` takes per second, at most ``rate`` (one second's worth) at once."""

    def __init__(self, rate: float, now: Callable[[], float]):
        self.rate = rate
        self._now = now
        self._tokens = rate
        self._at = now()

    def take(self) -> bool:
        t = self._now()
        self._tokens = min(self.rate, self._tokens + (t - self._at) * self.rate)
        self._at = t
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
SIGNING_MODES = ("pre-produced", "on-demand")


class OcspService:
    """Answers OCSP requests for the CAs of ``responders`` from ``store``, and (in the refresher)
    keeps the pre-produced responses signed.

    ``signing`` is ``pre-produced`` (plain single-certificate requests are answered from the
    store's pre-produced responses; nonces and several certificates are signed for the request
    when the CP allows it) or ``on-demand`` (every response is signed for its request).
    ``issue_responder`` issues a delegated responder certificate (:data:`IssueResponder`); it is
    needed only to renew those.

    Serial numbers the CA never issued cannot be answered ahead, so each costs a live signature:
    at most ``unknown_per_second`` signatures per process answer a request that names one (one
    per signature, however many CertIDs the request holds); past that a flood of made-up serials
    gets the unsigned tryLater (RFC 6960 4.2.1), and the CA's own certificates are still answered
    from the pre-produced responses.

    A pre-produced response is served only while it reflects the certificate's current status:
    the store gives the certificate's status sequence with the response, and one signed before
    the last change (the refresher fell behind, or keeps failing) is never served; the answer is
    signed for the request from the store's status instead, and counted in ``stale_answered``.
    """

    def __init__(self, store: Store, responders: Iterable[Responder], *, signing: str = "pre-produced",
                 policy: CertificatePolicy | None = None, clock: Clock | None = None,
                 issue_responder: IssueResponder | None = None,
                 unknown_per_second: float = UNKNOWN_SIGNATURES_PER_SECOND):
        if signing not in SIGNING_MODES:
            raise OcspError(f"signing mode {signing!r} is not offered; must be one of {', '.join(SIGNING_MODES)}")
        self.store = store
        self.signing = signing
        self.policy = policy or load_policy()
        self.clock = clock or SystemClock()
        self._issue_responder = issue_responder
        self._rules = self.policy.status.ocsp
        self.responders: dict[str, Responder] = {}
        self._index: dict[tuple[str, bytes, bytes], Responder] = {}
        self._unknown = _Budget(unknown_per_second, time.monotonic)
        #: Requests whose pre-produced response was older than the certificate's status (answered live).
        self.stale_answered = 0
        self._stale_logged = 0.0
        for r in responders:
            self._install(r)
        if not self.responders:
            raise OcspError("an OCSP responder needs at least one CA to answer for; name one (--ca NAME)")

    def _install(self, r: Responder) -> None:
        self.responders[r.ca.name] = r
        # Keyed by hash, issuerNameHash and issuerKeyHash: one dict lookup finds the CA of a CertID.
        for h, (name_hash, key_hash) in r.hashes.items():
            self._index[(h, name_hash, key_hash)] = r

    def close(self) -> None:
        """Close the signers (not the store, which belongs to the caller)."""
        for r in self.responders.values():
            r.signer.close()

    # -- answering -----------------------------------------------------------------------------

    def respond(self, data: bytes) -> Reply:
        """The answer to the DER OCSPRequest ``data``. Never raises: a request that cannot be read
        is answered malformedRequest, a failure of ours internalError."""
        try:
            fast = _fast_cert_id(data)
            if fast is not None:
                return self._one(fast, None)
            request = parse_request(data)
            if len(request.cert_ids) == 1:
                return self._one(request.cert_ids[0], request.nonce)
            return self._several(request)
        except MalformedRequestError:
            return _MALFORMED
        except Exception:  # noqa: BLE001 - a client gets internalError, never a dropped connection
            log.exception("answering an OCSP request failed")
            return _INTERNAL

    def _one(self, cid: CertId, nonce: bytes | None) -> Reply:
        r = self._index.get((cid.hash, cid.name_hash, cid.key_hash))  # type: ignore[arg-type]
        if r is None:
            return _UNAUTHORIZED
        if nonce is not None and not self._rules.sign_on_demand:
            nonce = None  # the lightweight profile: answer without the nonce rather than refuse
        if nonce is None and self.signing == "pre-produced" and cid.hash in PREPRODUCED_HASHES:
            cached = self._cached(r, cid)
            if cached is not None:
                return cached
        status = self.store.certificate_status(r.ca.name, cid.serial)
        if status is None and not self._unknown.take():
            return _TRY_LATER
        reply = self._live(r, [cid], nonce, statuses=[status])
        if nonce is None:
            reply = replace(reply, reusable=True)
        return reply

    def _cached(self, r: Responder, cid: CertId) -> Reply | None:
        rec = self.store.get_ocsp_response(r.ca.name, cid.serial, cid.hash)  # type: ignore[arg-type]
        if rec is None:
            return None  # a certificate the refresher has not reached yet: signed for the request
        next_update = rec.next_update.timestamp()
        if rec.current_status_seq is not None and rec.current_status_seq > rec.status_seq:
            # Signed before the certificate's last status change: the refresher has not re-signed
            # it. Serving it could say "good" for a revoked certificate; sign from the store instead.
            self.stale_answered += 1
            if time.monotonic() - self._stale_logged > 60:
                self._stale_logged = time.monotonic()
                log.error("CA %s: the pre-produced response of certificate %x predates its status change; "
                          "answering from the store. Is the refresher running? (%d such answers so far)",
                          r.ca.name, cid.serial, self.stale_answered)
            return None
        # Expired (the refresher is behind) or signed by another identity (a responder with another
        # key shares the store): sign for the request rather than serve it.
        if next_update <= self.clock.now().timestamp() or not r.signed_it(rec.response):
            return None
        return Reply(rec.response, rec.this_update.timestamp(), next_update, True)

    def _several(self, request: OcspRequest) -> Reply:
        known = [(cid, self._index.get((cid.hash, cid.name_hash, cid.key_hash))) for cid in request.cert_ids]  # type: ignore[arg-type]
        r = next((resp for _, resp in known if resp is not None), None)
        if r is None:
            return _UNAUTHORIZED
        if not self._rules.sign_on_demand and self.signing == "pre-produced":
            # The CP forbids signing for a request: the most complete answer that needs no new
            # signature is the first certificate's pre-produced response (the lightweight profile).
            return self._one(next(cid for cid, resp in known if resp is r), None)
        # One signature covers one responder: a CertID of another issuer is "unknown" (RFC 6960 2.2).
        statuses = [self.store.certificate_status(r.ca.name, cid.serial) if resp is r else None
                    for cid, resp in known]
        # A signature that answers any serial the CA never issued takes from the same budget as a
        # single one: one token per signature, so two CertIDs in a request are no way around it.
        if any(s is None for s in statuses) and not self._unknown.take():
            return _TRY_LATER
        return self._live(r, [cid for cid, _ in known], request.nonce, statuses=statuses)

    def _live(self, r: Responder, cert_ids: list[CertId], nonce: bytes | None, *, statuses: list) -> Reply:
        """Sign one response for ``cert_ids`` with ``statuses`` (read by the caller, who decided
        whether the signature may be spent)."""
        now = self.clock.now().replace(microsecond=0)
        next_update = min(now + timedelta(hours=self.policy.ocsp_validity_hours(r.ca.level)), r.not_after)
        this_b, next_b = _gentime(now), _gentime(next_update)
        singles = [single_response(cid.der, status, this_b, next_b) for cid, status in zip(cert_ids, statuses)]
        body = r.sign(singles, now, nonce)
        return Reply(body, now.timestamp(), next_update.timestamp(), False)

    # -- pre-producing (the refresher) ---------------------------------------------------------

    def _produce(self, r: Responder, hash_name: str, serials: Iterable[int]) -> int:
        now = self.clock.now().replace(microsecond=0)
        next_update = min(now + timedelta(hours=self.policy.ocsp_validity_hours(r.ca.level)), r.not_after)
        this_b, next_b = _gentime(now), _gentime(next_update)
        records = []
        for serial in serials:
            status = self.store.certificate_status(r.ca.name, serial)
            if status is None:
                continue
            body = r.sign([single_response(r.cert_id(hash_name, serial), status, this_b, next_b)], now)
            records.append(OcspResponseRecord(r.ca.name, serial, hash_name, body, now, next_update, status[3]))
        if records:
            self.store.put_ocsp_responses(records)
        return len(records)

    def prepare(self, *, everything: bool = False, between: Callable[[], bool] | None = None,
                progress: Callable[[int], None] | None = None) -> int:
        """Sign the pre-produced responses that are due: missing, older than a status change, or
        within ``refresh_before_hours`` of their nextUpdate (``everything``: all of them). Returns
        how many were signed.

        ``between`` is called after each batch of 500; the refresher re-signs status changes
        there, so a revocation never waits behind a long pass (a million certificates are two
        million signatures), and stops the pass when it returns False. ``progress(signed)`` is
        called after each batch too."""
        signed = 0
        start = self.clock.now().replace(microsecond=0)
        for r in self.responders.values():
            validity = self.policy.ocsp_validity_hours(r.ca.level)
            hours = validity if everything else self._rules.refresh_before_hours
            # A response made now lasts at least until ``due``, so each pass ends; a responder whose
            # certificate ends sooner makes shorter responses, refreshed as they run out.
            due = min(start + timedelta(hours=hours), r.not_after - timedelta(seconds=1))
            if r.not_after < start + timedelta(hours=validity):
                log.warning("the certificate that signs for CA %s expires on %s, before the responses' nextUpdate; "
                            "they are cut short. Renew it", r.ca.name, r.not_after.isoformat())
            for hash_name in PREPRODUCED_HASHES:
                after = None
                while serials := self.store.ocsp_due(r.ca.name, hash_name, due, limit=500, after=after):
                    signed += self._produce(r, hash_name, serials)
                    after = serials[-1]  # one linear walk over the CA, not a rescan per batch
                    if progress is not None:
                        progress(signed)
                    if between is not None and not between():
                        return signed
        return signed

    def foreign_responses(self) -> bool:
        """Whether the store holds pre-produced responses signed by another identity (a change of
        responder key or mode since they were signed). Looks at a few per CA."""
        for r in self.responders.values():
            for hash_name in PREPRODUCED_HASHES:
                for serial in self.store.ocsp_due(r.ca.name, hash_name, datetime.max.replace(tzinfo=timezone.utc), 4):
                    rec = self.store.get_ocsp_response(r.ca.name, serial, hash_name)
                    if rec is not None and not r.signed_it(rec.response):
                        return True
        return False

    def resign_changed(self, since_seq: int) -> int:
        """Re-sign the responses of every certificate whose status changed after ``since_seq``;
        return the last sequence seen (pass it to the next call)."""
        while changes := self.store.status_changes(since_seq):
            mine: dict[str, list[int]] = {}
            for _, ca, serial in changes:
                if ca in self.responders:
                    mine.setdefault(ca, []).append(serial)
            for ca, serials in mine.items():
                for hash_name in PREPRODUCED_HASHES:
                    self._produce(self.responders[ca], hash_name, serials)
                log.info("re-signed the responses of %d certificate(s) of CA %s after a status change", len(serials), ca)
            since_seq = changes[-1][0]
        return since_seq

    def refresh_responders(self, *, renew: bool) -> None:
        """Pick up the newest delegated responder certificates from the store; with ``renew``,
        issue new ones where they are missing or due (this needs the CA key)."""
        now = self.clock.now()
        for name, r in list(self.responders.items()):
            if not r.delegated:
                continue
            if renew:
                if self._issue_responder is None:
                    raise ResponderError(f"the responder certificate of CA {name!r} is due for renewal, and this "
                                         "responder cannot open the CA; start it with access to the CA key")
                record: CertificateRecord | None = ensure_responder_certificate(
                    self.store, r.ca, r.signer, self._issue_responder, policy=self.policy, clock=self.clock)
            else:
                record = find_responder_certificate(self.store, name, r.public_key, now)
            if record is None:
                log.error("CA %s has no valid OCSP responder certificate for key %s (revoked or expired); the "
                          "refresher issues a new one", name, r.signer.reference)
            elif record.serial != r.certificate.serial:  # type: ignore[union-attr]
                self._install(Responder(r.ca, r.signer, record, include_ca_certificate=r.include_ca_certificate))
                log.info("CA %s now answers with responder certificate %x", name, record.serial)

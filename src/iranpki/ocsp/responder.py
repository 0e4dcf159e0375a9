"""Who signs OCSP responses for a CA (RFC 6960 4.2.2.2): the CA's own key or a delegated
responder, with its certificate found in the store or issued, through a callback, when it
is missing or due for renewal."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .. import der
from ..clock import Clock, SystemClock
from ..errors import FaultySignatureError, OcspError
from ..keys.base import SignatureScheme, Signer
from ..policy import CertificatePolicy, load_policy
from ..store.base import CaRecord, CertificateRecord, Store
from .codec import (
    _ALG_DER,
    _BASIC,
    _NONCE,
    _SPKI,
    HASH_ALGORITHMS,
    _gentime,
    _wrap,
)

__all__ = ["IssueResponder", "Responder", "ResponderError", "ensure_responder_certificate", "find_responder_certificate"]

log = logging.getLogger("iranpki.ocsp")

class ResponderError(OcspError):
    """A responder that cannot sign: a wrong key, no responder certificate, a faulty token."""


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



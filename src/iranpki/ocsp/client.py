"""Ask an OCSP responder (RFC 6960) about a certificate, and check its answer: the response is
signed by the issuing CA or by a responder certificate the CA issued for OCSP signing (with the
id-kp-OCSPSigning purpose), and it answers for this certificate. cryptography builds the request
and parses the response; the checks are the few RFC 6960 4.2.2.2 asks for."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from datetime import datetime

from ..errors import IranPkiError

__all__ = ["OcspAnswer", "OcspClientError", "query"]

#: A response larger than this is refused unread past it.
MAX_RESPONSE_BYTES = 64 * 1024


class OcspClientError(IranPkiError):
    """The responder could not be asked, or its answer does not hold."""


@dataclass(frozen=True)
class OcspAnswer:
    status: str  # "good", "revoked" or "unknown"
    produced_at: datetime
    this_update: datetime
    next_update: datetime | None
    revoked_at: datetime | None
    reason: str | None
    responder: str  # the signer's subject


def query(url: str, certificate: bytes, issuer: bytes, *, timeout: float = 10.0) -> OcspAnswer:
    """POST an OCSP request for ``certificate`` (DER), issued by ``issuer`` (DER), to ``url``,
    and return the checked answer."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509 import ocsp

    cert, ca = x509.load_der_x509_certificate(certificate), x509.load_der_x509_certificate(issuer)
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, ca, hashes.SHA256()).build()
    http = urllib.request.Request(url, data=request.public_bytes(_der()), method="POST",
                                  headers={"Content-Type": "application/ocsp-request"})
    try:
        with urllib.request.urlopen(http, timeout=timeout) as reply:  # noqa: S310 - the CA's own responder URL
            data = reply.read(MAX_RESPONSE_BYTES + 1)
    except OSError as exc:
        raise OcspClientError(f"the OCSP responder at {url} could not be asked: {exc}") from None
    if len(data) > MAX_RESPONSE_BYTES:
        raise OcspClientError(f"the OCSP responder at {url} answered with more than {MAX_RESPONSE_BYTES} bytes")
    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError as exc:
        raise OcspClientError(f"the answer of {url} is not an OCSP response: {exc}") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspClientError(f"the OCSP responder at {url} answered {response.response_status.name}")
    signer = _signer(response, ca)
    _check_signature(response, signer)
    if response.serial_number != cert.serial_number or response.issuer_key_hash != \
            request.issuer_key_hash or response.issuer_name_hash != request.issuer_name_hash:
        raise OcspClientError(f"the OCSP responder at {url} answered for another certificate")
    status = response.certificate_status.name.lower()
    return OcspAnswer(status, response.produced_at_utc, response.this_update_utc, response.next_update_utc,
                      response.revocation_time_utc,
                      response.revocation_reason.value if response.revocation_reason is not None else None,
                      signer.subject.rfc4514_string())


def _der():  # noqa: ANN202
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def _signer(response, ca):  # noqa: ANN001, ANN202 - cryptography objects
    """The CA itself, or a delegated responder certificate it issued for OCSP signing."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.x509.oid import ExtendedKeyUsageOID

    if response.responder_name == ca.subject or response.responder_key_hash == _key_hash(ca):
        return ca
    for candidate in response.certificates:
        if candidate.subject != response.responder_name and response.responder_key_hash != _key_hash(candidate):
            continue
        try:
            candidate.verify_directly_issued_by(ca)
            usage = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in usage:
            return candidate
    raise OcspClientError("the OCSP response is signed neither by the issuing CA nor by a responder certificate "
                          "it issued for OCSP signing")


def _key_hash(cert) -> bytes:  # noqa: ANN001
    import hashlib

    from asn1crypto import keys
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = keys.PublicKeyInfo.load(cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    return hashlib.sha1(spki["public_key"].contents[1:]).digest()  # noqa: S324 - RFC 6960 ResponderID byKey


def _check_signature(response, signer) -> None:  # noqa: ANN001
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.x509.oid import SignatureAlgorithmOID

    key, digest = signer.public_key(), response.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey):
            pad = padding.PSS(padding.MGF1(digest), digest.digest_size) \
                if response.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS else padding.PKCS1v15()
            key.verify(response.signature, response.tbs_response_bytes, pad, digest)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(digest))
        else:
            raise OcspClientError(f"an OCSP responder key of type {type(key).__name__} is not checked here")
    except InvalidSignature:
        raise OcspClientError("the OCSP response's signature does not verify with its signer's key") from None

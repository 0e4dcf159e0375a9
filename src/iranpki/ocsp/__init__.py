"""Online Certificate Status Protocol: RFC 6960 with the lightweight profile of RFC 9919 (which
obsoletes RFC 5019).

Implemented in this package, one module per role: :mod:`.codec` (the messages), :mod:`.responder`
(who signs: the CA or a delegated responder), :mod:`.service` (answering from the store and keeping
the pre-produced responses signed) and :mod:`.server` (HTTP); this module names the public API:

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

from ..errors import OcspError
from .codec import (
    MAX_CERT_IDS,
    PREPRODUCED_HASHES,
    CertId,
    MalformedRequestError,
    OcspRequest,
    ResponseStatus,
    error_response,
    parse_request,
    single_response,
)
from .responder import (
    IssueResponder,
    Responder,
    ResponderError,
    ensure_responder_certificate,
    find_responder_certificate,
)
from .service import (
    CLOCK_META,
    SIGNING_MODES,
    UNKNOWN_SIGNATURES_PER_SECOND,
    OcspService,
    Reply,
    assemble_service,
    store_clock,
)

__all__ = [
    "CLOCK_META",
    "MAX_CERT_IDS",
    "PREPRODUCED_HASHES",
    "SIGNING_MODES",
    "UNKNOWN_SIGNATURES_PER_SECOND",
    "CertId",
    "IssueResponder",
    "MalformedRequestError",
    "OcspError",
    "OcspRequest",
    "OcspService",
    "Reply",
    "Responder",
    "ResponderError",
    "ResponseStatus",
    "assemble_service",
    "ensure_responder_certificate",
    "error_response",
    "find_responder_certificate",
    "parse_request",
    "single_response",
    "store_clock",
]

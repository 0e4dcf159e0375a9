"""Time-Stamp Protocol: RFC 3161 with ESSCertIDv2 from RFC 5816, tokens as RFC 5652 SignedData.

Implemented in this package, one module per role: :mod:`.codec` (the messages), :mod:`.authority`
(the TSA: serial numbers, signing identity, tokens), :mod:`.client` (asking for and checking a stamp)
and :mod:`.server` (HTTP, RFC 3161 3.4); this module names the public API:

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

from .authority import (
    SerialBlocks,
    TimeStampAuthority,
    check_tsa_certificate,
    find_tsa_certificate,
)
from .client import Stamp, check_reply, fetch_stamp, make_request, verify_token
from .codec import (
    HASH_OIDS,
    MAX_NONCE_BITS,
    MAX_REQUEST_BYTES,
    FailureInfo,
    RejectedRequestError,
    TimeStampRequest,
    parse_request,
    rejection,
)

__all__ = [
    "HASH_OIDS",
    "MAX_NONCE_BITS",
    "MAX_REQUEST_BYTES",
    "FailureInfo",
    "RejectedRequestError",
    "SerialBlocks",
    "Stamp",
    "TimeStampAuthority",
    "TimeStampRequest",
    "check_reply",
    "check_tsa_certificate",
    "fetch_stamp",
    "find_tsa_certificate",
    "make_request",
    "parse_request",
    "rejection",
    "verify_token",
]

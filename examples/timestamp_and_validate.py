"""Time-stamp a document with the national TSA's protocol (RFC 3161) and validate certificates
as a relying party: a valid chain, the same chain after a revocation, a wrong purpose.

    .venv/bin/python examples/timestamp_and_validate.py

The TSA here runs in this process; against a real one, ``iranpki.tsa.fetch_stamp(url, digest)``
(or `iranpki tsa stamp FILE --url URL`) does the same over HTTP.
"""

from __future__ import annotations

import hashlib
import itertools

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from _throwaway_pki import throwaway_pki
from iranpki import tsa, validation
from iranpki.ca import IssueRequest, parse_subject, revoke
from iranpki.errors import CertificateRevokedError, KeyUsageError
from iranpki.keys import SoftwareSigner

pki = throwaway_pki()

# A TSA certificate (critical timeStamping EKU) and an authority answering requests.
tsa_key = ec.generate_private_key(ec.SECP256R1())
tsa_cert = pki.ca.issue("tsa", IssueRequest(parse_subject("C=IR,O=Example,CN=Example TSA"), tsa_key.public_key()))
authority = tsa.TimeStampAuthority(SoftwareSigner(tsa_key), tsa_cert.record.certificate, itertools.count(1).__next__,
                                   chain=[pki.ca.certificate.public_bytes(Encoding.DER)])
document = b"contract no. 1405/123, signed in Tehran"
request = tsa.make_request(hashlib.sha256(document).digest(), "sha256", nonce=42)
stamp = tsa.check_reply(authority.respond(request), request)
print(f"time-stamp: ok serial={stamp.serial} at {stamp.gen_time.isoformat()} policy={stamp.policy} "
      f"accuracy={stamp.accuracy_ms} ms")

# Validation against our root (a relying party of the real PKI trusts the national root, the default).
result = validation.validate_certificate(tsa_cert.record.certificate, purpose="timestamping",
                                         trust_roots=[pki.root_pem], intermediates=pki.chain).raise_for_error()
print(f"validation: ok path={' -> '.join(result.subjects)} level={result.level}")
# A certificate that does not validate gives a result whose error says why (raise_for_error raises it).
wrong = validation.validate_certificate(tsa_cert.record.certificate, purpose="server", trust_roots=[pki.root_pem],
                                        intermediates=pki.chain)
assert isinstance(wrong.error, KeyUsageError), wrong
print(f"wrong purpose refused, ok: {wrong.error}")
revoke(pki.store, tsa_cert.record.serial, "keyCompromise")
try:
    validation.validate_certificate(tsa_cert.record.certificate, purpose="timestamping", trust_roots=[pki.root_pem],
                                    intermediates=pki.chain, crls=pki.crls(), revocation="hard-fail").raise_for_error()
    raise SystemExit("a revoked certificate validated")
except CertificateRevokedError as exc:
    print(f"revoked refused, ok: {exc}")

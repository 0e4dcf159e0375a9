"""Asking for a time stamp and checking one (RFC 3161 2.4.1, 2.4.2): the request made, the reply
checked against it, and the token validated as a relying party does."""

from __future__ import annotations

import http.client
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import tsp as asn1_tsp
from asn1crypto import x509 as asn1_x509

from .. import der
from ..errors import TsaError
from .codec import (
    _HASH_BY_OID,
    _HASH_SIZE,
    HASH_OIDS,
)

__all__ = ["Stamp", "check_reply", "fetch_stamp", "make_request", "verify_token"]

log = logging.getLogger("iranpki.tsa")


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
    the timeStamping extended key usage, valid at the token's genTime. Returns the validation of
    the signer's certificate (:class:`~iranpki.validation.ValidationResult`, a Verdict: its
    ``error`` says why a certificate fails); raises :class:`TsaError` for a token whose signature
    does not verify, since nothing in it can then be read as the TSA's."""
    from .. import signing, validation

    checked = signing.verify_cms(None, token, trust_roots, intermediates=intermediates, crls=crls)
    if not (checked.intact and checked.valid):
        raise TsaError("the time-stamp token's signature does not verify: " + "; ".join(checked.problems)
                       + ". Do not rely on it; ask the TSA again")
    signed_data = asn1_cms.ContentInfo.load(token)["content"]
    tst = signed_data["encap_content_info"]["content"].parsed
    sid = signed_data["signer_infos"][0]["sid"].chosen
    certs = [c.chosen.dump() for c in (signed_data["certificates"] or [])]
    signer_cert = next((c for c in certs if _issuer_serial(c) == (sid["issuer"].dump(),
    sid["serial_number"].native)),
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


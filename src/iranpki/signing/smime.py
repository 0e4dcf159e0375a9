"""S/MIME 4.0 (RFC 8551): multipart/signed (RFC 1847) and enveloped-data with RSAES-OAEP key
transport (RFC 8017, RFC 4055 section 4) and AES-256-CBC (RFC 3565); signed then encrypted."""

from __future__ import annotations

import base64
import os
import re
import secrets
from collections.abc import Sequence

from asn1crypto import algos, cms
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import SigningError
from ..keys.base import SignatureScheme, Signer
from .cms import (
    CmsResult,
    sign_cms,
    verify_cms,
)
from .common import (
    _MICALG,
    CertificateInput,
    PyHankoSigner,
    load_asn1_certificates,
)

# ---- S/MIME -------------------------------------------------------------------------------------

def _crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


def _split_message(message: bytes) -> tuple[list[bytes], list[bytes], bytes]:
    """Outer headers, Content-* headers (each unfolded-safe, without line end) and the body."""
    msg = _crlf(message)
    head, sep, body = msg.partition(b"\r\n\r\n")
    if not sep:
        if re.match(rb"^[A-Za-z0-9-]+:", msg):
            head, body = msg.rstrip(b"\r\n"), b""
        else:
            head, body = b"", msg
    headers: list[bytes] = []
    for line in head.split(b"\r\n") if head else []:
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1] += b"\r\n" + line
        elif line:
            if not re.match(rb"^[!-9;-~]+:", line):
                raise SigningError(f"the message header line {line[:60]!r} is not 'Name: value'; "
                                   "give an RFC 5322 message (headers, a blank line, the body)")
            headers.append(line)
    outer = [h for h in headers if not h.lower().startswith((b"content-", b"mime-version:"))]
    content = [h for h in headers if h.lower().startswith(b"content-")]
    return outer, content, body


def _entity(content_headers: list[bytes], body: bytes) -> bytes:
    """A MIME entity ready for signing: CRLF lines, 8-bit text carried as base64 (RFC 8551 3.1.2)."""
    if not content_headers:
        if all(b < 0x80 for b in body):
            content_headers = [b"Content-Type: text/plain; charset=us-ascii", b"Content-Transfer-Encoding: 7bit"]
        else:
            content_headers = [b"Content-Type: text/plain; charset=utf-8", b"Content-Transfer-Encoding: base64"]
            body = base64.encodebytes(body).replace(b"\n", b"\r\n")
    return b"\r\n".join(content_headers) + b"\r\n\r\n" + body


def _b64_lines(data: bytes) -> bytes:
    text = base64.b64encode(data)
    return b"\r\n".join(text[i:i + 64] for i in range(0, len(text), 64)) + b"\r\n"


def _assemble(outer: list[bytes], entity: bytes) -> bytes:
    return b"\r\n".join([*outer, b"MIME-Version: 1.0"]) + b"\r\n" + entity


def sign_mail(message: bytes, signer: Signer, certificate: CertificateInput, *,
              chain: Sequence[CertificateInput] = (), scheme: SignatureScheme | None = None,
              encrypt_to: Sequence[CertificateInput] = ()) -> bytes:
    """Sign an RFC 5322 message as S/MIME multipart/signed; with ``encrypt_to``, then encrypt it.

    The message's own headers (From, To, Subject, ...) stay outside; its Content-* headers and
    body become the signed entity. Lines are CRLF, as RFC 8551 section 3.1.1 canonicalises.
    """
    outer, content, body = _split_message(message)
    entity = _entity(content, body)
    hanko = PyHankoSigner(signer, certificate, chain, scheme=scheme)
    p7s = sign_cms(entity, signer, certificate, chain=chain, scheme=hanko.scheme)
    boundary = b"----iranpki-" + secrets.token_hex(12).encode()
    micalg = _MICALG[hanko.scheme.hash].encode()
    signed = (b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg="' + micalg
              + b'"; boundary="' + boundary + b'"\r\n\r\n'
              + b"This is an S/MIME signed message\r\n\r\n"
              + b"--" + boundary + b"\r\n" + entity + b"\r\n--" + boundary + b"\r\n"
              + b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
              + b"Content-Transfer-Encoding: base64\r\n"
              + b'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n'
              + _b64_lines(p7s) + b"\r\n--" + boundary + b"--\r\n")
    if encrypt_to:
        return _assemble(outer, _enveloped_entity(signed, encrypt_to))
    return _assemble(outer, signed)


def encrypt_mail(message: bytes, recipients: Sequence[CertificateInput]) -> bytes:
    """Encrypt an RFC 5322 message to ``recipients`` (RSA certificates) as S/MIME enveloped-data."""
    outer, content, body = _split_message(message)
    return _assemble(outer, _enveloped_entity(_entity(content, body), recipients))


def _enveloped_entity(entity: bytes, recipients: Sequence[CertificateInput]) -> bytes:
    der = envelope(entity, recipients)
    return (b'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\r\n'
            b"Content-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="smime.p7m"\r\n\r\n' + _b64_lines(der))


def envelope(content: bytes, recipients: Sequence[CertificateInput]) -> bytes:
    """CMS EnvelopedData (DER): AES-256-CBC content, its key wrapped with RSAES-OAEP (SHA-256)
    for each RSA recipient (RFC 5652 6.2.1 key transport, RFC 8551 2.7 content encryption)."""
    certs = load_asn1_certificates(list(recipients))
    if not certs:
        raise SigningError("no recipient certificate; give at least one (--encrypt-to CERT)")
    key, iv = os.urandom(32), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = enc.update(padder.update(content) + padder.finalize()) + enc.finalize()
    sha256 = algos.DigestAlgorithm({"algorithm": "sha256"})
    oaep = algos.RSAESOAEPParams({"hash_algorithm": sha256,
                                  "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": sha256}})
    infos = []
    for cert in certs:
        public = serialization.load_der_public_key(cert.public_key.dump())
        if not isinstance(public, rsa.RSAPublicKey):
            raise SigningError(f"recipient {cert.subject.human_friendly!r} has a {cert.public_key.algorithm} key; "
                               "iranpki encrypts mail to RSA certificates only (key transport)")
        if cert.key_usage_value is not None and "key_encipherment" not in cert.key_usage_value.native:
            raise SigningError(f"recipient {cert.subject.human_friendly!r}'s certificate does not allow "
                               "keyEncipherment; it cannot receive encrypted mail")
        wrapped = public.encrypt(key, asym_padding.OAEP(asym_padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
        infos.append(cms.RecipientInfo(name="ktri", value=cms.KeyTransRecipientInfo({
            "version": "v0",
            "rid": cms.RecipientIdentifier(name="issuer_and_serial_number", value=cms.IssuerAndSerialNumber(
                {"issuer": cert.issuer, "serial_number": cert.serial_number})),
            "key_encryption_algorithm": {"algorithm": "rsaes_oaep", "parameters": oaep},
            "encrypted_key": wrapped})))
    enveloped = cms.EnvelopedData({
        "version": "v0", "recipient_infos": infos,
        "encrypted_content_info": {"content_type": "data",
                                   "content_encryption_algorithm": {"algorithm": "aes256_cbc", "parameters": iv},
                                   "encrypted_content": ciphertext}})
    return cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump()


def _header_param(header: bytes, name: bytes) -> bytes | None:
    m = re.search(rb";\s*" + name + rb'\s*=\s*(?:"([^"]*)"|([^;\s]+))', header, re.IGNORECASE)
    return None if m is None else (m.group(1) if m.group(1) is not None else m.group(2))


def verify_mail(message: bytes, trust_roots: Sequence[CertificateInput] | None = None, **kw: object) -> CmsResult:
    """Validate an S/MIME multipart/signed message (RFC 8551 3.5.3); keyword arguments as
    :func:`verify_cms`. The result's ``content`` is the signed MIME entity."""
    _, content, body = _split_message(message)
    ctype = next((h for h in content if h.lower().startswith(b"content-type:")), b"")
    ctype = re.sub(rb"\r\n[ \t]", b" ", ctype)
    if b"multipart/signed" not in ctype.lower():
        raise SigningError("the message is not S/MIME multipart/signed; an encrypted message must be "
                           "decrypted first (openssl cms -decrypt)")
    boundary = _header_param(ctype, b"boundary")
    if not boundary:
        raise SigningError("the multipart/signed message names no boundary")
    delimiter = b"--" + boundary + b"\r\n"
    first = 0 if body.startswith(delimiter) else body.find(b"\r\n" + delimiter) + 2
    if first < 2 and not body.startswith(delimiter):
        raise SigningError("the multipart/signed message does not hold its boundary")
    # RFC 2046 5.1.1: the CRLF before each boundary belongs to the boundary, not to the part.
    parts = body[first + len(delimiter):].split(b"\r\n--" + boundary)
    if len(parts) < 3:
        raise SigningError("the multipart/signed message does not hold two parts")
    signed_part = parts[0]
    sig_part = parts[1][2:] if parts[1].startswith(b"\r\n") else parts[1]
    _, sig_headers, sig_body = _split_message(sig_part)
    if not any(b"pkcs7-signature" in h.lower() for h in sig_headers):
        raise SigningError("the second part is not application/pkcs7-signature")
    try:
        p7s = base64.b64decode(re.sub(rb"\s+", b"", sig_body), validate=True)
    except ValueError:
        raise SigningError("the signature part is not valid base64") from None
    result = verify_cms(signed_part, p7s, trust_roots, **kw)  # type: ignore[arg-type]
    return CmsResult(**{**result.__dict__, "content": signed_part})

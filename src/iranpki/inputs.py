"""What callers give as certificates and CRLs, read one way for every part of iranpki.

A certificate comes as PEM or DER bytes (a file's content; PEM may hold several), as a
``cryptography`` certificate, or as an ``asn1crypto`` one (pyHanko's); a CRL as DER or PEM.
Validation, signing, the time-stamp client and the verifier all read them here, and a bad one is
an :class:`~iranpki.errors.UnusableInputError` that names what was given, whichever asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Union

from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .der import problem
from .errors import UnusableInputError
from .profiles import subject_text

__all__ = [
    "MAX_INPUT_BYTES",
    "CertificateInput",
    "KeylessCertificate",
    "load_asn1_certificates",
    "load_certificates",
    "load_crls",
    "one_certificate",
    "to_asn1",
]

#: A certificate as callers hold it: cryptography's, asn1crypto's (pyHanko's), or PEM/DER bytes.
CertificateInput = Union[x509.Certificate, asn1_x509.Certificate, bytes]

#: The most a file of certificates or CRLs may hold before it is refused unparsed. A national CRL
#: of a million entries is tens of megabytes; anything larger is not one.
MAX_INPUT_BYTES = 256 * 1024 * 1024


class KeylessCertificate:
    """A certificate whose public key cryptography cannot load, but which is a certificate all the
    same (RFC 5280 allows it, openssl reads it): a DSA key that inherits its parameters from its
    issuer's (RFC 3279 2.3.2), say. It stands in for a ``cryptography.x509.Certificate``: its
    names, serial number, validity and extensions are the certificate's (read through a copy
    whose public key is replaced, never used for a signature), and ``public_bytes`` gives the
    certificate's own bytes. Only ``public_key()`` cannot be had; path validation verifies its
    signatures with pyhanko-certvalidator, which reads such keys."""

    # A P-256 public key (the generator point), put in the copy in place of the unreadable one.
    _PLACEHOLDER_SPKI = bytes.fromhex(
        "3059301306072a8648ce3d020106082a8648ce3d03010703420004"
        "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
        "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")

    def __init__(self, der: bytes):
        original = asn1_x509.Certificate.load(der)
        original.native  # noqa: B018 - the whole certificate must parse, or it is not one
        tbs = original["tbs_certificate"].copy()
        tbs["subject_public_key_info"] = asn1_keys.PublicKeyInfo.load(self._PLACEHOLDER_SPKI)
        copy = asn1_x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": original["signature_algorithm"],
                                      "signature_value": original["signature_value"]})
        self._der = bytes(der)
        self._copy = x509.load_der_x509_certificate(copy.dump())
        self.key_algorithm = original.public_key.algorithm

    def public_bytes(self, encoding: Encoding) -> bytes:
        if encoding == Encoding.DER:
            return self._der
        return asn1_pem.armor("CERTIFICATE", self._der)

    def public_key(self) -> object:
        raise UnusableInputError(f"the {self.key_algorithm.upper()} public key of {subject_text(self.subject)!r} cannot "
                                   "be loaded here (it inherits its parameters from its issuer's)")

    def __getattr__(self, name: str) -> object:
        return getattr(self._copy, name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeylessCertificate) and other._der == self._der

    def __hash__(self) -> int:
        return hash(self._der)


def _load_der(der: bytes) -> x509.Certificate:
    """A certificate from DER: cryptography's, or a :class:`KeylessCertificate` when only its key
    is what cryptography cannot load. ValueError when it is not a certificate at all."""
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as first:
        try:
            return KeylessCertificate(der)  # type: ignore[return-value]
        except (ValueError, TypeError, KeyError):
            raise first from None


def load_certificates(data: CertificateInput | Iterable[CertificateInput], what: str = "the input") -> list[x509.Certificate]:
    """Every certificate ``data`` holds, in order: bytes of one DER certificate or of one or more
    PEM blocks, a certificate object (cryptography's or asn1crypto's), or an iterable of these.
    A certificate whose key cryptography cannot load comes as a :class:`KeylessCertificate`."""
    if isinstance(data, (x509.Certificate, KeylessCertificate)):
        return [data]  # type: ignore[list-item]
    if isinstance(data, asn1_x509.Certificate):
        return [_load_der(data.dump())]
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        if isinstance(data, (str, int)) or not hasattr(data, "__iter__"):
            raise UnusableInputError(f"{what} is a {type(data).__name__}; give a certificate (cryptography, "
                                     "asn1crypto, or PEM/DER bytes)")
        return [c for item in data for c in load_certificates(item, what)]
    if len(data) > MAX_INPUT_BYTES:
        raise UnusableInputError(f"{what} is {len(data)} bytes; a certificate file is far smaller")
    try:
        if b"-----BEGIN" in data[:4096] or data.lstrip().startswith(b"-----"):
            ders = [der for kind, _, der in asn1_pem.unarmor(data, multiple=True) if kind in ("CERTIFICATE",
                                                                                             "X509 CERTIFICATE")]
            if not ders:
                raise ValueError("no CERTIFICATE PEM block in it")
        else:
            ders = [data]
        certs = [_load_der(d) for d in ders]
    except ValueError as exc:
        raise UnusableInputError(
            f"{what} is not an X.509 certificate ({problem(exc)}); give a PEM or DER certificate "
            "(openssl x509 -in FILE -noout -text shows whether it is one)") from None
    return certs


def load_crls(data: bytes | Iterable[bytes], what: str = "the CRL") -> list[bytes]:
    """Every CRL in ``data`` (DER, or PEM blocks; or an iterable of such), as DER."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return [d for item in data for d in load_crls(item, what)]
    data = bytes(data)
    if len(data) > MAX_INPUT_BYTES:
        raise UnusableInputError(f"{what} is {len(data)} bytes; more than any CRL iranpki reads")
    try:
        if data.lstrip().startswith(b"-----"):
            ders = [der for kind, _, der in asn1_pem.unarmor(data, multiple=True) if kind == "X509 CRL"]
            if not ders:
                raise ValueError("no 'X509 CRL' PEM block in it")
        else:
            ders = [data]
        for der in ders:
            x509.load_der_x509_crl(der)  # asn1crypto parses lazily, mid-validation; check the DER now
        return ders
    except ValueError as exc:
        raise UnusableInputError(
            f"{what} is not a CRL ({problem(exc)}); give a DER or PEM certificate revocation list "
            "(openssl crl -in FILE -noout -text shows whether it is one)") from None


def one_certificate(cert: CertificateInput, what: str = "the certificate") -> x509.Certificate:
    """The one certificate ``cert`` is (or holds); UnusableInputError when it holds more or none."""
    if isinstance(cert, (list, tuple)):
        raise UnusableInputError(f"{what} is a list; give one certificate")
    certs = load_certificates(cert, what)
    if len(certs) != 1:
        raise UnusableInputError(f"{what} holds {len(certs)} certificates; give exactly one (the issuing CAs "
                                 "go with the chain)")
    return certs[0]


def to_asn1(cert: x509.Certificate | KeylessCertificate) -> asn1_x509.Certificate:
    """The asn1crypto form of a loaded certificate, as pyHanko and its validator take it."""
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def load_asn1_certificates(data: CertificateInput | Iterable[CertificateInput],
                           what: str = "the input") -> list[asn1_x509.Certificate]:
    """:func:`load_certificates`, in asn1crypto's form."""
    return [to_asn1(c) for c in load_certificates(data, what)]

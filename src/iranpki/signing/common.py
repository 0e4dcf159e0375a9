"""What every signing format shares: certificates and CRLs read into pyHanko's form, the adapter that
puts an :class:`iranpki.keys.Signer` behind pyHanko, the time-stamper, and the verdict base."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import ClassVar, Literal

from asn1crypto import cms
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization

from ..errors import SignatureValidationError, SigningError
from ..inputs import (
    CertificateInput,
    load_asn1_certificates,
    load_crls,
    one_certificate,
    to_asn1,
)
from ..keys.base import SignatureScheme, Signer
from ..verdict import Verdict

PadesLevel = Literal["B-B", "B-T", "B-LT"]
PADES_LEVELS: tuple[str, ...] = ("B-B", "B-T", "B-LT")
#: Key usages a signer's certificate may carry for a document signature: either one suffices.
_SIGNER_KEY_USAGES = {"digital_signature", "non_repudiation"}
#: The S/MIME micalg names of RFC 8551 section 3.5.3.2.
_MICALG = {"sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512"}
_OSSLSIGNCODE_TIMEOUT = 120


# ---- certificates -------------------------------------------------------------------------------
# Read by the one loader of iranpki.inputs, in the asn1crypto form pyHanko takes.

def _one_certificate(data: CertificateInput) -> asn1_x509.Certificate:
    return to_asn1(one_certificate(data, "the signer's certificate"))


def _crl_objects(data: bytes | Iterable[bytes]) -> list[asn1_crl.CertificateList]:
    return [asn1_crl.CertificateList.load(der) for der in load_crls(data)]


def _check_key_matches(signer: Signer, cert: asn1_x509.Certificate) -> None:
    ours = signer.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if ours != cert.public_key.dump():
        raise SigningError(f"the key {signer.reference} is not the key of certificate "
                           f"{cert.subject.human_friendly!r}; give the certificate issued for this key")


# ---- the pyHanko adapter ------------------------------------------------------------------------

def _pyhanko_signer_base() -> type:
    from pyhanko.sign.signers.pdf_cms import Signer as HankoSigner

    return HankoSigner


class PyHankoSigner(_pyhanko_signer_base()):  # type: ignore[misc]
    """A pyHanko :class:`~pyhanko.sign.signers.pdf_cms.Signer` whose key is an iranpki :class:`Signer`.

    The signature mechanism comes from ``scheme`` (RSA PKCS#1 v1.5 or PSS with salt = hash
    length, or ECDSA), and pyHanko is held to its hash: asking for another is an error, not a
    silent switch. ``chain`` lists the issuing CAs, embedded in every signature.
    """

    def __init__(self, signer: Signer, certificate: CertificateInput, chain: Sequence[CertificateInput] = (),
                 *, scheme: SignatureScheme | None = None, embed_roots: bool = True):
        from pyhanko.sign.general import SignedDigestAlgorithm
        from pyhanko_certvalidator.registry import SimpleCertificateStore

        cert = _one_certificate(certificate)
        _check_key_matches(signer, cert)
        self.iranpki_signer = signer
        self.scheme = scheme or SignatureScheme(signer.key_spec.default_hash)
        if signer.key_spec.kind == "ec" and self.scheme.padding == "pss":
            raise SigningError("PSS padding is for RSA keys; an EC key signs with ECDSA (drop -pss)")
        mechanism = SignedDigestAlgorithm.load(self.scheme.algorithm_identifier(signer.key_spec))
        registry = SimpleCertificateStore.from_certs([cert, *load_asn1_certificates(list(chain), "the chain")])
        super().__init__(signing_cert=cert, cert_registry=registry, signature_mechanism=mechanism,
                         embed_roots=embed_roots, prefer_pss=self.scheme.padding == "pss")

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        """Sign ``data`` with the iranpki signer (which hashes it); placeholder bytes on a dry run."""
        if digest_algorithm != self.scheme.hash:
            raise SigningError(f"the signature scheme hashes with {self.scheme.hash}, but {digest_algorithm} "
                               "was asked for; choose the document hash to match the scheme")
        spec = self.iranpki_signer.key_spec
        if dry_run:  # as long as the longest signature the key can make
            if spec.kind == "rsa":
                return bytes(spec.size // 8)
            n = (spec.size + 7) // 8 + 1
            return bytes(6 + 2 * n)
        # The key layer serialises calls into a PKCS#11 module; a thread keeps the loop free.
        return await asyncio.to_thread(self.iranpki_signer.sign, data, self.scheme)


def _timestamper_base() -> type:
    from pyhanko.sign.timestamps import TimeStamper

    return TimeStamper


class RespondingTimeStamper(_timestamper_base()):  # type: ignore[misc]
    """A pyHanko time-stamper that asks a local RFC 3161 responder instead of a URL.

    ``respond`` takes a DER TimeStampReq and returns a DER TimeStampResp, as
    :meth:`iranpki.tsa.TimeStampAuthority.respond` does: a process that holds the TSA key (an
    organisation running its own time-stamping unit) stamps its signatures without HTTP. The
    signing layer takes the callable, not the TSA module, so that it stays below the services.
    """

    def __init__(self, respond: Callable[[bytes], bytes], *, include_nonce: bool = True):
        super().__init__(include_nonce=include_nonce)
        self._respond = respond

    async def async_request_tsa_response(self, req):  # noqa: ANN001, ANN201 - pyHanko's signature
        from asn1crypto import tsp

        return tsp.TimeStampResp.load(await asyncio.to_thread(self._respond, req.dump()))


def _timestamper(tsa_url: str | None, timestamper: object | None) -> object | None:
    if timestamper is not None:
        return timestamper
    if tsa_url is None:
        return None
    if not re.match(r"^https?://[^\s]+$", tsa_url):
        raise SigningError(f"TSA URL {tsa_url!r} is not an http(s) URL; give e.g. http://127.0.0.1:8318/")
    from pyhanko.sign.timestamps import HTTPTimeStamper

    return HTTPTimeStamper(tsa_url, timeout=10)


def _roots(trust_roots: Sequence[CertificateInput] | None) -> list[asn1_x509.Certificate]:
    """The trust anchors: those given, or (None) the national root shipped with iranpki."""
    if trust_roots is None:
        from ..validation import national_anchors

        trust_roots = national_anchors()
    roots = load_asn1_certificates(list(trust_roots), "a trust root")
    if not roots:
        raise SigningError("no trust root given; give the national root certificate (e.g. root.pem)")
    return roots


def _validation_context(trust_roots: Sequence[CertificateInput] | None, *, other_certs: Sequence[CertificateInput] = (),
                        crls: Sequence[bytes] | Sequence[asn1_crl.CertificateList] = (), allow_fetching: bool = False,
                        revocation_mode: str = "soft-fail", moment: datetime | None = None):  # noqa: ANN202
    from pyhanko_certvalidator import ValidationContext

    roots = _roots(trust_roots)
    crl_objs = [c if isinstance(c, asn1_crl.CertificateList) else _crl_objects(c)[0] for c in crls]
    kwargs: dict[str, object] = {}
    if moment is not None:
        kwargs["moment"] = moment
    return ValidationContext(trust_roots=roots, other_certs=load_asn1_certificates(list(other_certs), "a chain certificate"), crls=crl_objs,
                             allow_fetching=allow_fetching, revocation_mode=revocation_mode, **kwargs)


def _pyhanko_error(exc: BaseException, what: str) -> SigningError:
    # pyHanko wraps the certvalidator error that says why (revoked, expired, no path): show it.
    reasons = [str(exc)]
    cause = exc.__cause__
    while cause is not None and len(reasons) < 4:
        reasons.append(str(cause))
        cause = cause.__cause__
    return SigningError(f"{what} failed: " + ": ".join(r for r in reasons if r))




class _Verdict(Verdict):
    """What the PDF, CMS and PE results share: ``problems`` (empty when the signature is
    accepted), an ``error`` made of them (a SignatureValidationError), and their JSON form."""

    #: The format, as the error names it.
    kind: ClassVar[str] = "signed file"
    problems: list[str]

    @property
    def error(self) -> SignatureValidationError | None:  # type: ignore[override]
        if not self.problems:
            return None
        return SignatureValidationError(f"the {self.kind} signature does not validate: " + "; ".join(self.problems),
                                        kind=self.kind, problems=list(self.problems))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields (times in ISO 8601; embedded content as its size), with ``ok``."""
        out: dict[str, object] = {"ok": self.ok}
        for name, value in self.__dict__.items():
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, bytes):
                value = len(value)  # the size of embedded content, not the content
                name = f"{name}_bytes"
            out[name] = value
        return out


_TRUST_PROBLEMS = {
    "REVOKED": "the signer's certificate (or a CA's) is revoked",
    "REVOKED_NO_POE": "the signer's certificate (or a CA's) is revoked, and nothing proves the signature older",
    "REVOKED_CA_NO_POE": "a CA certificate in the path is revoked",
    "EXPIRED": "the signer's certificate has expired",
    "OUT_OF_BOUNDS_NO_POE": "the signer's certificate was not valid at the validation time",
    "NOT_YET_VALID": "the signer's certificate is not yet valid",
    "NO_CERTIFICATE_CHAIN_FOUND": "no path from the signer's certificate to the given roots",
    "CERTIFICATE_CHAIN_GENERAL_FAILURE": "the certificate path does not validate",
    "TRY_LATER": "the revocation status of a certificate in the path is not known",
    "CHAIN_CONSTRAINTS_FAILURE": "the certificate path breaks a constraint (key usage, policy, names)",
}


def _trust_problem(status: object) -> str:
    indic = getattr(status, "trust_problem_indic", None)
    name = getattr(indic, "name", None) or str(indic or "")
    return _TRUST_PROBLEMS.get(name, "no trusted path to the given roots") + (f" ({name})" if name else "")


def _embedded_certificates(sd: cms.SignedData) -> list[asn1_x509.Certificate]:
    return [c.chosen for c in (sd["certificates"] or []) if c.name == "certificate"]

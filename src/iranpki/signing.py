"""Signing and verifying what the national PKI is used for: PDF, CMS, S/MIME mail, Windows code.

Implemented here, each on a named standard:

- PAdES (ETSI EN 319 142-1) baseline signatures B-B, B-T and B-LT over PDF (ISO 32000-2 12.8)
  through pyHanko, with the key behind :class:`iranpki.keys.Signer` (a PKCS#11 token or a
  software key): :class:`PyHankoSigner` adapts one to the other, so a token key goes through
  the key layer and its per-module lock (docs/architecture.md).
- CMS SignedData (RFC 5652 section 5), detached or attached, with the ESS
  signing-certificate-v2 attribute (RFC 5035) and CMS algorithm protection (RFC 6211).
- S/MIME 4.0 (RFC 8551): multipart/signed (RFC 1847; RFC 8551 section 3.5.3) and
  application/pkcs7-mime enveloped-data (section 3.3) with RSAES-OAEP key transport (RFC 8017,
  parameters per RFC 4055 section 4) and AES-256-CBC (RFC 3565); signed then encrypted.
- Authenticode over Windows PE files through ``osslsigncode`` (no Python library signs PE).

Verification returns typed results (:class:`PdfSignatureResult`, :class:`CmsResult`,
:class:`PeResult`) whose ``ok`` says whether a relying party may accept the signature, and
whose fields say why not. A signature that cannot be read at all raises :class:`SigningError`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Literal

from asn1crypto import algos, cms, pem
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .der import problem
from .errors import SigningError
from .keys.base import SecretSource, SignatureScheme, Signer

__all__ = [
    "CertificateInput",
    "CmsResult",
    "PadesLevel",
    "PdfSignatureResult",
    "PeResult",
    "PyHankoSigner",
    "RespondingTimeStamper",
    "SignedFileResult",
    "SigningError",
    "encrypt_mail",
    "envelope",
    "detect_signed_kind",
    "load_certificates",
    "load_crls",
    "sign_cms",
    "sign_mail",
    "sign_pdf",
    "sign_pe",
    "verify_cms",
    "verify_mail",
    "verify_pdf",
    "verify_pe",
    "verify_signed",
]

PadesLevel = Literal["B-B", "B-T", "B-LT"]
PADES_LEVELS: tuple[str, ...] = ("B-B", "B-T", "B-LT")
#: A certificate as bytes (PEM or DER), a ``cryptography`` or an ``asn1crypto`` certificate.
CertificateInput = bytes | cx509.Certificate | asn1_x509.Certificate
#: Key usages a signer's certificate may carry for a document signature: either one suffices.
_SIGNER_KEY_USAGES = {"digital_signature", "non_repudiation"}
#: The S/MIME micalg names of RFC 8551 section 3.5.3.2.
_MICALG = {"sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512"}
_OSSLSIGNCODE_TIMEOUT = 120


# ---- certificates -------------------------------------------------------------------------------

def load_certificates(data: bytes | CertificateInput | Iterable[CertificateInput]) -> list[asn1_x509.Certificate]:
    """Certificates from PEM (one or many), DER bytes, or certificate objects, in order."""
    if isinstance(data, (bytes, bytearray, cx509.Certificate, asn1_x509.Certificate)):
        items: Iterable[object] = [data]
    else:
        items = data
    out: list[asn1_x509.Certificate] = []
    for item in items:
        if isinstance(item, asn1_x509.Certificate):
            out.append(item)
        elif isinstance(item, cx509.Certificate):
            out.append(asn1_x509.Certificate.load(item.public_bytes(serialization.Encoding.DER)))
        elif isinstance(item, (bytes, bytearray)):
            raw = bytes(item)
            try:
                if pem.detect(raw):
                    found = [asn1_x509.Certificate.load(der) for kind, _, der in pem.unarmor(raw, multiple=True)
                             if kind == "CERTIFICATE"]
                    if not found:
                        raise ValueError("no CERTIFICATE block")
                    out.extend(found)
                else:
                    cert = asn1_x509.Certificate.load(raw)
                    cert.native  # noqa: B018 - parse now, so a bad file fails here and not later
                    out.append(cert)
            except (ValueError, TypeError) as exc:
                raise SigningError(f"not a certificate ({problem(exc)}); give a PEM or DER X.509 certificate") from None
        else:
            raise SigningError(f"not a certificate: {type(item).__name__}; give PEM or DER bytes")
    return out


def _one_certificate(data: CertificateInput) -> asn1_x509.Certificate:
    certs = load_certificates(data)
    if len(certs) != 1:
        raise SigningError(f"expected one certificate, got {len(certs)}; give the signer's certificate alone "
                           "and the issuing CAs as the chain")
    return certs[0]


def load_crls(data: bytes | Iterable[bytes]) -> list[asn1_crl.CertificateList]:
    """CRLs from PEM or DER bytes (one item or many)."""
    items = [data] if isinstance(data, (bytes, bytearray)) else list(data)
    out = []
    for raw in items:
        try:
            if pem.detect(raw):
                out.extend(asn1_crl.CertificateList.load(der) for _, _, der in pem.unarmor(bytes(raw), multiple=True))
            else:
                out.append(asn1_crl.CertificateList.load(bytes(raw)))
        except (ValueError, TypeError) as exc:
            raise SigningError(f"not a CRL ({problem(exc)}); give a PEM or DER CRL") from None
    return out


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
        registry = SimpleCertificateStore.from_certs([cert, *load_certificates(list(chain))])
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
        from .validation import national_anchors

        trust_roots = national_anchors()
    roots = load_certificates(list(trust_roots))
    if not roots:
        raise SigningError("no trust root given; give the national root certificate (e.g. root.pem)")
    return roots


def _validation_context(trust_roots: Sequence[CertificateInput] | None, *, other_certs: Sequence[CertificateInput] = (),
                        crls: Sequence[bytes] | Sequence[asn1_crl.CertificateList] = (), allow_fetching: bool = False,
                        revocation_mode: str = "soft-fail", moment: datetime | None = None):  # noqa: ANN202
    from pyhanko_certvalidator import ValidationContext

    roots = _roots(trust_roots)
    crl_objs = [c if isinstance(c, asn1_crl.CertificateList) else load_crls(c)[0] for c in crls]
    kwargs: dict[str, object] = {}
    if moment is not None:
        kwargs["moment"] = moment
    return ValidationContext(trust_roots=roots, other_certs=load_certificates(list(other_certs)), crls=crl_objs,
                             allow_fetching=allow_fetching, revocation_mode=revocation_mode, **kwargs)


def _pyhanko_error(exc: BaseException, what: str) -> SigningError:
    # pyHanko wraps the certvalidator error that says why (revoked, expired, no path): show it.
    reasons = [str(exc)]
    cause = exc.__cause__
    while cause is not None and len(reasons) < 4:
        reasons.append(str(cause))
        cause = cause.__cause__
    return SigningError(f"{what} failed: " + ": ".join(r for r in reasons if r))


SignedKind = Literal["pdf", "smime", "cms", "pe"]


def detect_signed_kind(data: bytes) -> SignedKind | None:
    """What kind of signed file ``data`` is, for a verifier that dispatches: a PDF, an S/MIME
    message, a CMS SignedData (DER or PEM), a Windows PE; None if none of these."""
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if head.startswith(b"MZ") and len(data) > 0x40:
        return "pe"
    if re.search(rb"(?im)^content-type:\s*(multipart/signed|application/(x-)?pkcs7-mime)", data[:65536]):
        return "smime"
    raw = data
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            raw = pem.unarmor(data.strip())[2]
        except ValueError:
            return None
    try:
        info = cms.ContentInfo.load(raw)
        return "cms" if info["content_type"].native == "signed_data" else None
    except (ValueError, TypeError):
        return None


# ---- PDF (PAdES) --------------------------------------------------------------------------------

def sign_pdf(data: bytes | IO[bytes], signer: Signer, certificate: CertificateInput, *,
             chain: Sequence[CertificateInput] = (), level: PadesLevel = "B-B", tsa_url: str | None = None,
             timestamper: object | None = None, trust_roots: Sequence[CertificateInput] = (),
             crls: Sequence[bytes] = (), allow_fetching: bool = False, field_name: str = "Signature1",
             reason: str | None = None, location: str | None = None, name: str | None = None,
             scheme: SignatureScheme | None = None) -> bytes:
    """Sign a PDF as a PAdES baseline signature and return the signed PDF (an incremental update).

    ``level``: ``B-B`` (signature only), ``B-T`` (with a signature time-stamp from ``tsa_url``
    or ``timestamper``), ``B-LT`` (B-T plus the certificates and CRLs that validate the signer
    and the time-stamp, in the document security store). B-LT needs ``trust_roots`` (the
    national root) and the CRLs of every CA in the chain as ``crls`` (or ``allow_fetching``).
    """
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    if level not in PADES_LEVELS:
        raise SigningError(f"unknown PAdES level {level!r}; must be one of {', '.join(PADES_LEVELS)}")
    stamper = _timestamper(tsa_url, timestamper)
    if level in ("B-T", "B-LT") and stamper is None:
        raise SigningError(f"PAdES {level} needs a signature time-stamp; give the TSA URL (--tsa URL)")
    if level == "B-B" and stamper is not None:
        raise SigningError("a TSA was given for a B-B signature; ask for level B-T to time-stamp it")
    hanko = PyHankoSigner(signer, certificate, chain, scheme=scheme)
    vc = None
    if level == "B-LT":
        if not trust_roots:
            raise SigningError("PAdES B-LT embeds the validation data up to a trust root; give the root certificate")
        vc = _validation_context(trust_roots, other_certs=chain, crls=crls, allow_fetching=allow_fetching,
                                 revocation_mode="hard-fail")
    meta = signers.PdfSignatureMetadata(
        field_name=field_name, reason=reason, location=location, name=name, md_algorithm=hanko.scheme.hash,
        subfilter=fields.SigSeedSubFilter.PADES, embed_validation_info=level == "B-LT", validation_context=vc,
        signer_key_usage=set(), use_pades_lta=False)
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        writer = IncrementalPdfFileWriter(stream, strict=False)
    except Exception as exc:  # noqa: BLE001 - pyHanko raises many kinds for a broken PDF
        raise SigningError(f"the input is not a PDF pyHanko can read: {exc}") from None
    try:
        out = signers.PdfSigner(meta, hanko, timestamper=stamper).sign_pdf(writer, output=io.BytesIO())
    except SigningError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyHanko signing, time-stamping and validation errors
        raise _pyhanko_error(exc, f"PAdES {level} signing") from None
    return out.getvalue()


class _Verdict:
    """What the PDF and CMS results share: ``ok`` when there is no problem, and their JSON form."""

    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

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


@dataclass(frozen=True)
class PdfSignatureResult(_Verdict):
    """The validation of one signature in a PDF (pyHanko's status, in iranpki's words)."""

    field_name: str
    signer: str  #: the signer certificate's subject
    intact: bool  #: the signed bytes hash to the signed digest
    valid: bool  #: the signature over the signed attributes checks with the signer's key
    trusted: bool  #: a path to a trust root was built and validated (with revocation as asked)
    coverage: str  #: ENTIRE_FILE, ENTIRE_REVISION or CONTENTS_ONLY
    modification_level: str | None  #: NONE, LTA_UPDATES, FORM_FILLING, ANNOTATIONS, OTHER
    docmdp_ok: bool | None
    timestamp: datetime | None  #: the signature time-stamp's time, if there is a valid one
    timestamp_ok: bool | None  #: None when there is no time-stamp
    ltv: bool  #: the document security store holds validation data (PAdES B-LT)
    level: str  #: B-B, B-T or B-LT as the document shows it
    problems: list[str] = field(default_factory=list)


def verify_pdf(data: bytes, trust_roots: Sequence[CertificateInput] | None = None, *, crls: Sequence[bytes] = (),
               intermediates: Sequence[CertificateInput] = (), allow_fetching: bool = False,
               require_revocation: bool = False, ltv: bool = False,
               moment: datetime | None = None) -> list[PdfSignatureResult]:
    """Validate every signature in a PDF against ``trust_roots``.

    Paths are built from the certificates in each signature, ``intermediates``, and the
    document security store: a time-stamp token usually holds the TSA's certificate alone, and
    its issuing CA is found among the signer's.

    ``ltv``: validate from what the document carries alone (its document security store and
    the signature's own certificates, no fetching), with revocation data required: the check
    that a PAdES B-LT signature is what it claims. ``require_revocation`` requires revocation
    data for every certificate (given as ``crls`` or fetched).
    """
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import DocumentSecurityStore, KeyUsageConstraints, validate_pdf_signature

    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        sigs = list(reader.embedded_signatures)
    except Exception as exc:  # noqa: BLE001 - pyHanko raises many kinds for a broken PDF
        raise SigningError(f"the file is not a PDF pyHanko can read: {exc}") from None
    if not sigs:
        raise SigningError("the PDF has no signature to verify; sign it first (iranpki sign pdf)")
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except Exception:  # noqa: BLE001 - no DSS in the document
        dss = None
    has_dss = dss is not None and bool(list(dss.load_certs()) or dss.crls or dss.ocsps)
    mode = "hard-fail" if (ltv or require_revocation) else "soft-fail"
    usage = KeyUsageConstraints(key_usage=_SIGNER_KEY_USAGES, match_all_key_usages=False)
    results = []
    extra = load_certificates(list(intermediates))
    for sig in sigs:
        embedded = _embedded_certificates(sig.signed_data)
        if ltv:
            if dss is None:
                raise SigningError("the PDF has no document security store, so no long-term validation data; "
                                   "it is not a B-LT signature")
            kwargs: dict[str, object] = {"trust_roots": _roots(trust_roots), "allow_fetching": False, "revocation_mode": mode,
                                         "other_certs": [*embedded, *extra]}
            if moment is not None:
                kwargs["moment"] = moment
            vc = dss.as_validation_context(kwargs)
        else:
            vc = _validation_context(trust_roots, other_certs=[*embedded, *extra], crls=crls,
                                     allow_fetching=allow_fetching, revocation_mode=mode, moment=moment)
        try:
            status = validate_pdf_signature(sig, signer_validation_context=vc, key_usage_settings=usage)
        except Exception as exc:  # noqa: BLE001 - a malformed signature dictionary or CMS object
            raise _pyhanko_error(exc, f"validating signature {sig.field_name!r}") from None
        results.append(_pdf_result(sig, status, has_dss))
    return results


#: pyHanko's AdES indications (ETSI EN 319 102-1 5.1.3) in a relying party's words.
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


def _pdf_result(sig: object, status: object, has_dss: bool) -> PdfSignatureResult:
    s = status
    problems = []
    if not s.intact:  # type: ignore[attr-defined]
        problems.append("the signed content was changed after signing (digest mismatch)")
    if not s.valid:  # type: ignore[attr-defined]
        problems.append("the signature does not check with the signer's key")
    if s.intact and s.valid and not s.trusted:  # type: ignore[attr-defined] - else never checked
        problems.append(_trust_problem(s))
    coverage = s.coverage.name if s.coverage is not None else "UNKNOWN"  # type: ignore[attr-defined]
    if coverage != "ENTIRE_FILE" and s.modification_level is not None \
            and s.modification_level.name not in ("NONE", "LTA_UPDATES"):  # type: ignore[attr-defined]
        problems.append(f"the document was changed after signing ({s.modification_level.name})")  # type: ignore[attr-defined]
    if s.docmdp_ok is False:  # type: ignore[attr-defined]
        problems.append("changes after signing break the document's modification permissions")
    ts = s.timestamp_validity  # type: ignore[attr-defined]
    ts_ok = None if ts is None else bool(ts.intact and ts.valid and ts.trusted)
    if ts_ok is False:
        problems.append("the signature time-stamp does not validate")
    level = "B-LT" if (ts is not None and has_dss) else "B-T" if ts is not None else "B-B"
    signer = s.signing_cert.subject.human_friendly if s.signing_cert is not None else "?"  # type: ignore[attr-defined]
    return PdfSignatureResult(
        field_name=sig.field_name, signer=signer, intact=bool(s.intact), valid=bool(s.valid),  # type: ignore[attr-defined]
        trusted=bool(s.trusted), coverage=coverage,  # type: ignore[attr-defined]
        modification_level=s.modification_level.name if s.modification_level is not None else None,  # type: ignore[attr-defined]
        docmdp_ok=s.docmdp_ok, timestamp=ts.timestamp if ts is not None and ts_ok else None,  # type: ignore[attr-defined]
        timestamp_ok=ts_ok, ltv=has_dss, level=level, problems=problems)


# ---- CMS ----------------------------------------------------------------------------------------

def _read_input(data: bytes | str | os.PathLike[str] | IO[bytes]) -> bytes | IO[bytes]:
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)):
        try:
            return open(data, "rb")  # noqa: SIM115 - closed by the caller's finally
        except OSError as exc:
            raise SigningError(f"cannot read {os.fspath(data)!r}: {exc.strerror}") from None
    return data


def sign_cms(data: bytes | str | os.PathLike[str] | IO[bytes], signer: Signer, certificate: CertificateInput, *,
             chain: Sequence[CertificateInput] = (), attached: bool = False, scheme: SignatureScheme | None = None,
             tsa_url: str | None = None, timestamper: object | None = None) -> bytes:
    """CMS SignedData (DER) over ``data`` (bytes, a path or a binary stream, read in chunks).

    Detached by default (the content travels beside the ``.p7s``); ``attached`` embeds it. The
    signed attributes are content-type, message-digest, signing-time, signing-certificate-v2
    and CMS algorithm protection; a TSA adds a signature time-stamp (RFC 3161 appendix A).
    """
    from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes

    hanko = PyHankoSigner(signer, certificate, chain, scheme=scheme)
    stamper = _timestamper(tsa_url, timestamper)
    source = _read_input(data)
    try:
        attrs = PdfCMSSignedAttributes(signing_time=datetime.now(timezone.utc))
        coro = hanko.async_sign_general_data(source, hanko.scheme.hash, detached=not attached,
                                             timestamper=stamper, signed_attr_settings=attrs)
        info = asyncio.run(coro)
    except SigningError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyHanko signing and time-stamping errors
        raise _pyhanko_error(exc, "CMS signing") from None
    finally:
        if source is not data and hasattr(source, "close"):
            source.close()  # type: ignore[union-attr]
    return info.dump()


@dataclass(frozen=True)
class CmsResult(_Verdict):
    """The validation of one CMS SignedData signature."""

    signer: str  #: the signer certificate's subject
    intact: bool
    valid: bool
    trusted: bool
    signing_time: datetime | None  #: as the signer claims it (signed attribute)
    timestamp: datetime | None  #: from a valid signature time-stamp
    digest_algorithm: str
    content: bytes | None = None  #: the encapsulated content of an attached signature
    problems: list[str] = field(default_factory=list)


def _load_signed_data(signature: bytes) -> cms.SignedData:
    raw = signature
    if pem.detect(raw):
        raw = pem.unarmor(raw)[2]
    try:
        info = cms.ContentInfo.load(raw)
        if info["content_type"].native != "signed_data":
            raise ValueError(f"content type is {info['content_type'].native}")
        sd = info["content"]
        # Parse the parts read below now, so that a broken file fails here. (Not ``.native`` of
        # the whole: asn1crypto takes seconds on a SignedData holding a time-stamp token.)
        if len(sd["signer_infos"]) != 1:
            raise ValueError(f"{len(sd['signer_infos'])} signers; iranpki verifies signatures by one signer")
        sd["encap_content_info"]["content_type"].native  # noqa: B018
        sd["signer_infos"][0]["signed_attrs"].native  # noqa: B018
        return sd
    except (ValueError, TypeError, KeyError) as exc:
        raise SigningError(f"not a CMS SignedData signature ({problem(exc)}); give a .p7s/.p7m in DER or PEM") from None


def verify_cms(data: bytes | str | os.PathLike[str] | IO[bytes] | None, signature: bytes,
               trust_roots: Sequence[CertificateInput] | None = None, *, crls: Sequence[bytes] = (),
               intermediates: Sequence[CertificateInput] = (), allow_fetching: bool = False,
               require_revocation: bool = False, moment: datetime | None = None) -> CmsResult:
    """Validate a CMS signature: detached over ``data``, or attached (``data`` None).

    The signer's path is built from the certificates in the signature to ``trust_roots``;
    revocation is checked from ``crls`` (and fetched with ``allow_fetching``), required with
    ``require_revocation``.
    """
    from pyhanko.sign.validation import KeyUsageConstraints, async_validate_detached_cms

    sd = _load_signed_data(signature)
    content = sd["encap_content_info"]["content"]
    attached = content.native is not None
    if data is None and not attached:
        raise SigningError("the signature is detached; give the signed file as well")
    mode = "hard-fail" if require_revocation else "soft-fail"
    vc = _validation_context(trust_roots, other_certs=[*_embedded_certificates(sd), *load_certificates(list(intermediates))],
                             crls=crls, allow_fetching=allow_fetching, revocation_mode=mode, moment=moment)
    usage = KeyUsageConstraints(key_usage=_SIGNER_KEY_USAGES, match_all_key_usages=False)
    embedded: bytes | None = None
    if attached:
        embedded = content.parsed.native if hasattr(content, "parsed") else content.native
        if isinstance(embedded, str):
            embedded = embedded.encode()
    source = _read_input(data) if data is not None else None
    try:
        if attached:  # checked over its own content; a file given beside it must match (below)
            coro = _validate_attached(sd, vc, usage)
        else:
            coro = async_validate_detached_cms(source, sd, signer_validation_context=vc, key_usage_settings=usage)
        status = asyncio.run(_run_and_release(coro, vc))
    except SigningError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed SignedData
        raise _pyhanko_error(exc, "validating the CMS signature") from None
    finally:
        if source is not None and source is not data and hasattr(source, "close"):
            source.close()  # type: ignore[union-attr]
    problems = []
    if attached and source is not None and embedded is not None:
        given = source if isinstance(source, bytes) else None
        if given is not None and given != embedded:
            problems.append("the given file differs from the content inside the signature")
    if not status.intact:
        problems.append("the content was changed after signing (digest mismatch)")
    if not status.valid:
        problems.append("the signature does not check with the signer's key")
    if status.intact and status.valid and not status.trusted:  # else the path was never checked
        problems.append(_trust_problem(status))
    ts = status.timestamp_validity
    if ts is not None and not (ts.intact and ts.valid and ts.trusted):
        problems.append("the signature time-stamp does not validate")
    return CmsResult(signer=status.signing_cert.subject.human_friendly, intact=bool(status.intact),
                     valid=bool(status.valid), trusted=bool(status.trusted), signing_time=status.signer_reported_dt,
                     timestamp=ts.timestamp if ts is not None and not problems else None,
                     digest_algorithm=status.md_algorithm, content=embedded if attached else None,
                     problems=problems)


async def _validate_attached(sd: cms.SignedData, vc: object, usage: object):  # noqa: ANN202
    from pyhanko.sign.general import extract_signer_info
    from pyhanko.sign.validation.generic_cms import async_validate_cms_signature, collect_timing_info
    from pyhanko.sign.validation.status import StandardCMSSignatureStatus

    timing = await collect_timing_info(extract_signer_info(sd), ts_validation_context=vc, raw_digest=None)
    return await async_validate_cms_signature(sd, status_cls=StandardCMSSignatureStatus, validation_context=vc,
                                              status_kwargs=timing, key_usage_settings=usage)


async def _run_and_release(coro, vc):  # noqa: ANN001, ANN202 - pyHanko's session scope
    from pyhanko.sign._session_scope import run_and_release

    return await run_and_release(coro, vc)


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
    certs = load_certificates(list(recipients))
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


# ---- Windows PE (Authenticode through osslsigncode) ---------------------------------------------

def _osslsigncode() -> str:
    exe = shutil.which("osslsigncode")
    if exe is None:
        raise SigningError("osslsigncode is not installed; install it (apt-get install osslsigncode) to sign PE files")
    return exe


def _pem_bundle(certs: Iterable[asn1_x509.Certificate]) -> bytes:
    return b"".join(pem.armor("CERTIFICATE", c.dump()) for c in certs)


def sign_pe(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str], *, key_file: str | os.PathLike[str],
            certificate: CertificateInput, chain: Sequence[CertificateInput] = (),
            passphrase: SecretSource | None = None, digest: str = "sha256", description: str | None = None,
            url: str | None = None, timestamp_url: str | None = None) -> None:
    """Authenticode-sign a Windows PE (.exe, .dll) with ``osslsigncode`` and a software key file.

    The key file is a PEM private key (encrypted PKCS#8, as iranpki writes them). Its passphrase
    reaches osslsigncode through a pipe (``-readpass /dev/fd/N``), never on the command line or
    on disk. Keys on PKCS#11 tokens need osslsigncode's PKCS#11 engine and are not wired here.
    """
    key_path = os.fspath(key_file)
    if key_path.startswith("pkcs11:"):
        raise SigningError("PE signing takes a software key file; a PKCS#11 key needs osslsigncode's "
                           "-pkcs11module and is not supported by iranpki yet")
    if digest not in ("sha256", "sha384", "sha512"):
        raise SigningError(f"digest {digest!r} is not offered; must be one of sha256, sha384, sha512")
    if not os.path.isfile(key_path):
        raise SigningError(f"key file {key_path!r} does not exist")
    cert = _one_certificate(certificate)
    exe = _osslsigncode()
    secret = None
    with open(key_path, "rb") as f:
        encrypted = b"ENCRYPTED" in f.read(200)
    if encrypted:
        source = passphrase or SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
        secret = source.get(f"key {key_path}")
    with tempfile.TemporaryDirectory(prefix="iranpki-pe-") as tmp:  # mode 0700
        certs = Path(tmp) / "certs.pem"
        certs.write_bytes(_pem_bundle([cert, *load_certificates(list(chain))]))
        cmd = [exe, "sign", "-certs", str(certs), "-key", key_path, "-h", digest]
        if description:
            cmd += ["-n", description]
        if url:
            cmd += ["-i", url]
        if timestamp_url:
            cmd += ["-ts", timestamp_url]
        out = os.fspath(output_path)
        if os.path.exists(out):
            os.unlink(out)  # osslsigncode refuses to overwrite
        cmd += ["-in", os.fspath(input_path), "-out", out]
        pass_fds: tuple[int, ...] = ()
        read_fd = write_fd = -1
        if secret is not None:
            read_fd, write_fd = os.pipe()
            os.write(write_fd, secret.encode() + b"\n")
            os.close(write_fd)
            cmd[cmd.index("-key") + 2:cmd.index("-key") + 2] = ["-readpass", f"/dev/fd/{read_fd}"]
            pass_fds = (read_fd,)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=_OSSLSIGNCODE_TIMEOUT,
                                  pass_fds=pass_fds, check=False)
        finally:
            if read_fd >= 0:
                os.close(read_fd)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise SigningError("osslsigncode could not sign: " + " / ".join(tail)
                           + "; check the key, its passphrase and that the input is a PE file")


@dataclass(frozen=True)
class PeResult:
    """The Authenticode verification of a PE file by ``osslsigncode verify``."""

    ok: bool
    signer: str | None
    digest_ok: bool
    chain_ok: bool
    timestamped: bool  #: an RFC 3161 time-stamp is present and verified
    revocation_checked: bool
    output: str  #: osslsigncode's report, for people

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "output"}


def verify_pe(path: str | os.PathLike[str], trust_roots: Sequence[CertificateInput] | None = None, *,
              intermediates: Sequence[CertificateInput] = (), crls: Sequence[bytes] = ()) -> PeResult:
    """Verify a signed PE against ``trust_roots`` with ``osslsigncode verify``.

    With ``crls`` (PEM or DER; one per CA in the chain), revocation is checked against them;
    without, it is not checked (``revocation_checked`` is False). Nothing is fetched.
    ``intermediates`` complete the time-stamp's chain: a time-stamp token usually carries the
    TSA's certificate alone, and osslsigncode looks for its issuer only there and in the roots.
    A time-stamp that is present but does not verify makes the result not ``ok``.
    """
    exe = _osslsigncode()
    with tempfile.TemporaryDirectory(prefix="iranpki-pe-") as tmp:
        roots = Path(tmp) / "roots.pem"
        roots.write_bytes(_pem_bundle(_roots(trust_roots)))
        # The time-stamp (if any) is judged against the same roots, not the system's store.
        tsa_roots = Path(tmp) / "tsa-roots.pem"
        tsa_roots.write_bytes(roots.read_bytes() + _pem_bundle(load_certificates(list(intermediates))))
        cmd = [exe, "verify", "-CAfile", str(roots), "-TSA-CAfile", str(tsa_roots)]
        if crls:
            crl_file = Path(tmp) / "crls.pem"
            crl_file.write_bytes(b"".join(pem.armor("X509 CRL", c.dump()) for c in load_crls(list(crls))))
            # Never fetched: the CRLs given must cover every CA in the chain, or verification fails.
            cmd += ["-CRLfile", str(crl_file), "-TSA-CRLfile", str(crl_file), "-ignore-cdp"]
        else:
            # osslsigncode 2.9 fails a chain whose certificates name a CRL it was not given.
            cmd += ["-ignore-crl"]
        cmd += ["-in", os.fspath(path)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_OSSLSIGNCODE_TIMEOUT, check=False)
    text = done.stdout + done.stderr
    m = re.search(r"Signer's certificate:.*?Subject:\s*([^\n]+)", text, re.S)
    digests = re.findall(r"(?:Current|Calculated) message digest\s*:\s*([0-9A-F]+)", text)
    digest_ok = len(digests) == 2 and digests[0] == digests[1]
    chain_ok = "\nSignature verification: ok" in text
    stamp_present = "Timestamp is not available" not in text
    stamp_ok = "Timestamp Server Signature verification: ok" in text
    # osslsigncode 2.9 exits 0 when a time-stamp fails but the signature holds; we do not accept it.
    ok = done.returncode == 0 and chain_ok and digest_ok and (stamp_ok or not stamp_present)
    return PeResult(ok=ok, signer=m.group(1).strip() if m else None, digest_ok=digest_ok, chain_ok=chain_ok,
                    timestamped=stamp_present and stamp_ok, revocation_checked=bool(crls), output=text)


# ---- one entry point for a verifier -------------------------------------------------------------

@dataclass(frozen=True)
class SignedFileResult:
    """The verification of a signed file of any kind :func:`detect_signed_kind` knows."""

    kind: SignedKind
    results: list[PdfSignatureResult] | list[CmsResult] | list[PeResult]

    @property
    def ok(self) -> bool:
        """Every signature in the file validates (a PDF may hold several)."""
        return bool(self.results) and all(r.ok for r in self.results)

    @property
    def problems(self) -> list[str]:
        return [p for r in self.results for p in getattr(r, "problems", [] if r.ok else ["osslsigncode refused it"])]

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "ok": self.ok, "signatures": [r.to_dict() for r in self.results]}


def verify_signed(data: bytes, *, content: bytes | None = None, trust_roots: Sequence[CertificateInput] | None = None,
                  intermediates: Sequence[CertificateInput] = (), crls: Sequence[bytes] = (),
                  allow_fetching: bool = False, require_revocation: bool = False,
                  moment: datetime | None = None) -> SignedFileResult:
    """Verify a signed PDF, S/MIME message, CMS signature (``content``: the signed file of a
    detached one) or Windows PE, whichever ``data`` is; trust ``trust_roots`` (default: the
    national root). An S/MIME message must be signed (multipart/signed), not encrypted."""
    kind = detect_signed_kind(data)
    if kind is None:
        raise SigningError("not a signed file iranpki reads; it reads signed PDF, S/MIME (.eml), "
                           "CMS (.p7s/.p7m, DER or PEM) and Windows PE (.exe, .dll)")
    common = {"trust_roots": trust_roots, "intermediates": intermediates, "crls": crls}
    if kind == "pe":
        if moment is not None or allow_fetching:
            raise SigningError("a PE signature is verified now and from the given CRLs only (osslsigncode)")
        with tempfile.TemporaryDirectory(prefix="iranpki-pe-") as tmp:
            path = Path(tmp) / "file.exe"
            path.write_bytes(data)
            return SignedFileResult("pe", [verify_pe(path, **common)])  # type: ignore[arg-type]
    more = {"allow_fetching": allow_fetching, "require_revocation": require_revocation, "moment": moment}
    if kind == "pdf":
        return SignedFileResult("pdf", verify_pdf(data, **common, **more))  # type: ignore[arg-type]
    if kind == "smime":
        return SignedFileResult("smime", [verify_mail(data, **common, **more)])
    return SignedFileResult("cms", [verify_cms(content, data, **common, **more)])  # type: ignore[arg-type]

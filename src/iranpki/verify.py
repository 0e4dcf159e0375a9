"""A relying party's one entry point: what a file is, and its verification.

:func:`detect_kind` tells a certificate (PEM or DER) from a signed PDF (PAdES), an S/MIME
message, a CMS SignedData (DER or PEM) and a Windows PE (Authenticode); :func:`verify_file`
verifies whichever it is, with :func:`iranpki.validation.validate_certificate` or the format's
verifier in :mod:`iranpki.signing`, and returns a :class:`FileVerification`, a
:class:`~iranpki.verdict.Verdict` like each of theirs. ``iranpki verify`` and the portals call
this and render what comes back; adding a kind of file is adding it here.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from asn1crypto import cms, pem

from . import signing, validation
from .errors import (
    SignatureValidationError,
    SigningError,
    UnusableInputError,
    ValidationError,
    ValidationInputError,
)
from .inputs import CertificateInput, load_certificates
from .verdict import Verdict

__all__ = ["DESCRIBED", "FILE_KINDS", "FileKind", "FileVerification", "SignedFileResult", "detect_kind", "verify_file"]

FileKind = Literal["certificate", "pdf", "smime", "cms", "pe"]
#: The kinds :func:`detect_kind` knows, in the order they are tried: a signed file first, since
#: a PEM CMS or an S/MIME message may hold certificates too.
FILE_KINDS: tuple[str, ...] = ("pdf", "pe", "smime", "cms", "certificate")
DESCRIBED = ("X.509 certificates (PEM or DER), signed PDF, S/MIME (.eml), CMS (.p7s/.p7m, DER or PEM) "
              "and Windows PE (.exe, .dll)")


def detect_kind(data: bytes) -> FileKind | None:
    """What ``data`` is: ``certificate``, ``pdf``, ``smime``, ``cms`` or ``pe``; None if none."""
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if head.startswith(b"MZ") and len(data) > 0x40:
        return "pe"
    if re.search(rb"(?im)^content-type:\s*(multipart/signed|application/(x-)?pkcs7-mime)", data[:65536]):
        return "smime"
    if _is_signed_data(data):
        return "cms"
    if b"-----BEGIN CERTIFICATE-----" in data[:65536]:
        return "certificate"
    try:
        load_certificates(data)
        return "certificate"
    except ValidationInputError:
        return None


def _is_signed_data(data: bytes) -> bool:
    raw = data
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            raw = pem.unarmor(data.strip())[2]
        except ValueError:
            return False
    try:
        return bool(cms.ContentInfo.load(raw)["content_type"].native == "signed_data")
    except (ValueError, TypeError):
        return False


@dataclass(frozen=True)
class SignedFileResult(Verdict):
    """The verification of every signature in a signed file (a PDF may hold several)."""

    kind: FileKind
    results: list[signing.PdfSignatureResult] | list[signing.CmsResult] | list[signing.PeResult]

    @property
    def problems(self) -> list[str]:
        return [p for r in self.results for p in r.problems] if self.results else ["the file holds no signature"]

    @property
    def error(self) -> SignatureValidationError | None:  # type: ignore[override]
        if self.results and all(r.ok for r in self.results):
            return None
        return SignatureValidationError(f"the {self.kind} signature does not validate: " + "; ".join(self.problems),
                                        kind=self.kind, problems=self.problems)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "ok": self.ok, "signatures": [r.to_dict() for r in self.results]}


@dataclass(frozen=True)
class FileVerification(Verdict):
    """The verification of a file of any kind: ``certificate`` holds a certificate's
    validation, ``signed`` a signed file's; ``error`` is theirs."""

    kind: FileKind
    certificate: validation.ValidationResult | None = None
    signed: SignedFileResult | None = None

    @property
    def result(self) -> validation.ValidationResult | SignedFileResult:
        inner = self.certificate if self.certificate is not None else self.signed
        assert inner is not None
        return inner

    @property
    def error(self) -> ValidationError | None:  # type: ignore[override]
        return self.result.error

    @property
    def problems(self) -> list[str]:
        return [str(self.error)] if self.certificate is not None and self.error else \
            (self.signed.problems if self.signed is not None and self.error else [])

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: ``kind``, ``valid``, and when invalid ``error`` (its class name) and
        ``message``; then the certificate's validation or the signatures."""
        out: dict[str, object] = {"kind": self.kind, "valid": self.ok}
        if self.error is not None:
            out.update(error=type(self.error).__name__, message=str(self.error))
        out.update(self.result.to_dict())
        return out


def verify_file(data: bytes, *, content: bytes | None = None, trust_roots: Sequence[CertificateInput] | None = None,
                intermediates: Iterable[CertificateInput] = (), crls: Sequence[bytes] = (),
                purpose: str | None = None, at: datetime | None = None, level: int | None = None,
                ocsp: bool = False, fetch: bool = False, revocation: validation.RevocationMode = "soft-fail",
                **certificate_options: object) -> FileVerification:
    """Verify ``data``, whichever kind :func:`detect_kind` finds, trusting ``trust_roots``
    (default: the national root).

    - A certificate is validated for ``purpose`` at ``at`` (default now), with ``level``,
      ``ocsp``, ``fetch``, ``revocation`` and ``certificate_options`` (the RFC 5280 6.1.1 policy
      inputs, ``algorithms``) as :func:`iranpki.validation.validate_certificate` takes them; a
      PEM file may carry its chain after the certificate.
    - A signed file's signatures are verified at ``at``; ``content`` is the signed file of a
      detached CMS signature; ``ocsp`` or ``fetch`` allow fetching, and a ``revocation`` other
      than soft-fail requires revocation data. The certificate options do not apply to it.

    The result always exists (``ok``, ``error``); an input that cannot be used raises
    :class:`~iranpki.errors.ValidationInputError` (an unreadable signature, an option for
    another kind), and bytes of no kind :class:`~iranpki.errors.UnusableInputError`.
    """
    kind = detect_kind(data)
    if kind is None:
        raise UnusableInputError(f"the file is not a certificate and not a signed file iranpki reads; it reads "
                                 f"{DESCRIBED}")
    if kind == "certificate":
        certs = load_certificates(data, "the file")
        result = validation.validate_certificate(
            certs[0], purpose=purpose, at=at, level=level, intermediates=[*intermediates, *certs[1:]],
            trust_roots=trust_roots, crls=crls, ocsp=ocsp, fetch=fetch, revocation=revocation,
            **certificate_options)  # type: ignore[arg-type]
        return FileVerification("certificate", certificate=result)
    given = [name for name, value in certificate_options.items() if value]
    if given:
        raise ValidationInputError(f"{', '.join(given)} apply to certificates; the file is a {kind} signature, "
                                   "validated by the rules of its signature format")
    try:
        signed = _verify_signed(kind, data, content=content, trust_roots=trust_roots,
                                intermediates=list(intermediates), crls=crls, allow_fetching=ocsp or fetch,
                                require_revocation=revocation != "soft-fail", moment=at)
    except UnusableInputError:
        raise
    except SigningError as exc:
        raise ValidationInputError(str(exc)) from None
    return FileVerification(kind, signed=signed)


def _verify_signed(kind: FileKind, data: bytes, *, content: bytes | None, trust_roots: Sequence[CertificateInput] | None,
                   intermediates: Sequence[CertificateInput], crls: Sequence[bytes], allow_fetching: bool,
                   require_revocation: bool, moment: datetime | None) -> SignedFileResult:
    common = {"trust_roots": trust_roots, "intermediates": intermediates, "crls": crls}
    if kind == "pe":
        if moment is not None or allow_fetching:
            raise SigningError("a PE signature is verified now and from the given CRLs only (osslsigncode)")
        with tempfile.TemporaryDirectory(prefix="iranpki-pe-") as tmp:
            path = Path(tmp) / "file.exe"
            path.write_bytes(data)
            return SignedFileResult("pe", [signing.verify_pe(path, **common)])  # type: ignore[arg-type]
    more = {"allow_fetching": allow_fetching, "require_revocation": require_revocation, "moment": moment}
    if kind == "pdf":
        return SignedFileResult("pdf", signing.verify_pdf(data, **common, **more))  # type: ignore[arg-type]
    if kind == "smime":
        return SignedFileResult("smime", [signing.verify_mail(data, **common, **more)])  # type: ignore[arg-type]
    return SignedFileResult("cms", [signing.verify_cms(content, data, **common, **more)])  # type: ignore[arg-type]

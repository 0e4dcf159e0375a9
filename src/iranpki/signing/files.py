"""One entry point for a verifier: what kind of signed file a blob is, and its verification."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from asn1crypto import cms, pem

from ..errors import SigningError
from .cms import (
    CmsResult,
    verify_cms,
)
from .common import (
    CertificateInput,
)
from .pdf import (
    PdfSignatureResult,
    verify_pdf,
)
from .pe import (
    PeResult,
    verify_pe,
)
from .smime import (
    verify_mail,
)

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

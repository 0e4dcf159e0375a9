"""Signing and verifying what the national PKI is used for: PDF, CMS, S/MIME mail, Windows code.

Implemented in this package, one module per format: :mod:`.pdf`, :mod:`.cms`, :mod:`.smime`,
:mod:`.pe`, with what they share in :mod:`.common`; this module names the public API. A
relying party with a file of any kind calls :func:`iranpki.verify.verify_file`. Each format on a
named standard:

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
:class:`PeResult`), each a :class:`iranpki.verdict.Verdict`: ``ok`` says whether a relying party
may accept the signature, ``problems`` and ``error`` (a SignatureValidationError) say why not.
A signature that cannot be read at all raises :class:`SigningError`.
"""

from __future__ import annotations

from ..errors import SigningError
from .cms import CmsResult, sign_cms, verify_cms
from .common import (
    PADES_LEVELS,
    PadesLevel,
    PyHankoSigner,
    RespondingTimeStamper,
)
from .pdf import PdfSignatureResult, sign_pdf, verify_pdf
from .pe import PeResult, sign_pe, verify_pe
from .smime import encrypt_mail, envelope, sign_mail, verify_mail

__all__ = [
    "PADES_LEVELS",
    "CmsResult",
    "PadesLevel",
    "PdfSignatureResult",
    "PeResult",
    "PyHankoSigner",
    "RespondingTimeStamper",
    "SigningError",
    "encrypt_mail",
    "envelope",
    "sign_cms",
    "sign_mail",
    "sign_pdf",
    "sign_pe",
    "verify_cms",
    "verify_mail",
    "verify_pdf",
    "verify_pe",
]

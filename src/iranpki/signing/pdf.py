"""PAdES (ETSI EN 319 142-1) baseline signatures B-B, B-T and B-LT over PDF (ISO 32000-2 12.8),
signed and verified through pyHanko."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, ClassVar

from ..errors import SigningError
from ..keys.base import SignatureScheme, Signer
from .common import (
    _SIGNER_KEY_USAGES,
    PADES_LEVELS,
    CertificateInput,
    PadesLevel,
    PyHankoSigner,
    _embedded_certificates,
    _pyhanko_error,
    _roots,
    _timestamper,
    _trust_problem,
    _validation_context,
    _Verdict,
    load_asn1_certificates,
)

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


@dataclass(frozen=True)
class PdfSignatureResult(_Verdict):
    """The validation of one signature in a PDF (pyHanko's status, in iranpki's words)."""

    kind: ClassVar[str] = "pdf"

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
    from pyhanko.sign.validation import (
        DocumentSecurityStore,
        KeyUsageConstraints,
        validate_pdf_signature,
    )

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
    extra = load_asn1_certificates(list(intermediates))
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

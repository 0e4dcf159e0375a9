"""CMS SignedData (RFC 5652 section 5), detached or attached, with the ESS signing-certificate-v2
attribute (RFC 5035) and CMS algorithm protection (RFC 6211)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, ClassVar

from asn1crypto import cms, pem

from ..der import problem
from ..errors import SigningError
from ..keys.base import SignatureScheme, Signer
from .common import (
    _SIGNER_KEY_USAGES,
    CertificateInput,
    PyHankoSigner,
    _embedded_certificates,
    _pyhanko_error,
    _timestamper,
    _trust_problem,
    _validation_context,
    _Verdict,
    load_asn1_certificates,
)

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

    kind: ClassVar[str] = "cms"

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
    vc = _validation_context(trust_roots, other_certs=[*_embedded_certificates(sd), *load_asn1_certificates(list(intermediates))],
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
    from pyhanko.sign.validation.generic_cms import (
        async_validate_cms_signature,
        collect_timing_info,
    )
    from pyhanko.sign.validation.status import StandardCMSSignatureStatus

    timing = await collect_timing_info(extract_signer_info(sd), ts_validation_context=vc, raw_digest=None)
    return await async_validate_cms_signature(sd, status_cls=StandardCMSSignatureStatus, validation_context=vc,
                                              status_kwargs=timing, key_usage_settings=usage)


async def _run_and_release(coro, vc):  # noqa: ANN001, ANN202 - pyHanko's session scope
    from pyhanko.sign._session_scope import run_and_release

    return await run_and_release(coro, vc)

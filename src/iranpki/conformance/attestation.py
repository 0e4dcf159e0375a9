"""The lab's signatures: a signed conformance report and the approval certificate (گواهی تاییدیه).

Two artefacts, both CMS SignedData (RFC 5652 section 5) made by :func:`iranpki.signing.sign_cms`
with the lab's key (a token key or a software key behind :class:`iranpki.keys.Signer`) and a
signing-capable certificate of the national PKI (e.g. of the ``organisational-seal`` profile):

- **The signed report**: a detached signature over the exact bytes of ``report.json``
  (:func:`sign_report`, :func:`verify_report`). A vendor who changes one byte (a verdict, a
  firmware version) breaks the message digest; ``openssl cms -verify -binary`` checks it too.
- **The approval**: an attached signature over a small canonical JSON document (:func:`approve`,
  :func:`verify_approval`) that names the module (file name and SHA-256, library and token
  identity), the SHA-256 of the report it rests on, the summary, the validity period, an
  approval id and the lab. It is issued only for a report without ``fail`` or ``error``.

Why not an X.509 attribute certificate (RFC 5755)? An attribute certificate binds attributes
to a *holder* named by an entity's certificate or name; a cryptographic module has neither, it
is a file and a token model. It would need private attribute types for every field above,
and no verifier in reach (openssl, pyHanko, browsers) reads attribute certificates, so a
relying party would trust our parser alone. A CMS signature over JSON uses the signature
format every party already verifies (``openssl cms -verify`` prints the document), and the
document is read by anything that reads JSON.

Verification raises :class:`AttestationError` (with every problem listed) and returns a typed
record when everything holds (docs/architecture.md, conventions).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..clock import Clock, SystemClock, utc
from ..errors import ApprovalRefusedError, AttestationError, SigningError
from ..inputs import CertificateInput, load_asn1_certificates
from ..keys.base import SignatureScheme, Signer
from ..signing import sign_cms, verify_cms
from .model import CATEGORIES, REPORT_FORMAT, Report, Verdict

__all__ = [
    "APPROVAL_TYPE",
    "APPROVAL_VERSION",
    "Approval",
    "ApprovalRefusedError",
    "AttestationError",
    "SignedReport",
    "approval_document",
    "approve",
    "file_sha256",
    "sign_report",
    "verify_approval",
    "verify_report",
]

APPROVAL_TYPE = "iranpki-device-approval"
APPROVAL_VERSION = 1
#: The longest approval the lab may issue: five years (a module is evaluated again after that).
MAX_VALID_DAYS = 5 * 366


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, in lower-case hex, read in chunks (HSM modules can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_report(report_json: bytes) -> Report:
    try:
        return Report.from_json(report_json)
    except (ValueError, KeyError, TypeError) as exc:
        raise ApprovalRefusedError(f"not a conformance report ({exc}); give the report.json written by "
                                   f"`iranpki conformance run` (format {REPORT_FORMAT})") from None


def _iso(moment: datetime) -> str:
    return utc(moment).replace(microsecond=0).isoformat()


# ---- the signed report ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SignedReport:
    """A report whose lab signature verified: who signed it, when they say, and its hash."""

    signer: str
    signing_time: datetime | None
    report_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"signer": self.signer, "signing_time": self.signing_time.isoformat() if self.signing_time else None,
                "report_sha256": self.report_sha256}


def sign_report(report_json: bytes, signer: Signer, certificate: CertificateInput,
                chain: Sequence[CertificateInput] = (), *, scheme: SignatureScheme | None = None) -> bytes:
    """The lab's detached CMS signature (DER) over the exact bytes of a report.

    The bytes are signed as given, not re-serialised: what the vendor received is what the
    signature covers. ``chain`` (the issuing CAs) is embedded so the national root alone verifies;
    ``scheme`` (hash, PSS) defaults to the key's.
    """
    return sign_cms(bytes(report_json), signer, certificate, chain=chain, attached=False, scheme=scheme)


def verify_report(report_json: bytes, signature: bytes, trust_roots: Sequence[CertificateInput] | None = None,
                  *, intermediates: Sequence[CertificateInput] = (), at: datetime | None = None) -> SignedReport:
    """Check the lab's signature over ``report_json``: intact (any changed byte is refused),
    valid, and by a certificate with a path to ``trust_roots`` (None: the national root) at
    ``at`` (default now). Raises :class:`AttestationError` with the reasons otherwise."""
    try:
        result = verify_cms(bytes(report_json), signature, trust_roots, intermediates=intermediates,
                            moment=utc(at) if at else None)
    except SigningError as exc:  # not a signature at all: refused like any other
        raise AttestationError("the report's signature", [str(exc)]) from None
    if not result.ok:
        raise AttestationError("the report's signature", result.problems)
    return SignedReport(result.signer, result.signing_time, hashlib.sha256(report_json).hexdigest())


# ---- the approval -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Approval:
    """A verified approval: the document's fields, and who signed it."""

    approval_id: str
    module: dict[str, str]
    report_sha256: str
    summary: dict[str, Any]
    issued_at: datetime
    valid_until: datetime
    lab: str
    signer: str  #: the subject of the certificate that signed it (the lab's)
    checked: list[str] = field(default_factory=list)  #: what was checked beyond the signature

    def to_dict(self) -> dict[str, Any]:
        return {"approval_id": self.approval_id, "module": self.module, "report_sha256": self.report_sha256,
                "summary": self.summary, "issued_at": self.issued_at.isoformat(),
                "valid_until": self.valid_until.isoformat(), "lab": self.lab, "signer": self.signer,
                "checked": self.checked}


def approval_document(report_json: bytes, lab: str, *, issued_at: datetime, valid_days: int,
                      approval_id: str) -> bytes:
    """The canonical JSON (sorted keys, no spaces, UTF-8) an approval signs."""
    report = _load_report(report_json)
    d = report.device
    doc = {
        "type": APPROVAL_TYPE,
        "version": APPROVAL_VERSION,
        "approval_id": approval_id,
        "module": {
            "file": os.path.basename(d.module_path),
            "sha256": d.module_sha256.lower(),
            "library_description": d.library_description,
            "library_version": d.library_version,
            "token_manufacturer": d.token_manufacturer,
            "token_model": d.token_model,
            "firmware_version": d.firmware_version,
        },
        "report_sha256": hashlib.sha256(report_json).hexdigest(),
        "summary": report.summary,
        "issued_at": _iso(issued_at),
        "valid_until": _iso(issued_at + timedelta(days=valid_days)),
        "lab": lab,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def approve(report_json: bytes, signer: Signer, certificate: CertificateInput,
            chain: Sequence[CertificateInput] = (), *, valid_days: int, approval_id: str | None = None,
            clock: Clock | None = None, scheme: SignatureScheme | None = None) -> bytes:
    """The approval certificate for the device of ``report_json``: attached CMS (DER) over
    :func:`approval_document`, signed by the lab.

    Refused (:class:`ApprovalRefusedError`, naming the cases) when any case failed or ended in
    error, when the run loaded case plugins, when a category (functional, security, stability,
    performance) was not run, when no case passed at all, or when a case the device's class
    requires (:mod:`.required`) was not run or did not pass (not checked, not applicable). ``valid_days`` runs from now (``clock``: frozen in
    tests); ``approval_id`` defaults to a random UUID; ``scheme`` as in :func:`sign_report`.
    """
    report_json = bytes(report_json)
    report = _load_report(report_json)
    bad = [r for r in report.results if r.verdict in (Verdict.FAIL, Verdict.ERROR)]
    if bad:
        names = ", ".join(f"{r.id} ({r.verdict.value})" for r in bad)
        raise ApprovalRefusedError(f"no approval: {len(bad)} case(s) did not pass: {names}; the vendor fixes "
                                   "the device and the lab runs the suite again", [r.id for r in bad])
    plugins = report.settings.get("plugins") or []
    if plugins:
        names = ", ".join(str(p.get("plugin", p)) if isinstance(p, dict) else str(p) for p in plugins)
        raise ApprovalRefusedError(f"no approval: the report was made with case code from outside the suite "
                                   f"(plugins: {names}); run the suite as shipped, without --plugin", [])
    missing = [c for c in CATEGORIES if not any(r.category == c for r in report.results)]
    if missing:
        raise ApprovalRefusedError(f"no approval: the report has no {', '.join(missing)} cases; the lab evaluates "
                                   f"every category ({', '.join(CATEGORIES)}): run the whole suite")
    if not any(r.verdict is Verdict.PASS for r in report.results):
        raise ApprovalRefusedError("no approval: no case passed (every case was not applicable, or none ran); "
                                   "run the suite with the categories the device claims")
    _require_class_set(report)
    if not isinstance(valid_days, int) or not 1 <= valid_days <= MAX_VALID_DAYS:
        raise ApprovalRefusedError(f"valid_days {valid_days!r} is out of range; give 1 to {MAX_VALID_DAYS} days")
    lab = load_asn1_certificates(certificate, "the lab's certificate")[0].subject.human_friendly
    doc = approval_document(report_json, lab, issued_at=(clock or SystemClock()).now(), valid_days=valid_days,
                            approval_id=approval_id or str(uuid.uuid4()))
    return sign_cms(doc, signer, certificate, chain=chain, attached=True, scheme=scheme)


def _require_class_set(report: Report) -> None:
    """Refuse unless every case the device's class requires (conformance.required) is in the
    report and passed; name each one that is not, with its verdict and why."""
    from .model import REGISTRY
    from .registry import load_cases
    from .required import DEVICE_CLASSES, required_shortfall

    cls = report.settings.get("device_class")
    if cls not in DEVICE_CLASSES:
        raise ApprovalRefusedError(f"no approval: the report does not say which class of device was tested "
                                   f"(device_class {cls!r}; one of {', '.join(DEVICE_CLASSES)}); run the suite with "
                                   "--device-class", [])
    load_cases()
    count, short = required_shortfall(cls, ({"id": r.id, "verdict": r.verdict.value, "detail": r.detail}
                                            for r in report.results), REGISTRY)
    problems = [(i, verdict if verdict == "not run" else f"{verdict}: {why}") for i, verdict, why in short]
    if problems:
        listed = "; ".join(f"{i} ({why})" for i, why in problems[:12])
        more = f"; and {len(problems) - 12} more" if len(problems) > 12 else ""
        raise ApprovalRefusedError(f"no approval: a {cls} must pass {count} required cases, "
                                   f"and {len(problems)} did not: {listed}{more}. Run the suite so that each "
                                   "is checked (an SO PIN, a free slot) and passes", [i for i, _ in problems])


def verify_approval(attestation: bytes, trust_roots: Sequence[CertificateInput] | None = None,
                    report_json: bytes | None = None, module_path: str | os.PathLike[str] | None = None, *,
                    intermediates: Sequence[CertificateInput] = (), at: datetime | None = None) -> Approval:
    """Check an approval: the lab's signature and its path to ``trust_roots`` (None: the
    national root), that ``at`` (default now) lies in its validity period, and, when given, that
    ``report_json`` is the report it names (SHA-256) and ``module_path`` the module file it
    names (SHA-256). Raises :class:`AttestationError` listing every problem."""
    moment = utc(at) if at else datetime.now(timezone.utc)
    try:
        result = verify_cms(None, attestation, trust_roots, intermediates=intermediates, moment=moment)
    except SigningError as exc:  # unreadable, or a detached signature (a report's, not an approval)
        raise AttestationError("the approval", [f"it is not an {APPROVAL_TYPE} signed document: {exc}"]) from None
    problems = list(result.problems)
    try:
        doc = json.loads(result.content or b"")
        if not isinstance(doc, dict) or doc.get("type") != APPROVAL_TYPE or doc.get("version") != APPROVAL_VERSION:
            raise ValueError(f"type {doc.get('type') if isinstance(doc, dict) else None!r}")
        # utc() refuses a time without a zone, which could not be compared with ``moment``.
        issued, until = utc(datetime.fromisoformat(doc["issued_at"])), utc(datetime.fromisoformat(doc["valid_until"]))
        module, report_sha = dict(doc["module"]), str(doc["report_sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise AttestationError("the approval", [*problems, f"it does not hold an {APPROVAL_TYPE} version "
                                                           f"{APPROVAL_VERSION} document ({exc})"]) from None
    if moment < issued:
        problems.append(f"not valid before {issued.isoformat()} (checked at {_iso(moment)})")
    if moment >= until:
        problems.append(f"expired on {until.isoformat()} (checked at {_iso(moment)}); the device needs a new "
                        "evaluation")
    checked = []
    if report_json is not None:
        checked.append("report")
        got = hashlib.sha256(bytes(report_json)).hexdigest()
        if got != report_sha:
            problems.append(f"the report given (SHA-256 {got}) is not the report approved (SHA-256 {report_sha})")
    if module_path is not None:
        checked.append("module")
        got = file_sha256(module_path)
        if got != str(module.get("sha256", "")).lower():
            problems.append(f"the module file {Path(module_path).name} (SHA-256 {got}) is not the module approved "
                            f"({module.get('file')}, SHA-256 {module.get('sha256')})")
    if problems:
        raise AttestationError("the approval", problems)
    return Approval(approval_id=str(doc.get("approval_id")), module=module, report_sha256=report_sha,
                    summary=dict(doc.get("summary") or {}), issued_at=issued, valid_until=until,
                    lab=str(doc.get("lab")), signer=result.signer, checked=checked)

"""The laboratory's portal: a signed conformance report uploaded and checked as `iranpki
conformance verify-report` checks it (the lab's detached CMS signature over the report's exact
bytes), each kept report shown as its HTML, and the approved modules with their approval
certificates: the list the RA engine checks tokens against at the desk.

Who uploads is not trusted: the signature is the authority, and only a signature by one of the
laboratory's own certificates (LAB_CERTIFICATES, configured by the operator) is taken; a
certificate of the PKI that is not the lab's is refused. Approvals are not recorded here: the CA
operator records them (`iranpki ra device approve`), and this portal lists them. Uploads are
limited in size and per client address; a refused upload keeps nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.urls import path

from iranpki.errors import AttestationError, NotFoundError

from .pages import PerClientLimit, digits, language, redirect, render, upload, when
from .ra_api import engine

MAX_REPORT_BYTES = 8 * 1024 * 1024
MAX_SIGNATURE_BYTES = 64 * 1024
_UPLOADS = PerClientLimit(10)

WORDS = {
    "fa": {"site": "آزمایشگاه ارزیابی", "approved": "ماژول‌های تأییدشده", "reports": "گزارش‌های آزمون",
           "upload": "بارگذاری گزارش امضاشده", "report": "گزارش (report.json)", "signature": "امضای آزمایشگاه (report.json.p7s)",
           "no_lab": "گواهی امضای آزمایشگاه پیکربندی نشده است؛ بارگذاری ممکن نیست.",
           "approvals_note": "تأییدیه‌ها را گردانندهٔ مرکز صدور ثبت می‌کند (iranpki ra device approve).", "send": "بارگذاری و بررسی", "manufacturer": "سازنده",
           "model": "مدل", "valid_until": "اعتبار تا", "lab": "آزمایشگاه", "approval_id": "شمارهٔ تأییدیه",
           "recorded": "ثبت", "none": "چیزی ثبت نشده است.", "signer": "امضاکننده", "signed_at": "زمان امضا",
           "sha256": "SHA-256", "verified": "امضای آزمایشگاه روی گزارش درست است و گزارش نگه داشته شد.",
           "refused": "پذیرفته نشد", "too_big": "این فایل بزرگ‌تر از اندازهٔ مجاز است", "choose_file": "یک فایل برگزینید",
           "not_json": "این فایل گزارش JSON نیست", "view": "نمایش", "outcome": "نتیجه", "file": "فایل"},
    "en": {"site": "Evaluation laboratory", "approved": "Approved modules", "reports": "Conformance reports",
           "upload": "Upload a signed report", "report": "Report (report.json)", "signature": "The lab's signature (report.json.p7s)",
           "no_lab": "No laboratory signing certificate is configured; nothing can be uploaded.",
           "approvals_note": "Approvals are recorded by the CA operator (iranpki ra device approve).", "send": "Upload and check", "manufacturer": "Manufacturer",
           "model": "Model", "valid_until": "Valid until", "lab": "Laboratory", "approval_id": "Approval",
           "recorded": "Recorded", "none": "None recorded.", "signer": "Signed by", "signed_at": "Signed at",
           "sha256": "SHA-256", "verified": "The laboratory's signature over the report verifies; the report is kept.",
           "refused": "Refused", "too_big": "This file is larger than allowed", "choose_file": "Choose a file",
           "not_json": "This file is not a JSON report", "view": "View", "outcome": "Outcome", "file": "File"},
}


def _reports_dir() -> Path:
    return Path(os.environ.get("IRANPKI_HOME", ".")) / "lab" / "reports"


def lab_certificates() -> list[bytes]:
    """The laboratory's signing certificates (DER) the operator configured; none: no upload."""
    from django.conf import settings

    from iranpki.inputs import load_asn1_certificates

    if not settings.LAB_CERTIFICATES:
        return []
    return [c.dump() for c in load_asn1_certificates(Path(settings.LAB_CERTIFICATES).read_bytes(),
                                                      settings.LAB_CERTIFICATES)]


def _kept() -> list[dict]:
    out = []
    base = _reports_dir()
    if base.is_dir():
        for entry in sorted(base.iterdir()):
            meta = entry / "meta.json"
            if meta.is_file():
                out.append(json.loads(meta.read_text(encoding="utf-8")))
    return sorted(out, key=lambda m: m["uploaded_at"], reverse=True)


def index(request: HttpRequest, *, error: str | None = None, fields: dict | None = None, note: str | None = None,
          status: int = 200) -> HttpResponse:
    lang = language(request)
    approvals = [{"id": a.approval_id, "manufacturer": a.manufacturer, "model": a.model,
                  "until": when(a.valid_until, lang), "lab": a.lab, "recorded": when(a.recorded_at, lang)}
                 for a in engine().store.device_approvals()]
    reports = [{**m, "uploaded": when(datetime.fromisoformat(m["uploaded_at"]), lang),
                "signed": when(datetime.fromisoformat(m["signed_at"]), lang) if m.get("signed_at") else "-"}
               for m in _kept()]
    return render(request, "lab/index.html", {"approvals": approvals, "reports": reports, "error": error,
                                              "fields": fields or {}, "note": note,
                                              "count": digits(str(len(approvals)), lang)},
                  status=status, words=WORDS)


def upload_report(request: HttpRequest) -> HttpResponse:
    """Check the report's signature (by one of the lab's certificates) and keep it; or say why not."""
    from iranpki.conformance import attestation

    lang = language(request)
    w = WORDS[lang]
    if request.method != "POST":
        return redirect(f"/lab/?lang={lang}")
    refused = _UPLOADS.refused(request)
    if refused is not None:
        return refused
    lab = lab_certificates()
    if not lab:
        return index(request, error=w["no_lab"], status=409)
    files: dict[str, bytes | None] = {}
    problems: dict[str, str] = {}
    for name, limit in (("report", MAX_REPORT_BYTES), ("signature", MAX_SIGNATURE_BYTES)):
        try:
            files[name] = upload(request, name, limit)
        except ValueError:
            problems[name] = w["too_big"]
            continue
        if files[name] is None:
            problems[name] = w["choose_file"]
    report = files.get("report")
    if report is not None and "report" not in problems:
        try:
            json.loads(report)
        except ValueError:
            problems["report"] = w["not_json"]
    if problems:
        return index(request, error=w["refused"], fields=problems, status=400)
    assert report is not None and files["signature"] is not None
    try:
        # The lab's certificates are the trust: a path to them means signed by one of them.
        signed = attestation.verify_report(report, files["signature"], lab)
    except AttestationError as exc:
        return index(request, error=f"{w['refused']}: {'; '.join(exc.problems)}", fields={"signature": w["refused"]},
                     status=400)
    digest = hashlib.sha256(report).hexdigest()
    _keep(digest, report, files["signature"], {
        "sha256": digest, "signer": signed.signer, "signed_at": signed.signing_time.isoformat() if signed.signing_time
        else None, "uploaded_at": datetime.now().astimezone().isoformat(), "outcome": _outcome(report),
        "device": _device(report)})
    return index(request, note=w["verified"])


def _outcome(report: bytes) -> str:
    from iranpki.conformance.reporting import count_verdicts, report_dict

    counts = count_verdicts(report_dict(report))["all"]
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)


def _device(report: bytes) -> str:
    device = json.loads(report).get("device") or {}
    return " ".join(str(device.get(k) or "") for k in ("token_manufacturer", "token_model", "library_version")).strip()


def _keep(digest: str, report: bytes, signature: bytes, meta: dict) -> None:
    """The report, its signature and what was verified, in a directory made whole before it is
    given its name (a crash leaves no half report)."""
    import shutil
    import tempfile

    base = _reports_dir()
    base.mkdir(parents=True, exist_ok=True)
    final = base / digest
    if final.exists():
        return
    tmp = Path(tempfile.mkdtemp(dir=base, prefix=".upload-"))
    try:
        (tmp / "report.json").write_bytes(report)
        (tmp / "report.json.p7s").write_bytes(signature)
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists():
            raise


def report_page(request: HttpRequest, digest: str) -> HttpResponse:
    """A kept report as its HTML (the same page `iranpki conformance run` writes), in a sandbox:
    no script may run in it, whatever a device named itself."""
    from iranpki.conformance.reporting import render_html

    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        return HttpResponse("404: no such report\n", status=404, content_type="text/plain; charset=utf-8")
    source = _reports_dir() / digest / "report.json"
    if not source.is_file():
        return HttpResponse("404: no such report\n", status=404, content_type="text/plain; charset=utf-8")
    response = HttpResponse(render_html(source.read_bytes()), content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                           "frame-ancestors 'none'; sandbox")
    return response


def report_file(request: HttpRequest, digest: str, name: str) -> HttpResponse:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or \
            name not in ("report.json", "report.json.p7s"):
        return HttpResponse(status=404)
    source = _reports_dir() / digest / name
    if not source.is_file():
        return HttpResponse(status=404)
    response = HttpResponse(source.read_bytes(), content_type="application/json" if name.endswith(".json")
                            else "application/pkcs7-signature")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def approval_file(request: HttpRequest, approval_id: str) -> HttpResponse:
    try:
        data = engine().store.device_approval_attestation(approval_id)
    except NotFoundError:
        return HttpResponse("404: no such approval\n", status=404, content_type="text/plain; charset=utf-8")
    response = HttpResponse(data, content_type="application/pkcs7-mime")
    response["Content-Disposition"] = f'attachment; filename="approval-{approval_id}.p7m"'
    return response


urlpatterns = [
    path("", index, name="lab"),
    path("upload", upload_report),
    path("reports/<str:digest>", report_page),
    path("reports/<str:digest>/<str:name>", report_file),
    path("approvals/<str:approval_id>.p7m", approval_file),
]

"""The registration office's portal (officers): the office's queue, receiving an applicant at the
desk, the proofing form that records the evidence (its statement signed with the officer's
token), binding a token's key, approval by a second officer, the hand-over, and the office's own
records as an inspector asks for them.

An officer signs in with the client certificate on their token (verified by the TLS server, then
matched to an enrolled, active officer whose certificate is not revoked) and a one-time code
(TOTP); the session is bound to that certificate, ends after OFFICE_SESSION_IDLE_SECONDS without a
page and after OFFICE_SESSION_MAX_SECONDS in any case. Every step is one engine call: the rules
(who may proof, approve, which documents) are the library's, and its refusal is shown.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path

from iranpki.errors import IranPkiError, NotFoundError, RateLimitedError, RuleRefusedError

from .pages import FieldError, der, digits, fresh, language, once, redirect, render, sign_in, spend_once, uploaded, when
from .ra_api import engine

_REQUEST_ID = re.compile(r"[0-9a-f]{16}")

WORDS = {
    "fa": {"site": "سامانهٔ دفتر ثبت‌نام", "sign_in": "ورود مأمور ثبت‌نام", "queue": "صف دفتر", "records": "سوابق دفتر",
           "sign_out": "خروج", "no_certificate": "با گواهی کارت هوشمند (توکن) خود وصل شوید؛ این مرورگر گواهی کاربری نفرستاد.",
           "one_time_code": "رمز یک‌بارمصرف (۶ رقم)", "enter": "ورود", "officer": "مأمور", "office": "دفتر",
           "session_over": "نشست شما پایان یافته است؛ دوباره وارد شوید.",
           "replayed": "این فرم پیش‌تر فرستاده شده بود؛ چیزی تغییر نکرد.",
           "receive": "پذیرش متقاضی", "tracking_code": "کد رهگیری", "national_code": "کد ملی (یا شناسه ملی)",
           "open": "باز کردن", "request": "درخواست", "kind": "نوع", "state": "وضعیت", "profile": "نوع گواهی",
           "level": "سطح", "created": "ثبت", "expires": "مهلت", "empty": "درخواست بازی نیست.",
           "applicant": "متقاضی", "subject": "نام روی گواهی", "documents": "مدارک بارگذاری‌شده",
           "proof": "احراز هویت", "method": "روش", "document_number": "شماره مدرک", "scan": "تصویر مدرک",
           "use_upload": "تصویر بارگذاری‌شدهٔ متقاضی", "or_scan": "یا تصویر تازه (JPEG، PNG یا PDF، تا ۵ مگابایت)",
           "statement": "اظهارنامهٔ احراز (با کلید توکن خود امضا کنید)", "statement_file": "دریافت متن اظهارنامه",
           "statement_signature": "امضای اظهارنامه (CMS جدا، DER یا PEM)", "record_proof": "ثبت احراز",
           "bind_key": "کلید ساخته‌شده روی توکن", "csr": "درخواست گواهی توکن (CSR)", "manufacturer": "سازنده",
           "model": "مدل", "token_serial": "شمارهٔ توکن", "bind": "ثبت کلید", "approve": "تأیید",
           "reject": "رد", "reason": "علت", "cancel": "لغو درخواست", "hand_over": "تحویل توکن به متقاضی",
           "hand": "ثبت تحویل", "handed_over": "تحویل شد", "approvals": "تأییدها", "history": "رویدادها",
           "required": "این خانه را پر کنید", "too_big": "این فایل بزرگ‌تر از اندازهٔ مجاز است",
           "bad_type": "این فایل JPEG، PNG یا PDF نیست", "choose_file": "یک فایل برگزینید",
           "from": "از تاریخ", "to": "تا تاریخ", "show": "نمایش", "csv": "دریافت CSV", "issuances": "صدورها",
           "revocations": "ابطال‌ها و تغییرها", "evidence": "مدارک احراز", "acceptances": "پذیرش‌ها",
           "serial": "سریال", "when": "زمان", "by": "به دست", "size": "اندازه", "bad_date": "تاریخ را به شکل 2026-12-03 بنویسید",
           "in-person": "حضوری", "in-person-biometric": "حضوری با زیست‌سنجی", "automated-inquiry": "استعلام خودکار",
           "submitted": "ثبت‌شده", "awaiting-proofing": "منتظر احراز", "proofed": "احرازشده",
           "awaiting-approval": "منتظر تأیید", "approved": "تأییدشده", "issued": "صادر/انجام شد",
           "accepted": "پذیرفته شد", "rejected": "رد شد", "cancelled": "لغو شد", "expired": "مهلت گذشت",
           "issue": "صدور", "revoke": "ابطال", "suspend": "تعلیق", "release": "رفع تعلیق", "renew": "تمدید",
           "rekey": "کلید نو", "recover": "بازیابی کلید", "recoveries": "بازیابی‌های کلید"},
    "en": {"site": "Registration office", "sign_in": "Officer sign-in", "queue": "Office queue", "records": "Office records",
           "sign_out": "Sign out", "no_certificate": "Connect with the client certificate on your token; this browser "
           "sent none.", "one_time_code": "One-time code (6 digits)", "enter": "Sign in", "officer": "Officer",
           "office": "Office", "session_over": "Your session has ended; sign in again.",
           "replayed": "This form was sent already; nothing was changed.", "receive": "Receive an applicant",
           "tracking_code": "Tracking code", "national_code": "National code (or ID)", "open": "Open",
           "request": "Request", "kind": "Kind", "state": "State", "profile": "Certificate", "level": "Level",
           "created": "Registered", "expires": "Expires", "empty": "No open requests.", "applicant": "Applicant",
           "subject": "Name on the certificate", "documents": "Uploaded documents", "proof": "Identity proofing",
           "method": "Method", "document_number": "Document number", "scan": "Scan",
           "use_upload": "The applicant's upload", "or_scan": "or a new scan (JPEG, PNG or PDF, up to 5 MB)",
           "statement": "Proofing statement (sign it with your token's key)", "statement_file": "The statement as a file",
           "statement_signature": "The statement's signature (detached CMS, DER or PEM)", "record_proof": "Record the proofing",
           "bind_key": "The key made on the token", "csr": "The token's certificate request (CSR)",
           "manufacturer": "Manufacturer", "model": "Model", "token_serial": "Token serial", "bind": "Bind the key",
           "approve": "Approve", "reject": "Reject", "reason": "Reason", "cancel": "Cancel the request",
           "hand_over": "Hand the token to the applicant", "hand": "Record the hand-over", "handed_over": "Handed over",
           "approvals": "Approvals", "history": "Events", "required": "Fill this in",
           "too_big": "This file is larger than allowed", "bad_type": "This file is not a JPEG, PNG or PDF",
           "choose_file": "Choose a file", "from": "From", "to": "To", "show": "Show", "csv": "Download CSV",
           "issuances": "Issuances", "revocations": "Revocations and changes", "evidence": "Proofing evidence",
           "acceptances": "Acceptances", "recoveries": "Key recoveries", "recover": "key recovery",
           "serial": "Serial", "when": "When", "by": "By", "size": "Size",
           "bad_date": "Write the date as 2026-12-03", "in-person": "in person",
           "in-person-biometric": "in person, biometric", "automated-inquiry": "automated inquiry"},
}


# ---- who is signed in ---------------------------------------------------------------------------

def _certificate(request: HttpRequest) -> bytes | None:
    """The client certificate the TLS server verified (DER), or None."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    pem = request.META.get("SSL_CLIENT_CERT")
    if not pem or request.META.get("SSL_CLIENT_VERIFY") != "SUCCESS":
        return None
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii")).public_bytes(Encoding.DER)
    except (ValueError, UnicodeEncodeError):  # not what a TLS server hands over: as if none
        return None


def _officer(request: HttpRequest):  # noqa: ANN202 - an Actor or None
    """The signed-in officer as the store knows them now: the session (not idle, not too old),
    the same client certificate as at sign-in, and that certificate still valid and unrevoked."""
    entry = fresh(request, "officer", settings.OFFICE_SESSION_IDLE_SECONDS, settings.OFFICE_SESSION_MAX_SECONDS)
    der = _certificate(request)
    if entry is None or der is None or hashlib.sha256(der).hexdigest() != entry.get("fingerprint"):
        return None
    try:
        actor = engine().authenticate(der)
    except IranPkiError:
        request.session.flush()
        return None
    return actor if actor.id == entry.get("id") else None


def _ended(request: HttpRequest) -> HttpResponse:
    return redirect(f"/office/sign-in?lang={language(request)}&ended=1")


def _page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    response = render(request, template, context, status=status, words=WORDS)
    response["Cache-Control"] = "no-store"
    return response


def sign_in_page(request: HttpRequest) -> HttpResponse:
    lang = language(request)
    w = WORDS[lang]
    der = _certificate(request)
    if der is None:
        return _page(request, "office/sign_in.html", {"error": w["no_certificate"]}, status=403)
    try:
        actor = engine().authenticate(der)
    except IranPkiError as exc:
        return _page(request, "office/sign_in.html", {"error": str(exc)}, status=403)
    context = {"officer": actor, "error": w["session_over"] if request.GET.get("ended") else None}
    if request.method == "POST":
        try:
            engine().check_one_time_code(actor, request.POST.get("code", ""))
        except RateLimitedError as exc:
            return _page(request, "office/sign_in.html", {**context, "error": str(exc), "field": True}, status=429)
        except IranPkiError as exc:
            return _page(request, "office/sign_in.html", {**context, "error": str(exc), "field": True}, status=403)
        sign_in(request, "officer", {"id": actor.id, "fingerprint": hashlib.sha256(der).hexdigest()})
        return redirect(f"/office/?lang={lang}")
    return _page(request, "office/sign_in.html", context)


def sign_out(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        request.session.flush()
    return redirect(f"/office/sign-in?lang={language(request)}")


# ---- the queue and a request --------------------------------------------------------------------

def _row(r, lang: str) -> dict:  # noqa: ANN001 - a RequestRecord
    w = {**WORDS[lang], **_applicant_words(lang)}
    return {"id": r.id, "kind": w.get(r.kind, r.kind), "state": r.state, "state_text": w.get(r.state, r.state),
            "profile": w.get(r.profile, r.profile), "level": digits(str(r.level), lang),
            "created": when(r.created_at, lang), "expires": when(r.expires_at, lang),
            "serial": None if r.serial is None else f"{r.serial:x}"}


def _applicant_words(lang: str) -> dict[str, str]:
    from .applicant import WORDS as APPLICANT

    return APPLICANT[lang]


def queue(request: HttpRequest, *, error: str | None = None, status: int = 200) -> HttpResponse:
    from iranpki.ra import OPEN_STATES

    lang = language(request)
    officer = _officer(request)
    if officer is None:
        return _ended(request)
    store = engine().store
    office = store.get_office(officer.office or "")
    own = store.list_requests(office=office.code, states=OPEN_STATES, limit=500)
    remote = [r for ca in office.cas for r in store.list_requests(ca=ca, states=("awaiting-approval",), limit=500)
              if r.office is None]
    rows = [_row(r, lang) for r in sorted(own + remote, key=lambda r: r.created_at)]
    return _page(request, "office/queue.html", {"officer": officer, "office": office, "rows": rows, "error": error,
                                                "once": once(request)}, status=status)


def receive(request: HttpRequest) -> HttpResponse:
    lang = language(request)
    officer = _officer(request)
    if officer is None:
        return _ended(request)
    if request.method != "POST":
        return redirect(f"/office/?lang={lang}")
    try:
        record = engine().receive(officer, request.POST.get("tracking_code", ""), request.POST.get("national_code", ""))
    except IranPkiError as exc:
        return queue(request, error=str(exc), status=429 if isinstance(exc, RateLimitedError) else 409)
    return redirect(f"/office/requests/{record.id}?lang={lang}")


def _at_office(officer, request_id: str):  # noqa: ANN001, ANN202
    from .ra_api import at_office

    if not _REQUEST_ID.fullmatch(request_id):
        raise NotFoundError(f"no request {request_id[:40]!r}: a request id is 16 hexadecimal digits")
    return at_office(officer, request_id)


def statement_text(officer, record) -> str:  # noqa: ANN001
    """The proofing statement the officer signs: who, where, which request, which day (UTC)."""
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    return (f"Officer {officer.id} of office {officer.office} checked in person, against the originals, the identity "
            f"documents of the applicant of request {record.id} ({record.subject}) on {day}.")


def detail(request: HttpRequest, request_id: str, *, error: str | None = None, field: str | None = None,
           status: int = 200) -> HttpResponse:
    from iranpki.ra import CHANGE_KINDS

    lang = language(request)
    officer = _officer(request)
    if officer is None:
        return _ended(request)
    ra = engine()
    try:
        record = _at_office(officer, request_id)
    except (NotFoundError, RuleRefusedError) as exc:
        return queue(request, error=str(exc), status=404)
    w = {**_applicant_words(lang), **WORDS[lang]}
    uploads = [{"sha256": e.sha256, "kind": e.kind, "kind_text": w.get(e.kind, e.kind), "number": e.number,
                "size": digits(f"{e.size:,}", lang), "by": e.officer, "at": when(e.at, lang)}
               for e in ra.store.list_evidence(record.id)]
    needed = ra.rules.documents_for(record.profile, record.level) if record.kind in ("issue", "renew", "rekey") \
        else ("national-id-card",)
    methods = [m for m in ra.rules.accepted_proofing(record.level, ra.policy) if m != "automated-inquiry"]
    events = [{"at": when(e.at, lang), "actor": e.actor, "to": w.get(e.to_state, e.to_state)}
              for e in ra.store.request_events(record.id)]
    context = {"officer": officer, "record": _row(record, lang), "subject": record.subject,
               "applicant": {k: v for k, v in record.applicant.items()}, "uploads": uploads,
               "needed": [{"id": k, "label": w.get(k, k), "uploads": [u for u in uploads if u["kind"] == k]}
                          for k in needed],
               "methods": [{"id": m, "label": w.get(m, m)} for m in methods], "events": events,
               "approvals": record.proofing.get("approvals") or [], "error": error, "field": field,
               "once": once(request), "device": record.device,
               "handed_over": record.proofing.get("handed_over"),
               "can_proof": record.state == "awaiting-proofing" and "proofing" in officer.roles,
               "can_bind": record.state == "proofed" and record.key_location == "desk-token",
               "can_approve": record.state == "awaiting-approval",
               "can_hand_over": record.state in ("issued", "accepted") and record.key_location == "desk-token"
               and record.kind in ("issue", "rekey") and not record.proofing.get("handed_over"),
               "can_cancel": record.state in ("submitted", "awaiting-proofing", "proofed", "awaiting-approval",
                                              "approved"),
               "change": record.kind in CHANGE_KINDS}
    if context["can_proof"]:
        context["statement"] = statement_text(officer, record)
    return _page(request, "office/request.html", context, status=status)


def _signed_in_at(request: HttpRequest, request_id: str):  # noqa: ANN202
    """(officer, request of the office) or the response to give instead."""
    officer = _officer(request)
    if officer is None:
        return _ended(request)
    try:
        return officer, _at_office(officer, request_id)
    except (NotFoundError, RuleRefusedError):
        return HttpResponse(status=404)


def statement_file(request: HttpRequest, request_id: str) -> HttpResponse:
    found = _signed_in_at(request, request_id)
    if isinstance(found, HttpResponse):
        return found
    officer, record = found
    response = HttpResponse(statement_text(officer, record).encode("utf-8"), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="statement-{record.id}.txt"'
    return response


def scan(request: HttpRequest, request_id: str, sha256: str) -> HttpResponse:
    """A document's scan, to compare with the original at the desk (inline, in a sandbox)."""
    found = _signed_in_at(request, request_id)
    if isinstance(found, HttpResponse):
        return found
    _, record = found
    found = [e for e in engine().store.list_evidence(record.id) if e.sha256 == sha256]
    if not found:
        return HttpResponse(status=404)
    response = HttpResponse(engine().store.evidence_data(sha256), content_type=found[0].media_type)
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    response["Cache-Control"] = "no-store"
    return response







def act(request: HttpRequest, request_id: str, action: str) -> HttpResponse:
    """One posted step on a request: proof, key, approve, reject, cancel, hand-over."""
    from iranpki.ra import Document
    from iranpki.ra.engine import MAX_DOCUMENT_BYTES

    from .pages import media_type

    lang = language(request)
    officer = _officer(request)
    if officer is None:
        return _ended(request)
    if not _REQUEST_ID.fullmatch(request_id):
        return queue(request, error=f"no request {request_id[:40]!r}", status=404)
    if request.method != "POST" or action not in ("proof", "key", "approve", "reject", "cancel", "hand-over"):
        return redirect(f"/office/requests/{request_id}?lang={lang}")
    if not spend_once(request):
        return detail(request, request_id, error=WORDS[lang]["replayed"], status=409)
    ra = engine()
    post = request.POST
    try:
        _at_office(officer, request_id)
        if action == "proof":
            record = ra.store.get_request(request_id)
            uploads = {e.sha256: e for e in ra.store.list_evidence(request_id)}
            documents = []
            needed = ra.rules.documents_for(record.profile, record.level) if record.kind in ("issue", "renew", "rekey") \
                else ("national-id-card",)
            for kind in needed:
                number = post.get(f"number-{kind}", "").strip()
                if not number:
                    raise FieldError(f"number-{kind}", WORDS[lang]["required"])
                data = uploaded(request, f"scan-{kind}", MAX_DOCUMENT_BYTES, WORDS[lang], needed=False)
                if data is None:
                    chosen = uploads.get(post.get(f"use-{kind}", ""))
                    if chosen is None:
                        raise FieldError(f"scan-{kind}", WORDS[lang]["choose_file"])
                    data = ra.store.evidence_data(chosen.sha256)
                kind_of = media_type(data)
                if kind_of is None:
                    raise FieldError(f"scan-{kind}", WORDS[lang]["bad_type"])
                documents.append(Document(kind, number, data, kind_of))
            signature = uploaded(request, "statement_signature", 64 * 1024, WORDS[lang])
            ra.proof(officer, request_id, method=post.get("method", ""), documents=documents,
                     statement=post.get("statement", ""),
                     statement_signature=der(signature or b"", "statement's signature"))
        elif action == "key":
            csr = der(uploaded(request, "csr", 64 * 1024, WORDS[lang]) or b"", "CSR")
            device = {k: post.get(k, "").strip() for k in ("manufacturer", "model", "serial")}
            ra.bind_key(officer, request_id, csr=csr, device=device)
        elif action == "approve":
            ra.approve(officer, request_id)
        elif action == "reject":
            reason = post.get("reason", "").strip()
            if not reason:
                raise FieldError("reason", WORDS[lang]["required"])
            ra.reject(officer, request_id, reason)
        elif action == "cancel":
            ra.cancel(officer, request_id)
        else:
            ra.hand_over(officer, request_id, post.get("token_serial", ""))
    except FieldError as exc:
        return detail(request, request_id, error=str(exc), field=exc.field, status=400)
    except IranPkiError as exc:
        return detail(request, request_id, error=str(exc), status=429 if isinstance(exc, RateLimitedError) else 409)
    return redirect(f"/office/requests/{request_id}?lang={lang}")


# ---- the office's records, as an inspector asks for them ------------------------------------------

def _day(text: str) -> datetime | None:
    if not text:
        return None
    day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    if not 2000 <= day.year <= 2200:
        raise ValueError(text)
    return day


def records(request: HttpRequest) -> HttpResponse:
    """Issuances, revocations and other changes, evidence and acceptances of the office, in a
    period (Gregorian dates, UTC); each section also as CSV."""
    from datetime import timedelta

    from iranpki.ra import CHANGE_KINDS

    lang = language(request)
    officer = _officer(request)
    if officer is None:
        return _ended(request)
    w = {**_applicant_words(lang), **WORDS[lang]}
    try:
        start, end = _day(request.GET.get("from", "")), _day(request.GET.get("to", ""))
    except ValueError:
        return _page(request, "office/records.html", {"officer": officer, "error": w["bad_date"], "sections": []},
                     status=400)
    ra = engine()
    store = ra.store
    office = store.get_office(officer.office or "")
    officers = {o.id for o in store.list_officers(office.code)}
    mine = list(store.list_requests(office=office.code, limit=100_000))
    # Changes proofed with no visit that this office's officers approved are its records too.
    mine += [r for ca in office.cas for r in store.list_requests(ca=ca, limit=100_000) if r.office is None and
             any(str(a) in officers for a in (r.proofing.get("approvals") or []))]

    def within(moment: datetime) -> bool:
        return (start is None or moment >= start) and (end is None or moment < end + timedelta(days=1))

    def approvals(r) -> str:  # noqa: ANN001
        return " ".join(str(a) for a in (r.proofing.get("approvals") or []))

    sections = {
        "issuances": (["request", "serial", "profile", "level", "state", "proofed by", "approved by", "when"],
                      [[r.id, f"{r.serial:x}", r.profile, r.level, r.state, r.proofing.get("officer") or "",
                        approvals(r), r.updated_at.isoformat()] for r in mine
                       if r.kind in ("issue", "renew", "rekey") and r.state in ("issued", "accepted")
                       and within(r.updated_at)]),
        "revocations": (["request", "kind", "serial", "reason", "state", "approved by", "when"],
                        [[r.id, r.kind, f"{r.serial:x}" if r.serial else "", r.reason or "", r.state, approvals(r),
                          r.updated_at.isoformat()] for r in mine if r.kind in CHANGE_KINDS and r.kind != "recover"
                         and within(r.updated_at)]),
        # Every recovery of an archived key, asked for or carried out: who proofed, who approved.
        "recoveries": (["request", "serial", "state", "proofed by", "approved by", "when"],
                       [[r.id, f"{r.serial:x}" if r.serial else "", r.state, r.proofing.get("officer") or "",
                         approvals(r), r.updated_at.isoformat()] for r in mine if r.kind == "recover"
                        and within(r.updated_at)]),
        "evidence": (["request", "document", "number", "sha256", "type", "size", "by", "when", "kept until"],
                     [[e.request, e.kind, e.number, e.sha256, e.media_type, e.size, e.officer, e.at.isoformat(),
                       ra.evidence_kept_until(r, e).date().isoformat()]
                      for r in mine for e in store.list_evidence(r.id) if within(e.at)]),
        "acceptances": (["request", "serial", "signature sha256", "when"],
                        [[r.id, f"{r.serial:x}", hashlib.sha256(str(r.proofing["acceptance"].get("signature", ""))
                                                                .encode()).hexdigest(), r.updated_at.isoformat()]
                         for r in mine if r.state == "accepted" and isinstance(r.proofing.get("acceptance"), dict)
                         and within(r.updated_at)]),
    }
    wanted = request.GET.get("csv")
    if wanted in sections:
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(sections[wanted][0])
        # A cell a spreadsheet would take for a formula is written as text (a leading quote).
        writer.writerows([["'" + c if isinstance(c, str) and c[:1] in ("=", "+", "-", "@", "\t", "\r") else c
                           for c in row] for row in sections[wanted][1]])
        response = HttpResponse(out.getvalue().encode("utf-8"), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{office.code}-{wanted}.csv"'
        return response
    query = f"from={request.GET.get('from', '')}&to={request.GET.get('to', '')}"
    return _page(request, "office/records.html", {
        "officer": officer, "office": office, "query": query, "start": request.GET.get("from", ""),
        "end": request.GET.get("to", ""),
        "sections": [{"id": k, "title": w[k], "head": head, "rows": rows, "count": digits(str(len(rows)), lang)}
                     for k, (head, rows) in sections.items()]})


urlpatterns = [
    path("", queue, name="office"),
    path("sign-in", sign_in_page),
    path("sign-out", sign_out),
    path("receive", receive),
    path("records", records),
    path("requests/<str:request_id>", detail),
    path("requests/<str:request_id>/statement.txt", statement_file),
    path("requests/<str:request_id>/scan/<str:sha256>", scan),
    path("requests/<str:request_id>/<str:action>", act),
]

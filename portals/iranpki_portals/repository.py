"""The public repository: the CA certificates and CRLs at the URLs the certificates name
(``/certs/{ca}.crt``, ``/crl/{ca}[-shard][-delta].crl``), a certificate's status by serial (from
the store; nothing personal is shown), and the national CP rendered. Reads only: no key, no
change to the store."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse
from django.urls import path

from iranpki.errors import NotFoundError

from .pages import PerClientLimit, digits, language, render, when

_local = threading.local()

WORDS = {
    "fa": {"title": "مخزن عمومی", "cas": "مراکز صدور گواهی", "name": "نام", "level": "سطح", "subject": "صاحب گواهی",
           "valid_until": "اعتبار تا", "certificate": "گواهی", "crls": "فهرست ابطال", "next_update": "به‌روزرسانی بعدی",
           "status": "وضعیت گواهی", "serial": "شماره سریال (شانزده‌شانزدهی)", "check": "بررسی",
           "valid": "معتبر", "revoked": "باطل‌شده", "on hold": "تعلیق‌شده", "not_found": "گواهی با این شماره در این مخزن نیست",
           "bad_serial": "شماره سریال باید شانزده‌شانزدهی باشد (۰ تا ۹ و a تا f)، مانند 4c21588b3706dc35",
           "issuer": "صادرکننده", "revoked_at": "تاریخ ابطال", "reason": "علت", "validity": "اعتبار",
           "policy": "سیاست گواهی ملی", "root": "ریشه", "none": "هنوز منتشر نشده", "from": "از", "to": "تا",
           "ocsp": "پرسش از پاسخ‌گوی وضعیت (OCSP)", "ask": "بپرس", "good": "معتبر", "unknown": "ناشناخته",
           "no_ocsp": "این گواهی نشانی پاسخ‌گوی وضعیت ندارد", "ocsp_failed": "پاسخ‌گوی وضعیت پاسخ درستی نداد",
           "responder": "امضاکنندهٔ پاسخ", "produced_at": "زمان پاسخ", "url": "نشانی پاسخ‌گو"},
    "en": {"title": "Public repository", "cas": "Certification authorities", "name": "Name", "level": "Level",
           "subject": "Subject", "valid_until": "Valid until", "certificate": "Certificate", "crls": "CRLs",
           "next_update": "Next update", "status": "Certificate status", "serial": "Serial number (hexadecimal)",
           "check": "Check", "valid": "valid", "revoked": "revoked", "on hold": "on hold",
           "not_found": "No certificate with this serial number is in this repository",
           "bad_serial": "A serial number is hexadecimal (0-9 and a-f), e.g. 4c21588b3706dc35",
           "issuer": "Issuer", "revoked_at": "Revoked on", "reason": "Reason", "validity": "Validity",
           "policy": "National certificate policy", "root": "root", "none": "not published yet", "from": "from",
           "to": "to", "ocsp": "Ask the OCSP responder", "ask": "Ask", "good": "good", "unknown": "unknown",
           "no_ocsp": "This certificate names no OCSP responder", "ocsp_failed": "The OCSP responder gave no good answer",
           "responder": "Signed by", "produced_at": "Produced at", "url": "Responder URL"},
}


def store():  # noqa: ANN201 - the workspace's Store
    """This thread's store of the workspace at IRANPKI_HOME (read only here)."""
    ws = getattr(_local, "ws", None)
    if ws is None:
        from iranpki.workspace import Workspace

        ws = _local.ws = Workspace.open(os.environ.get("IRANPKI_HOME"))
    return ws.store


def _cn(der: bytes) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def index(request: HttpRequest) -> HttpResponse:
    from cryptography import x509

    from iranpki.x509parts import crl_url

    lang = language(request)
    rows = []
    for ca in store().list_cas():
        cert = x509.load_der_x509_certificate(ca.certificate)
        crls = []
        for shard in range(ca.crl_shards if ca.kind == "intermediate" else 1):
            latest = store().latest_crl(ca.name, "full", shard if ca.crl_shards > 1 else None)
            url = crl_url(ca, shard if ca.crl_shards > 1 else None)
            crls.append({"href": urlsplit(url).path,
                         "file": url.rsplit("/", 1)[-1],
                         "next_update": when(latest.next_update, lang) if latest else None})
        rows.append({"name": ca.name, "level": digits(str(ca.level), lang) if ca.level else WORDS[lang]["root"],
                     "subject": _cn(ca.certificate), "valid_until": when(cert.not_valid_after_utc, lang),
                     "certificate": f"/certs/{ca.name}.crt", "crls": crls})
    return render(request, "repository/index.html", {"cas": rows}, words=WORDS)


_HEX = re.compile(r"^[0-9a-fA-F]{1,40}$")
#: Lookups per client address and minute: the status page reads the store; the OCSP form makes
#: this server ask a responder, which must not become a way to flood it.
STATUS_LIMIT = PerClientLimit(settings.REPOSITORY_STATUS_PER_MINUTE)
OCSP_LIMIT = PerClientLimit(settings.REPOSITORY_OCSP_PER_MINUTE)


def _by_serial(request: HttpRequest, lang: str) -> tuple[dict, int, object]:
    """The form's serial number, checked, and the certificate it names (or the error shown
    beside the field, with its status code)."""
    text = request.GET.get("serial", "").strip().replace(":", "").replace(" ", "")
    context: dict = {"serial": text}
    if not text:
        return context, 200, None
    if not _HEX.match(text):
        context["error"] = WORDS[lang]["bad_serial"]
        return context, 400, None
    try:
        return context, 200, store().get_certificate(int(text, 16))
    except NotFoundError:
        context["error"] = WORDS[lang]["not_found"]
        return context, 404, None


def status(request: HttpRequest) -> HttpResponse:
    from cryptography import x509

    if request.GET.get("serial") and (refused := STATUS_LIMIT.refused(request)) is not None:
        return refused
    lang = language(request)
    context, code, record = _by_serial(request, lang)
    if record is not None:
        cert = x509.load_der_x509_certificate(record.certificate)
        context["result"] = {
            "serial": f"{record.serial:x}", "issuer": record.ca, "status": record.status,
            "status_text": WORDS[lang][record.status],
            "valid_from": when(cert.not_valid_before_utc, lang), "valid_to": when(cert.not_valid_after_utc, lang),
            "revoked_at": when(record.revoked_at, lang) if record.revoked_at else None,
            "reason": record.reason.name if record.reason is not None and record.revoked_at else None}
    return render(request, "repository/status.html", context, status=code, words=WORDS)


def ocsp_lookup(request: HttpRequest) -> HttpResponse:
    """Ask the certificate's own OCSP responder (the URL in the certificate) and show its checked
    answer: the repository's word and the responder's side by side."""
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID

    from iranpki.ocsp.client import OcspClientError, query

    if request.GET.get("serial") and (refused := OCSP_LIMIT.refused(request)) is not None:
        return refused
    lang = language(request)
    context, code, record = _by_serial(request, lang)
    if record is not None:
        cert = x509.load_der_x509_certificate(record.certificate)
        try:
            aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
            urls = [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP]
        except x509.ExtensionNotFound:
            urls = []
        if not urls:
            context["error"], code = WORDS[lang]["no_ocsp"], 404
        else:
            try:
                answer = query(urls[0], record.certificate, store().get_ca(record.ca).certificate)
            except OcspClientError as exc:
                context["error"], code = f"{WORDS[lang]['ocsp_failed']}: {exc}", 502
            else:
                context["answer"] = {"url": urls[0], "status": answer.status,
                                     "status_text": WORDS[lang].get(answer.status, answer.status),
                                     "produced_at": when(answer.produced_at, lang),
                                     "revoked_at": when(answer.revoked_at, lang) if answer.revoked_at else None,
                                     "reason": answer.reason, "responder": answer.responder}
    return render(request, "repository/ocsp.html", context, status=code, words=WORDS)


def ca_certificate(request: HttpRequest, name: str) -> HttpResponse:
    try:
        ca = store().get_ca(name)
    except NotFoundError:
        return HttpResponse(f"no CA {name!r}\n", status=404, content_type="text/plain; charset=utf-8")
    response = HttpResponse(ca.certificate, content_type="application/pkix-cert")
    response["Content-Disposition"] = f'attachment; filename="{name}.crt"'
    return response


def _published(file: str):  # noqa: ANN202 - a CrlRecord or None
    """The latest CRL whose URL, as the certificates name it, ends in ``file``."""
    from iranpki.x509parts import crl_url

    for ca in store().list_cas():
        shards = [None] if ca.crl_shards <= 1 else list(range(ca.crl_shards))
        for shard in shards:
            for delta in (False, True):
                if crl_url(ca, shard, delta=delta).rsplit("/", 1)[-1] == file:
                    return store().latest_crl(ca.name, "delta" if delta else "full", shard)
    return None


def crl(request: HttpRequest, file: str) -> HttpResponse:
    """The latest CRL the register holds for the URL's CA, shard and kind: the file the CA wrote."""
    record = _published(file)
    if record is None or not Path(record.path).is_file():
        return HttpResponse(f"no CRL {file!r} is published here\n", status=404, content_type="text/plain; charset=utf-8")
    return FileResponse(open(record.path, "rb"), content_type="application/pkix-crl")  # noqa: SIM115 - closed by Django


def policy(request: HttpRequest) -> HttpResponse:
    from importlib import resources

    from markdown_it import MarkdownIt

    source = resources.files("iranpki._data").joinpath("policies", "national-cp.md").read_text("utf-8")
    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(source)  # raw HTML in it is escaped
    return render(request, "repository/policy.html", {"document": html}, words=WORDS)


urlpatterns = [
    path("", index, name="repository"),
    path("status", status, name="status"),
    path("policy", policy, name="policy"),
    path("ocsp", ocsp_lookup, name="ocsp"),
    path("certs/<str:name>.crt", ca_certificate),
    path("crl/<str:file>", crl),
]

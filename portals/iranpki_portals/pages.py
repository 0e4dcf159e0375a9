"""What every portal page shares: the two languages (Persian first, right to left; English),
dates in the Jalali calendar beside the Gregorian, Persian digits in Persian text, and the
security headers (a Content-Security-Policy with no inline script or style, no framing)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from iranpki.clock import jalali_date, utc

LANGUAGES = ("fa", "en")
_JALALI_MONTHS = ("فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور", "مهر", "آبان", "آذر", "دی", "بهمن",
                  "اسفند")
_JALALI_MONTHS_EN = ("Farvardin", "Ordibehesht", "Khordad", "Tir", "Mordad", "Shahrivar", "Mehr", "Aban", "Azar",
                     "Dey", "Bahman", "Esfand")
_PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")

#: The words of the pages, by language. A portal adds its own with :func:`words`.
WORDS: dict[str, dict[str, str]] = {
    "fa": {"other_language": "English", "other_code": "en", "dir": "rtl", "site": "مخزن عمومی زیرساخت کلید عمومی",
           "skip": "پرش به محتوا"},
    "en": {"other_language": "فارسی", "other_code": "fa", "dir": "ltr", "site": "Public repository of the PKI",
           "skip": "Skip to the content"},
}


def language(request: HttpRequest) -> str:
    """Persian unless the page is asked for in English (``?lang=en``)."""
    asked = request.GET.get("lang", "fa")
    return asked if asked in LANGUAGES else "fa"


def digits(text: str, lang: str) -> str:
    """Persian digits in Persian text."""
    return text.translate(_PERSIAN_DIGITS) if lang == "fa" else text


def when(moment: datetime | None, lang: str) -> str:
    """The date in the Jalali calendar beside the Gregorian one (UTC)."""
    if moment is None:
        return "-"
    gregorian = f"{utc(moment):%Y-%m-%d}"
    year, month, day = (int(x) for x in jalali_date(moment).split("-"))
    if lang == "fa":
        # Day, month name, year: Persian text that reads right to left with no bidi surprises.
        # The Gregorian date isolated left to right (LRI ... PDI): in Persian text its digits would
        # otherwise be reordered (UAX #9 rule W2 makes them Arabic numbers after Persian letters).
        return digits(f"{day} {_JALALI_MONTHS[month - 1]} {year}", "fa") + f" (\u2066{gregorian}\u2069)"
    return f"{gregorian} ({day} {_JALALI_MONTHS_EN[month - 1]} {year} SH)"


def render(request: HttpRequest, template: str, context: dict[str, Any], *, status: int = 200,
           words: dict[str, dict[str, str]] | None = None) -> HttpResponse:
    lang = language(request)
    text = {**WORDS[lang], **(words or {}).get(lang, {})}
    session = getattr(request, "session", None)
    signed_in = {k: True for k in ("applicant", "officer") if session is not None and session.get(k)}
    html = render_to_string(template, {"t": text, "lang": lang, "path": request.path, "signed_in": signed_in,
                                       **context}, request=request)
    return HttpResponse(html, status=status, content_type="text/html; charset=utf-8")


class SecurityHeaders:
    """A Content-Security-Policy that allows this origin's styles and scripts only (no inline
    ones), no framing, forms posted only here; and no referrer."""

    POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")

    def __init__(self, get_response):  # noqa: ANN001
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", self.POLICY)
        return response


class Faults:
    """A fault in a portal page: logged once to the server's standard error with its trace and an
    incident number (never the form's content), and the person is shown that number."""

    def __init__(self, get_response):  # noqa: ANN001
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        import logging
        import secrets

        if request.path.startswith("/api/"):
            return None  # the API answers its own faults
        incident = secrets.token_hex(4)
        logging.getLogger("iranpki_portals").error("incident %s: %s %s failed", incident, request.method, request.path,
                                                   exc_info=exc)
        text = (f"خطایی در سامانه رخ داد (شمارهٔ رویداد {incident})؛ صفحه را دوباره باز کنید تا ببینید کار ثبت شده است یا نه.\n"
                f"The portal could not answer (incident {incident}); open the page again to see whether the step was "
                "recorded (each step is recorded whole or not at all). The operator finds the cause in the server's "
                "log under that number.\n")
        return HttpResponse(text, status=500, content_type="text/plain; charset=utf-8")


def stylesheet(request: HttpRequest) -> HttpResponse:
    """The portals' one stylesheet (no inline style anywhere)."""
    from pathlib import Path

    css = (Path(__file__).parent / "static" / "portal.css").read_bytes()
    response = HttpResponse(css, content_type="text/css; charset=utf-8")
    response["Cache-Control"] = "public, max-age=3600"
    return response


class PerClientLimit:
    """At most ``per_minute`` requests from one client address in any minute, counted in this
    process (a public lookup form, not a credential: the store's attempt counts are for those).
    A client past it gets 429 with Retry-After."""

    def __init__(self, per_minute: int):
        import threading

        self.per_minute = per_minute
        self._seen: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def refused(self, request: HttpRequest) -> HttpResponse | None:
        import time

        from .ra_api import _client

        now, client = time.monotonic(), _client(request)
        with self._lock:
            if len(self._seen) > 100_000:  # bounded: forget everyone rather than grow without end
                self._seen.clear()
            recent = [t for t in self._seen.get(client, []) if now - t < 60]
            if len(recent) >= self.per_minute:
                self._seen[client] = recent
                retry = int(60 - (now - recent[0])) + 1
                lang = language(request)
                text = (f"درخواست‌های بسیار؛ {digits(str(retry), 'fa')} ثانیه دیگر دوباره بکوشید" if lang == "fa"
                        else f"Too many requests; try again in {retry} seconds")
                response = HttpResponse(text + "\n", status=429, content_type="text/plain; charset=utf-8")
                response["Retry-After"] = str(retry)
                return response
            recent.append(now)
            self._seen[client] = recent
        return None


# ---- sessions and forms sent once ------------------------------------------------------------

def once(request: HttpRequest) -> str:
    """A number for a form that changes something, good for one posting in this session: a
    form posted again (the back button, a replayed request) is refused with nothing changed."""
    import secrets

    token = secrets.token_urlsafe(16)
    issued = [t for t in request.session.get("once", []) if t][-49:]
    request.session["once"] = [*issued, token]
    return token


def spend_once(request: HttpRequest) -> bool:
    """True the first time the posted form's number is seen in this session (then it is spent)."""
    token = request.POST.get("once", "")
    issued = list(request.session.get("once", []))
    if not token or token not in issued:
        return False
    issued.remove(token)
    request.session["once"] = issued
    return True


def fresh(request: HttpRequest, key: str, idle_seconds: int, max_seconds: int | None = None) -> dict | None:
    """The session's ``key`` entry (who signed in), if it was used within ``idle_seconds`` (and
    began within ``max_seconds``); an expired one is removed. Each use renews the idle time."""
    import time

    entry = request.session.get(key)
    if not isinstance(entry, dict):
        return None
    now = time.time()
    if now - float(entry.get("seen", 0)) > idle_seconds or (max_seconds is not None and
                                                              now - float(entry.get("since", 0)) > max_seconds):
        request.session.flush()
        return None
    entry["seen"] = now
    request.session[key] = entry
    return entry


def sign_in(request: HttpRequest, key: str, entry: dict) -> None:
    """Start a session for ``entry`` under a new session key (no fixation of a key set before)."""
    import time

    request.session.cycle_key()
    now = time.time()
    request.session[key] = {**entry, "since": now, "seen": now}


def upload(request: HttpRequest, name: str, max_bytes: int) -> bytes | None:
    """The bytes of the uploaded file ``name`` (None if none was sent); a larger one raises
    ValueError with its size, read no further."""
    f = request.FILES.get(name)
    if f is None or not f.size:
        return None
    if f.size > max_bytes:
        raise ValueError(f"{f.size}")
    return f.read()


class FieldError(Exception):
    """A form field's problem, in the page's language: shown beside ``field``."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def uploaded(request: HttpRequest, name: str, max_bytes: int, words: dict[str, str], *,
             needed: bool = True) -> bytes | None:
    """The file ``name`` of a form, or FieldError (in ``words``' language) when it is larger than
    ``max_bytes`` or, if ``needed``, missing."""
    try:
        data = upload(request, name, max_bytes)
    except ValueError:
        raise FieldError(name, words["too_big"]) from None
    if data is None and needed:
        raise FieldError(name, words["choose_file"])
    return data


def der(data: bytes, label: str) -> bytes:
    """An upload given as PEM or DER, as DER (the PEM's base64 body)."""
    text = data.strip()
    if not text.startswith(b"-----BEGIN"):
        return data
    import base64

    lines = [line for line in text.splitlines() if line and not line.startswith(b"-----")]
    try:
        return base64.b64decode(b"".join(lines), validate=True)
    except ValueError:
        from iranpki.errors import RequestError

        raise RequestError(f"the {label} is PEM with a body that is not base64") from None


def media_type(data: bytes) -> str | None:
    """The type of a scan by its first bytes (JPEG, PNG or PDF), whatever the browser said."""
    for kind, magic in (("image/jpeg", b"\xff\xd8\xff"), ("image/png", b"\x89PNG\r\n\x1a\n"),
                        ("application/pdf", b"%PDF-")):
        if data.startswith(magic):
            return kind
    return None


def redirect(url: str) -> HttpResponse:
    """303 See Other: the page after a posted form, so that reloading it posts nothing again."""
    response = HttpResponse(status=303)
    response["Location"] = url
    return response

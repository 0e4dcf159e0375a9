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
    html = render_to_string(template, {"t": text, "lang": lang, "path": request.path, **context}, request=request)
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

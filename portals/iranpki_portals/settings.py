"""Django settings of the RA API: no database of Django's own (the RA's state is the iranpki
store), no sessions or templates yet, secure defaults. The workspace comes from IRANPKI_HOME."""

from __future__ import annotations

import os
import secrets

SECRET_KEY = os.environ.get("IRANPKI_PORTALS_SECRET") or secrets.token_urlsafe(48)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"] + [h for h in os.environ.get("IRANPKI_PORTALS_HOSTS", "").split(",") if h]
ROOT_URLCONF = "iranpki_portals.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["iranpki_portals.urls.JsonErrors", "django.middleware.security.SecurityMiddleware",
              "iranpki_portals.pages.SecurityHeaders", "django.contrib.sessions.middleware.SessionMiddleware",
              "django.middleware.common.CommonMiddleware",
              "django.middleware.csrf.CsrfViewMiddleware", "django.middleware.clickjacking.XFrameOptionsMiddleware",
              "iranpki_portals.pages.Faults"]
X_FRAME_OPTIONS = "DENY"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates",
              "DIRS": [os.path.join(os.path.dirname(__file__), "templates")], "APP_DIRS": False,
              "OPTIONS": {"autoescape": True}}]
#: Which portals this process serves (comma-separated): ra (the JSON API), repository, applicant,
#: office, lab.
PORTALS = [p for p in os.environ.get("IRANPKI_PORTALS", "ra").split(",") if p]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
# A JSON body (or the form fields of an upload) larger than this is refused before it is read;
# identity scans are files of at most 5 MB each, kept in memory (never in a temporary file), at
# most 8 in one call; the server refuses a whole body above MAX_BODY_BYTES (serve.py) unread.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
MAX_BODY_BYTES = 24 * 1024 * 1024
# Django keeps uploads in memory only while the whole body is below this, else it writes
# temporary files: the body's own limit, and the memory handler alone.
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.MemoryFileUploadHandler"]
DATA_UPLOAD_MAX_NUMBER_FILES = 8
SECURE_CONTENT_TYPE_NOSNIFF = True
# same-origin, not no-referrer: with no-referrer Chromium posts forms with "Origin: null", which
# the CSRF check (rightly) refuses; nothing is sent to other sites either way.
SECURE_REFERRER_POLICY = "same-origin"
SECURE_HSTS_SECONDS = 31_536_000
# Django's own request log is silenced (it would print what clients sent); the API logs each
# fault once, with its incident number, to the server's standard error.
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"null": {"class": "logging.NullHandler"},
                        "stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
           "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
           "loggers": {"django.request": {"handlers": ["null"], "propagate": False},
                       "iranpki_portals": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
                       # A refused form (no or a wrong CSRF token) is logged with its reason, not its content.
                       "django.security.csrf": {"handlers": ["stderr"], "level": "WARNING", "propagate": False}}}
# The CSRF cookie: not readable by scripts, sent to this site only; Secure when served over TLS.
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Strict"
CSRF_COOKIE_SECURE = os.environ.get("IRANPKI_PORTALS_TLS") == "1"
# The repository's lookups per client address and minute (a deployment behind one NAT, or a
# load test, raises them).
REPOSITORY_STATUS_PER_MINUTE = int(os.environ.get("IRANPKI_PORTALS_STATUS_PER_MINUTE", "120"))
REPOSITORY_OCSP_PER_MINUTE = int(os.environ.get("IRANPKI_PORTALS_OCSP_PER_MINUTE", "30"))

# Sessions (the applicant's, once the tracking code is shown; the officer's, after the client
# certificate and the one-time code): kept in this process's memory only, never in the cookie
# (which carries a random key), HttpOnly, SameSite=Strict, Secure over TLS. A restart ends them.
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "OPTIONS": {"MAX_ENTRIES": 20_000}}}
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE
SESSION_COOKIE_AGE = 8 * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
#: An officer's session ends after this many seconds without a page, and in any case after
#: OFFICE_SESSION_MAX_SECONDS; an applicant's after APPLICANT_SESSION_IDLE_SECONDS idle.
OFFICE_SESSION_IDLE_SECONDS = int(os.environ.get("IRANPKI_PORTALS_OFFICE_IDLE_SECONDS", "900"))
OFFICE_SESSION_MAX_SECONDS = 8 * 3600
APPLICANT_SESSION_IDLE_SECONDS = int(os.environ.get("IRANPKI_PORTALS_APPLICANT_IDLE_SECONDS", "1200"))
#: The addresses of the TLS front end: from them, the client's address is the last one the front
#: end added to X-Forwarded-For (rate limits count by it); from any other, the header is ignored.
TRUSTED_PROXIES = [a for a in os.environ.get("IRANPKI_PORTALS_TRUSTED_PROXIES", "").split(",") if a]
#: The laboratory's signing certificates (a PEM file): a report is taken only when signed by one.
LAB_CERTIFICATES = os.environ.get("IRANPKI_PORTALS_LAB_CERTIFICATES", "")

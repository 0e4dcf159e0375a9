from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from .pages import stylesheet

urlpatterns = [path("static/portal.css", stylesheet)]
if "ra" in settings.PORTALS:
    from .ra_api import api

    urlpatterns.append(path("api/ra/", api.urls))
if "applicant" in settings.PORTALS:
    urlpatterns.append(path("applicant/", include("iranpki_portals.applicant")))
if "office" in settings.PORTALS:
    urlpatterns.append(path("office/", include("iranpki_portals.office")))
if "lab" in settings.PORTALS:
    urlpatterns.append(path("lab/", include("iranpki_portals.lab")))
if "repository" in settings.PORTALS:
    urlpatterns.append(path("", include("iranpki_portals.repository")))


def _json_error(status: int, code: str, message: str) -> HttpResponse:
    return HttpResponse(json.dumps({"error": {"code": code, "message": message}}), status=status,
                        content_type="application/json")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's own refusals (a Host the server does not serve, a malformed request): JSON too."""
    return _json_error(400, "bad-request", "the request was refused before it reached the API: a Host header this "
                       "server does not serve (the names in its certificate), or a malformed request")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not request.path.startswith("/api/"):
        return HttpResponse(f"404: no page {request.path} here\n", status=404, content_type="text/plain; charset=utf-8")
    return _json_error(404, "not-found", f"no such address: {request.path}; the API is under /api/ra/ "
                       "(its description: /api/ra/openapi.json)")


def server_error(request: HttpRequest) -> HttpResponse:
    return _json_error(500, "internal", "the RA could not answer; the operator finds the cause in the audit log")


handler400 = bad_request
handler404 = not_found
handler500 = server_error


class JsonErrors:
    """Django's answers that are not the API's (405 for a method a path does not take, and the
    like) in the API's JSON error form."""

    def __init__(self, get_response):  # noqa: ANN001
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/api/") and response.status_code >= 400 and \
                not response.get("Content-Type", "").startswith("application/json"):
            if response.status_code == 405:
                allowed = response.get("Allow", "")
                return _json_error(405, "method", f"{request.method} is not taken at {request.path}; it takes {allowed}")
            return _json_error(response.status_code, "http", f"{response.status_code} {response.reason_phrase}")
        return response

"""Serve the RA's API over HTTPS with cheroot (a maintained WSGI server that hands the verified TLS
client certificate to the application as ``SSL_CLIENT_CERT``). Client certificates are asked for
and verified against the given CA certificates, and optional: applicants have none."""

from __future__ import annotations

import os
import signal
import ssl
from collections.abc import Callable
from pathlib import Path


def application():  # noqa: ANN201 - a WSGI application
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iranpki_portals.settings")
    import django
    from django.core.wsgi import get_wsgi_application

    django.setup()
    return _limited(get_wsgi_application())


def _limited(app):  # noqa: ANN001, ANN202 - WSGI
    """Refuse a body declared larger than the settings' MAX_BODY_BYTES before any of it is read,
    with the API's JSON error (cheroot cuts a longer chunked body off at the same size)."""
    import json

    from django.conf import settings

    limit = settings.MAX_BODY_BYTES

    def refuse(start_response, status: str, code: str, message: str, page: bool = False):  # noqa: ANN001, ANN202
        if page:  # a portal's form: a message a person reads, in both languages
            persian = {"too-large": "فایل‌های فرستاده‌شده بزرگ‌تر از اندازهٔ مجازند (هر تصویر تا ۵ مگابایت)؛ چیزی ذخیره نشد.",
                       "length-required": "درخواست بدون طول فرستاده شد؛ چیزی ذخیره نشد."}[code]
            body = f"{persian}\n{message}; nothing was stored.\n".encode()
            kind = "text/plain; charset=utf-8"
        else:
            body = json.dumps({"error": {"code": code, "message": message}}).encode()
            kind = "application/json"
        start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body))), ("Connection", "close")])
        return [body]

    def limited(environ, start_response):  # noqa: ANN001, ANN202
        page = not environ.get("PATH_INFO", "").startswith("/api/")
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return refuse(start_response, "411 Length Required", "length-required",
                          "send the request body with a Content-Length, not chunked", page)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > limit:
            return refuse(start_response, "413 Request Entity Too Large", "too-large",
                          f"the request body ({environ.get('CONTENT_LENGTH')} bytes) is larger than the "
                          f"{limit // (1024 * 1024)} MB the RA accepts; send each scan at most 5 MB", page)
        return app(environ, start_response)

    return limited


def _handshake_limited():  # noqa: ANN202 - a cheroot SSL adapter class
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    class HandshakeLimited(BuiltinSSLAdapter):
        """cheroot makes the TLS handshake in its one accepting thread: a client that connects and
        says nothing holds every other client for as long as the handshake may take. It may take
        HANDSHAKE_SECONDS here, not the connection's whole timeout."""

        def wrap(self, sock):  # noqa: ANN001, ANN202
            timeout = sock.gettimeout()
            sock.settimeout(HANDSHAKE_SECONDS)
            wrapped, environ = super().wrap(sock)  # the plain socket is detached into the TLS one
            wrapped.settimeout(timeout)
            return wrapped, environ

    return HandshakeLimited


HANDSHAKE_SECONDS = 2.0


def certificate_names(certificate: str) -> list[str]:
    """The DNS names of the server certificate (the first in the PEM file)."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(certificate).read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in san.get_values_for_type(x509.DNSName)]


def openapi_document() -> dict:
    """The API's OpenAPI 3.1 document, as the server serves it."""
    application()
    from .ra_api import api

    return api.get_openapi_schema()


def serve(home: str | os.PathLike[str], *, host: str, port: int, certificate: str | None, key: str | None,
          client_cas: str | None, threads: int = 8, on_ready: Callable[[str], None] | None = None,
          portals: tuple[str, ...] = ("ra",), names: tuple[str, ...] = ()) -> None:
    """Serve ``portals`` (``ra``: the JSON API, over HTTPS with optional client certificates;
    ``repository``: the public repository, plain HTTP as certificates name it unless a
    certificate is given)."""
    from cheroot import wsgi

    os.environ["IRANPKI_HOME"] = str(Path(home).resolve())
    os.environ["IRANPKI_PORTALS"] = ",".join(portals)
    os.environ["IRANPKI_PORTALS_TLS"] = "1" if certificate is not None else "0"
    # The host names the server answers for: those its certificate carries (Django's
    # ALLOWED_HOSTS) and those given, beside the loopback names.
    known = [n for n in os.environ.get("IRANPKI_PORTALS_HOSTS", "").split(",") if n] + list(names)
    if certificate is not None:
        known += certificate_names(certificate)
    os.environ["IRANPKI_PORTALS_HOSTS"] = ",".join(dict.fromkeys(known))
    app = application()
    server = wsgi.Server((host, port), app, numthreads=threads, max=threads, request_queue_size=64,
                         timeout=10, shutdown_timeout=5, server_name="iranpki")
    from django.conf import settings

    # A declared length above the limit gets the API's JSON 413 from _limited, which also refuses a
    # body of undeclared length; cheroot's own limit stays behind both.
    server.max_request_body_size = 2 * settings.MAX_BODY_BYTES
    server.max_request_header_size = 64 * 1024
    if certificate is not None:
        adapter = _handshake_limited()(certificate, key)
        adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
        if client_cas is not None:
            adapter.context.load_verify_locations(client_cas)
            adapter.context.verify_mode = ssl.CERT_OPTIONAL  # officers present one; applicants have none
        server.ssl_adapter = adapter

    def stop(*_: object) -> None:
        raise KeyboardInterrupt  # leaves serve(); the finally below stops the workers

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.prepare()
    bound = server.socket.getsockname()
    if on_ready is not None:
        scheme = "https" if certificate is not None else "http"
        on_ready(f"{scheme}://{bound[0]}:{bound[1]}/" + ("api/ra/" if portals == ("ra",) else ""))
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()

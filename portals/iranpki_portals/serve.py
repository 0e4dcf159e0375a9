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
    return get_wsgi_application()


def openapi_document() -> dict:
    """The API's OpenAPI 3.1 document, as the server serves it."""
    application()
    from .ra_api import api

    return api.get_openapi_schema()


def serve(home: str | os.PathLike[str], *, host: str, port: int, certificate: str, key: str, client_cas: str,
          threads: int = 8, on_ready: Callable[[str], None] | None = None) -> None:
    from cheroot import wsgi
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    os.environ["IRANPKI_HOME"] = str(Path(home).resolve())
    app = application()
    server = wsgi.Server((host, port), app, numthreads=threads, max=threads, request_queue_size=64,
                         timeout=10, shutdown_timeout=5, server_name="iranpki-ra")
    server.max_request_body_size = 12 * 1024 * 1024
    server.max_request_header_size = 64 * 1024
    adapter = BuiltinSSLAdapter(certificate, key)
    adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
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
        on_ready(f"https://{bound[0]}:{bound[1]}/api/ra/")
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()

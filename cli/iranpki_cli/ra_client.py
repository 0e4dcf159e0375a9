"""A client of the RA's JSON API (docs/ra-openapi.json) over HTTPS, for the desk client and for
scripts: the officer's client certificate for office calls, the tracking code and second factor
for the applicant's. The standard library's http.client and ssl; identity scans go as
multipart/form-data, encoded here (a few lines; the standard library has no encoder)."""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from iranpki.errors import IranPkiError

__all__ = ["ApiError", "RaClient", "Upload"]


class ApiError(IranPkiError):
    """The RA refused a call: ``status``, and the JSON error it sent (``code``, ``message``, and
    ``rule`` or ``field`` where it names one)."""

    def __init__(self, status: int, error: dict[str, Any]):
        self.status = status
        self.error = error
        detail = f" (rule {error['rule']})" if error.get("rule") else ""
        super().__init__(f"the RA refused: {error.get('message', 'no message')}{detail} [HTTP {status}]")


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart form."""

    name: str
    filename: str
    data: bytes = field(repr=False)
    media_type: str


class RaClient:
    """One RA server. ``certificate``/``key``: the officer's client certificate and key files
    (PEM); ``trust``: CA certificates that verify the server (default: the system's); and
    ``server_name``: the name the server's certificate must carry when ``url`` gives an address."""

    def __init__(self, url: str, *, certificate: str | None = None, key: str | None = None,
                 key_password: str | None = None, trust: str | None = None, server_name: str | None = None,
                 timeout: float = 60.0):
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise IranPkiError(f"RA server {url!r}: give an https:// URL, e.g. https://ra.example.ir:8443")
        self.host, self.port = parts.hostname, parts.port or 443
        self.base = parts.path.rstrip("/") or "/api/ra"
        if not self.base.endswith("/api/ra"):
            self.base = self.base + "/api/ra"
        self.server_name = server_name or self.host
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=trust)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        if certificate is not None:
            def password() -> str:
                if key_password is None:
                    raise IranPkiError(f"the client key {key or certificate} is encrypted: give its passphrase "
                                       "(IRANPKI_KEY_PASSPHRASE)")
                return key_password

            try:
                self.context.load_cert_chain(certificate, key, password=password)
            except ssl.SSLError as exc:
                raise IranPkiError(f"cannot use the client certificate {certificate} with the key {key}: "
                                   f"{exc.reason or exc}; check that the key is the certificate's and the "
                                   "passphrase is right") from None

    def _connection(self) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=self.timeout)
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        conn.sock = self.context.wrap_socket(raw, server_hostname=self.server_name)
        return conn

    def call(self, method: str, path: str, body: Any = None, *, applicant: tuple[str, str] | None = None,
             form: dict[str, str | list[str]] | None = None, files: list[Upload] | None = None) -> Any:
        """One call; the decoded JSON answer (or the bytes of a binary one). Raises ApiError."""
        # The Host the server answers for: the name its certificate carries, also when --server is an address.
        headers = {"Accept": "application/json",
                   "Host": self.server_name if self.port == 443 else f"{self.server_name}:{self.port}"}
        data = None
        if applicant is not None:
            headers["X-Tracking-Code"], headers["X-Second-Factor"] = applicant
        if form is not None or files is not None:
            data, headers["Content-Type"] = multipart(form or {}, files or [])
        elif body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            conn = self._connection()
            try:
                try:
                    conn.request(method, self.base + path, body=data, headers=headers)  # our Host replaces its own
                except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError):
                    pass  # the server answered before reading the whole body (too large): read its answer
                response = conn.getresponse()
                payload = response.read()
            finally:
                conn.close()
        except ssl.SSLCertVerificationError as exc:
            raise IranPkiError(f"the RA server at {self.host}:{self.port} did not prove to be "
                               f"{self.server_name!r}: {exc.verify_message}; give the CA certificates that issued "
                               "its certificate (--trust) and the name it carries (--server-name)") from None
        except ssl.SSLError as exc:
            raise IranPkiError(f"TLS with the RA at {self.host}:{self.port} failed ({exc.reason or exc}); an "
                               "officer's client certificate that the RA does not trust, or an expired one, "
                               "is refused here") from None
        except OSError as exc:
            raise IranPkiError(f"cannot reach the RA at {self.host}:{self.port}: {exc.strerror or exc}; check "
                               "--server (or IRANPKI_RA_URL) and that `iranpki ra serve` runs there") from None
        kind = response.getheader("Content-Type", "")
        if response.status >= 400:
            try:
                error = json.loads(payload)["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "http", "message": payload[:200].decode("utf-8", "replace")}
            raise ApiError(response.status, error)
        if kind.startswith("application/json"):
            return json.loads(payload) if payload else None
        return payload


def multipart(form: dict[str, str | list[str]], files: list[Upload]) -> tuple[bytes, str]:
    """``form`` fields and ``files`` as multipart/form-data (RFC 7578): the body and its type."""
    boundary = "iranpki-" + secrets.token_hex(16)
    parts: list[bytes] = []
    for name, values in form.items():
        for value in [values] if isinstance(values, str) else values:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'
                         .encode("utf-8") + value.encode("utf-8") + b"\r\n")
    for f in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(f.name)}"; '
                     f'filename="{_quoted(f.filename)}"\r\nContent-Type: {f.media_type}\r\n\r\n'.encode("utf-8")
                     + f.data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")

"""The time-stamp authority over HTTP: RFC 3161 3.4 (a POST of application/timestamp-query at
any path, answered with application/timestamp-reply), on the HTTP layer and the worker
processes of :mod:`iranpki.httpserve`.

Processes: a supervisor that binds the port and keeps N workers running; each worker opens its
own store connection (for serial blocks) and its own key after the fork. A request that is not a
TimeStampReq gets HTTP 200 with a rejection (badDataFormat), a failure of ours systemFailure,
never an HTTP 500; other methods get 405.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from ..errors import IranPkiError, TsaError
from ..httpserve import Child, HttpSettings, Site, bind, run_worker, supervise
from . import MAX_REQUEST_BYTES, TimeStampAuthority

__all__ = ["TsaSettings", "serve"]

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/timestamp-reply\r\nCache-Control: no-store\r\n"


@dataclass(frozen=True)
class TsaSettings(HttpSettings):
    error: ClassVar[type[IranPkiError]] = TsaError
    service: ClassVar[str] = "TSA"

    max_request_bytes: int = MAX_REQUEST_BYTES


class _Worker(Site):
    allow = b"POST"
    refuse_note = "a time-stamp authority answers POST of application/timestamp-query (RFC 3161 3.4)"
    what = "a time-stamp request"

    def __init__(self, authority: TimeStampAuthority, settings: TsaSettings):
        super().__init__(settings)
        self.authority = authority

    def handle(self, method: bytes, target: bytes, body: bytes, now: float) -> tuple[bytes, bytes] | None:
        if method != b"POST":
            return None
        reply = self.authority.respond(body)
        return _HEAD + b"Content-Length: %d\r\nDate: %s\r\n" % (len(reply), self.date(now)), reply


def _run_worker(open_authority: Callable[[], TimeStampAuthority], sock: socket.socket, settings: TsaSettings,
                ready: int) -> None:
    authority = open_authority()
    try:
        run_worker(_Worker(authority, settings), sock, ready)
    finally:
        authority.close()


def serve(open_authority: Callable[[], TimeStampAuthority], settings: TsaSettings, *,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Run the TSA until SIGTERM or SIGINT: bind, start the workers one by one, call
    ``on_ready(url)``, restart any worker that dies. ``open_authority()`` runs in each worker
    after the fork and opens the store and the key there."""
    socks = bind(settings, settings.workers)
    children = [Child("worker", lambda ready, sock=sock: _run_worker(open_authority, sock, settings, ready), sock)
                for sock in (socks[slot % len(socks)] for slot in range(settings.workers))]
    supervise(settings, socks, children, on_ready=on_ready)

"""The OCSP responder over HTTP/1.1: RFC 6960 appendix A (GET and POST), RFC 9919 sections 5
(transport) and 6 (caching headers), RFC 9112 message framing. The HTTP layer and the process
supervision are in :mod:`iranpki.httpserve`, shared with the time-stamp authority.

Processes (scale is by processes: PKCS#11 login is per process, docs/architecture.md)::

    supervisor   binds the port, forks the refresher and the workers, restarts any that dies,
      |          stops them all on SIGTERM or SIGINT
      +-- refresher   the only process that signs pre-produced responses: the due ones in the
      |               background from the start (the workers listen at once and sign what is not
      |               ready yet for the request), re-signing within a poll interval whenever a
      |               certificate's status changes (polling the store's status sequence, between
      |               every batch of the first pass too), refreshing them before nextUpdate and
      |               renewing the delegated responder certificate; it writes a heartbeat into the
      |               store that the workers' ``GET /health`` reports
      +-- worker x N  answer HTTP; each opens its own store connection and key after the fork

Each worker listens on its own socket bound with SO_REUSEPORT, so the kernel spreads connections
over the workers; the supervisor keeps every socket open, so connections that arrive while a
worker restarts wait in its queue instead of being refused.

What a client can do wrong never costs more than its own connection: a request that is not OCSP
gets HTTP 200 with malformedRequest (RFC 6960 2.3), a failure of ours internalError, never an HTTP
500; heads over 8 KiB and bodies over 64 KiB are refused with 431 and 413, a client that stalls is
dropped after ``request_timeout``, an idle kept-alive connection after ``keep_alive_timeout``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, ClassVar
from urllib.parse import unquote_to_bytes

from ..errors import IranPkiError, OcspError
from ..httpserve import (
    Child,
    HttpSettings,
    RememberedSecret,
    Site,
    bind,
    run_worker,
    supervise,
)
from . import OcspService, Reply
from .service import CLOCK_META

__all__ = ["RememberedSecret", "ServerSettings", "serve"]

log = logging.getLogger("iranpki.ocsp")


@dataclass(frozen=True)
class ServerSettings(HttpSettings):
    error: ClassVar[type[IranPkiError]] = OcspError
    service: ClassVar[str] = "OCSP"

    #: How often the refresher looks for status changes; a revocation is served within about
    #: twice this (the refresher's poll, then the workers' response cache).
    poll_interval: float = 0.2
    #: How often the refresher looks for responses near nextUpdate and new certificates, and
    #: renews the responder certificate; the workers reload it as often.
    maintenance_interval: float = 60.0
    #: ``GET /health`` answers 503 when the refresher's last heartbeat is older than this, or it
    #: reports failures. Workers answer correctly either way (from the store's status).
    max_refresher_silence: float = 30.0
    #: Whether this responder runs its refresher. One on a copy of the store (a standby) does not:
    #: it cannot write; the refresher on the primary signs the pre-produced responses it serves.
    refresher: bool = True


# ---- HTTP ---------------------------------------------------------------------------------------------

_CONTENT_TYPE = b"Content-Type: application/ocsp-response\r\n"
_NO_STORE = b"Cache-Control: no-cache, no-store, must-revalidate\r\n"


#: How many '/'-separated suffixes of a GET path are tried as the base64 request: the responder
#: URL's own segments plus the '/' characters a client left unescaped in the base64.
_GET_TRIES = 16


def _get_request(target: bytes) -> bytes:
    """The DER request in a GET path (RFC 6960 A.1: the URL-encoded base64 after the responder's
    URL, whose own path may have segments; the base64 may hold unescaped '/' itself)."""
    path = target.split(b"?", 1)[0]
    if path.startswith((b"http://", b"https://")):  # absolute-form (RFC 9112 3.2.2)
        path = b"/" + path.split(b"/", 3)[-1] if path.count(b"/") >= 3 else b"/"
    text = unquote_to_bytes(path)
    # After each '/', longest first; a few suffixes only, so a path of slashes costs little.
    starts = [i + 1 for i, ch in enumerate(text) if ch == 0x2F][:_GET_TRIES]
    for start in starts:
        chunk = text[start:].translate(None, b" \r\n\t").replace(b"-", b"+").replace(b"_", b"/")
        if not chunk:
            continue
        try:
            data = base64.b64decode(chunk + b"=" * (-len(chunk) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if _whole_sequence(data):
            return data
    return b""


def _whole_sequence(data: bytes) -> bool:
    """Whether ``data`` is exactly one DER SEQUENCE (its length closes at the end of ``data``)."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    size = data[1]
    if size < 0x80:
        return 2 + size == len(data)
    width = size & 0x7F
    return 1 <= width <= 3 and 2 + width + int.from_bytes(data[2:2 + width], "big") == len(data)


#: At most this many cached answers per worker (about 2 KiB each); they live one poll interval.
_HOT_ENTRIES = 16384


class _Worker(Site):
    """What the connections of one worker share: the service, the response cache, the clock."""

    refuse_note = "an OCSP responder answers GET and POST (RFC 6960 A.1)"
    what = "an OCSP request"

    def __init__(self, service: OcspService, settings: ServerSettings):
        super().__init__(settings)
        self.service = service
        # Whole HTTP answers to pre-produced requests, keyed by the request's bytes (POST body or
        # GET target): a hit skips parsing, the store and formatting. An entry lives one poll
        # interval, so a status change shows no later than the refresher's poll plus this.
        self.hot: dict[bytes, tuple[float, bytes, bytes]] = {}
        self.hot_ttl = settings.poll_interval

    def handle(self, method: bytes, target: bytes, body: bytes, now: float) -> tuple[bytes, bytes] | None:
        if target == b"/health" and method in (b"GET", b"HEAD"):
            return self.health(now)
        if method == b"POST":
            key = body
        elif method == b"GET" or method == b"HEAD":
            key = b"G" + target
        else:
            return None
        hit = self.hot.get(key)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        return self.answer(key, body if method == b"POST" else _get_request(target), now)

    def answer(self, key: bytes, request: bytes, now: float) -> tuple[bytes, bytes]:
        """The HTTP head (without the Connection line and the blank line) and body for an OCSP
        request that missed the response cache."""
        reply = self.service.respond(request)
        out = self.format(reply, now)
        if reply.cacheable or reply.reusable:
            if len(self.hot) >= _HOT_ENTRIES:
                self.hot.clear()  # a burst of distinct requests: they are read from the store again
            self.hot[key] = (now + self.hot_ttl, *out)
        return out

    def format(self, reply: Reply, now: float) -> tuple[bytes, bytes]:
        body = reply.body
        head = b"HTTP/1.1 200 OK\r\n" + _CONTENT_TYPE + b"Content-Length: %d\r\nDate: %s\r\n" % (len(body), self.date(now))
        if reply.this_update is not None:
            head += b"Last-Modified: %s\r\n" % formatdate(reply.this_update, usegmt=True).encode()
        if reply.cacheable and reply.next_update is not None:
            # RFC 9919 6.2 (and RFC 5019 6.2): caches may keep it until nextUpdate, and no longer.
            head += (b"Expires: %s\r\nETag: \"%s\"\r\nCache-Control: max-age=%d, public, no-transform, must-revalidate\r\n"
                     % (formatdate(reply.next_update, usegmt=True).encode(),
                        hashlib.sha256(body).hexdigest()[:32].encode(), max(0, int(reply.next_update - now))))
        else:
            head += _NO_STORE  # signed for this request (a nonce, or every response signed live) or an error
        return head, body

    def health(self, now: float) -> tuple[bytes, bytes]:
        """``GET /health``: 200 when the refresher is alive and keeping up, else 503, with JSON
        saying what was seen (for a load balancer and the operator's monitoring)."""
        report = refresher_health(self.service, self.settings.max_refresher_silence, now)  # type: ignore[arg-type]
        report["worker"] = {"stale_answered_live": self.service.stale_answered}
        if self.service.on_copy:
            # On a copy of the store: how old the copy is, and whether it still vouches for "good".
            as_of, stale = self.service.source_age()
            report["source"] = {"copy": self.service.store.read_only, "as_of": as_of,
                                "lag_seconds": None if as_of is None else round(now - as_of, 3), "too_old": stale}
            if stale:
                report["status"] = "degraded"
                report["problems"].append("the copy of the store is older than the CP allows; answering tryLater "
                                          "except for revocations")
        body = (json.dumps(report, sort_keys=True) + "\n").encode()
        status = b"200 OK" if report["status"] == "ok" else b"503 Service Unavailable"
        head = (b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nDate: %s\r\n"
                % (status, len(body), self.date(now))) + _NO_STORE
        return head, body

    def sweep(self) -> None:
        """Close stalled and idle connections, and drop expired cached answers."""
        wall = time.time()
        self.hot = {k: v for k, v in self.hot.items() if v[0] > wall}
        super().sweep()


# ---- processes ------------------------------------------------------------------------------------

def _run_worker(open_service: Callable[[bool], OcspService], sock: socket.socket, settings: ServerSettings,
                ready: int) -> None:
    service = open_service(False)
    last = time.monotonic()

    def tick() -> None:
        nonlocal last
        if time.monotonic() - last >= settings.maintenance_interval:
            last = time.monotonic()
            service.refresh_responders(renew=False)  # errors are logged; the current certificate serves on

    try:
        run_worker(_Worker(service, settings), sock, ready, tick)
    finally:
        service.close()


_HEARTBEAT_EVERY = 2.0


def heartbeat_key(service: OcspService) -> str:
    """The refresher's heartbeat in the store, one per set of CAs: responders for other CAs may
    share the store, and one's heartbeat must not stand for another's."""
    return "service.ocsp.refresher." + ",".join(sorted(service.responders))


def refresher_health(service: OcspService, max_silence: float, now: float) -> dict[str, Any]:
    """What the refresher's last heartbeat in the store says, judged: ``status`` is ``ok`` or
    ``degraded`` with the ``problems`` named."""
    text = service.store.get_meta(heartbeat_key(service))
    beat = json.loads(text) if text else None
    problems = []
    if beat is None:
        problems.append("the refresher has not reported yet")
    else:
        silent = now - float(beat["at"])
        if silent > max_silence:
            problems.append(f"the refresher has been silent for {silent:.0f} s (limit {max_silence:g} s)")
        if beat.get("failing_since") is not None:
            # Why it fails is in the log, not here: this answer is on the public port.
            problems.append(f"the refresher has been failing for {now - float(beat['failing_since']):.0f} s; "
                            "see the responder's log")
    store_seq = service.store.status_seq()
    applied = int(beat["applied_seq"]) if beat else 0
    shown = {k: beat.get(k) for k in ("at", "applied_seq", "first_pass_done", "failing_since")} if beat else None
    return {"status": "degraded" if problems else "ok", "problems": problems,
            "refresher": shown, "store_status_seq": store_seq, "changes_not_yet_re_signed": max(0, store_seq - applied)}


class _Heartbeat:
    """The refresher's heartbeat in the store (``service.ocsp.refresher``): when it last ran,
    the status sequence it has re-signed up to, and since when it fails, if it does."""

    def __init__(self, service: OcspService):
        self.service = service
        self.failing_since: float | None = None
        self.error: str | None = None
        self.backlog = True  # the first pass of pre-produced responses is not finished
        self._last = 0.0

    def beat(self, applied_seq: int, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._last < _HEARTBEAT_EVERY:
            return
        self._last = time.monotonic()
        value = {"at": time.time(), "pid": os.getpid(), "applied_seq": applied_seq, "first_pass_done": not self.backlog,
                 "failing_since": self.failing_since, "error": self.error}
        try:
            self.service.store.put_meta(heartbeat_key(self.service), json.dumps(value))
            # The store's clock: a copy of the store (a standby) knows it holds every change made
            # before the beat it has replayed (OcspService.source_age).
            self.service.store.put_meta(CLOCK_META, f"{value['at']:.3f}")
        except Exception:  # noqa: BLE001 - a missed beat is what /health reports
            log.exception("the refresher could not write its heartbeat")

    def failed(self, exc: BaseException) -> None:
        if self.failing_since is None:
            self.failing_since = time.time()
        self.error = f"{type(exc).__name__}: {exc}"[:300]

    def recovered(self) -> None:
        self.failing_since = None
        self.error = None


def _run_refresher(open_service: Callable[[bool], OcspService], settings: ServerSettings, ready: int) -> None:
    stop = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    service = open_service(True)
    heart = _Heartbeat(service)
    try:
        service.refresh_responders(renew=True)
        preproduce = service.signing == "pre-produced"
        cursor = service.store.status_seq()  # read first: a change during the pass below is polled after it
        # The workers start now, before anything is written: what is not prepared yet they sign
        # for the request. At national scale the first pass is millions of signatures, and the
        # service must not wait for it (nor for a store another writer holds a moment).
        if ready >= 0:
            os.write(ready, b"r")
        heart.beat(cursor, force=True)

        def between() -> bool:
            """After each batch of the long pass: status changes first, then a heartbeat."""
            nonlocal cursor
            cursor = service.resign_changed(cursor)
            heart.beat(cursor)
            return not stop

        if preproduce:
            signed = service.prepare(between=between)
            if not stop and service.foreign_responses():
                log.info("the stored responses were signed by another responder identity; re-signing them all")
                signed += service.prepare(everything=True, between=between)
            log.info("pre-produced responses ready (%d signed now)", signed)
        heart.backlog = False
        heart.beat(cursor, force=True)
        next_maintenance = time.monotonic() + settings.maintenance_interval
        while not stop:
            time.sleep(settings.poll_interval)
            try:
                if preproduce:
                    cursor = service.resign_changed(cursor)
                else:
                    cursor = service.store.status_seq()  # nothing to re-sign: every answer is signed live
                if time.monotonic() >= next_maintenance:
                    next_maintenance = time.monotonic() + settings.maintenance_interval
                    service.refresh_responders(renew=True)
                    if preproduce:
                        service.prepare(between=between)
                if heart.failing_since is not None:
                    log.info("refreshing the pre-produced responses works again")
                heart.recovered()
            except Exception as exc:  # noqa: BLE001 - the store may be busy, a token may hiccup: try again
                log.exception("refreshing the pre-produced responses failed; retrying")
                heart.failed(exc)
                time.sleep(1.0)
            heart.beat(cursor, force=heart.failing_since is not None)
    finally:
        service.close()


def serve(open_service: Callable[[bool], OcspService], settings: ServerSettings, *,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Run the responder until SIGTERM or SIGINT: bind, start the refresher (which prepares the
    pre-produced responses in the background), start the workers, call ``on_ready(url)``, then
    restart any child that dies. Returns once every child has stopped.

    ``open_service(refresher)`` runs in each child after the fork and opens the store and the
    keys there; ``refresher`` is True in the one process that signs pre-produced responses and
    renews responder certificates (and so may need the CA keys), False in the workers.
    """
    socks = bind(settings, settings.workers)
    children = [Child("refresher", lambda ready: _run_refresher(open_service, settings, ready))] \
        if settings.refresher else []
    for slot in range(settings.workers):
        sock = socks[slot % len(socks)]
        children.append(Child("worker", lambda ready, sock=sock: _run_worker(open_service, sock, settings, ready),
                              sock))
    supervise(settings, socks, children, on_ready=on_ready)

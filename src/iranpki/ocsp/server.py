"""The OCSP responder over HTTP/1.1: RFC 6960 appendix A (GET and POST), RFC 9919 sections 5
(transport) and 6 (caching headers), RFC 9112 message framing. Written on asyncio at the
protocol level: the library imports no HTTP framework, and this path must be short.

Processes (scale is by processes: PKCS#11 login is per process, DESIGN.md)::

    supervisor   binds the port, forks the refresher and the workers, restarts any that dies,
      |          stops them all on SIGTERM or SIGINT
      +-- refresher   the only process that signs pre-produced responses: all due ones at start,
      |               then re-signs within a poll interval whenever a certificate's status changes
      |               (polling the store's status sequence), refreshes them before nextUpdate and
      |               renews the delegated responder certificate
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

import asyncio
import base64
import binascii
import contextlib
import ctypes
import errno
import hashlib
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_to_bytes

from ..errors import OcspError
from ..keys.base import SecretSource
from . import OcspService, Reply

__all__ = ["RememberedSecret", "ServerSettings", "serve"]

log = logging.getLogger("iranpki.ocsp")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    #: How often the refresher looks for status changes; a revocation is served within about
    #: twice this (the refresher's poll, then the workers' response cache).
    poll_interval: float = 0.2
    #: How often the refresher looks for responses near nextUpdate and new certificates, and
    #: renews the responder certificate; the workers reload it as often.
    maintenance_interval: float = 60.0
    max_request_bytes: int = 64 * 1024
    max_header_bytes: int = 8 * 1024
    request_timeout: float = 10.0
    keep_alive_timeout: float = 30.0
    max_connections: int = 4096  # per worker
    backlog: int = 1024
    stop_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 256:
            raise OcspError(f"{self.workers} workers is out of range; give 1 to 256 (one or two per core)")
        if not 0 <= self.port <= 65535:
            raise OcspError(f"port {self.port} is out of range; give 1 to 65535 (0: any free port)")

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


class RememberedSecret(SecretSource):
    """A secret source that asks ``source`` once per key and remembers the answer, so that the
    processes forked later open their keys without asking again (one prompt, not one per worker).
    Lives only in memory, like the keys it opens."""

    def __init__(self, source: SecretSource):
        super().__init__(what=source.what)
        self._source = source
        self._known: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"RememberedSecret({self._source!r})"

    def get(self, for_what: str) -> str:
        if for_what not in self._known:
            self._known[for_what] = self._source.get(for_what)
        return self._known[for_what]


# ---- HTTP -----------------------------------------------------------------------------------------

_REASONS = {400: "Bad Request", 405: "Method Not Allowed", 408: "Request Timeout", 413: "Content Too Large",
            431: "Request Header Fields Too Large", 501: "Not Implemented", 505: "HTTP Version Not Supported"}
_CONTENT_TYPE = b"Content-Type: application/ocsp-response\r\n"
_NO_STORE = b"Cache-Control: no-cache, no-store, must-revalidate\r\n"
_CLOSE = b"Connection: close\r\n\r\n"
_KEEP_10 = b"Connection: keep-alive\r\n\r\n"  # an HTTP/1.0 client keeps the connection only when told


def _error(status: int, note: str) -> bytes:
    body = f"{status} {_REASONS[status]}: {note}\n".encode()
    allow = b"Allow: GET, HEAD, POST\r\n" if status == 405 else b""
    return (b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%s%s%s"
            % (status, _REASONS[status].encode(), len(body), allow, _CLOSE, body))


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


class _Worker:
    """What the connections of one worker share: the service, the response cache, the clock."""

    def __init__(self, service: OcspService, settings: ServerSettings):
        self.service = service
        self.settings = settings
        self.connections: set[_Connection] = set()
        # Whole HTTP answers to pre-produced requests, keyed by the request's bytes (POST body or
        # GET target): a hit skips parsing, the store and formatting. An entry lives one poll
        # interval, so a status change shows no later than the refresher's poll plus this.
        self.hot: dict[bytes, tuple[float, bytes, bytes]] = {}
        self.hot_ttl = settings.poll_interval
        self._second = 0
        self._date = b""

    def date(self, now: float) -> bytes:
        second = int(now)
        if second != self._second:
            self._second = second
            self._date = formatdate(second, usegmt=True).encode()
        return self._date

    def answer(self, key: bytes, request: bytes, now: float) -> tuple[bytes, bytes]:
        """The HTTP head (without the Connection line and the blank line) and body for an OCSP
        request that missed the response cache."""
        reply = self.service.respond(request)
        out = self.format(reply, now)
        if reply.cacheable:
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

    def sweep(self) -> None:
        """Close connections whose client stalls mid-request or idles past the keep-alive time,
        and drop expired cached answers."""
        wall = time.time()
        self.hot = {k: v for k, v in self.hot.items() if v[0] > wall}
        now = time.monotonic()
        for conn in [c for c in self.connections if c.deadline < now]:
            conn.expire()


class _Connection(asyncio.Protocol):
    """One client connection: HTTP/1.1 requests in order (pipelined ones too), keep-alive."""

    __slots__ = ("worker", "transport", "buf", "deadline", "continued")

    def __init__(self, worker: _Worker):
        self.worker = worker
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.deadline = 0.0
        self.continued = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        w = self.worker
        if len(w.connections) >= w.settings.max_connections:
            transport.close()  # at capacity: the client retries, or another worker takes it
            return
        w.connections.add(self)
        self.deadline = time.monotonic() + w.settings.request_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.connections.discard(self)
        self.transport = None

    def pause_writing(self) -> None:
        # A client that sends requests but does not read the answers: stop reading its requests.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def expire(self) -> None:
        if self.transport is not None:
            if self.buf:
                self.transport.write(_error(408, "the request did not arrive in time"))
            self.transport.close()
            self.worker.connections.discard(self)

    def _fail(self, status: int, note: str) -> None:
        assert self.transport is not None
        self.transport.write(_error(status, note))
        self.transport.close()
        self.buf = b""

    def _wait(self, buf: bytes) -> None:
        """Keep the start of a request until the rest arrives; the whole of it has
        ``request_timeout`` from its first byte, however slowly the bytes trickle in."""
        if not self.buf:
            self.deadline = time.monotonic() + self.worker.settings.request_timeout
        self.buf = buf

    def data_received(self, data: bytes) -> None:
        try:
            self._feed(self.buf + data if self.buf else data)
        except Exception:  # noqa: BLE001 - a bug of ours costs this connection, never the worker
            log.exception("an HTTP request could not be handled")
            if self.transport is not None:
                self._fail(400, "the request could not be handled")

    def _feed(self, buf: bytes) -> None:
        w = self.worker
        settings = w.settings
        while self.transport is not None:
            if buf[:2] == b"\r\n":
                buf = buf.lstrip(b"\r\n")  # RFC 9112 2.2: empty lines before a request are ignored
            end = buf.find(b"\r\n\r\n")
            if end < 0 or end > settings.max_header_bytes:
                if end > settings.max_header_bytes or len(buf) > settings.max_header_bytes:
                    return self._fail(431, f"the request head exceeds {settings.max_header_bytes} bytes")
                return self._wait(buf)
            line, _, fields = buf[:end].partition(b"\r\n")
            parts = line.split(b" ")
            if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
                if len(parts) == 3 and parts[2].startswith(b"HTTP/"):
                    return self._fail(505, "this responder speaks HTTP/1.1 and HTTP/1.0")
                return self._fail(400, "the request line is not METHOD TARGET HTTP/1.x")
            method, target, version = parts
            length = 0
            keep = version != b"HTTP/1.0"
            expect = False
            if fields:
                seen_length: bytes | None = None
                for field in fields.split(b"\r\n"):
                    name, colon, value = field.partition(b":")
                    if not colon or not name or name != name.strip():
                        # RFC 9112 5.1: no whitespace around a field name (a request-smuggling trick).
                        return self._fail(400, f"the header line {field[:60]!r} is not NAME: VALUE")
                    name = name.lower()
                    if name == b"content-length":
                        value = value.strip()
                        if not value.isdigit() or (seen_length is not None and value != seen_length):
                            return self._fail(400, "the Content-Length is not one decimal number")
                        seen_length = value
                        length = int(value)
                    elif name == b"connection":
                        tokens = value.lower()
                        if b"close" in tokens:
                            keep = False
                        elif b"keep-alive" in tokens:
                            keep = True
                    elif name == b"transfer-encoding":
                        return self._fail(501, "send the request with a Content-Length, not a transfer coding")
                    elif name == b"expect":
                        expect = b"100-continue" in value.lower()
            if length > settings.max_request_bytes:
                return self._fail(413, f"an OCSP request is at most {settings.max_request_bytes} bytes "
                                       f"(this one says {length})")
            total = end + 4 + length
            if len(buf) < total:
                if expect and not self.continued:
                    self.continued = True
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return self._wait(buf)
            body = buf[end + 4:total]
            buf = buf[total:]
            self.continued = False
            if method == b"POST":
                key = body
            elif method == b"GET" or method == b"HEAD":
                key = b"G" + target
            else:
                return self._fail(405, "an OCSP responder answers GET and POST (RFC 6960 A.1)")
            now = time.time()
            hit = w.hot.get(key)
            if hit is not None and hit[0] > now:
                head, payload = hit[1], hit[2]
            else:
                head, payload = w.answer(key, body if method == b"POST" else _get_request(target), now)
            if method == b"HEAD":
                payload = b""
            if not keep:
                self.transport.write(head + _CLOSE + payload)
                self.transport.close()
                self.buf = b""
                return
            self.transport.write(head + (_KEEP_10 if version == b"HTTP/1.0" else b"\r\n") + payload)
            self.deadline = time.monotonic() + settings.keep_alive_timeout
            self.buf = b""
            if not buf:
                return


# ---- processes ------------------------------------------------------------------------------------

class _Stop(Exception):
    """SIGTERM or SIGINT reached the supervisor."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signal.Signals(signum).name)


def _die_with_parent() -> None:
    """Linux: have the kernel send SIGTERM to this child when the supervisor dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _bind(settings: ServerSettings, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one port with SO_REUSEPORT, or one shared socket without it."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    reuseport = hasattr(socket, "SO_REUSEPORT")
    socks: list[socket.socket] = []
    port = settings.port
    try:
        # A first bind without SO_REUSEPORT fails if anyone listens there already, even another
        # responder that set SO_REUSEPORT itself: never share a port by accident.
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((settings.host, port))
            port = probe.getsockname()[1]
        for _ in range(count if reuseport else 1):
            s = socket.socket(family, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuseport:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind((settings.host, port))
            s.listen(settings.backlog)
            s.setblocking(False)
    except OSError as exc:
        for s in socks:
            s.close()
        hint = "choose another --port or stop what listens there" if exc.errno == errno.EADDRINUSE else \
            "check --host (an address of this machine) and --port"
        raise OcspError(f"cannot listen on {settings.host}:{port}: {exc.strerror}; {hint}") from None
    return socks


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (a dependency of iranpki): accepting, reading and
    closing a connection costs it a fraction of what the pure-Python loop costs, and with one
    connection per request, as most OCSP clients make, that is most of a pre-produced answer."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _run_worker(open_service: Callable[[bool], OcspService], sock: socket.socket, settings: ServerSettings,
                ready: int) -> None:
    service = open_service(False)
    worker = _Worker(service, settings)
    loop = _new_loop()
    stopping = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stopping.done() or stopping.set_result(None))

    async def maintain() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            worker.sweep()
            if time.monotonic() - last >= settings.maintenance_interval:
                last = time.monotonic()
                try:
                    service.refresh_responders(renew=False)
                except Exception:  # noqa: BLE001 - the current certificate serves on
                    log.exception("reloading the responder certificate failed")

    async def main() -> None:
        server = await loop.create_server(lambda: _Connection(worker), sock=sock, backlog=settings.backlog)
        task = asyncio.ensure_future(maintain())
        if ready >= 0:
            os.write(ready, b"w")
        await stopping
        task.cancel()
        server.close()
        for conn in list(worker.connections):
            if conn.transport is not None:
                conn.transport.close()
        await asyncio.sleep(0)

    try:
        loop.run_until_complete(main())
    finally:
        service.close()
        loop.close()


def _run_refresher(open_service: Callable[[bool], OcspService], settings: ServerSettings, ready: int) -> None:
    stop = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    service = open_service(True)
    try:
        service.refresh_responders(renew=True)
        preproduce = service.signing == "pre-produced"
        cursor = service.store.status_seq()  # read first: a change during the pass below is polled after it
        if preproduce:
            signed = service.prepare()
            if service.foreign_responses():
                log.info("the stored responses were signed by another responder identity; re-signing them all")
                signed += service.prepare(everything=True)
            log.info("pre-produced responses ready (%d signed now)", signed)
        if ready >= 0:
            os.write(ready, b"r")
        next_maintenance = time.monotonic() + settings.maintenance_interval
        while not stop:
            time.sleep(settings.poll_interval)
            try:
                if preproduce:
                    cursor = service.resign_changed(cursor)
                if time.monotonic() >= next_maintenance:
                    next_maintenance = time.monotonic() + settings.maintenance_interval
                    service.refresh_responders(renew=True)
                    if preproduce:
                        service.prepare()
            except Exception:  # noqa: BLE001 - the store may be busy, a token may hiccup: try again
                log.exception("refreshing the pre-produced responses failed; retrying")
                time.sleep(1.0)
    finally:
        service.close()


def _fork(role: str, body: Callable[[], None], keep: list[socket.socket]) -> int:
    pid = os.fork()
    if pid:
        return pid
    # The child: never returns into the caller's stack (pytest, click), and leaves by _exit.
    code = 1
    try:
        _die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which stops us
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for s in keep:
            s.close()
        body()
        code = 0
    except BaseException:  # noqa: BLE001 - report, then leave without running the parent's code
        log.exception("the OCSP %s process %d failed", role, os.getpid())
    finally:
        logging.shutdown()
        os._exit(code)


def serve(open_service: Callable[[bool], OcspService], settings: ServerSettings, *,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Run the responder until SIGTERM or SIGINT: bind, start the refresher and wait until the
    pre-produced responses exist, start the workers, call ``on_ready(url)``, then restart any
    child that dies. Returns once every child has stopped.

    ``open_service(refresher)`` runs in each child after the fork and opens the store and the
    keys there; ``refresher`` is True in the one process that signs pre-produced responses and
    renews responder certificates (and so may need the CA keys), False in the workers.
    """
    socks = _bind(settings, settings.workers)
    port = socks[0].getsockname()[1]
    url = f"http://{settings.url_host}:{port}"
    read_fd, write_fd = os.pipe()
    roles: dict[int, tuple[str, int]] = {}  # pid -> (role, worker slot)
    started: dict[int, float] = {}
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def start(role: str, slot: int, ready: int) -> None:
        if role == "refresher":
            pid = _fork(role, lambda: _run_refresher(open_service, settings, ready), socks)
        else:
            sock = socks[slot % len(socks)]
            pid = _fork(role, lambda: _run_worker(open_service, sock, settings, ready),
                        [s for s in socks if s is not sock])
        roles[pid] = (role, slot)
        started[pid] = time.monotonic()

    try:
        start("refresher", 0, write_fd)
        _await_ready(read_fd, roles, 1)
        for slot in range(settings.workers):
            # One at a time: children inherit the supervisor's open PKCS#11 token files, file
            # offsets included, and SoftHSM2 lost tokens when two of them re-initialised the
            # module at once. Once initialised, each child uses files of its own.
            start("worker", slot, write_fd)
            _await_ready(read_fd, roles, 1)
        os.close(write_fd)
        write_fd = -1
        if on_ready is not None:
            on_ready(url)
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid not in roles:
                continue
            role, slot = roles.pop(pid)
            lived = time.monotonic() - started.pop(pid)
            log.error("the OCSP %s process %d stopped (%s); starting another", role, pid, _describe(status))
            if lived < 5.0:
                time.sleep(1.0)  # one that fails at once would fail again at once: do not spin
            start(role, slot, -1)
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop_all(roles, settings.stop_timeout)
        for s in socks:
            s.close()
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _await_ready(read_fd: int, roles: dict[int, tuple[str, int]], count: int) -> None:
    """Wait for ``count`` readiness bytes; a child that exits first is an error (its log says why)."""
    got = 0
    while got < count:
        readable, _, _ = select.select([read_fd], [], [], 0.2)
        if readable:
            got += len(os.read(read_fd, count - got))
            continue
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid and pid in roles:
            role, _ = roles.pop(pid)
            raise OcspError(f"the OCSP {role} process {_describe(status)} while starting; the log above says why")


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _stop_all(roles: dict[int, tuple[str, int]], timeout: float) -> None:
    """SIGTERM every child, wait up to ``timeout`` seconds, then SIGKILL the ones left."""
    for pid in roles:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while roles and time.monotonic() < deadline:
        for pid in list(roles):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                roles.pop(pid)
        if roles:
            time.sleep(0.05)
    for pid in list(roles):
        log.warning("the OCSP %s process %d did not stop in %g s; killing it", roles[pid][0], pid, timeout)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        roles.pop(pid)

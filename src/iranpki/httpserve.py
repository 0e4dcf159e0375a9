"""HTTP/1.1 for iranpki's services (the OCSP responder, the time-stamp authority): RFC 9112
message framing (Content-Length bodies, keep-alive, pipelining, ``Expect: 100-continue``), written
on asyncio at the protocol level, and the processes that serve it. The library imports no HTTP
framework, and this path must be short.

Processes (scale is by processes: PKCS#11 login is per process, docs/architecture.md)::

    supervisor   binds the port, forks the children, restarts any that dies,
      |          stops them all on SIGTERM or SIGINT
      +-- ...      service-specific children (the OCSP refresher)
      +-- worker x N  answer HTTP; each opens its own store connection and key after the fork

Each worker listens on its own socket bound with SO_REUSEPORT, so the kernel spreads connections
over the workers; the supervisor keeps every socket open, so connections that arrive while a
worker restarts wait in its queue instead of being refused.

What a client can do wrong never costs more than its own connection: heads over
``max_header_bytes`` and bodies over ``max_request_bytes`` are refused with 431 and 413, a client
that stalls is dropped after ``request_timeout``, an idle kept-alive connection after
``keep_alive_timeout``. What a service answers (its own protocol errors included) is up to its
:class:`Site`; the services answer protocol errors with HTTP 200 and never with a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, ClassVar

from .errors import IranPkiError
from .keys.base import SecretSource
from .keys.reference import SecretKind

__all__ = ["Child", "HttpSettings", "RememberedSecret", "Site", "bind", "run_worker", "supervise"]

log = logging.getLogger("iranpki.http")


@dataclass(frozen=True)
class HttpSettings:
    """Where and how a service listens. Subclasses name their error class and service."""

    #: The error raised for settings or a start that fail, and the service's name in messages.
    error: ClassVar[type[IranPkiError]] = IranPkiError
    service: ClassVar[str] = "HTTP"

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    max_request_bytes: int = 64 * 1024
    max_header_bytes: int = 8 * 1024
    request_timeout: float = 10.0
    keep_alive_timeout: float = 30.0
    max_connections: int = 4096  # per worker
    #: Open connections one client address may hold in one worker: idle connections from one
    #: address (9,000 of them once held every slot) must not lock out everyone else. A client
    #: behind a large NAT shares it; raise it where one address stands for many people.
    max_client_connections: int = 256
    backlog: int = 1024
    stop_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 256:
            raise self.error(f"{self.workers} workers is out of range; give 1 to 256 (one or two per core)")
        if not 0 <= self.port <= 65535:
            raise self.error(f"port {self.port} is out of range; give 1 to 65535 (0: any free port)")
        if not 1 <= self.max_client_connections <= self.max_connections:
            raise self.error(f"{self.max_client_connections} connections per client is out of range; give 1 to "
                             f"{self.max_connections}")

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
        self._kinds: dict[str, RememberedSecret] = {}

    def __repr__(self) -> str:
        return f"RememberedSecret({self._source!r})"

    def for_kind(self, kind: SecretKind) -> SecretSource:
        inner = self._source.for_kind(kind)
        if inner is self._source:
            return self
        if kind not in self._kinds:
            self._kinds[kind] = RememberedSecret(inner)
        return self._kinds[kind]

    def get(self, for_what: str) -> str:
        if for_what not in self._known:
            self._known[for_what] = self._source.get(for_what)
        return self._known[for_what]


# ---- HTTP -----------------------------------------------------------------------------------------

_REASONS = {400: "Bad Request", 405: "Method Not Allowed", 408: "Request Timeout", 413: "Content Too Large",
            431: "Request Header Fields Too Large", 501: "Not Implemented", 505: "HTTP Version Not Supported"}
CLOSE = b"Connection: close\r\n\r\n"
_KEEP_10 = b"Connection: keep-alive\r\n\r\n"  # an HTTP/1.0 client keeps the connection only when told


def error_reply(status: int, note: str, allow: bytes = b"GET, HEAD, POST") -> bytes:
    """A whole plain-text HTTP error answer that closes the connection."""
    body = f"{status} {_REASONS[status]}: {note}\n".encode()
    allowed = b"Allow: %s\r\n" % allow if status == 405 else b""
    return (b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%s%s%s"
            % (status, _REASONS[status].encode(), len(body), allowed, CLOSE, body))


class Site:
    """What the connections of one worker share: the answers, the clock's Date line, the
    connections themselves. A service subclasses it and implements :meth:`handle`."""

    #: The methods :meth:`handle` answers (the Allow line of a 405) and why others are refused.
    allow: ClassVar[bytes] = b"GET, HEAD, POST"
    refuse_note: ClassVar[str] = "this service answers GET and POST"
    #: How a request is named in the 413 note.
    what: ClassVar[str] = "a request"

    def __init__(self, settings: HttpSettings):
        self.settings = settings
        self.connections: set[Connection] = set()
        #: Open connections per client address.
        self.per_client: dict[str, int] = {}
        self._second = 0
        self._date = b""

    def date(self, now: float) -> bytes:
        second = int(now)
        if second != self._second:
            self._second = second
            self._date = formatdate(second, usegmt=True).encode()
        return self._date

    def handle(self, method: bytes, target: bytes, body: bytes, now: float) -> tuple[bytes, bytes] | None:
        """The HTTP head (status line and fields, without the Connection line and the blank line)
        and the body answering one request; None for a method the service does not answer (405)."""
        raise NotImplementedError

    def sweep(self) -> None:
        """Close connections whose client stalls mid-request or idles past the keep-alive time."""
        now = time.monotonic()
        for conn in [c for c in self.connections if c.deadline < now]:
            conn.expire()


def _client_of(address: str) -> str:
    """The client a connection counts against: its IPv4 address, or its IPv6 /64 (one site's
    subnet: a client holding a /64 must not get a slot per address)."""
    if ":" not in address:
        return address
    import ipaddress

    try:
        return str(ipaddress.IPv6Network((address.split("%", 1)[0], 64), strict=False))
    except ValueError:
        return address


class Connection(asyncio.Protocol):
    """One client connection: HTTP/1.1 requests in order (pipelined ones too), keep-alive."""

    __slots__ = ("site", "transport", "buf", "deadline", "continued", "client")

    def __init__(self, site: Site):
        self.site = site
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.deadline = 0.0
        self.continued = False
        self.client: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        w = self.site
        if len(w.connections) >= w.settings.max_connections:
            transport.close()  # at capacity: the client retries, or another worker takes it
            return
        peer = transport.get_extra_info("peername")
        client = _client_of(peer[0]) if isinstance(peer, tuple) and peer else None
        if client is not None:
            held = w.per_client.get(client, 0)
            if held >= w.settings.max_client_connections:
                transport.close()  # this address holds its share already
                return
            w.per_client[client] = held + 1
            self.client = client
        w.connections.add(self)
        self.deadline = time.monotonic() + w.settings.request_timeout

    def _release(self) -> None:
        """Forget this connection (once, however it ends)."""
        w = self.site
        w.connections.discard(self)
        if self.client is not None:
            left = w.per_client.get(self.client, 1) - 1
            if left > 0:
                w.per_client[self.client] = left
            else:
                w.per_client.pop(self.client, None)
            self.client = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
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
                self.transport.write(error_reply(408, "the request did not arrive in time"))
            # abort, not close: close waits for the write buffer to drain, and a client that sends
            # requests without reading the answers would keep its socket (and its slot) for good.
            self.transport.abort()
            self._release()

    def _fail(self, status: int, note: str) -> None:
        assert self.transport is not None
        self.transport.write(error_reply(status, note, self.site.allow))
        self.transport.close()
        self.buf = b""

    def _wait(self, buf: bytes) -> None:
        """Keep the start of a request until the rest arrives; the whole of it has
        ``request_timeout`` from its first byte, however slowly the bytes trickle in."""
        if not self.buf:
            self.deadline = time.monotonic() + self.site.settings.request_timeout
        self.buf = buf

    def data_received(self, data: bytes) -> None:
        try:
            self._feed(self.buf + data if self.buf else data)
        except Exception:  # noqa: BLE001 - a bug of ours costs this connection, never the worker
            log.exception("an HTTP request could not be handled")
            if self.transport is not None:
                self._fail(400, "the request could not be handled")

    def _feed(self, buf: bytes) -> None:
        w = self.site
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
                    return self._fail(505, "this server speaks HTTP/1.1 and HTTP/1.0")
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
                return self._fail(413, f"{w.what} is at most {settings.max_request_bytes} bytes "
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
            answer = w.handle(method, target, body, time.time())
            if answer is None:
                return self._fail(405, w.refuse_note)
            head, payload = answer
            if method == b"HEAD":
                payload = b""
            if not keep:
                self.transport.write(head + CLOSE + payload)
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


def bind(settings: HttpSettings, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one port with SO_REUSEPORT, or one shared socket without it."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    reuseport = hasattr(socket, "SO_REUSEPORT")
    socks: list[socket.socket] = []
    port = settings.port
    try:
        # A first bind without SO_REUSEPORT fails if anyone listens there already, even another
        # server that set SO_REUSEPORT itself: never share a port by accident.
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
        raise settings.error(f"cannot listen on {settings.host}:{port}: {exc.strerror}; {hint}") from None
    return socks


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (a dependency of iranpki): accepting, reading and
    closing a connection costs it a fraction of what the pure-Python loop costs, and with one
    connection per request, as most OCSP clients make, that is most of a cheap answer."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_worker(site: Site, sock: socket.socket, ready: int, tick: Callable[[], None] | None = None) -> None:
    """Serve ``sock`` with ``site`` until SIGTERM; write one byte to ``ready`` (unless -1) once
    accepting. Every second the site sweeps its connections, then ``tick`` runs (errors logged)."""
    settings = site.settings
    loop = _new_loop()
    stopping = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stopping.done() or stopping.set_result(None))

    async def maintain() -> None:
        while True:
            await asyncio.sleep(1.0)
            site.sweep()
            if tick is not None:
                try:
                    tick()
                except Exception:  # noqa: BLE001 - the worker serves on with what it has
                    log.exception("periodic maintenance of the %s worker failed", settings.service)

    async def main() -> None:
        server = await loop.create_server(lambda: Connection(site), sock=sock, backlog=settings.backlog)
        task = asyncio.ensure_future(maintain())
        if ready >= 0:
            os.write(ready, b"w")
        await stopping
        task.cancel()
        server.close()
        for conn in list(site.connections):
            if conn.transport is not None:
                conn.transport.close()
        await asyncio.sleep(0)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


@dataclass(frozen=True)
class Child:
    """One process the supervisor keeps running: ``body(ready_fd)`` runs after the fork and writes
    one byte to ``ready_fd`` when ready (-1 after a restart: nobody waits then). ``sock`` is the
    listening socket it keeps; the others are closed in it."""

    role: str
    body: Callable[[int], None]
    sock: socket.socket | None = None


def _fork(service: str, child: Child, socks: Sequence[socket.socket], ready: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    # The child: never returns into the caller's stack (pytest, click), and leaves by _exit.
    code = 1
    try:
        _die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which stops us
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for s in socks:
            if s is not child.sock:
                s.close()
        child.body(ready)
        code = 0
    except BaseException:  # noqa: BLE001 - report, then leave without running the parent's code
        log.exception("the %s %s process %d failed", service, child.role, os.getpid())
    finally:
        logging.shutdown()
        os._exit(code)


def supervise(settings: HttpSettings, socks: list[socket.socket], children: Sequence[Child], *,
              on_ready: Callable[[str], None] | None = None) -> None:
    """Start ``children`` one by one, each once the one before is ready, call ``on_ready(url)``,
    then restart any child that dies, until SIGTERM or SIGINT. Returns once every child has
    stopped and the sockets are closed."""
    port = socks[0].getsockname()[1]
    url = f"http://{settings.url_host}:{port}"
    read_fd, write_fd = os.pipe()
    roles: dict[int, tuple[str, int]] = {}  # pid -> (role, index in children)
    started: dict[int, float] = {}
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def start(index: int, ready: int) -> None:
        child = children[index]
        pid = _fork(settings.service, child, socks, ready)
        roles[pid] = (child.role, index)
        started[pid] = time.monotonic()

    try:
        for index in range(len(children)):
            # One at a time: children inherit the supervisor's open PKCS#11 token files, file
            # offsets included, and SoftHSM2 lost tokens when two of them re-initialised the
            # module at once. Once initialised, each child uses files of its own.
            start(index, write_fd)
            _await_ready(settings, read_fd, roles)
        os.close(write_fd)
        write_fd = -1
        if on_ready is not None:
            on_ready(url)
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid not in roles:
                continue
            role, index = roles.pop(pid)
            lived = time.monotonic() - started.pop(pid)
            log.error("the %s %s process %d stopped (%s); starting another", settings.service, role, pid,
                      _describe(status))
            if lived < 5.0:
                time.sleep(1.0)  # one that fails at once would fail again at once: do not spin
            start(index, -1)
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop_all(settings.service, roles, settings.stop_timeout)
        for s in socks:
            s.close()
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _await_ready(settings: HttpSettings, read_fd: int, roles: dict[int, tuple[str, int]]) -> None:
    """Wait for one readiness byte; a child that exits first is an error (its log says why)."""
    while True:
        readable, _, _ = select.select([read_fd], [], [], 0.2)
        if readable and os.read(read_fd, 1):
            return
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid and pid in roles:
            role, _ = roles.pop(pid)
            raise settings.error(f"the {settings.service} {role} process {_describe(status)} while starting; "
                                 "the log above says why")


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _stop_all(service: str, roles: dict[int, tuple[str, int]], timeout: float) -> None:
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
        log.warning("the %s %s process %d did not stop in %g s; killing it", service, roles[pid][0], pid, timeout)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        roles.pop(pid)

"""OCSP responses served per second: `iranpki ocsp serve` against `openssl ocsp` on the same CA.

One run builds one workspace (a root and a level-1 intermediate CA with a software RSA-2048 key,
``--certs`` certificates, one in ten revoked), writes the same certificates as an openssl
``index.txt``, and puts the same closed-loop load on each responder in turn:

- ``openssl ocsp -index ... -port``: the anchor. It signs every response; single-threaded;
  ``openssl -multi N`` is a second anchor line with N responder processes;
- ``iranpki ocsp serve --signing pre-produced``: responses signed ahead of the request;
- ``iranpki ocsp serve --signing on-demand``: every response signed when it is asked for.

The load is ``wrk`` (C, so that the load generator, which shares the cores with the server, costs
little): ``--connections`` connections for ``--duration`` seconds, each sending the next request
as soon as the answer is in, POST application/ocsp-request (SHA-1 CertID, no nonce), one request
for each of the ``--certs`` certificates (100,000 by default), each wrk thread walking them from a
random start: the responder answers a different certificate nearly every time, as a national
responder does, and no in-process cache can hold the answers. Two modes:

- keep-alive:      HTTP/1.1 persistent connections, ``Connection: keep-alive`` said explicitly;
- per-connection:  ``Connection: close``, so a new TCP connection for every request.

wrk reconnects whenever a server does not keep the connection: openssl 3.0 never does (it answers
HTTP/1.0 and closes), so its keep-alive figure is one connection per request as well; the notes
under the table say so, from a probe of each server. What openssl 3.0 does hang on is a client
that connects and closes without sending a request (openssl#31129): it then spins on that
connection and answers no one. wrk's own start-up test connection is such a client, so the wrk
script skips it; and every load ends with a few such connections, so each server is started
afresh for each mode. openssl has no bind address (it listens on [::]); where the machine allows
it (unshare), the whole run happens in a private network namespace with loopback only.

Each responder is checked before and after its load with the openssl client (a good certificate
is good and ``Response verify OK``, a revoked one is revoked); a responder that fails the first
check is not measured, and the run ends with status 1 and a FAILED line.
A measurement with more than 1% errors (non-2xx; "ocsp": a 2xx whose OCSPResponse is not
successful, e.g. tryLater; socket errors; timeouts) is shown but is not a valid throughput, and no
ratio is drawn from it.

One more row, labelled as such, measures the best case of the pre-produced responder: the same
``--hot`` (8) requests over and over, answered from the workers' in-process cache.

openssl ocsp is one process on one core; iranpki runs ``--workers`` processes and a refresher.
Beside the totals, each row gives its rate per core (requests per second of the server's own CPU
time, measured from /proc), and the ratios are given both ways.

Aims (the OCSP issue): iranpki pre-produced at least 5 times openssl's throughput; iranpki
on-demand not slower than openssl.

    .venv/bin/python benchmarks/ocsp.py [--duration 10] [--connections 16] [--workers 2] [--rounds 1] [--certs 100000]
    .venv/bin/python benchmarks/ocsp.py --duration 1 --connections 2 --certs 20     # smoke
    .venv/bin/python benchmarks/ocsp.py --store postgresql     # the responders reading PostgreSQL
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from iranpki.ca import IssueRequest, parse_subject
from iranpki.keys import PASSPHRASE_ENV, KeySpec
from iranpki.store import Reason
from iranpki.workspace import Workspace

from _proc import group_cpu_seconds  # benchmarks/_proc.py: the scripts run from this folder

IRANPKI = shutil.which("iranpki", path=str(Path(sys.executable).parent)) or shutil.which("iranpki") or "iranpki"
HOST = "127.0.0.1"
CA_NAME = "bench-l1"
#: Reasons that openssl's index.txt knows by the same name (its list lacks privilegeWithdrawn, aACompromise).
REASONS = (Reason.keyCompromise, Reason.superseded, Reason.affiliationChanged, Reason.cessationOfOperation)
HOT_REQUESTS = 8  # the labelled best case: distinct requests the hot-cache row rotates through
START_TIMEOUT = 60.0  # seconds a responder may take to say it listens (pre-producing included)
STOP_TIMEOUT = 5.0
CHECK_TIMEOUT = 10  # seconds for the openssl client before the load
AFTER_TIMEOUT = 3  # and after it (openssl is often stuck by then; see measure)
NETNS_ENV = "IRANPKI_OCSP_BENCH_NETNS"
MAX_ERROR_SHARE = 0.01  # above this share of errors, a rate is not a valid throughput
MODES = ("keep-alive", "per-connection")
HOT = "keep-alive, hot"  # the labelled best case: HOT_REQUESTS requests over and over
AIMS = {"pre-produced": 5.0, "on-demand": 1.0}


# ---- the workspace and openssl's view of it ---------------------------------------------------

@dataclass
class Setup:
    base: Path
    home: Path
    passphrase: str
    ca_pem: Path
    root_pem: Path
    ca_key: Path  # unencrypted, for openssl only, inside the temporary folder
    index: Path
    good: Path  # a valid certificate, for the correctness check
    revoked: Path
    requests: Path  # one OCSP request per certificate, each as 2 length octets and its DER
    hot: Path  # HOT_REQUESTS of them, for the hot-cache row
    probe_request: bytes = b""


def _asn1_time(when: datetime) -> str:
    """openssl index.txt time: UTCTime before 2050, GeneralizedTime from then on (RFC 5280 4.1.2.5)."""
    when = when.astimezone(timezone.utc)
    return when.strftime("%y%m%d%H%M%SZ") if when.year < 2050 else when.strftime("%Y%m%d%H%M%SZ")


def _index_serial(serial: int) -> str:
    """The serial as openssl looks it up in index.txt: BN_bn2hex, upper-case whole bytes."""
    text = f"{serial:X}"
    return "0" + text if len(text) % 2 else text


def _index_subject(cert: x509.Certificate) -> str:
    return "".join(f"/{a.rfc4514_attribute_name}={a.value}" for a in cert.subject)


def build_setup(base: Path, certs: int, store: str | None = None) -> Setup:
    """A workspace with a level-1 CA (software RSA-2048 key), ``certs`` certificates, one in ten
    revoked; its store a SQLite file, or the PostgreSQL database ``store`` names."""
    passphrase = secrets.token_urlsafe(18)
    home = base / "ws"
    ws = Workspace.init(home, repository_url="http://repo.bench.ir", ocsp_url=f"http://{HOST}", store=store)
    secret_env = os.environ.get(PASSPHRASE_ENV)
    os.environ[PASSPHRASE_ENV] = passphrase  # the library reads software key passphrases from here
    try:
        ws.generate_key(KeySpec.parse("p384"), label="root")
        ws.generate_key(KeySpec.parse("rsa2048"), label="ca")
        ws.create_root("root", "root", "C=IR,O=Bench,CN=Bench OCSP Root")
        ws.create_intermediate(CA_NAME, "root", 1, "ca", "C=IR,O=Bench,CN=Bench OCSP Level 1")
        ca = ws.open_ca(CA_NAME)
        subscriber = ec.generate_private_key(ec.SECP256R1()).public_key()
        issued = []
        for start in range(0, certs, 100):
            batch = [IssueRequest(parse_subject(f"C=IR,O=Bench,CN=Bench Subscriber {i}"), subscriber)
                     for i in range(start, min(certs, start + 100))]
            issued += ca.issue_many("tsa", batch)
        for n, cert in enumerate(issued[::10]):
            ws.revoke(cert.record.serial, REASONS[n % len(REASONS)].name)
        records = [ws.certificate(c.record.serial) for c in issued]
        # Signed once here, so that every start of the pre-produced responder finds them ready
        # (it listens at once, but is measured only once /health says its first pass is done).
        ws.prepare_ocsp([CA_NAME])
        ca_cert = ca.certificate
        root_der = ws.chain(CA_NAME)[-1]
        key = serialization.load_pem_private_key((home / "keys" / "ca.pem").read_bytes(), passphrase.encode())
        ws.close()
    finally:
        if secret_env is None:
            os.environ.pop(PASSPHRASE_ENV, None)
        else:
            os.environ[PASSPHRASE_ENV] = secret_env

    ossl = base / "openssl"
    ossl.mkdir()
    ca_pem, root_pem, ca_key, index = ossl / "ca.pem", ossl / "root.pem", ossl / "ca.key", ossl / "index.txt"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    root_pem.write_bytes(x509.load_der_x509_certificate(root_der).public_bytes(serialization.Encoding.PEM))
    fd = os.open(ca_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    lines = []
    for rec in records:
        cert = x509.load_der_x509_certificate(rec.certificate)
        if rec.revoked_at is None:
            status, revocation = "V", ""
        else:
            assert rec.reason is not None
            status, revocation = "R", f"{_asn1_time(rec.revoked_at)},{rec.reason.name}"
        lines.append("\t".join((status, _asn1_time(rec.not_after), revocation, _index_serial(rec.serial),
                                "unknown", _index_subject(cert))))
    index.write_text("\n".join(lines) + "\n")
    (ossl / "index.txt.attr").write_text("unique_subject = no\n")

    good = [r for r in records if r.revoked_at is None]
    bad = [r for r in records if r.revoked_at is not None]
    for name, rec in (("good", good[0]), ("revoked", bad[0])):
        (ossl / f"{name}.pem").write_bytes(x509.load_der_x509_certificate(rec.certificate)
                                           .public_bytes(serialization.Encoding.PEM))
    # The load: a request for every certificate, good and revoked, in a random order.
    order = list(records)
    random.Random(7).shuffle(order)

    def request_of(rec) -> bytes:  # noqa: ANN001 - a CertificateRecord
        return ocsp.OCSPRequestBuilder().add_certificate(x509.load_der_x509_certificate(rec.certificate), ca_cert,
                                                         hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)

    def write(path: Path, recs: list) -> Path:  # noqa: ANN001
        with open(path, "wb") as f:
            for rec in recs:
                body = request_of(rec)
                f.write(len(body).to_bytes(2, "big") + body)
        return path

    chosen = good[1:1 + HOT_REQUESTS - HOT_REQUESTS // 4] + bad[1:1 + HOT_REQUESTS // 4]
    return Setup(base, home, passphrase, ca_pem, root_pem, ca_key, index, ossl / "good.pem", ossl / "revoked.pem",
                 write(base / "requests.bin", order), write(base / "hot.bin", chosen), request_of(chosen[0]))


# ---- the responders ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A responder process in its own process group, so that its workers go with it (a group, not a
    session: openssl -multi calls setpgid(0, 0), which a session leader may not, and exits)."""

    name: str
    command: list[str]
    port: int
    env: dict[str, str] | None = None
    ready_text: str = ""  # the server prints a line with this once it listens
    grace: float = STOP_TIMEOUT  # how long SIGTERM may take before SIGKILL
    proc: subprocess.Popen[bytes] | None = None
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server's process group (its reaped children included)."""
        return group_cpu_seconds(self.proc.pid) if self.proc is not None else 0.0

    def _drain(self, stream, ready: threading.Event) -> None:  # noqa: ANN001 - a binary pipe
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            if len(self.output) < 200:
                self.output.append(line)
            if self.ready_text and self.ready_text in line:
                ready.set()

    def start(self) -> None:
        ready = threading.Event()
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env, process_group=0)
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._drain, args=(stream, ready), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the readers collect its last words
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before listening:\n"
                                   + "\n".join(self.output[-20:]))
            if ready.is_set():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen on port {self.port} within {START_TIMEOUT:g} s:\n"
                           + "\n".join(self.output[-20:]))

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL after STOP_TIMEOUT; never waits longer."""
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, self.grace), (signal.SIGKILL, STOP_TIMEOUT)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers that outlived their parent
        self.proc = None


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        server.start()
        yield server
    finally:
        server.stop()


def openssl_server(setup: Setup, workers: int) -> Server:
    port = free_port()
    cmd = ["openssl", "ocsp", "-index", str(setup.index), "-port", str(port), "-rsigner", str(setup.ca_pem),
           "-rkey", str(setup.ca_key), "-CA", str(setup.ca_pem), "-nmin", "60"]
    if workers > 1:
        cmd += ["-multi", str(workers)]
    # Ready when it prints its ACCEPT line, never by connecting: a client that connects and closes
    # without a request leaves openssl 3.0 spinning on that connection and deaf to everyone else
    # (openssl#31129, #23934). With -multi the parent ignores SIGTERM: a short grace, then SIGKILL.
    return Server(f"openssl -multi {workers}" if workers > 1 else "openssl", cmd, port,
                  ready_text="ACCEPT ", grace=1.0)


def first_pass_done(server: Server, timeout: float = 900.0) -> None:
    """Wait until the responder's /health says its refresher finished the first pass: the responder
    listens before it, and a measurement must not share the cores with it."""
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
        try:
            conn.request("GET", "/health")
            beat = json.loads(conn.getresponse().read()).get("refresher") or {}
            if beat.get("first_pass_done"):
                return
        except (OSError, ValueError):
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    raise RuntimeError(f"{server.name}: the pre-produced responses were not ready within {timeout:g} s")


def iranpki_server(setup: Setup, workers: int, signing: str) -> Server:
    port = free_port()
    cmd = [IRANPKI, "ocsp", "serve", "--home", str(setup.home), "--ca", CA_NAME, "--host", HOST, "--port", str(port),
           "--workers", str(workers), "--signing", signing]
    env = {**os.environ, PASSPHRASE_ENV: setup.passphrase}
    return Server(f"iranpki {signing}", cmd, port, env, ready_text=f"listening on http://{HOST}:{port}")


def iranpki_serve_available() -> bool:
    try:
        out = subprocess.run([IRANPKI, "ocsp", "serve", "--help"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


# ---- checks -----------------------------------------------------------------------------------

def check_answers(setup: Setup, server: Server, certs: tuple[Path, ...] | None = None,
                  timeout: int = CHECK_TIMEOUT) -> None:
    """The openssl client finds the good certificate good and the revoked one revoked, verified to the root."""
    for cert in certs or (setup.good, setup.revoked):
        want = "good" if cert == setup.good else "revoked"
        cmd = ["openssl", "ocsp", "-issuer", str(setup.ca_pem), "-cert", str(cert), "-url", server.url,
               "-CAfile", str(setup.root_pem), "-no_nonce", "-timeout", str(timeout)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{server.name}: no OCSP answer for the {want} certificate within {timeout + 5} s") from None
        text = out.stdout + out.stderr
        if out.returncode != 0 or f"{cert}: {want}" not in out.stdout or "Response verify OK" not in text:
            raise RuntimeError(f"{server.name}: the {want} certificate was not reported {want} with a verified "
                               f"response ({' '.join(cmd)}):\n{text.strip()}")


def _post(body: bytes, connection: str) -> bytes:
    head = (f"POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/ocsp-request\r\n"
            f"Content-Length: {len(body)}\r\nConnection: {connection}\r\n\r\n")
    return head.encode() + body


def _read_response(sock: socket.socket) -> bytes | None:
    """One HTTP response's head (Content-Length framed, body read and dropped); None on timeout or EOF."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        while length is not None and len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            rest += chunk
        return head
    except OSError:
        return None


def _closed(sock: socket.socket) -> bool | None:
    """True: the server closed the connection; False: it sent more; None: still open after the timeout."""
    try:
        return not sock.recv(1)
    except TimeoutError:
        return None
    except OSError:
        return True  # reset


def probe_connections(server: Server, body: bytes, timeout: float = 3.0) -> list[str]:
    """How the server treats connections, in words (nothing when it behaves as HTTP/1.1 says).

    Every connection opened here sends a whole request first: one that closes without a request
    would leave openssl stuck (see openssl_server)."""
    notes = []
    with socket.create_connection((HOST, server.port), timeout=timeout) as s:
        s.sendall(_post(body, "close"))
        head = _read_response(s)
        if head is None:
            notes.append("no answer to a Connection: close request")
        elif (closed := _closed(s)) is not True:
            notes.append("sent bytes after answering Connection: close" if closed is False else
                         f"kept the connection open {timeout:g} s after answering Connection: close")
        elif head.startswith(b"HTTP/1.1") and b"connection: close" not in head.lower():
            notes.append("closes after Connection: close without saying so in an HTTP/1.1 response "
                         "(RFC 9112 9.6: a client may then count a read error)")
    with socket.create_connection((HOST, server.port), timeout=timeout) as a:
        a.sendall(_post(body, "keep-alive"))
        head = _read_response(a)
        if head is None:
            return [*notes, "no answer to a keep-alive request"]
        with socket.create_connection((HOST, server.port), timeout=timeout) as b:
            b.sendall(_post(body, "close"))  # a second client, while the first holds an idle connection
            if _read_response(b) is None:
                notes.append(f"a second client got no answer within {timeout:g} s while a first client held an "
                             "idle keep-alive connection (a worker per connection: clients beyond the workers wait)")
        a.sendall(_post(body, "keep-alive"))
        if _read_response(a) is None:
            first_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
            notes.append(f"no keep-alive: answers a keep-alive request with '{first_line}' and closes, so wrk "
                         "reconnects for every request in the keep-alive mode too")
    return notes


# ---- the load ---------------------------------------------------------------------------------

def write_lua(setup: Setup, mode: str, requests: Path | None = None) -> Path:
    """A wrk script: walks the requests of ``requests`` (default: one per certificate) from a random
    start in each thread; done() prints one JSON line with the results."""
    # HTTP/1.1 is persistent without the header; it is sent anyway, as many OCSP clients do, because
    # openssl's HTTP/1.0 server only keeps a connection open when the client asks in words.
    connection = "close" if mode == "per-connection" else "keep-alive"
    source = requests or setup.requests
    script = f"""-- generated by benchmarks/ocsp.py ({mode}, {source.name})
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/ocsp-request"
wrk.headers["Connection"] = "{connection}"
-- wrk's own resolve() test-connects to the server and closes without a request; that leaves
-- openssl ocsp 3.0 spinning on the dead connection and deaf to everyone else (openssl#31129).
function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup(host, service)
end
local reqs = {{}}
local n = 0
unsuccessful = 0  -- global: done() reads it from each thread
function init(args)
  local f = assert(io.open("{source}", "rb"))
  local data = f:read("*a")
  f:close()
  local at = 1
  while at < #data do
    local len = data:byte(at) * 256 + data:byte(at + 1)
    reqs[#reqs + 1] = wrk.format("POST", "/", nil, data:sub(at + 2, at + 1 + len))
    at = at + 2 + len
  end
  math.randomseed(os.time() + tonumber(tostring({{}}):sub(8), 16) % 100000)
  n = math.random(#reqs)
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
-- An HTTP 200 may carry an OCSP error (tryLater, internalError, ...): count every answer that is
-- not OCSPResponse ::= SEQUENCE {{ responseStatus ENUMERATED successful(0), ... }} in DER.
function response(status, headers, body)
  if status > 399 then return end  -- wrk counts these itself
  local len = body and body:byte(2)
  local at = len and (len < 128 and 3 or len - 125)
  if not at or body:sub(at, at + 2) ~= "\\10\\1\\0" then unsuccessful = unsuccessful + 1 end
end
local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end
function done(summary, latency, requests)
  local e, bad = summary.errors, 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("unsuccessful") end
  io.write(string.format('WRKJSON {{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "ocsp": %d, "p50_us": %d, "p99_us": %d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, bad,
    latency:percentile(50), latency:percentile(99)))
end
"""
    path = setup.base / f"load-{mode}-{source.stem}.lua"
    path.write_text(script)
    return path


@dataclass
class Measurement:
    rate: float  # requests per second (2xx or not: wrk counts answered requests)
    p50_ms: float
    p99_ms: float
    requests: int
    errors: dict[str, int]
    tcp: dict[str, int] = field(default_factory=dict)  # TCP_TROUBLE counters that rose during the load
    server_cpu: float = 0.0  # % of one core: the server's processes, and wrk, during the load
    load_cpu: float = 0.0
    idle_cpu: float = 0.0  # % of one core left idle on the whole machine

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def valid(self) -> bool:
        return self.requests > 0 and self.error_count <= MAX_ERROR_SHARE * max(self.requests, 1)


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children: around a wrk run, wrk's own."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _idle_seconds() -> float:
    """Idle CPU seconds of the whole machine so far, summed over the cores (/proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")  # idle + iowait


def tcp_counters() -> dict[str, int]:
    """Linux TCP counters of this network namespace (a private one holds only the benchmark's traffic)."""
    out: dict[str, int] = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            return {}
        for head, values in zip(lines[::2], lines[1::2]):
            prefix, *names = head.split()
            out.update({f"{prefix}{n}": int(v) for n, v in zip(names, values.split()[1:])})
    return out


#: Counters that explain a long tail: each lost segment waits for a retransmission timeout (200 ms
#: at least on Linux), each listen-queue overflow drops a handshake that the client sends again.
TCP_TROUBLE = {"Tcp:RetransSegs": "TCP retransmissions", "TcpExt:ListenOverflows": "listen-queue overflows",
               "TcpExt:ListenDrops": "listen drops", "TcpExt:TCPSynRetrans": "SYN retransmissions"}


def run_wrk(server: Server, script: Path, duration: float, connections: int) -> Measurement:
    threads = max(1, min(2, connections))
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s", "--timeout", "2s",
           "-s", str(script), server.url]
    before, idle, started = tcp_counters(), _idle_seconds(), time.monotonic()
    server_cpu, load_cpu = server.cpu_seconds(), _children_cpu()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    wall = time.monotonic() - started
    server_cpu, load_cpu = server.cpu_seconds() - server_cpu, _children_cpu() - load_cpu
    idle = _idle_seconds() - idle
    after = tcp_counters()
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed against {server.name} ({' '.join(cmd)}):\n{out.stdout}\n{out.stderr}")
    r = json.loads(line.removeprefix("WRKJSON "))
    seconds = r["duration_us"] / 1e6
    errors = {k: r[k] for k in ("status", "ocsp", "connect", "read", "write", "timeout") if r[k]}
    tcp = {k: after[k] - before[k] for k in TCP_TROUBLE if k in after and k in before and after[k] > before[k]}
    return Measurement(r["requests"] / seconds if seconds else 0.0, r["p50_us"] / 1000, r["p99_us"] / 1000,
                       r["requests"], errors, tcp, 100 * server_cpu / wall, 100 * load_cpu / wall, 100 * idle / wall)


# ---- the run ----------------------------------------------------------------------------------

def _add(notes: dict[str, list[str]], name: str, text: str) -> None:
    if text not in notes.setdefault(name, []):
        notes[name].append(text)


def measure(make: Callable[[], Server], setup: Setup, scripts: dict[str, Path], args: argparse.Namespace,
            notes: dict[str, list[str]], failures: list[str], probe: bool,
            modes: tuple[str, ...] = MODES) -> dict[str, Measurement]:
    """Each mode on a freshly started server: check the answers, load it, check them again.

    A fresh server per mode because wrk ends a run with some connections open and no request
    sent on them, which leaves openssl stuck (see openssl_server) for whatever comes next."""
    out = {}
    for mode in modes:
        server = make()
        with running(server):
            try:
                if server.name.startswith("iranpki"):
                    first_pass_done(server)
                check_answers(setup, server)
            except RuntimeError as exc:  # wrong answers: no throughput is worth measuring
                failures.append("\n  ".join(str(exc).splitlines()[:3]))
                return out
            if probe and mode == MODES[0]:
                for text in probe_connections(server, setup.probe_request):
                    _add(notes, server.name, text)
            out[mode] = run_wrk(server, scripts[mode], args.duration, args.connections)
            try:
                check_answers(setup, server, certs=(setup.good,), timeout=AFTER_TIMEOUT)
            except RuntimeError as exc:
                if server.name.startswith("openssl"):
                    _add(notes, server.name, f"answered no more after each load (checked for {AFTER_TIMEOUT} s; "
                         "wrk's last connections closed before sending a request, openssl#31129); "
                         "restarted for each mode")
                else:
                    failures.append(f"{server.name}, after the {mode} load: {str(exc).splitlines()[0]}")
    return out


def _per_core(m: Measurement) -> float:
    """Requests per second of the server's own CPU time (100% = one core busy)."""
    return m.rate / (m.server_cpu / 100) if m.server_cpu > 0 else 0.0


def _sum(dicts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def _median(ms: list[Measurement]) -> Measurement:
    """Medians of rate and latencies over the rounds; errors and TCP counters summed."""
    return Measurement(statistics.median(m.rate for m in ms), statistics.median(m.p50_ms for m in ms),
                       statistics.median(m.p99_ms for m in ms), sum(m.requests for m in ms),
                       _sum([m.errors for m in ms]), _sum([m.tcp for m in ms]),
                       statistics.median(m.server_cpu for m in ms), statistics.median(m.load_cpu for m in ms),
                       statistics.median(m.idle_cpu for m in ms))


def _errors_text(m: Measurement) -> str:
    if not m.errors:
        return "0"
    return f"{m.error_count} (" + ", ".join(f"{k} {v}" for k, v in m.errors.items()) + ")"


def _rate_text(m: Measurement) -> str:
    if m.valid:
        return f"{m.rate:.0f}"
    if m.requests == 0 or m.errors.get("timeout"):
        return "n/a: hangs"
    return "n/a: errors"


def isolate_network() -> str:
    """Run this script again in a private network namespace where only loopback exists, if the
    machine allows it: openssl ocsp 3.0 has no bind address and listens on [::], every interface.
    Returns where the servers listen, for the report."""
    if os.environ.get(NETNS_ENV) == "1":
        return "servers on 127.0.0.1 in a private network namespace"
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare and ip:
        # As root, a network namespace alone (a private PostgreSQL cluster's files then still belong
        # to the postgres user); else a user namespace maps this user to root inside it.
        cmd = [unshare, "--net"] if os.geteuid() == 0 else [unshare, "--net", "--map-root-user"]
        try:
            ok = subprocess.run([*cmd, ip, "link", "set", "lo", "up"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            os.environ[NETNS_ENV] = "1"
            sys.stdout.flush()
            os.execv(unshare, [*cmd, "--", "sh", "-c", f'"{ip}" link set lo up && exec "$@"', "sh",
                               sys.executable, *sys.argv])
    return ("servers on the host network: iranpki on 127.0.0.1, openssl on [::] (all interfaces; it has no bind "
            "address and no private network namespace could be made)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per server and mode")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (closed loop)")
    parser.add_argument("--workers", type=int, default=2, help="iranpki workers, and openssl -multi")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; medians are reported when more than one")
    parser.add_argument("--certs", type=int, default=100_000,
                        help="certificates the CA issues (one in ten revoked), each asked about by the load")
    parser.add_argument("--keep", metavar="DIR", help="build in DIR (must not exist) and keep it")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the responders' store: the workspace's SQLite file, or PostgreSQL (a private cluster "
                             "started here, in the same network namespace)")
    args = parser.parse_args()
    if not 0 < args.duration <= 600 or not 1 <= args.connections <= 1000 or not 1 <= args.rounds <= 20 \
            or not 1 <= args.workers <= 64 or not 20 <= args.certs <= 1_000_000:
        parser.error("out of range: --duration 0..600 s, --connections 1..1000, --rounds 1..20, --workers 1..64, "
                     "--certs 20..1000000")
    for tool in ("openssl", "wrk"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")
    if args.keep and os.path.exists(args.keep):
        parser.error(f"--keep {args.keep}: the folder exists; give a new one")
    where = isolate_network()

    # SIGTERM unwinds like Ctrl-C, so every responder is stopped and the folder removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.keep:
        base = Path(args.keep).resolve()
        base.mkdir(parents=True)
    else:
        base = Path(tempfile.mkdtemp(prefix="iranpki-ocsp-bench-"))
    try:
        return run(base, args, where)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def run(base: Path, args: argparse.Namespace, where: str) -> int:
    if args.store == "sqlite":
        return run_on(base, args, where, None)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.hosts import new_cluster, remove_cluster

    cluster = new_cluster()  # after isolate_network: on this namespace's loopback
    os.environ["IRANPKI_STORE_PASSWORD"] = cluster.password  # the responders read it (never an argument)
    try:
        return run_on(base, args, where, cluster.new_database())
    finally:
        remove_cluster(cluster)


def run_on(base: Path, args: argparse.Namespace, where: str, store: str | None) -> int:
    started = time.perf_counter()
    setup = build_setup(base, args.certs, store)
    scripts = {mode: write_lua(setup, mode) for mode in MODES}
    scripts[HOT] = write_lua(setup, "keep-alive", setup.hot)
    have_serve = iranpki_serve_available()
    private = os.environ.get(NETNS_ENV) == "1"
    revoked = len(range(0, args.certs, 10))
    print(f"OCSP benchmark: {args.certs} certificates ({revoked} revoked), CA key RSA-2048 (software); "
          f"wrk closed loop, {args.connections} connections x {args.duration:g} s per server and mode, "
          f"{args.certs:,} distinct requests, one per certificate (SHA-1 CertID, no nonce); {args.rounds} round(s)"
          f"{', medians' if args.rounds > 1 else ''}; {os.cpu_count()} cores shared by server and load; "
          f"iranpki's store: {args.store}{' (a private cluster on loopback, fsync off)' if store else ''}; "
          f"{where}; set-up {time.perf_counter() - started:.1f} s. cpu: % of one core used during the load by "
          f"the server's processes and by wrk; idle: % of one core the machine left idle (other work on the "
          f"machine shows as the rest)", flush=True)

    makers: dict[str, Callable[[], Server]] = {"openssl": lambda: openssl_server(setup, 1)}
    if args.workers > 1:
        makers[f"openssl -multi {args.workers}"] = lambda: openssl_server(setup, args.workers)
    for signing in ("pre-produced", "on-demand"):
        makers[f"iranpki {signing}"] = lambda signing=signing: iranpki_server(setup, args.workers, signing)
    results: dict[tuple[str, str], list[Measurement]] = {}
    notes: dict[str, list[str]] = {}
    failures: list[str] = []
    for n in range(args.rounds):
        for name, make in makers.items():
            if name.startswith("iranpki") and not have_serve:
                _add(notes, name, "not measured: `iranpki ocsp serve` is not in this checkout")
                continue
            modes = (*MODES, HOT) if name == "iranpki pre-produced" else MODES
            for mode, m in measure(make, setup, scripts, args, notes, failures, probe=n == 0, modes=modes).items():
                results.setdefault((name, mode), []).append(m)
    final = {key: _median(ms) for key, ms in results.items()}

    print(f"\n{'server':<22}{'mode':<17}{'req/s':>10}{'per core':>10}{'p50 ms':>8}{'p99 ms':>8}{'cpu srv':>9}"
          f"{'cpu wrk':>9}{'idle':>7}  errors")
    for name in makers:
        for mode in (*MODES, HOT):
            m = final.get((name, mode))
            if m is None:
                if mode != HOT:
                    print(f"{name:<22}{mode:<17}{'n/a':>10}")
                continue
            raw = "" if m.valid else f"  [{m.rate:.0f} req/s answered, not a valid throughput]"
            print(f"{name:<22}{mode:<17}{_rate_text(m):>10}{_per_core(m):>10.0f}{m.p50_ms:>8.2f}{m.p99_ms:>8.2f}"
                  f"{m.server_cpu:>8.0f}%{m.load_cpu:>8.0f}%{m.idle_cpu:>6.0f}%  {_errors_text(m)}{raw}")
    print(f"note: '{HOT}': the same {HOT_REQUESTS} requests over and over, answered from the workers' in-process "
          "cache: the best case, not a national load")
    for name in makers:
        for text in notes.get(name, []):
            print(f"note: {name}: {text}")
        for mode in MODES:
            m = final.get((name, mode))
            if m is not None and m.tcp:
                print(f"note: {name}, {mode}: " + ", ".join(f"{v} {TCP_TROUBLE[k]}" for k, v in m.tcp.items())
                      + f" during the load{'' if private else ' (counters of the whole host)'}")
    for text in failures:
        print(f"FAILED: {text}")

    print()
    multi = f"openssl -multi {args.workers}"
    for signing, aim in AIMS.items():
        for mode in MODES:
            ours, theirs = final.get((f"iranpki {signing}", mode)), final.get(("openssl", mode))
            label = f"ratio iranpki {signing} / openssl, {mode}:"
            missing = [n for n, m in ((f"iranpki {signing}", ours), ("openssl", theirs)) if m is None or not m.valid]
            if ours is None or theirs is None or missing:
                print(f"{label:<52}{'n/a':>8}  (aim >= {aim:g}; no valid figure for {' and '.join(missing)})")
                continue
            ratio = ours.rate / theirs.rate
            digits = 3 if abs(ratio - aim) < 0.005 else 2  # never print 1.00x beside "NOT met"
            other = final.get((multi, mode))
            extra = f"; {ours.rate / other.rate:.2f}x {multi}" if other is not None and other.valid else ""
            per_core = _per_core(ours) / _per_core(theirs) if _per_core(theirs) else float("nan")
            print(f"{label:<52}{ratio:>7.{digits}f}x  (aim >= {aim:g}: {'met' if ratio >= aim else 'NOT met'}{extra}); "
                  f"per core {per_core:.2f}x")
    return 0 if have_serve and not failures else 1


if __name__ == "__main__":
    sys.exit(main())

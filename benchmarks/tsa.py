"""Time-stamps per second: `iranpki tsa serve` against the raw signing rate of the same key, and
against `openssl ts -reply` run the way shell-scripted TSAs run it (one process per request).

One run builds one workspace (a root (P-384) and a level-1 CA (P-256) with software keys, and a TSA key,
RSA-2048 by default, with its ``tsa``-profile certificate), then measures in turn:

- raw signing: ``--sign-count`` signatures in a loop in this process, through the same
  :class:`~iranpki.keys.Signer` the TSA uses (the SHA-256 signature over a signed-attributes-sized
  message): the ceiling a TSA that does nothing but sign would reach on one core;
- ``openssl ts -reply -queryfile Q -signer CERT -inkey KEY`` (a process per request, as CGI or
  shell TSAs do): ``--openssl-runs`` runs one after another, each timed;
- ``iranpki tsa serve --workers N`` under ``wrk`` (closed loop: ``--connections`` keep-alive
  connections for ``--duration`` seconds, each POSTing the next application/timestamp-query as
  soon as the reply is in); a reply whose PKIStatus is not granted counts as an error.

The server's first reply is checked with ``openssl ts -verify`` before the load; a run whose
check fails, or whose load has more than 1% errors, prints FAILED and ends with status 1.
Aim (issue 4): the served rate at least half the raw signing rate (the raw rate is one core;
the server has ``--workers`` processes, sharing the cores with wrk).

    .venv/bin/python benchmarks/tsa.py [--duration 10] [--connections 16] [--workers 2] [--key rsa2048]
    .venv/bin/python benchmarks/tsa.py --duration 1 --connections 2 --openssl-runs 5 --sign-count 200   # smoke
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from iranpki.keys import PASSPHRASE_ENV, KeySpec, SignatureScheme
from iranpki.policy import load_policy
from iranpki.tsa import check_reply, make_request
from iranpki.workspace import Workspace

from _proc import group_cpu_seconds  # benchmarks/_proc.py: the scripts run from this folder

IRANPKI = str(Path(sys.executable).parent / "iranpki")
HOST = "127.0.0.1"


def build(base: Path, key: str) -> dict[str, Path]:
    os.environ[PASSPHRASE_ENV] = os.environ.get(PASSPHRASE_ENV) or secrets.token_urlsafe(16)
    ws = Workspace.init(base / "ws", repository_url="http://127.0.0.1:1/repo")
    for label, spec in (("root", "p384"), ("gica1", "p256"), ("tsa", key)):
        ws.generate_key(KeySpec.parse(spec), label=label)
    ws.create_root("root", "root", "C=IR,O=I.R.Government,OU=Root CA,CN=TSA Benchmark Root")
    ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=GICA,CN=GICA Level 1 TSA Benchmark")
    signer = ws.open_key("tsa")
    pub = signer.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    issued = ws.issue("gica1", "tsa", public_key=pub, subject="C=IR,O=Benchmark,CN=Benchmark TSA")
    chain = ws.chain("gica1")
    ws.close()

    def pem(name: str, der_bytes: bytes) -> Path:
        path = base / name
        path.write_bytes(x509.load_der_x509_certificate(der_bytes).public_bytes(serialization.Encoding.PEM))
        return path

    query = base / "query.tsq"
    query.write_bytes(make_request(hashlib.sha256(b"benchmark").digest(), nonce=secrets.randbits(63), cert_req=True))
    return {"home": base / "ws", "key": base / "ws" / "keys" / "tsa.pem", "cert": pem("tsa.pem", issued.certificate.public_bytes(serialization.Encoding.DER)),
            "root": pem("root.pem", chain[1]), "chain": pem("chain.pem", chain[0]), "query": query, "base": base}


def raw_signing(home: Path, count: int) -> float:
    """Signatures per second of the TSA key in a loop, in this process (one core)."""
    ws = Workspace.open(home)
    signer = ws.open_key("tsa")
    scheme = SignatureScheme(hash=signer.key_spec.default_hash)
    message = os.urandom(160)  # about the size of the signed attributes of a token
    started = time.perf_counter()
    for _ in range(count):
        signer.sign(message, scheme)
    rate = count / (time.perf_counter() - started)
    signer.close()
    ws.close()
    return rate


def openssl_reply(files: dict[str, Path], runs: int) -> tuple[float, float, float]:
    """`openssl ts -reply` once per request (a process each): rate, p50 and p99 in ms."""
    policy = load_policy().status.tsa
    config = files["base"] / "openssl-tsa.cnf"
    config.write_text(f"""[ tsa ]
default_tsa = tsa1
[ tsa1 ]
serial = {files['base']}/openssl-serial
crypto_device = builtin
signer_digest = sha256
default_policy = {policy.policy_oid}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
""")
    (files["base"] / "openssl-serial").write_text("01\n")
    cmd = ["openssl", "ts", "-reply", "-config", str(config), "-queryfile", str(files["query"]),
           "-signer", str(files["cert"]), "-inkey", str(files["key"]), "-passin", f"env:{PASSPHRASE_ENV}",
           "-out", str(files["base"] / "openssl.tsr")]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        times.append(time.perf_counter() - started)
        if out.returncode != 0:
            raise RuntimeError(f"openssl ts -reply failed: {out.stderr}")
    check_reply((files["base"] / "openssl.tsr").read_bytes(), files["query"].read_bytes())
    return runs / sum(times), _percentile(times, 50) * 1000, _percentile(times, 99) * 1000


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@contextlib.contextmanager
def serving(files: dict[str, Path], workers: int) -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen([IRANPKI, "tsa", "serve", "--home", str(files["home"]), "--ca", "gica1", "--key", "tsa",
                             "--host", HOST, "--port", "0", "--workers", str(workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                url.append(m.group(1) + "/")
                ready.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while not ready.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("iranpki tsa serve did not start")
        yield url[0], proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def check_server(files: dict[str, Path], url: str) -> None:
    """One stamp from the server, verified by `openssl ts -verify` against the root."""
    request = urllib.request.Request(url, data=files["query"].read_bytes(),
                                     headers={"Content-Type": "application/timestamp-query"})
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - our own 127.0.0.1 server
        reply = answer.read()
    check_reply(reply, files["query"].read_bytes())
    tsr = files["base"] / "iranpki.tsr"
    tsr.write_bytes(reply)
    out = subprocess.run(["openssl", "ts", "-verify", "-queryfile", str(files["query"]), "-in", str(tsr),
                          "-CAfile", str(files["root"]), "-untrusted", str(files["chain"])],
                         capture_output=True, text=True, timeout=60)
    if "Verification: OK" not in out.stdout:
        raise RuntimeError(f"openssl ts -verify refused the server's token: {out.stdout}{out.stderr}")


def write_lua(files: dict[str, Path]) -> Path:
    body = "".join(f"\\{b}" for b in files["query"].read_bytes())
    script = files["base"] / "tsa.lua"
    script.write_text(f"""-- generated by benchmarks/tsa.py
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/timestamp-query"
wrk.body = "{body}"
refused = 0
-- TimeStampResp ::= SEQUENCE {{ status PKIStatusInfo ::= SEQUENCE {{ INTEGER granted(0) ... }} ... }}
function response(status, headers, body)
  if status > 399 then return end
  local len = body and body:byte(2)
  local at = len and (len < 128 and 3 or len - 125)
  if not at or body:sub(at, at + 4) ~= "\\48\\3\\2\\1\\0" then refused = refused + 1 end
end
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local e, bad = summary.errors, 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("refused") end
  io.write(string.format('WRKJSON {{"requests": %d, "duration_us": %d, "errors": %d, "refused": %d, ' ..
    '"p50_us": %d, "p99_us": %d}}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout, bad, latency:percentile(50), latency:percentile(99)))
end
""")
    return script


def run_wrk(url: str, script: Path, duration: float, connections: int) -> dict[str, float]:
    cmd = ["wrk", "-t", str(max(1, min(2, connections))), "-c", str(connections), "-d", f"{duration:g}s",
           "--timeout", "5s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({' '.join(cmd)}):\n{out.stdout}\n{out.stderr}")
    r = json.loads(line.removeprefix("WRKJSON "))
    seconds = r["duration_us"] / 1e6
    return {"rate": r["requests"] / seconds, "p50": r["p50_us"] / 1000, "p99": r["p99_us"] / 1000,
            "requests": r["requests"], "bad": r["errors"] + r["refused"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of wrk load")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--key", choices=["rsa2048", "p256"], default="rsa2048", help="the TSA key")
    parser.add_argument("--sign-count", type=int, default=3000, help="signatures in the raw signing loop")
    parser.add_argument("--openssl-runs", type=int, default=100, help="openssl ts -reply processes, one after another")
    args = parser.parse_args()
    if not (0.1 <= args.duration <= 600 and 1 <= args.connections <= 1024 and 1 <= args.workers <= 64
            and 1 <= args.sign_count <= 10**6 and 1 <= args.openssl_runs <= 10**4):
        parser.error("an argument is out of range")
    with tempfile.TemporaryDirectory(prefix="iranpki-tsa-bench-") as tmp:
        files = build(Path(tmp), args.key)
        raw = raw_signing(files["home"], args.sign_count)
        ossl, ossl50, ossl99 = openssl_reply(files, args.openssl_runs)
        with serving(files, args.workers) as (url, pgid):
            check_server(files, url)
            cpu, wall = group_cpu_seconds(pgid), time.monotonic()
            load = run_wrk(url, write_lua(files), args.duration, args.connections)
            cores = (group_cpu_seconds(pgid) - cpu) / (time.monotonic() - wall)
    print(f"TSA key: software {args.key}; {os.cpu_count()} cores; wrk {args.connections} keep-alive connections, "
          f"{args.duration:g} s; iranpki with {args.workers} workers")
    print(f"raw signing (one core, {args.sign_count} signatures): {raw:,.0f} signatures/s")
    print(f"openssl ts -reply (one process per request, {args.openssl_runs} runs): {ossl:,.1f} stamps/s, "
          f"p50 {ossl50:.1f} ms, p99 {ossl99:.1f} ms")
    print(f"iranpki tsa serve: {load['rate']:,.0f} stamps/s, p50 {load['p50']:.2f} ms, p99 {load['p99']:.2f} ms "
          f"({load['requests']:,} stamps, {load['bad']} errors)")
    per_core = load["rate"] / cores if cores > 0 else 0.0
    print(f"iranpki tsa serve used {cores:.2f} cores (its {args.workers} workers' CPU time over the load): "
          f"{per_core:,.0f} stamps/s per core")
    print(f"ratio iranpki / raw signing: {load['rate'] / raw:.2f} in total, {per_core / raw:.2f} per core "
          "(the raw rate is one core; aim: at least 0.5)")
    print(f"ratio iranpki / openssl ts -reply: {load['rate'] / ossl:.1f}")
    if load["bad"] > 0.01 * max(1, load["requests"]):
        print(f"FAILED: {load['bad']} of {load['requests']} stamps were errors or refusals")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The portals under load: `iranpki portal serve --portal repository --portal applicant` (cheroot,
8 threads, its own process) with ``--clients`` (32) concurrent clients in this process.

- anchor:  the stylesheet, through the same server and Django stack but no store: what a page
           costs before the portal does anything;
- status:  the repository's status page for a revoked certificate (a store lookup, rendered in
           Persian with Jalali dates);
- apply:   the applicant's form submitted: GET the form (CSRF cookie and token), POST it, the
           tracking code page (the engine registers a request in the store).

Each prints pages per second, p50 and p99, and the ratio to the anchor in the same run (both
sides use the same server and the same cores).

    .venv/bin/python benchmarks/portals.py [--clients 32] [--seconds 5]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iranpki.keys import KeySpec, SecretSource
from iranpki.workspace import Workspace

SUBJECT = "C=IR,SN=محمدی,GN=علی,serialNumber=0499370899,CN=علی محمدی"
FORM = {"profile": "personal-signature", "level": "1", "SN": "محمدی", "GN": "علی", "serialNumber": "0499370899",
        "CN": "علی محمدی", "key_location": "desk-token"}


def workspace(folder: Path) -> tuple[Path, str]:
    os.environ["IRANPKI_KEY_PASSPHRASE"] = "a bench passphrase, long enough"
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    ws = Workspace.init(folder / "ws", repository_url="http://repository.bench.ir")
    for label, spec in (("root", "p384"), ("gica1", "p256")):
        ws.generate_key(KeySpec.parse(spec), label=label, secret=secret)
    ws.create_root("root", "root", "C=IR,O=I.R.Government,OU=Root CA,CN=Bench Root", secret=secret)
    ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=GICA,CN=GICA Level 1 (bench)", secret=secret,
                           parent_secret=secret, purpose="signing")
    pub = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    issued = ws.issue("gica1", "personal-signature", subject=SUBJECT, public_key=pub, secret=secret)
    ws.revoke(issued.record.serial, "keyCompromise")
    rules = yaml.safe_load((Path(__file__).resolve().parent.parent / "policies" / "ra-rules.yaml").read_text())
    rules["lookup"]["registrations_per_window"] = 1_000_000  # one address registers as fast as it can
    (ws.home / "bench-rules.yaml").write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    config = yaml.safe_load((ws.home / "iranpki.yaml").read_text())
    (ws.home / "iranpki.yaml").write_text(yaml.safe_dump({**config, "ra_rules": "bench-rules.yaml"}))
    ws.close()
    return folder / "ws", f"{issued.record.serial:x}"


class Client:
    """One browser-like client: a kept-alive connection and its cookies."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> bytes:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if attempt == 2:
                    raise
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {response.status}")
        return data


def measure(clients: int, seconds: float, make: Callable[[], Client], step: Callable[[Client], None]
            ) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def loop(_: int) -> None:
        client = make()
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            step(client)
            with lock:
                latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(loop, range(clients)))
    return len(latencies) / (time.perf_counter() - started), sorted(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iranpki-bench-portals-") as tmp:
        home, revoked = workspace(Path(tmp))
        iranpki = str(Path(sys.executable).parent / "iranpki")
        proc = subprocess.Popen([iranpki, "portal", "serve", "--portal", "repository", "--portal", "applicant",
                                 "--home", str(home), "--port", "0", "--threads", "8"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                # every client is 127.0.0.1 here: the per-address lookup limit lifted
                                env={**os.environ, "IRANPKI_PORTALS_STATUS_PER_MINUTE": "100000000"})
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if not found:
                raise SystemExit(f"the portal did not start: {line}")
            port = int(found.group(1))

            def apply(c: Client) -> None:
                page = c.request("GET", "/applicant/register?profile=personal-signature&level=1").decode()
                token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
                body = urllib.parse.urlencode({**FORM, "csrfmiddlewaretoken": token}).encode()
                done = c.request("POST", "/applicant/register", body, {
                    "Content-Type": "application/x-www-form-urlencoded", "Origin": f"http://127.0.0.1:{port}"})
                if b'id="tracking-code"' not in done:
                    raise RuntimeError("no tracking code in the answer")

            results = {}
            for name, step in (("anchor", lambda c: c.request("GET", "/static/portal.css")),
                               ("status", lambda c: c.request("GET", f"/status?serial={revoked}")),
                               ("apply", apply)):
                results[name] = measure(args.clients, args.seconds, lambda: Client(port), step)

            def q(values: list[float], at: float) -> float:
                return values[min(len(values) - 1, int(at * len(values)))] * 1000

            anchor = results["anchor"][0]
            labels = {"anchor": "stylesheet (anchor)", "status": "repository status page", "apply": "applicant form submitted"}
            for name, (rate, lat) in results.items():
                ratio = "" if name == "anchor" else f"   ratio to the anchor {rate / anchor:.2f}"
                print(f"{labels[name]:26} {rate:8.1f} /s   p50 {q(lat, 0.5):7.1f} ms   p99 {q(lat, 0.99):7.1f} ms{ratio}")
            print(f"({args.clients} clients, {args.seconds} s each, one server process with 8 threads on "
                  f"{os.cpu_count()} cores)")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()

"""The cost of the registration layer: full issuances through the RA engine against the same
issuances straight through the CA engine, in one run, in alternating rounds.

- direct:  ``CertificateAuthority.issue`` for a CSR (build_request with the subject given): the
           anchor, what ``iranpki cert issue`` does;
- ra:      the whole path of one request through ``iranpki.ra``: register, receive at the desk,
           proof with one document scan, bind the CSR, approve, and the CA side's worker issuing
           it (each step a checked transition with its request and audit events, in one SQLite
           transaction each, synchronous=FULL);
- register: registrations alone (tracking code, request, events), per second.

It prints the median rate of each over the rounds and the ratio ra / direct: the RA layer's
cost. Aim (issue 15): the RA adds no more than 50% to an issuance, i.e. ratio >= 0.67.

Then through the API (``iranpki ra serve`` over HTTPS, in its own process, 8 threads), with
``--clients`` (32) concurrent clients in this process, each a desk and an applicant:

- api register: ``POST /requests``, per second, and the p50/p99 latency of one call;
- api issuance: one request's whole path as the desk client makes it (register, receive,
  proofing with a scan and the officer's signed statement, the phone's CSR, approval by a
  second officer, then the CA side, a worker thread here with the CA key, issues it and the
  client sees it issued), per second, and p50/p99 of the whole path.

Beside the anchor as ``direct`` above (one thread), the ratio api / direct is printed per
wall second and per CPU second (the server's process group and this process, which holds the
clients and the CA side, against the anchor's CPU), since the sides use different numbers of
cores.

    .venv/bin/python benchmarks/ra.py [--seconds 2] [--rounds 3] [--clients 32] [--api-seconds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from iranpki.ca import CertificateAuthority, build_request, create_intermediate, create_root, parse_subject
from iranpki.keys import SoftwareSigner
from iranpki.ra import Actor, Document, RaWorker, RegistrationAuthority
from iranpki.store import open_store

SUBJECT = "C=IR,SN=محمدی,GN=علی,serialNumber=0499370899,CN=علی محمدی"
APPLICANT = {"national_code": "0499370899", "given_name": "علی", "surname": "محمدی"}
OPERATOR = Actor("operator", "bench")
SCAN = b"\x89PNG\r\n\x1a\n" + bytes(20_000)  # a small scan of an identity card


def rate(fn: Callable[[], int], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += fn()
    return done / elapsed


def new_csr() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])).sign(key, hashes.SHA256()).public_bytes(
        serialization.Encoding.DER)


def setup(folder: Path) -> tuple[CertificateAuthority, RegistrationAuthority, RaWorker]:
    store = open_store(folder / "store.sqlite3", create=True)
    root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                       parse_subject("C=IR,O=I.R.Government,OU=Root CA,CN=Bench Root"), repository_url="http://r.ir")
    ca = create_intermediate(root, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), "gica1", 1,
                             parse_subject("C=IR,O=GICA,CN=GICA Level 1 (bench)"), purpose="signing")
    ra = RegistrationAuthority(store)
    ra.create_office("THR-01", "Tehran 1", "Tehran", ["gica1"], OPERATOR)
    ra.enrol_officer("p1", "THR-01", "p1", ["proofing"], OPERATOR)
    ra.enrol_officer("a1", "THR-01", "a1", ["approving"], OPERATOR)
    return ca, ra, RaWorker(ra, lambda name: ca)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--api-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iranpki-bench-ra-") as tmp:
        ca, ra, worker = setup(Path(tmp))
        pool = [new_csr() for _ in range(2)]  # made outside the timed steps: the subscriber makes its key

        def direct() -> int:
            ca.issue("personal-signature", build_request(csr=pool[0], subject=SUBJECT))
            return 1

        def through_ra() -> int:
            reg = ra.register(profile="personal-signature", level=1, ca="gica1", applicant=APPLICANT, subject=SUBJECT,
                              key_location="phone")
            p1, a1 = ra.officer("p1"), ra.officer("a1")
            request = ra.receive(p1, reg.code, "0499370899")
            ra.proof(p1, request.id, method="in-person", documents=[Document("national-id-card", "1", SCAN, "image/png")])
            ra.bind_key(p1, request.id, csr=pool[1])
            ra.approve(a1, request.id)
            worker.carry_out(ra.store.get_request(request.id))
            return 1

        def register() -> int:
            ra.register(profile="personal-signature", level=1, ca="gica1", applicant=APPLICANT, subject=SUBJECT,
                        key_location="phone")
            return 1

        results: dict[str, list[float]] = {"direct": [], "ra": [], "register": []}
        for _ in range(args.rounds):
            for name, fn in (("direct", direct), ("ra", through_ra), ("register", register)):
                results[name].append(rate(fn, args.seconds))
        med = {k: statistics.median(v) for k, v in results.items()}
        print(f"direct issuance (anchor)      {med['direct']:8.1f} /s")
        print(f"full issuance through the RA  {med['ra']:8.1f} /s   ratio ra/direct {med['ra'] / med['direct']:.2f}"
              f"   (the RA adds {100 * (med['direct'] / med['ra'] - 1):.0f}% to an issuance)")
        print(f"registrations                 {med['register']:8.1f} /s")
        print(f"(median of {args.rounds} rounds of {args.seconds} s each; one process, one thread)")
        cpu = time.process_time()
        anchor_done = int(rate(direct, args.seconds) * args.seconds)
        anchor_cpu = (time.process_time() - cpu) / max(anchor_done, 1)
        ra.store.close()
    with tempfile.TemporaryDirectory(prefix="iranpki-bench-ra-api-") as tmp:
        api_bench(Path(tmp), args.clients, args.api_seconds, med["direct"], anchor_cpu)


# ---- through the API ----------------------------------------------------------------------------

def _pem_key(key, passphrase: bytes | None = None) -> bytes:  # noqa: ANN001
    encryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def api_workspace(folder: Path) -> dict:
    """A workspace with a level-1 CA, an office, two officers with client certificates and a
    server certificate, and rules that let one address register as fast as it can."""
    import yaml

    from iranpki.keys import KeySpec, SecretSource
    from iranpki.workspace import Workspace

    os.environ["IRANPKI_KEY_PASSPHRASE"] = "a bench passphrase, long enough"
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    home = folder / "ws"
    ws = Workspace.init(home, repository_url="http://r.ir")
    for label, spec in (("root", "p384"), ("gica1", "p256"), ("tls", "p256")):
        ws.generate_key(KeySpec.parse(spec), label=label, secret=secret)
    ws.create_root("root", "root", "C=IR,O=I.R.Government,OU=Root CA,CN=Bench Root", secret=secret)
    ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=GICA,CN=GICA Level 1 (bench)", secret=secret,
                           parent_secret=secret, purpose="signing")
    ws.create_intermediate("tls", "root", 1, "tls", "C=IR,O=GICA,CN=GICA Level 1 TLS (bench)", secret=secret,
                           parent_secret=secret, purpose="tls")
    pub = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    pem = {n: x509.load_der_x509_certificate(ws.store.get_ca(n).certificate).public_bytes(serialization.Encoding.PEM)
           for n in ("root", "gica1", "tls")}
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = ws.issue("tls", "ssl-server", public_key=server_key.public_key().public_bytes(*pub),
                      subject="C=IR,ST=Tehran,L=Tehran,O=GICA", dns=["ra.bench.ir"], secret=secret)
    (folder / "server.pem").write_bytes(server.pem + pem["tls"])
    (folder / "server.key").write_bytes(_pem_key(server_key))
    (folder / "trust.pem").write_bytes(pem["root"] + pem["tls"])
    (folder / "client-cas.pem").write_bytes(pem["gica1"] + pem["root"])
    ra = ws.registration()
    ra.create_office("THR-01", "Tehran 1", "Tehran", ["gica1"], OPERATOR)
    keys = {}
    for name, roles in (("p1", ["proofing"]), ("a1", ["approving"])):
        key = ec.generate_private_key(ec.SECP256R1())
        issued = ws.issue("gica1", "ra-officer", public_key=key.public_key().public_bytes(*pub), secret=secret,
                          subject=f"C=IR,O=Bench office,OU=THR-01,title=Registration Officer,SN=احمدی,GN=رضا,"
                                  f"serialNumber=0012345679,CN=Officer {name}")
        ra.enrol_officer(name, "THR-01", name, roles, OPERATOR, certificate=issued.record.certificate)
        (folder / f"{name}.pem").write_bytes(issued.pem)
        (folder / f"{name}.key").write_bytes(_pem_key(key))
        keys[name] = key
    rules = yaml.safe_load((Path(__file__).resolve().parent.parent / "policies" / "ra-rules.yaml").read_text())
    rules["lookup"]["registrations_per_window"] = 1_000_000
    (home / "bench-rules.yaml").write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    config = yaml.safe_load((home / "iranpki.yaml").read_text())
    (home / "iranpki.yaml").write_text(yaml.safe_dump({**config, "ra_rules": "bench-rules.yaml"}), encoding="utf-8")
    ws.close()
    return {"home": home, "keys": keys}


def api_bench(folder: Path, clients: int, seconds: float, direct_rate: float, direct_cpu: float) -> None:
    import base64
    import concurrent.futures
    import re
    import signal

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cli"))
    from _proc import group_cpu_seconds
    from iranpki_cli.ra_client import RaClient, Upload

    from iranpki import signing
    from iranpki.workspace import Workspace

    made = api_workspace(folder)
    iranpki = str(Path(sys.executable).parent / "iranpki")
    proc = subprocess.Popen([iranpki, "ra", "serve", "--home", str(made["home"]), "--port", "0", "--certificate",
                             str(folder / "server.pem"), "--key", str(folder / "server.key"), "--client-ca",
                             str(folder / "client-cas.pem"), "--threads", "8"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        found = re.search(r"listening on https://127\.0\.0\.1:(\d+)", line)
        if not found:
            raise SystemExit(f"the RA server did not start: {line}{proc.stdout.read() if proc.stdout else ''}")
        url = f"https://127.0.0.1:{found.group(1)}"

        def client(officer: str | None = None) -> RaClient:
            return RaClient(url, trust=str(folder / "trust.pem"), server_name="ra.bench.ir",
                            certificate=None if officer is None else str(folder / f"{officer}.pem"),
                            key=None if officer is None else str(folder / f"{officer}.key"))

        statement = "national ID card checked against the applicant"
        signature = signing.sign_cms(statement.encode(), SoftwareSigner(made["keys"]["p1"]),
                                     (folder / "p1.pem").read_bytes())
        csrs = [base64.b64encode(new_csr()).decode() for _ in range(64)]
        body = {"profile": "personal-signature", "level": 1, "ca": "gica1", "applicant": APPLICANT,
                "subject": SUBJECT, "key_location": "phone"}
        issued: dict[str, threading.Event] = {}
        stop = threading.Event()

        def ca_side() -> None:  # the CA side, with the CA key, beside the server (never in it)
            ws = Workspace.open(made["home"])
            worker = ws.ra_worker()
            while not stop.is_set():
                done = worker.run_once()
                for outcome in done:
                    if outcome.request in issued:
                        issued[outcome.request].set()
                if not done:
                    time.sleep(0.01)
            ws.close()

        def register(c: RaClient) -> None:
            c.call("POST", "/requests", body)

        def issuance(c: tuple[RaClient, RaClient, RaClient], n: int) -> None:
            applicant, p1, a1 = c
            made = applicant.call("POST", "/requests", body)
            rid = made["request"]["id"]
            issued[rid] = threading.Event()
            p1.call("POST", "/office/receive", {"tracking_code": made["tracking_code"], "second_factor": "0499370899"})
            p1.call("POST", f"/office/requests/{rid}/proof", form={
                "method": "in-person", "statement": statement, "document_kind": ["national-id-card"],
                "document_number": ["0499370899"]}, files=[
                Upload("scan", "id.png", SCAN, "image/png"),
                Upload("statement_signature", "s.p7s", signature, "application/pkcs7-signature")])
            p1.call("POST", f"/office/requests/{rid}/key", {"csr": csrs[n % len(csrs)]})
            a1.call("POST", f"/office/requests/{rid}/approve")
            if not issued[rid].wait(60):
                raise RuntimeError(f"request {rid} was not issued within 60 s")
            del issued[rid]

        def measure(name: str, make: Callable[[], object], step: Callable[[object, int], None]) -> tuple[float, list[float]]:
            latencies: list[float] = []
            errors: list[BaseException] = []
            deadline = time.perf_counter() + seconds

            def loop(i: int) -> None:
                own = make()
                n = i
                while time.perf_counter() < deadline:
                    start = time.perf_counter()
                    try:
                        step(own, n)
                    except Exception as exc:  # noqa: BLE001 - counted and reported
                        errors.append(exc)
                        return
                    latencies.append(time.perf_counter() - start)
                    n += clients

            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                list(pool.map(loop, range(clients)))
            elapsed = time.perf_counter() - started
            if errors:
                raise SystemExit(f"{name}: {len(errors)} client(s) failed, first: {errors[0]}")
            return len(latencies) / elapsed, sorted(latencies)

        def quantile(values: list[float], q: float) -> float:
            return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")

        worker = threading.Thread(target=ca_side, daemon=True)
        worker.start()
        pgid = os.getpgid(proc.pid)
        cpu0, mine0 = group_cpu_seconds(pgid), time.process_time()
        reg_rate, reg_lat = measure("api register", lambda: client(), lambda c, n: register(c))  # type: ignore[arg-type]
        cpu1, mine1 = group_cpu_seconds(pgid), time.process_time()
        iss_rate, iss_lat = measure("api issuance", lambda: (client(), client("p1"), client("a1")), issuance)  # type: ignore[arg-type]
        cpu2, mine2 = group_cpu_seconds(pgid), time.process_time()
        stop.set()
        worker.join(timeout=30)
        issuance_cpu = ((cpu2 - cpu1) + (mine2 - mine1)) / max(iss_rate * seconds, 1)
        print(f"api register ({clients} clients)   {reg_rate:8.1f} /s   p50 {quantile(reg_lat, 0.5):7.1f} ms"
              f"   p99 {quantile(reg_lat, 0.99):7.1f} ms")
        print(f"api issuance ({clients} clients)   {iss_rate:8.1f} /s   p50 {quantile(iss_lat, 0.5):7.1f} ms"
              f"   p99 {quantile(iss_lat, 0.99):7.1f} ms")
        print(f"ratio api/direct per wall second  {iss_rate / direct_rate:.2f}   (server {os.cpu_count()} cores shared, "
              f"anchor one thread)")
        print(f"ratio api/direct per CPU second   {direct_cpu / issuance_cpu:.2f}   (CPU per issuance: api "
              f"{issuance_cpu * 1000:.1f} ms, including the clients and the CA side; direct {direct_cpu * 1000:.1f} ms)")
        print(f"(api figures over {seconds} s each; {len(reg_lat)} registrations, {len(iss_lat)} issuances;"
              f" register CPU {(cpu1 - cpu0) + (mine1 - mine0):.1f} s)")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()

"""A CRL of N revoked certificates: iranpki's streamed encoder against ``openssl ca -gencrl``.

One CA (root and intermediate, software keys) in a fresh SQLite store; N revoked certificates
seeded into the store and, the same set, into an openssl CA database (``index.txt``). Then, in
alternating rounds, each side generates and signs the complete CRL in a child process of its own:

- iranpki: a Python process that opens the store and calls ``iranpki.crl.generate_crl``;
- iranpki CLI: ``iranpki crl generate --ca NAME`` on the same store as an operator runs it (the
  folder is made a workspace, the CA key an encrypted key file): the command's start-up, the
  key's decryption and the store included;
- openssl: ``openssl ca -gencrl`` with the same CA key, certificate, digest, lifetime (7 days,
  the national CP's level ``status.crl_next_update_hours``), CRL number and authorityKeyIdentifier.

Time is the wall clock of the whole child process (start-up included on both sides); iranpki's
time inside ``generate_crl`` is shown too. Peak memory is the child's ``ru_maxrss`` from
``os.wait4``. Linux carries the RSS high-water mark of the forking process over into its child,
so the children are started from a small launcher process (a bare interpreter, about 5 MB) and
not from this one, which holds the seeded set.

Before printing, both CRLs are checked: openssl parses and verifies each with the CA
certificate, ``cryptography`` reads each with N entries and the seeded serial set, and the
revokedCertificates of both are compared octet for octet.

It prints the median time and peak memory of each side over the rounds and the ratios
iranpki/openssl. Aim (issue): at most 0.5 of openssl's time and of its memory.

With ``--store postgresql`` the seeded store is copied into PostgreSQL (a private cluster this
script starts on 127.0.0.1, as the tests do; ``iranpki store migrate``'s checked copy) and both
iranpki sides read it from there: the entries come through a server-side cursor in a REPEATABLE
READ snapshot. The server's own memory is not the child's and is not counted (openssl has no
server); the aim is the same as on SQLite.

    .venv/bin/python benchmarks/crl.py [--entries 1000000] [--rounds 3] [--key rsa2048|p256] [--keep DIR]
                                       [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AIM = 0.5
CA_NAME = "bench-ca"
PASSPHRASE = "benchmark passphrase, not a secret"
CRL_DAYS = 7  # policies/national-cp.yaml levels 1-3 status.crl_next_update_hours = 168
DAY = 86400

# Revocation reasons as RFC 5280 codes with their weights (per 100) and openssl index.txt names
# (apps/ca.c crl_reasons): those an end-entity certificate is revoked for, all of which openssl
# writes (it knows codes 0 to 6 and 8 only). An unspecified revocation has no reason in
# index.txt: openssl then writes no reasonCode, as iranpki leaves it out (RFC 5280 5.3.1).
REASONS = {0: (30, None), 1: (10, "keyCompromise"), 3: (15, "affiliationChanged"), 4: (25, "superseded"),
           5: (16, "cessationOfOperation"), 6: (4, "certificateHold")}
REASON_DRAW = [code for code, (weight, _) in REASONS.items() for _ in range(weight)]
# The share of keyCompromise revocations that carry an invalidityDate. openssl reads one only
# with keyCompromise, in the form "keyTime,YYYYMMDDHHMMSSZ".
INVALIDITY_SHARE = 0.6

# Started from this (large) process, it starts the measured child and reports the child's wall
# time, exit code and ru_maxrss. It imports nothing but builtins, so its own RSS stays small.
LAUNCHER = """\
import os, sys, time
out = os.open(sys.argv[1] + ".out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
err = os.open(sys.argv[1] + ".err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.dup2(out, 1)
    os.dup2(err, 2)
    try:
        os.execv(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def fail(message: str) -> None:
    sys.exit(f"crl benchmark: FAILED: {message}")


# ---- set-up -----------------------------------------------------------------------------------

def make_ca(work: Path, key: str) -> tuple[str, str]:
    """A root and an intermediate CA with a ``key`` software key in a fresh store; the
    intermediate's key and certificate as PEM files for openssl. Returns (store path, hash)."""
    from iranpki.ca import create_intermediate, create_root, parse_subject
    from iranpki.keys import SignatureScheme, SoftwareSigner
    from iranpki.store import open_store

    private = rsa.generate_private_key(65537, 2048) if key == "rsa2048" else ec.generate_private_key(ec.SECP256R1())
    store_path = str(work / "store.sqlite3")
    store = open_store(store_path, create=True)
    try:
        root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                           parse_subject("C=IR,O=Bench,CN=Bench Root"), repository_url="http://repo.bench.ir")
        ca = create_intermediate(root, SoftwareSigner(private), CA_NAME, 1,
                                 parse_subject("C=IR,O=Bench,CN=Bench CRL CA"), ocsp_url="http://ocsp.bench.ir")
        cert = x509.load_der_x509_certificate(ca.record.certificate)
        scheme = SignatureScheme.parse(ca.record.signature)
    finally:
        store.close()
    if scheme.padding == "pss":
        fail("the benchmark CA signs with RSA-PSS; openssl ca would need sigopts")
    key_file = work / "ca.key"
    key_file.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    key_file.chmod(0o600)
    (work / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # The same folder as a workspace for the CLI: settings, and the CA key as an encrypted key file
    # that the CA's record names.
    (work / "keys").mkdir(mode=0o700)
    encrypted = work / "keys" / f"{CA_NAME}.pem"
    encrypted.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.BestAvailableEncryption(PASSPHRASE.encode())))
    (work / "iranpki.yaml").write_text("store: store.sqlite3\nkeys_dir: keys\nrepository_url: http://repo.bench.ir\n"
                                       "ocsp_url: http://ocsp.bench.ir\n")
    db = sqlite3.connect(store_path)
    db.execute("UPDATE cas SET key_reference=? WHERE name=?", (str(encrypted), CA_NAME))
    db.commit()
    db.close()
    return store_path, scheme.hash


def seed(store_path: str, work: Path, n: int, now: int) -> set[int]:
    """Write ``n`` revoked certificates into the store and the same set into openssl's index.txt.

    A benchmark may seed the data directly: the rows go into the store's SQLite file in one
    transaction (executemany), not through ``CertificateAuthority.issue`` and ``revoke``, which
    would sign a million certificates. They are what the CA would hold: random 127-bit serials
    in issuance (not serial) order, revocation times rising with ``status_seq`` over the last
    year, mixed reasons, some invalidity dates. The certificate body is a placeholder (the CRL
    does not read it); fingerprints are unique. For speed the store's plain indexes are dropped
    during the load and built again after it (the same SQL), and the load is not journalled.
    """
    rng = random.Random(20240601)
    start = now - 365 * DAY
    hms = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)]
    days: dict[int, str] = {}

    def iso(moment: int) -> str:
        day, second = divmod(moment, DAY)
        if day not in days:
            days[day] = time.strftime("%Y-%m-%d", time.gmtime(day * DAY))
        return f"{days[day]}T{hms[second]}+00:00"

    db = sqlite3.connect(store_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")  # seeding only: the store opens in WAL, FULL sync again
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")
    indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='certificates' "
                         "AND sql IS NOT NULL").fetchall()
    serials: set[int] = set()
    # serial, ca, profile, subject, not_before, not_after, certificate, fingerprint, issued_at,
    # revoked_at, reason, invalidity_date, shard, status_seq, status_changed_at
    sql = (f"INSERT INTO certificates VALUES (?1, '{CA_NAME}', 'tls-server', 'CN=x', ?2, ?3, x'3000', "
           "printf('%064x', ?4), ?2, ?5, ?6, ?7, 0, ?4, ?5)")
    with open(work / "index.txt", "w", encoding="ascii") as index:
        db.execute("BEGIN IMMEDIATE")
        for name, _ in indexes:
            db.execute(f"DROP INDEX {name}")
        done = 0
        while done < n:
            rows, lines = [], []
            for i in range(done, min(n, done + 50_000)):
                serial = (1 << 126) | rng.getrandbits(126)
                while serial in serials:  # as the CA does on a (here impossible) collision
                    serial = (1 << 126) | rng.getrandbits(126)
                serials.add(serial)
                revoked = start + (i * 365 * DAY) // n
                issued = revoked - int(rng.random() * 365 * DAY)
                reason = REASON_DRAW[int(rng.random() * 100)]
                invalidity = None
                if reason == 1 and rng.random() < INVALIDITY_SHARE:
                    invalidity = iso(max(issued, revoked - int(rng.random() * 30 * DAY)))
                issued_at, revoked_at, not_after = iso(issued), iso(revoked), iso(issued + 825 * DAY)
                rows.append((f"{serial:040x}", issued_at, not_after, i + 1, revoked_at, reason, invalidity))
                # index.txt: R, expiry, revocation[,reason[,time]], serial, file, name (apps/ca.c).
                rev = utc_time(revoked_at)
                if invalidity is not None:
                    rev += ",keyTime," + invalidity[:2] + utc_time(invalidity)
                elif reason:
                    rev += "," + REASONS[reason][1]
                lines.append(f"R\t{utc_time(not_after)}\t{rev}\t{serial:032X}\tunknown\t/CN=x\n")
            db.executemany(sql, rows)
            index.writelines(lines)
            done += len(rows)
        for _, create in indexes:
            db.execute(create)
        db.execute("COMMIT")
    db.close()
    return serials


def utc_time(iso: str) -> str:
    """``YYYY-MM-DDTHH:MM:SS+00:00`` as openssl's index.txt writes a time (YYMMDDHHMMSSZ)."""
    return iso[2:4] + iso[5:7] + iso[8:10] + iso[11:13] + iso[14:16] + iso[17:19] + "Z"


def openssl_config(work: Path, digest: str) -> Path:
    (work / "crlnumber").write_text("01\n")
    (work / "index.txt.attr").write_text("unique_subject = no\n")
    config = work / "openssl.cnf"
    config.write_text(f"""\
[ ca ]
default_ca = bench

[ bench ]
dir = {work}
database = $dir/index.txt
unique_subject = no
certificate = $dir/ca.pem
private_key = $dir/ca.key
crlnumber = $dir/crlnumber
default_crl_days = {CRL_DAYS}
default_md = {digest}
crl_extensions = crl_ext

[ crl_ext ]
authorityKeyIdentifier = keyid:always
""")
    return config


# ---- measurement ------------------------------------------------------------------------------

def measure(argv: list[str], name: Path) -> tuple[float, float, str]:
    """Run ``argv`` from the launcher (its output in ``name``.out and .err); return (seconds,
    peak RSS in MB, its standard output)."""
    result = subprocess.run([sys.executable, "-I", "-S", "-c", LAUNCHER, str(name), *argv],
                            stdout=subprocess.PIPE, text=True, check=True)
    seconds, code, maxrss_kb = result.stdout.split()
    if int(code) != 0:
        errors = Path(f"{name}.err").read_text(errors="replace").strip()
        fail(f"{' '.join(argv[:3])} ... exited with {code}:\n{errors}")
    return float(seconds), int(maxrss_kb) / 1024, Path(f"{name}.out").read_text()


def ours_child(store_path: str, key_file: str, out_dir: str) -> None:
    """In the measured child: generate the CRL, print its path and the time inside generate_crl."""
    from iranpki.crl import generate_crl
    from iranpki.keys import SoftwareSigner
    from iranpki.store import open_store

    store = open_store(store_path)
    ca = store.get_ca(CA_NAME)
    signer = SoftwareSigner(serialization.load_pem_private_key(Path(key_file).read_bytes(), None))  # type: ignore[arg-type]
    start = time.perf_counter()
    crl = generate_crl(store, ca, signer, out_dir)
    inner = time.perf_counter() - start
    store.close()
    print(json.dumps({"inner": inner, "path": crl.record.path, "entries": crl.record.entries}))


# ---- verification -----------------------------------------------------------------------------

def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at ``pos``."""
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first & 0x80:
        size = first & 0x7F
        length = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    else:
        length = first
    return tag, pos, pos + length


def revoked_certificates(crl_der: bytes) -> bytes:
    """The revokedCertificates element of a CRL (RFC 5280 5.1), as encoded."""
    _, pos, _ = _tlv(crl_der, 0)  # CertificateList
    _, pos, _ = _tlv(crl_der, pos)  # TBSCertList
    for _ in range(5):  # version, signature, issuer, thisUpdate, nextUpdate
        pos = _tlv(crl_der, pos)[2]
    tag, _, end = _tlv(crl_der, pos)
    return crl_der[pos:end] if tag == 0x30 else b""


def verify(path: Path, form: str, work: Path, serials: set[int]) -> bytes:
    """Check the CRL at ``path`` against the CA and the seeded set; return its DER."""
    check = subprocess.run(["openssl", "crl", "-inform", form, "-in", str(path), "-noout", "-CAfile",
                            str(work / "ca.pem")], capture_output=True, text=True)
    if check.returncode != 0 or "verify OK" not in check.stdout + check.stderr:
        fail(f"openssl crl does not verify {path}: {(check.stdout + check.stderr).strip()}")
    data = path.read_bytes()
    crl = x509.load_der_x509_crl(data) if form == "DER" else x509.load_pem_x509_crl(data)
    ca = x509.load_pem_x509_certificate((work / "ca.pem").read_bytes())
    if not crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
        fail(f"the signature of {path} does not verify with the CA key")
    if len(crl) != len(serials):
        fail(f"{path} has {len(crl)} entries; {len(serials)} were revoked")
    if {entry.serial_number for entry in crl} != serials:
        fail(f"{path} does not list the revoked serial numbers")
    return crl.public_bytes(serialization.Encoding.DER)


# ---- main -------------------------------------------------------------------------------------

def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        ours_child(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="revoked certificates in the CRL")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--key", choices=("rsa2048", "p256"), default="rsa2048", help="the CA's key")
    parser.add_argument("--keep", metavar="DIR", help="build everything in DIR (new or empty) and keep it")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the store iranpki reads the entries from")
    args = parser.parse_args()
    if args.entries < 1 or args.rounds < 1:
        parser.error("--entries and --rounds must be at least 1")
    if shutil.which("openssl") is None:
        fail("openssl is not on PATH")

    if args.keep:
        work = Path(args.keep).resolve()
        work.mkdir(parents=True, exist_ok=True)
        if any(work.iterdir()):
            parser.error(f"--keep {args.keep}: the folder is not empty")
    else:
        work = Path(tempfile.mkdtemp(prefix="iranpki-crl-bench-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("crl benchmark: stopped (SIGTERM)"))  # the folder goes too
    try:
        run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> None:
    n = args.entries
    store_path, digest = make_ca(work, args.key)
    start = time.perf_counter()
    serials = seed(store_path, work, n, int(time.time()))
    seeded = time.perf_counter() - start
    cluster = None
    if args.store == "postgresql":
        store_path, cluster = to_postgresql(store_path, work)
    try:
        measure_all(args, work, store_path, serials, digest, seeded)
    finally:
        if cluster is not None:
            from tests.hosts import remove_cluster

            remove_cluster(cluster)


def to_postgresql(sqlite_path: str, work: Path):  # noqa: ANN201 - (its URL, the cluster)
    """The seeded store copied into a new database of a private PostgreSQL cluster; the
    workspace's settings name it."""
    from iranpki.store import open_store
    from iranpki.store.migrate import copy_store

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.hosts import new_cluster

    cluster = new_cluster()
    os.environ["IRANPKI_STORE_PASSWORD"] = cluster.password  # the children read it (never an argument)
    url = cluster.new_database()
    start = time.perf_counter()
    source, target = open_store(sqlite_path), open_store(url, create=True)
    report = copy_store(source, target)
    source.close()
    target.close()
    if not report.ok:
        fail("the copy into PostgreSQL did not check out: " + "; ".join(report.problems))
    print(f"copied into PostgreSQL in {time.perf_counter() - start:.1f} s ({report.rows['certificates']:,} "
          "certificates, checked)")
    config = (work / "iranpki.yaml").read_text().replace("store: store.sqlite3", f"store: {url}")
    (work / "iranpki.yaml").write_text(config)
    return url, cluster


def measure_all(args: argparse.Namespace, work: Path, store_path: str, serials: set[int], digest: str,
                seeded: float) -> None:
    n = args.entries
    config = openssl_config(work, digest)
    openssl = shutil.which("openssl") or "openssl"
    (work / "ours").mkdir()
    print(f"CRL benchmark: {n:,} revoked entries, {args.key} CA key, {digest}, {args.rounds} round(s), medians "
          f"(seeded in {seeded:.1f} s), iranpki reading from {args.store}")

    ours_t, ours_inner, ours_rss, theirs_t, theirs_rss, cli_t, cli_rss = [], [], [], [], [], [], []
    ours_file = theirs_file = cli_file = Path()
    iranpki_cmd = str(Path(sys.executable).parent / "iranpki")
    os.environ["IRANPKI_KEY_PASSPHRASE"] = PASSPHRASE  # the measured CLI child reads it (never an argument)
    for r in range(args.rounds):  # alternate, so that machine noise hits all three alike
        seconds, rss, out = measure([sys.executable, os.path.abspath(__file__), "--child", store_path,
                                     str(work / "ca.key"), str(work / "ours")], work / "ours")
        result = json.loads(out)
        if result["entries"] != n:
            fail(f"generate_crl listed {result['entries']:,} entries; {n:,} were revoked")
        ours_t.append(seconds)
        ours_rss.append(rss)
        ours_inner.append(result["inner"])
        ours_file = Path(result["path"])
        theirs_file = work / f"openssl-{r + 1}.crl"
        seconds, rss, _ = measure([openssl, "ca", "-gencrl", "-config", str(config), "-out", str(theirs_file)],
                                  work / "openssl")
        theirs_t.append(seconds)
        theirs_rss.append(rss)
        seconds, rss, out = measure([iranpki_cmd, "crl", "generate", "--home", str(work), "--ca", CA_NAME, "--json"],
                                    work / "cli")
        generated = json.loads(out)
        if generated[0]["entries"] != n:
            fail(f"iranpki crl generate listed {generated[0]['entries']:,} entries; {n:,} were revoked")
        cli_t.append(seconds)
        cli_rss.append(rss)
        cli_file = Path(generated[0]["path"])

    ours_der = verify(ours_file, "DER", work, serials)
    cli_der = verify(cli_file, "DER", work, serials)
    theirs_der = verify(theirs_file, "PEM", work, serials)
    same = revoked_certificates(ours_der) == revoked_certificates(theirs_der) == revoked_certificates(cli_der)
    if not same:
        fail("the revokedCertificates of the two CRLs differ (serials, times, reasons or invalidity dates)")

    t_ours, t_theirs = statistics.median(ours_t), statistics.median(theirs_t)
    m_ours, m_theirs = statistics.median(ours_rss), statistics.median(theirs_rss)
    inner = statistics.median(ours_inner)
    print(f"{'':<22}{'time s':>9}{'peak RSS MB':>13}{'CRL MB':>9}")
    print(f"{'iranpki generate_crl':<22}{t_ours:>9.2f}{m_ours:>13.1f}{len(ours_der) / 1e6:>9.1f}"
          f"   (inside generate_crl {inner:.2f} s, {n / inner:,.0f} entries/s)")
    t_cli, m_cli = statistics.median(cli_t), statistics.median(cli_rss)
    print(f"{'iranpki crl generate':<22}{t_cli:>9.2f}{m_cli:>13.1f}{len(cli_der) / 1e6:>9.1f}   (the CLI, one process)")
    print(f"{'openssl ca -gencrl':<22}{t_theirs:>9.2f}{m_theirs:>13.1f}{len(theirs_der) / 1e6:>9.1f}")
    for what, ratio in (("time", t_ours / t_theirs), ("memory", m_ours / m_theirs)):
        print(f"ratio {what:<7}{ratio:>6.2f}  iranpki/openssl (aim <= {AIM}: {'met' if ratio <= AIM else 'MISSED'})")
    for what, ratio in (("time", t_cli / t_theirs), ("memory", m_cli / m_theirs)):
        print(f"ratio {what:<7}{ratio:>6.2f}  iranpki crl generate (CLI)/openssl")
    print("verified: all three parse and verify with the CA certificate (openssl crl, cryptography), "
          f"{n:,} entries each, the seeded serials; revokedCertificates identical")


if __name__ == "__main__":
    main()

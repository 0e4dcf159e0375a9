"""Listing certificates stays flat as the store grows: a page at 1,000,000 certificates against
the same page at 1,000, in one run.

Two stores are seeded (the small one is the anchor): ``--small`` and ``--entries`` certificates
of three CAs and three profiles, 2% revoked, in issuance order. Then, in alternating rounds,
each of these is timed on both stores:

- ``iter_certificates(limit=10)``: the first page, unfiltered, by CA, by profile, revoked only;
- the tenth page by CA (keyset: ``after`` the last certificate of the ninth);
- ``iranpki cert list --ca gica-b --limit 10 --json``: the command, one process (start-up included).

It prints the median of each and the ratio large/small: 1.0 is flat; a listing that scans the
table grows with it (before the listing indexes, 0.5 ms at 1,000 became 700 ms at 1,000,000).

    .venv/bin/python benchmarks/listing.py [--entries 1000000] [--small 1000] [--rounds 5]

A benchmark may seed the data directly: the rows go into the store's SQLite file in one
transaction, not through issuance, which would sign a million certificates. The certificate
bodies are placeholders; listings do not read them.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from iranpki.ca import create_intermediate, create_root, parse_subject
from iranpki.keys import SoftwareSigner
from iranpki.store import Store, open_store

CAS = ("gica-a", "gica-b", "gica-c")
PROFILES = ("ssl-server", "personal-signature", "smime")
DAY = 86400


def make_store(folder: Path, n: int) -> Path:
    """A workspace folder with three CAs and ``n`` certificates seeded in issuance order."""
    folder.mkdir(parents=True)
    (folder / "iranpki.yaml").write_text("store: iranpki.sqlite3\nkeys_dir: keys\nrepository_url: http://repo.bench.ir\n")
    (folder / "keys").mkdir(mode=0o700)
    path = folder / "iranpki.sqlite3"
    store = open_store(str(path), create=True)
    root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                       parse_subject("C=IR,O=Bench,CN=Bench Root"), repository_url="http://repo.bench.ir")
    for name in CAS:
        create_intermediate(root, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), name, 1,
                            parse_subject(f"C=IR,O=Bench,CN=Bench {name}"))
    store.close()
    rng = random.Random(n)
    start = int(time.time()) - 365 * DAY
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")  # seeding only: the store opens in WAL, FULL sync again
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")
    indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='certificates' "
                         "AND sql IS NOT NULL").fetchall()
    db.execute("BEGIN IMMEDIATE")
    for name, _ in indexes:
        db.execute(f"DROP INDEX {name}")
    sql = ("INSERT INTO certificates VALUES (?1, ?2, ?3, 'CN=x', ?4, ?5, x'3000', printf('%064x', ?6), ?4, ?7, ?8, "
           "NULL, 0, ?9, ?7)")
    seq = 0
    for done in range(0, n, 50_000):
        rows = []
        for i in range(done, min(n, done + 50_000)):
            issued = start + (i * 365 * DAY) // n
            at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(issued))
            until = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(issued + 199 * DAY))
            revoked = rng.random() < 0.02
            if revoked:
                seq += 1
            rows.append((f"{(1 << 126) | rng.getrandbits(126):040x}", CAS[i % 3], PROFILES[(i // 3) % 3], at, until,
                         i + 1, at if revoked else None, 1 if revoked else None, seq if revoked else None))
        db.executemany(sql, rows)
    for _, create in indexes:
        db.execute(create)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()
    return folder


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def cases(store: Store) -> dict[str, Callable[[], object]]:
    def tenth_page() -> None:
        after = None
        for _ in range(10):
            page = list(store.iter_certificates(ca="gica-b", limit=10, after=after))
            after = page[-1]

    return {
        "first page, all": lambda: list(store.iter_certificates(limit=10)),
        "first page, by CA": lambda: list(store.iter_certificates(ca="gica-b", limit=10)),
        "first page, by profile": lambda: list(store.iter_certificates(profile="smime", limit=10)),
        "first page, revoked": lambda: list(store.iter_certificates(status="revoked", limit=10)),
        "ten pages, by CA": tenth_page,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="certificates in the large store")
    parser.add_argument("--small", type=int, default=1000, help="certificates in the anchor store")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported")
    args = parser.parse_args()
    if min(args.entries, args.small) < 100 or args.rounds < 1:
        parser.error("--entries and --small must be at least 100, --rounds at least 1")
    work = Path(tempfile.mkdtemp(prefix="iranpki-listing-bench-"))
    try:
        t = time.perf_counter()
        small, large = make_store(work / "small", args.small), make_store(work / "large", args.entries)
        print(f"listing benchmark: {args.small:,} against {args.entries:,} certificates "
              f"(seeded in {time.perf_counter() - t:.0f} s), {args.rounds} rounds, medians in ms")
        stores = {"small": open_store(str(small / "iranpki.sqlite3")), "large": open_store(str(large / "iranpki.sqlite3"))}
        runs = {k: cases(s) for k, s in stores.items()}
        iranpki = str(Path(sys.executable).parent / "iranpki")
        results: dict[str, dict[str, list[float]]] = {k: {} for k in stores}
        for _ in range(args.rounds):  # alternate, so that machine noise hits both alike
            for size, folder in (("small", small), ("large", large)):
                for name, fn in runs[size].items():
                    results[size].setdefault(name, []).append(timed(fn))
                results[size].setdefault("iranpki cert list (CLI)", []).append(timed(lambda folder=folder: subprocess.run(
                    [iranpki, "cert", "list", "--home", str(folder), "--ca", "gica-b", "--limit", "10", "--json"],
                    check=True, capture_output=True, timeout=120)))
        print(f"{'':<26}{args.small:>12,}{args.entries:>14,}{'ratio':>8}")
        for name in results["small"]:
            a, b = statistics.median(results["small"][name]), statistics.median(results["large"][name])
            print(f"{name:<26}{a:>12.2f}{b:>14.2f}{b / a:>8.2f}")
        for s in stores.values():
            s.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

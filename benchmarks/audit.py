"""The audit log's tree: what it costs issuance, and how fast and how lean a verification is.

1. Issuance (``CertificateAuthority.issue``, software P-256 CA key, one durable commit per
   certificate) with the audit tree (every event's leaf in RFC 8785 JSON, hashed and stored in the
   event's transaction) against the same issuance with the leaf left out (the anchor), in
   alternating rounds; it prints the median rates and their ratio. Aim: within 10%.
2. ``iranpki.audit.verify_store`` over a log of ``--events`` events (default 1,000,000) made
   directly in SQLite, against reading the same rows from SQLite alone (the anchor), each in a
   process of its own; it prints the seconds, their ratio, and each process's peak memory for a
   tenth of the log and for all of it (bounded: about the same). Aim: under a minute for a million.

    .venv/bin/python benchmarks/audit.py [--events 1000000] [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from iranpki import audit
from iranpki.ca import create_intermediate, create_root, parse_subject
from iranpki.keys import SoftwareSigner
from iranpki.store import open_store
from iranpki.store.sqlite import SqliteStore, _t


def _without_leaf(self, db, event) -> None:  # noqa: ANN001 - the anchor: the event alone, as before the tree
    db.execute("INSERT INTO audit(at, actor, event, subject, details) VALUES (?,?,?,?,?)",
               (_t(self.clock.now()), event.actor, event.event, event.subject,
                json.dumps(event.details, sort_keys=True, ensure_ascii=False, default=str)))


def issuance(seconds: float, rounds: int) -> None:
    from iranpki.ca import IssueRequest

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "store.sqlite3"), create=True)
        root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                           parse_subject("C=IR,O=Bench,CN=Bench Root"), repository_url="http://repo.bench.ir")
        ca = create_intermediate(root, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), "gica1", 1,
                                 parse_subject("C=IR,O=Bench,CN=Bench gica1"), ocsp_url="http://ocsp.bench.ir")
        subject = parse_subject("C=IR,O=Bench,CN=Bench TSA")
        keys = [ec.generate_private_key(ec.SECP256R1()).public_key() for _ in range(64)]

        def issue_for(duration: float) -> float:
            done, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < duration:
                ca.issue("tsa", IssueRequest(subject, keys[done % 64]))
                done += 1
            return done / elapsed

        with_tree, anchor = [], []
        original = SqliteStore._audit
        for _ in range(rounds):
            with_tree.append(issue_for(seconds))
            SqliteStore._audit = _without_leaf  # type: ignore[method-assign]
            try:
                anchor.append(issue_for(seconds))
            finally:
                SqliteStore._audit = original  # type: ignore[method-assign]
        ca.store.close()
    a, b = statistics.median(with_tree), statistics.median(anchor)
    print(f"issuance with the audit tree      {a:8.1f} certificates/s (median of {rounds})")
    print(f"issuance without it (anchor)      {b:8.1f} certificates/s")
    print(f"ratio issuance with/without tree  {a / b:.3f}  (aim: at least 0.90)")


def _log(path: Path, events: int) -> None:
    """A store whose log has ``events`` events and their leaves, written straight into SQLite."""
    open_store(str(path), create=True).close()
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    details = json.dumps({"profile": "personal-signature", "ca": "gica1", "serial": "4030cc9682943651f176655135b6df36",
                          "subject": "CN=علی محمدی,serialNumber=0499370899"}, sort_keys=True, ensure_ascii=False)
    at = "2026-12-03T12:00:00.000000+00:00"
    first = db.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()[0] + 1
    chunk = 20_000
    for start in range(first, events + 1, chunk):
        rows = [(s, at, "bench", "cert.issued", f"{s:x}", details) for s in range(start, min(start + chunk, events + 1))]
        db.executemany("INSERT INTO audit(seq, at, actor, event, subject, details) VALUES (?,?,?,?,?,?)", rows)
        db.executemany("INSERT INTO audit_tree(seq, leaf) VALUES (?, ?)",
                       [(r[0], audit.leaf_hash(audit.leaf_data(*r))) for r in rows])
        db.commit()
    db.close()


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child(path: str, anchor: bool) -> None:
    """In a process of its own (so that its peak memory is its own): verify the log, or (the
    anchor) read its rows; print the events, the seconds and the peak resident memory."""
    store = open_store(path)
    t0 = time.perf_counter()
    if anchor:
        events = sum(1 for _ in store.audit_rows())
    else:
        result = audit.verify_store(store)
        assert result.ok and result.checkpoints, result.problems
        events = result.events
    print(events, time.perf_counter() - t0, _peak_kb())


def _run_child(path: Path, anchor: bool) -> tuple[int, float, int]:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, __file__, "--child", str(path)] + (["--anchor"] if anchor else []),
                         capture_output=True, text=True, check=True, timeout=600).stdout.split()
    return int(out[0]), float(out[1]), int(out[2])


def verification(events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tenth, whole = Path(tmp) / "tenth.sqlite3", Path(tmp) / "whole.sqlite3"
        started = time.perf_counter()
        _log(tenth, max(1, events // 10))
        _log(whole, events)
        print(f"logs of {events // 10:,} and {events:,} events made in {time.perf_counter() - started:.0f} s")
        signer = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
        peaks = {}
        for name, path in (("tenth", tenth), ("whole", whole)):
            store = open_store(str(path))
            audit.checkpoint(store, signer, "bench.audit")  # verifies, then signs
            store.close()
            n, seconds, peak = _run_child(path, anchor=False)
            _, anchor_seconds, anchor_peak = _run_child(path, anchor=True)
            peaks[name] = peak
            print(f"audit verify, {n:>9,} events  {seconds:7.1f} s   SQLite reading them alone (anchor) "
                  f"{anchor_seconds:5.1f} s   ratio {seconds / anchor_seconds:.1f}   peak memory {peak / 1024:.0f} MB "
                  f"(anchor {anchor_peak / 1024:.0f} MB)")
        print(f"memory: a log ten times longer: peak {peaks['whole'] / 1024:.0f} MB against {peaks['tenth'] / 1024:.0f} MB "
              "(bounded: batches of 5,000 rows, log2(n) hashes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--anchor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.anchor)
        return
    issuance(args.seconds, args.rounds)
    verification(args.events)


if __name__ == "__main__":
    main()

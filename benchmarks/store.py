"""The same CA work on the two stores: SQLite (the anchor) and PostgreSQL, in one run.

One CA (root and a level-1 intermediate, a software P-256 key) is made in each store; then, in
alternating rounds of ``--seconds`` each:

- issuance, single: ``CertificateAuthority.issue``, one durable commit per certificate;
- issuance, batch:  ``issue_many`` of 100, one commit per batch;
- OCSP answers:     ``OcspService.respond`` to single-certificate requests (SHA-1 CertID, no
                    nonce) for random certificates of ``--certs`` issued, answered from the
                    pre-produced responses the store holds (one read of the response and the
                    certificate's status per answer, as a responder worker does).

Both sides run in this one process on one core each time (the database server's own CPU is not
counted on either side: SQLite has none); it prints the median rate of each and the ratio
PostgreSQL/SQLite. The PostgreSQL server is a private cluster this script starts on 127.0.0.1
(Debian's server, as the tests do; fsync off there, synchronous=FULL on SQLite: see the note it
prints), or the one ``--postgresql URL`` names (a new, empty database; its password in
IRANPKI_STORE_PASSWORD).

    .venv/bin/python benchmarks/store.py [--seconds 3] [--rounds 3] [--certs 2000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from iranpki.ca import CertificateAuthority, IssueRequest, create_intermediate, create_root, parse_subject
from iranpki.keys import SoftwareSigner
from iranpki.store import Store, open_store

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = parse_subject("C=IR,ST=Tehran,L=Tehran,O=Example Co")
BATCH = 100


def build(store: Store) -> CertificateAuthority:
    root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                       parse_subject("C=IR,O=I.R.Government,OU=Root CA,CN=Benchmark Root"),
                       repository_url="http://repo.example.ir", ocsp_url="http://ocsp.example.ir")
    return create_intermediate(root, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), "gica1", 1,
                               parse_subject("C=IR,O=GICA,CN=GICA Level 1 (benchmark)"), purpose="tls")


def request() -> IssueRequest:
    return IssueRequest(SUBJECT, ec.generate_private_key(ec.SECP256R1()).public_key(), dns=["www.example.ir"])


def rate(fn: Callable[[], int], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += fn()
    return done / elapsed


def ocsp_side(store: Store, ca: CertificateAuthority, certs: int) -> tuple[Callable[[], int], Callable[[], None]]:
    """Issue ``certs``, pre-produce their responses, and return (one answer, close)."""
    from iranpki.ocsp import OcspService, Responder

    issued = []
    while len(issued) < certs:
        issued += [c.record.serial for c in ca.issue_many("ssl-server", [request() for _ in range(min(BATCH, certs))])]
    service = OcspService(store, [Responder(store.get_ca("gica1"), ca.signer)])
    service.prepare()
    responder = service.responders["gica1"]
    requests = [_request(responder.cert_id("sha1", s)) for s in issued]

    def one() -> int:
        reply = service.respond(random.choice(requests))
        if len(reply.body) < 16:  # an unsigned error answer (tryLater, internalError): never counted
            raise SystemExit(f"FAILED: an OCSP answer was not successful ({reply.body.hex()})")
        return 1

    return one, service.close


def _request(cert_id_der: bytes) -> bytes:
    """A DER OCSPRequest holding one CertID, no nonce."""
    from asn1crypto import ocsp as asn1_ocsp

    cid = asn1_ocsp.CertId.load(cert_id_der)
    return asn1_ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": cid}]}}).dump()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--certs", type=int, default=2000, help="certificates the OCSP answers pick from")
    parser.add_argument("--postgresql", metavar="URL", help="a new, empty database to use (default: start a cluster)")
    args = parser.parse_args()
    cluster = None
    work = Path(tempfile.mkdtemp(prefix="iranpki-store-bench-"))
    try:
        if args.postgresql:
            url = args.postgresql
        else:
            sys.path.insert(0, str(ROOT))
            from tests.hosts import new_cluster

            cluster = new_cluster()
            os.environ["IRANPKI_STORE_PASSWORD"] = cluster.password
            url = cluster.new_database()
        stores = {"SQLite": open_store(str(work / "store.sqlite3"), create=True),
                  "PostgreSQL": open_store(url, create=True)}
        cas = {name: build(store) for name, store in stores.items()}
        answers = {name: ocsp_side(stores[name], cas[name], args.certs) for name in stores}
        rows: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):  # alternate, so that the machine's noise hits both alike
            for name, ca in cas.items():
                rows.setdefault(("issuance, single", name), []).append(
                    rate(lambda ca=ca: (ca.issue("ssl-server", request()), 1)[1], args.seconds))
                rows.setdefault(("issuance, batch of 100", name), []).append(
                    rate(lambda ca=ca: len(ca.issue_many("ssl-server", [request() for _ in range(BATCH)])), args.seconds))
                rows.setdefault(("OCSP answers", name), []).append(rate(answers[name][0], args.seconds))
        print(f"store benchmark: {args.rounds} round(s) of {args.seconds:g} s, medians, one process on one core; "
              f"OCSP from {args.certs:,} certificates' pre-produced responses")
        print(f"{'':<26}{'SQLite /s':>12}{'PostgreSQL /s':>15}{'ratio PG/SQLite':>17}")
        for what in ("issuance, single", "issuance, batch of 100", "OCSP answers"):
            a, b = statistics.median(rows[(what, "SQLite")]), statistics.median(rows[(what, "PostgreSQL")])
            print(f"{what:<26}{a:>12,.0f}{b:>15,.0f}{b / a:>17.2f}")
        print("note: SQLite commits with synchronous=FULL (fsync at each commit)" + (
            "; the private PostgreSQL cluster runs with fsync off, so its commits cost less than a production "
            "server's" if cluster is not None else "; PostgreSQL as the server named is configured"))
        for one, close in answers.values():
            close()
        for store in stores.values():
            store.close()
    finally:
        if cluster is not None:
            from tests.hosts import remove_cluster

            remove_cluster(cluster)
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

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
cost. Aim (issue 15): the RA adds no more than 50% to an issuance, i.e. ratio >= 0.67. One
process, one thread: the API with concurrent clients is measured when the API exists.

    .venv/bin/python benchmarks/ra.py [--seconds 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
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
        ra.store.close()


if __name__ == "__main__":
    main()

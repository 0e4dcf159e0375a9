"""Certificates issued and stored per second, against the raw signing rate of the same key.

For each CA key (RSA-2048 and P-256; in software and on a SoftHSM2 token) this measures, in
one run and in alternating rounds:

- raw:    the signing primitive alone on a TBS-sized message (cryptography's ``sign``, or
          python-pkcs11's ``sign`` on the token with host hashing for ECDSA, as SoftHSM2 needs);
- single: ``CertificateAuthority.issue``: check, compose, sign, verify, one durable SQLite
          commit per certificate (synchronous=FULL), then return;
- batch:  ``issue_many`` with 100 requests: the same, with one commit per batch.

It prints the median rate of each over the rounds and the ratio to the raw rate.
Aim (issue 2): issuance at least half the raw signing rate.

    .venv/bin/python benchmarks/issuance.py [--seconds 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from iranpki.ca import CertificateAuthority, IssueRequest, create_intermediate, create_root, parse_subject
from iranpki.keys import KeySpec, SecretSource, SoftwareSigner
from iranpki.store import SqliteStore

MESSAGE = secrets.token_bytes(600)  # about the size of a TBSCertificate
BATCH = 100


def rate(fn: Callable[[], int], seconds: float) -> float:
    """Operations per second of ``fn`` (which returns how many operations it did)."""
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += fn()
    return done / elapsed


def raw_signer(signer) -> Callable[[], int]:
    """The signing primitive of ``signer``'s key, without iranpki around it."""
    if isinstance(signer, SoftwareSigner):
        key = signer._key
        if isinstance(key, rsa.RSAPrivateKey):
            return lambda: (key.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256()), 1)[1]
        return lambda: (key.sign(MESSAGE, ec.ECDSA(hashes.SHA256())), 1)[1]
    from pkcs11 import Mechanism

    priv = signer._priv
    if isinstance(signer.public_key, rsa.RSAPublicKey):
        return lambda: (priv.sign(MESSAGE, mechanism=Mechanism.SHA256_RSA_PKCS), 1)[1]
    return lambda: (priv.sign(hashlib.sha256(MESSAGE).digest(), mechanism=Mechanism.ECDSA), 1)[1]


def make_ca(base: str, signer, name: str) -> CertificateAuthority:
    store = SqliteStore(os.path.join(base, f"{name}.sqlite3"), create=True)
    root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                       parse_subject("C=IR,O=Bench,CN=Bench Root"), repository_url="http://repo.bench.ir")
    return create_intermediate(root, signer, name, 1, parse_subject(f"C=IR,O=Bench,CN=Bench {name}"),
                               ocsp_url="http://ocsp.bench.ir")


def softhsm_signers(base: str) -> dict[str, object]:
    from iranpki.keys.pkcs11 import generate_keypair, init_token

    os.makedirs(f"{base}/tokens")
    with open(f"{base}/softhsm2.conf", "w") as f:
        f.write(f"directories.tokendir = {base}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = f"{base}/softhsm2.conf"
    pin = secrets.token_hex(8)
    init_token("Bench", SecretSource(prompt=lambda _: secrets.token_hex(8)), SecretSource(prompt=lambda _: pin))
    secret = SecretSource(prompt=lambda _: pin)
    return {alg: generate_keypair("Bench", f"bench-{alg}", KeySpec.parse(alg), pin=secret)
            for alg in ("rsa2048", "p256")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    args = parser.parse_args()

    base = tempfile.mkdtemp(prefix="iranpki-bench-")
    signers = {
        ("rsa2048", "software"): SoftwareSigner(rsa.generate_private_key(65537, 2048)),
        ("p256", "software"): SoftwareSigner(ec.generate_private_key(ec.SECP256R1())),
    }
    for alg, signer in softhsm_signers(base).items():
        signers[(alg, "softhsm2")] = signer

    subscriber = ec.generate_private_key(ec.SECP256R1()).public_key()
    req = IssueRequest(parse_subject("C=IR,O=Bench,CN=Bench TSA"), subscriber)
    print(f"issuance benchmark: {args.rounds} rounds x {args.seconds:g} s per measurement, medians; "
          f"profile tsa, SQLite synchronous=FULL, batch = {BATCH}")
    print(f"{'CA key':<10}{'backend':<11}{'raw sign/s':>12}{'issue/s':>10}{'ratio':>8}{'batch/s':>10}{'ratio':>8}")
    for (alg, backend), signer in signers.items():
        ca = make_ca(base, signer, f"{alg}-{backend}")
        raw_fn = raw_signer(signer)
        single_fn = lambda ca=ca: (ca.issue("tsa", req), 1)[1]  # noqa: E731
        batch_fn = lambda ca=ca: len(ca.issue_many("tsa", [req] * BATCH))  # noqa: E731
        results: dict[str, list[float]] = {"raw": [], "single": [], "batch": []}
        for _ in range(args.rounds):  # alternate, so that machine noise hits all three alike
            results["raw"].append(rate(raw_fn, args.seconds))
            results["single"].append(rate(single_fn, args.seconds))
            results["batch"].append(rate(batch_fn, args.seconds))
        raw, single, batch = (statistics.median(results[k]) for k in ("raw", "single", "batch"))
        print(f"{alg:<10}{backend:<11}{raw:>12.0f}{single:>10.0f}{single / raw:>8.2f}{batch:>10.0f}{batch / raw:>8.2f}")


if __name__ == "__main__":
    main()

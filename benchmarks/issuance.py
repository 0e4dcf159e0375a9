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

Then one certificate per process, as an operator or a script runs the command: ``iranpki cert
issue`` (start-up, the workspace, the key's decryption, the store, all included) against
``openssl x509 -req`` signing the same kind of certificate with the same kind of key (P-256), each
run ``--cli-runs`` times in alternation; it prints the median milliseconds per certificate and
their ratio.

    .venv/bin/python benchmarks/issuance.py [--seconds 2] [--rounds 3] [--cli-runs 15]
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
from iranpki.store import open_store

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
    store = open_store(os.path.join(base, f"{name}.sqlite3"), create=True)
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


def per_process(base: str, runs: int) -> None:
    """``iranpki cert issue`` and ``openssl x509 -req``, one process per certificate."""
    import subprocess
    import sys
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization

    home = Path(base) / "cli-ws"
    iranpki = str(Path(sys.executable).parent / "iranpki")
    env = {**os.environ, "IRANPKI_KEY_PASSPHRASE": "benchmark passphrase, not a secret", "IRANPKI_HOME": str(home)}

    def sh(*argv: str) -> None:
        subprocess.run(argv, check=True, env=env, capture_output=True, timeout=120)

    sh(iranpki, "init", str(home), "--repository-url", "http://repo.bench.ir")
    sh(iranpki, "key", "generate", "--label", "root", "--algorithm", "p384")
    sh(iranpki, "key", "generate", "--label", "l1", "--algorithm", "p256")
    sh(iranpki, "ca", "create-root", "--name", "root", "--key", "root", "--subject", "C=IR,O=Bench,CN=Bench Root")
    sh(iranpki, "ca", "create-intermediate", "--parent", "root", "--level", "1", "--purpose", "time-stamping", "--name", "l1",
       "--key", "l1",
       "--subject", "C=IR,O=Bench,CN=Bench L1")
    sh(iranpki, "ca", "export", "l1", "--out", str(home / "l1.pem"))
    sub_key = ec.generate_private_key(ec.SECP256R1())
    (home / "sub.pub").write_bytes(sub_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (home / "sub.key").write_bytes(sub_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    ca_key = ec.generate_private_key(ec.SECP256R1())  # openssl's CA key: the same kind as l1's
    (home / "ca.key").write_bytes(ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    sh("openssl", "req", "-new", "-x509", "-key", str(home / "ca.key"), "-subj", "/C=IR/O=Bench/CN=openssl CA",
       "-days", "365", "-out", str(home / "ca.pem"))
    sh("openssl", "req", "-new", "-key", str(home / "sub.key"), "-subj", "/C=IR/O=Bench/CN=Bench TSA",
       "-out", str(home / "sub.csr"))
    ext = home / "tsa.ext"
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=critical,timeStamping\n")
    ours, theirs = [], []
    for i in range(runs):  # alternate, so that machine noise hits both alike
        t = time.perf_counter()
        sh(iranpki, "cert", "issue", "--ca", "l1", "--profile", "tsa", "--public-key", str(home / "sub.pub"),
           "--subject", "C=IR,O=Bench,CN=Bench TSA", "--out", str(home / f"ours-{i}.pem"))
        ours.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        sh("openssl", "x509", "-req", "-in", str(home / "sub.csr"), "-CA", str(home / "ca.pem"), "-CAkey",
           str(home / "ca.key"), "-CAcreateserial", "-days", "30", "-sha256", "-extfile", str(ext),
           "-out", str(home / f"theirs-{i}.pem"))
        theirs.append((time.perf_counter() - t) * 1000)
    o, th = statistics.median(ours), statistics.median(theirs)
    print(f"one certificate per process, P-256 CA key, {runs} runs each, medians:")
    print(f"  iranpki cert issue   {o:8.1f} ms   (start-up, workspace, key decryption, checks, store, audit)")
    print(f"  openssl x509 -req    {th:8.1f} ms")
    print(f"  ratio iranpki/openssl {o / th:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--cli-runs", type=int, default=15, help="processes per side for the per-process rows")
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
    if args.cli_runs > 0:
        per_process(base, args.cli_runs)


if __name__ == "__main__":
    main()

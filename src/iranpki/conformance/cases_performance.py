"""Performance cases: operations per second and p50/p99 latency, after a warm-up, in one session.

The bounds a case states come from the class of device the lab tests, chosen by the
environment variable ``IRANPKI_CONFORMANCE_DEVICE_CLASS`` in the workers (``hsm``, the default, or
``smartcard``). They are floors a device of that class must clear to serve its role in the
national PKI, not targets:

* ``hsm``: an HSM signs for a CA, an OCSP responder or a TSA, where DESIGN.md measures
  thousands of responses per second per core. A p50 of 20 ms for RSA-2048 (50 signatures/s in
  one session) and 10 ms for ECDSA P-256 is far below any HSM sold for that use (network HSMs
  add about 1-5 ms of round trip), so a device above them is broken or throttled.
* ``smartcard``: a citizen's card or USB token signs documents one at a time; 2 s and 1 s p50.

One bound holds for every class and needs no table: hashing 64 bytes (C_Digest, CKM_SHA256)
must cost about one round trip to the device, like C_GenerateRandom of 32 bytes. Both carry a
few bytes each way and the work itself is microseconds on any device, so a digest whose p50
is more than 10 times the round trip's, and more than 5 ms above it, means the device stalls
on operations.
"""

from __future__ import annotations

import os
import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any

from .model import CaseFailed, Outcome, Verdict, case
from .runner import Context

__all__: list[str] = []

WARMUP = 20
SAMPLES = 200
# A slow device is judged on fewer samples rather than holding the run: at most this long each
# for the warm-up and the measurement, and never fewer than MIN_SAMPLES.
WARMUP_S = 0.5
MEASURE_S = 2.0
MIN_SAMPLES = 20
# p50 bounds in milliseconds per device class and operation.
SIGN_P50_MS = {
    "hsm": {"rsa2048": 20.0, "p256": 10.0},
    "smartcard": {"rsa2048": 2000.0, "p256": 1000.0},
}
DIGEST_RATIO = 10.0
DIGEST_SLACK_MS = 5.0


def _device_class() -> str:
    cls = os.environ.get("IRANPKI_CONFORMANCE_DEVICE_CLASS", "hsm")
    if cls not in SIGN_P50_MS:
        raise ValueError(f"IRANPKI_CONFORMANCE_DEVICE_CLASS {cls!r}; must be one of {', '.join(SIGN_P50_MS)}")
    return cls


def _latencies(op: Callable[[], Any], samples: int = SAMPLES) -> dict[str, float]:
    """p50, p99 (ms) and ops/s of ``op`` after a warm-up."""
    t0 = time.perf_counter()
    for _ in range(WARMUP):
        op()
        if time.perf_counter() - t0 > WARMUP_S:
            break
    times: list[float] = []
    t0 = time.perf_counter()
    while len(times) < samples:
        t = time.perf_counter()
        op()
        times.append((time.perf_counter() - t) * 1000)
        if len(times) >= MIN_SAMPLES and t - t0 > MEASURE_S:
            break
    total = time.perf_counter() - t0
    q = statistics.quantiles(times, n=100, method="inclusive")
    return {"p50_ms": round(statistics.median(times), 4), "p99_ms": round(q[98], 4),
            "ops_per_s": round(len(times) / total, 1), "samples": len(times)}


def _signer(ctx: Context, kind: str) -> Callable[[], Any]:
    from pkcs11 import Attribute, KeyType, Mechanism
    from pkcs11.util.ec import encode_named_curve_parameters

    if kind == "rsa2048":
        _, priv = ctx.session.generate_keypair(KeyType.RSA, 2048, store=False)
        data = secrets.token_bytes(64)
        return lambda: priv.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
    params = ctx.session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
    _, priv = params.generate_keypair(store=False)
    digest = secrets.token_bytes(32)
    # SoftHSM2 and others lack hash-and-sign ECDSA: the host hashes (DESIGN.md), so CKM_ECDSA.
    return lambda: priv.sign(digest, mechanism=Mechanism.ECDSA)


def sign_latency(ctx: Context, kind: str) -> Outcome:
    cls = _device_class()
    bound = SIGN_P50_MS[cls][kind]
    m = _latencies(_signer(ctx, kind))
    m["bound_p50_ms"] = bound
    if m["p50_ms"] > bound:
        raise CaseFailed(f"{kind} sign p50 {m['p50_ms']:.2f} ms is above the {bound:g} ms a device of class "
                         f"{cls!r} must reach ({m['ops_per_s']:g} signatures/s in one session)")
    return Outcome(Verdict.PASS, f"{kind} sign p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms, "
                                 f"{m['ops_per_s']:g}/s (bound p50 {bound:g} ms, class {cls})", measurements=m)


case("PERF-SIGN-RSA2048", category="performance", clause="PKCS#11 2.40 base 5.12 (C_Sign)",
     title="RSA-2048 PKCS#1 v1.5 SHA-256 signatures: p50 within the device class's bound",
     needs=("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS"), kind="rsa2048")(sign_latency)
case("PERF-SIGN-P256", category="performance", clause="PKCS#11 2.40 base 5.12 (C_Sign)",
     title="ECDSA P-256 signatures of a host hash: p50 within the device class's bound",
     needs=("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"), kind="p256")(sign_latency)


@case("PERF-DIGEST-ROUNDTRIP", category="performance", clause="PKCS#11 2.40 base 5.11 (C_Digest)",
      title="Hashing 64 bytes costs about one round trip (C_GenerateRandom of 32 bytes)",
      needs=("CKM_SHA256",))
def digest_roundtrip(ctx: Context) -> Outcome:
    from pkcs11 import Mechanism

    data = secrets.token_bytes(64)
    digest = _latencies(lambda: ctx.session.digest(data, mechanism=Mechanism.SHA256))
    trip = _latencies(lambda: ctx.session.generate_random(256))
    bound = max(DIGEST_RATIO * trip["p50_ms"], trip["p50_ms"] + DIGEST_SLACK_MS)
    m = {"digest_p50_ms": digest["p50_ms"], "digest_p99_ms": digest["p99_ms"],
         "random_p50_ms": trip["p50_ms"], "bound_p50_ms": round(bound, 4)}
    if digest["p50_ms"] > bound:
        raise CaseFailed(f"SHA-256 of 64 bytes takes {digest['p50_ms']:.2f} ms at p50 against "
                         f"{trip['p50_ms']:.2f} ms for a round trip (C_GenerateRandom); the bound is "
                         f"{bound:.2f} ms: the device stalls on operations")
    return Outcome(Verdict.PASS, f"digest p50 {digest['p50_ms']:.3f} ms, round trip p50 {trip['p50_ms']:.3f} ms",
                   measurements=m)


PROCESSES = 4
PROCESS_SIGNATURES = 300
# More clients must not mean less work done: with PROCESSES processes the device must sign at
# least this share of what one process gets (an OCSP responder or a TSA scales by processes,
# DESIGN.md). A device that serialises clients stays near 1; one that thrashes falls below.
SCALING_FLOOR = 0.8


@case("PERF-SIGN-P256-PROCESSES", category="performance", clause="PKCS#11 2.40 base 5.12 (C_Sign)",
      title=f"ECDSA P-256 signatures/s from 1 and {PROCESSES} processes: more clients never mean fewer signatures",
      needs=("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"))
def sign_processes(ctx: Context) -> Outcome:
    from .cases_stability import sign_in_processes

    one = PROCESS_SIGNATURES / sign_in_processes(ctx, 1, PROCESS_SIGNATURES)
    many = PROCESSES * PROCESS_SIGNATURES / sign_in_processes(ctx, PROCESSES, PROCESS_SIGNATURES)
    m = {"ops_per_s_1": round(one, 1), f"ops_per_s_{PROCESSES}": round(many, 1), "scaling": round(many / one, 3),
         "bound_scaling": SCALING_FLOOR}
    if many < SCALING_FLOOR * one:
        raise CaseFailed(f"{PROCESSES} processes made {many:.0f} signatures/s together against {one:.0f}/s from one; "
                         f"the floor is {SCALING_FLOOR:g} of one process's rate")
    return Outcome(Verdict.PASS, f"1 process {one:.0f}/s, {PROCESSES} processes {many:.0f}/s (x{many / one:.2f})",
                   measurements=m)

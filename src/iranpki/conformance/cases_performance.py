"""Performance cases: for each key type and mechanism, operations per second and p50/p99 latency
in one session after a warm-up, then the rate from N sessions (threads of one process) and from N
processes at once.

Each case passes when

* its p50 in one session is within the bound for the class of device the lab tests, chosen by
  the environment variable ``IRANPKI_CONFORMANCE_DEVICE_CLASS`` in the workers (``hsm``, the
  default, or ``smartcard``); and
* N sessions and N processes together do at least ``SCALING_FLOOR`` of one session's work: more
  clients must never mean fewer operations (an OCSP responder or a TSA scales by processes,
  docs/architecture.md). A device that serialises clients stays near 1; one that thrashes falls below.

The bounds (``BOUNDS``) are floors a device of that class must clear to serve its role in the
national PKI, not targets:

* ``hsm``: an HSM signs for a CA, an OCSP responder or a TSA, where docs/architecture.md gives
  thousands of responses per second per core. A p50 of 20 ms for RSA-2048 (50 signatures/s in
  one session) and 10 ms for ECDSA P-256 is far below any HSM sold for that use (network HSMs
  add about 1-5 ms of round trip), so a device above them is broken or throttled. Larger keys
  get the cost of their size (RSA private operations grow about as the cube of the modulus).
* ``smartcard``: a citizen's card or USB token signs documents one at a time; 2 s and 1 s p50.

One bound holds for every class and needs no table: hashing 64 bytes (C_Digest, CKM_SHA256)
must cost about one round trip to the device, like C_GenerateRandom of 32 bytes. Both carry a
few bytes each way and the work itself is microseconds on any device, so a digest whose p50
is more than 10 times the round trip's, and more than 5 ms above it, means the device stalls
on operations.

How long each measurement runs: ``IRANPKI_CONFORMANCE_PERF_SECONDS`` (default 1.0) seconds,
after a warm-up of a third of that; N is ``IRANPKI_CONFORMANCE_PARALLEL`` (default 4).
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .context import Context
from .model import CaseFailed, Outcome, Verdict, case

__all__: list[str] = []

WARMUP = 20
SAMPLES = 100_000
SCALING_FLOOR = 0.8
SCALING_ATTEMPTS = 3
DIGEST_RATIO = 10.0
DIGEST_SLACK_MS = 5.0
DEVICE_CLASSES = ("hsm", "usb-token", "smartcard")
#: A USB token is a smart card chip in another case: it is held to the smart card's bounds.
_BOUNDS_OF = {"hsm": "hsm", "usb-token": "smartcard", "smartcard": "smartcard"}


def _device_class() -> str:
    cls = os.environ.get("IRANPKI_CONFORMANCE_DEVICE_CLASS", "hsm")
    if cls not in DEVICE_CLASSES:
        raise ValueError(f"IRANPKI_CONFORMANCE_DEVICE_CLASS {cls!r}; must be one of {', '.join(DEVICE_CLASSES)}")
    return cls


def _env_number(name: str, default: float, low: float, kind: type = float) -> Any:
    text = os.environ.get(name)
    if text is None:
        return kind(default)
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise ValueError(f"{name} {text!r}; must be a {kind.__name__} of at least {low:g}")
    return value


def _seconds() -> float:
    return _env_number("IRANPKI_CONFORMANCE_PERF_SECONDS", 1.0, 0.05)


def _parallel() -> int:
    return _env_number("IRANPKI_CONFORMANCE_PARALLEL", 4, 2, int)


def _latencies(op: Callable[[], Any], min_samples: int = 20) -> dict[str, float]:
    """p50, p99 (ms) and ops/s of ``op`` in this thread after a warm-up. A slow device is judged
    on fewer samples rather than holding the run, but never fewer than ``min_samples``."""
    seconds = _seconds()
    t0 = time.perf_counter()
    for _ in range(WARMUP):
        op()
        if time.perf_counter() - t0 > seconds / 3:
            break
    times: list[float] = []
    t0 = time.perf_counter()
    while len(times) < SAMPLES:
        t = time.perf_counter()
        op()
        times.append((time.perf_counter() - t) * 1000)
        if len(times) >= min_samples and t - t0 > seconds:
            break
    total = time.perf_counter() - t0
    q = statistics.quantiles(times, n=100, method="inclusive")
    return {"p50_ms": round(statistics.median(times), 4), "p99_ms": round(q[98], 4),
            "ops_per_s": round(len(times) / total, 1), "samples": len(times)}


def _count_for(op: Callable[[], Any], seconds: float) -> tuple[int, float]:
    """How many times ``op`` ran in about ``seconds``, and the seconds it took."""
    n = 0
    t0 = time.perf_counter()
    while True:
        op()
        n += 1
        took = time.perf_counter() - t0
        if took >= seconds:
            return n, took


# -- the operations ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    id: str
    title: str
    clause: str
    needs: tuple[str, ...]
    build: Callable[[Any], Callable[[], Any]]  # a session -> the operation, its keys made
    bounds_ms: dict[str, float]  # p50 bound per device class
    min_samples: int = 20
    # Whether N sessions and N processes are held to SCALING_FLOOR. RSA key generation is not: its
    # time is a prime search that varies by a factor of ten from one key to the next, so a
    # second's few keys cannot tell a device that slows down from bad luck.
    judge_scaling: bool = True


def _rsa(session: Any, bits: int, fresh: bool = False) -> tuple[Any, Any]:
    from pkcs11 import KeyType

    if fresh:
        return session.generate_keypair(KeyType.RSA, bits, store=False)
    return _reused(session, f"iranpki-perf-rsa{bits}",
                   lambda label: session.generate_keypair(KeyType.RSA, bits, store=False, label=label))


def _ec(session: Any, curve: str, fresh: bool = False) -> tuple[Any, Any]:
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_named_curve_parameters

    def generate(label: str | None) -> tuple[Any, Any]:
        params = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)}, local=True)
        return params.generate_keypair(store=False, label=label)

    return generate(None) if fresh else _reused(session, f"iranpki-perf-{curve}", generate)


def _reused(session: Any, label: str, generate: Callable[[str], tuple[Any, Any]]) -> tuple[Any, Any]:
    """The session key pair called ``label`` if this process made it already, else a new one.

    A measurement's keys are made once per process, in the first session that asks (the case's
    own, which lives as long as the worker), and found by label from every later session: a
    session object is visible to all sessions of the application that made it (PKCS#11 2.40 base
    4.4). Making them again for each of N sessions, each process and each repeated measurement
    cost up to 25 RSA-4096 key generations per case, whose prime search alone outlasted the
    worker's time limit on a loaded machine; what a case measures is the operation, not that."""
    from pkcs11 import ObjectClass
    from pkcs11.exceptions import NoSuchKey

    try:
        return (session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label),
                session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label))
    except NoSuchKey:
        return generate(label)


def _rsa_sign(bits: int, pss: bool) -> Callable[[Any], Callable[[], Any]]:
    def build(session: Any) -> Callable[[], Any]:
        from pkcs11 import MGF, Mechanism

        _, priv = _rsa(session, bits)
        data = secrets.token_bytes(64)
        if pss:
            param = (Mechanism.SHA256, MGF.SHA256, 32)
            return lambda: priv.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS_PSS, mechanism_param=param)
        return lambda: priv.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
    return build


def _rsa_verify(session: Any) -> Callable[[], Any]:
    from pkcs11 import Mechanism

    pub, priv = _rsa(session, 2048)
    data = secrets.token_bytes(64)
    sig = priv.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)

    def op() -> None:
        if not pub.verify(data, sig, mechanism=Mechanism.SHA256_RSA_PKCS):
            raise CaseFailed("C_Verify(CKM_SHA256_RSA_PKCS) rejected the device's own signature")
    return op


def _ecdsa_sign(curve: str, size: int) -> Callable[[Any], Callable[[], Any]]:
    def build(session: Any) -> Callable[[], Any]:
        from pkcs11 import Mechanism

        _, priv = _ec(session, curve)
        digest = secrets.token_bytes(size)
        # SoftHSM2 and others lack hash-and-sign ECDSA: the host hashes (docs/architecture.md), so CKM_ECDSA.
        return lambda: priv.sign(digest, mechanism=Mechanism.ECDSA)
    return build


def _ecdsa_verify(session: Any) -> Callable[[], Any]:
    from pkcs11 import Mechanism

    pub, priv = _ec(session, "secp256r1")
    digest = secrets.token_bytes(32)
    sig = priv.sign(digest, mechanism=Mechanism.ECDSA)

    def op() -> None:
        if not pub.verify(digest, sig, mechanism=Mechanism.ECDSA):
            raise CaseFailed("C_Verify(CKM_ECDSA) rejected the device's own signature")
    return op


def _oaep(decrypt: bool) -> Callable[[Any], Callable[[], Any]]:
    def build(session: Any) -> Callable[[], Any]:
        from pkcs11 import MGF, Mechanism

        # SHA-1 OAEP: the one every device offers (SoftHSM2 refuses SHA-2 OAEP); the cost is the RSA.
        param = (Mechanism.SHA_1, MGF.SHA1, None)
        pub, priv = _rsa(session, 2048)
        data = secrets.token_bytes(32)
        if not decrypt:
            return lambda: pub.encrypt(data, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=param)
        blob = pub.encrypt(data, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=param)
        return lambda: priv.decrypt(blob, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=param)
    return build


def _aes(mode: str) -> Callable[[Any], Callable[[], Any]]:
    def build(session: Any) -> Callable[[], Any]:
        from pkcs11 import KeyType, Mechanism
        from pkcs11.mechanisms import GCMParams  # type: ignore[attr-defined]

        key = session.generate_key(KeyType.AES, 256, store=False)
        data = secrets.token_bytes(1024)
        if mode == "CBC":
            iv = secrets.token_bytes(16)
            return lambda: key.encrypt(data, mechanism=Mechanism.AES_CBC, mechanism_param=iv)
        return lambda: key.encrypt(data, mechanism=Mechanism.AES_GCM,
                                   mechanism_param=GCMParams(secrets.token_bytes(12), b"", 128))
    return build


def _hmac(session: Any) -> Callable[[], Any]:
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

    # A key as long as SHA-256's block (RFC 2104 section 3), as FUNC-HMAC-SHA256 makes it.
    key = session.create_object({
        Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
        Attribute.VALUE: secrets.token_bytes(64), Attribute.TOKEN: False, Attribute.SIGN: True})
    data = secrets.token_bytes(1024)
    return lambda: key.sign(data, mechanism=Mechanism.SHA256_HMAC)


def _digest(session: Any) -> Callable[[], Any]:
    from pkcs11 import Mechanism

    data = secrets.token_bytes(1024)
    return lambda: session.digest(data, mechanism=Mechanism.SHA256)


def _keygen(kind: str) -> Callable[[Any], Callable[[], Any]]:
    def build(session: Any) -> Callable[[], Any]:
        def op() -> None:
            pub, priv = _rsa(session, 2048, fresh=True) if kind == "rsa" else _ec(session, "secp256r1", fresh=True)
            priv.destroy()
            pub.destroy()
        return op
    return build


def _random(session: Any) -> Callable[[], Any]:
    return lambda: session.generate_random(256)


C = "PKCS#11 2.40 base"
OPS = [
    Op("PERF-SIGN-RSA2048-PKCS1", "RSA-2048 PKCS#1 v1.5 SHA-256 signatures", f"{C} 5.12 (C_Sign)",
       ("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS"), _rsa_sign(2048, False), {"hsm": 20, "smartcard": 2000}),
    Op("PERF-SIGN-RSA3072-PKCS1", "RSA-3072 PKCS#1 v1.5 SHA-256 signatures", f"{C} 5.12 (C_Sign)",
       ("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS"), _rsa_sign(3072, False), {"hsm": 50, "smartcard": 4000}),
    Op("PERF-SIGN-RSA4096-PKCS1", "RSA-4096 PKCS#1 v1.5 SHA-256 signatures", f"{C} 5.12 (C_Sign)",
       ("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS"), _rsa_sign(4096, False), {"hsm": 100, "smartcard": 8000}),
    Op("PERF-SIGN-RSA2048-PSS", "RSA-2048 PSS SHA-256 signatures", f"{C} 5.12 (C_Sign)",
       ("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS_PSS"), _rsa_sign(2048, True), {"hsm": 20, "smartcard": 2000}),
    Op("PERF-SIGN-RSA3072-PSS", "RSA-3072 PSS SHA-256 signatures", f"{C} 5.12 (C_Sign)",
       ("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS_PSS"), _rsa_sign(3072, True), {"hsm": 50, "smartcard": 4000}),
    Op("PERF-VERIFY-RSA2048-PKCS1", "RSA-2048 PKCS#1 v1.5 SHA-256 verifications", f"{C} 5.13 (C_Verify)",
       ("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS"), _rsa_verify, {"hsm": 5, "smartcard": 500}),
    Op("PERF-SIGN-ECDSA-P256", "ECDSA P-256 signatures of a host hash", f"{C} 5.12 (C_Sign)",
       ("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"), _ecdsa_sign("secp256r1", 32), {"hsm": 10, "smartcard": 1000}),
    Op("PERF-SIGN-ECDSA-P384", "ECDSA P-384 signatures of a host hash", f"{C} 5.12 (C_Sign)",
       ("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"), _ecdsa_sign("secp384r1", 48), {"hsm": 20, "smartcard": 1500}),
    Op("PERF-VERIFY-ECDSA-P256", "ECDSA P-256 verifications", f"{C} 5.13 (C_Verify)",
       ("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"), _ecdsa_verify, {"hsm": 10, "smartcard": 1000}),
    Op("PERF-DECRYPT-RSA2048-OAEP", "RSA-2048 OAEP decryptions", f"{C} 5.9 (C_Decrypt)",
       ("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_RSA_PKCS_OAEP"), _oaep(True), {"hsm": 20, "smartcard": 2000}),
    Op("PERF-ENCRYPT-RSA2048-OAEP", "RSA-2048 OAEP encryptions", f"{C} 5.8 (C_Encrypt)",
       ("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_RSA_PKCS_OAEP"), _oaep(False), {"hsm": 5, "smartcard": 500}),
    Op("PERF-ENCRYPT-AES256-CBC", "AES-256-CBC encryptions of 1 KiB", f"{C} 5.8 (C_Encrypt)",
       ("CKM_AES_KEY_GEN", "CKM_AES_CBC"), _aes("CBC"), {"hsm": 5, "smartcard": 200}),
    Op("PERF-ENCRYPT-AES256-GCM", "AES-256-GCM encryptions of 1 KiB", f"{C} 5.8 (C_Encrypt); 3.0 current 2.14",
       ("CKM_AES_KEY_GEN", "CKM_AES_GCM"), _aes("GCM"), {"hsm": 5, "smartcard": 200}),
    Op("PERF-MAC-HMAC-SHA256", "HMAC-SHA256 of 1 KiB", f"{C} 5.12 (C_Sign)",
       ("CKM_SHA256_HMAC",), _hmac, {"hsm": 5, "smartcard": 200}),
    Op("PERF-DIGEST-SHA256", "SHA-256 of 1 KiB", f"{C} 5.11 (C_Digest)",
       ("CKM_SHA256",), _digest, {"hsm": 5, "smartcard": 200}),
    Op("PERF-RANDOM-32", "C_GenerateRandom of 32 bytes", f"{C} 5.15 (C_GenerateRandom)",
       (), _random, {"hsm": 5, "smartcard": 200}),
    Op("PERF-KEYGEN-EC-P256", "ECDSA P-256 key pair generations", f"{C} 5.14 (C_GenerateKeyPair)",
       ("CKM_EC_KEY_PAIR_GEN",), _keygen("ec"), {"hsm": 50, "smartcard": 5000}, min_samples=10),
    Op("PERF-KEYGEN-RSA2048", "RSA-2048 key pair generations", f"{C} 5.14 (C_GenerateKeyPair)",
       ("CKM_RSA_PKCS_KEY_PAIR_GEN",), _keygen("rsa"), {"hsm": 2000, "smartcard": 60000}, min_samples=5,
       judge_scaling=False),
]
OPS_BY_ID = {o.id: o for o in OPS}


# -- N sessions and N processes ----------------------------------------------------------------

def _in_sessions(ctx: Context, op: Op, n: int, seconds: float) -> float:
    """Operations per second with ``n`` sessions of this process open, each with its own keys and
    operations taking turns: a device must not slow down as an application opens sessions.

    The turns come from one thread: python-pkcs11 calls C_Initialize with NULL, which tells the
    module the application will not call it from several threads at once (PKCS#11 2.40 base
    5.4), and SoftHSM2 then crashes on concurrent calls. Concurrency is measured by processes."""
    sessions = []
    try:
        for _ in range(n):
            sessions.append(ctx.token.open(rw=True))
        ops = [op.build(s) for s in sessions]
        for o in ops:
            o()
        turn = iter(range(1 << 62))
        return _rate(lambda: ops[next(turn) % n](), seconds)
    finally:
        # Closed here, not after the case: one session's rate is measured again with them gone.
        for s in sessions:
            s.close()


def _rate(op: Callable[[], Any], seconds: float) -> float:
    count, took = _count_for(op, seconds)
    return count / took


_WORKER = "from iranpki.conformance.cases_performance import _process_main; _process_main()"


class _Pool:
    """``n`` processes, each logged in to the token in a session of its own, that run an
    operation for a while on command. Started once per worker (SoftHSM2 lost its tokens when
    processes initialised it at the same moment, so one after another) and kept for the next
    case; they stay in the worker's process group, so a worker killed for a hang takes them."""

    def __init__(self, ctx: Context, n: int) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        for i in range(n):
            p = subprocess.Popen([sys.executable, "-c", _WORKER, ctx.module_path, ctx.token_label],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.procs.append(p)
            self._send(p, ctx.user_pin)
            self._expect(i, "ready", "log in")

    @staticmethod
    def _send(p: subprocess.Popen[str], line: str) -> None:
        assert p.stdin is not None
        p.stdin.write(line + "\n")
        p.stdin.flush()

    def _expect(self, i: int, word: str, what: str) -> str:
        p = self.procs[i]
        assert p.stdout is not None and p.stderr is not None
        line = p.stdout.readline().strip()
        if not line.startswith(word):
            self.close()
            last = (p.stderr.read().strip().splitlines() or ["no message"])[-1]
            raise CaseFailed(f"process {i + 1} could not {what} (status {p.poll()}: {line or last})")
        return line

    def run(self, op: Op, seconds: float) -> float:
        for p in self.procs:
            self._send(p, f"{op.id} {seconds}")
        for i in range(len(self.procs)):
            self._expect(i, "built", f"make its keys for {op.id}")
        for p in self.procs:
            self._send(p, "go")
        total = 0.0
        for i in range(len(self.procs)):
            count, took = self._expect(i, "done", f"run {op.id}").split()[1:]
            total += int(count) / float(took)
        return total

    def close(self) -> None:
        for p in self.procs:
            try:
                if p.stdin:
                    p.stdin.close()
                p.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                p.kill()
                p.wait()


def _process_main() -> None:
    """One process of a :class:`_Pool`: argv module, token label; the PIN on the first line of
    stdin, then per operation "ID SECONDS" and "go"; prints ready, built, done COUNT SECONDS."""
    import pkcs11

    module, label = sys.argv[1], sys.argv[2]
    pin = sys.stdin.readline().rstrip("\n")
    tokens = [t for t in pkcs11.lib(module).get_tokens() if t.label == label]
    if not tokens:
        sys.exit(f"no token {label!r} in {module}")
    with tokens[0].open(rw=True, user_pin=pin) as session:
        print("ready", flush=True)
        for line in sys.stdin:
            op_id, seconds = line.split()
            op = OPS_BY_ID[op_id].build(session)
            op()
            print("built", flush=True)
            sys.stdin.readline()
            count, took = _count_for(op, float(seconds))
            print(f"done {count} {took:.6f}", flush=True)


def _pool(ctx: Context, n: int) -> _Pool:
    pool = ctx.cache.get("perf_pool")
    if pool is None or len(pool.procs) != n or any(p.poll() is not None for p in pool.procs):
        if pool is not None:
            pool.close()
        pool = ctx.cache["perf_pool"] = _Pool(ctx, n)
    return pool


def _parallel_room(ctx: Context) -> int:
    """N for the N-session and N-process measurements: IRANPKI_CONFORMANCE_PARALLEL, but no more
    than the token declares room for (CK_TOKEN_INFO ulMaxRwSessionCount less those open), counting
    N sessions of this process and one of each of N processes at once. Below 2 there is nothing
    to compare, and the scaling is not measured."""
    if "perf_n" not in ctx.cache:
        from .cases_functional import sessions_allowed

        want = _parallel()
        _, rw = sessions_allowed(ctx, 2 * want)
        ctx.cache["perf_n"] = min(want, rw // 2)
    return int(ctx.cache["perf_n"])


def _parallel_rates(ctx: Context, op: Op, n: int, seconds: float) -> tuple[float, float]:
    return round(_in_sessions(ctx, op, n, seconds), 1), round(_pool(ctx, n).run(op, seconds), 1)


def scaling_holds(attempt: tuple[float, float, float], judged: bool = True) -> bool:
    """Whether one attempt's ``(one session, N sessions, N processes)`` rates, measured together,
    keep the scaling floor: both N-rates at least SCALING_FLOOR of that attempt's one-session rate."""
    one, sessions, processes = attempt
    return not judged or min(sessions, processes) >= SCALING_FLOOR * one


def _key_size_of(op_id: str) -> tuple[str, int] | None:
    """The generating mechanism and key size (bits) an operation's keys need, read off its id
    (RSA2048, ECDSA-P256, EC-P256, AES256), to hold against what the device declares."""
    import re

    for pattern, mech in ((r"RSA(\d+)", "CKM_RSA_PKCS_KEY_PAIR_GEN"), (r"-P(\d+)", "CKM_EC_KEY_PAIR_GEN"),
                          (r"AES(\d+)", "CKM_AES_KEY_GEN")):
        found = re.search(pattern, op_id)
        if found:
            return mech, int(found.group(1))
    return None


def measure(ctx: Context, op_id: str) -> Outcome:
    from .cases_functional import need_key_size

    op = OPS_BY_ID[op_id]
    sized = _key_size_of(op_id)
    if sized:
        need_key_size(ctx, *sized)  # a key size the device does not offer is not applicable, not slow
    cls = _device_class()
    bound = op.bounds_ms[_BOUNDS_OF[cls]]
    n, seconds = _parallel_room(ctx), _seconds()
    m = _latencies(op.build(ctx.session), op.min_samples)
    one = m["ops_per_s"]
    m["bound_p50_ms"] = bound
    problems = []
    if m["p50_ms"] > bound:
        problems.append(f"p50 {m['p50_ms']:.2f} ms in one session is above the {bound:g} ms a device of class "
                        f"{cls!r} must reach ({one:g}/s)")
    if n < 2:
        # A token with room for one more session at most has no N sessions to compare.
        m["parallel"] = float(n)
        if problems:
            raise CaseFailed(f"{op.title}: " + "; ".join(problems))
        return Outcome(Verdict.PASS, f"p50 {m['p50_ms']:.3f} ms, p99 {m['p99_ms']:.3f} ms, {one:g}/s in one session "
                                     f"(bound p50 {bound:g} ms, class {cls}); N sessions and N processes not measured: "
                                     f"the token declares room for {n} more read-write session(s) (CK_TOKEN_INFO)",
                       measurements=m)

    def scales(attempt: tuple[float, float, float]) -> bool:
        return scaling_holds(attempt, op.judge_scaling)

    try:
        # Each attempt measures one session, then N sessions, then N processes, close together, and
        # is judged on its own: its N-rates against its own one-session rate, never figures from
        # different attempts. Up to SCALING_ATTEMPTS attempts, because these machines are shared
        # and one slow slice is not a device that slows down; a faulty device falls short in each.
        attempts = [(one, *_parallel_rates(ctx, op, n, seconds))]
        while not scales(attempts[-1]) and len(attempts) < SCALING_ATTEMPTS:
            again = round(_rate(op.build(ctx.session), seconds), 1)
            attempts.append((again, *_parallel_rates(ctx, op, n, seconds)))
        one, sessions, processes = next((a for a in attempts if scales(a)), attempts[-1])
        attempts_made = len(attempts)
        if attempts_made > 1:
            m["attempts"] = attempts_made
            m["one_session_rate_judged"] = one
    except CaseFailed:
        ctx.cache.pop("perf_pool", None)
        raise
    m[f"ops_per_s_{n}_sessions"], m[f"ops_per_s_{n}_processes"] = sessions, processes
    m["bound_scaling"] = SCALING_FLOOR if op.judge_scaling else 0.0
    for what, rate in ((f"{n} sessions", sessions), (f"{n} processes", processes)):
        if op.judge_scaling and rate < SCALING_FLOOR * one:
            problems.append(f"{what} made {rate:.0f}/s together against {one:.0f}/s from one session measured "
                            f"beside it, short in each of {attempts_made} attempts; the floor is {SCALING_FLOOR:g} "
                            "of one session's rate")
    if problems:
        raise CaseFailed(f"{op.title}: " + "; ".join(problems))
    return Outcome(Verdict.PASS, f"p50 {m['p50_ms']:.3f} ms, p99 {m['p99_ms']:.3f} ms, {one:g}/s in one session "
                                 f"(bound p50 {bound:g} ms, class {cls}); {sessions:g}/s from {n} sessions, "
                                 f"{processes:g}/s from {n} processes", measurements=m)


for _op in OPS:
    case(_op.id, category="performance", clause=_op.clause,
         title=f"{_op.title}: p50 within the device class's bound, N sessions and N processes never do less",
         needs=_op.needs, op_id=_op.id)(measure)


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

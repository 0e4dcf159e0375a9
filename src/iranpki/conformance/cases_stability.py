"""Stability cases: a device that works once must keep working, and give back what it takes.

PKCS#11 2.40 base specification section 5.6 (C_CloseSession: "When a session is closed, all
session objects created by the session are destroyed automatically", and the handle becomes
invalid), section 5.2 (C_Finalize and C_Initialize again) and the general rule of section 5.1
that a function's return value says what happened. A long run of signatures must give valid
signatures every time and leave the token's objects as they were.
"""

from __future__ import annotations

import ctypes
import secrets
import time
from typing import Any

from .context import CKR, Context, ckr_name
from .model import CaseFailed, Outcome, Verdict, case

__all__: list[str] = []

CKF_RW_SESSION = 0x2
CKF_SERIAL_SESSION = 0x4
SOAK_SIGNATURES = 2000
CHURN_SESSIONS = 300


class _SessionInfo(ctypes.Structure):
    _fields_ = [("slotID", ctypes.c_ulong), ("state", ctypes.c_ulong), ("flags", ctypes.c_ulong),
                ("ulDeviceError", ctypes.c_ulong)]


def _p256_pair(ctx: Context) -> tuple[Any, Any]:
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_named_curve_parameters

    params = ctx.session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
    return params.generate_keypair(store=False)


def _p256_verifier(pub: Any) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec
    from pkcs11 import Attribute

    raw = pub[Attribute.EC_POINT]
    # CKA_EC_POINT is the DER OCTET STRING around the uncompressed point (PKCS#11 2.40
    # current mechanisms section 2.3.3); SoftHSM2 and most HSMs follow it, a few give it bare.
    if raw[:1] == b"\x04" and len(raw) == 2 + 65 and raw[1] == 65:
        raw = raw[2:]
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)


@case("STAB-SIGN-SOAK", category="stability", clause="PKCS#11 2.40 base 5.12 (C_Sign)",
      title=f"{SOAK_SIGNATURES} ECDSA P-256 signatures in a row: every one valid, no object left behind",
      needs=("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"))
def sign_soak(ctx: Context) -> Outcome:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    from pkcs11 import Mechanism

    before = len(list(ctx.session.get_objects()))
    pub, priv = _p256_pair(ctx)
    verifier = _p256_verifier(pub)
    bad = 0
    t0 = time.perf_counter()
    for _ in range(SOAK_SIGNATURES):
        digest = secrets.token_bytes(32)
        sig = priv.sign(digest, mechanism=Mechanism.ECDSA)
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        try:
            verifier.verify(encode_dss_signature(r, s), digest, ec.ECDSA(_Prehashed()))
        except Exception:  # noqa: BLE001 - any refusal is a bad signature
            bad += 1
    took = time.perf_counter() - t0
    pub.destroy(), priv.destroy()
    after = len(list(ctx.session.get_objects()))
    if bad:
        raise CaseFailed(f"{bad} of {SOAK_SIGNATURES} signatures did not verify against the key's public key")
    if after != before:
        raise CaseFailed(f"the token showed {before} objects before the soak and {after} after; expected no change")
    return Outcome(Verdict.PASS, f"{SOAK_SIGNATURES} signatures, all valid, objects unchanged ({before})",
                   measurements={"signatures": SOAK_SIGNATURES, "ops_per_s": round(SOAK_SIGNATURES / took, 1)})


def _Prehashed() -> Any:  # noqa: N802 - reads like the class it returns
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    return Prehashed(hashes.SHA256())


@case("STAB-SESSION-CHURN", category="stability", clause="PKCS#11 2.40 base 5.6 (C_OpenSession, C_CloseSession)",
      title=f"{CHURN_SESSIONS} sessions opened and closed: each closed handle is invalid afterwards")
def session_churn(ctx: Context) -> Outcome:
    slot = ctypes.c_ulong(ctx.token.slot.slot_id)
    handles: set[int] = set()
    for i in range(CHURN_SESSIONS):
        h = ctypes.c_ulong()
        rv = ctx.raw("C_OpenSession", slot, ctypes.c_ulong(CKF_SERIAL_SESSION | CKF_RW_SESSION), None, None,
                     ctypes.byref(h))
        if rv != CKR["CKR_OK"]:
            raise CaseFailed(f"C_OpenSession number {i + 1} returned {ckr_name(rv)}; expected CKR_OK")
        handles.add(h.value)
        rv = ctx.raw("C_CloseSession", ctypes.c_ulong(h.value))
        if rv != CKR["CKR_OK"]:
            raise CaseFailed(f"C_CloseSession of handle {h.value} returned {ckr_name(rv)}; expected CKR_OK")
        info = _SessionInfo()
        rv = ctx.raw("C_GetSessionInfo", ctypes.c_ulong(h.value), ctypes.byref(info))
        if rv != CKR["CKR_SESSION_HANDLE_INVALID"]:
            raise CaseFailed(f"C_GetSessionInfo on closed session handle {h.value} returned {ckr_name(rv)}; "
                             "expected CKR_SESSION_HANDLE_INVALID (the session was not released)")
    return Outcome(Verdict.PASS, f"{CHURN_SESSIONS} sessions opened and closed, every closed handle invalid",
                   measurements={"sessions": CHURN_SESSIONS, "distinct_handles": len(handles)})


@case("STAB-SESSION-OBJECTS-DESTROYED", category="stability",
      clause="PKCS#11 2.40 base 5.6 (C_CloseSession destroys the session's objects)",
      title="A session object does not outlive the session that created it")
def session_objects_destroyed(ctx: Context) -> Outcome:
    from pkcs11 import Attribute, ObjectClass

    label = f"iranpki-conformance-{secrets.token_hex(6)}"
    other = ctx.token.open(rw=True)
    obj = other.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False,
                               Attribute.LABEL: label, Attribute.VALUE: b"session object"})
    seen = len(list(ctx.session.get_objects({Attribute.LABEL: label})))
    other.close()
    left = list(ctx.session.get_objects({Attribute.LABEL: label}))
    if left:
        for o in left:
            ctx.track(o)
        raise CaseFailed(f"{len(left)} session object(s) labelled {label!r} are still on the token after "
                         "C_CloseSession of the session that created them; expected none")
    del obj
    if seen != 1:
        raise CaseFailed(f"the session object was visible {seen} time(s) from another session of the application "
                         "before the close; expected once (PKCS#11 2.40 base 4.4: session objects are "
                         "visible to every session of the application)")
    return Outcome(Verdict.PASS, "the session object was gone after C_CloseSession")


CKU_USER = 1
CONCURRENT_PROCESSES = 4
CONCURRENT_SIGNATURES = 300


class _TokenInfo(ctypes.Structure):
    # CK_TOKEN_INFO (PKCS#11 2.40 base 3.2): only the label is read; the rest is room.
    _fields_ = [("label", ctypes.c_char * 32), ("rest", ctypes.c_byte * 512)]


def _expect(rv: int, what: str) -> None:
    if rv != CKR["CKR_OK"]:
        raise CaseFailed(f"{what} returned {ckr_name(rv)}; expected CKR_OK")


@case("STAB-REINITIALIZE", category="stability", clause="PKCS#11 2.40 base 5.4 (C_Finalize, C_Initialize)",
      title="C_Finalize then C_Initialize again: the token is found, a login and a call work", isolated=True)
def reinitialize(ctx: Context) -> Outcome:
    raw = ctx.raw
    _expect(raw("C_Finalize", None), "C_Finalize")
    _expect(raw("C_Initialize", None), "C_Initialize after C_Finalize")
    count = ctypes.c_ulong()
    _expect(raw("C_GetSlotList", ctypes.c_ubyte(1), None, ctypes.byref(count)), "C_GetSlotList (count)")
    slots = (ctypes.c_ulong * max(count.value, 1))()
    _expect(raw("C_GetSlotList", ctypes.c_ubyte(1), slots, ctypes.byref(count)), "C_GetSlotList")
    found = None
    for slot in slots[:count.value]:
        info = _TokenInfo()
        _expect(raw("C_GetTokenInfo", ctypes.c_ulong(slot), ctypes.byref(info)), "C_GetTokenInfo")
        if info.label.decode("utf-8", "replace").rstrip() == ctx.token_label:
            found = slot
    if found is None:
        raise CaseFailed(f"after C_Initialize again no slot holds token {ctx.token_label!r}")
    h = ctypes.c_ulong()
    _expect(raw("C_OpenSession", ctypes.c_ulong(found), ctypes.c_ulong(CKF_SERIAL_SESSION | CKF_RW_SESSION), None,
                None, ctypes.byref(h)), "C_OpenSession after C_Initialize again")
    pin = ctx.user_pin.encode()
    _expect(raw("C_Login", h, ctypes.c_ulong(CKU_USER), ctypes.create_string_buffer(pin, len(pin)),
                ctypes.c_ulong(len(pin))), "C_Login after C_Initialize again")
    buf = ctypes.create_string_buffer(32)
    _expect(raw("C_GenerateRandom", h, buf, ctypes.c_ulong(32)), "C_GenerateRandom after C_Initialize again")
    _expect(raw("C_CloseSession", h), "C_CloseSession")
    return Outcome(Verdict.PASS, f"finalised, initialised again, found token {ctx.token_label!r} in slot {found}, "
                                 "logged in and generated random data")


_CONCURRENT_WORKER = r"""
import secrets, sys
import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11.util.ec import encode_named_curve_parameters
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

module, label, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
pin = sys.stdin.readline().rstrip("\n")
tok = [t for t in pkcs11.lib(module).get_tokens() if t.label == label][0]
with tok.open(rw=True, user_pin=pin) as s:
    params = s.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                                        local=True)
    pub, priv = params.generate_keypair(store=False)
    raw = pub[Attribute.EC_POINT]
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw[2:] if len(raw) == 67 else raw)
    print("ready", flush=True)
    sys.stdin.readline()
    bad = 0
    for _ in range(n):
        d = secrets.token_bytes(32)
        sig = priv.sign(d, mechanism=Mechanism.ECDSA)
        try:
            key.verify(encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")), d,
                       ec.ECDSA(Prehashed(hashes.SHA256())))
        except Exception:
            bad += 1
print(bad)
"""


def sign_in_processes(ctx: Context, processes: int, signatures: int) -> float:
    """``processes`` processes each make ``signatures`` ECDSA P-256 signatures at the same time and
    check them; the seconds they took together. Raises CaseFailed with what went wrong."""
    import subprocess
    import sys

    # The processes start and log in one after another (hsm/README.md: SoftHSM2 lost its tokens
    # when processes initialised it at the same moment), then sign at the same time. They stay in
    # the worker's process group, so a worker killed for a hang takes them along.
    problems = []
    procs = []
    for i in range(processes):
        p = subprocess.Popen([sys.executable, "-c", _CONCURRENT_WORKER, ctx.module_path, ctx.token_label,
                              str(signatures)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write(ctx.user_pin + "\n")
        p.stdin.flush()
        procs.append(p)
        if p.stdout.readline().strip() != "ready":
            for q in procs:
                q.kill()
                q.wait()
            assert p.stderr is not None
            last = (p.stderr.read().strip().splitlines() or ["no message"])[-1]
            raise CaseFailed(f"process {i + 1} did not log in and make its key (status {p.returncode}: {last})")
    t0 = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.close()
    deadline = time.monotonic() + 20
    for i, p in enumerate(procs):
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            problems.append(f"process {i + 1} did not finish within 20 s")
            continue
        assert p.stdout is not None and p.stderr is not None
        out, err = p.stdout.read(), p.stderr.read()
        if p.returncode != 0:
            last = (err.strip().splitlines() or ["no message"])[-1]
            problems.append(f"process {i + 1} ended with status {p.returncode}: {last}")
        elif out.strip() != "0":
            problems.append(f"process {i + 1}: {out.strip()} of {signatures} signatures did not verify")
    took = time.perf_counter() - t0
    if problems:
        raise CaseFailed("; ".join(problems))
    return took


@case("STAB-CONCURRENT-PROCESSES", category="stability", clause="PKCS#11 2.40 base 5.1 (one application per process)",
      title=f"{CONCURRENT_PROCESSES} processes sign at once, {CONCURRENT_SIGNATURES} ECDSA P-256 signatures each, "
            "all valid", needs=("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"))
def concurrent_processes(ctx: Context) -> Outcome:
    took = sign_in_processes(ctx, CONCURRENT_PROCESSES, CONCURRENT_SIGNATURES)
    total = CONCURRENT_PROCESSES * CONCURRENT_SIGNATURES
    return Outcome(Verdict.PASS, f"{CONCURRENT_PROCESSES} processes made {total} valid signatures at once",
                   measurements={"processes": CONCURRENT_PROCESSES, "signatures": total,
                                 "ops_per_s": round(total / took, 1)})

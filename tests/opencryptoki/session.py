"""The conformance suite on openCryptoki's software token, then a direct call for each verdict
that is not a pass: the call the verdict is about, made here with ctypes on the module's own
C_ functions (python-pkcs11 only sets the stage: a session, a key), so that what the suite
reports is shown to be what the device does, not a mistake of the suite.

Run by tests/test_conformance_opencryptoki.py inside tests/opencryptoki/private-ock.sh (a
private pkcsslotd with one fresh software token):

    python session.py OUT_DIR

writes OUT_DIR/report.json (the suite's report), OUT_DIR/direct.json (per non-pass case id:
``confirmed`` and what the direct call ``saw``) and OUT_DIR/setpin.json (FUNC-SETPIN on a token
whose user PIN is openCryptoki's default, which its C_SetPIN will not take back).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import MGF, Attribute, KeyType, ObjectClass
from pkcs11 import Mechanism as M

from iranpki.conformance import REGISTRY, Verdict
from iranpki.conformance.runner import RunOptions, load_cases, run_suite, write_reports
from iranpki.keys import SecretSource

MODULE = str(next(Path("/usr/lib").glob("*/opencryptoki/libopencryptoki.so.0")))
LABEL = "Lab OCK"
SO_PIN = "87654321"  # openCryptoki's software token ships with this SO PIN
DEFAULT_USER_PIN = "12345678"  # ... and this user PIN, which its C_SetPIN refuses to set

# PKCS#11 2.40 return values and attributes the checks name (base §3.6, §4).
CKR_OK, CKR_ATTRIBUTE_READ_ONLY, CKR_ATTRIBUTE_TYPE_INVALID = 0x0, 0x10, 0x12
CKR_MECHANISM_INVALID, CKR_FUNCTION_FAILED = 0x70, 0x6
CKF_TOKEN_INITIALIZED = 0x400
CKA = {"CLASS": 0x0, "TOKEN": 0x1, "VALUE": 0x11, "KEY_TYPE": 0x100, "SENSITIVE": 0x103, "ENCRYPT": 0x104,
       "DECRYPT": 0x105, "VALUE_LEN": 0x161, "EXTRACTABLE": 0x162, "KEY_GEN_MECHANISM": 0x166,
       "WRAP_WITH_TRUSTED": 0x210}
CKO_SECRET_KEY, CKK_AES = 0x4, 0x1F


class CK_ATTRIBUTE(ctypes.Structure):  # noqa: N801 - PKCS#11's names
    _fields_ = [("type", ctypes.c_ulong), ("pValue", ctypes.c_void_p), ("ulValueLen", ctypes.c_ulong)]


class CK_MECHANISM(ctypes.Structure):  # noqa: N801
    _fields_ = [("mechanism", ctypes.c_ulong), ("pParameter", ctypes.c_void_p), ("ulParameterLen", ctypes.c_ulong)]


class CK_RSA_PKCS_OAEP_PARAMS(ctypes.Structure):  # noqa: N801
    _fields_ = [("hashAlg", ctypes.c_ulong), ("mgf", ctypes.c_ulong), ("source", ctypes.c_ulong),
                ("pSourceData", ctypes.c_void_p), ("ulSourceDataLen", ctypes.c_ulong)]


class CK_RSA_PKCS_PSS_PARAMS(ctypes.Structure):  # noqa: N801
    _fields_ = [("hashAlg", ctypes.c_ulong), ("mgf", ctypes.c_ulong), ("sLen", ctypes.c_ulong)]


class CK_TOKEN_INFO(ctypes.Structure):  # noqa: N801 - base §3.2, 160 bytes of text then numbers
    _fields_ = [("text", ctypes.c_char * 96), ("flags", ctypes.c_ulong), ("counts", ctypes.c_ulong * 10),
                ("versions", ctypes.c_ubyte * 4), ("utcTime", ctypes.c_char * 16)]


C = ctypes.CDLL(MODULE)  # the same module python-pkcs11 loads: one library state, one set of sessions
UL = ctypes.c_ulong


def template(**attrs: Any) -> tuple[ctypes.Array, list[Any]]:
    """A CK_ATTRIBUTE array; booleans are CK_BBOOL, ints CK_ULONG, bytes as they are."""
    keep: list[Any] = []
    arr = (CK_ATTRIBUTE * len(attrs))()
    for i, (name, value) in enumerate(attrs.items()):
        if isinstance(value, bool):
            buf: Any = ctypes.c_ubyte(1 if value else 0)
        elif isinstance(value, int):
            buf = UL(value)
        else:
            buf = ctypes.create_string_buffer(value, len(value))
        keep.append(buf)
        arr[i] = CK_ATTRIBUTE(CKA[name], ctypes.cast(ctypes.byref(buf), ctypes.c_void_p), ctypes.sizeof(buf))
    return arr, keep


def read_attribute(session: Any, handle: int, name: str) -> int:
    """C_GetAttributeValue of one attribute, its length only; returns the CK_RV."""
    attr = CK_ATTRIBUTE(CKA[name], None, 0)
    return C.C_GetAttributeValue(UL(session.handle), UL(handle), ctypes.byref(attr), UL(1))


def rv_named(detail: str) -> str:
    """The CKR_ name a verdict's detail gives as the module's answer."""
    found = re.search(r"(CKR_[A-Z_]+)", detail)
    assert found, f"the verdict names no return value: {detail}"
    return found.group(1)


CKR_BY_NAME = {"CKR_ATTRIBUTE_READ_ONLY": CKR_ATTRIBUTE_READ_ONLY, "CKR_ATTRIBUTE_TYPE_INVALID": CKR_ATTRIBUTE_TYPE_INVALID,
               "CKR_FUNCTION_FAILED": CKR_FUNCTION_FAILED}


def answered(rv: int, detail: str) -> dict[str, Any]:
    want = rv_named(detail)
    return {"confirmed": rv == CKR_BY_NAME.get(want), "saw": f"CK_RV 0x{rv:X} (the verdict says {want})"}


# -- one direct check per kind of non-pass verdict ------------------------------------------------

def mechanism_absent(session: Any, detail: str) -> dict[str, Any]:
    """N/A "the device does not claim X, Y": C_GetMechanismInfo on the slot answers
    CKR_MECHANISM_INVALID for at least one of them (a second call, apart from the list)."""
    names = re.search(r"does not claim (.+) in C_GetMechanismList", detail).group(1).split(", ")
    info = (UL * 3)()
    rvs = {n: C.C_GetMechanismInfo(UL(session.token.slot.slot_id), UL(M[n.removeprefix("CKM_")]), info)
           for n in names}
    return {"confirmed": any(rv == CKR_MECHANISM_INVALID for rv in rvs.values()),
            "saw": ", ".join(f"{n}: 0x{rv:X}" for n, rv in rvs.items()), "absent": sorted(
                n for n, rv in rvs.items() if rv == CKR_MECHANISM_INVALID)}


def key_gen_mechanism(session: Any, kind: str, size: int, detail: str) -> dict[str, Any]:
    """A generated key has no CKA_KEY_GEN_MECHANISM (base §4.7 gives every key one)."""
    if kind == "RSA":
        _, key = session.generate_keypair(KeyType.RSA, size, store=False)
    else:
        key = session.generate_key(KeyType.AES, size, store=False)
    return answered(read_attribute(session, key.handle, "KEY_GEN_MECHANISM"), detail)


def created_aes_value_len(session: Any, detail: str) -> dict[str, Any]:
    """An AES key made by C_CreateObject has no CKA_VALUE_LEN (mechs §2.8.2 lists it for AES keys)."""
    key = session.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                                 Attribute.VALUE: os.urandom(32), Attribute.TOKEN: False})
    return answered(read_attribute(session, key.handle, "VALUE_LEN"), detail)


def unwrap_extractable(session: Any, bits: int, detail: str) -> dict[str, Any]:
    """C_UnwrapKey with the smallest template that asks for an extractable, non-sensitive AES key
    is refused with CKR_ATTRIBUTE_READ_ONLY (base §4.9 lets an unwrap template give both)."""
    pub, priv = session.generate_keypair(KeyType.RSA, bits, store=False)
    target = session.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                                    Attribute.VALUE: os.urandom(32), Attribute.TOKEN: False,
                                    Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False})
    wrapped = pub.wrap_key(target, mechanism=M.RSA_PKCS_OAEP, mechanism_param=(M.SHA_1, MGF.SHA1, None))
    params = CK_RSA_PKCS_OAEP_PARAMS(M.SHA_1, MGF.SHA1, 1, None, 0)  # source CKZ_DATA_SPECIFIED, empty
    mech = CK_MECHANISM(M.RSA_PKCS_OAEP, ctypes.cast(ctypes.byref(params), ctypes.c_void_p), ctypes.sizeof(params))
    tmpl, keep = template(CLASS=CKO_SECRET_KEY, KEY_TYPE=CKK_AES, TOKEN=False, EXTRACTABLE=True, SENSITIVE=False)
    out = UL(0)
    blob = ctypes.create_string_buffer(wrapped, len(wrapped))
    rv = C.C_UnwrapKey(UL(session.handle), ctypes.byref(mech), UL(priv.handle), blob, UL(len(wrapped)), tmpl,
                       UL(len(keep)), ctypes.byref(out))
    return answered(rv, detail)


def wrap_with_trusted(session: Any, detail: str) -> dict[str, Any]:
    """C_CreateObject of an AES key with CKA_WRAP_WITH_TRUSTED (base §4.9) is refused as unknown."""
    tmpl, keep = template(CLASS=CKO_SECRET_KEY, KEY_TYPE=CKK_AES, VALUE=os.urandom(32), TOKEN=False,
                          WRAP_WITH_TRUSTED=True)
    out = UL(0)
    rv = C.C_CreateObject(UL(session.handle), tmpl, UL(len(keep)), ctypes.byref(out))
    return answered(rv, detail)


def wrap_then_decrypt(session: Any) -> dict[str, Any]:
    """The Tookan attack by hand: wrap a sensitive AES key with AES-ECB under a key that may also
    decrypt, then C_Decrypt the blob with that key: the plaintext is the sensitive key's value."""
    secret = os.urandom(32)
    target = session.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                                    Attribute.VALUE: secret, Attribute.TOKEN: False, Attribute.SENSITIVE: True,
                                    Attribute.EXTRACTABLE: True})
    kek = session.generate_key(KeyType.AES, 256, store=False, template={Attribute.WRAP: True, Attribute.DECRYPT: True})
    ecb = CK_MECHANISM(M.AES_ECB, None, 0)
    blob, size = ctypes.create_string_buffer(64), UL(64)
    rv_wrap = C.C_WrapKey(UL(session.handle), ctypes.byref(ecb), UL(kek.handle), UL(target.handle), blob,
                          ctypes.byref(size))
    plain, plain_size = ctypes.create_string_buffer(64), UL(64)
    rv_init = C.C_DecryptInit(UL(session.handle), ctypes.byref(ecb), UL(kek.handle))
    rv_dec = C.C_Decrypt(UL(session.handle), blob, size, plain, ctypes.byref(plain_size))
    revealed = plain.raw[:plain_size.value]
    return {"confirmed": rv_wrap == rv_init == rv_dec == CKR_OK and revealed == secret,
            "saw": f"C_WrapKey 0x{rv_wrap:X}, C_DecryptInit 0x{rv_init:X}, C_Decrypt 0x{rv_dec:X}; the plaintext "
                   f"{'is' if revealed == secret else 'is not'} the sensitive key's value"}


def wycheproof_refusal(session: Any, case_id: str, detail: str) -> dict[str, Any]:
    """Each Wycheproof vector the verdict names as refused with a wrong code: given to C_Verify
    directly it gets that code, and pyca/cryptography rejects it too (the vector is invalid)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from iranpki.conformance.cases_security import _WYCHEPROOF_RSA, _rsa_public, _wycheproof

    file, mech_name, pss = _WYCHEPROOF_RSA[case_id.removeprefix("SEC-WYCHEPROOF-RSA-")]
    data = _wycheproof(file)
    named = dict(re.findall(r"tcId (\d+) \(refused with (CKR_[A-Z_]+)\)", detail))
    assert named, f"the verdict names no vector: {detail}"
    seen, ok = [], True
    for group in data["testGroups"]:
        n, e = _rsa_public(group)
        for t in group["tests"]:
            if str(t["tcId"]) not in named:
                continue
            pub = session.create_object({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.RSA,
                                         Attribute.TOKEN: False, Attribute.VERIFY: True, Attribute.MODULUS: n,
                                         Attribute.PUBLIC_EXPONENT: e})
            h = getattr(M, pss[0])
            params = CK_RSA_PKCS_PSS_PARAMS(h, getattr(MGF, pss[0]), pss[1])
            mech = CK_MECHANISM(getattr(M, mech_name), ctypes.cast(ctypes.byref(params), ctypes.c_void_p),
                                ctypes.sizeof(params))
            msg, sig = bytes.fromhex(t["msg"]), bytes.fromhex(t["sig"])
            rv_init = C.C_VerifyInit(UL(session.handle), ctypes.byref(mech), UL(pub.handle))
            rv = C.C_Verify(UL(session.handle), msg, UL(len(msg)), sig, UL(len(sig)))
            host = rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()
            hash_ = getattr(hashes, pss[0])()
            try:
                host.verify(sig, msg, padding.PSS(padding.MGF1(hash_), pss[1]), hash_)
                host_says = "valid"
            except InvalidSignature:
                host_says = "invalid"
            want = CKR_BY_NAME.get(named[str(t["tcId"])])
            ok = ok and rv_init == CKR_OK and rv == want and host_says == "invalid"
            seen.append(f"tcId {t['tcId']}: C_Verify 0x{rv:X}, pyca/cryptography {host_says}")
    return {"confirmed": ok and len(seen) == len(named), "saw": "; ".join(seen)}


CRASH = r'''
import ctypes, os, sys
import pkcs11
from pkcs11 import Attribute, KeyType, ObjectClass, Mechanism as M
lib = pkcs11.lib(sys.argv[1])
s = lib.get_token(token_label=sys.argv[2]).open(rw=True, user_pin=os.environ["OCK_PIN"])
key = s.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                       Attribute.VALUE: os.urandom(64), Attribute.TOKEN: False, Attribute.SIGN: True})
C = ctypes.CDLL(sys.argv[1]); UL = ctypes.c_ulong
class MECH(ctypes.Structure):
    _fields_ = [("m", UL), ("p", ctypes.c_void_p), ("n", UL)]
mech = MECH(M.SHA256_HMAC, None, 0)
def say(what, rv=None):
    print(what if rv is None else f"{what} 0x{rv:X}", flush=True)
say("C_SignInit", C.C_SignInit(UL(s.handle), ctypes.byref(mech), UL(key.handle)))
for part in (b"", b"a", b"abc" * 100):
    say("C_SignUpdate", C.C_SignUpdate(UL(s.handle), part, UL(len(part))))
size = UL(0)
say("C_SignFinal(NULL) length query")
say("returned", C.C_SignFinal(UL(s.handle), None, ctypes.byref(size)))
'''


def hmac_length_query_crash(pin: str) -> dict[str, Any]:
    """Multi-part HMAC-SHA256: C_SignInit, C_SignUpdate, then C_SignFinal with a NULL buffer to
    ask the length (base §5.2 convention), in a child process: the module dies there."""
    proc = subprocess.run([sys.executable, "-c", CRASH, MODULE, LABEL], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OCK_PIN": pin})
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return {"confirmed": proc.returncode == -11 and last == "C_SignFinal(NULL) length query",
            "saw": f"exit {proc.returncode}; last call started: {last!r}"}


def no_free_slot() -> dict[str, Any]:
    """SEC-PIN-RETRY-LOCK needs a slot whose token is not initialised: C_GetSlotList and
    C_GetTokenInfo show every slot's token initialised."""
    count = UL(0)
    C.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(count))
    slots = (UL * count.value)()
    C.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(count))
    flags = {}
    for slot in slots:
        info = CK_TOKEN_INFO()
        C.C_GetTokenInfo(slot, ctypes.byref(info))
        flags[slot] = bool(info.flags & CKF_TOKEN_INITIALIZED)
    return {"confirmed": bool(flags) and all(flags.values()),
            "saw": ", ".join(f"slot {s}: {'initialised' if f else 'free'}" for s, f in flags.items())}


def direct_check(session: Any, case_id: str, verdict: str, detail: str, pin: str) -> dict[str, Any]:
    if verdict == Verdict.NOT_APPLICABLE.value and "does not claim" in detail:
        return mechanism_absent(session, detail)
    if case_id.startswith("FUNC-KEYGEN-ATTRS-"):
        kind, size = case_id.removeprefix("FUNC-KEYGEN-ATTRS-").split("-")
        return key_gen_mechanism(session, kind, int(size), detail)
    if case_id == "FUNC-OBJ-AES-CREATE":
        return created_aes_value_len(session, detail)
    if re.fullmatch(r"FUNC-WRAP-RSA\d+-OAEP", case_id):
        return unwrap_extractable(session, int(case_id[len("FUNC-WRAP-RSA"):-len("-OAEP")]), detail)
    if case_id == "SEC-STICKY-WRAP-WITH-TRUSTED":
        return wrap_with_trusted(session, detail)
    if case_id == "SEC-TOOKAN-WRAP-THEN-DECRYPT":
        return wrap_then_decrypt(session)
    if case_id.startswith("SEC-WYCHEPROOF-RSA-PSS-"):
        return wycheproof_refusal(session, case_id, detail)
    if case_id == "FUNC-SIGN-MULTIPART-HMAC-SHA256":
        return hmac_length_query_crash(pin)
    if case_id == "SEC-PIN-RETRY-LOCK":
        return no_free_slot()
    return {"confirmed": False, "saw": "no direct check for this verdict: add one before keeping it as a quirk"}


def main(out: Path) -> None:
    load_cases()
    pin = "".join(secrets.choice("0123456789") for _ in range(8))  # the token takes 4 to 8 characters
    assert pin != DEFAULT_USER_PIN
    # C_InitToken in a child, so that this process loads the module once, below.
    code = ("import os\nfrom iranpki.keys import SecretSource\nfrom iranpki.keys.pkcs11 import init_token\n"
            f"init_token({LABEL!r}, SecretSource(env='OCK_SO_PIN'), SecretSource(env='OCK_PIN'), module={MODULE!r})")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "OCK_SO_PIN": SO_PIN, "OCK_PIN": pin},
                   check=True, timeout=120)
    report = run_suite(RunOptions(module=MODULE, token=LABEL, categories=["functional", "security"], timeout_s=600.0),
                       SecretSource(prompt=lambda _: pin), SecretSource(prompt=lambda _: SO_PIN))
    write_reports(report, out)

    lib = pkcs11.lib(MODULE)
    session = lib.get_token(token_label=LABEL).open(rw=True, user_pin=pin)
    direct = {}
    for r in report.results:
        if r.verdict is not Verdict.PASS:
            direct[r.id] = direct_check(session, r.id, r.verdict.value, r.detail, pin)
            direct[r.id]["needs"] = list(REGISTRY[r.id].needs)
    session.close()
    (out / "direct.json").write_text(json.dumps(direct, indent=1, sort_keys=True), "utf-8")

    # FUNC-SETPIN where the user PIN is openCryptoki's default: with the SO PIN the suite puts
    # the PIN back through C_InitPIN and goes on; without it, the run stops and says why.
    with lib.get_token(token_label=LABEL).open(rw=True, so_pin=SO_PIN) as so:
        so.init_pin(DEFAULT_USER_PIN)
    setpin = {}
    for with_so in (True, False):
        rep = run_suite(RunOptions(module=MODULE, token=LABEL, ids=["FUNC-SETPIN", "FUNC-LOGIN-LOGOUT"],
                                   timeout_s=120.0),
                        SecretSource(prompt=lambda _: DEFAULT_USER_PIN),
                        SecretSource(prompt=lambda _: SO_PIN) if with_so else None)
        setpin["with_so" if with_so else "without_so"] = json.loads(rep.to_json())
    (out / "setpin.json").write_text(json.dumps(setpin, indent=1, sort_keys=True), "utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

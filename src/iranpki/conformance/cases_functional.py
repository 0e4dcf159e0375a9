"""Functional cases: the device does what OASIS PKCS#11 2.40 says, with the results checked
against an independent implementation (hashlib, hmac, pyca/cryptography).

Clauses cite the PKCS#11 Cryptographic Token Interface Base Specification 2.40 ("base") for
functions and return values and the Current Mechanisms Specification 2.40 ("mechs") for
mechanisms. Cases are registered once per key size, curve, hash or mode.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import os
from typing import Any

import pkcs11
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import (
    aes_key_wrap,
    aes_key_wrap_with_padding,
)
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pkcs11 import MGF, Attribute, KeyType, ObjectClass
from pkcs11 import Mechanism as M
from pkcs11.mechanisms import CTRParams, GCMParams
from pkcs11.util.ec import (
    encode_ec_public_key,
    encode_ecdsa_signature,
    encode_named_curve_parameters,
)

from .context import CKR, Context, ckr_name, ckr_of
from .model import CaseFailed, NotApplicable, NotChecked, Outcome, case, passed

F = "functional"
BASE = "PKCS#11 2.40 base"
MECHS = "PKCS#11 2.40 mechs"
MSG = "iranpki conformance: the quick brown fox jumps over the lazy dog".encode()

# A handle no device hands out this early; used where a case needs an invalid one.
BAD_HANDLE = 0x7FFFFFF0
# No mechanism has this value: below CKM_VENDOR_DEFINED and unassigned by OASIS.
BAD_MECHANISM = 0x7FFFFFF0

CURVES: dict[str, tuple[str, ec.EllipticCurve]] = {
    "P256": ("secp256r1", ec.SECP256R1()),
    "P384": ("secp384r1", ec.SECP384R1()),
    "P521": ("secp521r1", ec.SECP521R1()),
    "BP256": ("brainpoolp256r1", ec.BrainpoolP256R1()),
    "BP384": ("brainpoolp384r1", ec.BrainpoolP384R1()),
    "BP512": ("brainpoolp512r1", ec.BrainpoolP512R1()),
}
# Hash-and-sign ECDSA is tried on the NIST curves only; the Brainpool curves add key
# generation and host-hashed signing.
NIST_CURVES = ("P256", "P384", "P521")
HASHES: dict[str, tuple[Any, hashes.HashAlgorithm, str]] = {
    "SHA1": (M.SHA_1, hashes.SHA1(), "sha1"),
    "SHA224": (M.SHA224, hashes.SHA224(), "sha224"),
    "SHA256": (M.SHA256, hashes.SHA256(), "sha256"),
    "SHA384": (M.SHA384, hashes.SHA384(), "sha384"),
    "SHA512": (M.SHA512, hashes.SHA512(), "sha512"),
}
MGFS = {"SHA1": MGF.SHA1, "SHA224": MGF.SHA224, "SHA256": MGF.SHA256, "SHA384": MGF.SHA384, "SHA512": MGF.SHA512}
# The DER DigestInfo prefixes of PKCS#1 v2.2 section 9.2 note 1, for raw CKM_RSA_PKCS signing.
DIGEST_INFO = {
    "SHA256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "SHA384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "SHA512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


# -- helpers shared with cases_security ------------------------------------------------------

def expect(rv: int, *wanted: str, what: str) -> None:
    """Fail unless ``rv`` is one of the ``wanted`` CKR_ names."""
    if rv not in [CKR[w] for w in wanted]:
        raise CaseFailed(f"{what} returned {ckr_name(rv)}; PKCS#11 requires {' or '.join(wanted)}")


def check(cond: bool, message: str) -> None:
    """Fail with ``message`` (what was seen against what was expected) unless ``cond``."""
    if not cond:
        raise CaseFailed(message)


def refused_with(exc: pkcs11.PKCS11Error) -> str:
    """The return value a refusal carried, as PKCS#11 names it (``CKR_PIN_INVALID``)."""
    return ckr_of(exc)


def ul(v: int) -> ctypes.c_ulong:
    return ctypes.c_ulong(v)


class CK_ATTRIBUTE(ctypes.Structure):  # noqa: N801 - the name PKCS#11 gives it
    _fields_ = [("type", ctypes.c_ulong), ("pValue", ctypes.c_void_p), ("ulValueLen", ctypes.c_ulong)]


CK_UNAVAILABLE_INFORMATION = ctypes.c_ulong(-1).value


def raw_get_attribute(ctx: Context, handle: int, attr: int, size: int = 1024) -> tuple[int, int, bytes]:
    """C_GetAttributeValue for one attribute: (CK_RV, ulValueLen, value bytes)."""
    buf = ctypes.create_string_buffer(size)
    tmpl = CK_ATTRIBUTE(attr, ctypes.cast(buf, ctypes.c_void_p), size)
    rv = ctx.raw("C_GetAttributeValue", ul(ctx.session.handle), ul(handle), ctypes.byref(tmpl), ul(1))
    n = tmpl.ulValueLen
    return rv, n, (buf.raw[:n] if n != CK_UNAVAILABLE_INFORMATION and n <= size else b"")


class CK_VERSION(ctypes.Structure):  # noqa: N801 - the PKCS#11 name
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


class CK_TOKEN_INFO(ctypes.Structure):  # noqa: N801 - the PKCS#11 name (PKCS#11 2.40 base 3.2)
    _fields_ = [("label", ctypes.c_char * 32), ("manufacturerID", ctypes.c_char * 32), ("model", ctypes.c_char * 16),
                ("serialNumber", ctypes.c_char * 16), ("flags", ctypes.c_ulong),
                ("ulMaxSessionCount", ctypes.c_ulong), ("ulSessionCount", ctypes.c_ulong),
                ("ulMaxRwSessionCount", ctypes.c_ulong), ("ulRwSessionCount", ctypes.c_ulong),
                ("ulMaxPinLen", ctypes.c_ulong), ("ulMinPinLen", ctypes.c_ulong),
                ("ulTotalPublicMemory", ctypes.c_ulong), ("ulFreePublicMemory", ctypes.c_ulong),
                ("ulTotalPrivateMemory", ctypes.c_ulong), ("ulFreePrivateMemory", ctypes.c_ulong),
                ("hardwareVersion", CK_VERSION), ("firmwareVersion", CK_VERSION), ("utcTime", ctypes.c_char * 16)]


def pin_lengths(ctx: Context) -> tuple[int, int]:
    """The user PIN lengths the token declares (CK_TOKEN_INFO ulMinPinLen, ulMaxPinLen): every PIN
    the suite makes up must lie within them, or a refusal means nothing."""
    info = token_info(ctx)
    low, high = int(info.ulMinPinLen), int(info.ulMaxPinLen)
    if high == CK_UNAVAILABLE_INFORMATION or high == 0:
        high = max(low, 64)
    return max(low, 1), high


def made_up_pin(ctx: Context, like: str | None = None) -> str:
    """A new PIN the token accepts by its declared lengths: as long as ``like`` when given (a wrong
    PIN of the right length tests the PIN, not its length), else 8 characters or the nearest
    length allowed."""
    low, high = pin_lengths(ctx)
    size = len(like) if like is not None and low <= len(like) <= high else min(max(8, low), high)
    while True:
        pin = "".join("0123456789"[b % 10] for b in os.urandom(size))
        if pin != like:
            return pin


def token_info(ctx: Context) -> CK_TOKEN_INFO:
    """CK_TOKEN_INFO as the token declares it now (C_GetTokenInfo)."""
    info = CK_TOKEN_INFO()
    expect(ctx.raw("C_GetTokenInfo", ul(ctx.token.slot.slot_id), ctypes.byref(info)), "CKR_OK",
           what="C_GetTokenInfo")
    return info


def sessions_allowed(ctx: Context, wanted: int) -> tuple[int, int]:
    """How many more sessions, and of them read-write, the suite may open, up to ``wanted``: the
    token's ulMaxSessionCount and ulMaxRwSessionCount less those open (CK_TOKEN_INFO; 0 means no
    practical limit, CK_UNAVAILABLE_INFORMATION that the token does not say)."""
    info = token_info(ctx)

    def room(most: int, now: int) -> int:
        if most in (0, CK_UNAVAILABLE_INFORMATION):
            return wanted
        in_use = now if now != CK_UNAVAILABLE_INFORMATION else 1
        return max(0, min(wanted, most - in_use))

    return room(int(info.ulMaxSessionCount), int(info.ulSessionCount)), room(
        int(info.ulMaxRwSessionCount), int(info.ulRwSessionCount))


# Bits of each curve's order, against CKM_EC_KEY_PAIR_GEN's declared key sizes (mechs §2.3).
CURVE_BITS = {"P256": 256, "P384": 384, "P521": 521, "BP256": 256, "BP384": 384, "BP512": 512}


def need_key_size(ctx: Context, mech_name: str, bits: int) -> None:
    """Raise NotApplicable unless ``bits`` lies within the key sizes the device declares for the
    mechanism (C_GetMechanismInfo ulMinKeySize..ulMaxKeySize): a size the device does not offer is
    not a fault. AES sizes are in bytes by the spec (mechs §2.8.3), in bits by some devices: a size
    fitting either reading is taken. A device declaring 0..0 says nothing, and nothing is refused."""
    info = ctx.token.slot.get_mechanism_info(mechanism(mech_name))
    low, high = int(info.min_key_length), int(info.max_key_length)
    if high == 0 or low <= bits <= high or ("AES" in mech_name and low <= bits // 8 <= high):
        return
    # AES in bytes by the spec; a device declaring 128 or more counts bits.
    unit = "bytes" if "AES" in mech_name and high < 128 else "bits"
    raise NotApplicable(f"the device declares key sizes {low}..{high} {unit} for {mech_name} in "
                        f"C_GetMechanismInfo; this case needs {bits} bits")


def raw_set_bool(ctx: Context, handle: int, attr: int, value: bool) -> int:
    """C_SetAttributeValue of one CK_BBOOL attribute; returns the CK_RV."""
    val = ctypes.c_ubyte(1 if value else 0)
    tmpl = CK_ATTRIBUTE(attr, ctypes.cast(ctypes.byref(val), ctypes.c_void_p), 1)
    return ctx.raw("C_SetAttributeValue", ul(ctx.session.handle), ul(handle), ctypes.byref(tmpl), ul(1))


def host_public_key(pub: Any) -> Any:
    """The token public key as a pyca/cryptography key, for independent verification."""
    if pub.key_type == KeyType.RSA:
        return rsa.RSAPublicNumbers(int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big"),
                                    int.from_bytes(pub[Attribute.MODULUS], "big")).public_key()
    return load_der_public_key(encode_ec_public_key(pub))


def rsa_pair(ctx: Context, bits: int, *, sign: bool = True, extra: dict | None = None,
             cache: bool = True) -> tuple[Any, Any]:
    """An RSA session key pair (private: sensitive, non-extractable), cached for the worker."""
    key = f"rsa{bits}:{sign}"
    if cache and key in ctx.cache:
        return ctx.cache[key]
    need_key_size(ctx, "CKM_RSA_PKCS_KEY_PAIR_GEN", bits)
    pair = ctx.session.generate_keypair(
        KeyType.RSA, bits, store=False,
        public_template={Attribute.PUBLIC_EXPONENT: b"\x01\x00\x01", Attribute.VERIFY: True,
                         Attribute.ENCRYPT: True, Attribute.WRAP: True},
        private_template={Attribute.SIGN: sign, Attribute.DECRYPT: True, Attribute.UNWRAP: True,
                          Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, **(extra or {})},
    )
    if cache:
        ctx.cache[key] = pair
    return pair


def ec_pair(ctx: Context, curve: str, *, extra: dict | None = None, cache: bool = True) -> tuple[Any, Any]:
    """An EC session key pair on ``curve`` (private: sensitive, non-extractable), cached."""
    key = f"ec{curve}"
    if cache and key in ctx.cache:
        return ctx.cache[key]
    need_key_size(ctx, "CKM_EC_KEY_PAIR_GEN", CURVE_BITS[curve])
    params = ctx.session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(CURVES[curve][0])}, local=True)
    try:
        pair = params.generate_keypair(
            store=False, public_template={Attribute.VERIFY: True},
            private_template={Attribute.SIGN: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                              **(extra or {})},
        )
    except (pkcs11.exceptions.DomainParamsInvalid, pkcs11.exceptions.FunctionFailed) as exc:
        # C_GetMechanismInfo cannot say which curves CKM_EC_KEY_PAIR_GEN takes; a refused
        # curve is one the device does not offer.
        raise NotApplicable(f"the device refuses to generate a key on {curve} ({refused_with(exc)})") from None
    if cache:
        ctx.cache[key] = pair
    return pair


def aes_key(ctx: Context, value: bytes, **attrs: Any) -> Any:
    """A session AES key with a known value (C_CreateObject), destroyed after the case."""
    template = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                Attribute.VALUE: value, Attribute.TOKEN: False, Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True, Attribute.WRAP: False, Attribute.UNWRAP: False,
                Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True}
    template.update({getattr(Attribute, k.upper()): v for k, v in attrs.items()})
    key = ctx.session.create_object(template)
    ctx.track(key)
    return key


def mechanism(name: str) -> Any:
    return getattr(M, name.removeprefix("CKM_"))


# -- information: C_GetInfo, C_GetSlotInfo, C_GetTokenInfo, C_GetMechanismInfo ----------------

@case("FUNC-INFO-LIBRARY", category=F, clause=f"{BASE} §5.4 C_GetInfo",
      title="The library reports its Cryptoki version, manufacturer and description")
def info_library(ctx: Context) -> Outcome:
    v = ctx.lib.cryptoki_version
    check(v[0] in (2, 3), f"C_GetInfo reports Cryptoki {v}; expected 2.x or 3.x")
    check(bool(ctx.lib.manufacturer_id.strip()), "C_GetInfo reports an empty manufacturerID; it must name the maker")
    return passed(f"Cryptoki {v[0]}.{v[1]}, {ctx.lib.manufacturer_id.strip()!r}, "
                  f"{ctx.lib.library_description.strip()!r}")


@case("FUNC-INFO-SLOT", category=F, clause=f"{BASE} §5.5 C_GetSlotInfo",
      title="The token's slot reports CKF_TOKEN_PRESENT")
def info_slot(ctx: Context) -> Outcome:
    slot = ctx.token.slot
    check(bool(slot.flags & pkcs11.SlotFlag.TOKEN_PRESENT),
          f"slot {slot.slot_id} lacks CKF_TOKEN_PRESENT though a token is in it")
    return passed(f"slot {slot.slot_id} {slot.slot_description.strip()!r} has CKF_TOKEN_PRESENT")


@case("FUNC-INFO-TOKEN", category=F, clause=f"{BASE} §5.5 C_GetTokenInfo",
      title="The token reports its label and CKF_TOKEN_INITIALIZED, CKF_USER_PIN_INITIALIZED, CKF_LOGIN_REQUIRED")
def info_token(ctx: Context) -> Outcome:
    t = ctx.token
    check(t.label == ctx.token_label, f"token label {t.label!r}, expected {ctx.token_label!r}")
    missing = [f.name for f in (pkcs11.TokenFlag.TOKEN_INITIALIZED, pkcs11.TokenFlag.USER_PIN_INITIALIZED,
                                pkcs11.TokenFlag.LOGIN_REQUIRED) if not t.flags & f]
    check(not missing, f"token flags lack {', '.join('CKF_' + str(m) for m in missing)}")
    return passed(f"token {t.label!r} by {t.manufacturer_id.strip()!r} model {t.model.strip()!r} is initialised "
                  "and requires login")


@case("FUNC-INFO-MECHANISM-LIST", category=F, clause=f"{BASE} §5.5 C_GetMechanismList",
      title="The mechanism list is non-empty and has no duplicates")
def info_mechanism_list(ctx: Context) -> Outcome:
    mechs = list(ctx.token.slot.get_mechanisms())
    check(bool(mechs), "C_GetMechanismList returned no mechanisms")
    check(len(set(mechs)) == len(mechs), f"C_GetMechanismList lists {len(mechs) - len(set(mechs))} duplicates")
    return passed(f"{len(mechs)} distinct mechanisms listed")


_F = pkcs11.MechanismFlag
# The function flags a mechanism must carry when claimed (mechs: each mechanism's table of functions).
MECHANISM_FLAGS: dict[str, Any] = {
    "CKM_RSA_PKCS_KEY_PAIR_GEN": _F.GENERATE_KEY_PAIR, "CKM_EC_KEY_PAIR_GEN": _F.GENERATE_KEY_PAIR,
    "CKM_AES_KEY_GEN": _F.GENERATE, "CKM_GENERIC_SECRET_KEY_GEN": _F.GENERATE,
    "CKM_SHA_1": _F.DIGEST, "CKM_SHA224": _F.DIGEST, "CKM_SHA256": _F.DIGEST, "CKM_SHA384": _F.DIGEST,
    "CKM_SHA512": _F.DIGEST,
    "CKM_RSA_PKCS": _F.SIGN | _F.VERIFY | _F.ENCRYPT | _F.DECRYPT,
    "CKM_RSA_PKCS_PSS": _F.SIGN | _F.VERIFY, "CKM_RSA_PKCS_OAEP": _F.ENCRYPT | _F.DECRYPT,
    "CKM_SHA256_RSA_PKCS": _F.SIGN | _F.VERIFY, "CKM_SHA384_RSA_PKCS": _F.SIGN | _F.VERIFY,
    "CKM_SHA512_RSA_PKCS": _F.SIGN | _F.VERIFY, "CKM_SHA256_RSA_PKCS_PSS": _F.SIGN | _F.VERIFY,
    "CKM_SHA384_RSA_PKCS_PSS": _F.SIGN | _F.VERIFY, "CKM_SHA512_RSA_PKCS_PSS": _F.SIGN | _F.VERIFY,
    "CKM_ECDSA": _F.SIGN | _F.VERIFY, "CKM_ECDSA_SHA256": _F.SIGN | _F.VERIFY,
    "CKM_ECDSA_SHA384": _F.SIGN | _F.VERIFY,
    "CKM_AES_ECB": _F.ENCRYPT | _F.DECRYPT, "CKM_AES_CBC": _F.ENCRYPT | _F.DECRYPT,
    "CKM_AES_CBC_PAD": _F.ENCRYPT | _F.DECRYPT, "CKM_AES_CTR": _F.ENCRYPT | _F.DECRYPT,
    "CKM_AES_GCM": _F.ENCRYPT | _F.DECRYPT, "CKM_AES_KEY_WRAP": _F.WRAP | _F.UNWRAP,
    "CKM_AES_KEY_WRAP_PAD": _F.WRAP | _F.UNWRAP,
    "CKM_SHA256_HMAC": _F.SIGN | _F.VERIFY, "CKM_SHA384_HMAC": _F.SIGN | _F.VERIFY,
    "CKM_SHA512_HMAC": _F.SIGN | _F.VERIFY, "CKM_ECDH1_DERIVE": _F.DERIVE,
}


def mechanism_info(ctx: Context, name: str, flags: Any) -> Outcome:
    info = ctx.token.slot.get_mechanism_info(mechanism(name))
    missing = [f.name for f in _F if f.value and flags & f and not info.flags & f]
    check(not missing, f"C_GetMechanismInfo({name}) lacks {', '.join('CKF_' + str(m) for m in missing)}, "
                       "which the mechanism's functions require")
    check(info.min_key_length <= info.max_key_length,
          f"C_GetMechanismInfo({name}) gives key sizes {info.min_key_length}..{info.max_key_length}")
    return passed(f"{name}: key sizes {info.min_key_length}..{info.max_key_length}, flags {info.flags!r}")


for _name, _flags in MECHANISM_FLAGS.items():
    case(f"FUNC-MECHINFO-{_name.removeprefix('CKM_')}", category=F, clause=f"{BASE} §5.5 C_GetMechanismInfo",
         title=f"{_name} reports the function flags it needs", needs=(_name,), name=_name, flags=_flags)(
        mechanism_info)


# -- sessions ----------------------------------------------------------------------------------

class CK_SESSION_INFO(ctypes.Structure):  # noqa: N801
    _fields_ = [("slotID", ctypes.c_ulong), ("state", ctypes.c_ulong), ("flags", ctypes.c_ulong),
                ("ulDeviceError", ctypes.c_ulong)]


def session_state(ctx: Context, handle: int) -> tuple[int, CK_SESSION_INFO]:
    info = CK_SESSION_INFO()
    rv = ctx.raw("C_GetSessionInfo", ul(handle), ctypes.byref(info))
    return rv, info


@case("FUNC-SESSION-RW-INFO", category=F, clause=f"{BASE} §5.6 C_GetSessionInfo",
      title="A logged-in read-write session is in state CKS_RW_USER_FUNCTIONS with CKF_RW_SESSION")
def session_rw(ctx: Context) -> Outcome:
    rv, info = session_state(ctx, ctx.session.handle)
    expect(rv, "CKR_OK", what="C_GetSessionInfo")
    check(info.state == 3, f"session state {info.state}; expected CKS_RW_USER_FUNCTIONS (3)")
    check(bool(info.flags & 0x2) and bool(info.flags & 0x4),
          f"session flags 0x{info.flags:x} lack CKF_RW_SESSION | CKF_SERIAL_SESSION")
    return passed("state CKS_RW_USER_FUNCTIONS, flags CKF_RW_SESSION | CKF_SERIAL_SESSION")


@case("FUNC-SESSION-RO-INFO", category=F, clause=f"{BASE} §5.6 C_OpenSession, C_GetSessionInfo",
      title="A read-only session opened while the user is logged in is in state CKS_RO_USER_FUNCTIONS")
def session_ro(ctx: Context) -> Outcome:
    s = ctx.token.open(rw=False)
    try:
        rv, info = session_state(ctx, s.handle)
        expect(rv, "CKR_OK", what="C_GetSessionInfo")
        check(info.state == 1, f"session state {info.state}; expected CKS_RO_USER_FUNCTIONS (1)")
        check(not info.flags & 0x2, f"a read-only session has CKF_RW_SESSION (flags 0x{info.flags:x})")
    finally:
        s.close()
    return passed("state CKS_RO_USER_FUNCTIONS without CKF_RW_SESSION")


@case("FUNC-SESSION-MANY", category=F, clause=f"{BASE} §5.6 C_OpenSession, C_CloseSession",
      title="32 sessions (or as many as the token declares room for) open at once, each usable, each closes")
def session_many(ctx: Context) -> Outcome:
    # As many as the token declares room for (CK_TOKEN_INFO), up to 32; half read-write.
    total, rw = sessions_allowed(ctx, 32)
    if total < 2:
        raise NotApplicable(f"the token declares room for {total} more session(s) (CK_TOKEN_INFO ulMaxSessionCount)")
    kinds = [i % 2 == 1 and i // 2 < rw for i in range(total)]
    sessions = []
    try:
        for writable in kinds:
            sessions.append(ctx.token.open(rw=writable))
        handles = {s.handle for s in sessions}
        check(len(handles) == total, f"{total} sessions got {len(handles)} distinct handles")
        for s in sessions:
            check(len(s.generate_random(64)) == 8, "C_GenerateRandom in an extra session returned the wrong length")
    finally:
        for s in sessions:
            s.close()
    return passed(f"{total} sessions ({sum(kinds)} read-write) had distinct handles, each generated random data, "
                  "each closed")


@case("FUNC-SESSION-CLOSE-INVALIDATES", category=F, clause=f"{BASE} §5.6 C_CloseSession",
      title="A closed session's handle is refused with CKR_SESSION_HANDLE_INVALID or CKR_SESSION_CLOSED")
def session_closed(ctx: Context) -> Outcome:
    s = ctx.token.open(rw=False)
    h = s.handle
    s.close()
    buf = ctypes.create_string_buffer(16)
    rv = ctx.raw("C_GenerateRandom", ul(h), buf, ul(16))
    expect(rv, "CKR_SESSION_HANDLE_INVALID", "CKR_SESSION_CLOSED", what="C_GenerateRandom on a closed session")
    return passed(f"the closed session's handle was refused with {ckr_name(rv)}")


@case("FUNC-SESSION-CLOSE-ALL", category=F, clause=f"{BASE} §5.6 C_CloseAllSessions",
      title="C_CloseAllSessions closes every session of the slot and logs the user out", isolated=True)
def session_close_all(ctx: Context) -> Outcome:
    extra = ctx.token.open(rw=False)
    rv = ctx.raw("C_CloseAllSessions", ul(ctx.token.slot.slot_id))
    expect(rv, "CKR_OK", what="C_CloseAllSessions")
    buf = ctypes.create_string_buffer(16)
    for h in (ctx.session.handle, extra.handle):
        rv = ctx.raw("C_GenerateRandom", ul(h), buf, ul(16))
        expect(rv, "CKR_SESSION_HANDLE_INVALID", "CKR_SESSION_CLOSED",
               what="C_GenerateRandom on a session closed by C_CloseAllSessions")
    fresh = ctx.token.open(rw=False)
    try:
        rv, info = session_state(ctx, fresh.handle)
        check(info.state == 0, f"a session opened after C_CloseAllSessions is in state {info.state}; expected "
                               "CKS_RO_PUBLIC_SESSION (0): the user must be logged out")
    finally:
        fresh.close()
    return passed("both sessions were closed and the next session was public (the user logged out)")


# -- login, logout, PINs (each in a worker of its own) -----------------------------------------

def login(ctx: Context, pin: str, user: int = 1) -> int:
    p = pin.encode()
    return ctx.raw("C_Login", ul(ctx.session.handle), ul(user), ctypes.c_char_p(p), ul(len(p)))


def logout(ctx: Context) -> int:
    return ctx.raw("C_Logout", ul(ctx.session.handle))


@case("FUNC-LOGIN-LOGOUT", category=F, clause=f"{BASE} §5.6 C_Login, C_Logout",
      title="Logout, a second logout (CKR_USER_NOT_LOGGED_IN), login, a second login (CKR_USER_ALREADY_LOGGED_IN)",
      isolated=True)
def login_logout(ctx: Context) -> Outcome:
    expect(logout(ctx), "CKR_OK", what="C_Logout")
    expect(logout(ctx), "CKR_USER_NOT_LOGGED_IN", what="a second C_Logout")
    expect(login(ctx, ctx.user_pin), "CKR_OK", what="C_Login with the user PIN")
    expect(login(ctx, ctx.user_pin), "CKR_USER_ALREADY_LOGGED_IN", what="a second C_Login")
    return passed("C_Logout, C_Logout -> CKR_USER_NOT_LOGGED_IN, C_Login, C_Login -> CKR_USER_ALREADY_LOGGED_IN")


@case("FUNC-LOGIN-WRONG-PIN", category=F, clause=f"{BASE} §5.6 C_Login",
      title="A wrong user PIN is refused with CKR_PIN_INCORRECT and the right one still works", isolated=True)
def login_wrong_pin(ctx: Context) -> Outcome:
    expect(logout(ctx), "CKR_OK", what="C_Logout")
    wrong = made_up_pin(ctx, like=ctx.user_pin)
    try:
        expect(login(ctx, wrong), "CKR_PIN_INCORRECT", "CKR_PIN_LEN_RANGE", what="C_Login with a wrong PIN")
    finally:
        rv = login(ctx, ctx.user_pin)
    expect(rv, "CKR_OK", what="C_Login with the right PIN after a wrong one")
    return passed("the wrong PIN was refused with CKR_PIN_INCORRECT; the right one logged in")


@case("FUNC-LOGIN-SO-WHILE-USER", category=F, clause=f"{BASE} §5.6 C_Login",
      title="SO login while the user is logged in: CKR_USER_ANOTHER_ALREADY_LOGGED_IN", isolated=True)
def login_so_while_user(ctx: Context) -> Outcome:
    if not ctx.so_pin:
        raise NotChecked("no SO PIN was given (IRANPKI_PKCS11_SO_PIN), so SO login could not be tried here")
    rv = login(ctx, ctx.so_pin, user=0)
    if rv == 0:
        logout(ctx)
        login(ctx, ctx.user_pin)
    expect(rv, "CKR_USER_ANOTHER_ALREADY_LOGGED_IN", "CKR_SESSION_READ_ONLY_EXISTS",
           what="C_Login(CKU_SO) while the user is logged in")
    return passed(f"SO login while the user is logged in was refused with {ckr_name(rv)}")


@case("FUNC-SETPIN", category=F, clause=f"{BASE} §5.6 C_SetPIN",
      title="C_SetPIN changes the user PIN (the new one logs in, the old one is refused) and back", isolated=True)
def set_pin(ctx: Context) -> Outcome:
    old = ctx.user_pin
    new = made_up_pin(ctx)  # within the lengths the token declares (CK_TOKEN_INFO)
    ctx.session.set_pin(old, new)
    seen: BaseException | None = None
    try:
        expect(logout(ctx), "CKR_OK", what="C_Logout")
        expect(login(ctx, old), "CKR_PIN_INCORRECT", what="C_Login with the old PIN after C_SetPIN")
        expect(login(ctx, new), "CKR_OK", what="C_Login with the new PIN")
    except Exception as exc:  # noqa: BLE001 - judged below, once the PIN is back
        seen = exc
    # Put the PIN back whatever happened, so the token stays usable for the rest of the run.
    try:
        way_back = _put_pin_back(ctx, new, old)
    except NotChecked as lost:
        if seen is not None:  # the device's own failure comes first; the lost token is said too
            raise CaseFailed(f"{_said(seen)}; and {lost}") from None
        raise
    if seen is not None:
        raise seen
    expect(logout(ctx), "CKR_OK", what="C_Logout")
    expect(login(ctx, old), "CKR_OK", what="C_Login with the restored PIN")
    return passed(f"the new PIN logged in, the old one was refused, and the old PIN was restored{way_back}")


def _said(exc: BaseException) -> str:
    return f"{ckr_of(exc)} where a call had to succeed" if isinstance(exc, pkcs11.PKCS11Error) else str(exc)


def _put_pin_back(ctx: Context, new: str, old: str) -> str:
    """Set the user PIN from ``new`` back to ``old``: by C_SetPIN, or, where the device refuses
    the old PIN back (a PIN policy: openCryptoki will not take its default PIN back through
    C_SetPIN), by the security officer's C_InitPIN. Returns how, for the detail. Where neither
    works the token's user PIN is one the suite made up and nobody knows: the case marks the
    token lost (``ctx.lost``) and raises NotChecked, so that the run judges no more cases on it."""
    try:
        ctx.session.set_pin(new, old)
        return ""
    except pkcs11.PKCS11Error as exc:
        refusal = refused_with(exc)
    logout(ctx)
    if login(ctx, old) == CKR["CKR_OK"]:
        # The PIN never changed (the device answered C_SetPIN without doing it): nothing to undo.
        return f" (C_SetPIN back answered {refusal}: the old PIN was still the token's)"
    if not ctx.so_pin:
        ctx.lost = (f"FUNC-SETPIN changed the user PIN and the device refused the old one back through C_SetPIN "
                    f"({refusal}); no SO PIN was given to restore it with C_InitPIN, so the token's user PIN is now "
                    "one the suite made up: initialise the token again (iranpki token init) and give "
                    "IRANPKI_PKCS11_SO_PIN to the next run")
        raise NotChecked(ctx.lost)
    try:
        so = ctx.token.open(rw=True, so_pin=ctx.so_pin)
    except pkcs11.PKCS11Error as exc:
        ctx.lost = (f"FUNC-SETPIN changed the user PIN; the device refused the old one back through C_SetPIN "
                    f"({refusal}), and the SO could not log in to restore it ({refused_with(exc)}: check "
                    "IRANPKI_PKCS11_SO_PIN), so the token's user PIN is now one the suite made up: initialise the "
                    "token again (iranpki token init)")
        raise NotChecked(ctx.lost) from None
    try:
        with so:
            so.init_pin(old)
    except pkcs11.PKCS11Error as exc:
        ctx.lost = (f"FUNC-SETPIN changed the user PIN; the device refused the old one back through C_SetPIN "
                    f"({refusal}) and through the SO's C_InitPIN ({refused_with(exc)}), so the token's user PIN "
                    "is now one the suite made up: initialise the token again (iranpki token init)")
        raise NotChecked(ctx.lost) from None
    expect(login(ctx, old), "CKR_OK", what="C_Login with the PIN the SO restored")
    return (f" (C_SetPIN refused the old PIN back with {refusal}, a PIN policy of the device; the SO restored "
            "it with C_InitPIN)")


# -- objects -----------------------------------------------------------------------------------

def data_object(ctx: Context, token: bool, label: str, value: bytes = b"conformance") -> Any:
    obj = ctx.session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: token,
                                     Attribute.LABEL: label, Attribute.APPLICATION: "iranpki conformance",
                                     Attribute.VALUE: value, Attribute.PRIVATE: True})
    ctx.track(obj)
    return obj


for _token in (False, True):
    _kind = "TOKEN" if _token else "SESSION"

    @case(f"FUNC-OBJ-DATA-{_kind}", category=F, clause=f"{BASE} §5.7 C_CreateObject, C_FindObjects",
          title=f"A {_kind.lower()} data object is created, found by label and reads back its value", token=_token)
    def obj_data(ctx: Context, token: bool) -> Outcome:
        label = f"iranpki-conf-{os.urandom(4).hex()}"
        value = os.urandom(40)
        data_object(ctx, token, label, value)
        found = list(ctx.session.get_objects({Attribute.LABEL: label}))
        check(len(found) == 1, f"C_FindObjects by label found {len(found)} objects; expected 1")
        check(bytes(found[0][Attribute.VALUE]) == value, "CKA_VALUE read back differs from the value created")
        check(bool(found[0][Attribute.TOKEN]) == token, f"CKA_TOKEN reads {found[0][Attribute.TOKEN]}; created {token}")
        return passed("created, found once by CKA_LABEL, CKA_VALUE and CKA_TOKEN read back as created")


@case("FUNC-OBJ-SET-ATTRIBUTE", category=F, clause=f"{BASE} §5.7 C_SetAttributeValue",
      title="A data object's CKA_LABEL changes and reads back")
def obj_set(ctx: Context) -> Outcome:
    obj = data_object(ctx, False, "before")
    obj[Attribute.LABEL] = "after"
    check(obj[Attribute.LABEL] == "after", f"CKA_LABEL reads {obj[Attribute.LABEL]!r} after setting 'after'")
    return passed("CKA_LABEL changed from 'before' to 'after'")


@case("FUNC-OBJ-DESTROY", category=F, clause=f"{BASE} §5.7 C_DestroyObject",
      title="A destroyed object is gone: not found, its handle refused with CKR_OBJECT_HANDLE_INVALID")
def obj_destroy(ctx: Context) -> Outcome:
    label = f"iranpki-conf-{os.urandom(4).hex()}"
    obj = data_object(ctx, True, label)
    h = obj.handle
    obj.destroy()
    check(not list(ctx.session.get_objects({Attribute.LABEL: label})), "the destroyed object is still found")
    rv, _, _ = raw_get_attribute(ctx, h, Attribute.LABEL)
    expect(rv, "CKR_OBJECT_HANDLE_INVALID", what="C_GetAttributeValue on a destroyed object")
    return passed("not found after C_DestroyObject; its handle refused with CKR_OBJECT_HANDLE_INVALID")


@case("FUNC-OBJ-COPY", category=F, clause=f"{BASE} §5.7 C_CopyObject",
      title="C_CopyObject copies a data object with a new label")
def obj_copy(ctx: Context) -> Outcome:
    obj = data_object(ctx, False, "original", b"copied value")
    copy = obj.copy({Attribute.LABEL: "copy"})
    ctx.track(copy)
    check(copy[Attribute.LABEL] == "copy" and bytes(copy[Attribute.VALUE]) == b"copied value",
          "the copy's label or value differ from what was asked")
    return passed("the copy has the new label and the original's value")


@case("FUNC-OBJ-FIND-BY-CLASS", category=F, clause=f"{BASE} §5.7 C_FindObjectsInit",
      title="A search by CKA_CLASS returns only objects of that class")
def obj_find_class(ctx: Context) -> Outcome:
    data_object(ctx, False, "find-by-class")
    aes_key(ctx, os.urandom(16), label="find-by-class")
    found = list(ctx.session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: "find-by-class"}))
    check(len(found) == 1, f"a search for the data object found {len(found)} objects; expected 1")
    return passed("the search by class and label found the data object and not the key")


@case("FUNC-OBJ-AES-CREATE", category=F, clause=f"{MECHS} §2.8.2 AES secret key objects",
      title="An AES key created from a value reports CKA_VALUE_LEN and encrypts as that key does",
      needs=("CKM_AES_ECB",))
def obj_aes_create(ctx: Context) -> Outcome:
    value = os.urandom(32)
    key = aes_key(ctx, value)
    check(key[Attribute.VALUE_LEN] == 32, f"CKA_VALUE_LEN is {key[Attribute.VALUE_LEN]}; expected 32")
    block = os.urandom(16)
    got = key.encrypt(block, mechanism=M.AES_ECB)
    want = Cipher(algorithms.AES(value), modes.ECB()).encryptor().update(block)
    check(got == want, "AES-ECB with the created key differs from pyca/cryptography with the same value")
    return passed("CKA_VALUE_LEN 32 and ECB output equal to pyca/cryptography's")


# -- random ------------------------------------------------------------------------------------

for _n in (1, 16, 20, 32, 64, 256, 1024, 4096, 65536):
    @case(f"FUNC-RANDOM-{_n}", category=F, clause=f"{BASE} §5.15 C_GenerateRandom",
          title=f"C_GenerateRandom returns {_n} bytes, different each call", n=_n)
    def random_len(ctx: Context, n: int) -> Outcome:
        a = ctx.session.generate_random(n * 8)
        b = ctx.session.generate_random(n * 8)
        check(len(a) == n and len(b) == n, f"asked for {n} bytes, got {len(a)} and {len(b)}")
        if n >= 16:
            check(a != b, f"two calls of {n} bytes returned the same output")
        return passed(f"two calls returned {n} bytes each" + (", different" if n >= 16 else ""))


# -- digests -----------------------------------------------------------------------------------

_DIGEST_INPUTS = {"EMPTY": b"", "ABC": b"abc", "1MIB": bytes(range(256)) * 4096}

for _h, (_mech, _, _hl) in HASHES.items():
    for _iname, _data in _DIGEST_INPUTS.items():
        @case(f"FUNC-DIGEST-{_h}-{_iname}", category=F, clause=f"{BASE} §5.10 C_Digest; {MECHS} SHA-2",
              title=f"{_h} of {_iname.lower()} input equals hashlib's", needs=(f"CKM_{_mech.name}",),
              mech=_mech, name=_hl, data=_data)
        def digest_single(ctx: Context, mech: Any, name: str, data: bytes) -> Outcome:
            got = ctx.session.digest(data, mechanism=mech)
            want = hashlib.new(name, data).digest()
            check(got == want, f"C_Digest gave {got.hex()[:32]}...; hashlib gives {want.hex()[:32]}...")
            return passed(f"{len(data)} bytes hashed to hashlib's value")

    @case(f"FUNC-DIGEST-{_h}-MULTIPART", category=F, clause=f"{BASE} §5.10 C_DigestUpdate, C_DigestFinal",
          title=f"{_h} over C_DigestUpdate in uneven parts equals hashlib's", needs=(f"CKM_{_mech.name}",),
          mech=_mech, name=_hl)
    def digest_multi(ctx: Context, mech: Any, name: str) -> Outcome:
        parts = [os.urandom(n) for n in (0, 1, 63, 64, 65, 1000, 4097)]
        got = ctx.session.digest(iter(parts), mechanism=mech)
        want = hashlib.new(name, b"".join(parts)).digest()
        check(got == want, "the multi-part digest differs from hashlib's digest of the joined parts")
        return passed("7 parts of 0 to 4097 bytes hashed to hashlib's value")


# -- HMAC --------------------------------------------------------------------------------------

for _h in ("SHA256", "SHA384", "SHA512"):
    @case(f"FUNC-HMAC-{_h}", category=F, clause=f"{MECHS} §2.25 general-length HMAC",
          title=f"HMAC-{_h} on the device equals Python's hmac and verifies", needs=(f"CKM_{_h}_HMAC",), h=_h)
    def hmac_case(ctx: Context, h: str) -> Outcome:
        # A key as long as the hash's block, so no device may refuse its size (RFC 2104 section 3).
        value = os.urandom(64 if h == "SHA256" else 128)
        key = ctx.session.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
            Attribute.VALUE: value, Attribute.TOKEN: False, Attribute.SIGN: True, Attribute.VERIFY: True})
        ctx.track(key)
        mech = mechanism(f"{h}_HMAC")
        got = key.sign(MSG, mechanism=mech)
        want = hmac.new(value, MSG, HASHES[h][2]).digest()
        check(got == want, f"HMAC-{h} differs from Python's hmac with the same key")
        check(key.verify(MSG, got, mechanism=mech), "the device's C_Verify refused its own HMAC")
        return passed(f"HMAC-{h} equal to Python's and verified by the device")


# -- key generation ----------------------------------------------------------------------------

for _bits in (2048, 3072, 4096):
    @case(f"FUNC-KEYGEN-RSA-{_bits}", category=F, clause=f"{MECHS} §2.1.4 CKM_RSA_PKCS_KEY_PAIR_GEN",
          title=f"An RSA-{_bits} pair: modulus size, exponent 65537, CKA_LOCAL, never extractable",
          needs=("CKM_RSA_PKCS_KEY_PAIR_GEN",), bits=_bits)
    def keygen_rsa(ctx: Context, bits: int) -> Outcome:
        pub, priv = rsa_pair(ctx, bits)
        n = int.from_bytes(pub[Attribute.MODULUS], "big")
        check(n.bit_length() == bits, f"the modulus has {n.bit_length()} bits; asked for {bits}")
        check(int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big") == 65537, "the public exponent is not 65537")
        for attr in (Attribute.LOCAL, Attribute.ALWAYS_SENSITIVE, Attribute.NEVER_EXTRACTABLE):
            check(bool(priv[attr]), f"the generated private key has {attr.name} false; expected true")
        return passed(f"{bits}-bit modulus, e=65537, CKA_LOCAL, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE")

for _curve in CURVES:
    @case(f"FUNC-KEYGEN-EC-{_curve}", category=F, clause=f"{MECHS} §2.3.6 CKM_EC_KEY_PAIR_GEN",
          title=f"An EC {_curve} pair: CKA_EC_POINT is a point on the curve, CKA_LOCAL, never extractable",
          needs=("CKM_EC_KEY_PAIR_GEN",), curve=_curve)
    def keygen_ec(ctx: Context, curve: str) -> Outcome:
        pub, priv = ec_pair(ctx, curve)
        key = host_public_key(pub)  # pyca/cryptography checks the point is on the curve
        check(key.curve.name == CURVES[curve][1].name, f"the public key is on {key.curve.name}; asked for {curve}")
        for attr in (Attribute.LOCAL, Attribute.ALWAYS_SENSITIVE, Attribute.NEVER_EXTRACTABLE):
            check(bool(priv[attr]), f"the generated private key has {attr.name} false; expected true")
        return passed(f"a valid {curve} point; CKA_LOCAL, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE")

for _bits in (128, 192, 256):
    @case(f"FUNC-KEYGEN-AES-{_bits}", category=F, clause=f"{MECHS} §2.8.3 CKM_AES_KEY_GEN",
          title=f"An AES-{_bits} key is generated with CKA_VALUE_LEN {_bits // 8} and round-trips CBC-PAD",
          needs=("CKM_AES_KEY_GEN", "CKM_AES_CBC_PAD"), bits=_bits)
    def keygen_aes(ctx: Context, bits: int) -> Outcome:
        need_key_size(ctx, "CKM_AES_KEY_GEN", bits)
        key = ctx.session.generate_key(KeyType.AES, bits, store=False)
        ctx.track(key)
        check(key[Attribute.VALUE_LEN] == bits // 8, f"CKA_VALUE_LEN {key[Attribute.VALUE_LEN]}; expected {bits // 8}")
        iv = os.urandom(16)
        ct = key.encrypt(MSG, mechanism=M.AES_CBC_PAD, mechanism_param=iv)
        check(key.decrypt(ct, mechanism=M.AES_CBC_PAD, mechanism_param=iv) == MSG, "CBC-PAD did not round-trip")
        return passed(f"CKA_VALUE_LEN {bits // 8}; CBC-PAD round-trips")


# -- signatures, each verified by pyca/cryptography and by the device --------------------------

def _sign_and_verify(ctx: Context, pub: Any, priv: Any, mech: Any, data: bytes, param: Any,
                     host_verify: Any) -> bytes:
    sig = priv.sign(data, mechanism=mech, mechanism_param=param)
    try:
        host_verify(sig)
    except InvalidSignature:
        raise CaseFailed(f"pyca/cryptography rejects the device's {mech.name} signature") from None
    check(pub.verify(data, sig, mechanism=mech, mechanism_param=param),
          f"the device's C_Verify rejects its own {mech.name} signature")
    return sig


RSA_SIGN: dict[str, tuple[str, str | None, str]] = {
    # id suffix: (mechanism, hash done by the host or None, padding)
    "PKCS1-HOSTHASH-SHA256": ("RSA_PKCS", "SHA256", "pkcs1"),
    "SHA1-PKCS1": ("SHA1_RSA_PKCS", None, "pkcs1"),
    "SHA224-PKCS1": ("SHA224_RSA_PKCS", None, "pkcs1"),
    "SHA256-PKCS1": ("SHA256_RSA_PKCS", None, "pkcs1"),
    "SHA384-PKCS1": ("SHA384_RSA_PKCS", None, "pkcs1"),
    "SHA512-PKCS1": ("SHA512_RSA_PKCS", None, "pkcs1"),
    "PSS-HOSTHASH-SHA256": ("RSA_PKCS_PSS", "SHA256", "pss"),
    "SHA256-PSS": ("SHA256_RSA_PKCS_PSS", None, "pss"),
    "SHA384-PSS": ("SHA384_RSA_PKCS_PSS", None, "pss"),
    "SHA512-PSS": ("SHA512_RSA_PKCS_PSS", None, "pss"),
}
_MECH_HASH = {"SHA1": "SHA1", "SHA224": "SHA224", "SHA256": "SHA256", "SHA384": "SHA384", "SHA512": "SHA512"}


def rsa_sign_case(ctx: Context, bits: int, mech_name: str, host_hash: str | None, pad: str) -> Outcome:
    pub, priv = rsa_pair(ctx, bits)
    host = host_public_key(pub)
    h = host_hash or _MECH_HASH[mech_name.split("_")[0]]
    hobj = HASHES[h][1]
    if host_hash:
        digest = hashlib.new(HASHES[h][2], MSG).digest()
        data = DIGEST_INFO[h] + digest if pad == "pkcs1" else digest
        algo: Any = utils.Prehashed(hobj)
        verified = digest
    else:
        data, algo, verified = MSG, hobj, MSG
    param = (HASHES[h][0], MGFS[h], hobj.digest_size) if pad == "pss" else None
    host_pad = (padding.PSS(padding.MGF1(hobj), hobj.digest_size) if pad == "pss" else padding.PKCS1v15())
    _sign_and_verify(ctx, pub, priv, mechanism(mech_name), data, param,
                     lambda sig: host.verify(sig, verified, host_pad, algo))
    return passed(f"CKM_{mech_name} signature with RSA-{bits} verified by pyca/cryptography and by C_Verify")


for _bits in (2048, 3072):
    for _sfx, (_mname, _hh, _pad) in RSA_SIGN.items():
        case(f"FUNC-SIGN-RSA{_bits}-{_sfx}", category=F, clause=f"{BASE} §5.12 C_Sign; {MECHS} §2.1 CKM_{_mname}",
             title=f"RSA-{_bits} CKM_{_mname}" + (f" over a host {_hh} hash" if _hh else ""),
             needs=("CKM_RSA_PKCS_KEY_PAIR_GEN", f"CKM_{_mname}"), bits=_bits, mech_name=_mname,
             host_hash=_hh, pad=_pad)(rsa_sign_case)


def ecdsa_host_case(ctx: Context, curve: str, h: str) -> Outcome:
    pub, priv = ec_pair(ctx, curve)
    host = host_public_key(pub)
    digest = hashlib.new(HASHES[h][2], MSG).digest()
    _sign_and_verify(ctx, pub, priv, M.ECDSA, digest, None,
                     lambda sig: host.verify(encode_ecdsa_signature(sig), digest,
                                             ec.ECDSA(utils.Prehashed(HASHES[h][1]))))
    return passed(f"CKM_ECDSA on {curve} over a host {h} hash verified by pyca/cryptography and by C_Verify")


def ecdsa_token_case(ctx: Context, curve: str, h: str) -> Outcome:
    pub, priv = ec_pair(ctx, curve)
    host = host_public_key(pub)
    _sign_and_verify(ctx, pub, priv, mechanism(f"ECDSA_{h}"), MSG, None,
                     lambda sig: host.verify(encode_ecdsa_signature(sig), MSG, ec.ECDSA(HASHES[h][1])))
    return passed(f"CKM_ECDSA_{h} on {curve} verified by pyca/cryptography and by C_Verify")


for _curve in CURVES:
    for _h in ("SHA256", "SHA384", "SHA512"):
        case(f"FUNC-SIGN-ECDSA-{_curve}-HOSTHASH-{_h}", category=F,
             clause=f"{BASE} §5.12 C_Sign; {MECHS} §2.3.9 CKM_ECDSA",
             title=f"ECDSA {_curve} over a host {_h} hash", needs=("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"),
             curve=_curve, h=_h)(ecdsa_host_case)
        if _curve not in NIST_CURVES:
            continue
        case(f"FUNC-SIGN-ECDSA-{_curve}-TOKENHASH-{_h}", category=F,
             clause=f"{BASE} §5.12 C_Sign; {MECHS} §2.3.9 CKM_ECDSA_{_h}",
             title=f"ECDSA {_curve} hashing with {_h} on the token",
             needs=("CKM_EC_KEY_PAIR_GEN", f"CKM_ECDSA_{_h}"), curve=_curve, h=_h)(ecdsa_token_case)


# -- RSA encryption ----------------------------------------------------------------------------

def oaep_case(ctx: Context, bits: int, h: str) -> Outcome:
    pub, priv = rsa_pair(ctx, bits)
    host = host_public_key(pub)
    hobj = HASHES[h][1]
    param = (HASHES[h][0], MGFS[h], None)
    try:
        ct = pub.encrypt(MSG, mechanism=M.RSA_PKCS_OAEP, mechanism_param=param)
    except (pkcs11.exceptions.MechanismParamInvalid, pkcs11.exceptions.ArgumentsBad) as exc:
        # C_GetMechanismInfo cannot say which OAEP hashes a device takes; a refusal of the
        # parameters means this one is not offered.
        raise NotApplicable(f"the device refuses OAEP with {h} ({refused_with(exc)}); it offers "
                            "CKM_RSA_PKCS_OAEP with other hashes only") from None
    check(priv.decrypt(ct, mechanism=M.RSA_PKCS_OAEP, mechanism_param=param) == MSG,
          "the device could not decrypt its own OAEP ciphertext")
    host_ct = host.encrypt(MSG, padding.OAEP(padding.MGF1(hobj), hobj, None))
    check(priv.decrypt(host_ct, mechanism=M.RSA_PKCS_OAEP, mechanism_param=param) == MSG,
          "the device did not decrypt pyca/cryptography's OAEP ciphertext to the plaintext")
    return passed(f"RSA-{bits} OAEP-{h}: device and pyca/cryptography ciphertexts decrypt to the plaintext")


def pkcs1_enc_case(ctx: Context, bits: int) -> Outcome:
    pub, priv = rsa_pair(ctx, bits)
    host_ct = host_public_key(pub).encrypt(MSG, padding.PKCS1v15())
    check(priv.decrypt(host_ct, mechanism=M.RSA_PKCS) == MSG,
          "the device did not decrypt pyca/cryptography's PKCS#1 v1.5 ciphertext")
    check(priv.decrypt(pub.encrypt(MSG, mechanism=M.RSA_PKCS), mechanism=M.RSA_PKCS) == MSG,
          "the device could not decrypt its own PKCS#1 v1.5 ciphertext")
    return passed(f"RSA-{bits} PKCS#1 v1.5 encryption round-trips with pyca/cryptography")


for _bits in (2048, 3072):
    for _h in ("SHA1", "SHA256", "SHA384", "SHA512"):
        case(f"FUNC-ENCRYPT-RSA{_bits}-OAEP-{_h}", category=F,
             clause=f"{BASE} §5.8 C_Encrypt, §5.9 C_Decrypt; {MECHS} §2.1.8 CKM_RSA_PKCS_OAEP",
             title=f"RSA-{_bits} OAEP with {_h}, against pyca/cryptography",
             needs=("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_RSA_PKCS_OAEP"), bits=_bits, h=_h)(oaep_case)
    case(f"FUNC-ENCRYPT-RSA{_bits}-PKCS1", category=F, clause=f"{MECHS} §2.1.6 CKM_RSA_PKCS",
         title=f"RSA-{_bits} PKCS#1 v1.5 encryption, against pyca/cryptography",
         needs=("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_RSA_PKCS"), bits=_bits)(pkcs1_enc_case)


# -- AES ---------------------------------------------------------------------------------------

def aes_case(ctx: Context, bits: int, mode: str) -> Outcome:
    need_key_size(ctx, f"CKM_AES_{mode}", bits)
    value = os.urandom(bits // 8)
    key = aes_key(ctx, value)
    data = os.urandom(64) if mode in ("ECB", "CBC") else MSG
    if mode == "ECB":
        mech, param, host = M.AES_ECB, None, Cipher(algorithms.AES(value), modes.ECB())
    elif mode in ("CBC", "CBC_PAD"):
        iv = os.urandom(16)
        mech, param, host = mechanism(f"AES_{mode}"), iv, Cipher(algorithms.AES(value), modes.CBC(iv))
    elif mode == "CTR":
        nonce = os.urandom(12)
        mech, param = M.AES_CTR, CTRParams(nonce)
        host = Cipher(algorithms.AES(value), modes.CTR(nonce + b"\x00\x00\x00\x01"))
    else:
        nonce, aad = os.urandom(12), b"iranpki"
        mech, param, host = M.AES_GCM, GCMParams(nonce, aad, 128), None
    got = key.encrypt(data, mechanism=mech, mechanism_param=param)
    if mode == "GCM":
        want = AESGCM(value).encrypt(nonce, data, aad)
    else:
        from cryptography.hazmat.primitives.padding import PKCS7

        plain = data
        if mode == "CBC_PAD":
            p = PKCS7(128).padder()
            plain = p.update(data) + p.finalize()
        enc = host.encryptor()  # type: ignore[union-attr]
        want = enc.update(plain) + enc.finalize()
    check(got == want, f"AES-{bits} {mode} ciphertext differs from pyca/cryptography's with the same key and IV")
    back = key.decrypt(want, mechanism=mech, mechanism_param=param)
    check(back == data, f"AES-{bits} {mode} decryption of pyca/cryptography's ciphertext is not the plaintext")
    return passed(f"AES-{bits} {mode}: ciphertext equal to pyca/cryptography's and decrypted back")


for _bits in (128, 192, 256):
    for _mode in ("ECB", "CBC", "CBC_PAD", "CTR", "GCM"):
        case(f"FUNC-AES{_bits}-{_mode.replace('_', '-')}", category=F,
             clause=f"{BASE} §5.8 C_Encrypt, §5.9 C_Decrypt; {MECHS} §2.8 CKM_AES_{_mode}",
             title=f"AES-{_bits} {_mode} against pyca/cryptography", needs=(f"CKM_AES_{_mode}",),
             bits=_bits, mode=_mode)(aes_case)


# -- wrap and unwrap ---------------------------------------------------------------------------

def aes_wrap_case(ctx: Context, bits: int, pad: bool) -> Outcome:
    need_key_size(ctx, "CKM_AES_KEY_WRAP_PAD" if pad else "CKM_AES_KEY_WRAP", bits)
    kek_value, target_value = os.urandom(bits // 8), os.urandom(24 if pad else 32)
    kek = aes_key(ctx, kek_value, wrap=True, unwrap=True)
    target = aes_key(ctx, target_value)
    mech = M.AES_KEY_WRAP_PAD if pad else M.AES_KEY_WRAP
    wrapped = kek.wrap_key(target, mechanism=mech)
    want = (aes_key_wrap_with_padding if pad else aes_key_wrap)(kek_value, target_value)
    check(wrapped == want, f"{mech.name} output differs from pyca/cryptography's (RFC {5649 if pad else 3394})")
    back = kek.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=mech, store=False,
                          template={Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False})
    ctx.track(back)
    check(bytes(back[Attribute.VALUE]) == target_value, "the unwrapped key's value differs from the wrapped key's")
    return passed(f"AES-{bits} {mech.name} equal to pyca/cryptography's; unwrapped to the same key")


for _bits in (128, 192, 256):
    case(f"FUNC-WRAP-AES{_bits}-KEYWRAP", category=F, clause=f"{BASE} §5.14 C_WrapKey, C_UnwrapKey; "
         f"{MECHS} §2.14 CKM_AES_KEY_WRAP", title=f"AES-{_bits} key wrap (RFC 3394) of an AES-256 key",
         needs=("CKM_AES_KEY_WRAP",), bits=_bits, pad=False)(aes_wrap_case)
    case(f"FUNC-WRAP-AES{_bits}-KEYWRAP-PAD", category=F, clause=f"{BASE} §5.14 C_WrapKey, C_UnwrapKey; "
         f"{MECHS} §2.14 CKM_AES_KEY_WRAP_PAD", title=f"AES-{_bits} key wrap with padding (RFC 5649) of an AES-192 key",
         needs=("CKM_AES_KEY_WRAP_PAD",), bits=_bits, pad=True)(aes_wrap_case)


def rsa_wrap_case(ctx: Context, bits: int) -> Outcome:
    pub, priv = rsa_pair(ctx, bits)
    value = os.urandom(32)
    target = aes_key(ctx, value)
    param = (M.SHA_1, MGF.SHA1, None)
    wrapped = pub.wrap_key(target, mechanism=M.RSA_PKCS_OAEP, mechanism_param=param)
    back = priv.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=M.RSA_PKCS_OAEP,
                           mechanism_param=param, store=False,
                           template={Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False})
    ctx.track(back)
    check(bytes(back[Attribute.VALUE]) == value, "the key unwrapped with RSA OAEP differs from the one wrapped")
    host_wrapped = host_public_key(pub).encrypt(value, padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None))
    back2 = priv.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, host_wrapped, mechanism=M.RSA_PKCS_OAEP,
                            mechanism_param=param, store=False,
                            template={Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False})
    ctx.track(back2)
    check(bytes(back2[Attribute.VALUE]) == value, "the key wrapped by pyca/cryptography unwrapped to another value")
    return passed(f"an AES-256 key wrapped with RSA-{bits} OAEP (device and pyca/cryptography) unwrapped intact")


for _bits in (2048, 3072):
    case(f"FUNC-WRAP-RSA{_bits}-OAEP", category=F, clause=f"{BASE} §5.14 C_WrapKey, C_UnwrapKey; "
         f"{MECHS} §2.1.8 CKM_RSA_PKCS_OAEP", title=f"RSA-{_bits} OAEP wrap and unwrap of an AES-256 key",
         needs=("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_RSA_PKCS_OAEP"), bits=_bits)(rsa_wrap_case)


# -- error paths: the exact CK_RV --------------------------------------------------------------

def sign_init(ctx: Context, mech: int, key: int, session: int | None = None) -> int:
    m = ctx.raw.mechanism(mech)
    return ctx.raw("C_SignInit", ul(session or ctx.fresh_session().handle), ctypes.byref(m), ul(key))


@case("FUNC-ERR-SIGN-KEY-FUNCTION-NOT-PERMITTED", category=F, clause=f"{BASE} §5.12 C_SignInit",
      title="Signing with a private key whose CKA_SIGN is false: CKR_KEY_FUNCTION_NOT_PERMITTED",
      needs=("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS"))
def err_sign_not_permitted(ctx: Context) -> Outcome:
    _, priv = rsa_pair(ctx, 2048, sign=False)
    rv = sign_init(ctx, M.SHA256_RSA_PKCS, priv.handle)
    expect(rv, "CKR_KEY_FUNCTION_NOT_PERMITTED", what="C_SignInit with a key whose CKA_SIGN is false")
    return passed("C_SignInit refused the key with CKR_KEY_FUNCTION_NOT_PERMITTED")


@case("FUNC-ERR-ENCRYPT-KEY-FUNCTION-NOT-PERMITTED", category=F, clause=f"{BASE} §5.8 C_EncryptInit",
      title="Encrypting with an AES key whose CKA_ENCRYPT is false: CKR_KEY_FUNCTION_NOT_PERMITTED",
      needs=("CKM_AES_ECB",))
def err_encrypt_not_permitted(ctx: Context) -> Outcome:
    key = aes_key(ctx, os.urandom(16), encrypt=False)
    m = ctx.raw.mechanism(M.AES_ECB)
    rv = ctx.raw("C_EncryptInit", ul(ctx.fresh_session().handle), ctypes.byref(m), ul(key.handle))
    expect(rv, "CKR_KEY_FUNCTION_NOT_PERMITTED", what="C_EncryptInit with a key whose CKA_ENCRYPT is false")
    return passed("C_EncryptInit refused the key with CKR_KEY_FUNCTION_NOT_PERMITTED")


@case("FUNC-ERR-SIGN-KEY-HANDLE-INVALID", category=F, clause=f"{BASE} §5.12 C_SignInit",
      title="C_SignInit with a handle that names no object: CKR_KEY_HANDLE_INVALID", needs=("CKM_ECDSA",))
def err_bad_key_handle(ctx: Context) -> Outcome:
    rv = sign_init(ctx, M.ECDSA, BAD_HANDLE)
    expect(rv, "CKR_KEY_HANDLE_INVALID", "CKR_OBJECT_HANDLE_INVALID", what="C_SignInit with an invalid key handle")
    return passed(f"refused with {ckr_name(rv)}")


@case("FUNC-ERR-GETATTR-OBJECT-HANDLE-INVALID", category=F, clause=f"{BASE} §5.7 C_GetAttributeValue",
      title="C_GetAttributeValue with a handle that names no object: CKR_OBJECT_HANDLE_INVALID")
def err_bad_object_handle(ctx: Context) -> Outcome:
    rv, _, _ = raw_get_attribute(ctx, BAD_HANDLE, Attribute.CLASS)
    expect(rv, "CKR_OBJECT_HANDLE_INVALID", what="C_GetAttributeValue with an invalid handle")
    return passed("refused with CKR_OBJECT_HANDLE_INVALID")


@case("FUNC-ERR-GETATTR-TYPE-INVALID", category=F, clause=f"{BASE} §5.7 C_GetAttributeValue",
      title="An attribute the object lacks: CKR_ATTRIBUTE_TYPE_INVALID and ulValueLen CK_UNAVAILABLE_INFORMATION")
def err_attr_type(ctx: Context) -> Outcome:
    obj = data_object(ctx, False, "attr-type")
    rv, n, _ = raw_get_attribute(ctx, obj.handle, Attribute.MODULUS)
    expect(rv, "CKR_ATTRIBUTE_TYPE_INVALID", what="C_GetAttributeValue(CKA_MODULUS) of a data object")
    check(n == CK_UNAVAILABLE_INFORMATION, f"ulValueLen is {n}; expected CK_UNAVAILABLE_INFORMATION")
    return passed("CKR_ATTRIBUTE_TYPE_INVALID with ulValueLen CK_UNAVAILABLE_INFORMATION")


@case("FUNC-ERR-SESSION-HANDLE-INVALID", category=F, clause=f"{BASE} §5.15 C_GenerateRandom",
      title="A session handle never opened: CKR_SESSION_HANDLE_INVALID")
def err_bad_session(ctx: Context) -> Outcome:
    buf = ctypes.create_string_buffer(8)
    rv = ctx.raw("C_GenerateRandom", ul(BAD_HANDLE), buf, ul(8))
    expect(rv, "CKR_SESSION_HANDLE_INVALID", what="C_GenerateRandom with an invalid session handle")
    return passed("refused with CKR_SESSION_HANDLE_INVALID")


def _ec_sign_buffers(ctx: Context, length: int | None) -> tuple[int, int]:
    _, priv = ec_pair(ctx, "P256")
    sh = ctx.fresh_session().handle
    expect(sign_init(ctx, M.ECDSA, priv.handle, sh), "CKR_OK", what="C_SignInit")
    digest = ctypes.create_string_buffer(hashlib.sha256(MSG).digest(), 32)
    n = ctypes.c_ulong(length or 0)
    out = ctypes.create_string_buffer(max(length or 0, 1))
    rv = ctx.raw("C_Sign", ul(sh), digest, ul(32), out if length is not None else None,
                 ctypes.byref(n))
    if rv in (CKR["CKR_OK"], CKR["CKR_BUFFER_TOO_SMALL"]) and n.value:
        # Finish the operation so that the session is free for the next case.
        full = ctypes.create_string_buffer(n.value)
        m = ctypes.c_ulong(n.value)
        ctx.raw("C_Sign", ul(sh), digest, ul(32), full, ctypes.byref(m))
    return rv, n.value


@case("FUNC-ERR-SIGN-BUFFER-TOO-SMALL", category=F, clause=f"{BASE} §5.2 conventions for output buffers; C_Sign",
      title="C_Sign into a 10-byte buffer: CKR_BUFFER_TOO_SMALL with the needed length, the operation still active",
      needs=("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"))
def err_buffer_too_small(ctx: Context) -> Outcome:
    rv, n = _ec_sign_buffers(ctx, 10)
    expect(rv, "CKR_BUFFER_TOO_SMALL", what="C_Sign with a 10-byte buffer")
    check(n == 64, f"C_Sign set the length to {n}; a P-256 signature needs 64 bytes")
    return passed("CKR_BUFFER_TOO_SMALL with the length set to 64")


@case("FUNC-ERR-SIGN-LENGTH-QUERY", category=F, clause=f"{BASE} §5.2 conventions for output buffers; C_Sign",
      title="C_Sign with a NULL buffer returns CKR_OK and the signature length",
      needs=("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"))
def err_length_query(ctx: Context) -> Outcome:
    rv, n = _ec_sign_buffers(ctx, None)
    expect(rv, "CKR_OK", what="C_Sign with a NULL buffer")
    check(n == 64, f"the length query gave {n}; a P-256 signature needs 64 bytes")
    return passed("CKR_OK with the length 64")


_NOT_INIT = {
    "SIGN": "C_Sign", "VERIFY": "C_Verify", "ENCRYPT": "C_Encrypt", "DECRYPT": "C_Decrypt", "DIGEST": "C_Digest",
}
for _op, _fn in _NOT_INIT.items():
    @case(f"FUNC-ERR-{_op}-NOT-INITIALIZED", category=F, clause=f"{BASE} {_fn}",
          title=f"{_fn} without its Init: CKR_OPERATION_NOT_INITIALIZED", fn=_fn)
    def err_not_init(ctx: Context, fn: str) -> Outcome:
        data = ctypes.create_string_buffer(32)
        out = ctypes.create_string_buffer(512)
        n = ctypes.c_ulong(512)
        if fn == "C_Verify":
            rv = ctx.raw(fn, ul(ctx.session.handle), data, ul(32), out, ul(64))
        else:
            rv = ctx.raw(fn, ul(ctx.session.handle), data, ul(32), out, ctypes.byref(n))
        expect(rv, "CKR_OPERATION_NOT_INITIALIZED", what=f"{fn} without {fn}Init")
        return passed(f"{fn} refused with CKR_OPERATION_NOT_INITIALIZED")


@case("FUNC-ERR-DIGEST-OPERATION-ACTIVE", category=F, clause=f"{BASE} §5.10 C_DigestInit",
      title="A second C_DigestInit while one is active: CKR_OPERATION_ACTIVE", needs=("CKM_SHA256",))
def err_op_active(ctx: Context) -> Outcome:
    m = ctx.raw.mechanism(M.SHA256)
    h = ul(ctx.fresh_session().handle)
    expect(ctx.raw("C_DigestInit", h, ctypes.byref(m)), "CKR_OK", what="C_DigestInit")
    rv = ctx.raw("C_DigestInit", h, ctypes.byref(m))
    out = ctypes.create_string_buffer(32)
    n = ctypes.c_ulong(32)
    ctx.raw("C_Digest", h, ctypes.create_string_buffer(1), ul(1), out, ctypes.byref(n))  # ends the operation
    expect(rv, "CKR_OPERATION_ACTIVE", what="a second C_DigestInit")
    return passed("refused with CKR_OPERATION_ACTIVE")


for _fn in ("C_SignInit", "C_DigestInit", "C_EncryptInit"):
    @case(f"FUNC-ERR-{_fn.removeprefix('C_').upper()}-MECHANISM-INVALID", category=F, clause=f"{BASE} {_fn}",
          title=f"{_fn} with an unassigned mechanism number: CKR_MECHANISM_INVALID", fn=_fn)
    def err_mech_invalid(ctx: Context, fn: str) -> Outcome:
        m = ctx.raw.mechanism(BAD_MECHANISM)
        key = aes_key(ctx, os.urandom(16), sign=True)
        sh = ul(ctx.fresh_session().handle)
        if fn == "C_DigestInit":
            rv = ctx.raw(fn, sh, ctypes.byref(m))
        else:
            rv = ctx.raw(fn, sh, ctypes.byref(m), ul(key.handle))
        expect(rv, "CKR_MECHANISM_INVALID", what=f"{fn} with mechanism 0x{BAD_MECHANISM:X}")
        return passed("refused with CKR_MECHANISM_INVALID")


@case("FUNC-ERR-KEY-TYPE-INCONSISTENT", category=F, clause=f"{BASE} §5.12 C_SignInit",
      title="CKM_ECDSA with an RSA key: CKR_KEY_TYPE_INCONSISTENT",
      needs=("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_ECDSA"))
def err_key_type(ctx: Context) -> Outcome:
    _, priv = rsa_pair(ctx, 2048)
    rv = sign_init(ctx, M.ECDSA, priv.handle)
    expect(rv, "CKR_KEY_TYPE_INCONSISTENT", what="C_SignInit(CKM_ECDSA) with an RSA key")
    return passed("refused with CKR_KEY_TYPE_INCONSISTENT")


@case("FUNC-ERR-TEMPLATE-INCOMPLETE", category=F, clause=f"{BASE} §5.7 C_CreateObject; §4.1.1",
      title="Creating an AES key without CKA_VALUE: CKR_TEMPLATE_INCOMPLETE")
def err_template_incomplete(ctx: Context) -> Outcome:
    try:
        obj = ctx.session.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                                         Attribute.TOKEN: False})
    except pkcs11.exceptions.TemplateIncomplete:
        return passed("refused with CKR_TEMPLATE_INCOMPLETE")
    except pkcs11.PKCS11Error as exc:
        raise CaseFailed(f"refused with {refused_with(exc)}; PKCS#11 requires CKR_TEMPLATE_INCOMPLETE") from None
    ctx.track(obj)
    raise CaseFailed("an AES key without CKA_VALUE was created; PKCS#11 requires CKR_TEMPLATE_INCOMPLETE")


@case("FUNC-ERR-SESSION-READ-ONLY", category=F, clause=f"{BASE} §5.7 C_CreateObject",
      title="Creating a token object in a read-only session: CKR_SESSION_READ_ONLY")
def err_session_ro(ctx: Context) -> Outcome:
    s = ctx.token.open(rw=False)
    try:
        obj = s.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.VALUE: b"x"})
    except pkcs11.exceptions.SessionReadOnly:
        return passed("refused with CKR_SESSION_READ_ONLY")
    except pkcs11.PKCS11Error as exc:
        raise CaseFailed(f"refused with {refused_with(exc)}; PKCS#11 requires CKR_SESSION_READ_ONLY") from None
    finally:
        s.close()
    ctx.track(obj)
    raise CaseFailed("a token object was created in a read-only session; PKCS#11 requires CKR_SESSION_READ_ONLY")


@case("FUNC-ERR-DATA-LEN-RANGE", category=F, clause=f"{MECHS} §2.8 CKM_AES_ECB",
      title="AES-ECB over 15 bytes (not a block multiple): CKR_DATA_LEN_RANGE", needs=("CKM_AES_ECB",))
def err_data_len(ctx: Context) -> Outcome:
    key = aes_key(ctx, os.urandom(16))
    try:
        key.encrypt(b"x" * 15, mechanism=M.AES_ECB)
    except pkcs11.exceptions.DataLenRange:
        return passed("refused with CKR_DATA_LEN_RANGE")
    except pkcs11.PKCS11Error as exc:
        raise CaseFailed(f"refused with {refused_with(exc)}; PKCS#11 requires CKR_DATA_LEN_RANGE") from None
    raise CaseFailed("15 bytes were encrypted with AES-ECB; PKCS#11 requires CKR_DATA_LEN_RANGE")


@case("FUNC-ERR-VERIFY-SIGNATURE-LEN-RANGE", category=F, clause=f"{BASE} §5.13 C_Verify",
      title="A P-256 signature one byte short: CKR_SIGNATURE_LEN_RANGE (or CKR_SIGNATURE_INVALID)",
      needs=("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"))
def err_sig_len(ctx: Context) -> Outcome:
    pub, _ = ec_pair(ctx, "P256")
    m = ctx.raw.mechanism(M.ECDSA)
    h = ul(ctx.fresh_session().handle)
    expect(ctx.raw("C_VerifyInit", h, ctypes.byref(m), ul(pub.handle)), "CKR_OK", what="C_VerifyInit")
    digest = hashlib.sha256(MSG).digest()
    rv = ctx.raw("C_Verify", h, ctypes.create_string_buffer(digest, 32), ul(32), ctypes.create_string_buffer(63),
                 ul(63))
    expect(rv, "CKR_SIGNATURE_LEN_RANGE", "CKR_SIGNATURE_INVALID", what="C_Verify of a 63-byte P-256 signature")
    return passed(f"refused with {ckr_name(rv)}")


# -- multi-part operations ---------------------------------------------------------------------

_PARTS = (b"", b"a", MSG, os.urandom(1000), os.urandom(4097))


def multipart_sign_case(ctx: Context, scheme: str) -> Outcome:
    """C_SignUpdate/C_SignFinal and C_VerifyUpdate/C_VerifyFinal over uneven parts."""
    data = b"".join(_PARTS)
    if scheme.startswith("HMAC"):
        value = os.urandom(64)
        key = ctx.session.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
            Attribute.VALUE: value, Attribute.TOKEN: False, Attribute.SIGN: True, Attribute.VERIFY: True})
        ctx.track(key)
        sig = key.sign(iter(_PARTS), mechanism=M.SHA256_HMAC)
        check(sig == hmac.new(value, data, "sha256").digest(), "the multi-part HMAC differs from Python's hmac")
        check(key.verify(iter(_PARTS), sig, mechanism=M.SHA256_HMAC), "multi-part C_Verify refused the HMAC")
        return passed("multi-part HMAC-SHA256 equal to Python's hmac and verified in parts")
    pub, priv = rsa_pair(ctx, 2048)
    pss = scheme.endswith("PSS")
    mech = M.SHA256_RSA_PKCS_PSS if pss else M.SHA256_RSA_PKCS
    param = (M.SHA256, MGF.SHA256, 32) if pss else None
    sig = priv.sign(iter(_PARTS), mechanism=mech, mechanism_param=param)
    pad = padding.PSS(padding.MGF1(hashes.SHA256()), 32) if pss else padding.PKCS1v15()
    try:
        host_public_key(pub).verify(sig, data, pad, hashes.SHA256())
    except InvalidSignature:
        raise CaseFailed(f"pyca/cryptography rejects the multi-part {mech.name} signature") from None
    check(pub.verify(iter(_PARTS), sig, mechanism=mech, mechanism_param=param),
          f"multi-part C_Verify rejects the device's own {mech.name} signature")
    return passed(f"multi-part {mech.name} signature verified by pyca/cryptography and in parts by the device")


for _scheme, _needs in (("RSA2048-SHA256-PKCS1", ("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS")),
                        ("RSA2048-SHA256-PSS", ("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS_PSS")),
                        ("HMAC-SHA256", ("CKM_SHA256_HMAC",))):
    case(f"FUNC-SIGN-MULTIPART-{_scheme}", category=F, clause=f"{BASE} §5.12 C_SignUpdate, C_SignFinal; "
         "§5.13 C_VerifyUpdate, C_VerifyFinal", title=f"{_scheme} signed and verified in uneven parts",
         needs=_needs, scheme=_scheme)(multipart_sign_case)


def multipart_aes_case(ctx: Context, bits: int, mode: str) -> Outcome:
    """C_EncryptUpdate/C_EncryptFinal and C_DecryptUpdate/C_DecryptFinal over uneven parts."""
    from cryptography.hazmat.primitives.padding import PKCS7

    value, iv = os.urandom(bits // 8), os.urandom(16)
    key = aes_key(ctx, value)
    parts = [os.urandom(n) for n in ((16, 32, 48) if mode == "CBC" else (1, 17, 100, 5))]
    data = b"".join(parts)
    mech = mechanism(f"AES_{mode}")
    got = b"".join(key.encrypt(iter(parts), mechanism=mech, mechanism_param=iv, buffer_size=4096))
    plain = data
    if mode == "CBC_PAD":
        p = PKCS7(128).padder()
        plain = p.update(data) + p.finalize()
    enc = Cipher(algorithms.AES(value), modes.CBC(iv)).encryptor()
    want = enc.update(plain) + enc.finalize()
    check(got == want, f"multi-part AES-{bits} {mode} ciphertext differs from pyca/cryptography's")
    back = b"".join(key.decrypt(iter([want[:16], want[16:]]), mechanism=mech, mechanism_param=iv, buffer_size=4096))
    check(back == data, f"multi-part AES-{bits} {mode} decryption is not the plaintext")
    return passed(f"AES-{bits} {mode} in parts equal to pyca/cryptography's, and decrypted in parts")


for _bits in (128, 256):
    for _mode in ("CBC", "CBC_PAD"):
        case(f"FUNC-AES{_bits}-{_mode.replace('_', '-')}-MULTIPART", category=F,
             clause=f"{BASE} §5.8 C_EncryptUpdate, C_EncryptFinal; §5.9 C_DecryptUpdate, C_DecryptFinal",
             title=f"AES-{_bits} {_mode} encrypted and decrypted in uneven parts", needs=(f"CKM_AES_{_mode}",),
             bits=_bits, mode=_mode)(multipart_aes_case)

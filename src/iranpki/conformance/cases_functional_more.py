"""More functional cases, in the manner of Google's pkcs11test: the same operation parametrised
over key sizes, modes, data lengths and hashes, each checked against pyca/cryptography or
hashlib, or against the exact return value PKCS#11 2.40 requires.

Covers: AES-128/192/256 in ECB, CBC, CBC-PAD, CTR and GCM over data lengths 0..1024 bytes,
with CKR_DATA_LEN_RANGE / CKR_ENCRYPTED_DATA_LEN_RANGE for lengths a mode cannot take; RSA-4096
signing (PKCS#1 v1.5 and PSS with SHA-256/384/512); the attributes a generated key must carry;
object search by label and id, copying, read-only attributes; C_DigestKey of plain and sensitive
keys; operation-state errors.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from typing import Any

import pkcs11
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.padding import PKCS7
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import Mechanism as M
from pkcs11.mechanisms import CTRParams, GCMParams
from pkcs11.util.ec import encode_named_curve_parameters

from .cases_functional import (
    BAD_HANDLE,
    BASE,
    CK_ATTRIBUTE,
    CURVES,
    MECHS,
    MSG,
    RSA_SIGN,
    aes_key,
    check,
    ec_pair,
    expect,
    mechanism,
    need_key_size,
    refused_with,
    rsa_pair,
    rsa_sign_case,
    ul,
)
from .cases_security import raw_set
from .context import Context
from .model import CaseFailed, Outcome, case, passed

F = "functional"


# -- AES over data lengths ---------------------------------------------------------------------

def _aes_setup(ctx: Context, bits: int, mode: str) -> tuple[bytes, Any, Any, Any]:
    value = os.urandom(bits // 8)
    key = aes_key(ctx, value)
    if mode == "ECB":
        return value, key, M.AES_ECB, None
    if mode in ("CBC", "CBC_PAD"):
        return value, key, mechanism(f"AES_{mode}"), os.urandom(16)
    if mode == "CTR":
        return value, key, M.AES_CTR, CTRParams(os.urandom(12))
    return value, key, M.AES_GCM, GCMParams(os.urandom(12), b"iranpki", 128)


def _aes_host(value: bytes, mode: str, param: Any, data: bytes) -> bytes:
    if mode == "GCM":
        return AESGCM(value).encrypt(param.nonce, data, b"iranpki")
    if mode == "ECB":
        c = Cipher(algorithms.AES(value), modes.ECB())
    elif mode in ("CBC", "CBC_PAD"):
        c = Cipher(algorithms.AES(value), modes.CBC(param))
    else:
        c = Cipher(algorithms.AES(value), modes.CTR(param.nonce + b"\x00\x00\x00\x01"))
    if mode == "CBC_PAD":
        p = PKCS7(128).padder()
        data = p.update(data) + p.finalize()
    enc = c.encryptor()
    return enc.update(data) + enc.finalize()


def aes_length_case(ctx: Context, bits: int, mode: str, length: int) -> Outcome:
    value, key, mech, param = _aes_setup(ctx, bits, mode)
    data = os.urandom(length)
    want = _aes_host(value, mode, param, data)
    got = key.encrypt(data, mechanism=mech, mechanism_param=param)
    check(got == want, f"AES-{bits} {mode} over {length} bytes: {len(got)}-byte ciphertext differs from "
                       f"pyca/cryptography's ({len(want)} bytes)")
    back = key.decrypt(want, mechanism=mech, mechanism_param=param)
    check(back == data, f"AES-{bits} {mode}: decrypting pyca/cryptography's ciphertext of {length} bytes gave "
                        f"{len(back)} bytes that are not the plaintext")
    return passed(f"AES-{bits} {mode} over {length} bytes equal to pyca/cryptography's and decrypted back")


def aes_bad_length_case(ctx: Context, bits: int, mode: str, length: int, op: str) -> Outcome:
    _, key, mech, param = _aes_setup(ctx, bits, mode)
    want = "CKR_DATA_LEN_RANGE" if op == "encrypt" else "CKR_ENCRYPTED_DATA_LEN_RANGE"
    exc_type = pkcs11.exceptions.DataLenRange if op == "encrypt" else pkcs11.exceptions.EncryptedDataLenRange
    try:
        getattr(key, op)(os.urandom(length), mechanism=mech, mechanism_param=param)
    except exc_type:
        return passed(f"C_{op.capitalize()} of {length} bytes refused with {want}")
    except pkcs11.PKCS11Error as exc:
        raise CaseFailed(f"C_{op.capitalize()} of {length} bytes with AES-{bits} {mode} refused with "
                         f"{refused_with(exc)}; PKCS#11 requires {want}") from None
    raise CaseFailed(f"C_{op.capitalize()} accepted {length} bytes with AES-{bits} {mode}, not a block multiple; "
                     f"PKCS#11 requires {want}")


_AES_LENGTHS = {"ECB": (16, 1024), "CBC": (16, 1024), "CBC_PAD": (0, 1, 15, 16, 17, 1000),
                "CTR": (1, 15, 16, 17, 1000), "GCM": (0, 1, 16, 17, 1000)}
for _bits in (128, 192, 256):
    for _mode, _lengths in _AES_LENGTHS.items():
        _m = _mode.replace("_", "-")
        for _len in _lengths:
            case(f"FUNC-AES{_bits}-{_m}-LEN{_len}", category=F,
                 clause=f"{BASE} §5.8 C_Encrypt, §5.9 C_Decrypt; {MECHS} §2.8 CKM_AES_{_mode}",
                 title=f"AES-{_bits} {_mode} over {_len} bytes against pyca/cryptography",
                 needs=(f"CKM_AES_{_mode}",), bits=_bits, mode=_mode, length=_len)(aes_length_case)
        if _mode in ("ECB", "CBC"):
            for _len in (15, 17):
                case(f"FUNC-AES{_bits}-{_m}-ENCRYPT-LEN{_len}-DATA-LEN-RANGE", category=F,
                     clause=f"{BASE} §5.8 C_Encrypt; {MECHS} §2.8 CKM_AES_{_mode}",
                     title=f"AES-{_bits} {_mode} encryption of {_len} bytes: CKR_DATA_LEN_RANGE",
                     needs=(f"CKM_AES_{_mode}",), bits=_bits, mode=_mode, length=_len, op="encrypt")(
                    aes_bad_length_case)
        if _mode in ("ECB", "CBC", "CBC_PAD"):
            case(f"FUNC-AES{_bits}-{_m}-DECRYPT-LEN17-ENCRYPTED-DATA-LEN-RANGE", category=F,
                 clause=f"{BASE} §5.9 C_Decrypt; {MECHS} §2.8 CKM_AES_{_mode}",
                 title=f"AES-{_bits} {_mode} decryption of 17 bytes: CKR_ENCRYPTED_DATA_LEN_RANGE",
                 needs=(f"CKM_AES_{_mode}",), bits=_bits, mode=_mode, length=17, op="decrypt")(aes_bad_length_case)


# -- RSA-4096 signing --------------------------------------------------------------------------

for _sfx in ("SHA256-PKCS1", "SHA384-PKCS1", "SHA512-PKCS1", "SHA256-PSS", "SHA384-PSS", "SHA512-PSS"):
    _mname, _hh, _pad = RSA_SIGN[_sfx]
    case(f"FUNC-SIGN-RSA4096-{_sfx}", category=F, clause=f"{BASE} §5.12 C_Sign; {MECHS} §2.1 CKM_{_mname}",
         title=f"RSA-4096 CKM_{_mname}", needs=("CKM_RSA_PKCS_KEY_PAIR_GEN", f"CKM_{_mname}"), bits=4096,
         mech_name=_mname, host_hash=_hh, pad=_pad)(rsa_sign_case)


# -- attributes of generated keys --------------------------------------------------------------

def _bool_attrs(key: Any, names: tuple[str, ...]) -> list[str]:
    wrong = []
    for n in names:
        if key[getattr(Attribute, n)] is not True:
            wrong.append(f"CKA_{n} is {key[getattr(Attribute, n)]!r}")
    return wrong


def keygen_attrs_case(ctx: Context, kind: str, size: Any) -> Outcome:
    if kind == "RSA":
        pub, priv = rsa_pair(ctx, size)
        gen = M.RSA_PKCS_KEY_PAIR_GEN
        check(pub[Attribute.MODULUS_BITS] == size, f"CKA_MODULUS_BITS is {pub[Attribute.MODULUS_BITS]}, "
                                                   f"requested {size}")
        check(len(pub[Attribute.MODULUS]) * 8 == size, f"CKA_MODULUS has {len(pub[Attribute.MODULUS])} bytes")
        keys = (pub, priv)
    elif kind == "EC":
        pub, priv = ec_pair(ctx, size)
        gen = M.EC_KEY_PAIR_GEN
        want = encode_named_curve_parameters(CURVES[size][0])
        for k in (pub, priv):
            check(k[Attribute.EC_PARAMS] == want, f"CKA_EC_PARAMS of the {k.object_class.name} key is "
                                                  f"{k[Attribute.EC_PARAMS].hex()}, requested {want.hex()}")
        keys = (pub, priv)
    else:
        need_key_size(ctx, "CKM_AES_KEY_GEN", size)
        key = ctx.session.generate_key(KeyType.AES, size, store=False,
                                       template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})
        ctx.track(key)
        gen = M.AES_KEY_GEN
        check(key[Attribute.VALUE_LEN] * 8 == size, f"CKA_VALUE_LEN is {key[Attribute.VALUE_LEN]}, requested "
                                                     f"{size // 8}")
        keys = (key,)
        priv = key
    for k in keys:
        check(k[Attribute.LOCAL] is True, f"CKA_LOCAL of the generated {k.object_class.name} key is "
                                          f"{k[Attribute.LOCAL]!r}; a generated key must have it true")
        got = k[Attribute.KEY_GEN_MECHANISM]
        check(got == gen, f"CKA_KEY_GEN_MECHANISM of the {k.object_class.name} key is {got!r}; expected {gen.name}")
    wrong = _bool_attrs(priv, ("SENSITIVE", "ALWAYS_SENSITIVE", "NEVER_EXTRACTABLE"))
    check(not wrong, f"a key generated sensitive and non-extractable has {', '.join(wrong)}; expected true")
    check(priv[Attribute.EXTRACTABLE] is False, "CKA_EXTRACTABLE is true though generated false")
    return passed(f"{kind} {size}: CKA_LOCAL, CKA_KEY_GEN_MECHANISM {gen.name}, CKA_ALWAYS_SENSITIVE, "
                  "CKA_NEVER_EXTRACTABLE and the requested size")


for _kind, _size, _needs in (("RSA", 2048, "CKM_RSA_PKCS_KEY_PAIR_GEN"), ("RSA", 3072, "CKM_RSA_PKCS_KEY_PAIR_GEN"),
                             ("EC", "P256", "CKM_EC_KEY_PAIR_GEN"), ("EC", "P384", "CKM_EC_KEY_PAIR_GEN"),
                             ("EC", "P521", "CKM_EC_KEY_PAIR_GEN"), ("AES", 128, "CKM_AES_KEY_GEN"),
                             ("AES", 192, "CKM_AES_KEY_GEN"), ("AES", 256, "CKM_AES_KEY_GEN")):
    case(f"FUNC-KEYGEN-ATTRS-{_kind}-{_size}", category=F,
         clause=f"{BASE} §4.7 key objects (CKA_LOCAL, CKA_KEY_GEN_MECHANISM, CKA_ALWAYS_SENSITIVE, "
                "CKA_NEVER_EXTRACTABLE)",
         title=f"A generated {_kind} {_size} key is local, names its generation mechanism and was never exposed",
         needs=(_needs,), kind=_kind, size=_size)(keygen_attrs_case)


# -- objects -----------------------------------------------------------------------------------

def _data(ctx: Context, label: str) -> Any:
    obj = ctx.session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False,
                                     Attribute.LABEL: label, Attribute.VALUE: b"v"})
    ctx.track(obj)
    return obj


@case("FUNC-OBJ-FIND-BY-LABEL", category=F, clause=f"{BASE} §5.7 C_FindObjectsInit, C_FindObjects",
      title="C_FindObjects with a CKA_LABEL template finds exactly the objects with that label")
def find_by_label(ctx: Context) -> Outcome:
    tag = os.urandom(6).hex()
    a, b = _data(ctx, f"a-{tag}"), _data(ctx, f"a-{tag}")
    _data(ctx, f"b-{tag}")
    found = sorted(o.handle for o in ctx.session.get_objects({Attribute.LABEL: f"a-{tag}"}))
    check(found == sorted((a.handle, b.handle)), f"found handles {found}; expected {sorted((a.handle, b.handle))}")
    return passed("exactly the two objects labelled alike were found")


@case("FUNC-OBJ-FIND-BY-ID", category=F, clause=f"{BASE} §5.7 C_FindObjectsInit, C_FindObjects",
      title="C_FindObjects with a CKA_ID template finds exactly the key with that id (not one with a prefix of it)")
def find_by_id(ctx: Context) -> Outcome:
    tag = os.urandom(16)
    a = aes_key(ctx, os.urandom(16), label="id", id=tag)
    aes_key(ctx, os.urandom(16), label="id", id=tag[:-1])
    found = [o.handle for o in ctx.session.get_objects({Attribute.ID: tag})]
    check(found == [a.handle], f"found handles {found}; expected [{a.handle}]")
    return passed("exactly the object with that CKA_ID was found")


@case("FUNC-OBJ-FIND-NONE", category=F, clause=f"{BASE} §5.7 C_FindObjects",
      title="A template no object matches finds nothing (CKR_OK, zero objects)")
def find_none(ctx: Context) -> Outcome:
    found = list(ctx.session.get_objects({Attribute.LABEL: "no such " + os.urandom(8).hex()}))
    check(not found, f"{len(found)} objects matched a label no object has")
    return passed("no object found")


def _find_raw(ctx: Context, label: str, step: int) -> tuple[int, list[int]]:
    """C_FindObjectsInit by label, C_FindObjects ``step`` handles at a time, C_FindObjectsFinal."""
    value = label.encode()
    buf = ctypes.create_string_buffer(value, len(value))
    tmpl = CK_ATTRIBUTE(Attribute.LABEL, ctypes.cast(buf, ctypes.c_void_p), len(value))
    sh = ul(ctx.session.handle)
    expect(ctx.raw("C_FindObjectsInit", sh, ctypes.byref(tmpl), ul(1)), "CKR_OK", what="C_FindObjectsInit")
    found: list[int] = []
    try:
        second = ctx.raw("C_FindObjectsInit", sh, ctypes.byref(tmpl), ul(1))
        for _ in range(100):
            handles = (ctypes.c_ulong * step)()
            n = ctypes.c_ulong(0)
            expect(ctx.raw("C_FindObjects", sh, handles, ul(step), ctypes.byref(n)), "CKR_OK", what="C_FindObjects")
            check(n.value <= step, f"C_FindObjects returned {n.value} handles for a maximum of {step}")
            if not n.value:
                break
            found.extend(handles[:n.value])
    finally:
        ctx.raw("C_FindObjectsFinal", sh)
    return second, found


@case("FUNC-OBJ-FIND-ONE-AT-A-TIME", category=F, clause=f"{BASE} §5.7 C_FindObjects",
      title="C_FindObjects with ulMaxObjectCount 1 hands out three matches one per call, then none")
def find_one_at_a_time(ctx: Context) -> Outcome:
    tag = f"step-{os.urandom(6).hex()}"
    made = sorted(_data(ctx, tag).handle for _ in range(3))
    _, found = _find_raw(ctx, tag, 1)
    check(sorted(found) == made, f"found {found} one at a time; expected each of {made} once")
    return passed("three matches, one per C_FindObjects call, then zero")


@case("FUNC-ERR-FINDOBJECTSINIT-OPERATION-ACTIVE", category=F, clause=f"{BASE} §5.7 C_FindObjectsInit",
      title="A second C_FindObjectsInit while a search is active: CKR_OPERATION_ACTIVE")
def find_active(ctx: Context) -> Outcome:
    second, _ = _find_raw(ctx, "active-" + os.urandom(4).hex(), 4)
    expect(second, "CKR_OPERATION_ACTIVE", what="a second C_FindObjectsInit")
    return passed("refused with CKR_OPERATION_ACTIVE")


@case("FUNC-OBJ-GET-SIZE", category=F, clause=f"{BASE} §5.7 C_GetObjectSize",
      title="C_GetObjectSize: CKR_OK for an object, CKR_OBJECT_HANDLE_INVALID for a handle that names none")
def object_size(ctx: Context) -> Outcome:
    obj = _data(ctx, "size")
    size = ctypes.c_ulong(0)
    rv = ctx.raw("C_GetObjectSize", ul(ctx.session.handle), ul(obj.handle), ctypes.byref(size))
    expect(rv, "CKR_OK", what="C_GetObjectSize of a data object")
    bad = ctx.raw("C_GetObjectSize", ul(ctx.session.handle), ul(BAD_HANDLE), ctypes.byref(ctypes.c_ulong(0)))
    expect(bad, "CKR_OBJECT_HANDLE_INVALID", what="C_GetObjectSize with an invalid handle")
    shown = "CK_UNAVAILABLE_INFORMATION" if size.value == ctypes.c_ulong(-1).value else f"{size.value} bytes"
    return passed(f"size {shown}; an invalid handle refused with CKR_OBJECT_HANDLE_INVALID")


@case("FUNC-OBJ-COPY-TOKEN-TO-SESSION", category=F, clause=f"{BASE} §5.7 C_CopyObject; §4.4 table 4 (CKA_TOKEN)",
      title="C_CopyObject of a token object with CKA_TOKEN false: a session copy, the original still a token object")
def copy_to_session(ctx: Context) -> Outcome:
    obj = ctx.session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True,
                                     Attribute.LABEL: "token original", Attribute.VALUE: b"t"})
    ctx.track(obj)
    new = obj.copy({Attribute.TOKEN: False, Attribute.LABEL: "session copy"})
    ctx.track(new)
    check(new.handle != obj.handle, "C_CopyObject returned the original's handle")
    check(new[Attribute.TOKEN] is False, f"the copy's CKA_TOKEN is {new[Attribute.TOKEN]!r}; asked false")
    check(obj[Attribute.TOKEN] is True, "the original is no longer a token object")
    check(new[Attribute.VALUE] == b"t" and new[Attribute.LABEL] == "session copy",
          "the copy's value or label differ from what was asked")
    return passed("a session copy with the new label and the original's value; the original unchanged")


@case("FUNC-OBJ-COPY-AES-USABLE", category=F, clause=f"{BASE} §5.7 C_CopyObject",
      title="A copied AES key encrypts exactly as the original", needs=("CKM_AES_ECB",))
def copy_key(ctx: Context) -> Outcome:
    key = aes_key(ctx, os.urandom(16))
    new = key.copy({Attribute.LABEL: "copy"})
    ctx.track(new)
    block = os.urandom(16)
    check(new.encrypt(block, mechanism=M.AES_ECB) == key.encrypt(block, mechanism=M.AES_ECB),
          "the copy's ciphertext differs from the original's")
    return passed("the copy encrypts exactly as the original")


@case("FUNC-OBJ-SET-CLASS-READ-ONLY", category=F, clause=f"{BASE} §4.2 table 4 (CKA_CLASS); §5.7 "
      "C_SetAttributeValue", title="Changing CKA_CLASS of a data object: CKR_ATTRIBUTE_READ_ONLY")
def set_class(ctx: Context) -> Outcome:
    obj = _data(ctx, "class")
    rv = raw_set(ctx, obj.handle, Attribute.CLASS, int(ObjectClass.SECRET_KEY).to_bytes(
        ctypes.sizeof(ctypes.c_ulong), "little"))
    check(obj[Attribute.CLASS] == ObjectClass.DATA, "CKA_CLASS of the data object changed")
    expect(rv, "CKR_ATTRIBUTE_READ_ONLY", what="C_SetAttributeValue(CKA_CLASS) of a data object")
    return passed("refused with CKR_ATTRIBUTE_READ_ONLY; still a data object")


@case("FUNC-OBJ-DATA-RO-SESSION-OBJECT", category=F, clause=f"{BASE} §5.7 C_CreateObject; §4.4 session objects",
      title="A session object may be created in a read-only session")
def ro_session_object(ctx: Context) -> Outcome:
    with ctx.token.open(rw=False) as s:
        try:
            obj = s.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False,
                                   Attribute.VALUE: b"x"})
        except pkcs11.PKCS11Error as exc:
            raise CaseFailed(f"refused with {refused_with(exc)}; a read-only session may create session "
                             "objects") from None
        value = obj[Attribute.VALUE]
        obj.destroy()
    check(value == b"x", "the session object's CKA_VALUE is not what was given")
    return passed("a session object was created, read back and destroyed in a read-only session")


# -- C_DigestKey -------------------------------------------------------------------------------

def _digest_key(ctx: Context, value: bytes, **attrs: Any) -> bytes:
    """C_DigestInit(CKM_SHA256), C_DigestKey of an AES key holding ``value``, C_DigestFinal."""
    key = aes_key(ctx, value, **attrs)
    return ctx.session.digest(key, mechanism=M.SHA256)


@case("FUNC-DIGEST-KEY-SHA256", category=F, clause=f"{BASE} §5.10 C_DigestInit, C_DigestKey, C_DigestFinal",
      title="C_DigestKey of an AES-256 key (not sensitive, extractable) gives hashlib's SHA-256 of its CKA_VALUE",
      needs=("CKM_SHA256",))
def digest_key(ctx: Context) -> Outcome:
    value = os.urandom(32)
    try:
        got = _digest_key(ctx, value)
    except pkcs11.PKCS11Error as exc:
        # CKR_KEY_INDIGESTIBLE is for a key that cannot be digested "for some implementation-specific
        # reason"; a key whose value the device would hand out in plain has no such reason.
        raise CaseFailed(f"C_DigestKey of a key that is neither sensitive nor unextractable refused with "
                         f"{refused_with(exc)}; PKCS#11 requires CKR_OK") from None
    want = hashlib.sha256(value).digest()
    check(got == want, f"the digest of the key is {got.hex()[:32]}...; hashlib's SHA-256 of its value is "
                       f"{want.hex()[:32]}...")
    return passed("SHA-256 of the key's value, equal to hashlib's")


@case("FUNC-DIGEST-KEY-SENSITIVE-SHA256", category=F, clause=f"{BASE} §5.10 C_DigestKey",
      title="C_DigestKey of a sensitive, unextractable AES-256 key: hashlib's SHA-256 of its value, or "
            "CKR_KEY_INDIGESTIBLE", needs=("CKM_SHA256",))
def digest_key_sensitive(ctx: Context) -> Outcome:
    # C_DigestKey exists to digest secret keys, which are usually sensitive, so the spec allows it;
    # a device may still refuse with CKR_KEY_INDIGESTIBLE, its only code for "will not digest this key".
    value = os.urandom(32)
    try:
        got = _digest_key(ctx, value, sensitive=True, extractable=False)
    except pkcs11.exceptions.KeyIndigestible:
        return passed("refused with CKR_KEY_INDIGESTIBLE")
    except pkcs11.PKCS11Error as exc:
        raise CaseFailed(f"C_DigestKey of a sensitive key refused with {refused_with(exc)}; PKCS#11 allows "
                         "CKR_OK or CKR_KEY_INDIGESTIBLE") from None
    check(got == hashlib.sha256(value).digest(), "the device digested the sensitive key, but the digest is not "
                                                 "hashlib's SHA-256 of its value")
    return passed("digested: SHA-256 of the key's value, equal to hashlib's")


# -- operation state ---------------------------------------------------------------------------

def _init(ctx: Context, fn: str, sh: Any, mech: Any, key: int) -> int:
    return ctx.raw(fn, sh, ctypes.byref(mech), ul(key))


def operation_active_case(ctx: Context, fn: str) -> Outcome:
    value = os.urandom(32)
    if fn in ("C_SignInit", "C_VerifyInit"):
        key = ctx.session.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
            Attribute.VALUE: value, Attribute.TOKEN: False, Attribute.SIGN: True, Attribute.VERIFY: True})
        ctx.track(key)
        m = ctx.raw.mechanism(M.SHA256_HMAC)
    else:
        key = aes_key(ctx, value)
        m = ctx.raw.mechanism(M.AES_ECB)
    sh = ul(ctx.fresh_session().handle)
    expect(_init(ctx, fn, sh, m, key.handle), "CKR_OK", what=fn)
    rv = _init(ctx, fn, sh, m, key.handle)
    expect(rv, "CKR_OPERATION_ACTIVE", what=f"a second {fn} while one is active")
    return passed(f"the second {fn} refused with CKR_OPERATION_ACTIVE")


for _fn, _need in (("C_SignInit", "CKM_SHA256_HMAC"), ("C_VerifyInit", "CKM_SHA256_HMAC"),
                   ("C_EncryptInit", "CKM_AES_ECB"), ("C_DecryptInit", "CKM_AES_ECB")):
    case(f"FUNC-ERR-{_fn.removeprefix('C_').upper()}-OPERATION-ACTIVE", category=F, clause=f"{BASE} {_fn}",
         title=f"A second {_fn} while one is active: CKR_OPERATION_ACTIVE", needs=(_need,), fn=_fn)(
        operation_active_case)


def update_not_init_case(ctx: Context, fn: str) -> Outcome:
    sh = ul(ctx.fresh_session().handle)
    data = ctypes.create_string_buffer(16)
    out = ctypes.create_string_buffer(64)
    n = ctypes.c_ulong(64)
    if fn in ("C_SignUpdate", "C_VerifyUpdate", "C_DigestUpdate"):
        rv = ctx.raw(fn, sh, data, ul(16))
    elif fn in ("C_EncryptUpdate", "C_DecryptUpdate"):
        rv = ctx.raw(fn, sh, data, ul(16), out, ctypes.byref(n))
    elif fn == "C_VerifyFinal":
        rv = ctx.raw(fn, sh, out, ul(32))
    else:  # C_SignFinal, C_DigestFinal, C_EncryptFinal, C_DecryptFinal
        rv = ctx.raw(fn, sh, out, ctypes.byref(n))
    expect(rv, "CKR_OPERATION_NOT_INITIALIZED", what=f"{fn} without an Init")
    return passed(f"{fn} refused with CKR_OPERATION_NOT_INITIALIZED")


for _fn in ("C_SignUpdate", "C_SignFinal", "C_VerifyUpdate", "C_VerifyFinal", "C_DigestUpdate", "C_DigestFinal",
            "C_EncryptUpdate", "C_EncryptFinal", "C_DecryptUpdate", "C_DecryptFinal"):
    case(f"FUNC-ERR-{_fn.removeprefix('C_').upper()}-NOT-INITIALIZED", category=F, clause=f"{BASE} {_fn}",
         title=f"{_fn} without its Init: CKR_OPERATION_NOT_INITIALIZED", fn=_fn)(update_not_init_case)


@case("FUNC-ERR-SIGN-ENDS-OPERATION", category=F, clause=f"{BASE} §5.12 C_Sign",
      title="A successful C_Sign ends the operation: a second C_Sign gives CKR_OPERATION_NOT_INITIALIZED",
      needs=("CKM_SHA256_HMAC",))
def sign_ends(ctx: Context) -> Outcome:
    key = ctx.session.create_object({
        Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
        Attribute.VALUE: os.urandom(32), Attribute.TOKEN: False, Attribute.SIGN: True, Attribute.VERIFY: True})
    ctx.track(key)
    m = ctx.raw.mechanism(M.SHA256_HMAC)
    sh = ul(ctx.fresh_session().handle)
    expect(_init(ctx, "C_SignInit", sh, m, key.handle), "CKR_OK", what="C_SignInit")
    data = ctypes.create_string_buffer(MSG, len(MSG))
    out = ctypes.create_string_buffer(64)
    n = ctypes.c_ulong(64)
    expect(ctx.raw("C_Sign", sh, data, ul(len(MSG)), out, ctypes.byref(n)), "CKR_OK", what="C_Sign")
    n = ctypes.c_ulong(64)
    rv = ctx.raw("C_Sign", sh, data, ul(len(MSG)), out, ctypes.byref(n))
    expect(rv, "CKR_OPERATION_NOT_INITIALIZED", what="a second C_Sign after the first succeeded")
    return passed("the second C_Sign refused with CKR_OPERATION_NOT_INITIALIZED")


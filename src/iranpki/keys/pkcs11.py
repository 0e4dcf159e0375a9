"""PKCS#11 tokens and HSMs through python-pkcs11.

Two facts shape this module (docs/architecture.md, measured on SoftHSM2 2.6.1):

- python-pkcs11 passes NULL to C_Initialize, so a module may turn its own locking off, and the
  GIL is released around each call. Every call into one module therefore goes through one
  lock per module per process; throughput scales with processes, not threads.
- Login state belongs to the process, and closing a session may log every session out. So each
  process keeps one logged-in read-write session per token and never closes it while in use.

Keys generated here are private, sensitive and non-extractable, as the national CP requires of
CA keys (and as ``pkcs11-tool --list-objects`` shows: "sensitive, ... never extractable").
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass

import pkcs11
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import (
    encode_ec_public_key,
    encode_ecdsa_signature,
    encode_named_curve_parameters,
)

from ..errors import (
    ConfigError,
    KeyNotFoundError,
    PinError,
    TokenError,
    TokenNotFoundError,
    UnsupportedAlgorithmError,
)
from ..names import check_object_label, check_text, check_token_label
from .base import PIN_ENV, KeySpec, SecretSource, SignatureScheme, Signer
from .reference import KeyReference, KeySettings, Pkcs11KeyReference
from .uri import Pkcs11Uri

__all__ = [
    "DEFAULT_MODULE",
    "PIN_ENV",
    "KeyInfo",
    "Pkcs11Signer",
    "TokenInfo",
    "generate_keypair",
    "init_token",
    "list_keys",
    "list_tokens",
    "module_path",
    "open_pkcs11_signer",
    "open_reference",
    "store_certificate",
]

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
MODULE_ENV = "IRANPKI_PKCS11_MODULE"

_RSA_MECHS = {
    ("sha256", "pkcs1v15"): Mechanism.SHA256_RSA_PKCS,
    ("sha384", "pkcs1v15"): Mechanism.SHA384_RSA_PKCS,
    ("sha512", "pkcs1v15"): Mechanism.SHA512_RSA_PKCS,
    ("sha256", "pss"): Mechanism.SHA256_RSA_PKCS_PSS,
    ("sha384", "pss"): Mechanism.SHA384_RSA_PKCS_PSS,
    ("sha512", "pss"): Mechanism.SHA512_RSA_PKCS_PSS,
}
_PSS_PARAMS = {
    "sha256": (Mechanism.SHA256, pkcs11.MGF.SHA256, 32),
    "sha384": (Mechanism.SHA384, pkcs11.MGF.SHA384, 48),
    "sha512": (Mechanism.SHA512, pkcs11.MGF.SHA512, 64),
}
_CURVE_NAMES = {"P-256": "secp256r1", "P-384": "secp384r1"}


def module_path(explicit: str | None = None) -> str:
    path = explicit or os.environ.get(MODULE_ENV) or DEFAULT_MODULE
    if not os.path.exists(path):
        raise ConfigError(
            f"PKCS#11 module {path!r} does not exist; install the vendor's module (for SoftHSM2: "
            f"apt-get install softhsm2) or set pkcs11_module in the workspace's iranpki.yaml, or {MODULE_ENV}"
        )
    return path


class _Module:
    """One loaded PKCS#11 library in this process, its lock, and one logged-in session per token."""

    _registry: dict[str, _Module] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: str):
        self.path = path
        self.pid = os.getpid()
        self.lock = threading.RLock()
        try:
            self.lib = pkcs11.lib(path)
        except Exception as exc:  # the module failed to load or to initialise
            raise TokenError(f"cannot load PKCS#11 module {path}: {exc}; check it is the vendor's module") from None
        self.sessions: dict[str, pkcs11.Session] = {}

    @classmethod
    def get(cls, path: str) -> _Module:
        real = os.path.realpath(path)
        with cls._registry_lock:
            mod = cls._registry.get(real)
            if mod is None or mod.pid != os.getpid():
                if mod is not None:
                    # A forked child inherits a module initialised by its parent; PKCS#11
                    # (2.40 section 6.7.7) requires the child to initialise it afresh.
                    try:
                        mod.lib.reinitialize()
                    except Exception:  # noqa: BLE001 - best effort; a new lib object follows
                        pass
                mod = cls(real)
                cls._registry[real] = mod
            return mod

    def token(self, label: str) -> pkcs11.Token:
        tokens = list(self.lib.get_tokens())
        found = [t for t in tokens if t.label == label]
        if not found:
            raise TokenNotFoundError(label, [t.label for t in tokens])
        if len(found) > 1:
            raise TokenError(
                f"{len(found)} tokens are labelled {label!r}; give each token a distinct label"
            )
        return found[0]

    def session(self, label: str, pin: SecretSource) -> pkcs11.Session:
        """The process's logged-in read-write session on the token (caller holds ``self.lock``)."""
        sess = self.sessions.get(label)
        if sess is not None:
            return sess
        token = self.token(label)
        secret = pin.get(f"token {label!r}")
        try:
            sess = token.open(rw=True, user_pin=secret)
        except pkcs11.PinIncorrect:
            raise PinError(f"wrong user PIN for token {label!r}; the token counts failed tries") from None
        except pkcs11.PinLocked:
            raise PinError(f"the user PIN of token {label!r} is locked; the security officer must unlock it") from None
        except pkcs11.PKCS11Error as exc:
            raise TokenError(f"cannot log in to token {label!r}: {type(exc).__name__}") from None
        finally:
            del secret
        self.sessions[label] = sess
        return sess


def _pin_source(uri: Pkcs11Uri | None, pin: SecretSource | None) -> SecretSource:
    """Where the user PIN of a token comes from. A ``pin-source`` (given with the key's URI, or
    the token's PIN file in the workspace settings) names the PIN of that token (RFC 7512 2.4:
    "where the application can find the PIN"), so it wins over the general source the caller
    offers (environment or prompt): an operator with tokens of different PINs gives each its own
    file, and the common variable must not hide it."""
    if uri is not None and uri.pin_source:
        return SecretSource(file=uri.pin_source_path(), what="user PIN")
    if pin is not None:
        return pin
    return SecretSource(env=PIN_ENV, what="user PIN")


@dataclass(frozen=True)
class TokenInfo:
    label: str
    manufacturer: str
    model: str
    serial: str
    slot: int
    initialized: bool
    user_pin_locked: bool


@dataclass(frozen=True)
class KeyInfo:
    label: str
    id: bytes
    key_spec: str
    sensitive: bool
    extractable: bool
    uri: str


def list_tokens(module: str | None = None) -> list[TokenInfo]:
    mod = _Module.get(module_path(module))
    with mod.lock:
        out = []
        for slot in mod.lib.get_slots(token_present=True):
            t = slot.get_token()
            out.append(TokenInfo(
                label=t.label, manufacturer=t.manufacturer_id, model=t.model,
                serial=t.serial.decode("ascii", "replace") if isinstance(t.serial, bytes) else str(t.serial),
                slot=slot.slot_id,
                initialized=bool(t.flags & pkcs11.TokenFlag.TOKEN_INITIALIZED),
                user_pin_locked=bool(t.flags & pkcs11.TokenFlag.USER_PIN_LOCKED),
            ))
        return out


def _public_key_of(pub: pkcs11.PublicKey) -> PublicKeyTypes:
    if pub.key_type == KeyType.RSA:
        n = int.from_bytes(pub[Attribute.MODULUS], "big")
        e = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    if pub.key_type == KeyType.EC:
        return load_der_public_key(encode_ec_public_key(pub))
    raise UnsupportedAlgorithmError(f"token key of type {pub.key_type!r} is not offered; use RSA or EC")


def _find_pair(sess: pkcs11.Session, uri: Pkcs11Uri) -> tuple[pkcs11.PrivateKey, pkcs11.PublicKey]:
    attrs: dict[Attribute, object] = {}
    if uri.object is not None:
        attrs[Attribute.LABEL] = uri.object
    if uri.id is not None:
        attrs[Attribute.ID] = uri.id
    if not attrs:
        raise ConfigError(f"PKCS#11 URI {uri} names no key; add object=LABEL or id=%..")
    privs = list(sess.get_objects({**attrs, Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
    if not privs:
        raise KeyNotFoundError(
            f"no private key matching {uri} on token {uri.token!r}; see `iranpki key list --token {uri.token}`"
        )
    if len(privs) > 1:
        raise TokenError(f"{len(privs)} private keys match {uri}; add id= to the URI to pick one")
    priv = privs[0]
    pubs = list(sess.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: priv[Attribute.ID]}))
    if len(pubs) != 1:
        raise KeyNotFoundError(
            f"the private key {uri} has {len(pubs)} public keys with its CKA_ID on the token; "
            "iranpki needs exactly one to know the public key"
        )
    return priv, pubs[0]


class Pkcs11Signer(Signer):
    """A private key on a PKCS#11 token. Thread-safe: calls go through the module's lock."""

    def __init__(self, module: _Module, label: str, pin: SecretSource, uri: Pkcs11Uri):
        self._module = module
        self._label = label
        self._pin = pin
        self._uri = uri
        self.reference = Pkcs11KeyReference(uri)
        with module.lock:
            priv, pub = _find_pair(module.session(label, pin), uri)
            self._priv = priv
            self._public = _public_key_of(pub)

    @property
    def public_key(self) -> PublicKeyTypes:
        return self._public

    def _handle(self) -> pkcs11.PrivateKey:
        # After a fork the handles of the parent are void; find the key again in this process.
        mod = self._module
        if mod.pid != os.getpid():
            self._module = mod = _Module.get(mod.path)
            with mod.lock:
                self._priv, _ = _find_pair(mod.session(self._label, self._pin), self._uri)
        return self._priv

    def sign(self, data: bytes, scheme: SignatureScheme) -> bytes:
        priv = self._handle()
        if not isinstance(data, bytes):
            data = bytes(data)  # a memoryview (a streamed CRL): the module takes bytes
        if isinstance(self._public, rsa.RSAPublicKey):
            mech = _RSA_MECHS[(scheme.hash, scheme.padding)]
            param = _PSS_PARAMS[scheme.hash] if scheme.padding == "pss" else None
            with self._module.lock:
                try:
                    return priv.sign(data, mechanism=mech, mechanism_param=param)
                except pkcs11.PKCS11Error as exc:
                    raise TokenError(f"token {self._label!r} refused to sign with {mech.name}: {type(exc).__name__}") from None
        # Many tokens (SoftHSM2 among them) lack hash-and-sign ECDSA: hash here, sign with CKM_ECDSA.
        h = hashlib.new(scheme.hash, data).digest()
        with self._module.lock:
            try:
                raw = priv.sign(h, mechanism=Mechanism.ECDSA)
            except pkcs11.PKCS11Error as exc:
                raise TokenError(f"token {self._label!r} refused to sign with ECDSA: {type(exc).__name__}") from None
        return encode_ecdsa_signature(raw)


def open_pkcs11_signer(reference: str | Pkcs11KeyReference, pin: SecretSource | None = None,
                       settings: KeySettings | None = None) -> Pkcs11Signer:
    """Open the key a PKCS#11 reference names. The module is the one given with the URI for this
    call (``module-path=``), else the settings' (the workspace's ``pkcs11_module``), else
    ``IRANPKI_PKCS11_MODULE``, else SoftHSM2's; the PIN file likewise the URI's ``pin-source``,
    else the settings' file for the token, else ``pin``."""
    ref = reference if isinstance(reference, Pkcs11KeyReference) else Pkcs11KeyReference.parse(reference)
    settings = settings or KeySettings()
    mod = _Module.get(module_path(ref.local.module_path or settings.pkcs11_module))
    pin_file = ref.local.pin_source or settings.pin_files.get(ref.token)
    source = pin.for_kind("PIN") if pin is not None else None
    return Pkcs11Signer(mod, ref.token, _pin_source(Pkcs11Uri(pin_source=pin_file), source), ref.uri)


def open_reference(reference: KeyReference, secret: SecretSource | None, settings: KeySettings) -> Pkcs11Signer:
    """The PKCS#11 backend of :data:`iranpki.keys.KEY_BACKENDS`."""
    if not isinstance(reference, Pkcs11KeyReference):
        raise TypeError(f"the PKCS#11 backend opens PKCS#11 key references, not {reference!r}")
    return open_pkcs11_signer(reference, secret, settings)


def generate_keypair(token: str, label: str, spec: KeySpec, *, module: str | None = None,
                     pin: SecretSource | None = None, backup: bool = False) -> Pkcs11Signer:
    """Generate a key pair on ``token``: private, sensitive, never extractable, for signing only.

    With ``backup`` the key can be backed up (:mod:`iranpki.keys.backup`): still sensitive (its
    value never leaves the token in the clear), but wrappable, and only under a key the token's
    security officer marked trusted (CKA_WRAP_WITH_TRUSTED)."""
    # Checked before any call into the module: an undecodable label crashed the process in it.
    check_text(token, "token label")
    check_object_label(label)
    path = module_path(module)
    mod = _Module.get(path)
    pin = _pin_source(None, pin.for_kind("PIN") if pin is not None else None)
    key_id = os.urandom(16)
    with mod.lock:
        sess = mod.session(token, pin)
        if list(sess.get_objects({Attribute.LABEL: label, Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
            raise TokenError(f"token {token!r} already holds a private key labelled {label!r}; choose another label")
        private_template = {
            Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.DECRYPT: False,
            Attribute.UNWRAP: False, Attribute.DERIVE: False,
        }
        if backup:
            private_template |= {Attribute.EXTRACTABLE: True, Attribute.WRAP_WITH_TRUSTED: True}
        public_template = {Attribute.TOKEN: True, Attribute.VERIFY: True, Attribute.ENCRYPT: False,
                           Attribute.WRAP: False}
        try:
            if spec.kind == "rsa":
                sess.generate_keypair(
                    KeyType.RSA, spec.size, store=True, label=label, id=key_id,
                    public_template={**public_template, Attribute.PUBLIC_EXPONENT: b"\x01\x00\x01"},
                    private_template=private_template,
                )
            else:
                params = sess.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVE_NAMES[spec.curve])},
                    local=True,
                )
                params.generate_keypair(store=True, label=label, id=key_id,
                                        public_template=public_template, private_template=private_template)
        except pkcs11.PKCS11Error as exc:
            raise TokenError(f"token {token!r} could not generate a {spec} key: {type(exc).__name__}") from None
    uri = Pkcs11Uri(token=token, object=label, id=key_id, type="private")
    return Pkcs11Signer(mod, token, pin, uri)


def store_certificate(reference: str | Pkcs11KeyReference, certificate: bytes, *, module: str | None = None,
                      pin: SecretSource | None = None) -> None:
    """Write ``certificate`` (DER) onto the token of the key ``reference`` names, beside the key:
    a CKO_CERTIFICATE of type X.509 with the key's CKA_ID and label, so that the applications
    that use the token (browsers, PDF signers, pkcs11-tool) find the key's certificate. The
    certificate must be the key's own."""
    from cryptography import x509

    ref = reference if isinstance(reference, Pkcs11KeyReference) else Pkcs11KeyReference.parse(reference)
    cert = x509.load_der_x509_certificate(certificate)
    mod = _Module.get(module_path(ref.local.module_path or module))
    pin = _pin_source(Pkcs11Uri(pin_source=ref.local.pin_source), pin.for_kind("PIN") if pin is not None else None)
    with mod.lock:
        sess = mod.session(ref.token, pin)
        priv, pub = _find_pair(sess, ref.uri)
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        if cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) != \
                _public_key_of(pub).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo):
            raise TokenError(f"the certificate {cert.serial_number:x} is not for the key {ref}; nothing was written")
        try:
            sess.create_object({
                Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                Attribute.TOKEN: True, Attribute.PRIVATE: False, Attribute.ID: priv[Attribute.ID],
                Attribute.LABEL: priv[Attribute.LABEL], Attribute.SUBJECT: cert.subject.public_bytes(),
                Attribute.ISSUER: cert.issuer.public_bytes(),
                Attribute.SERIAL_NUMBER: _der_integer(cert.serial_number), Attribute.VALUE: certificate})
        except pkcs11.PKCS11Error as exc:
            raise TokenError(f"token {ref.token!r} did not store the certificate: {type(exc).__name__}") from None


def _der_integer(n: int) -> bytes:
    from .. import der

    return der.integer(n)


def list_keys(token: str, *, module: str | None = None, pin: SecretSource | None = None) -> list[KeyInfo]:
    path = module_path(module)
    mod = _Module.get(path)
    pin = _pin_source(None, pin)
    out = []
    with mod.lock:
        sess = mod.session(token, pin)
        for priv in sess.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}):
            label = priv[Attribute.LABEL]
            kid = bytes(priv[Attribute.ID])
            if priv.key_type == KeyType.RSA:
                spec = f"rsa{len(priv[Attribute.MODULUS]) * 8}"
            elif priv.key_type == KeyType.EC:
                spec = {v: k for k, v in _CURVE_NAMES.items()}.get(_curve_of(priv), "ec-unknown")
                spec = f"ec-{spec}"
            else:
                spec = str(priv.key_type)
            uri = Pkcs11Uri(token=token, object=label, id=kid, type="private")
            out.append(KeyInfo(label=label, id=kid, key_spec=spec, sensitive=bool(priv[Attribute.SENSITIVE]),
                               extractable=bool(priv[Attribute.EXTRACTABLE]), uri=str(uri)))
    return out


def _curve_of(priv: pkcs11.PrivateKey) -> str:
    from asn1crypto.keys import ECDomainParameters

    params = ECDomainParameters.load(bytes(priv[Attribute.EC_PARAMS]))
    return params.chosen.native if params.name == "named" else "explicit"



_CKR = {0x0: "CKR_OK", 0x3: "CKR_SLOT_ID_INVALID", 0xA0: "CKR_PIN_INCORRECT", 0xA2: "CKR_PIN_LEN_RANGE",
        0xA4: "CKR_PIN_LOCKED", 0xB3: "CKR_SESSION_EXISTS", 0xE0: "CKR_TOKEN_NOT_PRESENT",
        0x191: "CKR_CRYPTOKI_ALREADY_INITIALIZED"}
_CKF_TOKEN_INITIALIZED = 0x400


def init_token(label: str, so_pin: SecretSource, user_pin: SecretSource, *, module: str | None = None) -> TokenInfo:
    """Initialise a free (uninitialised) token with ``label`` and set its user PIN.

    python-pkcs11 does not offer C_InitToken, so that one call goes through ``ctypes`` on the
    same module (``dlopen`` returns the same library, so python-pkcs11 sees the result). The
    PINs come from :class:`SecretSource` objects and never appear in an argument list.
    """
    import ctypes

    check_token_label(label)
    path = module_path(module)
    mod = _Module.get(path)
    with mod.lock:
        if any(t.label == label for t in mod.lib.get_tokens()):
            raise TokenError(f"a token labelled {label!r} exists already; choose another label")
        so = so_pin.get(f"the new token {label!r} (security officer)").encode("utf-8")
        user = user_pin.get(f"token {label!r}").encode("utf-8")
        if len(user) < 4 or len(so) < 4:
            raise PinError("PINs must be at least 4 characters (PKCS#11 modules refuse shorter ones)")
        c = ctypes.CDLL(path)
        ulong = ctypes.c_ulong
        count = ulong(0)
        c.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(count))
        slots = (ulong * count.value)()
        c.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(count))
        info = (ctypes.c_ubyte * 512)()  # CK_TOKEN_INFO is under 200 bytes; room to spare
        free = None
        for slot in slots[: count.value]:
            if c.C_GetTokenInfo(ulong(slot), info) == 0:
                flags = int.from_bytes(bytes(info[96:104]), "little")  # after label, manufacturer, model, serial
                if not flags & _CKF_TOKEN_INITIALIZED:
                    free = slot
                    break
        if free is None:
            raise TokenError(f"module {path} has no free (uninitialised) token to initialise")
        padded = label.encode("utf-8").ljust(32, b" ")
        rv = c.C_InitToken(ulong(free), ctypes.c_char_p(so), ulong(len(so)), ctypes.c_char_p(padded))
        if rv != 0:
            raise TokenError(f"C_InitToken failed on slot {free}: {_CKR.get(rv, hex(rv))}")
        token = mod.token(label)
        with token.open(rw=True, so_pin=so.decode("utf-8")) as sess:
            sess.init_pin(user.decode("utf-8"))
        del so, user
        return next(t for t in list_tokens(module) if t.label == label)

"""Software keys: encrypted PKCS#8 files (RFC 5958; PBES2 with PBKDF2-SHA256 and AES-256-CBC).

The national CP allows software keys at assurance level 1 only; higher levels need a
lab-approved token or HSM. The file is written with mode 0600 and encrypted with the
passphrase, which comes from a :class:`~iranpki.keys.base.SecretSource`.
"""

from __future__ import annotations

import os
import threading

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
    PublicKeyTypes,
)

from ..errors import ConfigError, KeyNotFoundError, PinError, TokenError, UnsupportedAlgorithmError
from .base import (
    CURVES,
    HASHES,
    PASSPHRASE_ENV,
    KeySpec,
    SecretSource,
    SignatureScheme,
    Signer,
)
from .reference import (
    KeyReference,
    KeySettings,
    MemoryKeyReference,
    SoftwareKeyReference,
    parse_key_reference,
)

__all__ = ["SoftwareSigner", "generate_software_key", "load_software_key", "open_reference"]

MIN_PASSPHRASE = 8


class SoftwareSigner(Signer):
    """A signer over a private key held in this process's memory."""

    def __init__(self, private_key: PrivateKeyTypes, reference: KeyReference | str = MemoryKeyReference()):
        if not isinstance(private_key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise UnsupportedAlgorithmError(
                f"software key of type {type(private_key).__name__} is not offered; use RSA or ECDSA"
            )
        self._key = private_key
        self._public = private_key.public_key()
        self.reference = reference if isinstance(reference, KeyReference) else _name(reference)
        self._lock = threading.Lock()  # OpenSSL keys are thread-safe; the lock guards close()

    @property
    def public_key(self) -> PublicKeyTypes:
        return self._public

    def sign(self, data: bytes, scheme: SignatureScheme) -> bytes:
        key = self._key
        if key is None:
            raise TokenError(f"the software key {self.reference} was closed; open it again")
        h = HASHES[scheme.hash]()
        if isinstance(key, rsa.RSAPrivateKey):
            if scheme.padding == "pss":
                pad: padding.AsymmetricPadding = padding.PSS(padding.MGF1(h), scheme.salt_length)
            else:
                pad = padding.PKCS1v15()
            return key.sign(data, pad, h)
        return key.sign(data, ec.ECDSA(h))

    def close(self) -> None:
        with self._lock:
            self._key = None  # type: ignore[assignment]


def _name(text: str) -> KeyReference:
    """The reference a caller named an in-memory key by: a key reference, or a plain name."""
    try:
        return parse_key_reference(text)
    except ConfigError:
        return MemoryKeyReference(text)


def _new_private_key(spec: KeySpec) -> PrivateKeyTypes:
    if spec.kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.size)
    return ec.generate_private_key(CURVES[spec.curve]())  # type: ignore[index]


def generate_software_key(spec: KeySpec, path: str, passphrase: SecretSource) -> SoftwareSigner:
    """Generate a key, write it encrypted to ``path`` (never over an existing file), return its signer."""
    secret = passphrase.for_kind("passphrase").get(f"the new key {path}")
    if len(secret) < MIN_PASSPHRASE:
        raise PinError(
            f"the passphrase for {path} is too short ({len(secret)} characters); use at least {MIN_PASSPHRASE}"
        )
    key = _new_private_key(spec)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(secret.encode("utf-8")),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise TokenError(f"key file {path} already exists; choose another path (keys are never overwritten)") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    return SoftwareSigner(key, reference=SoftwareKeyReference(os.path.abspath(path)))


def load_software_key(path: str, passphrase: SecretSource) -> SoftwareSigner:
    """Open an encrypted PKCS#8 key file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise KeyNotFoundError(f"no key file at {path}; check the path (iranpki key list shows known keys)") from None
    if b"ENCRYPTED PRIVATE KEY" not in data:
        raise TokenError(
            f"key file {path} is not an encrypted PKCS#8 key; iranpki refuses unencrypted keys. "
            "Re-encrypt it: openssl pkcs8 -topk8 -v2 aes-256-cbc"
        )
    secret = passphrase.for_kind("passphrase").get(f"key file {path}")
    try:
        key = serialization.load_pem_private_key(data, secret.encode("utf-8"))
    except ValueError:
        raise PinError(f"wrong passphrase for key file {path} (or the file is damaged)") from None
    return SoftwareSigner(key, reference=SoftwareKeyReference(os.path.abspath(path)))


def open_reference(reference: KeyReference, secret: SecretSource | None, settings: KeySettings) -> SoftwareSigner:
    """The software backend of :data:`iranpki.keys.KEY_BACKENDS`: open the key file a
    :class:`SoftwareKeyReference` names (inside the workspace when relative); the signer keeps
    the reference as given."""
    if not isinstance(reference, SoftwareKeyReference):
        raise TypeError(f"the software backend opens software key references, not {reference!r}")
    signer = load_software_key(str(reference.file(settings)),
                               secret or SecretSource(env=PASSPHRASE_ENV, what="passphrase"))
    signer.reference = reference
    return signer

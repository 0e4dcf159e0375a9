"""The signer interface the CA core uses, whatever holds the key.

A :class:`Signer` signs bytes with one private key and tells its public key and algorithm.
Two backends implement it: :mod:`iranpki.keys.software` (encrypted PKCS#8 files) and
:mod:`iranpki.keys.pkcs11` (PKCS#11 tokens and HSMs). The core never imports either directly;
it is handed a signer by :func:`iranpki.keys.open_signer`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from .. import der
from ..errors import PinError, UnsupportedAlgorithmError
from .reference import KeyReference, SecretKind

__all__ = [
    "HASHES",
    "KeySecrets",
    "KeySpec",
    "SecretSource",
    "SignatureScheme",
    "Signer",
    "key_spec_of",
]

HashName = Literal["sha256", "sha384", "sha512"]
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_HASH_OIDS = {"sha256": "2.16.840.1.101.3.4.2.1", "sha384": "2.16.840.1.101.3.4.2.2",
              "sha512": "2.16.840.1.101.3.4.2.3"}
_HASH_LEN = {"sha256": 32, "sha384": 48, "sha512": 64}
_RSA_PKCS1_OIDS = {"sha256": "1.2.840.113549.1.1.11", "sha384": "1.2.840.113549.1.1.12",
                   "sha512": "1.2.840.113549.1.1.13"}
_ECDSA_OIDS = {"sha256": "1.2.840.10045.4.3.2", "sha384": "1.2.840.10045.4.3.3",
               "sha512": "1.2.840.10045.4.3.4"}
_NULL = b"\x05\x00"

CURVES: dict[str, type[ec.EllipticCurve]] = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1}
RSA_SIZES = (2048, 3072, 4096)
_CURVE_ALIASES = {"p256": "P-256", "p-256": "P-256", "secp256r1": "P-256", "prime256v1": "P-256",
                  "p384": "P-384", "p-384": "P-384", "secp384r1": "P-384"}


@dataclass(frozen=True)
class KeySpec:
    """A key type: ``rsa`` with a modulus size, or ``ec`` with a named curve."""

    kind: Literal["rsa", "ec"]
    size: int  # modulus bits for RSA, field bits for EC
    curve: str | None = None  # "P-256" or "P-384" for EC

    def __post_init__(self) -> None:
        if self.kind == "rsa" and self.size not in RSA_SIZES:
            raise UnsupportedAlgorithmError(
                f"RSA key size {self.size} is not offered; must be one of {', '.join(map(str, RSA_SIZES))}"
            )
        if self.kind == "ec" and self.curve not in CURVES:
            raise UnsupportedAlgorithmError(
                f"curve {self.curve!r} is not offered; must be one of {', '.join(CURVES)}"
            )

    @classmethod
    def parse(cls, text: str) -> KeySpec:
        """Read ``rsa2048``, ``rsa-4096``, ``p256``, ``ec-p384``, ``secp256r1`` and the like."""
        t = text.strip().lower().replace("_", "-")
        if t.startswith("rsa"):
            digits = t[3:].lstrip("-:")
            if digits.isdigit():
                return cls("rsa", int(digits))
        name = t[3:] if t.startswith("ec-") or t.startswith("ec:") else t
        if name in _CURVE_ALIASES:
            curve = _CURVE_ALIASES[name]
            return cls("ec", int(curve[2:]), curve)
        raise UnsupportedAlgorithmError(
            f"unknown key algorithm {text!r}; must be one of rsa2048, rsa3072, rsa4096, p256, p384"
        )

    def __str__(self) -> str:
        return f"rsa{self.size}" if self.kind == "rsa" else f"ec-{self.curve}"

    @property
    def default_hash(self) -> HashName:
        # Match the hash strength to the key (NIST SP 800-57 part 1, table 3).
        return "sha384" if self.size in (384, 4096) else "sha256"


def key_spec_of(public_key: PublicKeyTypes) -> KeySpec:
    """The :class:`KeySpec` of a ``cryptography`` public key, or raise if not offered."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return KeySpec("rsa", public_key.key_size)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384"}
        curve = names.get(public_key.curve.name)
        if curve is None:
            raise UnsupportedAlgorithmError(
                f"curve {public_key.curve.name!r} is not offered; must be P-256 or P-384"
            )
        return KeySpec("ec", int(curve[2:]), curve)
    raise UnsupportedAlgorithmError(
        f"key type {type(public_key).__name__} is not offered; use RSA (2048-4096) or ECDSA (P-256, P-384)"
    )


@dataclass(frozen=True)
class SignatureScheme:
    """How to sign: a hash and, for RSA, PKCS#1 v1.5 or PSS (salt length = hash length)."""

    hash: HashName = "sha256"
    padding: Literal["pkcs1v15", "pss"] = "pkcs1v15"

    def __post_init__(self) -> None:
        if self.hash not in HASHES:
            raise UnsupportedAlgorithmError(
                f"hash {self.hash!r} is not offered for signing; must be one of {', '.join(HASHES)}"
            )
        if self.padding not in ("pkcs1v15", "pss"):
            raise UnsupportedAlgorithmError(
                f"RSA padding {self.padding!r} is not offered; must be pkcs1v15 or pss"
            )

    def algorithm_identifier(self, spec: KeySpec) -> bytes:
        """The DER AlgorithmIdentifier of this scheme with a key of ``spec``.

        RFC 4055 section 3.1 for RSASSA-PSS (hash and MGF1 hash the same, salt = hash length,
        trailer field default); RFC 5758 3.2 for ECDSA (parameters absent); RFC 4055 5 for
        PKCS#1 v1.5 (parameters NULL).
        """
        if spec.kind == "ec":
            return der.sequence(der.oid(_ECDSA_OIDS[self.hash]))
        if self.padding == "pkcs1v15":
            return der.sequence(der.oid(_RSA_PKCS1_OIDS[self.hash]), _NULL)
        hash_alg = der.sequence(der.oid(_HASH_OIDS[self.hash]), _NULL)
        mgf = der.sequence(der.oid("1.2.840.113549.1.1.8"), hash_alg)
        params = der.sequence(
            der.context(0, hash_alg), der.context(1, mgf), der.context(2, der.integer(_HASH_LEN[self.hash]))
        )
        return der.sequence(der.oid("1.2.840.113549.1.1.10"), params)

    @property
    def salt_length(self) -> int:
        return _HASH_LEN[self.hash]

    def __str__(self) -> str:
        return self.hash + ("-pss" if self.padding == "pss" else "")

    @classmethod
    def parse(cls, text: str) -> SignatureScheme:
        """Read ``sha256``, ``sha384-pss`` and the like (the form ``str()`` writes)."""
        hash_name, _, pad = text.strip().lower().partition("-")
        if pad not in ("", "pss", "pkcs1v15"):
            raise UnsupportedAlgorithmError(
                f"signature scheme {text!r} is not offered; write HASH or HASH-pss (e.g. sha256, sha384-pss)"
            )
        return cls(hash_name, "pss" if pad == "pss" else "pkcs1v15")  # type: ignore[arg-type]


#: The environment variable a software key's passphrase is read from by default.
PASSPHRASE_ENV = "IRANPKI_KEY_PASSPHRASE"
#: The environment variable a token's user PIN is read from by default.
PIN_ENV = "IRANPKI_PKCS11_PIN"


def signature_valid(public_key: PublicKeyTypes, signature: bytes, data: bytes, scheme: SignatureScheme) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``public_key`` under ``scheme`` (RSA PKCS#1
    v1.5 or PSS, ECDSA): the check every signature a CA key makes passes before it is used."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import padding

    h = HASHES[scheme.hash]()
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            pad = padding.PSS(padding.MGF1(h), scheme.salt_length) if scheme.padding == "pss" else padding.PKCS1v15()
            public_key.verify(signature, data, pad, h)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(h))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def verify_signature(public_key: PublicKeyTypes, signature: bytes, data: bytes, scheme: SignatureScheme) -> None:
    """Check a signature a CA key just made (certificates, CRLs, OCSP responses, time stamps)
    before it is used; FaultySignatureError (a TokenError) when it does not verify."""
    if not signature_valid(public_key, signature, data, scheme):
        from ..errors import FaultySignatureError

        raise FaultySignatureError(
            "the CA key produced a signature that does not verify: the token or HSM is faulty. "
            "Nothing was issued; take the device out of service and report it to the lab")


class Signer(ABC):
    """One private key that signs. Implementations are safe to share between threads."""

    #: The key's name (:mod:`iranpki.keys.reference`); ``str()`` of it is what a record keeps.
    #: Holds no secret and nothing about this machine.
    reference: KeyReference

    @property
    @abstractmethod
    def public_key(self) -> PublicKeyTypes: ...

    @property
    def key_spec(self) -> KeySpec:
        spec = self.__dict__.get("_key_spec")
        if spec is None:  # the public key never changes: work it out once
            spec = self.__dict__["_key_spec"] = key_spec_of(self.public_key)
        return spec

    @abstractmethod
    def sign(self, data: bytes, scheme: SignatureScheme) -> bytes:
        """Sign ``data`` (not a digest). ECDSA signatures come back DER-encoded (RFC 3279 2.2.3)."""

    def sign_checked(self, data: bytes, scheme: SignatureScheme) -> bytes:
        """Sign ``data``, then verify the signature with the public key before returning it: a
        faulty token or HSM raises FaultySignatureError here, so no unverified signature leaves
        iranpki."""
        signature = self.sign(data, scheme)
        verify_signature(self.public_key, signature, data, scheme)
        return signature

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the signer holds (sessions, key material)."""

    def __enter__(self) -> Signer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SecretSource:
    """Where a PIN or passphrase comes from: an environment variable, a file, or a prompt.

    The secret is read when needed and never stored in a field that is printed, logged or put
    in an argument list: command lines show in ``ps``, so a PIN is never one of them.
    """

    def __init__(self, *, env: str | None = None, file: str | None = None,
                 prompt: Callable[[str], str] | None = None, what: str = "PIN"):
        self.env = env
        self.file = file
        self.prompt = prompt
        self.what = what

    def __repr__(self) -> str:  # never shows the secret, only where it comes from
        return f"SecretSource(env={self.env!r}, file={self.file!r}, prompt={self.prompt is not None})"

    def for_kind(self, kind: SecretKind) -> SecretSource:
        """The source of a ``kind`` of secret (a token's PIN, a key file's passphrase). A plain
        source offers the same secret for either; :class:`KeySecrets` holds one of each."""
        return self

    def get(self, for_what: str) -> str:
        if self.file:
            try:
                with open(self.file, encoding="utf-8") as f:
                    value = f.readline().rstrip("\r\n")
            except UnicodeDecodeError:
                # Never the decoder's message: it quotes the byte it stopped at, a byte of the secret.
                raise PinError(f"the {self.what} file {self.file!r} is not UTF-8 text; write the {self.what} "
                               "on its first line in UTF-8") from None
            except OSError as exc:
                raise PinError(
                    f"cannot read the {self.what} file {self.file!r}: {exc.strerror}; "
                    "check the path and its permissions"
                ) from None
            if value:
                return value
            raise PinError(f"the {self.what} file {self.file!r} is empty; write the {self.what} on its first line")
        if self.env and os.environ.get(self.env):
            return os.environ[self.env]
        if self.prompt is not None:
            return self.prompt(f"{self.what} for {for_what}")
        where = f"set the environment variable {self.env}" if self.env else "give a file"
        raise PinError(f"no {self.what} for {for_what}: {where}, or run interactively to be asked")


class KeySecrets(SecretSource):
    """A token user PIN and a software key passphrase, offered together to open a key whose kind
    is not known yet (a CA's key, named by its record): the key's backend asks for the kind it
    needs (:attr:`KeyReference.secret_kind`)."""

    def __init__(self, *, pin: SecretSource, passphrase: SecretSource):
        super().__init__(what="PIN or passphrase")
        self.pin = pin
        self.passphrase = passphrase

    def __repr__(self) -> str:
        return f"KeySecrets(pin={self.pin!r}, passphrase={self.passphrase!r})"

    def for_kind(self, kind: SecretKind) -> SecretSource:
        return self.pin if kind == "PIN" else self.passphrase

    def get(self, for_what: str) -> str:
        raise PinError(f"no PIN or passphrase chosen for {for_what}: ask KeySecrets.for_kind for the key's kind")

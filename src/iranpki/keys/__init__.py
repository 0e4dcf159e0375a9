"""The key layer: one :class:`Signer` interface over software keys and PKCS#11 tokens.

A key is named by a reference string: an RFC 7512 URI (``pkcs11:token=...;object=...``) for a
key on a token, or a file path for an encrypted PKCS#8 software key.
"""

from __future__ import annotations

from .base import PASSPHRASE_ENV, PIN_ENV, KeySpec, SecretSource, SignatureScheme, Signer, key_spec_of
from .software import SoftwareSigner, generate_software_key, load_software_key

__all__ = [
    "KeySpec",
    "PASSPHRASE_ENV",
    "PIN_ENV",
    "SecretSource",
    "SignatureScheme",
    "Signer",
    "SoftwareSigner",
    "generate_software_key",
    "is_pkcs11",
    "key_spec_of",
    "load_software_key",
    "open_signer",
]


def is_pkcs11(reference: str) -> bool:
    return reference.startswith("pkcs11:")


def open_signer(reference: str, secret: SecretSource | None = None) -> Signer:
    """Open the key named by ``reference`` (PKCS#11 URI or software key path)."""
    if is_pkcs11(reference):
        # Imported here so that a software-only user needs no PKCS#11 library loaded.
        from .pkcs11 import open_pkcs11_signer

        return open_pkcs11_signer(reference, secret)
    path = reference[len("file:"):] if reference.startswith("file:") else reference
    return load_software_key(path, secret or SecretSource(env=PASSPHRASE_ENV, what="passphrase"))

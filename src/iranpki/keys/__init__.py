"""The key layer: one :class:`Signer` interface over software keys and PKCS#11 tokens.

A key is named by a typed reference (:mod:`iranpki.keys.reference`): an RFC 7512 URI
(``pkcs11:token=...;object=...``) for a key on a token, or a path for an encrypted PKCS#8
software key. :func:`open_signer` opens one with the backend :data:`KEY_BACKENDS` names for its
type, adding this machine's settings (the PKCS#11 module, PIN files, the workspace folder).
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import (
    PASSPHRASE_ENV,
    PIN_ENV,
    KeySecrets,
    KeySpec,
    SecretSource,
    SignatureScheme,
    Signer,
    key_spec_of,
)
from .reference import (
    KeyReference,
    KeySettings,
    MemoryKeyReference,
    Pkcs11KeyReference,
    SoftwareKeyReference,
    parse_key_reference,
)
from .software import SoftwareSigner, generate_software_key, load_software_key

__all__ = [
    "KEY_BACKENDS",
    "KeyReference",
    "KeySecrets",
    "KeySettings",
    "KeySpec",
    "MemoryKeyReference",
    "PASSPHRASE_ENV",
    "PIN_ENV",
    "Pkcs11KeyReference",
    "SecretSource",
    "SignatureScheme",
    "Signer",
    "SoftwareKeyReference",
    "SoftwareSigner",
    "generate_software_key",
    "key_spec_of",
    "load_software_key",
    "open_signer",
    "parse_key_reference",
]

#: The key backends by name (``KeyReference.backend``): the module whose ``open_reference``
#: opens that type of reference. Imported when first used, so a software-only user never loads
#: a PKCS#11 library. A deployment adds a backend by adding an entry (as django-ca's
#: ``CA_KEY_BACKENDS`` setting does) and a reference type to ``iranpki.keys.reference.SCHEMES``.
KEY_BACKENDS: dict[str, str] = {
    "pkcs11": "iranpki.keys.pkcs11",
    "software": "iranpki.keys.software",
}


def open_signer(reference: str | KeyReference, secret: SecretSource | None = None,
                settings: KeySettings | None = None) -> Signer:
    """Open the key ``reference`` names (a PKCS#11 URI or a software key path) with its backend.

    ``secret`` gives the PIN or passphrase (a :class:`KeySecrets` offers both, and the backend
    takes the kind it needs); ``settings`` is this machine's configuration (module, PIN files,
    the folder relative software keys are in)."""
    ref = parse_key_reference(reference)
    target = KEY_BACKENDS.get(ref.backend)
    if target is None:
        if isinstance(ref, MemoryKeyReference):
            raise ConfigError(f"the key {ref} was held in memory by the program that made it and cannot be opened "
                              "again; give a key on a token (pkcs11:...) or an encrypted key file")
        raise ConfigError(f"no key backend opens {ref.backend} keys (reference {ref}); the backends are "
                          f"{', '.join(KEY_BACKENDS)}")
    backend = importlib.import_module(target)
    source = secret.for_kind(ref.secret_kind) if secret is not None else None
    return backend.open_reference(ref, source, settings or KeySettings())  # type: ignore[no-any-return]

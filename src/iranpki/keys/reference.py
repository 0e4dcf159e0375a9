"""Key references: typed values that name a key and nothing about the machine that opens it.

A CA record keeps the reference of its key. What a reference may hold is the key's identity:

- :class:`Pkcs11KeyReference`: an RFC 7512 URI's path part (``token``, ``object``, ``id``, ...).
  Where the PKCS#11 module is installed and where a token's PIN file lies are this machine's
  configuration (:class:`KeySettings`), found when the key is opened, never stored: the same
  record opens on a machine whose module lives elsewhere.
- :class:`SoftwareKeyReference`: an encrypted PKCS#8 file, relative to the workspace folder
  (``keys/gica1.pem``) so a workspace can be moved or restored elsewhere, or absolute for a key
  kept outside it.
- :class:`MemoryKeyReference`: a key held in this process only (a library user's
  ``SoftwareSigner(key)``); it names the key in messages and cannot be opened again.

The text form (``str(ref)``) is what the store keeps; :func:`parse_key_reference` reads it back,
choosing the type by the scheme before the first colon (``pkcs11:``, ``file:``, ``memory:``; a
plain path is a software key). Which module opens each type is :data:`iranpki.keys.KEY_BACKENDS`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import ClassVar, Literal

from ..errors import ConfigError
from ..names import check_text
from .uri import Pkcs11Uri

__all__ = [
    "KeyReference",
    "KeySettings",
    "MemoryKeyReference",
    "Pkcs11KeyReference",
    "SecretKind",
    "SoftwareKeyReference",
    "parse_key_reference",
]

#: What secret opens a key: a token's user PIN or a software key's passphrase.
SecretKind = Literal["PIN", "passphrase"]


@dataclass(frozen=True)
class KeySettings:
    """What this machine adds to a key reference to open it: the workspace folder relative
    software keys are found in, the PKCS#11 module, and PIN files by token label. It comes from
    the workspace configuration (``iranpki.yaml``) and is never written into a reference."""

    base: Path | None = None
    pkcs11_module: str | None = None
    pin_files: Mapping[str, str] = field(default_factory=dict)


class KeyReference(ABC):
    """A key's name. Subclasses are frozen dataclasses; ``str()`` gives the stored form."""

    #: The URI scheme of the text form; :data:`SCHEMES` maps it back to the type.
    scheme: ClassVar[str]
    #: The entry of :data:`iranpki.keys.KEY_BACKENDS` that opens it (also ``KeyRecord.backend``).
    backend: ClassVar[str]
    #: Which secret opens it.
    secret_kind: ClassVar[SecretKind]
    #: Whether the key lives on a token or HSM (the CP's levels 2-4 ask for one).
    on_token: ClassVar[bool]

    @classmethod
    @abstractmethod
    def parse(cls, text: str) -> KeyReference: ...

    @abstractmethod
    def __str__(self) -> str: ...


@dataclass(frozen=True)
class Pkcs11KeyReference(KeyReference):
    """A private key on a PKCS#11 token. ``uri`` holds the key's identity only; a
    ``module-path`` or ``pin-source`` given with it is kept apart (``local``) for the one opening
    it was given for, and never written by ``str()``."""

    scheme: ClassVar[str] = "pkcs11"
    backend: ClassVar[str] = "pkcs11"
    secret_kind: ClassVar[SecretKind] = "PIN"
    on_token: ClassVar[bool] = True

    uri: Pkcs11Uri
    #: ``module-path`` and ``pin-source`` as the text gave them: this machine's settings for this call.
    local: Pkcs11Uri = field(default_factory=Pkcs11Uri, compare=False)

    @classmethod
    def parse(cls, text: str) -> Pkcs11KeyReference:
        uri = Pkcs11Uri.parse(text)
        if not uri.token:
            raise ConfigError(f"PKCS#11 URI {text!r} names no token; add token=LABEL")
        if uri.type not in (None, "private"):
            raise ConfigError(f"PKCS#11 URI {text!r} has type={uri.type}; a signer needs type=private")
        if uri.object is None and uri.id is None:
            raise ConfigError(f"PKCS#11 URI {text!r} names no key; add object=LABEL or id=%..")
        return cls(replace(uri, module_path=None, pin_source=None),
                   Pkcs11Uri(module_path=uri.module_path, pin_source=uri.pin_source))

    @property
    def token(self) -> str:
        return self.uri.token or ""

    def __str__(self) -> str:
        return str(self.uri)


@dataclass(frozen=True)
class SoftwareKeyReference(KeyReference):
    """An encrypted PKCS#8 key file: relative to :attr:`KeySettings.base`, or absolute."""

    scheme: ClassVar[str] = "file"
    backend: ClassVar[str] = "software"
    secret_kind: ClassVar[SecretKind] = "passphrase"
    on_token: ClassVar[bool] = False

    path: str

    @classmethod
    def parse(cls, text: str) -> SoftwareKeyReference:
        path = text
        if text.startswith("file:"):
            path = text[len("file:"):]
            if path.startswith("//"):  # file:///abs/key.pem (RFC 8089); a host other than ours is refused
                host, _, rest = path[2:].partition("/")
                if host not in ("", "localhost"):
                    raise ConfigError(f"key reference {text!r} names a file on host {host!r}; give a local file")
                path = "/" + rest
        if not path:
            raise ConfigError(f"key reference {text!r} names no file; give the key file's path")
        return cls(path)

    def file(self, settings: KeySettings) -> Path:
        """The key file on this machine: the path itself, or the path inside the workspace."""
        p = Path(self.path)
        return p if p.is_absolute() or settings.base is None else settings.base / p

    def relative_to(self, base: Path) -> SoftwareKeyReference:
        """The same key named relative to ``base`` when it lies inside it (the stored form)."""
        p = Path(os.path.abspath(self.file(KeySettings(base=base))))
        try:
            return SoftwareKeyReference(PurePosixPath(p.relative_to(os.path.abspath(base))).as_posix())
        except ValueError:
            return SoftwareKeyReference(str(p))

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True)
class MemoryKeyReference(KeyReference):
    """A key held in this process's memory only; it cannot be opened again."""

    scheme: ClassVar[str] = "memory"
    backend: ClassVar[str] = "memory"
    secret_kind: ClassVar[SecretKind] = "passphrase"
    on_token: ClassVar[bool] = False

    name: str = ""

    @classmethod
    def parse(cls, text: str) -> MemoryKeyReference:
        return cls(text[len("memory:"):])

    def __str__(self) -> str:
        return f"memory:{self.name}"


#: The reference types by the scheme of their text form.
SCHEMES: dict[str, type[KeyReference]] = {
    t.scheme: t for t in (Pkcs11KeyReference, SoftwareKeyReference, MemoryKeyReference)
}


def parse_key_reference(text: str | KeyReference) -> KeyReference:
    """The typed reference of ``text``: ``pkcs11:...``, ``file:PATH``, ``memory:`` or a plain path."""
    if isinstance(text, KeyReference):
        return text
    check_text(text, "key reference")
    scheme, colon, _ = text.partition(":")
    if colon and scheme.isascii() and scheme.isalnum() and "/" not in scheme and len(scheme) > 1:
        kind = SCHEMES.get(scheme.lower())
        if kind is None and os.path.exists(text):
            return SoftwareKeyReference(text)  # a key file whose name has a colon in it
        if kind is None:
            raise ConfigError(f"key reference {text!r} has the unknown scheme {scheme!r}; expected "
                              f"{', '.join(s + ':' for s in SCHEMES)} or a software key's file path")
        return kind.parse(text)
    return SoftwareKeyReference.parse(text)

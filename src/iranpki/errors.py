"""Every error iranpki raises, in one tree.

Catch :class:`IranPkiError` to catch them all; catch a subtree to handle one concern::

    IranPkiError
    ├── ConfigError                 workspace, configuration file, environment
    ├── TokenError                  key backends: PKCS#11 modules, tokens, software keys
    │   ├── TokenNotFoundError      no token with the requested label
    │   ├── KeyNotFoundError        no key object / key file for a reference
    │   ├── PinError                PIN or passphrase missing, wrong or locked
    │   └── UnsupportedAlgorithmError
    ├── ProfileError                a profile file that does not load or validate
    │   └── UnknownProfileError
    ├── IssuanceError               a request the CA refuses
    │   ├── RequestError            a CSR or public key that cannot be used (syntax, signature, size)
    │   └── ProfileViolationError   a request that breaks its profile (every violation listed)
    ├── StoreError                  the certificate store
    │   ├── NotFoundError           no such CA / certificate / key record
    │   ├── DuplicateError          a unique value (serial number, CA name) already exists
    │   └── SchemaError             a store written by an incompatible version
    ├── RevocationError             a revocation the rules refuse (already revoked, ...)
    ├── CrlError                    a CRL that cannot be generated or published
    ├── OcspError                   an OCSP responder that cannot start or sign
    └── IdentifierError             an Iranian identifier that fails its format or checksum

Every message names the bad value, what was expected, and what to do next. Errors carry
their data as attributes so that clients can render them (the CLI prints the message; a
web portal may show ``violations`` as a table).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "ConfigError",
    "CrlError",
    "DuplicateError",
    "IdentifierError",
    "IranPkiError",
    "IssuanceError",
    "KeyNotFoundError",
    "NotFoundError",
    "OcspError",
    "PinError",
    "ProfileError",
    "ProfileViolationError",
    "RequestError",
    "RevocationError",
    "SchemaError",
    "StoreError",
    "TokenError",
    "TokenNotFoundError",
    "UnknownProfileError",
    "UnsupportedAlgorithmError",
    "Violation",
]


class IranPkiError(Exception):
    """The root of every error raised by iranpki."""


class ConfigError(IranPkiError):
    """The workspace or its configuration is missing or wrong."""


class TokenError(IranPkiError):
    """A key backend (PKCS#11 module, token, software key file) failed."""


class TokenNotFoundError(TokenError):
    """No token carries the requested label."""

    def __init__(self, label: str, available: list[str]):
        self.label = label
        self.available = available
        shown = ", ".join(repr(a) for a in available) or "none"
        super().__init__(
            f"no token labelled {label!r}; tokens present: {shown}. "
            "Check the label (iranpki token list) or initialise the token first."
        )


class KeyNotFoundError(TokenError):
    """No key matches a key reference."""


class PinError(TokenError):
    """A PIN or passphrase is missing, wrong, or the token is locked. Never carries the PIN."""


class UnsupportedAlgorithmError(TokenError):
    """An algorithm, key size or curve that iranpki does not offer."""


class ProfileError(IranPkiError):
    """A certificate profile file that does not load or validate."""


class UnknownProfileError(ProfileError):
    def __init__(self, name: str, available: list[str]):
        self.name = name
        self.available = available
        super().__init__(
            f"unknown profile {name!r}; must be one of: {', '.join(available)}. "
            "See `iranpki profile list`."
        )


class IssuanceError(IranPkiError):
    """The CA refuses to issue."""


class RequestError(IssuanceError):
    """A CSR or public key that cannot be used at all (syntax, signature, size)."""


@dataclass(frozen=True)
class Violation:
    """One way in which a request breaks its profile."""

    attribute: str
    value: str | None
    rule: str

    def __str__(self) -> str:
        shown = "(absent)" if self.value is None else repr(self.value)
        return f"{self.attribute} = {shown}: {self.rule}"


class ProfileViolationError(IssuanceError):
    """A request that breaks its profile. ``violations`` lists every one, not only the first."""

    def __init__(self, profile: str, violations: list[Violation]):
        self.profile = profile
        self.violations = list(violations)
        lines = "\n".join(f"  - {v}" for v in self.violations)
        super().__init__(
            f"the request breaks profile {profile!r} in {len(self.violations)} "
            f"place(s):\n{lines}\nCorrect the request and submit it again."
        )


class StoreError(IranPkiError):
    """The certificate store failed or refused a change."""


class NotFoundError(StoreError):
    """No record with the given key."""


class DuplicateError(StoreError):
    """A value that must be unique already exists."""


class SchemaError(StoreError):
    """The store was written by an incompatible version of iranpki."""


class RevocationError(IranPkiError):
    """A revocation that the RFC 5280 rules refuse."""

    def __init__(self, message: str, serial: int | None = None,
                 reason: str | None = None, revoked_at: datetime | None = None):
        self.serial = serial
        self.reason = reason
        self.revoked_at = revoked_at
        super().__init__(message)


class IdentifierError(IranPkiError):
    """An Iranian identifier (national code, legal-entity ID) that fails its checks."""

    def __init__(self, kind: str, value: str, problem: str):
        self.kind = kind
        self.value = value
        self.problem = problem
        super().__init__(f"{kind} {value!r} is not valid: {problem}")


class CrlError(IranPkiError):
    """A CRL that cannot be generated or published (no base for a delta, unknown shard, ...)."""


class OcspError(IranPkiError):
    """An OCSP responder that cannot start or sign (no responder certificate, wrong key, ...)."""

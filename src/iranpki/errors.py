"""Every error iranpki raises, in one tree.

Catch :class:`IranPkiError` to catch them all; catch a subtree to handle one concern::

    IranPkiError
    ├── ConfigError                 workspace, configuration file, environment
    │   └── InvalidNameError        a CA name, key label or token label that is not allowed (``value``)
    ├── TokenError                  key backends: PKCS#11 modules, tokens, software keys
    │   ├── TokenNotFoundError      no token with the requested label
    │   ├── KeyNotFoundError        no key object / key file for a reference
    │   ├── PinError                PIN or passphrase missing, wrong or locked
    │   ├── FaultySignatureError    a signature the key just made does not verify
    │   └── UnsupportedAlgorithmError
    ├── ProfileError                a profile file that does not load or validate
    │   └── UnknownProfileError
    ├── IssuanceError               a request the CA refuses
    │   ├── RequestError            a CSR or public key that cannot be used (syntax, signature, size)
    │   │   └── WeakKeyError        a public key with a known weakness (``check``, ``detail``)
    │   └── ProfileViolationError   a request that breaks its profile (every violation listed)
    ├── StoreError                  the certificate store
    │   ├── NotFoundError           no such CA / certificate / key record
    │   ├── DuplicateError          a unique value (serial number, CA name) already exists
    │   ├── ConcurrentChangeError   a record changed since it was read (another actor won)
    │   └── SchemaError             a store written by an incompatible version
    ├── RevocationError             a revocation the rules refuse (already revoked, ...)
    ├── CrlError                    a CRL that cannot be generated or published
    ├── OcspError                   an OCSP responder that cannot start or sign
    ├── TsaError                    a time-stamp authority that cannot start or sign, a reply a client refuses
    ├── IdentifierError             an Iranian identifier that fails its format or checksum
    ├── RegistrationError           the RA (iranpki.ra): a request, office or officer action refused
    │   ├── RuleRefusedError        a transition a registration rule refuses (``rule`` names it)
    │   └── RateLimitedError        too many failed tracking-code lookups (``retry_after`` seconds)
    ├── SigningError                PDF, CMS, S/MIME or code signing refused, or a signature unreadable (iranpki.signing)
    ├── ComplianceError             a CPS or artefact folder the checker cannot read (iranpki.compliance)
    ├── ConformanceError            the evaluation lab's reports (iranpki.conformance)
    │   ├── ApprovalRefusedError    no approval for a report with failed or erred cases (``cases``)
    │   └── AttestationError        a signed report or approval that does not verify (``problems``)
    └── ValidationError             relying-party validation (RFC 5280 section 6), iranpki.validation
        ├── ValidationInputError    a file or option validation cannot use (not a certificate, bad CRL, ...)
        │   └── UnusableInputError  a certificate or CRL that cannot be read (iranpki.inputs; a SigningError too)
        ├── SignatureValidationError  a signed file whose signature reads but does not validate (``problems``)
        └── CertificateValidationError    a certificate that does not validate (carries the certificate)
            ├── NoTrustedPathError        no chain from it to a trusted root
            ├── InvalidPathError          a chain that breaks RFC 5280 6.1 (signature, names, CA flags, ...)
            │   ├── BadSignatureError     a signature in the chain does not verify
            │   ├── NameChainingError     an issuer name that is not its CA's subject name
            │   └── PathLengthError       a CA below a CA whose pathLenConstraint forbids it
            ├── CertificateExpiredError   valid only until ``not_after``
            ├── CertificateNotYetValidError   valid only from ``not_before``
            ├── CertificateRevokedError   revoked on ``revoked_at`` for ``reason`` (CRL or OCSP)
            ├── RevocationUnknownError    status not established where it must be (hard-fail)
            ├── KeyUsageError             key usage / extended key usage does not allow the purpose
            └── PolicyNotAcceptableError  not issued under a national policy of the required level

Every message names the bad value, what was expected, and what to do next. Errors carry
their data as attributes so that clients can render them (the CLI prints the message; a
web portal may show ``violations`` as a table).

A verification never raises for what it finds: it returns a result that always exists (see
:class:`iranpki.verdict.Verdict`), whose ``error`` is the error of this tree that says why it
failed, or None. ``raise_for_error()`` raises it for a caller that wants the exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "ApprovalRefusedError",
    "AttestationError",
    "ConfigError",
    "ComplianceError",
    "ConformanceError",
    "CrlError",
    "DuplicateError",
    "ConcurrentChangeError",
    "IdentifierError",
    "RegistrationError",
    "RuleRefusedError",
    "RateLimitedError",
    "InvalidNameError",
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
    "SigningError",
    "SchemaError",
    "StoreError",
    "TsaError",
    "TokenError",
    "FaultySignatureError",
    "TokenNotFoundError",
    "UnknownProfileError",
    "UnsupportedAlgorithmError",
    "ValidationError",
    "ValidationInputError",
    "UnusableInputError",
    "SignatureValidationError",
    "CertificateValidationError",
    "NoTrustedPathError",
    "InvalidPathError",
    "BadSignatureError",
    "NameChainingError",
    "PathLengthError",
    "CertificateExpiredError",
    "CertificateNotYetValidError",
    "CertificateRevokedError",
    "RevocationUnknownError",
    "KeyUsageError",
    "PolicyNotAcceptableError",
    "Violation",
    "WeakKeyError",
]


class IranPkiError(Exception):
    """The root of every error raised by iranpki."""


class ConfigError(IranPkiError):
    """The workspace or its configuration is missing or wrong."""


class InvalidNameError(ConfigError):
    """A CA name, key label or token label that is not allowed, or a file name that leads
    outside its folder. ``value`` is what was given."""

    def __init__(self, message: str, *, value: object = None):
        super().__init__(message)
        self.value = value


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


class FaultySignatureError(TokenError):
    """A signature the key just made does not verify with its public key: the device is faulty,
    and nothing signed with it was used (``Signer.sign_checked``)."""


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


class WeakKeyError(RequestError):
    """A public key with a known weakness (small factors, close primes, ROCA, a blocklisted
    key, a bad exponent, an EC point off its curve). ``check`` names the check, ``detail`` why."""

    def __init__(self, message: str, *, check: str, detail: str):
        super().__init__(message)
        self.check = check
        self.detail = detail


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


class ConcurrentChangeError(StoreError):
    """A record changed between the caller's read and its change (another officer or process
    acted first); nothing was changed. Read it again and decide again."""


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


class ValidationError(IranPkiError):
    """Relying-party validation failed or could not start (see :mod:`iranpki.validation`)."""


class ValidationInputError(ValidationError):
    """A file or option that validation cannot use: not a certificate, an unreadable CRL, a bad level."""


class CertificateValidationError(ValidationError):
    """A certificate that does not validate.

    ``certificate`` is the DER of the certificate the verdict is about (the end entity, or the
    CA certificate in its chain that fails); ``subject`` its subject as text; ``path`` the
    subjects of the chain as far as it was built, from the root down.
    """

    def __init__(self, message: str, *, certificate: bytes | None = None, subject: str | None = None,
                 path: tuple[str, ...] = ()):
        self.certificate = certificate
        self.subject = subject
        self.path = path
        super().__init__(message)

    def data(self) -> dict[str, object]:
        """What the error says, JSON-ready: ``subject``, ``path`` and the attributes its kind
        carries (``not_after``, ``revoked_at``, ``reason``, ``purpose``, ``level``, ...)."""
        out: dict[str, object] = {"subject": self.subject, "path": list(self.path)}
        for name in ("not_after", "not_before", "revoked_at", "reason", "source", "purpose", "has", "level",
                     "policies"):
            if hasattr(self, name):
                value = getattr(self, name)
                out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out


class NoTrustedPathError(CertificateValidationError):
    """No chain leads from the certificate to a trusted root (missing intermediate, other root)."""


class InvalidPathError(CertificateValidationError):
    """A chain was built but breaks a rule of RFC 5280 6.1 (signature, names, basic constraints, ...)."""


class BadSignatureError(InvalidPathError):
    """A certificate's signature does not verify with its issuer's key (tampered or wrongly chained)."""


class NameChainingError(InvalidPathError):
    """A certificate's issuer name is not the subject name of the CA whose key signed it (6.1.3 a 4)."""


class PathLengthError(InvalidPathError):
    """A CA certificate below a CA whose pathLenConstraint forbids more CAs (4.2.1.9, 6.1.4 l)."""


class CertificateExpiredError(CertificateValidationError):
    def __init__(self, message: str, *, not_after: datetime, **kw: object):
        self.not_after = not_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class CertificateNotYetValidError(CertificateValidationError):
    def __init__(self, message: str, *, not_before: datetime, **kw: object):
        self.not_before = not_before
        super().__init__(message, **kw)  # type: ignore[arg-type]


class CertificateRevokedError(CertificateValidationError):
    """Revoked (or on hold): ``reason`` is the RFC 5280 5.3.1 name, e.g. ``keyCompromise``;
    ``source`` says who said so (``CRL`` or ``OCSP``)."""

    def __init__(self, message: str, *, revoked_at: datetime, reason: str, source: str, **kw: object):
        self.revoked_at = revoked_at
        self.reason = reason
        self.source = source
        super().__init__(message, **kw)  # type: ignore[arg-type]


class RevocationUnknownError(CertificateValidationError):
    """The revocation status could not be established and the mode demands it (hard-fail, require)."""


class KeyUsageError(CertificateValidationError):
    """The certificate's key usage or extended key usage does not allow the purpose asked for."""

    def __init__(self, message: str, *, purpose: str, has: tuple[str, ...], **kw: object):
        self.purpose = purpose
        self.has = has
        super().__init__(message, **kw)  # type: ignore[arg-type]


class PolicyNotAcceptableError(CertificateValidationError):
    """The chain does not carry a national policy of the assurance level asked for (or a higher
    one), or, with the relying party's own RFC 5280 6.1.1 inputs (``level`` None), no policy they
    accept."""

    def __init__(self, message: str, *, level: int | None, policies: tuple[str, ...] = (), **kw: object):
        self.level = level
        self.policies = policies
        super().__init__(message, **kw)  # type: ignore[arg-type]


class RegistrationError(IranPkiError):
    """An action of the registration authority refused (:mod:`iranpki.ra`)."""


class RuleRefusedError(RegistrationError):
    """A request transition, office or officer action that a registration rule refuses. ``rule``
    names the rule (``roles``, ``dual-control``, ``office-status``, ...), ``request`` the request."""

    def __init__(self, message: str, *, rule: str, request: str | None = None):
        self.rule = rule
        self.request = request
        super().__init__(message)


class RateLimitedError(RegistrationError):
    """Too many failed tracking-code lookups from one client; ``retry_after`` seconds to wait."""

    def __init__(self, message: str, *, retry_after: int):
        self.retry_after = retry_after
        super().__init__(message)


class SigningError(IranPkiError):
    """Signing refused (wrong key for the certificate, missing TSA, unreadable input), or a
    signature that cannot be read at all. A signature that reads but does not validate is a
    result whose ``error`` is a :class:`SignatureValidationError`, not this error."""


class UnusableInputError(ValidationInputError, SigningError):
    """A certificate or CRL that cannot be read (:mod:`iranpki.inputs`): to a validator an
    unusable input, to a signer an unusable certificate, whichever asked."""


class SignatureValidationError(ValidationError):
    """A signed file (PDF, CMS, S/MIME, PE) whose signature reads but does not validate.
    ``kind`` is the file's kind and ``problems`` says why, one line each."""

    def __init__(self, message: str, *, kind: str, problems: list[str]):
        self.kind = kind
        self.problems = problems
        super().__init__(message)


class TsaError(IranPkiError):
    """A time-stamp authority that cannot start or sign (RFC 3161), or a time-stamp reply that a
    client refuses (not granted, or not for its request)."""


class ComplianceError(IranPkiError):
    """A CPS document or an artefact folder the compliance checker cannot read at all.

    What the checker can read but finds wrong is a :class:`iranpki.compliance.Finding`, never
    an exception."""


class ConformanceError(IranPkiError):
    """The evaluation lab's conformance reports: a signature or an approval refused."""


class ApprovalRefusedError(ConformanceError):
    """The lab refuses an approval: the report has failed or erred cases (``cases``: their ids),
    none passed, or the report cannot be read."""

    def __init__(self, message: str, cases: list[str] | tuple[str, ...] = ()):
        self.cases = list(cases)
        super().__init__(message)


class AttestationError(ConformanceError):
    """A signed report or an approval that does not verify; ``problems`` lists every reason."""

    def __init__(self, what: str, problems: list[str] | tuple[str, ...]):
        self.what = what
        self.problems = list(problems)
        super().__init__(f"{what} does not verify: " + "; ".join(self.problems))

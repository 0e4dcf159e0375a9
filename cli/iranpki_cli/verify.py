"""`iranpki verify FILE`: validate a certificate (and, as they are added, signed files) as a relying party.

The command reads the file, finds its kind in :data:`KINDS`, and hands it to that kind's
verifier: one library call, then rendering. A new kind (signed PDF, CMS) is one :func:`register`
call from its own module; the options and the exit statuses stay the same:

- 0: valid; 1: invalid (the reason is printed, or is in the JSON); 2: the input or an option
  cannot be used (not a certificate, unreadable CRL, ...).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import click
import jdatetime
from click.core import ParameterSource
from cryptography.hazmat.primitives.serialization import Encoding
from rich.markup import escape

from iranpki import signing, validation
from iranpki.errors import CertificateValidationError, SigningError, ValidationInputError
from iranpki.workspace import CONFIG_NAME, Workspace

from .common import home_option, json_option
from .handling import HandledCommand
from .render import emit_json, err_console, fields, when

__all__ = ["KINDS", "FileKind", "Verdict", "VerifyOptions", "register", "verify"]

#: The largest file `iranpki verify` reads (a signed PDF may be large; a certificate is a few KiB).
MAX_FILE = 256 * 1024 * 1024


@dataclass(frozen=True)
class VerifyOptions:
    """What the command line asked for, for every kind of file."""

    purpose: str | None
    at: datetime | None
    level: int | None
    chain: tuple[bytes, ...]
    crls: tuple[bytes, ...]
    ocsp: bool
    fetch: bool
    trust: tuple[bytes, ...] | None
    revocation: str
    workspace: Workspace | None
    #: The signed file of a detached CMS signature (--content).
    content: bytes | None = None
    #: The RFC 5280 6.1.1 policy inputs given (--policy, --explicit-policy, ...), for certificates.
    policy_inputs: dict[str, object] = field(default_factory=dict)

    def validation_options(self) -> dict[str, object]:
        """The keyword arguments of :func:`iranpki.validation.validate_certificate` these stand for."""
        return {"purpose": self.purpose, "at": self.at, "level": self.level, "intermediates": list(self.chain),
                "crls": list(self.crls), "ocsp": self.ocsp, "fetch": self.fetch, "revocation": self.revocation,
                "trust_roots": list(self.trust) if self.trust is not None else None, **self.policy_inputs}

    def validate(self, cert: validation.CertificateInput, **overrides: object) -> validation.ValidationResult:
        """Validate ``cert`` with these options, against the workspace's roots when there is one."""
        options = {**self.validation_options(), **overrides}
        if self.workspace is not None:
            return self.workspace.validate_certificate(cert, **options)
        return validation.validate_certificate(cert, **options)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Verdict:
    """A valid file: a title and rows for people, and the JSON for scripts."""

    title: str
    rows: list[tuple[str, str]]
    data: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class FileKind:
    name: str
    detect: Callable[[bytes], bool]
    verify: Callable[[bytes, VerifyOptions], Verdict]


KINDS: list[FileKind] = []


def register(kind: FileKind) -> None:
    """Add a kind of file to `iranpki verify` (tried in order of registration)."""
    KINDS.append(kind)


# ---- certificates -----------------------------------------------------------------------------

def _is_certificate(data: bytes) -> bool:
    if b"-----BEGIN CERTIFICATE-----" in data[:65536]:
        return True
    try:
        validation.load_certificates(data)
        return True
    except ValidationInputError:
        return False


def certificate_rows(result: validation.ValidationResult) -> list[tuple[str, str]]:
    """The rows of a validated certificate (for other kinds that show their signer's)."""
    level = "-" if result.level is None else str(result.level)
    if result.level_required is not None:
        level += f" (asked for {result.level_required} or higher)"
    rows = [("subject", result.subject), ("serial", f"{result.certificate.serial_number:x}"),
            ("path", "\n".join(f"{'  ' * i}{s}" for i, s in enumerate(result.subjects))),
            ("validated at", when(result.at)), ("purpose", result.purpose), ("assurance level", level),
            ("policies", ", ".join(result.policies) or "-"),
            ("revocation", f"{result.revocation_mode}\n" + "\n".join(
                f"{r.subject}: {r.source or '-'} {r.detail}" for r in result.revocation))]
    rows += [("warning", w) for w in result.warnings]
    return rows


def _verify_certificate(data: bytes, options: VerifyOptions) -> Verdict:
    certs = validation.load_certificates(data, "the file")
    # A PEM file may carry its chain after the certificate, as servers send it.
    result = options.validate(certs[0], intermediates=[*options.chain, *(c.public_bytes(Encoding.PEM) for c in certs[1:])])
    return Verdict(f"valid: {result.subject}", certificate_rows(result), result.to_dict())


register(FileKind("certificate", _is_certificate, _verify_certificate))


# ---- signed files (PDF, S/MIME, CMS, Windows PE) -----------------------------------------------

class SignatureInvalid(Exception):
    """A signed file whose signature does not validate (exit status 1), with the JSON of why."""

    def __init__(self, message: str, data: dict[str, object]):
        super().__init__(message)
        self.data = data


def _is_signed(data: bytes) -> bool:
    return signing.detect_signed_kind(data) is not None


def _verify_signed(data: bytes, options: VerifyOptions) -> Verdict:
    trust: list[bytes] | None = list(options.trust) if options.trust is not None else None
    intermediates = list(options.chain)
    if options.workspace is not None:
        trust = options.workspace.trust_roots(trust)  # the one rule: --trust, else national + workspace roots
        intermediates += options.workspace.ca_certificates()
    try:
        result = signing.verify_signed(
            data, content=options.content, trust_roots=trust, intermediates=intermediates, crls=list(options.crls),
            allow_fetching=options.fetch or options.ocsp, require_revocation=options.revocation != "soft-fail",
            moment=options.at)
    except SigningError as exc:
        raise ValidationInputError(str(exc)) from None
    if not result.ok:
        raise SignatureInvalid(f"the {result.kind} signature does not validate: " + "; ".join(result.problems),
                               result.to_dict())
    rows: list[tuple[str, str]] = [("kind", result.kind), ("signatures", str(len(result.results)))]
    for i, item in enumerate(result.to_dict()["signatures"], 1):  # type: ignore[union-attr]
        for key in ("signer", "field", "signing_time", "timestamp", "coverage", "level", "digest_algorithm"):
            if isinstance(item, dict) and item.get(key) not in (None, ""):
                rows.append((f"{i}: {key.replace('_', ' ')}", str(item[key])))
    return Verdict(f"valid {result.kind} signature", rows, result.to_dict())


# Signed files first: a PEM CMS or an S/MIME message may hold certificates too.
KINDS.insert(0, FileKind("signed file", _is_signed, _verify_signed))


# ---- the command ------------------------------------------------------------------------------

def _read(path: str, what: str) -> bytes:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_FILE:
            raise click.UsageError(f"{what} {path} is {p.stat().st_size} bytes; at most {MAX_FILE} are read")
        return p.read_bytes()
    except OSError as exc:
        raise click.UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        if len(value) >= 10 and value[:4].isdigit() and int(value[:4]) < 1600:
            # No Gregorian date that early is a validation time: it is a Solar Hijri (Jalali) date,
            # as Iranian documents and iranpki's tables show them (1405-09-02).
            year, month, day = (int(p) for p in value[:10].split("-"))
            value = jdatetime.date(year, month, day).togregorian().isoformat() + value[10:]
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a time; write ISO 8601, e.g. 2026-11-23T09:00:00Z, 2026-11-23 "
                                 "or the Solar Hijri 1405-09-02", param_hint="--at") from None
    # A time without a zone is taken as UTC, as every time iranpki prints is.
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


@click.command(cls=HandledCommand)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--purpose", type=click.Choice(list(validation.PURPOSES)), default=None,
              help="What the certificate is relied on for (key usage and extended key usage); default any.")
@click.option("--at", "at_text", metavar="TIME", default=None,
              help="Validate at this time instead of now: ISO 8601, UTC unless a zone is given; a Solar Hijri "
                   "date (1405-09-02) is read as such.")
@click.option("--level", type=click.IntRange(1, 4), default=None,
              help="Require a national policy of this assurance level or higher.")
@click.option("--chain", "chain_files", multiple=True, type=click.Path(dir_okay=False),
              help="A file of CA certificates that may complete the chain (repeatable).")
@click.option("--crl", "crl_files", multiple=True, type=click.Path(dir_okay=False),
              help="A CRL (DER or PEM) to check revocation against (repeatable).")
@click.option("--ocsp/--no-ocsp", default=False, show_default=True,
              help="Ask the OCSP responders the certificates name (network).")
@click.option("--fetch", is_flag=True, help="Download CRLs and missing CA certificates the certificates name (network).")
@click.option("--trust", "trust_files", multiple=True, type=click.Path(dir_okay=False),
              help="Trust these root certificates instead of the workspace's roots or the national root (repeatable).")
@click.option("--revocation", type=click.Choice(list(validation.REVOCATION_MODES)), default="soft-fail",
              show_default=True, help="hard-fail: an unknown revocation status fails; require: every certificate "
                                      "needs a status.")
@click.option("--content", "content_file", type=click.Path(dir_okay=False), default=None,
              help="The signed file of a detached CMS signature (default: FILE without its .p7s).")
@click.option("--policy", "policies", multiple=True, metavar="OID",
              help="A certificate policy the relying party accepts (repeatable; RFC 5280 6.1.1 "
                   "user-initial-policy-set; 2.5.29.32.0 for any). Not with --level, which stands for the "
                   "national policies of a level and above.")
@click.option("--explicit-policy", is_flag=True,
              help="The path must be valid for an accepted policy (RFC 5280 6.1.1 initial-explicit-policy).")
@click.option("--inhibit-policy-mapping", is_flag=True,
              help="No policy mapping (RFC 5280 6.1.1 initial-policy-mapping-inhibit).")
@click.option("--inhibit-any-policy", is_flag=True,
              help="anyPolicy in a certificate matches nothing (RFC 5280 6.1.1 initial-any-policy-inhibit).")
@click.option("--algorithms", type=click.Choice(list(validation.ALGORITHM_POLICIES)), default="national",
              show_default=True,
              help="national: the national CP's algorithms only (RSA from 2048 bits, ECDSA on P-256 and P-384, "
                   "SHA-2). legacy: SHA-1 and DSA too, for certificates older than the CP.")
@home_option
@json_option
def verify(file: str, purpose: str | None, at_text: str | None, level: int | None, chain_files: tuple[str, ...],
           crl_files: tuple[str, ...], ocsp: bool, fetch: bool, trust_files: tuple[str, ...], revocation: str,
           content_file: str | None, policies: tuple[str, ...], explicit_policy: bool, inhibit_policy_mapping: bool,
           inhibit_any_policy: bool, algorithms: str, home: str, as_json: bool) -> None:
    """Validate a certificate as a relying party: chain to a trusted root, validity, revocation
    (CRL, OCSP), key usage for --purpose, national assurance --level. Or validate a signed file:
    a PDF (PAdES), an S/MIME message, a CMS signature (attached, or detached with --content) or a
    Windows PE (Authenticode, through osslsigncode).

    Trusted: the national root Root CA-G3 shipped with iranpki and the root CAs of the workspace
    (--home, or the current folder if it is one); --trust replaces both. `tsa stamp` and `sign`
    trust the same. Nothing is fetched unless --ocsp or
    --fetch. Exit status: 0 valid, 1 invalid, 2 unusable input.

    \b
    Example:
      iranpki verify site.pem --purpose server --chain gica2.pem --ocsp
      iranpki verify signer.pem --purpose signature --level 2 --crl gica2.crl --revocation hard-fail
      iranpki verify old.pem --at 2025-06-01 --crl gica2-2025-06.crl --json
      iranpki verify contract.pdf --crl gica2.crl
      iranpki verify report.tar.gz.p7s              # detached: checks report.tar.gz
      iranpki verify ee.pem --trust anchor.pem --policy 2.16.840.1.101.3.2.1.48.1 --explicit-policy
    """
    ctx = click.get_current_context()
    explicit_home = ctx.get_parameter_source("home") in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    ws = Workspace.open(home) if explicit_home or (Path(home) / CONFIG_NAME).exists() else None
    data = _read(file, "the file")
    options = VerifyOptions(
        purpose=purpose, at=_parse_time(at_text), level=level,
        chain=tuple(_read(f, "the chain file") for f in chain_files),
        crls=tuple(_read(f, "the CRL file") for f in crl_files), ocsp=ocsp, fetch=fetch,
        trust=tuple(_read(f, "the trust file") for f in trust_files) or None, revocation=revocation, workspace=ws,
        content=_content(file, content_file),
        policy_inputs={k: v for k, v in (("user_initial_policy_set", list(policies) or None),
                                         ("initial_explicit_policy", explicit_policy),
                                         ("initial_policy_mapping_inhibit", inhibit_policy_mapping),
                                         ("initial_any_policy_inhibit", inhibit_any_policy),
                                         ("algorithms", algorithms if algorithms != "national" else None)) if v})
    kind = next((k for k in KINDS if k.detect(data)), None)
    if kind is None:
        raise click.UsageError(f"{file} is not a file iranpki verify reads; it reads: "
                               f"{', '.join(k.name for k in KINDS)} (PEM or DER)")
    if options.policy_inputs and kind.name != "certificate":
        raise click.UsageError(f"--policy, --explicit-policy, the --inhibit options and --algorithms apply to "
                               f"certificates; {file} is a {kind.name}, validated by the rules of its signature format")
    try:
        verdict = kind.verify(data, options)
    except ValidationInputError as exc:
        raise click.UsageError(str(exc)) from None
    except (CertificateValidationError, SignatureInvalid) as exc:
        if as_json:
            extra = exc.data if isinstance(exc, SignatureInvalid) else _error_data(exc)
            emit_json({"valid": False, "kind": kind.name, "error": type(exc).__name__, "message": str(exc), **extra})
        else:
            err_console.print("[bold red]invalid:[/] " + escape(str(exc)), highlight=False)
        sys.stdout.flush()
        ctx.exit(1)
    if as_json:
        emit_json({"kind": kind.name, **verdict.data})
    else:
        fields(verdict.title, verdict.rows)


def _content(file: str, content_file: str | None) -> bytes | None:
    if content_file is not None:
        return _read(content_file, "the signed content")
    if file.endswith((".p7s", ".sig")) and Path(file[: file.rfind(".")]).is_file():
        return _read(file[: file.rfind(".")], "the signed content")
    return None


def _error_data(exc: CertificateValidationError) -> dict[str, object]:
    out: dict[str, object] = {"subject": exc.subject, "path": list(exc.path)}
    for name in ("not_after", "not_before", "revoked_at", "reason", "source", "purpose", "has", "level", "policies"):
        if hasattr(exc, name):
            value = getattr(exc, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out

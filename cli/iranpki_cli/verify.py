"""`iranpki verify FILE`: validate a certificate or a signed file as a relying party.

The command reads the files, calls :func:`iranpki.verify.verify_file` (through the workspace
when there is one, for its roots and CA certificates) and renders the result it always gets
back. The exit statuses:

- 0: valid; 1: invalid (the reason is printed, or is in the JSON); 2: the input or an option
  cannot be used (not a certificate, unreadable CRL, ...).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import click
import jdatetime
from click.core import ParameterSource
from rich.markup import escape

from iranpki import validation
from iranpki import verify as verifier
from iranpki.errors import ValidationInputError
from iranpki.workspace import CONFIG_NAME, Workspace

from .common import home_option, json_option
from .handling import HandledCommand
from .render import emit_json, err_console, fields, when

__all__ = ["certificate_rows", "verify"]

#: The largest file `iranpki verify` reads (a signed PDF may be large; a certificate is a few KiB).
MAX_FILE = 256 * 1024 * 1024


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


def _signed_rows(result: verifier.SignedFileResult) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [("kind", result.kind), ("signatures", str(len(result.results)))]
    for i, item in enumerate(result.to_dict()["signatures"], 1):  # type: ignore[union-attr]
        for key in ("signer", "field", "signing_time", "timestamp", "coverage", "level", "digest_algorithm"):
            if isinstance(item, dict) and item.get(key) not in (None, ""):
                rows.append((f"{i}: {key.replace('_', ' ')}", str(item[key])))
    return rows


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
    kind = verifier.detect_kind(data)
    if kind is None:
        raise click.UsageError(f"{file} is not a file iranpki verify reads; it reads {verifier.DESCRIBED}")
    if kind != "certificate" and (policies or explicit_policy or inhibit_policy_mapping or inhibit_any_policy
                                  or algorithms != "national"):
        raise click.UsageError(f"--policy, --explicit-policy, the --inhibit options and --algorithms apply to "
                               f"certificates; {file} is a {kind} signature, validated by the rules of its format")
    trust = [_read(f, "the trust file") for f in trust_files] or None
    options: dict[str, object] = dict(
        purpose=purpose, at=_parse_time(at_text), level=level, intermediates=[_read(f, "the chain file") for f in chain_files],
        crls=[_read(f, "the CRL file") for f in crl_files], ocsp=ocsp, fetch=fetch, trust_roots=trust,
        revocation=revocation, content=_content(file, content_file),
        **{k: v for k, v in (("user_initial_policy_set", list(policies) or None),
                             ("initial_explicit_policy", explicit_policy),
                             ("initial_policy_mapping_inhibit", inhibit_policy_mapping),
                             ("initial_any_policy_inhibit", inhibit_any_policy),
                             ("algorithms", algorithms if algorithms != "national" else None)) if v})
    try:
        result = ws.verify_file(data, **options) if ws is not None else verifier.verify_file(data, **options)  # type: ignore[arg-type]
    except ValidationInputError as exc:
        raise click.UsageError(str(exc)) from None
    if not result.ok:
        if as_json:
            emit_json(result.to_dict())
        else:
            err_console.print("[bold red]invalid:[/] " + escape(str(result.error)), highlight=False)
        sys.stdout.flush()
        ctx.exit(1)
    if as_json:
        emit_json(result.to_dict())
    elif result.certificate is not None:
        fields(f"valid: {result.certificate.subject}", certificate_rows(result.certificate))
    else:
        assert result.signed is not None
        fields(f"valid {result.kind} signature", _signed_rows(result.signed))


def _content(file: str, content_file: str | None) -> bytes | None:
    if content_file is not None:
        return _read(content_file, "the signed content")
    if file.endswith((".p7s", ".sig")) and Path(file[: file.rfind(".")]).is_file():
        return _read(file[: file.rfind(".")], "the signed content")
    return None

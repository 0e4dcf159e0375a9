"""What a CA really issues, against its CPS and the national CP (licensing stages 5 and 6).

:func:`load_artefacts` reads a folder of certificates, CRLs and OCSP responses (PEM with one or
more blocks, or DER; the type found by parsing, the file suffix only a hint) and sorts each
certificate into a kind of the CP (``iranpki.policy.CERTIFICATE_KINDS``, or ``root``).
:func:`check_artefacts` then judges each artefact:

- pkilint and the national validators (:mod:`iranpki.compliance.lint`), minus the findings the
  kind's profile accepts (``lint_exceptions`` in ``profiles/*.yaml``);
- the validity a certificate really has (RFC 5280 4.1.2.5: notBefore and notAfter are both
  inside it, so notAfter - notBefore + 1 second) against the CPS (6.3.2) and the CP;
- the key (RSA size, EC curve; RFC 3647 6.1.5) and the signature hash (7.1.3) against the CP level;
- a CRL's nextUpdate - thisUpdate (RFC 5280 5.1.2.5; RFC 3647 4.9.7) and an OCSP response's
  nextUpdate - thisUpdate (RFC 6960 4.2.2.1; RFC 3647 4.9.10) against the CP and the CPS.

:func:`describe` gives one row per artefact for the report.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import ComplianceError, UnknownProfileError
from ..policy import CERTIFICATE_KINDS, CertificatePolicy
from ..profiles import load_profile, subject_text
from .lint import LintFinding, lint_certificate, lint_crl, lint_ocsp_response
from .model import Claim, Finding, Severity, Stage

__all__ = ["ARTEFACT_SUFFIXES", "Artefact", "check_artefacts", "describe", "load_artefacts"]

#: File suffixes read as artefacts; other files are read too, and kept if they parse.
ARTEFACT_SUFFIXES = (".pem", ".crt", ".cer", ".der", ".crl", ".ocsp", ".resp")
#: Files a folder of artefacts may hold beside them without a finding.
_DOCUMENTATION = re.compile(r"^(readme|notes?|license)(\..*)?$|\.(md|txt|rst|html?)$", re.IGNORECASE)
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_SECONDS_PER_DAY = 86400
_NATIONAL_RULES = {
    "iranpki.national_code_invalid": ("ART-NATIONAL-CODE", "subject serialNumber"),
    "iranpki.legal_entity_id_invalid": ("ART-LEGAL-ENTITY-ID", "subject organizationIdentifier"),
    "iranpki.persian_name_not_utf8string": ("ART-PERSIAN-NAME", "subject names"),
    "iranpki.policy_oid_missing": ("ART-POLICY-OID", "certificatePolicies"),
    "iranpki.policy_oid_wrong_level": ("ART-POLICY-OID", "certificatePolicies"),
}
_LINT_TOOLS = {"pkix": "lint_pkix_cert (RFC 5280)", "serverauth": "lint_cabf_serverauth_cert (CA/B Forum TLS BR)",
               "smime": "lint_cabf_smime_cert (CA/B Forum S/MIME BR)", "crl": "lint_crl (RFC 5280 section 5)",
               "ocsp": "lint_ocsp_response (RFC 6960)"}

ArtefactType = Literal["certificate", "crl", "ocsp"]


@dataclass(frozen=True)
class Artefact:
    """One certificate, CRL or OCSP response read from the folder."""

    name: str  # the path inside the folder ("certs/ssl.pem"), with "#N" for block N of a PEM with several
    type: ArtefactType
    der: bytes
    #: certificates: a kind of the CP (CERTIFICATE_KINDS) or "root"; None when it could not be told.
    #: CRLs: "crl" (a CA's) or "arl" (a root's, listing CA certificates), set by load_artefacts.
    kind: str | None = None
    certificate: x509.Certificate | None = None
    crl: x509.CertificateRevocationList | None = None
    ocsp_response: ocsp.OCSPResponse | None = None

    @property
    def is_ca(self) -> bool:
        return self.kind in ("root", "intermediate")


# ---- reading ------------------------------------------------------------------------------------------

_PRINTABLE = re.compile(rb"^[A-Za-z0-9 '()+,\-./:=?]*$")


def _load_certificate(der: bytes) -> x509.Certificate:
    """The certificate in ``der``. cryptography refuses a name string that breaks its ASN.1 type
    (Persian letters in a PrintableString), which careless CA software writes; such a certificate
    is read from a copy whose broken DirectoryStrings are re-tagged UTF8String. The copy serves
    for reading fields only: pkilint and the national validators judge the original octets."""
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as first:
        try:
            parsed = asn1_x509.Certificate.load(der)
            changed = False
            for field in ("subject", "issuer"):
                for rdn in parsed["tbs_certificate"][field].chosen:
                    for atv in rdn:
                        value = atv["value"]
                        if isinstance(value, asn1_x509.DirectoryString) and value.chosen.tag == 19 \
                                and not _PRINTABLE.match(value.chosen.contents):
                            text = value.chosen.contents.decode("utf-8", errors="replace")
                            atv["value"] = asn1_x509.DirectoryString(name="utf8_string", value=text)
                            changed = True
            if not changed:
                raise first
            return x509.load_der_x509_certificate(parsed.dump(force=True))
        except (ValueError, TypeError, KeyError):
            raise first from None


def _parse_der(der: bytes, suffix: str) -> tuple[ArtefactType, Any] | None:
    """The artefact a DER blob holds, trying first the type its suffix suggests."""
    loaders: list[tuple[ArtefactType, Any]] = [
        ("certificate", _load_certificate),
        ("crl", x509.load_der_x509_crl),
        ("ocsp", ocsp.load_der_ocsp_response),
    ]
    hint = {".crl": "crl", ".ocsp": "ocsp", ".resp": "ocsp"}.get(suffix)
    loaders.sort(key=lambda item: item[0] != hint)
    for kind, load in loaders:
        try:
            return kind, load(der)
        except (ValueError, TypeError):
            continue
    return None


def _read(path: Path, name: str) -> tuple[list[Artefact], list[str]]:
    """The artefacts in one file, and the problems that stop a part of it from being read."""
    data = path.read_bytes()
    suffix = path.suffix.lower()
    blocks: list[tuple[str, bytes | None, str]] = []  # (label, der or None, problem)
    if b"-----BEGIN " in data:
        for m in _PEM_BLOCK.finditer(data):
            label = m.group(1).decode("ascii")
            try:
                blocks.append((label, base64.b64decode(b"".join(m.group(2).split()), validate=True), ""))
            except (binascii.Error, ValueError):
                blocks.append((label, None, "its base64 text is damaged"))
        if not blocks:
            return [], ["it has a PEM header but no complete BEGIN/END block"]
    else:
        blocks.append(("", data, ""))
    artefacts: list[Artefact] = []
    problems: list[str] = []
    for i, (label, der, problem) in enumerate(blocks, 1):
        where = f"block {i} ({label})" if len(blocks) > 1 or label else "the file"
        label_name = f"{name}#{i}" if len(blocks) > 1 else name
        if der is None:
            problems.append(f"{where}: {problem}")
            continue
        if "PRIVATE KEY" in label:
            problems.append(f"{where} is a private key; a private key never belongs with published artefacts")
            continue
        parsed = _parse_der(der, suffix)
        if parsed is None:
            problems.append(f"{where} is not a certificate, CRL or OCSP response in DER or PEM")
            continue
        kind, obj = parsed
        artefacts.append(Artefact(label_name, kind, der,
                                  certificate=obj if kind == "certificate" else None,
                                  crl=obj if kind == "crl" else None,
                                  ocsp_response=obj if kind == "ocsp" else None))
    return artefacts, problems


def load_artefacts(folder: str) -> tuple[list[Artefact], list[Finding]]:
    """Read every certificate, CRL and OCSP response under ``folder`` (sub-folders included).

    A file that cannot be read, or holds something else, is an ART-UNREADABLE finding; README and
    other documentation files are passed over. Raises :class:`ComplianceError` only if ``folder``
    is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ComplianceError(f"the artefact folder {folder} does not exist or is not a folder; give the folder "
                              "that holds the CA's certificates, CRLs and OCSP responses (--artifacts DIR)")
    artefacts: list[Artefact] = []
    findings: list[Finding] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if _DOCUMENTATION.search(path.name) and path.suffix.lower() not in ARTEFACT_SUFFIXES:
            continue
        try:
            found, problems = _read(path, name)
        except OSError as exc:
            found, problems = [], [f"it cannot be read: {exc.strerror or exc}"]
        artefacts += found
        for problem in problems:
            findings.append(Finding(
                "ART-UNREADABLE", Severity.ERROR, Stage.INSPECTION, f"artefact {name}",
                f"{name}: {problem}",
                "Put only certificates (.pem/.crt/.cer/.der), CRLs (.crl) and OCSP responses (.ocsp/.resp) in "
                "the folder, in DER or PEM, and export them again from the CA if they are damaged",
                "RFC 5280 (certificates, CRLs), RFC 6960 (OCSP responses)"))
    _classify_all(artefacts, findings)
    return artefacts, findings


# ---- classification ---------------------------------------------------------------------------------

def _ext(cert: x509.Certificate, cls: type) -> Any:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None
    except (ValueError, x509.DuplicateExtension):
        return None


def _subject_oids(cert: x509.Certificate) -> set[str]:
    """The attribute types in the subject. cryptography refuses a name whose strings break their
    ASN.1 type (Persian letters in a PrintableString); asn1crypto still reads the types."""
    try:
        return {attr.oid.dotted_string for attr in cert.subject}
    except ValueError:
        subject = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))["tbs_certificate"]["subject"]
        return {atv["type"].dotted for rdn in subject.chosen for atv in rdn}


def _name_text(cert: x509.Certificate, which: Literal["subject", "issuer"] = "subject") -> str:
    try:
        return subject_text(getattr(cert, which))
    except ValueError as exc:
        return f"(the {which} cannot be decoded: {exc})"


def _self_signed(cert: x509.Certificate) -> bool:
    try:
        if cert.issuer != cert.subject:
            return False
    except ValueError:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def classify(cert: x509.Certificate) -> str | None:
    """The CP kind of ``cert`` (a name of CERTIFICATE_KINDS, or "root"), None if it cannot be told.

    The order follows what tells the profiles in ``profiles/*.yaml`` apart: a CA first; then the
    extended key usages only one profile has; then the subject (an organisation's legal-entity ID,
    a person's national code); S/MIME last, since personal and seal certificates protect e-mail too.
    """
    bc = _ext(cert, x509.BasicConstraints)
    if bc is not None and bc.ca:
        return "root" if _self_signed(cert) else "intermediate"
    eku = _ext(cert, x509.ExtendedKeyUsage)
    ekus = set(eku) if eku is not None else set()
    for oid, kind in ((ExtendedKeyUsageOID.OCSP_SIGNING, "ocsp-signer"), (ExtendedKeyUsageOID.TIME_STAMPING, "tsa"),
                      (ExtendedKeyUsageOID.CODE_SIGNING, "code-signing"), (ExtendedKeyUsageOID.SERVER_AUTH, "ssl-server")):
        if oid in ekus:
            return kind
    subject = _subject_oids(cert)
    if NameOID.ORGANIZATION_IDENTIFIER.dotted_string in subject:
        return "organisational-seal"
    if ekus == {ExtendedKeyUsageOID.CLIENT_AUTH} and NameOID.TITLE.dotted_string in subject:
        return "ra-officer"  # client authentication alone, with the officer's title
    ku = _ext(cert, x509.KeyUsage)
    person = bool({NameOID.SURNAME.dotted_string, NameOID.GIVEN_NAME.dotted_string} & subject)
    if NameOID.SERIAL_NUMBER.dotted_string in subject and (person or (ku is not None and ku.content_commitment)):
        return "personal-signature"
    if ExtendedKeyUsageOID.EMAIL_PROTECTION in ekus:
        return "smime"
    return None


def _issuer_bytes(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.issuer.public_bytes()
    except ValueError:
        return None


def _classify_all(artefacts: list[Artefact], findings: list[Finding]) -> None:
    # Names of roots: a self-signed CA certificate's subject, and the issuer of an intermediate's
    # certificate (the folder of an intermediate CA need not hold the root itself). A CRL from one
    # of them is an ARL (lint_crl -t ARL; the CP's root.crl_next_update_hours).
    roots: set[bytes] = set()
    for i, a in enumerate(artefacts):
        if a.certificate is not None:
            kind = classify(a.certificate)
            artefacts[i] = _with(a, kind=kind)
            if kind in ("root", "intermediate"):
                issuer = _issuer_bytes(a.certificate)
                if issuer is not None:
                    roots.add(issuer)
            elif kind is None:
                findings.append(Finding(
                    "ART-UNKNOWN-KIND", Severity.WARNING, Stage.INSPECTION, f"artefact {a.name}: kind",
                    f"{a.name} ({_name_text(a.certificate)}) is none of the CP's kinds of certificate "
                    f"({', '.join(CERTIFICATE_KINDS)}, root): no CA flag, no extended key usage that tells it, no "
                    "national code or legal-entity ID; only RFC 5280 lint and the key and hash rules were applied",
                    "Issue it from one of the national profiles (iranpki profile list), or remove it from the folder",
                    "national CP: the kinds of certificate (max_validity_days)"))
    for i, a in enumerate(artefacts):
        if a.crl is not None:
            artefacts[i] = _with(a, kind="arl" if a.crl.issuer.public_bytes() in roots else "crl")


def _with(a: Artefact, **changes: Any) -> Artefact:
    return replace(a, **changes)


# ---- describing --------------------------------------------------------------------------------------

def _key_text(cert: x509.Certificate) -> str:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "unknown"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {_CURVES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


def _hash_name(obj: Any) -> str | None:
    try:
        h = obj.signature_hash_algorithm
    except (UnsupportedAlgorithm, ValueError):
        return None
    return h.name if h is not None else None


def _validity_seconds(cert: x509.Certificate) -> int:
    # RFC 5280 4.1.2.5: "the validity period ... from notBefore through notAfter, inclusive".
    return int((cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()) + 1


def _days_text(seconds: int) -> str:
    days = seconds / _SECONDS_PER_DAY
    return f"{int(days)}" if days == int(days) else f"{days:.2f}"


def _policy_oids(cert: x509.Certificate) -> list[str]:
    value = _ext(cert, x509.CertificatePolicies)
    return [p.policy_identifier.dotted_string for p in value] if value is not None else []


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def _ocsp_singles(resp: ocsp.OCSPResponse) -> list[tuple[datetime, datetime | None]]:
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return []
    return [(s.this_update_utc, s.next_update_utc) for s in resp.responses]


def describe(artefacts: list[Artefact]) -> list[dict[str, Any]]:
    """One row per artefact for the report: file, type, kind and the values the checks look at."""
    rows: list[dict[str, Any]] = []
    for a in artefacts:
        row: dict[str, Any] = {"file": a.name, "type": a.type, "kind": a.kind}
        if a.certificate is not None:
            c = a.certificate
            row.update(subject=_name_text(c), issuer=_name_text(c, "issuer"),
                       not_before=c.not_valid_before_utc.isoformat(), not_after=c.not_valid_after_utc.isoformat(),
                       validity_days=round(_validity_seconds(c) / _SECONDS_PER_DAY, 2), key=_key_text(c),
                       signature_hash=_hash_name(c), policy_oids=_policy_oids(c))
        elif a.crl is not None:
            crl = a.crl
            nxt = crl.next_update_utc
            row.update(issuer=subject_text(crl.issuer), crl_type=(a.kind or "crl").upper(),
                       this_update=crl.last_update_utc.isoformat(), next_update=nxt.isoformat() if nxt else None,
                       next_update_hours=round(_hours(nxt - crl.last_update_utc), 2) if nxt else None,
                       entries=len(crl), signature_hash=_hash_name(crl))
        elif a.ocsp_response is not None:
            r = a.ocsp_response
            row["response_status"] = r.response_status.name
            singles = _ocsp_singles(r)
            if singles:
                this, nxt = singles[0]
                row.update(this_update=this.isoformat(), next_update=nxt.isoformat() if nxt else None,
                           validity_hours=round(_hours(nxt - this), 2) if nxt else None,
                           responses=len(singles), signature_hash=_hash_name(r))
        rows.append(row)
    return rows


# ---- checking ----------------------------------------------------------------------------------------

def _claim(claims: list[Claim], name: str, level: int, kind: str | None = None,
           value_type: type = int) -> Claim | None:
    """The CPS's claim ``name`` for ``level`` (a claim for that level wins over one for every level)."""
    fitting = [c for c in claims if c.name == name and (kind is None or c.kind == kind)
               and (c.level is None or c.level == level) and isinstance(c.value, value_type)]
    fitting.sort(key=lambda c: c.level is None)
    return fitting[0] if fitting else None


def _cps(claim: Claim) -> str:
    section = claim.section.removeprefix("CPS ").strip()
    return f"CPS {section}"


def _profile_name(a: Artefact, level: int) -> str | None:
    if a.kind is None:
        return None
    if a.kind == "intermediate":
        return f"intermediate-level{level}"
    return a.kind


def _lint_exceptions(a: Artefact, level: int) -> set[str]:
    name = _profile_name(a, level)
    if name is None:
        return set()
    try:
        return {e.code for e in load_profile(name).lint_exceptions}
    except UnknownProfileError:
        return set()


class _Checker:
    """The checks of one run: the CP level, the CPS claims, and the findings so far."""

    def __init__(self, claims: list[Claim], policy: CertificatePolicy, level: int):
        self.claims = claims
        self.policy = policy
        self.level = level
        self.rules = policy.level(level)
        self.findings: list[Finding] = []

    def add(self, a: Artefact, rule: str, field: str, message: str, fix: str, requirement: str,
            severity: Severity = Severity.ERROR) -> None:
        stage = Stage.IMPLEMENTATION if a.is_ca and a.certificate is not None else Stage.INSPECTION
        self.findings.append(Finding(rule, severity, stage, f"artefact {a.name}: {field}", message, fix, requirement))

    # -- lint --
    def lint(self, a: Artefact) -> None:
        if a.certificate is not None:
            results = lint_certificate(a.der, a.kind, policy=self.policy, level=self.level)
            accepted = _lint_exceptions(a, self.level)
            results = [r for r in results if r.code not in accepted]
        elif a.crl is not None:
            results = lint_crl(a.der, "ARL" if a.kind == "arl" else "CRL")
        else:
            results = lint_ocsp_response(a.der)
        for r in results:
            if r.national:
                self._national(a, r)
            else:
                self._lint(a, r)

    def _lint(self, a: Artefact, r: LintFinding) -> None:
        where = f" at {r.node}" if r.node else ""
        detail = f": {r.message}" if r.message else ""
        profile = _profile_name(a, self.level)
        fix = f"Correct the {a.type} so that pkilint no longer reports {r.code}"
        if profile is not None and a.certificate is not None:
            fix += (f" (the profile profiles/{profile}.yaml decides its content), or, if the national profile "
                    f"deliberately differs, list {r.code} under lint_exceptions there with the reason")
        self.add(a, "ART-LINT", f"pkilint {r.code}", f"pkilint {r.code} ({r.severity}){where}{detail}", fix,
                 f"pkilint {_LINT_TOOLS.get(r.suite, r.suite)}",
                 Severity.WARNING if r.severity == "WARNING" else Severity.ERROR)

    def _national(self, a: Artefact, r: LintFinding) -> None:
        rule, field = _NATIONAL_RULES[r.code]
        fixes = {
            "ART-NATIONAL-CODE": "Re-issue the certificate with the holder's 10-digit national code, as on the "
                                 "national identity card, in subject serialNumber (PrintableString)",
            "ART-LEGAL-ENTITY-ID": "Re-issue the certificate with organizationIdentifier NTRIR-<11-digit legal-entity "
                                   "national ID> from the registration record",
            "ART-PERSIAN-NAME": "Re-issue the certificate with the Persian names encoded as UTF8String "
                                "(iranpki's profiles do so; check the CA software's string encoding)",
            "ART-POLICY-OID": f"Re-issue the certificate under the CA certificate of level {self.level}, whose "
                              f"certificates carry {self.rules.policy_oid} and no other level's OID",
        }
        requirements = {
            "ART-NATIONAL-CODE": "profiles/personal-signature.yaml: serialNumber is the national code, check digit verified",
            "ART-LEGAL-ENTITY-ID": "ETSI EN 319 412-1 5.1.4 and profiles/organisational-seal.yaml: NTRIR- and the legal-entity national ID",
            "ART-PERSIAN-NAME": "RFC 5280 4.1.2.6 (UTF8String) and the national profiles: Persian names are UTF8String",
            "ART-POLICY-OID": f"national CP level {self.level}, policy_oid: {self.rules.policy_oid}",
        }
        self.add(a, rule, field, r.message or r.code, fixes[rule], requirements[rule])

    # -- certificates --
    def certificate(self, a: Artefact) -> None:
        cert = a.certificate
        assert cert is not None
        self._validity(a, cert)
        if a.kind != "root":
            self._key(a, cert)
        self._hash(a, cert)

    def _validity(self, a: Artefact, cert: x509.Certificate) -> None:
        if a.kind is None:
            return
        used = _validity_seconds(cert)
        used_text = (f"valid {_days_text(used)} days ({cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} to "
                     f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC, both inclusive)")
        if a.kind == "root":
            cp_days, cp_where = self.policy.root.max_validity_days, "national CP, root.max_validity_days"
        else:
            cp_days = self.rules.max_validity_days[a.kind]
            cp_where = f"national CP level {self.level}, max_validity_days.{a.kind}"
        if used > cp_days * _SECONDS_PER_DAY:
            self.add(a, "ART-VALIDITY-CP", "validity", f"{a.name} ({a.kind}) is {used_text}; the CP allows at most "
                     f"{cp_days} days",
                     f"Re-issue it with a validity of at most {cp_days} days (notAfter - notBefore + 1 second)",
                     f"{cp_where}: {cp_days} days")
        claim = _claim(self.claims, "validity_days", self.level, a.kind) if a.kind != "root" else None
        if claim is not None and used > int(claim.value) * _SECONDS_PER_DAY:
            self.add(a, "ART-VALIDITY-CPS", "validity", f"{a.name} ({a.kind}) is {used_text}; the CPS says at most "
                     f"{claim.value} days ({claim.text!r})",
                     f"Issue {a.kind} certificates for at most {claim.value} days as the CPS says, or change the CPS "
                     f"(within the CP's {cp_days} days) and have the change approved",
                     f"{_cps(claim)}: {a.kind} at most {claim.value} days")

    def _key(self, a: Artefact, cert: x509.Certificate) -> None:
        try:
            key = cert.public_key()
        except (ValueError, UnsupportedAlgorithm):
            key = None
        keys = self.rules.keys
        allowed = f"RSA of at least {keys.min_rsa_bits} bits, or EC {', '.join(keys.ec_curves)}"
        requirement = (f"national CP level {self.level}, keys: min_rsa_bits {keys.min_rsa_bits}, "
                       f"ec_curves {', '.join(keys.ec_curves)}")
        text = _key_text(cert)
        problem = None
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < keys.min_rsa_bits:
                problem = f"an {text} key; level {self.level} needs at least {keys.min_rsa_bits} bits"
            else:
                claim = _claim(self.claims, "rsa_min_bits", self.level)
                if claim is not None and key.key_size < int(claim.value):
                    self.add(a, "ART-KEY-SIZE", "public key", f"{a.name} has an {text} key; the CPS says at least "
                             f"{claim.value} bits ({claim.text!r})",
                             f"Re-issue it with an RSA key of at least {claim.value} bits, as the CPS says",
                             f"{_cps(claim)}: RSA at least {claim.value} bits")
        elif isinstance(key, ec.EllipticCurvePublicKey):
            curve = _CURVES.get(key.curve.name, key.curve.name)
            claim = _claim(self.claims, "ec_curves", self.level, value_type=tuple)
            if curve not in keys.ec_curves:
                problem = f"an EC key on {curve}; level {self.level} allows {', '.join(keys.ec_curves)}"
            elif claim is not None and curve not in claim.value:
                self.add(a, "ART-KEY-SIZE", "public key", f"{a.name} has an EC key on {curve}; the CPS names "
                         f"{', '.join(claim.value)} ({claim.text!r})",
                         f"Re-issue it with a key on {' or '.join(claim.value)}, as the CPS says, or name {curve} in "
                         "the CPS", f"{_cps(claim)}: ECDSA curves {', '.join(claim.value)}")
        else:
            problem = f"a {text} key, which the CP does not allow"
        if problem is not None:
            self.add(a, "ART-KEY-SIZE", "public key", f"{a.name} ({a.kind or 'certificate'}) has {problem}",
                     f"Re-issue it with a new key pair: {allowed}", requirement)

    def _hash(self, a: Artefact, obj: Any) -> None:
        name = _hash_name(obj)
        hashes = self.rules.keys.hashes
        claim = _claim(self.claims, "hashes", self.level, value_type=tuple)
        if name in hashes and claim is not None and name not in claim.value:
            self.add(a, "ART-HASH", "signature algorithm", f"{a.name} is signed with {name}; the CPS names "
                     f"{', '.join(claim.value)} ({claim.text!r})",
                     f"Sign with {' or '.join(claim.value)}, as the CPS says, or name {name} in the CPS",
                     f"{_cps(claim)}: signature hashes {', '.join(claim.value)}")
        if name not in hashes:
            try:
                algorithm = obj.signature_algorithm_oid._name
            except (AttributeError, ValueError):
                algorithm = "unknown"
            shown = name or f"no separate hash ({algorithm})"
            self.add(a, "ART-HASH", "signature algorithm",
                     f"{a.name} is signed with {shown}; level {self.level} allows {', '.join(hashes)}",
                     f"Sign with {' or '.join(hashes)} (for example sha256WithRSAEncryption or ecdsa-with-SHA384)",
                     f"national CP level {self.level}, keys.hashes: {', '.join(hashes)}")

    # -- CRLs and OCSP responses --
    def crl(self, a: Artefact) -> None:
        crl = a.crl
        assert crl is not None
        self._hash(a, crl)
        root = a.kind == "arl"
        cp_hours = self.policy.crl_next_update_hours("root" if root else "intermediate", None if root else self.level)
        cp_where = ("national CP, root.crl_next_update_hours" if root
                    else f"national CP level {self.level}, status.crl_next_update_hours")
        nxt = crl.next_update_utc
        if nxt is None:
            self.add(a, "ART-CRL-NEXT-UPDATE-CP", "nextUpdate", f"{a.name} has no nextUpdate",
                     f"Issue CRLs with nextUpdate at most {cp_hours} hours after thisUpdate (RFC 5280 5.1.2.5: "
                     "conforming CAs MUST include it)", f"{cp_where}: {cp_hours} hours")
            return
        hours = _hours(nxt - crl.last_update_utc)
        span = (f"thisUpdate {crl.last_update_utc:%Y-%m-%d %H:%M:%S} to nextUpdate {nxt:%Y-%m-%d %H:%M:%S} UTC "
                f"({hours:g} hours)")
        if hours > cp_hours:
            self.add(a, "ART-CRL-NEXT-UPDATE-CP", "nextUpdate",
                     f"{a.name} ({'ARL of the root' if root else 'CRL'}) runs {span}; the CP allows at most {cp_hours} hours",
                     f"Issue CRLs with nextUpdate at most {cp_hours} hours after thisUpdate", f"{cp_where}: {cp_hours} hours")
        claim = None if root else _claim(self.claims, "crl_next_update_hours", self.level)
        if claim is not None and hours > int(claim.value):
            self.add(a, "ART-CRL-NEXT-UPDATE-CPS", "nextUpdate",
                     f"{a.name} runs {span}; the CPS says at most {claim.value} hours ({claim.text!r})",
                     f"Issue CRLs with nextUpdate at most {claim.value} hours after thisUpdate, as the CPS says",
                     f"{_cps(claim)}: nextUpdate at most {claim.value} hours after thisUpdate")

    def ocsp(self, a: Artefact) -> None:
        resp = a.ocsp_response
        assert resp is not None
        if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            return  # an error response carries no status and no signature; pkilint reports its status
        self._hash(a, resp)
        cp_hours = self.policy.ocsp_validity_hours(self.level)
        cp_where = f"national CP level {self.level}, status.ocsp_validity_hours"
        claim = _claim(self.claims, "ocsp_validity_hours", self.level)
        singles = _ocsp_singles(resp)
        for i, (this, nxt) in enumerate(singles, 1):
            field = "nextUpdate" if len(singles) == 1 else f"response {i} nextUpdate"
            if nxt is None:
                self.add(a, "ART-OCSP-VALIDITY-CP", field, f"{a.name} has a response without nextUpdate (valid "
                         "until further notice)", f"Sign responses with nextUpdate at most {cp_hours} hours after "
                         "thisUpdate", f"{cp_where}: {cp_hours} hours")
                continue
            hours = _hours(nxt - this)
            span = f"thisUpdate {this:%Y-%m-%d %H:%M:%S} to nextUpdate {nxt:%Y-%m-%d %H:%M:%S} UTC ({hours:g} hours)"
            if hours > cp_hours:
                self.add(a, "ART-OCSP-VALIDITY-CP", field, f"{a.name} is valid {span}; the CP allows at most "
                         f"{cp_hours} hours", f"Sign responses with nextUpdate at most {cp_hours} hours after thisUpdate",
                         f"{cp_where}: {cp_hours} hours")
            if claim is not None and hours > int(claim.value):
                self.add(a, "ART-OCSP-VALIDITY-CPS", field, f"{a.name} is valid {span}; the CPS says at most "
                         f"{claim.value} hours ({claim.text!r})",
                         f"Sign responses with nextUpdate at most {claim.value} hours after thisUpdate, as the CPS says",
                         f"{_cps(claim)}: OCSP responses valid at most {claim.value} hours")


def check_artefacts(artefacts: list[Artefact], claims: list[Claim], policy: CertificatePolicy,
                    level: int) -> list[Finding]:
    """Judge each artefact by pkilint, the national validators, the CPS ``claims`` and the CP at
    assurance ``level``; the CA certificates' findings are Stage.IMPLEMENTATION, the rest INSPECTION."""
    checker = _Checker(claims, policy, level)
    for a in artefacts:
        checker.lint(a)
        if a.certificate is not None:
            checker.certificate(a)
        elif a.crl is not None:
            checker.crl(a)
        elif a.ocsp_response is not None:
            checker.ocsp(a)
    return checker.findings


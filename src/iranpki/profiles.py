"""Certificate profiles as data: the model, the loader, and the checks a request must pass.

A profile (``profiles/<name>.yaml``) states what a certificate of one kind holds: key usages,
extended key usages, maximum validity, allowed keys, subject attributes with their checks,
certificate policies, CRL distribution points and AIA URLs. The model is frozen and rejects
unknown keys, so a typo in a profile fails at load time, not in a certificate.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import der
from .errors import IdentifierError, ProfileError, UnknownProfileError, Violation
from .identity import check_legal_entity_id, check_national_code, check_persian_name
from .keys.base import KeySpec

__all__ = [
    "ATTRIBUTES",
    "EKUS",
    "KEY_USAGES",
    "Profile",
    "SubjectAttribute",
    "list_profiles",
    "load_profile",
    "name_der",
    "subject_text",
    "subject_text_of",
]

#: Subject attribute short names a profile may use, with their OIDs (RFC 4519, X.520).
ATTRIBUTES: dict[str, ObjectIdentifier] = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "GN": NameOID.GIVEN_NAME,
    "SN": NameOID.SURNAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "organizationIdentifier": NameOID.ORGANIZATION_IDENTIFIER,
    "title": NameOID.TITLE,
}
ATTRIBUTE_NAMES = {oid: name for name, oid in ATTRIBUTES.items()}

KEY_USAGES = ("digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment",
              "keyAgreement", "keyCertSign", "cRLSign")
EKUS: dict[str, ObjectIdentifier] = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timeStamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "OCSPSigning": ExtendedKeyUsageOID.OCSP_SIGNING,
}

Check = Literal["national-code", "legal-entity-id", "persian-name", "country", "dns-name", "email", "san-name"]
_PRINTABLE = re.compile(r"^[A-Za-z0-9 '()+,\-./:=?]*$")
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SubjectAttribute(_Frozen):
    """One attribute a subject may or must carry."""

    name: str
    required: bool = False
    #: A value every certificate of the profile carries (for example C=IR).
    value: str | None = None
    #: A value that is used when the request gives none.
    default: str | None = None
    encoding: Literal["utf8", "printable"] = "utf8"
    check: Check | None = None
    #: Lengths from RFC 5280 appendix A upper bounds (ub-common-name 64, ub-organization 64, ...).
    max_length: int = Field(default=64, ge=1, le=255)
    #: Prefix written before a checked identifier (ETSI EN 319 412-1 5.1.4: "NTRIR-").
    prefix: str = ""
    #: Whether the value is written into the certificate's subject. False for an attribute a
    #: request may carry that is checked and used elsewhere (a TLS commonName, added to the
    #: subjectAltName, since BR 7.1.4.3 makes it NOT RECOMMENDED in the subject).
    in_subject: bool = True

    @model_validator(mode="after")
    def _known(self) -> SubjectAttribute:
        if self.name not in ATTRIBUTES:
            raise ValueError(f"unknown subject attribute {self.name!r}; must be one of {', '.join(ATTRIBUTES)}")
        return self

    @property
    def oid(self) -> ObjectIdentifier:
        return ATTRIBUTES[self.name]


class KeyRules(_Frozen):
    rsa_sizes: tuple[Literal[2048, 3072, 4096], ...] = (2048, 3072, 4096)
    ec_curves: tuple[Literal["P-256", "P-384"], ...] = ("P-256", "P-384")

    def allows(self, spec: KeySpec) -> bool:
        if spec.kind == "rsa":
            return spec.size in self.rsa_sizes
        return spec.curve in self.ec_curves

    def describe(self) -> str:
        parts = [f"rsa{s}" for s in self.rsa_sizes] + [f"ec-{c}" for c in self.ec_curves]
        return ", ".join(parts) or "none"


class BasicConstraints(_Frozen):
    ca: bool
    path_length: int | None = None
    critical: bool = True


class KeyUsage(_Frozen):
    critical: bool = True
    values: tuple[str, ...]
    #: Usages added only for RSA subject keys (keyEncipherment for TLS with RSA key exchange).
    rsa_extra: tuple[str, ...] = ()
    #: Usages added only for EC subject keys (keyAgreement: an EC key encrypts by ECDH).
    ec_extra: tuple[str, ...] = ()

    def for_key(self, kind: str) -> tuple[str, ...]:
        """The usages a certificate of this profile carries for a subject key of ``kind`` (rsa, ec)."""
        return self.values + (self.rsa_extra if kind == "rsa" else self.ec_extra if kind == "ec" else ())

    @model_validator(mode="after")
    def _known(self) -> KeyUsage:
        bad = [v for v in (*self.values, *self.rsa_extra, *self.ec_extra) if v not in KEY_USAGES]
        if bad:
            raise ValueError(f"unknown key usage {bad[0]!r}; must be one of {', '.join(KEY_USAGES)}")
        return self


class ExtendedKeyUsage(_Frozen):
    critical: bool = False
    values: tuple[str, ...]

    @model_validator(mode="after")
    def _known(self) -> ExtendedKeyUsage:
        bad = [v for v in self.values if v not in EKUS]
        if bad:
            raise ValueError(f"unknown extended key usage {bad[0]!r}; must be one of {', '.join(EKUS)}")
        return self


class SanRule(_Frozen):
    dns: Literal["required", "optional", "forbidden"] = "forbidden"
    ip: Literal["required", "optional", "forbidden"] = "forbidden"
    email: Literal["required", "optional", "forbidden"] = "forbidden"
    max_entries: int = Field(default=100, ge=1)
    critical: bool = False


class Policies(_Frozen):
    #: Add the national policy OID of the issuing CA's assurance level (or the profile's level).
    national: bool = True
    #: Further policy OIDs (CA/Browser Forum reserved OIDs, for example). They come first in
    #: the extension: the CA/B Forum BR (7.1.2.7.9, S/MIME 7.1.2.3) want the reserved OID first.
    extra: tuple[str, ...] = ()
    #: Add the anyPolicy OID (2.5.29.32.0) instead of a level policy (for a root's own use; rare).
    any_policy: bool = False


class Urls(_Frozen):
    """Templates filled from the issuing CA's settings: {repository}, {ocsp}, {ca}, and {shard}
    (empty for a CA whose CRL is not partitioned, ``-K`` for shard K of a partitioned one)."""

    crl: str | None = "{repository}/crl/{ca}{shard}.crl"
    #: The delta CRL (RFC 5280 4.2.1.15 freshestCRL); None: the certificates name no delta CRL.
    freshest_crl: str | None = None
    ocsp: str | None = "{ocsp}"
    ca_issuers: str | None = "{repository}/certs/{ca}.crt"


class LintException(_Frozen):
    """A pkilint finding the profile accepts, with the reason it is accepted."""

    code: str
    reason: str


class Profile(_Frozen):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    kind: Literal["root", "intermediate", "end-entity"]
    #: The assurance level a CA profile is for; end-entity profiles take the issuing CA's level.
    level: int | None = Field(default=None, ge=1, le=4)
    max_validity_days: int = Field(ge=1, le=36525)
    default_validity_days: int = Field(ge=1, le=36525)
    keys: KeyRules = KeyRules()
    subject: tuple[SubjectAttribute, ...]
    basic_constraints: BasicConstraints
    key_usage: KeyUsage
    extended_key_usage: ExtendedKeyUsage | None = None
    san: SanRule = SanRule()
    policies: Policies = Policies()
    urls: Urls = Urls()
    ocsp_no_check: bool = False
    authority_key_identifier: bool = True
    #: The CA/B Forum TLS BR (7.1.2.7.6) make SKI "NOT RECOMMENDED" in subscriber certificates.
    subject_key_identifier: bool = True
    lint_exceptions: tuple[LintException, ...] = ()
    #: The hash of a self-signed certificate's signature (default: matched to the key size).
    signature_hash: Literal["sha256", "sha384", "sha512"] | None = None
    #: The pkilint suites that judge this profile's certificates in the tests.
    lint: tuple[Literal["pkix", "serverauth", "smime"], ...] = ("pkix",)
    #: The ``openssl verify -purpose`` that a certificate of the profile must pass.
    openssl_purpose: str | None = None
    #: The kind of certificate the national CP counts this profile's certificates as (its
    #: validity limit); by default the profile's own name.
    cp_kind: str | None = None

    @property
    def policy_kind(self) -> str:
        return self.cp_kind or self.name

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if self.default_validity_days > self.max_validity_days:
            raise ValueError("default_validity_days is longer than max_validity_days")
        if self.basic_constraints.ca != (self.kind != "end-entity"):
            raise ValueError("basic_constraints.ca must be true exactly for root and intermediate profiles")
        if self.kind == "intermediate" and self.level is None:
            raise ValueError("an intermediate profile must name its assurance level (level: 1..4)")
        names = [a.name for a in self.subject]
        if len(names) != len(set(names)):
            raise ValueError("a subject attribute is listed twice")
        if self.kind == "root" and self.authority_key_identifier:
            raise ValueError("a root profile carries no authority key identifier (set authority_key_identifier: false)")
        for kind, allowed in (("rsa", self.keys.rsa_sizes), ("ec", self.keys.ec_curves)):
            if allowed and not self.key_usage.for_key(kind):
                raise ValueError(f"key_usage gives an {kind.upper()} key no usage; add it to values or {kind}_extra")
        return self

    # ---- checks on a request: each adds Violations, none raises ------------------------------

    def check_key(self, spec: KeySpec, out: list[Violation]) -> None:
        if not self.keys.allows(spec):
            out.append(Violation("public key", str(spec), f"not allowed; allowed keys: {self.keys.describe()}"))

    def check_validity(self, days: int, out: list[Violation]) -> None:
        if days < 1 or days > self.max_validity_days:
            out.append(Violation("validity", f"{days} days", f"must be 1 to {self.max_validity_days} days"))

    def normalise_subject(self, given: list[tuple[str, str]], out: list[Violation]) -> list[tuple[SubjectAttribute, str]]:
        """Check ``given`` (short name, value) pairs; return the subject in profile order."""
        by_name: dict[str, list[str]] = {}
        for name, value in given:
            by_name.setdefault(name, []).append(value)
        allowed = {a.name: a for a in self.subject}
        for name in by_name:
            if name not in allowed:
                out.append(Violation(f"subject {name}", by_name[name][0],
                                     f"not allowed in this profile; remove {name} from the request "
                                     f"(this profile takes {', '.join(allowed)})"))
        result: list[tuple[SubjectAttribute, str]] = []
        for attr in self.subject:
            values = by_name.get(attr.name, [])
            if len(values) > 1:
                out.append(Violation(f"subject {attr.name}", values[1], "given more than once; give it once"))
                continue
            value = values[0] if values else (attr.value or attr.default)
            if value is None:
                if attr.required:
                    out.append(Violation(f"subject {attr.name}", None,
                                         f"required in this profile; add {attr.name}=... to the subject"))
                continue
            checked = _check_attribute(attr, value, out)
            if checked is not None:
                result.append((attr, checked))
        return result

    def check_sans(self, dns: list[str], ips: list[str], emails: list[str],
                   out: list[Violation]) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address], list[str]]:
        rules = {"dns": (self.san.dns, dns), "ip": (self.san.ip, ips), "email": (self.san.email, emails)}
        for kind, (rule, values) in rules.items():
            if rule == "required" and not values:
                out.append(Violation(f"subjectAltName {kind}", None, "at least one is required"))
            if rule == "forbidden" and values:
                out.append(Violation(f"subjectAltName {kind}", values[0], "not allowed in this profile"))
        # A name given twice (in the CSR and again on the command line, or as the commonName) is
        # certified once: DNS names compare without case (RFC 4343), addresses by value.
        dns = list(dict.fromkeys(d.lower() for d in dns))
        emails = list(dict.fromkeys(emails))
        ips = list(dict.fromkeys(ips))
        if len(dns) + len(ips) + len(emails) > self.san.max_entries:
            out.append(Violation("subjectAltName", f"{len(dns) + len(ips) + len(emails)} entries",
                                 f"at most {self.san.max_entries} entries"))
        good_dns = [d for d in dns if _check_dns(d, out)]
        good_ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        for ip in ips:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                out.append(Violation("subjectAltName ip", ip, "not an IPv4 or IPv6 address"))
                continue
            if addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_reserved or addr.is_unspecified:
                out.append(Violation("subjectAltName ip", ip, "an internal or reserved address cannot be certified"))
                continue
            if addr not in good_ips:
                good_ips.append(addr)
        good_emails = []
        for e in emails:
            if not _EMAIL.match(e) or not e.isascii():
                out.append(Violation("subjectAltName email", e, "not a mailbox address (local@domain, ASCII)"))
            elif _check_dns(e.rsplit("@", 1)[1].lower(), out, what="subjectAltName email domain"):
                good_emails.append(e)
        return good_dns, good_ips, good_emails


def bidi_problem(value: str) -> str | None:
    """Why relying parties cannot compare this name, or None. Certificate path validators and
    directories compare names after RFC 4518 string preparation, whose bidirectional rule (RFC
    3454 section 6) refuses a value with right-to-left letters (Persian) that also holds
    left-to-right letters (Latin), or that begins or ends with anything but a right-to-left
    letter (a digit, a bracket, a point): such a certificate breaks their path building."""
    import unicodedata

    kinds = [unicodedata.bidirectional(c) for c in value]
    if not any(k in ("R", "AL") for k in kinds):
        return None
    if "L" in kinds:
        return ("mixes Persian letters with Latin ones, which name comparison (RFC 4518) refuses; write it in one "
                "script")
    if kinds[0] not in ("R", "AL") or kinds[-1] not in ("R", "AL"):
        return ("begins or ends with a digit or sign after Persian letters, which name comparison (RFC 4518) "
                "refuses; begin and end with a Persian letter (e.g. 'دفتر شماره ۱ تهران', not 'دفتر تهران ۱')")
    return None


def _check_dns(name: str, out: list[Violation], what: str = "subjectAltName dns") -> bool:
    labels = name[2:].split(".") if name.startswith("*.") else name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_DNS_LABEL.match(label) for label in labels):
        out.append(Violation(what, name, "not a fully qualified domain name (LDH labels, at least two)"))
        return False
    if labels[-1].isdigit():
        out.append(Violation(what, name, "the last label is numeric; give IP addresses as ip, not dns"))
        return False
    return True


def _check_attribute(attr: SubjectAttribute, value: str, out: list[Violation]) -> str | None:
    label = f"subject {attr.name}"
    if attr.value is not None and value != attr.value:
        out.append(Violation(label, value, f"must be {attr.value!r} in this profile"))
        return None
    if value != value.strip() or not value:
        out.append(Violation(label, value, "empty or with leading/trailing spaces"))
        return None
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        out.append(Violation(label, value, "holds control characters"))
        return None
    if (bidi := bidi_problem(value)) is not None:
        out.append(Violation(label, value, bidi))
        return None
    try:
        if attr.check == "national-code":
            value = check_national_code(value)
        elif attr.check == "legal-entity-id":
            body = value[len(attr.prefix):] if attr.prefix and value.startswith(attr.prefix) else value
            value = attr.prefix + check_legal_entity_id(body)
        elif attr.check == "persian-name":
            value = check_persian_name(value)
        elif attr.check == "country" and (len(value) != 2 or not value.isalpha() or not value.isupper()):
            out.append(Violation(label, value, "must be a two-letter ISO 3166 country code in capitals (IR)"))
            return None
        elif attr.check == "dns-name" and not _check_dns(value.lower(), out, what=label):
            return None
        elif attr.check == "san-name":
            # BR 7.1.2.7.4: a commonName repeats one of the subjectAltName entries, a DNS name
            # (lower case here, as in the SAN) or an IP address; the CA adds it to the SAN.
            try:
                value = str(ipaddress.ip_address(value))
            except ValueError:
                if not _check_dns(value.lower(), out, what=label):
                    return None
                value = value.lower()
    except IdentifierError as exc:
        out.append(Violation(label, value, exc.problem))
        return None
    if len(value) > attr.max_length:
        out.append(Violation(label, value, f"longer than {attr.max_length} characters"))
        return None
    if attr.encoding == "printable" and not _PRINTABLE.match(value):
        out.append(Violation(label, value, "must hold PrintableString characters only (A-Z a-z 0-9 space '()+,-./:=?)"))
        return None
    return value


def _profile_files() -> dict[str, str]:
    root = resources.files("iranpki._data").joinpath("profiles")
    return {p.name[:-5]: p.read_text("utf-8") for p in root.iterdir() if p.name.endswith(".yaml")}


@lru_cache(maxsize=1)
def _all_profiles() -> dict[str, Profile]:
    out: dict[str, Profile] = {}
    for stem, text in sorted(_profile_files().items()):
        try:
            profile = Profile.model_validate(yaml.safe_load(text))
        except (ValidationError, yaml.YAMLError) as exc:
            raise ProfileError(f"profile file {stem}.yaml does not load:\n{exc}") from None
        if profile.name != stem:
            raise ProfileError(f"profile file {stem}.yaml names itself {profile.name!r}; the names must match")
        out[profile.name] = profile
    return out


def list_profiles() -> list[Profile]:
    return list(_all_profiles().values())


def load_profile(name: str) -> Profile:
    profiles = _all_profiles()
    if name not in profiles:
        raise UnknownProfileError(name, sorted(profiles))
    return profiles[name]


_SHORT_NAMES = {NameOID.SERIAL_NUMBER: "serialNumber", NameOID.GIVEN_NAME: "GN", NameOID.SURNAME: "SN",
                NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier", NameOID.TITLE: "title"}


def subject_text(name: x509.Name) -> str:
    """RFC 4514 text of ``name``, with the attribute names this toolkit uses (not dotted OIDs)."""
    import warnings

    with warnings.catch_warnings():
        # cryptography warns about a commonName over 64 UTF-8 bytes; RFC 5280 counts characters.
        warnings.filterwarnings("ignore", message="Attribute's length")
        return name.rfc4514_string(_SHORT_NAMES)


def _rfc4514_escape(value: str) -> str:
    out = "".join("\\" + c if c in ',+"\\<>;=' else c for c in value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


def subject_text_of(subject: list[tuple[SubjectAttribute, str]]) -> str:
    """RFC 4514 text of a checked subject (last RDN first, as RFC 4514 2.1 orders it)."""
    return ",".join(f"{a.name}={_rfc4514_escape(v)}" for a, v in reversed(subject))


def name_der(subject: list[tuple[SubjectAttribute, str]]) -> bytes:
    """The DER X.501 Name, one attribute per RDN, encoded as the profile says.

    Written here rather than with ``cryptography``'s Name, which caps commonName at 64 UTF-8
    *bytes*: RFC 5280 (appendix A, ub-common-name) counts characters, and a Persian name of 33
    letters is 66 bytes. The profile enforces the limit in characters.
    """
    rdns = []
    for attr, value in subject:
        # RFC 5280 4.1.2.6 and appendix A: countryName and serialNumber are PrintableString.
        printable = attr.name == "C" or attr.encoding == "printable"
        string = der.tlv(0x13 if printable else 0x0C, value.encode("ascii" if printable else "utf-8"))
        rdns.append(der.tlv(0x31, der.sequence(der.oid(attr.oid.dotted_string), string)))
    return der.sequence(*rdns)

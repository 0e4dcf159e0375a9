"""pkilint as a library, and the national profile rules as pkilint validators.

What the ``pkilint`` command-line tools do, without starting a process per artefact:

- a certificate: the RFC 5280 validators of ``lint_pkix_cert``; an SSL/TLS server certificate also
  the CA/Browser Forum TLS BR validators of ``lint_cabf_serverauth_cert`` (certificate type detected
  as its ``--detect`` does, finding filters applied as it applies them); an S/MIME certificate also
  those of ``lint_cabf_smime_cert`` (validation level and generation as its ``--guess`` finds them);
- a CRL: ``lint_crl -t CRL`` (a CA's CRL) or ``-t ARL`` (a root's), profile PKIX by default;
- an OCSP response: ``lint_ocsp_response``.

Findings below WARNING are dropped, as ``-s WARNING`` drops them.

Beside pkilint's own validators, the national profiles (``profiles/*.yaml``) add rules pkilint
cannot know. They are pkilint validators (subclasses of :class:`pkilint.validation.Validator`)
added to the RFC 5280 validator lists, so they run over the same decoded document:

==================================== ======================================================
code                                 rule
==================================== ======================================================
``iranpki.national_code_invalid``    a personal certificate's subject serialNumber is a valid
                                     10-digit national code (check digit included)
``iranpki.legal_entity_id_invalid``  organizationIdentifier ``NTRIR-`` + a valid 11-digit
                                     legal-entity national ID
``iranpki.persian_name_not_utf8string`` SN, GN, O and CN holding Persian letters are UTF8String
``iranpki.policy_oid_missing``       certificatePolicies carries a national level OID
``iranpki.policy_oid_wrong_level``   exactly one national level OID, the expected level's
==================================== ======================================================
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pkilint import finding_filter, loader, pkix, validation
from pkilint.cabf import serverauth, smime
from pkilint.document import PDUNode
from pkilint.pkix import certificate, extension, name
from pkilint.pkix import crl as pkix_crl
from pkilint.pkix import ocsp as pkix_ocsp
from pyasn1.type import char
from pyasn1.type.univ import ObjectIdentifier
from pyasn1_alt_modules import rfc5280

from ..errors import IdentifierError
from ..identity import check_legal_entity_id, check_national_code
from ..policy import CertificatePolicy

__all__ = [
    "LEGAL_ENTITY_PREFIX",
    "NATIONAL_CODES",
    "LintFinding",
    "LegalEntityIdValidator",
    "NationalCodeValidator",
    "NationalPolicyOidValidator",
    "PersianNameEncodingValidator",
    "lint_certificate",
    "lint_crl",
    "lint_ocsp_response",
    "national_validators",
]

#: ETSI EN 319 412-1 5.1.4 semantics identifier of Iran's national trade register.
LEGAL_ENTITY_PREFIX = "NTRIR-"

_SEVERITY = validation.ValidationFindingSeverity
_E = _SEVERITY.ERROR

NATIONAL_CODE_INVALID = validation.ValidationFinding(_E, "iranpki.national_code_invalid")
LEGAL_ENTITY_ID_INVALID = validation.ValidationFinding(_E, "iranpki.legal_entity_id_invalid")
PERSIAN_NAME_NOT_UTF8 = validation.ValidationFinding(_E, "iranpki.persian_name_not_utf8string")
POLICY_OID_MISSING = validation.ValidationFinding(_E, "iranpki.policy_oid_missing")
POLICY_OID_WRONG_LEVEL = validation.ValidationFinding(_E, "iranpki.policy_oid_wrong_level")

#: The codes of the national validators.
NATIONAL_CODES = tuple(f.code for f in (NATIONAL_CODE_INVALID, LEGAL_ENTITY_ID_INVALID, PERSIAN_NAME_NOT_UTF8,
                                         POLICY_OID_MISSING, POLICY_OID_WRONG_LEVEL))

_SUBJECT_RDNS = "certificate.tbsCertificate.subject.rdnSequence"
_PERSIAN_NAME_TYPES = {rfc5280.id_at_surname: "SN", rfc5280.id_at_givenName: "GN",
                       rfc5280.id_at_organizationName: "O", rfc5280.id_at_commonName: "CN"}
_ORGANIZATION_IDENTIFIER = ObjectIdentifier("2.5.4.97")


@dataclass(frozen=True)
class LintFinding:
    """One pkilint finding (of pkilint's own validators or of the national ones)."""

    code: str  # e.g. pkix.certificate_skid_end_entity_missing, iranpki.national_code_invalid
    severity: str  # pkilint's severity name: FATAL, ERROR or WARNING
    message: str  # pkilint's message, "" when it gives none
    node: str  # the document node, e.g. certificate.tbsCertificate.subject.rdnSequence.2.0
    suite: str  # pkix, serverauth, smime, crl, ocsp

    @property
    def national(self) -> bool:
        return self.code.startswith("iranpki.")


# ---- helpers on decoded names ---------------------------------------------------------------------

def _string_value(atv: PDUNode) -> tuple[str, str] | None:
    """(ASN.1 string type name, text) of a decoded AttributeTypeAndValue, or None if undecoded."""
    node = atv.children.get("value")
    # The decoder hangs the decoded value under "value": a string type itself (X520SerialNumber is
    # a PrintableString) or a DirectoryString CHOICE with the chosen string below it.
    while node is not None:
        if isinstance(node.pdu, char.AbstractCharacterString):
            return type(node.pdu).__name__, str(node.pdu)
        if len(node.children) != 1:
            return None
        node = next(iter(node.children.values()))
    return None


def _attributes(rdns: PDUNode, oid: ObjectIdentifier) -> list[PDUNode]:
    return [atv for rdn in rdns.children.values() for atv in rdn.children.values() if atv.children["type"].pdu == oid]


def _has_persian_letter(text: str) -> bool:
    # Letters of the Arabic block, which holds the Persian alphabet (and its yeh and kaf forms).
    return any("\u0621" <= ch <= "\u06d3" for ch in text)


# ---- the national validators ------------------------------------------------------------------------

class NationalCodeValidator(validation.Validator):
    """A personal certificate's subject carries the holder's national code in serialNumber
    (X.520 2.5.4.5): 10 digits whose check digit verifies (``iranpki.identity.check_national_code``)."""

    def __init__(self) -> None:
        super().__init__(validations=[NATIONAL_CODE_INVALID], path=_SUBJECT_RDNS)

    def validate(self, node: PDUNode) -> validation.ValidationResult:
        serials = _attributes(node, rfc5280.id_at_serialNumber)
        if not serials:
            raise validation.ValidationFindingEncountered(
                NATIONAL_CODE_INVALID, "the subject has no serialNumber; a personal certificate carries the "
                "holder's 10-digit national code there")
        problems = []
        for atv in serials:
            value = _string_value(atv)
            if value is None:
                problems.append("serialNumber could not be decoded")
                continue
            try:
                if check_national_code(value[1]) != value[1]:
                    problems.append(f"serialNumber {value[1]!r} is not written as 10 ASCII digits")
            except IdentifierError as exc:
                problems.append(f"serialNumber {value[1]!r}: {exc.problem}")
        if problems:
            raise validation.ValidationFindingEncountered(NATIONAL_CODE_INVALID, "; ".join(problems))
        return validation.ValidationResult(self, node, [])


class LegalEntityIdValidator(validation.Validator):
    """organizationIdentifier (X.520 2.5.4.97) is ``NTRIR-`` and an 11-digit legal-entity national
    ID whose check digit verifies; with ``required`` the subject must carry one (organisational seals)."""

    def __init__(self, required: bool = False) -> None:
        self.required = required
        super().__init__(validations=[LEGAL_ENTITY_ID_INVALID], path=_SUBJECT_RDNS)

    def validate(self, node: PDUNode) -> validation.ValidationResult:
        found = _attributes(node, _ORGANIZATION_IDENTIFIER)
        if not found and self.required:
            raise validation.ValidationFindingEncountered(
                LEGAL_ENTITY_ID_INVALID, "the subject has no organizationIdentifier; an organisational seal "
                f"carries {LEGAL_ENTITY_PREFIX}<11-digit legal-entity national ID> there")
        problems = []
        for atv in found:
            value = _string_value(atv)
            if value is None:
                problems.append("organizationIdentifier could not be decoded")
                continue
            text = value[1]
            if not text.startswith(LEGAL_ENTITY_PREFIX):
                # Other ETSI semantics (VAT..., PSD...) name other registers; only seals must use ours.
                if self.required:
                    problems.append(f"organizationIdentifier {text!r} does not start with {LEGAL_ENTITY_PREFIX}")
                continue
            try:
                check_legal_entity_id(text[len(LEGAL_ENTITY_PREFIX):])
            except IdentifierError as exc:
                problems.append(f"organizationIdentifier {text!r}: {exc.problem}")
        if problems:
            raise validation.ValidationFindingEncountered(LEGAL_ENTITY_ID_INVALID, "; ".join(problems))
        return validation.ValidationResult(self, node, [])


class PersianNameEncodingValidator(validation.Validator):
    """SN, GN, O and CN that hold Persian letters are UTF8String (RFC 5280 4.1.2.6: UTF8String for
    new certificates; BMPString and PrintableString cannot carry them well, or at all)."""

    def __init__(self) -> None:
        super().__init__(validations=[PERSIAN_NAME_NOT_UTF8], pdu_class=rfc5280.AttributeTypeAndValue)

    def match(self, node: PDUNode) -> bool:
        return (super().match(node) and node.path.startswith(_SUBJECT_RDNS + ".")
                and node.children["type"].pdu in _PERSIAN_NAME_TYPES)

    def validate(self, node: PDUNode) -> validation.ValidationResult:
        label = _PERSIAN_NAME_TYPES[node.children["type"].pdu]
        # Read the encoded value itself, not pkilint's decoding of it: Persian letters forced into a
        # PrintableString do not decode at all, and that is the case this rule exists for.
        raw = node.children["value"].pdu.asOctets()
        string_type, text = _raw_string(raw)
        if string_type != "UTF8String" and _has_persian_letter(text):
            raise validation.ValidationFindingEncountered(
                PERSIAN_NAME_NOT_UTF8, f"{label} {text!r} holds Persian letters but is a {string_type}")
        return validation.ValidationResult(self, node, [])


_STRING_TAGS = {0x0C: ("UTF8String", "utf-8"), 0x13: ("PrintableString", "utf-8"), 0x14: ("TeletexString", "latin-1"),
                0x16: ("IA5String", "utf-8"), 0x1C: ("UniversalString", "utf-32-be"), 0x1E: ("BMPString", "utf-16-be")}


def _raw_string(tlv: bytes) -> tuple[str, str]:
    """(string type, text) of a DER-encoded directory string; undecodable octets become U+FFFD."""
    if len(tlv) < 2:
        return "empty value", ""
    tag, length, offset = tlv[0], tlv[1], 2
    if length & 0x80:
        n = length & 0x7F
        length, offset = int.from_bytes(tlv[2:2 + n], "big"), 2 + n
    name, codec = _STRING_TAGS.get(tag, (f"tag 0x{tag:02x}", "utf-8"))
    return name, tlv[offset:offset + length].decode(codec, errors="replace")


class NationalPolicyOidValidator(validation.Validator):
    """certificatePolicies carries exactly one policy OID of a national assurance level and, when
    ``level`` is given, that level's (the CP's levels[].policy_oid)."""

    def __init__(self, policy: CertificatePolicy, level: int | None) -> None:
        self.policy = policy
        self.level = level
        super().__init__(validations=[POLICY_OID_MISSING, POLICY_OID_WRONG_LEVEL], path="certificate")

    def validate(self, node: PDUNode) -> validation.ValidationResult:
        oids = sorted(str(o) for o in node.document.policy_oids)
        national = [o for o in oids if self.policy.level_of_oid(o) is not None]
        expected = self.policy.level(self.level).policy_oid if self.level is not None else None
        if not national:
            shown = ", ".join(oids) if oids else "no certificatePolicies extension"
            want = expected or " or ".join(lv.policy_oid for lv in self.policy.levels)
            raise validation.ValidationFindingEncountered(
                POLICY_OID_MISSING, f"no national level policy OID ({shown}); expected {want}")
        if len(national) > 1:
            raise validation.ValidationFindingEncountered(
                POLICY_OID_WRONG_LEVEL, f"{len(national)} national level policy OIDs ({', '.join(national)}); "
                "a certificate belongs to exactly one level")
        if expected is not None and national[0] != expected:
            found = self.policy.level_of_oid(national[0])
            raise validation.ValidationFindingEncountered(
                POLICY_OID_WRONG_LEVEL, f"policy OID {national[0]} (level {found.level if found else '?'}); "
                f"expected {expected} (level {self.level})")
        return validation.ValidationResult(self, node, [])


def national_validators(kind: str | None, policy: CertificatePolicy,
                        level: int | None) -> tuple[list[validation.Validator], list[validation.Validator]]:
    """The national validators for a certificate of ``kind``: (subject name validators, validators
    of the whole certificate)."""
    names: list[validation.Validator] = [PersianNameEncodingValidator(),
                                         LegalEntityIdValidator(required=kind == "organisational-seal")]
    if kind == "personal-signature":
        names.append(NationalCodeValidator())
    top: list[validation.Validator] = []
    # A root carries no certificate policies (profiles/root.yaml); every other certificate of the
    # national PKI names its level.
    if kind != "root":
        top.append(NationalPolicyOidValidator(policy, level))
    return names, top


# ---- running pkilint --------------------------------------------------------------------------------

def _collect(results: Iterable[validation.ValidationResult], suite: str) -> list[LintFinding]:
    out = []
    for result in results:
        for fd in result.finding_descriptions:
            # -s WARNING: FATAL (0), ERROR (1) and WARNING (2) are kept.
            if fd.finding.severity <= _SEVERITY.WARNING:
                out.append(LintFinding(fd.finding.code, fd.finding.severity.name, fd.message or "",
                                       result.node.path, suite))
    return out


def _load(document_loader: loader.DocumentLoader, der: bytes, what: str):  # noqa: ANN202 - pkilint's Document
    try:
        return document_loader.load_der_document(der, what)
    except ValueError as exc:
        return exc


def _fatal(suite: str, exc: Exception) -> list[LintFinding]:
    return [LintFinding("itu.invalid_asn1_syntax", "FATAL", f"pkilint cannot decode it: {exc}", "", suite)]


# The CA/B Forum validator trees are built once per certificate type and reused: building one
# parses the Public Suffix List (about 0.25 s each time), which made SSL and S/MIME certificates
# cost a third of a second each. pkilint's validators keep no state between documents.
@functools.lru_cache(maxsize=None)
def _serverauth_validator(cert_type: Any) -> validation.ValidatorContainer:
    return certificate.create_pkix_certificate_validator_container(
        serverauth.create_decoding_validators(), serverauth.create_validators(cert_type))


@functools.lru_cache(maxsize=None)
def _smime_validator(validation_level: Any, generation: Any) -> validation.ValidatorContainer:
    return certificate.create_pkix_certificate_validator_container(
        smime.create_decoding_validators(), smime.create_subscriber_validators(validation_level, generation))


def lint_certificate(der: bytes, kind: str | None = None, *, policy: CertificatePolicy | None = None,
                     level: int | None = None, national: bool = True) -> list[LintFinding]:
    """Lint a DER certificate as ``lint_pkix_cert -s WARNING`` does, plus the CA/B Forum TLS BR
    (``kind`` ssl-server) or S/MIME BR (``kind`` smime) validators, plus (with ``national`` and a
    ``policy``) the national validators for ``kind`` at assurance ``level``."""
    cert = _load(loader.RFC5280CertificateDocumentLoader(), der, "certificate")
    if isinstance(cert, Exception):
        return _fatal("pkix", cert)
    subject_extra: list[validation.Validator] = []
    top_extra: list[validation.Validator] = []
    if national and policy is not None:
        subject_extra, top_extra = national_validators(kind, policy, level)
    pkix_validator = certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container(subject_extra),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
            *top_extra,
        ],
    )
    findings = _collect(pkix_validator.validate(cert.root), "pkix")

    if kind == "ssl-server":
        cert = _load(loader.RFC5280CertificateDocumentLoader(), der, "certificate")
        cert_type = serverauth.determine_certificate_type(cert)
        results = _serverauth_validator(cert_type).validate(cert.root)
        # The CLI filters PKIX findings the BR supersede unless --report-all; so do we.
        results, _ = finding_filter.filter_results(serverauth.create_serverauth_finding_filters(cert_type), results)
        findings += _collect(results, "serverauth")
    elif kind == "smime":
        cert = _load(loader.RFC5280CertificateDocumentLoader(), der, "certificate")
        validation_level, generation = smime.guess_validation_level_and_generation(cert)
        results = _smime_validator(validation_level, generation).validate(cert.root)
        findings += _collect(results, "smime")
    return _unique(findings)


def _unique(findings: list[LintFinding]) -> list[LintFinding]:
    # The CA/B suites include the RFC 5280 validators: one problem, one finding.
    seen: set[tuple[str, str, str]] = set()
    out = []
    for f in findings:
        key = (f.code, f.node, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def lint_crl(der: bytes, crl_type: Literal["CRL", "ARL"] = "CRL",
             profile: Literal["PKIX", "BR"] = "PKIX") -> list[LintFinding]:
    """Lint a DER CRL as ``lint_crl -t CRL|ARL -p PKIX|BR -s WARNING`` does (ARL: a root's CRL,
    which lists CA certificates)."""
    doc = _load(loader.RFC5280CertificateListDocumentLoader(), der, "crl")
    if isinstance(doc, Exception):
        return _fatal("crl", doc)
    kind = pkix_crl.CertificateRevocationListType[crl_type]
    validity_extra: list[validation.Validator] = []
    doc_extra: list[validation.Validator] = []
    if profile == "BR":
        from pkilint.cabf import cabf_crl

        doc_extra.append(cabf_crl.CabfCrlReasonCodeAllowlistValidator(kind))
        validity_extra.append(cabf_crl.create_validity_period_validator(kind))
    validator = pkix_crl.create_pkix_crl_validator_container(
        [pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
         pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS)],
        [pkix_crl.create_issuer_validator_container([]),
         pkix_crl.create_validity_validator_container(validity_extra),
         pkix_crl.create_extensions_validator_container([]),
         *doc_extra],
    )
    return _collect(validator.validate(doc.root), "crl")


def lint_ocsp_response(der: bytes) -> list[LintFinding]:
    """Lint a DER OCSP response as ``lint_ocsp_response -s WARNING`` does."""
    doc = _load(loader.RFC6960OCSPResponseDocumentLoader(), der, "ocsp")
    if isinstance(doc, Exception):
        return _fatal("ocsp", doc)
    validator = pkix_ocsp.create_pkix_ocsp_response_validator_container(
        [pkix_ocsp.create_response_decoder(),
         pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
         pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS)],
        [],
    )
    return _collect(validator.validate(doc.root), "ocsp")

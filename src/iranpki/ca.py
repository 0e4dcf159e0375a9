"""The issuance engine: roots, intermediates per assurance level, end-entity certificates,
and revocation records (RFC 5280 sections 4 and 5.3.1).

How a certificate is made (and why it is safe):

1. The request (a PKCS#10 CSR whose signature proves possession, or a public key with subject
   fields) is checked against its profile; every violation is collected and reported at once.
2. The TBSCertificate is composed from parts ``cryptography`` encodes (names, extensions, keys);
   the parts that are the same for every certificate of a profile are encoded once per CA.
3. The CA key signs; the signature is verified with the CA's public key before anything else
   happens, so a faulty token (an RSA-CRT fault leaks the key) never yields a certificate.
4. The certificate and its audit row are committed in one transaction; only then is the
   certificate returned. A crash before the commit leaves nothing; a serial collision (the store
   enforces uniqueness) makes a new serial and a new signature, and the first is discarded
   unseen.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property, lru_cache

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtensionOID

from . import der
from .clock import Clock, SystemClock, utc
from .der import problem
from .errors import (
    DuplicateError,
    IssuanceError,
    ProfileViolationError,
    RequestError,
    RevocationError,
    TokenError,
    Violation,
)
from .keycheck import check_public_key
from .keys.base import KeySpec, SignatureScheme, Signer, key_spec_of
from .keys.reference import parse_key_reference
from .names import check_ca_name
from .policy import CertificatePolicy, load_policy
from .profiles import (
    ATTRIBUTE_NAMES,
    EKUS,
    ExtendedKeyUsage,
    Profile,
    load_profile,
    name_der,
    subject_text,
    subject_text_of,
)
from .store.base import AuditEvent, CaRecord, CertificateRecord, Reason, Store
from .store.registration import RequestUpdate
from .x509parts import (
    IssuerFields,
    encode_extension,
    fill_url,
)

__all__ = [
    "MAX_CSR_BYTES",
    "MAX_KEY_FILE",
    "CertificateAuthority",
    "IssueRequest",
    "IssuedCertificate",
    "create_intermediate",
    "create_root",
    "build_request",
    "load_public_key",
    "parse_subject",
    "request_from_csr",
    "revoke",
]

#: A CSR larger than this is refused before it is parsed (a real one is under 4 KiB).
MAX_CSR_BYTES = 64 * 1024
#: A public key file larger than this is refused before it is parsed.
MAX_KEY_FILE = 64 * 1024
_SERIAL_TRIES = 5


@dataclass(frozen=True)
class IssueRequest:
    """What the CA is asked to certify."""

    subject: list[tuple[str, str]]
    public_key: PublicKeyTypes
    dns: list[str] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    validity_days: int | None = None
    not_before: datetime | None = None
    #: The subscriber agreed that the certificate be published in the directory (LDAP).
    publish: bool = False


@dataclass(frozen=True)
class IssuedCertificate:
    record: CertificateRecord

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.record.certificate)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


# ---- requests ---------------------------------------------------------------------------------

def parse_subject(text: str) -> list[tuple[str, str]]:
    """Read ``C=IR, O=..., CN=...`` (RFC 4514 style, ``\\,`` escapes a comma) into pairs.

    Attributes are given in the order people write them; the profile decides the order in the
    certificate.
    """
    pairs: list[tuple[str, str]] = []
    buf, parts, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            buf.append(text[i + 1])
            i += 2
            continue
        if ch in ",+/" and (ch != "/" or text.startswith("/")):
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    for part in (p.strip() for p in parts):
        if not part:
            continue
        name, eq, value = part.partition("=")
        if not eq:
            raise RequestError(f"subject part {part!r} has no '='; write ATTRIBUTE=VALUE, e.g. CN=example.ir")
        name = name.strip()
        canonical = {k.lower(): k for k in (*ATTRIBUTE_NAMES.values(), "givenName", "surname")}.get(name.lower())
        name = {"givenName": "GN", "surname": "SN"}.get(canonical or "", canonical or name)
        pairs.append((name, value.strip()))
    return pairs


def request_from_csr(data: bytes, *, validity_days: int | None = None) -> IssueRequest:
    """Parse a PKCS#10 CSR (PEM or DER), check its proof of possession, and read its contents."""
    if len(data) > MAX_CSR_BYTES:
        raise RequestError(
            f"the CSR is {len(data)} bytes; at most {MAX_CSR_BYTES} are accepted (a real CSR is under 4 KiB). "
            "Check that the file is a certificate request"
        )
    pem = b"-----BEGIN" in data  # PEM may follow explanatory text (RFC 7468 5.2)
    if pem:
        blocks = re.findall(rb"-----BEGIN ([A-Z0-9 ]+)-----", data)
        if len(blocks) != 1:
            names = ", ".join(b.decode("ascii") for b in blocks)
            raise RequestError(f"the file holds {len(blocks)} PEM blocks ({names}); give exactly one certificate "
                               "request per file, so that it is clear which one is to be certified")
        if blocks[0] not in (b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"):
            raise RequestError(f"the file holds a PEM block of type {blocks[0].decode('ascii')!r}, not a "
                               "CERTIFICATE REQUEST; give the CSR (openssl req -new ... -out site.csr)")
    try:
        csr = x509.load_pem_x509_csr(data) if pem else x509.load_der_x509_csr(data)
    except x509.InvalidVersion as exc:
        # RFC 2986 4.1: version is 0 for this edition of PKCS#10.
        raise RequestError(f"the CSR's version field is {exc.parsed_version}; a PKCS#10 request has version 0 "
                           "(RFC 2986 4.1). Generate the CSR again with a standard tool (openssl req)") from None
    except ValueError:
        # The parser's own message names ASN.1 internals; what the user needs is which input was wrong.
        raise RequestError("the file is not a readable PKCS#10 certificate request (its DER structure is damaged "
                           "or it is another kind of file); give a PEM or DER CSR as openssl req writes it") from None
    try:
        public_key = csr.public_key()
    except UnsupportedAlgorithm:
        oid = _spki_algorithm(csr)
        raise RequestError(f"the CSR's public key uses the algorithm {oid}, which iranpki does not certify; "
                           "use an RSA key or an EC key on P-256 or P-384") from None
    except (ValueError, x509.UnsupportedGeneralNameType):
        raise RequestError("the CSR's public key is damaged and cannot be read; generate the CSR again") from None
    hash_alg = _csr_signature_hash(csr)
    if hash_alg in ("sha1", "md5", "md2", "md4"):
        raise RequestError(f"the CSR is signed with {hash_alg.upper()}, which iranpki does not accept for proof of "
                           "possession (CA/Browser Forum BR 7.1.3.2); sign it with SHA-256 or stronger "
                           "(openssl req -sha256)")
    try:
        valid = csr.is_signature_valid
    except Exception:  # noqa: BLE001 - an algorithm cryptography cannot check
        raise RequestError(f"the CSR's signature algorithm ({csr.signature_algorithm_oid.dotted_string}) cannot be "
                           "checked; sign it with RSA or ECDSA and SHA-256 or stronger") from None
    if not valid:
        raise RequestError(
            "the CSR's signature does not verify with its own public key: proof of possession failed. "
            "Generate the CSR again with the private key that belongs to the public key"
        )
    try:
        subject = [(ATTRIBUTE_NAMES.get(a.oid, a.oid.dotted_string), _text(a.value)) for a in csr.subject]
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(
            f"the CSR's subject holds a name that is not valid text ({problem(exc)}); names must be UTF-8 "
            "(UTF8String). Regenerate the CSR with UTF-8 strings (openssl req -utf8)"
        ) from None
    dns: list[str] = []
    ips: list[str] = []
    emails: list[str] = []
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    except (ValueError, x509.DuplicateExtension, UnicodeDecodeError) as exc:
        raise RequestError(f"the CSR's requested extensions cannot be read ({problem(exc)}); generate the CSR "
                           "again with a standard tool") from None
    if san is not None:
        dns = list(san.get_values_for_type(x509.DNSName))
        ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
        emails = list(san.get_values_for_type(x509.RFC822Name))
    return IssueRequest(subject=subject, public_key=public_key, dns=dns, ips=ips, emails=emails,
                        validity_days=validity_days)


def load_public_key(data: bytes) -> PublicKeyTypes:
    """A PEM or DER SubjectPublicKeyInfo (``openssl pkey -pubout``)."""
    if len(data) > MAX_KEY_FILE:
        raise RequestError(f"the public key file is {len(data)} bytes; at most {MAX_KEY_FILE} are accepted")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return serialization.load_pem_public_key(data)
        return serialization.load_der_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise RequestError(
            f"the file is not a public key ({problem(exc)}); give a PEM or DER SubjectPublicKeyInfo "
            "(openssl pkey -pubout)"
        ) from None


def build_request(*, csr: bytes | None = None, subject: str | None = None, public_key: bytes | None = None,
                  dns: list[str] | None = None, ips: list[str] | None = None, emails: list[str] | None = None,
                  validity_days: int | None = None) -> IssueRequest:
    """The request an operator (or a registration officer) gives: a CSR, whose subject ``subject``
    replaces when given, or a public key file with ``subject``; the names in ``dns``, ``ips`` and
    ``emails`` are added to those the CSR asks for."""
    from dataclasses import replace

    if (csr is None) == (public_key is None):
        raise RequestError("give either a CSR or a public key with subject fields, not both and not neither")
    if csr is not None:
        request = request_from_csr(csr, validity_days=validity_days)
        if subject:
            request = replace(request, subject=parse_subject(subject))
    else:
        request = IssueRequest(subject=parse_subject(subject or ""), public_key=load_public_key(public_key or b""),
                               validity_days=validity_days)
    return replace(request, dns=[*request.dns, *(dns or [])], ips=[*request.ips, *(ips or [])],
                   emails=[*request.emails, *(emails or [])])


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _spki_algorithm(csr: x509.CertificateSigningRequest) -> str:
    """The dotted OID of a CSR's key algorithm, read generically (RFC 2986 4.1: the third field of
    CertificationRequestInfo, its first field's first field), since no parser knows an unknown one."""
    from asn1crypto import core

    try:
        info = core.load(csr.public_bytes(serialization.Encoding.DER))[0]
        return str(info[2][0][0].dotted)
    except Exception:  # noqa: BLE001 - a name for a message only
        return "(unreadable)"


def _csr_signature_hash(csr: x509.CertificateSigningRequest) -> str | None:
    try:
        alg = csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    return alg.name if alg is not None else None


def _text(value: str | bytes) -> str:
    if isinstance(value, bytes):
        raise ValueError("a binary value where text is expected")
    return value


# ---- composing certificates -------------------------------------------------------------------

def _key_usage(names: tuple[str, ...]) -> x509.KeyUsage:
    flags = {
        "digital_signature": "digitalSignature", "content_commitment": "nonRepudiation",
        "key_encipherment": "keyEncipherment", "data_encipherment": "dataEncipherment",
        "key_agreement": "keyAgreement", "key_cert_sign": "keyCertSign", "crl_sign": "cRLSign",
    }
    return x509.KeyUsage(encipher_only=False, decipher_only=False,
                         **{arg: name in names for arg, name in flags.items()})


def _ski(public_key: PublicKeyTypes) -> x509.SubjectKeyIdentifier:
    # RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value.
    return x509.SubjectKeyIdentifier.from_public_key(public_key)  # type: ignore[arg-type]


def _profile_extensions(profile: Profile, issuer: IssuerFields, spec: KeySpec, level: int | None,
                        policy: CertificatePolicy, shard: int = 0) -> list[bytes]:
    """The extensions every certificate of ``profile`` from ``issuer`` carries (SKI and SAN aside)."""
    out: list[bytes] = []
    bc = profile.basic_constraints
    out.append(encode_extension(ExtensionOID.BASIC_CONSTRAINTS, bc.critical,
                          x509.BasicConstraints(ca=bc.ca, path_length=bc.path_length if bc.ca else None)))
    usages = profile.key_usage.for_key(spec.kind)
    out.append(encode_extension(ExtensionOID.KEY_USAGE, profile.key_usage.critical, _key_usage(usages)))
    if profile.extended_key_usage is not None:
        eku = profile.extended_key_usage
        out.append(encode_extension(ExtensionOID.EXTENDED_KEY_USAGE, eku.critical,
                              x509.ExtendedKeyUsage([EKUS[v] for v in eku.values])))
    if profile.authority_key_identifier and issuer.ski is not None:
        out.append(encode_extension(ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False,
                              x509.AuthorityKeyIdentifier(issuer.ski, None, None)))
    oids: list[str] = list(profile.policies.extra)
    if profile.policies.any_policy:
        oids.append("2.5.29.32.0")
    elif profile.policies.national and level is not None:
        oids.append(policy.level(level).policy_oid)
    if oids:
        out.append(encode_extension(ExtensionOID.CERTIFICATE_POLICIES, False, x509.CertificatePolicies(
            [x509.PolicyInformation(x509.ObjectIdentifier(o), None) for o in oids])))
    crl = fill_url(profile.urls.crl, issuer, shard)
    if crl:
        out.append(encode_extension(ExtensionOID.CRL_DISTRIBUTION_POINTS, False, x509.CRLDistributionPoints(
            [x509.DistributionPoint([x509.UniformResourceIdentifier(crl)], None, None, None)])))
    freshest = fill_url(profile.urls.freshest_crl, issuer, shard)
    if freshest:
        out.append(encode_extension(ExtensionOID.FRESHEST_CRL, False, x509.FreshestCRL(
            [x509.DistributionPoint([x509.UniformResourceIdentifier(freshest)], None, None, None)])))
    aia = []
    ocsp = fill_url(profile.urls.ocsp, issuer)
    if ocsp:
        aia.append(x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp)))
    ca_issuers = fill_url(profile.urls.ca_issuers, issuer)
    if ca_issuers:
        aia.append(x509.AccessDescription(x509.AuthorityInformationAccessOID.CA_ISSUERS,
                                          x509.UniformResourceIdentifier(ca_issuers)))
    if aia:
        out.append(encode_extension(ExtensionOID.AUTHORITY_INFORMATION_ACCESS, False, x509.AuthorityInformationAccess(aia)))
    if profile.ocsp_no_check:
        out.append(encode_extension(ExtensionOID.OCSP_NO_CHECK, False, x509.OCSPNoCheck()))
    return out


def _sans(dns: list[str], ips: list, emails: list[str]) -> x509.SubjectAlternativeName | None:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(i) for i in ips]
    names += [x509.RFC822Name(e) for e in emails]
    return x509.SubjectAlternativeName(names) if names else None


@lru_cache(maxsize=64)
def _algorithm_identifier(scheme: SignatureScheme, spec: KeySpec) -> bytes:
    return scheme.algorithm_identifier(spec)


def _compose(issuer: IssuerFields, signer: Signer, scheme: SignatureScheme, serial: int,
             not_before: datetime, not_after: datetime, subject_der: bytes, spki_der: bytes,
             extensions: list[bytes]) -> bytes:
    alg = _algorithm_identifier(scheme, signer.key_spec)
    tbs = der.sequence(
        der.context(0, der.integer(2)),  # version v3 (RFC 5280 4.1.2.1: extensions present)
        der.integer(serial),
        alg,
        issuer.name_der,
        der.sequence(der.time(not_before), der.time(not_after)),
        subject_der,
        spki_der,
        der.context(3, der.sequence(*extensions)),
    )
    signature = signer.sign_checked(tbs, scheme)
    return der.sequence(tbs, alg, der.bit_string(signature))


def _new_serial() -> int:
    # RFC 5280 4.1.2.2 and the CA/B Forum BR 7.1: positive, at most 20 octets, at least 64 bits
    # from a CSPRNG. 126 random bits under a fixed top bit keep every serial 16 octets long.
    return (1 << 126) | secrets.randbits(126)


@dataclass(frozen=True)
class _Plan:
    """A checked request: everything but the serial number and the signature."""

    profile: str
    subject_der: bytes
    subject_text: str
    spki: bytes
    extensions: list[bytes]
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    shard: int = 0
    publish: bool = False


class CertificateAuthority:
    """A CA of the store, with its signer: issues and revokes."""

    def __init__(self, record: CaRecord, signer: Signer, store: Store, *, clock: Clock | None = None,
                 policy: CertificatePolicy | None = None, scheme: SignatureScheme | None = None):
        self.record = record
        self.signer = signer
        self.store = store
        self.clock = clock or SystemClock()
        self.policy = policy or load_policy()
        self.certificate = x509.load_der_x509_certificate(record.certificate)
        ours = self.certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
        theirs = signer.public_key.public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        if ours != theirs:
            raise TokenError(
                f"the key {signer.reference} is not the key of CA {record.name!r} (public keys differ); "
                "give the key the CA was created with"
            )
        self.scheme = scheme or SignatureScheme.parse(record.signature)
        if self.scheme.padding == "pss" and signer.key_spec.kind != "rsa":
            raise IssuanceError(f"CA {record.name!r} is set to sign with {self.scheme}, which needs an RSA key")
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            ski = _ski(self.certificate.public_key()).digest
        self._issuer = IssuerFields(record.name, self.certificate.subject.public_bytes(), ski, record.level,
                               record.repository_url, record.ocsp_url, self.certificate.not_valid_after_utc,
                               record.crl_shards)
        # Keyed by the profile object (kept in the value, so its id is not reused): two profiles
        # of one name (a CA certificate's purpose changes the intermediate profile) never share.
        self._templates: dict[tuple[int, str, int], tuple[Profile, list[bytes]]] = {}

    @property
    def name(self) -> str:
        return self.record.name

    def _template(self, profile: Profile, spec: KeySpec, shard: int = 0) -> list[bytes]:
        key = (id(profile), spec.kind, shard)
        kept = self._templates.get(key)
        if kept is None or kept[0] is not profile:
            level = profile.level if profile.kind != "end-entity" else self.record.level
            kept = (profile, _profile_extensions(profile, self._issuer, spec, level, self.policy, shard))
            self._templates[key] = kept
        return kept[1]

    @cached_property
    def extended_key_usages(self) -> frozenset[str] | None:
        """The extended key usages of this CA's certificate, by the profiles' names; None when it
        has none (a root, or an intermediate made before CA purposes: it issues any profile).
        Read once: every issuance checks the profile against them."""
        return certificate_usages(self.certificate)

    @property
    def purpose(self) -> str | None:
        """The CP's CA purpose this CA's certificate is for (by its extended key usages), or None."""
        return ca_purpose(self.certificate, self.policy)

    def _check_purpose(self, profile: Profile) -> None:
        """An intermediate CA certificate's extended key usages limit what it issues (NSS, Windows,
        the CA/Browser Forum): every usage of the profile must be among them. OCSPSigning is the
        exception, for the OCSP signer certificate of the CA's own responder."""
        usages = self.extended_key_usages
        if usages is None or profile.kind != "end-entity" or profile.extended_key_usage is None:
            return
        missing = [u for u in profile.extended_key_usage.values if u != "OCSPSigning" and u not in usages]
        if not missing:
            return
        right = next((p for p in self.policy.ca_purposes if profile.name in p.issues), None)
        where = (f"issue it from a CA certificate of purpose {right.id!r} (iranpki ca create-intermediate "
                 f"--purpose {right.id})" if right else "issue it from a CA certificate whose purpose allows it")
        raise IssuanceError(
            f"CA {self.name!r} is for {self.purpose or 'other uses'} (extended key usage "
            f"{', '.join(sorted(usages))}); profile {profile.name!r} needs {', '.join(missing)}: {where}")

    def issue(self, profile: Profile | str, request: IssueRequest, *, actor: str = "iranpki",
              for_request: Callable[[CertificateRecord], RequestUpdate] | None = None) -> IssuedCertificate:
        """Issue a certificate of ``profile`` for ``request``; return it once it is stored.
        ``for_request`` gives the change of the RA request it is issued for, made in the same
        transaction as the certificate is recorded (see :mod:`iranpki.ra.worker`)."""
        if isinstance(profile, str):
            profile = load_profile(profile)
        if profile.kind != "end-entity":
            raise IssuanceError(
                f"profile {profile.name!r} is for {profile.kind} CAs; use create_root or create_intermediate "
                "(iranpki ca create-...), which record the CA with its certificate"
            )
        return self._issue(profile, request, actor=actor, subject_level=None, for_request=for_request)

    def issue_many(self, profile: Profile | str, requests: list[IssueRequest], *,
                   actor: str = "iranpki") -> list[IssuedCertificate]:
        """Issue a batch: every request is checked first (nothing is signed if one breaks the
        profile), then all are signed and stored in one transaction, and returned after it commits.

        One durable commit for the batch instead of one per certificate: with SQLite's
        ``synchronous=FULL`` a commit costs more than an RSA-2048 signature.
        """
        if isinstance(profile, str):
            profile = load_profile(profile)
        if profile.kind != "end-entity":
            raise IssuanceError(f"issue_many issues end-entity certificates; {profile.name!r} is a {profile.kind} profile")
        self._check_purpose(profile)
        plans = []
        for i, request in enumerate(requests):
            try:
                plans.append(self._check(profile, request, subject_level=None))
            except ProfileViolationError as exc:
                raise ProfileViolationError(
                    profile.name, [Violation(f"request {i}: {v.attribute}", v.value, v.rule) for v in exc.violations]
                ) from None
        for _ in range(_SERIAL_TRIES):
            issued = [self._make(plan) for plan in plans]
            try:
                self.store.add_certificates([(c.record, self._audit_event(c.record, actor)) for c in issued])
                return issued
            except DuplicateError:
                continue  # a colliding serial: nothing was stored or handed out; sign again
        raise IssuanceError(f"{_SERIAL_TRIES} random serial numbers in a row were taken; the random source is suspect")

    def _issue(self, profile: Profile, request: IssueRequest, *, actor: str, subject_level: int | None,
               for_request: Callable[[CertificateRecord], RequestUpdate] | None = None) -> IssuedCertificate:
        self._check_purpose(profile)
        plan = self._check(profile, request, subject_level)
        for _ in range(_SERIAL_TRIES):
            issued = self._make(plan)
            if profile.kind == "intermediate":
                return issued  # the caller stores it with its CA record, in one transaction
            try:
                self.store.add_certificate(issued.record, self._audit_event(issued.record, actor),
                                           request_update=for_request(issued.record) if for_request else None)
                return issued
            except DuplicateError:
                continue  # a colliding serial: the signed certificate was never handed out
        raise IssuanceError(f"{_SERIAL_TRIES} random serial numbers in a row were taken; the random source is suspect")

    def _audit_event(self, record: CertificateRecord, actor: str) -> AuditEvent:
        return AuditEvent("cert.issued", f"{record.serial:x}", actor, {
            "ca": self.name, "profile": record.profile, "subject": record.subject,
            "fingerprint": record.fingerprint, "not_after": record.not_after.isoformat()})

    def _check(self, profile: Profile, request: IssueRequest, subject_level: int | None) -> _Plan:
        """Check ``request`` against ``profile`` and the CP; collect every violation, then raise.
        A weak key is refused first, on its own: no profile change can make it sound."""
        check_public_key(request.public_key)
        violations: list[Violation] = []
        try:
            spec: KeySpec | None = key_spec_of(request.public_key)
        except Exception as exc:  # noqa: BLE001 - an unsupported key is one more violation
            violations.append(Violation("public key", type(request.public_key).__name__, str(exc)))
            spec = None
        if spec is not None:
            profile.check_key(spec, violations)
            level = subject_level or self.record.level
            if level is not None:
                lv = self.policy.level(level)
                if spec.kind == "rsa" and spec.size < lv.min_rsa_bits:
                    violations.append(Violation("public key", str(spec),
                                                f"assurance level {level} needs RSA of at least {lv.min_rsa_bits} bits"))
                if spec.kind == "ec" and spec.curve not in lv.ec_curves:
                    violations.append(Violation("public key", str(spec),
                                                f"assurance level {level} allows curves {', '.join(lv.ec_curves)}"))
        subject = profile.normalise_subject(request.subject, violations)
        req_dns, req_ips = list(request.dns), list(request.ips)
        for attr, value in subject:
            if attr.check == "san-name":  # a commonName that must repeat a SAN entry: make sure it does
                (req_ips if _is_ip(value) else req_dns).append(value)
        subject = [(attr, value) for attr, value in subject if attr.in_subject]
        dns, ips, emails = profile.check_sans(req_dns, req_ips, request.emails, violations)
        days = request.validity_days or profile.default_validity_days
        profile.check_validity(days, violations)
        level = subject_level or self.record.level
        cp_days = self.policy.max_validity_days(level, profile.policy_kind, profile.kind)
        # The profile's own limit is reported above; the CP's is news only when the profile allows more.
        if cp_days is not None and cp_days < days <= profile.max_validity_days:
            violations.append(Violation("validity", f"{days} days",
                                        f"the national CP allows {profile.name} certificates at assurance level "
                                        f"{level} at most {cp_days} days"))
        now = self.clock.now().replace(microsecond=0)
        not_before = utc(request.not_before).replace(microsecond=0) if request.not_before else now
        # RFC 5280 4.1.2.5: the validity is inclusive, so N days end one second before N*24h.
        not_after = not_before + timedelta(days=days) - timedelta(seconds=1)
        if self._issuer.not_after is not None and not_after > self._issuer.not_after:
            violations.append(Violation("validity", f"until {not_after.isoformat()}",
                                        f"ends after the issuing CA {self.name!r} expires "
                                        f"({self._issuer.not_after.isoformat()}); shorten it"))
        if violations:
            raise ProfileViolationError(profile.name, violations)
        assert spec is not None
        spki = request.public_key.public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        # The shard is fixed here, at issuance, and named in the certificate's CRL distribution
        # point; the CRL of that shard carries the same name in its issuingDistributionPoint.
        shard = secrets.randbelow(self.record.crl_shards) if self.record.crl_shards > 1 else 0
        extensions = list(self._template(profile, spec, shard))
        if profile.subject_key_identifier:
            extensions.append(encode_extension(ExtensionOID.SUBJECT_KEY_IDENTIFIER, False, _ski(request.public_key)))
        san = _sans(dns, ips, emails)
        if san is not None:
            extensions.append(encode_extension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, profile.san.critical, san))
        return _Plan(profile.name, name_der(subject), subject_text_of(subject), spki, extensions,
                     not_before, not_after, now, shard, request.publish)

    def _make(self, plan: _Plan) -> IssuedCertificate:
        """Sign ``plan`` under a fresh serial number."""
        serial = _new_serial()
        cert_der = _compose(self._issuer, self.signer, self.scheme, serial, plan.not_before, plan.not_after,
                            plan.subject_der, plan.spki, plan.extensions)
        return IssuedCertificate(CertificateRecord(
            serial=serial, ca=self.name, profile=plan.profile, subject=plan.subject_text,
            not_before=plan.not_before, not_after=plan.not_after, certificate=cert_der,
            fingerprint=hashlib.sha256(cert_der).hexdigest(), issued_at=plan.issued_at, shard=plan.shard,
            publish=plan.publish))

    def revoke(self, serial: int, reason: Reason | str, *, invalidity_date: datetime | None = None,
               actor: str = "iranpki") -> CertificateRecord:
        return revoke(self.store, serial, reason, invalidity_date=invalidity_date, actor=actor,
                      clock=self.clock, ca=self.name)


# ---- CA creation ------------------------------------------------------------------------------

def _check_shards(shards: int) -> None:
    if not isinstance(shards, int) or not 1 <= shards <= 4096:
        raise IssuanceError(f"CRL shards {shards!r} out of range; must be a whole number from 1 (one CRL) to 4096")


def create_root(store: Store, signer: Signer, name: str, subject: list[tuple[str, str]], *,
                repository_url: str, ocsp_url: str = "", profile: str | Profile = "root",
                validity_days: int | None = None, clock: Clock | None = None,
                scheme: SignatureScheme | None = None, actor: str = "iranpki",
                crl_shards: int = 1) -> CertificateAuthority:
    """Create a self-signed root CA and record it (``crl_shards``: CRL partitions, see iranpki.crl)."""
    check_ca_name(name)
    _check_shards(crl_shards)
    prof = load_profile(profile) if isinstance(profile, str) else profile
    if prof.kind != "root":
        raise IssuanceError(f"profile {prof.name!r} is for {prof.kind} certificates; a root needs a root profile")
    clock = clock or SystemClock()
    check_public_key(signer.public_key)
    violations: list[Violation] = []
    spec = signer.key_spec
    prof.check_key(spec, violations)
    subj = prof.normalise_subject(subject, violations)
    days = validity_days or prof.default_validity_days
    prof.check_validity(days, violations)
    cp_days = load_policy().root.max_validity_days
    if days > cp_days:
        violations.append(Violation("validity", f"{days} days", f"the national CP allows a root at most {cp_days} days"))
    if violations:
        raise ProfileViolationError(prof.name, violations)
    scheme = scheme or SignatureScheme(hash=prof.signature_hash or spec.default_hash)
    if scheme.padding == "pss" and spec.kind != "rsa":
        raise IssuanceError(f"RSA-PSS needs an RSA key; the key {signer.reference} is {spec}")
    subject_der = name_der(subj)
    ski = _ski(signer.public_key)
    issuer = IssuerFields(name, subject_der, ski.digest, None, repository_url, ocsp_url, None)
    extensions = _profile_extensions(prof, issuer, spec, None, load_policy())
    extensions.append(encode_extension(ExtensionOID.SUBJECT_KEY_IDENTIFIER, False, ski))
    now = clock.now().replace(microsecond=0)
    not_after = now + timedelta(days=days) - timedelta(seconds=1)
    spki = signer.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    cert_der = _compose(issuer, signer, scheme, _new_serial(), now, not_after, subject_der, spki, extensions)
    record = CaRecord(name=name, kind="root", level=None, parent=None, certificate=cert_der,
                      key_reference=str(signer.reference), repository_url=repository_url, ocsp_url=ocsp_url,
                      created_at=now, signature=str(scheme), crl_shards=crl_shards)
    cert = x509.load_der_x509_certificate(cert_der)
    store.add_ca(record, None, AuditEvent("ca.created", name, actor, {
        "kind": "root", "subject": subject_text(cert.subject), "serial": f"{cert.serial_number:x}",
        "key": str(signer.reference), "fingerprint": hashlib.sha256(cert_der).hexdigest(),
        "not_after": not_after.isoformat()}))
    return CertificateAuthority(record, signer, store, clock=clock, scheme=scheme)


def create_intermediate(parent: CertificateAuthority, signer: Signer, name: str, level: int,
                        subject: list[tuple[str, str]], *, repository_url: str | None = None,
                        ocsp_url: str | None = None, profile: str | Profile | None = None,
                        validity_days: int | None = None, scheme: SignatureScheme | None = None,
                        actor: str = "iranpki", crl_shards: int = 1,
                        purpose: str | None = None) -> CertificateAuthority:
    """Have ``parent`` certify a new intermediate CA of assurance ``level`` whose key is ``signer``.

    ``purpose`` is one of the CP's CA purposes (``tls``, ``signing``, ``code-signing``,
    ``time-stamping``): the CA certificate carries its extended key usages, and the CA issues
    only the profiles they allow (and its own OCSP signer). Without one the CA certificate has no
    extended key usage and issues any profile; NSS then refuses its code-signing certificates and
    the CA/Browser Forum's rules are not met, so the national hierarchy always names one
    (``iranpki ca create-intermediate`` requires it).

    ``scheme`` is how the new CA will sign (default: PKCS#1 v1.5 or ECDSA with the hash matched
    to its key); the parent signs the CA certificate with its own scheme.
    """
    check_ca_name(name)
    _check_shards(crl_shards)
    prof = load_profile(profile or f"intermediate-level{level}") if not isinstance(profile, Profile) else profile
    if prof.kind != "intermediate" or prof.level != level:
        raise IssuanceError(
            f"profile {prof.name!r} is not an intermediate profile of level {level}; use intermediate-level{level}"
        )
    if purpose is not None:
        usages = parent.policy.purpose(purpose).extended_key_usage
        prof = prof.model_copy(update={"extended_key_usage": ExtendedKeyUsage(values=usages)})
    scheme = scheme or SignatureScheme(hash=signer.key_spec.default_hash)
    if scheme.padding == "pss" and signer.key_spec.kind != "rsa":
        raise IssuanceError(f"RSA-PSS needs an RSA key; the key {signer.reference} is {signer.key_spec}")
    lv = parent.policy.level(level)
    if scheme.hash not in lv.keys.hashes:
        raise IssuanceError(f"assurance level {level} allows signatures with {', '.join(lv.keys.hashes)}; "
                            f"{scheme} uses {scheme.hash}. Choose one of those hashes for the CA's signatures")
    if not lv.software_keys_allowed and not parse_key_reference(signer.reference).on_token:
        raise IssuanceError(
            f"assurance level {level} requires the CA key on a lab-approved token or HSM; "
            f"{signer.reference} is a software key. Generate the key on a token (iranpki key generate --token ...)"
        )
    request = IssueRequest(subject=subject, public_key=signer.public_key, validity_days=validity_days)
    issued = parent._issue(prof, request, actor=actor, subject_level=level)
    now = parent.clock.now().replace(microsecond=0)
    record = CaRecord(name=name, kind="intermediate", level=level, parent=parent.name,
                      certificate=issued.record.certificate, key_reference=str(signer.reference),
                      repository_url=repository_url or parent.record.repository_url,
                      ocsp_url=ocsp_url if ocsp_url is not None else parent.record.ocsp_url, created_at=now,
                      signature=str(scheme), crl_shards=crl_shards)
    parent.store.add_ca(record, issued.record, AuditEvent("ca.created", name, actor, {
        "kind": "intermediate", "level": level, "parent": parent.name, "subject": issued.record.subject,
        "serial": f"{issued.record.serial:x}", "key": str(signer.reference),
        "fingerprint": issued.record.fingerprint}))
    return CertificateAuthority(record, signer, parent.store, clock=parent.clock, policy=parent.policy)


def cross_certify(issuer: CertificateAuthority, certificate: bytes, level: int, *, validity_days: int | None = None,
                  actor: str = "iranpki") -> IssuedCertificate:
    """A cross-certificate: ``issuer`` certifies another CA's name and key (its certificate
    ``certificate``, DER) as an intermediate CA of assurance ``level``, under the intermediate
    profile of that level. Recorded as the issuer's certificate, with its audit event; no CA
    record is made (the other CA's key is not ours)."""
    from .profiles import subject_text

    other = x509.load_der_x509_certificate(certificate)
    try:
        other.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        raise IssuanceError("the certificate to cross-certify is not a CA's (no basicConstraints)") from None
    if not other.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
        raise IssuanceError("the certificate to cross-certify is not a CA's (basicConstraints cA is false)")
    prof = load_profile(f"intermediate-level{level}")
    request = IssueRequest(subject=parse_subject(",".join(reversed(subject_text(other.subject).split(",")))),
                           public_key=other.public_key(), validity_days=validity_days)
    issued = issuer._issue(prof, request, actor=actor, subject_level=level)
    issuer.store.add_certificate(issued.record, issuer._audit_event(issued.record, actor))
    return issued


def certificate_usages(certificate: x509.Certificate) -> frozenset[str] | None:
    """A certificate's extended key usages by the profiles' names (dotted for others), or None
    when it has the extension not at all."""
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    names = {oid: name for name, oid in EKUS.items()}
    return frozenset(names.get(o, o.dotted_string) for o in eku)


def ca_purpose(certificate: x509.Certificate, policy: CertificatePolicy | None = None) -> str | None:
    """The CP's CA purpose a CA certificate is for (its extended key usages exactly those of the
    purpose), or None (no extended key usage: a root, or an intermediate made before purposes)."""
    usages = certificate_usages(certificate)
    if usages is None:
        return None
    found = (policy or load_policy()).purpose_of_usages(usages)
    return found.id if found else None


# ---- revocation -------------------------------------------------------------------------------

def revoke(store: Store, serial: int, reason: Reason | str, *, invalidity_date: datetime | None = None,
           actor: str = "iranpki", clock: Clock | None = None, ca: str | None = None,
           request_update: RequestUpdate | None = None) -> CertificateRecord:
    """Record the revocation of ``serial`` following RFC 5280 5.3.1.

    - A valid certificate may be revoked for any reason but removeFromCRL.
    - A certificate on hold (certificateHold) may be revoked for good (any final reason; the
      revocation date stays that of the hold) or released with removeFromCRL.
    - Any other revoked certificate stays revoked: a revocation is final.
    """
    if isinstance(reason, str):
        try:
            reason = Reason.parse(reason)
        except ValueError as exc:
            raise RevocationError(str(exc), serial=serial) from None
    clock = clock or SystemClock()
    now = clock.now().replace(microsecond=0)
    current = store.get_certificate(serial)
    if ca is not None and current.ca != ca:
        raise RevocationError(f"certificate {serial:x} was issued by CA {current.ca!r}, not {ca!r}", serial=serial)
    if invalidity_date is not None:
        invalidity_date = utc(invalidity_date).replace(microsecond=0)
        if invalidity_date > now:
            raise RevocationError(
                f"invalidity date {invalidity_date.isoformat()} is in the future; it is when the key was "
                "known or suspected compromised, so it cannot come after now", serial=serial)
    details: dict[str, object] = {"ca": current.ca, "reason": reason.name}
    if current.reason is None:
        if reason is Reason.removeFromCRL:
            raise RevocationError(
                f"certificate {serial:x} is not revoked; removeFromCRL only releases a certificate on hold",
                serial=serial)
        revoked_at = now
    elif current.reason is Reason.certificateHold:
        if reason is Reason.certificateHold:
            raise RevocationError(f"certificate {serial:x} is already on hold since {current.revoked_at}",
                                  serial=serial, reason=current.reason.name, revoked_at=current.revoked_at)
        if reason is Reason.removeFromCRL:
            details["released_from_hold_of"] = str(current.revoked_at)
            return store.set_revocation(serial, None, None, None, AuditEvent("cert.released", f"{serial:x}", actor, details),
                                        expect_reason=Reason.certificateHold, request_update=request_update)
        revoked_at = current.revoked_at
        details["was_on_hold_since"] = str(current.revoked_at)
    else:
        raise RevocationError(
            f"certificate {serial:x} was revoked on {current.revoked_at} for {current.reason.name}; "
            "a revocation is final (only a certificate on hold can change)",
            serial=serial, reason=current.reason.name, revoked_at=current.revoked_at)
    if invalidity_date is not None:
        details["invalidity_date"] = invalidity_date.isoformat()
    return store.set_revocation(serial, revoked_at, reason, invalidity_date,
                                AuditEvent("cert.revoked", f"{serial:x}", actor, details),
                                expect_reason=current.reason, request_update=request_update)

"""Relying-party validation of certificates: RFC 5280 section 6 path validation with revocation.

Implemented here, through pyhanko-certvalidator (which does the RFC 5280 6.1 algorithm):

- chain building from the certificate to a trust anchor (6.1 "prospective path"), with the
  intermediates the caller gives and, when asked (``fetch=True``), those named by the
  certificates' authorityInformationAccess caIssuers (RFC 5280 4.2.2.1);
- the basic checks of 6.1.3 (signature, validity at the validation time, name chaining,
  revocation status), 6.1.4 (basicConstraints, pathLenConstraint, keyCertSign) and the policy
  processing of 6.1.3 d-f / 6.1.5 g (RFC 9618 policy graphs), which carries the national
  assurance levels;
- revocation from CRLs (RFC 5280 6.3): the CRLs the caller gives, and when asked (``fetch``)
  those at the cRLDistributionPoints; and from OCSP (RFC 6960): responses the caller gives,
  and when asked (``ocsp``) the responder named in the authorityInformationAccess;
- the end entity's keyUsage (4.2.1.3) and extendedKeyUsage (4.2.1.12) against a purpose.

Trust anchors. A relying party in Iran trusts the national root, "Islamic Republic of Iran
Root CA-G3": it ships with iranpki (``iranpki/_data/anchors/``; SHA-256
AA:7F:F6:37:...:D5:56, checked by the tests) and is the default when ``trust_roots`` is not
given. Nothing else is trusted by default, in particular not the operating system's TLS store
(pyhanko-certvalidator's deprecated fallback): a national signature must chain to the national
root. A CA operator validates against the roots of their workspace
(:meth:`iranpki.workspace.Workspace.validate`), and tests pass their own.

Assurance levels. ``level=N`` asks for a certificate issued under the national policy of
level N *or a higher level*: a level-3 certificate was issued under stricter identity proofing
and key protection than level 1 asks for, so it satisfies a level-1 requirement; a level-1
certificate never satisfies level 3. This is done by RFC 5280 policy processing with
``user-initial-policy-set`` = the OIDs of levels N..4 and ``initial-explicit-policy`` set,
so an intermediate of a lower level breaks the chain's level even when the end entity claims
a higher one. The OIDs come from the national CP (``policies/national-cp.yaml``).

Revocation modes (``revocation=``): ``soft-fail`` (default, as pyhanko-certvalidator):
revocation data that is found is checked, and a revoked certificate always fails, but a
CRL or responder that cannot be reached is not an error; ``hard-fail``: a certificate that
names a CRL or OCSP responder fails unless its status is established; ``require``: every
certificate in the path must have its status established. The result says, per certificate,
where its status came from, so a soft-fail caller sees what was not checked.

Network. Nothing is fetched unless asked: ``ocsp=True`` asks the OCSP responders,
``fetch=True`` downloads CRLs and missing CA certificates. Validation at a past time (``at``)
works with the CRLs and OCSP responses of that time given by the caller; revocation data
issued after ``at`` (such as any fetched now) is not used for it unless ``retroactive=True``.

Every failure is a :class:`~iranpki.errors.CertificateValidationError` subclass, the ``error``
of the result (:class:`iranpki.verdict.Verdict`), whose message names the certificate, the value
that fails, what was expected and what to do.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache, partial
from importlib import resources
from typing import Literal

from asn1crypto import algos
from asn1crypto import crl as asn1_crl
from asn1crypto import keys as asn1_keys
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko_certvalidator import (
    CertificateValidator,
    PKIXValidationParams,
    ValidationContext,
)
from pyhanko_certvalidator import errors as pv_errors
from pyhanko_certvalidator.fetchers.api import (
    CertificateFetcher,
    CRLFetcher,
    Fetchers,
    OCSPFetcher,
)
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.policy_decl import (
    AlgorithmUsageConstraint,
    AlgorithmUsagePolicy,
    DisallowWeakAlgorithmsPolicy,
)

from .clock import utc
from .der import problem
from .errors import (
    BadSignatureError,
    CertificateExpiredError,
    CertificateNotYetValidError,
    CertificateRevokedError,
    CertificateValidationError,
    InvalidPathError,
    KeyUsageError,
    NameChainingError,
    NoTrustedPathError,
    PathLengthError,
    PolicyNotAcceptableError,
    RevocationUnknownError,
    ValidationInputError,
)
from .inputs import (
    CertificateInput,
    load_certificates,
    load_crls,
    one_certificate,
    to_asn1,
)
from .policy import CertificatePolicy, load_policy
from .profiles import subject_text
from .verdict import Verdict

__all__ = [
    "PURPOSES",
    "REVOCATION_MODES",
    "Purpose",
    "RevocationCheck",
    "ValidationResult",
    "async_validate_certificate",
    "national_anchors",
    "relying_party_roots",
    "translate_error",
    "validate_certificate",
]

RevocationMode = Literal["soft-fail", "hard-fail", "require"]
REVOCATION_MODES: tuple[str, ...] = ("soft-fail", "hard-fail", "require")



# ---- purposes ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Purpose:
    """What a certificate is used for, as key usage and extended key usage (RFC 5280 4.2.1.3, 4.2.1.12).

    ``key_usage``: any one of these bits suffices (empty: keyUsage is not checked).
    ``eku``: one of these purposes must be listed (empty: EKU is not checked). Without an EKU
    extension a certificate is not restricted (RFC 5280 4.2.1.12), unless ``eku_required``.
    """

    name: str
    description: str
    key_usage: frozenset[str] = frozenset()
    eku: frozenset[str] = frozenset()
    eku_required: bool = False


# Names are asn1crypto's (pyhanko-certvalidator's); ``_KU_TEXT``/``_EKU_TEXT`` give RFC 5280's.
PURPOSES: dict[str, Purpose] = {p.name: p for p in (
    Purpose("signature", "signing documents and data (PDF, CMS): digitalSignature or nonRepudiation",
            frozenset({"digital_signature", "non_repudiation"})),
    Purpose("server", "TLS server authentication: serverAuth",
            frozenset({"digital_signature", "key_encipherment", "key_agreement"}), frozenset({"server_auth"})),
    Purpose("client", "TLS client authentication (log-in to web systems): clientAuth",
            frozenset({"digital_signature", "key_agreement"}), frozenset({"client_auth"})),
    Purpose("email", "S/MIME: emailProtection",
            frozenset({"digital_signature", "non_repudiation", "key_encipherment", "key_agreement"}),
            frozenset({"email_protection"})),
    Purpose("code-signing", "code signing: codeSigning", frozenset({"digital_signature"}),
            frozenset({"code_signing"})),
    # RFC 3161 2.3: a TSA certificate must carry the timeStamping EKU (and only it, critical).
    Purpose("timestamping", "RFC 3161 time-stamping: timeStamping", frozenset({"digital_signature", "non_repudiation"}),
            frozenset({"time_stamping"}), eku_required=True),
    # RFC 6960 4.2.2.2: a delegated responder's certificate must carry id-kp-OCSPSigning.
    Purpose("ocsp-signing", "signing OCSP responses: OCSPSigning", frozenset({"digital_signature"}),
            frozenset({"ocsp_signing"}), eku_required=True),
    Purpose("any", "no key usage requirement"),
)}

_KU_TEXT = {"digital_signature": "digitalSignature", "non_repudiation": "nonRepudiation",
            "key_encipherment": "keyEncipherment", "data_encipherment": "dataEncipherment",
            "key_agreement": "keyAgreement", "key_cert_sign": "keyCertSign", "crl_sign": "cRLSign",
            "encipher_only": "encipherOnly", "decipher_only": "decipherOnly"}
_EKU_TEXT = {"server_auth": "serverAuth", "client_auth": "clientAuth", "code_signing": "codeSigning",
             "email_protection": "emailProtection", "time_stamping": "timeStamping",
             "ocsp_signing": "OCSPSigning", "any_extended_key_usage": "anyExtendedKeyUsage"}
_REASONS = {"unspecified": "unspecified", "key_compromise": "keyCompromise", "ca_compromise": "cACompromise",
            "affiliation_changed": "affiliationChanged", "superseded": "superseded",
            "cessation_of_operation": "cessationOfOperation", "certificate_hold": "certificateHold",
            "remove_from_crl": "removeFromCRL", "privilege_withdrawn": "privilegeWithdrawn",
            "aa_compromise": "aACompromise"}


# ---- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RevocationCheck:
    """How the status of one certificate of the path was established.

    ``source``: ``"OCSP"``, ``"CRL"``, or ``None`` when no revocation data was available (only
    possible in soft-fail mode, or for a certificate that names no CRL or responder).
    """

    subject: str
    source: Literal["OCSP", "CRL"] | None
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"subject": self.subject, "source": self.source, "detail": self.detail}


@dataclass(frozen=True)
class ValidationResult(Verdict):
    """The validation of a certificate: the path from the trust anchor down and what was
    checked, or, when it did not validate, ``error`` (a CertificateValidationError that says
    why, with the path as far as it was built) and an empty ``path``."""

    certificate: x509.Certificate
    path: tuple[x509.Certificate, ...]
    at: datetime
    purpose: str
    revocation_mode: str
    revocation: tuple[RevocationCheck, ...]
    policies: tuple[str, ...]
    level: int | None
    level_required: int | None
    warnings: tuple[str, ...] = field(default=())
    error: CertificateValidationError | None = None

    @property
    def subject(self) -> str:
        return subject_text(self.certificate.subject)

    @property
    def subjects(self) -> tuple[str, ...]:
        """Subjects of the path, trust anchor first."""
        return tuple(subject_text(c.subject) for c in self.path)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary (``iranpki verify --json``): the path and checks when valid; the
        error's name, message and data when not."""
        if self.error is not None:
            return {"valid": False, "error": type(self.error).__name__, "message": str(self.error),
                    **self.error.data()}
        return {"valid": True, "subject": self.subject, "serial": f"{self.certificate.serial_number:x}",
                "path": list(self.subjects), "at": self.at.isoformat(), "purpose": self.purpose,
                "level": self.level, "level_required": self.level_required, "policies": list(self.policies),
                "revocation_mode": self.revocation_mode, "revocation": [r.to_dict() for r in self.revocation],
                "warnings": list(self.warnings)}


# ---- inputs -----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _shipped_anchors() -> tuple[bytes, ...]:
    folder = resources.files("iranpki._data").joinpath("anchors")
    ders: list[bytes] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".pem"):
            ders.extend(c.public_bytes(Encoding.DER) for c in load_certificates(entry.read_bytes(), entry.name))
    return tuple(ders)


def relying_party_roots(explicit: Sequence[bytes] | None = None, workspace_roots: Sequence[bytes] = ()) -> list[bytes]:
    """The one trust rule of every command that validates (``verify``, ``tsa stamp``, ``sign``):
    roots given explicitly replace the default; the default is the national root(s) shipped with
    iranpki and the root CAs of the operator's workspace, when there is one."""
    if explicit is not None:
        return list(explicit)
    return list(dict.fromkeys([*_shipped_anchors(), *workspace_roots]))


def national_anchors() -> list[x509.Certificate]:
    """The national root certificates shipped with iranpki (today: Root CA-G3)."""
    return [x509.load_der_x509_certificate(d) for d in _shipped_anchors()]


# ---- fetchers: only what the caller allowed -----------------------------------------------------

class _NoOcsp(OCSPFetcher):
    """Stands in for the OCSP fetcher when only CRL fetching was allowed."""

    async def fetch(self, cert, authority):  # noqa: ANN001, ANN201 - pyhanko's signature
        raise pv_errors.OCSPFetchError("OCSP was not asked for (ocsp=True, iranpki verify --ocsp)")

    def fetched_responses(self) -> list[asn1_ocsp.OCSPResponse]:
        return []

    def fetched_responses_for_cert(self, cert) -> list[asn1_ocsp.OCSPResponse]:  # noqa: ANN001
        return []


class _NoCrl(CRLFetcher):
    """Stands in for the CRL fetcher when only OCSP was allowed."""

    async def fetch(self, cert, *, use_deltas=None):  # noqa: ANN001, ANN201
        raise pv_errors.CRLFetchError("CRL download was not asked for (fetch=True, iranpki verify --fetch)")

    def fetched_crls(self) -> list[asn1_crl.CertificateList]:
        return []

    def fetched_crls_for_cert(self, cert) -> list[asn1_crl.CertificateList]:  # noqa: ANN001
        raise KeyError("no CRL is fetched")


class _NoCerts(CertificateFetcher):
    """Stands in for the caIssuers fetcher when only OCSP was allowed."""

    async def fetch_cert_issuers(self, cert) -> AsyncGenerator[asn1_x509.Certificate, None]:  # noqa: ANN001
        return
        yield  # pragma: no cover - makes this an empty async generator

    async def fetch_crl_issuers(self, certificate_list) -> AsyncGenerator[asn1_x509.Certificate, None]:  # noqa: ANN001
        return
        yield  # pragma: no cover

    def fetched_certs(self) -> list[asn1_x509.Certificate]:
        return []


# ---- validation -------------------------------------------------------------------------------

def validate_certificate(cert: CertificateInput, *, purpose: str | None = None, at: datetime | None = None,
                         intermediates: Iterable[CertificateInput] = (),
                         trust_roots: Iterable[CertificateInput] | None = None,
                         crls: Iterable[bytes] = (), ocsp_responses: Iterable[bytes] = (),
                         ocsp: bool = False, fetch: bool = False, revocation: RevocationMode = "soft-fail",
                         level: int | None = None, policy: CertificatePolicy | None = None,
                         retroactive: bool = False, timeout: float = 10.0,
                         user_initial_policy_set: Iterable[str] | None = None,
                         initial_explicit_policy: bool = False, initial_policy_mapping_inhibit: bool = False,
                         initial_any_policy_inhibit: bool = False, algorithms: str = "national") -> ValidationResult:
    """Validate ``cert`` for ``purpose`` at ``at`` (default: now). The result always exists:
    ``ok`` with the path, or ``error`` saying why not (``raise_for_error()`` raises it).

    - ``purpose``: a key of :data:`PURPOSES` (default ``any``).
    - ``intermediates``: CA certificates that may complete the chain (any order, extras ignored).
    - ``trust_roots``: the trust anchors; default the national root(s) (:func:`national_anchors`).
    - ``crls``: DER or PEM CRLs; ``ocsp_responses``: DER OCSP responses (e.g. embedded in a PDF).
    - ``ocsp``: ask the OCSP responders named in the certificates; ``fetch``: download CRLs from
      their distribution points and missing CA certificates from caIssuers. Both off by default.
    - ``revocation``: ``soft-fail``, ``hard-fail`` or ``require`` (see the module's docstring).
    - ``level``: require a national policy of this assurance level or a higher one.
    - The inputs of RFC 5280 6.1.1 for policy processing, for a relying party with policies of
      its own (``level`` sets the first two from the national CP; give one or the other):
      ``user_initial_policy_set`` (policy OIDs acceptable to the relying party; default any
      policy), ``initial_explicit_policy`` (the path must be valid for one of them),
      ``initial_policy_mapping_inhibit`` (no policy mapping), ``initial_any_policy_inhibit``
      (anyPolicy in a certificate is not a match).
    - ``algorithms``: the algorithm policy, ``national`` (the CP's algorithms only: the default)
      or ``legacy`` (SHA-1 and DSA too); see :func:`algorithm_policy`.
    - ``retroactive``: with ``at`` in the past, also use revocation data issued after ``at``: a
      CRL of today then says whether the certificate had been revoked by ``at`` (what a signature
      made at ``at`` needs). Wrong for a certificate put on hold and released in between, whose
      hold today's CRL no longer shows; off by default.

    A certificate that does not validate gives a result whose ``error`` is a
    :class:`~iranpki.errors.CertificateValidationError` subclass; an input that cannot be used
    (not a certificate, an unknown purpose) raises :class:`~iranpki.errors.ValidationInputError`.
    Runs its own event loop; from async code call :func:`async_validate_certificate`.
    """
    return asyncio.run(async_validate_certificate(
        cert, purpose=purpose, at=at, intermediates=intermediates, trust_roots=trust_roots, crls=crls,
        ocsp_responses=ocsp_responses, ocsp=ocsp, fetch=fetch, revocation=revocation, level=level,
        policy=policy, retroactive=retroactive, timeout=timeout, user_initial_policy_set=user_initial_policy_set,
        initial_explicit_policy=initial_explicit_policy, initial_policy_mapping_inhibit=initial_policy_mapping_inhibit,
        initial_any_policy_inhibit=initial_any_policy_inhibit, algorithms=algorithms))


async def async_validate_certificate(cert: CertificateInput, *, purpose: str | None = None,
                                     at: datetime | None = None, intermediates: Iterable[CertificateInput] = (),
                                     trust_roots: Iterable[CertificateInput] | None = None,
                                     crls: Iterable[bytes] = (), ocsp_responses: Iterable[bytes] = (),
                                     ocsp: bool = False, fetch: bool = False,
                                     revocation: RevocationMode = "soft-fail", level: int | None = None,
                                     policy: CertificatePolicy | None = None, retroactive: bool = False,
                                     timeout: float = 10.0, user_initial_policy_set: Iterable[str] | None = None,
                                     initial_explicit_policy: bool = False,
                                     initial_policy_mapping_inhibit: bool = False,
                                     initial_any_policy_inhibit: bool = False,
                                     algorithms: str = "national") -> ValidationResult:
    """:func:`validate_certificate` for callers that run an event loop (pyHanko's validation is async)."""
    leaf = one_certificate(cert, "the certificate")
    use = PURPOSES.get(purpose or "any")
    if use is None:
        raise ValidationInputError(f"unknown purpose {purpose!r}; must be one of: {', '.join(PURPOSES)}")
    if revocation not in REVOCATION_MODES:
        raise ValidationInputError(f"unknown revocation mode {revocation!r}; must be one of: "
                                   f"{', '.join(REVOCATION_MODES)}")
    cp = policy or load_policy()
    if level is not None and level not in (1, 2, 3, 4):
        raise ValidationInputError(f"assurance level {level!r} does not exist; must be 1, 2, 3 or 4")
    try:
        moment = utc(at) if at is not None else None
    except ValueError as exc:
        raise ValidationInputError(str(exc)) from None
    roots = national_anchors() if trust_roots is None else load_certificates(trust_roots, "a trust root")
    if not roots:
        raise ValidationInputError("no trust roots given; give at least one root certificate, or leave "
                                   "trust_roots out to trust the national root")
    others = load_certificates(intermediates, "an intermediate certificate")
    crl_ders = [d for c in crls for d in load_crls(bytes(c))]
    ocsp_ders = [bytes(o) for o in ocsp_responses]
    for o in ocsp_ders:
        try:
            asn1_ocsp.OCSPResponse.load(o).native  # noqa: B018 - parse fully now, not mid-validation
        except ValueError as exc:
            raise ValidationInputError(f"an OCSP response given is not one ({problem(exc)}); give DER OCSP responses") from None

    backend = None
    fetchers: Fetchers | None = None
    if ocsp or fetch:
        from pyhanko_certvalidator.fetchers.aiohttp_fetchers import (
            AIOHttpFetcherBackend,
        )

        backend = AIOHttpFetcherBackend(per_request_timeout=timeout)
        real = backend.get_fetchers()
        fetchers = Fetchers(ocsp_fetcher=real.ocsp_fetcher if ocsp else _NoOcsp(),
                            crl_fetcher=real.crl_fetcher if fetch else _NoCrl(),
                            cert_fetcher=real.cert_fetcher if fetch else _NoCerts())
    params = _policy_inputs(cp, level, user_initial_policy_set, initial_explicit_policy,
                            initial_policy_mapping_inhibit, initial_any_policy_inhibit)
    algorithm_rules = algorithm_policy(algorithms, cp)
    try:
        # crls and ocsps are passed even when empty: pyhanko-certvalidator then lets hard-fail and
        # require run without data and fail per certificate, with a message that names it.
        context = ValidationContext(
            trust_roots=[to_asn1(r) for r in roots], other_certs=[to_asn1(c) for c in others], moment=moment,
            allow_fetching=fetchers is not None, fetchers=fetchers, crls=crl_ders, ocsps=ocsp_ders,
            revocation_mode=revocation, retroactive_revinfo=retroactive, algorithm_usage_policy=algorithm_rules)
        validator = CertificateValidator(to_asn1(leaf), validation_context=context, pkix_params=params)
        failed = partial(ValidationResult, certificate=leaf, path=(), at=moment or context.moment, purpose=use.name,
                         revocation_mode=revocation, revocation=(), policies=(), level=None, level_required=level)
        try:
            path = await validator.async_validate_path()
        except (pv_errors.PathError, pv_errors.ValidationError) as exc:
            return failed(error=translate_error(exc, leaf, at=context.moment, level=level, revocation=revocation,
                                                trust_roots=roots, intermediates=others, policy=cp,
                                                pkix_params=params))
        chain = tuple(one_certificate(c) for c in path.iter_certs(include_root=True))
        try:
            _check_usage(leaf, use, chain)
        except KeyUsageError as exc:
            return failed(error=exc)
        policies = _qualified(path)
        checks = _revocation_sources(path, context, fetchers, ocsp_ders)
        warnings = tuple(f"soft-fail: {e}" for e in context.soft_fail_exceptions)
        return ValidationResult(
            certificate=leaf, path=chain, at=moment or context.moment, purpose=use.name,
            revocation_mode=revocation, revocation=checks, policies=policies,
            level=_level_of(policies, cp), level_required=level, warnings=warnings)
    finally:
        if backend is not None:
            await backend.close()


_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")

#: The algorithm policies a relying party chooses from (``algorithms=``, ``--algorithms``).
ALGORITHM_POLICIES = ("national", "legacy")
_CURVE_NAMES = {"P-256": "secp256r1", "P-384": "secp384r1", "P-521": "secp521r1"}


class NationalAlgorithms(AlgorithmUsagePolicy):
    """The national CP's algorithms, allowed and nothing else (the default): RSA (PKCS#1 v1.5 or
    PSS) of at least the smallest size any level allows, ECDSA on the curves some level allows,
    and the hashes some level allows. SHA-1, DSA and other curves are refused, in signatures of
    certificates, CRLs and OCSP responses alike."""

    def __init__(self, cp: CertificatePolicy):
        self.hashes = frozenset(h for lv in cp.levels for h in lv.keys.hashes)
        self.min_rsa = min(lv.min_rsa_bits for lv in cp.levels)
        self.curves = frozenset(_CURVE_NAMES.get(c, c) for lv in cp.levels for c in lv.ec_curves)

    def digest_algorithm_allowed(self, algo: algos.DigestAlgorithm, moment: datetime | None) -> AlgorithmUsageConstraint:
        name = algo["algorithm"].native
        if name in self.hashes:
            return AlgorithmUsageConstraint(True)
        return AlgorithmUsageConstraint(False, failure_reason=(
            f"the national algorithm policy allows the hashes {', '.join(sorted(self.hashes))}, not {name}"))

    def signature_algorithm_allowed(self, algo: algos.SignedDigestAlgorithm, moment: datetime | None,
                                    public_key: asn1_keys.PublicKeyInfo | None) -> AlgorithmUsageConstraint:
        try:
            name = algo.signature_algo
        except ValueError:
            name = algo["algorithm"].native
        if name in ("rsassa_pkcs1v15", "rsassa_pss"):
            if public_key is not None and public_key.bit_size < self.min_rsa:
                return AlgorithmUsageConstraint(False, failure_reason=(
                    f"RSA-{public_key.bit_size} is below the national minimum of {self.min_rsa} bits"))
        elif name == "ecdsa":
            curve = public_key["algorithm"]["parameters"].chosen.native if public_key is not None else None
            if public_key is not None and curve not in self.curves:
                return AlgorithmUsageConstraint(False, failure_reason=(
                    f"ECDSA on {curve} is not among the national curves ({', '.join(sorted(self.curves))})"))
        else:
            return AlgorithmUsageConstraint(False, failure_reason=(
                f"{name} signatures are not in the national algorithm policy (RSA and ECDSA only)"))
        try:
            hash_name = algo.hash_algo
        except ValueError:
            return AlgorithmUsageConstraint(False, failure_reason=f"the hash of the {name} signature cannot be read")
        return self.digest_algorithm_allowed(algos.DigestAlgorithm({"algorithm": hash_name}), moment)


def algorithm_policy(name: str, cp: CertificatePolicy) -> AlgorithmUsagePolicy:
    """The algorithm policy ``name``: ``national`` (:class:`NationalAlgorithms`, the default) or
    ``legacy`` (what pyhanko-certvalidator can verify, SHA-1 and DSA and RSA/DSA from 1024 bits
    included, MD2 and MD5 excepted: for documents and test suites older than the national CP)."""
    if name == "national":
        return NationalAlgorithms(cp)
    if name == "legacy":
        return DisallowWeakAlgorithmsPolicy(weak_hash_algos=frozenset({"md2", "md5"}), rsa_key_size_threshold=1024,
                                            dsa_key_size_threshold=1024)
    raise ValidationInputError(f"unknown algorithm policy {name!r}; must be one of: {', '.join(ALGORITHM_POLICIES)}")


def _policy_inputs(cp: CertificatePolicy, level: int | None, user_set: Iterable[str] | None, explicit: bool,
                   mapping_inhibit: bool, any_inhibit: bool) -> PKIXValidationParams | None:
    """The RFC 5280 6.1.1 inputs (c) user-initial-policy-set, (e) initial-policy-mapping-inhibit,
    (f) initial-explicit-policy and (g) initial-any-policy-inhibit, from ``level`` (the national
    policies of that level or higher, explicitly) or as given; None for RFC 5280's defaults."""
    if level is not None and user_set is not None:
        raise ValidationInputError("give either an assurance level or a set of acceptable policies, not both: the "
                                   "level stands for the national policies of that level and above")
    oids: frozenset[str] | None = None
    if user_set is not None:
        given = [str(o).strip() for o in user_set]
        bad = [o for o in given if o != "2.5.29.32.0" and not _OID.match(o)]
        if bad or not given:
            raise ValidationInputError(f"policy {bad[0] if bad else '(none)'!r} is not an object identifier; give "
                                       "dotted OIDs such as 2.16.364.101.1.2 (2.5.29.32.0 for any policy)")
        # pyhanko-certvalidator names anyPolicy by its asn1crypto name.
        oids = frozenset("any_policy" if o == "2.5.29.32.0" else o for o in given)
    if level is not None:
        oids, explicit = frozenset(cp.level(n).policy_oid for n in range(level, 5)), True
    if oids is None and not (explicit or mapping_inhibit or any_inhibit):
        return None
    return PKIXValidationParams(user_initial_policy_set=oids or frozenset({"any_policy"}),
                                initial_explicit_policy=explicit, initial_policy_mapping_inhibit=mapping_inhibit,
                                initial_any_policy_inhibit=any_inhibit)


# ---- usage ------------------------------------------------------------------------------------

def _check_usage(leaf: x509.Certificate, use: Purpose, chain: tuple[x509.Certificate, ...]) -> None:
    cert = to_asn1(leaf)
    ku = set(cert.key_usage_value.native) if cert.key_usage_value is not None else None
    eku_value = cert.extended_key_usage_value
    eku = set(eku_value.native) if eku_value is not None else None
    has = tuple(sorted(_KU_TEXT.get(k, k) for k in ku or ())) + tuple(sorted(_EKU_TEXT.get(e, e) for e in eku or ()))
    shown = ", ".join(has) or "no key usage extensions"
    data = {"certificate": leaf.public_bytes(Encoding.DER), "subject": subject_text(leaf.subject),
            "path": tuple(subject_text(c.subject) for c in chain)}
    # RFC 5280 4.2.1.3: without keyUsage the key is not restricted; with it, one of the bits must be set.
    if use.key_usage and ku is not None and not ku & use.key_usage:
        want = " or ".join(sorted(_KU_TEXT[k] for k in use.key_usage))
        raise KeyUsageError(
            f"{_describe(leaf)}: key usage does not allow {use.name}: has {shown}; {use.name} needs keyUsage {want}. "
            "Use a certificate issued for this purpose (its profile decides the key usage)",
            purpose=use.name, has=has, **data)
    if use.eku:
        if eku is None:
            ok = not use.eku_required
        else:
            ok = bool(eku & use.eku) or ("any_extended_key_usage" in eku and not use.eku_required)
        if not ok:
            want = " or ".join(sorted(_EKU_TEXT[e] for e in use.eku))
            raise KeyUsageError(
                f"{_describe(leaf)}: extended key usage does not allow {use.name}: has {shown}; {use.name} needs "
                f"extendedKeyUsage {want}. Use a certificate issued for this purpose",
                purpose=use.name, has=has, **data)


# ---- policies ---------------------------------------------------------------------------------

def _qualified(path: ValidationPath) -> tuple[str, ...]:
    found = path.qualified_policies() or frozenset()
    return tuple(sorted({p.user_domain_policy_id for p in found} - {"any_policy"}))


def _level_of(policies: Sequence[str], cp: CertificatePolicy) -> int | None:
    levels = [lv.level for lv in cp.levels if lv.policy_oid in policies]
    return max(levels) if levels else None


def _cert_policies(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return []
    return [p.policy_identifier.dotted_string for p in ext]


# ---- failures ---------------------------------------------------------------------------------

def _describe(cert: x509.Certificate | asn1_x509.Certificate, ca: bool | None = None) -> str:
    if isinstance(cert, asn1_x509.Certificate):
        cert = one_certificate(cert)
    if ca is None:
        try:
            ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
    return f"{'CA certificate' if ca else 'certificate'} {subject_text(cert.subject)!r} (serial {cert.serial_number:x})"


def _when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _culprit(exc: pv_errors.PathValidationError) -> asn1_x509.Certificate | None:
    """The certificate of the path a pyhanko-certvalidator error is about."""
    path = exc.current_path
    certs = [c for c in path.iter_certs(include_root=True) if isinstance(c, asn1_x509.Certificate)]
    if isinstance(exc, pv_errors.ExpiredError):
        for c in reversed(certs):
            if c["tbs_certificate"]["validity"]["not_after"].native == exc.expired_dt:
                return c
    if isinstance(exc, pv_errors.NotYetValidError):
        for c in reversed(certs):
            if c["tbs_certificate"]["validity"]["not_before"].native == exc.valid_from:
                return c
    if exc.is_ee_cert and not exc.is_side_validation:
        leaf = path.leaf
        return leaf if isinstance(leaf, asn1_x509.Certificate) else None
    if "maximum path length" in str(exc):
        return _path_length_culprit(path)
    # Messages name a CA of the path by its position ("intermediate certificate 2").
    found = re.search(r"intermediate certificate (\d+)", str(exc))
    if found:
        try:
            cert = path[int(found.group(1))]
            return cert if isinstance(cert, asn1_x509.Certificate) else None
        except (IndexError, KeyError, TypeError):
            return None
    return None


def translate_error(exc: Exception, certificate: CertificateInput, *, at: datetime | None = None,
                    level: int | None = None, revocation: str = "soft-fail",
                    trust_roots: Iterable[CertificateInput] | None = None,
                    intermediates: Iterable[CertificateInput] = (),
                    policy: CertificatePolicy | None = None,
                    pkix_params: PKIXValidationParams | None = None) -> CertificateValidationError:
    """iranpki's error, with its message and data, for a pyhanko-certvalidator failure about
    ``certificate``: for callers that run pyHanko's validation themselves (signatures).

    ``at``, ``level`` and ``revocation`` are what the validation used; ``trust_roots`` and
    ``intermediates`` what it had, for the "no path" diagnosis (default: the national root).
    """
    leaf = one_certificate(certificate, "the certificate")
    moment = utc(at) if at is not None else datetime.now(timezone.utc)
    if isinstance(exc, (pv_errors.PathBuildingError, pv_errors.InvalidCertificateError)):
        roots = national_anchors() if trust_roots is None else load_certificates(trust_roots, "a trust root")
        return _no_path(leaf, roots, load_certificates(intermediates, "an intermediate certificate"), exc)
    if isinstance(exc, pv_errors.PathValidationError):
        return _translate(exc, leaf, level, policy or load_policy(), moment, revocation, pkix_params)
    return CertificateValidationError(f"{_describe(leaf)} does not validate: {exc}",
                                      certificate=leaf.public_bytes(Encoding.DER), subject=subject_text(leaf.subject))


def _path_length_culprit(path: ValidationPath) -> asn1_x509.Certificate | None:
    """The first CA certificate that a pathLenConstraint above it forbids (RFC 5280 6.1.4 l, m)."""
    remaining: int | None = None
    certs = [c for c in path.iter_certs(include_root=False) if isinstance(c, asn1_x509.Certificate)]
    for cert in certs[:-1]:  # the end entity is not counted
        if cert.self_issued:
            continue
        if remaining == 0:
            return cert
        remaining = None if remaining is None else remaining - 1
        if cert.max_path_length is not None:
            remaining = cert.max_path_length if remaining is None else min(remaining, cert.max_path_length)
    return None


def _translate(exc: pv_errors.PathValidationError, leaf: x509.Certificate, level: int | None,
               cp: CertificatePolicy, moment: datetime, mode: str,
               params: PKIXValidationParams | None = None) -> CertificateValidationError:
    culprit = _culprit(exc)
    bad = one_certificate(culprit) if culprit is not None else leaf
    who = _describe(bad)
    path = tuple(subject_text(one_certificate(c).subject)
                 for c in exc.original_path.iter_certs(include_root=True) if isinstance(c, asn1_x509.Certificate))
    data = {"certificate": bad.public_bytes(Encoding.DER), "subject": subject_text(bad.subject), "path": path}
    text = str(exc)
    if isinstance(exc, pv_errors.RevokedError):
        reason = _REASONS.get(exc.reason.native, str(exc.reason.native))
        source = "OCSP" if text.startswith("OCSP") else "CRL"
        if reason == "certificateHold":
            message = (f"{who} is on hold since {_when(exc.revocation_dt)} (revoked on {_when(exc.revocation_dt)} "
                       f"for reason certificateHold, according to its {source}); it must not be relied on "
                       "until its CA releases it. Check again later, or ask the CA")
        else:
            message = (f"{who} was revoked on {_when(exc.revocation_dt)} for reason {reason} (according to its "
                       f"{source}); it must not be relied on. The holder needs a new certificate")
        return CertificateRevokedError(message, revoked_at=exc.revocation_dt, reason=reason, source=source, **data)
    if isinstance(exc, pv_errors.ExpiredError):
        return CertificateExpiredError(
            f"{who} expired at {_when(exc.expired_dt)}; validation time {_when(moment)}. "
            "Renew it, or validate at a time it was valid (at= / --at) with that time's revocation data",
            not_after=exc.expired_dt, **data)
    if isinstance(exc, pv_errors.NotYetValidError):
        return CertificateNotYetValidError(
            f"{who} is not yet valid until {_when(exc.valid_from)}. Check the clock of this machine, or "
            "validate at a later time (at= / --at)", not_before=exc.valid_from, **data)
    if isinstance(exc, pv_errors.StaleRevinfoError):
        return RevocationUnknownError(
            f"the revocation status of {who} could not be established: the CRL or OCSP response for it is "
            f"out of date at the validation time {_when(moment)} ({_strip(text)}). Give revocation data "
            "current at that time (crls= / --crl), or fetch fresh data (ocsp=True, fetch=True / --ocsp, --fetch)",
            **data)
    if isinstance(exc, pv_errors.InsufficientRevinfoError):
        lenient = "" if mode == "soft-fail" else ", or accept an unknown status (revocation='soft-fail')"
        return RevocationUnknownError(
            f"the revocation status of {who} could not be established ({_strip(text)}). Give its CRL "
            f"(crls= / --crl) or allow fetching (ocsp=True, fetch=True / --ocsp, --fetch){lenient}",
            **data)
    if "could not be verified" in text and "signature" in text:
        return BadSignatureError(
            f"the signature of {who} does not verify with the key of its issuer {_issuer_text(bad)!r}: the "
            "certificate was altered or was not issued by that CA. Obtain the certificate again from its CA",
            **data)
    if "issuer name could not be matched" in text:
        return NameChainingError(
            f"the issuer name of {who}, {_issuer_text(bad)!r}, is not the subject name of the CA above it in "
            "the path (RFC 5280 6.1.3 a 4). The chain is broken; obtain the right CA certificate", **data)
    if "is not a CA" in text:
        return InvalidPathError(
            f"{who} stands in the path as the issuer of another certificate but is not a CA (its "
            "basicConstraints does not say cA, RFC 5280 6.1.4 k): an end entity cannot issue certificates. "
            "The chain is not valid; obtain the certificate from a licensed CA", **data)
    if "not allowed to sign certificates" in text:
        return InvalidPathError(
            f"{who} issued a certificate but its keyUsage lacks keyCertSign (RFC 5280 6.1.4 n). The chain is "
            "not valid; the CA certificate must be reissued with keyCertSign", **data)
    if "maximum path length" in text:
        return PathLengthError(
            f"{who} breaks a pathLenConstraint: a CA above it allows no further CAs below it (RFC 5280 "
            f"4.2.1.9). Its issuer {_issuer_text(bad)!r} was not licensed to create subordinate CAs", **data)
    if level is not None and "set of policies" in text:
        want = cp.level(level)
        held = _cert_policies(leaf)
        return PolicyNotAcceptableError(
            f"not issued under a national policy of assurance level {level}: policy not acceptable at "
            f"assurance level {level}. {_describe(leaf)} carries {', '.join(held) or 'no certificate policies'}; "
            f"level {level} needs {want.policy_oid} ({want.name}) or a higher level's policy on every "
            "certificate of the path. Use a certificate from a CA of that level, or ask for a lower level",
            level=level, policies=tuple(held), **data)
    if params is not None and "set of policies" in text:
        held = _cert_policies(leaf)
        wanted = sorted("2.5.29.32.0 (any policy)" if o == "any_policy" else o for o in params.user_initial_policy_set)
        asked = "; ".join(x for x in (
            f"acceptable policies {', '.join(wanted)}", "explicit policy" if params.initial_explicit_policy else "",
            "policy mapping inhibited" if params.initial_policy_mapping_inhibit else "",
            "anyPolicy inhibited" if params.initial_any_policy_inhibit else "") if x)
        return PolicyNotAcceptableError(
            f"the path of {_describe(leaf)} is not valid for the policies asked for ({asked}; RFC 5280 6.1.1): "
            f"{_strip(text)}. It carries {', '.join(held) or 'no certificate policies'}. Accept its policies, or use "
            "a certificate issued under one you accept", level=None, policies=tuple(held), **data)
    return InvalidPathError(f"the path of {_describe(leaf)} is not valid: {_strip(text)}", **data)


def _strip(text: str) -> str:
    return text.replace("The path could not be validated because ", "").rstrip(".")


def _issuer_text(cert: x509.Certificate) -> str:
    return subject_text(cert.issuer)


def _no_path(leaf: x509.Certificate, roots: list[x509.Certificate], others: list[x509.Certificate],
             exc: Exception) -> CertificateValidationError:
    data = {"certificate": leaf.public_bytes(Encoding.DER), "subject": subject_text(leaf.subject)}
    trusted = "; ".join(subject_text(r.subject) for r in roots)
    # A CA whose key signed the certificate (its SKI is the certificate's AKI) but whose subject is
    # not the certificate's issuer name: say so, instead of "no path" (PKITS 4.3.1).
    aki = _aki(leaf)
    if aki is not None:
        for ca in [*others, *roots]:
            if _ski(ca) == aki and ca.subject != leaf.issuer:
                return NameChainingError(
                    f"the issuer name of {_describe(leaf)}, {_issuer_text(leaf)!r}, is not the subject name "
                    f"{subject_text(ca.subject)!r} of the CA whose key identifier it names (RFC 5280 6.1.3 a 4). "
                    "The chain is broken; obtain the right CA certificate", **data)
    if leaf.issuer == leaf.subject:
        return NoTrustedPathError(
            f"no path to a trusted root: {_describe(leaf)} is self-signed and is not a trusted root "
            f"(trusted: {trusted}). Trust it explicitly (trust_roots= / --trust) only if you know it is right",
            **data)
    return NoTrustedPathError(
        f"no path to a trusted root from {_describe(leaf)}: no certificate of its issuer "
        f"{_issuer_text(leaf)!r} leads to a trusted root (trusted: {trusted}). Give the issuing CA "
        "certificates (intermediates= / --chain), allow fetching them (fetch=True / --fetch), or trust the "
        "right root (trust_roots= / --trust)", **data)


def _aki(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


# ---- revocation sources -----------------------------------------------------------------------

def _revocation_sources(path: ValidationPath, context: ValidationContext, fetchers: Fetchers | None,
                        ocsp_ders: list[bytes]) -> tuple[RevocationCheck, ...]:
    """For each certificate below the anchor, where its status came from.

    pyhanko-certvalidator asks OCSP first when the certificate names a responder, and reads CRLs
    only when OCSP did not answer; a path that validated therefore took its status from the first
    of these that holds data for the certificate.
    """
    given = [asn1_ocsp.OCSPResponse.load(o) for o in ocsp_ders]
    crls = [c.crl_data for c in context.revinfo_manager.currently_available_crls()]
    out: list[RevocationCheck] = []
    for cert in path.iter_certs(include_root=False):
        if not isinstance(cert, asn1_x509.Certificate):
            continue
        subject = subject_text(one_certificate(cert).subject)
        if cert.ocsp_no_check_value is not None:
            out.append(RevocationCheck(subject, None, "not checked: id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1)"))
            continue
        fetched = list(fetchers.ocsp_fetcher.fetched_responses_for_cert(cert)) if fetchers else []
        if fetched or any(_ocsp_covers(r, cert) for r in given):
            urls = ", ".join(cert.ocsp_urls) if fetched else "given response"
            out.append(RevocationCheck(subject, "OCSP", f"good ({urls})"))
            continue
        if any(c["tbs_cert_list"]["issuer"] == cert.issuer for c in crls):
            out.append(RevocationCheck(subject, "CRL", "not listed on the CRL of its issuer"))
            continue
        declared = bool(cert.ocsp_urls or cert.crl_distribution_points)
        out.append(RevocationCheck(subject, None, "not checked: no CRL or OCSP response available" if declared
                                   else "not checked: names no CRL or OCSP responder"))
    return tuple(out)


def _ocsp_covers(response: asn1_ocsp.OCSPResponse, cert: asn1_x509.Certificate) -> bool:
    try:
        basic = response["response_bytes"]["response"].parsed
        singles = basic["tbs_response_data"]["responses"]
    except (KeyError, ValueError, TypeError):
        return False
    return any(s["cert_id"]["serial_number"].native == cert.serial_number for s in singles)

"""The national Certificate Policy as data (``policies/national-cp.yaml``).

One validated model that every part of iranpki reads its rules from:

- issuance (:mod:`iranpki.ca`): the policy OID of each assurance level, the keys it allows (type,
  size, where the key lives) and the longest validity of each kind of certificate;
- the CRL, OCSP and time-stamp services: nextUpdate, publication delay, OCSP freshness;
- the CPS compliance checker (:mod:`iranpki.compliance`): everything above, plus identity
  proofing, revocation delays, audit and archive periods;
- ``iranpki cps render``, which writes the CP out as an RFC 3647 document.

The file names the source of every value; :func:`load_policy` rejects unknown keys and
inconsistent values with the field that is wrong.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError

__all__ = [
    "AssuranceLevel", "CertificatePolicy", "CrlPolicy", "KeyRules", "LevelStatus", "OcspPolicy", "Method",
    "KeyRecovery", "RecordRules", "RootRules", "StatusServices", "TsaPolicy", "CERTIFICATE_KINDS", "load_policy",
]

_OID_PATTERN = r"^[0-2](\.(0|[1-9][0-9]*))+$"

#: The kinds of certificate the CP limits, by the name of the profile that issues them.
CERTIFICATE_KINDS = ("intermediate", "personal-signature", "organisational-seal", "ssl-server", "smime",
                     "code-signing", "tsa", "ocsp-signer", "ra-officer")
Hash = Literal["sha256", "sha384", "sha512"]
Curve = Literal["P-256", "P-384"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Method(_Frozen):
    """An identity-proofing method or a key storage, ranked from the weakest (1) up."""

    id: str = Field(pattern=r"^[a-z0-9-]+$")
    rank: int = Field(ge=1)
    text: str
    #: How a CPS says it, lower case; the compliance checker looks for these words.
    phrases: tuple[str, ...] = Field(min_length=1)


class KeyRules(_Frozen):
    min_rsa_bits: int = Field(ge=2048)
    ec_curves: tuple[Curve, ...] = Field(min_length=1)
    hashes: tuple[Hash, ...] = Field(min_length=1, description="signature hash algorithms allowed")
    storage: str = Field(description="the least protected key storage allowed (an id of key_storages)")


class LevelStatus(_Frozen):
    """How fresh status information must be for certificates of a level (RFC 3647 4.9.5-4.9.10)."""

    crl_next_update_hours: int = Field(ge=1, le=8784, description="nextUpdate - thisUpdate of a complete CRL")
    crl_publish_within_hours: int = Field(ge=1, description="a new CRL at most this long after a revocation")
    revocation_processing_hours: int = Field(ge=1, description="a verified revocation request is acted on within")
    ocsp_validity_hours: int = Field(ge=1, le=240, description="nextUpdate - thisUpdate of an OCSP response")


class RecordRules(_Frozen):
    """Records the CA keeps and how often it is audited (RFC 3647 5.4.3, 5.5.2, 8.1)."""

    audit_log_retention_years: int = Field(ge=1)
    archive_retention_years: int = Field(ge=1)
    compliance_audit_months: int = Field(ge=1, le=36)


class AssuranceLevel(_Frozen):
    level: int = Field(ge=1, le=4)
    name: str
    policy_oid: str = Field(pattern=_OID_PATTERN)
    keys: KeyRules
    identity_proofing: str = Field(description="the weakest identity proofing accepted (an id of identity_proofing_methods)")
    max_validity_days: dict[str, int]
    status: LevelStatus
    records: RecordRules
    source: str = Field(description="where the values of this level come from")

    @field_validator("max_validity_days")
    @classmethod
    def _kinds(cls, v: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(v) - set(CERTIFICATE_KINDS))
        missing = [k for k in CERTIFICATE_KINDS if k not in v]
        if unknown or missing:
            raise ValueError(f"max_validity_days must give each of {', '.join(CERTIFICATE_KINDS)} once"
                             + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                             + (f"; missing: {', '.join(missing)}" if missing else ""))
        if any(d < 1 for d in v.values()):
            raise ValueError("max_validity_days values must be at least 1 day")
        return v

    # The names issuance used before the CP grew; kept because they read well at the call site.
    @property
    def min_rsa_bits(self) -> int:
        return self.keys.min_rsa_bits

    @property
    def ec_curves(self) -> tuple[str, ...]:
        return self.keys.ec_curves

    @property
    def software_keys_allowed(self) -> bool:
        return self.keys.storage == "software"


class RootRules(_Frozen):
    max_validity_days: int = Field(ge=1, le=36525)
    crl_next_update_hours: int = Field(ge=1, le=8784)
    source: str


class CrlPolicy(_Frozen):
    """Delta CRLs (RFC 5280 5.2.4); complete CRLs take nextUpdate from their CA's level."""

    delta_next_update_hours: int = Field(ge=1, le=8784)
    source: str


class OcspPolicy(_Frozen):
    """How the OCSP responder runs (RFC 5019 / RFC 9919 section 4, CA/B Forum BR 4.9.10); the
    validity of a response comes from the level of the CA it speaks for."""

    refresh_before_hours: int = Field(ge=0, description="re-sign a pre-produced response this long before nextUpdate")
    sign_on_demand: bool = Field(description="sign responses on request (nonces, several certificates)")
    delegated_responder_days: int = Field(ge=1, le=366)
    renew_responder_before_days: int = Field(ge=0)
    #: A responder answering from a copy of the store (a PostgreSQL standby) never says "good" or
    #: "on hold" from a copy older than this: past it, it answers tryLater (a revocation it holds
    #: it still answers, since that never changes back).
    max_source_lag_seconds: int = Field(default=60, ge=1, le=86400)
    source: str

    @model_validator(mode="after")
    def _renew_inside(self) -> OcspPolicy:
        if self.renew_responder_before_days >= self.delegated_responder_days:
            raise ValueError("ocsp.renew_responder_before_days must be shorter than delegated_responder_days")
        return self


class TsaPolicy(_Frozen):
    """The national time-stamping policy (RFC 3161 2.4.1 TSAPolicyId, accuracy, hashes)."""

    policy_oid: str = Field(pattern=_OID_PATTERN)
    accuracy_ms: int = Field(ge=1, le=60000, description="accuracy stated in every token (RFC 3161 2.4.2)")
    hashes: tuple[Hash, ...] = Field(min_length=1)
    source: str


class StatusServices(_Frozen):
    crl: CrlPolicy
    ocsp: OcspPolicy
    tsa: TsaPolicy


# The extended key usages a CA certificate may carry, by the names the profiles use (OCSPSigning
# is never one: a CA certificate with it could answer OCSP for its parent's certificates).
CA_EXTENDED_KEY_USAGES = ("serverAuth", "clientAuth", "codeSigning", "emailProtection", "timeStamping")


class CaPurpose(_Frozen):
    """What one kind of intermediate CA certificate is for: the extended key usages it carries
    (a constraint on what it issues, in NSS, Windows and the CA/Browser Forum's rules) and the
    end-entity profiles it issues. Every intermediate CA certificate is of exactly one purpose."""

    id: str = Field(pattern=r"^[a-z][a-z-]*$")
    text: str
    extended_key_usage: tuple[str, ...] = Field(min_length=1)
    issues: tuple[str, ...] = Field(min_length=1)

    @field_validator("extended_key_usage")
    @classmethod
    def _ca_usages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [u for u in v if u not in CA_EXTENDED_KEY_USAGES]
        if bad:
            raise ValueError(f"extended key usage {bad[0]!r} is not one a CA certificate carries here; must be among "
                             f"{', '.join(CA_EXTENDED_KEY_USAGES)}")
        return v


class KeyRecovery(_Frozen):
    """Key escrow and recovery (RFC 3647 4.12): the profiles whose keys the CA archives when the
    RA makes them, and what a recovery takes."""

    profiles: tuple[str, ...] = Field(min_length=1, description="encryption-only profiles whose keys are archived")
    approvals: int = Field(ge=2, le=4, description="officers who approve a recovery, besides the one who proofed")
    proofing: str = Field(description="the weakest identity proofing a recovery accepts (an id of identity_proofing_methods)")
    text: str
    source: str


class CertificatePolicy(_Frozen):
    name: str
    version: str
    oid_arc: str = Field(pattern=_OID_PATTERN)
    oid_source: str
    root: RootRules
    identity_proofing_methods: tuple[Method, ...] = Field(min_length=1)
    key_storages: tuple[Method, ...] = Field(min_length=1)
    levels: tuple[AssuranceLevel, ...]
    status: StatusServices
    ca_purposes: tuple[CaPurpose, ...] = Field(min_length=1)
    #: None: the CA archives no subscriber key.
    key_recovery: KeyRecovery | None = None

    @field_validator("levels")
    @classmethod
    def _four_levels(cls, v: tuple[AssuranceLevel, ...]) -> tuple[AssuranceLevel, ...]:
        if sorted(lv.level for lv in v) != [1, 2, 3, 4]:
            raise ValueError("the CP must define assurance levels 1, 2, 3 and 4, each once")
        return tuple(sorted(v, key=lambda lv: lv.level))

    @model_validator(mode="after")
    def _references(self) -> CertificatePolicy:
        ids = [p.id for p in self.ca_purposes]
        if len(set(ids)) != len(ids) or len({frozenset(p.extended_key_usage) for p in self.ca_purposes}) != len(ids):
            raise ValueError("ca_purposes: each purpose needs an id and a set of extended key usages of its own")
        issued = [name for p in self.ca_purposes for name in p.issues]
        if len(set(issued)) != len(issued):
            raise ValueError("ca_purposes: a profile is issued under one purpose only")
        for what, methods in (("identity_proofing_methods", self.identity_proofing_methods),
                              ("key_storages", self.key_storages)):
            ids = [m.id for m in methods]
            if len(set(ids)) != len(ids) or len({m.rank for m in methods}) != len(ids):
                raise ValueError(f"{what}: ids and ranks must be unique")
        proofing = {m.id for m in self.identity_proofing_methods}
        storages = {m.id for m in self.key_storages}
        oids = [lv.policy_oid for lv in self.levels]
        if len(set(oids)) != len(oids):
            raise ValueError("each level needs a policy_oid of its own")
        if self.key_recovery is not None:
            unknown = [p for p in self.key_recovery.profiles if p not in issued]
            if unknown:
                raise ValueError(f"key_recovery names the profile {unknown[0]!r}, which no CA purpose issues")
            if self.key_recovery.proofing not in proofing:
                raise ValueError(f"key_recovery: proofing {self.key_recovery.proofing!r} is not one of "
                                 f"{', '.join(sorted(proofing))}")
        for lv in self.levels:
            if lv.identity_proofing not in proofing:
                raise ValueError(f"level {lv.level}: identity_proofing {lv.identity_proofing!r} is not one of "
                                 f"{', '.join(sorted(proofing))}")
            if lv.keys.storage not in storages:
                raise ValueError(f"level {lv.level}: keys.storage {lv.keys.storage!r} is not one of "
                                 f"{', '.join(sorted(storages))}")
            if self.status.ocsp.refresh_before_hours >= lv.status.ocsp_validity_hours:
                raise ValueError(f"status.ocsp.refresh_before_hours must be shorter than level {lv.level}'s "
                                 "status.ocsp_validity_hours")
        return self

    def purpose(self, purpose_id: str) -> CaPurpose:
        """The CA purpose ``purpose_id``; ConfigError naming the choices when there is none."""
        for p in self.ca_purposes:
            if p.id == purpose_id:
                return p
        raise ConfigError(f"CA purpose {purpose_id!r} is not one the CP defines; must be one of "
                          f"{', '.join(p.id for p in self.ca_purposes)}")

    def purpose_of_usages(self, usages: frozenset[str]) -> CaPurpose | None:
        """The purpose whose extended key usages are exactly ``usages``, or None."""
        return next((p for p in self.ca_purposes if frozenset(p.extended_key_usage) == usages), None)

    def level(self, n: int) -> AssuranceLevel:
        for lv in self.levels:
            if lv.level == n:
                return lv
        raise ConfigError(f"assurance level {n!r} does not exist; must be 1, 2, 3 or 4")

    def level_of_oid(self, oid: str) -> AssuranceLevel | None:
        for lv in self.levels:
            if lv.policy_oid == oid:
                return lv
        return None

    def max_validity_days(self, level: int | None, profile_name: str, profile_kind: str) -> int | None:
        """The longest validity the CP allows a certificate of this profile, or None when the CP
        does not limit it (a profile of the operator's own, outside the CP's kinds)."""
        if profile_kind == "root":
            return self.root.max_validity_days
        if level is None:
            return None
        kind = "intermediate" if profile_kind == "intermediate" else profile_name
        return self.level(level).max_validity_days.get(kind)

    def identity_method(self, method_id: str) -> Method:
        return next(m for m in self.identity_proofing_methods if m.id == method_id)

    def key_storage(self, storage_id: str) -> Method:
        return next(m for m in self.key_storages if m.id == storage_id)

    def crl_next_update_hours(self, ca_kind: str, level: int | None) -> int:
        """nextUpdate - thisUpdate of a complete CRL of a root, or of a CA of ``level``."""
        if ca_kind == "root" or level is None:
            return self.root.crl_next_update_hours
        return self.level(level).status.crl_next_update_hours

    def ocsp_validity_hours(self, level: int | None) -> int:
        """How long an OCSP response about a certificate of a CA of ``level`` is valid (the
        tightest level when the CA has none: a root speaks for intermediates of every level)."""
        if level is None:
            return min(lv.status.ocsp_validity_hours for lv in self.levels)
        return self.level(level).status.ocsp_validity_hours


@lru_cache(maxsize=4)
def load_policy(path: str | None = None) -> CertificatePolicy:
    """Load the CP from ``path``, or the one shipped with iranpki."""
    return load_rules_file(CertificatePolicy, path, "national-cp.yaml", "certificate policy")


M = TypeVar("M", bound=BaseModel)


def load_rules_file(model: type[M], path: str | None, shipped: str, what: str) -> M:
    """Rules as data: the YAML file at ``path``, or ``policies/<shipped>`` shipped with iranpki,
    validated into ``model`` (frozen, unknown keys refused); a ConfigError naming the file and
    ``what`` it should be when it cannot be read or is not valid."""
    if path is None:
        text = resources.files("iranpki._data").joinpath("policies", shipped).read_text("utf-8")
        where = f"the {what} shipped with iranpki"
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}; give the path of a YAML file such "
                              f"as policies/{shipped}") from None
        where = path
    try:
        return model.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as exc:
        raise ConfigError(f"{where} is not a valid {what}:\n{exc}") from None

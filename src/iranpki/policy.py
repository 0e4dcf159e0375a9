"""The national Certificate Policy as data (``policies/national-cp.yaml``).

This module loads the part of the CP that issuance needs today: the policy OID and the key
rules of each assurance level. A later issue extends the model (validity, CRL and OCSP
intervals, identity proofing) and renders the CP as an RFC 3647 document.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

__all__ = ["AssuranceLevel", "CertificatePolicy", "CrlPolicy", "OcspPolicy", "StatusServices", "TsaPolicy", "load_policy"]

_OID_PATTERN = r"^[0-2](\.(0|[1-9][0-9]*))+$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AssuranceLevel(_Frozen):
    level: int = Field(ge=1, le=4)
    name: str
    policy_oid: str = Field(pattern=_OID_PATTERN)
    min_rsa_bits: int = Field(ge=2048)
    ec_curves: tuple[Literal["P-256", "P-384"], ...]
    software_keys_allowed: bool
    source: str = Field(description="where the values of this level come from")


class CrlPolicy(_Frozen):
    """How long CRLs are valid (nextUpdate - thisUpdate, RFC 5280 5.1.2.5) and how soon one follows a revocation."""

    root_next_update_hours: int = Field(ge=1, le=8784)
    ca_next_update_hours: int = Field(ge=1, le=8784)
    delta_next_update_hours: int = Field(ge=1, le=8784)
    publish_within_hours: int = Field(ge=1, description="a new CRL at most this long after a revocation")
    source: str


class OcspPolicy(_Frozen):
    """Freshness of OCSP responses (RFC 5019 / RFC 9919 section 4, CA/B Forum BR 4.9.10)."""

    validity_hours: int = Field(ge=1, le=240)
    refresh_before_hours: int = Field(ge=0, description="re-sign a pre-produced response this long before nextUpdate")
    sign_on_demand: bool = Field(description="sign responses on request (nonces, several certificates)")
    delegated_responder_days: int = Field(ge=1, le=366)
    renew_responder_before_days: int = Field(ge=0)
    source: str

    @model_validator(mode="after")
    def _refresh_inside(self) -> OcspPolicy:
        if self.refresh_before_hours >= self.validity_hours:
            raise ValueError("ocsp.refresh_before_hours must be shorter than ocsp.validity_hours")
        if self.renew_responder_before_days >= self.delegated_responder_days:
            raise ValueError("ocsp.renew_responder_before_days must be shorter than delegated_responder_days")
        return self


class TsaPolicy(_Frozen):
    """The national time-stamping policy (RFC 3161 2.4.1 TSAPolicyId, accuracy, hashes)."""

    policy_oid: str = Field(pattern=_OID_PATTERN)
    accuracy_ms: int = Field(ge=1, le=60000, description="accuracy stated in every token (RFC 3161 2.4.2)")
    hashes: tuple[Literal["sha256", "sha384", "sha512"], ...] = Field(min_length=1)
    source: str


class StatusServices(_Frozen):
    crl: CrlPolicy
    ocsp: OcspPolicy
    tsa: TsaPolicy


class CertificatePolicy(_Frozen):
    name: str
    version: str
    oid_arc: str = Field(pattern=_OID_PATTERN)
    oid_source: str
    levels: tuple[AssuranceLevel, ...]
    status: StatusServices

    @field_validator("levels")
    @classmethod
    def _four_levels(cls, v: tuple[AssuranceLevel, ...]) -> tuple[AssuranceLevel, ...]:
        if sorted(lv.level for lv in v) != [1, 2, 3, 4]:
            raise ValueError("the CP must define assurance levels 1, 2, 3 and 4, each once")
        return v

    def level(self, n: int) -> AssuranceLevel:
        for lv in self.levels:
            if lv.level == n:
                return lv
        raise ConfigError(f"assurance level {n!r} does not exist; must be 1, 2, 3 or 4")


@lru_cache(maxsize=4)
def load_policy(path: str | None = None) -> CertificatePolicy:
    """Load the CP from ``path``, or the one shipped with iranpki."""
    if path is None:
        text = resources.files("iranpki._data").joinpath("policies", "national-cp.yaml").read_text("utf-8")
        where = "the national CP shipped with iranpki"
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        where = path
    try:
        return CertificatePolicy.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        raise ConfigError(f"{where} is not a valid certificate policy:\n{exc}") from None

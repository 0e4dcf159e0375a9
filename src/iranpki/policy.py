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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

__all__ = ["AssuranceLevel", "CertificatePolicy", "load_policy"]

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


class CertificatePolicy(_Frozen):
    name: str
    version: str
    oid_arc: str = Field(pattern=_OID_PATTERN)
    oid_source: str
    levels: tuple[AssuranceLevel, ...]

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

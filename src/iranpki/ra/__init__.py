"""The registration authority: offices, officers and the subscriber's path from registration to
issuance (:mod:`.engine`), its rules as data (:mod:`.rules`), tracking codes (:mod:`.codes`) and
the identity registries of automated inquiry (:mod:`.registry`)."""

from __future__ import annotations

from .codes import code_hash, new_code, normalise_code
from .desk import DeskKey, csr_signed_by, key_at_desk, token_device
from .engine import (
    CHANGE_KINDS,
    KEY_MATERIAL,
    OPEN_STATES,
    REQUEST_KINDS,
    STATES,
    Actor,
    Document,
    Registered,
    RegistrationAuthority,
)
from .registry import IdentityRegistry, Person, SimulatedRegistry, load_registry
from .rules import RaRules, load_rules
from .worker import Outcome, RaWorker

__all__ = [
    "CHANGE_KINDS",
    "KEY_MATERIAL",
    "REQUEST_KINDS",
    "OPEN_STATES",
    "STATES",
    "Actor",
    "DeskKey",
    "Document",
    "IdentityRegistry",
    "Outcome",
    "Person",
    "RaRules",
    "RaWorker",
    "Registered",
    "RegistrationAuthority",
    "SimulatedRegistry",
    "code_hash",
    "csr_signed_by",
    "key_at_desk",
    "load_registry",
    "load_rules",
    "new_code",
    "normalise_code",
    "token_device",
]

"""The PKCS#11 conformance suite the national evaluation laboratory runs against tokens and HSMs.

``model`` holds cases, verdicts and the report; ``runner`` runs each case in a worker process
that loads the vendor's module itself, so a crash or a hang in the module becomes a verdict of
``error`` and the run goes on.
"""

from __future__ import annotations

from .model import (
    CATEGORIES,
    REGISTRY,
    Case,
    CaseFailed,
    CaseResult,
    DeviceIdentity,
    NotApplicable,
    NotChecked,
    Outcome,
    Report,
    Verdict,
    case,
    passed,
    select,
)

__all__ = [
    "CATEGORIES",
    "REGISTRY",
    "Case",
    "CaseFailed",
    "CaseResult",
    "DeviceIdentity",
    "NotApplicable",
    "NotChecked",
    "Outcome",
    "Report",
    "Verdict",
    "case",
    "passed",
    "select",
]

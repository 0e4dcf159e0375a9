"""The conformance suite's data model: cases, verdicts, results and the report the lab signs.

A :class:`Case` names the clause of PKCS#11 (OASIS PKCS#11 2.40 base / current mechanisms /
profiles) it checks and runs against a :class:`Context` inside a worker process (see
``runner``). What it saw becomes an :class:`Outcome`; the runner turns outcomes into
:class:`CaseResult` rows of a :class:`Report`, whose JSON (sorted keys, UTF-8) is what the
national evaluation laboratory signs.

A case says what happened by returning an :class:`Outcome` or by raising :class:`CaseFailed`
(the device broke the clause), :class:`NotApplicable` (the device does not claim the mechanism
or feature) or :class:`NotChecked` (the suite could not check it here: an SO PIN not given, no
free slot). Any other exception is an ``error``: the suite broke, or the module crashed or hung.
A skip is never a pass (docs/architecture.md, conventions).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

__all__ = [
    "CATEGORIES",
    "REGISTRY",
    "REPORT_FORMAT",
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

CATEGORIES = ("functional", "security", "stability", "performance")
REPORT_FORMAT = "iranpki-conformance-report/1"


class Verdict(str, Enum):
    """What the suite concluded about one case."""

    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "not_applicable"  # the device does not claim the mechanism or feature
    NOT_CHECKED = "not_checked"  # the suite could not check it here (no SO PIN, no free slot, ...)
    ERROR = "error"  # the suite could not judge: the module crashed, hung, or the case broke


class CaseFailed(Exception):
    """Raised by a case when the device breaks the clause; the message is the outcome's detail."""


class NotApplicable(Exception):
    """Raised by a case when the device does not claim what the case needs; never a pass."""


class NotChecked(Exception):
    """Raised by a case when the suite cannot check it here (an SO PIN not given, no free slot
    for a throw-away token): nothing is known of the device; never a pass, and a required case
    left so blocks the approval."""


@dataclass
class Outcome:
    """What one run of a case saw: a verdict and one sentence of what was seen against expected."""

    verdict: Verdict
    detail: str
    measurements: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0


def passed(detail: str, **measurements: float) -> Outcome:
    """A passing outcome: ``detail`` says what the device did that the clause requires."""
    return Outcome(Verdict.PASS, detail, dict(measurements))


@dataclass(frozen=True)
class Case:
    """One check of one clause. ``run`` takes a worker's Context and returns an Outcome or raises."""

    id: str
    category: str
    clause: str
    title: str
    needs: tuple[str, ...]
    # Takes the worker's iranpki.conformance.context.Context (which imports this module, so it is
    # not named here: the model stays below the context in the import graph).
    run: Callable[[Any], Outcome]
    # A case that logs out, closes every session or changes a PIN runs in a worker of its own,
    # so that it cannot disturb the cases batched after it.
    isolated: bool = False


@dataclass
class CaseResult:
    """A case's identity and its outcome: one row of the report."""

    id: str
    category: str
    clause: str
    title: str
    verdict: Verdict
    detail: str
    measurements: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0

    @classmethod
    def of(cls, c: Case, outcome: Outcome) -> CaseResult:
        return cls(id=c.id, category=c.category, clause=c.clause, title=c.title, verdict=outcome.verdict,
                   detail=outcome.detail, measurements=dict(outcome.measurements),
                   duration_s=round(outcome.duration_s, 6))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["verdict"] = self.verdict.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaseResult:
        return cls(id=d["id"], category=d["category"], clause=d["clause"], title=d["title"],
                   verdict=Verdict(d["verdict"]), detail=d["detail"],
                   measurements={k: float(v) for k, v in d.get("measurements", {}).items()},
                   duration_s=float(d.get("duration_s", 0.0)))


@dataclass(frozen=True)
class DeviceIdentity:
    """Who the device under test says it is (C_GetInfo, C_GetSlotInfo, C_GetTokenInfo) and
    which module file was loaded, so an approval names exactly what was tested."""

    library_manufacturer: str
    library_description: str
    library_version: str
    cryptoki_version: str
    slot_description: str
    token_label: str
    token_manufacturer: str
    token_model: str
    token_serial: str
    firmware_version: str
    hardware_version: str
    token_flags: tuple[str, ...]
    mechanisms: tuple[str, ...]
    module_path: str
    module_sha256: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["token_flags"] = list(self.token_flags)
        d["mechanisms"] = list(self.mechanisms)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DeviceIdentity:
        d = dict(d)
        d["token_flags"] = tuple(d.get("token_flags", ()))
        d["mechanisms"] = tuple(d.get("mechanisms", ()))
        return cls(**d)


@dataclass
class Report:
    """One run of the suite against one token. ``to_json`` is the text the lab signs."""

    tool: str
    started_at: datetime
    finished_at: datetime
    device: DeviceIdentity
    results: list[CaseResult]
    # The options of the run (categories, case ids, time limit): never a PIN.
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        """Counts per verdict, and per category and verdict."""
        by_verdict = {v.value: 0 for v in Verdict}
        by_category: dict[str, dict[str, int]] = {}
        for r in self.results:
            by_verdict[r.verdict.value] += 1
            cat = by_category.setdefault(r.category, {v.value: 0 for v in Verdict})
            cat[r.verdict.value] += 1
        return {"total": len(self.results), "by_verdict": by_verdict, "by_category": by_category}

    @property
    def ok(self) -> bool:
        """True when no case failed or ended in error and the run judged to the end
        (not_applicable does not count against)."""
        return not self.settings.get("stopped_early") and not any(
            r.verdict in (Verdict.FAIL, Verdict.ERROR) for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "tool": self.tool,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "device": self.device.to_dict(),
            "results": [r.to_dict() for r in self.results],
            "settings": self.settings,
            "summary": self.summary,
        }

    def to_json(self) -> str:
        """Stable JSON: sorted keys, non-ASCII kept (encode as UTF-8), results in run order."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Report:
        d = json.loads(text)
        if d.get("format") != REPORT_FORMAT:
            raise ValueError(f"not a conformance report: format {d.get('format')!r}, expected {REPORT_FORMAT!r}")
        return cls(tool=d["tool"], started_at=datetime.fromisoformat(d["started_at"]),
                   finished_at=datetime.fromisoformat(d["finished_at"]),
                   device=DeviceIdentity.from_dict(d["device"]),
                   results=[CaseResult.from_dict(r) for r in d["results"]],
                   settings=d.get("settings", {}))


REGISTRY: dict[str, Case] = {}


def case(id: str, *, category: str, clause: str, title: str, needs: Iterable[str] = (),
         isolated: bool = False, **params: Any) -> Callable[[Callable[..., Outcome]], Callable[..., Outcome]]:
    """Register a case. Extra keyword ``params`` are bound to the function, so one function can
    be registered once per key size, curve or mechanism::

        for bits in (2048, 3072):
            case(f"FUNC-KEYGEN-RSA-{bits}", category="functional", clause="...", title="...",
                 needs=("CKM_RSA_PKCS_KEY_PAIR_GEN",), bits=bits)(keygen_rsa)
    """
    if category not in CATEGORIES:
        raise ValueError(f"case {id!r} has category {category!r}; must be one of {', '.join(CATEGORIES)}")

    def register(func: Callable[..., Outcome]) -> Callable[..., Outcome]:
        if id in REGISTRY:
            raise ValueError(f"case id {id!r} is registered twice; case ids must be unique")
        run = functools.partial(func, **params) if params else func
        REGISTRY[id] = Case(id=id, category=category, clause=clause, title=title, needs=tuple(needs),
                            run=run, isolated=isolated)
        return func

    return register


def select(categories: Iterable[str] | None = None, ids: Iterable[str] | None = None) -> list[Case]:
    """The registered cases of ``categories`` (default: all), or exactly ``ids``, in registry order."""
    if ids is not None:
        wanted = list(ids)
        unknown = [i for i in wanted if i not in REGISTRY]
        if unknown:
            raise KeyError(f"unknown case ids: {', '.join(unknown)}; see `iranpki conformance list`")
        chosen = [REGISTRY[i] for i in wanted]
        if categories is not None:
            cats = set(categories)
            chosen = [c for c in chosen if c.category in cats]
        return chosen
    cats = set(categories) if categories is not None else set(CATEGORIES)
    bad = cats - set(CATEGORIES)
    if bad:
        raise ValueError(f"unknown categories {sorted(bad)}; must be among {', '.join(CATEGORIES)}")
    return [c for c in REGISTRY.values() if c.category in cats]

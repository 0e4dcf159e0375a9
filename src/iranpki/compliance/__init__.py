"""The CPS compliance checker: a CA's Certification Practice Statement against the national CP,
and the certificates, CRLs and OCSP responses the CA really issues against both.

Before the Root CA licenses an intermediate CA, and at every periodic compliance audit, it
reviews the CA's CPS (RFC 3647) against the national Certificate Policy
(``policies/national-cp.yaml``) and checks that what the CA issues matches both.
:func:`check_cps` does it in three steps:

1. **Structure** (:mod:`.structure`): the RFC 3647 section 6 outline, every heading present, in
   order, none empty; "No stipulation" only where allowed; vague wording where a number is due.
2. **Claims** (:mod:`.claims`): the values the CPS states (validity per certificate kind, key
   sizes and algorithms, CRL and OCSP intervals, revocation delays, identity proofing, key
   storage, audit and archive periods, policy OIDs) compared with the CP for the level.
3. **Artefacts** (:mod:`.artefacts`, :mod:`.lint`): the CA certificate, sample certificates of
   each kind, CRLs and OCSP responses in a folder, linted with pkilint plus national validators
   and compared with what the CPS and the CP say.

Each problem is a :class:`Finding` with a severity, a rule id, the place, the requirement it
breaks and a fix; the report groups them by the licensing stage where they are settled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from ..policy import CertificatePolicy, load_policy
from .model import Claim, CpsDocument, Finding, Section, Severity, Stage

__all__ = ["Claim", "ComplianceReport", "CpsDocument", "Finding", "Section", "Severity", "Stage", "check_cps",
           "check_document"]


@dataclass
class ComplianceReport:
    cps_path: str
    cps_sha256: str
    cps_title: str
    level: int
    policy: str  # the CP's name and version
    artefacts_dir: str | None
    checked_at: datetime
    findings: list[Finding]
    claims: list[Claim] = field(default_factory=list)
    artefacts: list[dict[str, Any]] = field(default_factory=list)  # what each artefact actually uses

    @property
    def ok(self) -> bool:
        """No ERROR: the CPS (and the artefacts) may go on to the next licensing stage."""
        return not any(f.severity is Severity.ERROR for f in self.findings)

    def counts(self) -> dict[str, dict[str, int]]:
        """Findings per stage and severity, every stage and severity present."""
        out = {s.value: {v.value: 0 for v in Severity} for s in Stage}
        for f in self.findings:
            out[f.stage.value][f.severity.value] += 1
        return out

    def by_stage(self) -> list[tuple[Stage, list[Finding]]]:
        return [(s, [f for f in self.findings if f.stage is s]) for s in Stage]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cps": {"path": self.cps_path, "sha256": self.cps_sha256, "title": self.cps_title},
            "level": self.level, "policy": self.policy, "artefacts_dir": self.artefacts_dir,
            "checked_at": self.checked_at.isoformat(), "ok": self.ok, "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "claims": [{**asdict(c), "value": list(c.value) if isinstance(c.value, tuple) else c.value}
                       for c in self.claims],
            "artefacts": self.artefacts,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2, default=str)


def _order(findings: list[Finding]) -> list[Finding]:
    """Stage by stage in licensing order, errors first; within that, the order they were found
    (document order for the CPS, file order for artefacts)."""
    stages = list(Stage)
    return sorted(findings, key=lambda f: (stages.index(f.stage), f.severity.rank))


_FOLDING = ("CPS-STRUCT-MISSING", "CPS-STRUCT-NO-STIPULATION")


def _fold_missing(structure: list[Finding], unread: list[Finding]) -> list[Finding]:
    """A missing section, or one that says only "No stipulation", is one finding: the values the
    claim reader could not read there (CPS-CLAIM-UNREAD) are counted in that finding instead of
    listed again."""
    missing = {f.place for f in structure if f.rule in _FOLDING}
    folded = [f for f in unread if f.place in missing]
    out = []
    for f in structure:
        n = sum(1 for u in folded if u.place == f.place) if f.rule in _FOLDING else 0
        if n:
            f = replace(f, message=f"{f.message}; {n} value(s) the national CP limits are stated there, so they "
                                   "cannot be compared")
        out.append(f)
    return out + [f for f in unread if f.place not in missing]


def check_document(doc: CpsDocument, level: int, policy: CertificatePolicy | None = None,
                   artefacts_dir: str | None = None) -> ComplianceReport:
    """Check a parsed CPS (and, given ``artefacts_dir``, the artefacts in it) for assurance
    ``level``. Raises :class:`iranpki.errors.ConfigError` for a level the CP lacks and
    :class:`iranpki.errors.ComplianceError` for a folder that cannot be read."""
    from .claims import check_claims, extract_claims
    from .structure import check_structure

    policy = policy or load_policy()
    policy.level(level)  # a level the CP lacks is a usage error, named before any work
    findings = list(check_structure(doc))
    claims, unread = extract_claims(doc, level, policy)
    findings = _fold_missing(findings, unread)
    findings += check_claims(claims, policy, level)
    rows: list[dict[str, Any]] = []
    if artefacts_dir is not None:
        from .artefacts import check_artefacts, describe, load_artefacts

        artefacts, unreadable = load_artefacts(artefacts_dir)
        findings += unreadable
        findings += check_artefacts(artefacts, claims, policy, level)
        rows = describe(artefacts)
    return ComplianceReport(cps_path=doc.path, cps_sha256=doc.sha256, cps_title=doc.title, level=level,
                            policy=f"{policy.name} ({policy.version})", artefacts_dir=artefacts_dir,
                            checked_at=datetime.now(timezone.utc).replace(microsecond=0),
                            findings=_order(findings), claims=claims, artefacts=rows)


def check_cps(path: str, level: int, *, artefacts_dir: str | None = None,
              policy: CertificatePolicy | None = None) -> ComplianceReport:
    """Read the CPS at ``path`` (Markdown, RFC 3647 headings) and check it for ``level``."""
    from .document import read_cps

    return check_document(read_cps(path), level, policy, artefacts_dir)

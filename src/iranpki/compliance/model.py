"""What the CPS compliance checker reads and what it finds.

- :class:`CpsDocument` and :class:`Section`: a CPS in Markdown, cut at its numbered headings
  (RFC 3647 section 6 numbering: ``1``, ``1.2``, ``4.9.7``).
- :class:`Claim`: one value the CPS states (a validity, a key size, a CRL interval, ...), with
  the section and the words it was read from.
- :class:`Finding`: one thing wrong (or worth a look), with a severity, a rule id, the place
  (a CPS section, or an artefact and field), the CP or CPS requirement it breaks and a fix.

Findings are values, never exceptions (docs/architecture.md, conventions); :class:`iranpki.errors.ComplianceError` is
only for input the checker cannot read at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

__all__ = ["Claim", "CpsDocument", "Finding", "Section", "Severity", "Stage"]


class Severity(str, Enum):
    ERROR = "error"  # breaks the CP or the CPS: licensing stops here, the command exits 1
    WARNING = "warning"  # the reviewer must look (vague wording, a value that could not be read)
    INFO = "info"  # noted, no action needed

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


class Stage(str, Enum):
    """The licensing stage of an intermediate CA (docs/national-pki.md) where a finding is settled; the
    same groups serve the periodic compliance audit."""

    POLICIES = "policies"  # stage 1: the Root CA reviews the CPS against the CP
    TECHNICAL = "technical"  # stage 2: architecture, key storage, algorithms
    INSPECTION = "inspection"  # stage 5: what the CA really issues (certificates, CRLs, OCSP)
    IMPLEMENTATION = "implementation"  # stage 6: the CA certificate from the key ceremony

    @property
    def title(self) -> str:
        return {"policies": "Stage 1, policies: the CPS against the national CP",
                "technical": "Stage 2, technical: keys, algorithms and key storage",
                "inspection": "Stage 5, inspection: certificates, CRLs and OCSP responses the CA issues",
                "implementation": "Stage 6, implementation: the CA certificate"}[self.value]


@dataclass(frozen=True)
class Finding:
    rule: str  # e.g. CPS-STRUCT-MISSING, CPS-CLAIM-VALIDITY, ART-VALIDITY-CPS, ART-LINT
    severity: Severity
    stage: Stage
    place: str  # "CPS 6.3.2", or "artefact certs/ssl.pem: validity"
    message: str  # what is wrong, naming the values
    fix: str  # what to do
    requirement: str = ""  # the CP (or CPS) requirement, e.g. "national CP, level 2: ssl-server at most 199 days"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"], d["stage"] = self.severity.value, self.stage.value
        return d


@dataclass
class Section:
    number: str  # "6.3.2"
    title: str  # the heading's words after the number
    text: str  # the body under this heading, before its first sub-heading (tables included as written)
    tables: list[list[list[str]]] = field(default_factory=list)  # each table: rows of cell texts, header first
    line: int = 0  # 1-based line of the heading in the file
    #: Per table, the un-numbered heading just above it ("### Root CA Certificate Profile"), or "".
    captions: list[str] = field(default_factory=list)

    @property
    def depth(self) -> int:
        return self.number.count(".") + 1


@dataclass
class CpsDocument:
    path: str
    title: str  # the document's own title (the heading before section 1), "" if none
    sections: list[Section]  # in the order of the file
    sha256: str = ""  # of the file's bytes, when read from a file (read_cps)

    def get(self, number: str) -> Section | None:
        for s in self.sections:
            if s.number == number:
                return s
        return None

    def subtree(self, number: str) -> list[Section]:
        """The section ``number`` and every section below it, in file order."""
        return [s for s in self.sections if s.number == number or s.number.startswith(number + ".")]


@dataclass(frozen=True)
class Claim:
    """One value the CPS states.

    ``name`` is one of CLAIM_NAMES in :mod:`iranpki.compliance.claims`; ``kind`` is a
    certificate kind (a name of ``iranpki.policy.CERTIFICATE_KINDS``) for validity claims;
    ``value`` is an int in the claim's unit (days, hours, bits, years, months), a tuple of
    names (curves, hashes, policy OIDs) or a method id (identity proofing, key storage).
    """

    name: str
    value: int | str | tuple[str, ...]
    section: str
    text: str  # the words it was read from, as written
    kind: str | None = None
    level: int | None = None  # when the CPS gives the value for one assurance level only

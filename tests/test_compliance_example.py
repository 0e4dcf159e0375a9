"""The example CPS (policies/examples/general-intermediate-ca-cps.md) is what operators copy and what
the end-to-end tests break: it must follow the RFC 3647 section 6 outline exactly, leave no section
empty, and state values within the national CP at every assurance level, where the claim reader
finds them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iranpki.compliance import check_cps
from iranpki.compliance.claims import CLAIM_NAMES, check_claims, extract_claims
from iranpki.compliance.document import read_cps
from iranpki.compliance.outline import OUTLINE
from iranpki.compliance.structure import check_structure
from iranpki.policy import CERTIFICATE_KINDS, load_policy

EXAMPLE = Path(__file__).resolve().parent.parent / "policies" / "examples" / "general-intermediate-ca-cps.md"
LEVELS = (1, 2, 3, 4)
#: Wording that hides a number (common.md, CPS-STRUCT-VAGUE); the example uses none of it anywhere.
VAGUE = ("promptly", "periodically", "as appropriate", "regularly", "in a timely manner",
         "as soon as possible", "from time to time", "as needed")

#: What the example states, per level: the values the tests that break it start from.
STATED_VALIDITY_DAYS = {"intermediate": 3653, "personal-signature": 730, "organisational-seal": 730,
                        "ssl-server": 199, "smime": 824, "code-signing": 1095, "tsa": 3653,
                        "ocsp-signer": 366}
STATED = {
    "crl_publish_within_hours": 24, "revocation_processing_hours": 24, "ocsp_validity_hours": 96,
    "audit_log_retention_years": 7, "archive_retention_years": 10, "compliance_audit_months": 12,
}
STATED_PER_LEVEL = {
    "crl_next_update_hours": {1: 168, 2: 168, 3: 168, 4: 24},
    "rsa_min_bits": {1: 2048, 2: 2048, 3: 2048, 4: 3072},
    "identity_proofing": {1: "automated-inquiry", 2: "in-person", 3: "in-person-two-documents",
                          4: "in-person-two-documents-biometric"},
    "key_storage": {1: "software", 2: "token", 3: "token", 4: "hsm"},
}


@pytest.fixture(scope="module")
def doc():
    return read_cps(str(EXAMPLE))


@pytest.fixture(scope="module")
def cp():
    return load_policy()


def _claims(doc, cp, level: int) -> dict[tuple[str, str | None], object]:
    claims, unread = extract_claims(doc, level, cp)
    assert not unread, f"level {level}: values the claim reader could not read: " + "; ".join(
        f"{f.place}: {f.message}" for f in unread)
    return {(c.name, c.kind): c.value for c in claims}


def test_headings_are_exactly_rfc3647_section_6(doc) -> None:
    got = [(s.number, s.title) for s in doc.sections]
    want = [(h.number, h.title) for h in OUTLINE]
    assert [n for n, _ in got] == [n for n, _ in want], "section numbers differ from RFC 3647 section 6"
    # RFC 3647 writes the first-level titles in capitals; the example uses title case (common.md).
    wrong = [(n, t, w) for (n, t), (_, w) in zip(got, want) if t.casefold() != w.casefold()]
    assert not wrong, f"titles differ from RFC 3647 (number, example, RFC): {wrong}"
    assert doc.title.startswith("Certification Practice Statement of the General Intermediate CA")


def test_heading_counts_and_markdown_depth_match_rfc3647(doc) -> None:
    depths = [s.number.count(".") + 1 for s in doc.sections]
    assert (depths.count(1), depths.count(2), depths.count(3)) == (9, 68, 193)
    # The number gives the depth; the example also uses one '#' per level so it renders as an outline.
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for s in doc.sections:
        hashes = len(lines[s.line - 1]) - len(lines[s.line - 1].lstrip("#"))
        assert hashes == s.depth, f"line {s.line}: section {s.number} uses {hashes} '#', expected {s.depth}"


def test_no_section_is_empty_or_without_stipulation(doc) -> None:
    empty = [s.number for s in doc.sections if not s.text.strip()]
    assert not empty, f"sections with no text under their own heading: {empty}"
    lazy = [s.number for s in doc.sections if re.search(r"\bno stipulation\b", s.text, re.IGNORECASE)]
    assert not lazy, f"sections that say 'No stipulation': {lazy}"


def test_no_vague_wording_anywhere() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").lower()
    found = [w for w in VAGUE if w in text]
    assert not found, f"vague wording in the example: {found}; state a number with a unit"


def test_structure_check_finds_nothing(doc) -> None:
    findings = check_structure(doc)
    assert not findings, [f"{f.rule} {f.place}: {f.message}" for f in findings]


@pytest.mark.parametrize("level", LEVELS)
def test_every_cp_limited_value_is_read_and_within_the_cp(doc, cp, level: int) -> None:
    claims, unread = extract_claims(doc, level, cp)
    assert not unread, [f"{f.place}: {f.message}" for f in unread]
    names = {c.name for c in claims}
    assert names >= set(CLAIM_NAMES), f"level {level}: claims not read: {sorted(set(CLAIM_NAMES) - names)}"
    kinds = {c.kind for c in claims if c.name == "validity_days"}
    assert kinds == set(CERTIFICATE_KINDS), f"6.3.2 lacks {sorted(set(CERTIFICATE_KINDS) - kinds)}"
    findings = check_claims(claims, cp, level)
    assert not findings, [f"{f.rule} {f.place}: {f.message}" for f in findings]


@pytest.mark.parametrize("level", LEVELS)
def test_the_stated_values_are_the_documented_ones(doc, cp, level: int) -> None:
    got = _claims(doc, cp, level)
    for kind, days in STATED_VALIDITY_DAYS.items():
        assert got[("validity_days", kind)] == days, f"6.3.2 {kind}"
        assert days <= cp.level(level).max_validity_days[kind], f"6.3.2 {kind} exceeds the CP"
    for name, value in STATED.items():
        assert got[(name, None)] == value, name
    for name, per_level in STATED_PER_LEVEL.items():
        assert got[(name, None)] == per_level[level], f"{name} at level {level}"
    assert got[("ec_curves", None)] == ("P-256", "P-384")
    assert got[("hashes", None)] == ("sha256", "sha384", "sha512")
    assert cp.level(level).policy_oid in got[("policy_oids", None)]


def test_level_tables_follow_the_cp_per_level(doc, cp) -> None:
    # The CP differs by level in these sections, so each has a table with a Level column.
    for number in ("3.2.3", "4.9.7", "6.1.5", "6.2.1", "7.1.6"):
        section = doc.get(number)
        assert section is not None and section.tables, f"{number} has no table"
        assert section.tables[0][0][0] == "Level", f"{number}: first column is {section.tables[0][0][0]!r}"
    oids = {row[0]: row[1] for row in doc.get("7.1.6").tables[0][1:]}
    assert oids == {str(lv.level): lv.policy_oid for lv in cp.levels}


@pytest.mark.parametrize("level", LEVELS)
def test_cps_check_passes_without_any_finding(level: int) -> None:
    report = check_cps(str(EXAMPLE), level)
    assert report.ok
    assert not report.findings, [f"{f.severity.value} {f.rule} {f.place}: {f.message}" for f in report.findings]

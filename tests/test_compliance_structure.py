"""The CPS structure checker: the RFC 3647 outline as data, the Markdown CPS parser, the
CPS-STRUCT-* rules and the national CP rendered as an RFC 3647 document."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iranpki.compliance.document import parse_cps, read_cps
from iranpki.compliance.model import Severity, Stage
from iranpki.compliance.outline import OUTLINE, heading
from iranpki.compliance.render import KIND_NAMES, render_cp
from iranpki.compliance.structure import check_structure, normalise_title
from iranpki.errors import ComplianceError
from iranpki.policy import load_policy

# A body that answers every section, including those that need a number.
_BODY = "The CA does this within 24 hours of the event."


def _doc(body=lambda h: _BODY, title=lambda h: h.title, skip=(), order=None) -> str:
    """A Markdown CPS with every outline heading (but ``skip``), in ``order`` (default: RFC 3647)."""
    headings = [h for h in (order or OUTLINE) if h.number not in skip]
    parts = ["# Example CA Certification Practice Statement", "Intro text."]
    for h in headings:
        parts.append(f"{'#' * h.depth} {h.number} {title(h)}")
        text = body(h)
        if text:
            parts.append(text)
    return "\n\n".join(parts) + "\n"


def _findings(md: str) -> list[tuple[str, str]]:
    return [(f.rule, f.place) for f in check_structure(parse_cps(md))]


# --- the outline -------------------------------------------------------------------------------

def test_outline_has_the_rfc3647_counts_and_order() -> None:
    depths = Counter(h.depth for h in OUTLINE)
    assert (depths[1], depths[2], depths[3]) == (9, 68, 193)
    assert len({h.number for h in OUTLINE}) == len(OUTLINE)
    # Numbers rise in the outline's order, component by component.
    keys = [tuple(int(p) for p in h.number.split(".")) for h in OUTLINE]
    assert keys == sorted(keys)
    assert heading("4.9.7").title == "CRL issuance frequency (if applicable)"
    assert heading("6.2.11").title == "Cryptographic Module Rating"
    assert heading("4.13") is None


def test_sections_the_claim_reader_reads_require_a_stipulation() -> None:
    for n in ("1.2", "3.2.2", "3.2.3", "4.9.1", "4.9.3", "4.9.5", "4.9.7", "4.9.8", "4.9.9", "4.9.10",
              "5.4.1", "5.4.2", "5.4.3", "5.5.1", "5.5.2", "6.1.1", "6.1.5", "6.2.1", "6.3.2", "7.1.3",
              "7.1.6", "8.1"):
        assert heading(n).stipulation_required, n
    for n in ("4.9.5", "4.9.7", "4.9.8", "4.9.10", "5.4.3", "5.5.2", "6.1.5", "6.3.2", "8.1"):
        assert heading(n).needs_number, n
    # Suspension is not part of the national CP: "No stipulation" is a fair answer there.
    assert not heading("4.9.13").stipulation_required


# --- the parser --------------------------------------------------------------------------------

def test_parser_reads_numbers_titles_bodies_tables_and_lines() -> None:
    md = (
        "# Pars Sign CPS\n"                         # 1
        "\n"
        "## ۱.۲. Document name and identification\n"  # 3: Persian digits, trailing dot
        "Name: Pars Sign CPS.\n"
        "```\n"
        "# 9.9 inside a code block\n"
        "| not | a table |\n"
        "|---|---|\n"
        "```\n"
        "### 6.3.2 Certificate operational periods ###\n"  # 10: closing hashes
        "\n"
        "| Certificate | Level | Maximum validity |\n"
        "|:---|:-:|---:|\n"
        "| SSL/TLS server | 1-4 | 199 days |\n"
        "| A \\| B | 2 | 1 day |\n"
        "\n"
        "After the table.\n"
        "## 2026 changes\n"                           # not a section number: part of the body
        "text\n"
    )
    doc = parse_cps(md, "cps.md")
    assert doc.title == "Pars Sign CPS"
    assert [(s.number, s.title, s.line) for s in doc.sections] == [
        ("1.2", "Document name and identification", 3),
        ("6.3.2", "Certificate operational periods", 10),
    ]
    assert doc.sections[0].tables == []
    assert "# 9.9 inside a code block" in doc.sections[0].text
    assert doc.sections[1].tables == [[["Certificate", "Level", "Maximum validity"],
                                       ["SSL/TLS server", "1-4", "199 days"], ["A | B", "2", "1 day"]]]
    assert doc.sections[1].text.endswith("## 2026 changes\ntext")


def test_a_document_without_numbered_headings_is_refused_with_the_format(tmp_path: Path) -> None:
    with pytest.raises(ComplianceError, match=r"notes\.md: no numbered heading.*'# 1\. Introduction'"):
        parse_cps("# Notes\n\nSome text.\n", "notes.md")


def test_read_cps_names_the_path_of_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ComplianceError, match=r"cannot read the CPS .*missing\.md"):
        read_cps(str(tmp_path / "missing.md"))
    latin = tmp_path / "latin1.md"
    latin.write_bytes("# 1. Introduction\n\nCaf\xe9\n".encode("latin-1"))
    with pytest.raises(ComplianceError, match=r"latin1\.md is not UTF-8"):
        read_cps(str(latin))
    ok = tmp_path / "ok.md"
    ok.write_text("\ufeff# 1. Introduction\n\nText.\n", "utf-8")
    assert read_cps(str(ok)).sections[0].number == "1"


_line = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
                max_size=40).map(str.strip).filter(
    lambda s: not s.startswith(("#", "`", "~", " ")) and "|" not in s)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(OUTLINE), st.lists(_line, max_size=4)), min_size=1, max_size=12))
def test_parser_round_trips_any_sections_and_bodies(sections) -> None:
    md = "# Title\n\n" + "\n\n".join(
        f"{'#' * h.depth} {h.number} {h.title}\n\n" + "\n".join(lines) for h, lines in sections)
    doc = parse_cps(md)
    assert [(s.number, s.title) for s in doc.sections] == [(h.number, h.title) for h, _ in sections]
    for s, (_, lines) in zip(doc.sections, sections, strict=True):
        assert s.text == "\n".join(lines).strip("\n")


# --- the structure rules -----------------------------------------------------------------------

def test_a_complete_document_built_from_the_outline_passes() -> None:
    assert _findings(_doc()) == []


def test_a_removed_heading_is_missing_with_its_place() -> None:
    findings = check_structure(parse_cps(_doc(skip=("4.9.7",))))
    assert [(f.rule, f.place, f.severity) for f in findings] == [
        ("CPS-STRUCT-MISSING", "CPS 4.9.7", Severity.ERROR)]
    assert findings[0].stage is Stage.POLICIES
    assert "4.9.7 CRL issuance frequency (if applicable)" in findings[0].message
    assert "after 4.9.6" in findings[0].fix and "before 4.9.8" in findings[0].fix


def test_swapped_headings_give_one_order_finding() -> None:
    order = list(OUTLINE)
    i, j = order.index(heading("4.9.7")), order.index(heading("4.9.8"))
    order[i], order[j] = order[j], order[i]
    assert _findings(_doc(order=order)) == [("CPS-STRUCT-ORDER", "CPS 4.9.7")]


def test_a_block_of_sections_out_of_order_is_reported_once_at_its_top_heading() -> None:
    order = [h for h in OUTLINE if not h.number.startswith("5.4")]
    at = order.index(heading("5.6"))
    order[at:at] = [h for h in OUTLINE if h.number == "5.4" or h.number.startswith("5.4.")]
    assert _findings(_doc(order=order)) == [("CPS-STRUCT-ORDER", "CPS 5.5")]


def test_an_empty_section_is_found_but_no_stipulation_is_a_body() -> None:
    assert _findings(_doc(body=lambda h: "" if h.number == "9.5" else _BODY)) == [("CPS-STRUCT-EMPTY", "CPS 9.5")]
    assert _findings(_doc(body=lambda h: "No stipulation." if h.number == "9.5" else _BODY)) == []


@pytest.mark.parametrize("text", ["No stipulation.", "*Not applicable*", "بدون شرط", "موردی ندارد."])
def test_no_stipulation_where_the_cp_requires_one(text: str) -> None:
    findings = check_structure(parse_cps(_doc(body=lambda h: text if h.number == "4.9.7" else _BODY)))
    assert [(f.rule, f.place, f.severity) for f in findings] == [
        ("CPS-STRUCT-NO-STIPULATION", "CPS 4.9.7", Severity.ERROR)]


def test_vague_wording_where_a_number_is_needed() -> None:
    findings = check_structure(parse_cps(_doc(
        body=lambda h: "The CA processes revocation requests promptly." if h.number == "4.9.5" else _BODY)))
    assert [(f.rule, f.place, f.severity) for f in findings] == [("CPS-STRUCT-VAGUE", "CPS 4.9.5", Severity.WARNING)]
    assert "'promptly'" in findings[0].message


@pytest.mark.parametrize("text,vague", [
    ("Within 24 hours, and promptly after a key compromise.", False),
    ("Revocations are processed within ۲۴ ساعت and promptly.", False),
    ("CRLs are issued every 7 days.\nA new CRL follows periodically.", True),
    ("CRLs are issued at least once a week, as appropriate.", False),
    ("فهرست در اسرع وقت منتشر می‌شود.", True),
    ("| 1-4 | as soon as possible |", True),
])
def test_vague_words_count_only_in_sentences_without_a_number(text: str, vague: bool) -> None:
    rules = _findings(_doc(body=lambda h: text if h.number == "4.9.7" else _BODY))
    assert rules == ([("CPS-STRUCT-VAGUE", "CPS 4.9.7")] if vague else [])


def test_vague_words_outside_number_sections_are_fine() -> None:
    assert _findings(_doc(body=lambda h: "The CA reviews this periodically." if h.number == "5.3.4" else _BODY)) == []


def test_a_retitled_heading_is_a_title_warning_but_spelling_variants_are_not() -> None:
    md = _doc(title=lambda h: "Key lengths" if h.number == "6.1.5" else h.title)
    assert _findings(md) == [("CPS-STRUCT-TITLE", "CPS 6.1.5")]
    variants = {"4.9.7": "CRL Issuance Frequency", "1.5.1": "Organisation Administering the Document",
                "4.9.9": "Online revocation / status checking availability", "4.6.1": "Circumstances for Certificate Renewal",
                "6.3.2": "ترتیب اعتبار گواهی"}
    assert _findings(_doc(title=lambda h: variants.get(h.number, h.title))) == []
    assert normalise_title("1.5.1 Organisation administering") == normalise_title("1.5.1 organization Administering")


def test_duplicates_and_extra_headings() -> None:
    md = _doc(body=lambda h: _BODY + ("\n\n#### 4.9.1.1 Reasons for revoking a subscriber certificate\n\nText."
                                      "\n\n### 4.9.17 Our own rule\n\nText.\n\n### 4.9.2 Who can request revocation\n\nAgain."
                                      if h.number == "4.9.1" else ""))
    findings = check_structure(parse_cps(md))
    assert [(f.rule, f.place, f.severity) for f in findings] == [
        ("CPS-STRUCT-EXTRA", "CPS 4.9.1.1", Severity.INFO),
        ("CPS-STRUCT-EXTRA", "CPS 4.9.17", Severity.WARNING),
        ("CPS-STRUCT-DUPLICATE", "CPS 4.9.2", Severity.ERROR),
    ]


def test_findings_are_sorted_by_document_position() -> None:
    md = _doc(skip=("9.17",), body=lambda h: {"1.2": "No stipulation.", "8.1": "Audits happen regularly."}.get(h.number, _BODY))
    assert _findings(md) == [("CPS-STRUCT-NO-STIPULATION", "CPS 1.2"), ("CPS-STRUCT-VAGUE", "CPS 8.1"),
                             ("CPS-STRUCT-MISSING", "CPS 9.17")]


# --- the CP rendered ---------------------------------------------------------------------------

def test_rendered_cp_passes_the_structure_check() -> None:
    doc = parse_cps(render_cp(load_policy()))
    assert [h.number for h in OUTLINE] == [s.number for s in doc.sections]
    bad = [f for f in check_structure(doc) if f.severity in (Severity.ERROR, Severity.WARNING)]
    assert bad == []


def _rows(doc, number: str) -> list[list[str]]:
    (table,) = doc.get(number).tables
    return table


def _expand(levels: str) -> list[int]:
    lo, _, hi = levels.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def test_rendered_cp_values_equal_the_yaml() -> None:
    cp = load_policy()
    doc = parse_cps(render_cp(cp))
    validity = {(row[0], n): row[2] for row in _rows(doc, "6.3.2")[1:] for n in _expand(row[1])}
    for lv in cp.levels:
        for kind, days in lv.max_validity_days.items():
            assert validity[(KIND_NAMES[kind], lv.level)] == f"{days} days"
    assert f"at most {cp.root.max_validity_days} days" in doc.get("6.3.2").text

    def per_level(number: str, column: int = 1) -> dict[int, str]:
        return {n: row[column] for row in _rows(doc, number)[1:] for n in _expand(row[0])}

    oids = {int(row[0]): row[2] for row in _rows(doc, "1.2")[1:]}
    for lv in cp.levels:
        n = lv.level
        assert oids[n] == lv.policy_oid and per_level("7.1.6")[n] == lv.policy_oid
        assert per_level("4.9.5")[n] == f"within {lv.status.revocation_processing_hours} hours"
        assert per_level("4.9.7")[n] == f"{lv.status.crl_next_update_hours} hours"
        assert per_level("4.9.7", 2)[n] == f"within {lv.status.crl_publish_within_hours} hours"
        assert per_level("4.9.10")[n] == f"at most {lv.status.ocsp_validity_hours} hours"
        assert per_level("5.4.3")[n] == f"{lv.records.audit_log_retention_years} years"
        assert per_level("5.5.2")[n] == f"{lv.records.archive_retention_years} years"
        assert per_level("8.1")[n] == f"{lv.records.compliance_audit_months} months"
        assert per_level("3.2.3")[n] == cp.identity_method(lv.identity_proofing).text
        assert per_level("6.2.1")[n] == cp.key_storage(lv.keys.storage).text
        keys = {(row[1], m): row[2] for row in _rows(doc, "6.1.5")[1:] for m in _expand(row[0])}
        assert keys[("RSA", n)] == f"{lv.keys.min_rsa_bits} bits"
        assert keys[("ECDSA", n)] == ", ".join(lv.keys.ec_curves)
        for h in lv.keys.hashes:
            assert f"ecdsa-with-{h.upper()}" in per_level("7.1.3")[n]
    assert cp.status.tsa.policy_oid in doc.get("6.8").text
    assert cp.name in doc.get("1.2").text and cp.version in doc.get("1.2").text


def test_sub_sections_below_an_added_refinement_are_refinements_too() -> None:
    """Issue 13 item 6: 1.6.1 below 1.6 was INFO and its own 1.6.1.1 a WARNING; both refine 1.6."""
    md = _doc(body=lambda h: _BODY + ("\n\n### 1.6.1 Definitions\n\nText.\n\n#### 1.6.1.1 Terms of this CPS\n\nText."
                                      if h.number == "1.6" else ""))
    findings = check_structure(parse_cps(md))
    assert [(f.rule, f.place, f.severity) for f in findings] == [
        ("CPS-STRUCT-EXTRA", "CPS 1.6.1", Severity.INFO), ("CPS-STRUCT-EXTRA", "CPS 1.6.1.1", Severity.INFO)]


def test_no_stipulation_is_one_finding_not_two() -> None:
    """Issue 13 item 6: a section that says only "No stipulation" where the reader looks for a
    value was reported as CPS-STRUCT-NO-STIPULATION and again as CPS-CLAIM-UNREAD."""
    from iranpki.compliance import check_document

    md = _doc(body=lambda h: "No stipulation." if h.number == "4.9.7" else _BODY)
    report = check_document(parse_cps(md), 2)
    at = [f for f in report.findings if f.place == "CPS 4.9.7"]
    assert [f.rule for f in at] == ["CPS-STRUCT-NO-STIPULATION"]
    assert "value(s) the national CP limits are stated there" in at[0].message


def test_cabf_titles_and_sections_are_not_retitlings() -> None:
    """Issue 13 item 6: a CPS following the CA/Browser Forum's requirements titles 3.2.2 as they do
    and adds their 8.7 Self-Audits; "Refund policies" is the plural of "Refund policy"."""
    titles = {"3.2.2": "Authentication of Organization and Domain Identity", "9.1.5": "Refund policies",
              "4.7.5": "Conduct constituting acceptance of a re-key certificate",
              "4.7.3": "Processing certificate re-key requests", "4.9": "CERTIFICATE SUSPENSION AND REVOCATION"}
    md = _doc(title=lambda h: titles.get(h.number, h.title),
              body=lambda h: _BODY + ("\n\n## 8.7 Self-Audits\n\nQuarterly." if h.number == "8.6" else ""))
    findings = check_structure(parse_cps(md))
    assert [(f.rule, f.place, f.severity) for f in findings] == [("CPS-STRUCT-EXTRA", "CPS 8.7", Severity.INFO)]
    assert "CA/Browser Forum" in findings[0].message

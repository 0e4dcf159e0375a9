"""`iranpki cps check` end to end, as the Root CA's reviewers use it: the example CPS of the
General Intermediate CA passes at every level, with and without the artefacts a CA really
issues, and each way of breaking it (a missing section, a validity longer than the CP allows,
an SSL certificate longer than the CPS states, a CRL whose nextUpdate is past the CP, a weak key
at level 3) gives exactly the expected finding, exit status 1 and the fix."""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from iranpki.compliance import check_cps, check_document
from iranpki.compliance.document import parse_cps
from iranpki.errors import ComplianceError
from iranpki_cli.main import cli

from .test_compliance_artefacts import pki  # noqa: F401 - the fixture: a level-2 CA's real artefacts

EXAMPLE = Path(__file__).resolve().parents[1] / "policies" / "examples" / "general-intermediate-ca-cps.md"


def _cps(tmp_path: Path, *changes: tuple[str, str]) -> Path:
    """The example CPS with each (old, new) replaced once; each old text must be there."""
    text = EXAMPLE.read_text("utf-8")
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "cps.md"
    path.write_text(text, "utf-8")
    return path


def _check(path: Path, level: int, *extra: str) -> tuple[int, dict]:
    out = CliRunner().invoke(cli, ["cps", "check", str(path), "--level", str(level), "--format", "json", *extra])
    assert out.exit_code in (0, 1), out.output
    return out.exit_code, json.loads(out.output)


def _found(report: dict) -> list[tuple[str, str, str]]:
    return [(f["rule"], f["severity"], f["place"]) for f in report["findings"]]


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_example_cps_passes_at_every_level(level: int) -> None:
    code, report = _check(EXAMPLE, level)
    assert (code, report["ok"], report["findings"]) == (0, True, [])
    assert report["level"] == level and len(report["cps"]["sha256"]) == 64
    # What the CPS states is in the report, as the reviewers read it.
    claims = {(c["name"], c["kind"]): c["value"] for c in report["claims"]}
    assert claims[("validity_days", "ssl-server")] == 199
    assert claims[("rsa_min_bits", None)] == (3072 if level == 4 else 2048)


def test_example_cps_and_real_artefacts_pass(pki: dict) -> None:  # noqa: F811
    code, report = _check(EXAMPLE, 2, "--artifacts", str(pki["folder"]))
    assert [f for f in report["findings"] if f["severity"] == "error"] == [] and code == 0
    kinds = {row.get("kind") for row in report["artefacts"]}
    assert {"root", "intermediate", "ssl-server", "personal-signature", "organisational-seal"} <= kinds


def test_a_missing_section(tmp_path: Path) -> None:
    text = EXAMPLE.read_text("utf-8")
    section = re.search(r"### 4\.9\.7 .*?(?=### 4\.9\.8 )", text, re.S)
    assert section is not None
    code, report = _check(_cps(tmp_path, (section.group(0), "")), 2)
    assert code == 1
    assert _found(report) == [("CPS-STRUCT-MISSING", "error", "CPS 4.9.7")]
    finding = report["findings"][0]
    assert "CRL issuance frequency" in finding["message"] and finding["stage"] == "policies"
    assert "2 value(s) the national CP limits" in finding["message"] and finding["fix"]


def test_a_validity_longer_than_the_cp_allows(tmp_path: Path) -> None:
    code, report = _check(_cps(tmp_path, ("| SSL/TLS server | 199 days |", "| SSL/TLS server | 398 days |")), 2)
    assert code == 1
    assert _found(report) == [("CPS-CLAIM-VALIDITY", "error", "CPS 6.3.2")]
    f = report["findings"][0]
    assert "398" in f["message"] and "199" in f["message"] and "ssl-server" in f["requirement"]


def test_an_ssl_certificate_longer_than_the_cps_states(pki: dict, tmp_path: Path) -> None:  # noqa: F811
    # The CPS promises 90 days; the CA issued its SSL certificate for 199 (within the CP).
    path = _cps(tmp_path, ("| SSL/TLS server | 199 days |", "| SSL/TLS server | 90 days |"))
    code, report = _check(path, 2, "--artifacts", str(pki["folder"]))
    assert code == 1
    assert _found(report) == [("ART-VALIDITY-CPS", "error", "artefact certs/ssl-server.pem: validity")]
    f = report["findings"][0]
    assert f["stage"] == "inspection" and "199" in f["message"] and "90" in f["message"]
    assert "6.3.2" in f["requirement"]


def test_a_crl_whose_next_update_is_past_the_cp(pki: dict, tmp_path: Path) -> None:  # noqa: F811
    folder = tmp_path / "artefacts"
    shutil.copytree(pki["folder"], folder)
    good = x509.load_der_x509_crl((folder / "crl" / "gica2.crl").read_bytes())
    ica = pki["ica"].certificate
    # Ten days: past the 168 hours the CP allows at level 2 (and the CPS states).
    bad = (x509.CertificateRevocationListBuilder().issuer_name(ica.subject).last_update(good.last_update_utc)
           .next_update(good.last_update_utc + timedelta(days=10)))
    for ext in good.extensions:
        bad = bad.add_extension(ext.value, ext.critical)
    (folder / "crl" / "gica2.crl").write_bytes(bad.sign(pki["ica_key"], hashes.SHA384()).public_bytes(Encoding.DER))
    code, report = _check(EXAMPLE, 2, "--artifacts", str(folder))
    assert code == 1
    assert sorted(_found(report)) == [("ART-CRL-NEXT-UPDATE-CP", "error", "artefact crl/gica2.crl: nextUpdate"),
                                      ("ART-CRL-NEXT-UPDATE-CPS", "error", "artefact crl/gica2.crl: nextUpdate")]
    cp = next(f for f in report["findings"] if f["rule"] == "ART-CRL-NEXT-UPDATE-CP")
    assert "240" in cp["message"] and "168" in cp["message"]


def test_a_weak_key_at_level_3(tmp_path: Path) -> None:
    path = _cps(tmp_path, ("| 1-3 | RSA | 2048 bits |", "| 1-3 | RSA | 1024 bits |"))
    code, report = _check(path, 3)
    assert code == 1
    assert _found(report) == [("CPS-CLAIM-KEY-SIZE", "error", "CPS 6.1.5")]
    f = report["findings"][0]
    assert f["stage"] == "technical" and "1024" in f["message"] and "2048" in f["message"]


def test_text_and_html_reports(tmp_path: Path) -> None:
    path = _cps(tmp_path, ("| SSL/TLS server | 199 days |", "| SSL/TLS server | 398 days <b>|"))
    text = CliRunner().invoke(cli, ["cps", "check", str(path), "--level", "2"])
    assert text.exit_code == 1
    assert "CPS-CLAIM-VALIDITY" in text.output and "fix:" in text.output and "1 error(s)" in text.output
    html_file = tmp_path / "report.html"
    out = CliRunner().invoke(cli, ["cps", "check", str(path), "--level", "2", "--format", "html", "--out",
                                   str(html_file)])
    assert out.exit_code == 1 and out.output == ""
    page = html_file.read_text("utf-8")
    assert "CPS-CLAIM-VALIDITY" in page and "Stage 1, policies" in page and "<b>" not in page
    assert page.count("<script") == 0


def test_unusable_input_exits_2_naming_it(tmp_path: Path) -> None:
    missing = CliRunner().invoke(cli, ["cps", "check", str(tmp_path / "nope.md"), "--level", "2"])
    assert missing.exit_code == 2 and "nope.md" in missing.output
    binary = tmp_path / "cps.md"
    binary.write_bytes(b"\xff\xfe# 1. Introduction\n")
    out = CliRunner().invoke(cli, ["cps", "check", str(binary), "--level", "2"])
    assert out.exit_code == 2 and "cps.md" in out.output
    level = CliRunner().invoke(cli, ["cps", "check", str(EXAMPLE), "--level", "5"])
    assert level.exit_code == 2 and "--level" in level.output
    folder = CliRunner().invoke(cli, ["cps", "check", str(EXAMPLE), "--level", "2", "--artifacts",
                                      str(tmp_path / "none")])
    assert folder.exit_code == 2 and "none" in folder.output


def test_rendered_cp_is_an_rfc3647_document_with_the_cp_values(tmp_path: Path) -> None:
    out_file = tmp_path / "cp.md"
    out = CliRunner().invoke(cli, ["cps", "render", "--out", str(out_file)])
    assert out.exit_code == 0, out.output
    text = out_file.read_text("utf-8")
    assert "2.16.364.101.1.4" in text and "| 4 | RSA | 3072 bits |" in text.replace("  ", " ")
    # Read back by the checker itself, the CP's own document breaks no rule of its structure.
    report = check_cps(str(out_file), 2)
    assert [f for f in report.findings if f.rule.startswith("CPS-STRUCT") and f.severity.value != "info"] == []


_LINES = EXAMPLE.read_text("utf-8").splitlines()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.one_of(st.sampled_from(_LINES), st.text(max_size=60), st.sampled_from([
    "| a | b |", "|---|---|", "## 4.9.7 CRL issuance frequency", "### 6.3.2 x", "| SSL/TLS server | ۱۹۹ روز |",
    "```", "# 9.", "| Level | Maximum validity |", "| 2 | 10 years |", "No stipulation."])), max_size=150),
       level=st.integers(1, 4))
def test_any_document_is_judged_never_crashes(lines: list[str], level: int) -> None:
    """Whatever a CPS holds (parts of a real one shuffled with noise), the checker answers with
    findings or a ComplianceError naming the file, never a crash."""
    try:
        doc = parse_cps("\n".join(lines), "any.md")
    except ComplianceError as exc:
        assert "any.md" in str(exc)
        return
    report = check_document(doc, level)
    assert all(f.rule and f.place and f.fix for f in report.findings)

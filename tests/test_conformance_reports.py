"""The conformance reports: the HTML page, the lab's signature over report.json (checked by
``openssl cms`` too), the approval certificate and `iranpki conformance sign-report|approve|
verify-report`. Every check is also shown refusing: a changed verdict, another module file,
another report, an expired approval, an untrusted root."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from iranpki.ca import IssueRequest, create_intermediate, create_root, parse_subject
from iranpki.clock import FixedClock
from iranpki.conformance import REGISTRY, CaseResult, DeviceIdentity, Report, Verdict
from iranpki.conformance import attestation, reporting
from iranpki.conformance.required import required_cases
from iranpki.conformance.runner import load_cases
from iranpki.keys import SoftwareSigner
from iranpki.store import SqliteStore

from .conftest import REPO, ROOT_SUBJECT, run
from .samples import SUBJECTS

PEM = serialization.Encoding.PEM
HOSTILE = '<script>alert("x")</script> & "quoted"'
PASSPHRASE = "lab-" + os.urandom(8).hex()
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)


def sample_report(module: Path, *, fail: bool = False, required: bool = True) -> Report:
    """A report as the runner writes one: every category, a not-applicable case, performance
    measurements, a detail that tries to inject a script, and optionally a failed case; with
    ``required``, also every case a smart card must pass, passed."""
    device = DeviceIdentity(
        library_manufacturer="SoftHSM", library_description="Implementation of PKCS11", library_version="2.6",
        cryptoki_version="2.40", slot_description="SoftHSM slot ID 0x1", token_label="توکن آزمون <b>",
        token_manufacturer="SoftHSM project", token_model="SoftHSM v2", token_serial="0123456789abcdef",
        firmware_version="2.6", hardware_version="2.6", token_flags=("LOGIN_REQUIRED", "TOKEN_INITIALIZED"),
        mechanisms=("CKM_RSA_PKCS", "CKM_ECDSA", "CKM_SHA256"), module_path=str(module),
        module_sha256=hashlib.sha256(module.read_bytes()).hexdigest())
    rows = [
        CaseResult("FUNC-INFO", "functional", "PKCS#11 2.40 5.4 C_GetInfo", "Library information",
                   Verdict.PASS, "cryptoki 2.40", duration_s=0.01),
        CaseResult("FUNC-DES", "functional", "Current Mechanisms 2.40 2.35", "Single DES",
                   Verdict.NOT_APPLICABLE, "CKM_DES_CBC not claimed"),
        CaseResult("SEC-PIN-LOCK", "security", "PKCS#11 2.40 5.6 C_Login", "PIN lock-out",
                   Verdict.FAIL if fail else Verdict.PASS, HOSTILE),
        CaseResult("STAB-1H", "stability", "profiles 2.40 3", "Sign for an hour", Verdict.PASS, "no error",
                   {"signatures": 100000.0, "ops_per_s": 900.0}),
        CaseResult("PERF-SIGN-RSA2048", "performance", "PKCS#11 2.40 5.13", "CKM_RSA_PKCS sign",
                   Verdict.PASS, "", {"ops_per_s": 1234.5, "p50_ms": 0.78, "p99_ms": 1.9, "bound_p50_ms": 2000.0},
                   5.0),
        CaseResult("PERF-DIGEST", "performance", "PKCS#11 2.40 5.12", "SHA-256 round trip", Verdict.PASS, "",
                   {"digest_p50_ms": 0.01, "digest_p99_ms": 0.03, "random_p50_ms": 0.012}),
        CaseResult("PERF-SIGN-P256", "performance", "PKCS#11 2.40 5.13", "CKM_ECDSA sign",
                   Verdict.PASS, "", {"ops_per_s": 12000.0, "p50_ms": 0.08, "p99_ms": 0.2,
                                      "ops_per_s_4_processes": 30000.0, "ops_per_s_4_sessions": 11000.0}, 5.0),
    ]
    # Every case a smart card must pass, passed (the approval requires them; conformance.required).
    if required:
        load_cases()
        cats = {c.id: c.category for c in REGISTRY.values()}
        rows += [CaseResult(i, cats[i], "the suite's clause", "required", Verdict.PASS, "passed")
                 for i in required_cases("smartcard", REGISTRY) if i not in {r.id for r in rows}]
    return Report(tool="iranpki 0.1 test", started_at=T0, finished_at=T0 + timedelta(minutes=70), device=device,
                  results=rows, settings={"categories": ["functional", "security", "stability", "performance"],
                                          "device_class": "smartcard"})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A throw-away national root and level-1 CA, the lab's organisational-seal key and
    certificate, a second root nobody trusts with a lab of its own, a module file and reports."""
    base = tmp_path_factory.mktemp("conformance-reports")

    def pki(name: str) -> dict:
        store = SqliteStore(str(base / f"{name}.sqlite3"), create=True)
        root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                           parse_subject(ROOT_SUBJECT), repository_url=REPO)
        ca = create_intermediate(root, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), "gica1", 1,
                                 parse_subject("C=IR,O=GICA,CN=GICA Level 1 (test)"))
        key = rsa.generate_private_key(65537, 2048)
        cert = ca.issue("organisational-seal", IssueRequest(parse_subject(SUBJECTS["organisational-seal"]),
                                                             key.public_key())).pem
        for suffix, data in (("root.pem", root.certificate.public_bytes(PEM)),
                             ("ca.pem", ca.certificate.public_bytes(PEM)), ("lab.pem", cert),
                             ("lab.key", key.private_bytes(
                                 PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.BestAvailableEncryption(PASSPHRASE.encode())))):
            (base / f"{name}-{suffix}").write_bytes(data)
        return {"ca": ca, "signer": SoftwareSigner(key), "cert": cert, "chain": [ca.certificate.public_bytes(PEM)],
                "root": root.certificate.public_bytes(PEM), "files": {s: base / f"{name}-{s}.pem" for s in
                                                                      ("root", "ca", "lab")},
                "key": base / f"{name}-lab.key"}

    module = base / "libvendor-pkcs11.so"
    module.write_bytes(b"\x7fELF vendor module build 42")
    passed, failed = base / "report.json", base / "failed.json"
    passed.write_text(sample_report(module).to_json(), encoding="utf-8")
    failed.write_text(sample_report(module, fail=True).to_json(), encoding="utf-8")
    return {"base": base, "ours": pki("ours"), "other": pki("other"), "module": module, "report": passed,
            "failed": failed}


def _sign(lab: dict, data: bytes) -> bytes:
    o = lab["ours"]
    return attestation.sign_report(data, o["signer"], o["cert"], o["chain"])


def _approve(lab: dict, data: bytes, **kw) -> bytes:
    o = lab["ours"]
    return attestation.approve(data, o["signer"], o["cert"], o["chain"], **{"valid_days": 365, **kw})


# ---- HTML ---------------------------------------------------------------------------------------

def test_html_report(lab: dict) -> None:
    report = sample_report(lab["module"], fail=True, required=False)
    page = reporting.render_html(report)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quoted&quot;" in page
    assert "توکن آزمون &lt;b&gt;" in page and "<b>" not in page
    # The summary: counts per verdict, overall and per category; the outcome in words.
    counts = reporting.count_verdicts(report)
    assert counts["all"] == {"pass": 5, "fail": 1, "error": 0, "not_applicable": 1, "not_checked": 0}
    assert counts["security"]["fail"] == 1 and counts["performance"]["pass"] == 3
    assert "not passed: 1 case(s) failed or erred" in page
    # The device's identity, and one table per category with id, clause and coloured verdict.
    for text in ("0123456789abcdef", "SoftHSM v2", "CKM_RSA_PKCS, CKM_ECDSA, CKM_SHA256", report.device.module_sha256):
        assert text in page
    for cat in ("functional", "security", "stability", "performance"):
        assert f'<h2 id="cat-{cat}">{cat}</h2>' in page
    assert hashlib.sha256(report.to_json().encode()).hexdigest() in page
    assert "2026-11-01 09:00:00 UTC (1405-08-10)" in page and "Settings of the run" in page
    assert '<span class="verdict v-fail">fail</span>' in page and "PKCS#11 2.40 5.6 C_Login" in page
    # Performance: ops/s in one chart, the percentiles side by side in another, pass bounds and
    # other categories' numbers left out of the charts (they are in the tables); no JavaScript.
    charts = reporting.performance_series(report)
    assert set(charts) == {"ops_per_s", "latency (ms)"}
    assert charts["ops_per_s"] == [("PERF-SIGN-RSA2048", {"1 session": 1234.5}),
                                   ("PERF-SIGN-P256", {"1 session": 12000.0, "4 processes": 30000.0,
                                                       "4 sessions": 11000.0})]
    assert charts["latency (ms)"] == [("PERF-SIGN-RSA2048", {"p50": 0.78, "p99": 1.9}),
                                      ("PERF-DIGEST", {"digest p50": 0.01, "digest p99": 0.03, "random p50": 0.012}),
                                      ("PERF-SIGN-P256", {"p50": 0.08, "p99": 0.2})]
    assert page.count("<svg") == 2 and "12,000" in page and "1,234" in page
    assert "ops_per_s 900, signatures 100,000" in page and "bound_p50_ms 2,000" in page


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=40))
def test_html_escapes_any_text_the_device_gives(lab: dict, text: str) -> None:
    """Whatever a token calls itself or a case reports, the page's markup is the same: every
    ``<`` in the page is ours (the count does not change with the text)."""
    def page(value: str) -> str:
        report = sample_report(lab["module"])
        report.device = dataclasses.replace(report.device, token_label=value, token_serial=value)
        report.results[0].detail = value
        report.results[0].id = value
        report.results[3].measurements = {value: 1.0}  # a stability count: tabled, not charted
        return reporting.render_html(report)

    assert page(text).count("<") == page("x").count("<")


def test_html_without_performance_and_write_reports(lab: dict, tmp_path: Path) -> None:
    from iranpki.conformance.runner import write_reports

    report = sample_report(lab["module"])
    report.results = [r for r in report.results if r.category != "performance"]
    json_path, html_path = write_reports(report, tmp_path / "out")
    assert json_path.read_text(encoding="utf-8") == report.to_json()
    page = html_path.read_text(encoding="utf-8")
    assert "<svg" not in page and "Performance" not in page and "passed: no case failed" in page


# ---- the signed report ----------------------------------------------------------------------------

def test_signed_report_verifies_here_and_with_openssl(lab: dict) -> None:
    data = lab["report"].read_bytes()
    p7s = _sign(lab, data)
    ok = attestation.verify_report(data, p7s, [lab["ours"]["root"]])
    assert ok.report_sha256 == hashlib.sha256(data).hexdigest() and "NTRIR-10380284790" in ok.signer
    (lab["base"] / "report.json.p7s").write_bytes(p7s)
    out = run(["openssl", "cms", "-verify", "-binary", "-content", str(lab["report"]), "-inform", "DER",
               "-in", str(lab["base"] / "report.json.p7s"), "-CAfile", str(lab["ours"]["files"]["root"]),
               "-purpose", "any", "-out", "/dev/null"])
    assert out.returncode == 0, out.stderr


def test_changed_report_is_refused(lab: dict) -> None:
    data = lab["report"].read_bytes()
    p7s = _sign(lab, data)
    changed = data.replace(b'"verdict": "not_applicable"', b'"verdict": "pass"', 1)
    assert changed != data
    with pytest.raises(attestation.AttestationError, match="changed after signing"):
        attestation.verify_report(changed, p7s, [lab["ours"]["root"]])
    with pytest.raises(attestation.AttestationError, match="changed after signing"):
        attestation.verify_report(data + b" ", p7s, [lab["ours"]["root"]])
    # Signed by a lab under a root nobody here trusts.
    o = lab["other"]
    foreign = attestation.sign_report(data, o["signer"], o["cert"], o["chain"])
    with pytest.raises(attestation.AttestationError) as err:
        attestation.verify_report(data, foreign, [lab["ours"]["root"]])
    assert err.value.problems and "changed" not in str(err.value)


# ---- the approval -------------------------------------------------------------------------------

def test_approval_refused_for_a_failed_report(lab: dict) -> None:
    with pytest.raises(attestation.ApprovalRefusedError, match=r"SEC-PIN-LOCK \(fail\)") as err:
        _approve(lab, lab["failed"].read_bytes())
    assert err.value.cases == ["SEC-PIN-LOCK"]
    partial = sample_report(lab["module"])
    partial.results = [r for r in partial.results if r.category != "stability"]
    with pytest.raises(attestation.ApprovalRefusedError, match="the report has no stability cases"):
        _approve(lab, partial.to_json().encode())
    with pytest.raises(attestation.ApprovalRefusedError, match="valid_days 0"):
        _approve(lab, lab["report"].read_bytes(), valid_days=0)
    with pytest.raises(attestation.ApprovalRefusedError, match="not a conformance report"):
        _approve(lab, b'{"tool": "x"}')
    # Case code from outside the suite ran: recorded in the report, and no approval (issue 12 item 7).
    plugged = sample_report(lab["module"])
    plugged.settings["plugins"] = [{"plugin": "lab_cases.py", "path": "/srv/lab_cases.py", "sha256": "0" * 64}]
    with pytest.raises(attestation.ApprovalRefusedError, match="plugins: lab_cases.py"):
        _approve(lab, plugged.to_json().encode())


def test_approval_needs_every_required_case_of_the_class_passed(lab: dict) -> None:
    """Issue 12 item 1: a case the suite could not check (no SO PIN: not_checked) or that the
    device lacks (not_applicable) is no pass; a smart card without it is not approved, and the
    refusal names the case and why. A report that does not say its class is refused too."""
    for verdict, detail in ((Verdict.NOT_CHECKED, "no SO PIN was given"), (Verdict.NOT_APPLICABLE, "never locks")):
        report = sample_report(lab["module"])
        lock = next(r for r in report.results if r.id == "SEC-PIN-RETRY-LOCK")
        lock.verdict, lock.detail = verdict, detail
        with pytest.raises(attestation.ApprovalRefusedError, match=rf"SEC-PIN-RETRY-LOCK \({verdict.value}: {detail}\)") as err:
            _approve(lab, report.to_json().encode())
        assert err.value.cases == ["SEC-PIN-RETRY-LOCK"]
    dropped = sample_report(lab["module"])
    dropped.results = [r for r in dropped.results if r.id != "STAB-SIGN-SOAK"]
    with pytest.raises(attestation.ApprovalRefusedError, match=r"STAB-SIGN-SOAK \(not run\)"):
        _approve(lab, dropped.to_json().encode())
    unclassed = sample_report(lab["module"])
    del unclassed.settings["device_class"]
    with pytest.raises(attestation.ApprovalRefusedError, match="which class of device"):
        _approve(lab, unclassed.to_json().encode())
    # An HSM needs more than a smart card: the same report is not enough for one.
    as_hsm = sample_report(lab["module"])
    as_hsm.settings["device_class"] = "hsm"
    with pytest.raises(attestation.ApprovalRefusedError, match="a hsm must pass"):
        _approve(lab, as_hsm.to_json().encode())


def test_approval_verifies_and_names_the_module(lab: dict) -> None:
    data = lab["report"].read_bytes()
    p7m = _approve(lab, data, approval_id="LAB-1405-0042")
    a = attestation.verify_approval(p7m, [lab["ours"]["root"]], report_json=data, module_path=lab["module"])
    assert a.approval_id == "LAB-1405-0042" and a.checked == ["report", "module"]
    assert a.module == {"file": "libvendor-pkcs11.so", "sha256": hashlib.sha256(lab["module"].read_bytes()).hexdigest(),
                        "library_description": "Implementation of PKCS11", "library_version": "2.6",
                        "token_manufacturer": "SoftHSM project", "token_model": "SoftHSM v2", "firmware_version": "2.6"}
    assert a.report_sha256 == hashlib.sha256(data).hexdigest() and a.summary["total"] == len(Report.from_json(data).results)
    assert (a.valid_until - a.issued_at) == timedelta(days=365) and "NTRIR-10380284790" in a.lab
    # The document is canonical JSON that openssl prints, with the signature checked.
    (lab["base"] / "approval.p7m").write_bytes(p7m)
    out = run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(lab["base"] / "approval.p7m"),
               "-CAfile", str(lab["ours"]["files"]["root"]), "-purpose", "any"])
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["type"] == "iranpki-device-approval" and doc["version"] == 1
    assert out.stdout == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_approval_refused_for_another_module_report_time_or_root(lab: dict, tmp_path: Path) -> None:
    data = lab["report"].read_bytes()
    p7m = _approve(lab, data, valid_days=30)
    roots = [lab["ours"]["root"]]
    other_module = tmp_path / "libvendor-pkcs11.so"
    other_module.write_bytes(b"\x7fELF vendor module build 43")
    with pytest.raises(attestation.AttestationError, match="is not the module approved"):
        attestation.verify_approval(p7m, roots, module_path=other_module)
    with pytest.raises(attestation.AttestationError, match="is not the report approved"):
        attestation.verify_approval(p7m, roots, report_json=lab["failed"].read_bytes())
    with pytest.raises(attestation.AttestationError, match="expired on"):
        attestation.verify_approval(p7m, roots, at=datetime.now(timezone.utc) + timedelta(days=31))
    # Issued on a frozen clock two years ago for one year: expired now.
    frozen = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=730)
    old = _approve(lab, data, clock=FixedClock(frozen))
    with pytest.raises(attestation.AttestationError, match="expired on") as err:
        attestation.verify_approval(old, roots)
    assert err.value.problems == [f"expired on {(frozen + timedelta(days=365)).isoformat()} (checked at "
                                  f"{err.value.problems[0].split('checked at ')[1]}"]
    with pytest.raises(attestation.AttestationError):
        attestation.verify_approval(p7m, [lab["other"]["root"]])
    # A detached report signature is not an approval.
    with pytest.raises(attestation.AttestationError, match="not an iranpki-device-approval"):
        attestation.verify_approval(_sign(lab, data), roots)


# ---- the command --------------------------------------------------------------------------------

def _cli() -> click.Group:
    from iranpki_cli.conformance import conformance

    return conformance


def test_cli_sign_approve_verify(lab: dict, tmp_path: Path) -> None:
    cli, runner = _cli(), CliRunner()
    f = lab["ours"]["files"]
    report = tmp_path / "report.json"
    report.write_bytes(lab["report"].read_bytes())
    (tmp_path / "pass.txt").write_text(PASSPHRASE + "\n")
    key = ["--key", str(lab["ours"]["key"]), "--passphrase-file", str(tmp_path / "pass.txt"), "--cert", str(f["lab"]),
           "--chain", str(f["ca"])]
    res = runner.invoke(cli, ["sign-report", str(report), *key, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["out"] == str(report) + ".p7s"
    res = runner.invoke(cli, ["approve", str(report), *key, "--days", "365", "--out", str(tmp_path / "a.p7m"),
                              "--id", "LAB-7", "--json"])
    assert res.exit_code == 0, res.output
    assert PASSPHRASE not in res.output
    trust = ["--trust", str(f["root"])]
    res = runner.invoke(cli, ["verify-report", str(report), "--approval", str(tmp_path / "a.p7m"),
                              "--module", str(lab["module"]), *trust, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["ok"] and [c["check"] for c in out["checks"]] == ["signature", "approval"]
    assert out["checks"][1]["approval_id"] == "LAB-7"
    res = runner.invoke(cli, ["verify-report", str(report), *trust])
    assert res.exit_code == 0 and "signed by" in res.output

    # Refusals: a failed report, a changed report, an untrusted root, no trust root for a foreign lab.
    res = runner.invoke(cli, ["approve", str(lab["failed"]), *key, "--out", str(tmp_path / "b.p7m")])
    assert res.exit_code == 1 and "SEC-PIN-LOCK (fail)" in res.output and not (tmp_path / "b.p7m").exists()
    report.write_bytes(report.read_bytes().replace(b'"verdict": "not_applicable"', b'"verdict": "pass"', 1))
    res = runner.invoke(cli, ["verify-report", str(report), "--approval", str(tmp_path / "a.p7m"), *trust, "--json"])
    assert res.exit_code == 1
    out = json.loads(res.output)
    assert not out["ok"] and all(not c["ok"] for c in out["checks"])
    assert "changed after signing" in out["checks"][0]["problems"][0]
    assert "is not the report approved" in out["checks"][1]["problems"][0]
    res = runner.invoke(cli, ["verify-report", str(lab["report"]), "--approval", str(tmp_path / "a.p7m"),
                              "--trust", str(lab["other"]["files"]["root"])])
    assert res.exit_code == 1 and "REFUSED" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["verify-report", str(lab["failed"]), *trust])
    assert res.exit_code == 2 and "nothing to verify" in res.output


def test_cli_with_the_lab_key_on_a_token(softhsm: dict[str, str], lab: dict, tmp_path: Path) -> None:
    """The lab's key on a (SoftHSM2) token, PIN from the environment, never in the output."""
    from iranpki.keys import KeySpec
    from iranpki.keys.pkcs11 import generate_keypair

    signer = generate_keypair("Test", "conformance-lab", KeySpec.parse("p256"))
    ca = lab["ours"]["ca"]
    cert = tmp_path / "lab-token.pem"
    cert.write_bytes(ca.issue("organisational-seal", IssueRequest(parse_subject(SUBJECTS["organisational-seal"]),
                                                                   signer.public_key)).pem)
    cli, runner = _cli(), CliRunner()
    key = ["--key", "pkcs11:token=Test;object=conformance-lab", "--cert", str(cert), "--chain",
           str(lab["ours"]["files"]["ca"])]
    res = runner.invoke(cli, ["approve", str(lab["report"]), *key, "--days", "30", "--out", str(tmp_path / "a.p7m")])
    assert res.exit_code == 0, res.output
    assert softhsm["pin"] not in res.output
    a = attestation.verify_approval((tmp_path / "a.p7m").read_bytes(), [lab["ours"]["root"]],
                                    report_json=lab["report"].read_bytes(), module_path=lab["module"])
    assert (a.valid_until - a.issued_at).days == 30


def test_the_cases_that_need_attention_come_first(lab: dict) -> None:
    """Issue 12 item 8: failed, erred and not-checked cases lead the page, with clause and detail."""
    report = sample_report(lab["module"], fail=True)
    report.results.append(CaseResult("SEC-PIN-RETRY-LOCK-X", "security", "PKCS#11 2.40 5.6", "lock",
                                     Verdict.NOT_CHECKED, "no SO PIN was given"))
    page = reporting.render_html(report)
    head = page.index('<h2 id="attention">Failed, erred and not checked (2)</h2>')
    assert head < page.index("<h2>Device</h2>") < page.index('<h2 id="cat-functional">')
    section = page[head:page.index("<h2>Device</h2>")]
    assert "SEC-PIN-LOCK" in section and "PKCS#11 2.40 5.6 C_Login" in section
    assert "SEC-PIN-RETRY-LOCK-X" in section and "no SO PIN was given" in section and "not_checked" in section
    assert "1 case(s) could not be checked here" in page
    assert "FUNC-INFO-LIBRARY" not in section  # a pass is not in it


def test_the_report_says_which_required_cases_did_not_pass_and_why(lab: dict) -> None:
    """Issue 12 item 1: the page says where the device stands against its class's set: every
    required case that did not pass, with its verdict and why, or that all passed."""
    report = sample_report(lab["module"])
    page = reporting.render_html(report)
    assert '<h2 id="required">Required for approval as smartcard</h2>' in page
    count = len(required_cases("smartcard", REGISTRY))
    assert f"All {count} cases a smartcard must pass passed." in page

    for r in report.results:
        if r.id == "SEC-PIN-RETRY-LOCK":
            r.verdict, r.detail = Verdict.NOT_CHECKED, "no SO PIN was given (IRANPKI_PKCS11_SO_PIN)"
    report.results = [r for r in report.results if r.id != "FUNC-SETPIN"]
    page = reporting.render_html(report)
    head = page.index('<h2 id="required">')
    section = page[head:page.index("<h2", head + 1)]
    assert f"2 of the {count} cases a smartcard must pass did not pass" in section
    assert "SEC-PIN-RETRY-LOCK" in section and "not_checked" in section and "no SO PIN was given" in section
    assert "FUNC-SETPIN" in section and "not run" in section
    # The page leads with it: right after the summary, before the device.
    assert page.index("<h2>Summary</h2>") < head < page.index("<h2>Device</h2>")

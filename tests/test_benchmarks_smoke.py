"""benchmarks/crl.py runs end to end in its smoke size: CA and seeded store, openssl's CA
database, both CRLs generated, checked against each other, and the ratio lines printed. Speed is
never asserted: the figures of a 2,000-entry run on shared cores mean nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120


@pytest.mark.slow
def test_crl_benchmark_smoke() -> None:
    proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "crl.py"), "--entries", "2000", "--rounds", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the script removes its folder on SIGTERM
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"benchmarks/crl.py took more than {TIMEOUT} s:\n{out}\n{err}")
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{out}\n{err}"
    assert "FAILED" not in out + err and "Traceback" not in err
    lines = out.splitlines()
    for side in ("iranpki generate_crl", "iranpki crl generate", "openssl ca -gencrl"):
        assert any(line.startswith(side) for line in lines), out
    for what in ("time", "memory"):
        assert any(line.startswith(f"ratio {what}") and "iranpki/openssl" in line for line in lines), out
        assert any(line.startswith(f"ratio {what}") and "(CLI)/openssl" in line for line in lines), out
    assert "2,000 entries each" in out and "revokedCertificates identical" in out, out


@pytest.mark.slow
def test_issuance_benchmark_smoke() -> None:
    """benchmarks/issuance.py in its smallest size: every row, and the per-process rows."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "issuance.py"), "--seconds", "0.05", "--rounds",
                          "1", "--cli-runs", "1"], capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    for row in ("rsa2048   software", "p256      software", "rsa2048   softhsm2", "p256      softhsm2",
                "iranpki cert issue", "openssl x509 -req", "ratio iranpki/openssl"):
        assert row in out.stdout, out.stdout


@pytest.mark.slow
def test_listing_benchmark_smoke() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "listing.py"), "--entries", "3000", "--small", "300",
                          "--rounds", "1"], capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    for row in ("first page, all", "first page, by CA", "first page, revoked", "ten pages, by CA",
                "iranpki cert list (CLI)"):
        assert row in out.stdout, out.stdout


@pytest.mark.slow
def test_ra_benchmark_smoke() -> None:
    """benchmarks/ra.py in its smallest size: the anchor, the RA path, the API with concurrent
    clients, and the ratios."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ra.py"), "--seconds", "0.05", "--rounds", "1",
                          "--clients", "4", "--api-seconds", "1"], capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    for row in ("direct issuance (anchor)", "full issuance through the RA", "ratio ra/direct", "registrations",
                "api register (4 clients)", "api issuance (4 clients)", "ratio api/direct per wall second",
                "ratio api/direct per CPU second", "p99"):
        assert row in out.stdout, out.stdout


@pytest.mark.slow
def test_portals_benchmark_smoke() -> None:
    """benchmarks/portals.py in its smallest size: the anchor, the status page, the form, the ratios."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "portals.py"), "--clients", "4", "--seconds", "0.5"],
                         capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    for row in ("stylesheet (anchor)", "repository status page", "applicant form submitted", "ratio to the anchor",
                "p99"):
        assert row in out.stdout, out.stdout


@pytest.mark.slow
def test_audit_benchmark_smoke() -> None:
    """benchmarks/audit.py in a small size: both parts, their ratio lines and the memory line."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "audit.py"), "--events", "5000", "--seconds",
                           "0.5", "--rounds", "1"], capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ratio issuance with/without tree" in done.stdout and "SQLite reading them alone (anchor)" in done.stdout
    assert "5,000 events" in done.stdout and "memory: a log ten times longer" in done.stdout


@pytest.mark.slow
def test_store_benchmark_smoke() -> None:
    """benchmarks/store.py in its smallest size: both stores, every row and its ratio."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "store.py"), "--seconds", "0.05", "--rounds", "1",
                          "--certs", "40"], capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAILED" not in out.stdout + out.stderr
    for row in ("issuance, single", "issuance, batch of 100", "OCSP answers"):
        line = next((x for x in out.stdout.splitlines() if x.startswith(row)), "")
        assert len(line.split()) >= 5 and float(line.split()[-1]) > 0, out.stdout


@pytest.mark.slow
def test_crl_benchmark_on_postgresql_smoke() -> None:
    """benchmarks/crl.py with the entries read from PostgreSQL: the checked copy, both CRLs, the ratios."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "crl.py"), "--entries", "500", "--rounds", "1",
                          "--store", "postgresql"], capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "copied into PostgreSQL" in out.stdout and "iranpki reading from postgresql" in out.stdout
    assert "500 entries each" in out.stdout and "revokedCertificates identical" in out.stdout, out.stdout

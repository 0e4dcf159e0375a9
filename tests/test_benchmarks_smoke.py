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
    for side in ("iranpki generate_crl", "openssl ca -gencrl"):
        assert any(line.startswith(side) for line in lines), out
    for what in ("time", "memory"):
        assert any(line.startswith(f"ratio {what}") and "iranpki/openssl" in line for line in lines), out
    assert "2,000 entries each" in out and "revokedCertificates identical" in out, out

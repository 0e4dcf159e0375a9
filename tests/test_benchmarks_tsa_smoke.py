"""benchmarks/tsa.py runs end to end in its smoke size: the workspace built, raw signing timed,
openssl ts -reply run, the TSA served, checked by openssl ts -verify and loaded by wrk, and the
ratio lines printed. Speed is never asserted: a one-second run on shared cores means nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "tsa.py"
TIMEOUT = 180


@pytest.mark.slow
def test_tsa_benchmark_smoke() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--duration", "1", "--connections", "2", "--openssl-runs", "3",
                           "--sign-count", "50"], capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert "FAILED" not in proc.stdout and "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("raw signing") and "signatures/s" in line for line in lines), proc.stdout
    assert any(line.startswith("openssl ts -reply") and "stamps/s" in line for line in lines), proc.stdout
    assert any(line.startswith("iranpki tsa serve") and "p99" in line for line in lines), proc.stdout
    assert any(line.startswith("ratio iranpki / raw signing: ") and "per core" in line for line in lines), proc.stdout
    assert any(line.startswith("iranpki tsa serve used ") and "stamps/s per core" in line for line in lines), proc.stdout
    assert any(line.startswith("ratio iranpki / openssl ts -reply: ") for line in lines), proc.stdout

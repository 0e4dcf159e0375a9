"""benchmarks/ocsp.py runs end to end in its smoke size: both responders set up, checked by the
openssl client, loaded by wrk, stopped, and the ratio lines printed. Speed is never asserted:
the figures of a one-second run on shared cores mean nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "ocsp.py"
TIMEOUT = 120


@pytest.mark.slow
def test_ocsp_benchmark_smoke() -> None:
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--duration", "1", "--connections", "2", "--certs", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the script stops its responders and removes its folder on SIGTERM
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"benchmarks/ocsp.py took more than {TIMEOUT} s:\n{out}\n{err}")
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{out}\n{err}"
    assert "FAILED" not in out and "Traceback" not in err
    for server in ("openssl", "iranpki pre-produced", "iranpki on-demand"):
        for mode in ("keep-alive", "per-connection"):
            assert any(line.startswith(f"{server} ") and mode in line for line in out.splitlines()), out
    for signing in ("pre-produced", "on-demand"):
        for mode in ("keep-alive", "per-connection"):
            assert f"ratio iranpki {signing} / openssl, {mode}:" in out, out
    assert any(line.startswith("iranpki pre-produced") and "keep-alive, hot" in line for line in out.splitlines()), out
    assert "20 distinct requests, one per certificate" in out and "per core" in out, out


@pytest.mark.slow
def test_ocsp_benchmark_on_postgresql_smoke() -> None:
    """The same with the responders reading PostgreSQL (a private cluster in the benchmark's own
    network namespace): set up, checked by the openssl client, loaded, the ratio lines printed."""
    out = subprocess.run([sys.executable, str(SCRIPT), "--duration", "1", "--connections", "2", "--certs", "20",
                          "--store", "postgresql"], capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAILED" not in out.stdout and "Traceback" not in out.stderr
    assert "iranpki's store: postgresql" in out.stdout, out.stdout
    for signing in ("pre-produced", "on-demand"):
        assert f"ratio iranpki {signing} / openssl, keep-alive:" in out.stdout, out.stdout

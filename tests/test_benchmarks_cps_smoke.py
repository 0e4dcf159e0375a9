"""benchmarks/cps_check.py runs end to end in its smoke size: a level-2 CA's artefacts issued into a
folder, checked by check_cps in one process and by the pkilint command-line tools one process per
file, and the ratio lines printed. Speed is never asserted: the figures of a run of a dozen
artefacts on shared cores mean nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "cps_check.py"
TIMEOUT = 180


@pytest.mark.slow
def test_cps_check_benchmark_smoke(tmp_path: Path) -> None:
    # --keep puts the folder under tmp_path, so a run killed at the time limit leaves nothing behind;
    # the benchmark's launcher starts no further pkilint process once the benchmark is gone.
    work = tmp_path / "bench"
    argv = [sys.executable, str(SCRIPT), "--certificates", "7", "--rounds", "1", "--keep", str(work)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"benchmarks/cps_check.py took more than {TIMEOUT} s:\n{exc.stdout!r}\n{exc.stderr!r}")
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{out}\n{proc.stderr}"
    assert "FAILED" not in out + proc.stderr and "Traceback" not in proc.stderr
    lines = out.splitlines()
    # 7 end-entity certificates (one per profile), the root and the intermediate, the CRL, one OCSP response.
    assert "11 artefacts" in lines[0], out
    assert len(list((work / "artefacts").rglob("*.*"))) == 11
    for side in ("iranpki check_cps (in-process)", "iranpki, whole process", "pkilint CLI, process per file"):
        assert any(line.startswith(side) for line in lines), out
    for what in ("time", "memory"):
        assert any(line.startswith(f"ratio {what}") and "iranpki/pkilint-CLI" in line for line in lines), out
    assert "the report describes all 11 artefacts" in out, out

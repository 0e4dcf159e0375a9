"""`pip install .` gives a working iranpki with its profiles and policy inside the package,
and the examples keep working."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_profiles_policy_and_cli(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                          "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    [wheel] = tmp_path.glob("iranpki-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    profiles = {p.name for p in (ROOT / "profiles").glob("*.yaml")}
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith("iranpki/_data/profiles/")} == profiles
    assert "iranpki/_data/policies/national-cp.yaml" in names
    assert "iranpki/_data/anchors/iran-root-ca-g3.pem" in names  # the national trust anchor
    assert "iranpki/compliance/outline.py" in names and "iranpki_cli/cps.py" in names
    assert "iranpki/_data/policies/examples/general-intermediate-ca-cps.md" in names
    assert "iranpki_cli/main.py" in names and "iranpki/py.typed" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    # Every module of the library is in the wheel (a package left out of pyproject.toml is not).
    modules = {f"iranpki/{p.relative_to(ROOT / 'src' / 'iranpki').as_posix()}"
               for p in (ROOT / "src" / "iranpki").rglob("*.py")}
    assert modules - set(names) == set()
    # Installed away from the checkout, the package finds its data.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import iranpki, iranpki.profiles as p, iranpki.policy as c;"
            "import iranpki.validation as v, iranpki.compliance.claims, iranpki.compliance.artefacts;"
            "assert iranpki.__file__.startswith(sys.argv[1]), iranpki.__file__;"
            "print(len(p.list_profiles()), c.load_policy().level(2).policy_oid, len(v.national_anchors()))")
    run = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(len(profiles)), "2.16.364.101.1.2", "1"]


def test_library_example_runs() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "issue_with_library.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "issued " in out.stdout and "check digit is 8, expected 9" in out.stdout


def test_the_library_never_imports_click_or_rich() -> None:
    code = ("import sys, iranpki.ca, iranpki.workspace, iranpki.keys.pkcs11, iranpki.store, iranpki.crl, iranpki.ocsp,"
            " iranpki.ocsp.server, iranpki.tsa, iranpki.validation;"
            "bad = [m for m in ('click', 'rich') if m in sys.modules]; assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

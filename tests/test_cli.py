"""The `iranpki` command as an operator uses it, on SoftHSM2, with PINs only in the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from iranpki_cli.main import cli

from .conftest import openssl_verify, run

IRANPKI = str(Path(sys.executable).parent / "iranpki")


@pytest.fixture(scope="module")
def ws(softhsm, tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("cli")
    home = base / "ca"
    env = {**os.environ, "IRANPKI_HOME": str(home)}

    def iranpki(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([IRANPKI, *args], capture_output=True, text=True, env=env, timeout=120)
        if ok:
            assert out.returncode == 0, f"iranpki {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
        return out

    iranpki("init", str(home), "--repository-url", "http://repo.test.ir", "--ocsp-url", "http://ocsp.test.ir")
    iranpki("key", "generate", "--token", "Root CA", "--label", "cli-root", "--algorithm", "rsa3072")
    iranpki("key", "generate", "--token", "GICA", "--label", "cli-gica3", "--algorithm", "p256")
    iranpki("ca", "create-root", "--name", "root", "--key", "pkcs11:token=Root%20CA;object=cli-root",
            "--subject", "C=IR,O=I.R.Government,OU=Root CA,CN=CLI Test Root")
    iranpki("ca", "create-intermediate", "--parent", "root", "--level", "3", "--name", "gica3",
            "--key", "pkcs11:token=GICA;object=cli-gica3", "--subject", "C=IR,O=GICA,CN=GICA Level 3 CLI")
    iranpki("ca", "export", "root", "--out", str(base / "root.pem"))
    iranpki("ca", "export", "gica3", "--out", str(base / "gica3.pem"))
    return {"home": home, "base": base, "run": iranpki, "env": env}


def _csr(base: Path, name: str, subj: str, *extra: str) -> Path:
    out = run(["openssl", "req", "-new", "-utf8", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-keyout", str(base / f"{name}.key"), "-subj", subj, "-out", str(base / f"{name}.csr"), *extra])
    assert out.returncode == 0, out.stderr
    return base / f"{name}.csr"


def test_issue_from_csr_show_export_revoke(ws) -> None:
    base, iranpki = ws["base"], ws["run"]
    csr = _csr(base, "site", "/C=IR/ST=Tehran/O=Example Co", "-addext", "subjectAltName=DNS:www.example.ir")
    out = iranpki("cert", "issue", "--ca", "gica3", "--profile", "ssl-server", "--csr", str(csr), "--json")
    info = json.loads(out.stdout)
    assert info["status"] == "valid" and info["profile"] == "ssl-server" and info["ca"] == "gica3"
    (base / "site.pem").write_text(info["pem"])
    assert openssl_verify(base / "root.pem", base / "gica3.pem", base / "site.pem", "sslserver").returncode == 0
    serial = info["serial"]
    # The certificate is in the store before it was printed.
    listed = json.loads(iranpki("cert", "list", "--ca", "gica3", "--json").stdout)
    assert serial in [c["serial"] for c in listed]
    shown = iranpki("cert", "show", serial).stdout
    assert "www.example.ir" in shown and "UTC (14" in shown  # Gregorian and Jalali dates
    chain = iranpki("cert", "export", serial, "--chain").stdout
    assert chain.count("BEGIN CERTIFICATE") == 3
    revoked = json.loads(iranpki("cert", "revoke", serial, "--reason", "keyCompromise", "--json").stdout)
    assert revoked["status"] == "revoked" and revoked["reason"] == "keyCompromise"
    again = iranpki("cert", "revoke", serial, "--reason", "superseded", ok=False)
    assert again.returncode == 1 and "a revocation is final" in again.stderr and "Traceback" not in again.stderr


def test_issue_from_public_key_and_subject(ws) -> None:
    base, iranpki = ws["base"], ws["run"]
    _csr(base, "person", "/CN=x")
    run(["openssl", "pkey", "-in", str(base / "person.key"), "-pubout", "-out", str(base / "person.pub")])
    out = iranpki("cert", "issue", "--ca", "gica3", "--profile", "personal-signature", "--public-key",
                  str(base / "person.pub"), "--subject", "C=IR,SN=محمدی,GN=علی,serialNumber=0499370899,CN=علی محمدی",
                  "--out", str(base / "person.pem"))
    assert "issued serial" in out.stdout
    assert openssl_verify(base / "root.pem", base / "gica3.pem", base / "person.pem", "smimesign").returncode == 0


def test_profile_violations_are_listed_by_the_cli(ws) -> None:
    base, iranpki = ws["base"], ws["run"]
    csr = _csr(base, "bad", "/C=IR/SN=Mohammadi/GN=علی/serialNumber=0499370898/CN=x")
    out = iranpki("cert", "issue", "--ca", "gica3", "--profile", "personal-signature", "--csr", str(csr), ok=False)
    assert out.returncode == 1
    assert "subject SN" in out.stderr and "subject serialNumber" in out.stderr and "check digit" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("args, message", [
    (["cert", "issue", "--ca", "gica3", "--profile", "nope", "--subject", "CN=x", "--public-key", "/etc/hostname"],
     "unknown profile 'nope'; must be one of"),
    (["cert", "issue", "--ca", "nosuch", "--profile", "tsa", "--subject", "CN=x", "--public-key", "/etc/hostname"],
     "no CA named 'nosuch'"),
    (["cert", "show", "abcdef"], "no certificate with serial number abcdef"),
    (["key", "generate", "--token", "Nope", "--label", "x", "--algorithm", "p256"], "no token labelled 'Nope'"),
    (["key", "generate", "--token", "GICA", "--label", "x", "--algorithm", "rsa1024"], "RSA key size 1024 is not offered; must be one of 2048, 3072, 4096"),
    (["ca", "create-root", "--name", "r2", "--key", "pkcs11:token=GICA;object=x?pin-value=1", "--subject", "CN=x"],
     "must never be written"),
])
def test_clear_errors(ws, args: list[str], message: str) -> None:
    out = ws["run"](*args, ok=False)
    assert out.returncode == 1 and message in " ".join(out.stderr.split()), out.stderr
    assert "Traceback" not in out.stderr


def test_outside_a_workspace(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["cert", "list", "--home", str(tmp_path)])
    assert result.exit_code == 1 and "not an iranpki workspace" in result.output


def test_pins_never_reach_output_logs_or_store(ws, softhsm) -> None:
    pin = softhsm["pin"]
    iranpki = ws["run"]
    outputs = [iranpki(*a) for a in (["key", "list", "--token", "GICA"], ["ca", "list"], ["cert", "list"],
                                     ["token", "list"], ["key", "list"])]
    for out in outputs:
        assert pin not in out.stdout and pin not in out.stderr
    store = (ws["home"] / "iranpki.sqlite3").read_bytes()
    for name in os.listdir(ws["home"]):
        if name.startswith("iranpki.sqlite3"):
            store += (ws["home"] / name).read_bytes()
    assert pin.encode() not in store and softhsm["so_pin"].encode() not in store
    import sqlite3

    db = sqlite3.connect(ws["home"] / "iranpki.sqlite3")
    details = " ".join(r[0] for r in db.execute("SELECT details FROM audit"))
    events = [r[0] for r in db.execute("SELECT event FROM audit")]
    db.close()
    assert "key.generated" in events and "cli-root" in details  # the log is there and readable
    assert pin not in details and softhsm["so_pin"] not in details


def test_json_everywhere(ws) -> None:
    iranpki = ws["run"]
    for args in (["ca", "list"], ["ca", "show", "gica3"], ["cert", "list"], ["key", "list"], ["profile", "list"],
                 ["profile", "show", "tsa"], ["token", "list"]):
        json.loads(iranpki(*args, "--json").stdout)


def test_help_shows_runnable_examples() -> None:
    runner = CliRunner()
    for group in ("ca", "cert", "key", "token", "profile"):
        result = runner.invoke(cli, [group, "--help"])
        assert result.exit_code == 0 and "Example" in result.output and "iranpki " in result.output


def test_software_keys_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    home = str(tmp_path / "ws")
    pass_file = tmp_path / "pass.txt"
    pass_file.write_text("file passphrase 123\n")
    monkeypatch.setenv("IRANPKI_KEY_PASSPHRASE", "env passphrase 456")

    def ok(*args: str) -> str:
        result = runner.invoke(cli, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    ok("init", home, "--repository-url", "http://repo.test.ir")
    ok("key", "generate", "--home", home, "--label", "root", "--algorithm", "p384")
    ok("key", "generate", "--home", home, "--label", "l1", "--algorithm", "p256", "--passphrase-file", str(pass_file))
    ok("ca", "create-root", "--home", home, "--name", "root", "--key", "root", "--subject", "C=IR,O=T,CN=T Root")
    # Each key is opened with its own source: the root's passphrase from the environment, the
    # level-1 key's from the file.
    ok("ca", "create-intermediate", "--home", home, "--parent", "root", "--level", "1", "--name", "l1",
       "--key", "l1", "--subject", "C=IR,O=T,CN=T L1", "--passphrase-file", str(pass_file))
    result = runner.invoke(cli, ["ca", "create-intermediate", "--home", home, "--parent", "root", "--level", "2",
                                 "--name", "l2", "--key", "l1", "--subject", "C=IR,O=T,CN=T L2",
                                 "--passphrase-file", str(pass_file)])
    assert result.exit_code == 1 and "requires the CA key on a lab-approved token or HSM" in result.output
    pub = tmp_path / "tsa.pub.pem"
    made = json.loads(ok("key", "generate", "--home", home, "--label", "tsa", "--algorithm", "p256",
                         "--pubout", str(pub), "--json"))
    # The public key, for `cert issue --public-key`, matches the key written encrypted.
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

    private = load_pem_private_key((tmp_path / "ws" / "keys" / "tsa.pem").read_bytes(), b"env passphrase 456")
    assert load_pem_public_key(pub.read_bytes()) == private.public_key()
    assert made["public_key"] == pub.read_text()
    keys = json.loads(ok("key", "list", "--home", home, "--json"))
    assert {k["label"]: k["backend"] for k in keys} == {"root": "software", "l1": "software", "tsa": "software"}
    for key_file in (tmp_path / "ws" / "keys").iterdir():
        text = key_file.read_bytes()
        assert b"ENCRYPTED PRIVATE KEY" in text and b"passphrase" not in text

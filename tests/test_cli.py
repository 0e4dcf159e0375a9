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
    iranpki("key", "generate", "--token", "GICA", "--label", "cli-gica3-tls", "--algorithm", "p256")
    iranpki("ca", "create-root", "--name", "root", "--key", "pkcs11:token=Root%20CA;object=cli-root",
            "--subject", "C=IR,O=I.R.Government,OU=Root CA,CN=CLI Test Root")
    iranpki("ca", "create-intermediate", "--parent", "root", "--level", "3", "--purpose", "signing", "--name", "gica3",
            "--key", "pkcs11:token=GICA;object=cli-gica3", "--subject", "C=IR,O=GICA,CN=GICA Level 3 CLI")
    iranpki("ca", "create-intermediate", "--parent", "root", "--level", "3", "--purpose", "tls", "--name", "gica3tls",
            "--key", "pkcs11:token=GICA;object=cli-gica3-tls", "--subject", "C=IR,O=GICA,CN=GICA Level 3 TLS CLI")
    iranpki("ca", "export", "root", "--out", str(base / "root.pem"))
    iranpki("ca", "export", "gica3", "--out", str(base / "gica3.pem"))
    iranpki("ca", "export", "gica3tls", "--out", str(base / "gica3tls.pem"))
    return {"home": home, "base": base, "run": iranpki, "env": env}


def _csr(base: Path, name: str, subj: str, *extra: str) -> Path:
    out = run(["openssl", "req", "-new", "-utf8", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-keyout", str(base / f"{name}.key"), "-subj", subj, "-out", str(base / f"{name}.csr"), *extra])
    assert out.returncode == 0, out.stderr
    return base / f"{name}.csr"


def test_issue_from_csr_show_export_revoke(ws) -> None:
    base, iranpki = ws["base"], ws["run"]
    csr = _csr(base, "site", "/C=IR/ST=Tehran/O=Example Co", "-addext", "subjectAltName=DNS:www.example.ir")
    out = iranpki("cert", "issue", "--ca", "gica3tls", "--profile", "ssl-server", "--csr", str(csr), "--json")
    info = json.loads(out.stdout)
    assert info["status"] == "valid" and info["profile"] == "ssl-server" and info["ca"] == "gica3tls"
    (base / "site.pem").write_text(info["pem"])
    assert openssl_verify(base / "root.pem", base / "gica3tls.pem", base / "site.pem", "sslserver").returncode == 0
    serial = info["serial"]
    # The certificate is in the store before it was printed.
    listed = json.loads(iranpki("cert", "list", "--ca", "gica3tls", "--json").stdout)
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
    ok("ca", "create-intermediate", "--home", home, "--parent", "root", "--level", "1", "--purpose", "signing", "--name", "l1",
       "--key", "l1", "--subject", "C=IR,O=T,CN=T L1", "--passphrase-file", str(pass_file))
    result = runner.invoke(cli, ["ca", "create-intermediate", "--home", home, "--parent", "root", "--level", "2",
                                 "--purpose", "signing",
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


# ---- names, labels and arguments (review items 1 and 7) --------------------------------------

@pytest.mark.parametrize("name", ["../../../x", "/tmp/evil", "a?b#c", "a\nb", "a\x00b", "گیکا", "x" * 5000, "-x",
                                  "a b", "a/b", ".."])
def test_a_ca_name_is_a_slug(ws, name: str) -> None:
    """Every name that could leave the workspace, break a URL or fail later is refused at creation,
    in one line that says what a CA name is, before any key is used."""
    if "\x00" in name:  # a NUL cannot cross execve; the library refuses it (next test)
        return
    out = ws["run"]("ca", "create-intermediate", "--parent", "root", "--level", "3", "--purpose", "tls", "--name", name,
                    "--key", "pkcs11:token=GICA;object=cli-gica3", "--subject", "C=IR,O=GICA,CN=x", ok=False)
    assert out.returncode == 1, out.stdout
    assert "is not allowed; a CA name is 1 to 63 ASCII letters, digits, '-' and '_'" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    cas = json.loads(ws["run"]("ca", "list", "--json").stdout)
    assert name not in [c["name"] for c in cas]


def test_library_refuses_bad_names_and_paths_outside(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from iranpki.ca import create_root, parse_subject
    from iranpki.errors import InvalidNameError
    from iranpki.keys import SoftwareSigner
    from iranpki.names import check_ca_name, inside
    from iranpki.store import SqliteStore

    store = SqliteStore(str(tmp_path / "s.sqlite3"), create=True)
    for bad in ("a\x00b", "../x", "x" * 64, "", "a.b"):
        with pytest.raises(InvalidNameError):
            create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), bad,
                        parse_subject("C=IR,O=T,CN=T"), repository_url="http://r.test.ir")
    assert store.list_cas() == []
    assert check_ca_name("gica-2_a") == "gica-2_a"
    assert inside(tmp_path, "crl/x.crl") == tmp_path.resolve() / "crl/x.crl"
    for escape in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(InvalidNameError, match="leads outside"):
            inside(tmp_path, escape)
    (tmp_path / "link").symlink_to("/tmp")
    with pytest.raises(InvalidNameError, match="leads outside"):
        inside(tmp_path, "link/x")


def test_a_name_written_into_the_store_by_hand_never_reaches_a_path_or_url(tmp_path: Path) -> None:
    """A record changed behind the library's back (an older version, an edited file): CRL
    generation refuses its name instead of writing outside the workspace."""
    import sqlite3

    runner = CliRunner()
    home = str(tmp_path / "ws")
    env = {"IRANPKI_KEY_PASSPHRASE": "a passphrase of length"}
    for args in (["init", home, "--repository-url", "http://repo.test.ir"],
                 ["key", "generate", "--home", home, "--label", "root", "--algorithm", "p384"],
                 ["ca", "create-root", "--home", home, "--name", "root", "--key", "root", "--subject", "C=IR,O=T,CN=R"]):
        result = runner.invoke(cli, args, env=env)
        assert result.exit_code == 0, result.output
    db = sqlite3.connect(Path(home) / "iranpki.sqlite3")
    db.execute("PRAGMA foreign_keys=OFF")
    db.execute("UPDATE cas SET name = '../../../escaped' WHERE name = 'root'")
    db.commit()
    db.close()
    result = runner.invoke(cli, ["crl", "generate", "--home", home, "--ca", "../../../escaped"], env=env)
    assert result.exit_code == 1 and "leads outside" in result.output, result.output
    db = sqlite3.connect(Path(home) / "iranpki.sqlite3")
    assert db.execute("SELECT count(*) FROM crl_numbers").fetchone()[0] == 0  # no CRL number was taken
    db.close()
    assert not list(tmp_path.parent.glob("**/escaped*.crl")) and not (tmp_path / "escaped").exists()


def test_undecodable_arguments_and_labels_are_refused_before_the_token(ws, softhsm) -> None:
    """`key generate --label $'\\xff'` once crashed inside the PKCS#11 module (python-pkcs11 frees a
    half-built template when the label does not encode); now the argument is refused first."""
    env = {**ws["env"]}
    for args in ([b"key", b"generate", b"--token", b"GICA", b"--label", b"\xff", b"--algorithm", b"p256"],
                 [b"cert", b"list", b"--ca", b"\xfe\xff"],
                 [b"cert", b"issue", b"--ca", b"gica3", b"--profile", b"tsa", b"--subject", b"CN=\xff",
                  b"--public-key", b"/dev/null"]):
        out = subprocess.run([IRANPKI.encode(), *args], capture_output=True, env=env, timeout=120)
        err = out.stderr.decode("utf-8", "replace")
        assert out.returncode == 2, (out.returncode, err)  # a usage error, never 139 (SIGSEGV) or 134
        assert "is not UTF-8 text" in err and "Traceback" not in err
    # The library refuses the same label before any call into the module (in a child process, so
    # that a regression crashes the child and fails here instead of taking pytest with it).
    code = ("from iranpki.keys import KeySpec\nfrom iranpki.keys.pkcs11 import generate_keypair\n"
            "from iranpki.errors import InvalidNameError\n"
            "for label in ('\\udcff', 'a\\x00b', 'a\\x1bb'):\n"
            "    try:\n        generate_keypair('GICA', label, KeySpec.parse('p256'))\n"
            "    except InvalidNameError as e:\n        print('refused', e.value == label)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.split("\n")[:3] == ["refused True"] * 3, (out.returncode, out.stderr)


def test_software_key_labels_are_file_names(tmp_path: Path) -> None:
    runner = CliRunner()
    home = str(tmp_path / "ws")
    assert runner.invoke(cli, ["init", home, "--repository-url", "http://repo.test.ir"]).exit_code == 0
    for label in ("../x", "/tmp/x", ".hidden", "a b", "x" * 65):
        result = runner.invoke(cli, ["key", "generate", "--home", home, "--label", label, "--algorithm", "p256"],
                               env={"IRANPKI_KEY_PASSPHRASE": "a passphrase of length"})
        assert result.exit_code == 1 and "it becomes a file name" in result.output, (label, result.output)
    assert sorted(p.name for p in (tmp_path / "ws" / "keys").iterdir()) == []
    assert not (tmp_path / "x.pem").exists()


# ---- PIN files named in key URIs (item 5) ---------------------------------------------------

def test_pin_source_in_a_key_uri_wins_over_the_environment(ws, softhsm, tmp_path: Path) -> None:
    """RFC 7512 pin-source names where a key's token PIN is; a wrong PIN in the environment must
    not hide it (the file was never read before)."""
    pin_file = tmp_path / "gica.pin"
    pin_file.write_text(softhsm["pin"] + "\n")
    pin_file.chmod(0o600)
    env = {**ws["env"], "IRANPKI_PKCS11_PIN": "00000000"}  # wrong: only the file holds the right PIN
    code = ("import sys\nfrom iranpki.keys import SecretSource, SignatureScheme, open_signer\n"
            "s = open_signer(sys.argv[1], SecretSource(env='IRANPKI_PKCS11_PIN', what='user PIN'))\n"
            "print(len(s.sign(b'x' * 32, SignatureScheme(hash='sha256'))))\n")

    def sign_with(key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code, key], capture_output=True, text=True, env=env, timeout=120)

    for key in (f"pkcs11:token=GICA;object=cli-gica3?pin-source={pin_file}",
                f"pkcs11:token=GICA;object=cli-gica3?pin-source=file://{pin_file}"):
        out = sign_with(key)
        assert out.returncode == 0 and int(out.stdout) > 0, out.stderr
    # Without pin-source the environment's wrong PIN is what is tried, and refused.
    out = sign_with("pkcs11:token=GICA;object=cli-gica3")
    assert out.returncode != 0 and "wrong user PIN" in out.stderr
    out = sign_with("pkcs11:token=GICA;object=cli-gica3?pin-source=|cat%20/etc/shadow")
    assert out.returncode != 0 and "is not a file" in out.stderr


# ---- the store's files, a read-only workspace, errors for scripts (items 6, 10, 11, 12) ---------

def test_store_files_are_private(tmp_path: Path) -> None:
    import stat

    runner = CliRunner()
    home = tmp_path / "ws"
    assert runner.invoke(cli, ["init", str(home), "--repository-url", "http://repo.test.ir"]).exit_code == 0
    # A second process holds the store open, so its -wal and -shm files exist while we look.
    import sqlite3

    db = sqlite3.connect(home / "iranpki.sqlite3")
    db.execute("SELECT count(*) FROM certificates").fetchone()
    assert runner.invoke(cli, ["cert", "list", "--home", str(home)]).exit_code == 0
    files = [p for p in home.iterdir() if p.name.startswith("iranpki.sqlite3")]
    assert {p.name for p in files} >= {"iranpki.sqlite3", "iranpki.sqlite3-wal", "iranpki.sqlite3-shm"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p.name, oct(p.stat().st_mode))
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    db.close()
    # A store an older version made world-readable is made private when opened.
    (home / "iranpki.sqlite3").chmod(0o644)
    assert runner.invoke(cli, ["cert", "list", "--home", str(home)]).exit_code == 0
    assert stat.S_IMODE((home / "iranpki.sqlite3").stat().st_mode) == 0o600


def _read_only_mount(folder: Path, *argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with ``folder`` bind-mounted read-only over itself, in a mount namespace of its
    own (the tests run as root, as the README's command does)."""
    script = (f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && exec "$@"')
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *argv], capture_output=True, text=True,
                          env=env, timeout=120)


def test_a_read_only_workspace_reads_and_refuses_changes_in_one_line(ws, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "ro"
    shutil.copytree(ws["home"], copy)
    env = {**ws["env"], "IRANPKI_HOME": str(copy)}
    listed = _read_only_mount(copy, IRANPKI, "cert", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == json.loads(ws["run"]("cert", "list", "--json").stdout)
    for argv, expect in ((["crl", "generate", "--ca", "gica3"], "read-only"),
                         (["key", "generate", "--label", "k", "--algorithm", "p256"], "read-only"),
                         (["init", str(copy / "sub"), "--repository-url", "http://r.test.ir"], "read-only")):
        out = _read_only_mount(copy, IRANPKI, *argv, env={**env, "IRANPKI_KEY_PASSPHRASE": "a long passphrase"})
        assert out.returncode == 1, (argv, out.stdout, out.stderr)
        assert expect in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_file_errors_are_one_line(ws, tmp_path: Path) -> None:
    """An OSError (a missing folder, a path that is a folder, permission) ends in one line naming
    the file, never a trace."""
    serial = json.loads(ws["run"]("cert", "list", "--json").stdout)[0]["serial"]
    for argv, path in ((["cert", "export", serial, "--out", str(tmp_path / "no" / "such" / "x.pem")], "no/such"),
                       (["ca", "export", "root", "--out", str(tmp_path)], str(tmp_path)),
                       (["crl", "publish", "--to", "/proc/version"], "/proc/version")):
        out = ws["run"](*argv, ok=False)
        assert out.returncode in (1, 2), out
        assert "Traceback" not in out.stderr, out.stderr
        assert path in out.stderr.strip().splitlines()[-1], out.stderr  # the last line names the file


def test_errors_are_json_with_json(ws) -> None:
    out = ws["run"]("cert", "show", "abcdef", "--json", ok=False)
    assert out.returncode == 1 and out.stdout == ""
    error = json.loads(out.stderr)["error"]
    assert error["code"] == "not-found" and "abcdef" in error["message"]
    base = ws["base"]
    _csr(base, "json-person", "/CN=x")
    run(["openssl", "pkey", "-in", str(base / "json-person.key"), "-pubout", "-out", str(base / "json-person.pub")])
    out = ws["run"]("cert", "issue", "--ca", "gica3", "--profile", "personal-signature", "--subject", "C=IR,CN=x",
                    "--public-key", str(base / "json-person.pub"), "--json", ok=False)
    error = json.loads(out.stderr)["error"]
    assert error["code"] == "profile-violation"
    assert {v["attribute"] for v in error["details"]["violations"]} >= {"subject serialNumber", "subject SN"}
    out = ws["run"]("cert", "list", "--no-such-option", "--json", ok=False)
    assert out.returncode == 2 and json.loads(out.stderr)["error"]["code"] == "usage"
    out = ws["run"]("cps", "check", "/nonexistent.md", "--level", "2", "--json", ok=False)
    assert out.returncode == 2 and json.loads(out.stderr)["error"]["code"] == "compliance", out.stderr
    example = Path(__file__).parent.parent / "policies" / "examples" / "general-intermediate-ca-cps.md"
    out = ws["run"]("cps", "check", str(example), "--level", "2", "--json")
    assert json.loads(out.stdout)["level"] == 2


@pytest.mark.parametrize("content", [b"junk", b"\x30\x03\x02\x01\x00", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                                     b"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n"])
def test_messages_name_the_input_not_the_parser(ws, tmp_path: Path, content: bytes) -> None:
    """Review item 11: no `ParseError { kind: UnexpectedTag ... }`, no library FAQ address."""
    bad = tmp_path / "bad.bin"
    bad.write_bytes(content)
    for argv in (["cert", "issue", "--ca", "gica3", "--profile", "tsa", "--subject", "C=IR,O=T,CN=x",
                  "--public-key", str(bad)], ["verify", str(bad)], ["cert", "issue", "--ca", "gica3", "--profile",
                                                                     "tsa", "--csr", str(bad)]):
        out = ws["run"](*argv, ok=False)
        assert out.returncode in (1, 2), out
        for leak in ("ParseError", "UnexpectedTag", "cryptography.io", "Traceback", "kind:", "http"):
            assert leak not in out.stderr + out.stdout, (argv, out.stderr, out.stdout)


# ---- start-up (review item 16): the import set, not the time ---------------------------------

def _imported(*argv: str) -> set[str]:
    """The modules `iranpki ARGV` imports, read from python -X importtime."""
    code = f"import sys; sys.argv = ['iranpki', *{list(argv)!r}]; from iranpki_cli.main import main; main()"
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                         timeout=120)
    names = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert names, out.stderr
    return names


HEAVY = {"pyhanko", "pyhanko_certvalidator", "aiohttp"}


def test_help_and_version_import_almost_nothing() -> None:
    for argv in (["--version"], ["--help"]):
        names = _imported(*argv)
        loaded = {n.split(".")[0] for n in names}
        assert not loaded & {"pyhanko", "pyhanko_certvalidator", "cryptography", "pydantic", "rich", "pkcs11",
                             "asn1crypto", "yaml", "pkilint"}, (argv, sorted(loaded))
        assert not [n for n in names if n.startswith("iranpki_cli.") and n not in
                    ("iranpki_cli.main", "iranpki_cli.handling")], sorted(names)


def test_operator_commands_do_not_load_the_signing_stack() -> None:
    for argv in (["cert", "list", "--help"], ["cert", "issue", "--help"], ["crl", "generate", "--help"],
                 ["ca", "list", "--help"], ["ocsp", "serve", "--help"]):
        names = _imported(*argv)
        assert not {n.split(".")[0] for n in names} & HEAVY, (argv, sorted(n for n in names if "pyhanko" in n))


def test_every_listed_command_loads() -> None:
    from iranpki_cli.main import COMMANDS

    for name in COMMANDS:
        cmd = cli.get_command(click_context(), name)
        assert cmd is not None and cmd.name == name


def click_context():  # noqa: ANN201 - a click.Context for the root group
    import click

    return click.Context(cli)


def test_piped_output_never_splits_a_value(ws) -> None:
    """Review item 17: with stdout a pipe (and COLUMNS=60), serials, URIs and dates stay whole."""
    env = {**ws["env"], "COLUMNS": "60"}
    listed = json.loads(ws["run"]("cert", "list", "--json").stdout)
    out = subprocess.run([IRANPKI, "cert", "list"], capture_output=True, text=True, env=env, timeout=120)
    lines = out.stdout.splitlines()
    for c in listed:
        assert [line for line in lines if c["serial"] in line], (c["serial"], out.stdout)
    keys = subprocess.run([IRANPKI, "key", "list", "--token", "GICA"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert "pkcs11:token=GICA;object=cli-gica3;id=" in keys.stdout, keys.stdout
    shown = subprocess.run([IRANPKI, "ca", "show", "gica3"], capture_output=True, text=True, env=env, timeout=120)
    sha = json.loads(ws["run"]("ca", "show", "gica3", "--json").stdout)
    assert any(len(line) > 60 for line in shown.stdout.splitlines())  # wider than COLUMNS: not wrapped
    assert all(v in shown.stdout for v in (sha["key"],)), shown.stdout


def _in_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Run ``argv`` with a pseudo-terminal as stdin, stdout and stderr; its exit status and output."""
    import pty

    main, child = pty.openpty()
    proc = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child, env=env)
    os.close(child)
    out = b""
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(main)
    return proc.wait(timeout=120), out


def test_long_work_shows_progress_on_a_terminal_only(ws) -> None:
    """Review item 18: CRL generation and OCSP preparation show a running count on a terminal;
    piped, they print nothing but the result."""
    code, out = _in_a_terminal([IRANPKI, "crl", "generate", "--ca", "gica3"], ws["env"])
    assert code == 0 and b"revoked entries" in out, out
    code, out = _in_a_terminal([IRANPKI, "ocsp", "prepare", "--ca", "gica3", "--all"], ws["env"])
    assert code == 0 and b"OCSP responses signed" in out, out
    piped = ws["run"]("crl", "generate", "--ca", "gica3")
    assert "revoked entries" not in piped.stdout + piped.stderr


def test_crl_progress_counts_every_entry(tmp_path: Path) -> None:
    from iranpki.crl import generate_crl
    from iranpki.keys import SoftwareSigner
    from iranpki.store import SqliteStore

    from .conftest import REPO, ROOT_SUBJECT
    from iranpki.ca import create_root, parse_subject
    from cryptography.hazmat.primitives.asymmetric import ec

    store = SqliteStore(str(tmp_path / "s.sqlite3"), create=True)
    root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                       parse_subject(ROOT_SUBJECT), repository_url=REPO)
    seen: list[int] = []
    generate_crl(store, root.record, root.signer, tmp_path, progress=seen.append)
    assert seen == [0]

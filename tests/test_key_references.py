"""Key references are typed values that name a key and nothing of the machine (issue 14, item 3):
a CA record keeps ``pkcs11:token=...;object=...`` without ``module-path`` or ``pin-source`` and a
software key relative to the workspace, so a workspace moved to another folder, with its PKCS#11
module installed at another path, still issues, and openssl accepts what it issues."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iranpki.errors import ConfigError, PinError
from iranpki.keys import (
    KeySecrets,
    KeySettings,
    KeySpec,
    MemoryKeyReference,
    Pkcs11KeyReference,
    SecretSource,
    SignatureScheme,
    SoftwareKeyReference,
    generate_software_key,
    open_signer,
    parse_key_reference,
)
from iranpki.workspace import Workspace

IRANPKI = str(Path(sys.executable).parent / "iranpki")
PASSPHRASE = "a passphrase of length"


def _cli(env: dict[str, str]):
    def iranpki(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([IRANPKI, *args], capture_output=True, text=True, env=env, timeout=120)
        if ok:
            assert out.returncode == 0, f"iranpki {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
        return out
    return iranpki


def test_a_moved_workspace_with_its_module_elsewhere_still_issues(softhsm, tmp_path: Path) -> None:
    vendor = tmp_path / "vendor-a"
    vendor.mkdir()
    module_a = vendor / "libvendor.so"
    shutil.copy(softhsm["module"], module_a)  # the module as one machine has it installed
    pin_file = tmp_path / "gica.pin"
    pin_file.write_text(softhsm["pin"] + "\n")
    pin_file.chmod(0o600)
    home = tmp_path / "site-a" / "ca"
    # Only the PIN file holds the right PIN from here on: the workspace must find it by itself.
    env = {**os.environ, "IRANPKI_HOME": str(home), "IRANPKI_PKCS11_PIN": "00000000",
           "IRANPKI_KEY_PASSPHRASE": PASSPHRASE}
    iranpki = _cli(env)
    iranpki("init", str(home), "--repository-url", "http://repo.test.ir")
    iranpki("key", "generate", "--label", "moved-root", "--algorithm", "p384")
    iranpki("ca", "create-root", "--name", "root", "--key", "moved-root",
            "--subject", "C=IR,O=I.R.Government,OU=Root CA,CN=Moved Root")
    gen = subprocess.run([IRANPKI, "key", "generate", "--token", "GICA", "--label", "moved-gica", "-a", "p256"],
                         capture_output=True, text=True, env={**env, "IRANPKI_PKCS11_PIN": softhsm["pin"]}, timeout=120)
    assert gen.returncode == 0, gen.stderr
    uri = f"pkcs11:token=GICA;object=moved-gica?module-path={module_a}&pin-source={pin_file}"
    iranpki("ca", "create-intermediate", "--parent", "root", "--level", "1", "--purpose", "signing",
            "--name", "gica1", "--key", uri, "--subject", "C=IR,O=GICA,CN=Moved GICA")

    ws = Workspace.open(home)
    records = {r.name: r.key_reference for r in ws.store.list_cas()}
    ws.close()
    # The records name the keys only: no module, no PIN file, no absolute path of this folder.
    assert records == {"root": "keys/moved-root.pem", "gica1": "pkcs11:token=GICA;object=moved-gica"}
    config = yaml.safe_load((home / "iranpki.yaml").read_text())
    # What the URI said of this machine went to the configuration, where the next opening finds it.
    assert config["pkcs11_module"] == str(module_a)
    assert config["pkcs11_pin_files"] == {"GICA": str(pin_file)}
    shown = iranpki("ca", "show", "gica1").stdout
    assert "module-path" not in shown and "pin-source" not in shown

    # Another machine: the workspace restored to another folder, the module installed elsewhere.
    moved = tmp_path / "site-b" / "pki"
    moved.parent.mkdir()
    shutil.move(str(home), moved)
    module_b = tmp_path / "vendor-b" / "lib" / "libvendor.so"
    module_b.parent.mkdir(parents=True)
    shutil.move(str(module_a), module_b)
    shutil.rmtree(vendor)
    config["pkcs11_module"] = str(module_b)
    (moved / "iranpki.yaml").write_text(yaml.safe_dump(config))
    env_b = {**env, "IRANPKI_HOME": str(moved)}
    iranpki_b = _cli(env_b)
    key = tmp_path / "leaf.key"
    csr = tmp_path / "leaf.csr"
    made = subprocess.run(["openssl", "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                           "-keyout", str(key), "-subj", "/C=IR/CN=Ali Rezaei", "-out", str(csr)],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    leaf = tmp_path / "leaf.pem"
    iranpki_b("cert", "issue", "--ca", "gica1", "--profile", "personal-signature", "--csr", str(csr),
              "--subject", "C=IR,SN=رضایی,GN=علی,serialNumber=0499370899,CN=علی رضایی", "--out", str(leaf))
    iranpki_b("crl", "generate", "--ca", "root")  # the root's software key, found inside the moved folder
    iranpki_b("ca", "export", "root", "--out", str(tmp_path / "root.pem"))
    iranpki_b("ca", "export", "gica1", "--out", str(tmp_path / "gica1.pem"))
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "root.pem"), "-untrusted",
                             str(tmp_path / "gica1.pem"), str(leaf)], capture_output=True, text=True)
    assert verify.returncode == 0 and ": OK" in verify.stdout, verify.stdout + verify.stderr

    # A key URI naming a module other than the workspace's is refused, and nothing is recorded.
    other = iranpki_b("ca", "create-intermediate", "--parent", "root", "--level", "1", "--purpose", "tls",
                      "--name", "gica1tls", "--key", f"pkcs11:token=GICA;object=moved-gica?module-path={module_a}",
                      "--subject", "C=IR,O=GICA,CN=Other", ok=False)
    assert str(module_a) in other.stderr + other.stdout and "one workspace uses one module" in other.stderr + other.stdout
    assert "gica1tls" not in iranpki_b("ca", "list").stdout


def test_a_backend_takes_the_secret_of_its_kind(softhsm, tmp_path: Path) -> None:
    """A key opened with both a PIN and a passphrase on offer gets the one its type needs, told
    by the reference's type, not by how a prompt is worded."""
    from iranpki.keys.pkcs11 import generate_keypair

    generate_keypair("Test", "kind-test", KeySpec.parse("p256"),
                     module=softhsm["module"], pin=SecretSource(prompt=lambda _: softhsm["pin"]))
    asked: list[str] = []

    def wrong(what: str) -> str:
        asked.append(what)
        return "not the secret"

    both = KeySecrets(pin=SecretSource(prompt=lambda _: softhsm["pin"]), passphrase=SecretSource(prompt=wrong, what="passphrase"))
    signer = open_signer("pkcs11:token=Test;object=kind-test", both, KeySettings(pkcs11_module=softhsm["module"]))
    assert len(signer.sign(b"data", SignatureScheme())) > 0 and asked == []
    assert isinstance(signer.reference, Pkcs11KeyReference) and signer.reference.on_token
    # A record written before references were typed holds module-path; it still opens.
    legacy = open_signer(f"pkcs11:token=Test;object=kind-test?module-path={softhsm['module']}", both)
    assert legacy.public_key.public_numbers() == signer.public_key.public_numbers()
    # The passphrase goes to a software key, and a wrong one is refused as wrong.
    generate_software_key(KeySpec.parse("p256"), str(tmp_path / "k.pem"), SecretSource(prompt=lambda _: PASSPHRASE))
    with pytest.raises(PinError, match="wrong passphrase"):
        open_signer("k.pem", both, KeySettings(base=tmp_path))
    assert asked == ["passphrase for key file " + str(tmp_path / "k.pem")]


def test_references_read_back_from_their_text() -> None:
    for text, kind in (("pkcs11:token=GICA;object=gica2", Pkcs11KeyReference), ("keys/gica1.pem", SoftwareKeyReference),
                       ("/srv/keys/tsa.pem", SoftwareKeyReference), ("memory:", MemoryKeyReference)):
        ref = parse_key_reference(text)
        assert type(ref) is kind and str(ref) == text and parse_key_reference(str(ref)) == ref
    # Local settings given with a URI are kept for that opening and never written back.
    ref = parse_key_reference("pkcs11:token=GICA;object=g?module-path=/opt/hsm/lib.so&pin-source=/run/pin")
    assert str(ref) == "pkcs11:token=GICA;object=g" and ref.local.module_path == "/opt/hsm/lib.so"
    assert parse_key_reference("file:///srv/k.pem") == SoftwareKeyReference("/srv/k.pem")
    with pytest.raises(ConfigError, match="unknown scheme 'hsm'"):
        parse_key_reference("hsm:slot=1")
    with pytest.raises(ConfigError, match="names no key"):
        parse_key_reference("pkcs11:token=GICA")
    with pytest.raises(ConfigError, match="cannot be opened again"):
        open_signer("memory:")
    # A record written before references were typed (absolute path, module-path in the URI) opens.
    assert SoftwareKeyReference("/w/ca/keys/a.pem").relative_to(Path("/w/ca")) == SoftwareKeyReference("keys/a.pem")
    assert SoftwareKeyReference("/elsewhere/a.pem").relative_to(Path("/w/ca")) == SoftwareKeyReference("/elsewhere/a.pem")


def test_what_key_generate_prints_opens_from_any_folder_and_settings_are_written_safely(
        softhsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The software key reference `key generate` prints (relative to the workspace) names the key
    from any current folder; adopting a key URI's settings keeps the configuration file's mode
    and leaves no temporary file; an old record's module-path yields to the configuration."""
    from iranpki.keys.pkcs11 import generate_keypair

    home = tmp_path / "ws"
    ws = Workspace.init(home, repository_url="http://repo.test.ir")
    made = ws.generate_key(KeySpec.parse("p256"), label="k1", secret=SecretSource(prompt=lambda _: PASSPHRASE))
    assert str(made.reference) == "keys/k1.pem"
    monkeypatch.chdir(tmp_path)  # not the workspace
    again = ws.open_key(str(made.reference), SecretSource(prompt=lambda _: PASSPHRASE))
    assert again.public_key.public_numbers() == made.public_key.public_numbers()

    (home / "iranpki.yaml").chmod(0o640)
    generate_keypair("Test", "adopt-test", KeySpec.parse("p256"), module=softhsm["module"],
                     pin=SecretSource(prompt=lambda _: softhsm["pin"]))
    pin_file = tmp_path / "test.pin"
    pin_file.write_text(softhsm["pin"])
    monkeypatch.chdir(tmp_path)
    ws._adopt_key_settings(f"pkcs11:token=Test;object=adopt-test?module-path={softhsm['module']}&pin-source=test.pin")
    config = yaml.safe_load((home / "iranpki.yaml").read_text())
    assert config["pkcs11_module"] == softhsm["module"] and config["pkcs11_pin_files"] == {"Test": str(pin_file)}
    assert (home / "iranpki.yaml").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in home.iterdir() if p.name.startswith(".iranpki.yaml.")) == [".iranpki.yaml.lock"]
    # A record of an earlier version names a module that is no longer there: the configuration wins.
    old = ws.open_recorded_key("pkcs11:token=Test;object=adopt-test?module-path=/gone/libold.so",
                               SecretSource(prompt=lambda _: "not the PIN"))  # the PIN file is the configuration's
    assert old.public_key is not None
    # A key file whose name holds a colon is still a key file; SoftwareSigner takes any name.
    from iranpki.keys import SoftwareSigner

    assert str(SoftwareSigner(made._key, reference="imported:2019").reference) == "memory:imported:2019"

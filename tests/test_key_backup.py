"""Backup of a CA key M of N and activation by quorum (issue 17), on SoftHSM2: a CA key made to
be backed up is wrapped on its token under a trusted key-encryption key, whose shares are
encrypted to the custodians' certificates (openssl cms -decrypt opens them); 2 of 3 and 3 of 5
restore it onto a fresh token, where it signs a certificate that openssl verifies under the
original CA certificate; M-1 shares, a corrupted share and a share of another backup are refused
and named; a key made non-extractable cannot be backed up, and says why; the token PIN split 2
of 3 activates a command only with two custodians."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iranpki.keys import KeySpec, SecretSource
from iranpki.workspace import Workspace

from .conftest import REPO, ROOT_SUBJECT
from .samples import SUBJECTS

IRANPKI = str(Path(sys.executable).parent / "iranpki")


def iranpki(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([IRANPKI, *args], capture_output=True, text=True, timeout=300, env=env)
    if check:
        assert done.returncode == 0, done.stderr + done.stdout
    return done


@pytest.fixture(scope="module")
def vault(softhsm: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A workspace whose level-1 CA key is on the token, made to be backed up; five custodians."""
    base = tmp_path_factory.mktemp("backup")
    tag = secrets.token_hex(3)
    os.environ["IRANPKI_KEY_PASSPHRASE"] = "a passphrase long enough"
    os.environ["IRANPKI_PKCS11_SO_PIN"] = softhsm["so_pin"]
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    ws = Workspace.init(base / "ws", repository_url=REPO)
    ws.generate_key(KeySpec.parse("p384"), label="root", secret=secret)
    ws.create_root("root", "root", ROOT_SUBJECT, secret=secret)
    ws.close()
    # A token of its own: the session's shared tokens hold only keys that never leave them.
    from iranpki.keys.pkcs11 import init_token

    token = f"Vault-{tag}"
    init_token(token, SecretSource(prompt=lambda _: softhsm["so_pin"]), SecretSource(prompt=lambda _: softhsm["pin"]))
    iranpki("key", "generate", "--token", token, "--label", f"ca-{tag}", "--algorithm", "p256", "--backup",
            "--home", str(base / "ws"))
    ws = Workspace.open(base / "ws")
    ws.create_intermediate("gica1", "root", 1, f"pkcs11:token={token};object=ca-{tag}",
                           "C=IR,O=GICA,CN=GICA Level 1 (backup)", parent_secret=secret)
    (base / "root.pem").write_bytes(_pem(ws.store.get_ca("root").certificate))
    (base / "gica1.pem").write_bytes(_pem(ws.store.get_ca("gica1").certificate))
    ws.close()
    for n in range(5):
        done = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-passout", "env:IRANPKI_KEY_PASSPHRASE",
                               "-keyout", str(base / f"c{n}.key"), "-out", str(base / f"c{n}.pem"), "-days", "30",
                               "-subj", f"/C=IR/O=GICA/CN=Custodian {n}"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return {"base": base, "home": base / "ws", "tag": tag, "key": f"pkcs11:token={token};object=ca-{tag}",
            "softhsm": softhsm, "token": token}


def _pem(der: bytes) -> bytes:
    from cryptography import x509

    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def _backup(vault: dict, name: str, custodians: range, threshold: int) -> Path:
    out = vault["base"] / name
    args = [a for n in custodians for a in ("--custodian", str(vault["base"] / f"c{n}.pem"))]
    iranpki("key", "backup", vault["key"], "-m", str(threshold), *args, "--out", str(out), "--home", str(vault["home"]))
    return out


def _opened(vault: dict, folder: Path, index: int, custodian: int, *, openssl: bool = False) -> Path:
    """Custodian CUSTODIAN opens share INDEX of FOLDER: with iranpki, or with openssl cms -decrypt."""
    out = folder / f"opened-{index}.json"
    if openssl:
        done = subprocess.run(["openssl", "cms", "-decrypt", "-inform", "DER", "-in", str(folder / f"share-{index}.p7m"),
                               "-recip", str(vault["base"] / f"c{custodian}.pem"), "-inkey",
                               str(vault["base"] / f"c{custodian}.key"), "-passin", "env:IRANPKI_KEY_PASSPHRASE",
                               "-out", str(out)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    else:
        iranpki("key", "share-open", str(folder / f"share-{index}.p7m"), "--certificate",
                str(vault["base"] / f"c{custodian}.pem"), "--key", str(vault["base"] / f"c{custodian}.key"), "--out",
                str(out))
    return out


def _fresh_token(vault: dict, name: str) -> str:
    from iranpki.keys.pkcs11 import init_token

    label = f"{name}-{vault['tag']}"
    init_token(label, SecretSource(prompt=lambda _: vault["softhsm"]["so_pin"]),
               SecretSource(prompt=lambda _: vault["softhsm"]["pin"]))
    return label


def _issue_with(vault: dict, uri: str, out: Path) -> None:
    """A certificate signed by the restored key under the original CA record, which openssl
    verifies up to the root through the original CA certificate."""
    from iranpki.ca import CertificateAuthority, IssueRequest, parse_subject
    from iranpki.keys.pkcs11 import open_pkcs11_signer

    ws = Workspace.open(vault["home"])
    signer = open_pkcs11_signer(uri)
    try:
        authority = CertificateAuthority(ws.store.get_ca("gica1"), signer, ws.store)
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        issued = authority.issue("personal-signature", IssueRequest(parse_subject(SUBJECTS["personal-signature"]), key))
        out.write_bytes(issued.pem)
    finally:
        signer.close()
        ws.close()
    done = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(vault["base"] / "root.pem"), "-untrusted",
                           str(vault["base"] / "gica1.pem"), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_two_of_three_restore_onto_a_fresh_token_and_sign_under_the_original_ca(vault: dict) -> None:
    folder = _backup(vault, "b23", range(3), 2)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["mechanism"] == "CKM_AES_KEY_WRAP_PAD" and len(manifest["custodians"]) == 3
    one = _opened(vault, folder, 1, 0)
    three = _opened(vault, folder, 3, 2, openssl=True)  # openssl opens the same envelope
    token = _fresh_token(vault, "R23")
    refused = iranpki("key", "restore", str(folder), "--share", str(one), "--token", token, "--home", str(vault["home"]),
                      check=False)
    assert refused.returncode != 0 and "needs 2 of the 3" in refused.stderr
    done = json.loads(iranpki("key", "restore", str(folder), "--share", str(one), "--share", str(three), "--token", token,
                              "--home", str(vault["home"]), "--json").stdout)
    _issue_with(vault, done["key"], vault["base"] / "by-restored-23.pem")
    # The restored key is as sensitive as the original: its value cannot be read off the token.
    from iranpki.keys.pkcs11 import list_keys

    assert any(k.label == f"ca-{vault['tag']}" for k in list_keys(token))


def test_three_of_five_and_bad_shares_named(vault: dict) -> None:
    folder = _backup(vault, "b35", range(5), 3)
    opened = {i: _opened(vault, folder, i, i - 1) for i in (1, 2, 4, 5)}
    token = _fresh_token(vault, "R35")
    refused = iranpki("key", "restore", str(folder), "--share", str(opened[1]), "--share", str(opened[2]), "--token",
                      token, "--home", str(vault["home"]), check=False)
    assert refused.returncode != 0 and "2 share(s) given; this needs 3 of the 5" in refused.stderr
    # A share altered (one hex digit) is named as wrong or corrupted, with its custodian.
    altered = json.loads(opened[4].read_text())
    altered["share"] = ("0" if altered["share"][0] != "0" else "1") + altered["share"][1:]
    (folder / "altered.json").write_text(json.dumps(altered))
    refused = iranpki("key", "restore", str(folder), "--share", str(opened[1]), "--share", str(opened[2]), "--share",
                      str(folder / "altered.json"), "--token", token, "--home", str(vault["home"]), check=False)
    assert refused.returncode != 0 and "index 4" in refused.stderr and "Custodian 3" in refused.stderr
    assert "wrong or corrupted" in refused.stderr
    # A share of the other backup is named too.
    other = vault["base"] / "b23" / "opened-1.json"
    refused = iranpki("key", "restore", str(folder), "--share", str(opened[1]), "--share", str(opened[2]), "--share",
                      str(other), "--token", token, "--home", str(vault["home"]), check=False)
    assert refused.returncode != 0 and "belongs to another backup" in refused.stderr
    done = json.loads(iranpki("key", "restore", str(folder), "--share", str(opened[1]), "--share", str(opened[4]),
                              "--share", str(opened[5]), "--token", token, "--home", str(vault["home"]),
                              "--json").stdout)
    _issue_with(vault, done["key"], vault["base"] / "by-restored-35.pem")
    # Both backups and restores are in the audit log.
    ws = Workspace.open(vault["home"])
    events = [e.event for _, _, e in ws.store.audit_log()]
    ws.close()
    assert events.count("key.backup") >= 2 and events.count("key.restored") >= 1


def test_a_non_extractable_key_is_never_backed_up(vault: dict) -> None:
    iranpki("key", "generate", "--token", vault["token"], "--label", f"fixed-{vault['tag']}", "--algorithm", "p256",
            "--home", str(vault["home"]))
    refused = iranpki("key", "backup", f"pkcs11:token={vault['token']};object=fixed-{vault['tag']}", "-m", "2", "--custodian",
                      str(vault["base"] / "c0.pem"), "--custodian", str(vault["base"] / "c1.pem"), "--out",
                      str(vault["base"] / "never"), "--home", str(vault["home"]), check=False)
    assert refused.returncode != 0 and "non-extractable" in refused.stderr and "--backup" in refused.stderr
    assert not (vault["base"] / "never").exists()  # nothing half-written
    # One custodian named twice would hold two shares: refused before the token is touched.
    refused = iranpki("key", "backup", vault["key"], "-m", "2", "--custodian", str(vault["base"] / "c0.pem"),
                      "--custodian", str(vault["base"] / "c0.pem"), "--custodian", str(vault["base"] / "c1.pem"),
                      "--out", str(vault["base"] / "twice"), "--home", str(vault["home"]), check=False)
    assert refused.returncode != 0 and "the same key" in refused.stderr and not (vault["base"] / "twice").exists()


def test_the_token_pin_split_two_of_three_activates_a_command(vault: dict) -> None:
    iranpki("token", "pin-split", "--token", vault["token"], "-m", "2", "--custodian", str(vault["base"] / "c0.pem"),
            "--custodian", str(vault["base"] / "c1.pem"), "--custodian", str(vault["base"] / "c2.pem"), "--out",
            str(vault["base"] / "pin"))
    folder = vault["base"] / "pin"
    one, two = _opened(vault, folder, 1, 0), _opened(vault, folder, 2, 1)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert vault["softhsm"]["pin"] not in json.dumps(manifest)
    # The manifest's check of the whole secret does not let a reader guess a short PIN offline.
    import hashlib

    guess = vault["softhsm"]["pin"].encode()
    for padded in (guess + b"\0" * (64 - len(guess)), bytes([len(guess)]) + guess + b"\0" * (63 - len(guess))):
        assert hashlib.sha256(manifest["id"].encode() + padded).hexdigest() != manifest["secret_check"]
    env = {k: v for k, v in os.environ.items() if k != "IRANPKI_PKCS11_PIN"}  # nobody holds the PIN whole
    listed = iranpki("token", "pin-join", str(folder), "--share", str(one), "--share", str(two), "--", IRANPKI, "key",
                     "list", "--token", vault["token"], "--json", "--home", str(vault["home"]), env=env)
    assert f"ca-{vault['tag']}" in listed.stdout
    refused = iranpki("token", "pin-join", str(folder), "--share", str(one), "--", IRANPKI, "key", "list", "--token",
                      vault["token"], env=env, check=False)
    assert refused.returncode != 0 and "needs 2 of the 3" in refused.stderr

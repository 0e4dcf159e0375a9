"""Weak subscriber keys are refused before a CA signs (review item 2): keys that badkeys' own test
data shows each check catching, keys made weak here, the blocklist reader against badkeys'
own lookup, and the refusal through the command line."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import gmpy2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from iranpki.ca import IssueRequest, parse_subject, request_from_csr
from iranpki.errors import WeakKeyError
from iranpki.keycheck import BADKEYS_DIR_ENV, Blocklist, _check_ec, check_public_key

from .conftest import VECTORS

BADKEYS = VECTORS / "badkeys"
SSL_SUBJECT = parse_subject("C=IR,ST=Tehran,O=Example Co")


def _public(name: str):
    """A key from badkeys' test data: PEM after a line of explanation, PKCS#1 or SPKI."""
    text = (BADKEYS / name).read_bytes()
    pem = text[text.index(b"-----BEGIN"):]
    if b"RSA PUBLIC KEY" in pem:
        return serialization.load_pem_public_key(pem)
    if b"PRIVATE KEY" in pem:
        return serialization.load_pem_private_key(pem, None).public_key()
    return serialization.load_pem_public_key(pem)


@pytest.fixture(autouse=True)
def no_blocklist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No blocklist unless a test installs one (not the machine's badkeys cache)."""
    monkeypatch.delenv(BADKEYS_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))


@pytest.mark.parametrize("name, check", [
    ("rsa-roca.key", "roca"),
    ("rsa-small-d.key", "exponent"),  # d and e swapped: e is far above 2^256 (Wiener would catch it too)
    ("rsa-smallfactors-valid.key", "smallfactors"),
    ("rsapoly128.key", "rsapoly"),
    ("rsa-large-e.key", "exponent"),
])
def test_badkeys_vectors_are_refused(software_ca, name: str, check: str) -> None:
    key = _public(name)
    with pytest.raises(WeakKeyError) as err:
        software_ca.issue("ssl-server", IssueRequest(subject=SSL_SUBJECT, public_key=key, dns=["www.example.ir"]))
    assert err.value.check == check, err.value
    assert "cannot be certified" in str(err.value) and "Generate a new key pair" in str(err.value)


def test_sound_keys_pass(software_ca) -> None:
    for key in (_public("rsa-ok.key"), _public("ec-p256-rfc-example.key"),
                rsa.generate_private_key(65537, 2048).public_key(), ec.generate_private_key(ec.SECP384R1()).public_key()):
        report = check_public_key(key)
        assert report.blocklist is None and report.checks
    issued = software_ca.issue("ssl-server", IssueRequest(subject=SSL_SUBJECT, public_key=_public("rsa-ok.key"),
                                                          dns=["www.example.ir"]))
    assert issued.record.serial


def test_keys_made_weak_here_are_refused() -> None:
    """A 2048-bit modulus divisible by 7, and one whose primes are neighbours: both were issued
    as SSL certificates at level 2 before this check."""
    q = int(gmpy2.next_prime(secrets.randbits(2045) | (1 << 2044)))
    n = 7 * q
    assert n.bit_length() >= 2047
    with pytest.raises(WeakKeyError, match="divisible by the small prime 7") as err:
        check_public_key(rsa.RSAPublicNumbers(65537, n).public_key())
    assert err.value.check == "smallfactors"
    p = int(gmpy2.next_prime(secrets.randbits(1024) | (1 << 1023)))
    close = int(gmpy2.next_prime(p + 2 ** 20))
    with pytest.raises(WeakKeyError, match="Fermat") as err:
        check_public_key(rsa.RSAPublicNumbers(65537, p * close).public_key())
    with pytest.raises(WeakKeyError, match="public exponent 3 must be odd, at least 65537"):
        check_public_key(rsa.RSAPublicNumbers(3, p * int(gmpy2.next_prime(p * 7))).public_key())
    with pytest.raises(WeakKeyError, match="public exponent 17 must be odd, at least 65537"):
        check_public_key(rsa.RSAPublicNumbers(17, p * int(gmpy2.next_prime(p * 7))).public_key())


def test_ec_points_off_the_curve_or_at_infinity() -> None:
    """cryptography refuses such points when it loads them; the check holds on its own too."""
    good = ec.generate_private_key(ec.SECP256R1()).public_key()
    numbers = good.public_numbers()

    class Stub:  # a key object as a parser that did not check the point would hand over
        curve = ec.SECP256R1()

        def __init__(self, x: int, y: int):
            self.x, self.y = x, y

        def public_numbers(self):
            return self

    assert _check_ec(Stub(numbers.x, numbers.y)) == ["ec-point"]  # type: ignore[arg-type]
    with pytest.raises(WeakKeyError, match="not on the curve"):
        _check_ec(Stub(numbers.x, numbers.y + 1))  # type: ignore[arg-type]
    with pytest.raises(WeakKeyError, match="point at infinity"):
        _check_ec(Stub(0, 0))  # type: ignore[arg-type]


def _blocklist_folder(folder: Path, values: list[int]) -> Path:
    """A blocklist in badkeys' format holding ``values`` (and decoys), with its metadata."""
    folder.mkdir(parents=True)
    records = []
    for v in values:
        records.append(hashlib.sha256(v.to_bytes((v.bit_length() + 7) // 8, "big")).digest()[:15] + b"\x01")
    records += [secrets.token_bytes(15) + b"\x02" for _ in range(2000)]
    (folder / "blocklist.dat").write_bytes(b"".join(sorted(records)))
    (folder / "badkeysdata.json").write_text(json.dumps({"bkformat": 0, "blocklists": [
        {"id": 1, "name": "debianweak", "repo": "x/y", "path": "z"}, {"id": 2, "name": "decoys", "repo": "x/y",
                                                                        "path": "z"}]}))
    return folder


def test_blocklist_refuses_the_debian_weak_key_and_agrees_with_badkeys(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     software_ca) -> None:
    weak = _public("rsa-debianweak.key")
    listed_ec = ec.generate_private_key(ec.SECP256R1()).public_key()
    folder = _blocklist_folder(tmp_path / "cache" / "badkeys",
                               [weak.public_numbers().n, listed_ec.public_numbers().x])
    monkeypatch.setenv(BADKEYS_DIR_ENV, str(folder))
    with pytest.raises(WeakKeyError, match="known compromised key .*debianweak") as err:
        software_ca.issue("ssl-server", IssueRequest(subject=SSL_SUBJECT, public_key=weak, dns=["www.example.ir"]))
    assert err.value.check == "blocklist"
    with pytest.raises(WeakKeyError, match="debianweak"):
        check_public_key(listed_ec)
    sound = [rsa.generate_private_key(65537, 2048).public_key() for _ in range(3)]
    assert check_public_key(sound[0]).blocklist == str(folder.resolve())
    # badkeys' own lookup, on the same folder as its cache, says the same of every key.
    keys = [weak, listed_ec, *sound]
    pems = [k.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
            for k in keys]
    code = ("import json, sys, badkeys\n"
            "print(json.dumps(['blocklist' in badkeys.checkpubkey(p, checks=['blocklist'])['results'] "
            "for p in json.load(sys.stdin)]))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(pems), capture_output=True, text=True,
                         env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}, timeout=60)
    assert out.returncode == 0, out.stderr
    theirs = json.loads(out.stdout)
    ours = [Blocklist(folder).lookup(k.public_numbers().n if isinstance(k, rsa.RSAPublicKey)
                                     else k.public_numbers().x) is not None for k in keys]
    assert ours == theirs == [True, True, False, False, False]


def test_a_named_blocklist_that_is_missing_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A set-up problem (ConfigError), never reported as a weak key."""
    from iranpki.errors import ConfigError

    monkeypatch.setenv(BADKEYS_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="no weak-key blocklist in .*nowhere"):
        check_public_key(ec.generate_private_key(ec.SECP256R1()).public_key())


def test_fermat_csr_is_refused_through_the_command(tmp_path: Path) -> None:
    """badkeys' Fermat CSR (a valid CSR with a weak key), through `iranpki cert issue`."""
    assert request_from_csr((BADKEYS / "rsa-fermat.csr").read_bytes()).subject == [("CN", "badkeys")]
    from click.testing import CliRunner

    from iranpki_cli.main import cli

    runner = CliRunner()
    home = str(tmp_path / "ws")
    env = {"IRANPKI_KEY_PASSPHRASE": "a passphrase of length", "XDG_CACHE_HOME": str(tmp_path / "c")}
    for args in (["init", home, "--repository-url", "http://repo.test.ir"],
                 ["key", "generate", "--home", home, "--label", "root", "--algorithm", "p384"],
                 ["key", "generate", "--home", home, "--label", "l1", "--algorithm", "p256"],
                 ["ca", "create-root", "--home", home, "--name", "root", "--key", "root", "--subject", "C=IR,O=T,CN=R"],
                 ["ca", "create-intermediate", "--home", home, "--parent", "root", "--level", "1", "--purpose", "tls",
                  "--name", "l1",
                  "--key", "l1", "--subject", "C=IR,O=T,CN=L1"]):
        result = runner.invoke(cli, args, env=env)
        assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["cert", "issue", "--home", home, "--ca", "l1", "--profile", "ssl-server", "--csr",
                                 str(BADKEYS / "rsa-fermat.csr"), "--subject", "C=IR,ST=Tehran,O=T",
                                 "--dns", "www.example.ir", "--json"], env=env)
    assert result.exit_code == 1
    error = json.loads(result.output.strip().splitlines()[-1])["error"]
    assert error["code"] == "weak-key" and error["details"]["check"] == "fermat"
    listed = runner.invoke(cli, ["cert", "list", "--home", home, "--json"], env=env)
    assert [c["profile"] for c in json.loads(listed.output)] == ["intermediate-level1"]  # nothing was issued

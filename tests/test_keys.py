"""The key layer: software keys, PKCS#11 keys on SoftHSM2 (checked with pkcs11-tool), URIs,
threads and forked processes."""

from __future__ import annotations

import multiprocessing as mp
import threading
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from iranpki.errors import ConfigError, KeyNotFoundError, PinError, TokenError, TokenNotFoundError, UnsupportedAlgorithmError
from iranpki.keys import KeySpec, SecretSource, SignatureScheme, generate_software_key, load_software_key, open_signer
from iranpki.keys.uri import Pkcs11Uri

from .conftest import SOFTHSM_MODULE, run


def verify(public_key, signature: bytes, data: bytes, scheme: SignatureScheme) -> None:
    h = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}[scheme.hash]()
    if isinstance(public_key, rsa.RSAPublicKey):
        pad = padding.PSS(padding.MGF1(h), scheme.salt_length) if scheme.padding == "pss" else padding.PKCS1v15()
        public_key.verify(signature, data, pad, h)
    else:
        public_key.verify(signature, data, ec.ECDSA(h))


# ---- software keys ---------------------------------------------------------------------------

def test_software_key_round_trip(tmp_path: Path) -> None:
    secret = SecretSource(prompt=lambda _: "a long passphrase")
    signer = generate_software_key(KeySpec.parse("p256"), str(tmp_path / "k.pem"), secret)
    pem = (tmp_path / "k.pem").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in pem and oct((tmp_path / "k.pem").stat().st_mode)[-3:] == "600"
    again = load_software_key(str(tmp_path / "k.pem"), secret)
    sig = again.sign(b"data", SignatureScheme())
    verify(signer.public_key, sig, b"data", SignatureScheme())


def test_software_key_errors_never_show_the_passphrase(tmp_path: Path) -> None:
    path = str(tmp_path / "k.pem")
    generate_software_key(KeySpec.parse("p256"), path, SecretSource(prompt=lambda _: "the right one!"))
    with pytest.raises(PinError) as err:
        load_software_key(path, SecretSource(prompt=lambda _: "the wrong one!"))
    assert "wrong passphrase" in str(err.value) and "wrong one" not in str(err.value)
    with pytest.raises(TokenError, match="already exists"):
        generate_software_key(KeySpec.parse("p256"), path, SecretSource(prompt=lambda _: "the right one!"))
    with pytest.raises(PinError, match="too short"):
        generate_software_key(KeySpec.parse("p256"), str(tmp_path / "b.pem"), SecretSource(prompt=lambda _: "short"))
    with pytest.raises(KeyNotFoundError, match="no key file"):
        load_software_key(str(tmp_path / "none.pem"), SecretSource(prompt=lambda _: "x"))
    plain = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "plain.pem").write_bytes(plain)
    with pytest.raises(TokenError, match="refuses unencrypted keys"):
        load_software_key(str(tmp_path / "plain.pem"), SecretSource(prompt=lambda _: "x"))


def test_key_specs() -> None:
    assert str(KeySpec.parse("RSA-3072")) == "rsa3072" and str(KeySpec.parse("secp384r1")) == "ec-P-384"
    for bad in ("rsa1024", "ed25519", "p521", "dsa2048"):
        with pytest.raises(UnsupportedAlgorithmError, match="must be one of"):
            KeySpec.parse(bad)


# ---- PKCS#11 ---------------------------------------------------------------------------------

SPECS = ["rsa2048", "rsa3072", "rsa4096", "p256", "p384"]


@pytest.fixture(scope="module")
def token_keys(softhsm) -> dict:
    from iranpki.keys.pkcs11 import generate_keypair

    return {spec: generate_keypair("Test", f"k-{spec}", KeySpec.parse(spec)) for spec in SPECS}


@pytest.mark.parametrize("spec", SPECS)
def test_token_keys_sign_every_scheme(token_keys, spec: str) -> None:
    signer = token_keys[spec]
    assert str(signer.key_spec) == str(KeySpec.parse(spec))
    schemes = [SignatureScheme(h) for h in ("sha256", "sha384", "sha512")]
    if spec.startswith("rsa"):
        schemes += [SignatureScheme(h, "pss") for h in ("sha256", "sha384", "sha512")]
    for scheme in schemes:
        sig = signer.sign(b"to be signed", scheme)
        verify(signer.public_key, sig, b"to be signed", scheme)
        with pytest.raises(InvalidSignature):  # the check can fail
            verify(signer.public_key, sig, b"something else", scheme)


def test_pkcs11_tool_shows_keys_sensitive_and_never_extractable(token_keys, softhsm) -> None:
    # The PIN goes to pkcs11-tool through the environment ("env:"), not its argument list.
    out = run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", "Test", "--login",
               "--pin", "env:IRANPKI_PKCS11_PIN", "--list-objects", "--type", "privkey"])
    assert out.returncode == 0, out.stderr
    blocks = out.stdout.split("Private Key Object")[1:]
    seen = set()
    for block in blocks:
        label = next(line.split(":", 1)[1].strip() for line in block.splitlines() if "label:" in line)
        access = next(line for line in block.splitlines() if "Access:" in line)
        assert "sensitive" in access and "never extractable" in access and "local" in access, (label, access)
        assert "Usage:      sign" in block or "Usage: sign" in " ".join(block.split()), block
        seen.add(label)
    assert {f"k-{s}" for s in SPECS} <= seen


def test_token_keys_are_listed(token_keys) -> None:
    from iranpki.keys.pkcs11 import list_keys

    keys = {k.label: k for k in list_keys("Test")}
    for spec in SPECS:
        k = keys[f"k-{spec}"]
        assert k.sensitive and not k.extractable and k.key_spec == str(KeySpec.parse(spec))
        assert open_signer(k.uri).public_key.public_numbers() == token_keys[spec].public_key.public_numbers()


def test_threads_share_one_token_safely(token_keys) -> None:
    # python-pkcs11 releases the GIL and SoftHSM2 runs without its own locks: the module lock
    # in iranpki must serialise the calls or this crashes the process.
    signer = token_keys["p256"]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(40):
                data = f"{n}-{i}".encode()
                verify(signer.public_key, signer.sign(data, SignatureScheme()), data, SignatureScheme())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors


def _sign_in_child(signer, queue) -> None:
    try:
        queue.put(("ok", signer.sign(b"child", SignatureScheme())))
    except BaseException as exc:  # noqa: BLE001
        queue.put(("error", repr(exc)))


def test_a_forked_child_can_sign(token_keys) -> None:
    signer = token_keys["p256"]
    signer.sign(b"parent first", SignatureScheme())
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_sign_in_child, args=(signer, queue))
    child.start()
    status, value = queue.get(timeout=60)
    child.join(timeout=30)
    assert status == "ok", value
    verify(signer.public_key, value, b"child", SignatureScheme())
    signer.sign(b"parent after", SignatureScheme())  # the parent's session still works


def test_wrong_pin_and_missing_token(softhsm, monkeypatch: pytest.MonkeyPatch) -> None:
    from iranpki.keys.pkcs11 import init_token, open_pkcs11_signer

    init_token("PinTest", SecretSource(prompt=lambda _: softhsm["so_pin"]), SecretSource(prompt=lambda _: "1234-good"))
    with pytest.raises(PinError) as err:
        open_pkcs11_signer("pkcs11:token=PinTest;object=none", SecretSource(prompt=lambda _: "9999-bad"))
    assert "wrong user PIN" in str(err.value) and "9999" not in str(err.value)
    with pytest.raises(KeyNotFoundError, match="no private key matching"):
        open_pkcs11_signer("pkcs11:token=PinTest;object=none", SecretSource(prompt=lambda _: "1234-good"))
    with pytest.raises(TokenNotFoundError) as err2:
        open_pkcs11_signer("pkcs11:token=Nope;object=x")
    assert "'Nope'" in str(err2.value) and "'PinTest'" in str(err2.value)
    # A token this process has not logged in to yet, and no PIN anywhere.
    init_token("PinTest2", SecretSource(prompt=lambda _: softhsm["so_pin"]), SecretSource(prompt=lambda _: "1234-good"))
    monkeypatch.delenv("IRANPKI_PKCS11_PIN")
    with pytest.raises(PinError, match="IRANPKI_PKCS11_PIN"):
        open_pkcs11_signer("pkcs11:token=PinTest2;object=x")
    with pytest.raises(PinError, match="cannot read the user PIN file '/nonexistent/pin'"):
        open_pkcs11_signer("pkcs11:token=PinTest2;object=x?pin-source=/nonexistent/pin")


# ---- URIs ------------------------------------------------------------------------------------

def test_uri_parse() -> None:
    uri = Pkcs11Uri.parse("pkcs11:token=Root%20CA;object=root;id=%01%02;type=private?module-path=/usr/lib/x.so")
    assert (uri.token, uri.object, uri.id, uri.type, uri.module_path) == ("Root CA", "root", b"\x01\x02", "private",
                                                                          "/usr/lib/x.so")
    for bad, msg in [("pkcs11:token=a;token=b", "appears twice"), ("pkcs11:tokn=a", "unknown PKCS#11 URI attribute"),
                     ("pkcs11:token=a?pin-value=1234", "never be written"), ("file:x", "not a PKCS#11 URI"),
                     ("pkcs11:token", "has no value")]:
        with pytest.raises(ConfigError, match=msg):
            Pkcs11Uri.parse(bad)


# Labels are printable text: control characters and undecodable bytes are refused (names.check_text).
_LABEL_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn")), min_size=1, max_size=32)


@given(token=_LABEL_TEXT, obj=_LABEL_TEXT, key_id=st.binary(min_size=1, max_size=20))
def test_uri_round_trip(token: str, obj: str, key_id: bytes) -> None:
    uri = Pkcs11Uri(token=token, object=obj, id=key_id, type="private", module_path="/opt/x y/lib.so")
    assert Pkcs11Uri.parse(str(uri)) == uri


def test_persian_labels_keep_the_zero_width_non_joiner() -> None:
    from iranpki.errors import InvalidNameError
    from iranpki.names import check_object_label, check_token_label

    assert check_object_label("کلید\u200cامضا") == "کلید\u200cامضا"  # "signature key", as Persian writes it
    assert check_token_label("توکن\u200cها")
    for bad in ("a\u202eb", "a\x00b", "\udcff"):  # a bidi override, NUL, an undecodable byte
        with pytest.raises(InvalidNameError):
            check_object_label(bad)


def test_ipv6_clients_count_per_64() -> None:
    from iranpki.httpserve import _client_of

    assert _client_of("2001:db8:1:2::5") == _client_of("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert _client_of("2001:db8:1:3::5") != _client_of("2001:db8:1:2::5")
    assert _client_of("192.0.2.1") == "192.0.2.1"

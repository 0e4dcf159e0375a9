"""Archival of an encryption key and its recovery (issue 17, the library's part; the RA's recover
request comes next): the key-recovery key made on a SoftHSM2 token agrees keys and nothing else;
an S/MIME message encrypted to a certificate before its key was lost is decrypted by openssl with
the key recovered from the archive; the recovered key reaches the subscriber only through their
passphrase; a signature key is refused, as is an archive opened for another request."""

from __future__ import annotations

import datetime as dt
import secrets
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from iranpki.keys import SecretSource
from iranpki.keys import escrow


def _certificate(key, *, signing: bool) -> bytes:  # noqa: ANN001
    """A mailbox certificate for ``key`` (issued by a throwaway CA): for encryption only, or for signing."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ali@example.ir")])
    usage = x509.KeyUsage(digital_signature=signing, content_commitment=False, key_encipherment=not signing,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False)
    cert = (x509.CertificateBuilder(name, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")]),
                                    key.public_key(), x509.random_serial_number(), now - dt.timedelta(days=1),
                                    now + dt.timedelta(days=30))
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("ali@example.ir")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def recovery(softhsm: dict) -> dict:
    from iranpki.keys.pkcs11 import init_token

    token = f"Escrow-{secrets.token_hex(3)}"
    init_token(token, SecretSource(prompt=lambda _: softhsm["so_pin"]), SecretSource(prompt=lambda _: softhsm["pin"]))
    public = escrow.generate_recovery_key(token, "krk")
    return {"token": token, "public": public, "uri": f"pkcs11:token={token};object=krk"}


def test_a_message_sent_before_the_key_was_lost_is_read_with_the_recovered_key(recovery: dict, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _certificate(key, signing=False)
    (tmp_path / "cert.pem").write_bytes(x509.load_der_x509_certificate(cert).public_bytes(serialization.Encoding.PEM))
    (tmp_path / "msg.txt").write_text("پیام محرمانه: the contract is attached.\n", encoding="utf-8")
    done = subprocess.run(["openssl", "smime", "-encrypt", "-aes256", "-in", str(tmp_path / "msg.txt"), "-out",
                           str(tmp_path / "msg.p7m"), str(tmp_path / "cert.pem")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    archived = escrow.archive(pkcs8, cert, recovery["public"], context="request 1a2b, certificate 77")
    assert pkcs8 not in str(archived).encode() and archived["type"] == "iranpki-archived-key"
    del key, pkcs8  # the subscriber loses the key
    # The subscriber asks for recovery with a passphrase; the CA side opens the archive on the
    # token and seals the key to the subscriber's transport key; the subscriber opens it.
    transport_public, transport_private = escrow.transport_key("a passphrase of the subscriber")
    with pytest.raises(escrow.EscrowError, match="this archive is for"):
        escrow.recover(archived, recovery["uri"], context="request ffff, certificate 77")
    moved = {**archived, "context": "request ffff, certificate 77"}  # relabelled for another request
    with pytest.raises(escrow.EscrowError, match="belongs to another request"):
        escrow.recover(moved, recovery["uri"], context="request ffff, certificate 77")
    recovered = escrow.recover(archived, recovery["uri"], context="request 1a2b, certificate 77")
    sealed = escrow.seal(recovered, transport_public, context="recover 9c")
    with pytest.raises(escrow.EscrowError, match="wrong passphrase"):
        escrow.unseal(sealed, transport_private, "not the passphrase", context="recover 9c")
    mine = escrow.unseal(sealed, transport_private, "a passphrase of the subscriber", context="recover 9c")
    (tmp_path / "key.pem").write_bytes(serialization.load_der_private_key(mine, None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    read = subprocess.run(["openssl", "smime", "-decrypt", "-in", str(tmp_path / "msg.p7m"), "-recip",
                           str(tmp_path / "cert.pem"), "-inkey", str(tmp_path / "key.pem")], capture_output=True)
    # S/MIME carries text with CRLF line ends (RFC 8551 3.1.1).
    assert read.returncode == 0 and read.stdout.decode("utf-8").replace("\r\n", "\n") == \
        (tmp_path / "msg.txt").read_text(encoding="utf-8")


def test_a_signature_key_is_never_archived_and_the_recovery_key_cannot_sign(recovery: dict) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    with pytest.raises(escrow.EscrowError, match="signature key is never archived"):
        escrow.archive(pkcs8, _certificate(key, signing=True), recovery["public"], context="x")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(escrow.EscrowError, match="not the certificate's key"):
        escrow.archive(other.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()),
                       _certificate(rsa.generate_private_key(public_exponent=65537, key_size=2048), signing=False),
                       recovery["public"], context="x")
    # On the token the recovery key agrees keys only: never extractable, and it does not sign.
    from pkcs11 import Attribute, ObjectClass

    from iranpki.keys.pkcs11 import _Module, _pin_source, module_path

    mod = _Module.get(module_path(None))
    with mod.lock:
        private = mod.session(recovery["token"], _pin_source(None, None)).get_key(
            label="krk", object_class=ObjectClass.PRIVATE_KEY)
        assert private[Attribute.SENSITIVE] and not private[Attribute.EXTRACTABLE] and not private[Attribute.SIGN]
        assert private[Attribute.DERIVE] and not private[Attribute.DECRYPT]

"""Archival of subscribers' encryption keys to a key-recovery key on a token, and their return
to the subscriber alone.

**The key-recovery key** is an EC key pair (P-256 or P-384) made on a token: private, sensitive,
never extractable, good for key agreement (CKA_DERIVE) and nothing else; it cannot sign. Its
public key is all that archival needs, so the process that archives (the RA's engine, in a web
process) never holds the token.

**Archival** (:func:`archive`): only an *encryption* key is archived. A key whose certificate
allows signatures (digitalSignature or contentCommitment) is refused: a signature key that could
be recovered would let its holder's signatures be made by another. The key's PKCS#8 is encrypted
with AES-256-GCM under a key derived (HKDF-SHA256) from an ECDH agreement between a fresh
ephemeral key and the recovery key, bound to a ``context`` (the request and serial it belongs to).

**Recovery** (:func:`recover`): the token makes the same agreement (CKM_ECDH1_DERIVE with the
ephemeral public key); nothing else about the key leaves it. The choice of ECDH over RSA-OAEP is
deliberate: SoftHSM2 decrypts RSA-OAEP only with SHA-1, while ECDH works alike on SoftHSM2 and on
HSMs.

**To the subscriber only** (:func:`transport_key`, :func:`seal`, :func:`unseal`): the subscriber
gives a passphrase when asking for recovery; a transport key pair is made and its private key
kept encrypted under that passphrase. The CA side seals the recovered key to the transport
public key, so that neither the web process (which has the sealed key) nor the CA side (which
never sees the passphrase) holds both.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from ..errors import IranPkiError

__all__ = ["EscrowError", "PassphraseError", "archive", "archive_key", "generate_recovery_key", "recover", "seal", "transport_key", "unseal"]

ARCHIVE_TYPE = "iranpki-archived-key"
#: The shortest passphrase a transport key (and so a recovered key) is kept under.
MIN_PASSPHRASE = 12
SEALED_TYPE = "iranpki-sealed-key"
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}


class EscrowError(IranPkiError):
    """A key that may not be archived, or an archive that cannot be opened."""


class PassphraseError(EscrowError):
    """The subscriber's passphrase does not open the transport key."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _kdf(shared: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def _curve(public_key):  # noqa: ANN001, ANN202
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name not in _CURVES:
        raise EscrowError("the key-recovery key is an EC key on P-256 or P-384 (key agreement)")
    return public_key.curve


def _encrypt_to(public_key, plaintext: bytes, info: bytes, aad: bytes) -> dict[str, str]:  # noqa: ANN001
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    ephemeral = ec.generate_private_key(_curve(public_key))
    key = _kdf(ephemeral.exchange(ec.ECDH(), public_key), info)
    nonce = secrets.token_bytes(12)
    return {"curve": _CURVES[public_key.curve.name],
            "ephemeral": _b64(ephemeral.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)),
            "nonce": _b64(nonce), "ciphertext": _b64(AESGCM(key).encrypt(nonce, plaintext, aad))}


def _decrypt(shared: bytes, box: dict[str, Any], info: bytes, aad: bytes, what: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        return AESGCM(_kdf(shared, info)).decrypt(base64.b64decode(box["nonce"]), base64.b64decode(box["ciphertext"]),
                                                  aad)
    except (InvalidTag, KeyError, ValueError):
        raise EscrowError(f"the {what} does not open: it was altered, belongs to another request, or another key "
                          "was used") from None


# ---- the key-recovery key on a token ------------------------------------------------------------

def generate_recovery_key(token: str, label: str, *, curve: str = "P-256", module: str | None = None, pin=None):  # noqa: ANN001, ANN201
    """Make the key-recovery key on ``token``: EC, for key agreement only, never extractable.
    Returns its public key (to be registered where keys are archived)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from pkcs11 import Attribute, KeyType, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters

    from ..names import check_object_label
    from .pkcs11 import _Module, _pin_source, module_path

    check_object_label(label)
    names = {"P-256": "secp256r1", "P-384": "secp384r1"}
    if curve not in names:
        raise EscrowError(f"curve {curve!r}: the key-recovery key is on P-256 or P-384")
    mod = _Module.get(module_path(module))
    with mod.lock:
        s = mod.session(token, _pin_source(None, pin))
        if list(s.get_objects({Attribute.LABEL: label, Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
            raise EscrowError(f"token {token!r} already holds a key labelled {label!r}; choose another label")
        params = s.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(names[curve])}, local=True)
        pub, _ = params.generate_keypair(
            store=True, label=label, id=secrets.token_bytes(16),
            public_template={Attribute.TOKEN: True, Attribute.VERIFY: False, Attribute.DERIVE: False},
            private_template={Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                              Attribute.EXTRACTABLE: False, Attribute.DERIVE: True, Attribute.SIGN: False,
                              Attribute.DECRYPT: False, Attribute.UNWRAP: False})
        point = bytes(pub[Attribute.EC_POINT])
    raw = point[2:] if point[:1] == b"\x04" and point[1] == len(point) - 2 else point  # DER OCTET STRING
    return ec.EllipticCurvePublicKey.from_encoded_point(getattr(ec, "SECP256R1" if curve == "P-256" else "SECP384R1")(),
                                                        raw)


# ---- archival and recovery ------------------------------------------------------------------------

def archive_key(private_key_der: bytes, usages: Iterable[str], recovery_public_key, *, context: str) -> dict[str, Any]:  # noqa: ANN001
    """The key ``private_key_der`` (PKCS#8), whose certificate will carry the key ``usages``
    (names as in profiles: keyEncipherment, keyAgreement, ...), archived to the key-recovery key
    and bound to ``context``. For a key made before its certificate (the RA's software keys); a
    key whose usages allow signatures is refused. The archive names its public key's SHA-256."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_private_key

    usages = set(usages)
    if usages & {"digitalSignature", "contentCommitment"}:
        raise EscrowError("a signature key is never archived: its certificate allows digitalSignature or "
                          "contentCommitment, and a recoverable signature key would let another sign as its holder")
    if not usages & {"keyEncipherment", "keyAgreement"}:
        raise EscrowError("the key is not for encryption (no keyEncipherment or keyAgreement); nothing to archive")
    try:
        key = load_der_private_key(private_key_der, None)
    except (ValueError, TypeError):
        raise EscrowError("the key to archive is not an unencrypted PKCS#8 private key") from None
    spki = PublicFormat.SubjectPublicKeyInfo
    box = _encrypt_to(recovery_public_key, private_key_der, b"iranpki key archive v1", context.encode("utf-8"))
    return {"type": ARCHIVE_TYPE, "version": 1, "context": context, **box,
            "recovery_key_sha256": hashlib.sha256(recovery_public_key.public_bytes(Encoding.DER, spki)).hexdigest(),
            "public_key_sha256": hashlib.sha256(key.public_key().public_bytes(Encoding.DER, spki)).hexdigest()}


def archive(private_key_der: bytes, certificate_der: bytes, recovery_public_key, *, context: str) -> dict[str, Any]:  # noqa: ANN001
    """The encryption key ``private_key_der`` (PKCS#8) of ``certificate_der``, archived to the
    key-recovery key and bound to ``context``. A signature key is refused."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_private_key

    cert = x509.load_der_x509_certificate(certificate_der)
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise EscrowError("the certificate has no key usage: only a key certified for encryption alone is "
                          "archived") from None
    names = {name for name, attr in (("digitalSignature", "digital_signature"), ("contentCommitment", "content_commitment"),
                                     ("keyEncipherment", "key_encipherment"), ("keyAgreement", "key_agreement"))
             if getattr(usage, attr)}
    key = load_der_private_key(private_key_der, None)
    spki = PublicFormat.SubjectPublicKeyInfo
    if not names & {"digitalSignature", "contentCommitment"} and \
            key.public_key().public_bytes(Encoding.DER, spki) != cert.public_key().public_bytes(Encoding.DER, spki):
        raise EscrowError("the key is not the certificate's key")
    return {**archive_key(private_key_der, names, recovery_public_key, context=context),
            "certificate_sha256": hashlib.sha256(certificate_der).hexdigest()}


def recover(archived: dict[str, Any], recovery_key: str, *, context: str, pin=None, module: str | None = None) -> bytes:  # noqa: ANN001
    """The archived key's PKCS#8, opened with the key-recovery key on its token (``recovery_key``:
    its PKCS#11 URI), if ``context`` is the one it was archived under."""
    from pkcs11 import KDF, Attribute, KeyType, ObjectClass

    from .pkcs11 import _Module, _pin_source, module_path
    from .reference import parse_key_reference

    if archived.get("type") != ARCHIVE_TYPE or archived.get("context") != context:
        raise EscrowError(f"this archive is for {archived.get('context')!r}, not {context!r}")
    uri = parse_key_reference(recovery_key).uri  # type: ignore[attr-defined]
    mod = _Module.get(module_path(module))
    with mod.lock:
        s = mod.session(uri.token, _pin_source(uri, pin))
        private = s.get_key(label=uri.object, object_class=ObjectClass.PRIVATE_KEY)
        secret = private.derive_key(KeyType.GENERIC_SECRET, 8 * (32 if archived.get("curve") == "P-256" else 48),
                                    mechanism_param=(KDF.NULL, None, base64.b64decode(archived["ephemeral"])),
                                    template={Attribute.TOKEN: False, Attribute.SENSITIVE: False,
                                              Attribute.EXTRACTABLE: True})
        try:
            shared = bytes(secret[Attribute.VALUE])
        finally:
            secret.destroy()
    return _decrypt(shared, archived, b"iranpki key archive v1", context.encode("utf-8"), "archive")


# ---- to the subscriber only -------------------------------------------------------------------------

def transport_key(passphrase: str) -> tuple[bytes, bytes]:
    """A transport key pair for one recovery: (its public key, DER; its private key in a PKCS#12
    file under ``passphrase``: PBKDF2-HMAC-SHA256 with 600,000 rounds and AES-256, as the RA's
    software keys, since it is kept in the store beside what it opens)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PrivateFormat, PublicFormat, pkcs12

    if len(passphrase) < MIN_PASSPHRASE:
        raise EscrowError(f"the passphrase protecting the recovered key has at least {MIN_PASSPHRASE} characters")
    key = ec.generate_private_key(ec.SECP256R1())
    encryption = (PrivateFormat.PKCS12.encryption_builder().kdf_rounds(600_000)
                  .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256())
                  .build(passphrase.encode("utf-8")))
    return (key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
            pkcs12.serialize_key_and_certificates(b"transport", key, None, None, encryption))


def seal(data: bytes, transport_public_der: bytes, *, context: str) -> dict[str, Any]:
    """``data`` (the recovered key) sealed to the subscriber's transport key."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    return {"type": SEALED_TYPE, "version": 1, "context": context,
            **_encrypt_to(load_der_public_key(transport_public_der), data, b"iranpki key transport v1",
                          context.encode("utf-8"))}


def unseal(sealed: dict[str, Any], transport_private: bytes, passphrase: str, *, context: str) -> bytes:
    """The sealed key, opened with the transport key (its PKCS#12, :func:`transport_key`) and the
    subscriber's passphrase; :class:`PassphraseError` when the passphrase is wrong."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12

    if sealed.get("type") != SEALED_TYPE or sealed.get("context") != context:
        raise EscrowError(f"this sealed key is for {sealed.get('context')!r}, not {context!r}")
    try:
        key, _, _ = pkcs12.load_key_and_certificates(transport_private, passphrase.encode("utf-8"))
    except (ValueError, TypeError):
        raise PassphraseError("wrong passphrase for the recovered key") from None
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    peer = ec.EllipticCurvePublicKey.from_encoded_point(key.curve, base64.b64decode(sealed["ephemeral"]))
    return _decrypt(key.exchange(ec.ECDH(), peer), sealed, b"iranpki key transport v1", context.encode("utf-8"),
                    "sealed key")

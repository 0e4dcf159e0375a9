"""Backup of a CA key under M-of-N custodians, and a token PIN split the same way.

**Backup.** The CA key (made with ``backup=True``: sensitive, wrappable only under a trusted
key) is wrapped on its token with CKM_AES_KEY_WRAP_PAD (RFC 5649) under a fresh AES-256
key-encryption key (KEK). The KEK lives on the token only for the wrap, as an object the security
officer marks trusted (CKA_TRUSTED), and is destroyed after. The KEK is split M of N with
Shamir's scheme (PyCryptodome's, over GF(2^128), one split per 16-byte half), and each share is
encrypted to one custodian's certificate (CMS EnvelopedData, AES-256; custodians hold RSA keys).
The manifest keeps the wrapped key, the public key, and a commitment (SHA-256) to each share and
to the KEK, so that a wrong or corrupted share is found and named, and fewer than M are refused.

**Restore** into a fresh token: M custodians each decrypt their share; the shares give the KEK;
the token unwraps the key (sensitive, again wrappable only under a trusted key); the restored
key's public key must be the manifest's, and it must sign what that public key verifies.

**PIN split.** A token's user PIN split M of N the same way: the root key is activated only
when M custodians bring their shares (:func:`join_pin`).

A key made non-extractable (the default) cannot be backed up at all: no PKCS#11 call can take it
off the token, wrapped or not. That is the cost of the stronger setting: a token lost is a CA
lost (docs/key-backup.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import IranPkiError

__all__ = ["BackupError", "backup_key", "join_pin", "open_share", "restore_key", "split_pin"]


class BackupError(IranPkiError):
    """A backup, share or restore that does not hold."""


# ---- shares -------------------------------------------------------------------------------------

def _split(secret: bytes, threshold: int, count: int) -> list[tuple[int, bytes]]:
    from Crypto.Protocol.SecretSharing import Shamir

    if not 2 <= threshold <= count <= 16:
        raise BackupError(f"{threshold} of {count}: the threshold is at least 2 and at most the number of "
                          "custodians, who are at most 16")
    padded = secret + b"\0" * (-len(secret) % 16)
    blocks = [Shamir.split(threshold, count, padded[i:i + 16]) for i in range(0, len(padded), 16)]
    return [(blocks[0][j][0], b"".join(b[j][1] for b in blocks)) for j in range(count)]


def _combine(shares: Sequence[tuple[int, bytes]], length: int) -> bytes:
    from Crypto.Protocol.SecretSharing import Shamir

    size = len(shares[0][1])
    out = b"".join(Shamir.combine([(i, s[k:k + 16]) for i, s in shares]) for k in range(0, size, 16))
    return out[:length]


def _commit(kind: str, backup_id: str, index: int, value: bytes) -> str:
    return hashlib.sha256(f"iranpki {kind} share\n{backup_id}\n{index}\n".encode() + value).hexdigest()


def _encrypt_to(certificate_pem: bytes, plaintext: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.ciphers import algorithms
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

    cert = x509.load_pem_x509_certificate(certificate_pem)
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        raise BackupError(f"custodian {cert.subject.rfc4514_string()} has a {type(cert.public_key()).__name__}: shares "
                          "are encrypted to RSA certificates (CMS key transport); give the custodian's RSA certificate")
    return (pkcs7.PKCS7EnvelopeBuilder().set_data(plaintext).add_recipient(cert)
            .set_content_encryption_algorithm(algorithms.AES256)
            .encrypt(Encoding.DER, []))


def open_share(envelope: bytes, certificate_pem: bytes, private_key_pem: bytes, passphrase: bytes | None) -> bytes:
    """A custodian opens their share (CMS EnvelopedData) with their key: the share's JSON.
    (``openssl cms -decrypt -inform DER -recip cert.pem -inkey key.pem`` does the same.)"""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs7

    try:
        return pkcs7.pkcs7_decrypt_der(envelope, x509.load_pem_x509_certificate(certificate_pem),
                                       load_pem_private_key(private_key_pem, passphrase), [])
    except ValueError as exc:
        raise BackupError(f"this share cannot be opened with that custodian's key: {exc}") from None


def _check_custodians(custodians: Sequence[bytes], threshold: int) -> None:
    """Refuse before anything is made: unreadable or non-RSA certificates, one custodian twice
    (who would then hold two shares), a threshold out of range."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if not 2 <= threshold <= len(custodians) <= 16:
        raise BackupError(f"{threshold} of {len(custodians)}: the threshold is at least 2 and at most the number of "
                          "custodians, who are at most 16")
    seen: dict[bytes, str] = {}
    for n, pem in enumerate(custodians, 1):
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise BackupError(f"custodian certificate {n} is not a PEM certificate") from None
        if not isinstance(cert.public_key(), rsa.RSAPublicKey):
            raise BackupError(f"custodian {cert.subject.rfc4514_string()} has no RSA key: shares are encrypted to RSA "
                              "certificates (CMS key transport)")
        spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if spki in seen:
            raise BackupError(f"custodians {seen[spki]} and {cert.subject.rfc4514_string()} have the same key: one "
                              "person would hold two shares")
        seen[spki] = cert.subject.rfc4514_string()


def _share_files(kind: str, backup_id: str, secret: bytes, threshold: int, custodians: Sequence[bytes],
                 out: Path) -> list[dict]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    listed = []
    for (index, value), cert_pem in zip(_split(secret, threshold, len(custodians)), custodians, strict=True):
        cert = x509.load_pem_x509_certificate(cert_pem)
        doc = {"type": f"iranpki-{kind}-share", "id": backup_id, "index": index, "threshold": threshold,
               "share": value.hex()}
        name = f"share-{index}.p7m"
        _write_new(out / name, _encrypt_to(cert_pem, json.dumps(doc).encode()))
        listed.append({"index": index, "file": name, "custodian": cert.subject.rfc4514_string(),
                       "certificate_sha256": hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
                       "commitment": _commit(kind, backup_id, index, value)})
    return listed


def _collect(kind: str, manifest: dict, opened: Sequence[bytes]) -> bytes:
    """The secret from the custodians' opened shares, after checking each against the manifest."""
    by_index = {c["index"]: c for c in manifest["custodians"]}
    good: dict[int, bytes] = {}
    for n, raw in enumerate(opened, 1):
        try:
            doc = json.loads(raw)
            index, value = int(doc["index"]), bytes.fromhex(doc["share"])
        except (ValueError, KeyError, TypeError):
            raise BackupError(f"share {n} given is not a share file (JSON with index and share)") from None
        who = by_index.get(index, {}).get("custodian", f"index {index}")
        if doc.get("type") != f"iranpki-{kind}-share" or doc.get("id") != manifest["id"]:
            raise BackupError(f"share {n} given ({who}) belongs to another backup ({doc.get('id')}), not {manifest['id']}")
        if index not in by_index or not secrets.compare_digest(_commit(kind, manifest["id"], index, value),
                                                               by_index[index]["commitment"]):
            raise BackupError(f"share {n} given (index {index}, {who}) is wrong or corrupted: it is not the share "
                              "this backup gave that custodian")
        if index in good:
            raise BackupError(f"the share of {who} (index {index}) was given twice; each custodian gives one")
        good[index] = value
    threshold = int(manifest["threshold"])
    if len(good) < threshold:
        raise BackupError(f"{len(good)} share(s) given; this needs {threshold} of the {len(by_index)} custodians")
    secret = _combine(sorted(good.items())[:threshold], int(manifest["secret_length"]))
    if not secrets.compare_digest(hashlib.sha256(manifest["id"].encode() + secret).hexdigest(), manifest["secret_check"]):
        raise BackupError("the shares do not give the backup's secret (a share was altered in a way its commitment "
                          "did not catch); nothing was restored")
    return secret


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _new_folder(out: str | os.PathLike[str]) -> Path:
    folder = Path(out)
    if folder.exists():
        raise BackupError(f"{folder} exists; a backup is written into a new folder, never over another")
    folder.mkdir(parents=True)
    return folder


# ---- the CA key ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackupResult:
    folder: Path
    backup_id: str
    spki_sha256: str


def backup_key(reference: str, custodians: Sequence[bytes], threshold: int, out: str | os.PathLike[str], *,
               pin, so_pin, module: str | None = None) -> BackupResult:  # noqa: ANN001 - SecretSources
    """Back up the token key ``reference`` (a PKCS#11 URI) into the new folder ``out``."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

    from .pkcs11 import _Module, _pin_source, module_path
    from .reference import parse_key_reference

    ref = parse_key_reference(reference)
    uri = getattr(ref, "uri", None)
    if uri is None or not ref.on_token:
        raise BackupError(f"{reference} is not a key on a token; a software key is backed up as its encrypted file")
    _check_custodians(custodians, threshold)
    mod = _Module.get(module_path(module))
    token = mod.token(uri.token)
    backup_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    kek = secrets.token_bytes(32)
    kek_label = f"iranpki-backup-kek-{backup_id}"
    if Path(out).exists():
        raise BackupError(f"{out} exists; a backup is written into a new folder, never over another")
    with mod.lock:
        cached = mod.sessions.pop(uri.token, None)
        if cached is not None:  # the security officer logs in next: this process's user session ends first
            cached.close()
        # The security officer marks the KEK trusted: the only kind of key the CA key may be wrapped under.
        so = so_pin.get(f"token {uri.token!r} (security officer)")
        try:
            with token.open(rw=True, so_pin=so) as s:
                s.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                                 Attribute.VALUE: kek, Attribute.TOKEN: True, Attribute.LABEL: kek_label,
                                 Attribute.WRAP: True, Attribute.UNWRAP: False, Attribute.TRUSTED: True,
                                 Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.PRIVATE: False})
        except pkcs11.PinIncorrect:
            raise BackupError(f"wrong security officer PIN for token {uri.token!r}") from None
        finally:
            del so
        try:
            user = _pin_source(None, pin).get(f"token {uri.token!r}")
            with token.open(rw=True, user_pin=user) as s:
                del user
                wrapping = s.get_key(label=kek_label, object_class=ObjectClass.SECRET_KEY)
                private = s.get_key(label=uri.object, object_class=ObjectClass.PRIVATE_KEY)
                public = s.get_key(label=uri.object, object_class=ObjectClass.PUBLIC_KEY)
                try:
                    wrapped = wrapping.wrap_key(private, mechanism=Mechanism.AES_KEY_WRAP_PAD)
                except (pkcs11.KeyNotWrappable, pkcs11.KeyUnextractable):
                    wrapping.destroy()
                    raise BackupError(f"key {uri.object!r} on token {uri.token!r} cannot be wrapped: it was made "
                                      "non-extractable (the default), so it can never leave the token, not even "
                                      "wrapped. Keys meant to be backed up are made with --backup") from None
                from .pkcs11 import _public_key_of

                wrapping.destroy()  # the KEK's only copies are now the custodians' shares
                public_key = _public_key_of(public)
                key_type = "rsa" if private.key_type == KeyType.RSA else "ec"
                key_id = private[Attribute.ID]
        finally:
            # If anything above failed before the KEK was destroyed, the user session may not have
            # been able to: remove it as the security officer, so that no trusted KEK stays behind.
            with token.open(rw=False) as s:
                left = list(s.get_objects({Attribute.LABEL: kek_label}))
            if left:
                with token.open(rw=True, so_pin=so_pin.get(f"token {uri.token!r} (security officer)")) as s:
                    for o in s.get_objects({Attribute.LABEL: kek_label}):
                        o.destroy()
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    final = Path(out)
    folder = _new_folder(final.with_name(f".{final.name}.partial-{secrets.token_hex(4)}"))
    listed = _share_files("kek", backup_id, kek, threshold, custodians, folder)
    manifest = {"type": "iranpki-key-backup", "version": 1, "id": backup_id,
                "created_at": datetime.now(timezone.utc).isoformat(), "key": reference, "label": uri.object,
                "key_id": bytes(key_id).hex(), "key_type": key_type, "public_key": base64.b64encode(spki).decode(),
                "mechanism": "CKM_AES_KEY_WRAP_PAD", "wrapped": base64.b64encode(bytes(wrapped)).decode(),
                "threshold": threshold, "secret_length": 32,
                "secret_check": hashlib.sha256(backup_id.encode() + kek).hexdigest(), "custodians": listed}
    _write_new(folder / "manifest.json", json.dumps(manifest, indent=1).encode() + b"\n")
    os.rename(folder, final)  # whole, or not there
    return BackupResult(final, backup_id, hashlib.sha256(spki).hexdigest())


def restore_key(folder: str | os.PathLike[str], opened_shares: Sequence[bytes], token_label: str, *, pin,  # noqa: ANN001
                label: str | None = None, module: str | None = None) -> str:
    """Restore the backup in ``folder`` onto ``token_label`` with the custodians' opened shares;
    the restored key's PKCS#11 URI, after checking its public key and a signature."""
    import pkcs11
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

    from .pkcs11 import _Module, _pin_source, module_path

    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    kek = _collect("kek", manifest, opened_shares)
    label = label or manifest["label"]
    spki = base64.b64decode(manifest["public_key"])
    public_key = load_der_public_key(spki)
    key_id = bytes.fromhex(manifest["key_id"])
    mod = _Module.get(module_path(module))
    with mod.lock:
        s = mod.session(token_label, _pin_source(None, pin))  # this process's logged-in session
        if list(s.get_objects({Attribute.LABEL: label, Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
            raise BackupError(f"token {token_label!r} holds a key labelled {label!r} already; restore into a fresh "
                              "token, or give another --label")
        unwrapping = s.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                                      Attribute.VALUE: kek, Attribute.TOKEN: False, Attribute.UNWRAP: True,
                                      Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})
        key_type = KeyType.RSA if manifest["key_type"] == "rsa" else KeyType.EC
        try:
            unwrapping.unwrap_key(ObjectClass.PRIVATE_KEY, key_type, base64.b64decode(manifest["wrapped"]),
                                  mechanism=Mechanism.AES_KEY_WRAP_PAD, label=label, id=key_id, store=True,
                                  capabilities=pkcs11.MechanismFlag.SIGN,
                                  # python-pkcs11 lists every capability; a private key takes no
                                  # encrypt, wrap or verify attribute at all (DEFAULT leaves them out).
                                  template={Attribute.ENCRYPT: pkcs11.DEFAULT, Attribute.WRAP: pkcs11.DEFAULT,
                                            Attribute.VERIFY: pkcs11.DEFAULT,
                                            Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.SIGN: True,
                                            Attribute.EXTRACTABLE: True, Attribute.WRAP_WITH_TRUSTED: True,
                                            Attribute.DECRYPT: False, Attribute.DERIVE: False})
        except pkcs11.PKCS11Error as exc:
            raise BackupError(f"the token could not unwrap the key: {type(exc).__name__}") from None
        finally:
            unwrapping.destroy()
        try:
            s.create_object(_public_template(public_key, label, key_id))
        except pkcs11.PKCS11Error as exc:
            for o in s.get_objects({Attribute.LABEL: label}):
                o.destroy()
            raise BackupError(f"the token did not take the public key: {type(exc).__name__}; nothing was left on it") from None
    uri = f"pkcs11:token={token_label};object={label};type=private"
    try:
        _check_restored(uri, public_key, pin, module)
    except BackupError:
        with mod.lock:
            for o in mod.session(token_label, _pin_source(None, pin)).get_objects({Attribute.LABEL: label}):
                o.destroy()
        raise
    return uri


def _public_template(public_key, label: str, key_id: bytes) -> dict:  # noqa: ANN001
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from pkcs11 import Attribute, KeyType, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters

    base = {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.TOKEN: True, Attribute.LABEL: label, Attribute.ID: key_id,
            Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False}
    if isinstance(public_key, rsa.RSAPublicKey):
        n = public_key.public_numbers()
        return {**base, Attribute.KEY_TYPE: KeyType.RSA, Attribute.MODULUS: n.n.to_bytes((n.n.bit_length() + 7) // 8, "big"),
                Attribute.PUBLIC_EXPONENT: n.e.to_bytes((n.e.bit_length() + 7) // 8, "big")}
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    point = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {**base, Attribute.KEY_TYPE: KeyType.EC, Attribute.EC_PARAMS: encode_named_curve_parameters(public_key.curve.name),
            Attribute.EC_POINT: bytes([0x04, len(point)]) + point}


def _check_restored(uri: str, public_key, pin, module: str | None) -> None:  # noqa: ANN001
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from .base import SignatureScheme, signature_valid
    from .pkcs11 import open_pkcs11_signer

    from .reference import KeySettings

    signer = open_pkcs11_signer(uri, pin, KeySettings(pkcs11_module=module))
    try:
        fmt = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        if signer.public_key.public_bytes(*fmt) != public_key.public_bytes(*fmt):
            raise BackupError("the restored key's public key is not the one backed up")
        probe = secrets.token_bytes(32)
        scheme = SignatureScheme.parse("sha256")
        if not signature_valid(public_key, signer.sign(probe, scheme), probe, scheme):
            raise BackupError("the restored key does not sign what the backed-up public key verifies")
    finally:
        signer.close()


# ---- the token PIN, M of N ------------------------------------------------------------------------

def split_pin(pin_value: str, custodians: Sequence[bytes], threshold: int, out: str | os.PathLike[str],
              *, token: str) -> Path:
    """Split a token's user PIN among custodians (into the new folder ``out``)."""
    split_id = f"pin-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    value = pin_value.encode("utf-8")
    if not 4 <= len(value) <= 63:
        raise BackupError("a PIN of 4 to 63 bytes is split")
    _check_custodians(custodians, threshold)
    folder = _new_folder(out)
    # The length, the PIN, then random bytes: the check below (a hash of it all) tells nothing
    # about a short PIN to whoever reads the manifest.
    padded = bytes([len(value)]) + value + secrets.token_bytes(63 - len(value))
    listed = _share_files("pin", split_id, padded, threshold, custodians, folder)
    manifest = {"type": "iranpki-pin-split", "version": 1, "id": split_id, "token": token, "threshold": threshold,
                "secret_length": 64, "secret_check": hashlib.sha256(split_id.encode() + padded).hexdigest(),
                "custodians": listed}
    _write_new(folder / "manifest.json", json.dumps(manifest, indent=1).encode() + b"\n")
    return folder


def join_pin(folder: str | os.PathLike[str], opened_shares: Sequence[bytes]) -> tuple[str, str]:
    """(token, PIN) from M custodians' opened shares; fewer, wrong or corrupted ones are refused."""
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    padded = _collect("pin", manifest, opened_shares)
    return manifest["token"], padded[1:1 + padded[0]].decode("utf-8")

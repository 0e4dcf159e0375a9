"""The desk's token work: what the registration officer's client does with the token in the
reader. The key is generated on the token (private, sensitive, never extractable), its PKCS#10
request is signed by the token (proof of possession, RFC 2986), the token's make, model and
serial come from the token itself (``CK_TOKEN_INFO``), and the issued certificate is written
back onto the token beside its key before it is handed over."""

from __future__ import annotations

from dataclasses import dataclass, field

from asn1crypto import algos, csr, keys, x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import TokenNotFoundError
from ..keys.base import KeySpec, SecretSource, SignatureScheme, Signer

__all__ = ["DeskKey", "csr_signed_by", "key_at_desk", "token_device"]


@dataclass(frozen=True)
class DeskKey:
    """A key made on the subscriber's token: its signer, its CSR (DER) and the token's identity."""

    signer: Signer
    csr: bytes
    device: dict[str, str] = field(default_factory=dict)


def token_device(label: str, *, module: str | None = None) -> dict[str, str]:
    """The token's manufacturer, model and serial as the token reports them."""
    from ..keys.pkcs11 import list_tokens

    tokens = list_tokens(module)
    for t in tokens:
        if t.label == label:
            return {"manufacturer": t.manufacturer.strip(), "model": t.model.strip(), "serial": t.serial.strip()}
    raise TokenNotFoundError(label, [t.label for t in tokens])


def csr_signed_by(signer: Signer, scheme: SignatureScheme | None = None) -> bytes:
    """A PKCS#10 request (empty subject: the RA request carries the subject) for the signer's
    key, signed by it (on the token, when the signer is a token's)."""
    scheme = scheme or SignatureScheme(signer.key_spec.default_hash)
    spki = keys.PublicKeyInfo.load(signer.public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    info = csr.CertificationRequestInfo({"version": "v1", "subject": x509.Name.build({}),
                                         "subject_pk_info": spki, "attributes": []})
    signature = signer.sign_checked(info.dump(), scheme)
    algorithm = algos.SignedDigestAlgorithm.load(scheme.algorithm_identifier(signer.key_spec))
    return csr.CertificationRequest({"certification_request_info": info, "signature_algorithm": algorithm,
                                     "signature": signature}).dump()


def key_at_desk(token: str, label: str, spec: KeySpec, *, module: str | None = None,
                pin: SecretSource | None = None) -> DeskKey:
    """Generate the subscriber's key on the token in the reader, and its CSR and device."""
    from ..keys.pkcs11 import generate_keypair

    signer = generate_keypair(token, label, spec, module=module, pin=pin)
    return DeskKey(signer, csr_signed_by(signer), token_device(token, module=module))

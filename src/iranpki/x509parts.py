"""Parts of X.509 structures that the issuance engine, the CRL writer and the OCSP responder all
compose (foundation layer: docs/architecture.md): extensions as DER, and the URLs a CA's
certificates and CRLs name (RFC 5280 4.2.1.13 cRLDistributionPoints, 5.2.5
issuingDistributionPoint, 5.2.6 freshestCRL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from cryptography import x509

from . import der
from .errors import IssuanceError
from .store.base import CaRecord

__all__ = ["CRL_TEMPLATE", "DELTA_CRL_TEMPLATE", "IssuerFields", "crl_url", "encode_extension", "fill_url"]


def encode_extension(oid: x509.ObjectIdentifier, critical: bool, value: x509.ExtensionType) -> bytes:
    """The DER Extension of ``value`` (encoded by cryptography), for the structures iranpki composes."""
    # RFC 5280 4.1: Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }.
    # DER leaves a DEFAULT value out, so a non-critical extension carries no BOOLEAN at all.
    return der.sequence(der.oid(oid.dotted_string), b"\x01\x01\xff" if critical else b"",
                        der.octet_string(value.public_bytes()))


@dataclass(frozen=True)
class IssuerFields:
    """What a certificate takes from its issuer."""

    name: str
    name_der: bytes
    ski: bytes | None
    level: int | None
    repository_url: str
    ocsp_url: str
    not_after: datetime | None
    crl_shards: int = 1


def _shard_text(shards: int, shard: int) -> str:
    return f"-{shard}" if shards > 1 else ""


def fill_url(template: str | None, issuer: IssuerFields, shard: int = 0) -> str | None:
    """A profile's URL template (``{repository}``, ``{ocsp}``, ``{ca}``, ``{shard}``) for ``issuer``."""
    if template is None:
        return None
    if issuer.crl_shards > 1 and "{shard}" not in template and "{ca}" in template and "crl" in template:
        raise IssuanceError(
            f"CA {issuer.name!r} partitions its CRL into {issuer.crl_shards} shards, but the URL template "
            f"{template!r} has no {{shard}}; add {{shard}} so each certificate names its shard's CRL"
        )
    # A name made by iranpki is a slug (checked when the CA is created) and goes into the URL as it
    # is; a record from an older version or edited by hand is percent-encoded, so that no '/',
    # '..', '?', '#' or space can reach a certificate, and the CA can still issue and revoke.
    url = template.format(repository=issuer.repository_url.rstrip("/"), ocsp=issuer.ocsp_url,
                          ca=quote(issuer.name, safe=""),
                          shard=_shard_text(issuer.crl_shards, shard))
    return url or None


#: Where a CA's CRLs are published, relative to its repository URL (the profiles' default template).
CRL_TEMPLATE = "{repository}/crl/{ca}{shard}.crl"
DELTA_CRL_TEMPLATE = "{repository}/crl/{ca}{shard}-delta.crl"


def crl_url(record: CaRecord, shard: int | None = None, *, delta: bool = False) -> str:
    """The URL of the CA's CRL (of ``shard``, or its delta CRL), as its certificates name it."""
    issuer = IssuerFields(record.name, b"", None, record.level, record.repository_url, record.ocsp_url, None,
                          record.crl_shards)
    return fill_url(DELTA_CRL_TEMPLATE if delta else CRL_TEMPLATE, issuer, shard or 0) or ""

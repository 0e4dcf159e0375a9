"""A throw-away national PKI for the signing examples: a root, a level-1 CA and its CRLs,
all with software keys in a temporary folder. Real signers get their certificate from an RA
office, with the key on a token."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from iranpki import crl
from iranpki.ca import CertificateAuthority, IssueRequest, create_intermediate, create_root, parse_subject
from iranpki.keys import SoftwareSigner
from iranpki.store import Store, open_store


@dataclass
class ThrowawayPki:
    folder: Path
    store: Store
    root: CertificateAuthority
    ca: CertificateAuthority

    @property
    def root_pem(self) -> bytes:
        return self.root.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def chain(self) -> list[bytes]:
        """The issuing CA, which a signer embeds in every signature."""
        return [self.ca.certificate.public_bytes(serialization.Encoding.PEM)]

    def subscriber(self, profile: str, subject: str, *, emails: list[str] | None = None,
                   rsa_bits: int = 2048) -> tuple[SoftwareSigner, bytes]:
        """A new RSA key and its certificate of ``profile``."""
        key = rsa.generate_private_key(65537, rsa_bits)
        issued = self.ca.issue(profile, IssueRequest(parse_subject(subject), key.public_key(), emails=emails or []))
        return SoftwareSigner(key), issued.pem

    def local_timestamper(self):  # noqa: ANN201 - a pyHanko TimeStamper
        """Our RFC 3161 time-stamp authority (:mod:`iranpki.tsa`) in this process, with a TSA
        certificate of this PKI; over HTTP it is `iranpki tsa serve` (give its URL instead)."""
        import itertools

        from iranpki.signing import RespondingTimeStamper
        from iranpki.tsa import TimeStampAuthority

        key = ec.generate_private_key(ec.SECP256R1())
        issued = self.ca.issue("tsa", IssueRequest(parse_subject("C=IR,O=Example,CN=Example TSA"), key.public_key()))
        authority = TimeStampAuthority(SoftwareSigner(key), issued.record.certificate, itertools.count(1).__next__)
        return RespondingTimeStamper(authority.respond)

    def crls(self) -> list[bytes]:
        """A fresh CRL of the root and of the level-1 CA (for PAdES B-LT)."""
        out = self.folder / "crls"
        return [crl.generate_crl(self.store, self.store.get_ca(ca.name), ca.signer, out).der
                for ca in (self.root, self.ca)]


def throwaway_pki() -> ThrowawayPki:
    folder = Path(tempfile.mkdtemp(prefix="iranpki-example-"))
    store = open_store(str(folder / "store.sqlite3"), create=True)
    root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                       parse_subject("C=IR,O=I.R.Government,OU=Root CA,CN=Example Root"),
                       repository_url="http://repository.example.ir")
    # Software CA keys are allowed at assurance level 1 only.
    ca = create_intermediate(root, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), "gica1", 1,
                             parse_subject("C=IR,O=Example,CN=Example Level 1 CA"))
    return ThrowawayPki(folder, store, root, ca)

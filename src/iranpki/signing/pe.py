"""Authenticode over Windows PE files through ``osslsigncode`` (no Python library signs PE)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from ..errors import SigningError
from ..keys.base import SecretSource
from .common import (
    _OSSLSIGNCODE_TIMEOUT,
    CertificateInput,
    _crl_objects,
    _one_certificate,
    _roots,
    _Verdict,
    load_asn1_certificates,
)

# ---- Windows PE (Authenticode through osslsigncode) ---------------------------------------------

def _osslsigncode() -> str:
    exe = shutil.which("osslsigncode")
    if exe is None:
        raise SigningError("osslsigncode is not installed; install it (apt-get install osslsigncode) to sign PE files")
    return exe


def _pem_bundle(certs: Iterable[asn1_x509.Certificate]) -> bytes:
    return b"".join(pem.armor("CERTIFICATE", c.dump()) for c in certs)


def sign_pe(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str], *, key_file: str | os.PathLike[str],
            certificate: CertificateInput, chain: Sequence[CertificateInput] = (),
            passphrase: SecretSource | None = None, digest: str = "sha256", description: str | None = None,
            url: str | None = None, timestamp_url: str | None = None) -> None:
    """Authenticode-sign a Windows PE (.exe, .dll) with ``osslsigncode`` and a software key file.

    The key file is a PEM private key (encrypted PKCS#8, as iranpki writes them). Its passphrase
    reaches osslsigncode through a pipe (``-readpass /dev/fd/N``), never on the command line or
    on disk. Keys on PKCS#11 tokens need osslsigncode's PKCS#11 engine and are not wired here.
    """
    key_path = os.fspath(key_file)
    if key_path.startswith("pkcs11:"):
        raise SigningError("PE signing takes a software key file; a PKCS#11 key needs osslsigncode's "
                           "-pkcs11module and is not supported by iranpki yet")
    if digest not in ("sha256", "sha384", "sha512"):
        raise SigningError(f"digest {digest!r} is not offered; must be one of sha256, sha384, sha512")
    if not os.path.isfile(key_path):
        raise SigningError(f"key file {key_path!r} does not exist")
    cert = _one_certificate(certificate)
    exe = _osslsigncode()
    secret = None
    with open(key_path, "rb") as f:
        encrypted = b"ENCRYPTED" in f.read(200)
    if encrypted:
        source = passphrase or SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
        secret = source.for_kind("passphrase").get(f"key {key_path}")
    with tempfile.TemporaryDirectory(prefix="iranpki-pe-") as tmp:  # mode 0700
        certs = Path(tmp) / "certs.pem"
        certs.write_bytes(_pem_bundle([cert, *load_asn1_certificates(list(chain))]))
        cmd = [exe, "sign", "-certs", str(certs), "-key", key_path, "-h", digest]
        if description:
            cmd += ["-n", description]
        if url:
            cmd += ["-i", url]
        if timestamp_url:
            cmd += ["-ts", timestamp_url]
        out = os.fspath(output_path)
        if os.path.exists(out):
            os.unlink(out)  # osslsigncode refuses to overwrite
        cmd += ["-in", os.fspath(input_path), "-out", out]
        pass_fds: tuple[int, ...] = ()
        read_fd = write_fd = -1
        if secret is not None:
            read_fd, write_fd = os.pipe()
            os.write(write_fd, secret.encode() + b"\n")
            os.close(write_fd)
            cmd[cmd.index("-key") + 2:cmd.index("-key") + 2] = ["-readpass", f"/dev/fd/{read_fd}"]
            pass_fds = (read_fd,)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=_OSSLSIGNCODE_TIMEOUT,
                                  pass_fds=pass_fds, check=False)
        finally:
            if read_fd >= 0:
                os.close(read_fd)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise SigningError("osslsigncode could not sign: " + " / ".join(tail)
                           + "; check the key, its passphrase and that the input is a PE file")


@dataclass(frozen=True)
class PeResult(_Verdict):
    """The Authenticode verification of a PE file by ``osslsigncode verify``."""

    kind: ClassVar[str] = "pe"

    signer: str | None
    digest_ok: bool
    chain_ok: bool
    timestamped: bool  #: an RFC 3161 time-stamp is present and verified
    revocation_checked: bool
    output: str  #: osslsigncode's report, for people
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in super().to_dict().items() if k != "output"}


def verify_pe(path: str | os.PathLike[str], trust_roots: Sequence[CertificateInput] | None = None, *,
              intermediates: Sequence[CertificateInput] = (), crls: Sequence[bytes] = ()) -> PeResult:
    """Verify a signed PE against ``trust_roots`` with ``osslsigncode verify``.

    With ``crls`` (PEM or DER; one per CA in the chain), revocation is checked against them;
    without, it is not checked (``revocation_checked`` is False). Nothing is fetched.
    ``intermediates`` complete the time-stamp's chain: a time-stamp token usually carries the
    TSA's certificate alone, and osslsigncode looks for its issuer only there and in the roots.
    A time-stamp that is present but does not verify makes the result not ``ok``.
    """
    exe = _osslsigncode()
    with tempfile.TemporaryDirectory(prefix="iranpki-pe-") as tmp:
        roots = Path(tmp) / "roots.pem"
        roots.write_bytes(_pem_bundle(_roots(trust_roots)))
        # The time-stamp (if any) is judged against the same roots, not the system's store.
        tsa_roots = Path(tmp) / "tsa-roots.pem"
        tsa_roots.write_bytes(roots.read_bytes() + _pem_bundle(load_asn1_certificates(list(intermediates))))
        cmd = [exe, "verify", "-CAfile", str(roots), "-TSA-CAfile", str(tsa_roots)]
        if crls:
            crl_file = Path(tmp) / "crls.pem"
            crl_file.write_bytes(b"".join(pem.armor("X509 CRL", c.dump()) for c in _crl_objects(list(crls))))
            # Never fetched: the CRLs given must cover every CA in the chain, or verification fails.
            cmd += ["-CRLfile", str(crl_file), "-TSA-CRLfile", str(crl_file), "-ignore-cdp"]
        else:
            # osslsigncode 2.9 fails a chain whose certificates name a CRL it was not given.
            cmd += ["-ignore-crl"]
        cmd += ["-in", os.fspath(path)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_OSSLSIGNCODE_TIMEOUT, check=False)
    text = done.stdout + done.stderr
    m = re.search(r"Signer's certificate:.*?Subject:\s*([^\n]+)", text, re.S)
    digests = re.findall(r"(?:Current|Calculated) message digest\s*:\s*([0-9A-F]+)", text)
    digest_ok = len(digests) == 2 and digests[0] == digests[1]
    chain_ok = "\nSignature verification: ok" in text
    stamp_present = "Timestamp is not available" not in text
    stamp_ok = "Timestamp Server Signature verification: ok" in text
    problems = [why for failed, why in (
        (not digest_ok, "the file's digest is not the one its signature covers (the file changed after signing)"),
        (not chain_ok, "the signature or the signer's certificate path does not verify against the given roots"),
        # osslsigncode 2.9 exits 0 when a time-stamp fails but the signature holds; we do not accept it.
        (stamp_present and not stamp_ok, "the time-stamp does not verify"),
        (done.returncode != 0 and digest_ok and chain_ok, f"osslsigncode refused it (exit status {done.returncode})"),
    ) if failed]
    return PeResult(signer=m.group(1).strip() if m else None, digest_ok=digest_ok, chain_ok=chain_ok,
                    timestamped=stamp_present and stamp_ok, revocation_checked=bool(crls), output=text,
                    problems=problems)

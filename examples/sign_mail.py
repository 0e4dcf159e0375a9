"""Sign an e-mail as S/MIME, then sign and encrypt one to a recipient, and check both with
the library and with openssl.

    .venv/bin/python examples/sign_mail.py
"""

from __future__ import annotations

import shutil
import subprocess

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from _throwaway_pki import throwaway_pki
from iranpki import signing
from iranpki.ca import IssueRequest, parse_subject

pki = throwaway_pki()
ali, ali_cert = pki.subscriber("smime", "CN=ali@example.ir", emails=["ali@example.ir"])
# The recipient's key stays with the recipient; we keep it here only to decrypt with openssl.
reza_key = rsa.generate_private_key(65537, 2048)
reza_cert = pki.ca.issue("smime", IssueRequest(parse_subject("CN=reza@example.ir"), reza_key.public_key(),
                                               emails=["reza@example.ir"])).pem

message = "From: ali@example.ir\nTo: reza@example.ir\nSubject: جلسه فردا\n\nسلام رضا، جلسه ساعت ۱۰ است.\n".encode()
signed = signing.sign_mail(message, ali, ali_cert, chain=pki.chain)
result = signing.verify_mail(signed, [pki.root_pem])
print(f"signed mail: ok={result.ok} signer={result.signer!r}")
assert result.ok

sealed = signing.sign_mail(message, ali, ali_cert, chain=pki.chain, encrypt_to=[reza_cert, ali_cert])
print("signed and encrypted:", sealed.split(b"\r\n\r\n", 1)[0].decode().splitlines()[-3])

if shutil.which("openssl"):
    f = pki.folder
    (f / "root.pem").write_bytes(pki.root_pem)
    (f / "signed.eml").write_bytes(signed)
    (f / "sealed.eml").write_bytes(sealed)
    (f / "reza.pem").write_bytes(reza_cert)
    (f / "reza.key").write_bytes(reza_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    out = subprocess.run(["openssl", "smime", "-verify", "-in", str(f / "signed.eml"), "-CAfile", str(f / "root.pem"),
                          "-out", "/dev/null"], capture_output=True, text=True)
    print("openssl smime -verify:", out.stderr.strip())
    assert out.returncode == 0
    inner = subprocess.run(["openssl", "cms", "-decrypt", "-recip", str(f / "reza.pem"), "-inkey", str(f / "reza.key"),
                            "-in", str(f / "sealed.eml")], capture_output=True)
    assert inner.returncode == 0
    result = signing.verify_mail(inner.stdout, [pki.root_pem])
    print(f"decrypted by openssl, then verified: ok={result.ok}")
    assert result.ok
print("ok")

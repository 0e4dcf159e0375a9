"""Sign any file (a script, an archive) as detached and attached CMS, check it with the library
and with openssl, and see a tampered copy refused.

    .venv/bin/python examples/sign_cms.py

The signer here holds an organisational seal certificate with a software key; on a token, open
the key with ``iranpki.keys.open_signer("pkcs11:token=Seal;object=seal")``.
"""

from __future__ import annotations

import shutil
import subprocess

from _throwaway_pki import throwaway_pki
from iranpki import signing

pki = throwaway_pki()
signer, cert = pki.subscriber(
    "organisational-seal", "C=IR,O=شرکت نمونه,organizationIdentifier=NTRIR-10380284790,CN=مهر سازمانی شرکت نمونه")
script = pki.folder / "deploy.sh"
script.write_bytes(b"#!/bin/sh\necho deploying release 1.4\n")

p7s = signing.sign_cms(script, signer, cert, chain=pki.chain)  # detached: the file travels beside it
(pki.folder / "deploy.sh.p7s").write_bytes(p7s)
result = signing.verify_cms(script, p7s, [pki.root_pem])
print(f"detached: ok={result.ok} signer={result.signer!r} signed at {result.signing_time}")
assert result.ok

attached = signing.sign_cms(script.read_bytes(), signer, cert, chain=pki.chain, attached=True)
result = signing.verify_cms(None, attached, [pki.root_pem])
print(f"attached: ok={result.ok} content={result.content!r}")
assert result.ok and result.content == script.read_bytes()

if shutil.which("openssl"):
    (pki.folder / "root.pem").write_bytes(pki.root_pem)
    out = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(pki.folder / "deploy.sh.p7s"),
                          "-content", str(script), "-CAfile", str(pki.folder / "root.pem"), "-purpose", "any",
                          "-out", "/dev/null"], capture_output=True, text=True)
    print("openssl cms -verify:", out.stderr.strip())
    assert out.returncode == 0

result = signing.verify_cms(b"#!/bin/sh\nrm -rf /\n", p7s, [pki.root_pem])
print(f"tampered: ok={result.ok} problems={result.problems}")
assert not result.ok
print("ok")

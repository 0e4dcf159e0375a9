"""Issue a personal signature certificate with the library (software keys, temporary store).

    .venv/bin/python examples/issue_with_library.py
"""

from __future__ import annotations

import tempfile

from cryptography.hazmat.primitives.asymmetric import ec

from iranpki.ca import IssueRequest, create_intermediate, create_root, parse_subject
from iranpki.errors import ProfileViolationError
from iranpki.keys import SoftwareSigner
from iranpki.store import open_store

store = open_store(tempfile.mkdtemp() + "/store.sqlite3", create=True)
root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                   parse_subject("C=IR,O=I.R.Government,OU=Root CA,CN=Example Root"),
                   repository_url="http://repository.example.ir")
# Software CA keys are allowed at assurance level 1 only.
gica1 = create_intermediate(root, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), "gica1", 1,
                            parse_subject("C=IR,O=Example,CN=Example Level 1 CA"),
                            ocsp_url="http://ocsp.example.ir/gica1")

subscriber = ec.generate_private_key(ec.SECP256R1()).public_key()
subject = parse_subject("C=IR,SN=محمدی,GN=علی,serialNumber=0499370899,CN=علی محمدی")
issued = gica1.issue("personal-signature", IssueRequest(subject, subscriber))
print(f"issued {issued.record.serial:x}: {issued.record.subject}")

try:
    gica1.issue("personal-signature", IssueRequest(parse_subject("C=IR,SN=Mohammadi,GN=علی,serialNumber=0499370898,CN=x"),
                                                    subscriber))
except ProfileViolationError as exc:
    for v in exc.violations:
        print("refused:", v)

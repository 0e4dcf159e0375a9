"""A valid request for every end-entity profile, as a subscriber would send it."""

from __future__ import annotations

from iranpki.ca import IssueRequest, parse_subject

SUBJECTS = {
    "personal-signature": "C=IR,SN=محمدی,GN=علی,serialNumber=0499370899,CN=علی محمدی",
    "organisational-seal": "C=IR,O=شرکت نمونه,organizationIdentifier=NTRIR-10380284790,CN=مهر سازمانی شرکت نمونه",
    "ssl-server": "C=IR,ST=Tehran,L=Tehran,O=Example Co",
    "smime": "CN=ali@example.ir",
    "smime-encryption": "CN=ali@example.ir",
    "code-signing": "C=IR,O=Example Co,CN=Example Co Code Signing",
    "tsa": "C=IR,O=E-Commerce Development Center,CN=National TSA (test)",
    "ocsp-signer": "C=IR,O=E-Commerce Development Center,CN=GICA OCSP (test)",
    "ra-officer": "C=IR,O=دفتر پیشخوان تهران,OU=THR-01,title=Registration Officer,SN=احمدی,GN=رضا,"
                  "serialNumber=0012345679,CN=رضا احمدی",
}
SANS = {
    "ssl-server": {"dns": ["www.example.ir", "example.ir"], "ips": ["185.143.232.10"]},
    "smime": {"emails": ["ali@example.ir"]},
    "smime-encryption": {"emails": ["ali@example.ir"]},
}
#: A key type each profile accepts (code signing needs RSA 3072 or more).
KEYS = {"code-signing": "rsa3072", "organisational-seal": "rsa2048", "smime": "rsa2048"}


def request(profile: str, public_key, **overrides) -> IssueRequest:
    fields = {"subject": parse_subject(SUBJECTS[profile]), "public_key": public_key, **SANS.get(profile, {})}
    fields.update(overrides)
    return IssueRequest(**fields)

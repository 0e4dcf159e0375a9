"""Every end-entity kind chains in the relying parties' software (issue 13 item 1): NSS
(`certutil -V` with every usage the certificate's extended key usages give), GnuTLS (`certtool
--verify --verify-purpose`), OpenSSL (`openssl verify -purpose`) and Windows' rule, by which a CA
certificate's extended key usages limit what the certificates under it are valid for.

The hierarchy's shape (the national CP's ca_purposes, docs/hierarchy.md): a CA certificate per
level and purpose, tls, signing, code-signing and time-stamping, each carrying its purpose's
extended key usages and issuing only the profiles they allow, and its own OCSP signer.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from iranpki.ca import create_intermediate, create_root, parse_subject
from iranpki.errors import IssuanceError
from iranpki.keys import SoftwareSigner
from iranpki.policy import load_policy
from iranpki.profiles import EKUS, list_profiles, load_profile
from iranpki.store import SqliteStore

from .conftest import openssl_has_purpose, openssl_purpose_for, openssl_verify, run
from .samples import KEYS, request

CP = load_policy()
# certutil -V -u: the usage each extended key usage stands for (R, e-mail recipient, needs a key
# that can encrypt or agree, so it is asked only of such certificates).
NSS_USAGE = {"serverAuth": "V", "clientAuth": "C", "emailProtection": "S", "codeSigning": "J", "OCSPSigning": "O"}


def _key(profile: str):  # noqa: ANN202 - a private key of a type the profile takes
    kind = KEYS.get(profile, "p256")
    return rsa.generate_private_key(65537, int(kind[3:])) if kind.startswith("rsa") else \
        ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def hierarchy(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A root, one level-1 CA certificate of each purpose, one without a purpose (as made before
    purposes), and every end-entity profile issued by the CA of its purpose (and an OCSP signer
    by each CA)."""
    base = tmp_path_factory.mktemp("chaining")
    store = SqliteStore(str(base / "store.sqlite3"), create=True)
    root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                       parse_subject("C=IR,O=I.R.Government,OU=Root CA,CN=Chaining Test Root"),
                       repository_url="http://repository.test.ir")
    (base / "root.pem").write_bytes(root.certificate.public_bytes(Encoding.PEM))
    issued: dict[str, tuple[str, Path]] = {}  # certificate name -> (its CA's name, its PEM)
    cas = {}
    for purpose in [p.id for p in CP.ca_purposes] + [None]:
        name = f"ca-{purpose or 'none'}"
        ca = create_intermediate(root, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), name, 1,
                                 parse_subject(f"C=IR,O=GICA,CN=GICA {name} (test)"), purpose=purpose)
        cas[name] = ca
        (base / f"{name}.pem").write_bytes(ca.certificate.public_bytes(Encoding.PEM))
        profiles = list(CP.purpose(purpose).issues) + ["ocsp-signer"] if purpose else ["code-signing", "smime"]
        for profile in profiles:
            cert = ca.issue(profile, request(profile, _key(profile).public_key()))
            path = base / f"{name}--{profile}.pem"
            path.write_bytes(cert.pem)
            issued[f"{name}--{profile}"] = (name, path)
    return {"base": base, "root": base / "root.pem", "cas": cas, "issued": issued}


def _purposeful(hierarchy: dict) -> list[tuple[str, str, Path]]:
    return [(n, ca, p) for n, (ca, p) in hierarchy["issued"].items() if ca != "ca-none"]


def test_the_cp_names_a_purpose_for_every_end_entity_profile() -> None:
    end_entity = {p.name for p in list_profiles() if p.kind == "end-entity"} - {"ocsp-signer"}
    assert sorted(n for p in CP.ca_purposes for n in p.issues) == sorted(end_entity)
    for purpose in CP.ca_purposes:  # each profile's usages are within its CA's
        for name in purpose.issues:
            assert set(load_profile(name).extended_key_usage.values) <= set(purpose.extended_key_usage), name


def test_ca_certificates_carry_their_purposes_usages(hierarchy: dict) -> None:
    for purpose in CP.ca_purposes:
        ca = hierarchy["cas"][f"ca-{purpose.id}"]
        eku = ca.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        assert not eku.critical and set(eku.value) == {EKUS[u] for u in purpose.extended_key_usage}
        assert ca.purpose == purpose.id
    assert hierarchy["cas"]["ca-none"].purpose is None


def test_nss_certutil_accepts_every_usage_of_every_kind(hierarchy: dict, tmp_path: Path) -> None:
    db = f"sql:{tmp_path}"
    run(["certutil", "-N", "-d", db, "--empty-password"])
    assert run(["certutil", "-A", "-d", db, "-n", "root", "-t", "CT,C,C", "-i", str(hierarchy["root"])]).returncode == 0
    for name in hierarchy["cas"]:
        run(["certutil", "-A", "-d", db, "-n", name, "-t", ",,", "-i", str(hierarchy["base"] / f"{name}.pem")])
    refused, asked = [], 0
    for nick, (ca, path) in hierarchy["issued"].items():
        run(["certutil", "-A", "-d", db, "-n", nick, "-t", ",,", "-i", str(path)])
        if ca == "ca-none":
            continue
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        usages = [NSS_USAGE[u] for u in load_profile(nick.split("--")[1]).extended_key_usage.values if u in NSS_USAGE]
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if "S" in usages and (ku.key_encipherment or ku.key_agreement):
            usages.append("R")
        if not (ku.digital_signature or ku.content_commitment):  # encryption only: a recipient, never a signer
            usages = [u for u in usages if u != "S"]
        for usage in usages:
            asked += 1
            out = run(["certutil", "-V", "-d", db, "-n", nick, "-u", usage])
            if "certificate is valid" not in out.stdout + out.stderr:
                refused.append(f"{nick} -u {usage}: {(out.stdout + out.stderr).strip()}")
    assert asked >= 10 and not refused, "\n".join(refused)
    # Why CA certificates carry extended key usages: without them NSS refuses code signing.
    out = run(["certutil", "-V", "-d", db, "-n", "ca-none--code-signing", "-u", "J"])
    assert "Issuer certificate is invalid" in out.stdout + out.stderr


def _certtool(hierarchy: dict, chain: Path, usage: str) -> subprocess.CompletedProcess[str]:
    return run(["certtool", "--verify", "--load-ca-certificate", str(hierarchy["root"]), "--infile", str(chain),
                f"--verify-purpose={EKUS[usage].dotted_string}"])


def test_gnutls_certtool_verifies_every_purpose(hierarchy: dict, tmp_path: Path) -> None:
    refused, asked = [], 0
    for nick, ca, path in _purposeful(hierarchy):
        chain = tmp_path / f"{nick}.chain.pem"
        chain.write_bytes(path.read_bytes() + (hierarchy["base"] / f"{ca}.pem").read_bytes())
        for usage in load_profile(nick.split("--")[1]).extended_key_usage.values:
            out = _certtool(hierarchy, chain, usage)
            verified = out.returncode == 0 and "Chain verification output: Verified" in out.stdout
            if usage == "OCSPSigning":
                # GnuTLS holds OCSPSigning to every CA above, as Windows does, and no CA certificate
                # carries it (one that did could answer for its parent's certificates). So a
                # delegated responder's certificate does not validate as a path for OCSPSigning;
                # OCSP clients check it as RFC 6960 4.2.2.2 says instead (issued by the CA, with
                # the usage), and the national default is the CA signing its own responses.
                assert not verified, f"{nick}: GnuTLS now accepts OCSPSigning under a CA without it"
                continue
            asked += 1
            if not verified:
                refused.append(f"{nick} {usage}: {out.stdout[-400:]}{out.stderr[-200:]}")
    assert asked >= 8 and not refused, "\n".join(refused)
    # A TLS server certificate is not valid for e-mail, even where its CA is.
    chain = tmp_path / "ca-tls--ssl-server.chain.pem"
    assert _certtool(hierarchy, chain, "emailProtection").returncode != 0


def test_openssl_verifies_every_purpose(hierarchy: dict) -> None:
    refused = []
    for nick, ca, path in _purposeful(hierarchy):
        purpose = openssl_purpose_for(load_profile(nick.split("--")[1]).openssl_purpose, path)
        if not openssl_has_purpose(purpose):  # codesign is OpenSSL 3.2's; the EKU is checked by NSS and GnuTLS
            purpose = "any"
        out = openssl_verify(hierarchy["root"], hierarchy["base"] / f"{ca}.pem", path, purpose)
        if out.returncode != 0:
            refused.append(f"{nick} -purpose {purpose}: {out.stdout}{out.stderr}")
    assert not refused, "\n".join(refused)


def _windows_valid_usages(chain: list[x509.Certificate]) -> set[str] | None:
    """Windows' rule (CryptoAPI "EKU chaining"): a certificate is valid for the usages of its own
    extended key usage extension that every CA certificate above it also carries; a CA certificate
    without the extension limits nothing. None means any usage."""
    valid: set[str] | None = None
    names = {oid: name for name, oid in EKUS.items()}
    for cert in chain:
        try:
            usages = {names.get(o, o.dotted_string) for o in cert.extensions.get_extension_for_class(
                x509.ExtendedKeyUsage).value}
        except x509.ExtensionNotFound:
            continue
        valid = usages if valid is None else valid & usages
    return valid


def test_windows_eku_chaining_keeps_every_usage(hierarchy: dict) -> None:
    root = x509.load_pem_x509_certificate(hierarchy["root"].read_bytes())
    lost = {}
    for nick, ca, path in _purposeful(hierarchy):
        profile = nick.split("--")[1]
        if profile == "ocsp-signer":
            continue  # the CA signs its own OCSP responses (docs/hierarchy.md): no chain is built for them
        chain = [x509.load_pem_x509_certificate(path.read_bytes()), hierarchy["cas"][ca].certificate, root]
        valid = _windows_valid_usages(chain)
        wanted = set(load_profile(profile).extended_key_usage.values)
        if valid is None or not wanted <= valid:
            lost[nick] = (sorted(wanted), sorted(valid or []))
    assert not lost, lost
    # The rule is the one Windows applies: a TLS certificate under a signing CA would lose serverAuth.
    signing = hierarchy["cas"]["ca-signing"].certificate
    server = x509.load_pem_x509_certificate(hierarchy["issued"]["ca-tls--ssl-server"][1].read_bytes())
    assert "serverAuth" not in (_windows_valid_usages([server, signing, root]) or set())


def test_a_ca_issues_only_what_its_purpose_allows(hierarchy: dict) -> None:
    signing = hierarchy["cas"]["ca-signing"]
    with pytest.raises(IssuanceError, match=r"profile 'ssl-server' needs serverAuth: issue it from a CA certificate "
                                            r"of purpose 'tls' \(iranpki ca create-intermediate --purpose tls\)"):
        signing.issue("ssl-server", request("ssl-server", _key("ssl-server").public_key()))
    with pytest.raises(IssuanceError, match="needs timeStamping"):
        hierarchy["cas"]["ca-code-signing"].issue_many("tsa", [request("tsa", _key("tsa").public_key())])
    # Nothing was stored for the refused requests.
    assert [c.profile for c in signing.store.iter_certificates(ca="ca-signing")].count("ssl-server") == 0


def test_cli_requires_a_purpose_and_lists_it(tmp_path: Path) -> None:
    import os
    import sys

    iranpki = str(Path(sys.executable).parent / "iranpki")
    env = {**os.environ, "IRANPKI_KEY_PASSPHRASE": "chaining test passphrase"}
    home = str(tmp_path / "ca")

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([iranpki, *args], capture_output=True, text=True, env=env, timeout=120)

    for args in (["init", home, "--repository-url", "http://repo.test.ir"],
                 ["key", "generate", "--home", home, "--label", "root", "--algorithm", "p384"],
                 ["key", "generate", "--home", home, "--label", "l1", "--algorithm", "p256"],
                 ["ca", "create-root", "--home", home, "--name", "root", "--key", "root", "--subject", "C=IR,O=T,CN=R"]):
        assert call(*args).returncode == 0
    base = ["ca", "create-intermediate", "--home", home, "--parent", "root", "--level", "1", "--name", "l1",
            "--key", "l1", "--subject", "C=IR,O=T,CN=L1"]
    missing = call(*base)
    assert missing.returncode == 2 and "Missing option '--purpose'" in missing.stderr
    wrong = call(*base, "--purpose", "everything")
    assert wrong.returncode == 2 and "'everything' is not one of 'tls', 'signing', 'code-signing', 'time-stamping'" \
        in " ".join(wrong.stderr.split())
    made = call(*base, "--purpose", "code-signing")
    assert made.returncode == 0, made.stderr
    listed = call("ca", "list", "--home", home, "--json")
    assert {c["name"]: c["purpose"] for c in __import__("json").loads(listed.stdout)} == {"root": None,
                                                                                        "l1": "code-signing"}

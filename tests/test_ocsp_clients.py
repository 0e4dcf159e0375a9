"""What OCSP clients nobody here wrote need of a response (issue 13 item 2), asked of GnuTLS
`ocsptool` and `openssl ocsp`, for responses the CA signs itself and those of a delegated
responder, with and without the CA's certificate in the response (`--include-ca-certificate`).

What they show (and docs/operator.md says):
- openssl (`-issuer CA -CAfile root`) verifies every kind.
- GnuTLS takes as OCSP trust anchors the *issuing* CAs: its signer must be a trust anchor, or be
  signed directly by one and carry id-kp-OCSPSigning. With only the root as trust it verifies no
  response for a certificate an intermediate issued, however it is signed: that is its model, not
  a fault of the response. `--load-signer CA` (and `--ask` with `--load-issuer CA`) verifies
  every kind.
- A CA-signed response carries no certificate by default (RFC 6960 4.2.1: certs SHOULD be absent
  when none is needed; every client has the CA's certificate, from which it made the CertID), so
  GnuTLS's trust-anchor check (`--load-trust CA`) cannot find the signer; with the CA's
  certificate in the response it can.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from iranpki.ca import create_intermediate, create_root, parse_subject
from iranpki.keys import SoftwareSigner
from iranpki.ocsp import OcspService, Responder
from iranpki.store import SqliteStore

from .conftest import run
from .samples import request

KINDS = [(how, inc) for how in ("ca-signed", "delegated") for inc in (False, True)]


@pytest.fixture(scope="module")
def responses(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("ocsp-clients")
    store = SqliteStore(str(base / "store.sqlite3"), create=True)
    root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                       parse_subject("C=IR,O=I.R.Government,CN=OCSP Clients Test Root"),
                       repository_url="http://repository.test.ir")
    ca_key = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    ca = create_intermediate(root, ca_key, "ca", 1, parse_subject("C=IR,O=GICA,CN=GICA OCSP Clients (test)"),
                             purpose="signing")
    ee = ca.issue("smime", request("smime", ec.generate_private_key(ec.SECP256R1()).public_key()))
    responder_key = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    responder_cert = ca.issue("ocsp-signer", request("ocsp-signer", responder_key.public_key))
    for name, data in (("root", root.certificate.public_bytes(Encoding.PEM)),
                       ("ca", ca.certificate.public_bytes(Encoding.PEM)), ("ee", ee.pem)):
        (base / f"{name}.pem").write_bytes(data)
    made = run(["openssl", "ocsp", "-issuer", str(base / "ca.pem"), "-cert", str(base / "ee.pem"), "-no_nonce",
                "-reqout", str(base / "request.der")])
    assert made.returncode == 0, made.stderr
    req = (base / "request.der").read_bytes()
    out = {}
    for how, inc in KINDS:
        responder = (Responder(ca.record, ca_key, include_ca_certificate=inc) if how == "ca-signed" else
                     Responder(ca.record, responder_key, responder_cert.record, include_ca_certificate=inc))
        path = base / f"{how}-{inc}.der"
        path.write_bytes(OcspService(store, [responder], signing="on-demand").respond(req).body)
        out[how, inc] = path
    return {"base": base, "files": out, "store": store, "ca": ca, "ca_key": ca_key, "request": req}


def _gnutls(responses: dict, path: Path, *trust: str) -> str:
    out = run(["ocsptool", "--verify-response", "--load-response", str(path), *trust])
    return next((line for line in out.stdout.splitlines() if line.startswith("Verifying OCSP Response")), out.stdout)


@pytest.mark.parametrize("how, inc", KINDS)
def test_what_each_client_says(responses: dict, how: str, inc: bool) -> None:
    base, path = responses["base"], responses["files"][how, inc]
    said = run(["openssl", "ocsp", "-respin", str(path), "-issuer", str(base / "ca.pem"), "-cert",
                str(base / "ee.pem"), "-CAfile", str(base / "root.pem")])
    assert "Response verify OK" in said.stdout + said.stderr and ": good" in said.stdout
    ca, root = str(base / "ca.pem"), str(base / "root.pem")
    assert _gnutls(responses, path, "--load-signer", ca).endswith("Success.")
    anchor = _gnutls(responses, path, "--load-trust", ca)
    if how == "ca-signed" and not inc:
        assert anchor.endswith("Failure, Signer cert not found.")  # nothing in the response names it
    else:
        assert anchor.endswith("Success.")
    # GnuTLS's model: the root alone is no OCSP trust anchor for an intermediate's certificates.
    assert "Failure" in _gnutls(responses, path, "--load-trust", root)


def test_the_ca_certificate_costs_its_size(responses: dict) -> None:
    files = responses["files"]
    plain, with_ca = (files["ca-signed", False].stat().st_size, files["ca-signed", True].stat().st_size)
    ca_der = len(responses["ca"].certificate.public_bytes(Encoding.DER))
    assert with_ca - plain >= ca_der and plain < 400  # the lightweight response stays small


def test_pre_produced_responses_follow_the_setting(responses: dict) -> None:
    """Responses prepared without the CA's certificate are signed again by a responder that sends
    it (and back): a store never serves the other kind."""
    store, ca, key = responses["store"], responses["ca"], responses["ca_key"]
    ca_der = ca.certificate.public_bytes(Encoding.DER)
    for inc in (False, True, False):
        service = OcspService(store, [Responder(ca.record, key, include_ca_certificate=inc)])
        service.prepare()
        body = service.respond(responses["request"]).body
        assert (ca_der in body) is inc


def test_ocsptool_asks_the_responder(responses: dict, tmp_path: Path) -> None:
    """`ocsptool --ask` against `iranpki ocsp serve`: with the issuer alone (its default check)
    and, with --include-ca-certificate, against the CA as OCSP trust anchor."""
    import os

    iranpki = str(Path(sys.executable).parent / "iranpki")
    env = {**os.environ, "IRANPKI_KEY_PASSPHRASE": "ocsp clients test passphrase", "IRANPKI_HOME": str(tmp_path / "w")}

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([iranpki, *args], capture_output=True, text=True, env=env, timeout=120)

    for args in (["init", str(tmp_path / "w"), "--repository-url", "http://repo.test.ir"],
                 ["key", "generate", "--label", "root", "--algorithm", "p384"],
                 ["key", "generate", "--label", "ca", "--algorithm", "p256"],
                 ["ca", "create-root", "--name", "root", "--key", "root", "--subject", "C=IR,O=T,CN=R"],
                 ["ca", "create-intermediate", "--parent", "root", "--level", "1", "--purpose", "signing",
                  "--name", "ca", "--key", "ca", "--subject", "C=IR,O=T,CN=CA"],
                 ["ca", "export", "ca", "--out", str(tmp_path / "ca.pem")]):
        assert call(*args).returncode == 0, args
    key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives.serialization import PublicFormat
    (tmp_path / "ee.pub").write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    done = call("cert", "issue", "--ca", "ca", "--profile", "smime", "--public-key", str(tmp_path / "ee.pub"),
                "--subject", "CN=ali@example.ir", "--email", "ali@example.ir", "--out", str(tmp_path / "ee.pem"))
    assert done.returncode == 0, done.stderr
    for extra, trust, expected in (([], [], "Success."),
                                   ([], ["--load-trust", str(tmp_path / "ca.pem")], "Failure, Signer cert not found."),
                                   (["--include-ca-certificate"], ["--load-trust", str(tmp_path / "ca.pem")],
                                    "Success.")):
        server = subprocess.Popen([iranpki, "ocsp", "serve", "--ca", "ca", "--port", "0", *extra], env=env,
                                  stderr=subprocess.PIPE, text=True)
        try:
            url = ""
            for line in server.stderr:  # type: ignore[union-attr]
                if "listening on" in line:
                    url = line.split("listening on ")[1].strip()
                    break
            assert url, "the responder did not start"
            asked = run(["ocsptool", f"--ask={url}/ca", "--load-issuer", str(tmp_path / "ca.pem"), "--load-cert",
                         str(tmp_path / "ee.pem"), *trust])
            verdict = next(line for line in asked.stdout.splitlines() if line.startswith("Verifying OCSP Response"))
            assert verdict.endswith(expected), (extra, trust, asked.stdout)
        finally:
            server.terminate()
            server.wait(timeout=30)

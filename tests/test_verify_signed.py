"""`iranpki verify` on signed files: detached and attached CMS, signed PDFs, the exit statuses."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from iranpki import signing
from iranpki_cli.main import cli

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from _throwaway_pki import ThrowawayPki, throwaway_pki  # noqa: E402


@pytest.fixture(scope="module")
def pki() -> ThrowawayPki:
    return throwaway_pki()


def _verify(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["verify", *args])
    return result.exit_code, result.output


def test_detached_cms_found_beside_its_file_and_tampering_refused(pki: ThrowawayPki, tmp_path: Path) -> None:
    signer, cert = pki.subscriber("organisational-seal",
                                  "C=IR,O=شرکت نمونه,organizationIdentifier=NTRIR-10380284790,CN=مهر سازمانی")
    data = tmp_path / "release.tar.gz"
    data.write_bytes(b"release 1.4 " * 1000)
    (tmp_path / "release.tar.gz.p7s").write_bytes(signing.sign_cms(data, signer, cert, chain=pki.chain))
    root = tmp_path / "root.pem"
    root.write_bytes(pki.root_pem)
    code, out = _verify(str(tmp_path / "release.tar.gz.p7s"), "--trust", str(root), "--json")
    assert code == 0, out
    info = json.loads(out)
    assert info["kind"] == "cms" and info["ok"] is True and len(info["signatures"]) == 1
    code, out = _verify(str(tmp_path / "release.tar.gz.p7s"), "--trust", str(root))
    assert code == 0 and "valid cms signature" in out
    data.write_bytes(b"release 1.5 " * 1000)  # the file changed after it was signed
    code, out = _verify(str(tmp_path / "release.tar.gz.p7s"), "--trust", str(root), "--json")
    assert code == 1, out
    assert json.loads(out)["valid"] is False and "does not validate" in json.loads(out)["message"]
    # Trusting only the national root, our throw-away chain is not trusted.
    code, out = _verify(str(tmp_path / "release.tar.gz.p7s"), "--content", str(data))
    assert code == 1 and "invalid" in out


def test_signed_pdf_and_unusable_input(pki: ThrowawayPki, tmp_path: Path) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    from .test_signing import minimal_pdf

    signer, cert = pki.subscriber("personal-signature", "C=IR,SN=محمدی,GN=علی,serialNumber=0499370899,CN=علی محمدی")
    signed = signing.sign_pdf(minimal_pdf(), signer, cert, chain=pki.chain)
    pdf = tmp_path / "contract.pdf"
    pdf.write_bytes(signed if isinstance(signed, bytes) else signed.getvalue())
    root = tmp_path / "root.pem"
    root.write_bytes(pki.root_pem)
    code, out = _verify(str(pdf), "--trust", str(root), "--json")
    assert code == 0, out
    assert json.loads(out)["kind"] == "pdf"
    # An incremental update that rewrites the page after signing is detected.
    from pyhanko.pdf_utils import generic

    w = IncrementalPdfFileWriter(io.BytesIO(pdf.read_bytes()))
    page = w.root["/Pages"]["/Kids"][0].get_object()
    page["/Contents"] = w.add_object(generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 770 Td (Pay 1000) Tj ET"))
    w.update_container(page)
    out_buf = io.BytesIO()
    w.write(out_buf)
    (tmp_path / "changed.pdf").write_bytes(out_buf.getvalue())
    code, out = _verify(str(tmp_path / "changed.pdf"), "--trust", str(root))
    assert code == 1, out
    garbage = tmp_path / "x.bin"
    garbage.write_bytes(b"\x00" * 100)
    code, out = _verify(str(garbage))
    assert code == 2 and "is not a file iranpki verify reads" in out


def test_every_verification_answers_with_a_result_whose_error_is_in_the_tree(pki: ThrowawayPki, tmp_path: Path) -> None:
    """One way to verify (issue 14, item 5): a certificate, a CMS signature and a file of either
    kind each give a result that always exists; when it fails, ``error`` is an IranPkiError of the
    ValidationError subtree, ``raise_for_error()`` raises that very kind, and `iranpki verify
    --json` prints the result's own to_dict."""
    from iranpki import validation, verify
    from iranpki.ca import revoke
    from iranpki.errors import CertificateRevokedError, IranPkiError, SignatureValidationError, ValidationError
    from iranpki.inputs import one_certificate

    signer, cert = pki.subscriber("organisational-seal",
                                  "C=IR,O=شرکت نمونه,organizationIdentifier=NTRIR-10380284790,CN=مهر سازمانی")
    good = validation.validate_certificate(cert, trust_roots=[pki.root_pem], intermediates=pki.chain)
    assert good.ok and good.error is None and good.raise_for_error() is good
    p7s = signing.sign_cms(b"payload", signer, cert, chain=pki.chain)
    assert signing.verify_cms(b"payload", p7s, [pki.root_pem]).raise_for_error().ok

    tampered = signing.verify_cms(b"payload!", p7s, [pki.root_pem])
    assert not tampered.ok and isinstance(tampered.error, SignatureValidationError)
    assert isinstance(tampered.error, ValidationError) and isinstance(tampered.error, IranPkiError)
    assert tampered.error.problems == tampered.problems and tampered.error.kind == "cms"
    with pytest.raises(SignatureValidationError, match="the cms signature does not validate"):
        tampered.raise_for_error()

    revoke(pki.store, one_certificate(cert).serial_number, "keyCompromise")
    crls = pki.crls()
    bad = validation.validate_certificate(cert, trust_roots=[pki.root_pem], intermediates=pki.chain, crls=crls)
    assert not bad.ok and isinstance(bad.error, CertificateRevokedError) and bad.path == ()
    assert bad.to_dict() == {"valid": False, "error": "CertificateRevokedError", "message": str(bad.error),
                             **bad.error.data()}
    with pytest.raises(CertificateRevokedError):
        bad.raise_for_error()

    # The one dispatcher: the same verdicts through verify_file, and the command prints them.
    pem = tmp_path / "seal.pem"
    pem.write_bytes(cert)
    crl_file = tmp_path / "gica1.crl"
    crl_file.write_bytes(crls[1])
    root = tmp_path / "root.pem"
    root.write_bytes(pki.root_pem)
    as_file = verify.verify_file(cert, trust_roots=[pki.root_pem], intermediates=pki.chain, crls=crls)
    assert as_file.kind == "certificate" and isinstance(as_file.error, CertificateRevokedError)
    code, out = _verify(str(pem), "--trust", str(root), "--chain", str(_write(tmp_path, pki.chain[0])),
                        "--crl", str(crl_file), "--json")
    assert code == 1 and json.loads(out) == json.loads(json.dumps(as_file.to_dict()))
    signed = verify.verify_file(p7s, content=b"payload!", trust_roots=[pki.root_pem])
    assert signed.kind == "cms" and isinstance(signed.error, SignatureValidationError)
    assert signed.to_dict()["valid"] is False and signed.to_dict()["error"] == "SignatureValidationError"


def _write(folder: Path, data: bytes) -> Path:
    path = folder / "chain.pem"
    path.write_bytes(data)
    return path

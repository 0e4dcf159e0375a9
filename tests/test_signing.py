"""iranpki.signing and `iranpki sign`, checked by real peers: pyHanko validation for PAdES,
``openssl cms``/``openssl smime`` for CMS and S/MIME, ``osslsigncode verify`` for Authenticode.
Every test also shows the check failing on a tampered or untrusted input."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import cms
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from iranpki import crl, signing
from iranpki.verify import detect_kind, verify_file
from iranpki.ca import IssueRequest, create_root, parse_subject
from iranpki.keys import PASSPHRASE_ENV, KeySpec, SecretSource, SignatureScheme, SoftwareSigner, generate_software_key
from iranpki.store import SqliteStore
from iranpki.workspace import Workspace

from .conftest import REPO, ROOT_SUBJECT, run
from .samples import SUBJECTS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PEM = serialization.Encoding.PEM


def minimal_pdf(text: str = "Hello, signed world") -> bytes:
    """A one-page PDF 1.7 with a cross-reference table, written by hand."""
    stream = f"BT /F1 12 Tf 72 770 Td ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << >> >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    out, offsets = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def minimal_pe() -> bytes:
    """A valid PE32 console program with one .text section holding `ret` (1 KiB)."""
    dos = bytearray(64)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, 0x40)  # e_lfanew: the PE header follows the DOS header
    coff = struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x0102)  # i386, one section, executable
    opt = struct.pack("<HBBIIIIIIIIIHHHHHHIIIIHHIIIIII", 0x10B, 14, 0, 0x200, 0, 0, 0x1000, 0x1000, 0x1000,
                      0x400000, 0x1000, 0x200, 6, 0, 0, 0, 6, 0, 0, 0x2000, 0x200, 0, 3, 0x8540,
                      0x100000, 0x1000, 0x100000, 0x1000, 0, 16) + bytes(16 * 8)
    section = struct.pack("<8sIIIIIIHHI", b".text", 0x1000, 0x1000, 0x200, 0x200, 0, 0, 0, 0, 0x60000020)
    head = bytes(dos) + b"PE\0\0" + coff + opt + section
    return head.ljust(0x200, b"\0") + b"\xc3".ljust(0x200, b"\0")


PASSPHRASE = "signing-tests-" + os.urandom(6).hex()
IRANPKI = str(Path(sys.executable).parent / "iranpki")


@contextlib.contextmanager
def _our_tsa(home: Path) -> Iterator[str]:
    """`iranpki tsa serve` on a free port of 127.0.0.1, in a process group of its own; its URL."""
    env = {**os.environ, PASSPHRASE_ENV: PASSPHRASE}
    proc = subprocess.Popen([IRANPKI, "tsa", "serve", "--home", str(home), "--ca", "gica1", "--key", "tsa",
                             "--port", "0", "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # the server prints this once every worker answers
            seen.append(line)
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            if m:
                threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
                yield m.group(1) + "/"
                break
        else:
            raise AssertionError("iranpki tsa serve did not start:\n" + "".join(seen))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A workspace with a software root and level-1 CA, signers' certificates of each profile,
    CRLs, and our TSA (`iranpki tsa serve`) with a certificate of the tsa profile."""
    base = tmp_path_factory.mktemp("signing")
    secret = SecretSource(prompt=lambda _: PASSPHRASE)
    ws = Workspace.init(base / "ws", repository_url=REPO)
    ws.generate_key(KeySpec.parse("p384"), label="root", secret=secret)
    ws.generate_key(KeySpec.parse("p256"), label="gica1", secret=secret)
    ws.create_root("root", "root", ROOT_SUBJECT, secret=secret)
    ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=GICA,CN=GICA Level 1 (test)",
                           parent_secret=secret, secret=secret)
    root, gica1 = ws.open_ca("root", secret), ws.open_ca("gica1", secret)
    store = ws.store
    p = {"base": base, "store": store, "root": root, "gica1": gica1, "ws": ws}
    (base / "root.pem").write_bytes(root.certificate.public_bytes(PEM))
    (base / "gica1.pem").write_bytes(gica1.certificate.public_bytes(PEM))
    p["root_pem"], p["chain"] = (base / "root.pem").read_bytes(), [(base / "gica1.pem").read_bytes()]

    def issue(profile: str, key, name: str, **kw) -> bytes:  # noqa: ANN001
        cert = gica1.issue(profile, IssueRequest(parse_subject(SUBJECTS[profile]), key.public_key(), **kw)).pem
        (base / f"{name}.pem").write_bytes(cert)
        (base / f"{name}.key").write_bytes(key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
        return cert

    p["person_key"] = rsa.generate_private_key(65537, 2048)
    p["person"] = issue("personal-signature", p["person_key"], "person")
    p["smime_key"] = rsa.generate_private_key(65537, 2048)
    p["smime"] = issue("smime", p["smime_key"], "smime", emails=["ali@example.ir"])
    p["reza_key"] = rsa.generate_private_key(65537, 2048)
    p["reza"] = gica1.issue("smime", IssueRequest(parse_subject("CN=reza@example.ir"), p["reza_key"].public_key(),
                                                  emails=["reza@example.ir"])).pem
    (base / "reza.pem").write_bytes(p["reza"])
    (base / "reza.key").write_bytes(p["reza_key"].private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                                                serialization.NoEncryption()))
    tsa_key = ws.generate_key(KeySpec.parse("p256"), label="tsa", secret=secret)
    (base / "tsa.pem").write_bytes(gica1.issue("tsa", IssueRequest(parse_subject(SUBJECTS["tsa"]),
                                                                   tsa_key.public_key)).pem)
    crls = []
    for ca in (root, gica1):
        crls.append(crl.generate_crl(store, store.get_ca(ca.name), ca.signer, base / "crls").der)
    p["crls"] = crls
    for i, c in enumerate(crls):
        (base / f"ca{i}.crl").write_bytes(c)
    with _our_tsa(base / "ws") as url:
        p["tsa_url"] = url
        yield p
    ws.close()


@pytest.fixture(scope="module")
def token_keys(softhsm: dict[str, str], pki: dict) -> dict:
    """Signers on the SoftHSM2 token "Test" (P-256 and RSA-2048) with personal-signature certificates."""
    from iranpki.keys.pkcs11 import generate_keypair

    out = {}
    for spec in ("p256", "rsa2048"):
        signer = generate_keypair("Test", f"signing-{spec}", KeySpec.parse(spec))
        cert = pki["gica1"].issue("personal-signature", IssueRequest(parse_subject(SUBJECTS["personal-signature"]),
                                                                     signer.public_key)).pem
        out[spec] = (signer, cert)
    return out


def _one(results: list[signing.PdfSignatureResult]) -> signing.PdfSignatureResult:
    assert len(results) == 1
    return results[0]


# ---- PDF ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "scheme"), [("p256", "sha256"), ("rsa2048", "sha256-pss"), ("rsa2048", "sha384")])
def test_pdf_bb_with_a_token_key(pki: dict, token_keys: dict, spec: str, scheme: str) -> None:
    signer, cert = token_keys[spec]
    signed = signing.sign_pdf(minimal_pdf(), signer, cert, chain=pki["chain"], reason="قرارداد",
                              scheme=SignatureScheme.parse(scheme))
    r = _one(signing.verify_pdf(signed, [pki["root_pem"]]))
    assert r.ok and r.intact and r.valid and r.trusted, r.problems
    assert (r.coverage, r.modification_level, r.level, r.timestamp) == ("ENTIRE_FILE", "NONE", "B-B", None)
    assert "0499370899" in r.signer

    tampered = signed.replace(b"Hello, signed world", b"Hello, forged world")
    bad = _one(signing.verify_pdf(tampered, [pki["root_pem"]]))
    assert not bad.intact and not bad.ok


def test_pdf_changed_after_signing_is_detected(pki: dict) -> None:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    signer = SoftwareSigner(pki["person_key"])
    signed = signing.sign_pdf(minimal_pdf(), signer, pki["person"], chain=pki["chain"])
    # An incremental update that rewrites the page's content stream after signing.
    w = IncrementalPdfFileWriter(io.BytesIO(signed))
    page = w.root["/Pages"]["/Kids"][0].get_object()
    page["/Contents"] = w.add_object(generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 770 Td (Pay 1000) Tj ET"))
    w.update_container(page)
    out = io.BytesIO()
    w.write(out)
    r = _one(signing.verify_pdf(out.getvalue(), [pki["root_pem"]]))
    assert r.intact and r.valid  # the signed revision itself is untouched
    assert r.coverage == "ENTIRE_REVISION" and r.modification_level == "OTHER" and not r.ok


def test_pdf_untrusted_root_and_wrong_key(pki: dict) -> None:
    signer = SoftwareSigner(pki["person_key"])
    signed = signing.sign_pdf(minimal_pdf(), signer, pki["person"], chain=pki["chain"])
    other = create_root(SqliteStore(str(pki["base"] / "other.sqlite3"), create=True),
                        SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "other",
                        parse_subject("C=IR,O=Other,CN=Other Root"), repository_url=REPO)
    r = _one(signing.verify_pdf(signed, [other.certificate.public_bytes(PEM)]))
    assert r.intact and r.valid and not r.trusted and not r.ok
    with pytest.raises(signing.SigningError, match="is not the key of certificate"):
        signing.sign_pdf(minimal_pdf(), SoftwareSigner(pki["smime_key"]), pki["person"])
    with pytest.raises(signing.SigningError, match="needs a signature time-stamp"):
        signing.sign_pdf(minimal_pdf(), signer, pki["person"], level="B-T")
    with pytest.raises(signing.SigningError, match="no signature"):
        signing.verify_pdf(minimal_pdf(), [pki["root_pem"]])


def test_pdf_bt_and_blt(pki: dict, token_keys: dict) -> None:
    signer, cert = token_keys["p256"]
    bt = signing.sign_pdf(minimal_pdf(), signer, cert, chain=pki["chain"], level="B-T", tsa_url=pki["tsa_url"])
    r = _one(signing.verify_pdf(bt, [pki["root_pem"]]))
    assert r.ok and r.level == "B-T" and r.timestamp_ok and r.timestamp is not None, r.problems
    with pytest.raises(signing.SigningError, match="no document security store"):
        signing.verify_pdf(bt, [pki["root_pem"]], ltv=True)

    lt = signing.sign_pdf(minimal_pdf(), signer, cert, chain=pki["chain"], level="B-LT", tsa_url=pki["tsa_url"],
                          trust_roots=[pki["root_pem"]], crls=pki["crls"])
    # Validated from the document alone: no CRLs given, no fetching, revocation data required.
    r = _one(signing.verify_pdf(lt, [pki["root_pem"]], ltv=True))
    assert r.ok and r.level == "B-LT" and r.ltv and r.timestamp_ok, r.problems
    # Without the embedded data the same demand fails: B-T has nothing to check revocation with.
    r = _one(signing.verify_pdf(bt, [pki["root_pem"]], require_revocation=True))
    assert not r.trusted and not r.ok


# ---- CMS ----------------------------------------------------------------------------------------

def _openssl_cms_verify(base: Path, p7s: bytes, content: bytes | None) -> subprocess.CompletedProcess[str]:
    (base / "sig.p7s").write_bytes(p7s)
    cmd = ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(base / "sig.p7s"),
           "-CAfile", str(base / "root.pem"), "-purpose", "any", "-out", str(base / "out.bin")]
    if content is not None:
        (base / "content.bin").write_bytes(content)
        cmd += ["-content", str(base / "content.bin")]
    return run(cmd)


@pytest.mark.parametrize("spec", ["p256", "rsa2048"])
def test_cms_detached_and_attached_with_a_token_key(pki: dict, token_keys: dict, spec: str) -> None:
    base = pki["base"]
    signer, cert = token_keys[spec]
    data = os.urandom(100_000) + b"#!/bin/sh\necho signed\n"
    (base / "release.tar").write_bytes(data)
    detached = signing.sign_cms(base / "release.tar", signer, cert, chain=pki["chain"])
    assert _openssl_cms_verify(base, detached, data).returncode == 0
    assert _openssl_cms_verify(base, detached, data[:-1] + b"X").returncode != 0
    r = signing.verify_cms(base / "release.tar", detached, [pki["root_pem"]])
    assert r.ok and r.intact and r.valid and r.trusted and r.signing_time is not None and r.content is None
    assert not signing.verify_cms(data + b"\n", detached, [pki["root_pem"]]).ok

    attrs = cms.ContentInfo.load(detached)["content"]["signer_infos"][0]["signed_attrs"]
    names = {a["type"].native for a in attrs}
    assert {"signing_certificate_v2", "message_digest", "content_type", "cms_algorithm_protection"} <= names

    attached = signing.sign_cms(data, signer, cert, chain=pki["chain"], attached=True)
    out = _openssl_cms_verify(base, attached, None)
    assert out.returncode == 0 and (base / "out.bin").read_bytes() == data, out.stderr
    r = signing.verify_cms(None, attached, [pki["root_pem"]])
    assert r.ok and r.content == data
    assert not signing.verify_cms(b"other", attached, [pki["root_pem"]]).ok
    # A byte of the encapsulated content changed: openssl and iranpki both refuse it.
    forged = attached.replace(data[100_000:], data[100_000:].replace(b"signed", b"forged"))
    assert _openssl_cms_verify(base, forged, None).returncode != 0
    assert not signing.verify_cms(None, forged, [pki["root_pem"]]).intact


def test_cms_time_stamped_and_untrusted(pki: dict) -> None:
    signer = SoftwareSigner(pki["person_key"])
    p7s = signing.sign_cms(b"log line", signer, pki["person"], chain=pki["chain"], tsa_url=pki["tsa_url"])
    r = signing.verify_cms(b"log line", p7s, [pki["root_pem"]])
    assert r.ok and r.timestamp is not None
    r = signing.verify_cms(b"log line", p7s, [pki["gica1"].certificate.public_bytes(PEM)])
    assert r.ok  # an intermediate may be a trust anchor
    r = signing.verify_cms(b"log line", p7s, [(pki["base"] / "tsa.pem").read_bytes()])
    assert not r.trusted and not r.ok
    r = signing.verify_cms(b"log line", p7s)  # the national root by default: not our test root
    assert r.intact and r.valid and not r.trusted and not r.ok
    with pytest.raises(signing.SigningError, match="not a CMS SignedData"):
        signing.verify_cms(b"x", b"garbage", [pki["root_pem"]])
    with pytest.raises(signing.SigningError, match="detached; give the signed file"):
        signing.verify_cms(None, p7s, [pki["root_pem"]])


# ---- S/MIME -------------------------------------------------------------------------------------

MESSAGE = "From: ali@example.ir\nTo: reza@example.ir\nSubject: جلسه\n\nسلام رضا،\nجلسه فردا ساعت ۱۰ است.\n".encode()


def test_smime_signed_mail_openssl(pki: dict) -> None:
    base = pki["base"]
    signed = signing.sign_mail(MESSAGE, SoftwareSigner(pki["smime_key"]), pki["smime"], chain=pki["chain"])
    assert b'micalg="sha-256"' in signed and b"application/pkcs7-signature" in signed
    assert signed.startswith(b"From: ali@example.ir\r\n")
    (base / "signed.eml").write_bytes(signed)
    out = run(["openssl", "smime", "-verify", "-in", str(base / "signed.eml"), "-CAfile", str(base / "root.pem")])
    assert out.returncode == 0 and "Verification successful" in out.stderr, out.stderr
    out = run(["openssl", "cms", "-verify", "-in", str(base / "signed.eml"), "-CAfile", str(base / "root.pem"),
               "-purpose", "smimesign"])
    assert out.returncode == 0, out.stderr
    r = signing.verify_mail(signed, [pki["root_pem"]])
    assert r.ok and "ali@example.ir" in r.signer

    # The body is base64 (8-bit text): change one character of it.
    b64 = base64.b64encode("سلام رضا".encode())[:8]
    forged = signed.replace(b64, b"QUJDREVG", 1)
    assert forged != signed
    (base / "forged.eml").write_bytes(forged)
    out = run(["openssl", "smime", "-verify", "-in", str(base / "forged.eml"), "-CAfile", str(base / "root.pem")])
    assert out.returncode != 0
    assert not signing.verify_mail(forged, [pki["root_pem"]]).ok


def test_smime_encrypted_and_signed_then_encrypted(pki: dict) -> None:
    base = pki["base"]
    signer = SoftwareSigner(pki["smime_key"])
    (base / "enc.eml").write_bytes(signing.encrypt_mail(MESSAGE, [pki["reza"]]))
    (base / "se.eml").write_bytes(signing.sign_mail(MESSAGE, signer, pki["smime"], chain=pki["chain"],
                                                    encrypt_to=[pki["reza"], pki["smime"]]))
    assert b"smime-type=enveloped-data" in (base / "se.eml").read_bytes()
    decrypt = ["openssl", "cms", "-decrypt", "-recip", str(base / "reza.pem"), "-inkey", str(base / "reza.key")]
    out = run([*decrypt, "-in", str(base / "enc.eml")])
    assert out.returncode == 0 and "Content-Type: text/plain; charset=utf-8" in out.stdout, out.stderr
    assert base64.b64decode(out.stdout.split("\n\n", 1)[1]) == "سلام رضا،\r\nجلسه فردا ساعت ۱۰ است.\r\n".encode()
    out = run([*decrypt, "-in", str(base / "se.eml"), "-out", str(base / "inner.eml")])
    assert out.returncode == 0, out.stderr
    out = run(["openssl", "smime", "-verify", "-in", str(base / "inner.eml"), "-CAfile", str(base / "root.pem")])
    assert out.returncode == 0, out.stderr
    assert signing.verify_mail((base / "inner.eml").read_bytes(), [pki["root_pem"]]).ok
    # The sender (second recipient) can read it too; a key that is no recipient's cannot.
    out = run(["openssl", "cms", "-decrypt", "-recip", str(base / "smime.pem"), "-inkey", str(base / "smime.key"),
               "-in", str(base / "se.eml")])
    assert out.returncode == 0
    out = run(["openssl", "cms", "-decrypt", "-recip", str(base / "person.pem"), "-inkey", str(base / "person.key"),
               "-in", str(base / "enc.eml"), "-out", os.devnull])
    assert out.returncode != 0 and "error decrypting" in out.stderr.lower(), out.stderr
    ec_cert = pki["gica1"].issue("smime", IssueRequest(parse_subject("CN=ec@example.ir"),
                                                       ec.generate_private_key(ec.SECP256R1()).public_key(),
                                                       emails=["ec@example.ir"])).pem
    with pytest.raises(signing.SigningError, match="RSA certificates only"):
        signing.encrypt_mail(MESSAGE, [ec_cert])


# ---- code signing -------------------------------------------------------------------------------

def test_pe_signed_by_osslsigncode(pki: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    base = pki["base"]
    passphrase = "correct horse " + os.urandom(4).hex()
    key_path = base / "code.key"
    signer = generate_software_key(KeySpec.parse("rsa3072"), str(key_path), SecretSource(prompt=lambda _: passphrase))
    cert = pki["gica1"].issue("code-signing", IssueRequest(parse_subject(SUBJECTS["code-signing"]),
                                                           signer.public_key)).pem
    (base / "code.pem").write_bytes(cert)
    (base / "app.exe").write_bytes(minimal_pe())

    seen: list[list[str]] = []
    real_run = subprocess.run

    def spy(cmd, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append(list(cmd))
        return real_run(cmd, *a, **kw)

    monkeypatch.setattr(subprocess, "run", spy)  # the module osslsigncode is run through
    signing.sign_pe(base / "app.exe", base / "app-signed.exe", key_file=key_path, certificate=cert, chain=pki["chain"],
                    passphrase=SecretSource(prompt=lambda _: passphrase), description="Example app")
    monkeypatch.undo()
    assert seen and all(passphrase not in arg for arg in seen[0]) and "-readpass" in seen[0]

    r = signing.verify_pe(base / "app-signed.exe", [pki["root_pem"]])
    assert r.ok and r.digest_ok and r.chain_ok and "Example Co Code Signing" in (r.signer or ""), r.output
    out = run(["osslsigncode", "verify", "-CAfile", str(base / "root.pem"), "-ignore-crl",
               "-in", str(base / "app-signed.exe")])
    assert out.returncode == 0 and "Signature verification: ok" in out.stdout, out.stdout + out.stderr
    r = signing.verify_pe(base / "app-signed.exe", [pki["root_pem"]], crls=pki["crls"])
    assert r.ok and r.revocation_checked and not r.timestamped, r.output
    signing.sign_pe(base / "app.exe", base / "app-ts.exe", key_file=key_path, certificate=cert, chain=pki["chain"],
                    passphrase=SecretSource(prompt=lambda _: passphrase), timestamp_url=pki["tsa_url"])
    # Our TSA's token carries the TSA certificate and its issuing CA: the root alone is enough.
    r = signing.verify_pe(base / "app-ts.exe", [pki["root_pem"]])
    assert r.ok and r.timestamped, r.output
    assert not signing.verify_pe(base / "app-signed.exe", [pki["root_pem"]], crls=pki["crls"][:1]).ok

    assert verify_file((base / "app-signed.exe").read_bytes(), trust_roots=[pki["root_pem"]]).ok

    from iranpki_cli.main import cli

    (base / "pass-code.txt").write_text(passphrase + "\n")
    res = CliRunner().invoke(cli, ["sign", "pe", str(base / "app.exe"), "--out", str(base / "app-cli.exe"),
                                   "--key", str(key_path), "--passphrase-file", str(base / "pass-code.txt"),
                                   "--cert", str(base / "code.pem"), "--chain", str(base / "gica1.pem"), "--json"])
    assert res.exit_code == 0 and passphrase not in res.output, res.output
    assert signing.verify_pe(base / "app-cli.exe", [pki["root_pem"]]).ok

    signed = bytearray((base / "app-signed.exe").read_bytes())
    signed[0x200] = 0x90  # the `ret` becomes a `nop`: the code changed after signing
    (base / "app-forged.exe").write_bytes(bytes(signed))
    assert not signing.verify_pe(base / "app-forged.exe", [pki["root_pem"]]).ok
    other = (base / "tsa.pem").read_bytes()  # not a CA at all
    assert not signing.verify_pe(base / "app-signed.exe", [other]).ok
    with pytest.raises(signing.SigningError, match="could not sign"):
        signing.sign_pe(base / "app.exe", base / "x.exe", key_file=key_path, certificate=cert,
                        passphrase=SecretSource(prompt=lambda _: "wrong"))


# ---- the command --------------------------------------------------------------------------------

def test_cli_sign_pdf_cms_mail(pki: dict, token_keys: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from iranpki_cli.main import cli

    base = pki["base"]
    (base / "doc.pdf").write_bytes(minimal_pdf())
    runner = CliRunner()
    token_cert = base / "token-p256.pem"
    token_cert.write_bytes(token_keys["p256"][1])
    key = "pkcs11:token=Test;object=signing-p256"
    common = ["--cert", str(token_cert), "--chain", str(base / "gica1.pem"), "--json"]
    res = runner.invoke(cli, ["sign", "pdf", str(base / "doc.pdf"), "--out", str(base / "doc-lt.pdf"), "--key", key,
                              *common, "--level", "B-LT", "--tsa", pki["tsa_url"], "--root", str(base / "root.pem"),
                              "--crl", str(base / "ca0.crl"), "--crl", str(base / "ca1.crl"), "--reason", "تایید"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["level"] == "B-LT"
    r = _one(signing.verify_pdf((base / "doc-lt.pdf").read_bytes(), [pki["root_pem"]], ltv=True))
    assert r.ok and r.level == "B-LT", r.problems

    res = runner.invoke(cli, ["sign", "cms", str(base / "doc.pdf"), "--out", str(base / "doc.p7s"), "--key", key, *common])
    assert res.exit_code == 0, res.output
    assert _openssl_cms_verify(base, (base / "doc.p7s").read_bytes(), minimal_pdf()).returncode == 0

    (base / "note.eml").write_bytes(MESSAGE)
    passphrase = os.urandom(8).hex()
    (base / "pass.txt").write_text(passphrase + "\n")
    (base / "smime-enc.key").write_bytes(pki["smime_key"].private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(passphrase.encode())))
    res = runner.invoke(cli, ["sign", "mail", "--in", str(base / "note.eml"), "--out", str(base / "note-s.eml"),
                              "--key", str(base / "smime-enc.key"), "--passphrase-file", str(base / "pass.txt"),
                              "--cert", str(base / "smime.pem"), "--chain", str(base / "gica1.pem"),
                              "--encrypt-to", str(base / "reza.pem"), "--json"])
    assert res.exit_code == 0, res.output
    out = run(["openssl", "cms", "-decrypt", "-recip", str(base / "reza.pem"), "-inkey", str(base / "reza.key"),
               "-in", str(base / "note-s.eml")])
    assert out.returncode == 0 and "multipart/signed" in out.stdout
    assert passphrase not in res.output

    # A key by its name in a workspace (--home), passphrase from the environment.
    seal = pki["ws"].generate_key(KeySpec.parse("p256"), label="seal", secret=SecretSource(prompt=lambda _: PASSPHRASE))
    (base / "seal.pem").write_bytes(pki["gica1"].issue("organisational-seal", IssueRequest(
        parse_subject(SUBJECTS["organisational-seal"]), seal.public_key)).pem)
    res = runner.invoke(cli, ["sign", "cms", str(base / "doc.pdf"), "--out", str(base / "seal.p7s"), "--attached",
                              "--home", str(base / "ws"), "--key", "seal", "--cert", str(base / "seal.pem")],
                        env={PASSPHRASE_ENV: PASSPHRASE})
    assert res.exit_code == 0, res.output
    assert signing.verify_cms(None, (base / "seal.p7s").read_bytes(), [pki["root_pem"]],
                              intermediates=pki["chain"]).content == minimal_pdf()

    # Errors are one clean line: a key that does not match the certificate, and B-T without a TSA.
    res = runner.invoke(cli, ["sign", "cms", str(base / "doc.pdf"), "--out", str(base / "x.p7s"),
                              "--key", "pkcs11:token=Test;object=signing-rsa2048", *common])
    assert res.exit_code == 1 and "is not the key of certificate" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["sign", "pdf", str(base / "doc.pdf"), "--out", str(base / "x.pdf"), "--key", key,
                              *common, "--level", "B-T"])
    assert res.exit_code == 1 and "--tsa URL" in res.output
    assert os.environ["IRANPKI_PKCS11_PIN"] not in res.output


@pytest.mark.parametrize("name", ["sign_pdf.py", "sign_cms.py", "sign_mail.py", "timestamp_and_validate.py"])
def test_examples_run(name: str) -> None:
    out = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok" in out.stdout.lower()


def test_detect_kind(pki: dict) -> None:
    signer = SoftwareSigner(pki["person_key"])
    p7s = signing.sign_cms(b"x", signer, pki["person"])
    pem_p7s = b"-----BEGIN CMS-----\n" + base64.encodebytes(p7s) + b"-----END CMS-----\n"
    mail = signing.sign_mail(MESSAGE, signer, pki["person"])
    cases = {minimal_pdf(): "pdf", p7s: "cms", pem_p7s: "cms", mail: "smime",
             signing.encrypt_mail(MESSAGE, [pki["reza"]]): "smime", minimal_pe(): "pe",
             pki["root_pem"]: "certificate", b"hello": None}
    for data, kind in cases.items():
        assert detect_kind(data) == kind, (kind, data[:40])


def test_revoked_signer(pki: dict) -> None:
    from iranpki.ca import revoke

    key = rsa.generate_private_key(65537, 2048)
    issued = pki["gica1"].issue("personal-signature", IssueRequest(parse_subject(SUBJECTS["personal-signature"]),
                                                                   key.public_key()))
    signer = SoftwareSigner(key)
    p7s = signing.sign_cms(b"order", signer, issued.pem, chain=pki["chain"])
    pdf = signing.sign_pdf(minimal_pdf(), signer, issued.pem, chain=pki["chain"])
    assert signing.verify_cms(b"order", p7s, [pki["root_pem"]], crls=pki["crls"]).ok  # the CRL before revocation
    store = pki["store"]
    revoke(store, issued.record.serial, "keyCompromise")
    fresh = crl.generate_crl(store, store.get_ca("gica1"), pki["gica1"].signer, pki["base"] / "crls").der
    crls = [pki["crls"][0], fresh]
    r = signing.verify_cms(b"order", p7s, [pki["root_pem"]], crls=crls)
    assert r.intact and r.valid and not r.trusted and not r.ok
    assert r.problems == ["the signer's certificate (or a CA's) is revoked, and nothing proves the signature older (REVOKED_NO_POE)"]
    assert not _one(signing.verify_pdf(pdf, [pki["root_pem"]], crls=crls)).ok
    with pytest.raises(signing.SigningError, match="could not be validated: .*revoked"):
        signing.sign_pdf(minimal_pdf(), signer, issued.pem, chain=pki["chain"], level="B-LT", tsa_url=pki["tsa_url"],
                         trust_roots=[pki["root_pem"]], crls=crls)


def test_verify_signed_dispatches(pki: dict) -> None:
    signer = SoftwareSigner(pki["person_key"])
    root = [pki["root_pem"]]
    pdf = signing.sign_pdf(minimal_pdf(), signer, pki["person"], chain=pki["chain"])
    p7s = signing.sign_cms(b"data", signer, pki["person"], chain=pki["chain"])
    mail = signing.sign_mail(MESSAGE, signer, pki["person"], chain=pki["chain"])
    for data, content, kind in ((pdf, None, "pdf"), (p7s, b"data", "cms"), (mail, None, "smime")):
        r = verify_file(data, content=content, trust_roots=root)
        assert r.kind == kind and r.ok, r.problems
        info = json.loads(json.dumps(r.to_dict()))
        assert info["ok"] and info["signatures"][0]["intact"] and "0499370899" in info["signatures"][0]["signer"]
    assert not verify_file(p7s, content=b"dat4", trust_roots=root).ok
    assert not verify_file(pdf).ok  # the national root by default
    with pytest.raises(signing.SigningError, match="not a signed file"):
        verify_file(b"plain text")

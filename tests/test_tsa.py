"""The time-stamp authority, run as operators run it (`iranpki tsa serve`, worker processes) and
judged by independent clients: `openssl ts` (query, reply -text, verify), pyHanko's
HTTPTimeStamper and its token validation, asn1crypto, and raw HTTP. The TSA key is a software
RSA-2048 key, and a P-256 key on SoftHSM2.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import pem as asn1_pem
from asn1crypto import tsp as asn1_tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from iranpki import der
from iranpki.clock import FixedClock
from iranpki.errors import TsaError
from iranpki.keys import PASSPHRASE_ENV, KeySpec
from iranpki.policy import load_policy
from iranpki.tsa.codec import _asn1_fields, _fast_fields
from iranpki.tsa import (
    FailureInfo,
    RejectedRequestError,
    check_reply,
    check_tsa_certificate,
    fetch_stamp,
    make_request,
    parse_request,
    verify_token,
)
from iranpki.workspace import Workspace

from .conftest import SOFTHSM_MODULE, run, start_listening
from .test_ocsp import HOST, IRANPKI, PASSPHRASE

POLICY = load_policy().status.tsa


class TimeStampResp(asn1_core.Sequence):
    """RFC 3161 2.4.2, with timeStampToken OPTIONAL as the RFC has it (asn1crypto requires it)."""

    _fields = [("status", asn1_tsp.PKIStatusInfo), ("time_stamp_token", asn1_cms.ContentInfo, {"optional": True})]


# ---- the PKI and the server -----------------------------------------------------------------------

@dataclass
class Pki:
    home: Path
    base: Path
    env: dict[str, str]
    root_pem: Path
    chain_pem: Path
    tsa_serial: str
    other_serial: str  # an ssl-server certificate for the TSA key: not a TSA certificate


def _pem(path: Path, der_bytes: bytes) -> Path:
    path.write_bytes(x509.load_der_x509_certificate(der_bytes).public_bytes(serialization.Encoding.PEM))
    return path


def _build(base: Path, tsa_key: str, token: str | None = None) -> Pki:
    """A root and a level-1 CA (software keys) and a TSA key with its tsa-profile certificate."""
    home = base / "ws"
    os.environ[PASSPHRASE_ENV] = PASSPHRASE
    ws = Workspace.init(home, repository_url="http://127.0.0.1:1/repo", pkcs11_module=SOFTHSM_MODULE if token else None)
    for label, spec in (("root", "p384"), ("gica1", "p256")):
        ws.generate_key(KeySpec.parse(spec), label=label)
    signer = ws.generate_key(KeySpec.parse(tsa_key), label="tsa", token=token)
    ws.create_root("root", "root", "C=IR,O=I.R.Government,OU=Root CA,CN=TSA Test Root")
    ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=GICA,CN=GICA Level 1 TSA Test")
    pub = signer.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    issued = ws.issue("gica1", "tsa", public_key=pub, subject="C=IR,O=Example Co,CN=Example TSA 1")
    other = ws.issue("gica1", "ssl-server", public_key=pub, subject="C=IR,ST=Tehran,O=Example Co", dns=["tsa.example.ir"])
    chain = ws.chain("gica1")
    ws.close()
    return Pki(home, base, {**os.environ, PASSPHRASE_ENV: PASSPHRASE}, _pem(base / "root.pem", chain[1]),
               _pem(base / "chain.pem", chain[0]), f"{issued.certificate.serial_number:x}",
               f"{other.certificate.serial_number:x}")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    saved = os.environ.get(PASSPHRASE_ENV)
    try:
        yield _build(tmp_path_factory.mktemp("tsa"), "rsa2048")
    finally:
        if saved is None:
            os.environ.pop(PASSPHRASE_ENV, None)
        else:
            os.environ[PASSPHRASE_ENV] = saved


class Tsa:
    """`iranpki tsa serve` in a process group of its own, stopped (cleanly) by `stop`."""

    def __init__(self, pki: Pki, *args: str, key: str = "tsa", home: Path | None = None):
        cmd = [IRANPKI, "tsa", "serve", "--home", str(home or pki.home), "--ca", "gica1", "--key", key,
               "--host", HOST, "--port", "0", *args]
        self.proc, self.port, self.lines = start_listening(cmd, pki.env, "TSA", 60, HOST)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        finally:
            self.kill()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture(scope="module")
def tsa(pki: Pki) -> Iterator[Tsa]:
    server = Tsa(pki, "--workers", "2")
    yield server
    assert server.stop() == 0
    assert not [line for line in server.lines if "Traceback" in line], server.lines


def post(port: int, body: bytes, path: str = "/", method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        c.request(method, path, body, {"Content-Type": "application/timestamp-query"})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def reply_of(port: int, body: bytes) -> TimeStampResp:
    status, headers, data = post(port, body)
    assert status == 200 and headers["content-type"] == "application/timestamp-reply", (status, headers, data)
    return TimeStampResp.load(data)


def openssl_stamp(pki: Pki, port: int, data: Path, *query: str) -> tuple[Path, str]:
    """openssl ts -query, POST, openssl ts -verify: the verify output."""
    tsq, tsr = data.with_suffix(".tsq"), data.with_suffix(".tsr")
    out = run(["openssl", "ts", "-query", "-data", str(data), "-out", str(tsq), *query])
    assert out.returncode == 0, out.stderr
    status, headers, body = post(port, tsq.read_bytes(), "/tsa/any/path")
    assert status == 200 and headers["content-type"] == "application/timestamp-reply"
    tsr.write_bytes(body)
    verify = run(["openssl", "ts", "-verify", "-data", str(data), "-in", str(tsr), "-CAfile", str(pki.root_pem),
                  "-untrusted", str(pki.chain_pem)])
    return tsr, verify.stdout + verify.stderr


# ---- judged by openssl ----------------------------------------------------------------------------

@pytest.mark.parametrize("digest", ["-sha256", "-sha384", "-sha512"])
def test_openssl_verifies_tokens(pki: Pki, tsa: Tsa, digest: str, tmp_path: Path) -> None:
    data = tmp_path / "contract.txt"
    data.write_bytes(os.urandom(1000))
    tsr, verify = openssl_stamp(pki, tsa.port, data, digest, "-cert")
    assert "Verification: OK" in verify, verify
    text = run(["openssl", "ts", "-reply", "-in", str(tsr), "-text"]).stdout
    assert "Status: Granted." in text and f"Policy OID: {POLICY.policy_oid}" in text, text
    assert "Accuracy: 0x01 seconds" in text and re.search(r"Nonce: 0x[0-9A-F]+", text), text
    assert f"Hash Algorithm: {digest[1:]}" in text
    # Another file's data does not verify against this token (the check can fail).
    other = tmp_path / "other.txt"
    other.write_bytes(b"not the contract")
    bad = run(["openssl", "ts", "-verify", "-data", str(other), "-in", str(tsr), "-CAfile", str(pki.root_pem),
               "-untrusted", str(pki.chain_pem)])
    assert "Verification: OK" not in bad.stdout + bad.stderr


def test_openssl_token_without_cert_req_needs_the_certificate(pki: Pki, tsa: Tsa, tmp_path: Path) -> None:
    data = tmp_path / "a.txt"
    data.write_bytes(b"abc")
    tsr, verify = openssl_stamp(pki, tsa.port, data, "-sha256", "-no_nonce")
    assert "Verification: OK" not in verify  # certReq false: no certificate in the token to verify with
    token = TimeStampResp.load(tsr.read_bytes())["time_stamp_token"]
    assert not token["content"]["certificates"]
    text = run(["openssl", "ts", "-reply", "-in", str(tsr), "-text"]).stdout
    assert "Nonce: unspecified" in text, text


@pytest.mark.parametrize(("query", "failure", "shown"), [
    (["-sha1"], "bad_alg", "unrecognized or unsupported algorithm identifier"),
    (["-md5"], "bad_alg", "unrecognized or unsupported algorithm identifier"),
    (["-sha256", "-tspolicy", "1.2.3.4.5"], "unaccepted_policy", "the requested TSA policy is not supported"),
])
def test_openssl_refused_requests(pki: Pki, tsa: Tsa, tmp_path: Path, query: list[str], failure: str,
                                  shown: str) -> None:
    data = tmp_path / "a.txt"
    data.write_bytes(b"abc")
    tsr, verify = openssl_stamp(pki, tsa.port, data, *query, "-cert")
    assert "Verification: OK" not in verify
    resp = TimeStampResp.load(tsr.read_bytes())
    assert resp["status"]["status"].native == "rejection" and resp["status"]["fail_info"].native == {failure}
    text = run(["openssl", "ts", "-reply", "-in", str(tsr), "-text"]).stdout
    assert "Status: Rejected." in text and shown in text, text


def test_our_policy_named_in_the_request_is_granted(pki: Pki, tsa: Tsa, tmp_path: Path) -> None:
    data = tmp_path / "a.txt"
    data.write_bytes(b"abc")
    _, verify = openssl_stamp(pki, tsa.port, data, "-sha256", "-cert", "-tspolicy", POLICY.policy_oid)
    assert "Verification: OK" in verify, verify


# ---- the HTTP face ------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [b"", b"garbage", b"\x30\x03\x02\x01\x01", b"\x30\x80" + b"\x00" * 50,
                                  os.urandom(3000), b"\x30" + b"\xff" * 20])
def test_garbage_gets_a_rejection_not_an_http_error(tsa: Tsa, body: bytes) -> None:
    resp = reply_of(tsa.port, body)
    assert resp["status"]["status"].native == "rejection"
    assert resp["status"]["fail_info"].native == {"bad_data_format"}
    assert resp["time_stamp_token"].native is None


def test_http_methods_and_limits(tsa: Tsa) -> None:
    status, headers, _ = post(tsa.port, b"", method="GET")
    assert status == 405 and headers["allow"] == "POST"
    status, _, _ = post(tsa.port, b"x" * (64 * 1024))
    assert status == 413


# ---- the protocol, checked with asn1crypto ---------------------------------------------------------

def _request(**changes: object) -> dict:
    req = {"version": "v1", "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                                                "hashed_message": hashlib.sha256(b"x").digest()},
           "nonce": 12345, "cert_req": True}
    req.update(changes)
    return req


@pytest.mark.parametrize(("changes", "failure", "words"), [
    ({"version": "v2"}, FailureInfo.badDataFormat, "not v1"),
    ({"message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x01" * 20}},
     FailureInfo.badDataFormat, "a sha256 hash is 32"),
    ({"message_imprint": {"hash_algorithm": {"algorithm": "sha1"}, "hashed_message": b"\x01" * 20}},
     FailureInfo.badAlg, "sha1 is not accepted"),
    ({"message_imprint": {"hash_algorithm": {"algorithm": "sha3_256"}, "hashed_message": b"\x01" * 32}},
     FailureInfo.badAlg, "2.16.840.1.101.3.4.2.8 is not accepted"),
    ({"req_policy": "1.2.3"}, FailureInfo.unacceptedPolicy, "not 1.2.3"),
    ({"extensions": [{"extn_id": "1.2.3.4", "critical": True, "extn_value": b"\x05\x00"}]},
     FailureInfo.unacceptedExtension, "1.2.3.4 is not supported"),
    ({"nonce": 1 << 600}, FailureInfo.badDataFormat, "512 bits"),
])
def test_request_checks(changes: dict, failure: FailureInfo, words: str) -> None:
    data = asn1_tsp.TimeStampReq(_request(**changes)).dump()
    with pytest.raises(RejectedRequestError) as caught:
        parse_request(data, POLICY)
    assert caught.value.failure == failure and words in str(caught.value), str(caught.value)


def test_non_critical_extension_ignored_and_trailing_bytes_refused() -> None:
    ok = asn1_tsp.TimeStampReq(_request(extensions=[{"extn_id": "1.2.3.4", "critical": False,
                                                     "extn_value": b"\x05\x00"}])).dump()
    assert parse_request(ok, POLICY).nonce == 12345
    with pytest.raises(RejectedRequestError) as caught:
        parse_request(ok + b"\x00", POLICY)
    assert caught.value.failure == FailureInfo.badDataFormat


def test_token_structure(pki: Pki, tsa: Tsa) -> None:
    """RFC 3161 2.4.2, RFC 5652 5, RFC 5816 2.2.1, read back with asn1crypto."""
    digest = hashlib.sha384(b"doc").digest()
    body = make_request(digest, "sha384", nonce=-7, cert_req=True)
    resp = reply_of(tsa.port, body)
    assert resp["status"]["status"].native == "granted"
    token = resp["time_stamp_token"]
    sd = token["content"]
    assert token["content_type"].native == "signed_data" and sd["version"].native == "v3"
    tst = sd["encap_content_info"]["content"].parsed
    assert sd["encap_content_info"]["content_type"].native == "tst_info"
    assert tst["policy"].dotted == POLICY.policy_oid and tst["nonce"].native == -7
    assert tst["message_imprint"]["hashed_message"].native == digest
    assert tst["accuracy"].native["seconds"] == POLICY.accuracy_ms // 1000
    gen = tst["gen_time"].native
    assert abs(gen - datetime.now(timezone.utc)) < timedelta(seconds=10)
    assert not tst["gen_time"].contents.rstrip(b"Z").endswith(b"0") or b"." not in tst["gen_time"].contents
    # certReq: the TSA certificate and its issuing CA (not the root), so a relying party holding
    # only the root builds the path.
    certs = [c.chosen for c in sd["certificates"]]
    serials = {c["tbs_certificate"]["serial_number"].native for c in certs}
    subjects = {c["tbs_certificate"]["subject"].native.get("common_name") for c in certs}
    assert len(certs) == 2 and int(pki.tsa_serial, 16) in serials
    issuer = next(c for c in certs if c["tbs_certificate"]["serial_number"].native != int(pki.tsa_serial, 16))
    assert issuer.ca and issuer.self_signed == "no"  # the issuing CA, not the root
    assert len(subjects) == 2
    tsa_cert = next(c for c in certs if c["tbs_certificate"]["serial_number"].native == int(pki.tsa_serial, 16))
    si = sd["signer_infos"][0]
    attrs = {a["type"].native: a["values"][0] for a in si["signed_attrs"]}
    assert set(attrs) == {"content_type", "message_digest", "signing_certificate_v2"}
    assert attrs["content_type"].native == "tst_info"
    tst_bytes = sd["encap_content_info"]["content"].contents
    assert attrs["message_digest"].native == hashlib.sha256(tst_bytes).digest()
    ess = attrs["signing_certificate_v2"]["certs"][0]
    assert ess["hash_algorithm"]["algorithm"].native == "sha256"  # the default, left out in DER
    assert ess["cert_hash"].native == hashlib.sha256(tsa_cert.dump()).digest()
    assert ess["issuer_serial"]["serial_number"].native == int(pki.tsa_serial, 16)
    # The signature over the DER SET OF signed attributes, with the TSA certificate's key.
    cert = x509.load_der_x509_certificate(tsa_cert.dump())
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    signed = si["signed_attrs"].dump(force=True)
    signed = b"\x31" + signed[1:]
    cert.public_key().verify(si["signature"].native, signed, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg,union-attr]


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["sha256", "sha384", "sha512"]), st.binary(min_size=64, max_size=64),
       st.one_of(st.none(), st.integers(-(1 << 200), 1 << 200)), st.booleans())
def test_request_round_trip(hash_name: str, raw: bytes, nonce: int | None, cert_req: bool) -> None:
    size = {"sha256": 32, "sha384": 48, "sha512": 64}[hash_name]
    data = make_request(raw[:size], hash_name, nonce=nonce, cert_req=cert_req)
    parsed = parse_request(data, POLICY)
    assert (parsed.hash_name, parsed.digest, parsed.nonce, parsed.cert_req) == (hash_name, raw[:size], nonce, cert_req)
    assert asn1_tsp.TimeStampReq.load(data).dump(force=True) == data  # our encoding is DER
    assert _fast_fields(data, POLICY) == _asn1_fields(data)  # the fast path reads what asn1crypto reads


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 200), st.integers(0, 255), st.booleans(), st.binary(max_size=4))
def test_mutated_requests_are_answered(at: int, value: int, with_policy: bool, tail: bytes) -> None:
    """Any byte changed, any bytes added: a TimeStampRequest or a RejectedRequestError, and the
    fast path never reads differently from asn1crypto."""
    good = make_request(hashlib.sha256(b"m").digest(), nonce=99, policy=POLICY.policy_oid if with_policy else None)
    data = bytearray(good)
    data[at % len(data)] = value
    data = bytes(data) + tail
    fast = _fast_fields(data, POLICY)
    try:
        slow = _asn1_fields(data)
    except RejectedRequestError:
        slow = None
    assert fast is None or fast == slow
    with contextlib.suppress(RejectedRequestError):
        parse_request(data, POLICY)


# ---- the client -----------------------------------------------------------------------------------------

def test_stamp_command(pki: Pki, tsa: Tsa, tmp_path: Path) -> None:
    data = tmp_path / "doc.bin"
    data.write_bytes(os.urandom(5000))
    out = subprocess.run([IRANPKI, "tsa", "stamp", str(data), "--url", tsa.url, "--hash", "sha512", "--trust",
                          str(pki.root_pem), "--out", str(tmp_path / "doc.tsr"), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["policy"] == POLICY.policy_oid and info["hash"] == "sha512" and info["serial"] > 0
    assert info["verified"] is True and "TSA" in info["tsa"]
    # The client verifies the token: against the national root alone, our test TSA is not trusted.
    untrusted = subprocess.run([IRANPKI, "tsa", "stamp", str(data), "--url", tsa.url], capture_output=True,
                               text=True, timeout=60)
    assert untrusted.returncode == 1 and "trusted root" in untrusted.stderr, untrusted.stderr
    # One trust rule for every command (review item 15): in the operator's workspace, its roots
    # are trusted beside the national root, as `iranpki verify` trusts them; the first stamp of a
    # new workspace works without --trust.
    for how in (["--home", str(pki.home)], []):
        env = {**os.environ, "IRANPKI_HOME": str(pki.home)} if not how else None
        trusted = subprocess.run([IRANPKI, "tsa", "stamp", str(data), "--url", tsa.url, *how, "--json"],
                                 capture_output=True, text=True, timeout=60, env=env)
        assert trusted.returncode == 0, trusted.stderr
        assert json.loads(trusted.stdout)["verified"] is True
    in_folder = subprocess.run([IRANPKI, "tsa", "stamp", str(data), "--url", tsa.url], capture_output=True,
                               text=True, timeout=60, cwd=pki.home)
    assert in_folder.returncode == 0, in_folder.stderr
    verify = run(["openssl", "ts", "-verify", "-data", str(data), "-in", str(tmp_path / "doc.tsr"),
                  "-CAfile", str(pki.root_pem), "-untrusted", str(pki.chain_pem)])
    assert "Verification: OK" in verify.stdout, verify.stdout + verify.stderr
    human = subprocess.run([IRANPKI, "tsa", "stamp", str(data), "--url", tsa.url, "--no-verify"],
                           capture_output=True, text=True, timeout=60)
    assert human.returncode == 0 and "granted:" in human.stdout and POLICY.policy_oid in human.stdout
    assert "verified" not in human.stdout


def test_verify_token_checks_signature_and_tsa_certificate(pki: Pki, tsa: Tsa) -> None:
    from iranpki.errors import CertificateValidationError

    stamp = fetch_stamp(tsa.url, hashlib.sha256(b"doc").digest())
    root = pki.root_pem.read_bytes()
    result = verify_token(stamp.token, [root]).raise_for_error()
    assert result.purpose == "timestamping" and len(result.subjects) == 3
    # A token whose TSTInfo was altered (a byte of the genTime) no longer verifies.
    token = bytearray(stamp.token)
    at = token.find(stamp.gen_time.strftime("%Y%m%d%H%M%S").encode())
    token[at + 3] ^= 1
    with pytest.raises(TsaError, match="does not verify"):
        verify_token(bytes(token), [root])
    with pytest.raises(CertificateValidationError, match="trusted root"):
        verify_token(stamp.token).raise_for_error()  # the national root does not vouch for the test TSA


def test_client_refuses_replies_for_other_requests(tsa: Tsa) -> None:
    digest = hashlib.sha256(b"a").digest()
    request = make_request(digest, nonce=1)
    _, _, reply = post(tsa.port, request)
    assert check_reply(reply, request).nonce == 1
    with pytest.raises(TsaError, match="nonce"):
        check_reply(reply, make_request(digest, nonce=2))
    with pytest.raises(TsaError, match="messageImprint"):
        check_reply(reply, make_request(hashlib.sha256(b"b").digest(), nonce=1))
    with pytest.raises(TsaError, match="refused.*bad_alg"):
        fetch_stamp(tsa.url, hashlib.sha1(b"a").digest(), "sha1")
    with pytest.raises(TsaError, match="not a DER TimeStampResp"):
        check_reply(b"\x30\x00", request)


# ---- pyHanko -----------------------------------------------------------------------------------------

def _self_signed(common_name: str):  # noqa: ANN202 - a P-256 key and its certificate
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=10))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def test_pyhanko_gets_and_validates_a_token(pki: Pki, tsa: Tsa) -> None:
    import asyncio

    from pyhanko.sign.timestamps import HTTPTimeStamper
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko_certvalidator import ValidationContext

    def load(path: Path) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(asn1_pem.unarmor(path.read_bytes())[2])

    digest = hashlib.sha256(b"signed PDF bytes").digest()

    async def main() -> tuple[dict, dict]:
        token = await HTTPTimeStamper(tsa.url).async_timestamp(digest, "sha256")
        trusted = ValidationContext(trust_roots=[load(pki.root_pem)], other_certs=[load(pki.chain_pem)])
        good = await validate_tst_signed_data(token["content"], trusted, lambda _algo: digest)
        # Trusting an unrelated root only: intact, but not valid.
        other = asn1_x509.Certificate.load(_self_signed("unrelated")[1].public_bytes(serialization.Encoding.DER))
        untrusted = ValidationContext(trust_roots=[other], other_certs=[load(pki.chain_pem)])
        wrong = await validate_tst_signed_data(token["content"], untrusted, lambda _algo: digest)
        return good, wrong

    good, wrong = asyncio.run(main())
    assert good["intact"] and good["valid"] and good["trust_problem_indic"] is None, good
    assert abs(good["timestamp"] - datetime.now(timezone.utc)) < timedelta(seconds=30)
    assert good["signing_cert"]["tbs_certificate"]["serial_number"].native == int(pki.tsa_serial, 16)
    assert wrong["intact"] and wrong["trust_problem_indic"] is not None  # intact either way; trust differs


def test_pyhanko_pades_b_t_signature_with_our_timestamp(pki: Pki, tsa: Tsa) -> None:
    """A PAdES B-T signature by pyHanko with our TSA as its timestamper; pyHanko's validator finds
    the signature timestamp valid against our root (and not against a root it does not trust)."""
    import io

    from asn1crypto import keys as asn1_keys
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import PdfFileWriter
    from pyhanko.sign import fields, signers, timestamps
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    writer = PdfFileWriter()
    box = generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 200, 200)])
    writer.insert_page(generic.DictionaryObject({generic.NameObject("/Type"): generic.NameObject("/Page"),
                                                 generic.NameObject("/MediaBox"): box}))
    pdf = io.BytesIO()
    writer.write(pdf)
    pdf.seek(0)
    # The document signer: a self-signed P-256 certificate, trusted as such; the point here is the timestamp.
    key, cert = _self_signed("PDF signer (test)")
    now = datetime.now(timezone.utc)
    signer_cert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    signer = signers.SimpleSigner(
        signing_cert=signer_cert, cert_registry=None,  # type: ignore[arg-type]
        signing_key=asn1_keys.PrivateKeyInfo.load(key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())))
    meta = signers.PdfSignatureMetadata(field_name="Sig1", subfilter=fields.SigSeedSubFilter.PADES,
                                        md_algorithm="sha256")
    signed = signers.sign_pdf(IncrementalPdfFileWriter(pdf), meta, signer=signer,
                              timestamper=timestamps.HTTPTimeStamper(tsa.url))

    def load(path: Path) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(asn1_pem.unarmor(path.read_bytes())[2])

    def validate(roots: list[asn1_x509.Certificate]):  # noqa: ANN202 - a pyHanko status
        signed.seek(0)
        embedded = PdfFileReader(signed).embedded_signatures[0]
        context = ValidationContext(trust_roots=[signer_cert, *roots], other_certs=[load(pki.chain_pem)])
        return validate_pdf_signature(embedded, signer_validation_context=context, ts_validation_context=context)

    status = validate([load(pki.root_pem)])
    assert status.intact and status.valid and status.timestamp_validity is not None, status.pretty_print_details()
    assert status.timestamp_validity.valid and status.timestamp_validity.intact, status.pretty_print_details()
    assert status.timestamp_validity.trusted
    assert abs(status.timestamp_validity.timestamp - now) < timedelta(seconds=60)
    untrusted = validate([])
    assert untrusted.timestamp_validity is not None and not untrusted.timestamp_validity.trusted


# ---- serial numbers ----------------------------------------------------------------------------------

def _serials(port: int, count: int) -> list[int]:
    out = []
    for _ in range(count):
        request = make_request(os.urandom(32), nonce=secrets.randbits(62))
        _, _, reply = post(port, request)
        out.append(check_reply(reply, request).serial)
    return out


def test_serials_unique_and_increasing_across_processes_and_restarts(pki: Pki, tsa: Tsa) -> None:
    second = Tsa(pki, "--workers", "1")
    try:
        single = Tsa(pki, "--workers", "1")
        try:
            with ThreadPoolExecutor(4) as pool:
                jobs = [pool.submit(_serials, port, 150) for port in (tsa.port, second.port, single.port, tsa.port)]
                lists = [j.result() for j in jobs]
        finally:
            assert single.stop() == 0
    finally:
        assert second.stop() == 0
    every = [s for lst in lists for s in lst]
    assert len(set(every)) == len(every), "a serial number was handed out twice"
    # One worker answers every request of a client in order: its numbers increase.
    assert lists[1] == sorted(lists[1]) and lists[2] == sorted(lists[2])
    restarted = Tsa(pki, "--workers", "1")
    try:
        after = _serials(restarted.port, 5)
    finally:
        assert restarted.stop() == 0
    assert min(after) > max(every) and after == sorted(after)


# ---- refusing to start -------------------------------------------------------------------------------

def _serve_fails(pki: Pki, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run([IRANPKI, "tsa", "serve", "--home", str(pki.home), "--ca", "gica1", "--port", "0", *args],
                         capture_output=True, text=True, env=env or pki.env, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    return " ".join(out.stderr.split())


def test_refuses_to_start_with_a_wrong_certificate_or_key(pki: Pki) -> None:
    msg = _serve_fails(pki, "--key", "tsa", "--cert", pki.other_serial)
    assert f"certificate {pki.other_serial} has extended key usage" in msg and "--profile tsa" in msg, msg
    msg = _serve_fails(pki, "--key", "gica1")
    assert "no valid TSA certificate for the key" in msg and "--profile tsa" in msg, msg
    msg = _serve_fails(pki, "--key", "gica1", "--cert", pki.tsa_serial)
    assert f"certificate {pki.tsa_serial} is not for the key" in msg, msg
    secret = "Zq-" + secrets.token_hex(6)
    msg = _serve_fails(pki, "--key", "tsa", env={**pki.env, PASSPHRASE_ENV: secret})
    assert "passphrase" in msg and secret not in msg, msg


def test_expired_certificate_refused(pki: Pki) -> None:
    ws = Workspace.open(pki.home)
    try:
        signer = ws.open_key("tsa")
        cert = ws.find_certificate(pki.tsa_serial)
        later = cert.not_after + timedelta(days=1)
        with pytest.raises(TsaError, match=f"certificate {pki.tsa_serial} is valid from .* not now"):
            check_tsa_certificate(cert.certificate, signer, later)
        check_tsa_certificate(cert.certificate, signer, cert.not_after - timedelta(days=1))
        signer.close()
    finally:
        ws.close()


def _tsa_certificate(critical: bool = True):  # noqa: ANN202 - a software signer and its DER certificate
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from iranpki.keys import SoftwareSigner

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(5).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=critical)
            .sign(key, hashes.SHA256()))
    return SoftwareSigner(key), cert.public_bytes(serialization.Encoding.DER)


def test_critical_eku_required() -> None:
    """A certificate whose timeStamping EKU is not critical is refused (RFC 3161 2.3)."""
    signer, cert = _tsa_certificate(critical=False)
    with pytest.raises(TsaError, match=r"\(critical: False\)"):
        check_tsa_certificate(cert, signer, datetime.now(timezone.utc))


def test_faulty_signer_and_expired_certificate_get_system_failure(caplog: pytest.LogCaptureFixture) -> None:
    """A signature that does not verify (a faulty token) never leaves, nor a token past the TSA
    certificate's end: the client gets systemFailure."""
    import itertools

    from iranpki.tsa import TimeStampAuthority

    signer, cert = _tsa_certificate()
    authority = TimeStampAuthority(signer, cert, itertools.count(1).__next__, policy=POLICY)
    request = make_request(hashlib.sha256(b"x").digest(), nonce=5)
    assert check_reply(authority.respond(request), request).serial == 1
    good_sign = signer.sign
    signer.sign = lambda data, scheme: good_sign(data + b"!", scheme)  # type: ignore[method-assign]
    resp = TimeStampResp.load(authority.respond(request))
    assert resp["status"]["fail_info"].native == {"system_failure"} and resp["time_stamp_token"].native is None
    assert "does not verify" in caplog.text
    # Past the certificate's end: no more tokens.
    signer.sign = good_sign  # type: ignore[method-assign]
    clock = FixedClock(datetime.now(timezone.utc))
    authority = TimeStampAuthority(signer, cert, itertools.count(1).__next__, policy=POLICY, clock=clock)
    assert check_reply(authority.respond(request), request).gen_time == clock.moment.replace(
        microsecond=clock.moment.microsecond // 1000 * 1000)
    clock.moment += timedelta(days=2)
    resp = TimeStampResp.load(authority.respond(request))
    assert resp["status"]["fail_info"].native == {"system_failure"} and "expired on" in caplog.text


# ---- a key on SoftHSM2 -------------------------------------------------------------------------------

def test_softhsm_key(softhsm: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    saved = os.environ.get(PASSPHRASE_ENV)
    try:
        pki = _build(tmp_path_factory.mktemp("tsa-hsm"), "p256", token="Test")
    finally:
        if saved is None:
            os.environ.pop(PASSPHRASE_ENV, None)
        else:
            os.environ[PASSPHRASE_ENV] = saved
    ws = Workspace.open(pki.home)
    reference = [k.reference for k in ws.store.list_key_records() if k.label == "tsa"][0]
    ws.close()
    assert reference.startswith("pkcs11:")
    server = Tsa(pki, "--workers", "2", key=reference)
    try:
        data = pki.base / "hsm.txt"
        data.write_bytes(os.urandom(100))
        for _ in range(3):  # both workers, each with its own session
            _, verify = openssl_stamp(pki, server.port, data, "-sha256", "-cert")
            assert "Verification: OK" in verify, verify
        assert not [line for line in server.lines if softhsm["pin"] in line]
    finally:
        assert server.stop() == 0


def test_der_helpers_used_for_failure_bits() -> None:
    """PKIFailureInfo as a DER named BIT STRING: no trailing zero bits (X.690 11.2.2)."""
    from iranpki.tsa import rejection

    resp = TimeStampResp.load(rejection(FailureInfo.systemFailure, "x"))
    assert resp["status"]["fail_info"].native == {"system_failure"}
    assert resp.dump(force=True) == rejection(FailureInfo.systemFailure, "x")
    assert der.sequence() == b"\x30\x00"

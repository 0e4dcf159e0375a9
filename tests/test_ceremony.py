"""Key ceremonies (issue 17): one YAML file per ceremony, carried out on SoftHSM2 tokens. The root,
the intermediates, a key, a cross-certificate and the root's ARL, each linted as a throwaway
before the token signs and again after; outputs openssl verifies; a transcript signed by the
ceremony's officer that `openssl cms -verify` checks and whose hash is in the audit log; and
nothing overwritten."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from iranpki.workspace import Workspace

from .conftest import REPO, ROOT_SUBJECT

IRANPKI = str(Path(sys.executable).parent / "iranpki")


def iranpki(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([IRANPKI, *args], capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr + done.stdout
    return done


def openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def room(softhsm: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A workspace, the ceremony officer's key and certificate, and a tag that keeps this run's
    key labels apart on the session's token."""
    import os

    base = tmp_path_factory.mktemp("ceremony")
    os.environ["IRANPKI_KEY_PASSPHRASE"] = "a passphrase long enough"
    Workspace.init(base / "ws", repository_url=REPO).close()
    done = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-passout",
                   "env:IRANPKI_KEY_PASSPHRASE", "-keyout", str(base / "officer.key"), "-out", str(base / "officer.pem"), "-days", "30", "-subj",
                   "/C=IR/O=GICA/CN=Ceremony Officer")
    assert done.returncode == 0, done.stderr
    return {"base": base, "home": base / "ws", "tag": secrets.token_hex(3)}


def ceremony(room: dict, name: str, **plan: object) -> tuple[Path, dict]:
    """Write ceremony NAME.yaml, run it, and return its output folder and transcript."""
    doc = {"id": f"{name}-{room['tag']}", "title": f"Ceremony {name}", "officer": {
        "name": "Ceremony Officer", "key": "officer.key", "certificate": "officer.pem"},
        "witnesses": ["Witness One", "Witness Two"], "custodians": ["Custodian A", "Custodian B", "Custodian C"],
        "outputs": f"out-{name}", **plan}
    path = room["base"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    made = json.loads(iranpki("ceremony", "run", str(path), "--home", str(room["home"]), "--json").stdout)
    out = Path(made["outputs"])
    transcript = json.loads((out / "transcript.json").read_text(encoding="utf-8"))
    # The officer's signature over the transcript, checked by openssl.
    checked = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", str(out / "transcript.json.p7s"), "-content",
                      str(out / "transcript.json"), "-CAfile", str(room["base"] / "officer.pem"), "-purpose", "any",
                      "-out", "/dev/null")
    assert checked.returncode == 0 and "Verification successful" in checked.stderr, checked.stderr
    assert made["transcript_sha256"] == hashlib.sha256((out / "transcript.json").read_bytes()).hexdigest()
    assert transcript["present"]["witnesses"] == ["Witness One", "Witness Two"]
    assert transcript["ceremony_file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    return out, transcript


def _der(pem: Path) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(Encoding.DER)


def test_a_root_ceremony_on_the_token(room: dict) -> None:
    out, transcript = ceremony(room, "root", mode="root", root={
        "name": "root", "subject": ROOT_SUBJECT, "key": {"token": "Test", "label": f"root-{room['tag']}",
                                                        "algorithm": "p384"}})
    steps = [s["step"] for s in transcript["steps"]]
    assert steps == ["opened", "linted before signing: root", "key generated", "signed and checked: root"], steps
    linted = transcript["steps"][1]
    assert not [f for f in linted["findings"] if f["severity"] in ("ERROR", "FATAL")]
    signed = transcript["steps"][3]
    assert signed["outputs"]["root.pem"] == hashlib.sha256(_der(out / "root.pem")).hexdigest()
    assert transcript["steps"][2]["key"].startswith("pkcs11:") and transcript["steps"][2]["extractable"] is False
    done = openssl("verify", "-x509_strict", "-CAfile", str(out / "root.pem"), str(out / "root.pem"))
    assert done.returncode == 0, done.stderr
    # The transcript's hash is in the audit log, and the log verifies.
    ws = Workspace.open(room["home"])
    events = [e for _, _, e in ws.store.audit_log() if e.event == "ceremony.completed"]
    ws.close()
    assert events[-1].details["transcript_sha256"] == hashlib.sha256((out / "transcript.json").read_bytes()).hexdigest()
    assert json.loads(iranpki("audit", "verify", "--home", str(room["home"]), "--json").stdout)["ok"]


def test_intermediates_a_key_and_the_roots_arl(room: dict) -> None:
    if not (room["base"] / "out-root").exists():
        test_a_root_ceremony_on_the_token(room)
    out, transcript = ceremony(room, "gica", mode="intermediate", parent="root", levels=[
        {"name": f"gica{n}", "level": n, "purpose": "signing",
         "subject": f"C=IR,O=E-Commerce Development Center,CN=GICA Level {n} ({room['tag']})",
         "key": {"token": "Test", "label": f"gica{n}-{room['tag']}", "algorithm": "p256"}} for n in (1, 2)])
    assert [s["step"] for s in transcript["steps"] if s["step"].startswith("linted")] == [
        "linted before signing: gica1", "linted before signing: gica2"]
    for n in (1, 2):
        done = openssl("verify", "-x509_strict", "-CAfile", str(room["base"] / "out-root" / "root.pem"),
                       str(out / f"gica{n}.pem"))
        assert done.returncode == 0, done.stderr
    out, transcript = ceremony(room, "audit-key", mode="key",
                               key={"token": "Test", "label": f"audit-{room['tag']}", "algorithm": "p256"})
    assert (out / f"audit-{room['tag']}.pub.pem").is_file() and transcript["steps"][1]["step"] == "key generated"
    out, transcript = ceremony(room, "arl", mode="crl", crl_of="root")
    [crl] = [p for p in out.iterdir() if p.suffix == ".crl"]
    assert transcript["steps"][1]["step"] == "linted before signing: ARL of root"
    done = openssl("crl", "-inform", "DER", "-in", str(crl), "-CAfile", str(room["base"] / "out-root" / "root.pem"),
                   "-noout")
    assert done.returncode == 0 and "verify OK" in done.stdout + done.stderr, done.stderr


def test_a_cross_certificate(room: dict, tmp_path: Path) -> None:
    """Our root certifies another root's name and key; openssl builds the path from the other
    root's subordinate through the cross-certificate to our root."""
    if not (room["base"] / "out-root").exists():
        test_a_root_ceremony_on_the_token(room)
    from iranpki.keys import KeySpec, SecretSource

    other = Workspace.init(tmp_path / "other", repository_url="http://other.test.ir")
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    for label in ("oroot", "osub"):
        other.generate_key(KeySpec.parse("p384"), label=label, secret=secret)
    oroot = other.create_root("oroot", "oroot", "C=IR,O=Other Root Authority,CN=Other Root", secret=secret)
    osub = other.create_intermediate("osub", "oroot", 1, "osub", "C=IR,O=Other Root Authority,CN=Other Sub 1",
                                     secret=secret, parent_secret=secret)
    from cryptography.hazmat.primitives.serialization import Encoding

    (room["base"] / "other-root.pem").write_bytes(oroot.certificate.public_bytes(Encoding.PEM))
    (tmp_path / "other-sub.pem").write_bytes(osub.certificate.public_bytes(Encoding.PEM))
    other.close()
    out, transcript = ceremony(room, "cross", mode="cross-certificate", parent="root",
                               cross={"certificate": "other-root.pem", "level": 2})
    [cross] = [p for p in out.iterdir() if p.name.startswith("cross-")]
    assert transcript["steps"][1]["inputs"]["other CA certificate"] == hashlib.sha256(
        _der(room["base"] / "other-root.pem")).hexdigest()
    done = openssl("verify", "-CAfile", str(room["base"] / "out-root" / "root.pem"), "-untrusted", str(cross),
                   str(tmp_path / "other-sub.pem"))
    assert done.returncode == 0, done.stderr


def test_a_ceremony_refuses_a_bad_file_and_never_overwrites(room: dict) -> None:
    bad = room["base"] / "bad.yaml"
    bad.write_text("id: x\ntitle: t\nmode: root\nofficer: {name: a, key: k, certificate: c}\nwitnesses: [one]\n"
                   "outputs: o\nroot: {name: r, subject: 'C=IR', key: {label: l, algorithm: p384}}\nextra: 1\n")
    done = iranpki("ceremony", "check", str(bad), check=False)
    assert done.returncode != 0 and "witnesses" in done.stderr and "problem(s)" in done.stderr
    if not (room["base"] / "out-root").exists():
        test_a_root_ceremony_on_the_token(room)
    again = room["base"] / "root.yaml"  # its output folder exists now
    done = iranpki("ceremony", "run", str(again), "--home", str(room["home"]), check=False)
    assert done.returncode != 0 and "never writes over evidence" in done.stderr


def test_a_ceremony_that_stops_leaves_a_signed_transcript_saying_why(room: dict) -> None:
    """A step that fails (here: the parent CA does not exist) ends the ceremony; what was done
    and why it stopped is in the transcript, signed, and in the audit log as ceremony.aborted."""
    doc = {"id": f"stops-{room['tag']}", "title": "A ceremony that stops", "mode": "intermediate", "parent": "nobody",
           "officer": {"name": "Ceremony Officer", "key": "officer.key", "certificate": "officer.pem"},
           "witnesses": ["Witness One", "Witness Two"], "outputs": "out-stops", "levels": [
               {"name": "x1", "level": 1, "subject": "C=IR,O=GICA,CN=X", "key": {"label": "x1", "algorithm": "p256"}}]}
    path = room["base"] / "stops.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    done = iranpki("ceremony", "run", str(path), "--home", str(room["home"]), check=False)
    assert done.returncode != 0 and "nobody" in done.stderr
    transcript = json.loads((room["base"] / "out-stops" / "transcript.json").read_text(encoding="utf-8"))
    assert "nobody" in transcript["aborted"] and transcript["steps"][0]["step"] == "opened"
    checked = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in",
                      str(room["base"] / "out-stops" / "transcript.json.p7s"), "-content",
                      str(room["base"] / "out-stops" / "transcript.json"), "-CAfile", str(room["base"] / "officer.pem"),
                      "-purpose", "any", "-out", "/dev/null")
    assert checked.returncode == 0, checked.stderr
    ws = Workspace.open(room["home"])
    aborted = [e for _, _, e in ws.store.audit_log() if e.event == "ceremony.aborted"]
    ws.close()
    assert aborted and aborted[-1].subject == f"stops-{room['tag']}"

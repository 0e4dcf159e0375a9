"""Subscribers' key recovery through the RA (issue 17): an S/MIME encryption certificate's key,
made by the RA, is archived to the key-recovery key on the CA's token before the certificate is
issued; a message openssl encrypted to it before the key was lost is read, by openssl, with the
key a ``recover`` request returns: proofed in person, approved by two officers besides the one who
proofed, carried out by the CA side on the token and handed out once, in a PKCS#12 under the
passphrase the subscriber gave when asking. Refused without the approvals, for a signature key,
and with no key-recovery key; the CP and rules files that would weaken any of it do not load."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from iranpki.errors import ConfigError, PinError, RequestError, RuleRefusedError
from iranpki.workspace import Workspace

from .conftest import software_workspace
from .test_ra import ALI, documents

MESSAGE = "پیام محرمانه: the contract is attached.\n"
SUBJECT = "CN=ali@example.ir"
PASSPHRASE = "a passphrase for my mail"
RECOVERY_PASSPHRASE = "another passphrase, for the recovered key"


@pytest.fixture
def home(softhsm, recovery_token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A workspace with a root and a level-1 signing CA (software keys), an office with one
    proofing and three approving officers; the `iranpki` command over it."""
    from iranpki_cli.main import cli

    monkeypatch.setenv("IRANPKI_KEY_PASSPHRASE", "a passphrase long enough")
    path = tmp_path / "ws"
    software_workspace(path, name="recovery").close()

    def iranpki(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, [*args, "--home", str(path)])
        assert result.exit_code == code, result.output
        return result.output

    iranpki("ra", "office", "create", "THR-01", "--name", "دفتر تهران", "--city", "Tehran", "--ca", "gica1")
    iranpki("ra", "officer", "enrol", "p1", "--office", "THR-01", "--name", "Reza", "--role", "proofing")
    for officer in ("a1", "a2", "a3"):
        iranpki("ra", "officer", "enrol", officer, "--office", "THR-01", "--name", officer, "--role", "approving")
    return {"path": path, "run": iranpki, "tmp": tmp_path, "token": recovery_token}


def _issue_software(ra, iranpki, profile: str, passphrase: str = PASSPHRASE) -> tuple[str, str, bytes]:  # noqa: ANN001
    """An applicant's certificate of ``profile`` with its key made by the RA: (request, serial, PKCS#12)."""
    reg = ra.register(profile=profile, level=1, ca="gica1", applicant=ALI, subject=SUBJECT,
                      key_location="software-pkcs12", names={"emails": ["ali@example.ir"]})
    request = ra.receive(ra.officer("p1"), reg.code, "0499370899")
    ra.proof(ra.officer("p1"), request.id, method="in-person", documents=documents("national-id-card"))
    applicant = ra.applicant(reg.code, "0499370899", client="panel")
    ra.bind_key(applicant, request.id, csr=None, passphrase=passphrase)
    ra.approve(ra.officer("a1"), request.id)
    [done] = json.loads(iranpki("ra", "issue", "--json"))
    assert done["error"] is None, done
    return request.id, done["serial"], ra.pkcs12(applicant, request.id, passphrase)


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True)


def test_a_message_sent_before_the_key_was_lost_is_read_after_a_recovery_two_officers_approved(home: dict) -> None:
    iranpki, tmp = home["run"], home["tmp"]
    label = f"krk-{secrets.token_hex(3)}"
    made = json.loads(iranpki("escrow", "init", "--token", home["token"], "--label", label, "--json"))
    assert made["key"] == f"pkcs11:token={home['token']};object={label};type=private"
    listed = json.loads(iranpki("escrow", "list", "--json"))
    assert [k["name"] for k in listed] == [label] and listed[0]["archived_to"]
    # The key on the token agrees keys and nothing else: it cannot sign, and never leaves the token.
    tool = subprocess.run(["pkcs11-tool", "--module", _module(), "--token-label", home["token"], "--login", "--pin",
                           "env:IRANPKI_PKCS11_PIN", "--list-objects", "--type", "privkey"],
                          capture_output=True, text=True)
    assert tool.returncode == 0, tool.stderr
    [block] = [b for b in tool.stdout.split("Private Key Object")[1:] if f"label:      {label}\n" in b]
    usage = next(line for line in block.splitlines() if "Usage:" in line)
    access = next(line for line in block.splitlines() if "Access:" in line)
    assert "derive" in usage and "sign" not in usage and "decrypt" not in usage, tool.stdout
    assert "never extractable" in access and "sensitive" in access, tool.stdout

    ws = Workspace.open(home["path"])
    ra = ws.registration()
    request_id, serial, p12 = _issue_software(ra, iranpki, "smime-encryption")
    archived = ra.store.get_request(request_id).proofing["archived_key"]
    assert archived["recovery_key_sha256"] == made["public_key_sha256"]
    # The certificate is for encryption only (keyAgreement for its EC key), and openssl encrypts
    # a message to it; the subscriber then loses the PKCS#12.
    (tmp / "p12").write_bytes(p12)
    cert = _openssl("pkcs12", "-in", str(tmp / "p12"), "-nokeys", "-clcerts", "-passin", f"pass:{PASSPHRASE}")
    assert cert.returncode == 0, cert.stderr
    (tmp / "ali.pem").write_text(cert.stdout)
    text = _openssl("x509", "-in", str(tmp / "ali.pem"), "-noout", "-ext", "keyUsage").stdout
    assert "Key Agreement" in text and "Digital Signature" not in text, text
    (tmp / "msg.txt").write_text(MESSAGE, encoding="utf-8")
    sent = _openssl("cms", "-encrypt", "-aes256", "-in", str(tmp / "msg.txt"), "-out", str(tmp / "msg.p7m"),
                    "-recip", str(tmp / "ali.pem"))
    assert sent.returncode == 0, sent.stderr
    (tmp / "p12").unlink()

    # The recovery request: by the subscriber's national code, with the passphrase to come.
    with pytest.raises(RequestError, match="at least 12"):
        ra.request_change("recover", int(serial, 16), second_factor="0499370899", passphrase="short")
    with pytest.raises(RequestError, match="only a recovery takes a passphrase"):
        ra.request_change("revoke", int(serial, 16), second_factor="0499370899", passphrase=RECOVERY_PASSPHRASE)
    reg = ra.request_change("recover", int(serial, 16), second_factor="0499370899", passphrase=RECOVERY_PASSPHRASE)
    applicant = ra.applicant(reg.code, "0499370899", client="panel")
    with pytest.raises(RuleRefusedError) as early:
        ra.pkcs12(applicant, reg.request.id, RECOVERY_PASSPHRASE)
    assert early.value.rule == "state"
    # No visit, no recovery: the current key cannot prove it (the rules allow in person only).
    with pytest.raises(RuleRefusedError) as remote:
        ra.proof_by_current_key(applicant, reg.request.id, b"\x00" * 64)
    assert remote.value.rule == "proofing-method"
    request = ra.receive(ra.officer("p1"), reg.code, "0499370899")
    request = ra.proof(ra.officer("p1"), request.id, method="in-person", documents=documents("national-id-card"))
    assert request.state == "awaiting-approval" and "transport" in request.proofing
    # Two approving officers, neither the one who proofed, each once.
    with pytest.raises(RuleRefusedError) as proofer:
        ra.approve(ra.officer("p1"), request.id)
    assert proofer.value.rule in ("roles", "separation")
    assert ra.approve(ra.officer("a1"), request.id).state == "awaiting-approval"
    with pytest.raises(RuleRefusedError) as twice:
        ra.approve(ra.officer("a1"), request.id)
    assert twice.value.rule == "dual-control"
    # With one approval the CA side does nothing with it.
    assert json.loads(iranpki("ra", "issue", "--json")) == []
    assert ra.store.get_request(request.id).state == "awaiting-approval"
    assert ra.approve(ra.officer("a2"), request.id).state == "approved"
    ws.close()

    # The CA side opens the archive on the token and seals the key to the subscriber.
    [done] = json.loads(iranpki("ra", "issue", "--json"))
    assert done == {"request": request.id, "serial": serial, "error": None}
    ws = Workspace.open(home["path"])
    ra = ws.registration()
    recovered_events = [row for row in ws.store.audit_rows() if "ra.key.recovered" in row[1:6]]
    assert len(recovered_events) == 1 and request.id in recovered_events[0][1:6]
    with pytest.raises(PinError, match="wrong passphrase"):
        ra.pkcs12(applicant, request.id, PASSPHRASE)
    recovered = ra.pkcs12(applicant, request.id, RECOVERY_PASSPHRASE)
    with pytest.raises(RuleRefusedError) as again:
        ra.pkcs12(applicant, request.id, RECOVERY_PASSPHRASE)
    assert again.value.rule == "state"  # once
    assert not {"sealed_key", "transport"} & set(ra.store.get_request(request.id).proofing)
    # openssl opens the PKCS#12 and decrypts the message sent before.
    (tmp / "recovered.p12").write_bytes(recovered)
    key = _openssl("pkcs12", "-in", str(tmp / "recovered.p12"), "-nodes", "-nocerts", "-passin",
                   f"pass:{RECOVERY_PASSPHRASE}")
    assert key.returncode == 0, key.stderr
    (tmp / "key.pem").write_text(key.stdout)
    read = _openssl("cms", "-decrypt", "-in", str(tmp / "msg.p7m"), "-inkey", str(tmp / "key.pem"), "-recip",
                    str(tmp / "ali.pem"))
    assert read.returncode == 0, read.stderr
    assert read.stdout.replace("\r\n", "\n") == MESSAGE
    # The recovered key was never in the store unencrypted.
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    scalar = load_pem_private_key(key.stdout.encode(), None).private_numbers().private_value.to_bytes(32, "big")
    ws.close()
    stored = b"".join(p.read_bytes() for p in home["path"].glob("*.sqlite3*"))
    assert stored and scalar not in stored


def _recovered(ra, iranpki, serial: str) -> tuple:  # noqa: ANN001
    """A recovery of ``serial``'s key carried out by the CA side: (its request id, the applicant)."""
    reg = ra.request_change("recover", int(serial, 16), second_factor="0499370899", passphrase=RECOVERY_PASSPHRASE)
    ra.receive(ra.officer("p1"), reg.code, "0499370899")
    ra.proof(ra.officer("p1"), reg.request.id, method="in-person", documents=documents("national-id-card"))
    for officer in ("a1", "a2"):
        ra.approve(ra.officer(officer), reg.request.id)
    [done] = json.loads(iranpki("ra", "issue", "--json"))
    assert done["error"] is None, done
    return reg.request.id, ra.applicant(reg.code, "0499370899", client="panel")


def test_a_recovery_goes_on_beside_a_pending_change_and_its_key_does_not_wait_forever(home: dict) -> None:
    from datetime import timedelta

    from iranpki.clock import FixedClock

    iranpki = home["run"]
    iranpki("escrow", "init", "--token", home["token"], "--label", f"krk-{secrets.token_hex(3)}")
    ra = Workspace.open(home["path"]).registration()
    _, serial, _ = _issue_software(ra, iranpki, "smime-encryption")
    # A suspension proved and waiting for its approval (the laptop was stolen) does not hold up the recovery.
    suspend = ra.request_change("suspend", int(serial, 16), second_factor="0499370899")
    ra.receive(ra.officer("p1"), suspend.code, "0499370899")
    ra.proof(ra.officer("p1"), suspend.request.id, method="in-person", documents=documents("national-id-card"))
    with pytest.raises(RuleRefusedError) as blocked:
        ra.request_change("revoke", int(serial, 16), second_factor="0499370899")
    assert blocked.value.rule == "pending-change"
    request_id, applicant = _recovered(ra, iranpki, serial)
    # Five wrong passphrases remove the sealed key: no more guesses, here or on a copy of the store.
    for _ in range(4):
        with pytest.raises(PinError):
            ra.pkcs12(applicant, request_id, "a wrong passphrase, again")
    with pytest.raises(RuleRefusedError, match="ask for a new recovery") as locked:
        ra.pkcs12(applicant, request_id, "a wrong passphrase, again")
    assert locked.value.rule == "passphrase-tries"
    assert not {"sealed_key", "transport"} & set(ra.store.get_request(request_id).proofing)
    # A new recovery, not collected in time: removed when next asked for, with the same advice.
    request_id, applicant = _recovered(ra, iranpki, serial)
    ra.clock = FixedClock(ra.clock.now() + timedelta(days=15))
    with pytest.raises(RuleRefusedError, match="was not collected by") as late:
        ra.pkcs12(applicant, request_id, RECOVERY_PASSPHRASE)
    assert late.value.rule == "expiry" and "sealed_key" not in ra.store.get_request(request_id).proofing
    ra.store.close()


def test_a_renewed_certificate_keeps_its_archived_key(home: dict) -> None:
    iranpki = home["run"]
    iranpki("escrow", "init", "--token", home["token"], "--label", f"krk-{secrets.token_hex(3)}")
    ra = Workspace.open(home["path"]).registration()
    request_id, serial, _ = _issue_software(ra, iranpki, "smime-encryption")
    reg = ra.request_change("renew", int(serial, 16), second_factor="0499370899")
    request = ra.receive(ra.officer("p1"), reg.code, "0499370899")
    ra.proof(ra.officer("p1"), request.id, method="in-person", documents=documents("national-id-card"))
    ra.approve(ra.officer("a1"), request.id)
    ra.store.close()
    [done] = json.loads(iranpki("ra", "issue", "--json"))
    assert done["error"] is None and done["serial"] != serial
    ra = Workspace.open(home["path"]).registration()
    origin, _ = ra.archived_key(int(done["serial"], 16))
    assert origin.id == request_id
    assert ra.request_change("recover", int(done["serial"], 16), second_factor="0499370899",
                             passphrase=RECOVERY_PASSPHRASE).request.kind == "recover"
    # Rules stricter than the CP are kept: a recovery they want proofed with two documents is not
    # proofed with one.
    from iranpki.ra import RegistrationAuthority
    from iranpki.ra.rules import load_rules

    strict = RegistrationAuthority(ra.store, clock=ra.clock, rules=load_rules(str(_rules_with(
        home["tmp"], lambda d: d["changes"]["recover"].update(proofing=["in-person-two-documents"])))))
    reg = strict.request_change("recover", int(done["serial"], 16), second_factor="0499370899",
                                passphrase=RECOVERY_PASSPHRASE)
    strict.receive(strict.officer("p1"), reg.code, "0499370899")
    with pytest.raises(RuleRefusedError) as weak:
        strict.proof(strict.officer("p1"), reg.request.id, method="in-person", documents=documents("national-id-card"))
    assert weak.value.rule == "proofing-method"


def test_a_signature_key_is_never_archived_nor_recovered(home: dict) -> None:
    iranpki = home["run"]
    ws = Workspace.open(home["path"])
    ra = ws.registration()
    # No key-recovery key yet: an escrowed profile is refused at registration, said why.
    with pytest.raises(RuleRefusedError, match="iranpki escrow init") as none:
        ra.register(profile="smime-encryption", level=1, ca="gica1", applicant=ALI, subject=SUBJECT,
                    key_location="software-pkcs12", names={"emails": ["ali@example.ir"]})
    assert none.value.rule == "key-recovery"
    ws.close()
    iranpki("escrow", "init", "--token", home["token"], "--label", f"krk-{secrets.token_hex(3)}")
    ws = Workspace.open(home["path"])
    ra = ws.registration()
    # The dual-use S/MIME certificate signs: its key is not archived, so it is not recovered.
    request_id, serial, _ = _issue_software(ra, iranpki, "smime")
    assert "archived_key" not in ra.store.get_request(request_id).proofing
    with pytest.raises(RuleRefusedError, match="was not archived") as refused:
        ra.request_change("recover", int(serial, 16), second_factor="0499370899", passphrase=RECOVERY_PASSPHRASE)
    assert refused.value.rule == "key-recovery"
    # The encryption profile's key may be nowhere but where the RA makes it.
    with pytest.raises(RuleRefusedError) as token:
        ra.register(profile="smime-encryption", level=1, ca="gica1", applicant=ALI, subject=SUBJECT,
                    key_location="desk-token", names={"emails": ["ali@example.ir"]})
    assert token.value.rule == "key-location"
    # And the library refuses to archive a key whose certificate may sign.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from iranpki.keys import escrow

    pkcs8 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    recovery = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(escrow.EscrowError, match="signature key is never archived"):
        escrow.archive_key(pkcs8, ("digitalSignature", "keyAgreement"), recovery, context="x")
    ws.close()


def _rules_with(tmp_path: Path, change) -> Path:  # noqa: ANN001
    data = yaml.safe_load((Path(__file__).parents[1] / "policies" / "ra-rules.yaml").read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / f"rules-{secrets.token_hex(3)}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(("change", "said"), [
    (lambda d: d["profiles"]["smime-encryption"].update(key_locations=["software-pkcs12", "desk-token"]),
     "made where the RA archives it"),
    (lambda d: d["changes"]["recover"].update(approvals=1), "asks 1 approvals; the CP's key_recovery asks 2"),
    (lambda d: d["changes"]["recover"].update(proofing=["automated-inquiry"]), "asks at least in-person"),
    (lambda d: d["changes"].pop("recover"), "does not say how one is recovered"),
])
def test_rules_that_weaken_the_key_recovery_policy_do_not_load(tmp_path: Path, change, said: str) -> None:  # noqa: ANN001
    from iranpki.ra.rules import load_rules

    with pytest.raises(ConfigError, match=said):
        load_rules(str(_rules_with(tmp_path, change)))


def test_the_cp_escrows_no_signature_profile(tmp_path: Path) -> None:
    from iranpki.policy import load_policy
    from iranpki.ra.rules import load_rules

    cp = load_policy()
    signing = cp.model_copy(update={"key_recovery": cp.key_recovery.model_copy(update={"profiles": ("smime",)})})
    with pytest.raises(ConfigError, match="allows signatures"):
        load_rules(policy=signing)
    with pytest.raises(ValueError, match="no CA purpose issues"):
        type(cp).model_validate({**cp.model_dump(), "key_recovery": {**cp.key_recovery.model_dump(),
                                                                      "profiles": ["nope"]}})


def _module() -> str:
    from iranpki.keys.pkcs11 import module_path

    return module_path(None)

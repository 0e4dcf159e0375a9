"""The tamper-evident audit log (issue 17, first part): every event a leaf of an RFC 9162 tree,
written with the event; checkpoints as C2SP signed notes whose ECDSA signature openssl verifies;
roots and proofs checked against pymerkle, an implementation not ours; `iranpki audit verify`
finds an edited, deleted, inserted, reordered or cut-off event at its position, and a rewrite of
events and leaves together by the checkpoint; proofs and an inspection bundle checked offline."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iranpki import audit
from iranpki.keys import KeySpec, SecretSource
from iranpki.workspace import Workspace

from .conftest import REPO, ROOT_SUBJECT
from .samples import SUBJECTS

IRANPKI = str(Path(sys.executable).parent / "iranpki")


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([IRANPKI, *args], capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stderr + done.stdout
    return done


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A workspace whose log has a root, a CA, certificates, a revocation; and the audit key."""
    base = tmp_path_factory.mktemp("audit")
    home = base / "ws"
    os.environ["IRANPKI_KEY_PASSPHRASE"] = "a passphrase long enough"
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    ws = Workspace.init(home, repository_url=REPO)
    for label, spec in (("root", "p384"), ("gica1", "p256"), ("audit", "p256")):
        ws.generate_key(KeySpec.parse(spec), label=label, secret=secret)
    ws.create_root("root", "root", ROOT_SUBJECT, secret=secret)
    ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=GICA,CN=GICA Level 1 (audit)", secret=secret,
                           parent_secret=secret, purpose="signing")
    pub = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    # A time-stamping CA and its TSA, which can vouch for a checkpoint's time.
    ws.generate_key(KeySpec.parse("p256"), label="gica1tsa", secret=secret)
    ws.generate_key(KeySpec.parse("p256"), label="tsa", secret=secret)
    ws.create_intermediate("gica1tsa", "root", 1, "gica1tsa", "C=IR,O=GICA,CN=GICA Level 1 TSA (audit)", secret=secret,
                           parent_secret=secret, purpose="time-stamping")
    tsa_pub = ws.open_key("tsa", secret).public_key.public_bytes(serialization.Encoding.PEM,
                                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    ws.issue("gica1tsa", "tsa", subject=SUBJECTS["tsa"], public_key=tsa_pub, secret=secret)
    for name in ("root", "gica1tsa"):
        (base / f"{name}.pem").write_bytes(x509.load_der_x509_certificate(ws.store.get_ca(name).certificate)
                                           .public_bytes(serialization.Encoding.PEM))
    serials = [ws.issue("gica1", "personal-signature", subject=SUBJECTS["personal-signature"], secret=secret,
                        public_key=ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(*pub)).record.serial
               for _ in range(6)]
    ws.revoke(serials[0], "keyCompromise")
    ws.close()
    return {"base": base, "home": home, "serials": serials}


def _leaves(home: Path) -> list[bytes]:
    ws = Workspace.open(home)
    try:
        return ws.store.audit_leaves()
    finally:
        ws.close()


def test_the_tree_is_the_one_pymerkle_builds(logged: dict) -> None:
    """Roots at every size, inclusion paths and consistency proofs against pymerkle (RFC 9162
    trees, written by others); every event has its leaf, made from the event as stored."""
    from pymerkle import InmemoryTree, verify_consistency

    ws = Workspace.open(logged["home"])
    rows = list(ws.store.audit_rows())
    ws.close()
    assert len(rows) >= 12 and all(r[6] is not None for r in rows)
    datas = [audit.leaf_data(*r[:6]) for r in rows]
    leaves = [r[6] for r in rows]
    assert leaves == [audit.leaf_hash(d) for d in datas]
    assert json.loads(datas[0])["seq"] == 1 and datas[0] == audit.rfc8785.dumps(json.loads(datas[0]))
    tree = InmemoryTree(algorithm="sha256")
    for d in datas:
        tree.append_entry(d)
    n = len(leaves)
    root = getattr(tree, "get_root", None) or tree.get_state
    for size in range(1, n + 1):
        assert audit.root_of(leaves[:size]) == root(size), size
        for index in range(size):
            theirs = tree.prove_inclusion(index + 1, size).serialize()["path"][1:]  # pymerkle lists the leaf first
            assert [p.hex() for p in audit.inclusion_proof(index, leaves[:size])] == theirs
        for old in range(1, size):
            ours = audit.consistency_proof(old, leaves[:size])
            theirs = tree.prove_consistency(old, size)
            verify_consistency(root(old), root(size), theirs)
            # Ours, checked by the RFC's algorithm against pymerkle's roots (its proofs list the
            # hashes in another order, with rule bits, so they are compared by what they prove).
            audit.check_consistency(old, size, root(old), root(size), ours)


def test_a_checkpoint_is_a_signed_note_openssl_verifies(logged: dict) -> None:
    base = logged["base"]
    done = run("audit", "checkpoint", "--key", "audit", "--home", str(logged["home"]), "--out", str(base / "cp1.txt"),
               "--json")
    made = json.loads(done.stdout)
    note = (base / "cp1.txt").read_text(encoding="utf-8")
    body, _, signature_line = note.rpartition("\n\n")
    lines = body.split("\n")
    assert lines[0].startswith("iranpki.audit/") and int(lines[1]) == len(_leaves(logged["home"]))
    assert base64.b64decode(lines[2]) == audit.root_of(_leaves(logged["home"])) and lines[3].startswith("time ")
    dash, name, blob = signature_line.strip().split(" ")
    assert dash == "\u2014" and name == lines[0]
    raw = base64.b64decode(blob)
    vkey = made["vkey"]
    spki = base64.b64decode(vkey.split("+", 2)[2])[1:]
    assert raw[:4].hex() == vkey.split("+", 2)[1] == __import__("hashlib").sha256(spki).hexdigest()[:8]
    (base / "body.txt").write_bytes((body + "\n").encode("utf-8"))
    (base / "sig.der").write_bytes(raw[4:])
    (base / "audit.pub").write_bytes(serialization.load_der_public_key(spki).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    checked = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(base / "audit.pub"), "-signature",
                              str(base / "sig.der"), str(base / "body.txt")], capture_output=True, text=True)
    assert checked.returncode == 0 and "Verified OK" in checked.stdout
    (base / "audit.vkey").write_text(vkey, encoding="utf-8")
    # The same file is never overwritten.
    again = run("audit", "checkpoint", "--key", "audit", "--home", str(logged["home"]), "--out", str(base / "cp1.txt"),
                check=False)
    assert again.returncode != 0 and "never overwritten" in again.stderr + again.stdout


def _tampered(logged: dict, name: str, *statements: str) -> Path:
    home = logged["base"] / f"t-{name}"
    shutil.copytree(logged["home"], home)
    db = sqlite3.connect(home / "iranpki.sqlite3")
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()
    return home


def _rewrite_leaves(home: Path) -> None:
    """An attacker who knows the format recomputes every leaf after the edit."""
    db = sqlite3.connect(home / "iranpki.sqlite3")
    rows = db.execute("SELECT seq, at, actor, event, subject, details FROM audit ORDER BY seq").fetchall()
    db.execute("DELETE FROM audit_tree")
    db.executemany("INSERT INTO audit_tree VALUES (?, ?)", [(r[0], audit.leaf_hash(audit.leaf_data(*r))) for r in rows])
    db.commit()
    db.close()


def test_verify_finds_each_kind_of_tampering_at_its_position(logged: dict) -> None:
    base = logged["base"]
    if not (base / "cp1.txt").exists():
        test_a_checkpoint_is_a_signed_note_openssl_verifies(logged)
    ok = json.loads(run("audit", "verify", "--home", str(logged["home"]), "--checkpoint", str(base / "cp1.txt"),
                        "--json").stdout)
    assert ok["ok"] and ok["checkpoints"] == [ok["events"]]
    size = ok["events"]
    cases = {
        "edited": (["UPDATE audit SET details='{\"reason\": \"superseded\"}' WHERE seq=5"], 5, "changed"),
        "deleted": (["DELETE FROM audit WHERE seq=7", "DELETE FROM audit_tree WHERE seq=7"], 7, "missing"),
        "reordered": (["UPDATE audit SET event=CASE seq WHEN 3 THEN (SELECT event FROM audit WHERE seq=4) "
                       "ELSE (SELECT event FROM audit WHERE seq=3) END WHERE seq IN (3, 4)"], 3, "changed"),
        "inserted": ([f"UPDATE audit SET seq=seq+1000 WHERE seq>={size - 1}",
                      f"UPDATE audit SET seq=seq-999 WHERE seq>={size + 999}",
                      f"INSERT INTO audit VALUES ({size - 1}, '2026-01-01T00:00:00+00:00', 'x', 'cert.issued', "
                      "'ff', '{}')"], size - 1, "changed"),
        "truncated": ([f"DELETE FROM audit WHERE seq>{size - 3}", f"DELETE FROM audit_tree WHERE seq>{size - 3}"],
                      size - 2, "cut off"),
        "no-leaf": ([f"DELETE FROM audit_tree WHERE seq={size}"], size, "no leaf"),
    }
    for name, (statements, position, words) in cases.items():
        home = _tampered(logged, name, *statements)
        done = run("audit", "verify", "--home", str(home), "--checkpoint", str(base / "cp1.txt"), "--json", check=False)
        found = json.loads(done.stdout)
        assert done.returncode == 1 and found["first_bad"] == position, (name, found)
        assert any(words in p["what"] for p in found["problems"]), (name, found)
    # Events and leaves rewritten together: only the checkpoint knows, and says between which events.
    home = _tampered(logged, "rewritten", "UPDATE audit SET actor='someone else' WHERE seq=9")
    _rewrite_leaves(home)
    found = json.loads(run("audit", "verify", "--home", str(home), "--checkpoint", str(base / "cp1.txt"), "--json",
                           check=False).stdout)
    assert not found["ok"] and f"between 1 and {size}" in found["problems"][0]["what"]
    # A checkpoint whose note was edited (another root) does not verify under the key.
    forged = (base / "cp1.txt").read_text(encoding="utf-8").replace("\n" + str(size) + "\n", f"\n{size - 1}\n")
    (base / "forged.txt").write_text(forged, encoding="utf-8")
    found = json.loads(run("audit", "verify", "--home", str(logged["home"]), "--checkpoint", str(base / "forged.txt"),
                           "--json", check=False).stdout)
    assert not found["ok"] and "does not verify" in found["problems"][0]["what"]


def test_proofs_are_checked_offline_without_the_store(logged: dict) -> None:
    base = logged["base"]
    if not (base / "cp1.txt").exists():
        test_a_checkpoint_is_a_signed_note_openssl_verifies(logged)
    vkey = (base / "audit.vkey").read_text(encoding="utf-8")
    old_size = int((base / "cp1.txt").read_text(encoding="utf-8").split("\n")[1])
    # The log grows; a second checkpoint; the inspector holds the first.
    ws = Workspace.open(logged["home"])
    ws.revoke(logged["serials"][1], "superseded")
    ws.close()
    run("audit", "checkpoint", "--key", "audit", "--home", str(logged["home"]), "--out", str(base / "cp2.txt"))
    new_size = int((base / "cp2.txt").read_text(encoding="utf-8").split("\n")[1])
    assert new_size > old_size
    run("audit", "prove", "4", "--size", str(new_size), "--home", str(logged["home"]), "--out", str(base / "p4.json"))
    run("audit", "consistency", str(old_size), str(new_size), "--home", str(logged["home"]), "--out",
        str(base / "c.json"))
    shown = run("audit", "check-proof", str(base / "p4.json"), "--checkpoint", str(base / "cp2.txt"), "--vkey", vkey)
    assert "event 4 is in the log" in shown.stdout
    shown = run("audit", "check-proof", str(base / "c.json"), "--checkpoint", str(base / "cp2.txt"), "--old-checkpoint",
                str(base / "cp1.txt"), "--vkey", vkey)
    assert "only appended to" in shown.stdout
    # An event's data changed in the proof, or another key's checkpoint: refused.
    proof = json.loads((base / "p4.json").read_text(encoding="utf-8"))
    proof["leaf_data"] = proof["leaf_data"].replace('"actor":"', '"actor":"x')
    (base / "p4-bad.json").write_text(json.dumps(proof), encoding="utf-8")
    refused = run("audit", "check-proof", str(base / "p4-bad.json"), "--checkpoint", str(base / "cp2.txt"), "--vkey",
                  vkey, check=False)
    assert refused.returncode == 1 and "does not lead to the root" in refused.stdout
    stranger = ec.generate_private_key(ec.SECP256R1())
    other_vkey = audit.verifier_key(vkey.split("+")[0], stranger.public_key())
    refused = run("audit", "check-proof", str(base / "p4.json"), "--checkpoint", str(base / "cp2.txt"), "--vkey",
                  other_vkey, check=False)
    assert refused.returncode == 1 and "no signature by the key" in refused.stdout
    # The inspection bundle: every event of the period with its proof, earlier checkpoints linked.
    run("audit", "export", "--key", "audit", "--out", str(base / "bundle.json"), "--home", str(logged["home"]))
    shown = run("audit", "check-bundle", str(base / "bundle.json"), "--vkey", vkey)
    assert "earlier checkpoint(s) are prefixes" in shown.stdout
    bundle = json.loads((base / "bundle.json").read_text(encoding="utf-8"))
    assert len(bundle["events"]) == bundle["size"] and len(bundle["earlier_checkpoints"]) == 1
    bundle["events"][2]["leaf_data"] = bundle["events"][2]["leaf_data"].replace("\"at\":\"20", "\"at\":\"19")
    (base / "bundle-bad.json").write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    assert run("audit", "check-bundle", str(base / "bundle-bad.json"), "--vkey", vkey, check=False).returncode == 1
    shown = run("audit", "show", "--limit", "3", "--home", str(logged["home"]))
    assert "cert.revoked" in shown.stdout and "14" in shown.stdout  # a Jalali year 14xx beside the Gregorian


def test_the_fast_leaf_encoding_is_rfc8785() -> None:
    """The leaf's JSON, written by Python's encoder for plain events, is byte for byte what the
    rfc8785 package (an implementation of the RFC not ours) writes, on generated events:
    strings with any character (controls, quotes, Persian, astral), nested lists and objects,
    integers at the edges of the exact range, and the floats and astral keys that take the
    general path."""
    import rfc8785
    from hypothesis import given, settings
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1),
                        st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
                        st.floats(allow_nan=False, allow_infinity=False))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(st.characters(exclude_categories=("Cs",)), max_size=6), inner, max_size=4), max_leaves=12)
    words = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)

    @settings(max_examples=400, deadline=None)
    @given(st.integers(1, 2**53 - 1), words, words, words, words, st.dictionaries(st.text(max_size=8), values, max_size=5))
    def same(seq: int, at: str, actor: str, event: str, subject: str, details: dict) -> None:
        text = json.dumps(details, sort_keys=True, ensure_ascii=False)
        expected = rfc8785.dumps({"seq": seq, "at": at, "actor": actor, "event": event, "subject": subject,
                                  "details": json.loads(text)})
        assert audit.leaf_data(seq, at, actor, event, subject, text) == expected

    same()


def test_the_audit_key_on_the_token_signs_checkpoints(softhsm: dict, tmp_path: Path) -> None:
    """The audit key made on the CA's token (SoftHSM2), never extractable, signs a checkpoint
    through its PKCS#11 URI; an RSA key is refused with the reason (signed-note type 0x02 is ECDSA)."""
    from iranpki.keys.pkcs11 import generate_keypair

    home = tmp_path / "ws"
    Workspace.init(home, repository_url=REPO).close()
    generate_keypair("Test", "audit-p256", KeySpec.parse("p256"))
    generate_keypair("Test", "audit-rsa", KeySpec.parse("rsa2048"))
    made = json.loads(run("audit", "checkpoint", "--key", "pkcs11:token=Test;object=audit-p256", "--home", str(home),
                          "--json").stdout)
    assert audit.open_checkpoint(made["note"], made["vkey"]).size == 0  # a new workspace: nothing logged yet
    refused = run("audit", "checkpoint", "--key", "pkcs11:token=Test;object=audit-rsa", "--home", str(home),
                  check=False)
    assert refused.returncode != 0 and "ECDSA P-256 or P-384" in refused.stderr + refused.stdout


def test_a_checkpoint_time_stamped_by_the_tsa(logged: dict) -> None:
    """With --tsa, the TSA (iranpki tsa serve) stamps the note; openssl ts -verify checks the
    stamp over the note's exact bytes."""
    from .conftest import start_listening

    base = logged["base"]
    server, port, _ = start_listening([IRANPKI, "tsa", "serve", "--home", str(logged["home"]), "--ca", "gica1tsa",
                                       "--key", "tsa", "--port", "0", "--workers", "1"], dict(os.environ), "TSA")
    try:
        run("audit", "checkpoint", "--key", "audit", "--home", str(logged["home"]), "--out", str(base / "cp-ts.txt"),
            "--tsa", f"http://127.0.0.1:{port}/")
    finally:
        server.terminate()
        server.wait(timeout=30)
    done = subprocess.run(["openssl", "ts", "-verify", "-data", str(base / "cp-ts.txt"), "-in", str(base / "cp-ts.txt.tsr"),
                           "-CAfile", str(base / "root.pem"), "-untrusted", str(base / "gica1tsa.pem")],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stdout + done.stderr
    refused = run("audit", "checkpoint", "--key", "audit", "--home", str(logged["home"]), "--tsa", "http://127.0.0.1:9/",
                  check=False)
    assert refused.returncode != 0 and "give --out" in refused.stderr

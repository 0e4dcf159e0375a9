"""CRLs (RFC 5280 section 5) judged by cryptography, `openssl crl`, `openssl verify -crl_check`
and pkilint's lint_crl: complete, delta and partitioned CRLs, CRL numbers under concurrency,
and publication that a reader never sees half-done."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from iranpki import crl
from iranpki.ca import create_intermediate, create_root, parse_subject, revoke
from iranpki.x509parts import crl_url
from iranpki.clock import FixedClock
from iranpki.errors import CrlError, IssuanceError, StoreError
from iranpki.keys import SoftwareSigner
from iranpki.store import AuditEvent, SqliteStore

from .conftest import OCSP, REPO, ROOT_SUBJECT, new_key, pkilint, run, utc
from .samples import request

T0 = utc(2026, 11, 23, 9, 0, 0)


def _revoked_in_store(store: SqliteStore, ca: str, shard: int | None = None) -> dict[int, tuple]:
    return {r.serial: (r.reason.value if r.reason else None, r.revoked_at, r.invalidity_date)
            for r in store.iter_certificates(ca=ca, status="revoked") if shard is None or r.shard == shard}


def _check_matches_store(der: bytes, store: SqliteStore, ca_name: str, issuer_pub, shard: int | None = None) -> x509.CertificateRevocationList:
    parsed = x509.load_der_x509_crl(der)
    assert parsed.is_signature_valid(issuer_pub)
    expected = _revoked_in_store(store, ca_name, shard)
    got = {}
    for entry in parsed:
        try:
            code = _CODES[entry.extensions.get_extension_for_class(x509.CRLReason).value.reason]
        except x509.ExtensionNotFound:
            code = 0
        try:
            inv = entry.extensions.get_extension_for_class(x509.InvalidityDate).value.invalidity_date_utc
        except x509.ExtensionNotFound:
            inv = None
        got[entry.serial_number] = (code, entry.revocation_date_utc, inv)
    assert got == {s: (r or 0, t, i) for s, (r, t, i) in expected.items()}
    return parsed


_CODES = {x509.ReasonFlags.unspecified: 0, x509.ReasonFlags.key_compromise: 1, x509.ReasonFlags.ca_compromise: 2,
          x509.ReasonFlags.affiliation_changed: 3, x509.ReasonFlags.superseded: 4,
          x509.ReasonFlags.cessation_of_operation: 5, x509.ReasonFlags.certificate_hold: 6,
          x509.ReasonFlags.remove_from_crl: 8, x509.ReasonFlags.privilege_withdrawn: 9,
          x509.ReasonFlags.aa_compromise: 10}


def _pem(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certs))
    return path


def _crl_pem(path: Path, der: bytes) -> Path:
    path.write_bytes(x509.load_der_x509_crl(der).public_bytes(Encoding.PEM))
    return path


@pytest.fixture
def sw(tmp_path: Path, store_location: str):
    """A root and a level-1 intermediate with software keys and a frozen clock, in their own store
    (on each backend)."""
    from iranpki.store import open_store

    clock = FixedClock(T0)
    store = open_store(store_location, clock=clock, create=True)
    root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                       parse_subject(ROOT_SUBJECT), repository_url=REPO, ocsp_url=OCSP, clock=clock)
    ica = create_intermediate(root, SoftwareSigner(new_key("rsa2048")), "gica1", 1,
                              parse_subject("C=IR,O=GICA,CN=GICA Level 1 (test)"))
    return {"store": store, "root": root, "ica": ica, "clock": clock, "dir": tmp_path, "location": store_location}


def _issue(ca, n: int) -> list:
    return [c.record for c in ca.issue_many("tsa", [request("tsa", new_key().public_key()) for _ in range(n)])]


# ---- complete CRLs on the token hierarchy ---------------------------------------------------------

def test_complete_crl_on_token_lists_exactly_the_revoked(hierarchy, tmp_path: Path) -> None:
    gica2, root, store = hierarchy["gica2"], hierarchy["root"], hierarchy["store"]
    issued = [gica2.issue("tsa", request("tsa", new_key().public_key())).record for _ in range(6)]
    revoke(store, issued[0].serial, "keyCompromise", invalidity_date=issued[0].issued_at - timedelta(hours=1))
    revoke(store, issued[1].serial, "superseded")
    revoke(store, issued[2].serial, "unspecified")
    revoke(store, issued[3].serial, "certificateHold")
    generated = crl.generate_crl(store, gica2.record, gica2.signer, tmp_path / "crls")
    der = generated.der
    parsed = _check_matches_store(der, store, "gica2", gica2.certificate.public_key())
    assert generated.record.entries == len(parsed) >= 4
    # reasonCode unspecified is left out (RFC 5280 5.3.1); the others are present.
    entry = parsed.get_revoked_certificate_by_serial_number(issued[2].serial)
    assert entry is not None and len(entry.extensions) == 0
    ext = {e.oid.dotted_string: e for e in parsed.extensions}
    assert ext["2.5.29.20"].value.crl_number == generated.record.number  # cRLNumber
    assert ext["2.5.29.35"].value.key_identifier == gica2.certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value.digest  # authorityKeyIdentifier
    assert parsed.next_update_utc - parsed.last_update_utc == timedelta(hours=168)  # the CP: level 1 status.crl_next_update_hours

    chain = _pem(tmp_path / "chain.pem", root.certificate, gica2.certificate)
    crl_file = _crl_pem(tmp_path / "gica2.crl.pem", der)
    out = run(["openssl", "crl", "-in", str(crl_file), "-CAfile", str(chain), "-noout"])
    assert "verify OK" in out.stderr + out.stdout, out.stderr
    # Relying parties' view: the revoked certificate fails, a good one passes.
    root_crl = crl.generate_crl(store, root.record, root.signer, tmp_path / "crls")
    crls = tmp_path / "all.crl.pem"
    crls.write_bytes(crl_file.read_bytes() + _crl_pem(tmp_path / "root.crl.pem", root_crl.der).read_bytes())
    for rec, ok in ((issued[0], False), (issued[5], True)):
        leaf = _pem(tmp_path / "leaf.pem", x509.load_der_x509_certificate(rec.certificate))
        out = run(["openssl", "verify", "-crl_check_all", "-CAfile", str(hierarchy["root_pem"]), "-untrusted",
                   str(hierarchy["gica2_pem"]), "-CRLfile", str(crls), str(leaf)])
        assert (out.returncode == 0) is ok, out.stdout + out.stderr
        if not ok:
            assert "certificate revoked" in out.stdout + out.stderr
    assert pkilint("lint_crl", tmp_path / "gica2.crl.pem", extra=("-t", "CRL", "-p", "PKIX")) == []
    # The root's CRL covers CA certificates only: pkilint's ARL type.
    assert pkilint("lint_crl", tmp_path / "root.crl.pem", extra=("-t", "ARL", "-p", "PKIX")) == []
    assert root_crl.record.next_update - root_crl.record.this_update == timedelta(hours=8760)


def test_empty_crl_has_no_revoked_list(sw) -> None:
    g = crl.generate_crl(sw["store"], sw["ica"].record, sw["ica"].signer, sw["dir"] / "crls")
    parsed = asn1_crl.CertificateList.load(g.der)
    assert parsed["tbs_cert_list"]["revoked_certificates"].native in (None, [])
    assert len(x509.load_der_x509_crl(g.der)) == 0 and g.record.entries == 0
    path = _crl_pem(sw["dir"] / "empty.pem", g.der)
    assert pkilint("lint_crl", path, extra=("-t", "CRL", "-p", "PKIX")) == []


def test_this_and_next_update_follow_the_policy_and_the_clock(sw) -> None:
    g = crl.generate_crl(sw["store"], sw["ica"].record, sw["ica"].signer, sw["dir"] / "crls", clock=sw["clock"])
    parsed = x509.load_der_x509_crl(g.der)
    assert parsed.last_update_utc == T0 and parsed.next_update_utc == T0 + timedelta(days=7)


def test_wrong_key_is_refused(sw) -> None:
    with pytest.raises(CrlError, match="not the key of CA 'gica1'"):
        crl.generate_crl(sw["store"], sw["ica"].record, sw["root"].signer, sw["dir"] / "crls")


def test_a_faulty_signer_yields_no_crl(sw) -> None:
    class Faulty(SoftwareSigner):
        def sign(self, data, scheme):  # a token that returns a corrupted signature
            sig = bytearray(super().sign(data, scheme))
            sig[-1] ^= 1
            return bytes(sig)

    faulty = Faulty(sw["ica"].signer._key)
    with pytest.raises(Exception, match="does not verify"):
        crl.generate_crl(sw["store"], sw["ica"].record, faulty, sw["dir"] / "crls")
    assert sw["store"].list_crls("gica1") == [] and not list((sw["dir"] / "crls").glob("*.crl"))


# ---- delta CRLs -----------------------------------------------------------------------------------

def test_delta_crl_lists_changes_since_its_base(sw) -> None:
    store, ica = sw["store"], sw["ica"]
    certs = _issue(ica, 6)
    revoke(store, certs[0].serial, "keyCompromise")
    revoke(store, certs[1].serial, "certificateHold")
    revoke(store, certs[2].serial, "certificateHold")
    with pytest.raises(CrlError, match="no complete CRL yet"):
        crl.generate_crl(store, ica.record, ica.signer, sw["dir"] / "crls", delta=True)
    base = crl.generate_crl(store, ica.record, ica.signer, sw["dir"] / "crls")
    assert base.record.entries == 3
    revoke(store, certs[3].serial, "affiliationChanged")
    revoke(store, certs[1].serial, "removeFromCRL")  # released from hold
    revoke(store, certs[2].serial, "keyCompromise")  # hold made final
    delta = crl.generate_crl(store, ica.record, ica.signer, sw["dir"] / "crls", delta=True)
    parsed = x509.load_der_x509_crl(delta.der)
    assert parsed.is_signature_valid(ica.certificate.public_key())
    indicator = parsed.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert indicator.critical and indicator.value.crl_number == base.record.number
    assert delta.record.number > base.record.number and delta.record.base_number == base.record.number
    reasons = {e.serial_number: e.extensions.get_extension_for_class(x509.CRLReason).value.reason for e in parsed}
    assert reasons == {certs[3].serial: x509.ReasonFlags.affiliation_changed,
                       certs[1].serial: x509.ReasonFlags.remove_from_crl,
                       certs[2].serial: x509.ReasonFlags.key_compromise}
    assert delta.record.next_update - delta.record.this_update == timedelta(hours=24)
    # openssl reads it as a delta CRL and verifies it.
    chain = _pem(sw["dir"] / "chain.pem", sw["root"].certificate, ica.certificate)
    pem = _crl_pem(sw["dir"] / "delta.pem", delta.der)
    out = run(["openssl", "crl", "-in", str(pem), "-CAfile", str(chain), "-noout", "-text"])
    assert "verify OK" in out.stderr + out.stdout and "Delta CRL Indicator: critical" in out.stdout
    # A complete CRL issued once deltas exist points to them (freshestCRL, RFC 5280 5.2.6).
    full = crl.generate_crl(store, ica.record, ica.signer, sw["dir"] / "crls")
    fresh = x509.load_der_x509_crl(full.der).extensions.get_extension_for_class(x509.FreshestCRL).value
    assert fresh[0].full_name[0].value == f"{REPO}/crl/gica1-delta.crl"
    assert full.record.entries == 3  # certs 0, 2, 3; cert 1 was released
    assert pkilint("lint_crl", _crl_pem(sw["dir"] / "full.pem", full.der), extra=("-t", "CRL", "-p", "PKIX")) == []


def test_profile_can_name_the_delta_crl_in_certificates(sw) -> None:
    from iranpki.profiles import Urls, load_profile

    prof = load_profile("tsa")
    prof = prof.model_copy(update={"urls": Urls(freshest_crl="{repository}/crl/{ca}{shard}-delta.crl")})
    cert = sw["ica"].issue(prof, request("tsa", new_key().public_key())).certificate
    fresh = cert.extensions.get_extension_for_class(x509.FreshestCRL).value
    assert fresh[0].full_name[0].value == crl_url(sw["ica"].record, delta=True)


# ---- partitioned CRLs -----------------------------------------------------------------------------

def test_shards_are_fixed_at_issuance_and_cannot_be_swapped(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "store.sqlite3"), create=True)
    root = create_root(store, SoftwareSigner(new_key("p384")), "root", parse_subject(ROOT_SUBJECT),
                       repository_url=REPO, ocsp_url=OCSP)
    ica = create_intermediate(root, SoftwareSigner(new_key()), "gica1", 1, parse_subject("C=IR,O=GICA,CN=Sharded"),
                              crl_shards=4)
    certs = _issue(ica, 40)
    by_shard: dict[int, list] = {}
    for rec in certs:
        cdp = x509.load_der_x509_certificate(rec.certificate).extensions.get_extension_for_class(
            x509.CRLDistributionPoints).value[0].full_name[0].value
        assert cdp == f"{REPO}/crl/gica1-{rec.shard}.crl"
        assert store.get_certificate(rec.serial).shard == rec.shard
        by_shard.setdefault(rec.shard, []).append(rec)
    assert len(by_shard) >= 2  # 40 certificates over 4 shards
    for rec in certs[::3]:
        revoke(store, rec.serial, "superseded")
    with pytest.raises(CrlError, match="name one"):
        crl.generate_crl(store, ica.record, ica.signer, tmp_path / "crls")
    with pytest.raises(CrlError, match="shard 4 does not exist"):
        crl.generate_crl(store, ica.record, ica.signer, tmp_path / "crls", shard=4)
    shards = crl.generate_crls(store, ica.record, ica.signer, tmp_path / "crls")
    assert [g.record.shard for g in shards] == [0, 1, 2, 3]
    union: set[int] = set()
    for g in shards:
        parsed = _check_matches_store(g.der, store, "gica1", ica.certificate.public_key(), shard=g.record.shard)
        idp = parsed.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert idp.critical and idp.value.full_name[0].value == f"{REPO}/crl/gica1-{g.record.shard}.crl"
        union |= {e.serial_number for e in parsed}
        assert pkilint("lint_crl", _crl_pem(tmp_path / f"s{g.record.shard}.pem", g.der),
                       extra=("-t", "CRL", "-p", "PKIX")) == []
    assert union == set(_revoked_in_store(store, "gica1"))
    assert len({g.record.number for g in shards}) == 4
    # openssl checks the scope: a certificate judged against another shard's CRL does not pass.
    root_pem = _pem(tmp_path / "root.pem", root.certificate)
    ica_pem = _pem(tmp_path / "ica.pem", ica.certificate)
    root_crl = _crl_pem(tmp_path / "root.crl", crl.generate_crl(store, root.record, root.signer, tmp_path / "crls").der)
    good = next(r for r in certs if r.revoked_at is None and store.get_certificate(r.serial).revoked_at is None)
    leaf = _pem(tmp_path / "leaf.pem", x509.load_der_x509_certificate(good.certificate))

    def verify(shard: int):
        bundle = tmp_path / "crls.pem"
        bundle.write_bytes(root_crl.read_bytes() + _crl_pem(tmp_path / "x.pem", shards[shard].der).read_bytes())
        return run(["openssl", "verify", "-crl_check", "-CAfile", str(root_pem), "-untrusted", str(ica_pem),
                    "-CRLfile", str(bundle), str(leaf)])

    assert verify(good.shard).returncode == 0
    other = verify((good.shard + 1) % 4)
    assert other.returncode != 0 and "different CRL scope" in other.stdout + other.stderr


def test_shard_count_grows_but_never_shrinks(sw) -> None:
    store = sw["store"]
    rec = store.set_crl_shards("gica1", 3, AuditEvent("ca.crl_shards", "gica1"))
    assert rec.crl_shards == 3
    with pytest.raises(StoreError, match="can grow but not shrink"):
        store.set_crl_shards("gica1", 2, AuditEvent("ca.crl_shards", "gica1"))
    # A CA that issued under one CRL cannot be partitioned: its certificates name that CRL.
    with pytest.raises(StoreError, match="would leave them without a CRL"):
        store.set_crl_shards("root", 2, AuditEvent("ca.crl_shards", "root"))
    with pytest.raises(IssuanceError, match="out of range"):
        create_intermediate(sw["root"], SoftwareSigner(new_key()), "x", 1, parse_subject("C=IR,O=X,CN=X"),
                            crl_shards=0)


# ---- CRL numbers ----------------------------------------------------------------------------------

def _generate_many(path: str, n: int, key_pem: bytes, out_dir: str, queue) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from iranpki.store import open_store

    store = open_store(path)
    signer = SoftwareSigner(load_pem_private_key(key_pem, None))
    got = []
    for _ in range(n):
        got.append(crl.generate_crl(store, store.get_ca("gica1"), signer, out_dir).record.number)
    queue.put(got)


def _revoke_many(path: str, serials: list[int]) -> None:
    from iranpki.store import open_store

    store = open_store(path)
    for s in serials:
        revoke(store, s, "superseded")


def test_crl_numbers_only_increase_when_processes_generate_at_once(sw) -> None:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    store, ica = sw["store"], sw["ica"]
    certs = _issue(ica, 30)
    key_pem = ica.signer._key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    path = sw["location"]  # the SQLite file, or the PostgreSQL database: processes at once on either
    procs = [ctx.Process(target=_generate_many, args=(path, 8, key_pem, str(sw["dir"] / "crls"), queue))
             for _ in range(3)]
    procs.append(ctx.Process(target=_revoke_many, args=(path, [c.serial for c in certs])))
    for p in procs:
        p.start()
    numbers = sorted(n for _ in range(3) for n in queue.get(timeout=120))
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert numbers == list(range(1, 25))  # unique, no gap
    # A higher number never holds an older state: entries and status sequence never go down.
    register = store.list_crls("gica1")
    assert [r.number for r in register] == numbers
    for a, b in zip(register, register[1:]):
        assert b.status_seq >= a.status_seq and b.entries >= a.entries
        assert b.this_update >= a.this_update
    last = x509.load_der_x509_crl(Path(register[-1].path).read_bytes())
    assert last.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 24


# ---- publication ----------------------------------------------------------------------------------

def test_publish_lays_out_the_urls_and_readers_never_see_half_a_file(sw) -> None:
    store, ica = sw["store"], sw["ica"]
    for rec in _issue(ica, 50)[:25]:
        revoke(store, rec.serial, "cessationOfOperation")
    crl.generate_crl(store, ica.record, ica.signer, sw["dir"] / "crls")
    crl.generate_crl(store, sw["root"].record, sw["root"].signer, sw["dir"] / "crls")
    repo = sw["dir"] / "repo"
    done = dict(crl.publish(store, repo))
    assert set(done) == {"certs/root.crt", "certs/gica1.crt", "crl/gica1.crl", "crl/root.crl"}
    # The files are where the certificates' URLs point.
    leaf = x509.load_der_x509_certificate(next(store.iter_certificates(ca="gica1")).certificate)
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value[0].full_name[0].value
    aia = [d.access_location.value for d in leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
           if d.access_method == x509.AuthorityInformationAccessOID.CA_ISSUERS][0]
    assert (repo / cdp.removeprefix(REPO + "/")).exists() and (repo / aia.removeprefix(REPO + "/")).exists()
    assert x509.load_der_x509_certificate((repo / "certs/gica1.crt").read_bytes()) == ica.certificate

    target = repo / "crl/gica1.crl"
    stop = threading.Event()
    seen: list[int] = []
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                data = target.read_bytes()
                seen.append(len(x509.load_der_x509_crl(data)))
            except Exception as exc:  # noqa: BLE001 - any failure to read whole is the defect
                bad.append(repr(exc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for rec in list(store.iter_certificates(ca="gica1", status="valid"))[:15]:
            revoke(store, rec.serial, "superseded")
            crl.generate_crl(store, ica.record, ica.signer, sw["dir"] / "crls")
            crl.publish(store, repo, ["gica1"])
    finally:
        stop.set()
        t.join(timeout=30)
    assert not bad and len(seen) > 10 and max(seen) > 25  # the reader saw files being replaced
    assert len(x509.load_der_x509_crl(target.read_bytes())) == 40
    assert not list(repo.rglob("*.tmp"))


def test_publish_refuses_a_tampered_crl(sw) -> None:
    g = crl.generate_crl(sw["store"], sw["ica"].record, sw["ica"].signer, sw["dir"] / "crls")
    Path(g.record.path).write_bytes(g.der[:-1] + bytes([g.der[-1] ^ 1]))
    with pytest.raises(CrlError, match="SHA-256 differs"):
        crl.publish(sw["store"], sw["dir"] / "repo", ["gica1"])


# ---- the store ------------------------------------------------------------------------------------

_V1_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE keys(reference TEXT PRIMARY KEY, backend TEXT NOT NULL, key_spec TEXT NOT NULL, label TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE cas(name TEXT PRIMARY KEY, kind TEXT NOT NULL, level INTEGER, parent TEXT REFERENCES cas(name),
    certificate BLOB NOT NULL, key_reference TEXT NOT NULL, repository_url TEXT NOT NULL, ocsp_url TEXT NOT NULL,
    created_at TEXT NOT NULL, signature TEXT NOT NULL);
CREATE TABLE certificates(serial TEXT PRIMARY KEY CHECK (length(serial) = 40), ca TEXT NOT NULL REFERENCES cas(name),
    profile TEXT NOT NULL, subject TEXT NOT NULL, not_before TEXT NOT NULL, not_after TEXT NOT NULL,
    certificate BLOB NOT NULL, fingerprint TEXT NOT NULL UNIQUE, issued_at TEXT NOT NULL, revoked_at TEXT,
    reason INTEGER, invalidity_date TEXT, CHECK ((revoked_at IS NULL) = (reason IS NULL)));
CREATE INDEX certificates_by_ca ON certificates(ca, serial);
CREATE INDEX certificates_revoked ON certificates(ca, serial) WHERE revoked_at IS NOT NULL;
CREATE TABLE audit(seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL, event TEXT NOT NULL,
    subject TEXT NOT NULL, details TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
"""


def test_a_version_1_store_is_upgraded_in_place(tmp_path: Path, sw) -> None:
    path = tmp_path / "v1.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(_V1_SCHEMA)
    ica = sw["ica"].record
    db.execute("INSERT INTO cas VALUES (?,?,?,?,?,?,?,?,?,?)",
               (ica.name, ica.kind, ica.level, None, ica.certificate, ica.key_reference, REPO, OCSP,
                T0.isoformat(), ica.signature))
    db.execute("INSERT INTO certificates VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
               ("%040x" % 0x1234, ica.name, "tsa", "CN=x", T0.isoformat(), T0.isoformat(), b"x", "f",
                T0.isoformat(), T0.isoformat(), 1, None))
    db.commit()
    db.close()
    store = SqliteStore(str(path))
    assert store.get_ca("gica1").crl_shards == 1 and store.get_certificate(0x1234).shard == 0
    with store.revoked_snapshot("gica1") as snap:
        assert [r[0] for r in snap.rows] == ["%040x" % 0x1234]
    g = crl.generate_crl(store, store.get_ca("gica1"), sw["ica"].signer, tmp_path / "crls")
    assert [e.serial_number for e in x509.load_der_x509_crl(g.der)] == [0x1234]
    store.close()
    assert SqliteStore(str(path)).get_ca("gica1").name == "gica1"  # a second open finds version 2


# ---- the encoder against an independent parser ------------------------------------------------------

_times = st.datetimes(min_value=utc(1950, 1, 1).replace(tzinfo=None), max_value=utc(2099, 12, 31).replace(tzinfo=None))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 2**159 - 1), _times, st.sampled_from([None, 0, 1, 2, 3, 4, 5, 6, 8, 9, 10]),
                          st.none() | _times), max_size=20))
def test_encoded_entries_read_back_with_asn1crypto(entries) -> None:
    rows = [(f"{s:040x}", t.replace(microsecond=0).isoformat() + "+00:00", r,
             None if i is None else i.replace(microsecond=0).isoformat() + "+00:00") for s, t, r, i in entries]
    buf = bytearray()
    assert crl.encode_revoked(rows, buf) == len(rows)
    from iranpki import der

    parsed = asn1_crl.RevokedCertificates.load(der.sequence(bytes(buf)))
    assert len(parsed) == len(rows)
    names = {0: "unspecified", 1: "key_compromise", 2: "ca_compromise", 3: "affiliation_changed", 4: "superseded",
             5: "cessation_of_operation", 6: "certificate_hold", 8: "remove_from_crl", 9: "privilege_withdrawn",
             10: "aa_compromise"}
    for item, (serial, moment, reason, invalidity) in zip(parsed, entries):
        assert item["user_certificate"].native == serial
        assert item["revocation_date"].native.replace(tzinfo=None) == moment.replace(microsecond=0)
        got_reason = item.crl_reason_value.native if item.crl_reason_value is not None else None
        assert got_reason == (None if not reason else names[reason])
        got_inv = item.invalidity_date_value
        assert (None if got_inv is None else got_inv.native.replace(tzinfo=None)) == (
            None if invalidity is None else invalidity.replace(microsecond=0))
    assert parsed.dump(force=True) == der.sequence(bytes(buf))  # DER: re-encoding changes nothing


# ---- the command ----------------------------------------------------------------------------------

def test_crl_commands_as_an_operator_uses_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from click.testing import CliRunner

    from iranpki_cli.main import cli

    runner = CliRunner()
    home = str(tmp_path / "ws")
    monkeypatch.setenv("IRANPKI_KEY_PASSPHRASE", "crl test passphrase")

    def call(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args))
        assert result.exit_code == code, result.output
        return result.output

    call("init", home, "--repository-url", "http://repo.test.ir/pki")
    call("key", "generate", "--home", home, "--label", "root", "--algorithm", "p384")
    call("key", "generate", "--home", home, "--label", "l1", "--algorithm", "p256")
    call("ca", "create-root", "--home", home, "--name", "root", "--key", "root", "--subject", "C=IR,O=T,CN=T Root")
    call("ca", "create-intermediate", "--home", home, "--parent", "root", "--level", "1", "--purpose", "time-stamping",
         "--name", "l1",
         "--key", "l1", "--subject", "C=IR,O=T,CN=T L1", "--json")
    call("ca", "set-crl-shards", "--home", home, "l1", "2")  # before it issues: allowed
    pub = tmp_path / "k.pub"
    from cryptography.hazmat.primitives.serialization import PublicFormat

    pub.write_bytes(new_key().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    serials = []
    for i in range(6):
        info = json.loads(call("cert", "issue", "--home", home, "--ca", "l1", "--profile", "tsa", "--public-key", str(pub),
                               "--subject", f"C=IR,O=T,CN=TSA {i}", "--json"))
        serials.append(info["serial"])
    call("cert", "revoke", "--home", home, serials[0], "--reason", "keyCompromise")
    out = call("crl", "generate", "--home", home, "--ca", "l1", "--delta", code=1)
    assert "no complete CRL yet" in out and "generate a complete CRL first" in out and "Traceback" not in out
    out = call("crl", "generate", "--home", home, "--ca", "l1", "--shard", "7", code=1)
    assert "shard 7 does not exist; CA 'l1' has shards 0 to 1" in out
    made = json.loads(call("crl", "generate", "--home", home, "--ca", "l1", "--json"))
    assert [m["shard"] for m in made] == [0, 1] and sum(m["entries"] for m in made) == 1
    call("cert", "revoke", "--home", home, serials[1], "--reason", "superseded")
    delta = json.loads(call("crl", "generate", "--home", home, "--ca", "l1", "--delta", "--shard", "1", "--json"))
    assert delta[0]["kind"] == "delta" and delta[0]["base_number"] == made[1]["number"]
    call("crl", "generate", "--home", home, "--ca", "root")
    listed = json.loads(call("crl", "list", "--home", home, "--json"))
    assert len(listed) == 4 and "CRLs" in call("crl", "list", "--home", home)
    # --due: the revocation after the complete CRLs makes them due (every shard); then not.
    assert "--due decides on the complete CRLs" in call("crl", "generate", "--home", home, "--ca", "l1", "--due",
                                                         "--delta", code=2)
    due = call("crl", "generate", "--home", home, "--ca", "l1", "--due")
    assert f"are due: certificate {serials[1]} changed status after its newest complete CRL" in " ".join(due.split())
    assert "not due" in call("crl", "generate", "--home", home, "--ca", "l1", "--due")
    assert json.loads(call("crl", "generate", "--home", home, "--ca", "l1", "--due", "--json")) == []
    repo = tmp_path / "www"
    published = json.loads(call("crl", "publish", "--home", home, "--to", str(repo), "--json"))
    paths = {p["path"] for p in published}
    assert {"certs/root.crt", "certs/l1.crt", "crl/root.crl", "crl/l1-0.crl", "crl/l1-1.crl",
            "crl/l1-1-delta.crl"} == paths
    # Each certificate's distribution point resolves, below the repository URL's path, to its shard's CRL.
    for serial in serials:
        cert_pem = call("cert", "export", "--home", home, serial)
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        url = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value[0].full_name[0].value
        shard_crl = x509.load_der_x509_crl((repo / url.removeprefix("http://repo.test.ir/pki/")).read_bytes())
        idp = shard_crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
        assert idp.full_name[0].value == url
    assert "Example" in call("crl", "--help")
    # The number of shards grows, never shrinks.
    assert json.loads(call("ca", "set-crl-shards", "--home", home, "l1", "3", "--json"))["crl_shards"] == 3
    assert "can grow but not shrink" in call("ca", "set-crl-shards", "--home", home, "l1", "2", code=1)


def _certtool_says(chain: Path, cert: Path, *crls: Path) -> str:
    """GnuTLS certtool's verdict on ``cert`` with ``crls`` loaded (it follows no freshestCRL)."""
    args = ["certtool", "--verify", "--load-ca-certificate", str(chain), "--infile", str(cert)]
    for c in crls:
        args += ["--load-crl", str(c)]
    out = run(args)
    return "revoked" if "revoked" in out.stdout.lower() else "trusted" if out.returncode == 0 else out.stdout


def test_relying_parties_without_deltas_and_complete_crls_when_due(sw) -> None:
    """Issue 13 item 3: certtool reads no delta CRLs, so a revocation on a delta CRL alone reads as
    trusted there. `crl generate --due` (complete_crl_due) puts every status change on a complete
    CRL at the next run, and renews one past half its validity; it does nothing otherwise."""
    store, ica, clock = sw["store"], sw["ica"], sw["clock"]
    certs = _issue(ica, 2)
    out = sw["dir"] / "crls"
    assert crl.complete_crl_due(store, ica.record, clock.now()) == "it has no complete CRL yet"
    base = crl.generate_crl(store, ica.record, ica.signer, out, clock=clock)
    assert crl.complete_crl_due(store, ica.record, clock.now()) is None
    revoke(store, certs[0].serial, "keyCompromise")
    assert crl.complete_crl_due(store, ica.record, clock.now()) == \
        f"certificate {certs[0].serial:x} changed status after its newest complete CRL"
    delta = crl.generate_crl(store, ica.record, ica.signer, out, delta=True, clock=clock)
    chain = _pem(sw["dir"] / "chain.pem", sw["root"].certificate, ica.certificate)
    cert = sw["dir"] / "revoked.pem"
    cert.write_bytes(x509.load_der_x509_certificate(certs[0].certificate).public_bytes(Encoding.PEM))
    full_pem, delta_pem = _crl_pem(sw["dir"] / "base.pem", base.der), _crl_pem(sw["dir"] / "delta.pem", delta.der)
    # What a relying party without delta support sees: it fetches the certificate's CRL
    # distribution point (the complete CRL) and never follows freshestCRL, so the complete CRL's
    # state, not the delta's. (Given the delta file by hand, certtool reads it as one more CRL.)
    assert _certtool_says(chain, cert, full_pem) == "trusted"
    assert _certtool_says(chain, cert, full_pem, delta_pem) == "revoked"
    again = crl.generate_crl(store, ica.record, ica.signer, out, clock=clock)
    assert _certtool_says(chain, cert, _crl_pem(sw["dir"] / "again.pem", again.der)) == "revoked"
    assert crl.complete_crl_due(store, ica.record, clock.now()) is None
    # Past half its validity (the level's crl_next_update_hours, 7 days at level 1) it is due again.
    clock.moment += timedelta(hours=84, seconds=1)
    assert "past half its validity" in (crl.complete_crl_due(store, ica.record, clock.now()) or "")

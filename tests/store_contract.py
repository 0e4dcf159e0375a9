"""The contract every store backend passes: what the CA core, the CRL and OCSP services and the
audit rely on of :class:`iranpki.store.Store`, one group of tests per concern of the interface.

A backend's test module subclasses :class:`StoreContract` and gives the ``make_store`` fixture
(a callable ``(clock) -> Store`` opening one new, empty store); ``tests/test_store_contract.py``
does so for each entry of ``iranpki.store.BACKENDS`` and fails when a backend has none. The
tests know nothing of any backend's tables or SQL: only the interface and its records.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from iranpki.clock import FixedClock
from iranpki.errors import DuplicateError, NotFoundError, StoreError
from iranpki.store import (
    AuditEvent,
    CaRecord,
    CertificateRecord,
    CrlRecord,
    KeyRecord,
    OcspResponseRecord,
    Reason,
    Store,
)

T0 = datetime(2026, 3, 21, 8, 0, tzinfo=timezone.utc)  # 1 Farvardin 1405


def ca_record(name: str = "gica1", *, parent: str | None = "root", shards: int = 1) -> CaRecord:
    return CaRecord(name=name, kind="intermediate" if parent else "root", level=1 if parent else None,
                    parent=parent, certificate=b"ca-certificate-" + name.encode(),
                    key_reference=f"pkcs11:token=GICA;object={name}", repository_url="http://repo.test.ir",
                    ocsp_url="http://ocsp.test.ir/" + name, created_at=T0, signature="sha256", crl_shards=shards)


def cert_record(serial: int, ca: str = "gica1", *, at: datetime = T0, profile: str = "personal-signature",
                shard: int = 0) -> CertificateRecord:
    body = b"certificate-%d" % serial
    return CertificateRecord(serial=serial, ca=ca, profile=profile, subject=f"CN=Holder {serial}", not_before=at,
                             not_after=at + timedelta(days=365), certificate=body,
                             fingerprint=hashlib.sha256(body).hexdigest(), issued_at=at, shard=shard)


def event(name: str, subject: str) -> AuditEvent:
    return AuditEvent(name, subject, "contract", {"why": "the store contract"})


class StoreContract:
    """Subclass it and give ``make_store``; each test gets one new store with two CAs."""

    @pytest.fixture
    def clock(self) -> FixedClock:
        return FixedClock(T0)

    @pytest.fixture
    def store(self, make_store: Callable[[FixedClock], Store], clock: FixedClock) -> Store:
        s = make_store(clock)
        s.add_ca(ca_record("root", parent=None), None, event("ca.created", "root"))
        s.add_ca(ca_record("gica1"), None, event("ca.created", "gica1"))
        yield s
        s.close()

    # ---- key records ------------------------------------------------------------------------------

    def test_key_records_are_kept_once(self, store: Store) -> None:
        rec = KeyRecord("pkcs11:token=GICA;object=k1", "pkcs11", "ec-P-256", "k1", T0)
        store.add_key(rec, event("key.generated", rec.reference))
        assert store.list_key_records() == [rec]
        with pytest.raises(DuplicateError):
            store.add_key(rec, event("key.generated", rec.reference))
        assert store.list_key_records() == [rec]

    # ---- CAs and certificates ---------------------------------------------------------------------

    def test_cas_read_back_as_written(self, store: Store) -> None:
        assert store.get_ca("gica1") == ca_record("gica1")
        assert [c.name for c in store.list_cas()] == ["gica1", "root"]  # created together: by name
        with pytest.raises(NotFoundError, match="'nope'.*gica1, root"):
            store.get_ca("nope")
        with pytest.raises(DuplicateError, match="gica1"):
            store.add_ca(ca_record("gica1"), None, event("ca.created", "gica1"))

    def test_certificates_read_back_and_serials_are_unique(self, store: Store) -> None:
        rec = cert_record(0x1234)
        store.add_certificate(rec, event("cert.issued", "1234"))
        got = store.get_certificate(0x1234)
        assert got == rec and got.status == "valid" and got.status_seq is None
        with pytest.raises(DuplicateError, match="1234"):
            store.add_certificate(cert_record(0x1234, at=T0 + timedelta(1)), event("cert.issued", "1234"))
        with pytest.raises(NotFoundError, match="abcd"):
            store.get_certificate(0xABCD)
        # A serial 20 octets long (RFC 5280 4.1.2.2's limit) keeps every bit.
        big = (1 << 159) + 12345
        store.add_certificate(cert_record(big), event("cert.issued", "big"))
        assert store.get_certificate(big).serial == big

    def test_a_batch_is_recorded_whole_or_not_at_all(self, store: Store) -> None:
        store.add_certificate(cert_record(7), event("cert.issued", "7"))
        before = len(store.audit_log())
        with pytest.raises(DuplicateError):
            store.add_certificates([(cert_record(5), event("cert.issued", "5")), (cert_record(7), event("cert.issued", "7"))])
        with pytest.raises(NotFoundError):
            store.get_certificate(5)
        assert len(store.audit_log()) == before
        store.add_certificates([(cert_record(5), event("cert.issued", "5")), (cert_record(6), event("cert.issued", "6"))])
        assert store.get_certificate(6).serial == 6

    def test_listing_is_in_issuance_order_filtered_and_paged(self, store: Store) -> None:
        serials = [0x90, 0x10, 0x50, 0x30, 0x70]  # issued in this order, one a minute
        for i, serial in enumerate(serials):
            store.add_certificate(cert_record(serial, at=T0 + timedelta(minutes=i),
                                              profile="ssl-server" if i % 2 else "personal-signature"),
                                  event("cert.issued", str(serial)))
        store.add_ca(ca_record("gica2"), None, event("ca.created", "gica2"))
        store.add_certificate(cert_record(0x01, "gica2", at=T0 + timedelta(hours=1)), event("cert.issued", "1"))
        assert [c.serial for c in store.iter_certificates(ca="gica1")] == serials
        assert [c.serial for c in store.iter_certificates()] == [*serials, 0x01]
        assert [c.serial for c in store.iter_certificates(profile="ssl-server")] == [0x10, 0x30]
        first = list(store.iter_certificates(ca="gica1", limit=2))
        assert [c.serial for c in first] == serials[:2]
        assert [c.serial for c in store.iter_certificates(ca="gica1", after=first[-1])] == serials[2:]
        store.set_revocation(0x50, T0 + timedelta(days=1), Reason.keyCompromise, None, event("cert.revoked", "50"))
        assert [c.serial for c in store.iter_certificates(status="revoked")] == [0x50]
        assert 0x50 not in [c.serial for c in store.iter_certificates(status="valid")]
        with pytest.raises(StoreError, match="'expired'"):
            list(store.iter_certificates(status="expired"))

    # ---- revocation and CRL numbers ---------------------------------------------------------------

    def test_each_status_change_gets_the_next_sequence(self, store: Store) -> None:
        for serial in (1, 2, 3):
            store.add_certificate(cert_record(serial), event("cert.issued", str(serial)))
        assert store.status_seq() == 0
        assert store.certificate_status("gica1", 2) == (None, cert_record(2).not_after.isoformat(), None, 0)
        r = store.set_revocation(2, T0 + timedelta(days=2), Reason.certificateHold, None, event("cert.revoked", "2"))
        assert (r.status, r.reason, r.status_seq) == ("on hold", Reason.certificateHold, 1)
        store.set_revocation(3, T0 + timedelta(days=3), Reason.keyCompromise, T0 + timedelta(days=1),
                             event("cert.revoked", "3"))
        released = store.set_revocation(2, None, None, None, event("cert.released", "2"),
                                        expect_reason=Reason.certificateHold)
        assert released.status == "valid" and released.status_seq == 3 and store.status_seq() == 3
        assert store.status_changes(0) == [(2, "gica1", 3), (3, "gica1", 2)]
        assert store.status_changes(2) == [(3, "gica1", 2)]
        revoked_at, _, reason, seq = store.certificate_status("gica1", 3)
        assert datetime.fromisoformat(revoked_at) == T0 + timedelta(days=3) and reason == 1 and seq == 2
        assert store.certificate_status("root", 3) is None  # another CA's serial is unknown to it

    def test_a_guarded_change_refuses_a_state_that_moved_on(self, store: Store) -> None:
        store.add_certificate(cert_record(9), event("cert.issued", "9"))
        store.set_revocation(9, T0, Reason.keyCompromise, None, event("cert.revoked", "9"))
        before = store.audit_log()
        with pytest.raises(StoreError, match="changed while"):
            store.set_revocation(9, T0, Reason.superseded, None, event("cert.revoked", "9"), expect_reason=None)
        assert store.get_certificate(9).reason is Reason.keyCompromise and store.audit_log() == before
        with pytest.raises(NotFoundError):
            store.set_revocation(10, T0, Reason.keyCompromise, None, event("cert.revoked", "10"))

    def test_crl_numbers_only_grow_and_are_never_reused(self, store: Store) -> None:
        numbers = []
        errors: list[BaseException] = []

        def take() -> None:
            try:
                for _ in range(10):
                    numbers.append(store.next_crl_number("gica1"))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=take) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and sorted(numbers) == list(range(1, 41))
        assert store.next_crl_number("root") == 1  # each CA counts on its own
        with pytest.raises(NotFoundError):
            store.next_crl_number("nope")

    def test_the_crl_register(self, store: Store) -> None:
        full = CrlRecord("gica1", 1, "full", None, None, T0, T0 + timedelta(days=1), 0, 0, "ab" * 32, "crls/gica1-1.crl")
        delta = CrlRecord("gica1", 2, "delta", None, 1, T0, T0 + timedelta(hours=6), 0, 0, "cd" * 32, "crls/gica1-2.crl")
        store.add_crl(full, event("crl.generated", "gica1"))
        store.add_crl(delta, event("crl.generated", "gica1"))
        assert store.latest_crl("gica1") == full and store.latest_crl("gica1", "delta") == delta
        assert store.latest_crl("root") is None and store.list_crls("gica1") == [full, delta]
        with pytest.raises(DuplicateError, match="CRL number 1"):
            store.add_crl(full, event("crl.generated", "gica1"))

    def test_a_revoked_snapshot_streams_in_serial_order_and_deltas_show_releases(self, store: Store) -> None:
        for serial in (0x30, 0x10, 0x20, 0x40):
            store.add_certificate(cert_record(serial), event("cert.issued", str(serial)))
        store.set_revocation(0x30, T0 + timedelta(days=1), Reason.keyCompromise, None, event("cert.revoked", "30"))
        store.set_revocation(0x10, T0 + timedelta(days=1), Reason.certificateHold, None, event("cert.revoked", "10"))
        with store.revoked_snapshot("gica1", crl_number=True) as snap:
            rows = list(snap.rows)
            assert snap.status_seq == 2 and snap.crl_number == 1
        assert [(r[0], r[2]) for r in rows] == [(f"{0x10:040x}", 6), (f"{0x30:040x}", 1)]
        assert datetime.fromisoformat(rows[1][1]) == T0 + timedelta(days=1)
        store.set_revocation(0x10, None, None, None, event("cert.released", "10"))
        store.set_revocation(0x40, T0 + timedelta(days=2), Reason.superseded, None, event("cert.revoked", "40"))
        with store.revoked_snapshot("gica1", since_seq=2) as snap:
            delta = list(snap.rows)
            assert snap.status_seq == 4 and snap.crl_number is None
        # Released from hold: listed once more with removeFromCRL (8), at the time of release.
        assert [(r[0], r[2]) for r in delta] == [(f"{0x10:040x}", 8), (f"{0x40:040x}", 4)]
        assert datetime.fromisoformat(delta[0][1]) == T0
        assert store.next_crl_number("gica1") == 2  # the snapshot's number was taken

    def test_shards_grow_only_and_never_after_issuance(self, store: Store) -> None:
        store.add_ca(ca_record("gica3", shards=2), None, event("ca.created", "gica3"))
        assert store.set_crl_shards("gica3", 4, event("ca.sharded", "gica3")).crl_shards == 4
        with pytest.raises(StoreError, match="grow but not shrink"):
            store.set_crl_shards("gica3", 2, event("ca.sharded", "gica3"))
        store.add_certificate(cert_record(1), event("cert.issued", "1"))
        with pytest.raises(StoreError, match="single CRL"):
            store.set_crl_shards("gica1", 2, event("ca.sharded", "gica1"))
        store.add_certificate(cert_record(2, "gica3", shard=3), event("cert.issued", "2"))
        store.set_revocation(2, T0, Reason.keyCompromise, None, event("cert.revoked", "2"))
        with store.revoked_snapshot("gica3", shard=3) as snap:
            assert [r[0] for r in snap.rows] == [f"{2:040x}"]
        with store.revoked_snapshot("gica3", shard=0) as snap:
            assert list(snap.rows) == []

    # ---- OCSP responses ---------------------------------------------------------------------------

    def test_a_response_for_an_older_status_never_replaces_a_newer_one(self, store: Store) -> None:
        store.add_certificate(cert_record(1), event("cert.issued", "1"))
        store.add_certificate(cert_record(2), event("cert.issued", "2"))
        due = T0 + timedelta(hours=12)
        assert store.ocsp_due("gica1", "sha1", due) == [1, 2]
        new = OcspResponseRecord("gica1", 1, "sha1", b"good", T0, T0 + timedelta(days=1), 0)
        store.put_ocsp_responses([new])
        assert store.ocsp_due("gica1", "sha1", due) == [2] and store.ocsp_due("gica1", "sha256", due) == [1, 2]
        assert store.ocsp_due("gica1", "sha1", due, after=1) == [2]
        store.set_revocation(1, T0, Reason.keyCompromise, None, event("cert.revoked", "1"))
        stale = store.get_ocsp_response("gica1", 1, "sha1")
        assert stale is not None and stale.status_seq == 0 and stale.current_status_seq == 1
        assert store.ocsp_due("gica1", "sha1", due) == [1, 2]  # its status changed after signing
        store.put_ocsp_responses([OcspResponseRecord("gica1", 1, "sha1", b"revoked", T0, T0 + timedelta(days=1), 1)])
        store.put_ocsp_responses([OcspResponseRecord("gica1", 1, "sha1", b"late good", T0, T0 + timedelta(days=1), 0)])
        assert store.get_ocsp_response("gica1", 1, "sha1").response == b"revoked"
        assert store.get_ocsp_response("gica1", 2, "sha1") is None
        assert store.ocsp_due("gica1", "sha1", T0 + timedelta(days=2)) == [1, 2]  # next update passed

    # ---- counters and service state ---------------------------------------------------------------

    def test_counters_hand_out_each_number_once(self, store: Store) -> None:
        assert store.next_numbers("tsa:gica1", 100) == 1
        assert store.next_numbers("tsa:gica1") == 101
        assert store.next_numbers("tsa:other", 5) == 1
        with pytest.raises(StoreError):
            store.next_numbers("tsa:gica1", 0)

    def test_meta_holds_service_state_only(self, store: Store) -> None:
        assert store.get_meta("service.ocsp") is None
        store.put_meta("service.ocsp", "alive")
        store.put_meta("service.ocsp", "alive again")
        assert store.get_meta("service.ocsp") == "alive again"
        with pytest.raises(StoreError, match="service"):
            store.put_meta("schema_version", "99")

    # ---- audit ------------------------------------------------------------------------------------

    def test_every_change_is_audited_in_order(self, store: Store, clock: FixedClock) -> None:
        clock.moment = T0 + timedelta(hours=1)
        store.add_certificate(cert_record(1), event("cert.issued", "1"))
        store.set_revocation(1, T0, Reason.keyCompromise, None, AuditEvent("cert.revoked", "1", "officer",
                                                                              {"reason": "keyCompromise", "n": 2}))
        log = store.audit_log()
        assert [e.event for _, _, e in log] == ["ca.created", "ca.created", "cert.issued", "cert.revoked"]
        assert [seq for seq, _, _ in log] == sorted({seq for seq, _, _ in log})
        seq, at, last = log[-1]
        assert at == T0 + timedelta(hours=1)
        assert last == AuditEvent("cert.revoked", "1", "officer", {"reason": "keyCompromise", "n": 2})
        assert store.audit_log(limit=2) == log[-2:]

    # ---- registration: offices, officers, requests -------------------------------------------------

    def test_offices_officers_and_requests_with_their_history(self, store: Store) -> None:
        from iranpki.errors import ConcurrentChangeError
        from iranpki.store import EvidenceRecord, OfficeRecord, OfficerRecord, RequestEvent, RequestRecord

        office = OfficeRecord("THR-01", "دفتر تهران", "Tehran", ("gica1",), "active", T0)
        store.add_office(office, event("ra.office.created", "THR-01"))
        with pytest.raises(DuplicateError):
            store.add_office(office, event("ra.office.created", "THR-01"))
        assert store.get_office("THR-01") == office and store.list_offices() == [office]
        assert store.set_office_status("THR-01", "suspended", event("ra.office.status", "THR-01")).status == "suspended"
        officer = OfficerRecord("p1", "THR-01", "Officer", ("proofing",), "active", T0, b"cert-der", "ab" * 32)
        store.add_officer(officer, event("ra.officer.enrolled", "p1"))
        assert store.officer_by_fingerprint("ab" * 32) == officer and store.list_officers("THR-01") == [officer]
        with pytest.raises(NotFoundError):
            store.add_officer(OfficerRecord("p2", "NOPE", "x", ("proofing",), "active", T0), event("x", "p2"))
        request = RequestRecord("r1", "cd" * 32, "issue", "personal-signature", 1, "gica1", "submitted",
                                {"national_code": "0499370899"}, "CN=Ali", "desk-token", T0, T0, T0 + timedelta(30))
        store.add_request(request, RequestEvent("r1", T0, "applicant:r1", None, None, "submitted"),
                          event("ra.request.submitted", "r1"))
        assert store.get_request("r1") == request and store.request_by_code("cd" * 32) == request
        assert store.request_by_code("ef" * 32) is None
        scan = b"\x89PNG scan"
        doc = EvidenceRecord("r1", hashlib.sha256(scan).hexdigest(), "national-id-card", "123", "image/png", len(scan),
                             "p1", T0)
        moved = store.update_request("r1", 1, {"state": "proofed", "proofing": {"officer": "p1"}},
                                     RequestEvent("r1", T0, "officer:p1", "THR-01", "submitted", "proofed"),
                                     event("ra.request.proofed", "r1"), evidence=((doc, scan),))
        assert (moved.state, moved.version, moved.proofing) == ("proofed", 2, {"officer": "p1"})
        assert store.list_evidence("r1") == [doc] and store.evidence_data(doc.sha256) == scan
        before = store.audit_log()
        other = EvidenceRecord("r1", hashlib.sha256(b"other").hexdigest(), "passport", "9", "image/png", 5, "p1", T0)
        with pytest.raises(ConcurrentChangeError, match="version 2, not 1"):
            store.update_request("r1", 1, {"state": "rejected"},
                                 RequestEvent("r1", T0, "officer:p1", "THR-01", "submitted", "rejected"),
                                 event("ra.request.rejected", "r1"), evidence=((other, b"other"),))
        assert store.get_request("r1").state == "proofed" and store.audit_log() == before
        assert store.list_evidence("r1") == [doc]  # the losing change kept nothing
        assert [e.to_state for e in store.request_events("r1")] == ["submitted", "proofed"]
        assert [r.id for r in store.list_requests(states=("proofed",))] == ["r1"]
        assert store.list_requests(office="THR-01") == []
        # By the applicant's national code (a subscriber's certificates, in the applicant portal).
        assert [r.id for r in store.list_requests(second_factor="0499370899")] == ["r1"]
        assert store.list_requests(second_factor="0012345678") == []

    def test_evidence_past_its_retention_is_purged_and_none_before(self, store: Store) -> None:
        from iranpki.store import EvidenceRecord, RequestEvent, RequestRecord

        for rid, level, state in (("old1", 1, "issued"), ("old3", 3, "issued"), ("open", 1, "proofed")):
            store.add_request(RequestRecord(rid, rid * 8, "issue", "personal-signature", level, "gica1", state,
                                            {"national_code": "0499370899"}, "CN=Ali", "desk-token", T0, T0,
                                            T0 + timedelta(30)),
                              RequestEvent(rid, T0, f"applicant:{rid}", None, None, state), event("x", rid))
            scan = b"\x89PNG " + rid.encode()
            store.update_request(rid, 1, {"proofing": {"officer": "p1"}},
                                 RequestEvent(rid, T0, "officer:p1", None, state, state), event("y", rid),
                                 evidence=((EvidenceRecord(rid, hashlib.sha256(scan).hexdigest(), "national-id-card",
                                                           "1", "image/png", len(scan), "p1", T0), scan),))
        removed = store.purge_evidence({1: T0 + timedelta(days=1), 3: T0}, ("proofed",), event("ra.evidence.purged", "e"))
        assert removed == 1 and store.list_evidence("old1") == []  # level 1, closed, past its cutoff
        assert len(store.list_evidence("old3")) == 1 and len(store.list_evidence("open")) == 1
        with pytest.raises(NotFoundError):
            store.evidence_data(hashlib.sha256(b"\x89PNG old1").hexdigest())
        assert store.evidence_data(hashlib.sha256(b"\x89PNG old3").hexdigest()) == b"\x89PNG old3"
        assert store.audit_log()[-1][2].details["documents"] == 1

    def test_key_recovery_keys_are_registered_once_newest_first(self, store: Store) -> None:
        from iranpki.store import RecoveryKeyRecord

        old = RecoveryKeyRecord("krk-2025", "pkcs11:token=GICA;object=krk-2025;type=private", b"0\x01A", T0)
        new = RecoveryKeyRecord("krk-2026", "pkcs11:token=GICA;object=krk-2026;type=private", b"0\x01B",
                                T0 + timedelta(days=1))
        assert store.recovery_keys() == []
        for record in (old, new):
            store.add_recovery_key(record, AuditEvent("escrow.key.created", record.name, "operator", {}))
        assert store.recovery_keys() == [new, old]
        with pytest.raises(DuplicateError):
            store.add_recovery_key(RecoveryKeyRecord("krk-2025", "pkcs11:token=X;object=y", b"0\x01C", T0),
                                   AuditEvent("escrow.key.created", "krk-2025", "operator", {}))
        with pytest.raises(DuplicateError):  # the same public key under another name
            store.add_recovery_key(RecoveryKeyRecord("krk-copy", "pkcs11:token=X;object=y", b"0\x01B", T0),
                                   AuditEvent("escrow.key.created", "krk-copy", "operator", {}))
        assert [e.subject for _, _, e in store.audit_log()[-2:]] == ["krk-2025", "krk-2026"]

    def test_the_publication_outbox_takes_what_is_recorded_while_publishing_is_on(self, store: Store) -> None:
        import dataclasses

        from iranpki.store import CrlRecord

        store.add_certificate(dataclasses.replace(cert_record(1), publish=True), event("cert.issued", "1"))
        assert not store.publishing() and store.outbox_pending() == []  # off: nothing is put
        put = store.set_publishing(True, event("publish.on", "ldap"))
        assert store.publishing() and put == 2  # the two CA certificates (their CRL files are not here)
        store.add_certificates([(dataclasses.replace(cert_record(2), publish=True), event("cert.issued", "2")),
                                (cert_record(3), event("cert.issued", "3"))])  # 3: its subscriber did not agree
        for number in (1, 2):  # the second complete CRL supersedes the first, not yet published
            store.add_crl(CrlRecord("gica1", number, "full", None, None, T0, T0 + timedelta(days=1), 0, 0, "ab" * 32,
                                    f"crls/gica1-{number}.crl"), event("crl.issued", f"gica1#{number}"),
                          der=b"crl-%d" % number)
        store.add_crl(CrlRecord("root", 1, "full", None, None, T0, T0 + timedelta(days=1), 0, 0, "ab" * 32,
                                "crls/root-1.crl"), event("crl.issued", "root#1"), der=b"arl-1")
        pending = store.outbox_pending()
        assert [(i.kind, i.ca, i.serial, i.payload) for i in pending] == [
            ("ca", "root", None, b"ca-certificate-root"), ("ca", "gica1", None, b"ca-certificate-gica1"),
            ("user", "gica1", 2, b"certificate-2"), ("crl", "gica1", None, b"crl-2"), ("arl", "root", None, b"arl-1")]
        store.outbox_failed(pending[0].seq, "the directory is down")
        assert (store.outbox_pending()[0].attempts, store.outbox_pending()[0].last_error) == (1, "the directory is down")
        for item in pending[:3]:
            store.outbox_done(item.seq)
        assert [i.kind for i in store.outbox_pending()] == ["crl", "arl"]
        assert store.outbox_counts() == {"pending": 2, "published": 4}  # the superseded CRL counts as done
        store.set_publishing(False, event("publish.off", "ldap"))
        store.add_certificate(dataclasses.replace(cert_record(4), publish=True), event("cert.issued", "4"))
        assert [i.kind for i in store.outbox_pending()] == ["crl", "arl"]

    def test_attempts_are_counted_in_their_window(self, store: Store) -> None:
        for minute in range(3):
            store.count_attempts("lookup:10.0.0.1", T0 - timedelta(hours=1), add_at=T0 + timedelta(minutes=minute))
        assert store.count_attempts("lookup:10.0.0.1", T0) == 3
        assert store.count_attempts("lookup:10.0.0.1", T0 + timedelta(minutes=1, seconds=30)) == 1
        assert store.count_attempts("lookup:10.0.0.2", T0) == 0

    def test_a_certificate_and_its_request_are_recorded_together(self, store: Store) -> None:
        from iranpki.errors import ConcurrentChangeError
        from iranpki.store import RequestEvent, RequestRecord, RequestUpdate

        request = RequestRecord("r2", "ef" * 32, "issue", "personal-signature", 1, "gica1", "approved",
                                {"national_code": "0499370899"}, "CN=Ali", "desk-token", T0, T0, T0 + timedelta(30))
        store.add_request(request, RequestEvent("r2", T0, "applicant:r2", None, None, "approved"),
                          event("ra.request.submitted", "r2"))

        def update(version: int, serial: int) -> RequestUpdate:
            return RequestUpdate("r2", version, {"state": "issued", "serial": serial},
                                 RequestEvent("r2", T0, "worker:ca", None, "approved", "issued"),
                                 event("ra.request.issued", "r2"))

        with pytest.raises(ConcurrentChangeError):
            store.add_certificate(cert_record(0x77), event("cert.issued", "77"), request_update=update(5, 0x77))
        with pytest.raises(NotFoundError):
            store.get_certificate(0x77)  # the certificate went with the refused change
        store.add_certificate(cert_record(0x78), event("cert.issued", "78"), request_update=update(1, 0x78))
        assert store.get_request("r2").serial == 0x78 and store.get_certificate(0x78).serial == 0x78

"""Revocation records follow RFC 5280 5.3.1, and each change is in the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest

from iranpki.ca import revoke
from iranpki.clock import FixedClock
from iranpki.errors import NotFoundError, RevocationError
from iranpki.store import Reason

from .conftest import new_key, utc
from .samples import request


@pytest.fixture
def issued(software_ca):
    return software_ca.issue("tsa", request("tsa", new_key().public_key())).record


def test_revoke_records_reason_time_and_audit(software_ca, issued) -> None:
    clock = FixedClock(utc(2026, 11, 22, 10, 0, 0))
    store = software_ca.store
    rec = revoke(store, issued.serial, "keyCompromise", invalidity_date=utc(2026, 11, 20), clock=clock)
    assert rec.status == "revoked" and rec.reason is Reason.keyCompromise
    assert rec.revoked_at == utc(2026, 11, 22, 10, 0, 0) and rec.invalidity_date == utc(2026, 11, 20)
    seq, _, last = store.audit_log(limit=1)[0]
    assert last.event == "cert.revoked" and last.subject == f"{issued.serial:x}"
    assert last.details["reason"] == "keyCompromise"


def test_a_revocation_is_final(software_ca, issued) -> None:
    revoke(software_ca.store, issued.serial, Reason.superseded)
    with pytest.raises(RevocationError, match="final") as err:
        revoke(software_ca.store, issued.serial, Reason.keyCompromise)
    assert err.value.reason == "superseded" and err.value.revoked_at is not None


def test_hold_then_final_keeps_the_hold_date(software_ca, issued) -> None:
    t0 = utc(2026, 11, 1, 8, 0, 0)
    revoke(software_ca.store, issued.serial, "certificateHold", clock=FixedClock(t0))
    with pytest.raises(RevocationError, match="already on hold"):
        revoke(software_ca.store, issued.serial, "certificateHold")
    rec = revoke(software_ca.store, issued.serial, "keyCompromise", clock=FixedClock(t0 + timedelta(days=3)))
    assert rec.reason is Reason.keyCompromise and rec.revoked_at == t0


def test_hold_released_with_remove_from_crl(software_ca, issued) -> None:
    revoke(software_ca.store, issued.serial, "certificateHold")
    rec = revoke(software_ca.store, issued.serial, "removeFromCRL")
    assert rec.status == "valid" and rec.reason is None and rec.revoked_at is None
    assert software_ca.store.audit_log(limit=1)[0][2].event == "cert.released"
    # Once released it can be revoked again like any valid certificate.
    assert revoke(software_ca.store, issued.serial, "superseded").status == "revoked"


def test_remove_from_crl_on_a_valid_certificate_is_refused(software_ca, issued) -> None:
    with pytest.raises(RevocationError, match="only releases a certificate on hold"):
        revoke(software_ca.store, issued.serial, "removeFromCRL")


def test_bad_inputs(software_ca, issued) -> None:
    with pytest.raises(RevocationError, match="unknown revocation reason 'stolen'; must be one of"):
        revoke(software_ca.store, issued.serial, "stolen")
    with pytest.raises(RevocationError, match="in the future"):
        revoke(software_ca.store, issued.serial, "keyCompromise", invalidity_date=utc(2999, 1, 1))
    with pytest.raises(NotFoundError, match="no certificate with serial number 1234"):
        revoke(software_ca.store, 0x1234, "keyCompromise")
    with pytest.raises(RevocationError, match="issued by CA 'gica1', not 'root'"):
        revoke(software_ca.store, issued.serial, "keyCompromise", ca="root")


def test_reason_names_parse_loosely() -> None:
    assert Reason.parse("key-compromise") is Reason.keyCompromise
    assert Reason.parse("CACompromise") is Reason.cACompromise
    assert Reason.parse("remove_from_crl") is Reason.removeFromCRL

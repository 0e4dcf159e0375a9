"""The narrow DER writer, checked against an independent parser (asn1crypto)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from asn1crypto import core
from hypothesis import given
from hypothesis import strategies as st

from iranpki import der


@given(st.integers(min_value=-(2**200), max_value=2**200))
def test_integer(value: int) -> None:
    encoded = der.integer(value)
    assert core.Integer.load(encoded).native == value
    assert encoded == core.Integer(value).dump()


@given(st.binary(max_size=70000))
def test_octet_string_lengths(data: bytes) -> None:
    encoded = der.octet_string(data)
    assert core.OctetString.load(encoded).native == data
    assert encoded == core.OctetString(data).dump()


@given(st.lists(st.integers(min_value=0, max_value=2**64), min_size=1, max_size=8), st.integers(0, 2),
       st.integers(0, 39))
def test_oid(rest: list[int], first: int, second: int) -> None:
    dotted = ".".join(map(str, [first, second, *rest]))
    assert der.oid(dotted) == core.ObjectIdentifier(dotted).dump()


@given(st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(timezone.utc)))
def test_time_follows_rfc5280(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    encoded = der.time(moment)
    if moment.year < 2050:
        assert encoded[0] == 0x17 and core.UTCTime.load(encoded).native == moment
    else:
        assert encoded[0] == 0x18 and core.GeneralizedTime.load(encoded).native == moment


def test_time_boundary() -> None:
    end_2049 = datetime(2049, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    assert der.time(end_2049)[0] == 0x17
    assert der.time(end_2049 + timedelta(seconds=1))[0] == 0x18

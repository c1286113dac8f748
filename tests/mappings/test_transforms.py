"""The value transforms of the mapping language."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from mappings import transforms
from mappings.exceptions import ValueMappingError

BEIJING = transforms.parse_timezone("+08:00")


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-07-23 12:11:00", "2026-07-23T12:11:00+08:00"),
    ("2026年4月17日", "2026-04-17T00:00:00+08:00"),
    ("2026年10月24日 9时5分", "2026-10-24T09:05:00+08:00"),
    ("2026/9/1", "2026-09-01T00:00:00+08:00"),
    ("2026-09-01", "2026-09-01T00:00:00+08:00"),
    ("20260901", "2026-09-01T00:00:00+08:00"),
    ("2026-05-06T10:00:00Z", "2026-05-06T10:00:00+00:00"),
    ("2026-05-06T10:00:00+09:00", "2026-05-06T10:00:00+09:00"),
    (" 2026-07-23 12:11:00.5 ", "2026-07-23T12:11:00.500000+08:00"),
])
def test_dates_in_the_source_forms_become_rfc3339(text: str, expected: str) -> None:
    """Each date form of the samples becomes RFC 3339, Beijing time where none is written."""
    assert transforms.to_datetime(text, BEIJING) == expected


@pytest.mark.parametrize("text", ["2026年2月30日", "next tuesday", "2026-13-01", "", "2026/9"])
def test_impossible_or_unknown_dates_are_errors(text: str) -> None:
    """A date that does not exist or is not a date is a value error, not a guess."""
    with pytest.raises(ValueMappingError):
        transforms.to_datetime(text, BEIJING)


def test_times_are_formatted_back_in_the_source_zone() -> None:
    """Formatting uses the mapping's zone and supports unpadded month and day."""
    assert transforms.format_time("2026-04-16T16:00:00Z", "%Y年%-m月%-d日", BEIJING) == "2026年4月17日"
    assert transforms.format_time("2026-07-23T12:11:00+08:00", "%Y-%m-%d %H:%M:%S", BEIJING) == "2026-07-23 12:11:00"
    assert transforms.to_date("2026/9/1", BEIJING) == "2026-09-01"


@pytest.mark.parametrize(("text", "scale", "places", "expected"), [
    ("45.7000", "10000", None, "457000"),
    ("0.0350", "10000", None, "350"),
    ("12.3456", "10000", None, "123456"),
    ("0.00001", "10000", None, "0.1"),
    ("１，２００．５", None, None, "1200.5"),
    ("457000", "0.0001", 4, "45.7000"),
    ("1E+3", None, None, "1000"),
])
def test_decimals_are_exact(text: str, scale: str | None, places: int | None, expected: str) -> None:
    """万元 to 元 and back are exact decimal arithmetic, never floats."""
    assert transforms.to_decimal(text, Decimal(scale) if scale else None, places) == expected


@pytest.mark.parametrize("text", ["abc", "NaN", "Infinity", "1.2.3"])
def test_non_numbers_are_errors(text: str) -> None:
    """Only finite decimals are amounts."""
    with pytest.raises(ValueMappingError):
        transforms.to_decimal(text)


def test_full_width_forms_become_half_width() -> None:
    """Full-width letters, digits, punctuation and the ideographic space become ASCII."""
    assert transforms.halfwidth("９１３７０２０２ＥＪＢ；　（Ａ）") == "91370202EJB; (A)"
    assert transforms.halfwidth("济南（历下）") == "济南(历下)"


@pytest.mark.parametrize(("code", "op"), [("i", "upsert"), ("U", "upsert"), ("I", "upsert"), ("d", "delete"),
                                          ("D", "delete"), (" u ", "upsert"), ("update", "upsert")])
def test_operation_codes(code: str, op: str) -> None:
    """i/u/I/U become upsert, d/D delete."""
    assert transforms.to_operation(code) == op


def test_unknown_operation_and_bool_values_are_errors() -> None:
    """Anything else is refused with the accepted forms named."""
    with pytest.raises(ValueMappingError, match="i, u or d"):
        transforms.to_operation("x")
    with pytest.raises(ValueMappingError):
        transforms.to_bool("maybe")
    assert transforms.to_bool("是") is True
    assert transforms.to_bool("否") is False
    assert transforms.to_number("0.05") == 0.05
    assert transforms.to_int("２０２６") == 2026


def test_time_zone_offsets() -> None:
    """Offsets are written ±HH:MM (or ±HHMM)."""
    assert transforms.parse_timezone("-0330").utcoffset(None) == -dt.timedelta(hours=3, minutes=30)
    with pytest.raises(ValueMappingError):
        transforms.parse_timezone("CST")

"""Semantic checks beyond JSON Schema: identifiers by their check characters,
GB/T 2260 region codes, time order, event times not in the future, distinct inspectors.

Which fields carry which identifier is read off the schemas themselves (a ``$ref`` to the
shared ``uscc``, ``region_code``, ``item_check_code`` or ``subject`` definition, or a
property named ``id_no``), so the schema files stay the one source of truth.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from stdnum import numdb
from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError

from schemas.issues import Issue, issue, pointer
from schemas.registry import COMMON_ID, RecordTypeInfo

__all__ = ["Clock", "IdentifierPolicy", "RecordChecks", "region_status", "ric_problem", "system_clock"]

IdentifierPolicy = Literal["strict", "lenient"]
Clock = Callable[[], dt.datetime]
_ANY = "[]"
_FUTURE_SLACK = dt.timedelta(days=1)
_USCC_FORM = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")
_CHECKED_DEFS = {"uscc": "uscc", "region_code": "region", "item_check_code": "item_check", "subject": "subject",
                 "person": "subject"}  # a subject and a person: their certificate number by its type


def system_clock() -> dt.datetime:
    """The current time, timezone-aware."""
    return dt.datetime.now(dt.UTC)


@lru_cache(maxsize=65536)
def _uscc_ok(code: str) -> bool:
    # A code already in the canonical form needs only stdnum's check-character computation;
    # anything else goes through stdnum's whole validation.
    if _USCC_FORM.fullmatch(code):
        return bool(uscc.calc_check_digit(code[:-1]) == code[-1])
    return bool(uscc.is_valid(code))


@lru_cache(maxsize=65536)
def ric_problem(number: str, today: dt.date | None = None) -> str | None:
    """What is wrong with a resident identity card number as it was issued (``None``: nothing):
    ``id_checksum`` (form or check digit), ``id_birth_date`` (not a real date, or after ``today``)
    or ``id_region`` (a birthplace code that never existed).

    A number carries the code its county had when the number was issued, which may be later than
    the birth (a person born in 1972 in what became 历下区, 370102, in 1983, holds 370102…1972…), so
    the code is not held against the birth year: it only has to exist or have existed. python-stdnum
    gives the check digit, the birth date and the table of codes."""
    if len(number) != 18 or not number[:17].isdigit() or not number.isascii():
        return "id_checksum"
    if ric.calc_check_digit(number) != number[-1].upper():
        return "id_checksum"
    try:
        born = ric.get_birth_date(number)
    except ValidationError:
        return "id_birth_date"
    if born > (today or dt.datetime.now(dt.UTC).date()) or born.year < 1850:
        return "id_birth_date"
    if region_status(number[:6]) is None:
        return "id_region"
    return None


@lru_cache(maxsize=8192)
def region_status(code: str) -> tuple[str, bool] | None:
    """``(name, in force)`` of a GB/T 2260 code from python-stdnum's table, ``None`` if unknown."""
    if len(code) != 6 or not code.isdigit():
        return None
    info = {k: v for _, props in numdb.get("cn/loc").info(code) for k, v in props.items()}
    county = info.get("county")
    if not county:
        return None
    names = county.split(",")
    current = [n for n in names if not n.startswith("[") or n.split("]", 1)[0].endswith("-")]
    name = (current or names)[-1].split("]", 1)[-1]
    return name, bool(current)


@dataclass(frozen=True, slots=True)
class _FieldCheck:
    kind: str
    parts: tuple[str, ...]


def _derive(node: Mapping[str, Any], parts: tuple[str, ...], common: Mapping[str, Any]) -> Iterator[_FieldCheck]:
    ref = node.get("$ref", "")
    if ref.startswith(COMMON_ID):
        name = ref.rsplit("/", 1)[-1]
        if name in _CHECKED_DEFS:
            yield _FieldCheck(_CHECKED_DEFS[name], parts)
            if name != "subject":  # a subject holds a person (its representative) to check too
                return
        node = common["$defs"][name]
    if node.get("type") == "array":
        yield from _derive(node["items"], (*parts, _ANY), common)
    for prop, sub in node.get("properties", {}).items():
        if prop == "id_no":
            yield _FieldCheck("ric", (*parts, prop))
        else:
            yield from _derive(sub, (*parts, prop), common)


def _plain(value: Any, parts: tuple[str, ...]) -> Any:
    """The value at a path without wildcards, or ``None``."""
    for part in parts:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _values(value: Any, parts: tuple[str, ...], at: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    for i, part in enumerate(parts):
        if part == _ANY:
            if isinstance(value, list):
                for n, item in enumerate(value):
                    yield from _values(item, parts[i + 1 :], (*at, n))
            return
        if not isinstance(value, dict) or part not in value:
            return
        value = value[part]
        at = (*at, part)
    yield at, value


def _parse_time(value: Any) -> dt.datetime | dt.date | None:
    if not isinstance(value, str):
        return None
    try:
        if "T" in value:
            return dt.datetime.fromisoformat(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


@lru_cache(maxsize=4)
def _settled_before(today: dt.date) -> str:
    return today.isoformat()


def _before(later: dt.datetime | dt.date, earlier: dt.datetime | dt.date) -> bool:
    if isinstance(later, dt.datetime) and isinstance(earlier, dt.datetime):
        if (later.tzinfo is None) != (earlier.tzinfo is None):
            return False
        return later < earlier
    as_date = [v.date() if isinstance(v, dt.datetime) else v for v in (later, earlier)]
    return as_date[0] < as_date[1]


class RecordChecks:
    """The semantic checks of one record type, prepared once and run on each record."""

    def __init__(self, info: RecordTypeInfo, schema: Mapping[str, Any], common: Mapping[str, Any]) -> None:
        data = schema["properties"]["data"]
        checks = (_FieldCheck("region", ("region_code",)), *_derive(data, ("data",), common))
        self._fields = tuple((c.kind, c.parts, _ANY not in c.parts) for c in checks)
        self._event_times = (("occurred_at",), *(("data", f) for f in info.event_times))
        self._time_order = tuple((("data", a), ("data", b)) for a, b in info.time_order)

    def run(self, record: Mapping[str, Any], *, identifiers: IdentifierPolicy, now: dt.datetime,
            extra_regions: frozenset[str] = frozenset()) -> tuple[list[Issue], list[Issue]]:
        """Return ``(errors, warnings)`` of ``record``; structural problems are the schema's to report."""
        errors: list[Issue] = []
        warnings: list[Issue] = []
        checksum_sink = errors if identifiers == "strict" else warnings
        for kind, parts, plain in self._fields:
            if plain:
                value = _plain(record, parts)
                if value is not None and (kind == "subject" or isinstance(value, str)):
                    self._field(kind, parts, value, errors=errors, warnings=warnings, checksum_sink=checksum_sink,
                                extra_regions=extra_regions)
                continue
            for at, value in _values(record, parts):
                if isinstance(value, str) or kind == "subject":
                    self._field(kind, at, value, errors=errors, warnings=warnings,
                                checksum_sink=checksum_sink, extra_regions=extra_regions)
        self._times(record, now, errors, warnings)
        inspectors = record.get("data", {}).get("inspectors") if isinstance(record.get("data"), dict) else None
        if isinstance(inspectors, list):
            seen: set[str] = set()
            for n, person in enumerate(inspectors):
                cert = person.get("cert_no") if isinstance(person, dict) else None
                if not isinstance(cert, str):
                    continue
                if cert in seen:
                    where = pointer(("data", "inspectors", n, "cert_no"))
                    errors.append(issue(where, "duplicate_inspector", value=cert))
                seen.add(cert)
        return errors, warnings

    @staticmethod
    def _field(kind: str, at: tuple[Any, ...], value: Any, *, errors: list[Issue], warnings: list[Issue],
               checksum_sink: list[Issue], extra_regions: frozenset[str]) -> None:
        if kind in ("uscc", "item_check"):
            code = value[:18]
            if len(code) == 18 and not _uscc_ok(code):
                checksum_sink.append(issue(pointer(at), "uscc_checksum", value=code))
        elif kind == "ric":
            if problem := ric_problem(value):
                checksum_sink.append(issue(pointer(at), problem))
        elif kind == "region":
            status = region_status(value)
            if status is None and value not in extra_regions:
                errors.append(issue(pointer(at), "region_unknown", value=value))
            elif status is not None and not status[1]:
                warnings.append(issue(pointer(at), "region_historical", value=value, name=status[0]))
        elif kind == "subject" and isinstance(value, dict):
            cert_type, cert_no = value.get("cert_type"), value.get("cert_no")
            if isinstance(cert_no, str):
                if cert_type == "001" and not _uscc_ok(cert_no):
                    checksum_sink.append(issue(pointer((*at, "cert_no")), "uscc_checksum", value=cert_no))
                elif cert_type == "111" and (problem := ric_problem(cert_no)):
                    checksum_sink.append(issue(pointer((*at, "cert_no")), problem))

    def _times(self, record: Mapping[str, Any], now: dt.datetime, errors: list[Issue],
               warnings: list[Issue]) -> None:
        settled = _settled_before(now.astimezone(dt.UTC).date())
        limit = None
        for parts in self._event_times:
            value = _plain(record, parts)
            # a local date before today (UTC) cannot lie a day ahead, whatever its offset
            if not isinstance(value, str) or value[:10] < settled:
                continue
            moment = _parse_time(value)
            limit = limit or now + _FUTURE_SLACK
            if isinstance(moment, dt.datetime) and moment.tzinfo is not None and moment > limit:
                errors.append(issue(pointer(parts), "time_future"))
        for first, second in self._time_order:
            a, b = _plain(record, first), _plain(record, second)
            if not isinstance(a, str) or not isinstance(b, str):
                continue
            if (len(a) == len(b) and a[10:11] != "T") or (a[-6:] == b[-6:] and len(a) == len(b) == 25):
                inverted = b < a  # same form and offset: the text orders like the time
            else:
                earlier, later = _parse_time(a), _parse_time(b)
                inverted = earlier is not None and later is not None and _before(later, earlier)
            if inverted:
                # Source systems often stamp a date with a placeholder time (09:00): an inversion
                # within the same calendar day is reported, but only a day-level one is an error.
                same_day = "T" in a and "T" in b and a[:10] == b[:10] and a[-6:] == b[-6:]
                (warnings if same_day else errors).append(issue(pointer(second), "time_order", earlier=first[-1]))

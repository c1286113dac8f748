"""Pure value transforms of the mapping language: dates, exact decimals, full-width text,
operation codes and booleans. Each takes a value and returns a value or raises
``ValueMappingError`` with a message a person can act on."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from mappings.exceptions import ValueMappingError

__all__ = [
    "format_time",
    "from_epoch",
    "halfwidth",
    "parse_timezone",
    "to_bool",
    "to_date",
    "to_datetime",
    "to_decimal",
    "to_int",
    "to_number",
    "to_operation",
]

_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_DATE_TIME = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[ T]+(\d{1,2})[:：时](\d{1,2})(?:分|[:：分](\d{1,2}(?:\.\d{1,6})?)秒?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2}))?")
_OPERATIONS = {"i": "upsert", "u": "upsert", "insert": "upsert", "update": "upsert", "upsert": "upsert",
               "d": "delete", "delete": "delete"}
_TRUE = {"true", "1", "y", "yes", "是", "t"}
_FALSE = {"false", "0", "n", "no", "否", "f"}


def halfwidth(text: str) -> str:
    """Full-width ASCII forms and the ideographic space turned into their half-width forms."""
    return text if text.isascii() else text.translate(_FULLWIDTH)


def parse_timezone(text: str) -> dt.tzinfo:
    """A fixed offset such as ``+08:00``."""
    match = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text)
    if not match:
        raise ValueMappingError(f"时区格式不正确 / bad time zone offset {text!r} (expected e.g. +08:00)")
    sign = 1 if match[1] == "+" else -1
    return dt.timezone(sign * dt.timedelta(hours=int(match[2]), minutes=int(match[3])))


def _moment(value: Any, tz: dt.tzinfo) -> tuple[dt.datetime, bool]:
    """Parse ``value`` into an aware datetime and say whether it carried a time of day."""
    return _parse_moment(str(value).strip(), tz)


@lru_cache(maxsize=4096)  # a batch repeats its dates: the same day, often the same minute
def _parse_moment(text: str, tz: dt.tzinfo) -> tuple[dt.datetime, bool]:
    match = _DATE_TIME.fullmatch(text) or _COMPACT_DATE.fullmatch(text)
    if not match:
        raise ValueMappingError(f"无法识别的日期时间 / unrecognised date or time {text!r}")
    groups = match.groups()
    year, month, day = int(groups[0]), int(groups[1]), int(groups[2])
    hour, minute = int(groups[3] or 0), int(groups[4] or 0)
    second = Decimal(groups[5] or 0)
    offset = groups[6] if len(groups) > 6 else None
    zone = tz if not offset else (dt.UTC if offset == "Z" else parse_timezone(offset))
    try:
        moment = dt.datetime(year, month, day, hour, minute, int(second),
                             int((second % 1) * 1_000_000), tzinfo=zone)
    except ValueError as exc:
        raise ValueMappingError(f"日期不存在 / no such date {text!r}: {exc}") from exc
    return moment, groups[3] is not None


def to_datetime(value: Any, tz: dt.tzinfo) -> str:
    """An RFC 3339 time with offset; a time without an offset is taken in ``tz``."""
    return _rfc3339(str(value).strip(), tz)


@lru_cache(maxsize=4096)
def _rfc3339(text: str, tz: dt.tzinfo) -> str:
    return _parse_moment(text, tz)[0].isoformat()


_EPOCHS = {"s": (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), 1), "ms": (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), 1000)}
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)  # day 60 is the 1900-02-29 Excel believes in; serials after it are right


def from_epoch(value: Any, epoch: str, tz: dt.tzinfo, *, date: bool = False) -> str:
    """A time given as a count since an epoch: Unix seconds (``s``) or milliseconds (``ms``), shown
    in ``tz``; or an Excel serial day number (``excel``, 45356 = 2024-03-05), taken in ``tz``."""
    text = halfwidth(str(value)).strip()
    try:
        number = Decimal(text)
    except InvalidOperation as exc:
        raise ValueMappingError(f"不是时间戳 / not a number of {_EPOCH_NAMES[epoch]}: {text!r}") from exc
    if not number.is_finite():
        raise ValueMappingError(f"不是时间戳 / not a number of {_EPOCH_NAMES[epoch]}: {text!r}")
    try:
        if epoch == "excel":
            if number < 61:
                raise ValueMappingError(f"Excel 日期序号须大于 60 / an Excel date serial before 1900-03-01: {text!r}")
            moment = (_EXCEL_EPOCH + dt.timedelta(days=float(number))).replace(tzinfo=tz)
        else:
            start, per_second = _EPOCHS[epoch]
            moment = (start + dt.timedelta(seconds=float(number / per_second))).astimezone(tz)
    except (OverflowError, ValueError) as exc:
        raise ValueMappingError(f"时间戳超出范围 / {text!r} {_EPOCH_NAMES[epoch]} is out of range") from exc
    return moment.date().isoformat() if date else moment.isoformat()


_EPOCH_NAMES = {"s": "seconds since 1970", "ms": "milliseconds since 1970", "excel": "Excel serial days"}


def to_date(value: Any, tz: dt.tzinfo) -> str:
    """A ``YYYY-MM-DD`` date from any of the accepted date forms."""
    moment, _ = _moment(value, tz)
    return moment.date().isoformat()


def format_time(value: Any, pattern: str, tz: dt.tzinfo) -> str:
    """Format a date or time in ``tz`` with strftime codes; ``%-m``, ``%-d``, ``%-H`` drop the padding."""
    moment, _ = _moment(value, tz)
    moment = moment.astimezone(tz)
    unpadded = {"%-m": str(moment.month), "%-d": str(moment.day), "%-H": str(moment.hour)}
    for code, text in unpadded.items():
        pattern = pattern.replace(code, text)
    return moment.strftime(pattern)


def to_decimal(value: Any, scale: Decimal | None = None, places: int | None = None) -> str:
    """An exact decimal string (never a float), optionally scaled (万元 → 元) and quantised."""
    text = halfwidth(str(value)).strip().replace(",", "")
    try:
        number = Decimal(text)
    except InvalidOperation as exc:
        raise ValueMappingError(f"不是有效的数值 / not a decimal number {text!r}") from exc
    if not number.is_finite():
        raise ValueMappingError(f"不是有效的数值 / not a finite number {text!r}")
    if scale is not None:
        number *= scale
    if places is not None:
        number = number.quantize(Decimal(1).scaleb(-places))
    else:
        number = number.normalize()
        if number == number.to_integral_value():
            number = number.quantize(Decimal(1))
    return format(number, "f")


def to_int(value: Any) -> int:
    """An integer from a number or digits."""
    try:
        return int(halfwidth(str(value)).strip())
    except ValueError as exc:
        raise ValueMappingError(f"不是整数 / not an integer {value!r}") from exc


def to_number(value: Any) -> int | float:
    """A JSON number (an integer where exact) for ratios and scores, not for money."""
    number = Decimal(to_decimal(value))
    return int(number) if number == number.to_integral_value() else float(number)


def to_bool(value: Any) -> bool:
    """A boolean from 是/否, true/false, 1/0, Y/N."""
    if isinstance(value, bool):
        return value
    key = str(value).strip().lower()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise ValueMappingError(f"不是是/否值 / not a yes/no value {value!r}")


def to_operation(value: Any) -> str:
    """``upsert`` or ``delete`` from the source systems' i/u/d (any case) operation codes."""
    key = str(value).strip().lower()
    if key not in _OPERATIONS:
        raise ValueMappingError(f"未知的操作类型 / unknown operation code {value!r} (expected i, u or d)")
    return _OPERATIONS[key]

"""Working days of mainland China, in the province's time (Asia/Shanghai), and the time limits
the sharing procedure counts with them.

The official holidays and 调休 make-up workdays come from the ``chinese_calendar`` package; the
configuration may add holidays and workdays (a year the package does not know yet, a local
holiday). A date the calendar does not know is never guessed: counting across it raises
``CalendarUnknownError``, and the configuration is refused if its longest limit would cross it.

A limit is ``"5wd"`` (working days), ``"3d"`` (calendar days), or ``"24h"``, ``"30m"``, ``"90s"``
(hours, minutes, seconds: exact). Counted from a moment, N working days end with the Nth working
day after that moment's day (the day itself is not counted, whatever the hour); N calendar days
with the Nth day after it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from policy.exceptions import CalendarUnknownError

__all__ = ["SHANGHAI", "Limit", "WorkingCalendar", "parse_limit"]

SHANGHAI = ZoneInfo("Asia/Shanghai")
_LIMIT = re.compile(r"^\s*(\d{1,6})\s*(wd|d|h|m|s)\s*$")
_UNITS = {"wd": "working days", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_EXACT = {"h": 3600, "m": 60, "s": 1}


class Limit(NamedTuple):
    """A time limit: ``amount`` of ``unit`` (``wd`` working days, ``d`` days, ``h`` hours)."""

    amount: int
    unit: str

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    @property
    def described(self) -> str:
        """``5 working days``, in words."""
        return f"{self.amount} {_UNITS[self.unit]}"


def parse_limit(text: str) -> Limit:
    """A limit from ``5wd``, ``3d``, ``24h``, ``30m`` or ``90s``; ``ValueError`` naming the forms otherwise."""
    match = _LIMIT.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"时限格式不符 / not a time limit: {text!r} (5wd: working days, 3d: days, 24h, 30m, 90s: "
                         "hours, minutes, seconds)")
    return Limit(int(match[1]), match[2])


@dataclass(frozen=True)
class WorkingCalendar:
    """Which days are working days: the package's official calendar, with the configuration's
    ``holidays`` and ``workdays`` over it; a year known to neither is unknown."""

    holidays: frozenset[dt.date] = field(default_factory=frozenset)
    workdays: frozenset[dt.date] = field(default_factory=frozenset)

    @classmethod
    def of(cls, years: Mapping[str, Mapping[str, Iterable[dt.date]]] | None = None) -> WorkingCalendar:
        """The calendar with the configuration's ``[calendar.YEAR]`` tables (holidays, workdays)."""
        holidays: set[dt.date] = set()
        workdays: set[dt.date] = set()
        for year, days in (years or {}).items():
            for name, into in (("holidays", holidays), ("workdays", workdays)):
                for day in days.get(name, ()):
                    if str(day.year) != str(year):
                        raise ValueError(f"{day} 不属于 {year} 年 / {day} listed under calendar.{year}")
                    into.add(day)
        both = sorted(holidays & workdays)
        if both:
            raise ValueError(f"既是假日又是工作日 / listed both as holidays and as workdays: {both}")
        return cls(frozenset(holidays), frozenset(workdays))

    @property
    def extra_years(self) -> frozenset[int]:
        """The years the configuration adds to the package's."""
        return frozenset(d.year for d in self.holidays | self.workdays)

    @property
    def known_until(self) -> dt.date:
        """The last day the calendar knows without a gap from today's years."""
        year = _package_years().stop - 1
        while year + 1 in self.extra_years:
            year += 1
        return dt.date(year, 12, 31)

    def is_workday(self, day: dt.date) -> bool:
        """Whether ``day`` is a working day (``CalendarUnknownError`` if the calendar does not know it)."""
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        if day.year in _package_years():
            return _official_workday(day)
        if day.year in self.extra_years:
            return day.weekday() < 5
        raise CalendarUnknownError(
            f"工作日历不含 {day.year} 年 / the working-day calendar does not know {day.year} yet ({day}): add "
            f"[calendar.{day.year}] with that year's holidays and make-up workdays to the configuration")

    def deadline(self, start: dt.datetime, limit: Limit) -> dt.datetime:
        """When ``limit`` counted from ``start`` runs out (the last moment still in time), in UTC."""
        if start.tzinfo is None:
            raise ValueError("a deadline is counted from an aware time")
        if limit.unit in _EXACT:
            return (start + dt.timedelta(seconds=limit.amount * _EXACT[limit.unit])).astimezone(dt.UTC)
        day = start.astimezone(SHANGHAI).date()
        if limit.unit == "d":
            day += dt.timedelta(days=limit.amount)
        else:
            left = limit.amount
            while left:
                day += dt.timedelta(days=1)
                if self.is_workday(day):
                    left -= 1
        end = dt.datetime.combine(day, dt.time(23, 59, 59, 999000), SHANGHAI)
        return end.astimezone(dt.UTC)

    def before(self, deadline: dt.datetime, limit: Limit) -> dt.datetime:
        """The moment ``limit`` before ``deadline`` (a reminder's time): for working days, the end of
        the working day that many working days before the deadline's day."""
        if limit.unit in _EXACT:
            return deadline - dt.timedelta(seconds=limit.amount * _EXACT[limit.unit])
        day = deadline.astimezone(SHANGHAI).date()
        if limit.unit == "d":
            day -= dt.timedelta(days=limit.amount)
        else:
            left = limit.amount
            while left:
                day -= dt.timedelta(days=1)
                if self.is_workday(day):
                    left -= 1
        return dt.datetime.combine(day, dt.time(23, 59, 59, 999000), SHANGHAI).astimezone(dt.UTC)


@lru_cache(maxsize=1)
def _package_years() -> range:
    """The years the calendar package knows (it is imported when a limit is first counted: its
    tables cost a command that counts none a twentieth of its start-up)."""
    import chinese_calendar  # noqa: PLC0415

    return range(min(chinese_calendar.holidays).year, max(chinese_calendar.holidays).year + 1)


@lru_cache(maxsize=4096)
def _official_workday(day: dt.date) -> bool:
    import chinese_calendar  # noqa: PLC0415

    return bool(chinese_calendar.is_workday(day))

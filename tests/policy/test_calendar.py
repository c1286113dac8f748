"""Working days of mainland China over the 2025–2026 holidays and make-up workdays, the limits
counted with them, and a calendar that runs out refused rather than guessed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.exceptions import ConfigError
from policy.calendar import Limit, WorkingCalendar, parse_limit
from policy.exceptions import CalendarUnknownError

CST = dt.timezone(dt.timedelta(hours=8))
CALENDAR = WorkingCalendar()


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=CST)


def local(moment: dt.datetime) -> str:
    return moment.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize(("day", "workday"), [
    (dt.date(2025, 9, 28), True),    # Sunday, made up for the National Day holiday
    (dt.date(2025, 10, 1), False),
    (dt.date(2025, 10, 8), False),
    (dt.date(2025, 10, 11), True),   # Saturday, made up
    (dt.date(2026, 2, 14), True),    # Saturday before the Spring Festival, made up
    (dt.date(2026, 9, 25), False),   # Mid-Autumn 2026, a Friday
    (dt.date(2026, 10, 10), True),   # Saturday, made up
    (dt.date(2026, 10, 11), False),
])
def test_official_holidays_and_make_up_workdays(day: dt.date, workday: bool) -> None:
    assert CALENDAR.is_workday(day) is workday


@pytest.mark.parametrize(("start", "limit", "due"), [
    # filed on the Friday before the 2025 National Day holiday: Sunday 28th is a working day
    (at(2025, 9, 26, 16, 30), "2wd", "2025-09-29 23:59:59"),
    (at(2025, 9, 26, 16, 30), "5wd", "2025-10-10 23:59:59"),
    (at(2025, 9, 26, 16, 30), "10wd", "2025-10-16 23:59:59"),  # Saturday 11th counts
    # the hour of filing does not matter: the day itself is never counted
    (at(2025, 9, 26, 0, 0), "2wd", "2025-09-29 23:59:59"),
    # 2026: the Mid-Autumn Friday, then the weekend and 1–7 October
    (at(2026, 9, 24, 10, 0), "5wd", "2026-10-09 23:59:59"),
    (at(2026, 9, 30, 18, 0), "1wd", "2026-10-08 23:59:59"),
    # calendar days and hours count every day
    (at(2025, 9, 30, 12, 0), "3d", "2025-10-03 23:59:59"),
    (at(2025, 9, 30, 12, 0), "24h", "2025-10-01 12:00:00"),
])
def test_deadlines(start: dt.datetime, limit: str, due: str) -> None:
    assert local(CALENDAR.deadline(start, parse_limit(limit))) == due


def test_a_deadline_is_in_utc_and_a_naive_start_is_refused() -> None:
    due = CALENDAR.deadline(at(2026, 9, 24, 10, 0), Limit(5, "wd"))
    assert due.tzinfo is dt.UTC and due.isoformat() == "2026-10-09T15:59:59.999000+00:00"
    with pytest.raises(ValueError, match="aware"):
        CALENDAR.deadline(dt.datetime(2026, 9, 24), Limit(5, "wd"))


def test_a_reminder_is_the_given_working_days_before_the_deadline() -> None:
    due = CALENDAR.deadline(at(2026, 9, 29, 9, 0), Limit(3, "wd"))  # 30 Sep, 8 and 9 October
    assert local(CALENDAR.before(due, Limit(1, "wd"))) == "2026-10-08 23:59:59"
    assert local(CALENDAR.before(due, Limit(2, "wd"))) == "2026-09-30 23:59:59"


def test_a_year_the_calendar_does_not_know_is_refused_not_guessed() -> None:
    with pytest.raises(CalendarUnknownError, match=r"2099.*\[calendar\.2099\]"):
        CALENDAR.is_workday(dt.date(2099, 1, 5))
    with pytest.raises(CalendarUnknownError):
        CALENDAR.deadline(at(2026, 12, 24, 10, 0), Limit(10, "wd"))
    given = WorkingCalendar.of({"2027": {"holidays": [dt.date(2027, 1, 1)], "workdays": [dt.date(2027, 1, 2)]}})
    assert given.known_until == dt.date(2027, 12, 31)
    assert given.is_workday(dt.date(2027, 1, 2)) and not given.is_workday(dt.date(2027, 1, 1))
    assert given.is_workday(dt.date(2027, 1, 4)) and not given.is_workday(dt.date(2027, 1, 9))


def test_extra_holidays_go_over_the_official_calendar() -> None:
    local_holiday = WorkingCalendar.of({"2026": {"holidays": [dt.date(2026, 9, 28)]}})
    assert not local_holiday.is_workday(dt.date(2026, 9, 28))
    with pytest.raises(ValueError, match=r"listed under calendar\.2026"):
        WorkingCalendar.of({"2026": {"holidays": [dt.date(2027, 1, 1)]}})
    with pytest.raises(ValueError, match="both"):
        WorkingCalendar.of({"2026": {"holidays": [dt.date(2026, 9, 28)], "workdays": [dt.date(2026, 9, 28)]}})


@pytest.mark.parametrize("text", ["5", "5 wd", "five wd", "5w", "-1d", ""])
def test_a_limit_that_cannot_be_read_is_refused(text: str) -> None:
    if text == "5 wd":
        assert parse_limit(text) == Limit(5, "wd")
        return
    with pytest.raises(ValueError, match="5wd: working days"):
        parse_limit(text)


MINIMAL = """
[[connector]]
id = "amr"
name = "amr"
department_code = "11370000FE1KM2U90Y"
region_code = "370000"
"""


def test_a_configuration_whose_limits_run_past_the_calendar_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "supex.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    late_december = dt.datetime(2026, 12, 24, 10, 0, tzinfo=CST)
    with pytest.raises(ConfigError, match=r"procedure.catalogue_answer = \"10wd\".*calendar.2027"):
        load_config(path, need_secrets=False, now=late_december)
    path.write_text(MINIMAL + '\n[calendar.2027]\nholidays = ["2027-01-01"]\n', encoding="utf-8")
    assert load_config(path, need_secrets=False, now=late_december).terms.calendar.known_until.year == 2027


@pytest.mark.parametrize(("extra", "words"), [
    ('[procedure]\ncompliance_check = "2 days"\n', "not a time limit"),
    ('[procedure]\ncoordinator = "ghost"\n', "unknown connector 'ghost'"),
    ('[[obligation]]\nid = "x"\nrecord_type = "clue"\nwithin = "3wd"\nconsumers = ["ghost"]\n', "ghost"),
    ('[[obligation]]\nid = "x"\nrecord_type = "gossip"\nwithin = "3wd"\n', "unknown record types"),
    ('[timeliness]\npenalty = "seven"\n', "not a time limit"),
    ('[timeliness]\ngossip = "7wd"\n', "unknown record types"),
    ('[calendar.27]\nholidays = []\n', "a year such as 2027"),
])
def test_procedure_tables_are_checked(tmp_path: Path, extra: str, words: str) -> None:
    path = tmp_path / "supex.toml"
    path.write_text(MINIMAL + "\n" + extra, encoding="utf-8")
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace("[", r"\[")):
        load_config(path, need_secrets=False, now=dt.datetime(2026, 6, 1, tzinfo=CST))

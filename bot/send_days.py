"""Which days digests and the weekly report go out on: the weekdays of `[schedule]` on the
company calendar of `[calendar]` (one calendar for the whole company, whatever a recipient's
timezone). Pure: the day or the clock is passed in.

- A day off of the calendar (an official holiday of its country, a `days_off` date) gets no
  digest, even on a weekday of `digest_days`; its items stay due (the notification log has
  not recorded them as sent) and go out in the next working day's digest.
- A worked weekend day (a transferred working day of the country, a `working_days` date) is a
  working day: it gets a digest when `digest_days` covers every usual working day of the
  calendar (the default "mon-fri"); it stands for a weekday we cannot name, so a "mon,wed,fri"
  schedule leaves it out.
- A weekly rest day listed in `digest_days` (a company that wants Saturday digests) is the
  admin's choice and keeps its digest.
- Critical alerts sent right after a scan (`[delivery] critical_immediately`) rest with the
  company: from the start of a day off of the calendar, or of a weekly rest day outside
  `digest_days`, until the start of work (`[calendar] work_start`) of the next day that is
  neither (`critical_rest`). They stay due and go out after that start, or in that day's
  digest; `[delivery] critical_on_days_off = true` sends them on such days too.
- Admins' notices (stale data) are not urgent: they go out on a day that does not rest, from
  the admin's digest time (`notice_wait`); found on a day off, they wait for the next working
  day's digest time.
- Days off learned from the data (`learn_days_off`) are about the past: they tell the detectors
  that nobody worked on a day already gone, and never decide today's sending (today is never
  learned, and the calendar used here drops any learned days).
"""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from detectors.working_hours import MONTH_ABBR  # the English day format of the learned days-off line

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_HORIZON = 400  # days searched for the next digest day (a schedule with none says so)


def fmt_day(d: date, weekday: bool = False) -> str:
    """'1 Jan 2027' (or 'Fri 1 Jan 2027'): unambiguous in a log read anywhere."""
    return (f"{_DAYS[d.weekday()]} " if weekday else "") + f"{d.day} {MONTH_ABBR[d.month - 1]} {d.year}"


@lru_cache(maxsize=32)
def digest_weekdays(spec: str) -> frozenset[int]:
    """ISO weekdays (1 = Monday) of a `digest_days` value ("mon-fri", "mon,wed,fri", "*"),
    read by the same cron field the scheduler validated it with."""
    from apscheduler.triggers.cron import CronTrigger
    from datetime import timezone

    trigger = CronTrigger(day_of_week=spec, hour=0, minute=0, timezone=timezone.utc)
    monday = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return frozenset(k + 1 for k in range(7)
                     if trigger.get_next_fire_time(None, monday + timedelta(days=k)) == monday + timedelta(days=k))


def _calendar(config: Any) -> Any:
    """The company calendar as configured: never the days learned from the data."""
    cal = config.work_calendar()
    return replace(cal, learned=()) if cal.learned else cal


def day_off_reason(config: Any, day: date) -> str | None:
    """Why `day` is a day off of the company calendar ("KZ: New Year's Day", "[calendar]
    days_off"), or None when it is not one. Weekly rest days are not days off here:
    `digest_days` decides about them."""
    cal = _calendar(config)
    if day not in _off_days(cal):
        return None
    if day in cal.holidays:
        return "[calendar] days_off"
    name = _holiday_name(cal.country, day) if cal.country else None
    return f"{cal.country}: {name}" if name else (cal.country or "[calendar]")


@lru_cache(maxsize=8)
def _off_days(cal: Any) -> frozenset[date]:
    return frozenset(cal.days_off)


def _holiday_name(country: str, day: date) -> str | None:
    import holidays

    try:
        return holidays.country_holidays(country, years=day.year, language="en_US").get(day)
    except (NotImplementedError, KeyError, ValueError):  # a country without English names
        return holidays.country_holidays(country, years=day.year).get(day)


def is_working_day(config: Any, day: date) -> bool:
    """A working day of the company calendar (transferred working days included)."""
    import numpy as np

    return bool(_calendar(config).is_working_day(np.array([day], dtype="datetime64[D]"))[0])


def is_digest_day(config: Any, day: date) -> bool:
    """Whether the daily digest goes out on `day` (see the module's rules)."""
    cal = _calendar(config)
    if day in _off_days(cal):
        return False
    weekdays = digest_weekdays(config.schedule.digest_days)
    if day.isoweekday() in weekdays:
        return True
    return is_working_day(config, day) and set(cal.workdays) <= weekdays


def next_digest_day(config: Any, after: date) -> date | None:
    """The first digest day strictly after `after` (None when the schedule has none within a year)."""
    for k in range(1, _HORIZON):
        d = after + timedelta(days=k)
        if is_digest_day(config, d):
            return d
    return None


def _rests(config: Any, day: date) -> bool:
    """A day critical alerts wait through: a day off of the calendar, or a weekly rest day that
    `digest_days` leaves out (a working day without a digest, "mon,wed,fri"'s Tuesday, is not)."""
    return not is_digest_day(config, day) and not is_working_day(config, day)


def critical_rest(config: Any, now: datetime, tz_name: str) -> tuple[date, datetime | None] | None:
    """When immediate critical alerts wait at `now` for a reader in `tz_name`: (the day off they
    wait over, the start of work in `tz_name` they wait for, None when none within a year);
    None when they go out now (always, with `[delivery] critical_on_days_off`). The early hours of
    the first working day after days off, before `[calendar] work_start`, still wait: an alert
    found on 1 January is read at 09:00 on the 5th, not at midnight."""
    if getattr(config.delivery, "critical_on_days_off", False):
        return None
    tz = ZoneInfo(tz_name)
    local = now.astimezone(tz)
    today = local.date()
    start = _calendar(config).work_start
    if _rests(config, today):
        off = today
    elif _rests(config, today - timedelta(days=1)) and local.time() < start:
        off = today - timedelta(days=1)
    else:
        return None
    day = today
    for _ in range(_HORIZON):
        if not _rests(config, day):
            return off, datetime.combine(day, start, tz)
        day += timedelta(days=1)
    return off, None


def notice_wait(config: Any, now: datetime, when: str, tz_name: str) -> datetime | None:
    """When an admin notice (bot.admin_notice: stale data, ...) found at `now` may go out to an
    admin whose digest time is `when` (HH:MM) in `tz_name`: None for now (a day that does not
    rest, at or after that time), else that time on the next such day (None within a year: now).
    Not urgent like a critical alert, so `[delivery] critical_on_days_off` does not apply: stale
    data found on 1 January is told on the first working day at the digest time."""
    tz = ZoneInfo(tz_name)
    local = now.astimezone(tz)
    hh, mm = (int(x) for x in when.split(":"))
    day = local.date()
    for _ in range(_HORIZON):
        if not _rests(config, day):
            at = datetime.combine(day, time(hh, mm), tz)
            return at if at > now else None
        day += timedelta(days=1)
    return None


def critical_line(config: Any) -> str:
    """For check-config: when critical alerts go out at once after a scan."""
    d = config.delivery
    if not d.critical_immediately:
        return "critical alerts: in the digest only ([delivery] critical_immediately = false)"
    if d.critical_on_days_off:
        return ("critical alerts: at once after each scan, days off too ([delivery] critical_on_days_off = true), "
                "never in a person's quiet_hours")
    return (f"critical alerts: at once after each scan, never in a person's quiet_hours; on days off and rest days "
            f"without a digest they wait for the next working day's {config.calendar.work_start} or its digest")


def next_digest(config: Any, now: datetime, when: str, tz_name: str) -> datetime | None:
    """The next digest at local time `when` (HH:MM) in `tz_name`, at or after `now`."""
    tz = ZoneInfo(tz_name)
    local = now.astimezone(tz)
    hh, mm = (int(x) for x in when.split(":"))
    today = local.date()
    if is_digest_day(config, today) and datetime.combine(today, time(hh, mm), tz) >= now:
        return datetime.combine(today, time(hh, mm), tz)
    d = next_digest_day(config, today)
    return datetime.combine(d, time(hh, mm), tz) if d else None


def skipped_line(config: Any, day: date, what: str = "no digest") -> str | None:
    """'1 Jan 2027 is a day off of the company calendar (KZ: New Year's Day): no digest; the next
    one goes out on Tue 5 Jan 2027' for the log; None when `day` is not a day off."""
    why = day_off_reason(config, day)
    if why is None:
        return None
    nxt = next_digest_day(config, day)
    then = f"; the next one goes out on {fmt_day(nxt, weekday=True)}" if nxt else ""
    return f"{fmt_day(day)} is a day off of the company calendar ({why}): {what}{then}"


def schedule_line(config: Any, now: datetime) -> str:
    """For check-config and preview: when the next digest goes out, and the days off it skips."""
    s = config.schedule
    nxt = next_digest(config, now, s.digest_time, config.timezone)
    head = f"digests: {s.digest_days} at {s.digest_time} {config.timezone}, none on days off of the calendar"
    if nxt is None:
        return head + "; no digest day within a year (check [schedule] digest_days and [calendar])"
    start = now.astimezone(ZoneInfo(config.timezone)).date()
    weekdays = digest_weekdays(s.digest_days)
    skipped = [start + timedelta(days=k) for k in range((nxt.date() - start).days)
               if start + timedelta(days=k) in _off_days(_calendar(config))
               and (start + timedelta(days=k)).isoweekday() in weekdays]
    line = f"{head}; next: {fmt_day(nxt.date(), weekday=True)} {nxt:%H:%M}"
    if skipped:
        shown = ", ".join(fmt_day(d) for d in skipped[:6]) + (" ..." if len(skipped) > 6 else "")
        line += f" (none on {shown}: day{'s' if len(skipped) > 1 else ''} off of the company calendar)"
    return line

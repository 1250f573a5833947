"""Business-hours arithmetic: how many working hours lie between two instants.

An SLA of "2 hours" means two hours of the company's working time: a lead that arrives on
Friday at 17:30 with a 09:00-18:00 Monday-Friday week has waited one working hour by Monday
10:00, not 64. Counting is done on the local wall clock of the company's timezone, so a DST
change (always at night in practice) neither adds nor removes working time. Vectorised with
numpy's business-day calendar so that a whole leads table is one pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

_ANCHOR = np.datetime64("2000-01-03", "D")  # any fixed day; only differences of W(t) matter
_NS_PER_HOUR = 3_600_000_000_000


def parse_hhmm(value: str, where: str) -> time:
    """'09:00' -> time(9, 0); a clear ValueError otherwise (pydantic turns it into a config problem)."""
    try:
        hh, mm = value.split(":")
        return time(int(hh), int(mm))
    except (ValueError, TypeError):
        raise ValueError(f"{where}: expected a time like \"09:00\", got {value!r}") from None


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r} (use an IANA name such as \"Asia/Almaty\" or \"Europe/Moscow\")") from None
    return name


@dataclass(frozen=True)
class WorkCalendar:
    """Working days (ISO 1=Monday .. 7=Sunday), daily hours and holidays in one timezone."""

    timezone: str = "Asia/Almaty"
    workdays: tuple[int, ...] = (1, 2, 3, 4, 5)
    work_start: time = time(9, 0)
    work_end: time = time(18, 0)
    holidays: tuple[date, ...] = ()

    def __post_init__(self) -> None:
        check_timezone(self.timezone)
        if not self.workdays or any(d < 1 or d > 7 for d in self.workdays):
            raise ValueError(f"workdays must be ISO weekday numbers 1 (Monday) .. 7 (Sunday), got {list(self.workdays)}")
        if self.work_start >= self.work_end:
            raise ValueError(f"work_start {self.work_start:%H:%M} must be before work_end {self.work_end:%H:%M}")

    @property
    def _weekmask(self) -> str:
        return "".join("1" if d in self.workdays else "0" for d in range(1, 8))

    @property
    def _holidays(self) -> np.ndarray:
        return np.array([np.datetime64(h, "D") for h in self.holidays], dtype="datetime64[D]")

    @property
    def day_ns(self) -> int:
        s, e = self.work_start, self.work_end
        return ((e.hour - s.hour) * 60 + (e.minute - s.minute)) * 60 * 1_000_000_000

    def _start_ns(self) -> int:
        return (self.work_start.hour * 60 + self.work_start.minute) * 60 * 1_000_000_000

    def working_ns_since_anchor(self, ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
        """W(t): working nanoseconds from a fixed anchor to each instant (int64; NaT -> 0).

        Working time between a and b is W(b) - W(a); keeping W lets callers compute many
        differences from one conversion per column.
        """
        idx = pd.DatetimeIndex(ts)
        if idx.tz is None:
            raise ValueError("timestamps must be timezone-aware")
        local = idx.tz_convert(self.timezone).tz_localize(None).as_unit("ns")
        ns = local.asi8
        nat = np.asarray(local.isna())
        days = local.floor("D").values.astype("datetime64[D]")
        days = np.where(nat, _ANCHOR, days)
        tod = ns - days.astype("datetime64[ns]").astype(np.int64)
        weekmask, hol = self._weekmask, self._holidays
        full_days = np.busday_count(_ANCHOR, days, weekmask=weekmask, holidays=hol).astype(np.int64)
        is_work = np.is_busday(days, weekmask=weekmask, holidays=hol)
        within = np.clip(tod - self._start_ns(), 0, self.day_ns)
        out = full_days * self.day_ns + np.where(is_work, within, 0)
        return np.where(nat, 0, out)

    def hours_between(self, start: pd.Series | pd.DatetimeIndex, end: pd.Series | pd.DatetimeIndex) -> np.ndarray:
        """Working hours from each start to each end (float; 0 when end <= start, NaN where either is missing)."""
        s_idx, e_idx = pd.DatetimeIndex(start), pd.DatetimeIndex(end)
        w = (self.working_ns_since_anchor(e_idx) - self.working_ns_since_anchor(s_idx)) / _NS_PER_HOUR
        w = np.maximum(w, 0.0)
        return np.where(np.asarray(s_idx.isna()) | np.asarray(e_idx.isna()), np.nan, w)

    def hours_until(self, start: pd.Series | pd.DatetimeIndex, now: datetime) -> np.ndarray:
        """Working hours from each start up to one instant `now`."""
        end = pd.DatetimeIndex([pd.Timestamp(now)] * len(start))
        return self.hours_between(start, end)

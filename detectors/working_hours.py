"""The company calendar: working days and hours, official holidays, and arithmetic on them.

One calendar is shared by every detector that counts working time (lead_sla in hours,
stalled_deal in days); bot/config.py builds it from the top-level `[calendar]` section and the
config's timezone. Official holidays and transferred working days (a Saturday worked in
exchange for a bridge day off) come from the `holidays` package for the calendar's country;
with no country given, the country is taken from the timezone (Asia/Almaty -> KZ,
America/New_York -> US, Europe/Berlin -> DE: the IANA zone tables, `timezone_country`), so a
plain scan in Almaty already knows the New Year holidays and one in New York Christmas. Extra days off and extra working days come from config on top.

Days off nobody declared (a company in Almaty that also rests on 31 Dec and 3-5 Jan) are
learned from the data by `company_days_off`: a past working day on which the company's people
recorded almost nothing (see `quiet_workdays` for the rule) counts as a day off too, so a
hundred deals do not look stalled on the first day back.

An SLA of "2 hours" means two hours of the company's working time: a lead that arrives on
Friday at 17:30 with a 09:00-18:00 Monday-Friday week has waited one working hour by Monday
10:00, not 64. Counting is done on the local wall clock of the company's timezone, so a DST
change (always at night in practice) neither adds nor removes working time. Vectorised with
numpy's business-day calendar (weekmask + holiday array, plus a sorted array of extra working
days) so that a whole table is one pass.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

_ANCHOR = np.datetime64("2000-01-03", "D")  # any fixed day; only differences of W(t) matter
_NS_PER_HOUR = 3_600_000_000_000
_DAY_NS = 86_400 * 1_000_000_000
_QUARTER_NS = 900 * 1_000_000_000
_MAX_GRID = 4_000_000  # 15-minute steps (about 114 years) or days beyond which we convert directly
_NEVER = np.iinfo(np.int64).min  # detectors.columns.NEVER (not imported: this module stands alone)
# Official holidays are expanded for these years once per country: W(t) differences are exact
# for any two instants in the range, whatever the data's span (outside it: weekends only).
_YEARS = range(2000, 2051)

# Timezone -> ISO country, for a calendar with no country configured, from the IANA tables
# (zone.tab: one country per zone; zone1970.tab when zone.tab is missing; links such as
# US/Eastern or Europe/Kiev from tzdata.zi), read where zoneinfo reads its zones: the system's
# tzdata (zoneinfo.TZPATH, /usr/share/zoneinfo on Linux) or the `tzdata` package. This explicit
# table overrides them where the tables are ambiguous or silent; None means "no country from
# the timezone" (set calendar.country).
_KZ_ZONES = ("Asia/Almaty", "Asia/Qostanay", "Asia/Aqtobe", "Asia/Aqtau", "Asia/Atyrau", "Asia/Oral",
             "Asia/Qyzylorda")
_RU_ZONES = ("Europe/Moscow", "Europe/Kaliningrad", "Europe/Samara", "Europe/Volgograd", "Europe/Saratov",
             "Europe/Ulyanovsk", "Europe/Astrakhan", "Europe/Kirov", "Asia/Yekaterinburg", "Asia/Omsk",
             "Asia/Novosibirsk", "Asia/Barnaul", "Asia/Tomsk", "Asia/Novokuznetsk", "Asia/Krasnoyarsk",
             "Asia/Irkutsk", "Asia/Chita", "Asia/Yakutsk", "Asia/Khandyga", "Asia/Vladivostok", "Asia/Ust-Nera",
             "Asia/Magadan", "Asia/Sakhalin", "Asia/Srednekolymsk", "Asia/Kamchatka", "Asia/Anadyr")
# (the zones the product started with stay listed, so they hold even where the tables are absent)
TIMEZONE_COUNTRY: dict[str, str | None] = {
    **{z: "KZ" for z in _KZ_ZONES}, **{z: "RU" for z in _RU_ZONES},
    "Europe/Minsk": "BY", "Asia/Tashkent": "UZ", "Asia/Samarkand": "UZ", "Asia/Bishkek": "KG",
    "Europe/Kyiv": "UA", "Europe/Kiev": "UA", "Asia/Tbilisi": "GE", "Asia/Baku": "AZ", "Asia/Yerevan": "AM",
    # zone.tab itself says it "cannot represent Europe/Simferopol well" (zone1970.tab: RU,UA)
    "Europe/Simferopol": None,
}
_OFF = ("", "none", "no", "off")


def _tz_dirs() -> list:
    """Where the IANA tables may lie: the zoneinfo search path, then the `tzdata` package."""
    import zoneinfo
    from importlib import resources
    from pathlib import Path

    dirs: list = [Path(d) for d in zoneinfo.TZPATH]
    try:
        dirs.append(resources.files("tzdata") / "zoneinfo")
    except ModuleNotFoundError:
        pass
    return dirs


def _read_table(name: str) -> str | None:
    for d in _tz_dirs():
        try:
            return (d / name).read_text(encoding="utf-8")
        except (OSError, ValueError):
            continue
    return None


def _table_rows(text: str | None) -> list[list[str]]:
    return [ln.split("\t") for ln in (text or "").splitlines() if ln and not ln.startswith("#")]


@lru_cache(maxsize=1)
def zone_countries() -> dict[str, str]:
    """IANA zone (and link) name -> the ISO country of its principal location, from the tables.

    zone.tab gives one country per zone. zone1970.tab (used only when zone.tab is absent)
    lists every country a zone covers, the most populous city's first (Europe/Berlin:
    DE,DK,NO,SE,SJ), so its first code is taken. Links (US/Eastern -> America/New_York) take
    their target's country."""
    out: dict[str, str] = {}
    rows = _table_rows(_read_table("zone.tab"))
    if not rows:
        rows = _table_rows(_read_table("zone1970.tab"))
    for row in rows:
        if len(row) >= 3:
            out[row[2].strip()] = row[0].split(",")[0].strip().upper()
    for ln in (_read_table("tzdata.zi") or "").splitlines():
        parts = ln.split()
        if len(parts) == 3 and parts[0] == "L" and parts[2] not in out and parts[1] in out:
            out[parts[2]] = out[parts[1]]
    return out


def timezone_country(tz: str) -> str | None:
    """The country a company in `tz` is in (ISO code), whatever the holidays package knows:
    the explicit table first, then the IANA tables; None for Etc/UTC and the like."""
    if tz in TIMEZONE_COUNTRY:
        return TIMEZONE_COUNTRY[tz]
    return zone_countries().get(tz)


def holidays_known(code: str) -> bool:
    import holidays

    return code in holidays.list_supported_countries()


def country_for_timezone(tz: str) -> str | None:
    """The country whose official holidays a company in `tz` keeps, or None when the timezone
    names no country or the holidays package does not know its holidays."""
    code = timezone_country(tz)
    return code if code and holidays_known(code) else None


def holidays_scope(code: str) -> str:
    """"nationwide ones only" for a country whose regions add their own holidays (US: the federal
    ones; DE: the national ones, no state's), "" otherwise: the package is asked without a
    region, and the admin adds a region's days in [calendar] days_off."""
    import holidays

    return ("nationwide ones only: add your region's own to [calendar] days_off"
            if holidays.list_supported_countries().get(code) else "")


def check_country(code: str | None) -> str | None:
    """An ISO country code the holidays package knows (upper-cased); "" / "none" -> "" (off)."""
    if code is None:
        return None
    c = code.strip()
    if c.lower() in _OFF:
        return ""
    import holidays

    supported = holidays.list_supported_countries()
    if c.upper() not in supported:
        import difflib

        close = difflib.get_close_matches(c.upper(), list(supported), n=1, cutoff=0.5)
        hint = f" (did you mean \"{close[0]}\"?)" if close else ""
        raise ValueError(f"unknown country {code!r}{hint}: use an ISO 3166 code such as \"KZ\" or \"RU\", "
                         "or \"none\" for no official holidays")
    return c.upper()


@lru_cache(maxsize=16)
def official_days(country: str) -> tuple[tuple[date, ...], tuple[date, ...]]:
    """(official days off, transferred working days) of `country` over the calendar's years.

    Only the package's public category counts as days off; a transferred working day is a
    weekend day the package marks as worked (`weekend_workdays`, e.g. KZ 2025-01-05)."""
    import holidays

    h = holidays.country_holidays(country, years=_YEARS)
    return tuple(sorted(h.keys())), tuple(sorted(d for d in h.weekend_workdays if d.year in _YEARS))


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
    """Working days (ISO 1=Monday .. 7=Sunday), daily hours and days off in one timezone.

    `country` adds that country's official holidays and transferred working days (None or ""
    for none; see `company_calendar` for taking it from the timezone). `holidays` are extra
    days off, `working_days` extra working days (a Saturday worked); an extra day off wins
    over an official working day, an extra working day over an official holiday.
    `learned` are days off learned from the data (`company_days_off`, when `learn_days_off`)."""

    timezone: str = "Asia/Almaty"
    workdays: tuple[int, ...] = (1, 2, 3, 4, 5)
    work_start: time = time(9, 0)
    work_end: time = time(18, 0)
    holidays: tuple[date, ...] = ()
    working_days: tuple[date, ...] = ()
    country: str | None = None
    learn_days_off: bool = True
    learned: tuple[date, ...] = ()

    def __post_init__(self) -> None:
        check_timezone(self.timezone)
        object.__setattr__(self, "country", check_country(self.country) or None)
        if not self.workdays or any(d < 1 or d > 7 for d in self.workdays):
            raise ValueError(f"workdays must be ISO weekday numbers 1 (Monday) .. 7 (Sunday), got {list(self.workdays)}")
        if self.work_start >= self.work_end:
            raise ValueError(f"work_start {self.work_start:%H:%M} must be before work_end {self.work_end:%H:%M}")

    @property
    def _weekmask(self) -> str:
        return "".join("1" if d in self.workdays else "0" for d in range(1, 8))

    @cached_property
    def _days(self) -> tuple[np.ndarray, np.ndarray]:
        """(days off, extra working days outside the weekmask) as sorted datetime64[D] arrays."""
        off, work = set(), set()
        if self.country:
            official_off, official_work = official_days(self.country)
            off.update(official_off)
            work.update(official_work)
        off = (off - set(self.working_days)) | set(self.holidays) | set(self.learned)
        work = (work | set(self.working_days)) - set(self.holidays) - set(self.learned)
        work = {d for d in work if d.isoweekday() not in self.workdays}
        as_np = lambda days: np.array(sorted(days), dtype="datetime64[D]")  # noqa: E731
        return as_np(off), as_np(work)

    @property
    def _holidays(self) -> np.ndarray:
        return self._days[0]

    @property
    def days_off(self) -> tuple[date, ...]:
        """Every day off beyond the weekly rest days (official and configured), for display."""
        return tuple(d.astype(date) for d in self._days[0])

    @cached_property
    def _off_workday_starts(self) -> np.ndarray:
        """UTC ns of the local midnight of every day off that falls on a usual workday (sorted)."""
        keep = [d for d in self._days[0].tolist() if d.isoweekday() in self.workdays]
        if not keep:
            return np.array([], dtype=np.int64)
        idx = pd.DatetimeIndex(np.array(keep, dtype="datetime64[ns]")).tz_localize(self.timezone)
        return np.sort(idx.tz_convert("UTC").as_unit("ns").asi8)

    def without_days_off(self, ns: np.ndarray) -> np.ndarray:
        """Instants on a clock that stops during days off falling on usual workdays (holidays,
        [calendar] days_off): a week with a holiday Monday lasts 6 days on it. Monotone, so
        order and windows keep their meaning; weekends still count, as they do in an ordinary
        week's pace. The int64 extremes (never / not a time) pass through unchanged."""
        ns = np.asarray(ns, dtype=np.int64)
        starts = self._off_workday_starts
        if not len(starts) or not len(ns):
            return ns
        lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
        real = np.flatnonzero((ns != lo) & (ns != hi))
        t = ns[real]
        if len(t):  # only the days off within the instants' span are searched
            starts = starts[np.searchsorted(starts, t.min() - _DAY_NS):]
        k = np.searchsorted(starts, t, side="right")  # days off that began at or before t
        skipped = len(self._off_workday_starts) - len(starts)
        began = starts[np.maximum(k - 1, 0)] if len(starts) else t
        inside = (k > 0) & (t - began < _DAY_NS)
        out = ns.copy()
        out[real] = t - (k + skipped - inside) * _DAY_NS - np.where(inside, t - began, 0)
        return out

    def with_days_off(self, ns: np.ndarray) -> np.ndarray:
        """The inverse of without_days_off: the real instant (a stopped moment -> the end of its
        days off)."""
        ns = np.asarray(ns, dtype=np.int64)
        starts = self._off_workday_starts
        if not len(starts) or not len(ns):
            return ns
        stopped = starts - np.arange(len(starts), dtype=np.int64) * _DAY_NS
        return ns + np.searchsorted(stopped, ns, side="right") * _DAY_NS

    def working_day_number(self, days: np.ndarray) -> np.ndarray:
        """N(d): working days in [anchor, d) for each datetime64[D] day (negative before the anchor).

        Working days from day a to day b (a counted, b not) are N(b) - N(a)."""
        extra = self._days[1]
        n = np.busday_count(_ANCHOR, days, weekmask=self._weekmask, holidays=self._holidays).astype(np.int64)
        if len(extra):
            n += np.searchsorted(extra, days, side="left") - np.searchsorted(extra, _ANCHOR, side="left")
        return n

    def is_working_day(self, days: np.ndarray) -> np.ndarray:
        is_work = np.is_busday(days, weekmask=self._weekmask, holidays=self._holidays)
        extra = self._days[1]
        return is_work | np.isin(days, extra) if len(extra) else is_work

    def local_days_ns(self, ns: np.ndarray) -> np.ndarray:
        """The local calendar day (datetime64[D]) of UTC nanosecond instants (NEVER -> the anchor).

        The zone's UTC offset is read from a 15-minute grid over the instants' span (every
        offset change since 1970 falls on a quarter hour), so millions of instants cost one
        table lookup each instead of a timezone conversion."""
        ns = np.asarray(ns, dtype=np.int64)
        valid = ns != _NEVER
        out = np.full(len(ns), _ANCHOR, dtype="datetime64[D]")
        if not valid.any():
            return out
        v = ns[valid]
        lo, hi = int(v.min()), int(v.max())
        g0 = lo - lo % _QUARTER_NS
        n = (hi - g0) // _QUARTER_NS + 1
        if n <= _MAX_GRID:
            grid = g0 + np.arange(n, dtype=np.int64) * _QUARTER_NS
            offset = self._local_ns(grid) - grid
            local = v + offset[(v - g0) // _QUARTER_NS]
        else:  # a span of centuries (bad data): convert each instant
            local = self._local_ns(v)
        out[valid] = (local // _DAY_NS).astype("datetime64[D]")
        return out

    def day_start_ns(self, days: np.ndarray) -> np.ndarray:
        """UTC ns of the company's local midnight starting each datetime64[D] day: where a
        period of whole company days ("the last 28 days including today") begins, so a deal
        closed at 02:00 local on its first day is in it (a UTC cut would start Almaty's day at
        05:00 and New York's at 19:00 the evening before). A midnight a DST change skips
        starts at the first local moment after it."""
        idx = pd.DatetimeIndex(np.asarray(days, dtype="datetime64[D]").astype("datetime64[ns]"))
        local = idx.tz_localize(self.timezone, ambiguous=np.ones(len(idx), dtype=bool), nonexistent="shift_forward")
        return local.tz_convert("UTC").as_unit("ns").asi8

    def local_day_start_ns(self, ns: np.ndarray) -> np.ndarray:
        """UTC ns of the local midnight that began the company's day of each UTC instant."""
        return self.day_start_ns(self.local_days_ns(ns))

    def _local_ns(self, ns: np.ndarray) -> np.ndarray:
        idx = pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")
        return idx.tz_convert(self.timezone).tz_localize(None).as_unit("ns").asi8

    def working_days_ns(self, ns: np.ndarray) -> np.ndarray:
        """N(local day) for UTC nanosecond instants: day-level working-day numbers.

        Computed once per distinct day of the span and looked up, not per instant."""
        days = self.local_days_ns(ns).astype(np.int64)
        if not len(days):
            return days
        lo, hi = int(days.min()), int(days.max())
        if hi - lo > _MAX_GRID:
            return self.working_day_number(days.astype("datetime64[D]"))
        table = self.working_day_number(np.arange(lo, hi + 1, dtype=np.int64).astype("datetime64[D]"))
        return table[days - lo]

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
        full_days = self.working_day_number(days)
        is_work = self.is_working_day(days)
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


def company_calendar(timezone: str, *, country: str | None = None, days_off: tuple[date, ...] = (),
                     working_days: tuple[date, ...] = (), workdays: tuple[int, ...] = (1, 2, 3, 4, 5),
                     work_start: time = time(9, 0), work_end: time = time(18, 0),
                     learn_days_off: bool = True) -> WorkCalendar:
    """The calendar a config describes: `country` None -> from the timezone; "" / "none" -> off."""
    code = country_for_timezone(timezone) if country is None else (check_country(country) or None)
    return WorkCalendar(timezone=timezone, workdays=tuple(workdays), work_start=work_start, work_end=work_end,
                        holidays=tuple(days_off), working_days=tuple(working_days), country=code,
                        learn_days_off=learn_days_off)


# A working day is learned as a day off when the company's people recorded at most
# LEARN_FRACTION of the median of the LEARN_WINDOW working days before it, and that median is at
# least LEARN_MIN_MEDIAN things (with at least LEARN_MIN_PRIOR working days of data before it).
# Daily counts of a small pipeline swing far more than Poisson (few deals open, so few touches):
# on 160 calm generated companies (40-250 deals a month, 15,348 judged working days) a median of
# 20 let 1 ordinary day through (1 thing against a median of 24); from 25 none did, from 30 none
# even at a fraction of 0.2. Smaller companies learn nothing: an empty day means too little there.
LEARN_WINDOW = 20
LEARN_MIN_PRIOR = 10
LEARN_MIN_MEDIAN = 30.0
LEARN_FRACTION = 0.1


def quiet_workdays(instants_ns: np.ndarray | list[np.ndarray], calendar: WorkCalendar, now_ns: int) -> np.ndarray:
    """Working days (datetime64[D], of `calendar`) strictly before the local day of `now_ns` on
    which the instants (the company's recorded work; an array or a list of arrays) fall far
    below a normal working day.

    Each day is judged only from itself and the days before it, so the answer for a day never
    changes with a later `now` (a backtest replay learns exactly what a scan on that day
    would). Counted in one bincount per array over UTC quarter hours (every UTC offset is a
    whole number of quarter hours, so each lies within one local day), then per local day;
    the medians are over the span's working days."""
    empty = np.zeros(0, dtype="datetime64[D]")
    parts = [np.asarray(p, dtype=np.int64) for p in (instants_ns if isinstance(instants_ns, list) else [instants_ns])]
    parts = [p if not len(p) or (p.min() != _NEVER and p.max() <= now_ns) else p[(p != _NEVER) & (p <= now_ns)]
             for p in parts]
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty
    lo_ns = min(int(p.min()) for p in parts)
    g0 = lo_ns - lo_ns % _QUARTER_NS
    n_q = (now_ns - g0) // _QUARTER_NS + 1
    if n_q > _MAX_GRID:  # a span of centuries (a typo in a date): the last _MAX_GRID quarter hours
        g0 = now_ns - now_ns % _QUARTER_NS - (_MAX_GRID - 1) * _QUARTER_NS
        parts = [p[p >= g0] for p in parts]
        n_q = _MAX_GRID
    per_q = np.zeros(n_q, dtype=np.int64)
    for p in parts:
        per_q += np.bincount((p - g0) // _QUARTER_NS, minlength=n_q)
    q_day = calendar.local_days_ns(g0 + np.arange(n_q, dtype=np.int64) * _QUARTER_NS).view(np.int64)
    today = int(q_day[-1])  # the last quarter hour holds now
    lo = int(q_day[0])
    if today <= lo:
        return empty
    counts = np.bincount(q_day - lo, weights=per_q, minlength=today - lo + 1)[:today - lo]
    span = np.arange(lo, today, dtype=np.int64).astype("datetime64[D]")
    work = (replace(calendar, learned=()) if calendar.learned else calendar).is_working_day(span)
    n, wd = counts[work], span[work]
    if len(n) <= LEARN_MIN_PRIOR:
        return empty
    padded = np.concatenate([np.full(LEARN_WINDOW, np.nan), n[:-1]])
    before = np.lib.stride_tricks.sliding_window_view(padded, LEARN_WINDOW)  # row i: the days before day i
    prior = np.minimum(np.arange(len(n)), LEARN_WINDOW)
    med = np.full(len(n), np.nan)
    ok = prior >= LEARN_MIN_PRIOR
    med[ok] = np.nanmedian(before[ok], axis=1)
    with np.errstate(invalid="ignore"):
        quiet = ok & (med >= LEARN_MIN_MEDIAN) & (n <= LEARN_FRACTION * med)
    return wd[quiet]


def company_days_off(data, calendar: WorkCalendar, now: datetime, *, stale: bool = False) -> WorkCalendar:
    """The calendar every detector counts working time on: `calendar` plus the days off the
    data shows (quiet_workdays over crm.freshness.work_instants before `now`), unless
    [calendar] learn_days_off = false. Today is never one of them. The one place scan,
    backtest, /preview and check-config get the company's days off from.

    `stale`: the export stopped (bot.pipeline.stale_line): the quiet days after its newest
    recorded work are the export's silence, not the company's rest, and are not learned.

    Learned days are about the past (nobody worked on a day already gone) and never decide
    whether a digest goes out today: that is the configured calendar's job (bot.send_days)."""
    if not calendar.learn_days_off:
        return calendar
    from crm.freshness import work_instants

    now_ns = int(pd.Timestamp(now).tz_convert("UTC").value)
    instants = work_instants(data, now)
    quiet = quiet_workdays(instants, calendar, now_ns)
    if stale and len(quiet):
        newest = max(int(p.max()) for p in instants)
        quiet = quiet[quiet < calendar.local_days_ns(np.array([newest], dtype=np.int64))[0]]
    return learned_before(calendar, quiet, now_ns)


def learned_before(calendar: WorkCalendar, quiet: np.ndarray, now_ns: int) -> WorkCalendar:
    """`calendar` with the quiet days (quiet_workdays at a later moment) that lie before the
    local day of `now_ns`: what quiet_workdays would give at `now_ns` (each day is judged from
    itself and the days before it), without counting the data again."""
    today = calendar.local_days_ns(np.array([now_ns], dtype=np.int64))[0]
    days = tuple(d.astype(date) for d in quiet[quiet < today])
    return calendar if days == calendar.learned else replace(calendar, learned=days)


MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SHOWN_RUNS = 8


def learned_line(calendar: WorkCalendar) -> str | None:
    """'no work recorded on 31 Dec 2025, 3-5 Jan 2026: counted as days off; ...' for check-config
    and the scan summary; None when nothing was learned."""
    days = sorted(calendar.learned)
    if not days:
        return None
    runs: list[list[date]] = []
    for d in days:
        if runs and (d - runs[-1][-1]).days == 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    earlier = sum(len(r) for r in runs[:-_SHOWN_RUNS])
    runs = runs[-_SHOWN_RUNS:]
    parts = []
    for k, r in enumerate(runs):
        a, b = r[0], r[-1]
        text = (f"{a.day}" if a == b else f"{a.day}-{b.day}" if a.month == b.month
                else f"{a.day} {MONTH_ABBR[a.month - 1]}-{b.day}") + f" {MONTH_ABBR[b.month - 1]}"
        if k == len(runs) - 1 or runs[k + 1][0].year != b.year:
            text += f" {b.year}"
        parts.append(text)
    head = f"{earlier} earlier day{'s' if earlier != 1 else ''} and " if earlier else ""
    return (f"no work recorded on {head}{', '.join(parts)}: counted as days off; list them in [calendar] "
            "days_off to make it explicit, or set learn_days_off = false")


def default_calendar() -> WorkCalendar:
    """What a config with no [calendar] gives: Asia/Almaty (the config's default timezone), KZ."""
    return company_calendar("Asia/Almaty")

"""How old is the data? The newest record in it, against the clock the caller passes in.

A stalled deal, an unanswered lead or a silent client is judged by how long nothing happened.
On an export that stopped eleven days ago every deal looks stalled: the silence is the
export's, not the client's. So the time-based detectors need to know the data is fresh, and
the admin needs to hear when it is not (bot/pipeline.py, bot/scheduler.py).

Only instants at which something happened count (a deal created or closed (won or lost: an
open deal's closed_at is a planned date in Bitrix24 exports), a stage entered,
an activity done, an email sent or opened, a lead created, assigned or answered). Planned
dates (`due_at`) and timestamps after `now` (typos, time zones) are ignored: a task due next
year does not make last month's export fresh.

The company's own work (`work_instants`: what its people did, not what clients or web forms
did) is the narrower set the company calendar learns unannounced days off from
(detectors.working_hours.company_days_off), and the base of one person's work
(detectors.people.workforce: who is working); all read the same columns through `event_columns`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterator

import numpy as np
import pandas as pd

from crm.data import CrmData

# table -> columns holding instants at which something happened
EVENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "deals": ("created_at", "closed_at"),
    "stage_history": ("entered_at",),
    "activities": ("done_at",),
    "emails": ("sent_at",),
    "email_opens": ("opened_at",),
    "leads": ("created_at", "assigned_at", "first_response_at"),
}

# The part of those that the company's people do (a stage moved, an activity done, an email
# sent, a deal created or closed, a lead assigned or answered): not a client's email or open,
# not a lead a web form created. Emails count only where direction is "out". One person's work
# (detectors.people.PERSON_WORK, who is active) is these on the tables that name a manager.
WORK_COLUMNS: dict[str, tuple[str, ...]] = {
    "deals": ("created_at", "closed_at"),
    "stage_history": ("entered_at",),
    "activities": ("done_at",),
    "emails": ("sent_at",),
    "leads": ("assigned_at", "first_response_at"),
}

NAT = np.iinfo(np.int64).min  # NaT in int64 ns views


def event_columns(data: CrmData, columns: dict[str, tuple[str, ...]],
                  outgoing_only: bool = False) -> Iterator[tuple[str, pd.DataFrame, str, np.ndarray | None]]:
    """(table, frame, column, the rows that count or None for all) of each event column the
    data has. A derived stage history is skipped
    (it only repeats the deals' creation times); a deal's closed_at counts only for won or lost
    deals (an open deal's closed_at is a plan: Bitrix24's CLOSEDATE is the expected close date
    of every open deal, and it made a month-old export look fresh, every deal then "stalled");
    `outgoing_only`: emails only where direction is "out"."""
    for table, cols in columns.items():
        frame = data.table(table)
        if frame is None or not len(frame) or data.stage_history_derived and table == "stage_history":
            continue
        keep = None
        if outgoing_only and table == "emails":
            if "direction" not in frame.columns:
                continue
            keep = (frame["direction"] == "out").to_numpy(dtype=bool, na_value=False)
        for col in cols:
            if col not in frame.columns:
                continue
            mask = keep
            if table == "deals" and col == "closed_at" and "status" in frame.columns:
                closed = frame["status"].isin(["won", "lost"]).to_numpy(dtype=bool, na_value=False)
                mask = closed if mask is None else mask & closed
            yield table, frame, col, mask


def _events(data: CrmData, columns: dict[str, tuple[str, ...]], outgoing_only: bool = False):
    """(table, values that count) of each event column the data has (event_columns)."""
    for table, frame, col, mask in event_columns(data, columns, outgoing_only):
        yield table, (frame[col] if mask is None else frame[col][mask])


def work_instants(data: CrmData, now: datetime) -> list[np.ndarray]:
    """UTC nanoseconds of every thing the company's people did (WORK_COLUMNS) at or before `now`,
    one array per column (not concatenated: ten million instants are counted, never sorted).
    A column is masked only when it holds a NaT or an instant after `now`."""
    limit = pd.Timestamp(now).tz_convert("UTC").value
    parts = []
    for _, values in _events(data, WORK_COLUMNS, outgoing_only=True):
        ns = pd.DatetimeIndex(values).as_unit("ns").asi8  # NaT is the smallest int64
        if len(ns) and (ns.min() == NAT or ns.max() > limit):
            ns = ns[(ns != NAT) & (ns <= limit)]
        if len(ns):
            parts.append(ns)
    return parts


def _newest_up_to(values: pd.Series, limit_ns: int) -> pd.Timestamp | None:
    """The latest instant at or before limit_ns. One pass when nothing lies in the future (the
    usual case; a masked copy of 10M opens would cost more than the max itself)."""
    ns = pd.DatetimeIndex(values).as_unit("ns").asi8  # NaT is the smallest int64
    if not len(ns):
        return None
    top = int(ns.max())
    if top > limit_ns:
        kept = ns[ns <= limit_ns]
        top = int(kept.max()) if len(kept) else NAT
    return None if top == NAT else pd.Timestamp(top, tz="UTC")


@dataclass(frozen=True)
class Freshness:
    newest: pd.Timestamp | None  # the newest event at or before now (UTC), None when there is none
    table: str | None  # where it is
    origin: str | None  # the file or query of that table
    age: timedelta | None  # now - newest

    def is_stale(self, limit: timedelta) -> bool:
        return self.age is None or self.age > limit

    def age_days(self) -> float | None:
        return None if self.age is None else self.age / timedelta(days=1)


def freshness(data: CrmData, now: datetime) -> Freshness:
    """The newest event in the data at or before `now`, its table and its age."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    limit = pd.Timestamp(now).tz_convert("UTC")
    best: tuple[pd.Timestamp, str] | None = None
    for table, values in _events(data, EVENT_COLUMNS):
        newest = _newest_up_to(values, limit.value)
        if newest is not None and (best is None or newest > best[0]):
            best = (newest, table)
    if best is None:
        return Freshness(None, None, None, None)
    return Freshness(best[0], best[1], data.origins.get(best[1], f"{best[1]}.csv"), limit - best[0])


_DAY_NS = 86_400 * 10**9


def newest_by_day(data: CrmData) -> tuple[np.ndarray, np.ndarray]:
    """(UTC day numbers with an event, the newest event of each in ns), sorted by day: the
    newest event before any day is then one searchsorted, for every day of a replay (backtest
    asks whether the data was stale on each replayed day without reading it again per day)."""
    days, newest = [], []
    for _, values in _events(data, EVENT_COLUMNS):
        ns = pd.DatetimeIndex(values).as_unit("ns").asi8
        ns = ns[ns != NAT]
        if len(ns):
            top = pd.Series(ns).groupby(ns // _DAY_NS, sort=False).max()
            days.append(top.index.to_numpy(dtype=np.int64))
            newest.append(top.to_numpy(dtype=np.int64))
    if not days:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    top = pd.Series(np.concatenate(newest)).groupby(np.concatenate(days)).max()  # sorted by day
    return top.index.to_numpy(dtype=np.int64), top.to_numpy(dtype=np.int64)


def newest_before_day(index: tuple[np.ndarray, np.ndarray], now: datetime) -> pd.Timestamp | None:
    """The newest event on a UTC day before `now`'s (from newest_by_day): at most as new as
    freshness(data, now).newest, which may also find one earlier on `now`'s own day."""
    days, newest = index
    k = int(np.searchsorted(days, pd.Timestamp(now).value // _DAY_NS)) - 1
    return None if k < 0 else pd.Timestamp(int(newest[k]), tz="UTC")  # a later day's events are all newer


"""Who works here: the dated things each manager did, and who did any lately.

One notion shared by the detectors that must not talk to or about people who left or never
started: manager_load compares only working managers, stalled_deal sends a departed manager's
deals to the director. Work is any dated thing a person did (PERSON_WORK: the company's own
work of crm.freshness, read the same way, on the tables that name a manager, and a lead they
were given). For a daily replay the events are sorted once as int64 keys (manager row * KEY +
seconds since the first event), so "last work at or before t" per manager is one searchsorted
per day; one scan takes the maximum directly.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from crm.data import CrmData
from crm.freshness import WORK_COLUMNS, event_columns
from detectors.columns import NEVER, positions, to_ns

_NS_PER_S = 10**9
KEY = 1 << 40  # seconds per manager slot in the sorted work keys (~35,000 years)

# One person's work: the company's work columns of the tables with a manager per row. Not
# stage_history (no manager column: whoever moved a departed manager's deal, it was not they);
# plus a lead's created_at, since being given a lead makes a manager active (issue 9), though a
# web form, not a person, created it (so it is no sign of the company's own work).
PERSON_WORK: dict[str, tuple[str, ...]] = {
    "deals": WORK_COLUMNS["deals"],
    "leads": ("created_at", *WORK_COLUMNS["leads"]),
    "activities": WORK_COLUMNS["activities"],
    "emails": WORK_COLUMNS["emails"],
}


def work_events(data: CrmData, ids: pd.Series, deal_owner: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(row in `ids`, seconds since the epoch) of every dated thing a manager did (PERSON_WORK):
    deal created or closed, lead created/assigned/answered, activity done, email sent.
    `deal_owner`: each deal's row in `ids` when already known."""
    deals = data.deals
    if deal_owner is None:
        deal_owner = positions(deals["manager_id"], ids)
    owner_rows: dict[str, np.ndarray | None] = {"deals": deal_owner}
    owners, times = [], []
    for table, frame, col, mask in event_columns(data, PERSON_WORK, outgoing_only=True):
        if table not in owner_rows:
            owner_rows[table] = _owners(data, table, frame, ids, deal_owner)
        rows = owner_rows[table]
        if rows is None:
            continue
        t = to_ns(frame[col])
        ok = (rows >= 0) & (t != NEVER)
        if mask is not None:
            ok &= mask
        owners.append(rows[ok])
        times.append(t[ok] // _NS_PER_S)
    if not owners:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(owners).astype(np.int64), np.concatenate(times).astype(np.int64)


def _owners(data: CrmData, table: str, frame: pd.DataFrame, ids: pd.Series, deal_owner: np.ndarray) -> np.ndarray | None:
    """Each row's manager (row in `ids`, -1: none) in a table of PERSON_WORK, None when the
    table names none; an activity without a manager is its deal owner's."""
    if table != "activities":
        return positions(frame["manager_id"], ids) if data.has_column(table, "manager_id") else None
    rows = positions(frame["manager_id"], ids)
    blank = np.flatnonzero(frame["manager_id"].isna().to_numpy())
    if len(blank) and data.has_column("activities", "deal_id"):
        at = positions(frame["deal_id"].iloc[blank], data.deals["deal_id"])
        rows[blank] = np.where(at >= 0, deal_owner[np.maximum(at, 0)], -1)
    return rows


def work_keys(data: CrmData, ids: pd.Series, deal_owner: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Sorted int64 keys manager_row * 2^40 + seconds since the first event, one per dated
    thing a manager did (see work_events), and that first second. `last event <= t` per manager is
    then one searchsorted per day."""
    return sorted_keys(*work_events(data, ids, deal_owner))


def sorted_keys(owner: np.ndarray, sec: np.ndarray) -> tuple[np.ndarray, int]:
    """Sorted int64 keys owner * 2^40 + seconds since the first second, and that first second."""
    if not len(sec):
        return np.zeros(0, dtype=np.int64), 0
    t0 = int(sec.min())
    keys = owner * KEY + (sec - t0)
    keys.sort()
    return keys, t0


def last_work(data: CrmData, ids: pd.Series, now_ns: int) -> np.ndarray:
    """Each manager's (of `ids`) latest dated work at or before `now_ns`, in seconds since the
    epoch (-1: none): one scan's answer without sorting every event."""
    owner, sec = work_events(data, ids)
    out = np.full(len(ids), -1, dtype=np.int64)
    ok = sec <= now_ns // _NS_PER_S
    np.maximum.at(out, owner[ok], sec[ok])
    return out


def recently_active(keys: np.ndarray, t0: int, n: int, now_ns: int, window_days: int) -> np.ndarray:
    """Which of `n` managers did something in (now - window, now]."""
    return any_within(keys, t0, np.arange(n, dtype=np.int64), now_ns, window_days)


def any_within(keys: np.ndarray, t0: int, rows: np.ndarray, now_ns: int, window_days: int) -> np.ndarray:
    """Which owners `rows` (int64 slots of sorted_keys) have a key in (now - window, now]."""
    if not len(keys) or not len(rows):
        return np.zeros(len(rows), dtype=bool)
    off = min(max(now_ns // _NS_PER_S - t0, -1), KEY - 1)
    idx = np.searchsorted(keys, rows * KEY + off, side="right") - 1
    last = keys[np.maximum(idx, 0)]
    return (idx >= 0) & (last // KEY == rows) & (last % KEY > off - window_days * 86_400)

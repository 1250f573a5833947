"""Who works here: the dated things each manager did, and who did any lately.

One notion shared by the detectors that must not talk to or about people who left or never
started: manager_load compares only working managers, stalled_deal sends a departed manager's
deals to the director. Work is any dated thing a person did: deal created or closed, lead
created/assigned/answered, activity done, email sent. For a daily replay the events are sorted
once as int64 keys (manager row * KEY + seconds since the first event), so "last work at or
before t" per manager is one searchsorted per day; one scan takes the maximum directly.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from crm.data import CrmData
from detectors.columns import NEVER, positions, to_ns

_NS_PER_S = 10**9
KEY = 1 << 40  # seconds per manager slot in the sorted work keys (~35,000 years)


def marked_inactive(managers: pd.DataFrame) -> frozenset[str]:
    """manager_ids marked active = false (an empty cell or no column: active)."""
    if "active" not in managers.columns:
        return frozenset()
    off = managers["active"].eq(False).to_numpy(dtype=bool, na_value=False)
    return frozenset(str(m) for m in managers["manager_id"][off])


def work_events(data: CrmData, ids: pd.Series, deal_owner: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(row in `ids`, seconds since the epoch) of every dated thing a manager did: deal created
    or closed, lead created/assigned/answered, activity done, email sent. `deal_owner`: each
    deal's row in `ids` when already known."""
    owners, times = [], []

    def add(rows: np.ndarray, mask: np.ndarray | None, *cols) -> None:
        for col in cols:
            t = to_ns(col)
            ok = (rows >= 0) & (t != NEVER)
            if mask is not None:
                ok &= mask
            owners.append(rows[ok])
            times.append(t[ok] // _NS_PER_S)

    deals = data.deals
    if deal_owner is None:
        deal_owner = positions(deals["manager_id"], ids)
    add(deal_owner, None, deals["created_at"], *([deals["closed_at"]] if data.has_column("deals", "closed_at") else []))
    if data.leads is not None and data.has_column("leads", "manager_id"):
        ld = data.leads
        add(positions(ld["manager_id"], ids), None, ld["created_at"],
            *[ld[c] for c in ("assigned_at", "first_response_at") if data.has_column("leads", c)])
    act = data.activities
    if act is not None and data.has_column("activities", "done_at"):
        rows = positions(act["manager_id"], ids)
        blank = np.flatnonzero(act["manager_id"].isna().to_numpy())
        if len(blank) and data.has_column("activities", "deal_id"):  # no manager on the row: the deal's owner
            at = positions(act["deal_id"].iloc[blank], deals["deal_id"])
            rows[blank] = np.where(at >= 0, deal_owner[np.maximum(at, 0)], -1)
        add(rows, None, act["done_at"])
    em = data.emails
    if em is not None and data.has_column("emails", "manager_id"):
        out = (em["direction"] == "out").to_numpy(dtype=bool, na_value=False)
        add(positions(em["manager_id"], ids), out, em["sent_at"])
    return np.concatenate(owners).astype(np.int64), np.concatenate(times).astype(np.int64)


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

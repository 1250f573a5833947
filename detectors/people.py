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

# Contact with clients: a call, meeting or task done, an email sent. A CRM's catch-all user
# ("Не назначен") is given deals every day, and their deals move and close, yet nobody ever
# calls about one: in a company that records contacts, an owner with none, by them or on their
# deals, is not working their deals.
CONTACT_WORK: dict[str, tuple[str, ...]] = {
    "activities": WORK_COLUMNS["activities"],
    "emails": WORK_COLUMNS["emails"],
}


def marked_inactive(managers: pd.DataFrame) -> frozenset[str]:
    """manager_ids marked active = false (an empty cell or no column: active)."""
    if "active" not in managers.columns:
        return frozenset()
    off = managers["active"].eq(False).to_numpy(dtype=bool, na_value=False)
    return frozenset(str(m) for m in managers["manager_id"][off])


def work_events(data: CrmData, ids: pd.Series, deal_owner: np.ndarray | None = None,
                columns: dict[str, tuple[str, ...]] = PERSON_WORK, by_deal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(row in `ids`, seconds since the epoch) of every dated thing a manager did (`columns`,
    PERSON_WORK: deal created or closed, lead created/assigned/answered, activity done, email
    sent). `deal_owner`: each deal's row in `ids` when already known. `by_deal`: an activity or
    email on a known deal is its owner's (whoever made the call, the deal was worked)."""
    deals = data.deals
    if deal_owner is None:
        deal_owner = positions(deals["manager_id"], ids)
    owner_rows: dict[str, np.ndarray | None] = {"deals": deal_owner}
    owners, times = [], []
    for table, frame, col, mask in event_columns(data, columns, outgoing_only=True):
        if table not in owner_rows:
            owner_rows[table] = _owners(data, table, frame, ids, deal_owner, by_deal)
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


def _owners(data: CrmData, table: str, frame: pd.DataFrame, ids: pd.Series, deal_owner: np.ndarray,
            by_deal: bool = False) -> np.ndarray | None:
    """Each row's manager (row in `ids`, -1: none) in a table of PERSON_WORK, None when the
    table names none; an activity without a manager is its deal owner's (`by_deal`: every
    activity or email on a known deal is)."""
    named = data.has_column(table, "manager_id")
    if not (table == "activities" or by_deal and table == "emails"):
        return positions(frame["manager_id"], ids) if named else None
    rows = positions(frame["manager_id"], ids) if "manager_id" in frame.columns else np.full(len(frame), -1, dtype=np.int64)
    if not data.has_column(table, "deal_id"):
        return rows if named else None
    blank = frame["manager_id"].isna().to_numpy() if "manager_id" in frame.columns else np.ones(len(frame), dtype=bool)
    pick = np.arange(len(frame)) if by_deal else np.flatnonzero(blank)
    if len(pick):
        at = positions(frame["deal_id"].iloc[pick], data.deals["deal_id"])
        rows[pick] = np.where(at >= 0, deal_owner[np.maximum(at, 0)], rows[pick])
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
    return latest(*work_events(data, ids), len(ids), now_ns)


def latest(owner: np.ndarray, sec: np.ndarray, n: int, now_ns: int) -> np.ndarray:
    """Each of `n` owners' latest second at or before `now_ns` (-1: none)."""
    out = np.full(n, -1, dtype=np.int64)
    ok = sec <= now_ns // _NS_PER_S
    np.maximum.at(out, owner[ok], sec[ok])
    return out


def work_and_contact(data: CrmData, ids: pd.Series) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(owner, seconds) of every dated work (PERSON_WORK), and of every contact with a client
    (CONTACT_WORK) made by the owner or on their deals by anyone."""
    deal_owner = positions(data.deals["manager_id"], ids)
    return work_events(data, ids, deal_owner), work_events(data, ids, deal_owner, CONTACT_WORK, by_deal=True)


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

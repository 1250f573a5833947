"""Who works here: the dated things each manager did, and who is working on a day.

One notion (Workforce) shared by the detectors and check-config, which must not talk to or
about people who left, never started or never work their deals: stalled_deal sends such a
person's stalled deals to the director, manager_load never compares them nor plans deals to
or from them, check-config lists them. Work is any dated thing a person did (PERSON_WORK: the
company's own work of crm.freshness, read the same way, on the tables that name a manager, and
a lead they were given); an owner cell that names nobody (crm.owners) is no one's, so an
activity written to «Без ответственного» is its deal owner's work, like one with no owner.
Contact (CONTACT_WORK) is a call, task or email by them or on their deals. For a daily replay
the events are sorted once as int64 keys (manager row * KEY + seconds since the first event),
so "last work at or before t" per manager is one searchsorted per day; one scan takes the
maximum directly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm.data import CrmData
from crm.freshness import WORK_COLUMNS, event_columns
from crm.owners import names_nobody
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


def work_and_contact(data: CrmData, ids: pd.Series, deal_rows: dict[str, np.ndarray] | None = None,
                     deal_owner: np.ndarray | None = None,
                     ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(owner, seconds) of every dated work (PERSON_WORK), and of every contact with a client
    (CONTACT_WORK) made by the owner or on their deals by anyone (whoever made the call, the
    deal was worked); each column read once. `deal_rows`: table -> each row's deal row (-1:
    none) where the caller has it already (millions of ids are costly to look up twice);
    `deal_owner`: each deal's row in `ids` when already known."""
    return _events(data, ids, deal_owner, contacts=True, deal_rows=deal_rows or {})


def _events(data: CrmData, ids: pd.Series, deal_owner: np.ndarray | None, contacts: bool = False,
            deal_rows: dict[str, np.ndarray] | None = None):
    """(work events, contact events or empty) as (owner rows, seconds) pairs."""
    if deal_owner is None:
        deal_owner = positions(data.deals["manager_id"], ids)
    rows_of: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = {"deals": (deal_owner, None)}
    work: tuple[list, list] = ([], [])
    contact: tuple[list, list] = ([], [])
    for table, frame, col, mask in event_columns(data, PERSON_WORK, outgoing_only=True):
        if table not in rows_of:
            rows_of[table] = _owners(data, table, frame, ids, deal_owner, contacts and table in CONTACT_WORK,
                                     (deal_rows or {}).get(table))
        t = to_ns(frame[col])
        valid = t != NEVER if mask is None else (t != NEVER) & mask
        for rows, out in zip(rows_of[table], (work, contact)):
            if rows is not None:
                ok = valid & (rows >= 0)
                out[0].append(rows[ok])
                out[1].append(t[ok] // _NS_PER_S)
    return tuple((np.concatenate(o).astype(np.int64), np.concatenate(s).astype(np.int64)) if o
                 else (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)) for o, s in (work, contact))


def _owners(data: CrmData, table: str, frame: pd.DataFrame, ids: pd.Series, deal_owner: np.ndarray,
            contacts: bool, at: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Each row's manager (row in `ids`, -1: none) in a table of PERSON_WORK, None when the
    table names none: as work (an activity without a manager, or whose owner cell names nobody,
    is its deal owner's) and, with
    `contacts`, as a contact (a row on a known deal is its owner's, else its manager's)."""
    named = data.has_column(table, "manager_id")
    manager = positions(frame["manager_id"], ids) if "manager_id" in frame.columns else None
    blank = np.ones(len(frame), dtype=bool)
    if manager is not None:  # an owner cell naming nobody («Без ответственного», crm.owners) is blank
        nobody = names_nobody(data, frame["manager_id"])
        manager = np.where(nobody, -1, manager)
        blank = frame["manager_id"].isna().to_numpy() | nobody
    work = manager if named else None
    if not data.has_column(table, "deal_id") or not (table == "activities" or contacts):
        return work, (manager if named else None) if contacts else None
    # the deal behind every row for contacts; for work alone only the rows without a manager
    pick = slice(None) if contacts else np.flatnonzero(blank)
    if at is None:
        at = positions(frame["deal_id"].iloc[pick], data.deals["deal_id"])
    elif not contacts:
        at = at[pick]
    on_deal = np.full(len(frame), -1, dtype=np.int64)
    if len(deal_owner):  # an export of no deals (a header alone) has no owner to look up
        on_deal[pick] = np.where(at >= 0, deal_owner[np.maximum(at, 0)], -1)
    if table == "activities":
        work = np.where(blank, on_deal, manager if manager is not None else -1)
    if not contacts:
        return work, None
    return work, np.where(on_deal >= 0, on_deal, manager if named else -1)


def sorted_keys(owner: np.ndarray, sec: np.ndarray) -> tuple[np.ndarray, int]:
    """Sorted int64 keys owner * 2^40 + seconds since the first second, and that first second."""
    if not len(sec):
        return np.zeros(0, dtype=np.int64), 0
    t0 = int(sec.min())
    keys = owner * KEY + (sec - t0)
    keys.sort()
    return keys, t0


def latest(owner: np.ndarray, sec: np.ndarray, n: int, now_ns: int) -> np.ndarray:
    """Each of `n` owners' latest second at or before `now_ns` (-1: none)."""
    out = np.full(n, -1, dtype=np.int64)
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


@dataclass
class Working:
    """Who is working on one day, over the managers table's rows (`Workforce.people`).

    idle: no dated work (PERSON_WORK) in the window; silent: working and given deals (one
    created by then), but no contact with a client (CONTACT_WORK) by them or on their deals in
    the window, in a company where at least half of the working people given deals record
    theirs (a company that logs no calls says nothing about anyone; agents who log calls but
    own no deal say nothing about those who own them). Marked inactive people are in
    `inactive`, never in `idle` or `silent`."""

    people: pd.Series
    inactive: np.ndarray
    idle: np.ndarray
    silent: np.ndarray

    @property
    def working(self) -> np.ndarray:
        """Neither marked inactive, idle nor silent: the only people to compare or advise."""
        return ~(self.inactive | self.idle | self.silent)

    def ids(self, mask: np.ndarray) -> frozenset[str]:
        return frozenset(self.people[mask].tolist())

    def why_not(self) -> np.ndarray:
        """Per person: "" (working), "inactive", "idle" or "no_contact" (stalled_deal's words)."""
        out = np.full(len(self.people), "", dtype=object)
        out[self.silent] = "no_contact"
        out[self.idle] = "idle"
        out[self.inactive] = "inactive"
        return out

    def not_working(self) -> dict[str, str]:
        """manager_id -> why they are not working ("inactive", "idle", "no_contact")."""
        why = self.why_not()
        off = why != ""
        return dict(zip(self.people[off].tolist(), why[off].tolist()))


@dataclass
class Workforce:
    """One definition of "who is working" for every detector (stalled_deal hands a non-working
    person's deals to the director; manager_load never compares, gives to or takes from them;
    check-config lists them): the managers table's people, their dated work and their contacts
    with clients, answered per day by `at`. A replay keeps sorted keys (one searchsorted per
    day); one scan (`now_ns` given to `workforce`) only each person's latest, up to that day."""

    people: pd.Series  # manager_id per row of the managers table
    inactive: np.ndarray  # marked active = false
    window_days: int
    work: tuple[np.ndarray, int] | None = None  # a replay: sorted keys and their first second
    contact: tuple[np.ndarray, int] | None = None
    scan: tuple[int, np.ndarray, np.ndarray] | None = None  # one scan: (now ns, last work s, last contact s)
    first_deal: np.ndarray | None = None  # each person's first deal created (ns; int64 max: none)

    def at(self, now_ns: int) -> Working | None:
        """Who works at `now_ns`; None when prepared for one scan and asked about another day."""
        n = len(self.people)
        if self.scan is not None:
            if self.scan[0] != now_ns:
                return None
            since = now_ns // _NS_PER_S - self.window_days * 86_400
            last, contact = self.scan[1], self.scan[2]
            live, talked = (last >= 0) & (last > since), (contact >= 0) & (contact > since)
        else:
            live = recently_active(*self.work, n, now_ns, self.window_days)
            talked = recently_active(*self.contact, n, now_ns, self.window_days)
        live &= ~self.inactive
        given = live & (self.first_deal <= now_ns)
        silent = given & ~talked if 2 * int((talked & given).sum()) >= int(given.sum()) else np.zeros(n, dtype=bool)
        return Working(self.people, self.inactive, ~live & ~self.inactive, silent)


class _Kept:
    """The Workforces built for the last loaded CrmData, held weakly (as registry.SkipNote holds
    its data): every detector of one scan (stalled_deal, manager_load, lead_sla, silent_client,
    lead_score, deal_risk) reads the tables once between them, and a replay builds its sorted
    keys once. Keyed by the window, the scan's day (None: a replay) and the identity of the
    tables read, so a table replaced on the data is read again."""

    def __init__(self) -> None:
        self._data: object | None = None
        self._built: dict[tuple, Workforce] = {}

    def get(self, data: CrmData, window_days: int, now_ns: int | None,
            deal_rows: dict[str, np.ndarray] | None, build: bool = True) -> Workforce | None:
        import weakref

        if self._data is None or self._data() is not data:
            self._data, self._built = weakref.ref(data), {}
        key = (window_days, now_ns, *(id(data.table(t)) for t in ("managers", *PERSON_WORK)))
        who = self._built.get(key)
        if who is None and build:
            who = self._built[key] = workforce(data, window_days, now_ns, deal_rows)
        return who


_kept = _Kept()


def shared_workforce(data: CrmData, window_days: int, now_ns: int | None = None,
                     deal_rows: dict[str, np.ndarray] | None = None) -> Workforce:
    """`workforce(...)`, built once per loaded data, window and day for every detector that asks
    (`deal_rows` only saves the first builder a lookup; the answer is the same without)."""
    who = _kept.get(data, window_days, now_ns, deal_rows)
    assert who is not None
    return who


def working_at(data: CrmData, window_days: int, now_ns: int) -> Working:
    """Who is working at `now_ns` (Workforce.at), for detectors that run per day without a
    prepare step (lead_score, deal_risk, silent_client): the events are read and sorted once
    per loaded data (a replay's keys, shared_workforce), each day one `at`; a scan of that very
    day already read by another detector (one scan's Workforce) is reused as it is."""
    scan = _kept.get(data, window_days, now_ns, None, build=False)
    who = (scan if scan is not None else shared_workforce(data, window_days)).at(now_ns)
    assert who is not None  # a replay Workforce answers every day, a scan its own
    return who


def workforce(data: CrmData, window_days: int, now_ns: int | None = None,
              deal_rows: dict[str, np.ndarray] | None = None) -> Workforce:
    """The managers table's people and what they did (work_and_contact): sorted keys for a
    replay, or with `now_ns` (one scan, one day) each one's latest work and contact by then."""
    people = data.managers["manager_id"].astype("str").reset_index(drop=True)
    marked = marked_inactive(data.managers)
    inactive = people.isin(marked).to_numpy(dtype=bool) if marked else np.zeros(len(people), dtype=bool)
    deal_owner = positions(data.deals["manager_id"], people)
    work, contact = work_and_contact(data, people, deal_rows, deal_owner)
    first = np.full(len(people), np.iinfo(np.int64).max, dtype=np.int64)
    created = to_ns(data.deals["created_at"])
    ok = (deal_owner >= 0) & (created != NEVER)
    np.minimum.at(first, deal_owner[ok], created[ok])
    if now_ns is not None:
        n = len(people)
        return Workforce(people, inactive, window_days, first_deal=first,
                         scan=(now_ns, latest(*work, n, now_ns), latest(*contact, n, now_ns)))
    return Workforce(people, inactive, window_days, work=sorted_keys(*work), contact=sorted_keys(*contact),
                     first_deal=first)

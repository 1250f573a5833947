"""stalled_deal: an open deal nobody has touched for longer than its stage normally allows.

"Touched" means, up to `now`: entering its current stage, or a done call, meeting, email or
task (activities linked to the deal, or to its client with no deal given), or any email in
the emails table linked to the deal or exchanged with the deal's client. Notes and planned
but not done activities do not count.

Idle time is counted in working days of the company calendar ([calendar], shared with
lead_sla): the days from the last touch's local day (counted) to today's (not counted) that
are working days. So a deal touched on 30 December has waited 2 working days on 5 January in
Kazakhstan, not 6: the New Year holidays do not make every deal stall on the first day back.

A stage's limit is, in this order: `stage_limits` (configured); else learned from history
(at least `min_moves` deals left the stage); else `default_limit_days`. Learned = the time
within which the `quantile` share (0.8) of deals that entered the stage in the last
`learn_days` moved on (to another stage, or closed), by a Kaplan-Meier product-limit
estimate: deals still at the stage count as censored at their time so far, so a stage where
many deals sit for weeks gets a long limit rather than the pace of the few that moved. It is
floored and capped (`min_limit_days`, `max_limit_days`). Only history up to `now` is used:
a stay whose exit is later than `now` is still waiting (censored), and a replay learns anew
for each day from the stays entered by then (one bincount per stage, no sort).
A deal is stalled when its idle working days exceed the limit. Comparing idle time (since the
last touch) with the time deals spend at the stage altogether is conservative: a deal flagged
has had no touch for longer than most deals take to leave the stage.

One insight per stalled deal, so each can be snoozed on its own; escalated (severity
critical, the director sees it too) at `escalate_after_days` idle working days. Deals idle
far beyond the limit (more than `abandon_factor` times it, or `abandon_after_days`) are not an
item each: one hygiene item per manager lists how many look abandoned, the oldest first, and
asks to close or update them (to the manager only, never escalated). The stalled deals of a
manager the managers file marks inactive (active = false) are one item for the director to
hand over instead: the person who left is never told, and the deals are not lost from view.
So are those of a manager with no deal, lead, activity or email in `active_window_days` (an
export without the `active` column: a person who left keeps their deals there too), and those
of an owner who is given deals but records no call, task or email in that window while most
working people given deals record theirs (a CRM's catch-all user: per deal, its flood went to
nobody who works them); detectors.people.Workforce decides both, for manager_load too. Deals whose owner cell names nobody («Без ответственного», "No owner", the managers
file's placeholder user: crm.owners) are one director item of their own from their first stalled
deal: nobody is there to tell, and nobody is named as their manager.

The deal's state is taken as of `now` (open then, stage then), so backtest replays history
honestly: a deal won last month was still open, and maybe stalled, two months ago.
Split into `prepare` (factorise ids, sort events per deal once, build the stays) and
`detect_at` (array masks).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from crm.activities import read_from_deals_file
from crm.data import CrmData
from crm.normalize import last_touch_column
from crm.owners import names_nobody, placeholders
from crm.stages import stage_repeats
from detectors.insight import Audience, Insight, make_fingerprint
from detectors.registry import DetectorSpec, Need, register
from detectors.columns import NEVER, iso_utc, positions, to_ns
from detectors.people import Workforce, marked_inactive, shared_workforce
from detectors.stats import ts_ns
from detectors.working_hours import WorkCalendar, default_calendar

NAME = "stalled_deal"
_DAY_NS = 86_400 * 1_000_000_000
_TOUCH_TYPES = ("call", "meeting", "email", "task")
# Row order of the touch matrix in detect_at; names are the facts' last_touch_kind values
# (activities use their own type).
_SOURCES = ("stage_change", "activity_deal", "activity_client", "email_deal", "email_client")
_NO_EXIT = np.iinfo(np.int64).max  # a stay nobody has left (yet)
_EXAMPLES = 5  # oldest deals named in an "abandoned" item


class StalledDealSpec(DetectorSpec):
    quantile: float = Field(0.8, gt=0, lt=1, description="share of deals that move on from a stage within its learned limit")
    min_moves: int = Field(30, ge=1, description="deals that left a stage needed before its limit is learned")
    learn_days: int = Field(365, ge=7, description="calendar days of stage entries the limits are learned from")
    min_limit_days: int = Field(3, ge=1, description="a learned limit is never shorter (working days)")
    max_limit_days: int = Field(30, ge=1, description="a learned limit is never longer (working days)")
    default_limit_days: int = Field(5, ge=1, description="working days allowed at a stage too new to learn from")
    stage_limits: dict[str, int] = Field(default_factory=dict, description="working days allowed per stage name (no learning)")
    escalate_after_days: int = Field(15, ge=1, description="idle working days after which the director is told too")
    abandon_factor: float = Field(4.0, gt=1, description="idle beyond this many times the limit: looks abandoned")
    abandon_after_days: int = Field(60, ge=1, description="idle beyond this many working days: looks abandoned")
    no_contact_min_deals: int = Field(10, ge=1, description=(
        "an owner given deals but with no call, task or email in the active window (while most working people "
        "record theirs) and at least this many stalled deals: one item for the director (a catch-all CRM user)"))
    # The company calendar, shared with lead_sla: filled by bot/config.py from [calendar] and the
    # config's timezone (not a [detectors.stalled_deal] key); excluded from dumps.
    calendar: WorkCalendar = Field(default_factory=default_calendar, exclude=True)
    # Who is working: filled by bot/config.py from [detectors.manager_load] active_window_days
    # (one notion of "working" for every detector; not a [detectors.stalled_deal] key).
    active_window_days: int = Field(90, ge=1, le=730, exclude=True)

    @field_validator("stage_limits")
    @classmethod
    def _positive(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: n for k, n in v.items() if n < 1}
        if bad:
            raise ValueError("every stage limit must be >= 1 day, got " + ", ".join(f"{k!r} = {n}" for k, n in bad.items()))
        return v

    @model_validator(mode="after")
    def _bounds(self) -> "StalledDealSpec":
        if self.min_limit_days > self.max_limit_days:
            raise ValueError(f"min_limit_days ({self.min_limit_days}) must not exceed max_limit_days ({self.max_limit_days})")
        return self


@dataclass
class _Stays:
    """Every stay at a stage (one stage-history row): stage code, entry and exit
    as UTC ns and as working-day numbers. Exit: the deal's next stage entry, else its closing
    (won/lost with closed_at), else none (_NO_EXIT: still there, or closed at an unknown time)."""

    stage: np.ndarray
    entry: np.ndarray
    exit: np.ndarray
    entry_wd: np.ndarray
    exit_wd: np.ndarray
    by_entry: bool = False  # sorted by entry: a day's window is a slice, not a mask

    def sort(self) -> None:
        """Sort by entry once for a replay, so each day's learning window is two searchsorted."""
        if not self.by_entry:
            order = np.argsort(self.entry, kind="stable")
            for name in ("stage", "entry", "exit", "entry_wd", "exit_wd"):
                setattr(self, name, getattr(self, name)[order])
            self.by_entry = True

    def window(self, start_ns: int, now_ns: int) -> slice | np.ndarray:
        """The stays entered in (start, now]."""
        if self.by_entry:
            return slice(int(np.searchsorted(self.entry, start_ns, side="right")),
                         int(np.searchsorted(self.entry, now_ns, side="right")))
        return np.flatnonzero((self.entry > start_ns) & (self.entry <= now_ns))


@dataclass
class _Limits:
    """Each stage's limit at one `now`: working days, where it came from, and the learning behind it."""

    days: np.ndarray  # stage code -> limit (working days)
    source: np.ndarray  # stage code -> 0 learned, 1 configured, 2 default
    learned: np.ndarray  # stage code -> KM quantile in working days, -1 when not reached within the cap
    moves: np.ndarray  # stage code -> stays that ended in the learning window


_SOURCE_NAMES = ("learned", "configured", "default")


def _opt(v: object) -> object:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    return v


@dataclass
class _Events:
    """Events of one kind (time, owner code, source row), for "the owner's last event up to now".

    A single scan answers with one masked group-max. A replay sorts once by (time, source row)
    (`sort`) and keeps the answer of the day before: a later day only applies the events in
    between (found by searchsorted), so each day costs its new events, not all of them.
    """

    owner: np.ndarray
    time: np.ndarray
    row: np.ndarray  # row in the source table (for evidence and the activity type)
    is_sorted: bool = False
    # the replay's running answer: per owner, time and row of the last event up to `upto`
    upto: int = NEVER
    last_t: np.ndarray | None = None
    last_r: np.ndarray | None = None

    @classmethod
    def build(cls, owner: np.ndarray, time: np.ndarray) -> "_Events":
        rows = np.flatnonzero((owner >= 0) & (time != NEVER))
        return cls(owner[rows].astype(np.int64), time[rows], rows)

    def sort(self) -> None:
        if not self.is_sorted:
            order = np.lexsort((self.row, self.time))
            self.owner, self.time, self.row = self.owner[order], self.time[order], self.row[order]
            self.is_sorted = True

    def last_up_to(self, now_ns: int, n_owners: int) -> tuple[np.ndarray, np.ndarray]:
        """Per owner: time and source row of the latest event at or before now (NEVER / -1 if none).

        Ties in time go to the event later in the source table, sorted or not. The arrays
        returned are read-only views of the running answer when sorted: do not modify them.
        """
        if self.is_sorted:
            return self._advance(now_ns, n_owners)
        return self._group_last(self.time <= now_ns, n_owners)

    def _group_last(self, m: np.ndarray | slice, n_owners: int) -> tuple[np.ndarray, np.ndarray]:
        """Per owner, the latest of the events selected by `m` (ties: the later source row)."""
        out_t = np.full(n_owners, NEVER, dtype=np.int64)
        out_r = np.full(n_owners, -1, dtype=np.int64)
        owner, time, row = self.owner[m], self.time[m], self.row[m]
        np.maximum.at(out_t, owner, time)
        idx = np.flatnonzero(time == out_t[owner])
        np.maximum.at(out_r, owner[idx], row[idx])
        return out_t, out_r

    def _advance(self, now_ns: int, n_owners: int) -> tuple[np.ndarray, np.ndarray]:
        hi = int(np.searchsorted(self.time, now_ns, side="right"))
        if self.last_t is None or now_ns < self.upto or len(self.last_t) != n_owners:
            # first day, or a step back in time: the answer from scratch over the prefix
            self.last_t, self.last_r = self._group_last(slice(0, hi), n_owners)
        else:
            lo = int(np.searchsorted(self.time, self.upto, side="right"))
            if hi > lo:
                # Every new event is later than (or, at the same time, after in the table) all
                # applied ones: the last new event of each owner wins, found first in reverse.
                owners, first = np.unique(self.owner[lo:hi][::-1], return_index=True)
                pick = hi - 1 - first
                self.last_t[owners] = self.time[pick]
                self.last_r[owners] = self.row[pick]
        self.upto = now_ns
        t, r = self.last_t.view(), self.last_r.view()
        t.flags.writeable = r.flags.writeable = False
        return t, r


@dataclass
class StalledDealState:
    spec: StalledDealSpec
    columns: dict[str, pd.Series | None]  # deal columns the facts need; only stalled rows are read
    created: np.ndarray
    closed: np.ndarray
    status_open: np.ndarray
    status_closed_at_known: np.ndarray  # won/lost with a closed_at: open before it
    deal_client: np.ndarray  # client code per deal, -1 if none
    stage_names: np.ndarray  # code -> stage
    deal_stage: np.ndarray  # current stage code per deal
    configured: np.ndarray  # stage code -> configured limit (stage_limits), -1 if none
    calendar: WorkCalendar
    stays: _Stays  # every stay of the whole history (all deals), for learning the limits
    history: _Events  # owner = deal, row -> history row
    history_stage: np.ndarray  # stage code per history row
    act_deal: _Events
    act_client: _Events
    act_id: pd.Series
    act_type: pd.Series
    email_deal: _Events
    email_client: _Events
    email_id: pd.Series
    n_clients: int
    client_names: pd.Series | None  # name per client code (clients table), None without it
    manager_names: dict[str, str]
    # owner cells that name nobody (crm.owners: «Без ответственного», "No owner", a catch-all
    # user's id): their stalled deals are one director item to hand over, never a person's
    nobody: frozenset[str] = frozenset()
    nobody_names: dict[str, str] = field(default_factory=dict)  # a placeholder user's id -> its name
    # manager_ids the managers file marks inactive (active = false): their stalled deals are
    # the director's to hand over, never an item to a person who left
    inactive: frozenset[str] = frozenset()
    # who is working (detectors.people.Workforce, the notion manager_load and check-config share):
    # who did nothing in active_window_days before a day has left in all but name (exports
    # without `active`); an owner nobody contacts clients for (a CRM's catch-all user) is not
    # working their deals
    workforce: Workforce | None = None
    # deal row -> the facts that do not depend on `now`, and the fingerprint: built on first
    # need and reused by every later day of a replay
    static: dict[int, dict[str, Any]] = field(default_factory=dict)
    # activities read from the deals file (crm.activities.read_from_deals_file): each deal's one
    # touch as of the export; a day before it knows nothing of the deal's touches (not judged)
    touch_known_from: np.ndarray | None = None
    calls: int = 0
    limits: dict[int, _Limits] = field(default_factory=dict)  # now_ns -> limits learned as of then
    # the stage history was derived from the deals: no limit can be learned, and the words say
    # that the export has no history, not that the company has too little of it
    history_derived: bool = False


def skip_reason(data: CrmData) -> str | None:
    """Why this detector says nothing about `data`, or None.

    With a stage history derived from deals and no activities or emails, the only "touch" we
    know is the deal's creation: every older open deal would look stalled, which is not evidence.
    """
    if data.stage_history_derived and not _has_rows(data.activities) and not _has_rows(data.emails):
        unknown = "no stage history, activities or emails: when a deal was last touched is unknown"
        touch = last_touch_column(data.unread_columns.get("deals", ()))
        if touch is None:
            return f"{unknown} (provide stage_history.csv, activities.csv or emails.csv)"
        # a web-UI export (amoCRM, Bitrix24) cannot give those files: its own column can stand in
        their = data.read_columns.get("deals", {})
        deal_id = their.get("deal_id", "deal_id")
        owner = f', manager_id = "{their["manager_id"]}"' if "manager_id" in their else ""
        return (f"{unknown}; the deals column \"{touch}\" can stand in: read the deals file again as activities "
                f"([source.files] activities = \"{_file_name(data.origins.get('deals'))}\"; "
                f"[source.columns.activities] activity_id = \"{deal_id}\", deal_id = \"{deal_id}\"{owner}, "
                f"done_at = \"{touch}\"; [source.fill.activities] type = \"task\"; see the README, web-UI exports)")
    return None


def _file_name(origin: str | None) -> str:
    """The deals file as [source.files] names it (readers give its name); a placeholder for a
    source that is not a file (SQL and CRM API origins read "<table>: <where>") or for several
    files (crm.several_files.origin_of lists them: the same list or pattern as deals then)."""
    if origin and ", " in origin:
        return "<the deals files: the same list or pattern as [source.files] deals>"
    return "<deals file>" if not origin or ": " in origin else origin


def config_problems(data: CrmData, spec: StalledDealSpec) -> list[str]:
    """Keys of the spec that name something this data does not have: a `stage_limits` stage
    that is not a stage of the pipeline or of any deal would be silently ignored."""
    import difflib

    known = list(dict.fromkeys([*data.stages, *data.deals["stage"].dropna().unique(),
                                *data.stage_history["stage"].dropna().unique()]))
    problems = []
    for stage in spec.stage_limits:
        if stage in known:
            continue
        close = difflib.get_close_matches(stage, known, n=1, cutoff=0.6)
        by_case = [k for k in known if k.casefold() == stage.casefold()]
        hint = f" (did you mean `{(by_case or close)[0]}`?)" if by_case or close else \
            " (stages in the data: " + ", ".join(known[:15]) + (", ..." if len(known) > 15 else "") + ")"
        problems.append(f"stage_limits: {stage!r} is not a stage in the data, so its limit is never used{hint}")
    return problems


def _has_rows(frame: pd.DataFrame | None) -> bool:
    return frame is not None and len(frame) > 0


def prepare(data: CrmData, spec: StalledDealSpec, now: datetime | None = None) -> StalledDealState | None:
    """The day-independent part; None when there is nothing honest to say (see skip_reason).

    With `now` (a single scan, not a replay) only the deals open at `now` are kept: closed
    deals cannot stall, and joining millions of events to the few open deals is several
    times cheaper than to all of them. `detect_at(state, now)` answers the same either way.
    """
    if skip_reason(data) is not None:
        return None
    d = data.deals
    sh = data.stage_history
    # History row -> row in the whole deals table: the stays (learning) need every deal, the
    # touches only the deals kept below, found through the same join.
    hist_row = positions(sh["deal_id"], d["deal_id"])
    entered = to_ns(sh["entered_at"])
    # Per deal of the whole table, read once: the replay's open-at-now test and the stays' exits.
    created = to_ns(d["created_at"])
    closed = to_ns(d["closed_at"]) if "closed_at" in d.columns else np.full(len(d), NEVER, dtype=np.int64)
    status = d["status"].astype("str")
    status_open = np.asarray(status == "open", dtype=bool)
    closed_known = np.asarray(status.isin(["won", "lost"]), dtype=bool) & (closed != NEVER)
    all_closed_known, all_closed = closed_known, closed
    if now is not None:
        now_ns = ts_ns(now)
        keep = np.flatnonzero((created != NEVER) & (created <= now_ns) & (status_open | (closed_known & (closed > now_ns))))
        d = d.iloc[keep].reset_index(drop=True)
        created, closed, status_open, closed_known = created[keep], closed[keep], status_open[keep], closed_known[keep]
        remap = np.full(len(data.deals) + 1, -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        hist_owner = remap[hist_row]  # -1 (absent) reads the last slot, which is -1
    else:
        hist_owner = hist_row
    deal_ids = d["deal_id"]
    client_col = d["client_id"] if "client_id" in d.columns else pd.Series([None] * len(d), dtype="str")
    deal_client, client_uniques = pd.factorize(client_col)
    client_keys = pd.Series(client_uniques)

    stage_codes, stage_names = pd.factorize(pd.concat([d["stage"], sh["stage"]], ignore_index=True))
    stage_names = np.asarray(stage_names, dtype=object)
    configured = np.array([spec.stage_limits.get(s, -1) for s in stage_names], dtype=np.int64)
    # A history derived from the deals holds one made-up stay per deal: nothing to learn from.
    learn_rows = np.full(len(hist_row), -1, dtype=np.int64) if data.stage_history_derived else hist_row
    if now is not None:
        # A single scan learns only from stays entered in its window; their exits (a later entry
        # of the same deal, or the closing) are in it too, so the rest need not be sorted.
        learn_rows = np.where(entered > ts_ns(now) - spec.learn_days * _DAY_NS, learn_rows, -1)
    stays, repeats = _build_stays(np.where(all_closed_known, all_closed, _NO_EXIT), learn_rows, entered,
                                  stage_codes[len(d):].astype(np.int64), spec.calendar)
    if len(repeats):  # an edit logged at the stage the deal was at is no stage change either
        entered = entered.copy()
        entered[repeats] = NEVER
    history = _Events.build(hist_owner, entered)

    empty_evt = _Events(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    known_from = None
    act_deal = act_client = email_deal = email_client = empty_evt
    act_id = act_type = email_id = pd.Series([], dtype=object)
    deal_rows: dict[str, np.ndarray] = {}  # each activity's and email's deal row, for the workforce
    if data.activities is not None:
        a = data.activities
        t = to_ns(a["done_at"])
        t[~np.asarray(a["type"].isin(_TOUCH_TYPES), dtype=bool)] = NEVER
        a_deal = deal_rows["activities"] = positions(a["deal_id"], deal_ids)
        a_client = positions(a["client_id"], client_keys)
        a_client = np.where(np.asarray(a["deal_id"].notna() | a["client_id"].isna()), -1, a_client)
        act_deal, act_client = _Events.build(a_deal, t), _Events.build(a_client, t)
        act_id, act_type = a["activity_id"], a["type"]
        if read_from_deals_file(data):
            known_from = np.full(len(d), NEVER, dtype=np.int64)
            has = (a_deal >= 0) & (t != NEVER)
            np.maximum.at(known_from, a_deal[has], t[has])
    if data.emails is not None:
        e = data.emails
        t = to_ns(e["sent_at"])
        e_deal = deal_rows["emails"] = positions(e["deal_id"], deal_ids)
        e_client = positions(e["client_id"], client_keys)
        email_deal, email_client = _Events.build(e_deal, t), _Events.build(e_client, t)
        email_id = e["email_id"]

    client_names = None
    if data.clients is not None:
        row = positions(client_keys, data.clients["client_id"])
        names = data.clients["name"].take(np.maximum(row, 0)).reset_index(drop=True) if len(data.clients) else None
        client_names = names.where(pd.Series(row >= 0)) if names is not None else None
    return StalledDealState(
        spec=spec, created=created, closed=closed,
        columns={c: (d[c] if c in d.columns else None)
                 for c in ("deal_id", "title", "client_id", "manager_id", "amount", "currency")},
        status_open=status_open, status_closed_at_known=closed_known,
        deal_client=np.asarray(deal_client, dtype=np.int64), stage_names=stage_names,
        deal_stage=stage_codes[: len(d)].astype(np.int64), configured=configured,
        calendar=spec.calendar, stays=stays,
        history=history, history_stage=stage_codes[len(d):].astype(np.int64),
        act_deal=act_deal, act_client=act_client, act_id=act_id, act_type=act_type,
        email_deal=email_deal, email_client=email_client, email_id=email_id,
        n_clients=len(client_keys), client_names=client_names, touch_known_from=known_from,
        history_derived=bool(data.stage_history_derived),
        manager_names={str(k): str(v) for k, v in zip(data.managers["manager_id"], data.managers["name"])},
        inactive=marked_inactive(data.managers),
        nobody=frozenset(str(v) for v in pd.unique(d["manager_id"][names_nobody(data, d["manager_id"])])),
        nobody_names={**data.placeholder_names, **{m: str(data.managers["name"][data.managers["manager_id"] == m].iloc[0])
                                                   for m in placeholders(data.managers)}},
        # a scan's deal rows are of the open deals alone: contacts on closed deals count too
        workforce=shared_workforce(data, spec.active_window_days, None if now is None else ts_ns(now),
                                   deal_rows if now is None else None),
    )


def _gone(state: StalledDealState, now_ns: int) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(marked inactive, no recorded work, working but no contact with a client) manager_ids
    over active_window_days before `now`, as detectors.people.Workforce reads them."""
    none: frozenset[str] = frozenset()
    who = state.workforce.at(now_ns) if state.workforce is not None else None
    if who is None:  # prepared for one scan, asked about another day: the flag alone
        return state.inactive, none, none
    return state.inactive, who.ids(who.idle), who.ids(who.silent)


def _build_stays(closed_at: np.ndarray, deal_row: np.ndarray, entry: np.ndarray, stage: np.ndarray,
                 cal: WorkCalendar) -> tuple[_Stays, np.ndarray]:
    """The stays of the whole history (every deal, whatever `now`), in per-deal time order, and
    the history rows (positions in `entry`) that only repeat the stage the deal was already at.

    `deal_row` is each history row's row in the deals table (-1: a deal not in it, skipped), and
    `closed_at` per deal row when it was won or lost (_NO_EXIT if open or unknown).
    One stable sort on (deal, second of entry) orders each deal's stays (entries within the same
    second keep the table's order); a replay sorts them by entry later (`_Stays.sort`).
    A row at the stage of the deal's previous row is no entry (crm.stages.stage_repeats, as the
    models read it): Salesforce's Opportunity History logs every edit of the amount or close
    date that way. Read as entries, they split one stay into short ones "moving on" to the same
    stage, so limits were learned too short."""
    ok = np.flatnonzero((entry != NEVER) & (deal_row >= 0))
    entry, stage, deal = entry[ok], stage[ok], deal_row[ok]
    n = len(entry)
    repeats = np.zeros(0, dtype=np.int64)
    if n:
        sec = (entry - entry.min()) // 1_000_000_000
        if int(sec.max()) < (1 << 30) and len(closed_at) < (1 << 32):
            order = _stable_argsort(deal * (1 << 30) + sec)
        else:
            order = np.lexsort((entry, deal))
        entry, stage, deal = entry[order], stage[order], deal[order]
        rep = stage_repeats(deal, stage)
        if rep.any():
            repeats = ok[order[rep]]
            entry, stage, deal = entry[~rep], stage[~rep], deal[~rep]
            n = len(entry)
    exit_ = np.full(n, _NO_EXIT, dtype=np.int64)
    last = np.ones(n, dtype=bool)
    if n > 1:
        same = deal[1:] == deal[:-1]
        exit_[:-1] = np.where(same, entry[1:], _NO_EXIT)
        last[:-1] = ~same
    # A deal's last stay ends when it was won or lost (if we know when).
    li = np.flatnonzero(last)
    exit_[li] = np.maximum(closed_at[deal[li]], entry[li])  # closed before the entry: a same-day exit
    has_exit = exit_ != _NO_EXIT
    exit_wd = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    both = cal.working_days_ns(np.concatenate([entry, exit_[has_exit]]))
    exit_wd[has_exit] = both[n:]
    return _Stays(stage=stage, entry=entry, exit=exit_, entry_wd=both[:n], exit_wd=exit_wd), repeats


def _stable_argsort(key: np.ndarray) -> np.ndarray:
    """argsort with ties in table order, at the cost of a quicksort (2-3x cheaper than a stable
    sort on millions of rows): only the tied rows, usually few, are sorted again by position."""
    order = np.argsort(key)
    ks = key[order]
    tie = np.flatnonzero(ks[1:] == ks[:-1])
    if len(tie):
        pos = np.union1d(tie, tie + 1)
        order[pos] = order[pos][np.lexsort((order[pos], ks[pos]))]
    return order


def _limits_at(state: StalledDealState, now_ns: int, now_wd: int) -> _Limits:
    """Each stage's limit as of `now`, learned only from stays entered by then (see the module doc).

    Kaplan-Meier on whole working days: durations beyond the cap share one bin, so the
    estimate up to the cap is exact and the cost is one bincount over the window's stays."""
    cached = state.limits.get(now_ns)
    if cached is not None:
        return cached
    spec, st = state.spec, state.stays
    n_stages = len(state.stage_names)
    cap = spec.max_limit_days
    width = cap + 2  # durations 0..cap exactly, cap+1 = "longer"
    w = st.window(now_ns - spec.learn_days * _DAY_NS, now_ns)
    exit_ = st.exit[w]
    event = exit_ <= now_ns
    dur = np.where(event, st.exit_wd[w], now_wd) - st.entry_wd[w]
    key = st.stage[w] * width + np.clip(dur, 0, cap + 1)
    ended = np.bincount(key[event], minlength=n_stages * width).reshape(n_stages, width)
    total = np.bincount(key, minlength=n_stages * width).reshape(n_stages, width)
    at_risk = np.cumsum(total[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(at_risk > 0, ended / np.maximum(at_risk, 1), 0.0)
    moved_share = 1.0 - np.cumprod(1.0 - hazard[:, : cap + 1], axis=1)
    reached = moved_share >= spec.quantile - 1e-9
    learned = np.where(reached.any(axis=1), np.argmax(reached, axis=1), -1).astype(np.int64)
    moves = ended.sum(axis=1).astype(np.int64)
    days = np.full(n_stages, spec.default_limit_days, dtype=np.int64)
    source = np.full(n_stages, 2, dtype=np.int64)
    can_learn = moves >= spec.min_moves
    days[can_learn] = np.clip(np.where(learned[can_learn] >= 0, learned[can_learn], cap), spec.min_limit_days, cap)
    source[can_learn] = 0
    conf = state.configured >= 0
    days[conf], source[conf] = state.configured[conf], 1
    out = _Limits(days=days, source=source, learned=learned, moves=moves)
    if len(state.limits) > 8:  # a replay moves on; keep the few latest only
        state.limits.clear()
    state.limits[now_ns] = out
    return out


def _per_deal(per_client: np.ndarray, deal_client: np.ndarray, fill: int) -> np.ndarray:
    return np.where(deal_client >= 0, per_client[np.maximum(deal_client, 0)] if len(per_client) else fill, fill)


def detect_at(state: StalledDealState | None, now: datetime, *, with_evidence: bool = True) -> list[Insight]:
    """The stalled deals at `now`. `with_evidence=False` leaves evidence empty and reads no
    activity/email ids (a backtest only counts and dedups)."""
    if state is None:
        return []
    spec = state.spec
    now_ns = ts_ns(now)
    n = len(state.created)
    if n == 0:
        return []
    state.calls += 1
    if state.calls == 2:  # a replay: sort the events once, every later day is a mask and a diff
        for ev in (state.history, state.act_deal, state.act_client, state.email_deal, state.email_client):
            ev.sort()
        state.stays.sort()
    is_open = (state.created != NEVER) & (state.created <= now_ns) & (
        state.status_open | (state.status_closed_at_known & (state.closed > now_ns))
    )
    if state.touch_known_from is not None:  # a day before a deal's one known touch knows none of its touches
        is_open &= state.touch_known_from <= now_ns
    if not is_open.any():
        return []
    # Only the deals open at `now` are looked at (a fraction of all in a long history).
    o = np.flatnonzero(is_open)
    h_time, h_row = state.history.last_up_to(now_ns, n)
    h_time, h_row = h_time[o], h_row[o]
    stage = (np.where(h_row >= 0, state.history_stage[np.maximum(h_row, 0)], state.deal_stage[o])
             if len(state.history_stage) else state.deal_stage[o])
    stage_time = np.where(h_time != NEVER, h_time, state.created[o])
    ad_t, ad_r = state.act_deal.last_up_to(now_ns, n)
    ac_t, ac_r = state.act_client.last_up_to(now_ns, state.n_clients)
    ed_t, ed_r = state.email_deal.last_up_to(now_ns, n)
    ec_t, ec_r = state.email_client.last_up_to(now_ns, state.n_clients)
    deal_client = state.deal_client[o]
    times = np.stack([stage_time, ad_t[o], _per_deal(ac_t, deal_client, NEVER),
                      ed_t[o], _per_deal(ec_t, deal_client, NEVER)])
    rows = np.stack([h_row, ad_r[o], _per_deal(ac_r, deal_client, -1),
                     ed_r[o], _per_deal(ec_r, deal_client, -1)])
    src = np.argmax(times, axis=0)
    last_touch = times[src, np.arange(len(o))]
    now_wd = int(state.calendar.working_days_ns(np.array([now_ns], dtype=np.int64))[0])
    idle_days = now_wd - state.calendar.working_days_ns(last_touch)
    limits = _limits_at(state, now_ns, now_wd)
    limit = limits.days[stage]
    local = np.flatnonzero(idle_days > limit)  # positions among the open deals
    stalled = o[local]
    # The last touch of each stalled deal: its kind and id, read in one take per column.
    s_src = src[local]
    s_row = rows[s_src, local]
    # A stage "touch" at the deal's creation is its first stage entry, not a move ("created"):
    # a deal that never moved was said to have had its last "stage change" the day it was made.
    made = (s_src == 0) & (last_touch[local] <= state.created[stalled])
    touch: list[tuple[str, str | None, str | None]] = [("created" if m else "stage_change", None, None)
                                                       for m in made.tolist()]
    is_act, is_email = (s_src == 1) | (s_src == 2), (s_src == 3) | (s_src == 4)
    act_rows = s_row[is_act]
    act_ids = _take(state.act_id, act_rows) if with_evidence else [None] * len(act_rows)
    for j, kind, act_id in zip(np.flatnonzero(is_act).tolist(), _take(state.act_type, act_rows), act_ids):
        touch[j] = (str(kind), "activity_ids", act_id if act_id is None else str(act_id))
    email_ids = _take(state.email_id, s_row[is_email]) if with_evidence else [None] * int(is_email.sum())
    for j, email_id in zip(np.flatnonzero(is_email).tolist(), email_ids):
        touch[j] = ("email", "email_ids", email_id if email_id is None else str(email_id))
    _fill_static(state, stalled)
    s_idle, s_limit = idle_days[local], limit[local]
    abandoned = (s_idle > np.minimum(spec.abandon_factor * s_limit, spec.abandon_after_days)).tolist()
    out: list[Insight] = []
    gone: dict[str, list[dict[str, Any]]] = {}
    left: dict[str, list[dict[str, Any]]] = {}  # stalled deals of managers inactive or idle
    unowned: list[dict[str, Any]] = []  # stalled deals whose owner cell names nobody
    marked, workless, silent = _gone(state, now_ns)
    if silent:  # a silent owner is the director's only with a flood of stalled deals
        per_owner = Counter(state.static[i]["manager_id"] for i in stalled.tolist())
        silent = frozenset(m for m in silent if per_owner[m] >= spec.no_contact_min_deals)
    gone_people = marked | workless | silent
    stage_facts: dict[int, dict[str, Any]] = {}  # the limit's facts, once per stage
    for j, (i, stage_i, idle, touch_ns) in enumerate(zip(
            stalled.tolist(), stage[local].tolist(), s_idle.tolist(), last_touch[local].tolist())):
        owner = state.static[i]["manager_id"]
        # an owner the managers table does not know (HubSpot clears or keeps the name of a
        # removed user): nobody receives their items, so the director hands the deals over
        away = owner in gone_people or owner not in state.manager_names
        if abandoned[j] or away or owner in state.nobody:
            entry = {"row": i, "stage": str(state.stage_names[stage_i]), "days_idle": idle, "touch_ns": touch_ns}
            if owner in state.nobody:
                unowned.append(entry)
            else:
                (left if away else gone).setdefault(owner, []).append(entry)
            continue
        if stage_i not in stage_facts:
            stage_facts[stage_i] = _limit_facts(state, limits, stage_i)
        out.append(_insight(state, i, stage_i, idle, stage_facts[stage_i], touch_ns, now_ns,
                            *touch[j], with_evidence=with_evidence))
    out.sort(key=lambda x: (x.facts["manager_id"] or "", -x.facts["days_idle"], x.subject["deal_id"]))
    out += [_abandoned(state, manager_id, deals, with_evidence=with_evidence) for manager_id, deals in sorted(gone.items())]
    out += [_abandoned(state, manager_id, deals, with_evidence=with_evidence,
                       left="inactive" if manager_id in marked else "idle" if manager_id in workless
                       else "no_contact" if manager_id in silent else "unknown")
            for manager_id, deals in sorted(left.items())]
    if unowned:
        out.append(_abandoned(state, None, unowned, with_evidence=with_evidence, left="nobody"))
    return out


def _limit_facts(state: StalledDealState, limits: _Limits, stage: int) -> dict[str, Any]:
    """Where the stage's limit came from, in the facts so the words can say it truthfully."""
    source = _SOURCE_NAMES[int(limits.source[stage])]
    spec = state.spec
    facts: dict[str, Any] = {"stage_limit_days": int(limits.days[stage]), "limit_source": source}
    if source == "learned":
        learned = int(limits.learned[stage])
        facts |= {"limit_quantile": spec.quantile, "limit_moves": int(limits.moves[stage]), "learn_days": spec.learn_days,
                  # working days within which the quantile share moved on; None: not within the cap
                  "learned_days": learned if learned >= 0 else None,
                  "limit_bound": ("max" if learned < 0 or learned > spec.max_limit_days else
                                  "min" if learned < spec.min_limit_days else None)}
    elif source == "default":
        facts |= {"limit_moves": int(limits.moves[stage]), "min_moves": spec.min_moves}
        if state.history_derived:
            facts["no_history"] = True
    return facts


def _fill_static(state: StalledDealState, rows: np.ndarray) -> None:
    """The static facts of deals not seen before, each column (and client name) read once for all."""
    new = np.asarray([i for i in rows.tolist() if i not in state.static], dtype=np.int64)
    if not len(new):
        return
    cells = {c: (_take(v, new) if v is not None else [None] * len(new)) for c, v in state.columns.items()}
    codes = state.deal_client[new]
    names: list[object] = [None] * len(new)
    if state.client_names is not None:
        known = np.flatnonzero(codes >= 0)
        for j, v in zip(known.tolist(), _take(state.client_names, codes[known])):
            names[j] = _opt(v)
    for j, i in enumerate(new.tolist()):
        d = {c: _opt(v[j]) for c, v in cells.items()}
        deal_id, client_id, manager_id = str(d["deal_id"]), d["client_id"], str(d["manager_id"])
        name = names[j]
        state.static[i] = {
            "deal_id": deal_id,
            "fingerprint": make_fingerprint(NAME, {"deal_id": deal_id}),
            "deal_title": d["title"] or deal_id,
            "client_name": None if client_id is None else str(name if name is not None else client_id),
            "manager_id": manager_id,
            "manager_name": state.manager_names.get(manager_id),
            "amount": float(d["amount"]) if d["amount"] is not None else None,
            "currency": d["currency"],
        }


def _take(col: pd.Series, rows: np.ndarray) -> list:
    return col.take(rows).tolist() if len(rows) else []


def _insight(state: StalledDealState, i: int, stage: int, idle: int, limit_facts: dict[str, Any], touch_ns: int,
             now_ns: int, kind: str, evidence_key: str | None, evidence_id: str | None, *,
             with_evidence: bool = True) -> Insight:
    st = state.static[i]
    evidence: dict[str, list[str]] = {}
    if with_evidence:
        evidence["deal_ids"] = [st["deal_id"]]
        if evidence_key is not None:
            evidence[evidence_key] = [evidence_id]
    escalated = idle >= state.spec.escalate_after_days
    facts = {
        "kind": "stalled",
        "deal_title": st["deal_title"],
        "client_name": st["client_name"],
        "manager_id": st["manager_id"],
        "manager_name": st["manager_name"],
        "stage": str(state.stage_names[stage]),
        "amount": st["amount"],
        "currency": st["currency"],
        "days_idle": idle,  # working days
        "calendar_days_idle": int((now_ns - touch_ns) // _DAY_NS),
        **limit_facts,
        "last_touch_at": iso_utc(touch_ns),
        "last_touch_kind": kind,
        "escalated": escalated,
    }
    return Insight(
        detector=NAME, severity="critical" if escalated else "warning",
        audience=Audience("manager", st["manager_id"]), subject={"deal_id": st["deal_id"]},
        facts=facts, evidence=evidence, fingerprint=st["fingerprint"],
    )


def _abandoned(state: StalledDealState, manager_id: str | None, deals: list[dict[str, Any]], *,
               with_evidence: bool = True, left: str | None = None) -> Insight:
    """One hygiene item for a manager's deals idle far beyond their limits: the oldest named.

    `left`: "inactive" (the managers file says so), "idle" (no deal, lead, activity or email
    of theirs in active_window_days), "no_contact" (deals given, but no activity or email of
    theirs in the window), "unknown" (not in the managers table) or "nobody" (`manager_id` None:
    the owner cells name nobody, crm.owners; one item for all such deals, the words read in
    `owner_words`): the item lists all their stalled deals and goes to the director, who hands
    them over (the person who left is never the one told)."""
    deals = sorted(deals, key=lambda x: (-x["days_idle"], state.static[x["row"]]["deal_id"]))
    spec = state.spec
    statics = [state.static[x["row"]] for x in deals]
    currencies = {st["currency"] for st in statics if st["amount"]}
    amount = sum(st["amount"] or 0.0 for st in statics)
    by_stage: dict[str, int] = {}
    for x in deals:
        by_stage[x["stage"]] = by_stage.get(x["stage"], 0) + 1
    subject = {"manager_id": manager_id, "kind": "left_behind" if left else "abandoned"}
    if left == "nobody":  # no person: the item is about the deals nobody owns
        subject = {"kind": "left_behind", "owner": "nobody"}
    facts = {
        "kind": "abandoned",
        "owner_inactive": bool(left),
        # "inactive" (marked) | "idle" (no recorded work) | "no_contact" (work, but no call, task or
        # email in the window) | "unknown" (not in managers) | "nobody" (no owner) | None
        "owner_gone": left,
        # the CRM's words as written (a placeholder user's name, not its id), the commonest first
        "owner_words": [w for w, _ in sorted(Counter(state.nobody_names.get(st["manager_id"], st["manager_id"]).strip()
                                                     for st in statics).items(), key=lambda kv: (-kv[1], kv[0]))]
        if left == "nobody" else None,
        "active_window_days": spec.active_window_days,
        "manager_id": manager_id,
        "manager_name": state.manager_names.get(manager_id) if manager_id is not None else None,
        "deals": len(deals),
        "oldest_days_idle": deals[0]["days_idle"],
        "abandon_factor": spec.abandon_factor,
        "abandon_after_days": spec.abandon_after_days,
        "by_stage": dict(sorted(by_stage.items(), key=lambda kv: (-kv[1], kv[0]))),
        "amount": amount if len(currencies) == 1 else None,
        "currency": currencies.pop() if len(currencies) == 1 else None,
        # empty or 0 (amoCRM/Kommo write 0 for a budget nobody filled in): not in the sum above
        "no_amount": sum(1 for st in statics if not st["amount"]),
        "examples": [{"deal_id": st["deal_id"], "deal_title": st["deal_title"], "client_name": st["client_name"],
                      "stage": x["stage"], "days_idle": x["days_idle"], "last_touch_at": iso_utc(x["touch_ns"])}
                     for st, x in zip(statics[:_EXAMPLES], deals[:_EXAMPLES])],
        "escalated": False,
    }
    return Insight(
        detector=NAME, severity="info",
        audience=Audience("director", None) if left else Audience("manager", manager_id), subject=subject,
        facts=facts, evidence={"deal_ids": [st["deal_id"] for st in statics]} if with_evidence else {},
        fingerprint=make_fingerprint(NAME, subject),
    )


# Calls, meetings and done tasks are touches only when the export says when they were done:
# without done_at a deal called every day looks as idle as one nobody called (said, not guessed).
NEED_DONE = Need(("activities.done_at",), part="calls, meetings and done tasks as touches")


@register(NAME, StalledDealSpec, (), "an open deal with no stage change and no call, meeting, email or done task for longer than its stage usually takes (working days)",
          needs=(NEED_DONE,))
def detect(data: CrmData, spec: StalledDealSpec, now: datetime) -> list[Insight]:
    return detect_at(prepare(data, spec, now), now)

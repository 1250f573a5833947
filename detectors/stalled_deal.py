"""stalled_deal: an open deal nobody has touched for longer than its stage allows.

"Touched" means, up to `now`: entering its current stage, or a done call, meeting, email or
task (activities linked to the deal, or to its client with no deal given), or any email in
the emails table linked to the deal or exchanged with the deal's client. Notes and planned
but not done activities do not count. A deal is stalled when its whole idle days exceed the
stage limit (`stage_limits`, else `default_limit_days`); at `escalate_after_days` idle days
the insight is escalated (severity critical, the director sees it too). One insight per deal,
so each can be snoozed on its own.

The deal's state is taken as of `now` (open then, stage then), so backtest replays history
honestly: a deal won last month was still open, and maybe stalled, two months ago.
Split into `prepare` (factorise ids, sort events per deal once) and `detect_at` (array masks).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from crm.data import CrmData
from detectors.insight import Audience, Insight, make_fingerprint
from detectors.registry import DetectorSpec, register
from detectors.columns import NEVER, iso_utc, positions, to_ns

NAME = "stalled_deal"
_DAY_NS = 86_400 * 1_000_000_000
_TOUCH_TYPES = ("call", "meeting", "email", "task")
# Row order of the touch matrix in detect_at; names are the facts' last_touch_kind values
# (activities use their own type).
_SOURCES = ("stage_change", "activity_deal", "activity_client", "email_deal", "email_client")


class StalledDealSpec(DetectorSpec):
    default_limit_days: int = Field(7, ge=1, description="idle days allowed at a stage without its own limit")
    stage_limits: dict[str, int] = Field(default_factory=dict, description="idle days allowed per stage name")
    escalate_after_days: int = Field(14, ge=1, description="idle days after which the director is told too")

    @field_validator("stage_limits")
    @classmethod
    def _positive(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: n for k, n in v.items() if n < 1}
        if bad:
            raise ValueError("every stage limit must be >= 1 day, got " + ", ".join(f"{k!r} = {n}" for k, n in bad.items()))
        return v




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
    limit_days: np.ndarray  # code -> limit
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
    # deal row -> the facts that do not depend on `now`, and the fingerprint: built on first
    # need and reused by every later day of a replay
    static: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: int = 0


def skip_reason(data: CrmData) -> str | None:
    """Why this detector says nothing about `data`, or None.

    With a stage history derived from deals and no activities or emails, the only "touch" we
    know is the deal's creation: every older open deal would look stalled, which is not evidence.
    """
    if data.stage_history_derived and not _has_rows(data.activities) and not _has_rows(data.emails):
        return ("no stage history, activities or emails: when a deal was last touched is unknown "
                "(provide stage_history.csv, activities.csv or emails.csv)")
    return None


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
    if now is not None:
        d = d.iloc[np.flatnonzero(_open_at(d, _ns(now)))].reset_index(drop=True)
    deal_ids = d["deal_id"]
    client_col = d["client_id"] if "client_id" in d.columns else pd.Series([None] * len(d), dtype="str")
    deal_client, client_uniques = pd.factorize(client_col)
    client_keys = pd.Series(client_uniques)

    sh = data.stage_history
    stage_codes, stage_names = pd.factorize(pd.concat([d["stage"], sh["stage"]], ignore_index=True))
    stage_names = np.asarray(stage_names, dtype=object)
    limits = np.array([spec.stage_limits.get(s, spec.default_limit_days) for s in stage_names], dtype=np.int64)
    history = _Events.build(positions(sh["deal_id"], deal_ids), to_ns(sh["entered_at"]))

    status = d["status"].astype("str")
    closed = to_ns(d["closed_at"]) if "closed_at" in d.columns else np.full(len(d), NEVER, dtype=np.int64)

    empty_evt = _Events(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    act_deal = act_client = email_deal = email_client = empty_evt
    act_id = act_type = email_id = pd.Series([], dtype=object)
    if data.activities is not None:
        a = data.activities
        t = to_ns(a["done_at"])
        t[~np.asarray(a["type"].isin(_TOUCH_TYPES), dtype=bool)] = NEVER
        a_deal = positions(a["deal_id"], deal_ids)
        a_client = positions(a["client_id"], client_keys)
        a_client = np.where(np.asarray(a["deal_id"].notna() | a["client_id"].isna()), -1, a_client)
        act_deal, act_client = _Events.build(a_deal, t), _Events.build(a_client, t)
        act_id, act_type = a["activity_id"], a["type"]
    if data.emails is not None:
        e = data.emails
        t = to_ns(e["sent_at"])
        e_deal = positions(e["deal_id"], deal_ids)
        e_client = positions(e["client_id"], client_keys)
        email_deal, email_client = _Events.build(e_deal, t), _Events.build(e_client, t)
        email_id = e["email_id"]

    client_names = None
    if data.clients is not None:
        row = positions(client_keys, data.clients["client_id"])
        names = data.clients["name"].take(np.maximum(row, 0)).reset_index(drop=True) if len(data.clients) else None
        client_names = names.where(pd.Series(row >= 0)) if names is not None else None
    return StalledDealState(
        spec=spec, created=to_ns(d["created_at"]), closed=closed,
        columns={c: (d[c] if c in d.columns else None)
                 for c in ("deal_id", "title", "client_id", "manager_id", "amount", "currency")},
        status_open=np.asarray(status == "open", dtype=bool),
        status_closed_at_known=np.asarray(status.isin(["won", "lost"]), dtype=bool) & (closed != NEVER),
        deal_client=np.asarray(deal_client, dtype=np.int64), stage_names=stage_names,
        deal_stage=stage_codes[: len(d)].astype(np.int64), limit_days=limits,
        history=history, history_stage=stage_codes[len(d):].astype(np.int64),
        act_deal=act_deal, act_client=act_client, act_id=act_id, act_type=act_type,
        email_deal=email_deal, email_client=email_client, email_id=email_id,
        n_clients=len(client_keys), client_names=client_names,
        manager_names={str(k): str(v) for k, v in zip(data.managers["manager_id"], data.managers["name"])},
    )


def _ns(now: datetime) -> int:
    return pd.Timestamp(now).tz_convert("UTC").value


def _open_at(d: pd.DataFrame, now_ns: int) -> np.ndarray:
    """Deals open at `now`: created by then, and open now or closed (won/lost) only later."""
    created = to_ns(d["created_at"])
    status = d["status"].astype("str")
    closed = to_ns(d["closed_at"]) if "closed_at" in d.columns else np.full(len(d), NEVER, dtype=np.int64)
    closed_later = np.asarray(status.isin(["won", "lost"]), dtype=bool) & (closed != NEVER) & (closed > now_ns)
    return (created != NEVER) & (created <= now_ns) & (np.asarray(status == "open", dtype=bool) | closed_later)


def _per_deal(per_client: np.ndarray, deal_client: np.ndarray, fill: int) -> np.ndarray:
    return np.where(deal_client >= 0, per_client[np.maximum(deal_client, 0)] if len(per_client) else fill, fill)


def detect_at(state: StalledDealState | None, now: datetime, *, with_evidence: bool = True) -> list[Insight]:
    """The stalled deals at `now`. `with_evidence=False` leaves evidence empty and reads no
    activity/email ids (a backtest only counts and dedups)."""
    if state is None:
        return []
    spec = state.spec
    now_ns = _ns(now)
    n = len(state.created)
    if n == 0:
        return []
    state.calls += 1
    if state.calls == 2:  # a replay: sort the events once, every later day is a mask and a diff
        for ev in (state.history, state.act_deal, state.act_client, state.email_deal, state.email_client):
            ev.sort()
    is_open = (state.created != NEVER) & (state.created <= now_ns) & (
        state.status_open | (state.status_closed_at_known & (state.closed > now_ns))
    )
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
    idle_days = (now_ns - last_touch) // _DAY_NS
    limit = state.limit_days[stage]
    local = np.flatnonzero(idle_days > limit)  # positions among the open deals
    stalled = o[local]
    # The last touch of each stalled deal: its kind and id, read in one take per column.
    s_src = src[local]
    s_row = rows[s_src, local]
    touch: list[tuple[str, str | None, str | None]] = [("stage_change", None, None)] * len(stalled)
    is_act, is_email = (s_src == 1) | (s_src == 2), (s_src == 3) | (s_src == 4)
    act_rows = s_row[is_act]
    act_ids = _take(state.act_id, act_rows) if with_evidence else [None] * len(act_rows)
    for j, kind, act_id in zip(np.flatnonzero(is_act).tolist(), _take(state.act_type, act_rows), act_ids):
        touch[j] = (str(kind), "activity_ids", act_id if act_id is None else str(act_id))
    email_ids = _take(state.email_id, s_row[is_email]) if with_evidence else [None] * int(is_email.sum())
    for j, email_id in zip(np.flatnonzero(is_email).tolist(), email_ids):
        touch[j] = ("email", "email_ids", email_id if email_id is None else str(email_id))
    _fill_static(state, stalled)
    out = [
        _insight(state, i, stage_i, idle, lim, touch_ns, *touch[j], with_evidence=with_evidence)
        for j, (i, stage_i, idle, lim, touch_ns) in enumerate(zip(
            stalled.tolist(), stage[local].tolist(), idle_days[local].tolist(),
            limit[local].tolist(), last_touch[local].tolist()))
    ]
    out.sort(key=lambda x: (x.facts["manager_id"] or "", -x.facts["days_idle"], x.subject["deal_id"]))
    return out


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


def _insight(state: StalledDealState, i: int, stage: int, idle: int, limit: int, touch_ns: int,
             kind: str, evidence_key: str | None, evidence_id: str | None, *, with_evidence: bool = True) -> Insight:
    st = state.static[i]
    evidence: dict[str, list[str]] = {}
    if with_evidence:
        evidence["deal_ids"] = [st["deal_id"]]
        if evidence_key is not None:
            evidence[evidence_key] = [evidence_id]
    escalated = idle >= state.spec.escalate_after_days
    facts = {
        "deal_title": st["deal_title"],
        "client_name": st["client_name"],
        "manager_id": st["manager_id"],
        "manager_name": st["manager_name"],
        "stage": str(state.stage_names[stage]),
        "amount": st["amount"],
        "currency": st["currency"],
        "days_idle": idle,
        "stage_limit_days": limit,
        "last_touch_at": iso_utc(touch_ns),
        "last_touch_kind": kind,
        "escalated": escalated,
    }
    return Insight(
        detector=NAME, severity="critical" if escalated else "warning",
        audience=Audience("manager", st["manager_id"]), subject={"deal_id": st["deal_id"]},
        facts=facts, evidence=evidence, fingerprint=st["fingerprint"],
    )


@register(NAME, StalledDealSpec, (), "an open deal with no stage change and no call, meeting, email or done task for longer than its stage allows")
def detect(data: CrmData, spec: StalledDealSpec, now: datetime) -> list[Insight]:
    return detect_at(prepare(data, spec, now), now)

"""manager_load: a team whose open deals or new leads are clearly unevenly spread.

Who is compared. Load is a count per unit of capacity (FTE), compared within a team (the
`group_by` column, else `fallback_group_by`; else everyone is one team). Only working
managers count: the `active` flag (where the export has it), capacity > 0, AND at least one
deal created or closed, lead created/assigned/answered, activity done or email sent in the
last `active_window_days` before `now` (as of `now`: a replay of a past day sees only what
existed then), AND, for someone given deals in a company where most people given deals record
their calls, tasks or emails, a call, task or email by them or on their deals in that window.
That is detectors.people.Workforce, the one notion of "working" stalled_deal hands deals over
by: a catch-all account the CRM gives deals to and nobody calls for was named "over-loaded,
route leads away" in the digest whose stalled_deal item said nobody works its deals. A never-active or departed account is not a teammate with 0: it would pull
the median down (calling a typical manager "2x overloaded") and be advised to take deals.
Nor is an owner that names nobody («Без ответственного», a catch-all user «Не назначен»:
crm.owners): the loader keeps it out of the managers, and a hand-built managers table's
placeholder row is left out here. Such managers are never named, never counted in a team's size or median;
`not_compared` lists them for check-config. On each metric only those who ever had one (a
deal for open_deals, a lead for new_leads) by `now` are compared: an agent who logs calls but
never owns a deal is not "under-loaded" on deals. A team needs `min_team_size` of the rest.

When someone is out of line. Three conditions, all needed, so chance stays silent:
- outside the band: load below `band_low` x or above `band_high` x the team median;
- unlikely to be chance: an exact conditional Poisson test of the count against the team
  (stats.rate_vs_rest_pvalues); Benjamini-Hochberg over EVERY comparison made in the run
  (all compared managers x metrics, inside the band or not), q <= `fdr`;
- persistent (Alertmanager's `for:`), recomputed from history (deals open then, leads in the
  window ending then, who was active then), same person, metric and side: flagged (band and
  test) `persist_days` earlier, AND outside the band one whole `leads_window_days` earlier.
  The week-old look alone did not do it: the 28-day lead windows a week apart share three
  weeks and open deals are a stock that carries over, so a chance dip "persisted" by
  construction (randomly routed teams of 3, 5 and 10 replayed daily for 120 days: 28, 34
  and 35 of 100 companies got an item). One window back the new-lead counts share nothing
  with today's, and most of the open deals have turned over, so a chance dip has to recur in
  fresh data (2, 7 and 5 of 100, nearly all on open deals, the stock). There it
  must show the effect (the band), not pass the test again. A look whose lead window the
  data's leads cover for less than half shows nothing: a few days' counts (m10 with 2 leads
  against a median of 7, 4 days into an export whose leads begin 23 Jul) are outside the band
  by chance, and "persisted" a chance dip in a 48-person company. Demanding significance twice on
  small counts missed real imbalances (the planted 3x tilt of a 5-person team at 12 vs 7
  deals) for little gain. The price: a 3x tilt is raised 5-7 weeks after it starts (2-4
  before), a 2x one 6-8 (3-5); a lead imbalance needs two windows of leads. Not chosen: a
  team-level homogeneity test (one more test on the same overlapping windows, so the same
  daily repeats; a team of three with one person at 7 vs 18 and 24 passes it at p = 0.01)
  and a larger `min_team_size` (after the change teams of 3 are no noisier than of 5 or 10).

One director item per team (subject: the team, so the fingerprint holds while the imbalance
does) names the over- and under-loaded people for both metrics and carries one coordinated
plan per metric (`plan`): transfers giver -> taker. The level both sides move towards is the
team's fair share (team total / team FTE): the only level at which what the over-loaded
give is what the others can take, whereas the median leaves no room when everyone else sits
at it. A giver hands over at most its excess above the fair share, a taker receives at most
its room below it; givers sit above it and takers below, so nobody does both. Greedy,
largest excess to largest room (the flagged under-loaded first). When only someone
under-loaded is flagged, the givers are the teammates above the fair share.

A scan is `detect_at(prepare(data, spec, now), now)`; backtest calls `prepare` once and
`detect_at` per day (each day's comparison is cached in the state, so the persistence check
of a daily replay reuses the days computed a week and a window earlier).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from crm.data import CrmData
from crm.owners import names_nobody
from detectors.insight import Audience, Insight
from detectors.registry import DetectorSpec, Need, register
from detectors.columns import positions, to_ns
from detectors.people import Workforce, any_within, marked_inactive, shared_workforce, sorted_keys
from detectors.stats import (
    LOAD_METHOD, NAT_NS, NS_PER_DAY, bh_qvalues, rate_vs_rest_pvalues, ts_ns,
)

NAME = "manager_load"
METRICS = ("open_deals", "new_leads")
LEADS_NEED = Need(columns=("leads.manager_id",), part="new leads per manager (new_leads)")
_NS_PER_S = 10**9
_CACHE_DAYS = 8  # per-day comparisons kept beyond the persistence look-back (a replay reuses them)


class ManagerLoadSpec(DetectorSpec):
    """Thresholds of manager_load; defaults flag only a large, lasting, non-random imbalance."""

    group_by: str = Field("team", description="managers column that defines a team")
    fallback_group_by: str | None = Field("region", description="used when group_by is absent or empty")
    min_team_size: int = Field(3, ge=2, description="active managers a team needs to be compared")
    band_low: float = Field(0.6, gt=0, lt=1, description="flag below this x team median load")
    band_high: float = Field(1.6, gt=1, description="flag above this x team median load")
    fdr: float = Field(0.05, gt=0, lt=1, description="Benjamini-Hochberg false discovery rate")
    leads_window_days: int = Field(28, ge=1, le=365, description="new leads counted over this many days")
    active_window_days: int = Field(90, ge=1, le=730, description="a manager with no deal, lead or activity in this many days is not compared")
    persist_days: int = Field(7, ge=0, le=90, description="raise only when the same person was out of line this many days earlier, and outside the band leads_window_days earlier, too (0: no check)")
    metrics: list[str] = Field(default_factory=lambda: list(METRICS), description="what to compare: open_deals, new_leads (needs leads)")
    max_evidence: int = Field(200, ge=0, description="at most this many deal/lead ids in evidence")

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if m not in METRICS]
        if bad:
            raise ValueError(f"unknown metric(s) {bad}; choose from {list(METRICS)}")
        return v

    @field_validator("group_by", "fallback_group_by")
    @classmethod
    def _team_column(cls, v: str | None) -> str | None:
        if v is not None and v not in ("team", "region"):
            raise ValueError(f"must be 'team' or 'region', got {v!r}")
        return v


def _teams(managers: pd.DataFrame, spec: ManagerLoadSpec) -> pd.Series:
    """Team of each manager row; NaN where the manager has none."""
    for col in (spec.group_by, spec.fallback_group_by):
        if col and col in managers.columns and managers[col].notna().any():
            return pd.Series(managers[col].to_numpy(), dtype=object)
    return pd.Series([""] * len(managers), dtype=object)


def _candidates(data: CrmData, spec: ManagerLoadSpec) -> pd.DataFrame:
    """Managers the flags allow to compare (active flag, capacity > 0, a team, a person: not a
    placeholder row such as «Не назначен», crm.owners); whether they worked recently is decided
    per day."""
    m = data.managers
    active = ~m["manager_id"].astype("str").isin(marked_inactive(m)).to_numpy(dtype=bool)
    cap = m["capacity"].fillna(1.0).astype(float).to_numpy() if "capacity" in m else np.ones(len(m))
    team = _teams(m, spec)
    df = pd.DataFrame({
        "manager_id": m["manager_id"].to_numpy(), "manager_name": m["name"].to_numpy(),
        "team": team.to_numpy(), "capacity": cap,
    })
    keep = active & (cap > 0) & df["team"].notna().to_numpy() & ~names_nobody(data, df["manager_id"].astype("string"))
    return df[keep].drop_duplicates("manager_id").reset_index(drop=True)


@dataclass
class Day:
    """One day's comparison: per metric, arrays over `people` (NaN/False where not tested)."""

    compared: np.ndarray  # bool: active that day (any metric)
    members: dict[str, np.ndarray]  # bool per metric: compared, ever had one, in a team big enough
    values: dict[str, np.ndarray]
    median: dict[str, np.ndarray]  # the person's team median load
    ratio: dict[str, np.ndarray]
    p: dict[str, np.ndarray]
    q: dict[str, np.ndarray]
    flagged: dict[str, np.ndarray]  # outside the band and q <= fdr
    tests: int  # the Benjamini-Hochberg family: every comparison made


@dataclass
class Prepared:
    """What does not change from day to day: the candidates, their activity keys, and every
    deal's and lead's times and owner as plain arrays (backtest prepares once)."""

    spec: ManagerLoadSpec
    people: pd.DataFrame  # candidates (see _candidates)
    team_code: np.ndarray
    team_names: list
    capacity: np.ndarray
    workforce: Workforce  # who is working on a day (detectors.people: stalled_deal's notion too)
    person_row: np.ndarray  # each candidate's row in workforce.people
    deal_owner: np.ndarray  # row in `people` of each deal's manager, -1 when not a candidate
    deal_created: np.ndarray
    deal_closed: np.ndarray  # ns, NAT_NS when not closed
    deal_open: np.ndarray  # status "open"
    deal_closed_status: np.ndarray  # status won/lost with a close date
    deal_ids: pd.Series
    touch_keys: np.ndarray  # deal row * 2^40 + seconds since touch_t0 of every touch, sorted
    touch_t0: int
    lead_owner: np.ndarray | None
    lead_created: np.ndarray | None
    lead_ids: pd.Series | None
    lead_start: int  # the first lead in the data (ns; int64 max: none)
    first: dict[str, np.ndarray]  # metric -> each person's first deal / lead (ns; int64 max: never)
    cache: dict[int, Day] = field(default_factory=dict)


def _touch_keys(data: CrmData, rows: np.ndarray) -> tuple[np.ndarray, int]:
    """Sorted int64 keys deal_row * 2^40 + seconds since the first touch, one per dated touch of
    the deals `rows` (created, a stage entered, an activity done, an email either way), and
    that first second: a deal's last touch at or before t is one searchsorted."""
    deals = data.deals
    rows = np.asarray(rows, dtype=np.int64)
    picked = deals["deal_id"].take(rows)  # a scan's open deals: a small hash table to look up in
    owners, times = [rows], [to_ns(deals["created_at"])[rows]]

    def add(deal_ids: pd.Series, t: pd.Series) -> None:
        at = positions(deal_ids, picked)
        ok = at >= 0
        ns = to_ns(t[ok]) if not ok.all() else to_ns(t)
        owners.append(rows[at[ok]])
        times.append(ns)

    sh = data.stage_history
    if sh is not None and len(sh) and not data.stage_history_derived:
        add(sh["deal_id"], sh["entered_at"])
    act = data.activities
    if act is not None and data.has_column("activities", "deal_id") and data.has_column("activities", "done_at"):
        add(act["deal_id"], act["done_at"])
    em = data.emails
    if em is not None and data.has_column("emails", "deal_id"):
        add(em["deal_id"], em["sent_at"])
    owner, ns = np.concatenate(owners), np.concatenate(times)
    ok = ns != NAT_NS
    return sorted_keys(owner[ok], ns[ok] // _NS_PER_S)


def prepare(data: CrmData, spec: ManagerLoadSpec, now: datetime | None = None) -> Prepared | None:
    """The day-independent part; None when no team has enough candidates to ever compare.

    With `now` (one scan, not a replay) only the deals open then, or on the days its
    persistence looks back to, get their touches joined."""
    people = _candidates(data, spec)
    codes, names = pd.factorize(people["team"])
    if not len(people) or np.bincount(codes).max() < spec.min_team_size:
        return None
    deals = data.deals
    closed = to_ns(deals["closed_at"]) if "closed_at" in deals.columns else np.full(len(deals), NAT_NS)
    status = deals["status"]
    leads = data.leads if "new_leads" in spec.metrics and LEADS_NEED.met(data) else None
    deal_owner = positions(deals["manager_id"], people["manager_id"])
    who = shared_workforce(data, spec.active_window_days)
    deal_created = to_ns(deals["created_at"])
    deal_open = (status == "open").to_numpy(dtype=bool, na_value=False)
    deal_closed_status = status.isin(["won", "lost"]).to_numpy(dtype=bool, na_value=False) & (closed != NAT_NS)
    ever_open = deal_owner >= 0
    if now is not None:  # open at now or on a persistence look's day
        now_ns = ts_ns(now)
        since = now_ns - (max(spec.persist_days, spec.leads_window_days) + 1) * NS_PER_DAY
        ever_open &= (deal_created <= now_ns) & (deal_open | (deal_closed_status & (closed > since)))
    touch_keys, touch_t0 = _touch_keys(data, np.flatnonzero(ever_open))
    lead_owner = None if leads is None else positions(leads["manager_id"], people["manager_id"])
    lead_created = None if leads is None else to_ns(leads["created_at"])
    first = {"open_deals": _first(deal_owner, deal_created, len(people))}
    if leads is not None:
        first["new_leads"] = _first(lead_owner, lead_created, len(people))
    return Prepared(
        spec=spec, people=people, team_code=codes.astype(np.int64), team_names=list(names),
        capacity=people["capacity"].to_numpy(dtype=float), workforce=who,
        person_row=positions(people["manager_id"], who.people),
        deal_owner=deal_owner, deal_created=deal_created, deal_closed=closed,
        deal_open=deal_open, deal_closed_status=deal_closed_status,
        deal_ids=deals["deal_id"], touch_keys=touch_keys, touch_t0=touch_t0,
        lead_owner=lead_owner, lead_created=lead_created,
        lead_ids=None if leads is None else leads["lead_id"], first=first,
        lead_start=_earliest(lead_created),
    )


def _earliest(t: np.ndarray | None) -> int:
    """The earliest time in `t` (ns; int64 max when there is none)."""
    ok = t[t != NAT_NS] if t is not None else np.zeros(0, dtype=np.int64)
    return int(ok.min()) if len(ok) else np.iinfo(np.int64).max


def _first(owner: np.ndarray, t: np.ndarray, n: int) -> np.ndarray:
    """Each of `n` people's earliest time in `t` (int64 max when they have none)."""
    ok = (owner >= 0) & (t != NAT_NS)
    out = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    if ok.any():
        first = pd.Series(t[ok]).groupby(owner[ok]).min()
        out[first.index.to_numpy()] = first.to_numpy()
    return out


def not_working(data: CrmData, spec: ManagerLoadSpec, now: datetime) -> dict[str, list[tuple[str, str]]]:
    """(manager_id, name) of the managers the flags allow to compare who are not working at
    `now` (detectors.people.Working), by why: "idle" (no deal, lead, activity or email in the
    last `active_window_days`) and "no_contact" (given deals or leads, but no call, task or
    email by them or on their deals in that window while most working people record theirs).
    check-config lists them once; they are never alerted about, as stalled_deal hands their
    stalled deals to the director. (Managers marked inactive, or with capacity 0, are left out
    on purpose.)"""
    people = _candidates(data, spec)
    if people.empty:
        return {"idle": [], "no_contact": []}
    who = shared_workforce(data, spec.active_window_days, ts_ns(now))
    at = who.at(ts_ns(now))
    row = positions(people["manager_id"], who.people)
    out = {}
    for why, mask in (("idle", at.idle), ("no_contact", at.silent)):
        off = people[mask[row]]
        out[why] = [(str(i), str(n)) for i, n in zip(off["manager_id"], off["manager_name"])]
    return out


def not_compared(data: CrmData, spec: ManagerLoadSpec, now: datetime) -> list[tuple[str, str]]:
    """(manager_id, name) of every manager not_working lists, idle ones first."""
    return [x for rows in not_working(data, spec, now).values() for x in rows]


def _working(who: Workforce, rows: np.ndarray, now_ns: int) -> np.ndarray:
    """Which of the candidates (their `rows` in who.people) are working at `now_ns`."""
    return who.at(now_ns).working[rows]


def _open_mask(state: Prepared, now_ns: int) -> np.ndarray:
    """Deals open at `now` that someone works on: created by then and not closed by then (a
    replay of a past day must not see today's closures), with a touch (created, a stage
    entered, an activity, an email) in the last `active_window_days`. A deal nobody touched
    for months is not load: exports keep years of abandoned deals (stalled_deal lists them),
    and counting them called the veterans over-loaded and a new hire, with none yet,
    under-loaded on a randomly routed team."""
    closed_later = state.deal_closed_status & (state.deal_closed > now_ns)
    keep = (state.deal_created <= now_ns) & (state.deal_open | closed_later) & (state.deal_owner >= 0)
    rows = np.flatnonzero(keep)
    keep[rows] = any_within(state.touch_keys, state.touch_t0, rows, now_ns, state.spec.active_window_days)
    return keep


def _lead_mask(state: Prepared, now_ns: int) -> np.ndarray:
    t = state.lead_created
    return (t >= now_ns - state.spec.leads_window_days * NS_PER_DAY) & (t < now_ns)


def _leads_cover(state: Prepared, at_ns: int) -> bool:
    """Whether the data's leads (from its first one) cover at least half of the lead window
    ending at `at_ns`: a look over the first few days of an export compares counts of 2 and 7."""
    window = state.spec.leads_window_days * NS_PER_DAY
    return at_ns - max(at_ns - window, state.lead_start) >= window / 2


def _persist_checks(spec: ManagerLoadSpec) -> tuple[tuple[int, bool], ...]:
    """(days back, must be significant there too) of the persistence check; see the module
    docstring. The look one window back uses data the current test did not see (new leads)
    or a stock a window older (open deals), so it asks for the effect, not a second test."""
    if not spec.persist_days:
        return ()
    return ((spec.persist_days, True), (spec.leads_window_days, False))


def _metrics(state: Prepared) -> list[str]:
    return [m for m in state.spec.metrics if m == "open_deals" or state.lead_owner is not None]


def _day(state: Prepared, now_ns: int) -> Day:
    """Everyone compared on one day, every metric, one Benjamini-Hochberg family."""
    hit = state.cache.get(now_ns)
    if hit is not None:
        return hit
    spec, n = state.spec, len(state.people)
    live = _working(state.workforce, state.person_row, now_ns)
    cap = state.capacity
    values, med, ratio, pv, members_of = {}, {}, {}, {}, {}
    for metric in _metrics(state):
        had = live & (state.first[metric] <= now_ns)
        size = np.bincount(state.team_code[had], minlength=len(state.team_names))
        compared = members_of[metric] = had & (size[state.team_code] >= spec.min_team_size)
        if metric == "open_deals":
            owner, keep = state.deal_owner, _open_mask(state, now_ns)
        else:
            owner, keep = state.lead_owner, _lead_mask(state, now_ns)
        keep = keep & (owner >= 0)
        v = np.bincount(owner[keep], minlength=n).astype(np.int64)
        v_cmp = np.where(compared, v, 0)
        load = v / cap
        m = np.full(n, np.nan)
        for t in np.unique(state.team_code[compared]):
            members = compared & (state.team_code == t)
            m[members] = np.median(load[members])
        team_v = np.bincount(state.team_code, weights=v_cmp, minlength=len(state.team_names))
        team_c = np.bincount(state.team_code, weights=np.where(compared, cap, 0.0), minlength=len(state.team_names))
        tested = compared & (m > 0)
        r = np.full(n, np.nan)
        r[tested] = load[tested] / m[tested]
        p = np.full(n, np.nan)
        if tested.any():
            idx = np.flatnonzero(tested)
            p[idx] = rate_vs_rest_pvalues(v[idx], cap[idx], team_v[state.team_code[idx]].round().astype(np.int64),
                                          team_c[state.team_code[idx]], np.where(r[idx] >= 1, "over", "under"))
        values[metric], med[metric], ratio[metric], pv[metric] = v, m, r, p
    metrics = list(values)
    all_p = np.concatenate([pv[k] for k in metrics]) if metrics else np.zeros(0)
    all_q = bh_qvalues(all_p)  # NaN (not compared) is not a test
    q, flagged = {}, {}
    for j, metric in enumerate(metrics):
        q[metric] = all_q[j * n:(j + 1) * n]
        r = ratio[metric]
        with np.errstate(invalid="ignore"):
            outside = (r < spec.band_low) | (r > spec.band_high)
            flagged[metric] = outside & (q[metric] <= spec.fdr)
    day = Day(compared=live, members=members_of, values=values, median=med, ratio=ratio, p=pv, q=q, flagged=flagged,
              tests=int((~np.isnan(all_p)).sum()))
    # a daily replay inserts up to three days per day (today and the two looks back)
    if len(state.cache) >= _CACHE_DAYS + 3 * (spec.persist_days + spec.leads_window_days):
        state.cache.pop(next(iter(state.cache)))
    state.cache[now_ns] = day
    return day


@register(NAME, ManagerLoadSpec, requires=(), needs=(LEADS_NEED,),
          summary="a team whose open deals / new leads per FTE are unevenly spread, with a rebalancing plan")
def detect(data: CrmData, spec: ManagerLoadSpec, now: datetime) -> list[Insight]:
    return detect_at(prepare(data, spec, now), now)


def detect_at(state: Prepared | None, now: datetime, *, with_evidence: bool = True) -> list[Insight]:
    """The insights as of `now` from a prepared state (scan and backtest both end here).

    `with_evidence=False` leaves the evidence lists empty, for callers that only count and
    dedup insights (backtest): the rules and every fact are the same."""
    if state is None:
        return []
    spec = state.spec
    now_ns = ts_ns(now)
    cur = _day(state, now_ns)
    named: dict[str, np.ndarray] = {}
    for metric, flag in cur.flagged.items():
        for lag, significant in _persist_checks(spec) if flag.any() else ():
            if metric == "new_leads" and not _leads_cover(state, now_ns - lag * NS_PER_DAY):
                flag = flag & False  # that look sees a few days' leads: noise, not the effect
                break
            before = _day(state, now_ns - lag * NS_PER_DAY)
            r = before.ratio[metric]
            with np.errstate(invalid="ignore"):
                same_side = (r >= 1) == (cur.ratio[metric] >= 1)
                out = (r < spec.band_low) | (r > spec.band_high)
            flag = flag & (before.flagged[metric] if significant else out) & same_side
        named[metric] = flag
    teams = sorted({int(state.team_code[k]) for f in named.values() for k in np.flatnonzero(f)},
                   key=lambda t: str(state.team_names[t]))
    by_person = _evidence(state, now_ns, named) if with_evidence and teams else None
    return [_item(state, cur, named, t, by_person) for t in teams]


def _item(state: Prepared, day: Day, named: dict[str, np.ndarray], t: int,
          by_person: dict[str, dict[int, list[str]]] | None) -> Insight:
    spec, people = state.spec, state.people
    in_team = state.team_code == t
    ids = people["manager_id"].to_numpy()
    names = people["manager_name"].to_numpy()
    cap = state.capacity
    team = state.team_names[t]
    over, under, plans, per_metric = [], [], {}, {}
    worst = 0.0
    extreme = False
    size = 0
    for metric in day.values:
        v, r = day.values[metric], day.ratio[metric]
        members = np.flatnonzero(day.members[metric] & in_team)
        size = max(size, len(members))
        mine = [k for k in members if named[metric][k]]
        median = float(day.median[metric][members[0]]) if len(members) else float("nan")
        if math.isnan(median) or median <= 0:
            continue
        fair = float(v[members].sum() / cap[members].sum())
        for k in mine:
            row = {"manager_id": str(ids[k]), "manager_name": str(names[k]), "metric": metric,
                   "value": int(v[k]), "capacity": float(cap[k]), "load": round(float(v[k] / cap[k]), 2),
                   "team_median": round(median, 2), "ratio": round(float(r[k]), 3),
                   "p_value": float(day.p[metric][k]), "q_value": float(day.q[metric][k])}
            (over if r[k] >= 1 else under).append(row)
            worst = max(worst, abs(float(r[k]) - 1))
            extreme |= bool(r[k] > 2 * spec.band_high or r[k] < spec.band_low / 2)
        plan = _plan(v, cap, members, [k for k in mine if r[k] >= 1], [k for k in mine if r[k] < 1], fair)
        plans[metric] = [{"from_manager_id": str(ids[g]), "from_manager_name": str(names[g]),
                          "to_manager_id": str(ids[k]), "to_manager_name": str(names[k]), "count": int(c)}
                         for g, k, c in plan]
        flagged_ids = {int(k) for k in mine}
        givers = {g for g, _, _ in plan}
        takers = {k for _, k, _ in plan}
        per_metric[metric] = {
            "team_median": round(median, 2), "fair_share": round(fair, 2),
            "band_low_load": round(spec.band_low * median, 2), "band_high_load": round(spec.band_high * median, 2),
            "team_total": int(v[members].sum()),
            **({"window_days": spec.leads_window_days} if metric == "new_leads" else {}),
            "loads": [
                {"manager_id": str(ids[k]), "manager_name": str(names[k]), "value": int(v[k]),
                 "capacity": float(cap[k]), "load": round(float(v[k] / cap[k]), 2),
                 "role": ("over" if r[k] >= 1 else "under") if k in flagged_ids
                 else "giver" if k in givers else "taker" if k in takers else None}
                for k in sorted(members.tolist(), key=lambda k: (-v[k] / cap[k], str(ids[k])))
            ],
        }
    facts = {
        "team": team or None, "team_size": int(size),
        "over": sorted(over, key=lambda x: (x["metric"], -x["ratio"], x["manager_id"])),
        "under": sorted(under, key=lambda x: (x["metric"], x["ratio"], x["manager_id"])),
        "plan": plans, "metrics": per_metric,
        "band_low": spec.band_low, "band_high": spec.band_high, "fdr": spec.fdr, "tests": day.tests,
        "method": LOAD_METHOD, "persist_days": spec.persist_days,
        "outside_band_days_before": spec.leads_window_days if spec.persist_days else 0,
        "active_window_days": spec.active_window_days,
        "max_distance": round(worst, 3),
        # the weakest evidence among the people named
        "p_value": max(x["p_value"] for x in over + under), "q_value": max(x["q_value"] for x in over + under),
    }
    evidence = {"deal_ids": [], "lead_ids": []} if "new_leads" in day.values else {"deal_ids": []}
    if by_person is not None:
        for metric, key in (("open_deals", "deal_ids"), ("new_leads", "lead_ids")):
            rows = np.flatnonzero(named[metric] & in_team) if metric in named else []
            if len(rows):
                evidence[key] = sorted(x for k in rows for x in by_person[metric].get(int(k), []))[:spec.max_evidence]
    return Insight(detector=NAME, severity="critical" if extreme else "warning", audience=Audience("director"),
                   subject={"team": team}, facts=facts, evidence=evidence)


def _plan(v: np.ndarray, cap: np.ndarray, members: np.ndarray, over: list[int], under: list[int],
          fair: float) -> list[tuple[int, int, int]]:
    """Transfers (giver row, taker row, count) towards the team's fair share.

    Givers: the flagged over-loaded, each at most its excess above the fair share; takers:
    everyone below it (flagged under-loaded first), each at most its room. With no one
    flagged over, the flagged under-loaded take and the teammates above the fair share give.
    Greedy, largest excess to largest room; the total is what the excess needs (or, with
    only under-loaded flagged, what their room needs), capped by the other side."""
    excess = {int(k): math.floor(v[k] - fair * cap[k] + 1e-9) for k in members}
    room = {int(k): math.floor(fair * cap[k] - v[k] + 1e-9) for k in members}
    if over:
        givers = [k for k in over if excess[k] > 0]
        flagged_under = set(under)
        takers = [int(k) for k in members if room[int(k)] > 0]
        takers.sort(key=lambda k: (k not in flagged_under, -room[k], k))
    else:
        takers = [k for k in under if room[k] > 0]
        givers = sorted((int(k) for k in members if excess[int(k)] > 0), key=lambda k: (-excess[k], k))
        need = sum(room[k] for k in takers)
        # only as much as the under-loaded need: trim the givers' excess from the smallest up
        have = sum(excess[k] for k in givers)
        for k in reversed(givers):
            cut = min(excess[k], max(have - need, 0))
            excess[k] -= cut
            have -= cut
        givers = [k for k in givers if excess[k] > 0]
    givers.sort(key=lambda k: (-excess[k], k))
    out: list[tuple[int, int, int]] = []
    left = dict(room)
    for g in givers:
        give = excess[g]
        for k in takers:
            if give <= 0:
                break
            c = min(give, left[k])
            if c > 0:
                out.append((g, k, c))
                give -= c
                left[k] -= c
    return out


def _evidence(state: Prepared, now_ns: int, named: dict[str, np.ndarray]) -> dict[str, dict[int, list[str]]]:
    """metric -> person row -> the named people's open deal ids (open_deals) or the window's
    lead ids (new_leads): one pass per metric for every item of the run."""
    out: dict[str, dict[int, list[str]]] = {"open_deals": {}, "new_leads": {}}
    for metric, flag in named.items():
        if not flag.any():
            continue
        if metric == "open_deals":
            owner, keep, src = state.deal_owner, _open_mask(state, now_ns), state.deal_ids
        else:
            owner, keep, src = state.lead_owner, _lead_mask(state, now_ns), state.lead_ids
        sel = np.flatnonzero(keep & (owner >= 0) & flag[np.maximum(owner, 0)])
        for k, x in zip(owner[sel].tolist(), src.iloc[sel].tolist()):
            out[metric].setdefault(k, []).append(str(x))
    return out

"""manager_load: a manager with clearly more or fewer open deals / new leads than their team.

Load is a count per unit of capacity (FTE), so a half-time manager with half the deals is
balanced. Only active managers with capacity > 0 are compared, only within a team (the
`group_by` column, else `fallback_group_by`; when the company has neither, everyone is one
team) with at least `min_team_size` such managers.

Two conditions, both needed, so that a team of equally loaded people stays silent:
- outside the band: load below `band_low` x or above `band_high` x the team median load;
- unlikely to be chance: an exact conditional Poisson test of the manager's count against the
  rest of the team (stats.rate_vs_rest_pvalues), Benjamini-Hochberg across every manager and
  metric tested in the run, q <= `fdr`.

Each insight carries a concrete fix: how many deals to move (open_deals) or the next leads to
route (new_leads) between the flagged manager and the most opposite teammate, enough to bring
both inside the band.

A scan is `detect_at(prepare(data, spec), now)`; backtest calls `prepare` once (teams, owner
rows, times as int64 arrays) and `detect_at` per day, so the rules have one code path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from crm.data import CrmData
from detectors.insight import Audience, Insight
from detectors.registry import DetectorSpec, register
from detectors.stats import (
    LOAD_METHOD, NAT_NS, NS_PER_DAY, bh_qvalues, positions, rate_vs_rest_pvalues, to_ns, ts_ns,
)

NAME = "manager_load"
METRICS = ("open_deals", "new_leads")


class ManagerLoadSpec(DetectorSpec):
    """Thresholds of manager_load; defaults flag only a large, non-random imbalance."""

    group_by: str = Field("team", description="managers column that defines a team")
    fallback_group_by: str | None = Field("region", description="used when group_by is absent or empty")
    min_team_size: int = Field(3, ge=2, description="active managers a team needs to be compared")
    band_low: float = Field(0.6, gt=0, lt=1, description="flag below this x team median load")
    band_high: float = Field(1.6, gt=1, description="flag above this x team median load")
    fdr: float = Field(0.05, gt=0, lt=1, description="Benjamini-Hochberg false discovery rate")
    leads_window_days: int = Field(28, ge=1, le=365, description="new leads counted over this many days")
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
    """Team of each manager (index manager_id); NaN where the manager has none."""
    for col in (spec.group_by, spec.fallback_group_by):
        if col and col in managers.columns and managers[col].notna().any():
            return pd.Series(managers[col].to_numpy(), index=managers["manager_id"].to_numpy())
    return pd.Series("", index=managers["manager_id"].to_numpy(), dtype=object)


def _comparable(data: CrmData, spec: ManagerLoadSpec) -> pd.DataFrame:
    m = data.managers
    active = m["active"].fillna(True).astype(bool) if "active" in m else pd.Series(True, index=m.index)
    cap = m["capacity"].fillna(1.0).astype(float) if "capacity" in m else pd.Series(1.0, index=m.index)
    team = _teams(m, spec)
    df = pd.DataFrame({
        "manager_id": m["manager_id"].to_numpy(), "manager_name": m["name"].to_numpy(),
        "team": team.to_numpy(), "capacity": cap.to_numpy(),
    })
    df = df[(active.to_numpy()) & (df["capacity"] > 0) & df["team"].notna()]
    size = df.groupby("team")["manager_id"].transform("size")
    return df[size >= spec.min_team_size].reset_index(drop=True)


@dataclass
class Prepared:
    """What does not change from day to day: who is compared, and every deal's and lead's
    times and owner as plain arrays (backtest prepares once and replays many days)."""

    spec: ManagerLoadSpec
    people: pd.DataFrame  # the comparable managers (see _comparable)
    deal_owner: np.ndarray  # row in `people` of each deal's manager, -1 when not compared
    deal_created: np.ndarray
    deal_closed: np.ndarray  # ns, NAT_NS when not closed
    deal_open: np.ndarray  # status "open"
    deal_closed_status: np.ndarray  # status won/lost with a close date
    deal_ids: pd.Series
    lead_owner: np.ndarray | None
    lead_created: np.ndarray | None
    lead_ids: pd.Series | None


def prepare(data: CrmData, spec: ManagerLoadSpec) -> Prepared | None:
    """The day-independent part; None when no team has enough comparable managers."""
    people = _comparable(data, spec)
    if people.empty:
        return None
    deals = data.deals
    closed = to_ns(deals["closed_at"]) if "closed_at" in deals.columns else np.full(len(deals), NAT_NS)
    status = deals["status"]
    leads = data.leads if "new_leads" in spec.metrics else None
    return Prepared(
        spec=spec, people=people,
        deal_owner=positions(deals["manager_id"], people["manager_id"]),
        deal_created=to_ns(deals["created_at"]), deal_closed=closed,
        deal_open=(status == "open").to_numpy(dtype=bool, na_value=False),
        deal_closed_status=status.isin(["won", "lost"]).to_numpy(dtype=bool, na_value=False) & (closed != NAT_NS),
        deal_ids=deals["deal_id"],
        lead_owner=None if leads is None else positions(leads["manager_id"], people["manager_id"]),
        lead_created=None if leads is None else to_ns(leads["created_at"]),
        lead_ids=None if leads is None else leads["lead_id"],
    )


def _open_at(state: Prepared, now_ns: int) -> np.ndarray:
    """Deals open at `now`: created by then and not closed by then (a replay of a past day
    must not see today's closures)."""
    closed_later = state.deal_closed_status & (state.deal_closed > now_ns)
    return (state.deal_created <= now_ns) & (state.deal_open | closed_later)


@register(NAME, ManagerLoadSpec, requires=(), summary="manager with far more or fewer open deals / new leads than the team (per FTE)")
def detect(data: CrmData, spec: ManagerLoadSpec, now: datetime) -> list[Insight]:
    return detect_at(prepare(data, spec), now)


def detect_at(state: Prepared | None, now: datetime, *, with_evidence: bool = True) -> list[Insight]:
    """The insights as of `now` from a prepared state (scan and backtest both end here).

    `with_evidence=False` leaves the evidence lists empty, for callers that only count and
    dedup insights (backtest): the rules and every fact are the same."""
    if state is None:
        return []
    spec, people = state.spec, state.people
    now_ns = ts_ns(now)
    frames = []
    # metric -> (row in people of each counted deal/lead's manager, mask of the counted ones, ids, evidence key)
    evidence_src: dict[str, tuple[np.ndarray, np.ndarray, pd.Series, str]] = {}
    if "open_deals" in spec.metrics:
        keep = _open_at(state, now_ns) & (state.deal_owner >= 0)
        frames.append(people.assign(metric="open_deals", value=np.bincount(state.deal_owner[keep], minlength=len(people))))
        evidence_src["open_deals"] = (state.deal_owner, keep, state.deal_ids, "deal_ids")
    if state.lead_owner is not None:
        t = state.lead_created
        keep = (t >= now_ns - spec.leads_window_days * NS_PER_DAY) & (t < now_ns) & (state.lead_owner >= 0)
        frames.append(people.assign(metric="new_leads", value=np.bincount(state.lead_owner[keep], minlength=len(people))))
        evidence_src["new_leads"] = (state.lead_owner, keep, state.lead_ids, "lead_ids")
    if not frames:
        return []
    df = pd.concat(frames, ignore_index=True)
    df["value"] = df["value"].astype(np.int64)
    df["load"] = df["value"] / df["capacity"]
    grp = df.groupby(["metric", "team"], sort=False)
    df["team_median"] = grp["load"].transform("median")
    df["team_value"] = grp["value"].transform("sum")
    df["team_capacity"] = grp["capacity"].transform("sum")
    df = df[df["team_median"] > 0].copy()
    if df.empty:
        return []
    df["ratio"] = df["load"] / df["team_median"]
    df["direction"] = np.where(df["ratio"] >= 1, "over", "under")
    outside = (df["ratio"] < spec.band_low) | (df["ratio"] > spec.band_high)
    if not outside.any():  # only managers outside the band can fire
        return []
    df["p"] = rate_vs_rest_pvalues(df["value"], df["capacity"], df["team_value"], df["team_capacity"], df["direction"])
    df["q"] = np.nan
    # Only managers outside the band can fire, so only they count as tests.
    df.loc[outside, "q"] = bh_qvalues(df.loc[outside, "p"].to_numpy())
    flagged = df[outside & (df["q"] <= spec.fdr)]
    if flagged.empty:
        return []
    is_flagged = (outside & (df["q"] <= spec.fdr)).to_numpy()

    evidence = _evidence(people, flagged, evidence_src, spec.max_evidence) if with_evidence else {}
    # A few hundred rows: plain records are much faster than pandas per insight.
    # Only the teams of flagged managers are read back (for team_loads and the suggestion).
    group = list(zip(df["metric"].tolist(), df["team"].tolist()))
    wanted = {group[k] for k in np.flatnonzero(is_flagged)}
    needed = np.asarray([k for k, g in enumerate(group) if g in wanted], dtype=np.int64)
    records = dict(zip(needed.tolist(), _records(df, needed)))
    teams: dict[tuple, list[dict]] = {}
    for k, rec in records.items():
        teams.setdefault(group[k], []).append(rec)
    out: list[Insight] = []
    rows = sorted((records[k] for k in np.flatnonzero(is_flagged)), key=lambda r: (r["metric"], r["team"], r["manager_id"]))
    for row in rows:
        team = teams[(row["metric"], row["team"])]
        ev_key = evidence_src[row["metric"]][3]
        ratio, median = float(row["ratio"]), float(row["team_median"])
        extreme = ratio > 2 * spec.band_high or ratio < spec.band_low / 2
        facts = {
            "metric": row["metric"], "manager_id": str(row["manager_id"]), "manager_name": str(row["manager_name"]),
            "team": row["team"] or None, "value": int(row["value"]), "capacity": float(row["capacity"]),
            "load": round(float(row["load"]), 2), "team_median": round(median, 2),
            "ratio": round(ratio, 3), "direction": str(row["direction"]),
            "p_value": float(row["p"]), "q_value": float(row["q"]), "method": LOAD_METHOD,
            "band_low": spec.band_low, "band_high": spec.band_high,
            "band_low_load": round(spec.band_low * median, 2),
            "band_high_load": round(spec.band_high * median, 2),
            "suggestion": _suggest(row, team, spec),
            "team_loads": [
                {"manager_id": str(r["manager_id"]), "manager_name": str(r["manager_name"]),
                 "load": round(float(r["load"]), 2), "capacity": float(r["capacity"])}
                for r in sorted(team, key=lambda r: (-r["load"], r["manager_id"]))
            ],
        }
        if row["metric"] == "new_leads":
            facts["window_days"] = spec.leads_window_days
        out.append(Insight(
            detector=NAME, severity="critical" if extreme else "warning", audience=Audience("director"),
            subject={"manager_id": facts["manager_id"], "metric": row["metric"]},
            facts=facts, evidence={ev_key: evidence.get((row["metric"], str(row["manager_id"])), [])},
        ))
    return out


def _records(df: pd.DataFrame, rows: np.ndarray) -> list[dict]:
    """Those rows as plain dicts of Python values (what to_dict("records") gives, column by
    column: several times faster on Arrow-backed strings)."""
    cols = list(df.columns)
    values = [df[c].to_numpy()[rows].tolist() for c in cols]
    return [dict(zip(cols, row)) for row in zip(*values)]


def _evidence(people: pd.DataFrame, flagged: pd.DataFrame, sources: dict, limit: int) -> dict[tuple[str, str], list[str]]:
    """(metric, manager_id) -> the flagged managers' first `limit` deal or lead ids in text
    order, one pass per metric (Arrow sorts; only the ids kept become Python strings)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: dict[tuple[str, str], list[str]] = {}
    manager_ids = people["manager_id"].tolist()
    for metric, (owner, keep, ids, _key) in sources.items():
        who = flagged.loc[flagged["metric"] == metric, "manager_id"]
        if who.empty:
            continue
        chosen = people["manager_id"].isin(who).to_numpy(dtype=bool)
        sel = np.flatnonzero(keep & chosen[np.maximum(owner, 0)])  # keep is False where owner is -1
        if isinstance(ids.dtype, pd.StringDtype):  # UTF-8 byte order is the order of str
            text = pa.array(ids.iloc[sel], type=pa.large_string(), from_pandas=True)
        else:
            text = pa.array([str(x) for x in ids.iloc[sel].tolist()], type=pa.large_string())
        who_rows = owner[sel]
        order = pc.sort_indices(pa.table({"m": who_rows, "id": text}), sort_keys=[("m", "ascending"), ("id", "ascending")])
        order = order.to_numpy()
        m_sorted = who_rows[order]
        starts = np.flatnonzero(np.r_[True, m_sorted[1:] != m_sorted[:-1]]) if len(order) else np.zeros(0, dtype=np.int64)
        ends = np.r_[starts[1:], len(order)]
        take = np.concatenate([order[s:min(e, s + limit)] for s, e in zip(starts, ends)]) if len(starts) else order
        taken = text.take(pa.array(take, type=pa.int64())).to_pylist()
        k = 0
        for s, e in zip(starts.tolist(), ends.tolist()):
            n = min(e - s, limit)
            out[(metric, str(manager_ids[m_sorted[s]]))] = taken[k:k + n]
            k += n
    return out


def _suggest(row: dict, team: list[dict], spec: ManagerLoadSpec) -> dict | None:
    """Move work between the flagged manager and the teammate at the opposite end.

    The count is the smallest that brings the flagged one inside the band and, when the other
    is outside too, the other as well, without pushing the receiver above the band.
    """
    med = float(row["team_median"])
    others = [r for r in team if r["manager_id"] != row["manager_id"]]
    if not others:
        return None
    if row["direction"] == "over":
        giver = row
        recv = min(others, key=lambda r: (r["ratio"], r["manager_id"]))
    else:
        recv = row
        giver = min(others, key=lambda r: (-r["ratio"], r["manager_id"]))
    g_val, g_cap = float(giver["value"]), float(giver["capacity"])
    r_val, r_cap = float(recv["value"]), float(recv["capacity"])
    need_giver = max(0, math.ceil(g_val - spec.band_high * med * g_cap - 1e-9))
    need_recv = max(0, math.ceil(spec.band_low * med * r_cap - r_val - 1e-9))
    room = math.floor(spec.band_high * med * r_cap - r_val + 1e-9)
    count = min(max(need_giver, need_recv), max(room, 0), int(g_val))
    if count <= 0:
        return None
    return {
        "kind": "move_deals" if row["metric"] == "open_deals" else "route_leads",
        "count": int(count),
        "from_manager_id": str(giver["manager_id"]), "from_manager_name": str(giver["manager_name"]),
        "to_manager_id": str(recv["manager_id"]), "to_manager_name": str(recv["manager_name"]),
    }

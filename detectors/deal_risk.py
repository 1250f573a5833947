"""deal_risk: a large open deal whose chance of being won fell sharply since a week ago.

The chance comes from predict/ (a calibrated model learned from the company's own closed
deals, used only when there is enough history and it beats each stage's win rate on a
time-based backtest). The same model scores each open deal as of now and as of
`lookback_days` ago (its features then: stage, touches, replies...); a fall of at least
`min_drop` (0.2 = 20 percentage points) in a deal at least as large as the `large_quantile`
share of open deals (among those with an amount; when most deals have none, every deal) is an
insight for its manager, largest amount x fall first, at most
`max_items` a day. Words a manager trusts come with it: the `neighbours` closed deals most like
this one and how many of them were won, and the two or three features whose typical value would
change its chance most ("no touch for 12 days, typically 3").

Off by default: a company should read `crm-pulse model report` before its managers read
predictions. The model (seconds to a minute to fit on large histories) is fitted again only
when a deal closed since the last fit, and then at most once every `refit_days` (7) of scan
time, in the running bot and in `crm-pulse backtest` alike (predict.model.fitted): a daily
scan reuses the week's fit and stays within its time budget (benchmarks/scan.py --model). When it
cannot predict (too little history, or no better than the baseline), it says why through
`skip_reason`, which the scan reports.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import Field

from crm import owners
from crm.data import CrmData
from detectors.insight import Audience, Insight
from detectors.people import working_at
from detectors.registry import DetectorSpec, Need, SkipNote, register

NAME = "deal_risk"
REFIT_DAYS = 7  # refit at most weekly: a model a few days old predicts as well, at 1/7 the cost
REFIT_HELP = ("reuse a model fitted up to this many days ago, on the history as it was then, instead of "
              "refitting after every closed deal (the fit is the costly part of a scan); 0: refit whenever a deal closed")
_skip = SkipNote()  # why nothing was predicted on the last data


class DealRiskSpec(DetectorSpec):
    enabled: bool = False
    min_closed_deals: int = Field(200, ge=20, description="closed deals (with a closing date) before anything is predicted")
    min_won: int = Field(50, ge=10, description="won deals among them, at least")
    min_lost: int = Field(50, ge=10, description="lost deals among them, at least")
    lookback_days: int = Field(7, ge=1, le=90, description="compare each deal's chance now with this many days ago")
    min_drop: float = Field(0.2, gt=0, lt=1, description="a fall in the win chance worth saying (0.2 = 20 points)")
    large_quantile: float = Field(0.75, ge=0, lt=1, description="only deals at least as large as this share of open deals (0: all)")
    max_items: int = Field(5, ge=1, le=50, description="at most this many deals a day, largest amount x fall first")
    neighbours: int = Field(40, ge=5, le=500, description="similar closed deals named in the words")
    refit_days: int = Field(REFIT_DAYS, ge=0, le=90, description=REFIT_HELP)
    # Who is working: filled by bot/config.py from [detectors.manager_load] active_window_days
    # (one notion of "working" for every detector; not a [detectors.deal_risk] key).
    active_window_days: int = Field(90, ge=1, le=730, exclude=True)


def skip_reason(data: CrmData) -> str | None:
    """Why the last detect on this very data predicted nothing (too little history, model no
    better than the baseline), for the scan's "skipped" lines."""
    return _skip.get(data)


@register(NAME, DealRiskSpec, requires=(), summary="a large open deal whose win chance fell sharply since last week (level 3)",
          needs=(Need(("deals.closed_at",)),))  # outcomes need a closing date: without it there is nothing to learn from
def detect(data: CrmData, spec: DealRiskSpec, now: datetime) -> list[Insight]:
    from predict.explain import Explainer
    from predict.features import DAY, amounts_usable, features_at, seconds_of
    from predict.model import HistoryRule, fitted, score

    prep, model = fitted(data, now, HistoryRule(spec.min_closed_deals, spec.min_won, spec.min_lost),
                         max_age_days=spec.refit_days)
    _skip.set(data, None if model.usable else model.reason)
    if not model.usable:
        return []
    t = seconds_of(now)
    before = t - spec.lookback_days * DAY
    current = score(model, prep, t)
    rows = current["row"].to_numpy()
    amount = prep.amount[rows]  # NaN: no amount filled in (empty or 0)
    known = ~np.isnan(amount)
    large = np.ones(len(rows), bool)
    if known.any() and spec.large_quantile > 0 and amounts_usable(prep):
        # "large" among the amounts given; a deal with none is not known to be large. When most deals
        # have no amount (or it is filled in only at closing), size says nothing and every deal counts.
        large = known & (amount >= np.quantile(amount[known], spec.large_quantile))
    old = large & (prep.created[rows] <= before)
    if not old.any():
        return []
    then = features_at(prep, before, rows[old])
    drop = np.full(len(rows), np.nan)
    p_then = np.full(len(rows), np.nan)
    p_then[old] = model.proba(then)
    drop[old] = p_then[old] - current["p_win"].to_numpy()[old]
    hit = np.flatnonzero(drop >= spec.min_drop - 1e-12)
    if not len(hit):
        return []
    weight = drop[hit] * np.where(known[hit], np.nan_to_num(amount[hit]) + 1.0, 1.0)
    hit = hit[np.argsort(-weight, kind="stable")][: spec.max_items]
    explainer = Explainer(model)
    deals = data.deals  # by position: current["row"] is the deal's row (no index of a million ids to build)
    clients = data.clients.set_index("client_id") if data.clients is not None else None
    managers = data.managers.set_index("manager_id")
    nobody = owners.nobody(data)
    # an owner not working as of `now` (detectors.people: marked inactive, idle, no contact) reads nothing
    away = working_at(data, spec.active_window_days, int(t) * 1_000_000_000).not_working()
    out = []
    for i in hit:
        row = current.iloc[[i]].reset_index(drop=True)
        deal = deals.iloc[int(row["row"].iloc[0])]
        similar = explainer.similar(row, spec.neighbours)
        factors = explainer.factors(row)
        out.append(_insight(spec, deal, float(amount[i]), row, float(p_then[i]), similar, factors, clients, managers,
                            model.kind, nobody, away))
    return out


def plain_value(v: object) -> object:
    """A cell as JSON wants it: None for missing (NaN, NA), Python scalars for numpy ones."""
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def _insight(spec: DealRiskSpec, deal: pd.Series, amount: float, row: pd.DataFrame, p_then: float, similar, factors,
             clients: pd.DataFrame | None, managers: pd.DataFrame, kind: str | None,
             nobody: frozenset[str] = frozenset(), away: dict[str, str] | None = None) -> Insight:
    """`amount`: the deal's as predict.features reads it (NaN: none filled in, empty or 0). A deal
    whose owner is not in managers, is a cell that names nobody (crm.owners), or is not working
    (`away`: manager_id -> "inactive" | "idle" | "no_contact", detectors.people, as stalled_deal
    reads it) is the director's: addressed to that id, nobody would receive it."""
    manager_id = plain_value(deal["manager_id"])
    client_id = plain_value(deal.get("client_id"))
    client_name = None
    if clients is not None and client_id is not None and client_id in clients.index:
        client_name = plain_value(clients.loc[client_id, "name"])
    manager_name = plain_value(managers.loc[manager_id, "name"]) if manager_id in managers.index else None
    p_now = float(row["p_win"].iloc[0])
    drop = p_then - p_now
    facts = {
        "deal_id": str(deal["deal_id"]), "deal_title": plain_value(deal.get("title")), "client_name": client_name,
        "manager_id": manager_id, "manager_name": manager_name, "stage": plain_value(deal.get("stage")),
        "amount": plain_value(amount), "currency": plain_value(deal.get("currency")),
        "p_now": round(p_now, 4), "p_before": round(p_then, 4), "lookback_days": spec.lookback_days,
        "stage_win_rate": round(float(row["p_stage"].iloc[0]), 4),
        # None: no activities or emails in the export, so no touches to count (predict.features)
        "days_since_touch": round(float(row["days_since_touch"].iloc[0]), 1) if "days_since_touch" in row else None,
        "touches_14d": int(row["touches_14d"].iloc[0]) if "touches_14d" in row else None,
        "similar_n": similar.n, "similar_won": similar.won,
        "factors": [{"feature": f.feature, "value": f.value, "typical": f.typical, "effect": round(f.effect, 4)}
                    for f in factors],
        "model": kind,
    }
    severity = "critical" if drop >= 2 * spec.min_drop else "warning"
    owned = manager_id is not None and manager_id in managers.index \
        and not owners.no_owner(pd.Series([manager_id], dtype=object), nobody)[0]
    left = (away or {}).get(str(manager_id)) if owned else None
    if left:
        facts["owner_left"] = left  # the director's: the owner does not work their deals
        owned = False
    audience = Audience("manager", manager_id) if owned else Audience("director")
    return Insight(detector=NAME, severity=severity, audience=audience,
                   subject={"deal_id": str(deal["deal_id"])}, facts=facts,
                   evidence={"deal_ids": [str(deal["deal_id"]), *similar.deal_ids[:20]]})


def prepare(data: CrmData, spec: DealRiskSpec) -> tuple[CrmData, DealRiskSpec]:
    """For bot.backtest: nothing to index beyond what predict.model.fitted keeps."""
    return data, spec


def detect_at(state: tuple[CrmData, DealRiskSpec], now: datetime) -> list[Insight]:
    """One replayed day, as `detect` (refitted at most every `refit_days` of replayed time)."""
    return detect(*state, now)

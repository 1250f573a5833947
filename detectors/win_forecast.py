"""win_forecast: the expected won amount this month and next, for the director's weekly report.

From predict/: each open deal's chance of being won (the calibrated model when it beats each
stage's win rate on the company's own backtest; otherwise the stage's win rate, and the words
say so) times the share of won deals at its stage that close within the month, times its
amount, with an 80% interval from simulated outcomes; next to it the weighted pipeline
(stage probability x amount, same timing). One item, in the weekly report (bot.delivery
WEEKLY_DETECTORS), never in the daily digest. Below the minimum history nothing is said, and
`skip_reason` tells the scan why.

With the model in use, a second item for the director lists the deals likely to close (at most
`likely_items`, largest amount x lift first): open deals the model gives at least
`likely_min_chance` and at least `likely_min_lift` more than their stage's win rate, so the
weighted pipeline undercounts them. Each is said with its similar past deals ("похожа на 40
прошлых сделок, из них выиграно 32 (80%)"). One item, weekly, never one per deal. Off by default, like deal_risk, and sharing its fit
(predict.model.fitted: refitted only when a deal closed, and at most every `refit_days`).
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
from pydantic import Field

from crm.data import CrmData
from detectors.insight import Audience, Insight
from detectors.deal_risk import REFIT_DAYS, REFIT_HELP
from detectors.registry import DetectorSpec, Need, SkipNote, register

NAME = "win_forecast"
_skip = SkipNote()  # why nothing was forecast on the last data


class WinForecastSpec(DetectorSpec):
    enabled: bool = False
    min_closed_deals: int = Field(200, ge=20, description="closed deals (with a closing date) before anything is forecast")
    min_won: int = Field(50, ge=10, description="won deals among them, at least")
    min_lost: int = Field(50, ge=10, description="lost deals among them, at least")
    months: int = Field(2, ge=1, le=6, description="this month and the next ones")
    likely_items: int = Field(5, ge=0, le=20, description="deals likely to close listed in one weekly item (0: no such item)")
    likely_min_chance: float = Field(0.6, gt=0, lt=1, description="a listed deal's win chance, at least")
    likely_min_lift: float = Field(0.15, ge=0, lt=1, description="...and at least this much above its stage's win rate")
    neighbours: int = Field(40, ge=5, le=500, description="similar closed deals named for each listed deal")
    refit_days: int = Field(REFIT_DAYS, ge=0, le=90, description=REFIT_HELP)


def skip_reason(data: CrmData) -> str | None:
    """Why the last detect on this very data forecast nothing."""
    return _skip.get(data)


@register(NAME, WinForecastSpec, requires=(), summary="expected won amount this month and next vs the weighted pipeline, and the deals likely to close (level 3, weekly)",
          needs=(Need(("deals.closed_at",)),))
def detect(data: CrmData, spec: WinForecastSpec, now: datetime) -> list[Insight]:
    from predict.model import HistoryRule, fitted
    from predict.report import forecast_now

    rule = HistoryRule(spec.min_closed_deals, spec.min_won, spec.min_lost)
    prep, model = fitted(data, now, rule, max_age_days=spec.refit_days)  # shared with deal_risk
    fc, reason = forecast_now(prep, now, rule, months=spec.months, model=model)
    _skip.set(data, None if fc is not None else reason)
    if fc is None or not fc["open_deals"]:
        return []
    currency = None
    if fc["unit"] == "amount" and data.has_column("deals", "currency"):
        open_cur = data.deals.loc[data.deals["status"] == "open", "currency"].dropna().unique()
        currency = str(open_cur[0]) if len(open_cur) == 1 else None
    facts = {**fc, "currency": currency, "model_reason": reason}
    out = [Insight(detector=NAME, severity="info", audience=Audience("director"),
                   subject={"month": fc["months"][0]["month"]}, facts=facts)]
    if model.usable and spec.likely_items:
        likely = likely_to_close(data, prep, model, spec, now, currency)
        if likely is not None:
            out.append(likely)
    return out


def likely_to_close(data: CrmData, prep, model, spec: WinForecastSpec, now: datetime,
                    currency: str | None) -> Insight | None:
    """One director item: the open deals the model rates well above their stage's win rate."""
    from detectors.deal_risk import plain_value
    from predict.explain import Explainer
    from predict.model import score
    from predict.features import amounts_usable

    frame = score(model, prep, now)
    if frame.empty:
        return None
    p, base = frame["p_win"].to_numpy(), frame["p_stage"].to_numpy()
    amount = prep.amount[frame["row"].to_numpy()]
    hit = np.flatnonzero((p >= spec.likely_min_chance - 1e-12) & (p - base >= spec.likely_min_lift - 1e-12))
    if not len(hit):
        return None
    by_amount = amounts_usable(prep)  # the forecast's unit: amounts only when most deals have one
    value = np.nan_to_num(amount, nan=0.0).clip(min=0) if by_amount else np.ones(len(frame))
    weight = (p[hit] - base[hit]) * (value[hit] + 1.0)
    top = hit[np.argsort(-weight, kind="stable")][: spec.likely_items]
    explainer = Explainer(model)
    deals = data.deals  # by position: frame["row"] is the deal's row (no index of a million ids to build)
    names = dict(zip(data.managers["manager_id"], data.managers["name"]))
    listed, evidence = [], []
    for i in top:
        row = frame.iloc[[i]].reset_index(drop=True)
        deal = deals.iloc[int(row["row"].iloc[0])]
        similar = explainer.similar(row, spec.neighbours)
        manager_id = plain_value(deal.get("manager_id"))
        listed.append({
            "deal_id": str(deal["deal_id"]), "deal_title": plain_value(deal.get("title")), "manager_id": manager_id,
            "manager_name": plain_value(names.get(manager_id)), "stage": plain_value(deal.get("stage")),
            "amount": plain_value(amount[i]) if by_amount else None,  # None: not filled in (empty or 0)
            "p_win": round(float(p[i]), 4), "stage_win_rate": round(float(base[i]), 4),
            "similar_n": similar.n, "similar_won": similar.won,
        })
        evidence.append(str(deal["deal_id"]))
    facts = {"kind": "likely_to_close", "deals": listed, "candidates": int(len(hit)), "currency": currency,
             "unit": "amount" if by_amount else "deals", "model": model.kind,
             # what the model expects of the listed deals beyond the weighted pipeline (stage rate x value)
             "above_pipeline": round(float(((p[top] - base[top]) * value[top]).sum()), 2),
             "min_chance": spec.likely_min_chance, "min_lift": spec.likely_min_lift}
    return Insight(detector=NAME, severity="info", audience=Audience("director"),
                   subject={"list": "likely_to_close"}, facts=facts, evidence={"deal_ids": evidence})


def prepare(data: CrmData, spec: WinForecastSpec) -> tuple[CrmData, WinForecastSpec]:
    """For bot.backtest: nothing to index beyond what predict.model.fitted keeps."""
    return data, spec


def detect_at(state: tuple[CrmData, WinForecastSpec], now: datetime) -> list[Insight]:
    """One replayed day, as `detect` (refitted at most every `refit_days` of replayed time)."""
    return detect(*state, now)

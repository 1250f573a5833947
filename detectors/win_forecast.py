"""win_forecast: the expected won amount this month and next, for the director's weekly report.

From predict/: each open deal's chance of being won (the calibrated model when it beats each
stage's win rate on the company's own backtest; otherwise the stage's win rate, and the words
say so) times the share of won deals at its stage that close within the month, times its
amount, with an 80% interval from simulated outcomes; next to it the weighted pipeline
(stage probability x amount, same timing). One item, in the weekly report (bot.delivery
WEEKLY_DETECTORS), never in the daily digest. Below the minimum history nothing is said, and
`skip_reason` tells the scan why. Off by default, like deal_risk, and sharing its fit
(predict.model.fitted: refitted only when a deal closed; in a backtest at most weekly).
"""
from __future__ import annotations

import weakref
from datetime import datetime

from pydantic import Field

from crm.data import CrmData
from detectors.insight import Audience, Insight
from detectors.registry import DetectorSpec, Need, register

NAME = "win_forecast"
_last: tuple[weakref.ref, str] | None = None


class WinForecastSpec(DetectorSpec):
    enabled: bool = False
    min_closed_deals: int = Field(200, ge=20, description="closed deals (with a closing date) before anything is forecast")
    min_won: int = Field(50, ge=10, description="won deals among them, at least")
    min_lost: int = Field(50, ge=10, description="lost deals among them, at least")
    months: int = Field(2, ge=1, le=6, description="this month and the next ones")


def skip_reason(data: CrmData) -> str | None:
    """Why the last detect on this very data forecast nothing."""
    if _last is not None and _last[0]() is data:
        return _last[1]
    return None


@register(NAME, WinForecastSpec, requires=(), summary="expected won amount this month and next vs the weighted pipeline (level 3, weekly)",
          needs=(Need(("deals.closed_at",)),))
def detect(data: CrmData, spec: WinForecastSpec, now: datetime) -> list[Insight]:
    return _detect(data, spec, now, max_age_days=0)


def prepare(data: CrmData, spec: WinForecastSpec) -> tuple[CrmData, WinForecastSpec]:
    """For bot.backtest: nothing to index beyond what predict.model.fitted keeps."""
    return data, spec


def detect_at(state: tuple[CrmData, WinForecastSpec], now: datetime) -> list[Insight]:
    """One replayed day: the model is refitted at most every REFIT_DAYS of replayed time."""
    from detectors.deal_risk import REFIT_DAYS

    data, spec = state
    return _detect(data, spec, now, max_age_days=REFIT_DAYS)


def _detect(data: CrmData, spec: WinForecastSpec, now: datetime, *, max_age_days: int) -> list[Insight]:
    from predict.model import HistoryRule, fitted
    from predict.report import forecast_now

    global _last
    rule = HistoryRule(spec.min_closed_deals, spec.min_won, spec.min_lost)
    prep, model = fitted(data, now, rule, max_age_days=max_age_days)  # shared with deal_risk
    fc, reason = forecast_now(prep, now, rule, months=spec.months, model=model)
    _last = None if fc is not None else (weakref.ref(data), reason)
    if fc is None or not fc["open_deals"]:
        return []
    currency = None
    if fc["unit"] == "amount" and data.has_column("deals", "currency"):
        open_cur = data.deals.loc[data.deals["status"] == "open", "currency"].dropna().unique()
        currency = str(open_cur[0]) if len(open_cur) == 1 else None
    facts = {**fc, "currency": currency, "model_reason": reason}
    return [Insight(detector=NAME, severity="info", audience=Audience("director"),
                    subject={"month": fc["months"][0]["month"]}, facts=facts)]

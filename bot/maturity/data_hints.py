"""What the CRM data itself says about the maturity questions.

Shown next to the director's answer, never instead of it: the data can only hint (a CRM
export does not show how many systems a manager opens). Pure: CrmData and `now` in,
DataHint records out; the words are in messages.maturity.hint_text.

Hints:
- systems: which parts of the client picture the CRM data holds (client cards, emails, calls,
  meetings); how many systems a manager opens is beyond what the data can show.
- lead_distribution: how long leads wait for a manager and how evenly they land on managers.
  Automatic rules leave a signature of near-instant, even assignment.
- auto_actions: activities the system created itself, where the data marks them (an optional
  activities column `created_by` or `is_auto`); otherwise we say the data does not show it.
- recommendations (data ready for level 3): closed deals against the thousands the article
  says learning needs, loss reasons filled in, key deal fields filled in; and the win model's
  own verdict (predict/, as `crm-pulse model report` gives it): how far the company is from the
  minimum history (and, at its recent pace, how many months), or whether a model beats each
  stage's win rate on the company's own backtest.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from crm.data import CrmData

LEAD_WINDOW_DAYS = 180  # recent enough to describe today's process
FAST_ASSIGN_MINUTES = 5.0  # "near-instant": what a routing rule does, a person rarely does
SLOW_ASSIGN_MINUTES = 60.0  # a median above this is a person picking leads up
EVEN_CV = 0.25  # leads per FTE within about ±25% between managers reads as "even"
UNEVEN_CV = 0.5
MIN_LEADS = 20  # fewer leads than this say nothing about a process
CLOSED_DEALS_FOR_LEARNING = 1000  # the article: «Нужны тысячи завершённых сделок»
KEY_DEAL_FIELDS = ("client_id", "amount", "source")
SYSTEM_AUTHORS = {"system", "auto", "automatic", "automation", "robot", "bot", "trigger", "workflow",
                  "система", "робот", "автоматически", "бот", "триггер"}


@dataclass(frozen=True)
class DataHint:
    question_id: str | None  # the question it sits next to; None = about the data as a whole
    kind: str
    facts: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataHint":
        return cls(d.get("question_id"), d["kind"], dict(d.get("facts") or {}))


def data_hints(data: CrmData | None, now: datetime, *, model_rule: Any = None) -> list[DataHint]:
    """All hints the data supports, in questionnaire order. `model_rule`: the minimum history
    (predict.model.HistoryRule) of the config's [detectors.deal_risk]; None: its defaults."""
    if data is None:
        return [DataHint(None, "no_data")]
    return [crm_coverage_hint(data), lead_distribution_hint(data, now), auto_actions_hint(data),
            data_quality_hint(data, now), model_readiness_hint(data, now, model_rule)]


def crm_coverage_hint(data: CrmData) -> DataHint:
    """Which parts of a client's picture the CRM data holds (emails, calls, meetings).

    The data cannot count the systems a manager opens; it can show what is already in the CRM.
    """
    facts: dict[str, Any] = {"clients": data.clients is not None, "emails_n": None, "calls_n": None,
                             "meetings_n": None}
    if data.emails is not None:
        facts["emails_n"] = int(len(data.emails))
    if data.activities is not None and "type" in data.activities:
        kinds = data.activities["type"].astype("str").value_counts()
        facts["calls_n"] = int(kinds.get("call", 0))
        facts["meetings_n"] = int(kinds.get("meeting", 0))
    return DataHint("systems", "crm_coverage", facts)


def _empty(series: pd.Series) -> pd.Series:
    """True where a value is missing or blank text."""
    missing = series.isna()
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        missing = missing | series.astype("str").str.strip().eq("")
    return missing


def lead_distribution_hint(data: CrmData, now: datetime) -> DataHint:
    leads = data.leads
    if leads is None:
        return DataHint("lead_distribution", "no_leads")
    now_ts = pd.Timestamp(now)
    leads = leads[leads["created_at"] <= now_ts]
    if leads.empty:
        return DataHint("lead_distribution", "no_leads")
    end = leads["created_at"].max()
    start = end - pd.Timedelta(days=LEAD_WINDOW_DAYS)
    recent = leads[leads["created_at"] > start]
    facts: dict[str, Any] = {
        "leads_n": int(len(recent)),
        "window_start": recent["created_at"].min().date().isoformat(),
        "window_end": end.date().isoformat(),
    }
    has_manager = "manager_id" in recent and not _empty(recent["manager_id"]).all()
    if not has_manager:
        return DataHint("lead_distribution", "leads_without_managers", facts)
    assigned = recent[~_empty(recent["manager_id"])]
    facts["assigned_n"] = int(len(assigned))
    facts["assigned_share"] = round(len(assigned) / len(recent), 3)

    median_minutes = fast_share = None
    if "assigned_at" in assigned and assigned["assigned_at"].notna().any():
        timed = assigned[assigned["assigned_at"].notna()]
        wait = (timed["assigned_at"] - timed["created_at"]).dt.total_seconds() / 60.0
        wait = wait.clip(lower=0.0)
        median_minutes = round(float(wait.median()), 1)
        fast_share = round(float((wait <= FAST_ASSIGN_MINUTES).mean()), 3)
        facts["timed_n"] = int(len(timed))
    facts["median_minutes"] = median_minutes
    facts["fast_share"] = fast_share
    facts["fast_minutes"] = FAST_ASSIGN_MINUTES

    cv, managers_n = _evenness(assigned, data.managers)
    facts["managers_n"] = managers_n
    facts["evenness_cv"] = None if cv is None else round(cv, 3)
    facts["signature"] = _signature(len(recent), median_minutes, fast_share, cv)
    return DataHint("lead_distribution", "lead_assignment", facts)


def _evenness(assigned: pd.DataFrame, managers: pd.DataFrame) -> tuple[float | None, int]:
    """Coefficient of variation of leads per FTE across active managers (0 = perfectly even)."""
    active = managers
    if "active" in managers:
        active = managers[managers["active"].fillna(True).astype(bool)]
    capacity = active.set_index("manager_id")["capacity"] if "capacity" in active else pd.Series(1.0, index=active["manager_id"])
    capacity = capacity.fillna(1.0).where(lambda c: c > 0, 1.0)
    counts = assigned["manager_id"].value_counts().reindex(capacity.index, fill_value=0)
    if len(counts) < 2:
        return None, int(len(counts))
    per_fte = counts.astype(float) / capacity.astype(float)
    mean = float(per_fte.mean())
    if mean == 0:
        return None, int(len(counts))
    return float(per_fte.std(ddof=0)) / mean, int(len(counts))


def _signature(n: int, median_minutes: float | None, fast_share: float | None, cv: float | None) -> str:
    """'automatic' | 'manual' | 'mixed' | 'unclear' (too few leads or no timestamps)."""
    if n < MIN_LEADS or (median_minutes is None and cv is None):
        return "unclear"
    fast = median_minutes is not None and median_minutes <= FAST_ASSIGN_MINUTES and (fast_share or 0) >= 0.8
    slow = median_minutes is not None and median_minutes > SLOW_ASSIGN_MINUTES
    even = cv is not None and cv <= EVEN_CV
    uneven = cv is not None and cv > UNEVEN_CV
    if fast and (even or cv is None):
        return "automatic"
    if slow or (uneven and not fast):
        return "manual"
    return "mixed"


def auto_actions_hint(data: CrmData) -> DataHint:
    acts = data.activities
    if acts is None:
        return DataHint("auto_actions", "no_activities")
    facts: dict[str, Any] = {"activities_n": int(len(acts))}
    if "is_auto" in acts.columns and acts["is_auto"].notna().any():
        marked = acts["is_auto"].dropna()
        auto = marked.map(_truthy)
        facts.update(column="is_auto", marked_n=int(len(marked)), auto_n=int(auto.sum()))
    elif "created_by" in acts.columns and acts["created_by"].notna().any():
        marked = acts["created_by"].dropna().astype("str")
        auto = marked.str.strip().str.lower().isin(SYSTEM_AUTHORS)
        facts.update(column="created_by", marked_n=int(len(marked)), auto_n=int(auto.sum()))
    else:
        return DataHint("auto_actions", "activities_unmarked", facts)
    facts["auto_share"] = round(facts["auto_n"] / facts["marked_n"], 3) if facts["marked_n"] else 0.0
    return DataHint("auto_actions", "auto_activities", facts)


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in {"1", "true", "yes", "y", "да", "auto", "system"}
    return bool(v)


def data_quality_hint(data: CrmData, now: datetime) -> DataHint:
    deals = data.deals
    now_ts = pd.Timestamp(now)
    deals = deals[deals["created_at"] <= now_ts]
    closed = deals[deals["status"].isin(["won", "lost"])]
    lost = deals[deals["status"] == "lost"]
    facts: dict[str, Any] = {
        "deals_n": int(len(deals)),
        "closed_n": int(len(closed)),
        "won_n": int((deals["status"] == "won").sum()),
        "lost_n": int(len(lost)),
        "needed_closed_n": CLOSED_DEALS_FOR_LEARNING,
    }
    if len(lost) and "loss_reason" in lost:
        facts["lost_with_reason_share"] = round(float((~_empty(lost["loss_reason"])).mean()), 3)
    else:
        facts["lost_with_reason_share"] = None
    empty_fields = []
    any_empty = pd.Series(False, index=deals.index)
    for col in KEY_DEAL_FIELDS:
        if col not in deals:
            empty_fields.append({"field": col, "empty_share": 1.0})
            any_empty[:] = True
            continue
        e = _empty(deals[col])
        any_empty = any_empty | e
        if len(deals):
            empty_fields.append({"field": col, "empty_share": round(float(e.mean()), 3)})
    facts["empty_fields"] = empty_fields
    facts["incomplete_share"] = round(float(any_empty.mean()), 3) if len(deals) else None
    return DataHint("recommendations", "data_quality", facts)


PACE_DAYS = 90  # "at the current pace": closings over the last quarter


def model_readiness_hint(data: CrmData, now: datetime, rule: Any = None) -> DataHint:
    """Could the system recommend from this data? The win model's verdict at `now`.

    Below the minimum history (predict.model.HistoryRule; the defaults deal_risk uses) it says
    what is missing and, at the pace deals closed over the last PACE_DAYS, in how many months
    it would be there. Above it, the model is backtested (a fit: seconds, up to a minute on
    100,000 deals; shared with a scan's deal_risk/win_forecast through predict.model.fitted)
    and the hint says whether it beats each stage's win rate, with both Brier scores."""
    import math

    from predict.features import DAY, seconds_of
    from predict.model import HistoryRule, closed_counts, fitted

    if not data.has_column("deals", "closed_at"):
        return DataHint("recommendations", "model_no_closing_dates")
    rule = rule or HistoryRule()
    t = seconds_of(now)
    prep, model = fitted(data, t, rule)
    won, lost = closed_counts(prep, t)
    facts: dict[str, Any] = {"closed_n": won + lost, "won_n": won, "lost_n": lost, "min_closed": rule.min_closed,
                             "min_won": rule.min_won, "min_lost": rule.min_lost}
    if rule.shortfall(won, lost):
        need = {"closed": max(0, rule.min_closed - won - lost), "won": max(0, rule.min_won - won),
                "lost": max(0, rule.min_lost - lost)}
        recent_won, recent_lost = (a - b for a, b in zip((won, lost), closed_counts(prep, t - PACE_DAYS * DAY)))
        per_month = {"closed": (recent_won + recent_lost) * 30 / PACE_DAYS, "won": recent_won * 30 / PACE_DAYS,
                     "lost": recent_lost * 30 / PACE_DAYS}
        months = [math.inf if per_month[k] <= 0 else need[k] / per_month[k] for k in need if need[k] > 0]
        facts.update(missing=need, closed_per_month=round(per_month["closed"], 1),
                     months_to_enough=None if not months or math.isinf(max(months)) else math.ceil(max(months)))
        return DataHint("recommendations", "model_history_short", facts)
    if not model.check:  # enough deals, but the backtest could not run (too little before its cutoff)
        return DataHint("recommendations", "model_untested", facts)
    facts.update(beats_baseline=model.usable, **{k: model.check[k] for k in ("brier", "baseline_brier", "gain", "model")})
    return DataHint("recommendations", "model_backtest", facts)


def hints_for(hints: list[DataHint], question_id: str | None) -> list[DataHint]:
    return [h for h in hints if h.question_id == question_id]


__all__ = ["DataHint", "data_hints", "hints_for", "crm_coverage_hint", "lead_distribution_hint", "auto_actions_hint",
           "data_quality_hint", "model_readiness_hint", "CLOSED_DEALS_FOR_LEARNING"]

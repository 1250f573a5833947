"""lead_score: which new leads to call first, learned from the company's leads that carry an outcome.

Level 3 for leads. predict.leads learns, from leads whose status says converted or not (the
canonical `leads.status`), how a lead's traits known on arrival (source, region, time of day,
weekend) move its chance to convert, and is used only above a minimum of outcomes and when it
beats the base rate on a time-based backtest, like deal_risk. Then each manager gets one item
a day: their new leads (created within `lookback_days`, no outcome yet, nobody called yet: no
first answer by now, no status saying someone works on it, crm.lead_words, nor a deal stage
past the pipeline's first, as amoCRM's leads have: lead_words.worked_stages; a list of leads
already in work told managers to call first whom they had called) best first, at most
`max_leads`, each with the trait behind it ("source referral: 36% of 400 past leads
converted, 12% on average"). New leads without a manager, or written to someone not working as of
`now` (detectors.people.Workforce: marked inactive, no recorded work or no contact with clients
in active_window_days, as stalled_deal and manager_load read it) or in no managers file, go to
the director in one item. A
manager with fewer than `min_new_leads` new leads has nothing to rank and gets nothing.

Leads carry no conversion date, so outcomes are the statuses as they are now: in `crm-pulse
backtest`, a lead decided since a replayed day is not "new" on that day, and the replay
undercounts this detector's items (it is exact for the latest week only).

Off by default; when it cannot score (too few outcomes, no better than the base rate), the
scan's "skipped" line says why (`skip_reason`).
"""
from __future__ import annotations

from datetime import datetime

import pandas as pd
from pydantic import Field

from crm import lead_words, owners
from crm.data import CrmData
from detectors.insight import Audience, Insight
from detectors.people import working_at
from detectors.registry import DetectorSpec, Need, SkipNote, register

NAME = "lead_score"
_skip = SkipNote()  # why nothing was scored on the last data


class LeadScoreSpec(DetectorSpec):
    enabled: bool = False
    min_outcomes: int = Field(200, ge=20, description="leads with an outcome (converted or not) before any is scored")
    min_converted: int = Field(30, ge=5, description="converted leads among them, at least")
    min_not_converted: int = Field(30, ge=5, description="not converted leads among them, at least")
    lookback_days: int = Field(7, ge=1, le=90, description="a lead created within this many days and without an outcome is new")
    max_leads: int = Field(5, ge=1, le=20, description="at most this many leads listed per manager, best first")
    min_new_leads: int = Field(2, ge=1, description="a manager with fewer new leads has nothing to rank")
    converted_statuses: list[str] = Field(
        default_factory=lambda: ["converted", "qualified", "won", "конвертирован", "сконвертирован", "успешно реализовано",
                                 "качественный лид"],  # Bitrix24's success stage of a lead
        description="lead statuses meaning it converted (compared case-insensitively)")
    not_converted_statuses: list[str] = Field(
        default_factory=lambda: ["lost", "junk", "spam", "duplicate", "disqualified", "closed", "unqualified",
                                 "закрыто и не реализовано", "закрыт", "некачественный", "некачественный лид", "отказ"],
        description="lead statuses meaning it did not (compared case-insensitively); any other status is no outcome yet")
    # Who is working: filled by bot/config.py from [detectors.manager_load] active_window_days
    # (one notion of "working" for every detector; not a [detectors.lead_score] key).
    active_window_days: int = Field(90, ge=1, le=730, exclude=True)


def skip_reason(data: CrmData) -> str | None:
    """Why the last detect on this very data scored nothing (too few outcomes, no better than the base rate)."""
    return _skip.get(data)


@register(NAME, LeadScoreSpec, requires=("leads",), summary="which new leads to call first, from past leads' outcomes (level 3)",
          needs=(Need(("leads.status",)),))  # the outcome is the status: without it there is nothing to learn
def detect(data: CrmData, spec: LeadScoreSpec, now: datetime) -> list[Insight]:
    from detectors.deal_risk import plain_value
    from predict.leads import LeadRule, best_reason, lead_features, outcomes, train_leads

    leads = data.leads
    now_ts = pd.Timestamp(now)
    model = train_leads(leads, now_ts, LeadRule(spec.min_outcomes, spec.min_converted, spec.min_not_converted),
                        spec.converted_statuses, spec.not_converted_statuses)
    _skip.set(data, None if model.usable else model.reason)
    if not model.usable:
        return []
    created = pd.to_datetime(leads["created_at"], utc=True)
    fresh = ((created <= now_ts) & (created > now_ts - pd.Timedelta(days=spec.lookback_days))).to_numpy()
    waiting = outcomes(leads, spec.converted_statuses, spec.not_converted_statuses) == -1  # no outcome yet, and a lead
    # ... and nobody has called yet: a status saying someone works on it, or a first answer by now
    # (a custom pipeline's stage after the first, e.g. amoCRM's «Думает», says someone moved it on)
    waiting &= ~lead_words.status_keys(leads["status"]).isin(
        lead_words.ANSWERED | lead_words.worked_stages(data.stages)).to_numpy(dtype=bool)
    if data.has_column("leads", "first_response_at"):
        waiting &= ~(pd.to_datetime(leads["first_response_at"], utc=True) <= now_ts).to_numpy(dtype=bool)
    new = leads[fresh & waiting]
    if new.empty:
        return []
    x = lead_features(new)
    new = new.assign(_p=model.proba(x))
    owner = new["manager_id"].astype("string") if "manager_id" in new else pd.Series(pd.NA, index=new.index, dtype="string")
    # a lead written to someone not working (marked inactive, idle or no contact as of `now`:
    # detectors.people, stalled_deal's and manager_load's notion) or in no managers file is
    # nobody's: the director's list, and so is one whose owner cell names nobody ("No owner",
    # the fill constant: crm.owners)
    who = working_at(data, spec.active_window_days, now_ts.value)
    owner = owner.where(owner.isin(who.ids(who.working)) & ~owners.names_nobody(data, owner))
    names = dict(zip(data.managers["manager_id"], data.managers["name"]))
    out = []
    for manager_id, part in new.groupby(owner.fillna(""), sort=True):
        if len(part) < spec.min_new_leads:
            continue
        part = part.sort_values(["_p", "created_at"], ascending=[False, True], kind="stable")
        top = part.head(spec.max_leads)
        listed = []
        for idx, lead in top.iterrows():
            listed.append({
                "lead_id": str(lead["lead_id"]), "created_at": pd.Timestamp(lead["created_at"]).isoformat(),
                "source": plain_value(lead.get("source")), "region": plain_value(lead.get("region")),
                "p": round(float(lead["_p"]), 4), "reason": best_reason(model, x.loc[idx]),
            })
        mid = manager_id or None
        facts = {"leads": listed, "new_leads": int(len(part)), "base_rate": round(model.base_rate, 4),
                 "manager_id": mid, "manager_name": plain_value(names.get(mid)) if mid else None,
                 "lookback_days": spec.lookback_days, "model_reason": model.reason}
        audience = Audience("manager", mid) if mid else Audience("director")
        # identity: whose list and which lead heads it; a new best lead is a new item, the same one is not repeated
        subject = {"manager_id": mid, "lead_id": listed[0]["lead_id"]} if mid else {"lead_id": listed[0]["lead_id"]}
        out.append(Insight(detector=NAME, severity="info", audience=audience, subject=subject, facts=facts,
                           evidence={"lead_ids": [d["lead_id"] for d in listed]}))
    return out

"""deal_risk on a planted company: a large deal that went quiet is found, worded with similar
past deals and what pulls it down; too little history says why; off by default."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from detectors.deal_risk import DealRiskSpec, detect, skip_reason
from detectors.registry import REGISTRY, run_detectors
from messages.digest import Checks, unchecked_text
from messages.i18n import count, percent
from messages.render import insight_text
from predict.planted import planted_company

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def _with_a_deal_gone_quiet(n: int = 2000):
    """The planted company plus one huge open deal at negotiation, touched daily until 15 days
    ago and never since: a week ago it looked engaged, now it does not."""
    data = planted_company(n, NOW, seed=8)
    created = NOW - 40 * DAY
    deal = pd.DataFrame({
        "deal_id": ["QUIET"], "client_id": ["CQ"], "manager_id": ["m1"], "title": ["Big quiet deal"],
        "amount": [5e9], "currency": ["USD"], "stage": ["negotiation"], "status": ["open"],
        "created_at": pd.to_datetime([created], utc=True), "closed_at": pd.to_datetime([None], utc=True), "loss_reason": [None],
        "source": ["web"], "region": ["north"],
    }).astype(data.deals.dtypes.to_dict())
    data.deals = pd.concat([data.deals, deal], ignore_index=True)
    entries = [created, created + 5 * DAY, created + 10 * DAY, created + 15 * DAY]
    hist = pd.DataFrame({"deal_id": ["QUIET"] * 4, "stage": ["new", "qualified", "proposal", "negotiation"],
                         "entered_at": pd.to_datetime(entries, utc=True)}).astype(data.stage_history.dtypes.to_dict())
    data.stage_history = pd.concat([data.stage_history, hist], ignore_index=True)
    days = [created + k * DAY for k in range(26)]  # up to 15 days before NOW
    acts = pd.DataFrame({
        "activity_id": [f"AQ{k}" for k in range(len(days))], "deal_id": ["QUIET"] * len(days),
        "client_id": ["CQ"] * len(days), "manager_id": ["m1"] * len(days), "type": ["call"] * len(days),
        "due_at": pd.to_datetime(days, utc=True), "done_at": pd.to_datetime(days, utc=True),
    }).astype(data.activities.dtypes.to_dict())
    data.activities = pd.concat([data.activities, acts], ignore_index=True)
    return data


@pytest.fixture(scope="module")
def found():
    data = _with_a_deal_gone_quiet()
    return data, detect(data, DealRiskSpec(enabled=True), NOW)


def test_a_large_deal_that_went_quiet_is_at_risk(found):
    _, insights = found
    quiet = [i for i in insights if i.subject == {"deal_id": "QUIET"}]
    assert quiet, [i.subject for i in insights]
    f = quiet[0].facts
    assert f["p_before"] - f["p_now"] >= 0.2
    assert f["days_since_touch"] == pytest.approx(15, abs=0.1) and f["touches_14d"] == 0
    assert quiet[0].audience.role == "manager" and quiet[0].audience.manager_id == "m1"
    assert f["similar_n"] == 40 and 0 <= f["similar_won"] <= 40
    assert {x["feature"] for x in f["factors"]} & {"touches_14d", "days_since_touch"}
    assert quiet[0].evidence["deal_ids"][0] == "QUIET" and len(quiet[0].evidence["deal_ids"]) > 10
    assert len(insights) <= DealRiskSpec().max_items


def test_the_words_say_the_chance_the_similar_deals_and_what_pulls_it_down(found):
    _, insights = found
    quiet = next(i for i in insights if i.subject == {"deal_id": "QUIET"})
    f = quiet.facts
    ru, en = insight_text(quiet, "ru"), insight_text(quiet, "en")
    before, now = percent(f["p_before"], "ru"), percent(f["p_now"], "ru")
    assert f"под угрозой: шанс {before} → {now}" in ru
    pct = percent(f["similar_won"] / 40, "ru")
    assert f"Похожа на 40 прошлых сделок, из них выиграно {f['similar_won']} ({pct})" in ru
    assert f"нет касаний {count(15, 'day', 'ru')}" in ru and "Что тянет вниз:" in ru
    assert f"at risk: win chance {percent(f['p_before'], 'en')} → {percent(f['p_now'], 'en')}" in en
    assert "It looks like 40 past deals" in en and "менеджер" not in ru.split("Что тянет вниз:")[1]


def test_too_little_history_predicts_nothing_and_the_scan_is_told_why():
    data = planted_company(120, NOW, seed=9)
    assert detect(data, DealRiskSpec(enabled=True), NOW) == []
    why = skip_reason(data)
    assert why is not None and "not enough history to predict" in why and "needs at least 200 closed" in why
    ru = unchecked_text(Checks(("deal_risk",), {"deal_risk": why}), "ru")
    assert "сделки под угрозой (мало истории для прогноза: закрытых сделок с датой закрытия" in ru
    assert "нужно не меньше 200, из них выигранных 50 и проигранных 50" in ru and "history" not in ru


def test_off_by_default_so_existing_scans_do_not_change():
    assert DealRiskSpec().enabled is False
    data = planted_company(300, NOW, seed=10)
    result = run_detectors(data, {name: det.spec() for name, det in REGISTRY.items()}, NOW)
    assert "deal_risk" not in result.skipped and "deal_risk" in result.not_opted_in  # not news in every scan
    assert not [i for i in result.insights if i.detector == "deal_risk"]


def test_deals_are_named_by_their_row_whatever_the_tables_index(found):
    """deal_risk and the deals likely to close read each deal by its position (no index of a
    million ids): a deals table whose index is not 0..n-1 names the same deals, same facts."""
    from detectors.win_forecast import WinForecastSpec, detect as forecast
    from predict.model import forget_fitted

    data, insights = found
    likely = [i for i in forecast(data, WinForecastSpec(enabled=True), NOW) if i.facts.get("kind") == "likely_to_close"]
    assert likely and likely[0].facts["deals"]
    odd = _with_a_deal_gone_quiet()
    odd.deals.index = pd.RangeIndex(len(odd.deals))[::-1] * 7 + 3  # labels that are not positions
    forget_fitted()
    again = detect(odd, DealRiskSpec(enabled=True), NOW)
    likely_again = [i for i in forecast(odd, WinForecastSpec(enabled=True), NOW) if i.facts.get("kind") == "likely_to_close"]
    assert [(i.subject, i.facts) for i in again] == [(i.subject, i.facts) for i in insights]
    assert likely_again[0].facts == likely[0].facts
    for item in likely_again[0].facts["deals"]:
        row = odd.deals[odd.deals["deal_id"] == item["deal_id"]].iloc[0]
        assert item["deal_title"] == row["title"] and item["manager_id"] == row["manager_id"]
    forget_fitted()


def test_large_means_large_among_the_amounts_filled_in_not_among_zeros():
    import numpy as np

    data = _with_a_deal_gone_quiet()
    zero = (np.random.default_rng(4).random(len(data.deals)) < 0.45) & (data.deals["deal_id"] != "QUIET").to_numpy()
    data.deals.loc[zero, "amount"] = 0.0  # budgets nobody filled in
    # every fall, however small, to see which deals count as large (read as amounts, the zeros
    # pulled the top quarter's floor down to 444,000 from 780,000)
    insights = detect(data, DealRiskSpec(enabled=True, max_items=50, min_drop=0.01), NOW)
    assert any(i.subject == {"deal_id": "QUIET"} for i in insights)
    open_amounts = data.deals.loc[data.deals["status"] == "open", "amount"]
    floor = np.quantile(open_amounts[open_amounts > 0], 0.75)
    assert all(i.facts["amount"] is not None and i.facts["amount"] >= floor for i in insights), \
        sorted(i.facts["amount"] or 0 for i in insights)


def test_a_deal_with_no_amount_is_said_to_have_none_not_zero():
    from detectors.insight import Audience, Insight

    facts = {"deal_id": "D1", "deal_title": "Склад", "p_now": 0.2, "p_before": 0.6, "lookback_days": 7,
             "stage_win_rate": 0.4, "amount": None, "currency": "KZT", "days_since_touch": 1, "touches_14d": 3,
             "similar_n": 0, "similar_won": 0, "model": "logistic",
             "factors": [{"feature": "amount", "value": None, "typical": 500000.0, "effect": -0.1}]}
    item = Insight(detector="deal_risk", severity="warning", audience=Audience("manager", "m1"),
                   subject={"deal_id": "D1"}, facts=facts)
    ru, en = insight_text(item, "ru"), insight_text(item, "en")
    assert "сумма не указана (обычно 500" in ru and "сумма 0" not in ru
    assert "no amount filled in (typically 500" in en


@pytest.mark.parametrize("owner", ["Не назначен", "m_gone"])
def test_a_deal_at_risk_that_nobody_owns_is_the_directors(owner):
    """The quiet deal written to «Не назначен» (an owner cell that names nobody) or to an id
    that is not in managers: addressed to that id, nobody would have received it."""
    data = _with_a_deal_gone_quiet()
    data.deals.loc[data.deals["deal_id"] == "QUIET", "manager_id"] = owner
    quiet = [i for i in detect(data, DealRiskSpec(enabled=True), NOW) if i.subject == {"deal_id": "QUIET"}]
    assert quiet and quiet[0].audience.role == "director", [i.audience for i in quiet]


def test_a_deal_at_risk_whose_owner_is_not_working_is_the_directors():
    """The quiet deal's owner m1 is marked active = false (detectors.people.Workforce, as
    stalled_deal reads it): the director is told to hand the deal over, not to ask m1."""
    data = _with_a_deal_gone_quiet()
    data.managers = data.managers.assign(active=data.managers["manager_id"].ne("m1"))
    quiet = [i for i in detect(data, DealRiskSpec(enabled=True), NOW) if i.subject == {"deal_id": "QUIET"}]
    assert quiet and quiet[0].audience.role == "director" and quiet[0].facts["owner_left"] == "inactive"
    assert "who is not working deals now: hand it to a working manager" in insight_text(quiet[0], "en")
    assert "передайте её работающему менеджеру" in insight_text(quiet[0], "ru")

"""win_forecast: the weekly forecast a director reads, next to the weighted pipeline."""
from __future__ import annotations

from datetime import datetime, timezone

from bot.delivery import WEEKLY_DETECTORS
from detectors.win_forecast import WinForecastSpec, detect, skip_reason
from messages.i18n import percent
from messages.render import insight_text
from predict.planted import planted_company

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)


def test_the_forecast_for_this_month_and_next_with_an_interval():
    data = planted_company(2000, NOW, seed=21)
    [item] = detect(data, WinForecastSpec(enabled=True, likely_items=0), NOW)
    f = item.facts
    assert item.audience.role == "director" and item.detector in WEEKLY_DETECTORS
    assert [m["month"] for m in f["months"]] == ["2026-11", "2026-12"]
    assert f["by"] == "model" and f["unit"] == "amount" and f["currency"] == "USD"
    for m in f["months"]:
        assert 0 <= m["low"] <= m["expected"] <= m["high"] <= f["pipeline_total"]
    assert f["open_deals"] == int((data.deals["status"] == "open").sum())
    ru, en = insight_text(item, "ru"), insight_text(item, "en")
    assert ru.startswith("Прогноз выигрыша на ноябрь 2026:") and "взвешенная воронка" in ru
    assert "Won forecast for November 2026:" in en and "weighted pipeline" in en
    assert "не точнее" not in ru  # the model is used here: no excuse in the words


def test_a_model_no_better_than_the_stage_forecasts_by_stage_rates_and_says_so():
    data = planted_company(1500, NOW, seed=22, engagement_effect=0.0)
    [item] = detect(data, WinForecastSpec(enabled=True), NOW)
    f = item.facts
    assert f["by"] == "stage_baseline"
    assert all(m["expected"] == m["weighted_pipeline"] for m in f["months"])
    assert "поэтому прогноз построен по этим долям" in insight_text(item, "ru")


def test_too_little_history_forecasts_nothing_and_says_why():
    data = planted_company(100, NOW, seed=23)
    assert detect(data, WinForecastSpec(enabled=True), NOW) == []
    assert "not enough history to predict" in skip_reason(data)


def test_deal_risk_and_the_forecast_share_one_fit_per_scan(monkeypatch):
    import predict.model as pm
    from detectors.deal_risk import DealRiskSpec, detect as risk

    data = planted_company(1200, NOW, seed=24)
    calls = []
    real = pm.train
    monkeypatch.setattr(pm, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    risk(data, DealRiskSpec(enabled=True), NOW)
    detect(data, WinForecastSpec(enabled=True), NOW)
    assert len(calls) == 1
    detect(data, WinForecastSpec(enabled=True, min_won=60), NOW)  # other rules: fitted anew
    assert len(calls) == 2


def _likely(items):
    return [i for i in items if i.facts.get("kind") == "likely_to_close"]


def test_deals_likely_to_close_are_one_weekly_item_for_the_director_with_similar_deals():
    from predict.features import features_at, open_at, prepare, seconds_of

    data = planted_company(2000, NOW, seed=21)
    items = detect(data, WinForecastSpec(enabled=True), NOW)
    [likely] = _likely(items)
    f = likely.facts
    assert likely.audience.role == "director" and likely.detector in WEEKLY_DETECTORS
    assert 1 <= len(f["deals"]) <= 5 and f["candidates"] >= len(f["deals"])
    for d in f["deals"]:
        assert d["p_win"] >= 0.6 and d["p_win"] - d["stage_win_rate"] >= 0.15
        assert d["similar_n"] == 40 and d["similar_won"] / 40 >= 0.4  # the similar deals were mostly won too
    assert likely.evidence["deal_ids"] == [d["deal_id"] for d in f["deals"]]
    # the planted driver: the listed deals are the engaged ones, touched far more than open deals are
    prep = prepare(data)
    t = seconds_of(NOW)
    frame = features_at(prep, t, open_at(prep, t)).set_index("deal_id")
    listed = frame.loc[[d["deal_id"] for d in f["deals"]], "touches_14d"]
    assert listed.mean() > 1.5 * frame["touches_14d"].mean()
    d0 = f["deals"][0]
    ru, en = insight_text(likely, "ru"), insight_text(likely, "en")
    pct = percent(d0["similar_won"] / 40, "ru")
    assert f"Похожа на 40 прошлых сделок, из них выиграно {d0['similar_won']} ({pct})" in ru
    assert ru.startswith(f"Сделки, которые, скорее всего, будут выиграны: {len(f['deals'])}")
    assert f"шанс {percent(d0['p_win'], 'ru')}, на этом этапе обычно {percent(d0['stage_win_rate'], 'ru')}" in ru
    assert "Deals that look likely to close" in en and "It looks like 40 past deals" in en


def test_no_likely_item_without_a_model_that_beats_the_stage_rates():
    data = planted_company(1500, NOW, seed=22, engagement_effect=0.0)
    assert not _likely(detect(data, WinForecastSpec(enabled=True), NOW))


def _zero_amounts(data, share: float, seed: int):
    """`share` of the deals with amount 0: a budget nobody filled in, as amoCRM exports it."""
    import numpy as np

    zero = np.random.default_rng(seed).random(len(data.deals)) < share
    data.deals.loc[zero, "amount"] = 0.0
    return data


def test_amounts_nobody_filled_in_are_not_money_and_the_forecast_says_how_many():
    data = _zero_amounts(planted_company(2000, NOW, seed=21), 0.3, seed=1)
    [item] = detect(data, WinForecastSpec(enabled=True, likely_items=0), NOW)
    f = item.facts
    deals = data.deals[data.deals["status"] == "open"]
    assert f["unit"] == "amount" and f["no_amount"] == int((deals["amount"] == 0).sum()) > 0
    assert f["pipeline_total"] == round(float(deals["amount"].sum()), 2)  # the filled ones, nothing made up
    assert 0 < f["months"][0]["expected_no_amount"] < f["no_amount"]
    ru, en = insight_text(item, "ru"), insight_text(item, "en")
    assert f"У {f['no_amount']} из них сумма не указана (пусто или 0): в суммы выше они не входят" in ru
    assert f"{f['no_amount']} of them have no amount (empty or 0): they are not in the sums above" in en


def test_a_forecast_where_no_deal_has_an_amount_counts_deals_not_zero_money():
    data = planted_company(2000, NOW, seed=21)
    data.deals["amount"] = 0.0  # amoCRM's «Бюджет» that nobody fills in
    [item] = detect(data, WinForecastSpec(enabled=True, likely_items=0), NOW)
    f = item.facts
    assert f["unit"] == "deals" and f["months"][0]["expected"] > 1  # deals expected won, not "0 USD"
    assert f["no_amount"] == f["open_deals"]
    ru, en = insight_text(item, "ru"), insight_text(item, "en")
    assert "поэтому прогноз — в сделках, а не в деньгах" in ru and "USD" not in ru and "$" not in en
    assert "so the forecast counts deals, not money" in en

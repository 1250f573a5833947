"""win_forecast: the weekly forecast a director reads, next to the weighted pipeline."""
from __future__ import annotations

from datetime import datetime, timezone

from bot.delivery import WEEKLY_DETECTORS
from detectors.win_forecast import WinForecastSpec, detect, skip_reason
from messages.render import insight_text
from predict.planted import planted_company

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)


def test_the_forecast_for_this_month_and_next_with_an_interval():
    data = planted_company(2000, NOW, seed=21)
    [item] = detect(data, WinForecastSpec(enabled=True), NOW)
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

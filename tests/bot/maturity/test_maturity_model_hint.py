"""Question 4 ("does the system recommend actions from the data?") gets the win model's own
verdict: how far the company is from enough history, or whether a model beats each stage's win
rate on its backtest (predict/, the numbers `crm-pulse model report` prints)."""
from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from bot.maturity.data_hints import data_hints, hints_for, model_readiness_hint
from messages.maturity import hint_text
from predict.planted import planted_company

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)


def test_too_little_history_says_what_is_missing_and_when_it_will_be_there():
    data = planted_company(160, NOW, seed=51)
    h = model_readiness_hint(data, NOW)
    f = h.facts
    assert h.question_id == "recommendations" and h.kind == "model_history_short"
    closed = int(data.deals["status"].isin(["won", "lost"]).sum())
    assert f["closed_n"] == closed and f["missing"]["closed"] == 200 - closed
    # deals closed at a steady pace over 540 days: about closed / 18 a month
    assert abs(f["closed_per_month"] - closed / 18) < closed / 18 * 0.6
    assert f["months_to_enough"] >= 1
    ru, en = hint_text(h, "ru"), hint_text(h, "en")
    assert ru.startswith("Для прогноза по сделкам пока мало истории: закрытых сделок с датой закрытия")
    assert f"Не хватает: {200 - closed} закрытых" in ru and "При нынешнем темпе" in ru and "месяц" in ru
    assert "Too little history to predict deals yet" in en and "At the current pace" in en


def test_a_model_that_beats_the_stage_rates_says_so_with_both_scores():
    data = planted_company(1500, NOW, seed=52)
    [h] = [x for x in hints_for(data_hints(data, NOW), "recommendations") if x.kind.startswith("model_")]
    f = h.facts
    assert h.kind == "model_backtest" and f["beats_baseline"] is True
    assert f["brier"] < f["baseline_brier"] and f["gain"] > 0.01
    ru = hint_text(h, "ru")
    assert "модель прогноза по сделкам точнее доли выигранных по этапу" in ru and "deal_risk и win_forecast" in ru


def test_a_model_no_better_than_the_stage_says_predictions_would_add_nothing():
    data = planted_company(1500, NOW, seed=53, engagement_effect=0.0)
    h = model_readiness_hint(data, NOW)
    assert h.kind == "model_backtest" and h.facts["beats_baseline"] is False
    assert "пока не точнее доли выигранных по этапу" in hint_text(h, "ru")
    assert "does not yet beat each stage's win rate" in hint_text(h, "en")


def test_deals_without_closing_dates_have_nothing_to_learn_from():
    data = planted_company(300, NOW, seed=54)
    data.deals["closed_at"] = pd.NaT
    h = model_readiness_hint(data, NOW)
    assert h.kind == "model_no_closing_dates" and "closed_at" in hint_text(h, "ru")

"""The win model is fitted once per closed-deal history, not once per scan: the second scan of
the same company (even a fresh load of it) reuses the fit, a newly closed deal refits at most
every `refit_days` (weekly) of scan time, in the running bot and in a backtest replay alike."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

import predict.model as pm
from detectors import deal_risk, win_forecast
from detectors.deal_risk import DealRiskSpec
from detectors.win_forecast import WinForecastSpec
from predict.planted import planted_company

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


@pytest.fixture
def fits(monkeypatch):
    """Counts real fits (predict.model.train calls), from an empty cache."""
    pm.forget_fitted()
    calls: list[int] = []
    real = pm.train
    monkeypatch.setattr(pm, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    yield calls
    pm.forget_fitted()


def _scan(data, now=NOW, **spec):
    risk = deal_risk.detect(data, DealRiskSpec(enabled=True, **spec), now)
    forecast = win_forecast.detect(data, WinForecastSpec(enabled=True, **spec), now)
    return risk, forecast


def test_the_second_scan_of_the_same_history_does_not_refit(fits):
    data = planted_company(1500, NOW, seed=31)
    first = _scan(data)
    assert len(fits) == 1  # one fit shared by both detectors
    reloaded = copy.deepcopy(data)  # what the next scheduled scan loads: a new object, same deals
    reloaded.deals = reloaded.deals.sample(frac=1.0, random_state=0).reset_index(drop=True)  # another order
    again = _scan(reloaded)
    assert len(fits) == 1
    assert [i.fingerprint for i in again[0]] == [i.fingerprint for i in first[0]]
    # the forecast read closings through the reused model's rows, remapped to the new order
    for a, b in zip(again[1][0].facts["months"], first[1][0].facts["months"]):
        assert a["expected"] == pytest.approx(b["expected"]) and a["weighted_pipeline"] == pytest.approx(b["weighted_pipeline"])
    _scan(reloaded, NOW + timedelta(hours=5))  # later the same day, nothing closed meanwhile
    assert len(fits) == 1


def test_a_newly_closed_deal_refits_when_asked_to_refit_every_time(fits):
    data = planted_company(1500, NOW, seed=32)
    _scan(data, refit_days=0)
    assert len(fits) == 1
    later = copy.deepcopy(data)
    open_ids = later.deals.index[later.deals["status"] == "open"]
    later.deals.loc[open_ids[0], ["status", "closed_at"]] = ["won", pd.Timestamp(NOW + DAY)]
    _scan(later, NOW + 2 * DAY, refit_days=0)
    assert len(fits) == 2
    _scan(later, NOW + 3 * DAY, refit_days=0)  # and that new fit is reused in turn
    assert len(fits) == 2


def test_daily_scans_of_a_live_crm_refit_at_most_weekly(fits):
    """Deals close every day in a live CRM: by default a scan reuses the fit of up to
    `refit_days` (7) ago, made on the history as it was then, so six of seven daily scans skip
    the costly fit; the eighth day refits."""
    data = planted_company(1500, NOW, seed=37)
    open_ids = list(data.deals.index[data.deals["status"] == "open"])
    _scan(data)
    for day in range(1, 9):
        data = copy.deepcopy(data)  # each day's scan loads the CRM again: one more deal closed
        data.deals.loc[open_ids[day], ["status", "closed_at"]] = ["won", pd.Timestamp(NOW + day * DAY - timedelta(hours=1))]
        _scan(data, NOW + day * DAY)
        assert len(fits) == (1 if day < 7 else 2), day
    trained = sorted(m.trained_at for m in pm._models.values())
    assert trained[-1] - trained[0] == 7 * 86_400


def test_other_rules_fit_anew(fits):
    data = planted_company(1200, NOW, seed=33)
    win_forecast.detect(data, WinForecastSpec(enabled=True), NOW)
    win_forecast.detect(data, WinForecastSpec(enabled=True, min_won=60), NOW)
    assert len(fits) == 2


def test_a_replay_refits_at_most_weekly_and_never_from_its_future(fits):
    data = planted_company(1500, NOW, seed=34)
    state = deal_risk.prepare(data, DealRiskSpec(enabled=True))
    days = [NOW - 28 * DAY + k * DAY for k in range(28)]  # deals close every day of these four weeks
    for day in days:
        deal_risk.detect_at(state, day)
    assert len(fits) == 4
    trained = sorted(m.trained_at for m in pm._models.values())
    assert all(b - a == 7 * 86_400 for a, b in zip(trained, trained[1:]))
    fits.clear()
    deal_risk.detect_at(state, NOW - 40 * DAY)  # before every cached fit: fitted anew
    assert len(fits) == 1


def test_the_backtest_command_replays_deal_risk_with_weekly_fits(fits):
    from bot.backtest import backtest

    data = planted_company(1500, NOW, seed=35)
    specs = {"deal_risk": DealRiskSpec(enabled=True), "win_forecast": WinForecastSpec(enabled=True)}
    report = backtest(data, specs, NOW - 21 * DAY, NOW - DAY)
    assert {"deal_risk", "win_forecast"} <= set(report.detectors)
    assert len(fits) == 3  # 21 replayed days, both detectors: one fit a week


def test_one_scan_scores_the_open_deals_once(fits, monkeypatch):
    data = planted_company(1500, NOW, seed=36)
    _scan(data)  # fit
    calls = []
    real = pm.features_at
    monkeypatch.setattr(pm, "features_at", lambda *a, **k: calls.append(1) or real(*a, **k))
    reloaded = copy.deepcopy(data)
    risk, forecast = _scan(reloaded)
    assert any(i.facts.get("kind") == "likely_to_close" for i in forecast)  # it scored too...
    assert len(calls) == 1  # ...the same frame deal_risk scored

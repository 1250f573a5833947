"""The backtest's test set and calibration on histories that move: deals forgotten in the
pipeline (never closed) and a win rate that drifts. The truth is planted, so the right answers
are known: forgotten deals are rarely won, and chances must follow the rate where it went."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from predict.features import features_at, prepare, seconds_of
from predict.model import backtest, reliability, train
from predict.planted import planted_company
from predict.report import forecast_accuracy

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)


def test_deals_forgotten_in_the_pipeline_are_tested_and_learned_as_rarely_won():
    data = planted_company(2000, NOW, seed=21)
    deals = data.deals
    lost = deals.index[deals["status"] == "lost"]
    forgot = np.random.default_rng(0).choice(lost, len(lost) // 3, replace=False)
    deals.loc[forgot, "status"] = "open"  # nobody closed them: they sit in the pipeline, untouched
    deals.loc[forgot, "closed_at"] = pd.NaT
    bt = backtest(prepare(data), NOW)
    assert not isinstance(bt, str), bt
    mask = bt.test_rows["deal_id"].isin(set(deals.loc[forgot, "deal_id"])).to_numpy()
    # kept in the test set (not dropped for having no outcome yet), labelled not won within the horizon
    assert mask.sum() > 0.3 * len(mask) and bt.y[mask].sum() == 0
    assert bt.p[mask].mean() < 0.1 < 0.4 < bt.p[~mask].mean()  # the model learned what silence means
    _, ece = reliability(bt.y, bt.p)
    assert ece <= 0.05 and bt.beats_baseline()


@pytest.fixture(scope="module")
def drifting():
    """The newest deals win far more often than the oldest (log-odds +1.5 over the history)."""
    prep = prepare(planted_company(3000, NOW, seed=4, drift=1.5))
    return backtest(prep, NOW, anchor=False), backtest(prep, NOW)


def test_a_drifting_win_rate_is_followed_by_the_model_and_the_baseline_alike(drifting):
    plain, anchored = drifting
    _, ece_plain = reliability(plain.y, plain.p)
    _, ece = reliability(anchored.y, anchored.p)
    assert ece_plain > 0.06  # learned over the whole history, the chances run behind the rate
    assert ece <= 0.05 and ece < ece_plain * 0.7
    assert abs(anchored.p.mean() - anchored.y.mean()) < abs(plain.p.mean() - plain.y.mean()) / 2
    # the baseline the model must beat gets the same help: moved the same way, and better for it
    assert anchored.baseline.shift > 0.1 and anchored.model.shift > 0.1
    assert anchored.baseline_brier < plain.baseline_brier
    _, base_ece = reliability(anchored.y, anchored.p_base)
    _, base_ece_plain = reliability(plain.y, plain.p_base)
    assert base_ece < base_ece_plain
    assert anchored.beats_baseline()  # still better than the fairer baseline


def test_a_steady_win_rate_is_left_where_it_is():
    bt = backtest(prepare(planted_company(2000, NOW, seed=3)), NOW)
    assert abs(bt.model.shift) < 0.2 and abs(bt.baseline.shift) < 0.2
    _, ece = reliability(bt.y, bt.p)
    assert ece <= 0.05


def test_the_model_used_on_open_deals_is_anchored_too():
    model = train(prepare(planted_company(2000, NOW, seed=4, drift=1.5)), NOW, kind="logistic")
    assert model.usable and model.model.shift > 0.1 and model.baseline.shift > 0.1


def test_forecast_accuracy_is_not_swamped_by_a_month_that_won_little():
    months = [  # a quarter's first month: little won from the open pipeline, a big relative miss
        {"actual": 70.0, "model_error": 230.0, "weighted_error": 300.0},
        {"actual": 400.0, "model_error": -20.0, "weighted_error": -100.0},
        {"actual": 430.0, "model_error": 30.0, "weighted_error": 60.0},
    ]
    acc = forecast_accuracy(months)
    assert acc["actual"] == 900 and acc["months"] == 3
    assert acc["model"]["mean_abs_error"] == pytest.approx(280 / 3, abs=0.01)
    assert acc["model"]["abs_error_share"] == pytest.approx(280 / 900, abs=1e-4)  # not (329% + 5% + 7%) / 3
    assert acc["weighted_pipeline"]["abs_error_share"] == pytest.approx(460 / 900, abs=1e-4)
    assert acc["model"]["bias_share"] == pytest.approx(240 / 900, abs=1e-4)
    assert forecast_accuracy([]) is None
    assert forecast_accuracy([{"actual": 0.0, "model_error": 5.0, "weighted_error": 1.0}])["model"]["abs_error_share"] is None


def test_an_export_that_starts_at_a_date_is_snapshotted_from_its_first_closing(monkeypatch):
    import predict.model as pm
    from predict.features import seconds_of

    data = planted_company(3000, NOW, seed=9)
    cut = pd.Timestamp(NOW) - pd.Timedelta(days=400)
    gone = data.deals["closed_at"].notna() & (data.deals["closed_at"] < cut)  # not in the export
    data.deals = data.deals[~gone].reset_index(drop=True)
    kept = set(data.deals["deal_id"])
    data.stage_history = data.stage_history[data.stage_history["deal_id"].isin(kept)]
    data.activities = data.activities[data.activities["deal_id"].isin(kept)]
    prep = prepare(data)
    start = pm.history_start(prep, seconds_of(NOW))
    assert start == seconds_of(data.deals["closed_at"].min())
    assert start > prep.created.min() + 30 * 86_400  # deals were created long before it
    bt = backtest(prep, NOW)
    assert bt.test_rows["at"].min() >= start
    _, ece = reliability(bt.y, bt.p)
    # from the first creation on, the early snapshots see only the deals that survived into the export
    monkeypatch.setattr(pm, "history_start", lambda prep, until: int(prep.created.min()))
    survivors = backtest(prep, NOW)
    _, ece_survivors = reliability(survivors.y, survivors.p)
    assert ece < ece_survivors


def test_a_partly_followed_chance_counts_only_for_the_wins_that_could_show_yet():
    from predict.model import intercept_shift, shifted

    p = np.full(1000, 0.5)
    won = np.zeros(1000)
    won[:200] = 1  # 200 won so far, each row followed long enough to see half of its wins
    d = intercept_shift(p, won, reach=np.full(1000, 0.5))
    assert shifted(p, d).mean() == pytest.approx(0.4, abs=1e-4)  # not 0.2: the other half is still to come
    assert intercept_shift(p, won) == pytest.approx(np.log(0.2 / 0.8), abs=1e-4)  # followed for the whole horizon
    assert intercept_shift(p, (np.arange(1000) < 5).astype(float)) is None  # 5 wins: too few to say


@pytest.fixture(scope="module")
def falling():
    """From 40% of the history on, 15% of the new deals are never closed (until a clean-up marks
    them lost 4 months on): the pipeline's win share falls after the labelled period, then holds.
    The backtest with the anchor as it was (the latest quarter of the labelled rows) and as it is."""
    import predict.model as pm

    prep = prepare(planted_company(3000, NOW, seed=5, never_close=0.15, never_close_from=0.4))
    new = backtest(prep, NOW)
    follow_rows = pm.follow_rows
    pm.follow_rows = lambda *a, **k: None  # the labelled rows' latest quarter only
    try:
        old = backtest(prep, NOW)
    finally:
        pm.follow_rows = follow_rows
    return old, new


def test_a_win_rate_falling_after_the_labelled_period_is_followed_by_the_anchor(falling):
    old, new = falling
    assert old.cutoff == new.cutoff and np.array_equal(old.y, new.y)
    _, ece_old = reliability(old.y, old.p)
    _, ece = reliability(new.y, new.p)
    # (the longest-win rule gave the old anchor as much help: 0.079 -> 0.040, the new 0.057 -> 0.027)
    assert ece < ece_old - 0.01 and ece <= 0.06
    assert abs(new.p.mean() - new.y.mean()) < abs(old.p.mean() - old.y.mean()) * 0.6
    assert new.model.shift < old.model.shift - 0.2  # moved down to where the rate went
    # the baseline gets the same help: its level follows the fall as the model's does
    _, base_old = reliability(old.y, old.p_base)
    _, base = reliability(new.y, new.p_base)
    assert base < base_old - 0.03 and new.baseline.shift < old.baseline.shift - 0.2
    assert new.brier < old.brier and new.beats_baseline()


def test_the_anchor_uses_no_outcome_after_its_moment():
    import dataclasses

    from crm.demo import generate_demo
    from predict.features import seconds_of, snapshot_rows
    from predict.model import (
        StageBaseline, auto_step_days, fit_calibrated, follow_rows, longest_win_days, settle_seconds, snapshot_seconds,
    )
    from tests.predict.test_features import _rewrite_the_future

    demo = generate_demo(7)
    cut = pd.Timestamp(demo.now).tz_convert("UTC") - pd.Timedelta(days=30)
    t = seconds_of(cut)

    def anchor(data):
        prep = prepare(data)
        horizon, step = settle_seconds(prep, t), auto_step_days(prep, t)
        labelled = snapshot_rows(prep, snapshot_seconds(prep, t - horizon, step), t, horizon=horizon)
        follow = follow_rows(prep, t, horizon, step, labelled)
        model = fit_calibrated("logistic", labelled, prep.features, follow=follow, longest=longest_win_days(prep, t))
        base = StageBaseline().fit(labelled, follow=follow)
        return follow.drop(columns="row").sort_values(["at", "deal_id"]).reset_index(drop=True), model.shift, base.shift

    real, model_shift, base_shift = anchor(demo.data)
    assert len(real) > 100 and (real["at"] + real["follow"] <= t).all() and (real["follow"] < real["follow"].max()).any()
    future = _rewrite_the_future(demo.data, cut)  # every later outcome changed
    other, other_model, other_base = anchor(future)
    pd.testing.assert_frame_equal(real, other)
    assert other_model == pytest.approx(model_shift, abs=1e-9) and other_base == pytest.approx(base_shift, abs=1e-9)
    assert longest_win_days(prepare(future), t) == longest_win_days(prepare(demo.data), t) is not None
    # the followed-up rows are what the anchor was fitted on (enough wins and non-wins), not its fallback
    assert real["won"].sum() >= 10 and real["reach"].sum() - real["won"].sum() >= 10
    assert abs(model_shift) > 1e-3 or abs(base_shift) > 1e-3
    # and an outcome before it does move it: the comparison above is not vacuous
    data = demo.data
    deals = data.deals.copy()
    seen = deals.index[(deals["status"] == "won") & (deals["closed_at"] <= cut) & (deals["closed_at"] > cut - pd.Timedelta(days=20))]
    deals.loc[seen, "status"] = "lost"
    moved, _, moved_base = anchor(dataclasses.replace(data, deals=deals.reset_index(drop=True)))
    assert moved["won"].sum() < real["won"].sum() and moved_base < base_shift


def test_a_deal_open_longer_than_any_win_took_gets_next_to_no_chance():
    """From the middle of the history on, a fifth of the new deals are never closed nor cleaned up:
    they sit in the pipeline, touched as open deals are. The fit at the backtest's cutoff learns
    from snapshots a horizon older, where few such deals were old yet; on its test snapshots a
    sixth to a third of the pipeline is older than any won deal took, and (nearly) none is won.
    The trees carried the chance of the oldest deals they saw over to them: about 49% (seeds
    1-4), the rest getting 43-46%; Brier 0.248-0.261, ECE 0.22-0.26. Now 0.1%: Brier 0.16-0.20,
    ECE 0.10-0.17 (the young forgotten deals are not told apart yet)."""
    from predict.model import PAST_LONGEST_CHANCE, longest_win_days

    prep = prepare(planted_company(3000, NOW, seed=1, never_close=0.2, never_close_from=0.5, stuck_days=5000))
    bt = backtest(prep, NOW)
    longest = longest_win_days(prep, bt.cutoff)
    old = bt.test_rows["days_open"].to_numpy() > longest
    assert 0.15 < old.mean() and bt.y[old].mean() < 0.01  # a real share of the pipeline, and (nearly) never won
    assert bt.p[old].max() == PAST_LONGEST_CHANCE and bt.p[~old].mean() > 0.3  # the others keep their chances
    _, ece = reliability(bt.y, bt.p)
    assert bt.brier < 0.2 and ece < 0.15 and bt.beats_baseline()
    # the model scoring open deals now: the longest win as known now
    model = train(prep, NOW, kind="boosting")
    frame = features_at(prep, NOW)
    p = model.proba(frame)
    now_old = frame["days_open"].to_numpy() > longest_win_days(prep, seconds_of(NOW))
    assert now_old.sum() > 50 and (p[now_old] == PAST_LONGEST_CHANCE).all() and p[~now_old].mean() > 0.2

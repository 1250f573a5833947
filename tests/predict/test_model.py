"""The win model on planted companies where the truth is known.

Engagement (touches) really drives winning, region is pure noise, and a company with too
little history, or whose outcomes depend on nothing but the stage, gets no model and a reason.
"""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from predict.features import prepare
from predict.model import HistoryRule, backtest, reliability, score, train
from predict.planted import planted_company
from predict.report import factor_importance

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def planted():
    data = planted_company(2000, NOW, seed=3)
    prep = prepare(data)
    return data, prep, backtest(prep, NOW)


def test_a_factor_that_drives_winning_beats_the_stage_only_baseline(planted):
    _, _, bt = planted
    assert not isinstance(bt, str), bt
    assert bt.brier < bt.baseline_brier * 0.97  # at least 3% better than each stage's win rate
    assert bt.beats_baseline() and bt.p_value < 0.01
    _, ece = reliability(bt.y, bt.p)
    assert ece <= 0.06  # calibrated: predicted shares match what happened


def test_the_driver_matters_and_the_noise_does_not(planted):
    _, _, bt = planted
    factors = {f["feature"]: f["brier_increase"] for f in factor_importance(bt)}
    touches = max(factors["touches_14d"], factors["days_since_touch"])
    assert touches > 0.02
    assert abs(factors["region"]) < 0.005 and abs(factors["region"]) < touches / 10


def test_the_used_model_scores_open_deals_with_calibrated_chances(planted):
    data, prep, bt = planted
    model = train(prep, NOW, check=bt)
    assert model.usable and "better" in model.reason
    scored = score(model, prep, NOW)
    assert set(scored["deal_id"]) == set(data.deals.loc[data.deals["status"] == "open", "deal_id"])
    assert scored["p_win"].between(0, 1).all()
    # engaged open deals (many touches) get clearly higher chances than idle ones
    busy = scored[scored["touches_14d"] >= 4]["p_win"].mean()
    idle = scored[scored["touches_14d"] <= 1]["p_win"].mean()
    assert busy > idle + 0.15


def test_below_the_minimum_history_nothing_is_predicted_and_the_reason_says_how_far():
    data = planted_company(150, NOW, seed=4)
    prep = prepare(data)
    model = train(prep, NOW, HistoryRule(200, 50, 50))
    assert not model.usable
    won, lost = int((prep.won & (prep.closed >= 0)).sum()), int((prep.lost & (prep.closed >= 0)).sum())
    assert f"{won + lost} closed deals" in model.reason
    assert f"{200 - won - lost} more closed" in model.reason
    with pytest.raises(ValueError, match="no model"):
        model.proba(None)


def test_a_model_no_better_than_the_stage_is_not_used_and_says_why():
    data = planted_company(1500, NOW, seed=5, engagement_effect=0.0)  # outcome: the stage reached, nothing else
    model = train(prepare(data), NOW)
    assert not model.usable
    assert "does not beat the stage-only baseline" in model.reason
    assert model.model is None


def test_features_absent_from_the_source_are_not_used():
    data = planted_company(400, NOW, seed=6)
    data.activities = None
    prep = prepare(data)
    # no calls or emails to count: "no touch for 20 days" would only mean "no stage change", which
    # days_at_stage says; a manager who calls daily was told the deal was untouched
    assert "touches_14d" not in prep.features and "days_since_touch" not in prep.features
    assert "days_at_stage" in prep.features and "stage_moves" in prep.features
    assert "replies_30d" not in prep.features and "opens_30d" not in prep.features
    assert np.isfinite(prep.amount).all()



def test_more_managers_than_the_boosting_has_category_slots():
    import pandas as pd

    from predict.model import fit_calibrated

    # 300 managers with 40 snapshots each, every one frequent: the tree model takes 255 categories at most
    rng = np.random.default_rng(0)
    n = 12_000
    rows = pd.DataFrame({"deal_id": [f"D{i // 4}" for i in range(n)], "at": np.repeat(np.arange(n // 1000), 1000),
                         "manager_id": [f"m{i % 300}" for i in range(n)], "days_open": rng.exponential(20, n)})
    rows["won"] = (rng.random(n) < 0.3 + 0.4 * (rows["days_open"] < 10)).astype(int)
    model = fit_calibrated("boosting", rows, ("days_open", "manager_id"))
    p = model.predict_proba(rows[["days_open", "manager_id"]])[:, 1]
    assert p[rows["days_open"] < 10].mean() > p[rows["days_open"] >= 10].mean() + 0.2

"""What real exports do to the model's features: history rows that only edit a deal, and an
amount of 0 that means "nobody filled it in"."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from crm.data import CrmData
from predict.features import features_at, prepare, seconds_of
from predict.planted import planted_company

UTC = timezone.utc
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _ts(*values) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True))


def _edited() -> CrmData:
    """D1 entered a, then b 10 days ago, and its amount was edited three times since (Salesforce's
    Opportunity History writes a row at the same stage for each); D2 went a -> b -> a (a real move back)."""
    deals = pd.DataFrame({
        "deal_id": pd.array(["D1", "D2"], dtype="string"),
        "manager_id": pd.array(["m1", "m1"], dtype="string"),
        "amount": [1000.0, 2000.0],
        "stage": pd.array(["b", "a"], dtype="string"),
        "status": pd.array(["open", "open"], dtype="string"),
        "created_at": _ts(T0 - 30 * DAY, T0 - 20 * DAY),
        "closed_at": _ts(None, None),
    })
    history = pd.DataFrame({
        "deal_id": pd.array(["D1", "D1", "D1", "D1", "D1", "D2", "D2", "D2"], dtype="string"),
        "stage": pd.array(["a", "b", "b", "b", "b", "a", "b", "a"], dtype="string"),
        "entered_at": _ts(T0 - 30 * DAY, T0 - 10 * DAY, T0 - 8 * DAY, T0 - 6 * DAY, T0 - 2 * DAY,
                          T0 - 20 * DAY, T0 - 15 * DAY, T0 - 5 * DAY),
    })
    managers = pd.DataFrame({"manager_id": pd.array(["m1"], dtype="string"), "name": ["A"]})
    acts = pd.DataFrame({"activity_id": pd.array(["a1"], dtype="string"), "deal_id": pd.array(["D1"], dtype="string"),
                         "client_id": pd.array([None], dtype="string"), "type": pd.array(["call"], dtype="string"),
                         "done_at": _ts(T0 - 25 * DAY)})  # a call before b: the touches are the stage entries since
    return CrmData(managers=managers, deals=deals, stage_history=history, stages=["a", "b"], activities=acts)


def test_edit_rows_at_the_same_stage_are_not_moves_nor_touches():
    f = features_at(prepare(_edited()), T0).set_index("deal_id")
    d1 = f.loc["D1"]
    assert d1["stage"] == "b" and d1["stage_moves"] == 2  # a, b: the three edits moved nothing
    assert d1["days_at_stage"] == pytest.approx(10)  # at b since it entered b, not since the last edit
    assert d1["touches_14d"] == 1 and d1["days_since_touch"] == pytest.approx(10)
    d2 = f.loc["D2"]
    assert d2["stage"] == "a" and d2["stage_moves"] == 3 and d2["days_at_stage"] == pytest.approx(5)  # back is a move


def _with_edit_rows(data: CrmData, every_days: float, seed: int) -> CrmData:
    """`data` with a history row at the deal's current stage every `every_days` on average while
    it sits there (amount and close-date edits), placed before the deal's next real entry."""
    rng = np.random.default_rng(seed)
    h = data.stage_history.sort_values(["deal_id", "entered_at"], kind="stable").reset_index(drop=True)
    nxt = h.groupby("deal_id")["entered_at"].shift(-1)
    closed = h["deal_id"].map(data.deals.set_index("deal_id")["closed_at"])
    end = nxt.fillna(closed).fillna(pd.Timestamp(NOW)).clip(upper=pd.Timestamp(NOW))
    span = (end - h["entered_at"]).dt.total_seconds().clip(lower=0).to_numpy()
    k = rng.poisson(span / 86_400 / every_days)
    src = np.repeat(np.arange(len(h)), k)
    at = h["entered_at"].iloc[src].reset_index(drop=True) + pd.to_timedelta(rng.random(len(src)) * span[src] * 0.999, unit="s")
    edits = pd.DataFrame({"deal_id": h["deal_id"].to_numpy()[src], "stage": h["stage"].to_numpy()[src],
                          "entered_at": at}).astype(h.dtypes.to_dict())
    out = CrmData(managers=data.managers, deals=data.deals, stage_history=pd.concat([h, edits], ignore_index=True),
                  stages=data.stages, activities=data.activities, origins=dict(data.origins))
    return out


@pytest.mark.parametrize("seed", [3, 4])
def test_a_history_full_of_edits_gives_the_features_of_the_clean_one(seed):
    clean = planted_company(600, NOW, seed=seed)
    edited = _with_edit_rows(clean, every_days=2.0, seed=seed)
    assert len(edited.stage_history) > 1.5 * len(clean.stage_history)  # the edits are many: not a vacuous check
    t = seconds_of(NOW - 20 * DAY)
    a = features_at(prepare(clean), t).drop(columns="row").set_index("deal_id").sort_index()
    b = features_at(prepare(edited), t).drop(columns="row").set_index("deal_id").sort_index()
    pd.testing.assert_frame_equal(a, b)


def _amount_data(amounts: list[float | None], statuses: list[str]) -> CrmData:
    n = len(amounts)
    deals = pd.DataFrame({
        "deal_id": pd.array([f"D{i}" for i in range(n)], dtype="string"),
        "manager_id": pd.array(["m1"] * n, dtype="string"),
        "amount": pd.array(amounts, dtype="Float64").astype(float),
        "stage": pd.array(["a"] * n, dtype="string"),
        "status": pd.array(statuses, dtype="string"),
        "created_at": _ts(*[T0 - 10 * DAY] * n),
        "closed_at": _ts(*[T0 + 5 * DAY if s != "open" else None for s in statuses]),
    })
    history = pd.DataFrame({"deal_id": deals["deal_id"], "stage": deals["stage"], "entered_at": deals["created_at"]})
    return CrmData(managers=pd.DataFrame({"manager_id": pd.array(["m1"], dtype="string"), "name": ["A"]}),
                   deals=deals, stage_history=history, stages=["a"])


def test_an_amount_of_0_is_not_filled_in_not_a_small_deal():
    data = _amount_data([0.0, None, 500.0, -20.0], ["open"] * 4)
    f = features_at(prepare(data), T0).set_index("deal_id")
    assert np.isnan(f.loc["D0", "amount"]) and np.isnan(f.loc["D1", "amount"])  # 0 reads as blank does
    assert f.loc["D2", "amount"] == 500 and f.loc["D3", "amount"] == -20  # a refund is a value


def test_amounts_that_are_all_0_are_no_feature_and_say_why():
    data = _amount_data([0.0] * 30 + [None] * 30, ["won", "lost"] * 30)
    prep = prepare(data)
    assert "amount" not in prep.features and "empty or 0" in prep.dropped["amount"]


def test_without_activities_or_emails_there_are_no_touches_to_count():
    data = _edited()
    data.activities = None  # stage history only: a deal the manager calls daily would look untouched
    prep = prepare(data)
    assert "touches_14d" not in prep.features and "days_since_touch" not in prep.features
    assert "no activities with done_at" in prep.dropped["days_since_touch"]
    assert "days_at_stage" in prep.features  # what the stage history does say
    with_calls = planted_company(300, NOW, seed=5)
    assert {"touches_14d", "days_since_touch"} <= set(prepare(with_calls).features)
    empty = planted_company(300, NOW, seed=5)
    empty.activities = empty.activities.assign(done_at=pd.NaT)  # the column mapped but empty
    assert "touches_14d" not in prepare(empty).features

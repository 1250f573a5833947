"""Features as of a snapshot: the values a person would count by hand, and nothing from later."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from crm.data import CrmData
from crm.demo import generate_demo
from predict.features import features_at, outcome_after, prepare, seconds_of

UTC = timezone.utc
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _ts(*values) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True))


def _small() -> CrmData:
    """Two deals of one client, one earlier deal of the same client won, a few touches."""
    day = timedelta(days=1)
    deals = pd.DataFrame({
        "deal_id": pd.array(["D1", "D2", "OLD"], dtype="string"),
        "client_id": pd.array(["C1", "C1", "C1"], dtype="string"),
        "manager_id": pd.array(["m1", "m1", "m2"], dtype="string"),
        "amount": [1000.0, 5000.0, 700.0],
        "stage": pd.array(["b", "a", "b"], dtype="string"),
        "status": pd.array(["won", "open", "won"], dtype="string"),
        "created_at": _ts(T0 - 30 * day, T0 - 5 * day, T0 - 90 * day),
        "closed_at": _ts(T0 + 3 * day, None, T0 - 40 * day),
        "source": pd.array(["web", "call", "web"], dtype="string"),
        "region": pd.array([None, None, None], dtype="string"),
    })
    history = pd.DataFrame({
        "deal_id": pd.array(["D1", "D1", "D2", "OLD", "OLD", "D1"], dtype="string"),
        "stage": pd.array(["a", "b", "a", "a", "b", "c"], dtype="string"),
        "entered_at": _ts(T0 - 30 * day, T0 - 10 * day, T0 - 5 * day, T0 - 90 * day, T0 - 60 * day, T0 + day),
    })
    acts = pd.DataFrame({
        "activity_id": pd.array(["a1", "a2", "a3", "a4"], dtype="string"),
        "deal_id": pd.array(["D1", "D1", "D1", None], dtype="string"),
        "client_id": pd.array(["C1", "C1", "C1", "C1"], dtype="string"),
        "manager_id": pd.array(["m1"] * 4, dtype="string"),
        "type": pd.array(["call", "note", "call", "meeting"], dtype="string"),
        "due_at": _ts(T0 - 20 * day, T0 - 2 * day, T0 + day, T0 - 3 * day),
        "done_at": _ts(T0 - 20 * day, T0 - 2 * day, T0 + day, T0 - 3 * day),
    })
    managers = pd.DataFrame({"manager_id": pd.array(["m1", "m2"], dtype="string"),
                             "name": pd.array(["A", "B"], dtype="string")})
    return CrmData(managers=managers, deals=deals, stage_history=history, stages=["a", "b", "c"], activities=acts)


def test_features_are_what_a_person_counts_at_the_snapshot():
    prep = prepare(_small())
    f = features_at(prep, T0).set_index("deal_id")
    assert sorted(f.index) == ["D1", "D2"]  # OLD closed before the snapshot
    d1 = f.loc["D1"]
    assert d1["stage"] == "b"  # the entry into c is after the snapshot
    assert d1["days_at_stage"] == pytest.approx(10) and d1["days_open"] == pytest.approx(30)
    assert d1["stage_moves"] == 2
    # touches in 14 days: entering b 10 days ago and the client-level meeting 3 days ago (the
    # note is not a touch; the deal's own call 20 days ago is too old; tomorrow's call is the future)
    assert d1["touches_14d"] == 2
    assert d1["days_since_touch"] == pytest.approx(3)
    assert d1["client_won"] == 1 and d1["client_lost"] == 0  # OLD, won 40 days before
    assert d1["amount"] == 1000 and d1["source"] == "web"
    assert "region" not in f.columns  # no deal has a region: not a feature, not a column of nulls
    assert "replies_30d" not in f.columns and "replies_30d" in prep.dropped
    d2 = f.loc["D2"]
    assert d2["stage"] == "a" and d2["days_at_stage"] == pytest.approx(5)
    assert d2["days_since_touch"] == pytest.approx(3)  # the client's meeting counts for every deal of the client


def test_outcome_comes_only_from_after_the_snapshot():
    prep = prepare(_small())
    rows = np.array([0, 1])
    t = seconds_of(T0)
    assert outcome_after(prep, rows, t, seconds_of(T0 + timedelta(days=10))).tolist() == [1, -1]
    assert outcome_after(prep, rows, t, seconds_of(T0 + timedelta(days=2))).tolist() == [-1, -1]  # not known yet


def _after(frame: pd.DataFrame, col: str, t: pd.Timestamp) -> pd.Series:
    return frame[col].notna() & (frame[col] > t)


def _rewrite_the_future(data: CrmData, t: pd.Timestamp, seed: int = 5) -> CrmData:
    """Everything dated after `t` changed or removed; everything up to `t` left as it was."""
    rng = np.random.default_rng(seed)
    deals = data.deals[~(data.deals["created_at"] > t)].copy()  # deals created later: gone
    later = _after(deals, "closed_at", t)
    flip = {"won": "lost", "lost": "won"}
    deals.loc[later, "status"] = deals.loc[later, "status"].map(lambda s: flip.get(s, s))
    deals.loc[later, "closed_at"] = t + pd.to_timedelta(rng.integers(1, 90 * 86400, int(later.sum())), unit="s")
    history = data.stage_history[~_after(data.stage_history, "entered_at", t)
                                 & data.stage_history["deal_id"].isin(deals["deal_id"])]
    bogus = history.sample(n=200, random_state=1).assign(entered_at=t + pd.Timedelta(hours=5))
    acts = data.activities.copy()
    future = _after(acts, "done_at", t)
    acts.loc[future, "done_at"] = acts.loc[future, "done_at"] + pd.Timedelta(days=3)
    acts = pd.concat([acts, acts.sample(n=300, random_state=2).assign(
        activity_id=lambda a: a["activity_id"] + "x", done_at=t + pd.Timedelta(minutes=1))], ignore_index=True)
    emails = data.emails[~_after(data.emails, "sent_at", t)]
    opens = data.email_opens[~_after(data.email_opens, "opened_at", t)]
    return CrmData(managers=data.managers, deals=deals.reset_index(drop=True),
                   stage_history=pd.concat([history, bogus], ignore_index=True), stages=data.stages,
                   clients=data.clients, emails=emails, email_opens=opens, activities=acts, leads=data.leads)


@pytest.mark.parametrize("days_before", [20, 90])
def test_no_feature_sees_the_future(days_before):
    demo = generate_demo(7)
    t = pd.Timestamp(demo.now).tz_convert("UTC") - pd.Timedelta(days=days_before)
    real = features_at(prepare(demo.data), t).drop(columns="row").set_index("deal_id").sort_index()
    other = features_at(prepare(_rewrite_the_future(demo.data, t)), t).drop(columns="row").set_index("deal_id").sort_index()
    assert len(real) > 50 and {"touches_14d", "replies_30d", "opens_30d", "client_won", "stage"} <= set(real.columns)
    pd.testing.assert_frame_equal(real, other)
    # and the rewrite really changed what happens after t: the guard is not vacuous
    assert not prepare(_rewrite_the_future(demo.data, t)).won.sum() == prepare(demo.data).won.sum()


def test_a_derived_stage_history_is_not_a_feature():
    data = _small()
    data.stage_history_derived = True
    prep = prepare(data)
    assert "stage" not in prep.features and "days_at_stage" not in prep.features
    assert "derived" in prep.dropped["stage"]


def test_an_amount_filled_in_only_at_closing_is_dropped():
    n = 60
    deals = pd.DataFrame({
        "deal_id": pd.array([f"D{i}" for i in range(n)], dtype="string"),
        "manager_id": pd.array(["m1"] * n, dtype="string"),
        "amount": [0.0 if i % 2 else 100.0 + i for i in range(n)],
        "stage": pd.array(["a"] * n, dtype="string"),
        "status": pd.array(["lost" if i % 2 else "won" for i in range(n)], dtype="string"),
        "created_at": _ts(*[T0] * n), "closed_at": _ts(*[T0 + timedelta(days=5)] * n),
    })
    history = pd.DataFrame({"deal_id": deals["deal_id"], "stage": deals["stage"], "entered_at": deals["created_at"]})
    data = CrmData(managers=pd.DataFrame({"manager_id": pd.array(["m1"], dtype="string"), "name": ["A"]}),
                   deals=deals, stage_history=history, stages=["a"])
    prep = prepare(data)
    assert "amount" not in prep.features
    assert "filled in at closing" in prep.dropped["amount"]


def test_won_within_the_horizon_labels_every_open_deal_and_only_from_its_window():
    from predict.features import snapshot_rows

    prep = prepare(_small())
    t = seconds_of(T0)
    day = 86_400
    # D1 is won 3 days after T0, D2 never closes: both are labelled, neither dropped
    rows = snapshot_rows(prep, [t], t + 10 * day, horizon=10 * day).set_index("deal_id")
    assert rows.loc["D1", "won"] == 1 and rows.loc["D2", "won"] == 0
    # won later than the horizon: not won within it (a question with one answer for every deal)
    rows = snapshot_rows(prep, [t], t + 10 * day, horizon=2 * day).set_index("deal_id")
    assert rows.loc["D1", "won"] == 0 and set(rows.index) == {"D1", "D2"}
    with pytest.raises(ValueError, match="horizon ends after"):
        snapshot_rows(prep, [t], t + 5 * day, horizon=10 * day)  # the answer is not known yet


@pytest.mark.parametrize("horizon_days", [20, 60])
def test_no_label_sees_past_its_horizon(horizon_days):
    from predict.features import snapshot_rows

    demo = generate_demo(7)
    end = pd.Timestamp(demo.now).tz_convert("UTC") - pd.Timedelta(days=10)
    at = seconds_of(end - pd.Timedelta(days=horizon_days))
    real = snapshot_rows(prepare(demo.data), [at], seconds_of(end), horizon=horizon_days * 86_400)
    other = snapshot_rows(prepare(_rewrite_the_future(demo.data, end)), [at], seconds_of(end), horizon=horizon_days * 86_400)
    cols = ["deal_id", "won"]
    pd.testing.assert_frame_equal(real[cols].sort_values("deal_id").reset_index(drop=True),
                                  other[cols].sort_values("deal_id").reset_index(drop=True))
    assert 0 < real["won"].sum() < len(real)


def test_a_client_filled_in_only_at_closing_is_not_a_feature():
    from predict.planted import planted_company

    data = planted_company(600, T0, seed=8)
    assert {"client_won", "client_lost"} <= set(prepare(data).features)  # every deal has its client
    open_rows = data.deals.index[data.deals["status"] == "open"]
    data.deals.loc[open_rows[: int(len(open_rows) * 0.7)], "client_id"] = pd.NA  # as Maven's account
    prep = prepare(data)
    assert "client_won" not in prep.features and "client_lost" not in prep.features
    assert "filled in at closing" in prep.dropped["client_won"] and "70% of open deals" in prep.dropped["client_won"]


def test_a_partial_follow_up_counts_only_the_wins_seen_by_then_and_says_how_long_it_followed():
    from predict.features import snapshot_rows

    prep = prepare(_small())
    t = seconds_of(T0)
    day = 86_400
    # known by 2 days after T0: D1 (won on day 3) is not won yet; by day 5 it is, within the horizon
    rows = snapshot_rows(prep, [t], t + 2 * day, horizon=10 * day, partial=True).set_index("deal_id")
    assert rows.loc["D1", "won"] == 0 and rows.loc["D2", "won"] == 0
    assert (rows["follow"] == 2 * day).all()
    rows = snapshot_rows(prep, [t, t - 20 * day], t + 5 * day, horizon=10 * day, partial=True)
    assert rows.set_index(["deal_id", "at"]).loc[("D1", t), "won"] == 1
    assert sorted(rows.groupby("at")["follow"].first().tolist()) == [5 * day, 10 * day]  # a full horizon at most
    with pytest.raises(ValueError, match="horizon ends after"):
        snapshot_rows(prep, [t + 10 * day], t + 5 * day, horizon=10 * day, partial=True)  # after known_by: nothing seen

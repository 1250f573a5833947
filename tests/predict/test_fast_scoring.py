"""Scoring a million open deals fast must not change a single chance or insight.

predict.model._calibrated_proba does each calibration fold's column handling on the distinct
categories only and predict.model.score is shared by deal_risk, the forecast and the deals
likely to close; here both are checked against sklearn's own path (the model's predict_proba
on the whole frame, each detector scoring for itself), on planted companies."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

import predict.explain as pe
import predict.model as pm
import predict.report as pr
from detectors.deal_risk import DealRiskSpec, detect as risk
from detectors.win_forecast import WinForecastSpec, detect as forecast
from predict.features import features_at, open_at, prepare, seconds_of
from predict.planted import planted_company
from tests.detectors.test_deal_risk import _with_a_deal_gone_quiet

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)


def _sklearn_path(model: pm.WinModel, frame: pd.DataFrame) -> np.ndarray:
    x = pm._prepared_x(frame, model.features)
    x["amount"] = x["amount"].clip(lower=0)
    return model.model.predict_proba(x)[:, 1]


@pytest.mark.parametrize("kind", ["boosting", "logistic"])
def test_fast_chances_are_sklearns_own(kind):
    data = planted_company(3000, NOW, seed=31)
    prep = prepare(data)
    model = pm.train(prep, NOW, kind=kind)
    t = seconds_of(NOW)
    now = features_at(prep, t, open_at(prep, t))
    frame = pd.concat([now, *[model.train_rows[list(now.columns)]] * 3], ignore_index=True)
    # categories the fit never saw, and missing ones: mapped to "unknown" / "(none)" as sklearn does
    frame.loc[:4, "manager_id"] = "a manager hired today"
    frame.loc[5:9, "source"] = None
    frame.loc[10:14, "region"] = np.nan
    assert len(frame) > pm.SMALL_FRAME  # the many-threads branch too
    fast = model.proba(frame)
    assert np.array_equal(fast, _sklearn_path(model, frame))
    one = frame.iloc[[3]].reset_index(drop=True)  # the explanations' one-row frames
    assert np.array_equal(model.proba(one), _sklearn_path(model, one))
    assert model.proba(frame.iloc[[3]])[0] == fast[3]  # a row's chance does not depend on its neighbours


def _scan(data):
    pm._scored = None
    return risk(data, DealRiskSpec(enabled=True), NOW) + forecast(data, WinForecastSpec(enabled=True), NOW)


def test_the_insights_are_the_same_as_without_the_fast_path(monkeypatch):
    pm.forget_fitted()
    data = _with_a_deal_gone_quiet()
    fast = _scan(data)
    assert {i.detector for i in fast} == {"deal_risk", "win_forecast"}
    assert any(i.subject == {"deal_id": "QUIET"} for i in fast)
    assert any(i.facts.get("kind") == "likely_to_close" for i in fast)
    prep, model = pm.fitted(data, NOW)
    p_fast = pm.score(model, prep, NOW)["p_win"].to_numpy()

    # the path before: sklearn's predict_proba, each explanation predicting its deal again,
    # the forecast computing the open deals' features and chances for itself
    monkeypatch.setattr(pm, "_calibrated_proba", lambda model, x: None)
    monkeypatch.setattr(pe.Explainer, "_chance", lambda self, row: float(self.model.proba(row)[0]))
    for_itself = []

    def own_scoring(model, prep, at):
        for_itself.append(1)
        t = at if isinstance(at, int) else seconds_of(at)
        frame = features_at(prep, t, open_at(prep, t))
        frame["p_win"] = model.proba(frame)
        frame["p_stage"] = model.baseline.predict(frame)
        return frame

    monkeypatch.setattr(pm, "score", own_scoring)
    monkeypatch.setattr(pr, "score", own_scoring)
    slow = _scan(data)
    assert len(for_itself) == 3  # deal_risk, the forecast and the likely deals each scored for themselves
    assert [(i.detector, i.subject, i.facts, i.evidence) for i in slow] == \
        [(i.detector, i.subject, i.facts, i.evidence) for i in fast]
    p_slow = own_scoring(model, prep, NOW)["p_win"].to_numpy()
    np.testing.assert_allclose(p_slow, p_fast, rtol=0, atol=1e-9)
    pm.forget_fitted()


def test_a_scan_scores_the_open_deals_once(monkeypatch):
    """deal_risk, the forecast and the deals likely to close read one scoring of the open deals."""
    pm.forget_fitted()
    data = planted_company(2000, NOW, seed=21)
    pm.fitted(data, NOW)  # the fit scores its own training rows: not counted
    calls = []
    real = pm.WinModel.proba
    monkeypatch.setattr(pm.WinModel, "proba", lambda self, frame: calls.append(len(frame)) or real(self, frame))
    _scan(data)
    n_open = int((data.deals["status"] == "open").sum())
    assert calls.count(n_open) == 1, calls
    assert sum(calls) < 1.5 * n_open  # the rest: deals a week ago (large ones only) and explanations
    pm.forget_fitted()


def test_opens_joined_lazily_count_as_by_hand():
    """prepare joins email opens to their emails when first counted, from shortly before that
    window: a later count further back (a fit, a replay) must still see every open."""
    from crm.demo import generate_demo

    demo = generate_demo(7)
    data = demo.data
    now = pd.Timestamp(demo.now).tz_convert("UTC")
    opens = data.email_opens.merge(data.emails[["email_id", "client_id", "direction"]], on="email_id")
    opens = opens[opens["direction"] == "out"]

    def by_hand(frame, at):
        seen = opens[(opens["opened_at"] > at - pd.Timedelta(days=30)) & (opens["opened_at"] <= at)]
        per_client = seen.groupby("client_id").size()
        client = data.deals.set_index("deal_id").loc[frame["deal_id"], "client_id"]
        return client.map(per_client).fillna(0).to_numpy(float)

    prep = prepare(data)
    for days in (0, 7, 300, 3):  # newest first (the warm scan), then far back: rebuilt from every open
        at = now - pd.Timedelta(days=days)
        frame = features_at(prep, at)
        expected = by_hand(frame, at)
        np.testing.assert_array_equal(frame["opens_30d"].to_numpy(), expected)
        assert (expected > 0).sum() > 20  # the window held opens: not a comparison of zeros

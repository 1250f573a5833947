"""prepare's sorted event arrays give exactly the features a plain per-deal count gives.

predict.features.prepare is tuned for a million deals (timestamps read as stored, event
arrays sorted without a stable sort, only the deals asked about indexed); none of that may
change a single feature, so a prediction. Here every feature of every deal open at several
snapshots is recomputed the slow, obvious way (per deal, per client, from the tables) on the
demo company with awkward rows added: two stages entered at the same second (the later row
is the stage), history of unknown deals and stages, undated events."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from crm.demo import generate_demo
from predict.features import DAY, UNKNOWN_STAGE, features_at, prepare, seconds_of

TOUCH_TYPES = ("call", "meeting", "task", "email")


def _sec(col: pd.Series) -> np.ndarray:
    """Whole UTC seconds, the way a person would floor them; -1 undated."""
    ns = pd.DatetimeIndex(col).tz_convert("UTC").as_unit("ns")
    return np.where(ns.isna(), -1, ns.asi8 // 10**9)


def _awkward(seed: int = 7):
    demo = generate_demo(seed)
    data = demo.data
    hist = data.stage_history
    some = data.deals["deal_id"].iloc[::7].to_numpy()
    first = hist.drop_duplicates("deal_id").set_index("deal_id").loc[some]
    stages = data.stages
    # the same second, another stage, listed after (then before) the real entry: the later row wins
    after = pd.DataFrame({"deal_id": some[::2], "stage": stages[-1], "entered_at": first["entered_at"].to_numpy()[::2]})
    before = pd.DataFrame({"deal_id": some[1::2], "stage": stages[1], "entered_at": first["entered_at"].to_numpy()[1::2]})
    odd = pd.DataFrame({"deal_id": ["NO SUCH DEAL", some[0], some[3]], "stage": [stages[0], "a stage not in the list", stages[2]],
                        "entered_at": [hist["entered_at"].iloc[0], hist["entered_at"].iloc[5], pd.NaT]})
    new_hist = pd.concat([before, hist, after, odd], ignore_index=True)
    for col in ("deal_id", "stage"):
        new_hist[col] = new_hist[col].astype(hist[col].dtype)
    new_hist["entered_at"] = pd.to_datetime(new_hist["entered_at"], utc=True).astype(hist["entered_at"].dtype)
    data.stage_history = new_hist
    # a client whose deals all closed long ago still opens a recent email
    now = pd.Timestamp(demo.now).tz_convert("UTC")
    deals = data.deals
    last_close = deals.groupby("client_id")["closed_at"].max()
    active = set(deals.loc[deals["status"] == "open", "client_id"])
    quiet = [c for c, t in last_close.items() if t < now - pd.Timedelta(days=200) and c not in active][:3]
    assert quiet
    em, op = data.emails, data.email_opens
    sent = pd.DataFrame({c: pd.Series([None] * len(quiet), dtype=em[c].dtype) for c in em.columns})
    sent["email_id"] = pd.Series([f"QUIET-{i}" for i in range(len(quiet))], dtype=em["email_id"].dtype)
    sent["client_id"] = pd.Series(quiet, dtype=em["client_id"].dtype)
    sent["direction"] = pd.Series(["out"] * len(quiet), dtype=em["direction"].dtype)
    sent["sent_at"] = pd.Series([now - pd.Timedelta(days=20)] * len(quiet)).astype(em["sent_at"].dtype)
    data.emails = pd.concat([em, sent], ignore_index=True)
    opened = pd.DataFrame({"email_id": pd.Series(sent["email_id"].tolist() * 2, dtype=op["email_id"].dtype),
                           "opened_at": pd.Series([now - pd.Timedelta(days=2)] * 2 * len(quiet)).astype(op["opened_at"].dtype)})
    data.email_opens = pd.concat([op, opened], ignore_index=True)
    return data, now


def _reference(data, at: int, rows: np.ndarray | None = None) -> pd.DataFrame:
    """Every feature of each deal open at second `at` (or of the deals at `rows`), counted per
    deal from the tables."""
    deals = data.deals.reset_index(drop=True)
    created, closed = _sec(deals["created_at"]), _sec(deals["closed_at"])
    status = deals["status"].astype(object).to_numpy()
    is_closed = np.isin(status, ["won", "lost"])
    stages = [*data.stages]
    stages += sorted({str(s) for s in data.stage_history["stage"].dropna()} - set(stages)) + [UNKNOWN_STAGE]
    by_deal = defaultdict(list)  # deal id -> [(second, stage)] in table order
    for d, s, t in zip(data.stage_history["deal_id"], data.stage_history["stage"], _sec(data.stage_history["entered_at"])):
        if t >= 0:
            by_deal[d].append((t, s))
    deal_touch, client_touch = defaultdict(list), defaultdict(list)
    replies, opens = defaultdict(list), defaultdict(list)
    deal_set = set(deals["deal_id"])
    acts = data.activities
    for d, c, kind, t in zip(acts["deal_id"], acts["client_id"], acts["type"], _sec(acts["done_at"])):
        if t < 0 or kind not in TOUCH_TYPES:
            continue
        if isinstance(d, str) and d in deal_set:
            deal_touch[d].append(t)
        elif isinstance(c, str):
            client_touch[c].append(t)
    em = data.emails
    sent = dict(zip(em["email_id"], zip(em["client_id"], em["direction"])))
    for c, direction, t in zip(em["client_id"], em["direction"], _sec(em["sent_at"])):
        if isinstance(c, str) and t >= 0:
            client_touch[c].append(t)
            if direction == "in":
                replies[c].append(t)
    for e, t in zip(data.email_opens["email_id"], _sec(data.email_opens["opened_at"])):
        c, direction = sent.get(e, (None, None))
        if isinstance(c, str) and direction != "in" and t >= 0:
            opens[c].append(t)
    history = defaultdict(lambda: [0, 0])  # client -> [won, lost] closed strictly before `at`
    for c, st, t in zip(deals["client_id"], status, closed):
        if isinstance(c, str) and st in ("won", "lost") and 0 <= t < at:
            history[c][st == "lost"] += 1

    def within(times, lo, hi):
        return sum(lo < t <= hi for t in times)

    if rows is None:
        rows = np.flatnonzero((created >= 0) & (created <= at) & ~(is_closed & (closed <= at)))
    out = []
    for i in rows:
        d, c = deals["deal_id"].iloc[i], deals["client_id"].iloc[i]
        entries = [(t, s) for t, s in by_deal[d] if t <= at]
        last = max(entries, key=lambda e: e[0]) if entries else None
        if entries:  # among entries at the same second, the one listed last
            last = [e for e in entries if e[0] == last[0]][-1]
        stage = last[1] if last and last[1] in stages else UNKNOWN_STAGE
        touches = [t for t, _ in by_deal[d]] + deal_touch[d] + (client_touch[c] if isinstance(c, str) else [])
        done = [t for t in touches if t <= at]
        row = {
            "deal_id": d, "row": i,
            "stage_pos": np.nan if stage == UNKNOWN_STAGE else float(stages.index(stage)),
            "days_at_stage": (at - (last[0] if last else created[i])) / DAY,
            "days_open": (at - created[i]) / DAY,
            "stage_moves": float(len(entries)),
            "amount": deals["amount"].iloc[i],
            "touches_14d": float(within(touches, at - 14 * DAY, at)),
            "days_since_touch": (at - max([*done, created[i]])) / DAY,
            "replies_30d": float(within(replies[c], at - 30 * DAY, at)) if isinstance(c, str) else 0.0,
            "opens_30d": float(within(opens[c], at - 30 * DAY, at)) if isinstance(c, str) else 0.0,
            "client_won": float(history[c][0]) if isinstance(c, str) else 0.0,
            "client_lost": float(history[c][1]) if isinstance(c, str) else 0.0,
            "stage": stage,
        }
        for col in ("source", "region", "manager_id"):
            v = deals[col].iloc[i]
            row[col] = v if isinstance(v, str) else None
        out.append(row)
    return pd.DataFrame(out)


@pytest.mark.parametrize("days_back", [0, 7, 60, 250])
def test_every_feature_is_the_plain_count(days_back):
    data, now = _awkward()
    at = seconds_of(now - pd.Timedelta(days=days_back))
    got = features_at(prepare(data), at)
    want = _reference(data, at)
    assert len(want) > 50 and (want["stage"] == data.stages[-1]).any()
    assert want["opens_30d"].sum() > 0 and want["replies_30d"].sum() > 0 and want["client_won"].sum() > 0
    got = got.astype({c: object for c in ("deal_id", "stage", "source", "region", "manager_id")})
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want[list(got.columns)], check_exact=True,
                                  check_dtype=False)


def test_two_stages_entered_at_the_same_second_the_later_row_wins():
    data, now = _awkward()
    at = seconds_of(now)
    f = features_at(prepare(data), at).set_index("deal_id")
    hist = data.stage_history
    t = _sec(hist["entered_at"])
    tied = hist[pd.Series(t).duplicated(keep=False).to_numpy() & hist["deal_id"].duplicated(keep=False).to_numpy()]
    tied = tied[tied["deal_id"].isin(f.index)]
    checked = 0
    for d, grp in tied.groupby("deal_id"):
        times = _sec(grp["entered_at"])
        if (times == times.max()).sum() > 1 and len(set(grp["stage"])) > 1 and \
                _sec(hist.loc[hist["deal_id"] == d, "entered_at"]).max() == times.max():
            assert f.loc[d, "stage"] == grp["stage"].iloc[-1]
            checked += 1
    assert checked > 0


def test_one_prepare_asked_newest_first_then_far_back():
    """A scan asks about the deals open now, and prepare indexes only those still open shortly
    before (and the opens of their clients); a later question further back (a fit, a replay)
    must still see every event."""
    data, now = _awkward()
    prep = prepare(data)
    for days in (0, 7, 250, 3):
        at = seconds_of(now - pd.Timedelta(days=days))
        got = features_at(prep, at).astype({c: object for c in ("deal_id", "stage", "source", "region", "manager_id")})
        if days == 7:  # the scan's two questions were answered from the deals open lately only
            assert 0 < prep.by_deal._covered.sum() < 0.5 * len(data.deals)
            assert 0 < prep.opens._covered.sum() < len(prep.opens._covered)  # the opens of some clients only...
            assert prep.opens._from == at - 30 * DAY  # ...of the two windows asked for
        pd.testing.assert_frame_equal(got.reset_index(drop=True), _reference(data, at)[list(got.columns)],
                                      check_exact=True, check_dtype=False)
    assert prep.by_deal._covered.all() and prep.opens._covered.all()


def test_deals_closed_long_ago_asked_after_the_open_ones():
    """Explanations and tests may ask about any deal: one closed long before the first question
    (its stage entries, touches and its client's opens not indexed yet) is counted in full."""
    data, now = _awkward()
    prep = prepare(data)
    at = seconds_of(now)
    features_at(prep, at)
    closed = _sec(data.deals["closed_at"])
    old = np.flatnonzero((closed > 0) & (closed < at - 200 * DAY))[:150]
    assert not prep.by_deal._covered[old].any()
    assert not prep.opens._covered[prep.client[old]].all()
    got = features_at(prep, at, old).astype({c: object for c in ("deal_id", "stage", "source", "region", "manager_id")})
    want = _reference(data, at, old)
    assert want["opens_30d"].sum() > 0 and want["stage_moves"].sum() > 0
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want[list(got.columns)], check_exact=True,
                                  check_dtype=False)

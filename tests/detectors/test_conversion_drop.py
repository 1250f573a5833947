"""conversion_drop on hand-built pipelines with known answers.

The deterministic pipeline of _builders_a (delays 3..23 days) gives every stage a learned
horizon of about 21 days, so with NOW = 2026-10-01 the recent cohort is entries ~21..49 days
ago. Drops are planted on entries younger than 50 days: a change that started then and holds.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as hs
from pydantic import ValidationError

from _builders_a import MANAGERS, NOW, make_data, pipeline, spread
from _builders_conv import company
from detectors import REGISTRY, conversion_drop as cd, run_detectors
from detectors.conversion_drop import ConversionDropSpec, detect, detect_at, prepare, skip_reason
from detectors.stats import ts_ns
from detectors.working_hours import WorkCalendar

# The synthetic companies here work every calendar day, holidays included (their delays are
# calendar days), so they are measured on a clock without days off, as their calendar says.
_PLAIN = WorkCalendar(country=None)


def _spec(**kw) -> ConversionDropSpec:
    return ConversionDropSpec(**({"calendar": _PLAIN} | kw))


SPEC = _spec()


def flat(rate):
    return lambda s, age, seg: rate


def build(rate_fn, n=900, days=200, **kw):
    deals, history = pipeline(spread(n, days, 0), rate_fn, **kw)
    return make_data(managers=MANAGERS, deals=deals, stage_history=history)


@pytest.fixture(scope="module")
def healthy():
    return build(flat(0.6))


@pytest.fixture(scope="module")
def proposal_drop():
    # Conversion proposal -> contract falls from 60% to 30% for deals entering it in the last 50 days.
    return build(lambda s, age, seg: 0.3 if s == 2 and age < 50 else 0.6)


def test_nothing_wrong_gives_no_insight(healthy):
    assert detect(healthy, SPEC, NOW) == []


def test_true_drop_found_at_that_stage_only(proposal_drop):
    found = detect(proposal_drop, SPEC, NOW)
    assert [i.subject for i in found] == [{"from_stage": "proposal", "to_stage": "contract"}]
    f = found[0].facts
    assert f["kind"] == "drop" and f["to_won"] is False and f["drivers"] == []
    # Deals move on 3..23 days after entering, evenly: 90% of movers have moved by day 21.
    assert f["horizon_days"] in (21, 22) and f["horizon_source"] == "learned"
    h = f["horizon_days"]
    assert f["baseline_rate"] == pytest.approx(0.6 * (h - 3) / 20, abs=0.06)
    assert f["recent_rate"] == pytest.approx(0.3 * (h - 3) / 20, abs=0.06)
    assert f["recent_n"] >= 30 and f["baseline_n"] >= 30
    assert f["q_value"] <= 0.05 and f["p_value"] <= f["q_value"]
    # the recent cohort ends one learned horizon before now, not a fixed 30 days
    recent_end = (NOW - timedelta(days=h)).date()
    assert f["recent_end"] == (recent_end - timedelta(days=1)).isoformat()
    assert f["recent_start"] == (recent_end - timedelta(days=28)).isoformat()
    assert f["baseline_start"] == (recent_end - timedelta(days=28 + 91)).isoformat()
    # impact: the conversions lost a month at the recent volume
    assert f["lost_per_month"] == pytest.approx(
        (f["baseline_rate"] - f["recent_rate"]) * f["recent_n"] * 30.44 / 28, abs=0.2)
    weeks = f["weekly"]
    assert sum(w["n"] for w in weeks) == f["baseline_n"] + f["recent_n"]
    assert np.mean([w["rate"] for w in weeks[-4:]]) < np.mean([w["rate"] for w in weeks[:-5]]) - 0.1
    ev = found[0].evidence["deal_ids"]
    assert len(ev) == f["recent_n"] - f["recent_converted"]
    assert found[0].audience.role == "director"


def test_volume_tripling_with_unchanged_conversion_is_silent():
    # Three times as many deals enter in the last three weeks; conversion is the same 60%.
    ages = spread(700, 200, 21) + spread(3 * 700 * 21 // 179, 21, 0)
    deals, history = pipeline(ages, flat(0.6))
    data = make_data(managers=MANAGERS, deals=deals, stage_history=history)
    # The trap is real: naive "share that moved on so far" is lower for the young cohort ...
    sh = data.stage_history
    entered_new = sh[sh["stage"] == "new"].set_index("deal_id")["entered_at"]
    moved = set(sh.loc[sh["stage"] == "qualified", "deal_id"])
    young = entered_new[entered_new >= pd.Timestamp(NOW - timedelta(days=21))]
    old = entered_new[entered_new < pd.Timestamp(NOW - timedelta(days=21))]
    assert young.index.isin(moved).mean() < old.index.isin(moved).mean() - 0.15
    # ... and the detector does not fall for it.
    assert detect(data, SPEC, NOW) == []


def test_drop_to_won_from_last_stage():
    data = build(lambda s, age, seg: 0.2 if s == 3 and age < 50 else 0.7, n=2400)
    found = detect(data, SPEC, NOW)
    assert [i.subject for i in found] == [{"from_stage": "contract", "to_stage": "won"}]
    assert found[0].facts["to_won"] is True


def test_small_samples_never_fire():
    data = build(lambda s, age, seg: 0.0 if age < 50 else 0.9, n=150)
    assert detect(data, SPEC, NOW) == []
    assert detect(data, _spec(min_deals=5, min_segment_deals=5), NOW) != []


def test_small_but_significant_drop_stays_below_the_relative_minimum():
    # 60% -> 54%: with many deals it is significant, but a 10% relative drop is below 15%.
    data = build(lambda s, age, seg: 0.54 if s == 0 and age < 50 else 0.6, n=8000)
    assert detect(data, SPEC, NOW) == []
    found = detect(data, _spec(min_relative_drop=0.05), NOW)
    assert [i.subject["from_stage"] for i in found] == ["new"]


def test_low_base_drop_counts_by_impact_not_by_points():
    """10% -> 7.5% on ~1,000 deals a month: 2.5 points, far below the old 5-point floor, but
    25 lost conversions a month. Fires; an optional absolute floor can still silence it."""
    data = build(lambda s, age, seg: 1.0 if s < 3 else (0.075 if age < 50 else 0.1), n=7000)
    found = detect(data, SPEC, NOW)
    assert [i.subject for i in found] == [{"from_stage": "contract", "to_stage": "won"}]
    f = found[0].facts
    assert f["baseline_rate"] - f["recent_rate"] < 0.05
    assert f["lost_per_month"] >= 10
    assert detect(data, _spec(min_absolute_drop=0.05), NOW) == []
    assert detect(data, _spec(min_lost_per_month=f["lost_per_month"] + 1), NOW) == []


def test_severity_follows_impact():
    spec = _spec(min_lost_per_month=3)
    big = detect(build(lambda s, age, seg: 0.3 if s == 2 and age < 50 else 0.6), spec, NOW)[0]
    assert big.facts["lost_per_month"] >= 9 and big.severity == "critical"
    costly_only_if = _spec(min_lost_per_month=big.facts["lost_per_month"] / 2)
    assert detect(build(lambda s, age, seg: 0.3 if s == 2 and age < 50 else 0.6), costly_only_if, NOW)[0].severity == "warning"


def test_derived_stage_history_measures_won_conversion_from_outcomes(proposal_drop):
    derived = dataclasses.replace(proposal_drop, stage_history_derived=True)
    assert skip_reason(derived) is None and skip_reason(proposal_drop) is None
    # the stage pairs are switched off with one line; the detector itself runs
    res = run_detectors(derived, {}, NOW)
    assert "conversion_drop" not in res.skipped
    line = " ".join(res.partial["conversion_drop"])
    assert "stage-to-stage conversion: not checked" in line and "stage_history" in line
    assert "conversion_drop" not in run_detectors(proposal_drop, {}, NOW).partial


def test_registered_and_runs_through_the_registry(proposal_drop):
    assert REGISTRY["conversion_drop"].spec is ConversionDropSpec
    res = run_detectors(proposal_drop, {"conversion_drop": SPEC}, NOW)
    assert any(i.detector == "conversion_drop" for i in res.insights)


def test_fingerprint_stable_while_the_drop_persists(proposal_drop):
    a = detect(proposal_drop, SPEC, NOW)
    b = detect(proposal_drop, SPEC, NOW + timedelta(days=3))
    assert a and b and a[0].fingerprint == b[0].fingerprint
    assert a[0].facts != b[0].facts  # numbers moved, identity did not


def test_spec_rejects_typos_unknown_segments_and_crossed_bounds():
    with pytest.raises(ValidationError, match="min_deal"):
        _spec(min_deal=3)
    with pytest.raises(ValidationError, match="unknown deal column"):
        _spec(segments=["sourse"])
    with pytest.raises(ValidationError, match="max_horizon_days"):
        _spec(min_horizon_days=20, max_horizon_days=10)


def test_stage_history_rows_for_unknown_stages_and_deals_are_ignored(proposal_drop):
    extra = pd.concat([proposal_drop.stage_history, pd.DataFrame({
        "deal_id": ["d000001", "ghost"], "stage": ["archived", "new"],
        "entered_at": pd.to_datetime(["2026-09-01T00:00Z", "2026-09-01T00:00Z"], utc=True),
    }).astype({"deal_id": "str", "stage": "str"})], ignore_index=True)
    data = dataclasses.replace(proposal_drop, stage_history=extra)
    assert [i.to_dict() for i in detect(data, SPEC, NOW)] == [i.to_dict() for i in detect(proposal_drop, SPEC, NOW)]


def _strip_ids(insights):
    out = []
    for i in insights:
        d = i.to_dict()
        d["evidence"] = {k: len(v) for k, v in d["evidence"].items()}
        for drv in d["facts"]["drivers"]:
            drv.pop("segment_id")
        out.append(d)
    return out


@pytest.fixture(scope="module")
def web_drop():
    return build(lambda s, age, seg: 0.15 if s == 0 and age < 50 and seg["source"] == "web" else 0.6, n=1500)


def test_a_drop_confined_to_one_source_names_that_source_only(web_drop):
    found = detect(web_drop, SPEC, NOW)
    assert [i.subject for i in found] == [{"from_stage": "new", "to_stage": "qualified"}]
    drivers = found[0].facts["drivers"]
    assert [(d["dimension"], d["segment"]) for d in drivers] == [("source", "web")]
    top = drivers[0]
    assert top["recent_rate"] < 0.2 and top["baseline_rate"] > 0.45
    assert top["rest_recent_rate"] > top["rest_baseline_rate"] - 0.05  # the others held
    assert top["share_of_drop"] > 0.8 and top["q_value"] <= SPEC.segment_fdr


def test_manager_driver_is_shown_by_name():
    data = build(lambda s, age, seg: 0.15 if s == 0 and age < 50 and seg["manager"] == "m2" else 0.6, n=1500)
    drivers = detect(data, SPEC, NOW)[0].facts["drivers"]
    assert [(d["dimension"], d["segment"], d["segment_id"]) for d in drivers] == [("manager", "Boris", "m2")]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=hs.integers(0, 2**32 - 1), prefix=hs.sampled_from(["x", "deal-", "Сделка"]))
def test_shuffling_rows_and_renaming_ids_changes_nothing_but_ids(web_drop, seed, prefix):
    rng = np.random.default_rng(seed)
    base = detect(web_drop, SPEC, NOW)
    rename = {m["manager_id"]: m["manager_id"] + "_r" for m in MANAGERS}
    deals = web_drop.deals.sample(frac=1, random_state=rng).reset_index(drop=True)
    deals["deal_id"] = prefix + deals["deal_id"]
    deals["manager_id"] = deals["manager_id"].map(rename).astype("str")
    sh = web_drop.stage_history.sample(frac=1, random_state=rng).reset_index(drop=True)
    sh["deal_id"] = prefix + sh["deal_id"]
    managers = web_drop.managers.sample(frac=1, random_state=rng).reset_index(drop=True)
    managers["manager_id"] = managers["manager_id"].map(rename).astype("str")
    shuffled = dataclasses.replace(web_drop, deals=deals, stage_history=sh, managers=managers)
    got = detect(shuffled, SPEC, NOW)
    assert _strip_ids(got) == _strip_ids(base)
    assert [i.fingerprint for i in got] == [i.fingerprint for i in base]  # subject has no deal/manager ids
    assert sorted(got[0].evidence["deal_ids"]) == sorted(prefix + x for x in base[0].evidence["deal_ids"])


def test_a_company_without_deals_or_history_says_nothing():
    empty = make_data(managers=MANAGERS, deals=[], stage_history=[])
    assert detect(empty, SPEC, NOW) == []
    no_history = dataclasses.replace(build(flat(0.6), n=100), stage_history=make_data(managers=MANAGERS, deals=[]).stage_history)
    assert detect(no_history, SPEC, NOW) == []


def test_backtest_path_prepare_once_then_detect_at_matches_detect(proposal_drop):
    # Horizons are learned as of `as_of`; given the same moment, prepare once + detect_at per
    # day equals a scan on each of those days.
    for days in (-20, -5, 0, 4, 25):
        now = NOW + timedelta(days=days)
        state = prepare(proposal_drop, SPEC, as_of=ts_ns(now))
        assert [i.to_dict() for i in detect_at(state, now)] == [i.to_dict() for i in detect(proposal_drop, SPEC, now)]
    # one state for the whole replay: the drop is there at the end and not before its cohort was seen
    state = prepare(proposal_drop, SPEC)
    assert [i.subject["from_stage"] for i in detect_at(state, NOW)] == ["proposal"]
    assert detect_at(state, NOW - timedelta(days=40)) == []
    # without evidence (what backtest asks for) the insight is the same, minus the ids
    lean = detect_at(state, NOW, with_evidence=False)
    assert lean[0].evidence == {} and lean[0].facts == detect_at(state, NOW)[0].facts


# --- holidays ----------------------------------------------------------------------------------

MOSCOW = WorkCalendar(timezone="Europe/Moscow", country="RU")


def _resting_company(cal: WorkCalendar, now: datetime, days: int = 200):
    """A company that rests on its official holidays (Russia: 1-9 January 2026): three deals a
    working day enter "proposal"; 3 in 5 move to "contract" 3-5 WORKING days later, the rest
    are lost two working days after that. Nothing ever changes, so no drop is true."""
    first = (now - timedelta(days=days)).date()
    span = np.arange(np.datetime64(first), np.datetime64(now.date()))
    work = span[cal.is_working_day(span)]
    at = {d: k for k, d in enumerate(work.tolist())}
    deals, history, k = [], [], 0
    for d in work.tolist():
        for j in range(3):
            deal_id, k = f"h{k:05d}", k + 1
            enter = datetime(d.year, d.month, d.day, 7 + 2 * j, tzinfo=timezone.utc)  # 10-14 in Moscow
            history.append({"deal_id": deal_id, "stage": "proposal", "entered_at": enter})
            moves, wait = k % 5 < 3, 3 + k % 3
            i = at[d] + wait + (0 if moves else 2)
            status, closed = "open", None
            if i < len(work):
                t = work[i].astype(object)
                then = datetime(t.year, t.month, t.day, 8, tzinfo=timezone.utc)
                if then <= now and moves:
                    history.append({"deal_id": deal_id, "stage": "contract", "entered_at": then})
                elif then <= now:
                    status, closed = "lost", then
            deals.append({"deal_id": deal_id, "manager_id": "m1", "stage": "proposal", "status": status,
                          "created_at": enter, "closed_at": closed, "amount": 1000.0, "currency": "RUB"})
    return make_data(managers=MANAGERS, deals=deals, stage_history=history)


def test_a_holiday_break_inside_the_horizon_is_not_a_drop():
    """Deals that entered just before the New Year break move on after it, as every deal does
    after its working days; on a clock that ran through the break they looked slower, and a calm
    company "fell" (the amoCRM-style red-team export: 73% -> 57% on 26 January, in Kazakhstan).
    The company calendar's days off on workdays do not count towards the horizon."""
    now = datetime(2026, 1, 27, 6, 0, tzinfo=timezone.utc)
    data = _resting_company(MOSCOW, now)
    only_cohorts = dict(min_horizon_days=10, max_horizon_days=10, segments=[], persist_weeks=0, confirm_p=1.0)
    plain = detect(data, _spec(**only_cohorts), now)
    assert [i.subject for i in plain] == [{"from_stage": "proposal", "to_stage": "contract"}], \
        "on a clock through the holidays the break looks like a drop (the test must be able to fail)"
    assert detect(data, ConversionDropSpec(calendar=MOSCOW, **only_cohorts), now) == []
    # ... with the default rules too, and in a replay that prepares once
    spec = ConversionDropSpec(calendar=MOSCOW)
    assert detect(data, spec, now) == []
    state = prepare(data, spec, as_of=ts_ns(now - timedelta(days=30)))
    for back in range(0, 30, 3):
        assert detect_at(state, now - timedelta(days=back)) == [], back


def test_dates_said_are_on_the_real_calendar_around_a_break():
    """The windows are cut on the company clock; the dates in the facts are real dates, and the
    recent window that spans the break is longer in real days by the days off in it."""
    now = datetime(2026, 2, 3, 6, 0, tzinfo=timezone.utc)
    data = _resting_company(MOSCOW, now)
    fixed = dict(min_horizon_days=10, max_horizon_days=10, segments=[], confirm_p=1.0, persist_weeks=0,
                 fdr=0.99, min_relative_drop=0.01, min_lost_per_month=0, min_deals=1)
    state = prepare(data, ConversionDropSpec(calendar=MOSCOW, **fixed), as_of=ts_ns(now))
    p = cd._pair_at(0, state.pairs[0], state, state.clock(now))
    facts = cd._common_facts(p, state, p.total, 0.5, 0.5)
    start, end = (datetime.fromisoformat(facts[k]).date() for k in ("recent_start", "recent_end"))
    off = [d for d in MOSCOW.days_off if start <= d <= end and d.isoweekday() <= 5]
    assert len(off) >= 6 and (end - start).days + 1 == 28 + len(off), (start, end, off)
    assert datetime.fromisoformat(facts["baseline_end"]).date() == start - timedelta(days=1)
    cal = MOSCOW
    ns = np.array([ts_ns(now - timedelta(days=d, hours=h)) for d in range(60) for h in (0, 5, 13)], dtype=np.int64)
    stopped = cal.without_days_off(ns)
    assert (np.diff(stopped[::-1]) >= 0).all()  # monotone
    back = cal.with_days_off(stopped)
    on_work = ~np.isin(cal.local_days_ns(ns), np.array(cal.days_off, dtype="datetime64[D]"))
    assert (back[on_work] == ns[on_work]).all()  # a working instant comes back unchanged


def _dip_then(newest_rate: float):
    """Stage "new" converts at 60%, at 30% for entries 14-42 days old (the recent cohort), and at
    `newest_rate` for the younger ones (the newest deals, still in progress)."""
    return lambda s, age, src, mgr, reg: np.where((s == 0) & (age < 42), np.where(age < 14, newest_rate, 0.3), 0.6)


@pytest.mark.parametrize("seed", [8, 20])
def test_a_clear_drop_is_not_ended_by_a_few_newest_deals_that_merely_do_not_slow(seed):
    """A company of ~75 deals a month whose conversion fell 60% -> 30% (q ~1e-6) and stays low
    (42%). Its 30-40 newest deals happened to move on about as the baseline's pace predicts
    (newest p > 2 x confirm_p), which alone used to end the dip; they are too few to outweigh
    the cohorts (as-before likelihood ratio 17 and 290), so the drop is said."""
    data = company(seed, _dip_then(0.42), n=600)
    found = [i for i in detect(data, SPEC, NOW) if i.subject.get("from_stage") == "new"]
    assert len(found) == 1 and found[0].facts["kind"] == "drop"
    f = found[0].facts
    assert f["q_value"] <= SPEC.clear_q and f["newest"]["p_value"] > 2 * SPEC.confirm_p
    assert f["newest"]["as_before_lr"] * SPEC.clear_q < 1


@pytest.mark.parametrize("seed", [1, 2, 4, 10])
def test_a_clear_dip_is_over_when_many_newest_deals_move_on_as_before(seed):
    """The same fall at ~375 deals a month, but the newest deals (170-225 of them) convert at
    60% again: their moves are thousands of times likelier at the baseline's pace than at the
    dip's, so the dip is over however strong its cohorts were (as a segment's: _gainsaid)."""
    data = company(seed, _dip_then(0.6), n=3000)
    assert [i for i in detect(data, SPEC, NOW) if i.subject.get("from_stage") == "new"] == []
    state = prepare(data, SPEC, as_of=ts_ns(NOW))
    now = state.clock(NOW)
    pair = cd._pair_at(0, state.pairs[0], state, now)
    newest = cd._newest_check(pair, now)
    # the cohorts alone are clear beyond doubt, and the newest deals' p alone would not stop it
    assert pair.total.rates()[1][0] < 0.33 and newest["p_value"] > 2 * SPEC.confirm_p
    assert newest["as_before_lr"] * SPEC.clear_q >= 1

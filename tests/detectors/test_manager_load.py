"""manager_load on hand-built teams with known answers: one item per team imbalance."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as hs
from pydantic import ValidationError

from _builders_a import NOW, day, frame, make_data
from detectors.manager_load import ManagerLoadSpec, detect, detect_at, not_compared, prepare
from detectors.stats import bh_qvalues, rate_vs_rest_pvalues

SPEC = ManagerLoadSpec()


def team(counts: dict[str, int], *, capacity=None, inactive=(), team_of=None, leads=None, region_only=False,
         opened_days_ago=None, extra_deals=()):
    """Managers with `counts[m]` open deals each, opened evenly 10..60 days ago (or
    `opened_days_ago[m]` days ago), so a window earlier everyone had about 2/3 of them (the
    persistence check looks there), plus a few deals closed 80 days ago that never count."""
    capacity = capacity or {}
    managers, deals = [], []
    for m, k in counts.items():
        row = {"manager_id": m, "name": m.upper(), "capacity": capacity.get(m, 1.0), "active": m not in inactive}
        where = (team_of or {}).get(m, "Almaty")
        row["region" if region_only else "team"] = where
        managers.append(row)
        for j in range(k):
            age = (opened_days_ago or {}).get(m, 10 + 50 * j / k)
            deals.append({"deal_id": f"{m}-{j}", "manager_id": m, "stage": "new", "status": "open", "created_at": day(age)})
        for j in range(3 if k else 0):
            deals.append({"deal_id": f"{m}-c{j}", "manager_id": m, "stage": "new", "status": "won", "created_at": day(90), "closed_at": day(80)})
    return make_data(managers=managers, deals=deals + list(extra_deals), leads=leads)


def only(found):
    assert len(found) == 1, [i.subject for i in found]
    return found[0]


def named(item, side=None, metric=None):
    rows = (item.facts["over"] if side != "under" else []) + (item.facts["under"] if side != "over" else [])
    return sorted(r["manager_id"] for r in rows if metric is None or r["metric"] == metric)


def check_plan(item, metric):
    """The plan's rules, from the item's own facts: nobody both gives and takes, nobody gives
    more than their excess above the team's fair share or takes more than their room below it,
    and the total is what the excess needs, capped by the room."""
    moves = item.facts["plan"].get(metric, [])
    m = item.facts["metrics"][metric]
    loads = {r["manager_id"]: r for r in m["loads"]}
    fair = m["team_total"] / sum(r["capacity"] for r in m["loads"])
    givers = {x["from_manager_id"] for x in moves}
    takers = {x["to_manager_id"] for x in moves}
    assert not givers & takers
    gave = {g: sum(x["count"] for x in moves if x["from_manager_id"] == g) for g in givers}
    took = {t: sum(x["count"] for x in moves if x["to_manager_id"] == t) for t in takers}
    for g, n in gave.items():
        assert 0 < n <= loads[g]["value"] - fair * loads[g]["capacity"] + 1e-6
    for t, n in took.items():
        assert 0 < n <= fair * loads[t]["capacity"] - loads[t]["value"] + 1e-6
    assert all(x["count"] > 0 for x in moves)
    return gave, took, fair


# --- the basic finding -------------------------------------------------------------------

def test_over_and_under_in_one_team_are_one_item_with_one_plan():
    data = team({"ann": 20, "bob": 22, "cid": 19, "half": 10, "over": 45, "under": 4, "gone": 1},
                capacity={"half": 0.5}, inactive={"gone"})
    item = only(detect(data, SPEC, NOW))
    assert item.subject == {"team": "Almaty"} and item.audience.role == "director"
    assert named(item, "over") == ["over"] and named(item, "under") == ["under"]
    over = item.facts["over"][0]
    assert over["metric"] == "open_deals" and over["value"] == 45 and over["team_median"] == 20.0
    assert over["ratio"] == pytest.approx(2.25) and over["p_value"] < 0.001
    loads = item.facts["metrics"]["open_deals"]["loads"]
    assert {r["manager_id"] for r in loads} == {"ann", "bob", "cid", "half", "over", "under"}  # no inactive
    gave, took, fair = check_plan(item, "open_deals")
    assert set(gave) == {"over"} and "under" in took
    # the over-loaded gives its excess above the fair share, as far as the others have room
    room = sum(max(int(fair * r["capacity"] - r["value"]), 0) for r in loads)
    assert sum(gave.values()) == min(int(45 - fair), room) == 20
    assert took["under"] == int(fair - 4)  # the under-loaded is filled first, to the fair share
    assert len(item.evidence["deal_ids"]) == 49  # the named people's open deals
    assert item.severity == "critical"  # 4 vs a median of 20 is below half the band's floor


def test_an_owner_that_names_nobody_is_never_a_teammate_and_a_person_named_like_one_is():
    """«Без ответственного» with 2 open deals is no under-loaded teammate to route leads to, and
    "Unassigned" with 60 is nobody to take deals from (crm.owners); "Noah Owner" is a person."""
    data = team({"ann": 20, "bob": 22, "cid": 19, "dan": 21, "Без ответственного": 2, "Noah Owner": 45})
    item = only(detect(data, SPEC, NOW))
    assert named(item, "over") == ["Noah Owner"] and named(item, "under") == []
    loads = item.facts["metrics"]["open_deals"]["loads"]
    assert {r["manager_id"] for r in loads} == {"ann", "bob", "cid", "dan", "Noah Owner"}
    moves = item.facts["plan"]["open_deals"]
    assert moves and all("Без ответственного" not in (x["from_manager_id"], x["to_manager_id"]) for x in moves)
    assert detect(team({"ann": 20, "bob": 22, "cid": 19, "dan": 21, "Unassigned": 60}), SPEC, NOW) == []


def test_equal_loads_with_ordinary_noise_stay_silent():
    assert detect(team({"a": 18, "b": 22, "c": 20, "d": 25, "e": 16, "f": 21}), SPEC, NOW) == []


def test_outside_the_band_but_too_few_deals_to_tell_is_silent():
    # 1 deal against 3, 3, 3: ratio 0.33, but four deals cannot show an imbalance.
    assert detect(team({"a": 1, "b": 3, "c": 3, "d": 3}), SPEC, NOW) == []


def test_significant_but_inside_the_band_is_silent():
    # 130 vs 100: surely not chance at this volume, but 1.3x is inside the band.
    assert detect(team({"a": 130, "b": 100, "c": 100, "d": 100}), SPEC, NOW) == []


def test_teams_of_fewer_than_three_active_managers_are_not_compared():
    assert detect(team({"a": 5, "b": 60, "c": 1}, inactive={"c"}), SPEC, NOW) == []


def test_each_team_is_compared_with_itself():
    counts = {"a1": 20, "a2": 21, "a3": 19, "b1": 60, "b2": 62, "b3": 58, "b4": 10}
    teams = {m: "A" if m.startswith("a") else "B" for m in counts}
    item = only(detect(team(counts, team_of=teams), SPEC, NOW))
    assert item.facts["team"] == "B" and named(item) == ["b4"]
    assert {r["manager_id"] for r in item.facts["metrics"]["open_deals"]["loads"]} == {"b1", "b2", "b3", "b4"}


def test_region_is_the_fallback_team():
    item = only(detect(team({"a": 20, "b": 21, "c": 19, "d": 60}, region_only=True), SPEC, NOW))
    assert named(item) == ["d"] and item.facts["team"] == "Almaty"


def _leads(per_manager: dict[str, int], *, spread_days=20):
    """`per_manager[m]` leads in the last `spread_days` days, and as many the 28-day window
    before (the persistence check looks there): routing that has been so for two windows."""
    out = []
    for m, k in per_manager.items():
        out += [{"lead_id": f"L{m}{j}", "manager_id": m, "created_at": day(1 + j % spread_days)} for j in range(k)]
        out += [{"lead_id": f"P{m}{j}", "manager_id": m, "created_at": day(29 + j % spread_days)} for j in range(k)]
    return out


def test_new_leads_under_is_routed_from_the_busiest_without_moving_deals():
    leads = _leads({"a": 30, "b": 28, "c": 31, "d": 5})
    # old leads (outside the 28-day window and the one before it) and unassigned ones never count
    leads += [{"lead_id": f"old{j}", "manager_id": "d", "created_at": day(60)} for j in range(50)]
    leads += [{"lead_id": f"free{j}", "manager_id": None, "created_at": day(2)} for j in range(50)]
    item = only(detect(team({"a": 20, "b": 20, "c": 20, "d": 20}, leads=leads), SPEC, NOW))
    assert named(item) == ["d"] and item.facts["under"][0]["metric"] == "new_leads"
    assert item.facts["under"][0]["value"] == 5
    assert item.facts["metrics"]["new_leads"]["window_days"] == 28
    assert not item.facts["plan"].get("open_deals")
    gave, took, fair = check_plan(item, "new_leads")
    # only what the under-loaded needs, as far as the others' excess above the fair share goes
    assert set(took) == {"d"} and took["d"] == min(int(fair - 5), sum(gave.values()))
    assert took["d"] + 5 >= 0.6 * item.facts["metrics"]["new_leads"]["team_median"]  # back inside the band
    assert sorted(item.evidence["lead_ids"]) == sorted(f"Ld{j}" for j in range(5))


@pytest.mark.parametrize("earlier_days, raised", [(4, False), (20, True)])
def test_a_lead_imbalance_a_window_back_needs_more_than_a_few_days_of_leads(earlier_days, raised):
    """d got a sixth of the leads this window; a window back the export's leads cover only
    `earlier_days` days (they begin then), in which d also had the fewest. 4 days (d 1 lead
    against 5 each) is noise that "persisted" a chance dip of a 48-person company; 20 days of the
    same routing is the effect shown in fresh data."""
    leads = [{"lead_id": f"L{m}{j}", "manager_id": m, "created_at": day(1 + j % 20)}
             for m, k in {"a": 30, "b": 28, "c": 31, "d": 5}.items() for j in range(k)]
    per = 5 * earlier_days // 4  # the same daily rate as the 4-day case: 5 leads in 4 days
    leads += [{"lead_id": f"P{m}{j}", "manager_id": m, "created_at": day(29 + j * earlier_days / k)}
              for m, k in {"a": per, "b": per, "c": per, "d": per // 5}.items() for j in range(k)]
    found = detect(team({"a": 20, "b": 20, "c": 20, "d": 20}, leads=leads), SPEC, NOW)
    assert (named(only(found)) == ["d"]) if raised else found == []


def test_one_item_covers_both_metrics_and_both_sides():
    """The finding of issue 9: one imbalance used to be four items with the same advice."""
    leads = _leads({"ann": 30, "bob": 28, "cid": 31, "dan": 29, "over": 90})
    leads += [{"lead_id": f"Lu{j}", "manager_id": "under", "created_at": day(5 + 10 * j + w)} for j in range(3)
              for w in (0, 28)]
    data = team({"ann": 20, "bob": 22, "cid": 19, "dan": 21, "over": 50, "under": 3}, leads=leads)
    item = only(detect(data, SPEC, NOW))
    assert named(item, "over", "open_deals") == ["over"] and named(item, "over", "new_leads") == ["over"]
    assert named(item, "under", "open_deals") == ["under"] and named(item, "under", "new_leads") == ["under"]
    for metric in ("open_deals", "new_leads"):
        gave, took, _ = check_plan(item, metric)
        assert "over" in gave and "under" in took
    assert item.facts["tests"] == 12  # six compared people x two metrics


def test_without_leads_only_open_deals_are_compared():
    data = team({"a": 20, "b": 21, "c": 19, "d": 60})
    assert data.leads is None
    item = only(detect(data, SPEC, NOW))
    assert set(item.facts["metrics"]) == {"open_deals"} and item.facts["tests"] == 4
    assert detect(data, ManagerLoadSpec(metrics=["new_leads"]), NOW) == []


def test_fingerprint_is_the_team_whatever_the_people_and_numbers():
    a = only(detect(team({"a": 20, "b": 21, "c": 19, "d": 60}), SPEC, NOW))
    b = only(detect(team({"a": 22, "b": 20, "c": 18, "d": 70, "e": 2}), SPEC, NOW + timedelta(days=1)))
    assert a.fingerprint == b.fingerprint and named(a) != named(b)
    other = only(detect(team({"a": 20, "b": 21, "c": 19, "d": 60}, team_of=dict.fromkeys("abcd", "Astana")), SPEC, NOW))
    assert other.fingerprint != a.fingerprint


def test_spec_validation():
    with pytest.raises(ValidationError, match="metrics"):
        ManagerLoadSpec(metrics=["open_deal"])
    with pytest.raises(ValidationError, match="fallback_group_by"):
        ManagerLoadSpec(fallback_group_by="city")
    with pytest.raises(ValidationError):
        ManagerLoadSpec(band_high=0.9)
    with pytest.raises(ValidationError, match="group_by"):
        ManagerLoadSpec(group_by="department")
    with pytest.raises(ValidationError, match="persist_days"):
        ManagerLoadSpec(persist_days=-1)
    with pytest.raises(ValidationError, match="active_window_days"):
        ManagerLoadSpec(active_window_days=0)


def test_no_deals_at_all_says_nothing():
    assert detect(team({"a": 0, "b": 0, "c": 0}), SPEC, NOW) == []


# --- who is active ----------------------------------------------------------------------

def test_managers_marked_inactive_are_never_named_counted_or_given_work():
    data = team({"ann": 20, "bob": 22, "cid": 19, "dan": 21, "over": 50, "x1": 0, "x2": 0}, inactive={"x1", "x2"})
    item = only(detect(data, SPEC, NOW))
    everyone = {r["manager_id"] for r in item.facts["metrics"]["open_deals"]["loads"]}
    assert everyone == {"ann", "bob", "cid", "dan", "over"} and item.facts["team_size"] == 5
    assert not {"x1", "x2"} & {x["to_manager_id"] for x in item.facts["plan"]["open_deals"]}


@pytest.mark.parametrize("normal", [10, 5])
def test_agents_who_never_had_a_deal_do_not_drag_the_median(normal):
    """Issue 9: five agents with no deals were compared as teammates with 0, got "no open deals"
    every week and pulled the median down, so a manager at the typical load was called 2x
    overloaded. Without the `active` column they are excluded by having done nothing."""
    counts = {f"m{k}": 18 + k % 5 for k in range(normal)} | {f"agent{k}": 0 for k in range(5)}
    data = team(counts)
    assert detect(data, SPEC, NOW) == []
    # the old rule (everyone in the managers file is a teammate) did flag: the test can fail
    zeros = ManagerLoadSpec(active_window_days=730)
    with_all = team(counts, extra_deals=[{"deal_id": f"agent{k}-old", "manager_id": f"agent{k}", "stage": "new",
                                          "status": "lost", "created_at": day(700), "closed_at": day(699)}
                                         for k in range(5)])
    assert detect(with_all, zeros, NOW) != []
    assert sorted(i for i, _ in not_compared(data, SPEC, NOW)) == [f"agent{k}" for k in range(5)]


def test_agents_who_log_calls_but_never_owned_a_deal_are_not_compared_on_deals():
    counts = {f"m{k}": 18 + k % 5 for k in range(5)} | {f"agent{k}": 0 for k in range(5)}
    calls = frame("activities", [{"activity_id": f"A{k}", "manager_id": f"agent{k}", "type": "call", "done_at": day(2 + k)}
                                 for k in range(5)])
    data = dataclasses.replace(team(counts), activities=calls)
    assert not_compared(data, SPEC, NOW) == []  # they work, so check-config does not list them...
    assert detect(data, SPEC, NOW) == []  # ...but they have no deals to be compared on
    # one of them got a single deal 35 days ago: since then a deal-holder like the others
    # (and so, under-loaded a window ago too, when the persistence check looks)
    with_deal = team(counts, extra_deals=[{"deal_id": "first", "manager_id": "agent0", "stage": "new", "status": "open",
                                           "created_at": day(35)}])
    item = only(detect(dataclasses.replace(with_deal, activities=calls), SPEC, NOW))
    assert named(item, "under") == ["agent0"] and item.facts["team_size"] == 6


def test_a_manager_whose_last_deal_is_old_is_not_compared_even_with_open_deals():
    # "left" still owns 60 deals opened 200 days ago and did nothing since: not a teammate.
    data = team({"ann": 20, "bob": 22, "cid": 19, "left": 60, "under": 2}, opened_days_ago={"left": 200})
    deals = data.deals[~((data.deals["manager_id"] == "left") & (data.deals["status"] == "won"))]
    data = dataclasses.replace(data, deals=deals.reset_index(drop=True))
    found = detect(data, SPEC, NOW)
    for item in found:
        assert "left" not in {r["manager_id"] for r in item.facts["metrics"]["open_deals"]["loads"]}
        assert "left" not in named(item)
        assert "left" not in {x["from_manager_id"] for x in item.facts["plan"].get("open_deals", [])}
    assert [i for i, _ in not_compared(data, SPEC, NOW)] == ["left"]
    # the same manager with a recent activity counts again, and the deals they called about
    # are load again (30 days ago: a window ago they were already active, so the persistence
    # check sees them too); a call about no deal makes them a teammate with room, not their
    # old deals load
    acts = frame("activities", [{"activity_id": "A1", "manager_id": "left", "type": "call", "done_at": day(30)}])
    busy = dataclasses.replace(data, activities=acts)
    assert not_compared(busy, SPEC, NOW) == []
    assert "left" in named(only(detect(busy, SPEC, NOW)), "under")
    acts = frame("activities", [{"activity_id": f"A{j}", "manager_id": "left", "deal_id": f"left-{j}", "type": "call",
                                 "done_at": day(30)} for j in range(60)])
    busy = dataclasses.replace(data, activities=acts)
    assert "left" in named(only(detect(busy, SPEC, NOW)), "over")


def test_an_activity_without_a_manager_counts_for_the_deals_owner():
    data = team({"ann": 20, "bob": 22, "cid": 19, "left": 60}, opened_days_ago={"left": 200})
    deals = data.deals[~((data.deals["manager_id"] == "left") & (data.deals["status"] == "won"))].reset_index(drop=True)
    acts = frame("activities", [{"activity_id": "A1", "deal_id": "left-3", "type": "call", "done_at": day(5)}])
    data = dataclasses.replace(data, deals=deals, activities=acts)
    assert not_compared(data, SPEC, NOW) == []


def test_who_is_active_is_judged_as_of_the_replayed_day():
    # "new" joined 20 days ago (first deal then): a replay of 30 days ago must not count them.
    data = team({"ann": 20, "bob": 22, "cid": 19, "new": 3}, opened_days_ago={"new": 20})
    deals = data.deals[~((data.deals["manager_id"] == "new") & (data.deals["status"] == "won"))]
    data = dataclasses.replace(data, deals=deals.reset_index(drop=True))
    assert not_compared(data, SPEC, NOW) == []
    assert [i for i, _ in not_compared(data, SPEC, NOW - timedelta(days=30))] == ["new"]
    # ...and a replay of 100 days later sees nothing recent from anyone
    assert len(not_compared(data, SPEC, NOW + timedelta(days=100))) == 4


# --- statistics: the family and chance --------------------------------------------------

def test_the_fdr_family_is_every_comparison_made():
    leads = _leads({"ann": 30, "bob": 28, "cid": 31, "dan": 29, "eve": 33, "over": 60})
    data = team({"ann": 20, "bob": 22, "cid": 19, "dan": 21, "eve": 23, "over": 37, "x": 0}, leads=leads)
    spec = ManagerLoadSpec(persist_days=0)
    item = only(detect(data, spec, NOW))
    assert item.facts["tests"] == 12  # 6 compared (x never did anything) x 2 metrics, inside the band too
    # q-values are Benjamini-Hochberg over all 12 p-values, not over the ones outside the band
    p = []
    for metric in ("open_deals", "new_leads"):
        rows = item.facts["metrics"][metric]["loads"]
        med = item.facts["metrics"][metric]["team_median"]
        v = np.array([r["value"] for r in rows])
        c = np.array([r["capacity"] for r in rows])
        p += list(rate_vs_rest_pvalues(v, c, np.full(len(v), v.sum()), np.full(len(v), c.sum()),
                                       np.where(v / c >= med, "over", "under")))
    q = bh_qvalues(p)
    got = {(r["metric"], r["manager_id"]): r["q_value"] for r in item.facts["over"] + item.facts["under"]}
    for (metric, who), qv in got.items():
        rows = item.facts["metrics"][metric]["loads"]
        k = [r["manager_id"] for r in rows].index(who) + (0 if metric == "open_deals" else len(rows))
        assert qv == pytest.approx(q[k])
    assert min(q) < q[[r["manager_id"] for r in item.facts["metrics"]["open_deals"]["loads"]].index("over")] * 6


def random_team(seed: int):
    """8-12 managers; deals and leads routed to them uniformly at random for half a year."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 13))
    ids = [f"m{k:02d}" for k in range(n)]
    managers = [{"manager_id": m, "name": m, "team": "T"} for m in ids]
    n_deals = int(rng.integers(30, 60)) * n
    created = rng.uniform(0, 180, n_deals)
    duration = rng.exponential(45, n_deals)
    owner = rng.integers(0, n, n_deals)
    deals = []
    for k in range(n_deals):
        closed = created[k] - duration[k]
        deals.append({"deal_id": f"d{k}", "manager_id": ids[owner[k]], "stage": "new",
                      "status": "won" if closed > 0 else "open", "created_at": day(created[k]),
                      "closed_at": day(closed) if closed > 0 else None})
    n_leads = int(rng.integers(3, 8)) * n * 30
    lead_age = rng.uniform(0, 120, n_leads)
    lead_owner = rng.integers(0, n, n_leads)
    leads = [{"lead_id": f"L{k}", "manager_id": ids[lead_owner[k]], "created_at": day(lead_age[k])} for k in range(n_leads)]
    return make_data(managers=managers, deals=deals, leads=leads)


def test_randomly_routed_teams_stay_silent_over_many_seeds():
    noisy = 0
    for seed in range(30):
        state = prepare(random_team(seed), SPEC)
        for back in (0, 10, 20):
            assert detect_at(state, NOW - timedelta(days=back)) == [], f"seed {seed}, {back} days back"
        # without the persistence check a chance swing does sometimes pass band and test
        noisy += bool(detect_at(prepare(random_team(seed), ManagerLoadSpec(persist_days=0, fdr=0.5, band_high=1.3,
                                                                                      band_low=0.75)), NOW))
    assert noisy > 0  # the planted randomness is strong enough that the rules above matter


def routed_team(seed: int, size: int, tilt_days: float | None = None):
    """One team of `size`, 300 days of deals (about 20 a person a month, each open for an
    exponential 40 days) and leads (20 a person a month) routed uniformly at random; with
    `tilt_days`, from that many days ago on the first person gets 3x the share."""
    rng = np.random.default_rng(seed)
    ids = [f"m{k}" for k in range(size)]

    def owners(ages):
        w = np.ones((len(ages), size))
        if tilt_days is not None:
            w[ages < tilt_days, 0] = 3.0
        c = (w / w.sum(1, keepdims=True)).cumsum(1)
        return (rng.random(len(ages))[:, None] > c).sum(1)

    n = rng.poisson(20 * size * 300 / 30.4)
    age, dur = rng.uniform(0, 300, n), rng.exponential(40, n)
    own = owners(age)
    deals = [{"deal_id": f"d{k}", "manager_id": ids[own[k]], "stage": "new", "status": "won" if age[k] > dur[k] else "open",
              "created_at": day(age[k]), "closed_at": day(age[k] - dur[k]) if age[k] > dur[k] else None} for k in range(n)]
    nl = rng.poisson(20 * size * 300 / 30.4)
    la = rng.uniform(0, 300, nl)
    lo = owners(la)
    leads = [{"lead_id": f"L{k}", "manager_id": ids[lo[k]], "created_at": day(la[k])} for k in range(nl)]
    return make_data(managers=[{"manager_id": m, "name": m, "team": "T"} for m in ids], deals=deals, leads=leads)


def _replay(state, days):
    return [b for b in range(days, -1, -1) if detect_at(state, NOW - timedelta(days=b), with_evidence=False)]


@pytest.mark.slow
def test_a_daily_replay_of_randomly_routed_teams_is_almost_always_silent():
    """Replayed every day for 120 days, a randomly routed team used to get an item in about a
    third of companies (a week-old look at windows sharing three weeks, a stock that carries
    over); with the look one window back it is a few percent (measured: 2-7 of 100 per size)."""
    loud = [(size, seed) for size in (3, 5, 10) for seed in range(10)
            if _replay(prepare(routed_team(1000 * size + seed, size), SPEC), 120)]
    assert len(loud) <= 2, loud
    # a real 3x tilt in the same kind of team is raised, within about two months
    for size in (3, 5, 10):
        for seed in range(3):
            hits = _replay(prepare(routed_team(5000 + seed, size, tilt_days=100), SPEC), 100)
            assert hits and 100 - hits[0] <= 60, (size, seed, hits[:1])


# --- persistence ------------------------------------------------------------------------

@pytest.mark.parametrize("days_ago, raised", [(2, False), (6, False), (8, False), (20, False), (30, True), (45, True)])
def test_an_imbalance_is_raised_only_once_it_lasted_a_window(days_ago, raised):
    # "over" got 35 extra deals `days_ago` days ago on top of a normal 20: flagged a week ago
    # from day 8 on, but a window (28 days) ago it was ordinary until day 29.
    extra = [{"deal_id": f"x{k}", "manager_id": "over", "stage": "new", "status": "open", "created_at": day(days_ago)}
             for k in range(35)]
    data = team({"ann": 20, "bob": 22, "cid": 19, "dan": 21, "over": 20}, extra_deals=extra)
    found = detect(data, SPEC, NOW)
    assert (named(only(found)) == ["over"]) if raised else found == []
    # with the check off it is raised at once
    assert named(only(detect(data, ManagerLoadSpec(persist_days=0), NOW))) == ["over"]


def test_a_person_who_switched_sides_within_the_week_is_not_raised():
    # "flip" had 55 open deals until 3 days ago, then closed all but 3 of them.
    data = team({"ann": 20, "bob": 22, "cid": 19, "dan": 21, "flip": 55})
    deals = data.deals.copy()
    closing = (deals["manager_id"] == "flip") & (deals["status"] == "open") & \
        deals["deal_id"].str.extract(r"-(\d+)$")[0].astype(float).ge(3)
    deals.loc[closing, "status"] = "won"
    deals.loc[closing, "closed_at"] = pd.Timestamp(day(3))
    data = dataclasses.replace(data, deals=deals)
    assert detect(data, ManagerLoadSpec(persist_days=0), NOW) != []  # under today
    assert detect(data, SPEC, NOW) == []  # but over a week ago: not the same imbalance


def test_a_past_day_counts_deals_open_on_that_day():
    # "over" had 45 open deals a month ago; 40 of them were closed since (7 days ago).
    data = team({"ann": 20, "bob": 22, "cid": 19, "over": 45})
    deals = data.deals.copy()
    closed_recently = (deals["manager_id"] == "over") & (deals["status"] == "open") & \
        deals["deal_id"].str.extract(r"-(\d+)$")[0].astype(float).lt(40)
    deals.loc[closed_recently, "status"] = "won"
    deals.loc[closed_recently, "closed_at"] = pd.Timestamp(day(7))
    data = dataclasses.replace(data, deals=deals)
    today = only(detect(data, ManagerLoadSpec(persist_days=0), NOW))
    assert [(r["manager_id"], r["value"]) for r in today.facts["under"]] == [("over", 5)]
    assert detect(data, SPEC, NOW) == []  # over-loaded a window ago: not a lasting under-load
    past = only(detect(data, SPEC, NOW - timedelta(days=8)))
    assert [(r["manager_id"], r["value"]) for r in past.facts["over"]] == [("over", 45)]


# --- plans ------------------------------------------------------------------------------

def test_two_over_two_under_get_one_coordinated_plan():
    data = team({"a": 20, "b": 22, "c": 19, "d": 21, "e": 20, "o1": 60, "o2": 45, "u1": 3, "u2": 5})
    item = only(detect(data, SPEC, NOW))
    assert named(item, "over") == ["o1", "o2"] and named(item, "under") == ["u1", "u2"]
    gave, took, fair = check_plan(item, "open_deals")
    assert set(gave) == {"o1", "o2"} and {"u1", "u2"} <= set(took)
    loads = {r["manager_id"]: r for r in item.facts["metrics"]["open_deals"]["loads"]}
    excess = sum(int(loads[g]["value"] - fair) for g in ("o1", "o2"))
    room = sum(max(int(fair * r["capacity"] - r["value"]), 0) for k, r in loads.items() if k not in ("o1", "o2"))
    assert sum(gave.values()) == min(excess, room)
    # nobody is told to hand over more than they hold (the "85 deals, hand over 120" finding)
    assert all(n <= loads[g]["value"] for g, n in gave.items())


def test_only_under_loaded_on_deals_takes_from_the_busiest_teammates():
    data = team({"a": 20, "b": 22, "c": 19, "d": 21, "e": 25, "u": 2})
    item = only(detect(data, SPEC, NOW))
    assert named(item) == ["u"] and item.facts["over"] == []
    gave, took, fair = check_plan(item, "open_deals")
    loads = item.facts["metrics"]["open_deals"]["loads"]
    excess = sum(max(int(r["value"] - fair * r["capacity"]), 0) for r in loads)
    assert set(took) == {"u"} and took["u"] == min(int(fair - 2), excess) == 12
    assert 2 + took["u"] >= 0.6 * item.facts["metrics"]["open_deals"]["team_median"]  # back inside the band
    assert "e" in gave  # the busiest gives first


def test_the_chart_colours_everyone_the_item_names():
    from messages.charts import chart_for

    data = team({"a": 20, "b": 22, "c": 19, "d": 21, "e": 20, "o1": 60, "u1": 3})
    item = only(detect(data, SPEC, NOW))
    roles = {r["manager_id"]: r["role"] for r in item.facts["metrics"]["open_deals"]["loads"]}
    plan = item.facts["plan"]["open_deals"]
    people = {x["from_manager_id"] for x in plan} | {x["to_manager_id"] for x in plan} | set(named(item))
    assert {m for m, r in roles.items() if r} == people
    assert chart_for(item, "ru")[:8] == b"\x89PNG\r\n\x1a\n"


# --- invariance and the backtest path ---------------------------------------------------

BASE = team({"ann": 20, "bob": 22, "cid": 19, "half": 10, "over": 45, "under": 4, "gone": 1},
            capacity={"half": 0.5}, inactive={"gone"})


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=hs.integers(0, 2**32 - 1), suffix=hs.sampled_from(["_x", "-2", "Ж"]))
def test_shuffling_and_renaming_changes_nothing_but_ids(seed, suffix):
    rng = np.random.default_rng(seed)
    base = detect(BASE, SPEC, NOW)
    managers = BASE.managers.sample(frac=1, random_state=rng).reset_index(drop=True)
    deals = BASE.deals.sample(frac=1, random_state=rng).reset_index(drop=True)
    managers["manager_id"] = managers["manager_id"] + suffix
    deals["manager_id"] = deals["manager_id"] + suffix
    deals["deal_id"] = deals["deal_id"] + suffix
    got = detect(dataclasses.replace(BASE, managers=managers, deals=deals), SPEC, NOW)

    def strip(ins, sfx):
        out = []
        for i in ins:
            d = i.to_dict()
            d.pop("fingerprint")
            f = d["facts"]
            for row in f["over"] + f["under"] + [r for m in f["metrics"].values() for r in m["loads"]]:
                row["manager_id"] = row["manager_id"].removesuffix(sfx)
            for moves in f["plan"].values():
                for x in moves:
                    x["from_manager_id"] = x["from_manager_id"].removesuffix(sfx)
                    x["to_manager_id"] = x["to_manager_id"].removesuffix(sfx)
            d["evidence"] = {k: sorted(x.removesuffix(sfx) for x in v) for k, v in d["evidence"].items()}
            out.append(d)
        return out

    assert strip(got, suffix) == strip(base, "")


def test_backtest_path_prepare_once_then_detect_at_matches_detect_day_by_day():
    """The backtest prepares once and replays days; every day must equal a plain scan."""
    leads = _leads({"ann": 30, "bob": 28, "cid": 31, "over": 90, "under": 2}, spread_days=50)
    leads += [{"lead_id": f"free{j}", "manager_id": None, "created_at": day(2)} for j in range(5)]
    data = team({"ann": 20, "bob": 22, "cid": 19, "over": 45, "under": 4}, leads=leads)
    deals = data.deals.copy()  # "over" closes most of its deals over the month, so the answer changes
    closing = (deals["manager_id"] == "over") & (deals["status"] == "open")
    deals.loc[closing, "status"] = "lost"
    deals.loc[closing, "closed_at"] = [pd.Timestamp(day(j % 35)) for j in range(int(closing.sum()))]
    data = dataclasses.replace(data, deals=deals)
    state = prepare(data, SPEC)
    answers = set()
    for n in list(range(0, 60, 1)):  # daily, as the backtest replays: the cached week-earlier days are reused
        now = NOW - timedelta(days=60 - n)
        fast = [i.to_dict() for i in detect_at(state, now)]
        assert fast == [i.to_dict() for i in detect(data, SPEC, now)]
        answers.add(tuple((d["subject"]["team"], tuple(r["manager_id"] for r in d["facts"]["over"] + d["facts"]["under"]))
                          for d in fast))
        # the backtest asks without evidence ids: everything else is the same
        assert [i.to_dict() for i in detect_at(state, now, with_evidence=False)] == \
            [d | {"evidence": {k: [] for k in d["evidence"]}} for d in fast]
    assert len(answers) > 2  # the days differ, so the comparison is not vacuous
    assert prepare(team({"a": 5, "b": 60}), SPEC) is None  # no team of three: nothing to compare


def test_deals_nobody_touched_for_months_are_not_load():
    """Real exports keep years of open deals nobody works on (amoCRM, Bitrix24). Counted as load
    they made the veterans of a randomly routed team "over-loaded" and a new hire, who has none
    yet, "under-loaded" (a Bitrix24-style export: 18 vs a median of 34, "hand over 12 deals",
    while the deals touched in the last 90 days were 14 vs 19). Only deals with a touch in the
    last active_window_days count: each veteran's 30 abandoned deals do not."""
    live = {"ann": 20, "bob": 22, "cid": 19, "dan": 21, "new": 18}
    abandoned = [{"deal_id": f"{m}-old{j}", "manager_id": m, "stage": "new", "status": "open", "created_at": day(300 + j)}
                 for m in ("ann", "bob", "cid", "dan") for j in range(30)]
    data = team(live, extra_deals=abandoned)
    assert detect(data, SPEC, NOW) == []
    # the same deals touched last month are load: then "new" is under-loaded, and said so
    history = frame("stage_history", [{"deal_id": d["deal_id"], "stage": "new", "entered_at": day(35)} for d in abandoned])
    worked = dataclasses.replace(data, stage_history=history)
    assert named(only(detect(worked, SPEC, NOW)), "under") == ["new"]
    # a replay that prepares once agrees with the scan, day by day
    state = prepare(worked, SPEC)
    for back in (0, 10, 40):
        then = NOW - timedelta(days=back)
        assert [i.to_dict() for i in detect_at(state, then)] == [i.to_dict() for i in detect(worked, SPEC, then)], back

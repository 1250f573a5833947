"""conversion_drop's attribution on random companies (tests/detectors/_builders_conv.py):
the four kinds of planted drop, a segment's own drop, noise, derived history, an inserted
stage, the learned horizon and the headline test's independence from the drill-down.

Every planted scenario runs on several seeds: the claim is about the mechanism, not one sample.
Drops are planted at the first stage ("new"), on deals that entered it in the last 50 days, so
the recent cohort (which ends one learned horizon, ~2 weeks, before NOW) is all in the drop.
"""
from __future__ import annotations

from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import pytest

from _builders_a import MANAGERS, NOW, STAGES, make_data, pipeline, spread
from _builders_conv import company
from detectors import run_detectors
from detectors.conversion_drop import (
    MIX_CONFIRM_P, ConversionDropSpec, Counts, _as_before_lr, _interaction_pvalues, _learn_horizon, _mix_newest,
    detect,
)
from detectors.stats import NS_PER_DAY
from detectors.working_hours import WorkCalendar

# The synthetic companies here work every calendar day, holidays included (their delays are
# calendar days), so they are measured on a clock without days off, as their calendar says.
_PLAIN = WorkCalendar(country=None)


def _spec(**kw) -> ConversionDropSpec:
    return ConversionDropSpec(**({"calendar": _PLAIN} | kw))


SPEC = _spec()
# How a drop is worded and attributed, with the newest deals' confirmation switched off (it is
# tested on its own below): a confirmation that chance withholds would hide what is asserted.
WORDING = _spec(confirm_p=1.0)
SEEDS = (1, 2, 3)
OTHERS = np.array(["web", "referral", "partner"])


def at_new(insights):
    """The insights about the planted stage pair (new -> qualified)."""
    return [i for i in insights if i.subject.get("from_stage") == "new"]


def drivers(insight):
    return [(d["dimension"], d["segment"]) for d in insight.facts["drivers"]]


def uniform(s, age, src, mgr, reg):
    return np.where((s == 0) & (age < 50), 0.42, 0.6)


def proportional(s, age, src, mgr, reg):
    base = np.select([src == "web", src == "referral"], [0.75, 0.5], 0.3)
    return np.where((s == 0) & (age < 50), base * 0.7, base)


def web_only(s, age, src, mgr, reg):
    return np.where((s == 0) & (age < 50) & (src == "web"), 0.15, 0.6)


def expo_converts_worse(s, age, src, mgr, reg):
    return np.where((s == 0) & (src == "expo"), 0.15, 0.6)


def more_expo_lately(age, rng):
    expo = rng.random(len(age)) < np.where(age < 60, 0.45, 0.1)
    return np.where(expo, "expo", rng.choice(OTHERS, size=len(age)))


def m2_works_web(src, rng):
    """Boris (m2) gets 60% of the web deals and a fifth of the others."""
    web = rng.choice(np.array(["m2", "m2", "m2", "m1", "m3"]), size=len(src))
    rest = rng.choice(np.array(["m1", "m3", "m2", "m1", "m3"]), size=len(src))
    return np.where(src == "web", web, rest)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("rate", [uniform, proportional], ids=["same-points", "same-ratio"])
def test_a_uniform_drop_names_no_driver(seed, rate):
    found = at_new(detect(company(seed, rate), SPEC, NOW))
    assert len(found) == 1
    f = found[0].facts
    assert f["kind"] == "drop" and f["drivers"] == []
    assert f["segments_checked"] == ["source", "manager", "region"]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_drop_confined_to_one_source_names_only_that_source(seed):
    found = at_new(detect(company(seed, web_only), SPEC, NOW))
    assert len(found) == 1
    i = found[0]
    if i.facts["kind"] == "segment_drop":  # the overall rate held: the source on its own
        assert i.subject["dimension"] == "source" and i.subject["segment"] == "web"
    else:
        assert drivers(i) == [("source", "web")]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_confounded_manager_is_not_blamed(seed):
    """Boris simply had more web deals: his rate fell, but only the source drives it."""
    data = company(seed, web_only, managers=m2_works_web)
    m2 = data.deals["manager_id"] == "m2"
    assert (data.deals.loc[m2, "source"] == "web").mean() > 0.5  # the trap is set
    found = at_new(detect(data, SPEC, NOW))
    assert len(found) == 1
    i = found[0]
    if i.facts["kind"] == "segment_drop":
        assert (i.subject["dimension"], i.subject["segment"]) == ("source", "web")
    else:
        assert drivers(i) == [("source", "web")]


def four_sources(age, rng):
    return rng.choice(np.array(["web", "referral", "partner", "expo"]), size=len(age))


@pytest.mark.parametrize("seed", SEEDS)
def test_two_sources_falling_are_both_named(seed):
    """web and referral both fall 60% -> 15%, partner and expo hold: after removing the first
    driver the rest still fell (the other one), so it is a real second driver. The change starts
    with the recent cohort (entries of the last ~44 days; a step inside the baseline would widen
    its measured overdispersion and cost the remainder's test its power: with n=3000 and the
    step at 50 days one seed in four names only one of the two)."""
    def two_fall(s, age, src, mgr, reg):
        return np.where((s == 0) & (age < 44) & ((src == "web") | (src == "referral")), 0.15, 0.6)

    found = at_new(detect(company(seed, two_fall, sources=four_sources, n=4500), SPEC, NOW))
    assert [i.facts["kind"] for i in found] == ["drop"]
    assert sorted(drivers(found[0])) == [("source", "referral"), ("source", "web")]


@pytest.mark.parametrize("seed", SEEDS)
def test_no_second_driver_when_the_rest_rose(seed):
    """web falls 60% -> 15%; outside web, Boris (m2) dips to 40% while the others rise to 72%,
    so the deals outside web converted a little better than before. Nothing is left to explain
    after web: Boris is not named, though he stands out against the rising others."""
    def web_falls_rest_rises(s, age, src, mgr, reg):
        later = np.where(src == "web", 0.15, np.where(mgr == "m2", 0.4, 0.72))
        return np.where((s == 0) & (age < 50), later, 0.6)

    found = at_new(detect(company(seed, web_falls_rest_rises, n=6000), SPEC, NOW))
    assert [i.facts["kind"] for i in found] == ["drop"]
    assert drivers(found[0]) == [("source", "web")]


def test_a_mix_shift_is_worded_as_such_and_names_nobody_falling():
    """Expo always converts at 15%, the others at 60%; lately 45% of deals come from expo
    instead of 10%. No source's rate changed."""
    kinds = []
    for seed in SEEDS + (4, 5):
        found = at_new(detect(company(seed, expo_converts_worse, sources=more_expo_lately), WORDING, NOW))
        assert len(found) == 1
        i = found[0]
        f = i.facts
        kinds.append(f["kind"])
        assert f["drivers"] == []  # nobody is said to be falling
        mix = f["mix"]
        assert (mix["dimension"], mix["segment"]) == ("source", "expo")
        assert mix["recent_share"] > mix["baseline_share"] + 0.2 and mix["segment_rate"] < 0.25
        assert mix["rate_at_baseline_mix"] > f["recent_rate"] + 0.05
        if f["kind"] == "mix_shift":
            assert i.subject["kind"] == "mix_shift"
            assert mix["rate_at_baseline_mix"] == pytest.approx(f["baseline_rate"], abs=0.06)
        else:  # a sample where the other sources also dipped significantly: a drop, mix as context
            assert f["kind"] == "drop" and mix["share_of_drop"] >= 0.25
    assert kinds.count("mix_shift") >= 4


def test_a_lasting_mix_shift_at_small_volume_is_confirmed_by_where_the_newest_deals_come_from():
    """The expo mix shift at 150 deals a month: the newest deals are too few and too young for
    their moves to confirm it (p 0.2-0.5 on some seeds), but 45% of them come from expo, as in
    the recent cohort. Wherever the shift is found without any confirmation, it is found with
    it, and some only through the newest deals' mix."""
    by_mix = 0
    for seed in range(1, 9):
        data = company(seed, expo_converts_worse, sources=more_expo_lately, n=1200)
        unconfirmed = [i.facts["kind"] for i in at_new(detect(data, WORDING, NOW))]
        found = at_new(detect(data, SPEC, NOW))
        assert [i.facts["kind"] for i in found] == unconfirmed
        for i in found:
            mix = i.facts["newest"].get("mix")
            if mix is not None:  # the moves did not confirm it: the mix did, at each look
                by_mix += 1
                assert mix["rate_at_their_mix"] < mix["baseline_rate"] - 0.05
                assert all(x["p_value"] <= MIX_CONFIRM_P for x in [mix, *mix.get("weeks_before", [])])
    assert by_mix >= 2


def expo_lately_then_back(age, rng):
    """45% of deals from expo for entries 14-42 days old, 10% before and since."""
    expo = rng.random(len(age)) < np.where((age >= 14) & (age < 42), 0.45, 0.1)
    return np.where(expo, "expo", rng.choice(OTHERS, size=len(age)))


def test_a_mix_shift_that_is_over_is_not_said_on_the_strength_of_the_mix():
    """The same shift, but the deals of the last two weeks come from expo at 10% again: the
    recent cohort still shows it, the newest deals' mix does not, so it never confirms it (the
    one seed said is confirmed by its newest deals' moves, as before)."""
    trap = 0
    for seed in range(1, 9):
        data = company(seed, expo_converts_worse, sources=expo_lately_then_back, n=1200)
        trap += [i.facts["kind"] for i in at_new(detect(data, WORDING, NOW))] == ["mix_shift"]
        assert all("mix" not in i.facts["newest"] for i in at_new(detect(data, SPEC, NOW)))
    assert trap >= 4  # without confirmation, most seeds say a mix shift


def test_newest_deals_without_a_value_neither_confirm_nor_deny_a_mix_shift():
    """A CRM fills the source in later: 20 of 40 newest deals have none yet, and the baseline's
    deals without one (dropped early) moved on at 5%. The 20 with a source come as before
    (half web at 60%, half expo at 15%): nothing says the mix moved. When they all come from
    expo, it did."""
    def newest_from(codes):
        c = SimpleNamespace(entry=np.arange(len(codes)), codes={"source": np.asarray(codes)})
        base = Counts(np.array([60, 15, 5]), np.array([100, 100, 100]), np.zeros(3), np.zeros(3))
        return _mix_newest(SimpleNamespace(c=c, segs={"source": base}, hi=0), len(codes), "source")

    as_before = newest_from([-1] * 20 + [0, 1] * 10)
    assert as_before["deals"] == 20 and as_before["p_value"] > 0.3
    all_expo = newest_from([-1] * 20 + [1] * 20)
    assert all_expo["rate_at_their_mix"] == pytest.approx(0.15) and all_expo["p_value"] < MIX_CONFIRM_P


def test_the_same_fall_with_expo_failing_too_is_a_drop_not_a_mix_shift():
    def expo_worse_and_all_fall(s, age, src, mgr, reg):
        return expo_converts_worse(s, age, src, mgr, reg) * np.where((s == 0) & (age < 50), 0.6, 1.0)

    found = at_new(detect(company(1, expo_worse_and_all_fall, sources=more_expo_lately), SPEC, NOW))
    assert [i.facts["kind"] for i in found] == ["drop"]


def instagram_twelve_percent(age, rng):
    return np.where(rng.random(len(age)) < 0.12, "instagram", rng.choice(OTHERS, size=len(age)))


def instagram_falls(s, age, src, mgr, reg):
    return np.where((s == 0) & (src == "instagram"), np.where(age < 50, 0.12, 0.78), 0.6)


def test_one_segments_own_drop_is_reported_when_the_overall_holds():
    """The issue's case: one source at 12% of deals falls 70% -> 14% (46 -> 21 deals there;
    here ~21-23 recent deals against ~80 in the longer baseline); the company's rate barely
    moves. Reported on its own, with the rest's rates for contrast."""
    hits = 0
    for seed in (12, 22, 32):
        found = at_new(detect(company(seed, instagram_falls, sources=instagram_twelve_percent, n=1800), SPEC, NOW))
        kinds = [i.facts["kind"] for i in found]
        assert kinds in (["segment_drop"], ["drop"], [])
        if kinds == ["segment_drop"]:
            hits += 1
            i = found[0]
            assert (i.subject["dimension"], i.subject["segment"]) == ("source", "instagram")
            f = i.facts
            assert f["baseline_rate"] > 0.5 and f["recent_rate"] < 0.25
            assert 10 <= f["recent_n"] <= 40 and f["baseline_n"] >= 40
            assert f["rest_recent_rate"] > f["rest_baseline_rate"] - 0.1
            assert f["q_value"] <= SPEC.segment_fdr
        elif kinds == ["drop"]:  # chance pushed the company's rate down as well: a driver then
            assert drivers(found[0]) in ([("source", "instagram")], [])
    assert hits >= 2


def test_a_segments_collapse_is_never_a_mix_shift_nor_a_drop_naming_nobody():
    """The issue's case on 60 companies: when chance also pulls the company's rate down enough
    to be a drop, the drop is Instagram's (named as its driver), not "more deals come from
    referral" (a chance rise of a source's share while Instagram's fall left the within-source
    drop just under materiality: said on seed 35) nor a drop naming nobody (Instagram's
    interaction q 0.014 in the drivers' family of 9 on seed 13, while its own drop passed)."""
    said = Counter()
    for seed in range(1, 61):
        found = at_new(detect(company(seed, instagram_falls, sources=instagram_twelve_percent, n=1800), SPEC, NOW))
        for i in found:
            assert i.facts["kind"] in ("segment_drop", "drop"), (seed, i.facts["kind"])
            if i.facts["kind"] == "drop":
                assert drivers(i) == [("source", "instagram")], seed
            else:
                assert i.subject["segment"] == "instagram", seed
        said[bool(found)] += 1
    assert said[True] >= 57, said


def instagram_tenth(age, rng):
    return np.where(rng.random(len(age)) < 0.1, "instagram", rng.choice(OTHERS, size=len(age)))


def instagram_falls_others_dip(s, age, src, mgr, reg):
    """Instagram 70% -> 14%; every other source dips 60% -> 55% (not material on its own)."""
    recent = (s == 0) & (age < 50)
    return np.where(src == "instagram", np.where(recent, 0.14, 0.7), np.where(recent, 0.55, 0.6))


def test_a_segment_that_falls_while_the_rest_dips_a_little_is_still_found():
    """The segment-vs-rest test must not lose a segment's fall when the rest moved too. The
    z-tests it replaced judged ~17 recent Instagram deals (2-3 won) as if the segment's recent
    rate were its baseline less the rest's dip (~0.65): found on 7 of these 20 companies; the
    likelihood-ratio test (the four rates fitted under "the same drop"): 12. Nothing else named."""
    found, other = [], []
    for seed in range(1, 21):
        insights = at_new(detect(company(seed, instagram_falls_others_dip, sources=instagram_tenth, n=1500), SPEC, NOW))
        named = [i.subject.get("segment") for i in insights if i.facts["kind"] == "segment_drop"]
        named += [d["segment"] for i in insights for d in i.facts["drivers"]]
        found += [seed] if "instagram" in named else []
        other += [(seed, n) for n in named if n != "instagram"]
    assert other == []
    assert len(found) >= 10, found


def test_a_uniform_relative_drop_rarely_makes_a_segment_stand_out():
    """Segment 80% -> 40%, the rest 40% -> 20%: the same relative drop, so the segment is no
    driver (its bigger fall in points is the base's). Over 20,000 random samples of that
    truth the segment-vs-rest test is below 0.001 about 0.1% of the time, as a p-value should
    be; the z-tests it replaced said so 1% of the time (their log-ratio test took the
    segment's recent variance at the null rate but its observed log rate in the numerator)."""
    rng = np.random.default_rng(5)
    size = 20_000
    seg = Counts(rng.binomial(70, 0.8, size), np.full(size, 70), rng.binomial(22, 0.4, size), np.full(size, 22))
    rb, rr = rng.binomial(550, 0.4, size), rng.binomial(172, 0.2, size)
    total = Counts(seg.bx + rb, seg.bn + 550, seg.rx + rr, seg.rn + 172)
    p = _interaction_pvalues(seg, total)
    assert (p <= 0.001).mean() <= 0.002
    assert (p <= 0.01).mean() <= 0.013


def test_a_segment_drop_on_its_own_needs_a_headlines_sample():
    """The same fall on a smaller company: 19 recent Instagram deals, above the default floor
    min_segment_report_deals (10), so it is reported (confirmed by Instagram's newest deals);
    with the floor raised above the sample nothing is said, however small p is."""
    data = company(12, instagram_falls, sources=instagram_twelve_percent, n=1500)
    found = at_new(detect(data, SPEC, NOW))
    assert [(i.facts["kind"], i.subject["segment"], i.facts["recent_n"]) for i in found] == [("segment_drop", "instagram", 19)]
    newest = found[0].facts["newest"]
    assert newest["moved_on"] < newest["expected"]
    assert at_new(detect(data, _spec(min_segment_report_deals=20), NOW)) == []


def test_a_segments_newest_deals_end_its_dip_only_when_they_are_enough_to_tell():
    """A segment fell 68% -> 24% (77/114 -> 10/41). Its newest deals, each expected to have moved
    on by now with chance 0.5 at the baseline's pace, end the dip (a ratio of 1/clear_q for "as
    before" over "at the dip's pace") only when there are enough of them: three that all moved
    on cannot (planted drops have 3-8 newest deals at 250 a month), 11 of 20 do, 4 of 20 speak
    for the dip, and a swinging pipeline (overdispersion 2) needs more."""
    dip = Counts(np.array([77]), np.array([114]), np.array([10]), np.array([41]))
    lr = lambda moved, n, phi=1.0: _as_before_lr(dip, 0, np.arange(n) < moved, np.full(n, 0.5), phi)  # noqa: E731
    assert lr(3, 3) * SPEC.clear_q < 1
    assert lr(11, 20) * SPEC.clear_q >= 1
    assert lr(4, 20) < 1
    assert lr(11, 20, phi=2.0) * SPEC.clear_q < 1


def instagram_falls_lately(s, age, src, mgr, reg):
    """Instagram 75% -> 10% for the deals that entered in the last 35 days."""
    return np.where((s == 0) & (src == "instagram"), np.where(age < 35, 0.1, 0.75), 0.6)


def only_the_newest_instagram_deals_slow(s, age, src, mgr, reg):
    """Instagram 75% -> 10% only for deals that entered in the last 14 days (no tested cohort)."""
    return np.where((s == 0) & (src == "instagram"), np.where(age < 14, 0.1, 0.75), 0.6)


def test_a_segments_newest_deals_weigh_its_test_by_what_they_can_tell():
    """Each segment's p is divided by its newest deals' likelihood ratio (dip's pace over the
    baseline's, at most 10) before the family's correction. Two drops the rule before this
    (newest p <= confirm_p as a gate, family at fdr) missed: seed 12, a weak cohort (35/48 ->
    6/20, p 0.002: q above segment_fdr on its own) whose 14 newest deals all stayed put (6.8
    expected to move on), and seed 10, a strong cohort (p 0.00015) whose 8 newest deals are
    too few to confirm it (1 moved on, 1.8 expected, newest p 0.38) and no longer stop it."""
    for seed, moved, deals in ((12, 0, 14), (10, 1, 8)):
        data = company(seed, instagram_falls_lately, sources=instagram_twelve_percent, n=1300)
        found = at_new(detect(data, SPEC, NOW))
        assert [(i.facts["kind"], i.subject["segment"]) for i in found] == [("segment_drop", "instagram")], seed
        newest = found[0].facts["newest"]
        assert (newest["moved_on"], newest["deals"]) == (moved, deals)
        assert found[0].facts["q_value"] <= SPEC.segment_fdr
    # seed 12's cohorts alone (the newest deals switched off) are not enough
    weak = company(12, instagram_falls_lately, sources=instagram_twelve_percent, n=1300)
    assert at_new(detect(weak, WORDING, NOW)) == []


def test_newest_deals_that_slow_cannot_carry_a_segment_whose_cohorts_held():
    """The newest deals' ratio is capped: a segment whose last 14 days of deals stay put while
    both tested cohorts held is not reported on 20 companies (the weighing divides a p, it
    cannot make one)."""
    said = []
    for seed in range(1, 21):
        data = company(seed, only_the_newest_instagram_deals_slow, sources=instagram_twelve_percent, n=1300)
        said += [(seed, i.facts["kind"]) for i in detect(data, SPEC, NOW)]
    assert said == []


def test_a_segment_that_is_part_of_a_reported_drop_is_not_reported_again():
    found = at_new(detect(company(1, web_only, n=6000), SPEC, NOW))
    assert [i.facts["kind"] for i in found] == ["drop"]
    assert drivers(found[0]) == [("source", "web")]


def test_noise_stays_within_the_false_discovery_rate():
    """60 companies where nothing changes (sources convert differently, constantly); 20 of
    them without stage history.

    No segment is ever reported or blamed. The overall test of a stage pair alone fires on
    noise about as often as its Benjamini-Hochberg level allows (fdr = 0.05: one scan in 20);
    it cannot be stricter without losing the 9.9% -> 7.5% drop below (p about 0.008). The
    newest deals' confirmation, independent of the tested cohorts, cuts that to about
    fdr x confirm_p + clear_q (1.25%): measured 4 companies of 60 without it, 1 with it.
    """
    def steady(s, age, src, mgr, reg):
        return np.select([src == "web", src == "referral"], [0.75, 0.5], 0.3)

    companies = {seed: company(100 + seed, steady) for seed in range(40)}
    companies |= {-seed: company(300 + seed, steady, derived=True, delay=fast) for seed in range(1, 21)}
    alarms = {k: detect(c, SPEC, NOW) for k, c in companies.items()}
    found = [i for v in alarms.values() for i in v]
    assert [i.facts["kind"] for i in found if i.facts["kind"] != "drop"] == []
    assert [d for i in found for d in i.facts["drivers"]] == []
    assert sum(1 for v in alarms.values() if v) <= 2
    assert all(i.facts["q_value"] <= SPEC.clear_q or i.facts["newest"]["p_value"] <= SPEC.confirm_p for i in found)
    unconfirmed = {k: detect(c, WORDING, NOW) for k, c in companies.items()}
    assert sum(1 for v in unconfirmed.values() if v) >= 3  # what the confirmation spared


ONLY_THE_SPEC_DECIDES = _spec(clear_q=0.0)  # every drop needs the newest deals' confirmation


@pytest.mark.parametrize("seed", SEEDS)
def test_a_dip_of_the_recent_cohort_alone_is_not_reported(seed):
    """Deals that entered 14-42 days ago (the recent cohort: the learned horizon is ~14 days)
    moved on at 45% instead of 60%; those that entered since move on at 60% again. The cohort
    test sees a drop, the newest deals do not confirm it: a dip that is over is not news."""
    def dip(s, age, src, mgr, reg):
        return np.where((s == 0) & (age >= 14) & (age < 42), 0.45, 0.6)

    data = company(seed, dip)
    unconfirmed = at_new(detect(data, _spec(confirm_p=1.0), NOW))
    assert [i.facts["kind"] for i in unconfirmed] == ["drop"]  # the trap is set
    assert at_new(detect(data, ONLY_THE_SPEC_DECIDES, NOW)) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_a_lasting_drop_is_confirmed_by_the_newest_deals(seed):
    """The same 60% -> 45%, lasting to now: the deals that entered since the recent cohort
    moved on fewer times than the baseline's pace predicts, and the facts say so."""
    def lasting(s, age, src, mgr, reg):
        return np.where((s == 0) & (age < 42), 0.45, 0.6)

    found = at_new(detect(company(seed, lasting), ONLY_THE_SPEC_DECIDES, NOW))
    assert [i.facts["kind"] for i in found] == ["drop"]
    newest = found[0].facts["newest"]
    assert newest["deals"] > 100 and newest["moved_on"] < newest["expected"]
    assert newest["p_value"] <= ONLY_THE_SPEC_DECIDES.confirm_p
    assert newest["since"] > found[0].facts["recent_end"]  # the day after the recent cohort


def test_the_headline_test_does_not_depend_on_the_drill_down():
    """A real win-rate drop 9.9% -> 7.5% on ~3,700 / ~1,100 deals reaching the last stage,
    p about 0.01: it fires with segments and without, with the same q."""
    # the deterministic pipeline's deals win 3..23 days after reaching the last stage and the
    # learned horizon is ~21 days: 0.9 of the planted chances are won within it
    rate = lambda s, age, seg: 1.0 if s < 3 else (0.075 / 0.9 if age < 50 else 0.099 / 0.9)  # noqa: E731
    deals, history = pipeline(spread(8300, 205, 0), rate, managers=("m1", "m2", "m3"),
                              sources=("web", "referral", "partner", "expo", "instagram"))
    data = make_data(managers=MANAGERS, deals=deals, stage_history=history)
    with_segments = detect(data, SPEC, NOW)
    without = detect(data, _spec(segments=[]), NOW)
    assert [i.subject for i in with_segments] == [i.subject for i in without] == [{"from_stage": "contract", "to_stage": "won"}]
    a, b = with_segments[0].facts, without[0].facts
    assert 3400 <= a["baseline_n"] <= 3900 and 1000 <= a["recent_n"] <= 1250
    assert a["baseline_rate"] == pytest.approx(0.099, abs=0.006) and a["recent_rate"] == pytest.approx(0.075, abs=0.006)
    assert a["p_value"] > 0.002  # a modest signal ...
    assert a["q_value"] == b["q_value"] <= SPEC.fdr  # ... that segments do not dilute


def fast(s, rng, size):
    """Deals move on 1-6 days after entering a stage: won within about two weeks of creation."""
    return 1 + rng.gamma(2.0, 1.5, size)


@pytest.mark.parametrize("seed", SEEDS)
def test_derived_history_gives_a_won_conversion_insight(seed):
    """No stage history: deals created in the last 60 days qualify half as often, so half as
    many are won. Measured from outcomes (created_at cohorts, won via closed_at)."""
    def fewer_qualify(s, age, src, mgr, reg):
        return np.where(s == 0, np.where(age < 60, 0.3, 0.6), 0.8)

    data = company(seed, fewer_qualify, derived=True, delay=fast)
    found = detect(data, SPEC, NOW)
    assert [i.subject for i in found] == [{"cohort": "created", "to_stage": "won"}]
    f = found[0].facts
    assert f["basis"] == "created" and f["to_won"] and f["from_stage"] is None
    assert f["recent_rate"] < f["baseline_rate"] * 0.7
    assert f["horizon_source"] == "learned" and f["horizon_days"] < SPEC.max_horizon_days
    # the stage pairs are not measured, and the scan says so in one line
    assert any("stage-to-stage" in line for line in run_detectors(data, {}, NOW).partial["conversion_drop"])


def test_an_inserted_stage_is_progress_not_a_loss():
    """'proposal' is new: older deals went qualified -> contract directly, recent ones pass
    through proposal. Skipping it is progress; a stage with no baseline entries has no drop."""
    old, old_h = pipeline(spread(700, 200, 45), lambda s, age, seg: 0.6, stages=("new", "qualified", "contract"))
    new, new_h = pipeline(spread(250, 45, 0), lambda s, age, seg: 0.6, stages=tuple(STAGES), id_prefix="e")
    data = make_data(managers=MANAGERS, deals=old + new, stage_history=old_h + new_h, stages=STAGES)
    baseline_proposals = data.stage_history[(data.stage_history["stage"] == "proposal")
                                            & (data.stage_history["entered_at"] < NOW - timedelta(days=60))]
    assert baseline_proposals.empty  # the stage did not exist then
    assert detect(data, _spec(min_deals=10, min_segment_deals=5), NOW) == []


def test_the_horizon_follows_how_fast_deals_move_and_shortens_the_delay():
    """Deals leave 'new' within 1-4 days: the horizon is the 7-day floor, and a drop that began
    25 days ago is seen now; with a fixed 30-day horizon the recent cohort would still be empty."""
    fast = lambda s, r, size: np.where(s == 0, r.uniform(1, 4, size), 2 + r.gamma(2.0, 3.0, size))  # noqa: E731

    def drop_lately(s, age, src, mgr, reg):
        return np.where((s == 0) & (age < 25), 0.3, 0.6)

    data = company(1, drop_lately, delay=fast, n=6000)
    found = at_new(detect(data, SPEC, NOW))
    assert len(found) == 1
    f = found[0].facts
    assert (f["horizon_days"], f["horizon_source"]) == (7, "min")
    assert f["recent_end"] == (NOW - timedelta(days=8)).date().isoformat()
    learned = at_new(detect(data, _spec(min_horizon_days=1), NOW))[0].facts
    assert learned["horizon_source"] == "learned" and 3 <= learned["horizon_days"] <= 4
    assert at_new(detect(data, _spec(min_horizon_days=30, max_horizon_days=30), NOW)) == []


def test_horizon_learning_is_censoring_aware():
    """Movers take 0-20 days evenly; most recent entries are still open. The deals that moved
    so far are mostly fast ones, so a naive quantile of their times is too short; the
    product-limit estimate is not."""
    rng = np.random.default_rng(0)
    n = 4000
    as_of = 1_000 * NS_PER_DAY
    entry = as_of - (rng.uniform(0, 60, n) * NS_PER_DAY).astype(np.int64)
    moves = rng.random(n) < 0.6
    moved_at = np.where(moves, entry + (rng.uniform(0, 20, n) * NS_PER_DAY).astype(np.int64), np.iinfo(np.int64).max)
    lost_at = np.where(~moves, entry + (rng.uniform(0, 10, n) * NS_PER_DAY).astype(np.int64), np.iinfo(np.int64).max)
    spec = _spec(min_horizon_days=1, max_horizon_days=60)
    days, source, movers = _learn_horizon(entry, moved_at, lost_at, as_of, spec)
    seen = moved_at <= as_of
    naive = np.quantile((moved_at[seen] - entry[seen]) / NS_PER_DAY, 0.9)
    assert source == "learned" and movers == seen.sum()
    assert days == pytest.approx(18, abs=1)
    assert naive < days - 1.5
    assert _learn_horizon(entry[:20], moved_at[:20], lost_at[:20], as_of, spec)[1] == "default"


def test_calendar_swings_are_not_read_as_a_drop(monkeypatch):
    """The share that qualifies swings week by week (campaigns, quarter ends) between ~30% and
    ~80% around a steady 55%. Binomial tests read a low month as a drop; dividing the counts by
    the baseline's measured overdispersion does not."""
    import detectors.conversion_drop as cd

    def swings(s, age, src, mgr, reg):
        return np.where(s == 0, 0.55 + 0.25 * np.sin(np.floor(age / 7) * 2.1), 0.6)

    companies = [company(400 + seed, swings) for seed in range(20)]
    corrected = [at_new(detect(c, SPEC, NOW)) for c in companies]
    assert sum(map(bool, corrected)) == 0
    # a real halving on top of the same swings is still found, and the facts say how noisy the baseline was
    def swings_then_half(s, age, src, mgr, reg):
        return swings(s, age, src, mgr, reg) * np.where((s == 0) & (age < 50), 0.5, 1.0)

    for seed in SEEDS:
        found = at_new(detect(company(400 + seed, swings_then_half), SPEC, NOW))
        assert [i.facts["kind"] for i in found] == ["drop"] and found[0].facts["overdispersion"] > 2
    monkeypatch.setattr(cd, "_dispersion", lambda *a: 1.0)
    naive = [at_new(detect(c, WORDING, NOW)) for c in companies]
    assert sum(map(bool, naive)) >= 4  # the trap is real


# --- daily scans: the newest deals' weekly looks back ------------------------------------------

def test_a_lasting_drop_shows_in_the_newest_deals_of_each_weekly_look():
    """The facts carry the looks a week and two weeks back (as those days' scans saw them):
    each confirmed the drop, and with persist_weeks = 0 none is taken."""
    def lasting(s, age, src, mgr, reg):
        return np.where((s == 0) & (age < 60), 0.42, 0.6)

    data = company(1, lasting)
    found = at_new(detect(data, ONLY_THE_SPEC_DECIDES, NOW))
    assert [i.facts["kind"] for i in found] == ["drop"]
    newest = found[0].facts["newest"]
    looks = newest["weeks_before"]
    assert len(looks) == SPEC.persist_weeks == 2
    assert [lk["since"] for lk in looks] < [newest["since"]] * 2  # each an earlier scan's newest deals
    assert all(lk["deals"] > 50 and lk["p_value"] <= SPEC.confirm_p for lk in looks)
    off = at_new(detect(data, _spec(clear_q=0.0, persist_weeks=0), NOW))
    assert "weeks_before" not in off[0].facts["newest"]


def _replay_days(data, spec, days: int) -> list[int]:
    """Days back (of `days`..0) on which a daily replay, prepared once as of its first day,
    raised an overall drop of the first stage pair."""
    from detectors.conversion_drop import detect_at, prepare
    from detectors.stats import ts_ns

    state = prepare(data, spec, as_of=ts_ns(NOW - timedelta(days=days)))
    return [b for b in range(days, -1, -1)
            if any(i.facts["kind"] != "segment_drop" for i in detect_at(state, NOW - timedelta(days=b), with_evidence=False))]


def steady(s, age, src, mgr, reg):
    return np.select([src == "web", src == "referral"], [0.75, 0.5], 0.3)


@pytest.mark.slow
def test_daily_replays_of_calm_companies_stay_silent_more_often_with_the_weekly_looks():
    """A daily scan tests windows that slide by a day, so a chance dip is tested on many days
    running and its newest deals confirm it on some of them. 40 calm companies replayed daily
    for 60 days: without the weekly looks (persist_weeks = 0) 8 of them raised an overall
    drop, on 29 days; with them 3, on 7 days, and 4 on 11 since a drop clear beyond doubt
    (q <= clear_q) needs its newest deals only to lean its way (p <= 2 x confirm_p: companies
    40-119 here 6 -> 7, 21 -> 26 days; 180 calm companies of benchmarks/seg_drop.py unchanged;
    3-5 more planted uniform and mix-shift drops found in 80)."""
    loud = {}
    for weeks in (0, 2):
        spec = _spec(persist_weeks=weeks)
        loud[weeks] = {seed: n for seed in range(40) if (n := len(_replay_days(company(3000 + seed, steady), spec, 60)))}
    assert len(loud[0]) >= 6, loud
    assert len(loud[2]) <= 4 and sum(loud[2].values()) <= 11, loud
    assert set(loud[2]) <= set(loud[0]), loud  # the looks only ever silence


@pytest.mark.slow
def test_the_weekly_looks_do_not_delay_a_lasting_drop():
    """A 30% drop (60% -> 42%) replayed daily from the day it began: found on the same day
    with the weekly looks as without them (these four seeds: 36, 29, 29 and 26 days both)."""
    def since_90_days(s, age, src, mgr, reg):
        return np.where((s == 0) & (age < 90), 0.42, 0.6)

    for seed in range(5000, 5004):
        data = company(seed, since_90_days)
        first = {w: _replay_days(data, _spec(persist_weeks=w), 90)[:1] for w in (0, 2)}
        assert first[0] and first[2], (seed, first)
        assert first[2][0] >= first[0][0] - 2, (seed, first)  # in days back: at most 2 days later


def _a_fifth_to(owner):
    def managers(src, rng):
        return np.where(rng.random(len(src)) < 0.2, owner, rng.choice(np.array(["m1", "m2", "m3"]), size=len(src)))
    return managers


def owner_falls(owner):
    def rate(s, age, src, mgr, reg):
        return np.where((s == 0) & (mgr == owner), np.where(age < 50, 0.12, 0.78), 0.6)
    return rate


def test_deals_whose_owner_names_nobody_are_no_managers_segment():
    """A fifth of the deals are written to «Без ответственного» (crm.owners: nobody) and fall
    78% -> 12%: never said as "manager «Без ответственного»". The same plant on a real person's
    id (m9) is said as that manager's drop, so the test can tell."""
    for seed in (12, 22):
        said = at_new(detect(company(seed, owner_falls("Без ответственного"),
                                     managers=_a_fifth_to("Без ответственного"), n=1800), SPEC, NOW))
        named = [i.subject.get("segment") for i in said] + [d["segment"] for i in said for d in i.facts["drivers"]]
        assert "Без ответственного" not in named, [(i.facts["kind"], i.subject) for i in said]
    person = at_new(detect(company(12, owner_falls("m9"), managers=_a_fifth_to("m9"), n=1800), SPEC, NOW))
    named = [i.subject.get("segment") for i in person] + [d["segment"] for i in person for d in i.facts["drivers"]]
    assert "m9" in named, [(i.facts["kind"], i.subject) for i in person]

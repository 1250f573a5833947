"""Acceptance scenarios for issue 9 ("insights that hold on real exports"), run as an admin would:
an amoCRM-like CSV export of our own making (tests/scenarios/_export_factory.py), the real CLI
(`scan --data/--config --now --format json`, `check-config`, `backtest --fail-on-budget`), and
assertions on what a user would notice: which insights came, which segments they name, which
lines say what could not be checked, how many items a day a person gets.

Counts over seeds are asserted exactly (false drivers and false alarms must be 0, every planted
case found); a scenario the product still gets wrong is marked xfail(strict=True) with the
finding, so it turns red the day it is fixed.
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from _cli import run_cli
from _export_factory import STAGES, Effect, ExportSpec, read_rows, write_export, write_rows

UTC = timezone.utc
END = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)  # the newest moment of a fresh export (10:00 Almaty, Fri)
NOW = END + timedelta(hours=1)
# The change starts when the recent cohort of the Квалификация stage begins (its learned horizon is
# the 7-day floor; the recent window is 28 days ending one horizon before now): the baseline is
# all before the change, the recent cohort all after it.
AT = NOW - timedelta(days=35)
STAGE = 1  # Квалификация -> КП отправлено
PLANTED_FROM = STAGES[STAGE]
DRIVER_SEEDS = range(7)


def scan(folder: Path, now: datetime = NOW, config: Path | None = None) -> tuple[list[dict], str]:
    src = ["--config", str(config)] if config else ["--data", str(folder)]
    rc, out, err = run_cli("scan", *src, "--now", now.isoformat(), "--format", "json")
    assert rc == 0, err
    return json.loads(out), err


def config_for(folder: Path, extra: str = "") -> Path:
    path = folder.parent / f"{folder.name}.toml"
    path.write_text(f'timezone = "Asia/Almaty"\n[source]\nkind = "files"\npath = "./{folder.name}"\n{extra}\n',
                    encoding="utf-8")
    return path


def check_config(folder: Path, now: datetime = NOW, extra: str = "") -> str:
    rc, out, err = run_cli("check-config", str(config_for(folder, extra)), "--now", now.isoformat())
    assert rc == 0, out + err
    return out + err


def by_detector(insights: list[dict]) -> Counter:
    return Counter(i["detector"] for i in insights)


def named_segments(insights: list[dict]) -> list[tuple[str, str, str]]:
    """Every segment a conversion insight names as falling: drivers and confined drops."""
    named = []
    for i in insights:
        if i["detector"] != "conversion_drop":
            continue
        f = i["facts"]
        for d in f.get("drivers") or []:
            named.append(("driver", d["dimension"], str(d["segment_id"])))
        if f.get("kind") == "segment_drop":
            named.append(("segment_drop", f["segment"]["dimension"], str(f["segment"]["segment_id"])))
    return named


def planted_pair(insights: list[dict]) -> list[dict]:
    return [i for i in insights if i["detector"] == "conversion_drop" and i["facts"]["from_stage"] == PLANTED_FROM]


def other_pairs(insights: list[dict]) -> list[str]:
    return [f"{i['facts']['from_stage']}->{i['facts']['to_stage']}" for i in insights
            if i["detector"] == "conversion_drop" and i["facts"]["from_stage"] != PLANTED_FROM]


# --- four kinds of planted drop --------------------------------------------------------------

DROPS = {
    # every deal's chance to leave Квалификация falls by a third: found, nobody named
    "uniform": Effect(kind="uniform", stage=STAGE, at=AT, factor=0.65),
    # only source Сайт (35% of deals) falls 60% -> 20%: Сайт named, nothing else
    "one_source": Effect(kind="source", stage=STAGE, at=AT, source="Сайт", share=0.35, before=0.6, after=0.2),
    # Выставка always converts at 15%, but its share goes 8% -> 45%: worded as mix, nobody falling
    "mix_shift": Effect(kind="mix", stage=STAGE, at=AT, source="Выставка", before=0.15, share_after=0.45),
    # Instagram (30%) falls 60% -> 20%, and m1 got 70% of Instagram's deals: only Instagram named
    "confounded_manager": Effect(kind="confound", stage=STAGE, at=AT, source="Instagram", share=0.3,
                                 before=0.6, after=0.2, manager="m1", manager_share=0.7),
}
TRUE_SEGMENT = {"uniform": None, "one_source": ("source", "Сайт"), "mix_shift": None,
                "confounded_manager": ("source", "Instagram")}


def judge_drop(kind: str, insights: list[dict]) -> tuple[bool, list]:
    """(was the planted case found as a user should see it, the segments named that drove nothing)."""
    truth = TRUE_SEGMENT[kind]
    false = [n for n in named_segments(insights) if (n[1], n[2]) != truth]
    here = planted_pair(insights)
    if kind == "uniform":
        found = any(i["facts"]["kind"] == "drop" for i in here)
    elif kind == "mix_shift":
        found = any(i["facts"]["kind"] == "mix_shift" and (i["facts"].get("mix") or {}).get("segment_id") == "Выставка"
                    for i in here)
        false += [("not worded as mix", i["facts"]["kind"], "") for i in here if i["facts"]["kind"] != "mix_shift"]
    else:
        found = any((n[1], n[2]) == truth for n in named_segments(here))
    return found, false


_DROP_RESULTS: dict[str, dict] = {}


def realized_drop(folder: Path, horizon_days: int = 7) -> float:
    """The relative drop of Квалификация -> КП отправлено (within the stage's 7-day horizon) that
    the data actually realized between the baseline and the recent cohort: the planted change
    is a chance, and a seed whose chance went the other way is not a case any test could see."""
    entered: dict[str, dict[str, datetime]] = {}
    for r in read_rows(folder, "stage_history"):
        entered.setdefault(r["deal_id"], {})[r["stage"]] = datetime.fromisoformat(r["entered_at"].replace("Z", "+00:00"))
    recent = (NOW - timedelta(days=horizon_days + 28), NOW - timedelta(days=horizon_days))
    base = (recent[0] - timedelta(days=91), recent[0])
    sides = {"base": [0, 0], "recent": [0, 0]}
    for stages in entered.values():
        t = stages.get(STAGES[STAGE])
        if t is None:
            continue
        side = "base" if base[0] <= t < base[1] else "recent" if recent[0] <= t < recent[1] else None
        if side:
            nxt = [v for k, v in stages.items() if STAGES.index(k) > STAGE]
            sides[side][0] += any(v - t <= timedelta(days=horizon_days) for v in nxt)
            sides[side][1] += 1
    b, r = (x / n for x, n in sides.values())
    return (b - r) / b


def run_drops(kind: str, tmp_path: Path) -> dict:
    """Scan DRIVER_SEEDS companies with the planted drop `kind` (once per kind per session).
    A miss counts only where the data realized the drop overall (>= 15% relative, the default
    min_relative_drop); the kinds confined to a source are judged by naming the source."""
    if kind in _DROP_RESULTS:
        return _DROP_RESULTS[kind]
    result = {"misses": [], "false_drivers": [], "other_pairs": [], "not_realized": []}
    for seed in DRIVER_SEEDS:
        folder = write_export(tmp_path / f"{kind}{seed}", ExportSpec(seed=seed, deals_per_month=400, end=END,
                                                                      effect=DROPS[kind], with_emails=False))
        insights, _err = scan(folder)
        found, false = judge_drop(kind, insights)
        realized = TRUE_SEGMENT[kind] is not None or realized_drop(folder) >= 0.15
        if not realized:
            result["not_realized"].append(seed)
        if not found and realized:
            result["misses"].append(seed)
        result["false_drivers"] += [(seed, *f) for f in false]
        result["other_pairs"] += [(seed, p) for p in other_pairs(insights)]
    _DROP_RESULTS[kind] = result
    return result


@pytest.mark.slow
@pytest.mark.parametrize("kind", [
    "uniform",
    "one_source",
    "mix_shift",
    "confounded_manager",
])
def test_planted_drop_names_no_false_driver(kind, tmp_path):
    r = run_drops(kind, tmp_path)
    assert r["false_drivers"] == [], r
    assert r["misses"] == [], r
    assert len(r["not_realized"]) <= 2, r  # the scenario itself stays meaningful


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["uniform", "one_source", "mix_shift", "confounded_manager"])
def test_planted_drop_raises_nothing_on_untouched_stage_pairs(kind, tmp_path):
    """Only the Квалификация stage changed: later pairs must stay silent. Before the newest deals'
    confirmation, 3 of these 28 scans raised a later pair from the headline family alone (fdr
    0.05): uniform seed 6, one_source seed 5, confounded_manager seed 4; their newest deals
    moved on as before (one-sided p 0.37-0.89)."""
    r = run_drops(kind, tmp_path)
    assert r["other_pairs"] == [], r


def test_a_uniform_drops_chance_dips_are_not_named_as_drivers(tmp_path):
    """Every deal's chance to leave Квалификация falls by a third, at 400 deals a month. On these
    held-out seeds (benchmarks/seg_drop.py planted --seeds 80-159 --kinds uniform) a chance dip
    was named as the driver: m1 (seed 89), region Астана (94), source Звонок (133), region
    Алматы (155). The driver family was the 3-5 segments carrying a quarter of the drop, so the
    ones picked for falling most, and BH over them passed a dip at 0.01; it is now every segment
    with enough deals, the share a gate after the test."""
    named = []
    for seed in (89, 94, 133, 155):
        folder = write_export(tmp_path / f"uniform{seed}", ExportSpec(seed=seed, deals_per_month=400, end=END,
                                                                       effect=DROPS["uniform"], with_emails=False))
        insights, _err = scan(folder)
        assert [i["facts"]["kind"] for i in planted_pair(insights)] == ["drop"], seed
        named += [(seed, *n) for n in named_segments(insights)]
    assert named == [], named


def test_a_confounded_manager_who_also_dipped_by_chance_is_not_named_before_the_source(tmp_path):
    """Instagram (30%) falls 60% -> 20% and m1 got 70% of Instagram's deals. Seed 31 at 400 deals a
    month: m1's few other deals dipped too by chance (51/86 -> 11/27), so m1 (185/316 -> 24/97,
    p 1.0e-5) beat Instagram (176/311 -> 21/91, p 2.6e-5) and was named the driver; the rest,
    outside m1, no longer fell, so Instagram was never tested. Outside each other neither stands
    out (m1 p 0.11, Instagram 0.24): the data cannot tell them apart, and the source is named.
    Seed 148 at 250 (held out): Instagram was the stronger, and m1 keeps more of his lead
    outside Instagram's deals than Instagram outside his: a source is still not passed over for
    a person (a rule that swapped on that alone named m1). Seed 142 at 250: the pair held, so
    each is a drop of its own, and the same swap reported m1 instead of Instagram."""
    named = {}
    for seed, volume in ((31, 400), (148, 250), (142, 250)):
        folder = write_export(tmp_path / f"confound{seed}", ExportSpec(seed=seed, deals_per_month=volume, end=END,
                                                                       effect=DROPS["confounded_manager"],
                                                                       with_emails=False))
        insights, _err = scan(folder)
        named[seed] = [n[1:] for n in named_segments(insights)]
    assert named == {seed: [("source", "Instagram")] for seed in (31, 148, 142)}, named


def test_a_managers_dip_that_its_newest_deals_show_over_neither_is_named_nor_hides_the_source(tmp_path):
    """A source falls and, on these held-out seeds, manager m8 or m1 dipped by chance as well.
    Seed 82 at 400 deals a month, Instagram (12%) 70% -> 14%: the pair held; m8 77/114 -> 10/41
    (q 0.00014, below clear_q, so said whatever his newest deals did), but 9 of his 15 newest
    deals moved on, 7.6 expected at the baseline's pace and 2.7 at the dip's. m8 was named and
    Instagram, tested only outside his deals, was not. Seed 146 at 250, Сайт (35%) 60% -> 20%:
    the pair fell; m1 41/70 -> 1/23 (p 1.5e-5) beat Сайт (p 3.8e-5) as the driver while 4 of his
    11 newest deals moved on (3.7 expected as before). Now newest deals hundreds of times likelier
    at the old pace end the dip: the manager is neither named nor set aside."""
    cases = {82: (400, Effect(kind="source", stage=STAGE, at=AT, source="Instagram", share=0.12, before=0.7,
                              after=0.14), "Instagram"),
             146: (250, DROPS["one_source"], "Сайт")}
    named, want = {}, {}
    for seed, (volume, effect, source) in cases.items():
        folder = write_export(tmp_path / f"dip{seed}", ExportSpec(seed=seed, deals_per_month=volume, end=END,
                                                                  effect=effect, with_emails=False))
        insights, _err = scan(folder)
        named[seed], want[seed] = [n[1:] for n in named_segments(insights)], [("source", source)]
    assert named == want, named


# --- a segment's own drop while the overall rate holds ---------------------------------------

def test_segment_own_drop_is_found_when_the_overall_rate_holds(tmp_path):
    """Instagram, 12% of deals, falls 70% -> 14% at Квалификация; the other sources hold."""
    misses, false, overall = [], [], []
    for seed in range(4):
        effect = Effect(kind="source", stage=STAGE, at=AT, source="Instagram", share=0.12, before=0.7, after=0.14)
        folder = write_export(tmp_path / f"own{seed}", ExportSpec(seed=seed, deals_per_month=400, end=END, effect=effect))
        insights, _ = scan(folder)
        names = named_segments(planted_pair(insights))
        if ("source", "Instagram") not in [(n[1], n[2]) for n in names]:
            misses.append(seed)
        false += [(seed, n) for n in named_segments(insights) if (n[1], n[2]) != ("source", "Instagram")]
        overall += [seed for i in planted_pair(insights) if i["facts"]["kind"] == "segment_drop"]
    assert false == [], false
    assert misses == [], f"missed in seeds {misses}"
    assert overall, "at least one seed must show the drop reported on its own (overall held)"


@pytest.mark.slow
def test_segment_own_drop_is_found_in_a_smaller_company(tmp_path):
    """At 250 deals a month Instagram has 14-27 recent deals. With a headline floor of 20 deals a
    side and the segment family at 0.01 this missed 3 of 5 seeds (seed 2: q 0.012; seeds 1 and 4:
    18 and 14 recent deals); the newest deals' confirmation lets the family run at `fdr` and the
    floor be 10. Nobody else may be named (seed 4 replayed at 09:00 Almaty on the scan's day, on a
    calendar without holidays, named manager m7 at КП отправлено -> Переговоры, 0/11 vs 30/54,
    q 0.039, a pair the plant did not touch, while a manager's own drop needed only q <= fdr)."""
    misses, false = [], []
    for seed in range(5):
        effect = Effect(kind="source", stage=STAGE, at=AT, source="Instagram", share=0.12, before=0.7, after=0.14)
        folder = write_export(tmp_path / f"small{seed}", ExportSpec(seed=seed, deals_per_month=250, end=END, effect=effect))
        insights, _ = scan(folder)
        if ("source", "Instagram") not in [(n[1], n[2]) for n in named_segments(planted_pair(insights))]:
            misses.append(seed)
        false += [(seed, n) for n in named_segments(insights) if (n[1], n[2]) != ("source", "Instagram")]
    assert misses == [], f"missed in seeds {misses}"
    assert false == [], false


# Seeds 0-31 beyond the two tests above, on the scan day (benchmarks/seg_drop.py planted --seeds 0-31):
# 250/month misses 7 of 32, 400/month 3 of 32; the ones below, with their gate. On seeds 32-79 (held out,
# never tuned on): 16 of 48 and 1 of 48 (the z-tests before the likelihood-ratio test: 18 and 2), before
# the newest deals weighed the segment's test. That found 250/month seed 10 and lost 400/month seed 15.
HELD_OUT_MISSES = {250: (5, 8, 13, 17, 23, 24, 31), 400: (6, 7, 15)}


@pytest.mark.slow
@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "A segment's own drop (Instagram 70% -> 14%) on held-out seeds is missed on the scan day: 10 of 64 "
    "(figures below from before the newest deals weighed the segment's test: since then 250/month seed 10 "
    "is found, and 400/month seed 15 is missed: 65/104 -> 8/33, p 0.0005, its 11 newest deals 1 moved on, "
    "2.6 expected, a likelihood ratio of 2.6 for the dip, q 0.0145 above segment_fdr). "
    "The segment-vs-rest test no longer decides any of them (with it as a mere gate at 0.05 the same 10 are "
    "missed): 250/month seed 5 4/14 vs 46/77 (q 0.87), 8 5/21 vs 39/63 (q 0.14; its 4 newest deals: 1 moved on, "
    "1.3 expected, p 0.61), 10 9/30 vs 60/94 (q 0.07), 13 2/21 vs 28/60 (q 0.087), 17 2/22 vs 39/70 (q 0.021, "
    "but its 5 newest deals: 1 moved on, 1.7 expected, p 0.42), 23 1/15 vs 37/64 (q 0.059; its own test alone "
    "would pass and its newest deals stop it: 1 of 3 moved on, 0.7 expected), 24 5/20 vs 47/76 (q 0.20), "
    "31 8/26 vs 49/71 (q 0.050); 400/month seed 6 11/41 vs 60/102 (q 0.11: Republic Day stops the company "
    "clock, so the recent window starts 30 h before the plant and holds 4 earlier deals, all moved on), "
    "7 12/44 vs 63/117 (q 0.076). Before the likelihood-ratio segment-vs-rest test the z-tests decided 13, 17 "
    "and 23 (q 0.26, 0.081, 0.20). Calm companies' chance dips are as strong on both counts (calm seed 43: "
    "Instagram 68% -> 23% on 22 deals, q 0.024, newest p 0.026), so admitting these costs calm alarms: "
    "over 180 calm companies replayed daily (seeds 11-190) fdr 0.1 finds 57/64 with 33 companies alarmed "
    "(the z-tests 56/64, 38), 0.05 54/64 with 19 (the z-tests 54/64, 25), and with the z-tests at 0.3 and "
    "without the newest deals' confirmation 63/64 with 156"))
def test_segment_own_drop_is_found_on_held_out_seeds(tmp_path):
    misses = []
    for volume, seeds in HELD_OUT_MISSES.items():
        for seed in seeds:
            effect = Effect(kind="source", stage=STAGE, at=AT, source="Instagram", share=0.12, before=0.7, after=0.14)
            folder = write_export(tmp_path / f"held{volume}_{seed}",
                                  ExportSpec(seed=seed, deals_per_month=volume, end=END, effect=effect))
            insights, _ = scan(folder)
            if ("source", "Instagram") not in [(n[1], n[2]) for n in named_segments(planted_pair(insights))]:
                misses.append((volume, seed))
    assert misses == [], f"missed {misses}"


# --- companies where nothing changes ---------------------------------------------------------

NO_CHANGE_SEEDS = range(6)


def test_no_change_companies_raise_no_alarm(tmp_path):
    alarms: Counter = Counter()
    detail = []
    for seed in NO_CHANGE_SEEDS:
        folder = write_export(tmp_path / f"calm{seed}", ExportSpec(seed=seed, end=END))
        insights, _ = scan(folder)
        alarms.update(by_detector(insights))
        detail += [(seed, i["detector"], i["subject"]) for i in insights]
    rate = {d: n / len(NO_CHANGE_SEEDS) for d, n in alarms.items()}
    assert not alarms, f"false alarms per scan {rate}: {detail}"


def test_randomly_routed_teams_get_no_manager_load_item(tmp_path):
    items = []
    for seed in range(5):
        folder = write_export(tmp_path / f"team{seed}", ExportSpec(seed=100 + seed, end=END, n_managers=12, n_teams=2,
                                                                    deals_per_month=300, leads_per_month=300))
        insights, _ = scan(folder)
        items += [(seed, i["subject"]) for i in insights if i["detector"] == "manager_load"]
    assert items == []


# --- absent columns --------------------------------------------------------------------------

def _leads_waiting(folder: Path) -> int:
    """How many leads of the last 7 days had no manager's answer after 2 working hours if the
    absent columns were read as 'not done' (all of them are older than that)."""
    rows = read_rows(folder, "leads")
    return sum(1 for r in rows if r["created_at"] < (END - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
               and r["created_at"] > (END - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_leads_without_assigned_and_response_columns_raise_no_sla_alert(tmp_path):
    folder = write_export(tmp_path / "noresp", ExportSpec(seed=3, end=END,
                                                           absent=frozenset({"leads.assigned_at", "leads.first_response_at"})))
    assert _leads_waiting(folder) > 20  # plenty of leads that would "breach" if absence meant "not done"
    insights, err = scan(folder)
    assert by_detector(insights)["lead_sla"] == 0
    lines = [ln for ln in err.splitlines() if "lead_sla" in ln]
    assert any("first_response_at" in ln for ln in lines), err
    cc = check_config(folder)
    assert any("first_response_at" in ln for ln in cc.splitlines()), cc
    rc, out, berr = run_cli("backtest", "--data", str(folder), "--from", "2026-11-10", "--to", "2026-11-19")
    assert rc == 0
    assert "first_response_at" in out + berr
    assert "lead_sla" in out


def test_leads_without_any_manager_column_say_both_parts_are_off(tmp_path):
    folder = write_export(tmp_path / "nomgr", ExportSpec(seed=4, end=END, absent=frozenset(
        {"leads.assigned_at", "leads.first_response_at", "leads.manager_id"})))
    insights, err = scan(folder)
    assert by_detector(insights)["lead_sla"] == 0
    # one line for the detector, naming a column that would enable it
    lines = [ln for ln in err.splitlines() if "lead_sla" in ln and "skipped" in ln]
    assert len(lines) == 1 and ("assigned_at" in lines[0] or "first_response_at" in lines[0]), err
    # manager_load compares open deals still, and says the new-leads part needs leads.manager_id
    assert any("manager_load" in ln and "manager_id in leads" in ln for ln in err.splitlines()), err


def test_no_loss_reason_column_is_a_data_quality_line_not_a_weekly_alert(tmp_path):
    folder = write_export(tmp_path / "noreason", ExportSpec(seed=5, end=END, absent=frozenset({"deals.loss_reason"})))
    insights, err = scan(folder)
    assert by_detector(insights)["loss_reasons"] == 0
    assert any("loss_reason" in ln for ln in err.splitlines()), err
    cc = check_config(folder)
    assert any("loss_reason" in ln for ln in cc.splitlines()), cc


def test_activities_without_done_at_are_said_and_not_read_as_not_done(tmp_path):
    spec = ExportSpec(seed=6, end=END, absent=frozenset({"activities.done_at"}))
    folder = write_export(tmp_path / "nodone", spec)
    insights, err = scan(folder)
    assert any("done_at" in ln and "stalled_deal" in ln for ln in err.splitlines()), err
    cc = check_config(folder)
    assert any("done_at" in ln for ln in cc.splitlines()), cc
    # Without done_at calls cannot count as touches; stage changes and emails still do. What is
    # judged must stay bounded by the company's own norm (about a fifth of the open deals are past
    # the 80% limit of their stage), not every open deal.
    open_deals = sum(1 for r in read_rows(folder, "deals") if r["status"] == "open")
    stalled = by_detector(insights)["stalled_deal"]
    assert stalled <= 0.3 * open_deals, (stalled, open_deals)


# --- stale data ------------------------------------------------------------------------------

def test_stale_export_keeps_time_based_detectors_silent(tmp_path):
    folder = write_export(tmp_path / "stale", ExportSpec(seed=7, end=END))
    later = END + timedelta(days=11)
    insights, err = scan(folder, now=later)
    silent = {"stalled_deal", "lead_sla", "silent_client"}
    assert [i for i in insights if i["detector"] in silent] == []
    assert "11." in err and "stale" in err.lower(), err
    cc = check_config(folder, now=later)
    age = [ln for ln in cc.splitlines() if "data age" in ln]
    assert age and "11." in age[0] and "STALE" in age[0], cc
    # the same export scanned fresh is judged (the test can fail): check-config says fresh
    assert "fresh" in [ln for ln in check_config(folder).splitlines() if "data age" in ln][0]


def test_backtest_replays_no_idle_time_on_the_days_a_scan_finds_the_data_stale(tmp_path):
    """An export that stopped on Friday 20 Nov, backtested to 30 Nov: from Friday 27 Nov a
    scan skips the time-based detectors (more than 3 working days without a record), so the
    replay of those days sends nothing from them either, and the export's silence is not
    learned as days off. (Before: 53 stalled alerts on 30 Nov alone on a 48-manager export, and
    "no work recorded on 23-27 Nov: counted as days off".)"""
    folder = write_export(tmp_path / "stops", ExportSpec(seed=7, end=END, touch_every=(1.0, 10.0)))
    rc, out, err = run_cli("backtest", "--data", str(folder), "--from", "2026-11-13", "--to", "2026-11-30",
                           "--format", "json")
    assert rc == 0, err
    report = json.loads(out)
    stale_days = report["stale_days"]
    assert stale_days == ["2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30"], stale_days
    # the scan agrees on the first stale day and the last fresh one
    first, last_fresh = (datetime.fromisoformat(d + "T04:00:00+00:00") for d in ("2026-11-27", "2026-11-26"))
    assert "skipped stalled_deal: the data is" in scan(folder, now=first)[1]
    assert "skipped stalled_deal" not in scan(folder, now=last_fresh)[1]
    # before the export stopped there was plenty to say, after it nothing from idle time
    assert report["detectors"]["stalled_deal"]["alerts"] > 0, report["detectors"]
    rc, out, err = run_cli("backtest", "--data", str(folder), "--from", stale_days[0], "--to", stale_days[-1],
                           "--format", "json")
    tail = json.loads(out)["detectors"]
    assert all(tail[d]["insights_before_dedup"] == 0 for d in ("stalled_deal", "lead_sla")), tail
    assert "Nov" not in "".join(ln for ln in err.splitlines() if ln.startswith("calendar:")), err
    rc, out, err = run_cli("backtest", "--data", str(folder), "--from", stale_days[0], "--to", stale_days[-1])
    assert "stale data on 4 replayed days from 2026-11-27: " in out and "stalled_deal" in out, out


# --- holidays --------------------------------------------------------------------------------

HOLIDAY_END = datetime(2027, 1, 5, 3, 30, tzinfo=UTC)  # Tue 08:30 in Almaty, the first working day of 2027, before anyone worked


def _holiday_company(tmp_path: Path, seed: int) -> Path:
    # Deals touched every 1-3 days; nobody works on the official holidays, 1-4 Jan (with the
    # weekend); web leads keep arriving and wait for the first working morning.
    return write_export(tmp_path / f"ny{seed}", ExportSpec(
        seed=seed, end=HOLIDAY_END, days=200, touch_every=(1.0, 3.0), stage_days=(1.0, 1.5, 2.0, 2.0, 1.5),
        holiday=(date(2027, 1, 1), date(2027, 1, 4))))


def test_first_working_day_after_new_year_has_at_most_a_handful_of_stalled_items(tmp_path):
    stalled, waiting = [], []
    for seed in range(3):
        folder = _holiday_company(tmp_path, seed)
        insights, _ = scan(folder, now=HOLIDAY_END)
        stalled.append(by_detector(insights)["stalled_deal"])
        waiting.append(by_detector(insights)["lead_sla"])
    assert max(stalled) <= 5, stalled
    assert waiting == [0, 0, 0], "web leads of the holidays have waited no working hour yet"


def test_without_the_holidays_the_same_scan_sees_more_idle_time(tmp_path):
    """The calendar is what keeps the count low: with official holidays switched off (and no
    days off learned from the data, which would find the empty days) the same company shows
    more stalled deals (so the test above can fail)."""
    folder = _holiday_company(tmp_path, 0)
    with_cal, _ = scan(folder, now=HOLIDAY_END)
    cfg = config_for(folder, '[calendar]\ncountry = "none"\nlearn_days_off = false\n')
    without, _ = scan(folder, now=HOLIDAY_END, config=cfg)
    assert by_detector(without)["stalled_deal"] > by_detector(with_cal)["stalled_deal"]
    assert by_detector(without)["lead_sla"] > by_detector(with_cal)["lead_sla"]


# --- inactive managers -----------------------------------------------------------------------

def test_never_active_and_inactive_managers_are_never_alerted_or_named(tmp_path):
    spec = ExportSpec(seed=8, end=END, n_managers=8, n_teams=2, idle_agents=3, inactive_flagged=2,
                      overloaded="m1", deals_per_month=300, leads_per_month=300)
    folder = write_export(tmp_path / "idle", spec)
    ghosts = {f"m{k}" for k in range(9, 14)}
    insights, _ = scan(folder)
    load = [i for i in insights if i["detector"] == "manager_load"]
    assert load, "the overloaded m1 makes a team imbalance (the test must be able to name someone)"
    for i in insights:
        assert (i["audience"].get("manager_id") or "") not in ghosts, i
        assert str(i["subject"].get("manager_id") or "") not in ghosts, i
        assert not ghosts & set(json.dumps(i["facts"], ensure_ascii=False).split('"')), (i["detector"], i["facts"])
    for i in load:
        check_plan(i["facts"])
    cc = check_config(folder)
    listed = [ln for ln in cc.splitlines() if "not compared" in ln]
    assert listed and all(g in listed[0] for g in ghosts - {"m12", "m13"}), cc


def check_plan(facts: dict) -> None:
    """One coordinated plan per metric: nobody both gives and takes, nobody gives more than their
    excess over the team's average load or takes more than their room below it (whole items)."""
    for metric, moves in (facts.get("plan") or {}).items():
        m = facts["metrics"][metric]
        load = {r["manager_id"]: r for r in m["loads"]}
        givers = Counter()
        takers = Counter()
        for mv in moves:
            givers[mv["from_manager_id"]] += mv["count"]
            takers[mv["to_manager_id"]] += mv["count"]
        assert not set(givers) & set(takers), (metric, moves)
        for who, n in givers.items():
            r = load[who]
            assert n <= (r["load"] - m["fair_share"]) * r["capacity"] + 1, (metric, who, n, r, m["fair_share"])
        for who, n in takers.items():
            r = load[who]
            assert n <= (m["fair_share"] - r["load"]) * r["capacity"] + 1, (metric, who, n, r, m["fair_share"])


# --- volume ----------------------------------------------------------------------------------

def _realistic(tmp_path: Path) -> Path:
    """A company of 10 managers, 300 deals a month, touched every 1-7 days, with a drop planted."""
    return write_export(tmp_path / "volume", ExportSpec(
        seed=11, end=END, days=260, n_managers=10, deals_per_month=300, touch_every=(1.0, 7.0),
        effect=Effect(kind="uniform", stage=STAGE, at=AT, factor=0.65)))


def test_four_month_backtest_stays_within_the_daily_budget(tmp_path):
    """A sloppy company: 12 managers, 600 deals a month, open deals touched only every 1-14 days,
    150 deals one manager left behind months ago. Everyone stays within 5 items a day."""
    folder = write_export(tmp_path / "sloppy", ExportSpec(
        seed=21, end=END, days=300, n_managers=12, deals_per_month=600, leads_per_month=400,
        touch_every=(1.0, 14.0), abandoned=("m2", 150), abandoned_days=(20, 280)))
    rc, out, err = run_cli("backtest", "--data", str(folder), "--from", "2026-07-20", "--to", "2026-11-19",
                           "--fail-on-budget", "--format", "json")
    assert rc == 0, out[-3000:] + err
    report = json.loads(out)
    assert report["budget"]["over"] == [], report["budget"]
    per_day = {who: r["items_per_day"] for who, r in report["recipients"].items()}
    assert per_day and max(per_day.values()) <= 5, per_day
    assert report["detectors"]["stalled_deal"]["alerts"] > 100  # plenty to say, and still bearable


def _catch_all_company(tmp_path: Path) -> Path:
    """6 managers, 2,500 deals a month, a fifth of deals and leads owned by the CRM's catch-all
    user "unassigned" (Не назначен, in managers.csv, no team): nobody calls those deals, they
    only move through the pipeline. One more person left 60 days ago with their open deals."""
    return write_export(tmp_path / "catchall", ExportSpec(
        seed=31, end=END, days=200, n_managers=6, deals_per_month=2500, leads_per_month=100, unassigned=0.2,
        departed=1, with_emails=False))


@pytest.mark.slow
def test_deals_without_an_owner_filled_as_nobody_are_one_item_for_the_director(tmp_path):
    """The same company exported with empty owner cells: the loader says how to fill them, and
    filled with a name the managers file does not list they are the director's to hand over,
    one item, not one per deal: nobody goes over the budget."""
    folder = _catch_all_company(tmp_path)
    for table in ("deals", "leads", "clients"):
        write_rows(folder, table, [{**r, "manager_id": "" if r["manager_id"] == "unassigned" else r["manager_id"]}
                                   for r in read_rows(folder, table)])
    write_rows(folder, "managers", [r for r in read_rows(folder, "managers") if r["manager_id"] != "unassigned"])
    rc, out, err = run_cli("scan", "--data", str(folder), "--now", NOW.isoformat())
    assert rc != 0 and "[source.fill.deals] manager_id" in out + err, out + err
    cfg = config_for(folder, '[source.fill.deals]\nmanager_id = "Не назначен"\n')
    rc, out, err = run_cli("backtest", "--config", str(cfg), "--from", "2026-07-20", "--to", "2026-11-19",
                           "--fail-on-budget", "--format", "json")
    assert rc == 0, out[-3000:] + err
    report = json.loads(out)
    assert report["budget"]["over"] == [], report["budget"]
    assert "Не назначен" not in report["recipients"] and "m7" not in report["recipients"]  # m7 left
    insights, _ = scan(cfg.parent / folder.name, config=cfg)
    left = [i for i in insights if i["detector"] == "stalled_deal" and i["subject"].get("kind") == "left_behind"]
    # the filled owner is nobody (crm.owners): one "no owner" item naming no person; m7 left
    assert {i["subject"].get("manager_id") or i["facts"]["owner_gone"] for i in left} == {"nobody", "m7"}, \
        [i["subject"] for i in left]
    assert all(i["audience"]["role"] == "director" for i in left)


@pytest.mark.slow
def test_a_catch_all_owner_that_nobody_works_stays_within_the_budget(tmp_path):
    folder = _catch_all_company(tmp_path)
    rc, out, err = run_cli("backtest", "--data", str(folder), "--from", "2026-07-20", "--to", "2026-11-19",
                           "--format", "json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["budget"]["over"] == [], report["budget"]
    # before ten of its deals stall at once, the catch-all's few are items of its own
    assert report["recipients"].get("unassigned", {}).get("items_per_day", 0) < 0.5, report["recipients"]
    # the catch-all «Не назначен» names nobody (crm.owners): its stalled deals are one director
    # item with no owner (a catch-all under a person-like name: the no_contact rule, unit-tested)
    insights, _ = scan(folder)
    left = {i["subject"].get("manager_id") or i["facts"]["owner_gone"]: i for i in insights
            if i["detector"] == "stalled_deal" and i["subject"].get("kind") == "left_behind"}
    assert left["nobody"]["facts"]["owner_words"] == ["Не назначен"], left
    assert left["nobody"]["audience"]["role"] == "director"
    assert not [i for i in insights if i["audience"].get("manager_id") == "unassigned"]


def test_flooding_config_warns_and_fails_the_budget(tmp_path):
    folder = _realistic(tmp_path)
    cfg = config_for(folder, "[detectors.stalled_deal]\nmin_limit_days = 1\nmax_limit_days = 1\n"
                             "default_limit_days = 1\nescalate_after_days = 1\n[delivery]\nrepeat_interval_days = 1\n")
    rc, out, err = run_cli("backtest", "--config", str(cfg), "--from", "2026-07-20", "--to", "2026-11-19",
                           "--fail-on-budget")
    assert rc == 1, out[-3000:] + err
    assert "over the daily budget" in out + err
    assert "stalled_deal" in [ln for ln in (out + err).splitlines() if "%" in ln and "stalled_deal" in ln][0]


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "conversion_drop false alarms on no-change companies replayed daily: over 3 companies x 123 days "
    "(seeds 11-13, 300 deals a month) seed 11 has an overall 'drop' on 1 replayed day (18 Aug, Квалификация -> "
    "КП отправлено 57% -> 46%, p 0.003, q 0.014) and seed 13 on 1 (16 Aug, Переговоры -> Договор 65% -> 49%, "
    "q 0.049). Before persist_weeks: 4 and 1 days; before the newest deals' confirmation: 10 and 2. On those "
    "days the newest deals had moved on slower at all three weekly looks (19 of 55 vs 22.8 expected, 21 of 57 "
    "vs 25.0, 19 of 64 vs 26.5: p 0.17, 0.17, 0.03; seed 13: p 0.16, 0.015, 0.14): a chance dip of about four "
    "weeks of entries. It is as strong as the weakest real drop the builder tests demand (9.9% -> 7.5% win "
    "rate, p 0.009, newest p 0.065; a 10% relative drop with newest p 0.097, 0.093, 0.088), so no rule on "
    "these numbers silences it without losing those. Over 30 such companies (seeds 11-40, the test "
    "below): 3 raise an overall drop on 6 days (before: 7 on 42); 2 raise a "
    "segment's own drop on 6 days (18, 27; 3 days before the newest deals weighed the segment's test; with the "
    "z-tests against the rest 3 on 6, and 4 on 11 while a manager's needed only q <= fdr)"))
def test_daily_replay_of_no_change_companies_has_no_conversion_alarm(tmp_path):
    days = {}
    for seed in (11, 12, 13):
        folder = write_export(tmp_path / f"calm{seed}", ExportSpec(
            seed=seed, end=END, days=260, n_managers=10, deals_per_month=300, touch_every=(1.0, 7.0)))
        rc, out, err = run_cli("backtest", "--data", str(folder), "--from", "2026-07-20", "--to", "2026-11-19",
                               "--format", "json")
        assert rc == 0, err
        report = json.loads(out)
        quiet = {d: v["insights_before_dedup"] for d, v in report["detectors"].items() if d != "stalled_deal"}
        days[seed] = quiet
    assert all(not any(q.values()) for q in days.values()), days


def _replayed_drops(folder: Path, spec=None) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Replayed days (09:00 Almaty, 20 Jul - 19 Nov, prepared once as of the first, as backtest
    does) on which conversion_drop raised an overall drop or mix shift, and the (day, dimension,
    segment) of every segment's own drop it raised."""
    from zoneinfo import ZoneInfo

    from crm.load import load_folder
    from detectors.conversion_drop import ConversionDropSpec, detect_at, prepare

    from detectors.working_hours import WorkCalendar

    data = load_folder(folder, timezone="Asia/Almaty", now=NOW).data
    first = datetime(2026, 7, 20, 9, tzinfo=ZoneInfo("Asia/Almaty"))
    # These companies work every weekday, official holidays too (no `holiday` period): their
    # calendar has no days off (with Kazakhstan's, Capital, Constitution and Republic Day shift
    # the windows: 4 companies on 10 days instead of 3 on 6, other chance dips of the same size)
    spec = (spec or ConversionDropSpec()).model_copy(update={"calendar": WorkCalendar(country=None)})
    state = prepare(data, spec, as_of=int(first.timestamp() * 1e9))
    overall, segments = [], []
    for d in (first + timedelta(days=k) for k in range(123)):
        day = d.date().isoformat()
        insights = detect_at(state, d, with_evidence=False)
        if any(i.facts["kind"] != "segment_drop" for i in insights):
            overall.append(day)
        segments += [(day, i.subject["dimension"], i.subject["segment"]) for i in insights
                     if i.facts["kind"] == "segment_drop"]
    return overall, segments


@pytest.mark.slow
def test_daily_replays_of_thirty_calm_companies_rarely_raise_an_overall_drop(tmp_path):
    """The companies of the test above, seeds 11-40, replayed daily over the same 123 days
    (conversion_drop alone). Before the newest deals' weekly looks (persist_weeks), when a q
    below clear_q also overrode newest deals that moved on as before, 7 of 30 raised an overall
    drop, on 42 days; now 3, on 6 days (seeds 11, 13, 18).

    A segment's own drop: 4 companies on 11 days while a manager's needed q <= fdr like any
    segment's (seed 14: manager m8 at Новая заявка, 13/23 vs 75/84, q 0.03-0.049, on 5 days);
    then 3 on 6 days with the z-tests against the rest (seed 18 on 4, 24, 27); with the
    likelihood-ratio tests 2 on 3 days, none a manager (seed 18: Instagram, q 0.020-0.024, its
    newest deals slower a week earlier too, as a real drop's; 27: one day), and m8 is not named
    even at q <= fdr. The trap is kept with calm seed 108, whose m10 is named at q <= 0.01.
    Since the newest deals weigh a segment's test (p / their likelihood ratio, family at
    segment_fdr) seed 27 has region Алматы on 4 days (q 0.006-0.0099, its newest deals slower
    each day, p 0.011-0.05), so 2 companies on 6 days; over 180 calm companies (seeds 11-190)
    the segment days fell 54 -> 48, the companies stayed 19 and managers' days 23 -> 9."""
    loud, before, seg_loud = {}, {}, {}
    from detectors.conversion_drop import ConversionDropSpec
    for seed in range(11, 41):
        folder = write_export(tmp_path / f"calm{seed}", ExportSpec(
            seed=seed, end=END, days=260, n_managers=10, deals_per_month=300, touch_every=(1.0, 7.0)))
        days, segs = _replayed_drops(folder)
        if days:
            loud[seed] = days
        if segs:
            seg_loud[seed] = segs
        if seed in (11, 35) and (days := _replayed_drops(folder, ConversionDropSpec(persist_weeks=0))[0]):
            before[seed] = days
    # the trap: at the segment family's level, a manager is named
    folder = write_export(tmp_path / "calm108", ExportSpec(
        seed=108, end=END, days=260, n_managers=10, deals_per_month=300, touch_every=(1.0, 7.0)))
    assert [s for s in _replayed_drops(folder)[1] if s[1] == "manager"] == []
    # (segment_fdr 0.1: a manager's bar is a tenth of it, the 0.01 of a source's now)
    before["m10"] = [s for s in _replayed_drops(folder, ConversionDropSpec(segment_fdr=0.1))[1] if s[1] == "manager"]
    assert len(loud) <= 3 and sum(map(len, loud.values())) <= 6, loud
    assert len(before) == 3 and all(before.values()), before  # without the looks / the stricter level
    assert [s for v in seg_loud.values() for s in v if s[1] == "manager"] == [], seg_loud
    assert len(seg_loud) <= 2 and sum(map(len, seg_loud.values())) <= 6, seg_loud


# --- what could not be checked, in Russian -----------------------------------------------------

def test_russian_scan_summary_names_the_switched_off_parts_in_russian(tmp_path):
    """The default language is Russian: "проверено не полностью: SLA по заявкам (unanswered leads:
    не проверено ...)" left the part's English name in the sentence (fixed in messages/digest.py)."""
    folder = write_export(tmp_path / "ru", ExportSpec(seed=9, end=END, absent=frozenset(
        {"leads.first_response_at", "activities.done_at"})))
    rc, out, _err = run_cli("scan", "--data", str(folder), "--now", NOW.isoformat(), "--lang", "ru")
    assert rc == 0
    summary = [ln for ln in out.splitlines() if "проверено не полностью" in ln.lower()]
    assert summary, out[-1500:]
    assert "first_response_at" in summary[0] and "done_at" in summary[0]
    assert "заявки без ответа" in summary[0] and "как касания" in summary[0], summary[0]
    assert "unanswered" not in summary[0] and "touches" not in summary[0], summary[0]


def test_every_switchable_part_has_russian_words():
    from detectors import REGISTRY
    from messages.digest import Checks, unchecked_text

    from detectors.conversion_drop import STAGE_PAIRS
    parts = {(name, n.part) for name, det in REGISTRY.items() for n in det.needs if n.part}
    parts.add(("conversion_drop", STAGE_PAIRS.part))
    for name, part in parts:
        line = f"{part}: not checked, needs column x in y (absent or empty in y.csv)"
        text = unchecked_text(Checks((name,), {}, {name: [line]}), "ru")
        assert part not in text, (name, text)
    # each part's own line, as the scan prints it (an amoCRM export without a stage history)
    from crm.data import CrmData
    import pandas as pd

    derived = CrmData(managers=pd.DataFrame(), deals=pd.DataFrame(), stage_history=pd.DataFrame(),
                      stages=[], stage_history_derived=True, origins={"deals": "Сделки.csv"})
    text = unchecked_text(Checks(("conversion_drop",), {}, {"conversion_drop": [STAGE_PAIRS.line(derived)]}), "ru")
    assert "a real stage history" not in text and "deal outcomes" not in text, text
    assert "история этапов" in text and "Сделки.csv" in text, text


# --- abandoned deals -------------------------------------------------------------------------

def test_deals_left_behind_are_one_hygiene_item_per_manager(tmp_path):
    """40 deals of m2 untouched for 100-190 days: one "look abandoned" item for m2, not 40."""
    folder = write_export(tmp_path / "left", ExportSpec(seed=10, end=END, abandoned=("m2", 40)))
    insights, _ = scan(folder)
    stalled = [i for i in insights if i["detector"] == "stalled_deal"]
    about_left = [i for i in stalled if i["subject"].get("deal_id", "").startswith("x")]
    grouped = [i for i in stalled if i["subject"].get("kind") == "abandoned"]
    assert about_left == [], [i["subject"] for i in about_left][:5]
    assert len(grouped) == 1 and grouped[0]["subject"]["manager_id"] == "m2", [i["subject"] for i in stalled]
    assert "40" in grouped[0]["text"], grouped[0]["text"]
    assert len(stalled) <= 5, [i["subject"] for i in stalled]


# --- no stage history: the win rate from deal outcomes -----------------------------------------

def _realized_win_rates(folder: Path, horizon_days: int, at: datetime, recent: tuple[datetime, datetime]) -> tuple[float, float]:
    """Win rate within the horizon of deals created before the change and in the recent window,
    as the data realized it (the planted factor is a chance, not a promise)."""
    before, now = [0, 0], [0, 0]
    for r in read_rows(folder, "deals"):
        created = datetime.fromisoformat(r["created_at"].replace("Z", "+00:00"))
        won = r["status"] == "won" and datetime.fromisoformat(r["closed_at"].replace("Z", "+00:00")) - created <= timedelta(days=horizon_days)
        side = before if at - timedelta(days=91) <= created < at else now if recent[0] <= created < recent[1] else None
        if side is not None:
            side[0] += won
            side[1] += 1
    return before[0] / before[1], now[0] / now[1]


@pytest.mark.slow
def test_without_stage_history_a_win_rate_drop_is_measured_from_outcomes(tmp_path):
    """No stage_history.csv: stage pairs are said to be unchecked, and a win rate that fell by a
    quarter on 1,000 deals a month (about 14% -> 10.5%) is still found from created_at/closed_at.
    A seed whose data realized less than a 20% relative drop is not a fair case and is left out."""
    at = NOW - timedelta(days=62)
    judged, misses = [], []
    for seed in range(4):
        folder = write_export(tmp_path / f"derived{seed}", ExportSpec(
            seed=seed, end=END, deals_per_month=1000, with_emails=False, absent=frozenset({"stage_history"}),
            effect=Effect(kind="uniform", stage=0, at=at, factor=0.75)))
        b, r = _realized_win_rates(folder, 26, at, (NOW - timedelta(days=54), NOW - timedelta(days=27)))
        if (b - r) / b < 0.2:
            continue
        judged.append(seed)
        insights, err = scan(folder)
        assert "stage-to-stage conversion: not checked" in err
        hits = [i for i in insights if i["detector"] == "conversion_drop" and i["facts"]["to_stage"] == "won"
                and i["facts"]["basis"] == "created"]
        if not hits:
            misses.append(seed)
        assert all(not i["facts"]["drivers"] for i in hits)
    assert len(judged) >= 2, judged
    assert misses == [], (misses, judged)


# --- what the messages claim -------------------------------------------------------------------

def _stalled_text(folder: Path, deal_id: str) -> tuple[dict, str]:
    insights, _ = scan(folder)
    hit = [i for i in insights if i["detector"] == "stalled_deal" and i["subject"].get("deal_id") == deal_id]
    assert len(hit) == 1, [i["subject"] for i in insights]
    return hit[0]["facts"], hit[0]["text"]


def test_stalled_limit_is_the_companys_own_or_said_to_be_the_default(tmp_path):
    """A deal untouched for two weeks: in a normal company the message quotes the learned norm
    (the number in the facts); in a tiny one it says the configured default applies, never
    "deals usually ..." for a number nobody measured."""
    normal = write_export(tmp_path / "normal", ExportSpec(seed=1, end=END, deals_per_month=300, n_managers=3,
                                                          n_teams=1, abandoned=("m2", 1), abandoned_days=(14, 14.5)))
    facts, text = _stalled_text(normal, "x00001")
    assert facts["limit_source"] == "learned" and facts["limit_moves"] >= 30
    assert f"за {facts['stage_limit_days']}\xa0рабоч" in text and "80%" in text and "по умолчанию" not in text, text
    tiny = write_export(tmp_path / "tiny", ExportSpec(seed=1, end=END, deals_per_month=4, n_managers=3, n_teams=1,
                                                      abandoned=("m2", 1), abandoned_days=(14, 14.5)))
    facts, text = _stalled_text(tiny, "x00001")
    assert facts["limit_source"] == "default"
    assert "по умолчанию" in text and "80%" not in text and "обычно" not in text, text


# --- lead SLA: real breaches, and leads someone already handled ---------------------------------

def test_unanswered_leads_are_alerted_but_handled_ones_are_not(tmp_path):
    """With the answer column present, five leads of yesterday morning left unanswered are
    breaches; five more with an empty answer cell but status 'converted' became deals and are not."""
    folder = write_export(tmp_path / "sla", ExportSpec(seed=12, end=END))
    rows = read_rows(folder, "leads")
    morning = datetime(2026, 11, 19, 4, 30, tzinfo=UTC)  # Thu 09:30 Almaty
    for k in range(10):
        rows.append({**rows[0], "lead_id": f"LX{k}", "created_at": (morning + timedelta(minutes=k)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "assigned_at": (morning + timedelta(minutes=k + 5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "manager_id": "m1", "first_response_at": "", "status": "new" if k < 5 else "converted"})
    write_rows(folder, "leads", rows)
    insights, _ = scan(folder)
    # the leads behind the items (m1's five waiting leads are one backlog item)
    waiting = sorted(k for i in insights if i["detector"] == "lead_sla" for k in i["evidence"]["lead_ids"])
    assert waiting == [f"LX{k}" for k in range(5)], waiting


# --- one item per team imbalance ----------------------------------------------------------------

def test_an_imbalance_is_one_item_per_team_with_one_plan(tmp_path):
    """m1 gets 3x the deals and leads, m3 a fifth, in team 1 (m1, m3, m5, m7, m9); team 2 is even.
    One director item for team 1 naming both, over both metrics, with one plan; none for team 2."""
    counts = []
    for seed in range(3):
        folder = write_export(tmp_path / f"tilt{seed}", ExportSpec(
            seed=200 + seed, end=END, n_managers=10, n_teams=2, overloaded="m1", underloaded="m3",
            deals_per_month=300, leads_per_month=300))
        insights, _ = scan(folder)
        load = [i for i in insights if i["detector"] == "manager_load"]
        counts.append(len(load))
        assert [i["subject"]["team"] for i in load] == ["Команда 1"], [i["subject"] for i in load]
        f = load[0]["facts"]
        over = {r["manager_id"] for r in f["over"]}
        under = {r["manager_id"] for r in f["under"]}
        assert over == {"m1"} and under <= {"m3"}, (over, under)
        assert {r["metric"] for r in f["over"]} == {"open_deals", "new_leads"}
        check_plan(f)
        named = over | under | {mv[k] for moves in f["plan"].values() for mv in moves
                                for k in ("from_manager_id", "to_manager_id")}
        assert named <= {"m1", "m3", "m5", "m7", "m9"}, named
    assert counts == [1, 1, 1]


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "manager_load over a 4-month daily replay of randomly routed teams of three: 1 of 4 companies raises "
    "items (before the window-earlier persistence check: 2 of 4, seed 25 with 2 days, 1 alert). "
    "Slow-pipeline seed 22: m4 has 6-9 new leads in 28 days against a median of 15-23 (q 0.004-0.048) "
    "on 25 replayed days (4-29 Sep), 4 alerts; a window earlier m4 was below the band too. Over the 9 "
    "weeks 27 Jul - 27 Sep m4 got 19 of the team's 118 leads against 56 and 43 (binomial P <= 2e-5 for "
    "a 1/3 share): a chance run, not the generator's doing (_export_factory routes every lead on its own, "
    "uniformly over the working managers; over all 120 days m4 got 67 against 80-96). It looks in two "
    "disjoint windows just like a real, lasting imbalance. Stricter persistence measured on 150 routed "
    "teams replayed daily (3, 5, 10 people) and a 3x tilt (found after 34-51 days): outside the band "
    "14 or 14 and 21 days back too changes nothing (seed 22 still 25 days); flagged 14 days back too: "
    "19 days, 4 -> 2 of 150 teams, tilt +0-6 days; significant a window back too: 7 days, 4 -> 3, +0-3; "
    "outside the band two windows (56 days) back too silences seed 22 but finds the tilt only after "
    "62-79 days"))
def test_daily_replay_of_randomly_routed_teams_raises_no_load_item(tmp_path):
    found = {}
    specs = {"slow22": ExportSpec(seed=22, end=END, days=300, n_managers=6, deals_per_month=200,
                                  stage_days=(3, 8, 12, 10, 6), touch_every=(2.0, 10.0))}
    specs.update({f"even{s}": ExportSpec(seed=s, end=END, days=300, n_managers=6, deals_per_month=200)
                  for s in (23, 24, 25)})
    for name, spec in specs.items():
        folder = write_export(tmp_path / name, spec)
        rc, out, err = run_cli("backtest", "--data", str(folder), "--from", "2026-07-20", "--to", "2026-11-19",
                               "--format", "json")
        assert rc == 0, err
        v = json.loads(out)["detectors"]["manager_load"]
        found[name] = (v["insights_before_dedup"], v["alerts"])
    assert all(n == 0 for n, _a in found.values()), found


def test_moscow_company_after_the_long_russian_new_year_break(tmp_path):
    """Europe/Moscow without a country: the RU calendar (1-8 Jan 2027 off, then the weekend)
    comes from the timezone. Scanned on Monday 11 Jan before work: nothing stalled, no lead
    waiting; with official holidays switched off (and no days off learned from the data) the
    same export shows both. With official holidays off but days off learned (the default), the
    empty days of the export say the same as the RU calendar."""
    end = datetime(2027, 1, 11, 5, 30, tzinfo=UTC)
    with_cal, without, learned = Counter(), Counter(), Counter()
    for seed in range(2):
        folder = write_export(tmp_path / f"msk{seed}", ExportSpec(
            seed=seed, end=end, days=200, touch_every=(1.0, 3.0), stage_days=(1.0, 1.5, 2.0, 2.0, 1.5),
            holiday=(date(2027, 1, 1), date(2027, 1, 10))))
        cfg = folder.parent / f"msk{seed}.toml"
        cfg.write_text(f'timezone = "Europe/Moscow"\n[source]\nkind = "files"\npath = "./{folder.name}"\n', encoding="utf-8")
        with_cal.update(by_detector(scan(folder, now=end, config=cfg)[0]))
        off = folder.parent / f"msk{seed}-off.toml"
        off.write_text(cfg.read_text(encoding="utf-8") + '[calendar]\ncountry = "none"\nlearn_days_off = false\n',
                       encoding="utf-8")
        without.update(by_detector(scan(folder, now=end, config=off)[0]))
        from_data = folder.parent / f"msk{seed}-data.toml"
        from_data.write_text(cfg.read_text(encoding="utf-8") + '[calendar]\ncountry = "none"\n', encoding="utf-8")
        insights, err = scan(folder, now=end, config=from_data)
        learned.update(by_detector(insights))
        assert "no work recorded on 1 Jan, 4-8 Jan 2027: counted as days off" in err, err
    assert with_cal["stalled_deal"] <= 5 and with_cal["lead_sla"] == 0, with_cal
    assert without["lead_sla"] > 0 and without["stalled_deal"] > with_cal["stalled_deal"], without
    assert learned == with_cal, (learned, with_cal)


def test_almaty_company_that_also_rests_31_dec_and_5_jan_nobody_declared(tmp_path):
    """Asia/Almaty (KZ calendar: 1-2 Jan official) whose people also rest on 31 Dec and 5 Jan
    (working days in KZ) without saying so in config. Scanned on Tuesday 6 Jan 2026 at 09:30:
    the empty days count as days off, so nothing is stalled and no lead waits, as on an
    ordinary morning; check-config and the scan name the days. With learn_days_off = false
    the same export shows both, as it did before."""
    end = datetime(2026, 1, 6, 4, 30, tzinfo=UTC)
    learned, plain = Counter(), Counter()
    for seed in range(2):
        folder = write_export(tmp_path / f"kz{seed}", ExportSpec(
            seed=seed, end=end, days=200, touch_every=(1.0, 3.0), stage_days=(1.0, 1.5, 2.0, 2.0, 1.5),
            holiday=(date(2025, 12, 31), date(2026, 1, 5))))
        insights, err = scan(folder, now=end, config=config_for(folder))
        learned.update(by_detector(insights))
        said = "no work recorded on 31 Dec 2025, 5 Jan 2026: counted as days off"
        assert said in err and said in check_config(folder, now=end), err
        off = config_for(folder, "[calendar]\nlearn_days_off = false")
        plain.update(by_detector(scan(folder, now=end, config=off)[0]))
        assert "counted as days off" not in check_config(folder, now=end, extra="[calendar]\nlearn_days_off = false")
    assert learned["stalled_deal"] <= 2 and learned["lead_sla"] == 0, learned
    # (more than 3 waiting leads of one kind for one person are one backlog item)
    assert plain["lead_sla"] > 10 and plain["stalled_deal"] > learned["stalled_deal"], plain


def test_the_stale_data_reason_has_russian_words():
    """A manager's digest on a stale day says what could not be checked: in Russian, all of it
    (the reason came out in English inside the Russian sentence)."""

    import pandas as pd

    from bot.pipeline import stale_line
    from crm.freshness import Freshness
    from detectors.working_hours import company_calendar
    from messages.digest import Checks, nothing_found_text

    now = datetime(2026, 3, 2, 7, 0, tzinfo=timezone.utc)
    newest = pd.Timestamp("2026-02-13T14:57:00Z")
    fresh = Freshness(newest, "deals", "deals.csv", now - newest.to_pydatetime())
    why = stale_line(fresh, 3, "Europe/Moscow", now, company_calendar("Europe/Moscow"))
    assert why and why.startswith("the data is 16.7 days old")
    text = nothing_found_text(Checks(("stalled_deal", "conversion_drop"), {"stalled_deal": why}, {}), "ru")
    assert "данные устарели" in text and "2026-02-13 17:57 в deals.csv" in text, text
    assert "the data" not in text and "export fresh" not in text, text
    assert nothing_found_text(Checks(("stalled_deal",), {"stalled_deal": why}, {}), "en").count("the data is") == 1

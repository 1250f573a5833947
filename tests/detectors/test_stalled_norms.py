"""stalled_deal on the company's own norm: idle time in working days of the company calendar
(official holidays from the timezone's country), each stage's limit learned from history with
censoring and without looking past `now`, and abandoned deals grouped per manager."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from _builders_b import crm, deal
from bot.config import parse_config
from detectors.stalled_deal import StalledDealSpec, detect, detect_at, prepare
from detectors.working_hours import WorkCalendar, company_calendar
from messages.render import insight_text as _text

ALMATY = ZoneInfo("Asia/Almaty")
KZ = company_calendar("Asia/Almaty")  # country from the timezone
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=ALMATY)  # a Friday


def at(d: date, hh: int = 11) -> datetime:
    return datetime.combine(d, time(hh), tzinfo=ALMATY)


def back(n: int, *, from_day: date = NOW.date(), cal: WorkCalendar = KZ) -> date:
    """The working day `n` working days before `from_day` on the calendar (so idle counts are exact)."""
    d = np.busday_offset(np.datetime64(from_day, "D"), -n, roll="backward", weekmask=cal._weekmask, holidays=cal._holidays)
    return d.astype(date)


def spec(**kw) -> StalledDealSpec:
    return StalledDealSpec(**({"calendar": KZ} | kw))


def insight_text(insight, lang: str) -> str:
    return _text(insight, lang).replace("\xa0", " ")


def stalled(found):
    return {i.subject["deal_id"]: i for i in found if i.facts.get("kind") == "stalled"}


# --- the calendar --------------------------------------------------------------------------

def test_official_holidays_and_transferred_working_days_come_from_the_country():
    days = np.array(["2026-01-01", "2026-01-02", "2026-01-05", "2026-01-07", "2025-01-05", "2026-12-16"],
                    dtype="datetime64[D]")
    assert KZ.country == "KZ"
    assert KZ.is_working_day(days).tolist() == [False, False, True, False, True, False]  # 2025-01-05: a worked Sunday
    ru = company_calendar("Europe/Moscow")
    assert ru.country == "RU" and not ru.is_working_day(np.array(["2026-01-08"], dtype="datetime64[D]"))[0]
    assert ru.is_working_day(np.array(["2024-12-28"], dtype="datetime64[D]"))[0]  # a Saturday worked in Russia
    us = company_calendar("America/New_York")  # the federal holidays: Christmas on a Friday, no Boxing Day
    assert us.country == "US"
    assert us.is_working_day(np.array(["2026-12-25", "2026-12-28", "2027-01-01"], dtype="datetime64[D]")).tolist() == [
        False, True, False]
    assert company_calendar("Europe/Berlin").country == "DE"
    assert company_calendar("Etc/UTC").country is None
    off = company_calendar("Asia/Almaty", country="none")
    assert off.is_working_day(np.array(["2026-01-02"], dtype="datetime64[D]"))[0]
    extra = company_calendar("Asia/Almaty", days_off=(date(2026, 12, 30),), working_days=(date(2026, 12, 26),))
    assert extra.is_working_day(np.array(["2026-12-30", "2026-12-26"], dtype="datetime64[D]")).tolist() == [False, True]
    # Working days from 30 Dec (counted) to 5 Jan (not): 30 and 31 Dec only; the worked Saturday adds one.
    n = KZ.working_day_number(np.array(["2025-12-30", "2026-01-05"], dtype="datetime64[D]"))
    assert n[1] - n[0] == 2
    n = extra.working_day_number(np.array(["2026-12-24", "2026-12-29"], dtype="datetime64[D]"))
    assert n[1] - n[0] == 4  # Thu, Fri, the worked Saturday, Mon


def new_year_company():
    """150 open deals, each touched by a call every 3 days through 31 December (phases differ),
    sitting at one stage since November; scanned on Monday 5 January, the first working day."""
    deals, history, calls = [], [], []
    for k in range(150):
        deal_id = f"d{k}"
        deals.append(deal(deal_id, stage="Переговоры", created=at(date(2025, 10, 20)), manager_id=f"m{k % 2 + 1}"))
        history.append({"deal_id": deal_id, "stage": "Переговоры", "entered_at": at(date(2025, 11, 3))})
        last = date(2025, 12, 31) - timedelta(days=k % 3)
        for j in range(12):
            calls.append({"activity_id": f"a{k}-{j}", "deal_id": deal_id, "manager_id": "m1", "type": "call",
                          "done_at": at(last - timedelta(days=3 * j), 10 + j % 6)})
    return crm(deals=deals, stage_history=history, activities=calls)


def test_new_year_holidays_do_not_make_every_deal_stall_on_the_first_day_back():
    data = new_year_company()
    first_day = at(date(2026, 1, 5), 9)
    # A plain config in Almaty (no [calendar]) already knows Kazakhstan's holidays.
    config = parse_config('[detectors.stalled_deal]\ndefault_limit_days = 3\n')
    plain = config.detector_specs()["stalled_deal"]
    assert plain.calendar.country == "KZ"
    assert len(detect(data, plain, first_day)) <= 5
    # The same company with the holidays switched off: 1 and 2 January count as working days,
    # and two thirds of the deals (last touched on 29 or 30 December) look stalled.
    no_holidays = parse_config('[calendar]\ncountry = "none"\n[detectors.stalled_deal]\ndefault_limit_days = 3\n')
    flooded = detect(data, no_holidays.detector_specs()["stalled_deal"], first_day)
    assert len(flooded) >= 90


# --- learned limits ------------------------------------------------------------------------

def two_speed_pipeline(n: int = 60, *, end: date = NOW.date(), extra_open=()):
    """`n` finished deals went through Квалификация in 2-3 working days and Переговоры in 13-15;
    plus the open deals given as (deal_id, stage, working days since entering it)."""
    deals, history = [], []
    for k in range(n):
        start = back(40 + 3 * k, from_day=end)
        q_days, p_days = 2 + k % 2, 13 + k % 3
        p_start = np.busday_offset(np.datetime64(start, "D"), q_days, weekmask=KZ._weekmask,
                                   holidays=KZ._holidays).astype(date)
        won = np.busday_offset(np.datetime64(p_start, "D"), p_days, weekmask=KZ._weekmask,
                               holidays=KZ._holidays).astype(date)
        deal_id = f"w{k}"
        deals.append(deal(deal_id, stage="Договор", status="won", created=at(start, 9), closed_at=at(won, 15)))
        history += [{"deal_id": deal_id, "stage": "Квалификация", "entered_at": at(start)},
                    {"deal_id": deal_id, "stage": "Переговоры", "entered_at": at(p_start)},
                    {"deal_id": deal_id, "stage": "Договор", "entered_at": at(won, 15)}]
    for deal_id, stage, idle in extra_open:
        entered = back(idle, from_day=end)
        deals.append(deal(deal_id, stage=stage, created=at(entered, 9), manager_id="m2"))
        history.append({"deal_id": deal_id, "stage": stage, "entered_at": at(entered)})
    return crm(deals=deals, stage_history=history)


OPEN = [("q1", "Квалификация", 6), ("p1", "Переговоры", 10), ("p2", "Переговоры", 20)]


def test_each_stage_learns_its_own_limit_and_says_so():
    found = stalled(detect(two_speed_pipeline(extra_open=OPEN), spec(), NOW))
    assert set(found) == {"q1", "p2"}  # p1 waited 10 working days where deals take up to 15
    q1, p2 = found["q1"].facts, found["p2"].facts
    assert (q1["stage_limit_days"], q1["limit_source"], q1["learned_days"], q1["days_idle"]) == (3, "learned", 3, 6)
    assert (p2["stage_limit_days"], p2["limit_source"], p2["days_idle"]) == (15, "learned", 20)
    assert q1["limit_moves"] == 60 and q1["limit_bound"] is None
    assert found["p2"].severity == "critical" and found["q1"].severity == "warning"  # escalate_after_days = 15
    en = insight_text(found["q1"], "en")
    assert "80% of deals that move on from this stage do so within 3 working days" in en
    assert "this one has waited 6 working days" in en and "usually" not in en
    ru = insight_text(found["p2"], "ru")
    assert "80% сделок уходят с этого этапа за 15 рабочих дней или быстрее" in ru


def test_a_higher_quantile_or_a_floor_moves_the_limit():
    data = two_speed_pipeline(extra_open=[("q1", "Квалификация", 3), ("q2", "Квалификация", 5)])
    assert set(stalled(detect(data, spec(), NOW))) == {"q2"}
    floored = stalled(detect(data, spec(min_limit_days=4), NOW))["q2"].facts
    assert (floored["stage_limit_days"], floored["learned_days"], floored["limit_bound"]) == (4, 3, "min")
    assert "configured minimum, 4 working days" in insight_text(stalled(detect(data, spec(min_limit_days=4), NOW))["q2"], "en")


def test_deals_still_waiting_are_censored_not_ignored():
    """40 deals left the stage within 2 working days, 60 are still there after 20: the stage is
    slow (most deals have not moved on), not a 2-day stage with 60 stalled deals."""
    deals, history = [], []
    for k in range(40):
        start = back(60 + k)
        deals.append(deal(f"f{k}", stage="Переговоры", status="lost", created=at(start, 9),
                          closed_at=at(back(58 + k), 15)))
        history += [{"deal_id": f"f{k}", "stage": "КП отправлено", "entered_at": at(start)},
                    {"deal_id": f"f{k}", "stage": "Переговоры", "entered_at": at(back(58 + k))}]
    for k in range(60):
        deals.append(deal(f"s{k}", stage="КП отправлено", created=at(back(20), 9)))
        history.append({"deal_id": f"s{k}", "stage": "КП отправлено", "entered_at": at(back(20))})
    deals.append(deal("old", stage="КП отправлено", created=at(back(35), 9)))
    history.append({"deal_id": "old", "stage": "КП отправлено", "entered_at": at(back(35))})
    found = stalled(detect(crm(deals=deals, stage_history=history), spec(), NOW))
    assert set(found) == {"old"}  # a naive quantile of the 40 moves (2 days) would flag all 61
    f = found["old"].facts
    assert (f["stage_limit_days"], f["limit_bound"], f["learned_days"], f["limit_moves"]) == (30, "max", None, 40)
    assert "More than 20% of deals stay at this stage longer than 30 working days" in insight_text(found["old"], "en")


def test_a_configured_limit_overrides_learning_and_is_called_a_setting():
    found = stalled(detect(two_speed_pipeline(extra_open=OPEN), spec(stage_limits={"Переговоры": 7}), NOW))
    assert set(found) == {"q1", "p1", "p2"}
    p1 = found["p1"]
    assert (p1.facts["stage_limit_days"], p1.facts["limit_source"]) == (7, "configured")
    for lang, said in (("en", "The limit set for this stage is 7 working days"),
                       ("ru", "Срок для этого этапа задан в настройках — 7 рабочих дней")):
        text = insight_text(p1, lang)
        assert said in text and "usually" not in text and "обычно" not in text
    assert found["q1"].facts["limit_source"] == "learned"


def test_too_few_moves_falls_back_to_the_default_and_says_why():
    found = stalled(detect(two_speed_pipeline(n=12, extra_open=OPEN), spec(), NOW))
    p1 = found["p1"]  # 10 working days > the default 5
    assert (p1.facts["limit_source"], p1.facts["stage_limit_days"], p1.facts["limit_moves"]) == ("default", 5, 12)
    assert "too little history to learn this stage's usual pace (12 moves on, 30 needed)" in insight_text(p1, "en")


def test_a_replay_day_learns_only_from_history_before_it():
    """Deals took 2-3 working days at Квалификация until day D, 15-17 after; on D the limit is 3,
    the same as a scan of the data cut at D, and only later does it grow."""
    day = back(120)
    early = two_speed_pipeline(n=40, end=day)
    deals = early.deals.to_dict("records")
    history = early.stage_history.to_dict("records")
    for k in range(40):  # slow deals entering after D (they are all in the future of D)
        start = back(100 - 2 * k) if 100 - 2 * k > 0 else NOW.date()
        end = np.busday_offset(np.datetime64(start, "D"), 15 + k % 3, weekmask=KZ._weekmask, holidays=KZ._holidays)
        moved = end.astype(date)
        if moved >= NOW.date():
            continue
        deals.append(deal(f"late{k}", stage="Переговоры", status="lost", created=at(start, 9), closed_at=at(moved, 16)))
        history += [{"deal_id": f"late{k}", "stage": "Квалификация", "entered_at": at(start)},
                    {"deal_id": f"late{k}", "stage": "Переговоры", "entered_at": at(moved)}]
    entered = back(6, from_day=day)
    deals.append(deal("probe", stage="Квалификация", created=at(entered, 9), manager_id="m2"))
    history.append({"deal_id": "probe", "stage": "Квалификация", "entered_at": at(entered)})
    recent = back(20)  # a deal that enters long after D, to read the limit as of NOW
    deals.append(deal("probe2", stage="Квалификация", created=at(recent, 9), manager_id="m2"))
    history.append({"deal_id": "probe2", "stage": "Квалификация", "entered_at": at(recent)})
    data = crm(deals=deals, stage_history=history)
    state = prepare(data, spec())
    on_day = at(day, 12)
    replayed = stalled(detect_at(state, on_day))
    assert replayed["probe"].facts["stage_limit_days"] == 3
    cut = crm(deals=[d for d in deals if d["created_at"] <= on_day],
              stage_history=[h for h in history if h["entered_at"] <= on_day])
    assert stalled(detect(cut, spec(), on_day))["probe"].facts == replayed["probe"].facts
    assert "probe2" not in replayed
    later = stalled(detect_at(state, NOW))["probe2"].facts
    assert later["limit_source"] == "learned" and 15 <= later["stage_limit_days"] < 20  # the slow deals are history now


# --- abandoned deals -----------------------------------------------------------------------

def test_deals_idle_far_beyond_the_limit_are_one_item_per_manager():
    deals, history = [], []
    for k in range(400):
        entered = back(100 + k % 50)
        deals.append(deal(f"old{k}", stage="Переговоры" if k % 4 else "КП отправлено", created=at(entered, 9)))
        history.append({"deal_id": f"old{k}", "stage": deals[-1]["stage"], "entered_at": at(entered)})
    for k in range(3):
        deals.append(deal(f"fresh{k}", stage="Переговоры", manager_id="m2", created=at(back(8 + k), 9)))
        history.append({"deal_id": f"fresh{k}", "stage": "Переговоры", "entered_at": at(back(8 + k))})
    # m1 still works (a deal won last week): their old deals are theirs to clean up
    deals.append(deal("won1", stage="Переговоры", status="won", created=at(back(30), 9), closed_at=at(back(5), 9)))
    found = detect(crm(deals=deals, stage_history=history), spec(), NOW)
    abandoned = [i for i in found if i.facts["kind"] == "abandoned"]
    assert len(found) == 4 and len(abandoned) == 1
    (item,) = abandoned
    assert item.audience.role == "manager" and item.audience.manager_id == "m1"
    assert item.facts["escalated"] is False and item.severity == "info"
    assert item.facts["deals"] == 400 and item.facts["oldest_days_idle"] == 149
    assert item.facts["by_stage"] == {"Переговоры": 300, "КП отправлено": 100}
    assert [e["days_idle"] for e in item.facts["examples"]] == [149] * 5
    assert len(item.evidence["deal_ids"]) == 400
    assert {i.subject["deal_id"] for i in found if i.facts["kind"] == "stalled"} == {"fresh0", "fresh1", "fresh2"}
    assert "Deals that look abandoned: 400" in insight_text(item, "en")
    # The item keeps its identity as the count changes, so it is not re-sent as new every day.
    fewer = detect(crm(deals=deals[50:], stage_history=history[50:]), spec(), NOW)
    assert [i.fingerprint for i in fewer if i.facts["kind"] == "abandoned"] == [item.fingerprint]
    # Without that deal m1 did nothing in 90 days: in an export without the `active` column that
    # is a person who left, and the deals are one item for the director to hand over
    gone = [i for i in detect(crm(deals=deals[:-1], stage_history=history), spec(), NOW) if i.facts["kind"] == "abandoned"]
    assert [(i.audience.role, i.facts["owner_gone"], i.facts["deals"]) for i in gone] == [("director", "idle", 400)]
    ru = insight_text(gone[0], "ru")
    assert "без работы в CRM" in ru and "За последние 90 дней" in ru and "Передайте" in ru, ru
    # a replay (prepared once, every event sorted) says the same as the scan (latest work only)
    from detectors.stalled_deal import detect_at, prepare
    data = crm(deals=deals[:-1], stage_history=history)
    state = prepare(data, spec())
    for days in (0, 20, 60):
        then = NOW - timedelta(days=days)
        assert [i.to_dict() for i in detect_at(state, then)] == [i.to_dict() for i in detect(data, spec(), then)], days


def test_a_derived_history_teaches_nothing():
    """Without a real stage history (derived from the deals: one made-up stay each), the time
    from creation to closing is not a stage's pace: the default limit applies, and says so."""
    import dataclasses

    data = two_speed_pipeline(extra_open=OPEN)
    calls = [{"activity_id": "a1", "deal_id": "p1", "manager_id": "m2", "type": "call", "done_at": at(back(9))}]
    derived = dataclasses.replace(crm(deals=data.deals.to_dict("records"), stage_history=data.stage_history.to_dict("records"),
                                      activities=calls), stage_history_derived=True)
    found = stalled(detect(derived, spec(), NOW))
    assert {f.facts["limit_source"] for f in found.values()} == {"default"}
    assert found["p1"].facts["days_idle"] == 9 and found["p1"].facts["limit_moves"] == 0


def test_a_replay_and_single_scans_agree_on_learned_limits_day_by_day():
    data = two_speed_pipeline(extra_open=OPEN + [("x1", "Квалификация", 40), ("x2", "Переговоры", 45)])
    state = prepare(data, spec())
    days = [NOW - timedelta(days=d) for d in (60, 45, 30, 20, 12, 5, 0)]
    seen = set()
    for now in days + days[::-1]:
        single = [(i.subject, i.facts, i.severity) for i in detect(data, spec(), now)]
        assert [(i.subject, i.facts, i.severity) for i in detect_at(state, now)] == single
        seen |= {(f["kind"], f.get("limit_source")) for _, f, _ in single}
    assert {("stalled", "learned"), ("abandoned", None)} <= seen

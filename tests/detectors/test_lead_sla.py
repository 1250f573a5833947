"""lead_sla counts waiting in working hours and reports only leads still waiting beyond the SLA;
the working-hours arithmetic is checked on weekends, holidays, nights and DST."""
from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from _builders_b import crm
from detectors.lead_sla import LeadSlaSpec, detect
from detectors.working_hours import WorkCalendar, company_calendar
from messages.render import insight_text

ALMATY = ZoneInfo("Asia/Almaty")


def at(day: int, hh: int, mm: int = 0, month: int = 11, tz=ALMATY, year: int = 2026) -> datetime:
    return datetime(year, month, day, hh, mm, tzinfo=tz)


def hours(cal: WorkCalendar, start: datetime, end: datetime) -> float:
    return float(cal.hours_between(pd.DatetimeIndex([start]), pd.DatetimeIndex([end]))[0])


# --- working hours --------------------------------------------------------------------------

CAL = WorkCalendar(timezone="Asia/Almaty", holidays=(date(2026, 12, 16),))


def test_same_day_and_outside_hours():
    assert hours(CAL, at(23, 10), at(23, 12, 30)) == 2.5  # Monday
    assert hours(CAL, at(23, 7), at(23, 20)) == 9.0  # the whole working day, nothing before or after
    assert hours(CAL, at(23, 19), at(23, 23)) == 0.0


def test_overnight_counts_only_working_hours():
    assert hours(CAL, at(23, 17), at(24, 10)) == 2.0
    assert hours(CAL, at(23, 20), at(24, 9, 30)) == 0.5


def test_weekend_does_not_count():
    assert hours(CAL, at(27, 17), at(30, 10)) == 2.0  # Friday 17:00 -> Monday 10:00
    assert hours(CAL, at(28, 12), at(29, 15)) == 0.0  # inside the weekend
    six_day_week = WorkCalendar(timezone="Asia/Almaty", workdays=(1, 2, 3, 4, 5, 6))
    assert hours(six_day_week, at(27, 17), at(30, 10)) == 11.0


def test_holiday_does_not_count():
    # Tuesday 15 Dec 17:00 -> Thursday 17 Dec 10:00 with Independence Day on the 16th.
    assert hours(CAL, at(15, 17, month=12), at(17, 10, month=12)) == 2.0
    assert hours(WorkCalendar(timezone="Asia/Almaty"), at(15, 17, month=12), at(17, 10, month=12)) == 11.0


def test_a_week_is_45_hours_whatever_the_zone():
    for tz in ("Asia/Almaty", "Europe/Moscow", "UTC", "America/New_York"):
        cal = WorkCalendar(timezone=tz)
        z = ZoneInfo(tz)
        assert hours(cal, at(23, 12, tz=z), at(30, 12, tz=z)) == 45.0


def test_dst_changes_neither_add_nor_remove_working_time():
    berlin = ZoneInfo("Europe/Berlin")
    cal = WorkCalendar(timezone="Europe/Berlin")
    # Clocks go forward on Sunday 29 March 2026 and back on Sunday 25 October 2026.
    assert hours(cal, at(27, 17, month=3, tz=berlin), at(30, 10, month=3, tz=berlin)) == 2.0
    assert hours(cal, at(23, 17, month=10, tz=berlin), at(26, 10, month=10, tz=berlin)) == 2.0
    # The instants may come in UTC: the local wall clock is what counts.
    start = at(27, 17, month=3, tz=berlin).astimezone(ZoneInfo("UTC"))
    assert hours(cal, start, at(30, 10, month=3, tz=berlin)) == 2.0


def test_missing_or_reversed_instants():
    got = CAL.hours_between(pd.DatetimeIndex([at(23, 10), pd.NaT, at(24, 10)], tz="UTC"),
                            pd.DatetimeIndex([at(23, 11), at(23, 11), at(23, 10)], tz="UTC"))
    assert got[0] == 1.0 and np.isnan(got[1]) and got[2] == 0.0


def test_calendar_mistakes_are_clear():
    with pytest.raises(ValueError, match="work_start 18:00 must be before work_end 09:00"):
        WorkCalendar(work_start=time(18), work_end=time(9))
    with pytest.raises(ValueError, match="unknown timezone 'Asia/Almati'"):
        WorkCalendar(timezone="Asia/Almati")
    with pytest.raises(ValueError, match="workdays"):
        WorkCalendar(workdays=(1, 8))
    with pytest.raises(ValueError, match="unknown country 'KZZ'"):
        WorkCalendar(country="KZZ")
    # The calendar is the shared [calendar] section now: its keys under the detector are refused.
    with pytest.raises(ValidationError, match="workdays"):
        LeadSlaSpec(workdays=[1, 2, 3])


# --- the detector ---------------------------------------------------------------------------

NOW = at(27, 14)  # Friday 14:00 in Almaty


def lead(lead_id: str, created: datetime, *, manager_id: str | None = None, assigned: datetime | None = None,
         responded: datetime | None = None, status: str | None = "new") -> dict:
    return {"lead_id": lead_id, "created_at": created, "source": "сайт", "region": "Алматы", "manager_id": manager_id,
            "assigned_at": assigned, "first_response_at": responded, "status": status}


# a lead answered at NOW: the data is a live sync, its leads are judged at NOW
LIVE = lead("LIVE", at(27, 13, 50), manager_id="m1", responded=at(27, 14))


def leads_data(*extra: dict):
    return crm(leads=[*extra,
        lead("L1", at(27, 11)),                                              # no manager for 3 h -> unassigned
        lead("L2", at(27, 13, 30)),                                          # 0.5 h: within the SLA
        lead("L3", at(26, 10), manager_id="m1", assigned=at(26, 10, 10)),     # 13 working hours, no answer -> escalated
        lead("L4", at(27, 12), manager_id="m2", assigned=at(27, 12, 5), responded=at(27, 12, 30)),  # answered
        lead("L5", at(27, 10), manager_id="m2"),                             # auto-assigned, 4 h without answer
        lead("L6", at(17, 10)),                                              # ten days old: abandoned, not reported
        lead("L7", at(27, 9), status="Spam"),                               # spam is ignored
        lead("L8", at(26, 17, 30)),                                          # 5.5 working hours overnight, unassigned
        lead("L9", at(26, 10), manager_id="m1", responded=at(27, 13)),      # answered late: history, not an alert
        lead("L10", at(27, 11), manager_id="m1", responded=at(27, 15)),     # the answer comes after now
        lead("L11", at(27, 9), manager_id="m2", assigned=at(27, 16)),       # assigned only after now
        LIVE,
    ])


def test_only_leads_still_waiting_beyond_the_sla():
    found = {i.subject["lead_id"]: i for i in detect(leads_data(), LeadSlaSpec(), NOW)}
    assert {k: v.subject["kind"] for k, v in found.items()} == {
        "L1": "unassigned", "L3": "unanswered", "L5": "unanswered", "L8": "unassigned", "L10": "unanswered",
        "L11": "unassigned",
    }
    l1 = found["L1"]
    assert l1.audience.role == "director" and l1.severity == "warning"
    assert l1.facts == {"kind": "unassigned", "lead_source": "сайт", "lead_region": "Алматы",
                        "created_at": at(27, 11).astimezone(ZoneInfo("UTC")).isoformat(), "working_hours_waited": 3.0,
                        "sla_hours": 1.0, "manager_id": None, "manager_name": None, "owner_gone": None,
                        "escalated": False}
    l3 = found["L3"]
    assert l3.facts["working_hours_waited"] == 13.0 and l3.facts["sla_hours"] == 2.0
    assert l3.severity == "critical" and l3.facts["escalated"] is True
    assert l3.audience.role == "manager" and l3.audience.manager_id == "m1" and l3.facts["manager_name"] == "Айгерим Садыкова"
    assert found["L8"].facts["working_hours_waited"] == 5.5 and found["L8"].severity == "warning"
    assert found["L11"].facts["manager_id"] is None  # who it went to later is not known at `now`
    assert l1.evidence == {"lead_ids": ["L1"]}


def test_holiday_and_weekend_stop_the_clock():
    spec = LeadSlaSpec(calendar=company_calendar("Asia/Almaty", days_off=(date(2026, 11, 27),)))
    found = {i.subject["lead_id"] for i in detect(leads_data(), spec, NOW)}
    # Friday is a holiday: only Thursday counts. L3 waited Thursday 10-18 (8 h), L8 only
    # Thursday 17:30-18:00 (0.5 h, within the 1 h SLA).
    assert found == {"L3"}
    # Saturday noon, a web form's lead of 11:50 in the data: L1 (Friday 11:00) has waited 7 h, not 25.
    sat = {i.subject["lead_id"]: i for i in detect(leads_data(lead("S1", at(28, 11, 50))), LeadSlaSpec(), at(28, 12))}
    assert sat["L1"].facts["working_hours_waited"] == 7.0


def test_kind_moves_from_unassigned_to_unanswered_with_a_new_fingerprint():
    data = leads_data()
    before = {i.subject["lead_id"]: i for i in detect(data, LeadSlaSpec(), NOW)}["L11"]
    after = {i.subject["lead_id"]: i for i in detect(data, LeadSlaSpec(), at(27, 17))}["L11"]
    assert (before.subject["kind"], after.subject["kind"]) == ("unassigned", "unanswered")
    assert before.fingerprint != after.fingerprint
    assert after.audience.manager_id == "m2"


def test_thresholds_come_from_the_spec():
    data = leads_data()
    # the leads behind the items (more than MAX_LEADS_EACH for one recipient are one backlog item)
    strict = {k for i in detect(data, LeadSlaSpec(assign_sla_hours=0.25, response_sla_hours=0.25), NOW)
              for k in i.evidence["lead_ids"]}
    assert "L2" in strict
    loose = detect(data, LeadSlaSpec(assign_sla_hours=6, response_sla_hours=20), NOW)
    assert loose == []
    older = {k for i in detect(data, LeadSlaSpec(lookback_days=30), NOW) for k in i.evidence["lead_ids"]}
    assert "L6" in older


def test_a_backlog_of_waiting_leads_is_one_item_per_recipient():
    """A manager who fell behind on a busy inbox got one item per lead (7 a day on a 1,500-lead
    month) and the director each again once escalated. More than MAX_LEADS_EACH leads of one kind
    for one recipient are one item: how many, the longest waits first, how many escalated; a
    manager with few waiting leads keeps one item per lead."""
    from detectors.lead_sla import MAX_LISTED, LeadSlaSpec
    MAX_LEADS_EACH = LeadSlaSpec().max_leads_each
    from messages.render import insight_text

    behind = [lead(f"B{k}", at(26, 12) + pd.Timedelta(hours=k), manager_id="m1") for k in range(7)]  # 11 .. 5 working h
    unowned = [lead(f"U{k}", at(27, 9, 30) + pd.Timedelta(minutes=10 * k)) for k in range(MAX_LEADS_EACH + 1)]
    few = [lead("F1", at(27, 10), manager_id="m2"),
           lead("F2", at(27, 10), manager_id="m2", responded=at(27, 10, 20))]  # answers are known
    found = detect(crm(leads=behind + unowned + few + [LIVE]), LeadSlaSpec(), NOW)
    by_kind = {(i.subject["kind"], bool(i.subject.get("backlog")), i.audience.manager_id): i for i in found}
    assert set(by_kind) == {("unanswered", True, "m1"), ("unassigned", True, None), ("unanswered", False, "m2")}, by_kind
    mine = by_kind[("unanswered", True, "m1")]
    assert mine.facts["leads"] == 7 and mine.facts["backlog"] is True
    waits = [x["working_hours_waited"] for x in mine.facts["listed"]]
    assert len(waits) == MAX_LISTED and waits == sorted(waits, reverse=True)
    assert mine.facts["working_hours_waited"] == waits[0] and mine.evidence["lead_ids"][0] == "B0"
    assert mine.facts["escalated_leads"] == 4 and mine.severity == "critical"  # B0-B3 waited 8 working hours or more
    nobody = by_kind[("unassigned", True, None)]
    assert nobody.audience.role == "director" and nobody.facts["leads"] == 4
    ru, en = (insight_text(mine, lang).replace("\xa0", " ") for lang in ("ru", "en"))
    assert ru.startswith("Заявки ждут вашего ответа дольше нормы (2 рабочих часа): 7 заявок"), ru
    assert "Дольше всех ждут: B0 (11 рабочих часов), B1 (10 рабочих часов)" in ru and "и ещё 2 заявки." in ru, ru
    assert "Норма превышена сильно у 4 заявок" in ru, ru
    assert en.startswith("Leads waiting for your reply past the target (2 working hours): 7 leads"), en
    assert "B4 (7 working hours); and 2 more." in en, en
    # the same backlog on the next day is the same item (one fingerprint per recipient and kind)
    later = [i for i in detect(crm(leads=behind + few), LeadSlaSpec(), at(27, 17)) if i.subject.get("backlog")]
    assert [i.fingerprint for i in later] == [mine.fingerprint]


def test_skipped_when_there_is_no_leads_table():
    from detectors.registry import REGISTRY, missing_tables
    assert missing_tables(crm(), REGISTRY["lead_sla"]) == ["leads"]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), prefix=st.sampled_from(["x", "лид-"]))
def test_shuffling_rows_and_renaming_ids_changes_nothing_but_ids(seed, prefix):
    expected = {i.subject["lead_id"]: i for i in detect(leads_data(), LeadSlaSpec(), NOW)}
    data = leads_data()
    data.leads = data.leads.assign(lead_id=prefix + data.leads["lead_id"]).sample(frac=1, random_state=seed)
    got = {i.subject["lead_id"]: i for i in detect(data, LeadSlaSpec(), NOW)}
    assert set(got) == {prefix + k for k in expected}
    for k, ins in expected.items():
        assert got[prefix + k].facts == ins.facts and got[prefix + k].severity == ins.severity


def test_a_replay_with_and_without_evidence_equals_detect_hour_by_hour():
    """prepare once + detect_at per hour equals plain detect; without evidence it is the same
    insights with empty evidence (what the backtest asks for)."""
    from dataclasses import replace
    from datetime import timedelta

    from detectors.lead_sla import detect_at, prepare

    data, spec = leads_data(), LeadSlaSpec()
    with_ev, without_ev = prepare(data, spec), prepare(data, spec)
    compared = 0
    for k in range(-30, 10):
        now = NOW + timedelta(hours=k)
        expected = detect(data, spec, now)
        assert detect_at(with_ev, now) == expected
        assert detect_at(without_ev, now, with_evidence=False) == [replace(i, evidence={}) for i in expected]
        compared += len(expected)
    assert compared and all(i.evidence["lead_ids"] for i in detect(data, spec, NOW))


# --- an export read after it was taken: judged at the data's end, not at now -------------------

def export_at(taken: datetime, *extra: dict):
    """An export taken at `taken` (its newest record, a lead answered then): leads of the last
    hour before it have no answer in the file, answered or not."""
    return crm(leads=[
        lead("E1", at(27, 10), manager_id="m1"),                        # 5 working hours unanswered by 15:00
        lead("E2", at(27, 14, 10), manager_id="m1"),                    # 50 min before the export
        lead("E3", at(27, 14, 40)),                                      # 20 min before, no manager yet
        lead("E4", at(27, 12), manager_id="m2", responded=taken),       # the export's newest record
        *extra,
    ])


def test_an_export_read_hours_later_judges_leads_only_up_to_its_end():
    """The export ends Friday 15:00, the scan runs at 18:00 (fresh enough). The leads created in
    its last hour have no answer in the file because the answer came after it: at 18:00 they
    looked unanswered (E2: 3.8 working hours) and unassigned (E3: 3.3) past their SLA. Their
    deadlines pass after the data ends, so they are not judged; E1, already late at 15:00, is,
    with its wait up to 15:00 and the words saying so."""
    taken, now = at(27, 15), at(27, 18)
    found = {i.subject["lead_id"]: i for i in detect(export_at(taken), LeadSlaSpec(), now)}
    assert set(found) == {"E1"}, {k: i.facts for k, i in found.items()}
    e1 = found["E1"]
    assert e1.facts["working_hours_waited"] == 5.0 and e1.facts["data_end"] == taken.astimezone(ZoneInfo("UTC")).isoformat()
    ru, en = (insight_text(e1, lang, now=now).replace("\xa0", " ") for lang in ("ru", "en"))
    # the hour the export ends, in the company's time: "27 ноября" alone says nothing on the 27th
    assert "Ожидание посчитано до последней записи в выгрузке (27 ноября, 15:00): что было позже, в ней не видно." in ru, ru
    assert "The wait is counted up to the export's newest record (27 November, 15:00): anything later is not in it." in en, en
    # the next export (taken 17:55, nothing answered since) judges them
    later = {i.subject["lead_id"]: i.subject["kind"]
             for i in detect(export_at(taken, lead("E5", at(27, 17), manager_id="m2", responded=at(27, 17, 55))),
                             LeadSlaSpec(), now)}
    assert later == {"E1": "unanswered", "E2": "unanswered", "E3": "unassigned"}


def test_a_live_sync_is_judged_at_now_and_a_replay_equals_the_scan():
    """A sync whose newest record is minutes old is judged at now as before, without the
    "as of" line; prepare once + detect_at (the backtest's replay, which finds the data's end
    itself) gives what detect gives, at the export's end and hours after it."""
    from detectors.lead_sla import detect_at, prepare

    now = at(27, 16, 30)
    live = detect(export_at(at(27, 16, 25)), LeadSlaSpec(), now)
    assert {i.subject["lead_id"] for i in live} == {"E1", "E2", "E3"}
    assert not any("data_end" in i.facts for i in live)
    data = export_at(at(27, 15))
    state = prepare(data, LeadSlaSpec())
    for hour in (15, 16, 17, 18, 19):
        for minute in (0, 40):
            assert detect_at(state, at(27, hour, minute)) == detect(data, LeadSlaSpec(), at(27, hour, minute))


def test_a_quiet_morning_of_a_live_source_is_no_end_of_its_data():
    """A lead came in on Saturday and nothing else was recorded since. On Monday at 12:00 a live
    source (a connector's store, a SQL database) is complete up to the read: the lead waited 3
    working hours without a manager and is raised. The same rows as a files export end at
    Saturday's lead, so there nothing after it is judged (the export's words say as of when)."""
    from dataclasses import replace

    friday = lead("F1", at(27, 10), manager_id="m1", assigned=at(27, 10), responded=at(27, 10, 20))
    data = crm(leads=[friday, lead("W1", at(28, 18))])  # W1: Saturday 18:00
    monday = at(30, 12)
    live = detect(replace(data, live=True), LeadSlaSpec(), monday)
    assert [(i.subject["lead_id"], i.subject["kind"]) for i in live] == [("W1", "unassigned")]
    assert live[0].facts["working_hours_waited"] == 3.0 and "data_end" not in live[0].facts
    assert detect(data, LeadSlaSpec(), monday) == []


def test_a_replay_day_is_cut_at_the_exports_end_not_at_the_newest_record_before_it():
    """A backtest day (or preview --now) before the export's end sees data complete up to it: a
    weekend lead nobody touched is raised on Monday although nothing was recorded that morning;
    only a day after the export's newest record (Tuesday 09:00 here) is cut at it."""
    from detectors.lead_sla import detect_at, prepare

    data = crm(leads=[lead("W1", at(28, 18)), lead("W2", at(1, 9, month=12), manager_id="m1", assigned=at(1, 9, month=12),
                           responded=at(1, 9, month=12))])
    state = prepare(data, LeadSlaSpec())
    assert [i.subject["lead_id"] for i in detect_at(state, at(30, 12))] == ["W1"]
    late = detect_at(state, at(1, 15, month=12))
    assert late[0].facts["working_hours_waited"] == 9.0  # Monday 9 h, Tuesday up to the export's 09:00
    assert late[0].facts["data_end"]


# --- an owner cell that names nobody -------------------------------------------------------------

def test_a_lead_whose_owner_is_a_placeholder_is_nobodys_not_a_persons():
    """The owner the CRM cleared, filled "No owner" ([source.fill] manager_id, CrmData.no_owner),
    or written by the CRM as «Без ответственного» (taken for a manager when the managers come from
    the export): the lead was "assigned to No owner, who is not among the working managers", or
    a manager item for «Без ответственного». It has no manager: the director's, "not assigned to
    anyone", the placeholder never named as a person. A person who left is still named."""
    people = [{"manager_id": "m1", "name": "Айгерим Садыкова"}, {"manager_id": "m2", "name": "Иван Петров"},
              {"manager_id": "Без ответственного", "name": "Без ответственного"},
              {"manager_id": "m9", "name": "Ушедший Сотрудник", "active": False}]
    data = crm(managers=people, leads=[
        lead("N1", at(27, 11), manager_id="No owner"),
        lead("N2", at(27, 10), manager_id="Без ответственного", assigned=at(27, 10, 5)),
        lead("N3", at(27, 12), manager_id="UNASSIGNED"),
        lead("G1", at(27, 11), manager_id="m9"),
        LIVE,
    ])
    data.no_owner = frozenset({"No owner"})
    found = {i.evidence["lead_ids"][0]: i for i in detect(data, LeadSlaSpec(max_leads_each=10), NOW)}
    assert {k: (i.subject["kind"], i.audience.role) for k, i in found.items()} == {
        "N1": ("unassigned", "director"), "N2": ("unassigned", "director"), "N3": ("unassigned", "director"),
        "G1": ("unassigned", "director")}
    for k in ("N1", "N2", "N3"):
        assert found[k].facts["owner_gone"] is None and found[k].facts["manager_id"] is None
        ru, en = insight_text(found[k], "ru"), insight_text(found[k], "en")
        assert "до сих пор никому не назначена" in ru and "still not assigned to anyone" in en, ru
        for word in ("No owner", "Без ответственного", "UNASSIGNED"):
            assert word not in ru and word not in en, (word, ru, en)
    assert found["G1"].facts["owner_gone"] == "Ушедший Сотрудник"
    # more of them are one backlog item that names no placeholder; the person who left has their own
    many = crm(managers=people, leads=[lead(f"P{k}", at(27, 9) + pd.Timedelta(minutes=10 * k), manager_id="No owner")
                                       for k in range(5)] + [lead("G1", at(27, 11), manager_id="m9"), LIVE])
    many.no_owner = frozenset({"No owner"})
    items = detect(many, LeadSlaSpec(), NOW)
    (item,) = [i for i in items if i.subject.get("backlog")]
    (left,) = [i for i in items if i.subject.get("written_to")]
    assert item.facts["leads"] == 5 and not item.facts["owner_gone"] and "No owner" not in insight_text(item, "en")
    assert left.subject["written_to"] == "m9" and left.evidence == {"lead_ids": ["G1"]}


def test_leads_still_written_to_someone_who_left_are_one_director_item_per_person():
    """The CRM's round robin keeps giving a person who left a lead a day or two: never more than
    max_leads_each waiting at once, so each was its own director item, escalated and sent at once
    as critical. Now the waiting leads written to one such person are one item however few,
    the same item (fingerprint) from day to day, saying how many, the longest waits and the fix
    in the CRM; two people who left are two items; a working manager's single lead is unchanged."""
    people = [{"manager_id": "m1", "name": "Айгерим Садыкова"}, {"manager_id": "m2", "name": "Иван Петров", "active": False}]
    # m2 left; the round robin still gives them a lead most working days; "x7" is in no managers file
    robin = [lead(f"R{k}", at(d, 10 + k % 3), manager_id="m2") for k, d in enumerate((23, 24, 24, 25, 26, 27))]
    data = crm(managers=people, leads=[*robin, lead("X1", at(26, 11), manager_id="x7"),
                                       lead("W1", at(27, 10), manager_id="m1"), LIVE])
    found = detect(data, LeadSlaSpec(), NOW)
    by = {i.subject.get("written_to") or i.subject.get("lead_id"): i for i in found}
    assert set(by) == {"m2", "x7", "W1"}, by
    ivan = by["m2"]
    assert ivan.audience.role == "director" and ivan.severity == "critical" and ivan.facts["leads"] == 6
    assert sorted(ivan.evidence["lead_ids"]) == [f"R{k}" for k in range(6)]
    assert [x["lead_id"] for x in ivan.facts["listed"]] == ["R0", "R1", "R2", "R3", "R4"]  # longest wait first
    assert ivan.facts["escalated_leads"] == 5  # R0-R4 waited 8 working hours or more, R5 (today's) 2
    assert by["x7"].facts["leads"] == 1 and by["x7"].facts["owner_gone"] == "x7"
    assert by["W1"].audience.manager_id == "m1" and not by["W1"].facts.get("backlog")  # a working manager's lead
    ru, en = (insight_text(ivan, lang).replace("\xa0", " ") for lang in ("ru", "en"))
    assert ru.startswith("Заявки записаны на сотрудника, который больше не работает (Иван Петров): 6 заявок"), ru
    assert "CRM всё ещё отдаёт ему новые заявки" in ru and "уберите сотрудника из распределения заявок в CRM" in ru, ru
    assert "Дольше всех ждут: R0 (" in ru and "и ещё 1 заявка." in ru, ru
    assert en.startswith("Leads still written to Иван Петров, who no longer works here: 6 leads"), en
    assert "take this person out of the CRM's lead distribution" in en and "Well past the target: 5 leads." in en, en
    # the next day, with a lead fewer waiting and a new one, it is the same item: no new critical alert
    later = detect(crm(managers=people, leads=[*robin[1:], lead("R9", at(30, 9), manager_id="m2"),
                                                 lead("LIVE2", at(30, 13, 50), manager_id="m1", responded=at(30, 14))]),
                   LeadSlaSpec(), at(30, 14))
    (again,) = [i for i in later if i.subject.get("written_to") == "m2"]
    assert again.fingerprint == ivan.fingerprint and sorted(again.evidence["lead_ids"]) == ["R1", "R2", "R3", "R4", "R5", "R9"]
    # three days on, its longest wait grew by more than the dedup's 24 h: still not "worse" (the
    # waits rise and fall as leads come and go), so no second critical alert about the same person
    from bot.notify_log import Policy, is_worse
    early = [i for i in detect(crm(managers=people, leads=[robin[0], lead("LIVE3", at(24, 13, 50), manager_id="m1",
                                                                          responded=at(24, 14))]), LeadSlaSpec(), at(24, 14))]
    assert [(i.fingerprint, i.severity, i.facts["listed"][0]["working_hours_waited"]) for i in early] == \
        [(ivan.fingerprint, "critical", 13.0)]
    assert ivan.facts["listed"][0]["working_hours_waited"] - 13.0 >= Policy().worse_by["lead_sla"]
    assert not is_worse("lead_sla", early[0].facts, "critical", ivan, Policy())
    # one lead written to them is one item too, with the same fingerprint
    (one,) = detect(crm(managers=people, leads=[robin[-1], LIVE]), LeadSlaSpec(), NOW)
    assert one.fingerprint == ivan.fingerprint and one.facts["leads"] == 1

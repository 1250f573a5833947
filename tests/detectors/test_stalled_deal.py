"""stalled_deal flags open deals nobody touched for longer than their stage allows, and nothing else."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from _builders_b import NOW, ago, crm, deal, email
from detectors.stalled_deal import StalledDealSpec, detect, skip_reason
from detectors.working_hours import WorkCalendar

# Every day a working day and no holidays: these tests are about touches and replay, so a
# working day is a calendar day here (tests/detectors/test_stalled_norms.py covers the calendar
# and the learned limits). Too little history to learn from: limits are configured or default.
EVERY_DAY = WorkCalendar(workdays=(1, 2, 3, 4, 5, 6, 7))


def spec(**kw) -> StalledDealSpec:
    return StalledDealSpec(**({"calendar": EVERY_DAY, "default_limit_days": 7, "escalate_after_days": 14,
                               "abandon_factor": 100, "abandon_after_days": 1000} | kw))


SPEC = spec(stage_limits={"КП отправлено": 10})


def h(deal_id: str, stage: str, days: float) -> dict:
    return {"deal_id": deal_id, "stage": stage, "entered_at": ago(days)}


def act(aid: str, type_: str, *, deal_id: str | None = None, client_id: str | None = None,
        done: float | None = None, due: float | None = None) -> dict:
    return {"activity_id": aid, "deal_id": deal_id, "client_id": client_id, "manager_id": "m1", "type": type_,
            "done_at": ago(done) if done is not None else None, "due_at": ago(due) if due is not None else None}


def pipeline():
    deals = [
        deal("d1", stage="Квалификация", client_id="c1"),                        # stalled 10 days
        deal("d2", stage="Квалификация", client_id="c2"),                        # call yesterday
        deal("d3", stage="Переговоры", status="lost", closed_at=ago(20)),      # lost: never stalls
        deal("d4", stage="КП отправлено", manager_id="m2"),                      # 9 days, its stage allows 10
        deal("d5", stage="Переговоры", manager_id="m2", client_id="c5"),        # 20 days; note and planned call do not count
        deal("d6", stage="Квалификация", client_id="c6"),                        # client wrote 2 days ago
        deal("d7", stage="Квалификация"),                                        # a done task 8 days ago
        deal("d8", stage="Квалификация", client_id="c8"),                        # call to the client (no deal) 3 days ago
        deal("d9", stage="Переговоры", status="won", closed_at=ago(5)),         # won last week
        deal("d10", stage="Новый", created=ago(3)),                              # brand new, no history row
        deal("d11", stage="Квалификация"),                                       # exactly 7 days: at the limit, not over
    ]
    history = [
        h("d1", "Новый", 30), h("d1", "Квалификация", 10),
        h("d2", "Квалификация", 30),
        h("d3", "Переговоры", 40),
        h("d4", "КП отправлено", 9),
        h("d5", "Переговоры", 20),
        h("d6", "Квалификация", 20),
        h("d7", "Квалификация", 12),
        h("d8", "Квалификация", 20),
        h("d9", "Переговоры", 40),
        h("d11", "Квалификация", 7),
    ]
    activities = [
        act("a2", "call", deal_id="d2", done=1),
        act("a5n", "note", deal_id="d5", done=1),
        act("a5p", "call", deal_id="d5", due=-1),
        act("a7", "task", deal_id="d7", done=8, due=9),
        act("a7p", "meeting", deal_id="d7", due=-2),
        act("a8", "call", client_id="c8", done=3),
    ]
    emails = [email("e6", "c6", ago(2), direction="in")]
    return crm(deals=deals, stage_history=history, activities=activities, emails=emails,
               clients=[{"client_id": c, "name": f"ТОО {c}"} for c in ("c2", "c5", "c6", "c8")]
               + [{"client_id": "c1", "name": "ТОО Степь"}])


def by_deal(found):
    return {i.subject["deal_id"]: i for i in found}


def test_only_untouched_open_deals_are_stalled():
    found = by_deal(detect(pipeline(), SPEC, NOW))
    assert set(found) == {"d1", "d5", "d7"}

    d1 = found["d1"]
    assert d1.severity == "warning" and d1.audience.role == "manager" and d1.audience.manager_id == "m1"
    assert d1.facts == {
        "deal_title": "Сделка d1", "client_name": "ТОО Степь", "manager_id": "m1", "manager_name": "Айгерим Садыкова",
        "stage": "Квалификация", "amount": 1_500_000.0, "currency": "KZT", "days_idle": 10, "calendar_days_idle": 10,
        "stage_limit_days": 7, "limit_source": "default", "limit_moves": 0, "min_moves": 30, "kind": "stalled",
        "last_touch_at": ago(10).isoformat(), "last_touch_kind": "stage_change", "escalated": False,
    }
    assert d1.evidence == {"deal_ids": ["d1"]}

    d7 = found["d7"]
    assert (d7.facts["days_idle"], d7.facts["last_touch_kind"]) == (8, "task")
    assert d7.evidence == {"deal_ids": ["d7"], "activity_ids": ["a7"]}


def test_long_idle_deal_is_escalated_to_critical():
    d5 = by_deal(detect(pipeline(), SPEC, NOW))["d5"]
    assert d5.severity == "critical" and d5.facts["escalated"] is True
    assert d5.facts["days_idle"] == 20 and d5.audience.manager_id == "m2"


def test_stage_limits_and_defaults_come_from_the_spec():
    data = pipeline()
    # Without the 10-day limit for "КП отправлено", d4 (9 days) is over the default 7.
    assert "d4" in by_deal(detect(data, spec(), NOW))
    assert by_deal(detect(data, spec(stage_limits={"Квалификация": 12}), NOW)).keys() == {"d4", "d5"}
    assert by_deal(detect(data, SPEC, NOW)).keys() == {"d1", "d5", "d7"}
    # A later escalation keeps d5 a warning.
    assert by_deal(detect(data, spec(escalate_after_days=30), NOW))["d5"].severity == "warning"


def test_replaying_a_past_day_sees_the_deal_as_it_was():
    data = pipeline()
    past = by_deal(detect(data, SPEC, ago(10)))
    # Ten days ago the won deal d9 was open and idle for 30 days; d1 had just moved stage.
    assert "d9" in past and past["d9"].facts["days_idle"] == 30
    assert "d1" not in past
    # The call a day ago did not exist yet: d2 (entered 30 days ago) was stalled then.
    assert "d2" in past
    # Before d10 existed it cannot stall, nor anything before its creation.
    assert "d10" not in by_deal(detect(data, SPEC, ago(100)))


def test_one_insight_per_deal_with_stable_fingerprints():
    a = detect(pipeline(), SPEC, NOW)
    b = detect(pipeline(), SPEC, NOW.replace(hour=12))  # later the same local day
    assert len({i.fingerprint for i in a}) == len(a)
    assert [i.fingerprint for i in a] == [i.fingerprint for i in b]


def test_bad_limits_are_rejected_with_the_key_name():
    with pytest.raises(ValidationError, match="stage_limits"):
        StalledDealSpec(stage_limits={"Переговоры": 0})
    with pytest.raises(ValidationError, match="default_limit_days"):
        StalledDealSpec(default_limit_days=0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), prefix=st.sampled_from(["x", "сделка-", "Q_"]))
def test_shuffling_rows_and_renaming_ids_changes_nothing_but_ids(seed, prefix):
    expected = {i.subject["deal_id"]: i for i in detect(pipeline(), SPEC, NOW)}
    data = pipeline()

    def ren(col):
        return col.map(lambda v: prefix + v, na_action="ignore")

    data.deals = data.deals.assign(deal_id=ren(data.deals["deal_id"]), client_id=ren(data.deals["client_id"])).sample(frac=1, random_state=seed)
    data.stage_history = data.stage_history.assign(deal_id=ren(data.stage_history["deal_id"])).sample(frac=1, random_state=seed + 1)
    data.activities = data.activities.assign(deal_id=ren(data.activities["deal_id"]), client_id=ren(data.activities["client_id"]),
                                             activity_id=ren(data.activities["activity_id"])).sample(frac=1, random_state=seed + 2)
    data.emails = data.emails.assign(client_id=ren(data.emails["client_id"]), email_id=ren(data.emails["email_id"]))
    data.clients = data.clients.assign(client_id=ren(data.clients["client_id"]))
    got = {i.subject["deal_id"]: i for i in detect(data, SPEC, NOW)}
    assert set(got) == {prefix + d for d in expected}
    for deal_id, ins in expected.items():
        g = got[prefix + deal_id]
        assert g.facts == ins.facts | {"deal_title": g.facts["deal_title"]}
        assert g.evidence == {k: [prefix + v for v in vs] for k, vs in ins.evidence.items()}
        assert g.severity == ins.severity


def test_without_any_stage_history_the_creation_date_counts():
    data = crm(deals=[deal("d1", created=ago(9)), deal("d2", created=ago(3))], stage_history=[])
    found = by_deal(detect(data, SPEC, NOW))
    assert set(found) == {"d1"}
    assert found["d1"].facts["stage"] == "Квалификация" and found["d1"].facts["days_idle"] == 9


def _derived(**optional):
    """Deals only, history derived from them (as crm.load does when the export has none)."""
    deals = [deal("d1", created=ago(40)), deal("d2", created=ago(3))]
    history = [h(d["deal_id"], d["stage"], (NOW - d["created_at"]).total_seconds() / 86_400) for d in deals]
    return dataclasses.replace(crm(deals=deals, stage_history=history, **optional), stage_history_derived=True)


def test_derived_history_without_activities_or_emails_is_skipped_with_its_reason():
    data = _derived()
    assert detect(data, SPEC, NOW) == []  # a 40-day-old deal is not "stalled" when we cannot see touches
    reason = skip_reason(data)
    assert reason is not None and "activities" in reason and "emails" in reason
    assert skip_reason(_derived(activities=[], emails=[])) is not None  # empty tables are no evidence either


def test_derived_history_with_activities_or_emails_still_detects():
    with_calls = _derived(activities=[act("a1", "call", deal_id="d1", done=20)])
    assert skip_reason(with_calls) is None
    found = by_deal(detect(with_calls, SPEC, NOW))
    assert set(found) == {"d1"} and found["d1"].facts["last_touch_kind"] == "call"
    assert found["d1"].facts["days_idle"] == 20
    with_emails = _derived(emails=[email("e1", "c9", ago(30), deal_id="d1")])
    assert set(by_deal(detect(with_emails, SPEC, NOW))) == {"d1"}
    assert skip_reason(pipeline()) is None  # a real history never skips


def test_with_a_derived_history_the_default_limit_is_said_to_come_from_the_missing_history():
    """"Too little history (0 moves on, 30 needed)" blamed the company's data for what the export
    left out (a reviewer's amoCRM web export of 4,500 deals): the words name the missing history
    ("the data", as the digest's footer says it: a SQL source can lack it as well as an export)."""
    from messages.render import insight_text

    d1 = by_deal(detect(_derived(activities=[act("a1", "call", deal_id="d1", done=20)]), SPEC, NOW))["d1"]
    assert d1.facts["limit_source"] == "default" and d1.facts["no_history"] is True
    ru, en = insight_text(d1, "ru", now=NOW), insight_text(d1, "en", now=NOW)
    assert ("В данных нет истории этапов, поэтому обычный срок этого этапа неизвестен и действует срок по "
            "умолчанию") in ru and "Истории пока мало" not in ru, ru
    assert ("The data has no stage history, so this stage's usual pace is unknown and the default limit "
            "applies") in en and "too little history" not in en, en
    real = by_deal(detect(pipeline(), SPEC, NOW))["d1"]
    assert "no_history" not in real.facts and "Истории пока мало" in insight_text(real, "ru", now=NOW)


def test_a_single_scan_and_a_replay_agree_on_every_day():
    """detect() keeps only the deals open at `now`; a replay's prepare keeps them all."""
    from datetime import timedelta

    from detectors.stalled_deal import detect_at, prepare

    data = pipeline()
    replay = prepare(data, SPEC)
    for days_back in (0, 4, 9, 15, 25):
        now = NOW - timedelta(days=days_back)
        single = [(i.subject, i.facts, i.evidence, i.severity) for i in detect(data, SPEC, now)]
        assert single == [(i.subject, i.facts, i.evidence, i.severity) for i in detect_at(replay, now)]
    nine_days_ago = {i.subject["deal_id"] for i in detect(data, SPEC, NOW - timedelta(days=9))}
    assert "d9" in nine_days_ago and "d3" not in nine_days_ago  # won 5 days ago: open then; lost 20 days ago: not


def test_deals_without_clients_next_to_a_clients_table():
    data = crm(deals=[deal("d1", created=ago(20))], stage_history=[],
               clients=[{"client_id": "c1", "name": "ТОО Степь"}])
    found = by_deal(detect(data, SPEC, NOW))
    assert set(found) == {"d1"} and found["d1"].facts["client_name"] is None


def test_a_replay_forward_and_back_and_without_evidence_equals_detect():
    """The replay keeps yesterday's last touches and applies only new events walking forward,
    recomputes on a step back; without evidence it is the same insights with empty evidence."""
    from datetime import timedelta

    from detectors.stalled_deal import detect_at, prepare

    data = pipeline()
    with_ev, without_ev = prepare(data, SPEC), prepare(data, SPEC)
    walk = [NOW - timedelta(days=d) for d in range(30, -1, -1)]
    compared = 0
    for now in walk + walk[::-1] + walk[::3]:
        expected = detect(data, SPEC, now)
        assert detect_at(with_ev, now) == expected
        assert detect_at(without_ev, now, with_evidence=False) == [dataclasses.replace(i, evidence={}) for i in expected]
        compared += len(expected)
    assert compared and any("activity_ids" in i.evidence or "email_ids" in i.evidence for i in detect(data, SPEC, NOW))


def test_events_at_the_same_instant_the_later_row_is_the_last_touch_in_a_replay_too():
    from datetime import timedelta

    from detectors.stalled_deal import detect_at, prepare

    data = crm(deals=[deal("d1", created=ago(30), client_id="c1")], stage_history=[],
               activities=[act("a1", "call", deal_id="d1", done=12), act("a2", "meeting", deal_id="d1", done=12)])
    state = prepare(data, SPEC)
    for now in (NOW - timedelta(days=2), NOW - timedelta(days=1), NOW):
        (plain,) = detect(data, SPEC, now)
        assert plain.facts["last_touch_kind"] == "meeting" and plain.evidence["activity_ids"] == ["a2"]
        assert detect_at(state, now) == [plain]


def test_stalled_deals_of_a_manager_marked_inactive_go_to_the_director_in_one_item():
    """A manager who left (active = false in the managers file) keeps open deals in real exports
    (amoCRM does not reassign them). Those deals are not an item to the person who left, each or
    as "look abandoned": they are one director item per such manager, to hand over."""
    managers = [{"manager_id": "m1", "name": "Асель Нурланова", "active": True},
                {"manager_id": "m2", "name": "Олжас Серикбаев", "active": False}]
    deals = [deal("d1", manager_id="m1"), deal("d2", manager_id="m2"), deal("d3", manager_id="m2"),
             deal("d4", manager_id="m2")]
    history = [h("d1", "Квалификация", 10), h("d2", "Квалификация", 9), h("d3", "Квалификация", 40),
               h("d4", "Квалификация", 2)]  # d4: within its stage's limit, not stalled
    data = crm(managers=managers, deals=deals, stage_history=history)
    out = detect(data, spec(abandon_after_days=30), NOW)
    assert [(i.audience.role, i.audience.manager_id, i.subject.get("deal_id")) for i in out] == [
        ("manager", "m1", "d1"), ("director", None, None)]
    left = out[1]
    assert left.facts["owner_inactive"] is True and left.facts["manager_id"] == "m2"
    assert sorted(left.evidence["deal_ids"]) == ["d2", "d3"]  # stalled and abandoned alike
    assert left.subject == {"manager_id": "m2", "kind": "left_behind"}
    from messages.render import insight_text
    ru, en = insight_text(left, "ru", now=NOW), insight_text(left, "en", now=NOW)
    assert "неактивного менеджера" in ru and "Передайте" in ru, ru
    assert "inactive manager" in en and "Hand the live deals" in en, en
    # Without the active column everybody is active: the same deals are m2's own items.
    plain = [{k: v for k, v in m.items() if k != "active"} for m in managers]
    out = detect(crm(managers=plain, deals=deals, stage_history=history), spec(abandon_after_days=30), NOW)
    assert {i.audience.manager_id for i in out} == {"m1", "m2"}
    assert all(i.audience.role == "manager" for i in out)


def test_a_catch_all_owner_nobody_calls_for_is_one_director_item_not_a_flood():
    """A CRM's catch-all user under a name that could be a person's (an "Администратор" account
    the forms write deals to) is given deals every day and does nothing itself: with 12 stalled
    deals and no call, task or email by it or on its deals (while the working managers record
    theirs), its deals are one director item, not twelve items to nobody. (One named «Не назначен»
    names nobody outright: test_deals_whose_owner_names_nobody_...)"""
    managers = [{"manager_id": "m1", "name": "Асель Нурланова"}, {"manager_id": "m2", "name": "Олжас Серикбаев"},
                {"manager_id": "u", "name": "Администратор"}]

    def company(n_catch_all: int, calls_on_catch_all: bool = False, calls: bool = True):
        deals = [deal("d1", manager_id="m1"), deal("d2", manager_id="m2")]
        deals += [deal(f"u{k}", manager_id="u", created=ago(20)) for k in range(n_catch_all)]
        history = [h(d["deal_id"], "Квалификация", 15) for d in deals]
        acts = [dict(act("a1", "call", deal_id="d1", done=12)), dict(act("a2", "call", deal_id="d2", done=12), manager_id="m2")]
        if calls_on_catch_all:  # m2 works the catch-all's deals without taking them over
            acts.append(dict(act("a3", "call", deal_id="u0", done=9), manager_id="m2"))
        return crm(managers=managers, deals=deals, stage_history=history, activities=acts if calls else None)

    out = detect(company(12), SPEC, NOW)
    assert [(i.audience.role, i.audience.manager_id) for i in out] == [
        ("manager", "m1"), ("manager", "m2"), ("director", None)]
    left = out[-1]
    assert left.facts["owner_gone"] == "no_contact" and left.facts["deals"] == 12
    from messages.render import insight_text
    ru, en = insight_text(left, "ru", now=NOW), insight_text(left, "en", now=NOW)
    assert "не ведёт контактов" in ru and "никто не ведёт" in ru, ru
    assert "records no contact" in en and "nobody works these deals" in en, en
    # a few stalled deals, calls on its deals by a colleague, or a company that logs no calls:
    # nothing says nobody works them, so they stay items of their own
    for data in (company(9), company(12, calls_on_catch_all=True), company(12, calls=False)):
        assert [i for i in detect(data, SPEC, NOW) if i.audience.role == "director"] == []


def test_deals_whose_owner_names_nobody_are_one_director_item_from_the_first_deal():
    """Owner cells that name nobody («Без ответственного», "UNASSIGNED", a managers row that is
    the CRM's catch-all «Не назначен») are no manager: their stalled deals, however few, are one
    director item to hand over that names no person; "Noah Owner" and «Неназначенова» are people
    and get their own items."""
    managers = [{"manager_id": "m1", "name": "Noah Owner"}, {"manager_id": "m2", "name": "Неназначенова"},
                {"manager_id": "u", "name": "Не назначен"}]
    deals = [deal("d1", manager_id="m1"), deal("d2", manager_id="m2"), deal("n1", manager_id="Без ответственного"),
             deal("n2", manager_id=" UNASSIGNED "), deal("n3", manager_id="u")]
    history = [h(d["deal_id"], "Квалификация", 15) for d in deals]
    out = detect(crm(managers=managers, deals=deals, stage_history=history), SPEC, NOW)
    assert [(i.audience.role, i.audience.manager_id) for i in out] == [
        ("manager", "m1"), ("manager", "m2"), ("director", None)]
    left = out[-1]
    assert left.subject == {"kind": "left_behind", "owner": "nobody"}
    assert left.facts["owner_gone"] == "nobody" and left.facts["manager_id"] is None and left.facts["manager_name"] is None
    assert sorted(left.evidence["deal_ids"]) == ["n1", "n2", "n3"]
    from messages.render import insight_text
    ru, en = insight_text(left, "ru", now=NOW), insight_text(left, "en", now=NOW)
    # the CRM's words as written there, the catch-all user by its name, not its id
    assert "Сделки без ответственного стоят без движения: 3" in ru, ru
    assert "(«UNASSIGNED», «Без ответственного», «Не назначен»)" in ru, ru
    assert "Stalled deals with no owner: 3" in en and "Hand the live deals" in en, en


@pytest.mark.parametrize("unread, named", [
    (("Теги", "Дата изменения", "Кем создана"), "Дата изменения"),  # amoCRM, Bitrix24
    (("Last Modified Date", "Last Activity Date"), "Last Activity Date"),  # HubSpot: activity beats any edit
    (("Update time",), "Update time"),  # Pipedrive
    (("Теги", "Кем создана"), None),
])
def test_a_deals_only_skip_names_the_deals_own_last_touch_column(unread, named):
    """A web-UI export cannot give stage_history.csv, activities or emails: the skip line asked
    for them anyway; a last-modified column the deals file has (unread) is the recipe instead."""
    import pandas as pd

    from crm.data import CrmData

    data = CrmData(managers=pd.DataFrame(), deals=pd.DataFrame({"deal_id": ["1"]}), stage_history=pd.DataFrame(),
                   stages=[], stage_history_derived=True, origins={"deals": "Сделки 2026.csv"},
                   unread_columns={"deals": unread}, read_columns={"deals": {"deal_id": "ID", "manager_id": "Owner"}})
    why = skip_reason(data)
    if named is None:
        assert "provide stage_history.csv, activities.csv or emails.csv" in why
    else:
        assert f'the deals column "{named}" can stand in' in why and "stage_history.csv" not in why
        assert ('[source.files] activities = "Сделки 2026.csv"; [source.columns.activities] activity_id = "ID", '
                f'deal_id = "ID", manager_id = "Owner", done_at = "{named}"; [source.fill.activities] type = "task"') in why


def test_the_last_activity_hint_never_names_a_file_that_is_not_there():
    """Deals read from several files (crm.several_files names them "a.csv, b.csv"): the hint to
    read the deals file again as activities points at the same list, not at a file called
    "a.csv, b.csv"."""
    from detectors.stalled_deal import _file_name

    assert _file_name("Сделки.csv") == "Сделки.csv"
    assert "same list or pattern" in _file_name("deals_01.csv, deals_02.csv")
    assert _file_name("deals: SELECT * FROM crm_deals") == "<deals file>"


def test_a_deal_that_never_moved_was_last_touched_when_it_was_created_not_by_a_stage_change():
    """Its only stage entry is its creation: "last activity: stage change, 12 days ago" was
    untrue (a reviewer's amoCRM export, derived history). A deal that did move says so."""
    from messages.render import insight_text

    deals = [deal("n1", stage="Квалификация", created=ago(12)), deal("m1d", stage="Квалификация", created=ago(30))]
    history = [h("n1", "Квалификация", 12), h("m1d", "Новый", 30), h("m1d", "Квалификация", 12)]
    found = by_deal(detect(crm(deals=deals, stage_history=history), SPEC, NOW))
    assert (found["n1"].facts["last_touch_kind"], found["m1d"].facts["last_touch_kind"]) == ("created", "stage_change")
    assert "Последнее действие — создание сделки" in insight_text(found["n1"], "ru", now=NOW)
    assert "Last activity: deal created" in insight_text(found["n1"], "en", now=NOW)
    assert "Последнее действие — смена этапа" in insight_text(found["m1d"], "ru", now=NOW)

"""lead_score on planted leads: a source that converts 3x better is called first, with the
reason in words; too few outcomes or no signal scores nothing and says why; off by default."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from detectors.lead_score import LeadScoreSpec, detect, skip_reason
from detectors.registry import REGISTRY, run_detectors, why_skipped
from messages.digest import Checks, unchecked_text
from messages.i18n import percent
from messages.render import insight_text
from predict.planted import planted_company, planted_leads

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)
ON = LeadScoreSpec(enabled=True)


def _company(leads: pd.DataFrame):
    data = planted_company(300, NOW, seed=41)
    data.leads = leads
    return data


@pytest.fixture(scope="module")
def scored():
    data = _company(planted_leads(4000, NOW, seed=44))
    return data, detect(data, ON, NOW)


def test_a_source_that_converts_three_times_better_is_called_first(scored):
    data, items = scored
    assert skip_reason(data) is None and items
    leads = data.leads.set_index("lead_id")
    firsts = 0
    for item in items:
        f = item.facts
        assert item.audience.role == "manager" and item.audience.manager_id == f["manager_id"]
        assert 1 <= len(f["leads"]) <= ON.max_leads and f["new_leads"] >= ON.min_new_leads
        sources = [leads.loc[d["lead_id"], "source"] for d in f["leads"]]
        mine = data.leads[(data.leads["manager_id"] == f["manager_id"]) & (data.leads["status"] == "new")
                          & (data.leads["created_at"] > pd.Timestamp(NOW) - timedelta(days=7))]
        referrals = int((mine["source"] == "referral").sum())
        # every referral lead ranks above every other lead
        assert sources[:min(referrals, len(sources))] == ["referral"] * min(referrals, len(sources))
        if referrals:
            firsts += 1
            reason = f["leads"][0]["reason"]
            assert reason["feature"] == "source" and reason["value"] == "referral" and reason["n"] >= 100
            assert reason["rate"] > 1.8 * f["base_rate"]  # 3x the other sources is about 2x the average of all
        assert [d["p"] for d in f["leads"]] == sorted((d["p"] for d in f["leads"]), reverse=True)
        assert item.evidence["lead_ids"] == [d["lead_id"] for d in f["leads"]]
    assert firsts >= 3


def test_the_words_say_whom_to_call_and_why(scored):
    _, items = scored
    item = next(i for i in items if i.facts["leads"][0]["reason"])
    first = item.facts["leads"][0]
    ru, en = insight_text(item, "ru"), insight_text(item, "en")
    assert ru.startswith("Кому позвонить первым:") and en.startswith("Whom to call first:")
    assert (f"1. Заявка {first['lead_id']}" in ru and "источник «referral»: из " in ru
            and f"таких прошлых заявок сконвертировано {percent(first['reason']['rate'], 'ru')}" in ru)
    assert f"source “referral”: {percent(first['reason']['rate'], 'en')} of" in en


def test_only_new_leads_without_an_outcome_and_never_from_the_future(scored):
    data, items = scored
    listed = {d["lead_id"] for i in items for d in i.facts["leads"]}
    rows = data.leads.set_index("lead_id").loc[sorted(listed)]
    assert (rows["status"] == "new").all()
    assert (rows["created_at"] <= pd.Timestamp(NOW)).all()
    assert (rows["created_at"] > pd.Timestamp(NOW) - timedelta(days=ON.lookback_days)).all()


def test_too_few_outcomes_score_nothing_and_say_how_far_off():
    data = _company(planted_leads(150, NOW, seed=43))
    assert detect(data, ON, NOW) == []
    why = skip_reason(data)
    assert why is not None and why.startswith("not enough lead outcomes to score leads:")
    assert "needs at least 200 with >= 30 converted" in why
    ru = unchecked_text(Checks(("lead_score",), {"lead_score": why}), "ru")
    assert "кому звонить первым (мало заявок с итогом для оценки:" in ru and "нужно не меньше 200" in ru


def test_no_signal_means_no_ranking_and_the_reason():
    data = _company(planted_leads(4000, NOW, seed=46, referral_lift=1.0))
    assert detect(data, ON, NOW) == []
    assert "does not beat the base rate" in skip_reason(data)


def test_needs_a_status_and_is_off_by_default():
    leads = planted_leads(500, NOW, seed=45)
    data = _company(leads.drop(columns=["status"]))
    assert "status" in why_skipped(data, REGISTRY["lead_score"], ON)
    assert LeadScoreSpec().enabled is False
    data = _company(leads)
    result = run_detectors(data, {name: det.spec() for name, det in REGISTRY.items()}, NOW)
    assert "lead_score" in result.not_opted_in and not [i for i in result.insights if i.detector == "lead_score"]


def test_a_lead_someone_already_called_is_not_on_the_list():
    """The list is whom to call first: a new lead with a first answer by now, or a status saying
    someone works on it (HubSpot's "In Progress", Bitrix24's «В работе»), was listed all the same."""
    leads = planted_leads(4000, NOW, seed=44)
    fresh = leads.index[(leads["status"] == "new") & (leads["created_at"] > pd.Timestamp(NOW) - timedelta(days=7))]
    called, working, later = fresh[0::4], fresh[1::4], fresh[2::4]
    leads.loc[called, "first_response_at"] = leads.loc[called, "created_at"] + pd.Timedelta(minutes=20)
    leads.loc[later, "first_response_at"] = pd.Timestamp(NOW) + pd.Timedelta(hours=1)  # the call comes after now
    leads["status"] = leads["status"].astype(object)
    leads.loc[working[0::2], "status"] = "In Progress"
    leads.loc[working[1::2], "status"] = "В работе"
    items = detect(_company(leads), ON, NOW)
    listed = {d["lead_id"] for i in items for d in i.facts["leads"]}
    assert items and listed, "the case this test is about"
    taken = set(leads.loc[called.union(working), "lead_id"])
    assert not listed & taken, listed & taken
    assert listed & set(leads.loc[later, "lead_id"])  # not called yet at `now`: still to call


# --- a custom amoCRM pipeline: leads are its deals, the status is the deal's stage ------------------

AMO_STAGES = ["Неразобранное", "Первичный контакт", "Думает", "Счёт выставлен", "Договор"]


def _amocrm(seed: int, closed: str):
    """Planted leads as amoCRM holds them: won/lost as its fixed statuses 142/143 (`closed` =
    "ids", an API or SQL export) or its UI words; new leads sit at the user-named stages of a
    custom pipeline: incoming or first stage (nobody called yet) or later (someone moved it)."""
    leads = planted_leads(4000, NOW, seed=seed)
    status = leads["status"].astype(object)
    won, lost = ("142", "143") if closed == "ids" else ("Успешно реализовано", "Закрыто и не реализовано")
    status[status == "converted"], status[status == "lost"] = won, lost
    new = status.index[status == "new"]
    status[new[0::4]], status[new[1::4]] = "Неразобранное", "Первичный контакт"
    status[new[2::4]], status[new[3::4]] = "Думает", "Счёт выставлен"
    data = _company(leads.assign(status=pd.array(status, dtype="string")))
    data.stages = list(AMO_STAGES)
    return data


@pytest.mark.parametrize("seed,closed", [(44, "ids"), (47, "words"), (48, "ids")])
def test_a_custom_amocrm_pipeline_learns_from_its_closed_leads_and_lists_only_untouched_ones(seed, closed):
    """amoCRM's won/lost are its statuses 142/143 in an API or SQL export: read as no outcome,
    nothing was learned ("no lead status says converted"). Its stages are the company's own
    («Думает», «Счёт выставлен»): a lead someone moved past the first stage was listed as one to
    call first. The stage order (crm.stages, data.stages) says who was moved on."""
    data = _amocrm(seed, closed)
    items = detect(data, ON, NOW)
    assert skip_reason(data) is None and items, skip_reason(data)
    status = data.leads.set_index("lead_id")["status"]
    listed = [d["lead_id"] for i in items for d in i.facts["leads"]]
    assert set(status[listed]) <= {"Неразобранное", "Первичный контакт"}, status[listed].value_counts()
    assert any((d["reason"] or {}).get("value") == "referral" for i in items for d in i.facts["leads"][:1])


def test_a_lead_written_to_no_owner_is_on_the_directors_list_not_a_managers():
    """«Без ответственного», taken for a manager when the managers come from the export, and the
    configured fill constant ("No owner"): the new leads of nobody are the director's list."""
    data = _amocrm(44, "words")
    fresh = data.leads.index[data.leads["status"].isin(["Неразобранное", "Первичный контакт"])]
    owner = data.leads["manager_id"].astype(object)
    owner[fresh[0::3]], owner[fresh[1::3]] = "Без ответственного", "No owner"
    data.leads = data.leads.assign(manager_id=pd.array(owner, dtype="string"))
    data.managers = pd.concat([data.managers, pd.DataFrame({"manager_id": ["Без ответственного"],
                                                            "name": ["Без ответственного"]})], ignore_index=True)
    data.no_owner = frozenset({"No owner"})
    items = detect(data, ON, NOW)
    assert {i.facts["manager_id"] for i in items} >= {None} and "Без ответственного" not in {i.facts["manager_id"] for i in items}
    (director,) = [i for i in items if i.audience.role == "director"]
    nobody = set(data.leads.loc[fresh[0::3].union(fresh[1::3]), "lead_id"])
    assert {d["lead_id"] for d in director.facts["leads"]} <= nobody
    assert "Без ответственного" not in insight_text(director, "ru") and "No owner" not in insight_text(director, "en")


def test_new_leads_of_an_owner_nobody_contacts_clients_for_are_the_directors(scored):
    """One manager of the planted company stops recording any call, task or email, by them or
    on their deals (detectors.people.Workforce: "no contact", as stalled_deal and manager_load
    read it), while the leads keep coming to them: their list is nobody's to read, so their new
    leads are on the director's list; the other managers keep theirs."""
    data, items = scored
    who = max((i for i in items if i.audience.role == "manager"), key=lambda i: i.facts["new_leads"]).audience.manager_id
    quiet = _company(data.leads)
    theirs = set(quiet.deals.loc[quiet.deals["manager_id"] == who, "deal_id"])
    for table in ("activities", "emails"):
        frame = getattr(quiet, table)
        if frame is not None:
            setattr(quiet, table, frame[(frame["manager_id"] != who) & ~frame["deal_id"].isin(theirs)].reset_index(drop=True))
    after = detect(quiet, ON, NOW)
    assert who not in {i.audience.manager_id for i in after}
    (director,) = [i for i in after if i.audience.role == "director"]
    assert director.facts["new_leads"] >= next(i.facts["new_leads"] for i in items if i.audience.manager_id == who)
    others = {i.audience.manager_id for i in items if i.audience.role == "manager"} - {who}
    assert others and others <= {i.audience.manager_id for i in after}

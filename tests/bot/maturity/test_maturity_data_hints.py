"""What the data says, on small hand-made frames: each signature, each missing-data case."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
from maturity_helpers import NOW, make_data, make_leads, ts

from bot.maturity.data_hints import (DataHint, auto_actions_hint, crm_coverage_hint, data_hints,
                                     data_quality_hint, lead_distribution_hint)
from messages.maturity import hint_text


def test_near_instant_even_assignment_reads_as_rules():
    data = make_data(leads=make_leads(60, minutes=0.5, managers=["m1", "m2", "m3"]))
    h = lead_distribution_hint(data, NOW)
    assert h.kind == "lead_assignment"
    assert h.facts["signature"] == "automatic"
    assert h.facts["median_minutes"] == 0.5 and h.facts["fast_share"] == 1.0
    assert h.facts["evenness_cv"] == 0.0 and h.facts["managers_n"] == 3
    assert "looks like automatic distribution by rules" in hint_text(h, "en")
    assert "меньше минуты" in hint_text(h, "ru")


def test_slow_assignment_reads_as_by_hand():
    data = make_data(leads=make_leads(60, minutes=240.0, managers=["m1", "m2", "m3"]))
    h = lead_distribution_hint(data, NOW)
    assert h.facts["signature"] == "manual"
    assert "4\u00a0hours" in hint_text(h, "en") and "by hand" in hint_text(h, "en")


def test_fast_but_uneven_is_mixed_and_uneven_without_times_is_manual():
    owners = ["m1"] * 50 + ["m2"] * 8 + ["m3"] * 2
    leads = make_leads(60, minutes=1.0, managers=["m1"])
    leads["manager_id"] = pd.Series(owners, dtype="str")
    h = lead_distribution_hint(make_data(leads=leads), NOW)
    assert h.facts["evenness_cv"] > 0.5 and h.facts["signature"] == "mixed"

    no_times = make_leads(60, minutes=1.0, managers=["m1"], assigned_at=False)
    no_times["manager_id"] = pd.Series(owners, dtype="str")
    h = lead_distribution_hint(make_data(leads=no_times), NOW)
    assert h.facts["median_minutes"] is None and h.facts["signature"] == "manual"
    assert "assigned_at" in hint_text(h, "en")


def test_capacity_is_respected_a_half_time_manager_with_half_the_leads_is_even():
    managers = pd.DataFrame({"manager_id": pd.Series(["m1", "m2", "m3"], dtype="str"),
                             "name": pd.Series(["A", "B", "C"], dtype="str"),
                             "capacity": [1.0, 1.0, 0.5], "active": [True, True, True]})
    leads = make_leads(50, minutes=1.0, managers=["m1", "m2", "m1", "m2", "m3"])
    h = lead_distribution_hint(make_data(leads=leads, managers=managers), NOW)
    assert h.facts["evenness_cv"] == 0.0 and h.facts["signature"] == "automatic"


def test_few_leads_are_unclear_and_future_leads_are_ignored():
    leads = make_leads(10, minutes=1.0, managers=["m1", "m2"])
    h = lead_distribution_hint(make_data(leads=leads), NOW)
    assert h.facts["leads_n"] == 10 and h.facts["signature"] == "unclear"
    future = make_leads(30, minutes=1.0, managers=["m1"], start=NOW + timedelta(days=1))
    assert lead_distribution_hint(make_data(leads=future), NOW).kind == "no_leads"


def test_missing_leads_and_leads_without_managers_are_said_plainly():
    assert lead_distribution_hint(make_data(), NOW).kind == "no_leads"
    leads = make_leads(30, minutes=1.0, managers=["m1"])
    leads["manager_id"] = pd.Series([None] * 30, dtype="str")
    h = lead_distribution_hint(make_data(leads=leads), NOW)
    assert h.kind == "leads_without_managers" and "no manager set" in hint_text(h, "en")


def _activities(**extra) -> pd.DataFrame:
    base = {"activity_id": pd.Series(["a1", "a2", "a3", "a4"], dtype="str"),
            "type": pd.Series(["task"] * 4, dtype="str"),
            "due_at": ts([NOW] * 4)}
    base.update(extra)
    return pd.DataFrame(base)


def test_automatic_actions_from_created_by_or_is_auto():
    h = auto_actions_hint(make_data(activities=_activities(
        created_by=pd.Series(["System", "Asel", "робот", None], dtype="str"))))
    assert h.kind == "auto_activities"
    assert (h.facts["column"], h.facts["auto_n"], h.facts["marked_n"]) == ("created_by", 2, 3)
    assert "The system itself created 2 of 3 activities (67%)" in hint_text(h, "en")
    h = auto_actions_hint(make_data(activities=_activities(is_auto=[True, False, False, False])))
    assert (h.facts["column"], h.facts["auto_n"], h.facts["auto_share"]) == ("is_auto", 1, 0.25)


def test_unmarked_or_missing_activities_say_the_data_cannot_tell():
    h = auto_actions_hint(make_data(activities=_activities()))
    assert h.kind == "activities_unmarked" and h.facts["activities_n"] == 4
    assert "created_by" in hint_text(h, "ru")
    assert auto_actions_hint(make_data()).kind == "no_activities"


def test_data_quality_counts_closed_deals_loss_reasons_and_empty_key_fields():
    h = data_quality_hint(make_data(), NOW)
    f = h.facts
    assert (f["deals_n"], f["closed_n"], f["won_n"], f["lost_n"]) == (4, 3, 1, 2)
    assert f["lost_with_reason_share"] == 0.5
    empty = {e["field"]: e["empty_share"] for e in f["empty_fields"]}
    assert empty == {"client_id": 0.25, "amount": 0.25, "source": 0.25}
    assert f["incomplete_share"] == 0.5  # d2 (client, amount) and d3 (blank source) of 4
    text = hint_text(h, "en")
    assert "3 closed deals" in text and "not yet enough to train models" in text
    assert "empty in 50% of deals (client — 25%, amount — 25%, source — 25%)" in text


def test_no_data_at_all_is_one_plain_hint():
    hints = data_hints(None, NOW)
    assert hints == [DataHint(None, "no_data")]
    assert "No CRM data" in hint_text(hints[0], "en")


def test_hints_round_trip_through_json_dicts():
    hints = data_hints(make_data(leads=make_leads(30, minutes=2.0, managers=["m1", "m2"])), NOW)
    assert [h.question_id for h in hints] == ["systems", "lead_distribution", "auto_actions", "recommendations",
                                            "recommendations"]
    assert [DataHint.from_dict(h.to_dict()) for h in hints] == hints


def test_coverage_says_what_the_crm_holds_and_what_it_cannot_show():
    h = crm_coverage_hint(make_data(activities=_activities(type=pd.Series(["call", "call", "meeting", "task"],
                                                                          dtype="str"))))
    assert h.facts == {"clients": False, "emails_n": None, "calls_n": 2, "meetings_n": 1}
    text = hint_text(h, "en")
    assert "cannot show how many systems" in text
    assert "calls (2), meetings (1)" in text and "Not in the data: client cards, emails." in text
    bare = hint_text(crm_coverage_hint(make_data()), "ru")
    assert "почти ничего, кроме сделок" in bare

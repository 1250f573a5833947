"""Issue 9 on lead exports as admins download them from the web UI (tests/scenarios/_lead_exports.py:
Bitrix24 «Лиды», amoCRM «Неразобранное», HubSpot contacts, Pipedrive Leads inbox), beside the
same company's deals export, with a config written from README and config.example.toml only.
Run through the real CLI and asserted on what the admin or the director would read: no lead SLA
alert from a column the export does not have, none about a record that is no lead or a lead
already worked on, and the lead nobody took still found.
"""
from __future__ import annotations

import csv
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import _amocrm_export
import _bitrix24_export
import _web_exports
from _cli import run_cli
from _export_factory import DIRECTOR, ExportSpec, head
from _lead_exports import FILES, ZONES, LeadExport, recipe, write

UTC = timezone.utc
END = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)  # Friday: 16:00 in Almaty, 06:00 in New York


def spec(seed: int, **kw) -> ExportSpec:
    return ExportSpec(**{"seed": seed, "end": END, "days": 200, "n_managers": 6, "deals_per_month": 150,
                         "leads_per_month": 300, "with_emails": False, **kw})


def exported(tmp_path: Path, x: LeadExport, *, lang: str = "ru", extra: str = "", departed: int = 0) -> tuple[Path, dict]:
    """The CRM's deals export and its leads export in one folder, the admin's config beside it.
    `departed` (HubSpot, Pipedrive): the last working managers left (_web_exports.WebExport)."""
    folder = tmp_path / x.crm
    truth = write(folder, x)
    if x.crm == "bitrix24":
        _bitrix24_export.write(folder, _bitrix24_export.Bitrix24Export(x.spec), leads=False)
    elif x.crm == "amocrm":
        _amocrm_export.write(folder, _amocrm_export.AmoExport(x.spec))
    else:
        _web_exports.write(folder, _web_exports.WebExport(x.crm, x.spec, tz=ZONES[x.crm], departed=departed))
    config = tmp_path / f"{x.crm}.toml"
    text = head(lang, ZONES[x.crm], "KZT", x.crm) + DIRECTOR + recipe(x.crm) + extra
    config.write_text(text, encoding="utf-8")
    return config, truth


def scan(config: Path, now: datetime) -> tuple[list[dict], str]:
    rc, out, err = run_cli("scan", "--config", str(config), "--now", now.isoformat(), "--format", "json")
    assert rc == 0, err
    return json.loads(out), err


def lead_alerts(items: list[dict]) -> dict[str, str]:
    """lead id -> kind, of every lead behind a lead_sla item (a recipient's many are one backlog item)."""
    return {k: i["subject"]["kind"] for i in items if i["detector"] == "lead_sla" for k in i["evidence"]["lead_ids"]}


def add_rows(path: Path, rows: list[dict], delimiter: str = ",") -> None:
    """Rows added by hand to an export (the CRM had them), in its own columns."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f, delimiter=delimiter))
    with open(path, "a", newline="", encoding="utf-8") as f:
        csv.DictWriter(f, fieldnames=header, delimiter=delimiter).writerows(rows)


# --- HubSpot contacts: subscribers are no leads, a customer was answered ----------------------------

def test_hubspot_contacts_export_flags_only_the_lead_nobody_owns(tmp_path):
    """A HubSpot contacts export as the leads file: every contact is a row, newsletter subscribers
    (no owner, never a lead) and customers whose contact owner is blank (the deal has one). Each
    was an "unassigned lead" for the director (13 on one scan of this company, 11 of them
    subscribers). Now only a real lead without an owner is: two planted, one a day old (the
    assignment SLA passed), one created minutes ago (it has not)."""
    now = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # 11:00 in New York
    x = LeadExport("hubspot", spec(1), subscribers=300, unowned_customers=0.4)
    config, truth = exported(tmp_path, x)
    contacts = tmp_path / "hubspot" / FILES["hubspot"]
    with open(contacts, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    unowned = [r for r in rows if not r["Contact owner"] and r["Create Date"] >= "2026-11-13"]
    assert {r["Lifecycle Stage"] for r in unowned} >= {"subscriber", "customer"}, "the case this test is about"
    planted = {"Record ID": "99000001", "First Name": "Ada", "Last Name": "Waiting", "Email": "ada@example.com",
               "Lifecycle Stage": "lead", "Lead Status": "New", "Contact owner": "", "Create Date": "2026-11-19 10:00",
               "Last Activity Date": "", "Became a Lead Date": "2026-11-19 10:00", "Original Source": "Organic Search"}
    just_now = {**planted, "Record ID": "99000002", "Create Date": "2026-11-20 10:50",
                "Became a Lead Date": "2026-11-20 10:50"}
    add_rows(contacts, [planted, just_now])
    items, err = scan(config, now)
    assert lead_alerts(items) == {"99000001": "unassigned"}, lead_alerts(items)
    assert "unanswered leads: not checked, needs column first_response_at in leads" in err, err
    # the UI's labels ("Sales Qualified Lead", "Customer") are the same words
    labelled, _ = exported(tmp_path / "labels", LeadExport("hubspot", spec(1), subscribers=300, unowned_customers=0.4,
                                                          hubspot_labels=True))
    add_rows(tmp_path / "labels" / "hubspot" / FILES["hubspot"], [planted])
    assert lead_alerts(scan(labelled, now)[0]) == {"99000001": "unassigned"}


def test_hubspot_last_activity_date_as_first_response_raises_no_alert_for_a_customer(tmp_path):
    """An admin who maps "Last Activity Date" as the first answer (it is not one: a deal's work is
    logged on the deal, so a third of the customers here have none on the contact): each such
    customer or opportunity created in the last week was an "unanswered lead". A contact that
    became a deal was answered; the lead still "New" with no activity is the one to report."""
    now = END + timedelta(hours=2)  # 08:00 in New York
    x = LeadExport("hubspot", spec(2), subscribers=100)
    config, truth = exported(tmp_path, x, extra='first_response_at = "Last Activity Date"\n')
    contacts = tmp_path / "hubspot" / FILES["hubspot"]
    with open(contacts, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    silent_customers = [r for r in rows if r["Lifecycle Stage"] in ("customer", "opportunity")
                        and not r["Last Activity Date"] and r["Create Date"] >= "2026-11-16"]
    assert len(silent_customers) >= 5, "the case this test is about"
    waiting = {**silent_customers[0], "Record ID": "99000003", "Lifecycle Stage": "lead", "Lead Status": "New",
               "Create Date": "2026-11-19 09:30", "Became a Lead Date": "2026-11-19 09:30"}
    add_rows(contacts, [waiting])
    alerts = lead_alerts(scan(config, now)[0])
    assert not set(alerts) & {r["Record ID"] for r in silent_customers}, alerts
    assert alerts.get("99000003") == "unanswered", alerts


def test_hubspot_lead_score_counts_customers_as_converted_and_never_lists_a_subscriber(tmp_path):
    """lead_score on the contacts export said "0 converted" (HubSpot's lifecycle words were in no
    list) and would rank a newsletter subscriber as a new lead to call. A customer or opportunity
    is converted; a subscriber is neither an outcome nor a lead."""
    x = LeadExport("hubspot", spec(3), subscribers=400)
    config, truth = exported(tmp_path, x, extra="[detectors.lead_score]\nenabled = true\n")
    _, err = scan(config, END + timedelta(hours=2))
    line = next(ln for ln in err.splitlines() if ln.startswith("skipped lead_score"))
    assert f"no lead status says not converted ({len(truth['converted'])} converted, 0 not;" in line, line
    assert "subscriber" not in line, line


# --- Bitrix24 «Лиды»: no assignment, no answer column -----------------------------------------------

def test_bitrix24_leads_list_says_which_column_would_enable_the_answer_check(tmp_path):
    """Bitrix24's leads list has «Дата изменения» but no first answer: check-config and scan say
    the "unanswered" part needs first_response_at; on the Monday after, with weekend web leads
    still «Не обработан», nothing is alerted from the absent column."""
    x = LeadExport("bitrix24", spec(4))
    config, truth = exported(tmp_path, x)
    monday = datetime(2026, 11, 23, 5, 30, tzinfo=UTC)  # 10:30 in Almaty
    rc, out, err = run_cli("check-config", str(config), "--now", monday.isoformat())
    assert rc == 0, out + err
    assert "unanswered leads: not checked, needs column first_response_at in leads (absent or empty in " \
           "LEAD_20261120.csv)" in out, out
    items, err = scan(config, monday)
    assert truth["waiting"] and not lead_alerts(items), lead_alerts(items)


def test_a_changed_date_mapped_as_the_first_answer_is_called_out(tmp_path):
    """An admin who fills the gap with «Дата изменения» (it changes on any edit, and on a Bitrix24
    lead it is set at creation): every lead nobody answered looked answered, and nothing said so.
    check-config and scan now warn, naming the column and what to do instead."""
    x = LeadExport("bitrix24", spec(4), unaccepted=3)
    config, truth = exported(tmp_path, x, extra='first_response_at = "Дата изменения"\n')
    friday = END + timedelta(hours=1)
    rc, out, err = run_cli("check-config", str(config), "--now", friday.isoformat())
    assert rc == 0, out + err
    line = next((ln for ln in (out + err).splitlines() if "'Дата изменения' is read as leads.first_response_at" in ln), "")
    assert "not when the first answer to the client" in line and "leave first_response_at unmapped" in line, out + err
    _, err = scan(config, friday)
    assert "'Дата изменения' is read as leads.first_response_at" in err, err
    # a first-answer column by its own name raises no such warning
    plain, _ = exported(tmp_path / "plain", x, extra='first_response_at = "Дата изменения"\n')
    text = plain.read_text(encoding="utf-8").replace('first_response_at = "Дата изменения"', 'first_response_at = "Первый ответ"')
    plain.write_text(text, encoding="utf-8")
    leads = tmp_path / "plain" / "bitrix24" / FILES["bitrix24"]
    leads.write_text(leads.read_text(encoding="utf-8-sig").replace("Дата изменения", "Первый ответ"), encoding="utf-8-sig")
    _, err = scan(plain, friday)
    assert "is read as leads.first_response_at" not in err, err


# --- amoCRM «Неразобранное»: the incoming request nobody accepted ------------------------------------

def test_amocrm_incoming_requests_nobody_accepted_go_to_the_director(tmp_path):
    """amoCRM's incoming stage holds requests with no responsible user: those are the leads
    waiting for a manager, reported once the assignment SLA (working hours) passed by the
    export's end, as one item for the director; accepted, won and closed requests are not. The
    export ends Friday afternoon and is scanned on Monday: a request that came in its last
    working hour is not judged (whether someone took it after the export is not in the file)."""
    x = LeadExport("amocrm", spec(5), unaccepted=8)
    config, truth = exported(tmp_path, x)
    incoming = tmp_path / "amocrm" / FILES["amocrm"]
    with open(incoming, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    unsorted = {r["ID"]: datetime.strptime(r["Дата создания"], "%d.%m.%Y %H:%M:%S").replace(tzinfo=ZoneInfo("Asia/Almaty"))
                for r in rows if r["Этап сделки"] == "Неразобранное"}
    assert unsorted, "the case this test is about"
    monday = datetime(2026, 11, 23, 5, 30, tzinfo=UTC)  # 10:30 in Almaty: Friday's requests waited > 1 working hour
    items, _ = scan(config, monday)
    leads = [i for i in items if i["detector"] == "lead_sla"]
    assert len(leads) == 1 and leads[0]["audience"]["role"] == "director", leads  # one backlog item
    end = datetime.fromisoformat(leads[0]["facts"]["data_end"])  # the export's newest record, Friday
    assert end.astimezone(ZoneInfo("Asia/Almaty")).date() == datetime(2026, 11, 20).date(), end
    judged = {k for k, created in unsorted.items() if created < end - timedelta(hours=1)}
    assert 4 <= len(judged) < len(unsorted), (judged, unsorted, end)  # a backlog, and the last hour's are left
    assert lead_alerts(items) == dict.fromkeys(judged, "unassigned"), (lead_alerts(items), unsorted, end)
    assert leads[0]["text"].startswith(f"Заявки без менеджера дольше нормы (1\xa0рабочий час): {len(judged)}\xa0заяв"), \
        leads[0]["text"]
    assert re.search(r"Ожидание посчитано до последней записи в выгрузке \(20 ноября, \d\d:\d\d\): .*проверим по "
                     r"следующей выгрузке", leads[0]["text"].replace("\n", " ")), leads[0]["text"]
    # the SLA counted working hours: Friday's requests did not wait through the weekend
    assert leads[0]["facts"]["working_hours_waited"] < 12, leads[0]["facts"]


# --- Pipedrive Leads inbox: no status at all --------------------------------------------------------

def test_pipedrive_leads_inbox_is_read_and_says_what_it_cannot_tell(tmp_path):
    """The inbox holds open leads only, each with an owner, and no status: lead_sla has no
    unassigned lead to report and cannot tell an answered one, lead_score has no outcome to
    learn from; both say which column would enable them, and nothing is alerted."""
    x = LeadExport("pipedrive", spec(6))
    config, _ = exported(tmp_path, x, lang="en", extra="[detectors.lead_score]\nenabled = true\n")
    items, err = scan(config, END + timedelta(hours=3))
    assert not [i for i in items if i["detector"] in ("lead_sla", "lead_score")], items
    assert "skipped lead_score: needs column status in leads (absent or empty in leads-export.csv)" in err, err
    assert "unanswered leads: not checked, needs column first_response_at in leads" in err, err


def test_leads_still_written_to_a_deactivated_user_go_to_the_director(tmp_path):
    """Pipedrive keeps a deactivated user's name on their leads (and its round robin may still
    give them new ones); the users page marks them inactive. Those leads were "assigned", so
    nobody was told (a manager item with no recipient, or nothing when answers are unknown).
    Now the leads of the week written to that person are one director item, naming them, saying
    nobody will answer and what to fix in the CRM; the working managers' leads stay quiet."""
    x = LeadExport("pipedrive", spec(6))
    config, truth = exported(tmp_path, x, extra="[detectors.lead_score]\nenabled = true\n", departed=1)
    gone = truth["name_of"]["m6"]
    with open(tmp_path / "pipedrive" / FILES["pipedrive"], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    now = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)  # Monday 10:30 in Berlin: Friday's leads waited > 1 working hour
    week = (now - timedelta(days=7)).astimezone(ZoneInfo(ZONES["pipedrive"])).strftime("%Y-%m-%d %H:%M:%S")
    theirs = {r["Title"] for r in rows if r["Owner"] == gone and r["Lead created"] > week}
    assert theirs, "the case this test is about"
    items, err = scan(config, now)
    leads = [i for i in items if i["detector"] == "lead_sla"]
    assert lead_alerts(items) == dict.fromkeys(theirs, "unassigned")
    (item,) = leads
    assert item["audience"]["role"] == "director" and item["subject"]["written_to"] == gone, item
    assert item["facts"]["leads"] == len(theirs) and item["facts"]["owner_gone"] == gone, item["facts"]
    assert item["text"].startswith(f"Заявки записаны на сотрудника, который больше не работает ({gone}): "
                                   f"{len(theirs)}\xa0заяв"), item["text"]
    assert "уберите сотрудника из распределения заявок в CRM" in item["text"], item["text"]


ONLY_LEAD_SLA = ("conversion_drop", "manager_load", "loss_reasons", "stalled_deal", "silent_client")


@pytest.mark.parametrize("crm", ["pipedrive", "hubspot"])
def test_six_weeks_of_leads_given_to_a_user_who_left_are_one_alert_not_one_per_lead(tmp_path, crm):
    """The CRM's round robin gives a user who left a lead every day or two for weeks. Each was
    the director's own item, escalated and sent at once as critical (8 of 9 director items over
    these six weeks were criticals sent at once): the person is one item, one critical alert,
    reminded as any open item, and the replay's every lead of theirs is still behind it."""
    x = LeadExport(crm, spec(6))
    only_leads = "".join(f"[detectors.{d}]\nenabled = false\n" for d in ONLY_LEAD_SLA)  # the director's items are lead_sla's
    config, truth = exported(tmp_path, x, extra=only_leads, departed=1)
    gone = truth["name_of"]["m6"]
    rc, out, err = run_cli("backtest", "--config", str(config), "--from", "2026-10-12", "--to", "2026-11-20",
                           "--format", "json")
    assert rc == 0, err
    director = json.loads(out)["recipients"]["director"]
    assert director["critical_at_once"] <= 1 and director["items"] <= 3, director
    items, _ = scan(config, datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    (item,) = [i for i in items if i["detector"] == "lead_sla" and i["facts"].get("owner_gone")]
    assert item["subject"]["written_to"] in (gone, truth["name_of"].get("m6")) and item["severity"] == "critical", item


# --- a lead flood stays within the daily budget -------------------------------------------------------

FLOOD = '''language = "ru"
timezone = "Asia/Almaty"
[source]
kind = "files"
path = "./data"
[[recipients]]
id = "director"
name = "Director"
role = "director"
telegram_id = 1
[[recipients]]
id = "m1"
name = "M1"
role = "manager"
manager_id = "m1"
telegram_id = 2
'''


def test_a_manager_who_falls_behind_on_a_busy_inbox_is_one_item_a_day_not_one_per_lead(tmp_path):
    """1,500 leads a month, one manager of six answers each two days late (the export has the
    answer column). The backtest said m1 got 7.3 items a day and the director 5.1 (each lead, then
    each escalation), both over the daily budget of 5. The waiting leads of one recipient are now
    one backlog item: the budget holds, and the backlog still names the leads behind it."""
    from _export_factory import read_rows, write_export, write_rows

    folder = write_export(tmp_path / "data", spec(3, leads_per_month=1500))
    rows = read_rows(folder, "leads")
    for r in rows:
        if r["manager_id"] == "m1" and r["first_response_at"]:
            late = datetime.fromisoformat(r["first_response_at"].replace("Z", "+00:00")) + timedelta(days=2)
            r["first_response_at"] = late.isoformat()
    write_rows(folder, "leads", rows)
    config = tmp_path / "flood.toml"
    config.write_text(FLOOD, encoding="utf-8")
    rc, out, err = run_cli("backtest", "--config", str(config), "--from", "2026-09-21", "--to", "2026-11-19",
                           "--format", "json", "--fail-on-budget")
    report = json.loads(out)
    assert rc == 0 and report["budget"]["over"] == [], report["budget"]
    assert report["detectors"]["lead_sla"]["alerts"] > 0
    items, _ = scan(config, datetime(2026, 11, 18, 9, 0, tzinfo=UTC))  # Wednesday 14:00 in Almaty
    backlog = [i for i in items if i["detector"] == "lead_sla" and i["audience"].get("manager_id") == "m1"]
    assert len(backlog) == 1 and backlog[0]["subject"]["backlog"] is True, backlog
    assert backlog[0]["facts"]["leads"] == len(backlog[0]["evidence"]["lead_ids"]) > 3


# --- an export read hours after it was taken; an owner filled "No owner" -----------------------------

def test_an_export_read_hours_after_it_was_taken_judges_its_leads_at_its_end(tmp_path):
    """A canonical export with assignment and first-answer times, taken Friday 16:00 in Almaty
    (every lead assigned within 20 minutes and answered within the hour) and scanned at 19:00
    and on Monday morning: the leads of its last hour have no answer in the file, and were
    reported unanswered or unassigned past their SLA, though nobody could know. A lead planted
    unanswered since the morning is still reported, its wait counted to the export's end."""
    import _export_factory as factory

    x = spec(3, leads_per_month=900)
    folder = factory.write_export(tmp_path / "data", x)
    with open(folder / "leads.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    last_hour = [r["lead_id"] for r in rows if r["created_at"] >= (END - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
                 and not r["first_response_at"]]
    assert last_hour, "the case this test is about"
    manager = next(r["manager_id"] for r in rows if r["manager_id"])
    morning = {**rows[-1], "lead_id": "L-MORNING", "created_at": "2026-11-20T04:00:00Z", "manager_id": manager,
               "assigned_at": "2026-11-20T04:05:00Z", "first_response_at": "", "status": "new"}
    add_rows(folder / "leads.csv", [morning])
    config = tmp_path / "c.toml"
    config.write_text(head("en", "Asia/Almaty", "KZT", "data") + DIRECTOR, encoding="utf-8")
    for now in (END + timedelta(hours=3), datetime(2026, 11, 23, 4, 0, tzinfo=UTC)):  # 19:00; Monday 09:00
        items, _ = scan(config, now)
        assert lead_alerts(items) == {"L-MORNING": "unanswered"}, (now, lead_alerts(items), last_hour)
        (item,) = [i for i in items if i["detector"] == "lead_sla"]
        assert item["facts"]["working_hours_waited"] == 7.0, item["facts"]  # 09:00 to the export's 16:00
        assert re.search(r"The wait is counted up to the export's newest record \(20 November, 15:\d\d\): anything later "
                         r"is not in it\.", item["text"]), item["text"]


def test_leads_whose_owner_was_filled_no_owner_are_nobodys(tmp_path):
    """The admin fills the owners the CRM left blank ([source.fill.leads] manager_id = "No owner",
    as README advises for deals): the lead waiting for a manager was "assigned to No owner, who
    is not among the working managers". It has no manager: "not assigned to anyone"."""
    now = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # 11:00 in New York
    x = LeadExport("hubspot", spec(1), subscribers=50)
    config, _ = exported(tmp_path, x, lang="en", extra='[source.fill.leads]\nmanager_id = "No owner"\n')
    contacts = tmp_path / "hubspot" / FILES["hubspot"]
    planted = {"Record ID": "99000001", "First Name": "Ada", "Last Name": "Waiting", "Email": "ada@example.com",
               "Lifecycle Stage": "lead", "Lead Status": "New", "Contact owner": "", "Create Date": "2026-11-19 10:00",
               "Last Activity Date": "", "Became a Lead Date": "2026-11-19 10:00", "Original Source": "Organic Search"}
    add_rows(contacts, [planted, {**planted, "Record ID": "99000002", "Create Date": "2026-11-20 10:50",
                                  "Became a Lead Date": "2026-11-20 10:50"}])
    items, _ = scan(config, now)
    assert lead_alerts(items) == {"99000001": "unassigned"}, lead_alerts(items)
    (item,) = [i for i in items if i["detector"] == "lead_sla"]
    assert item["audience"]["role"] == "director" and item["facts"]["owner_gone"] is None, item
    assert "still not assigned to anyone" in item["text"] and "No owner" not in item["text"], item["text"]

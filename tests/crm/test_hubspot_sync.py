"""HubSpot sync through a fake HubSpot on 127.0.0.1: what a first and a later sync ask for, what
the store holds, the search's 10,000-result cap, deletions, an interrupted sync, 429s and the
daily limit, missing scopes, and the token kept out of every log line."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
import pytest

from bot.cli import main as cli_main
from crm.connectors import hubspot
from crm.errors import DataError
from crm.load import load_crm
from crm.source_config import SourceConfig
from tests.fakes.store import (
    assert_pipelines_pooled_then_kept, assert_same_store, dies_at, sigkill_when, sync_in_child,
)
from tests.fakes.amocrm_server import ThreadedServer
from tests.fakes.hubspot_server import FakeHubSpot

T0 = 1_760_000_000_000  # ms; every record of the planted account is after this
HOUR, DAY = 3_600_000, 86_400_000
N_DEALS = 250  # three search pages of 100
CLIENT_MAIL = "ivan@romashka.example"
SEARCH_PER_SECOND = hubspot.SEARCH_PER_SECOND  # HubSpot's real search limit, as the connector keeps it


def _account(fake: FakeHubSpot, n: int = N_DEALS) -> None:
    """Two pipelines, three owners (one archived), `n` deals in Sales (every third lost after
    qualification, every fifth won after a presentation), one deal in Service; every tenth
    deal has a call, a meeting, an outgoing email and two opens of it."""
    fake.add_pipeline("default", "Sales Pipeline", [("appointmentscheduled", "Appointment"),
                                                    ("qualifiedtobuy", "Qualified"),
                                                    ("presentationscheduled", "Presentation")])
    fake.add_pipeline("svc", "Service", [("svc_new", "Service request")], order=1, won="svc_won", lost="svc_lost")
    fake.add_owner("101", "Anna", "Ivanova", "anna@example.kz", team="Almaty")
    fake.add_owner("102", "Boris", "Petrov", "boris@example.kz", team="Astana")
    fake.add_owner("103", "Vera", "Sidorova", None, team="Astana", archived=True)
    fake.put("companies", "900", {"name": "Romashka LLC", "hubspot_owner_id": "101", "industry": "Mining",
                                  "createdate": hubspot_iso(T0)}, T0)
    fake.put("contacts", "700", {"firstname": "Ivan", "lastname": "Petrov", "email": CLIENT_MAIL,
                                 "hubspot_owner_id": "102"}, T0)
    for i in range(1, n + 1):
        created = T0 + i * HOUR
        status = "lost" if i % 3 == 0 else "won" if i % 5 == 0 else "open"
        steps = [("appointmentscheduled", created)]
        if status != "open":
            steps.append(("qualifiedtobuy", created + DAY))
        if status == "won":
            steps.append(("presentationscheduled", created + 2 * DAY))
        closed = created + 3 * DAY if status != "open" else None
        if closed:
            steps.append(("closedwon" if status == "won" else "closedlost", closed))
        fake.put("deals", str(i), {
            "dealname": f"Deal {i}", "amount": str(1000 * i), "dealstage": steps[-1][0], "pipeline": "default",
            "createdate": hubspot_iso(created), "closedate": hubspot_iso(closed),
            "hubspot_owner_id": str(101 + i % 2), "closed_lost_reason": "Budget" if status == "lost" else None,
            "lead_channel": "Web" if i % 4 else "Phone"}, closed or created, history={"dealstage": steps})
        if i % 2:
            fake.associate("deals", str(i), "companies", "900")
        fake.associate("deals", str(i), "contacts", "700")
        if i % 10 == 0:
            at = created + 600_000
            fake.put("calls", f"5{i:04d}", {"hs_timestamp": hubspot_iso(at), "hubspot_owner_id": "101",
                                            "hs_call_status": "COMPLETED"}, at)
            fake.associate("calls", f"5{i:04d}", "deals", str(i))
            fake.put("meetings", f"6{i:04d}", {"hs_timestamp": hubspot_iso(created + DAY), "hubspot_owner_id": "102",
                                               "hs_meeting_start_time": hubspot_iso(created + DAY),
                                               "hs_meeting_end_time": hubspot_iso(created + DAY + HOUR),
                                               "hs_meeting_outcome": "COMPLETED"}, created + DAY + HOUR)
            fake.associate("meetings", f"6{i:04d}", "deals", str(i))
            sent = created + 900_000
            fake.put("emails", f"7{i:04d}", {"hs_timestamp": hubspot_iso(sent), "hs_email_direction": "EMAIL",
                                             "hs_email_subject": f"Proposal {i}", "hubspot_owner_id": "101",
                                             "hs_email_to_email": CLIENT_MAIL}, sent)
            fake.associate("emails", f"7{i:04d}", "deals", str(i))
            fake.associate("emails", f"7{i:04d}", "contacts", "700")
            fake.open_event(f"open-{i}-a", CLIENT_MAIL, sent + HOUR, sent)
            fake.open_event(f"open-{i}-b", CLIENT_MAIL, sent + 2 * HOUR, sent)
    fake.put("deals", "5000", {"dealname": "Service request", "amount": "1", "dealstage": "svc_new", "pipeline": "svc",
                               "createdate": hubspot_iso(T0), "hubspot_owner_id": "101"}, T0,
             history={"dealstage": [("svc_new", T0)]})


def hubspot_iso(ms: int | None) -> str | None:
    from tests.fakes.hubspot_server import iso

    return iso(ms)


def _source(fake: FakeHubSpot, store: Path, **kw) -> SourceConfig:
    return SourceConfig(kind="hubspot", base_url=f"http://127.0.0.1:{fake.port}", token_env="TEST_HUBSPOT_TOKEN",
                        store=str(store), pipelines=["Sales Pipeline"], requests_per_second=100,
                        custom_fields={"deals": {"source": "lead_channel"}, "clients": {"segment": "industry"}}, **kw)


@pytest.fixture
def fake(monkeypatch):
    server = FakeHubSpot()
    _account(server)
    monkeypatch.setenv("TEST_HUBSPOT_TOKEN", server.token)
    monkeypatch.setattr(hubspot, "SEARCH_PER_SECOND", 100.0)  # the fake enforces no search limit unless told
    with ThreadedServer(server) as running:
        yield running




def test_first_sync_takes_everything_and_maps_it_to_the_contract(fake, tmp_path):
    source = _source(fake, tmp_path / "store")
    report = hubspot.sync(source, None)
    assert report.rows["deals"] == N_DEALS + 1
    searches = fake.searches("deals")
    windows = [int(b["filterGroups"][0]["filters"][0]["value"]) for b in searches]
    assert len(searches) == 3 and windows[0] == 0 and windows == sorted(set(windows))  # the window moves
    assert all(b["limit"] == 100 and "after" not in b for b in searches)

    data = load_crm(source).data
    deals = data.deals.set_index("deal_id")
    assert len(deals) == N_DEALS and "5000" not in deals.index  # Service is not included
    assert data.stages == ["Appointment", "Qualified", "Presentation"]
    assert deals.loc["3", "status"] == "lost" and deals.loc["3", "stage"] == "Qualified"
    assert deals.loc["3", "loss_reason"] == "Budget"
    assert deals.loc["5", "status"] == "won" and deals.loc["5", "stage"] == "Presentation"
    assert deals.loc["5", "closed_at"] == pd.Timestamp(T0 + 5 * HOUR + 3 * DAY, unit="ms", tz="UTC")
    assert deals.loc["1", "status"] == "open" and deals.loc["1", "stage"] == "Appointment"
    assert pd.isna(deals.loc["1", "closed_at"]) and pd.isna(deals.loc["1", "loss_reason"])
    assert deals.loc["1", "client_id"] == "900" and deals.loc["2", "client_id"] == "contact-700"
    assert deals.loc["4", "source"] == "Phone" and deals.loc["1", "source"] == "Web"
    assert deals.loc["5", "currency"] == "USD" and deals.loc["5", "amount"] == 5000
    assert deals.loc["5", "manager_id"] == "102"
    history = data.stage_history[data.stage_history.deal_id == "5"].sort_values("entered_at")
    assert history.stage.tolist() == ["Appointment", "Qualified", "Presentation"]
    assert history.entered_at.iloc[1] == pd.Timestamp(T0 + 5 * HOUR + DAY, unit="ms", tz="UTC")
    managers = data.managers.set_index("manager_id")
    assert managers.loc["101", "name"] == "Anna Ivanova" and managers.loc["101", "team"] == "Almaty"
    assert not managers.loc["103", "active"] and managers.loc["102", "active"]
    clients = data.clients.set_index("client_id")
    assert clients.loc["900", "segment"] == "Mining" and clients.loc["contact-700", "name"] == "Ivan Petrov"
    acts = data.activities.set_index("activity_id")
    assert set(acts.type) == {"call", "meeting"} and len(acts) == 2 * (N_DEALS // 10)
    meeting = acts.loc["60010"]
    assert meeting.done_at - meeting.due_at == pd.Timedelta(hours=1) and meeting.deal_id == "10"
    emails = data.emails.set_index("email_id")
    assert len(emails) == N_DEALS // 10 and set(emails.direction) == {"out"}
    assert emails.loc["70010", "client_id"] == "contact-700" and emails.loc["70010", "subject"] == "Proposal 10"
    opens = data.email_opens
    assert len(opens) == 2 * (N_DEALS // 10)
    assert sorted(opens[opens.email_id == "70020"].opened_at) == [
        pd.Timestamp(T0 + 20 * HOUR + 900_000 + k * HOUR, unit="ms", tz="UTC") for k in (1, 2)]
    assert data.leads is None  # this account has no leads object (see the leads tests)


def test_second_sync_asks_only_for_what_changed(fake, tmp_path):
    source = _source(fake, tmp_path / "store", overlap_minutes=5)
    hubspot.sync(source, None)
    newest = max(hubspot.ms(r["properties"]["hs_lastmodifieddate"]) for r in fake.objects["deals"].values())
    in_overlap = [k for k, r in fake.objects["deals"].items()
                  if hubspot.ms(r["properties"]["hs_lastmodifieddate"]) >= newest - 5 * 60 * 1000]
    fake.calls.clear()
    changed = newest + DAY
    fake.move_deal("1", "qualifiedtobuy", changed, amount="777")
    report = hubspot.sync(source, None)

    searches = fake.searches("deals")
    assert len(searches) == 1  # one page: only what changed since the cursor
    assert int(searches[0]["filterGroups"][0]["filters"][0]["value"]) == newest - 5 * 60 * 1000
    reads = [b for m, p, b in fake.calls if p == "/crm/v3/objects/deals/batch/read"]
    assert len(reads) == 1 and reads[0]["propertiesWithHistory"] == ["dealstage"]
    # the changed deal, and those of the last sync inside the overlap
    assert sorted(i["id"] for i in reads[0]["inputs"]) == sorted({"1", *in_overlap})
    assert report.rows["deals"] < 5
    data = load_crm(source).data
    deals = data.deals.set_index("deal_id")
    assert len(deals) == N_DEALS  # merged by id: nothing doubled
    assert deals.loc["1", "stage"] == "Qualified" and deals.loc["1", "amount"] == 777
    assert data.stage_history[data.stage_history.deal_id == "1"].stage.tolist() == ["Appointment", "Qualified"]
    assert not data.stage_history.duplicated().any()
    assert len(data.email_opens) == 2 * (N_DEALS // 10)  # opens overlapped, merged by event id


def test_more_changes_than_one_search_can_page_through(fake, tmp_path):
    """The search stops at 10,000 results (here: 120): the sync never pages one query that far,
    it moves its window to the newest change it saw, and pages a millisecond with more than a
    page of changes by id."""
    fake.search_cap = 120
    bulk = T0 + 400 * DAY  # an import: 130 deals changed in the same millisecond
    for k in range(130):
        fake.put("deals", str(10_000 + k), {"dealname": f"Imported {k}", "dealstage": "appointmentscheduled",
                                            "pipeline": "default", "createdate": hubspot_iso(bulk),
                                            "hubspot_owner_id": "101"}, bulk,
                 history={"dealstage": [("appointmentscheduled", bulk)]})
    source = _source(fake, tmp_path / "store")
    hubspot.sync(source, None)
    searches = fake.searches("deals")
    assert all("after" not in b for b in searches)
    by_id = [b for b in searches if b["sorts"][0]["propertyName"] == "hs_object_id"]
    assert [b["filterGroups"][0]["filters"][1]["value"] for b in by_id] == ["0", "10099"]
    read = [i["id"] for m, p, b in fake.calls if p == "/crm/v3/objects/deals/batch/read" for i in b["inputs"]]
    assert sorted(read) == sorted(fake.objects["deals"])  # every deal read once, none twice
    data = load_crm(source).data
    assert len(data.deals) == N_DEALS + 130


def test_an_archived_deal_and_email_disappear(fake, tmp_path):
    source = _source(fake, tmp_path / "store")
    hubspot.sync(source, None)
    later = T0 + 500 * DAY
    for deal in ["5", *map(str, range(101, 221))]:  # 121 deals: two pages of the archived list
        fake.archive("deals", deal, later)
    fake.archive("emails", "70020", later)
    report = hubspot.sync(source, None)
    assert report.deleted == 122
    listed = [q for m, p, q in fake.calls if p == "/crm/v3/objects/deals" and q.get("archived") == "true"]
    assert [q.get("after") for q in listed[-2:]] == [None, "100"]
    data = load_crm(source).data
    assert "5" not in set(data.deals.deal_id) and "5" not in set(data.stage_history.deal_id)
    assert len(data.deals) == N_DEALS - 121
    assert "70020" not in set(data.emails.email_id) and "70020" not in set(data.email_opens.email_id)

    fake.put("deals", "5", {}, later + DAY)  # restored from the recycle bin
    hubspot.sync(source, None)
    assert "5" in set(load_crm(source).data.deals.deal_id)


def test_a_sync_killed_mid_way_and_restarted_ends_like_an_uninterrupted_one(fake, tmp_path, monkeypatch):
    whole = _source(fake, tmp_path / "whole")
    hubspot.sync(whole, None)

    broken = _source(fake, tmp_path / "broken")
    real = hubspot.deal_row
    monkeypatch.setattr(hubspot, "deal_row", dies_at(real, 150, "page 2"))
    with pytest.raises(RuntimeError, match="killed"):
        hubspot.sync(broken, None)
    monkeypatch.setattr(hubspot, "deal_row", real)
    hubspot.sync(broken, None)

    assert_same_store(tmp_path / "whole", tmp_path / "broken", "hubspot")
    a, b = load_crm(whole).data, load_crm(broken).data
    pd.testing.assert_frame_equal(a.deals, b.deals)
    pd.testing.assert_frame_equal(a.stage_history, b.stage_history)


def test_429_is_waited_out(fake, tmp_path):
    fake.throttle_next(2)  # HubSpot's SECONDLY 429: no Retry-After
    source = _source(fake, tmp_path / "store")
    started = time.monotonic()
    hubspot.sync(source, None)
    assert fake.answered_429 == 2
    assert time.monotonic() - started >= 2.0  # a second for each
    assert len(load_crm(source).data.deals) == N_DEALS


def test_the_default_pace_stays_under_hubspots_limits(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(hubspot, "SEARCH_PER_SECOND", SEARCH_PER_SECOND)
    fake.per_second, fake.search_per_second = 10, 5  # 100 per 10 s; search 5 a second
    default = SourceConfig.model_fields["requests_per_second"].default
    source = _source(fake, tmp_path / "store").model_copy(update={"requests_per_second": default})
    report = hubspot.sync(source, None)
    assert fake.over_limit == 0
    searches = sum(1 for m, p, _ in fake.calls if p.endswith("/search"))
    assert searches > 8 and report.seconds >= (searches - 1) // 4  # the searches did wait


def test_the_daily_limit_stops_with_a_clear_error(fake, tmp_path):
    fake.daily_limit_hit = True
    started = time.monotonic()
    with pytest.raises(DataError, match="daily API limit"):
        hubspot.sync(_source(fake, tmp_path / "store"), None)
    assert time.monotonic() - started < 5  # not retried for hours


def test_429_without_retry_after_waits_what_the_limit_needs():
    import requests

    def answer(policy: str, interval: str | None = None) -> requests.Response:
        response = requests.Response()
        response.status_code = 429
        response._content = ('{"status":"error","errorType":"RATE_LIMIT","policyName":"%s"}' % policy).encode()
        if interval:
            response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = interval
        return response

    secondly, ten_secondly = answer("SECONDLY", "10000"), answer("TEN_SECONDLY_ROLLING", "10000")
    hubspot.wait_for_limit(secondly)
    hubspot.wait_for_limit(ten_secondly)
    assert secondly.headers["Retry-After"] == "1" and ten_secondly.headers["Retry-After"] == "10"
    with pytest.raises(DataError, match="daily API limit"):
        hubspot.wait_for_limit(answer("DAILY"))


def test_a_missing_scope_is_named(fake, tmp_path):
    fake.missing_scope["emails"] = "sales-email-read"
    with pytest.raises(DataError, match="sales-email-read"):
        hubspot.sync(_source(fake, tmp_path / "store"), None)


def _leads(fake: FakeHubSpot) -> None:
    """Lead stages New -> Attempting -> Connected / Disqualified; three leads: one answered 40
    minutes after creation, one still new without an owner, one disqualified."""
    fake.add_lead_pipeline("lead-pipeline-id", "Lead pipeline", [
        ("new-stage-id", "New"), ("attempting-stage-id", "Attempting"), ("connected-stage-id", "Connected"),
        ("unqualified-stage-id", "Disqualified")])
    base = T0 + 300 * DAY
    for lid, owner, steps, channel in (
            ("801", "101", [("new-stage-id", base), ("attempting-stage-id", base + 40 * 60_000),
                            ("connected-stage-id", base + HOUR)], "Web"),
            ("802", None, [("new-stage-id", base + DAY)], "Phone"),
            ("803", "102", [("new-stage-id", base), ("unqualified-stage-id", base + 2 * HOUR)], None)):
        fake.put("leads", lid, {"hs_lead_name": f"Lead {lid}", "createdate": hubspot_iso(steps[0][1]),
                                "hubspot_owner_id": owner,
                                "hubspot_owner_assigneddate": hubspot_iso(steps[0][1] + 5 * 60_000) if owner else None,
                                "hs_pipeline": "lead-pipeline-id", "hs_pipeline_stage": steps[-1][0],
                                "lead_channel": channel}, steps[-1][1], history={"hs_pipeline_stage": steps})


def test_leads_with_assignment_first_response_and_status(fake, tmp_path):
    _leads(fake)
    source = _source(fake, tmp_path / "store").model_copy(
        update={"custom_fields": {"leads": {"source": "lead_channel"}}})
    hubspot.sync(source, None)
    leads = load_crm(source).data.leads.set_index("lead_id")
    base = pd.Timestamp(T0 + 300 * DAY, unit="ms", tz="UTC")
    assert leads.loc["801", "first_response_at"] == base + pd.Timedelta(minutes=40)
    assert leads.loc["801", "assigned_at"] == base + pd.Timedelta(minutes=5)
    assert leads.loc["801", "status"] == "Connected" and leads.loc["801", "source"] == "Web"
    assert leads.loc["801", "manager_id"] == "101"
    assert pd.isna(leads.loc["802", "first_response_at"]) and pd.isna(leads.loc["802", "manager_id"])
    assert leads.loc["802", "status"] == "New"
    assert leads.loc["803", "status"] == "Disqualified"

    fake.archive("leads", "803", T0 + 400 * DAY)
    fake.put("leads", "802", {"hubspot_owner_id": "102", "hubspot_owner_assigneddate": hubspot_iso(T0 + 401 * DAY),
                              "hs_pipeline_stage": "attempting-stage-id"}, T0 + 401 * DAY,
             history={"hs_pipeline_stage": [("new-stage-id", T0 + 301 * DAY), ("attempting-stage-id", T0 + 401 * DAY)]})
    report = hubspot.sync(source, None)
    assert report.deleted == 1
    leads = load_crm(source).data.leads.set_index("lead_id")
    assert "803" not in leads.index
    assert leads.loc["802", "first_response_at"] == pd.Timestamp(T0 + 401 * DAY, unit="ms", tz="UTC")
    assert leads.loc["802", "manager_id"] == "102"


def test_an_account_without_leads_syncs_the_rest(fake, tmp_path, caplog):
    source = _source(fake, tmp_path / "store")
    hubspot.sync(source, None)
    assert caplog.text.count("are not synced") == 1 and "crm.objects.leads.read" in caplog.text  # said once
    data = load_crm(source).data
    assert data.leads is None and len(data.deals) == N_DEALS


def test_without_the_content_scope_everything_but_opens_is_synced(fake, tmp_path, caplog):
    fake.missing_scope["events"] = "content"
    source = _source(fake, tmp_path / "store")
    hubspot.sync(source, None)
    assert "email opens are not synced" in caplog.text
    data = load_crm(source).data
    assert len(data.deals) == N_DEALS and len(data.emails) == N_DEALS // 10
    assert data.email_opens is None  # silent_client says it needs them


def _config_file(tmp_path: Path, fake: FakeHubSpot) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
language = "en"
[source]
kind = "hubspot"
base_url = "http://127.0.0.1:{fake.port}"
token_env = "TEST_HUBSPOT_TOKEN"
store = "store"
pipelines = ["Sales Pipeline"]
requests_per_second = 100
""", encoding="utf-8")
    return path


def test_check_lists_pipelines_and_users(fake, tmp_path, capsys):
    config = _config_file(tmp_path, fake)
    assert cli_main(["sync", "--config", str(config), "--check"]) == 0
    out = capsys.readouterr().out
    assert "default Sales Pipeline (included): Appointment, Qualified, Presentation, Closed Won, Closed Lost" in out
    assert "svc Service (not included)" in out
    assert "101 Anna Ivanova" in out and "103 Vera Sidorova (inactive)" in out
    assert not (tmp_path / "store" / "crm.duckdb").exists()  # --check syncs nothing
    assert "(no leads (scope crm.objects.leads.read))" in out  # this account has no leads object


def test_check_names_a_missing_scope(fake, tmp_path, capsys):
    fake.missing_scope["emails"] = "sales-email-read"
    assert cli_main(["sync", "--config", str(_config_file(tmp_path, fake)), "--check"]) == 3
    assert "sales-email-read" in capsys.readouterr().err


def test_no_secret_in_logs_or_output(fake, tmp_path, caplog, capsys):
    config = _config_file(tmp_path, fake)
    caplog.set_level(logging.DEBUG)
    assert cli_main(["sync", "--config", str(config)]) == 0
    assert cli_main(["sync", "--config", str(config), "--check"]) == 0
    printed = capsys.readouterr()
    assert "synced hubspot" in printed.out
    text = caplog.text + printed.out + printed.err
    assert len(caplog.records) > 20  # dlt and urllib3 did log at DEBUG
    assert fake.token not in text and fake.token[4:] not in text


def test_sync_then_scan_reads_the_store(fake, tmp_path, capsys):
    import json

    config = _config_file(tmp_path, fake)
    assert cli_main(["sync", "--config", str(config), "--format", "json"]) == 0
    synced = json.loads(capsys.readouterr().out)
    assert synced["kind"] == "hubspot" and synced["rows"]["deals"] == N_DEALS + 1
    fresh = pd.Timestamp(T0 + 14 * DAY, unit="ms", tz="UTC").isoformat()
    assert cli_main(["scan", "--config", str(config), "--now", fresh, "--format", "json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)
    stale = pd.Timestamp(T0 + 60 * DAY, unit="ms", tz="UTC").isoformat()
    assert cli_main(["scan", "--config", str(config), "--now", stale]) == 0
    out = capsys.readouterr().out
    assert "in hubspot store" in out and "crm.duckdb" in out  # the freshness check read the synced store


def test_wrong_token_is_one_clear_error(fake, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEST_HUBSPOT_TOKEN", "pat-eu1-not-the-token-at-all-123")
    config = _config_file(tmp_path, fake)
    assert cli_main(["sync", "--config", str(config)]) == 3
    err = capsys.readouterr().err
    assert "HubSpot refused the access token" in err and "TEST_HUBSPOT_TOKEN" in err
    assert "Traceback" not in err and "not-the-token-at-all-123" not in err


@pytest.mark.parametrize("keys, problem", [
    ({}, "needs token_env"),
    ({"token_env": "T", "client_id_env": "C"}, "not used by kind"),
    ({"token_env": "pat-eu1-11111111-2222-3333-4444-555555555555"}, "NAME of an environment"),
    ({"token_env": "T", "path": "x"}, "not used by kind"),
])
def test_hubspot_source_config_errors(keys, problem):
    with pytest.raises(ValueError, match=problem):
        SourceConfig(kind="hubspot", **keys)


def test_base_url_defaults_to_hubspots_api():
    assert SourceConfig(kind="hubspot", token_env="T").base_url == "https://api.hubapi.com"


def test_missing_token_variable_is_named_by_run(tmp_path, monkeypatch):
    from bot.app import missing_secrets
    from bot.config import parse_config

    monkeypatch.delenv("CRM_PULSE_HUBSPOT_TOKEN", raising=False)
    config = parse_config('[source]\nkind = "hubspot"\ntoken_env = "CRM_PULSE_HUBSPOT_TOKEN"\n',
                          source_name="t", base_dir=tmp_path)
    lines = missing_secrets(config)
    assert any("CRM_PULSE_HUBSPOT_TOKEN" in line and "Private Apps" in line for line in lines)


def test_a_sync_process_killed_mid_way_resumes_to_the_same_store(fake, tmp_path):
    """SIGKILL while the second page of deals is being searched: nothing half-written is read,
    and the next sync ends with the store an uninterrupted sync gives."""

    whole = _source(fake, tmp_path / "whole")
    hubspot.sync(whole, None)
    killed = _source(fake, tmp_path / "killed")
    child = sync_in_child("hubspot", killed, "hubspot.SEARCH_PER_SECOND = 100.0")

    sigkill_when(fake, child, lambda method, path, payload: path == "/crm/v3/objects/deals/search"
                 and payload["filterGroups"][0]["filters"][0]["value"] != "0")
    hubspot.sync(killed, None)
    assert_same_store(tmp_path / "whole", tmp_path / "killed", "hubspot")


def test_a_deal_created_as_won_starts_in_the_first_stage(fake, tmp_path):
    fake.put("deals", "9000", {"dealname": "Won at once", "amount": "1", "dealstage": "closedwon", "pipeline": "default",
                               "createdate": hubspot_iso(T0), "closedate": hubspot_iso(T0 + 60_000),
                               "hubspot_owner_id": "101"}, T0 + 60_000, history={"dealstage": [("closedwon", T0)]})
    source = _source(fake, tmp_path / "store")
    hubspot.sync(source, None)
    data = load_crm(source).data
    deal = data.deals.set_index("deal_id").loc["9000"]
    assert deal.status == "won" and deal.stage == "Appointment"
    assert data.stage_history[data.stage_history.deal_id == "9000"].stage.tolist() == ["Appointment"]


def test_every_pipeline_synced_each_deal_names_its_pipeline_and_the_load_says_they_are_pooled(monkeypatch, tmp_path):
    """`[source] pipelines` left empty (the default) syncs every pipeline: each deal names its
    own (the pipeline's label), and the load says they are judged as one funnel; one kept (by
    label as typed, or by id) is said nothing."""
    server = FakeHubSpot()
    _account(server, n=12)
    monkeypatch.setenv("TEST_HUBSPOT_TOKEN", server.token)
    monkeypatch.setattr(hubspot, "SEARCH_PER_SECOND", 100.0)
    with ThreadedServer(server) as running:
        source = _source(running, tmp_path / "store").model_copy(update={"pipelines": []})
        hubspot.sync(source, None)
    assert_pipelines_pooled_then_kept(source, service="Service", sales="Sales Pipeline",
                                      said=("deals come from 2 pipelines (Sales Pipeline: 12; Service: 1)",),
                                      kept=((["sales pipeline"], "Sales Pipeline"), (["svc"], "Service")),
                                      crm="HubSpot", typo="Sales Pipelin", close="Sales Pipeline")
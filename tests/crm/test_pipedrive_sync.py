"""Pipedrive sync through a fake Pipedrive on 127.0.0.1: what a first and a later sync ask for,
what the store holds and how it reads as the canonical tables, deletions, an interrupted sync,
429s and a spent daily budget, `sync --check`, and the API token kept out of every log line."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
import pytest

from bot.cli import main as cli_main
from crm.connectors import pipedrive
from crm.errors import DataError
from crm.load import load_crm
from crm.source_config import SourceConfig
from tests.fakes.store import (
    assert_pipelines_pooled_then_kept, assert_same_store, dies_at, sigkill_when, sync_in_child,
)
from tests.fakes.amocrm_server import ThreadedServer
from tests.fakes.pipedrive_server import FakePipedrive

T0 = 1_760_000_000
DAY = 86400
SALES, OTHER = 1, 2
NEW, OFFER, TALKS, SERVICE = 10, 11, 12, 20
N_DEALS = 1_120  # three pages of 500
SOURCE_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"  # custom field keys are 40-char hashes
SEGMENT_KEY = "ffeeddccbbaa99887766554433221100ffeeddcc"


def _company(fake: FakePipedrive, n: int = N_DEALS) -> None:
    """Two pipelines, three users, `n` deals in Sales (every third lost after an offer, every
    fifth won after talks), one deal in the other pipeline, mails, activities, leads."""
    fake.add_pipeline(SALES, "Продажи", [(NEW, "Новая заявка"), (OFFER, "КП отправлено"), (TALKS, "Переговоры")])
    fake.add_pipeline(OTHER, "Сервис", [(SERVICE, "Заявка на сервис")], order_nr=2)
    fake.add_user(1, "Анна", "anna@example.kz")
    fake.add_user(2, "Борис", "boris@example.kz")
    fake.add_user(3, "Вера", None, active=False)
    fake.fields["dealFields"] = [
        {"id": 12, "key": "title", "name": "Title", "field_type": "varchar"},
        {"id": 40, "key": SOURCE_KEY, "name": "Источник", "field_type": "enum",
         "options": [{"id": 7, "label": "Сайт"}, {"id": 8, "label": "Звонок"}]}]
    fake.fields["organizationFields"] = [{"id": 41, "key": SEGMENT_KEY, "name": "Отрасль", "field_type": "varchar"}]
    fake.organizations[900] = {"id": 900, "name": "ТОО «Ромашка»", "owner_id": 1, "update_time": "2025-10-09T00:00:00Z",
                               "is_deleted": False, "custom_fields": {SEGMENT_KEY: "Горнодобыча"}}
    fake.persons[700] = {"id": 700, "name": "Иван Петров", "owner_id": 2, "org_id": None,
                         "update_time": "2025-10-09T00:00:00Z", "is_deleted": False, "custom_fields": {}}
    for i in range(1, n + 1):
        created = T0 + i * 3600
        status = "lost" if i % 3 == 0 else "won" if i % 5 == 0 else "open"
        closed = created + 3 * DAY if status != "open" else None
        fake.put_deal({"id": i, "is_archived": i in (7, 9), "title": f"Сделка {i}", "value": 1000 * i,
                       "currency": "KZT", "owner_id": 1 + i % 2,
                       "org_id": 900 if i % 2 else None, "person_id": 700, "pipeline_id": SALES, "stage_id": NEW,
                       "status": status, "add_time": created, "update_time": closed or created,
                       "close_time": closed, "lost_reason": "Цена" if status == "lost" else None,
                       "custom_fields": {SOURCE_KEY: 7 if i % 4 else 8}})
        if status != "open":
            fake.move(i, created + DAY, NEW, OFFER)
        if status == "won":
            fake.move(i, created + 2 * DAY, OFFER, TALKS)
        if status != "open":
            fake.other_change(i, closed, "status", "open", status)
        if i % 10 == 0:
            fake.add_mail(i, {"id": 20_000 + i, "user_id": 1, "subject": f"КП {i}", "message_time": created + 900,
                              "add_time": created + 901, "update_time": created + 2 * 3600,
                              "mail_tracking_status": "opened" if i % 20 == 0 else "not opened",
                              "mail_link_tracking_enabled_flag": 1})
            fake.add_mail(i, {"id": 30_000 + i, "user_id": 1, "subject": f"Re: КП {i}", "sent_flag": 0,
                              "from": [{"email_address": "client@example.org"}], "message_time": created + 5000,
                              "add_time": created + 5000, "update_time": created + 5000})
            fake.activities[40_000 + i] = {
                "id": 40_000 + i, "type": "call", "owner_id": 2, "deal_id": i, "lead_id": None, "org_id": None,
                "person_id": 700, "done": True, "due_date": "2025-10-10", "due_time": "09:30",
                "marked_as_done_time": "2025-10-10T09:45:00Z", "update_time": "2025-10-10T09:45:00Z",
                "is_deleted": False}
    fake.put_deal({"id": 5000, "title": "Сервисная заявка", "value": 1, "owner_id": 1, "pipeline_id": OTHER,
                   "stage_id": SERVICE, "add_time": T0, "update_time": T0})
    fake.leads = [
        {"id": "adf21080-0e10-11eb-879b-05d71fb426ec", "title": "Inbound: Acme", "owner_id": 1, "creator_id": 1,
         "person_id": 700, "organization_id": None, "source_name": "Web forms", "is_archived": False,
         "value": {"amount": 999, "currency": "EUR"}, "add_time": "2025-10-09T10:00:00.000Z",
         "update_time": "2025-10-09T10:05:00.000Z"},
        {"id": "bdf21080-0e10-11eb-879b-05d71fb426ec", "title": "Old", "owner_id": 2, "creator_id": 1,
         "person_id": None, "organization_id": 900, "source_name": "Manually created", "is_archived": True,
         "value": None, "add_time": "2025-10-01T10:00:00.000Z", "update_time": "2025-10-02T10:00:00.000Z"}]
    fake.activities[99_001] = {
        "id": 99_001, "type": "call", "owner_id": 1, "deal_id": None, "lead_id": "adf21080-0e10-11eb-879b-05d71fb426ec",
        "org_id": None, "person_id": 700, "done": True, "due_date": "2025-10-09", "due_time": "",
        "marked_as_done_time": "2025-10-09T10:20:00Z", "update_time": "2025-10-09T10:20:00Z", "is_deleted": False}


def _source(fake: FakePipedrive, store: Path, **kw) -> SourceConfig:
    return SourceConfig(kind="pipedrive", base_url=f"http://127.0.0.1:{fake.port}", store=str(store),
                        token_env="TEST_PD_TOKEN", pipelines=["Продажи"], requests_per_second=100,
                        custom_fields={"deals": {"source": "Источник"}, "clients": {"segment": "Отрасль"}}, **kw)


@pytest.fixture
def fake(monkeypatch):
    server = FakePipedrive()
    _company(server)
    monkeypatch.setenv("TEST_PD_TOKEN", server.token)
    with ThreadedServer(server) as running:
        yield running




def test_first_sync_takes_everything_and_maps_it_to_the_contract(fake, tmp_path):
    source = _source(fake, tmp_path / "store")
    report = pipedrive.sync(source, None)
    assert report.rows["deals"] == N_DEALS + 1
    assert len(fake.api_calls("v2/deals/archived")) == 1
    deal_calls = [q for q in fake.api_calls("v2/deals") if "status" not in q]
    assert len(deal_calls) == 3 and all(q["limit"] == "500" for q in deal_calls)
    assert "cursor" not in deal_calls[0] and all("cursor" in q for q in deal_calls[1:])
    assert all("updated_since" not in q for q in fake.api_calls("v2/deals"))
    moved = sum(1 for d in fake.deals.values() if d["stage_change_time"])
    flows = [p for p, _ in fake.calls if p.endswith("/flow")]
    assert len(flows) == moved  # only deals that ever moved: the others are still where they started
    assert len([p for p, _ in fake.calls if p.endswith("/mailMessages")]) == N_DEALS // 10

    data = load_crm(source).data
    deals = data.deals.set_index("deal_id")
    assert len(deals) == N_DEALS - 1 and "5000" not in deals.index  # the service pipeline is not included
    assert data.stages == ["Новая заявка", "КП отправлено", "Переговоры"]
    assert deals.loc["3", "status"] == "lost" and deals.loc["3", "stage"] == "КП отправлено"
    assert deals.loc["3", "loss_reason"] == "Цена" and pd.isna(deals.loc["5", "loss_reason"])
    assert deals.loc["5", "status"] == "won" and deals.loc["5", "stage"] == "Переговоры"
    assert deals.loc["5", "closed_at"] == pd.Timestamp(T0 + 5 * 3600 + 3 * DAY, unit="s", tz="UTC")
    assert deals.loc["1", "status"] == "open" and deals.loc["1", "stage"] == "Новая заявка"
    assert deals.loc["1", "client_id"] == "900" and deals.loc["2", "client_id"] == "person-700"
    assert deals.loc["4", "source"] == "Звонок" and deals.loc["1", "source"] == "Сайт"
    assert deals.loc["5", "currency"] == "KZT" and deals.loc["5", "amount"] == 5000
    assert deals.loc["9", "status"] == "lost"  # archived after it was lost: still history
    assert "7" not in deals.index  # archived while open: set aside in Pipedrive, not chased
    history = data.stage_history[data.stage_history.deal_id == "5"].sort_values("entered_at")
    assert history.stage.tolist() == ["Новая заявка", "КП отправлено", "Переговоры"]
    assert history.entered_at.iloc[1] == pd.Timestamp(T0 + 5 * 3600 + DAY, unit="s", tz="UTC")
    assert data.stage_history[data.stage_history.deal_id == "1"].stage.tolist() == ["Новая заявка"]
    managers = data.managers.set_index("manager_id")
    assert managers.loc["1", "name"] == "Анна" and not managers.loc["3", "active"]
    clients = data.clients.set_index("client_id")
    assert clients.loc["900", "segment"] == "Горнодобыча" and "person-700" in clients.index
    assert len(data.emails) == 2 * (N_DEALS // 10)
    assert (data.emails.direction == "out").sum() == N_DEALS // 10
    # Pipedrive says whether a tracked email was opened, never when: no opens are made up
    assert data.email_opens is None
    calls = data.activities.set_index("activity_id")
    assert set(calls.type) == {"call"} and calls.loc["40010", "due_at"] == pd.Timestamp("2025-10-10 09:30", tz="UTC")
    leads = data.leads.set_index("lead_id")
    assert leads.loc["adf21080-0e10-11eb-879b-05d71fb426ec", "first_response_at"] == pd.Timestamp(
        "2025-10-09 10:20", tz="UTC")
    assert leads.loc["bdf21080-0e10-11eb-879b-05d71fb426ec", "status"] == "closed"  # archived
    assert leads.loc["adf21080-0e10-11eb-879b-05d71fb426ec", "source"] == "Web forms"


def test_second_sync_asks_only_for_what_changed(fake, tmp_path):
    source = _source(fake, tmp_path / "store", overlap_minutes=5)
    pipedrive.sync(source, None)
    newest = max(pipedrive.unix(d["update_time"]) for d in fake.deals.values())
    fake.calls.clear()
    changed_at = newest + DAY
    fake.deals[1].update(value=777)
    fake.move(1, changed_at, NEW, OFFER)
    report = pipedrive.sync(source, None)

    changed = [q for q in fake.api_calls("v2/deals") if "status" not in q]
    assert len(changed) == 1  # one page: only what changed since the cursor, minus the overlap
    assert changed[0]["updated_since"] == pipedrive.rfc3339(newest - 5 * 60)
    # flows only of the deals changed since the cursor (deal 1, and those inside the 5-minute overlap)
    window = {i for i, d in fake.deals.items() if pipedrive.unix(d["update_time"]) >= newest - 5 * 60
              and d["stage_change_time"]}
    assert {p for p, _ in fake.calls if p.endswith("/flow")} == {f"v1/deals/{i}/flow" for i in window}
    assert 1 in window and len(window) < 5
    assert report.rows["deals"] < 5
    data = load_crm(source).data
    deals = data.deals.set_index("deal_id")
    assert len(deals) == N_DEALS - 1  # merged by id: nothing doubled (deal 7 is archived while open)
    assert deals.loc["1", "stage"] == "КП отправлено" and deals.loc["1", "amount"] == 777
    assert data.stage_history[data.stage_history.deal_id == "1"].stage.tolist() == ["Новая заявка", "КП отправлено"]
    assert not data.stage_history.duplicated().any()


@pytest.mark.parametrize("when", ["after the last sync", "long before the cursor"])
def test_a_deleted_deal_disappears(fake, tmp_path, when):
    """Deleted deals are listed whatever the cursor: whether deleting moves a deal's update_time
    is not documented, so a deletion stamped before the cursor is still seen."""
    source = _source(fake, tmp_path / "store")
    pipedrive.sync(source, None)
    newest = max(pipedrive.unix(d["update_time"]) for d in fake.deals.values())
    at = newest + 60 if when == "after the last sync" else T0
    fake.now = at + DAY  # Pipedrive lists a deleted deal for 30 days
    fake.delete_deal(5, at)
    report = pipedrive.sync(source, None)
    assert report.deleted == 1
    assert [q["status"] for q in fake.api_calls("v2/deals") if "status" in q][-1] == "deleted"
    data = load_crm(source).data
    assert "5" not in set(data.deals.deal_id) and "5" not in set(data.stage_history.deal_id)
    assert len(data.deals) == N_DEALS - 2  # and deal 7 is archived while open


def test_a_deal_deleted_longer_ago_than_pipedrive_lists_it_stays(fake, tmp_path):
    """Pipedrive lists deleted deals for 30 days: one deleted before that cannot be seen (the
    docs say so, and a fresh store clears it)."""
    source = _source(fake, tmp_path / "store")
    pipedrive.sync(source, None)
    at = max(pipedrive.unix(d["update_time"]) for d in fake.deals.values()) + 60
    fake.now = at + 31 * DAY
    fake.delete_deal(5, at)
    assert pipedrive.sync(source, None).deleted == 0
    assert "5" in set(load_crm(source).data.deals.deal_id)


def test_a_deleted_organization_and_activity_leave_the_store(fake, tmp_path):
    source = _source(fake, tmp_path / "store")
    pipedrive.sync(source, None)
    fake.activities[40_010].update(is_deleted=True, update_time="2026-01-01T00:00:00Z")
    fake.organizations[900].update(is_deleted=True, update_time="2026-01-01T00:00:00Z")
    pipedrive.sync(source, None)
    data = load_crm(source).data
    assert "40010" not in set(data.activities.activity_id)
    assert "900" not in set(data.clients.client_id)


def test_a_sync_killed_mid_way_and_restarted_ends_like_an_uninterrupted_one(fake, tmp_path, monkeypatch):
    whole = _source(fake, tmp_path / "whole")
    pipedrive.sync(whole, None)

    broken = _source(fake, tmp_path / "broken")
    real = pipedrive.deal_row
    monkeypatch.setattr(pipedrive, "deal_row", dies_at(real, 700, "page 2"))
    with pytest.raises(RuntimeError, match="killed"):
        pipedrive.sync(broken, None)
    monkeypatch.setattr(pipedrive, "deal_row", real)
    pipedrive.sync(broken, None)

    assert_same_store(tmp_path / "whole", tmp_path / "broken", "pipedrive")
    a, b = load_crm(whole).data, load_crm(broken).data
    pd.testing.assert_frame_equal(a.deals, b.deals)
    pd.testing.assert_frame_equal(a.stage_history, b.stage_history)


def test_a_sync_process_killed_mid_way_resumes_to_the_same_store(fake, tmp_path):
    """SIGKILL while deal flows are being fetched: the next sync ends with the store an
    uninterrupted sync gives."""

    whole = _source(fake, tmp_path / "whole")
    pipedrive.sync(whole, None)
    killed = _source(fake, tmp_path / "killed")
    child = sync_in_child("pipedrive", killed)
    flows = []

    def in_the_flows(path, query):
        if path.endswith("/flow"):
            flows.append(path)
        return len(flows) == 50

    sigkill_when(fake, child, in_the_flows, timeout=120)
    pipedrive.sync(killed, None)
    assert_same_store(tmp_path / "whole", tmp_path / "killed", "pipedrive")


@pytest.mark.parametrize("header", ["Retry-After", "x-ratelimit-reset"])
def test_429_is_waited_out(fake, tmp_path, header):
    fake.throttle_next(2, retry_after=2, header=header)
    source = _source(fake, tmp_path / "store")
    started = time.monotonic()
    pipedrive.sync(source, None, backoff=0.01)  # without the header's word it would wait 0.03 s
    assert fake.answered_429 == 2
    assert time.monotonic() - started >= 4.0  # waited 2 s twice, as the header said
    assert len(load_crm(source).data.deals) == N_DEALS - 1


def test_the_default_pace_stays_under_the_smallest_plans_limit(tmp_path, monkeypatch):
    server = FakePipedrive()
    _company(server, n=30)
    server.per_window, server.window = 20, 2.0  # Essential plan: 20 requests per 2 seconds
    monkeypatch.setenv("TEST_PD_TOKEN", server.token)
    with ThreadedServer(server) as running:
        default = SourceConfig.model_fields["requests_per_second"].default
        source = _source(running, tmp_path / "store").model_copy(update={"requests_per_second": default})
        report = pipedrive.sync(source, None)
    assert server.over_limit == 0 and report.requests > 20


def test_a_spent_daily_budget_is_one_clear_error_not_hours_of_waiting(fake, tmp_path):
    fake.budget_spent = True
    started = time.monotonic()
    with pytest.raises(DataError, match="API limit is spent") as err:
        pipedrive.sync(_source(fake, tmp_path / "store"), None)
    assert time.monotonic() - started < 10
    assert "next sync resumes where this one stopped" in str(err.value)


def test_a_first_sync_stopped_by_the_budget_goes_on_from_its_last_batch(fake, tmp_path):
    """The flows of a big account cost one request per deal: a first sync cut short by the daily
    budget keeps the batches it finished, and the next one fetches only the rest."""
    whole = _source(fake, tmp_path / "whole")
    pipedrive.sync(whole, None)
    moved = len([p for p, _ in fake.calls if p.endswith("/flow")])
    fake.calls.clear()

    def budget_runs_out(path, query):
        if len([p for p, _ in fake.calls if p.endswith("/flow")]) == 400:  # inside the second batch
            fake.budget_spent = True

    fake.on_call = budget_runs_out
    cut = _source(fake, tmp_path / "cut")
    with pytest.raises(DataError, match="API limit is spent"):
        pipedrive.sync(cut, None)
    fake.on_call, fake.budget_spent = None, False
    fake.calls.clear()
    pipedrive.sync(cut, None)
    again = len([p for p, _ in fake.calls if p.endswith("/flow")])
    assert again < moved - 150  # the first batch's flows were kept
    assert_same_store(tmp_path / "whole", tmp_path / "cut", "pipedrive")


def _config_file(tmp_path: Path, fake: FakePipedrive) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
language = "en"
[source]
kind = "pipedrive"
base_url = "http://127.0.0.1:{fake.port}"
token_env = "TEST_PD_TOKEN"
store = "store"
pipelines = ["Продажи"]
requests_per_second = 100
""", encoding="utf-8")
    return path


def test_check_lists_pipelines_and_users_and_syncs_nothing(fake, tmp_path, capsys):
    config = _config_file(tmp_path, fake)
    assert cli_main(["sync", "--config", str(config), "--check"]) == 0
    out = capsys.readouterr().out
    assert "credentials ok: account 'Test company'" in out
    assert "1 Продажи (included): Новая заявка, КП отправлено, Переговоры" in out
    assert "2 Сервис (not included): Заявка на сервис" in out
    assert "3 Вера (inactive)" in out
    assert not (tmp_path / "store" / "crm.duckdb").exists()


def test_no_token_in_logs_or_output(fake, tmp_path, caplog, capsys):
    config = _config_file(tmp_path, fake)
    caplog.set_level(logging.DEBUG)
    assert cli_main(["sync", "--config", str(config)]) == 0
    assert cli_main(["sync", "--config", str(config)]) == 0
    assert cli_main(["sync", "--config", str(config), "--check"]) == 0
    printed = capsys.readouterr()
    assert "synced pipedrive" in printed.out
    assert len(caplog.records) > 20  # dlt and urllib3 did log at DEBUG
    assert fake.token not in caplog.text + printed.out + printed.err
    assert fake.unauthorized == 0  # the token went in the header every time


def test_wrong_token_is_one_clear_error(fake, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEST_PD_TOKEN", "not-the-token-at-all-123")
    config = _config_file(tmp_path, fake)
    assert cli_main(["sync", "--config", str(config)]) == 3
    err = capsys.readouterr().err
    assert "Pipedrive refused the API token" in err and "Traceback" not in err
    assert "not-the-token-at-all-123" not in err


def test_missing_token_variable_says_where_to_get_it(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_PD_TOKEN")
    with pytest.raises(DataError, match="TEST_PD_TOKEN .* is not set"):
        pipedrive.sync(_source(fake, tmp_path / "store"), None)


@pytest.mark.parametrize("keys, problem", [
    ({"token_env": "T"}, "needs `base_url`.*pipedrive.com"),
    ({"base_url": "https://a.pipedrive.com"}, "needs token_env"),
    ({"base_url": "https://a.pipedrive.com", "token_env": "T", "refresh_token_env": "R"}, "API token only"),
    ({"base_url": "https://a.pipedrive.com", "token_env": "3f2a9c0b7e1d4a5b6c7d8e9f0a1b2c3d4e5f6a7b"},
     "NAME of an environment"),
])
def test_pipedrive_source_config_errors(keys, problem):
    with pytest.raises(ValueError, match=problem):
        SourceConfig(kind="pipedrive", **keys)


def test_run_refuses_to_start_without_the_token_and_schedules_the_sync(tmp_path, monkeypatch):
    from bot.app import missing_secrets
    from bot.config import parse_config
    from bot.scheduler import syncs

    monkeypatch.delenv("SCHED_PD_TOKEN", raising=False)
    config = parse_config('[source]\nkind = "pipedrive"\nbase_url = "https://a.pipedrive.com"\n'
                          'token_env = "SCHED_PD_TOKEN"\n', source_name="t.toml", base_dir=tmp_path)
    (line,) = missing_secrets(config)
    assert line.startswith("source.token_env: environment variable SCHED_PD_TOKEN is not set")
    assert "Personal preferences -> API" in line
    monkeypatch.setenv("SCHED_PD_TOKEN", "x" * 20)
    assert missing_secrets(config) == [] and syncs(config)


def test_a_scan_of_the_synced_store_runs_every_detector_but_silent_client(fake, tmp_path):
    """The synced tables go through the same loader and detectors as an export: nothing is
    skipped for a missing table except silent_client, which says it needs email_opens."""
    from bot.config import parse_config
    from bot.pipeline import scan

    config_path = _config_file(tmp_path, fake)
    config = parse_config(config_path.read_text(encoding="utf-8"), source_name="config.toml", base_dir=tmp_path)
    pipedrive.sync(config.source, tmp_path)
    now = pd.Timestamp(T0 + (N_DEALS + 48) * 3600, unit="s", tz="UTC").to_pydatetime()
    outcome = scan(config, now)
    assert "email_opens" in outcome.skipped.get("silent_client", "")
    assert not [d for d in outcome.skipped if d != "silent_client" and "needs" in outcome.skipped[d]]


def test_v1_lists_are_paged_to_the_end(tmp_path, monkeypatch):
    """A deal moved 230 times (its flow: 3 pages of 100, paging state directly in
    additional_data) and 1,100 leads (3 pages of 500, state in additional_data.pagination)."""
    server = FakePipedrive()
    _company(server, n=3)
    for k in range(230):
        server.move(1, T0 + DAY + k * 60, NEW if k % 2 == 0 else OFFER, OFFER if k % 2 == 0 else NEW)
    server.leads = [{"id": f"lead-{k:05d}", "title": f"L{k}", "owner_id": 1, "source_name": "Web forms",
                     "is_archived": False, "add_time": "2025-10-09T10:00:00.000Z",
                     "update_time": "2025-10-09T10:00:00.000Z"} for k in range(1_100)]
    monkeypatch.setenv("TEST_PD_TOKEN", server.token)
    with ThreadedServer(server) as running:
        source = _source(running, tmp_path / "store")
        pipedrive.sync(source, None)
        assert [q["start"] for q in running.api_calls("v1/deals/1/flow")] == ["0", "100", "200"]
        assert [q["start"] for q in running.api_calls("v1/leads")] == ["0", "500", "1000"]
    data = load_crm(source).data
    assert (data.stage_history.deal_id == "1").sum() == 231
    assert len(data.leads) == 1_100


def test_check_config_online_proves_the_token(fake, tmp_path, monkeypatch, capsys):
    config = _config_file(tmp_path, fake)
    assert cli_main(["sync", "--config", str(config)]) == 0
    capsys.readouterr()
    assert cli_main(["check-config", str(config), "--online"]) == 0
    out = capsys.readouterr().out
    assert "crm: pipedrive credentials OK (account 'Test company')" in out
    assert "1 of 2 pipeline(s) included (Продажи)" in out and "2 active user(s)" in out
    monkeypatch.setenv("TEST_PD_TOKEN", "not-the-token-at-all-123")
    assert cli_main(["check-config", str(config), "--online"]) == 2
    printed = capsys.readouterr()
    assert "crm: FAILED: pipedrive: Pipedrive refused the API token" in printed.out
    assert "not-the-token-at-all-123" not in printed.out + printed.err


def test_every_pipeline_synced_each_deal_names_its_pipeline_and_the_load_says_they_are_pooled(monkeypatch, tmp_path):
    """`[source] pipelines` left empty (the default) syncs every pipeline: each deal names its
    own, and the load says they are judged as one funnel; one kept (by name as typed, or by id)
    is said nothing."""
    server = FakePipedrive()
    _company(server, n=12)
    monkeypatch.setenv("TEST_PD_TOKEN", server.token)
    with ThreadedServer(server) as running:
        source = _source(running, tmp_path / "store").model_copy(update={"pipelines": []})
        pipedrive.sync(source, None)
    assert_pipelines_pooled_then_kept(source, service="Сервис", sales="Продажи",
                                      said=("deals come from 2 pipelines (Продажи: ", "; Сервис: 1)"),
                                      kept=((["ПРОДАЖИ"], "Продажи"), ([OTHER], "Сервис")),
                                      crm="Pipedrive", typo="Продажы", close="Продажи")


def test_two_pipelines_of_one_name_are_told_apart_by_id(monkeypatch, tmp_path):
    """Two pipelines named alike (a copy of Sales for another office) are two funnels all the
    same: the deals name them by id, the load says they are pooled, and the id it suggests keeps one."""
    server = FakePipedrive()
    _company(server, n=12)
    server.pipelines[1]["name"] = " продажи"
    monkeypatch.setenv("TEST_PD_TOKEN", server.token)
    with ThreadedServer(server) as running:
        source = _source(running, tmp_path / "store").model_copy(update={"pipelines": []})
        pipedrive.sync(source, None)
    result = load_crm(source)
    deals = result.data.deals.set_index("deal_id")
    assert deals.loc["5000", "pipeline"] == str(OTHER) and set(deals.drop(index="5000").pipeline) == {str(SALES)}
    pooled = [str(w) for w in result.warnings if w.code == "several_pipelines"]
    assert len(pooled) == 1 and f'[source] pipelines = ["{SALES}"]' in pooled[0]
    one = load_crm(source.model_copy(update={"pipelines": [str(SALES)]}))
    assert set(one.data.deals.pipeline) == {str(SALES)} and "several_pipelines" not in {w.code for w in one.warnings}

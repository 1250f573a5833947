"""Bitrix24 sync through a fake portal on 127.0.0.1: what a first and a later sync ask for, what
the store holds, deletions found by comparing ID lists, an interrupted sync, the portal's rate
limit (QUERY_LIMIT_EXCEEDED, 429), `sync --check`, and the webhook kept out of every log line."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from bot.cli import main as cli_main
from crm.connectors import bitrix24
from crm.errors import DataError
from crm.load import load_crm
from crm.redact import mask
from crm.source_config import SourceConfig
from tests.fakes.store import (
    assert_pipelines_pooled_then_kept, assert_same_store, dies_at, sigkill_when, store_tables, sync_in_child,
)
from tests.fakes.amocrm_server import ThreadedServer
from tests.fakes.bitrix24_server import FakeBitrix24

MSK = timezone(timedelta(hours=3))  # the portal answers in its own offset
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=MSK)
N_DEALS = 620  # 13 pages of 50: one plain request, then one batch
SALES_STAGES = [("NEW", "Новая заявка", None), ("OFFER", "КП отправлено", None), ("TALKS", "Переговоры", None),
                ("WON", "Сделка успешна", "S"), ("LOSE_PRICE", "Дорого", "F"), ("LOSE_RIVAL", "Ушли к конкуренту", "F")]


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def _portal(fake: FakeBitrix24, n: int = N_DEALS) -> None:
    """Two pipelines, three users in two departments, `n` deals in Sales (every third lost after
    an offer, every fifth won after talks), one deal in Service, activities on every tenth deal,
    three leads."""
    fake.departments = [{"ID": "7", "NAME": "Москва"}, {"ID": "8", "NAME": "Казань"}]
    fake.add_category(0, "Продажи", SALES_STAGES)
    fake.add_category(3, "Сервис", [("NEW", "Заявка на сервис", None), ("WON", "Выполнено", "S"),
                                    ("LOSE", "Отказ", "F")])
    fake.add_status("SOURCE", "WEB", "Сайт", 10)
    fake.add_status("SOURCE", "CALL", "Звонок", 20)
    for k, (sid, name, sem) in enumerate([("NEW", "Не обработан", None), ("IN_PROCESS", "В работе", None),
                                          ("CONVERTED", "Качественный лид", "S"), ("JUNK", "Некачественный лид", "F")]):
        fake.add_status("STATUS", sid, name, 10 * (k + 1), sem)
    fake.add_user(1, "Анна", "Смирнова", "anna@example.ru", department=7)
    fake.add_user(2, "Борис", "Орлов", "boris@example.ru", department=8)
    fake.add_user(3, "Вера", "", None, department=8, active=False)
    fake.companies[900] = {"ID": "900", "TITLE": "ООО «Ромашка»", "ASSIGNED_BY_ID": "1", "DATE_MODIFY": at(0),
                           "UF_CRM_SEGMENT": "Горнодобыча"}
    fake.contacts[700] = {"ID": "700", "NAME": "Иван", "LAST_NAME": "Петров", "ASSIGNED_BY_ID": "2", "DATE_MODIFY": at(0)}
    act = 0
    for i in range(1, n + 1):
        created = i
        fake.put_deal({"ID": i, "TITLE": f"Сделка {i}", "STAGE_ID": "NEW", "OPPORTUNITY": f"{1000 * i}.00",
                       "CURRENCY_ID": "RUB", "ASSIGNED_BY_ID": 1 + i % 2, "DATE_CREATE": at(created),
                       "SOURCE_ID": "WEB" if i % 4 else "CALL", "COMPANY_ID": 900 if i % 2 else 0,
                       "CONTACT_ID": 700, "CLOSEDATE": at(created + 24 * 30), "UF_CRM_REGION": "Поволжье"})
        fake.enter_stage(i, "NEW", at(created), type_id=1)
        if i % 3 == 0 or i % 5 == 0:
            fake.move_deal(i, "OFFER", at(created + 24))
        if i % 3 == 0:
            fake.move_deal(i, "LOSE_PRICE" if i % 2 else "LOSE_RIVAL", at(created + 72))
        elif i % 5 == 0:
            fake.move_deal(i, "TALKS", at(created + 48))
            fake.move_deal(i, "WON", at(created + 72))
        if i % 10 == 0:
            for type_id, extra in ((2, {"DIRECTION": "2"}), (4, {"DIRECTION": "2", "SUBJECT": f"КП {i}"}),
                                   (1, {})):
                act += 1
                fake.activities[act] = {
                    "ID": str(act), "OWNER_ID": str(i), "OWNER_TYPE_ID": "2", "TYPE_ID": str(type_id),
                    "PROVIDER_ID": {2: "VOXIMPLANT_CALL", 4: "CRM_EMAIL", 1: "CRM_MEETING"}[type_id],
                    "SUBJECT": "", "CREATED": at(created + 1), "START_TIME": at(created + 1),
                    "END_TIME": at(created + 2), "DEADLINE": at(created + 2), "COMPLETED": "Y",
                    "RESPONSIBLE_ID": "1", "LAST_UPDATED": at(created + 3), **extra}
    fake.put_deal({"ID": 5000, "TITLE": "Сервисная заявка", "CATEGORY_ID": 3, "STAGE_ID": "C3:NEW",
                   "OPPORTUNITY": "1", "CURRENCY_ID": "RUB", "ASSIGNED_BY_ID": 1, "DATE_CREATE": at(0)})
    fake.enter_stage(5000, "C3:NEW", at(0), type_id=1)
    for lid, status, assigned in ((1, "IN_PROCESS", 1), (2, "JUNK", 2), (3, "NEW", 2)):
        fake.leads[lid] = {"ID": str(lid), "TITLE": f"Лид {lid}", "STATUS_ID": status, "SOURCE_ID": "WEB",
                           "ASSIGNED_BY_ID": str(assigned), "DATE_CREATE": at(lid), "DATE_MODIFY": at(lid)}
    fake.activities[9000] = {"ID": "9000", "OWNER_ID": "1", "OWNER_TYPE_ID": "1", "TYPE_ID": "2",
                             "PROVIDER_ID": "VOXIMPLANT_CALL", "CREATED": at(1.5), "START_TIME": at(1.5),
                             "END_TIME": at(1.6), "COMPLETED": "Y", "DIRECTION": "2", "RESPONSIBLE_ID": "1",
                             "LAST_UPDATED": at(1.6)}


def _source(store: Path, **kw) -> SourceConfig:
    kw.setdefault("requests_per_second", 100)
    return SourceConfig(kind="bitrix24", webhook_env="TEST_BX_WEBHOOK", store=str(store), pipelines=["Продажи"],
                        custom_fields={"deals": {"region": "UF_CRM_REGION"}, "clients": {"segment": "UF_CRM_SEGMENT"}},
                        **kw)


@pytest.fixture
def fake(monkeypatch):
    server = FakeBitrix24()
    _portal(server)
    with ThreadedServer(server) as running:
        monkeypatch.setenv("TEST_BX_WEBHOOK", running.webhook)
        yield running




def _select(query: dict) -> list[str]:
    """`select` as sent: a list in a plain call, {"0": ...} inside a batch command."""
    value = query.get("select") or []
    return list(value.values()) if isinstance(value, dict) else list(value)


def _newest_modify(fake: FakeBitrix24) -> datetime:
    return max(datetime.fromisoformat(d["DATE_MODIFY"]) for d in fake.deals.values())


def test_first_sync_takes_everything_in_batches_and_maps_it_to_the_contract(fake, tmp_path):
    source = _source(tmp_path / "store")
    report = bitrix24.sync(source, None)
    assert report.rows["deals"] == N_DEALS + 1
    starts = [int(q.get("start", 0)) for q in fake.method_calls("crm.deal.list") if _select(q) != ["ID"]]
    assert starts == list(range(0, N_DEALS + 1, 50))  # every page once, in order
    assert all(">=DATE_MODIFY" not in (q.get("filter") or {}) for q in fake.method_calls("crm.deal.list"))
    # 13 pages of deals cost two requests (a page, then one batch of 12), not 13; the whole first
    # sync (26 pages of history, the ID check of 5 tables) 12
    assert report.requests <= 12 and fake.requests == report.requests

    data = load_crm(source).data
    deals = data.deals.set_index("deal_id")
    assert len(deals) == N_DEALS and "5000" not in deals.index  # Service is not included
    assert data.stages == ["Новая заявка", "КП отправлено", "Переговоры"]
    assert deals.loc["3", "status"] == "lost" and deals.loc["3", "stage"] == "КП отправлено"
    assert deals.loc["3", "loss_reason"] == "Дорого" and deals.loc["6", "loss_reason"] == "Ушли к конкуренту"
    assert deals.loc["5", "status"] == "won" and deals.loc["5", "stage"] == "Переговоры"
    assert deals.loc["5", "closed_at"] == pd.Timestamp(T0 + timedelta(hours=5 + 72))  # entered WON, not CLOSEDATE
    assert deals.loc["1", "status"] == "open" and pd.isna(deals.loc["1", "closed_at"])
    assert deals.loc["1", "client_id"] == "900" and deals.loc["2", "client_id"] == "contact-700"
    assert deals.loc["4", "source"] == "Звонок" and deals.loc["1", "source"] == "Сайт"
    assert deals.loc["1", "region"] == "Поволжье"
    assert deals.loc["5", "currency"] == "RUB" and deals.loc["5", "amount"] == 5000
    assert deals.loc["7", "created_at"] == pd.Timestamp("2026-03-02 13:00", tz="UTC")  # 16:00 +03:00
    history = data.stage_history[data.stage_history.deal_id == "5"].sort_values("entered_at")
    assert history.stage.tolist() == ["Новая заявка", "КП отправлено", "Переговоры"]
    managers = data.managers.set_index("manager_id")
    assert managers.loc["1", "name"] == "Анна Смирнова" and managers.loc["1", "team"] == "Москва"
    assert not managers.loc["3", "active"]
    clients = data.clients.set_index("client_id")
    assert clients.loc["900", "segment"] == "Горнодобыча" and clients.loc["contact-700", "name"] == "Иван Петров"
    assert set(data.activities.type) == {"call", "meeting"}
    assert len(data.emails) == N_DEALS // 10 and set(data.emails.direction) == {"out"}
    leads = data.leads.set_index("lead_id")
    assert leads.loc["1", "first_response_at"] == pd.Timestamp(T0 + timedelta(hours=1.5))
    assert pd.isna(leads.loc["3", "first_response_at"]) and leads.loc["2", "status"] == "junk"
    assert leads.loc["1", "source"] == "Сайт" and leads.loc["1", "status"] == "В работе"
    assert data.email_opens is None  # Bitrix24 has no opens in REST


def test_second_sync_asks_only_for_what_changed(fake, tmp_path):
    source = _source(tmp_path / "store", overlap_minutes=5)
    bitrix24.sync(source, None)
    newest = _newest_modify(fake)
    fake.calls.clear()
    fake.served.clear()
    later = (newest + timedelta(days=1)).isoformat()
    fake.move_deal(1, "OFFER", later, OPPORTUNITY="777.00")
    report = bitrix24.sync(source, None)

    changed = [q for q in fake.method_calls("crm.deal.list") if ">=DATE_MODIFY" in (q.get("filter") or {})]
    assert len(changed) == 1  # one page
    since = datetime.fromisoformat(changed[0]["filter"][">=DATE_MODIFY"])
    assert since == newest - timedelta(minutes=5)
    assert fake.served["crm.stagehistory.list"] <= 3  # the new entry (and the overlap), not all 1,300
    history_filter = fake.method_calls("crm.stagehistory.list")[0]["filter"]
    assert ">=CREATED_TIME" in history_filter
    assert report.rows["deals"] < 5
    data = load_crm(source).data
    deals = data.deals.set_index("deal_id")
    assert len(deals) == N_DEALS  # merged by id: nothing doubled
    assert deals.loc["1", "stage"] == "КП отправлено" and deals.loc["1", "amount"] == 777
    assert (data.stage_history.deal_id == "1").sum() == 2
    assert not data.stage_history.duplicated().any()


def test_deleted_records_disappear_on_the_next_deletion_check(fake, tmp_path):
    """Deals are compared on every sync (sync, delete, sync: it is gone); the other lists when
    deletion_check_minutes have passed."""
    source = _source(tmp_path / "store", deletion_check_minutes=60)
    now = time.time()
    bitrix24.sync(source, None, now=now)
    del fake.deals[5]
    del fake.companies[900]
    fake.calls.clear()
    report = bitrix24.sync(source, None, now=now + 10 * 60)  # the full check is not due yet
    id_pages = [q for q in fake.method_calls("crm.deal.list") if _select(q) == ["ID"]]
    assert [int(q.get("start", 0)) for q in id_pages] == list(range(0, N_DEALS + 1, 50))
    assert not any(_select(q) == ["ID"] for q in fake.method_calls("crm.company.list"))
    assert report.deleted == 1
    data = load_crm(source).data
    assert "5" not in set(data.deals.deal_id) and "5" not in set(data.stage_history.deal_id)
    assert "900" in set(data.clients.client_id)
    assert len(data.deals) == N_DEALS - 1

    report = bitrix24.sync(source, None, now=now + 61 * 60)
    assert any(_select(q) == ["ID"] for q in fake.method_calls("crm.company.list"))
    assert report.deleted == 1
    assert "900" not in set(load_crm(source).data.clients.client_id)


def test_a_record_a_shifted_page_skipped_is_fetched_by_the_id_check(fake, tmp_path):
    """Offset paging skips a record when one before it is deleted between two pages; its old
    DATE_MODIFY keeps it out of every later incremental sync: the ID check finds and fetches it."""
    source = _source(tmp_path / "store")
    bitrix24.sync(source, None)
    fake.put_deal({"ID": 640, "TITLE": "Пропущенная", "STAGE_ID": "OFFER", "OPPORTUNITY": "5.00", "CURRENCY_ID": "RUB",
                   "ASSIGNED_BY_ID": 1, "DATE_CREATE": at(1), "DATE_MODIFY": at(2), "COMPANY_ID": 900})
    fake.calls.clear()
    report = bitrix24.sync(source, None)
    by_id = [q for q in fake.method_calls("crm.deal.list") if "ID" in (q.get("filter") or {})]
    assert len(by_id) == 1 and report.rows["deals"] <= 3  # the one missing, and the overlap
    deal = load_crm(source).data.deals.set_index("deal_id").loc["640"]
    assert deal.stage == "КП отправлено" and deal.amount == 5


def test_a_sync_killed_mid_way_and_restarted_ends_like_an_uninterrupted_one(fake, tmp_path, monkeypatch):
    whole = _source(tmp_path / "whole")
    bitrix24.sync(whole, None)

    broken = _source(tmp_path / "broken")
    method, real, columns, field = bitrix24.INCREMENTAL["deals"]
    monkeypatch.setitem(bitrix24.INCREMENTAL, "deals", (method, dies_at(real, 300, "the deals"), columns, field))
    with pytest.raises(RuntimeError, match="killed"):
        bitrix24.sync(broken, None)
    monkeypatch.setitem(bitrix24.INCREMENTAL, "deals", (method, real, columns, field))
    bitrix24.sync(broken, None)

    assert_same_store(tmp_path / "whole", tmp_path / "broken", "bitrix24")
    a, b = load_crm(whole).data, load_crm(broken).data
    pd.testing.assert_frame_equal(a.deals, b.deals)
    pd.testing.assert_frame_equal(a.stage_history, b.stage_history)


def test_a_sync_process_killed_mid_way_resumes_to_the_same_store(fake, tmp_path):
    """SIGKILL while the batch of deal pages is being served: nothing half-written is read, and
    the next sync ends with the store an uninterrupted sync gives."""

    whole = _source(tmp_path / "whole")
    bitrix24.sync(whole, None)
    killed = _source(tmp_path / "killed")
    child = sync_in_child("bitrix24", killed)

    sigkill_when(fake, child, lambda method, params: method == "crm.deal.list" and str(params.get("start")) == "300")
    bitrix24.sync(killed, None)
    assert_same_store(tmp_path / "whole", tmp_path / "killed", "bitrix24")


def test_query_limit_exceeded_and_429_are_waited_out(fake, tmp_path):
    fake.throttle_next(2, status=503)  # Bitrix24's QUERY_LIMIT_EXCEEDED
    fake.throttle_next(1, status=429, retry_after=1)
    source = _source(tmp_path / "store")
    started = time.monotonic()
    bitrix24.sync(source, None, backoff=0.1)
    assert fake.answered_limit == 3
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    assert len(load_crm(source).data.deals) == N_DEALS


def test_the_default_pace_stays_under_the_leaky_bucket(fake, tmp_path):
    fake.per_second, fake.bucket = 2, 3  # a small bucket so that a burst would show at once
    source = _source(tmp_path / "store").model_copy(update={"requests_per_second": 2.0})
    assert SourceConfig(kind="bitrix24", webhook_env="X").requests_per_second == 2.0  # the default
    report = bitrix24.sync(source, None)
    assert fake.over_limit == 0
    assert report.requests > 10 and report.seconds >= (report.requests - 2) / 2 - 0.5


def _config_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
language = "en"
[source]
kind = "bitrix24"
webhook_env = "TEST_BX_WEBHOOK"
store = "store"
pipelines = ["Продажи"]
requests_per_second = 100
{extra}
""", encoding="utf-8")
    return path


def test_check_lists_pipelines_and_users(fake, tmp_path, capsys):
    config = _config_file(tmp_path)
    assert cli_main(["sync", "--config", str(config), "--check"]) == 0
    out = capsys.readouterr().out
    assert "0 Продажи (included): Новая заявка, КП отправлено, Переговоры, Сделка успешна, Дорого" in out
    assert "3 Сервис (not included): Заявка на сервис" in out
    assert "1 Анна Смирнова" in out and "3 Вера (inactive)" in out
    assert not (tmp_path / "store" / "crm.duckdb").exists()  # --check syncs nothing


def test_no_secret_in_logs_or_output(fake, tmp_path, caplog, capsys):
    config = _config_file(tmp_path)
    caplog.set_level(logging.DEBUG)
    fake.throttle_next(1, status=503)
    assert cli_main(["sync", "--config", str(config)]) == 0
    assert cli_main(["sync", "--config", str(config), "--check"]) == 0
    fake.revoke()
    assert cli_main(["sync", "--config", str(config)]) == 3
    printed = capsys.readouterr()
    assert "synced bitrix24" in printed.out and "Продажи (included)" in printed.out
    assert "Bitrix24 refused the webhook" in printed.err and "Traceback" not in printed.err
    text = caplog.text + printed.out + printed.err
    assert len(caplog.records) > 10  # urllib3 did log every request at DEBUG
    assert "/rest/1/***/" in text or "127.0.0.1" in text
    assert fake.code.removeprefix("deleted-") not in text
    assert fake.webhook.replace("deleted-", "") not in text


def test_a_wrong_webhook_is_one_clear_error(fake, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEST_BX_WEBHOOK", f"http://127.0.0.1:{fake.port}/rest/1/n0tth3c0d3atall42/")
    config = _config_file(tmp_path)
    assert cli_main(["sync", "--config", str(config)]) == 3
    err = capsys.readouterr().err
    assert "Bitrix24 refused the webhook" in err and "Inbound webhook" in err and "Traceback" not in err
    assert "n0tth3c0d3atall42" not in err


@pytest.mark.parametrize("denied", [{"crm.deal.list", "crm.category.list"}, {"user.get"}])
def test_a_webhook_without_the_crm_or_user_scope_says_which_scopes_to_tick(fake, tmp_path, capsys, denied):
    fake.without_scope = denied
    config = _config_file(tmp_path)
    assert cli_main(["sync", "--config", str(config)]) == 3
    err = capsys.readouterr().err
    assert "may not read this (insufficient_scope" in err and "tick the scopes crm and user" in err
    assert "Traceback" not in err


def test_a_later_sync_with_little_changed_takes_nine_requests(fake, tmp_path):
    source = _source(tmp_path / "store", deletion_check_minutes=60)
    bitrix24.sync(source, None)
    fake.move_deal(2, "OFFER", (_newest_modify(fake) + timedelta(hours=1)).isoformat())
    report = bitrix24.sync(source, None)
    # one batch for users (active, inactive), departments, pipelines and stages; one page of each
    # of the six incremental tables (their filters depend on their own cursors); the deals' ID
    # list (621 IDs: its first page, then one batch of the other 12 pages)
    assert report.requests == 9 and report.rows["deals"] >= 1


def test_a_webhook_url_that_is_not_one_is_said_so(tmp_path, monkeypatch):
    from crm.errors import DataError

    monkeypatch.setenv("TEST_BX_WEBHOOK", "https://yourcompany.bitrix24.ru/crm/deal/")
    with pytest.raises(DataError, match="does not hold a Bitrix24 inbound webhook URL"):
        bitrix24.sync(_source(tmp_path / "store"), None)
    monkeypatch.delenv("TEST_BX_WEBHOOK")
    with pytest.raises(DataError, match="TEST_BX_WEBHOOK .* is not set"):
        bitrix24.sync(_source(tmp_path / "store"), None)


def test_base_url_reaches_the_portal_through_a_proxy(fake, tmp_path, monkeypatch):
    """The webhook names the real portal; base_url sends the same path to another host."""
    monkeypatch.setenv("TEST_BX_WEBHOOK", f"https://yourcompany.bitrix24.ru/rest/1/{fake.code}/")
    source = _source(tmp_path / "store", base_url=f"http://127.0.0.1:{fake.port}")
    report = bitrix24.sync(source, None)
    assert report.rows["deals"] == N_DEALS + 1


def test_an_older_portal_without_crm_category_list_gives_the_same_pipelines(fake, tmp_path):
    fake.missing_methods = {"crm.category.list"}
    source = _source(tmp_path / "store")
    bitrix24.sync(source, None)
    data = load_crm(source).data
    assert len(data.deals) == N_DEALS and data.stages == ["Новая заявка", "КП отправлено", "Переговоры"]


def test_a_deal_in_a_deleted_stage_keeps_the_stage_code(fake, tmp_path):
    fake.statuses = [s for s in fake.statuses if s["STATUS_ID"] != "TALKS"]  # removed from the pipeline
    source = _source(tmp_path / "store")
    bitrix24.sync(source, None)
    deals = load_crm(source).data.deals.set_index("deal_id")
    assert deals.loc["5", "stage"] == "TALKS" and deals.loc["5", "status"] == "won"


def test_without_the_department_scope_managers_have_no_team(fake, tmp_path):
    fake.department_scope = False
    source = _source(tmp_path / "store")
    bitrix24.sync(source, None)
    managers = load_crm(source).data.managers
    assert len(managers) == 3 and managers.team.isna().all()


def test_the_webhook_code_is_masked_wherever_it_appears():
    line = 'POST /rest/17/x9k2m4p6q8r1t3v5/crm.deal.list.json "https://b24-ab12.bitrix24.ru/rest/1/abcdef0123456789/"'
    shown = mask(line)
    assert "x9k2m4p6q8r1t3v5" not in shown and "abcdef0123456789" not in shown
    assert "/rest/17/***/crm.deal.list.json" in shown and "b24-ab12.bitrix24.ru" in shown
    assert mask("/rest/1/department.get") == "/rest/1/department.get"  # a method, not a code


def test_the_webhook_env_value_is_registered_as_a_secret(monkeypatch):
    from bot.logsafe import config_secret_values

    monkeypatch.setenv("TEST_BX_WEBHOOK", "https://a.bitrix24.ru/rest/1/qwertyuiop/")
    values = config_secret_values(SourceConfig(kind="bitrix24", webhook_env="TEST_BX_WEBHOOK"))
    assert "qwertyuiop" in values and "https://a.bitrix24.ru/rest/1/qwertyuiop/" in values


@pytest.mark.parametrize("keys, problem", [
    ({}, "needs webhook_env"),
    ({"webhook_env": "https://a.bitrix24.ru/rest/1/abcdef0123456789/"}, "NAME of an environment"),
    ({"webhook_env": "W", "token_env": "T"}, "signs in with an inbound webhook"),
    ({"webhook_env": "W", "base_url": "https://a.bitrix24.ru/rest/1/abcdef0123456789/"}, "contains a secret"),
    ({"webhook_env": "W", "path": "x"}, "not used by kind"),
])
def test_bitrix24_source_config_errors(keys, problem):
    with pytest.raises(ValueError, match=problem):
        SourceConfig(kind="bitrix24", **keys)


def test_webhook_env_under_amocrm_is_flagged():
    with pytest.raises(ValueError, match="only for kind = \"bitrix24\""):
        SourceConfig(kind="amocrm", base_url="https://a.amocrm.ru", token_env="T", webhook_env="W")


def test_missing_webhook_is_named_before_the_bot_starts(monkeypatch, tmp_path):
    from bot.app import missing_secrets
    from bot.config import load_config

    monkeypatch.delenv("TEST_BX_WEBHOOK", raising=False)
    lines = missing_secrets(load_config(_config_file(tmp_path)))
    assert any("source.webhook_env" in line and "Inbound webhook" in line for line in lines)


def test_init_for_bitrix24_writes_a_config_that_syncs_it(fake, tmp_path, monkeypatch, capsys):
    from bot.config import load_config

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRM_PULSE_BITRIX24_WEBHOOK", fake.webhook)
    assert cli_main(["init", "--crm", "bitrix24"]) == 0
    config = load_config(tmp_path / "config.toml")
    assert config.source.kind == "bitrix24" and config.source.requests_per_second == 2.0
    assert cli_main(["sync", "--config", "config.toml", "--check"]) == 0
    assert "Продажи (included)" in capsys.readouterr().out


# --- another portal: what an equally documented server may do differently ---------------------

def _whole(source: SourceConfig) -> None:
    """Every deal, stage entry, activity and lead of the planted portal reached the store."""
    data = load_crm(source).data
    assert len(data.deals) == N_DEALS and not data.stage_history_derived
    deals = data.deals.set_index("deal_id")
    assert deals.loc["5", "status"] == "won" and deals.loc["5", "stage"] == "Переговоры"
    assert (data.stage_history.deal_id == "5").sum() == 3
    assert len(data.activities) == 2 * (N_DEALS // 10) and len(data.emails) == N_DEALS // 10
    assert len(data.leads) == 3


@pytest.mark.parametrize("variant", [{"page_size": 20}, {"totals": False}, {"batch_served": False},
                                     {"page_size": 20, "totals": False, "batch_served": False},
                                     {"params_from": "query"}])
def test_other_page_sizes_no_totals_and_no_batch(fake, tmp_path, variant):
    """Pages of 20 (the step is what `next` says), replies without `total` (paged by `next`),
    a portal or proxy without `batch` (the commands go one by one), a server that reads the
    parameters from the URL only (`filter[>=DATE_MODIFY]=...&start=50`, as the shared notes
    write them; its batch answers no command, so they go one by one): the same store."""
    for key, value in variant.items():
        setattr(fake, key, value)
    source = _source(tmp_path / "store")
    report = bitrix24.sync(source, None)
    _whole(source)
    del fake.deals[7]
    assert bitrix24.sync(source, None).deleted == 1  # the ID check reads the same lists
    assert "7" not in set(load_crm(source).data.deals.deal_id)
    if variant.get("batch_served") is False or variant.get("params_from"):
        assert report.requests > 26  # one request a page now


OPTIONAL_LISTS = [("crm.stagehistory.list", "stage_history", "the stage history is derived"),
                  ("crm.activity.list", "activities", "no calls, meetings, tasks or emails"),
                  ("crm.lead.list", "leads", "lead_sla, lead_score"),
                  ("crm.company.list", "companies", "clients that are companies"),
                  ("crm.contact.list", "contacts", "clients that are contacts")]


@pytest.mark.parametrize("method, part, says", OPTIONAL_LISTS)
def test_a_list_the_portal_does_not_serve_is_skipped_and_said_once(fake, tmp_path, capsys, method, part, says):
    """ERROR_METHOD_NOT_FOUND for an optional list (as a call and inside `batch`, where the ID
    check asks for it): synced without it, said once, and nothing already stored is read as
    deleted."""
    source = _source(tmp_path / "store")
    bitrix24.sync(source, None)
    fake.missing_methods = {method}
    config = _config_file(tmp_path)
    assert cli_main(["sync", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if line.startswith("not synced:")]
    assert len(said) == 1 and says in said[0] and "ERROR_METHOD_NOT_FOUND" in said[0]
    kept = store_tables(tmp_path / "store", "bitrix24")[part]
    assert len(kept) > 0  # what the earlier sync stored stays: a list not served is not an empty list
    fresh = _source(tmp_path / "fresh")
    report = bitrix24.sync(fresh, None)
    assert list(report.missing) == [part]
    data = load_crm(fresh).data
    assert len(data.deals) == N_DEALS
    assert data.stage_history_derived == (part == "stage_history")
    if part == "leads":
        assert data.leads is None


def test_a_required_list_missing_is_one_clear_error(fake, tmp_path, capsys):
    fake.missing_methods = {"crm.deal.list"}
    assert cli_main(["sync", "--config", str(_config_file(tmp_path))]) == 3
    err = capsys.readouterr().err
    assert "Bitrix24 answered with an error (ERROR_METHOD_NOT_FOUND" in err and "Traceback" not in err


def test_a_deal_deleted_right_after_a_sync_is_gone_after_the_next_with_a_long_check_interval(fake, tmp_path):
    """sync, delete, sync, scan: even with deletion_check_minutes = 360 the deals' IDs are
    compared on each sync."""
    source = _source(tmp_path / "store", deletion_check_minutes=360)
    bitrix24.sync(source, None)
    del fake.deals[10]
    report = bitrix24.sync(source, None)
    assert report.deleted == 1
    data = load_crm(source).data
    assert "10" not in set(data.deals.deal_id) and "10" not in set(data.activities.deal_id.dropna())


def test_a_portal_that_ignores_the_active_filter_gives_each_manager_once(fake, tmp_path):
    fake.user_filter = False
    source = _source(tmp_path / "store")
    bitrix24.sync(source, None)
    managers = load_crm(source).data.managers.set_index("manager_id")
    assert sorted(managers.index) == ["1", "2", "3"] and not managers.loc["3", "active"]


def test_a_portal_serving_only_the_methods_named_in_the_task(fake, tmp_path, capsys):
    """A portal that serves crm.deal.list, crm.stagehistory.list, crm.status.list,
    crm.activity.list, crm.lead.list, user.get and batch, and nothing else (no pipelines list,
    no departments, no companies or contacts): the sync says what it lacks, once each, and the
    deals, stages, history and activities are all there."""
    fake.missing_methods = {"crm.category.list", "crm.dealcategory.list", "crm.dealcategory.default.get",
                            "department.get", "crm.company.list", "crm.contact.list"}
    config = _config_file(tmp_path).read_text(encoding="utf-8").replace('pipelines = ["Продажи"]', "pipelines = [0]")
    (tmp_path / "config.toml").write_text(config, encoding="utf-8")
    assert cli_main(["sync", "--config", str(tmp_path / "config.toml")]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("not synced:")]
    assert len(said) == 4 and any("name pipelines in [source] pipelines by id" in line for line in said)
    source = _source(tmp_path / "store").model_copy(update={"pipelines": [0]})
    _whole(source)
    assert cli_main(["sync", "--config", str(tmp_path / "config.toml"), "--check"]) == 0
    assert "0 (name not served) (included): Новая заявка" in capsys.readouterr().out


@pytest.mark.parametrize("missing, sales, service", [
    (set(), "Продажи", "Сервис"),
    ({"crm.category.list"}, "Продажи", "Сервис"),  # an older portal: crm.dealcategory.* (0 from .default.get)
    ({"crm.category.list", "crm.dealcategory.list", "crm.dealcategory.default.get"}, "0", "3"),  # no names served
])
def test_every_pipeline_synced_each_deal_names_its_pipeline_and_the_load_says_they_are_pooled(
        monkeypatch, tmp_path, missing, sales, service):
    """`[source] pipelines` left empty (the default) syncs every pipeline: each deal names its
    own (the category's name; its id when the portal serves no names), and the load says they
    are judged as one funnel; one kept (as the warning names it, or by id) is said nothing."""
    server = FakeBitrix24()
    _portal(server, n=12)
    server.missing_methods = missing
    with ThreadedServer(server) as running:
        monkeypatch.setenv("TEST_BX_WEBHOOK", running.webhook)
        source = _source(tmp_path / "store").model_copy(update={"pipelines": []})
        bitrix24.sync(source, None)
    assert_pipelines_pooled_then_kept(source, service=service, sales=sales,
                                      said=(f"deals come from 2 pipelines ({sales}: 12; {service}: 1)",),
                                      kept=(([sales], sales), ([3], service)), crm="Bitrix24", typo="Продажы")
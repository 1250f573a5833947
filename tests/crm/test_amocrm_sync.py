"""amoCRM sync through a fake amoCRM on 127.0.0.1: what a first and a later sync ask for, what
the store holds, deletions, an interrupted sync, 429s, OAuth refresh, and secrets kept out of
every log line."""
from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import pandas as pd
from aiohttp import web
import pytest

from bot.cli import main as cli_main
from crm.connectors import amocrm
from crm.connectors.tokens import TokenFile
from crm.errors import DataError
from crm.load import load_crm
from crm.source_config import SourceConfig
from tests.fakes.store import (
    assert_pipelines_pooled_then_kept, assert_same_store, dies_at, sigkill_when, store_tables, sync_in_child,
)
from tests.fakes.amocrm_server import LOST, WON, FakeAmoCRM, ThreadedServer

T0 = 1_760_000_000  # all timestamps of the planted account are after this
DAY = 86400
SALES, OTHER = 1300, 1400
NEW, OFFER, TALKS = 10, 11, 12
N_LEADS = 620  # three pages of 250


def _account(fake: FakeAmoCRM, n: int = N_LEADS) -> None:
    """Two pipelines, three users in two groups, `n` leads in Sales (every third lost after an
    offer, every fifth won after talks), one lead in the other pipeline, notes and tasks."""
    fake.groups = [{"id": 7, "name": "Алматы"}, {"id": 8, "name": "Астана"}]
    fake.add_pipeline(SALES, "Продажи", [(NEW, "Новая заявка"), (OFFER, "КП отправлено"), (TALKS, "Переговоры")])
    fake.add_pipeline(OTHER, "Сервис", [(20, "Заявка на сервис")], sort=2)
    fake.add_user(1, "Анна", "anna@example.kz", group_id=7)
    fake.add_user(2, "Борис", "boris@example.kz", group_id=8)
    fake.add_user(3, "Вера", None, group_id=8, active=False)
    fake.companies[900] = {"id": 900, "name": "ТОО «Ромашка»", "responsible_user_id": 1, "updated_at": T0,
                           "custom_fields_values": [{"field_id": 5, "field_name": "Отрасль",
                                                     "values": [{"value": "Горнодобыча"}]}]}
    fake.contacts[700] = {"id": 700, "name": "Иван Петров", "responsible_user_id": 2, "updated_at": T0}
    for i in range(1, n + 1):
        created = T0 + i * 3600
        status = LOST if i % 3 == 0 else WON if i % 5 == 0 else NEW
        emb = {"tags": [], "companies": [{"id": 900}] if i % 2 else [],
               "contacts": [{"id": 700, "is_main": True}],
               "loss_reason": [{"id": 1, "name": "Цена"}] if status == LOST else []}
        closed = created + 3 * DAY if status in (WON, LOST) else None
        fake.put_lead({"id": i, "name": f"Сделка {i}", "price": 1000 * i, "responsible_user_id": 1 + i % 2,
                       "status_id": status, "pipeline_id": SALES, "created_at": created,
                       "updated_at": closed or created, "closed_at": closed, "_embedded": emb,
                       "custom_fields_values": [{"field_id": 9, "field_name": "Источник",
                                                 "values": [{"value": "Сайт" if i % 4 else "Звонок"}]}]})
        if status in (WON, LOST):
            fake.status_change(i, created + DAY, (SALES, NEW), (SALES, OFFER))
        if status == WON:
            fake.status_change(i, created + 2 * DAY, (SALES, OFFER), (SALES, TALKS))
        if status in (WON, LOST):
            last = TALKS if status == WON else OFFER
            fake.status_change(i, closed, (SALES, last), (SALES, status))
        if i % 10 == 0:
            fake.notes.append({"id": 10_000 + i, "entity_id": i, "note_type": "call_out", "created_by": 1,
                               "responsible_user_id": 1, "created_at": created + 600, "updated_at": created + 600,
                               "params": {"duration": 60}})
            fake.notes.append({"id": 20_000 + i, "entity_id": i, "note_type": "amomail_message", "created_by": 1,
                               "responsible_user_id": 1, "created_at": created + 900, "updated_at": created + 900,
                               "params": {"income": False, "subject": f"КП {i}"}})
            fake.tasks.append({"id": 30_000 + i, "entity_id": i, "entity_type": "leads", "task_type_id": 2,
                               "responsible_user_id": 2, "is_completed": True, "complete_till": created + DAY,
                               "created_at": created, "updated_at": created + DAY - 60})
    fake.put_lead({"id": 5000, "name": "Сервисная заявка", "price": 1, "responsible_user_id": 1, "status_id": 20,
                   "pipeline_id": OTHER, "created_at": T0, "updated_at": T0, "closed_at": None})


def _source(fake: FakeAmoCRM, store: Path, **kw) -> SourceConfig:
    auth = kw.pop("auth", {"token_env": "TEST_AMO_TOKEN"})
    return SourceConfig(kind="amocrm", base_url=f"http://127.0.0.1:{fake.port}", store=str(store),
                        pipelines=["Продажи"], requests_per_second=100,
                        custom_fields={"deals": {"source": "Источник"}, "clients": {"segment": "Отрасль"}},
                        **auth, **kw)


@pytest.fixture
def fake(monkeypatch):
    server = FakeAmoCRM()
    _account(server)
    monkeypatch.setenv("TEST_AMO_TOKEN", server.long_lived)
    with ThreadedServer(server) as running:
        yield running




def test_first_sync_takes_everything_and_maps_it_to_the_contract(fake, tmp_path):
    source = _source(fake, tmp_path / "store")
    report = amocrm.sync(source, None)
    assert report.rows["leads"] == N_LEADS + 1
    leads_calls = [q for q in fake.api_calls("leads") if "only_deleted" not in q["with"]]
    assert [q.get("page", "1") for q in leads_calls] == ["1", "2", "3"]
    assert all(not any(k.startswith("filter[updated_at]") for k in q) for q in leads_calls)
    assert all(q["limit"] == "250" for q in leads_calls)

    data = load_crm(source).data
    deals = data.deals.set_index("deal_id")
    assert len(deals) == N_LEADS  # the service pipeline is not included
    assert "5000" not in deals.index
    assert data.stages == ["Новая заявка", "КП отправлено", "Переговоры"]
    assert deals.loc["3", "status"] == "lost" and deals.loc["3", "stage"] == "КП отправлено"
    assert deals.loc["3", "loss_reason"] == "Цена"
    assert deals.loc["5", "status"] == "won" and deals.loc["5", "stage"] == "Переговоры"
    assert deals.loc["1", "status"] == "open" and deals.loc["1", "stage"] == "Новая заявка"
    assert deals.loc["1", "client_id"] == "900" and deals.loc["2", "client_id"] == "contact-700"
    assert deals.loc["4", "source"] == "Звонок" and deals.loc["1", "source"] == "Сайт"
    assert deals.loc["5", "currency"] == "KZT" and deals.loc["5", "amount"] == 5000
    history = data.stage_history[data.stage_history.deal_id == "5"].sort_values("entered_at")
    assert history.stage.tolist() == ["Новая заявка", "КП отправлено", "Переговоры"]
    assert history.entered_at.iloc[1] == pd.Timestamp(T0 + 5 * 3600 + DAY, unit="s", tz="UTC")
    managers = data.managers.set_index("manager_id")
    assert managers.loc["1", "team"] == "Алматы" and not managers.loc["3", "active"]
    clients = data.clients.set_index("client_id")
    assert clients.loc["900", "segment"] == "Горнодобыча" and "contact-700" in clients.index
    assert set(data.activities.type) == {"call", "meeting"}
    assert len(data.emails) == N_LEADS // 10 and set(data.emails.direction) == {"out"}
    assert data.email_opens is None  # amoCRM has no opens
    leads = data.leads.set_index("lead_id")  # every lead started in the first stage: each is a lead
    assert len(leads) == N_LEADS and leads.loc["1", "status"] == "new" and leads.loc["5", "status"] == "won"
    assert leads.loc["10", "first_response_at"] == pd.Timestamp(T0 + 10 * 3600 + 600, unit="s", tz="UTC")


def test_second_sync_asks_only_for_what_changed(fake, tmp_path):
    source = _source(fake, tmp_path / "store", overlap_minutes=5)
    amocrm.sync(source, None)
    newest = max(r["updated_at"] for r in fake.leads.values())
    fake.calls.clear()
    changed_at = newest + DAY
    fake.leads[1].update(status_id=OFFER, updated_at=changed_at, price=777)
    fake.status_change(1, changed_at, (SALES, NEW), (SALES, OFFER))
    report = amocrm.sync(source, None)

    leads_calls = [q for q in fake.api_calls("leads") if "only_deleted" not in q["with"]]
    assert len(leads_calls) == 1  # one page: only what changed since the cursor
    assert int(leads_calls[0]["filter[updated_at][from]"]) == newest - 5 * 60
    events = [q for q in fake.api_calls("events") if q["filter[type]"] == "lead_status_changed"]
    assert len(events) == 1 and "filter[created_at][from]" in events[0]
    # one type a request (a single value reads the same as a string and as an array): stage
    # changes, five deletions (and entity_deleted), the owner change and four kinds of answer
    every_event_kind = [q["filter[type]"] for q in fake.api_calls("events")]
    assert len(every_event_kind) == len(set(every_event_kind)) == 12
    assert all("," not in kind for kind in every_event_kind)
    assert len(fake.api_calls("leads/unsorted")) == 1  # no modified-time filter: read whole
    assert report.rows["leads"] < 5
    data = load_crm(source).data
    deals = data.deals.set_index("deal_id")
    assert len(deals) == N_LEADS  # merged by id: nothing doubled
    assert deals.loc["1", "stage"] == "КП отправлено" and deals.loc["1", "amount"] == 777
    assert (data.stage_history.deal_id == "1").sum() == 2
    assert not data.stage_history.duplicated().any()


def test_a_deleted_lead_disappears(fake, tmp_path):
    source = _source(fake, tmp_path / "store")
    amocrm.sync(source, None)
    fake.delete_lead(5, max(r["updated_at"] for r in fake.leads.values()) + 60)
    report = amocrm.sync(source, None)
    assert report.deleted == 1
    data = load_crm(source).data
    assert "5" not in set(data.deals.deal_id)
    assert "5" not in set(data.stage_history.deal_id)
    assert len(data.deals) == N_LEADS - 1


def test_a_lead_that_comes_back_is_deleted_is_removed(fake, tmp_path):
    source = _source(fake, tmp_path / "store")
    amocrm.sync(source, None)
    fake.leads[7].update(is_deleted=True, updated_at=max(r["updated_at"] for r in fake.leads.values()) + 60)
    amocrm.sync(source, None)
    assert "7" not in set(load_crm(source).data.deals.deal_id)


def test_a_sync_killed_mid_way_and_restarted_ends_like_an_uninterrupted_one(fake, tmp_path, monkeypatch):
    whole = _source(fake, tmp_path / "whole")
    amocrm.sync(whole, None)

    broken = _source(fake, tmp_path / "broken")
    real = amocrm.lead_row
    monkeypatch.setattr(amocrm, "lead_row", dies_at(real, 300, "page 2"))
    with pytest.raises(RuntimeError, match="killed"):
        amocrm.sync(broken, None)
    monkeypatch.setattr(amocrm, "lead_row", real)
    amocrm.sync(broken, None)

    assert_same_store(tmp_path / "whole", tmp_path / "broken", "amocrm")
    a, b = load_crm(whole).data, load_crm(broken).data
    pd.testing.assert_frame_equal(a.deals, b.deals)
    pd.testing.assert_frame_equal(a.stage_history, b.stage_history)


def test_429_is_waited_out(fake, tmp_path):
    fake.throttle_next(2, retry_after=1)
    source = _source(fake, tmp_path / "store")
    started = time.monotonic()
    amocrm.sync(source, None)
    assert fake.answered_429 == 2
    assert time.monotonic() - started >= 2.0  # Retry-After: 1 twice
    assert len(load_crm(source).data.deals) == N_LEADS


def test_the_default_pace_stays_under_amocrms_limit(fake, tmp_path):
    fake.per_second = 7  # amoCRM: about 7 requests a second per integration, 429 beyond
    default = SourceConfig.model_fields["requests_per_second"].default
    source = _source(fake, tmp_path / "store").model_copy(update={"requests_per_second": default})
    report = amocrm.sync(source, None)
    assert fake.over_limit == 0
    assert report.requests > 14 and report.seconds >= (report.requests - 1) // 7  # it did wait


def test_throttle_allows_a_burst_then_waits_out_the_window():
    from crm.connectors.engine import Throttle

    throttle = Throttle(7, margin=0.05)
    started = time.monotonic()
    for _ in range(7):
        throttle.wait()
    assert time.monotonic() - started < 0.2  # the first seven go at once
    throttle.wait()
    assert 1.0 <= time.monotonic() - started < 1.3  # the eighth waits for the window
    assert throttle.count == 8


def _oauth_env(monkeypatch, fake):
    monkeypatch.setenv("TEST_AMO_CLIENT_ID", fake.client_id)
    monkeypatch.setenv("TEST_AMO_CLIENT_SECRET", fake.client_secret)
    monkeypatch.setenv("TEST_AMO_REFRESH", next(iter(fake.refresh_tokens)))
    return {"client_id_env": "TEST_AMO_CLIENT_ID", "client_secret_env": "TEST_AMO_CLIENT_SECRET",
            "refresh_token_env": "TEST_AMO_REFRESH", "redirect_uri": "https://example.org/amo"}


def test_expired_access_token_is_refreshed_and_the_new_refresh_token_stored(fake, tmp_path, monkeypatch):
    fake.long_lived = None
    source = _source(fake, tmp_path / "store", auth=_oauth_env(monkeypatch, fake))
    amocrm.sync(source, None)
    token_file = tmp_path / "store" / amocrm.TOKEN_FILE
    stored = TokenFile(token_file).load()
    assert stored is not None and stored.refresh_token in fake.refresh_tokens
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    first = stored.refresh_token

    fake.expire_access()  # amoCRM's 24 h are over
    fake.leads[2].update(updated_at=fake.leads[2]["updated_at"] + 100 * DAY, price=5)
    amocrm.sync(source, None)
    assert fake.unauthorized >= 1
    again = TokenFile(token_file).load()
    assert again.refresh_token != first and again.refresh_token in fake.refresh_tokens
    assert first not in fake.refresh_tokens  # the old one is dead: only the stored one works
    assert load_crm(source).data.deals.set_index("deal_id").loc["2", "amount"] == 5


def _config_file(tmp_path: Path, fake: FakeAmoCRM, auth: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
language = "en"
[source]
kind = "amocrm"
base_url = "http://127.0.0.1:{fake.port}"
{auth}
store = "store"
pipelines = ["Продажи"]
requests_per_second = 100
[source.custom_fields.deals]
source = "Источник"
""", encoding="utf-8")
    return path


def test_no_secret_in_logs_or_output(fake, tmp_path, monkeypatch, caplog, capsys):
    fake.long_lived = None
    env = _oauth_env(monkeypatch, fake)
    auth = "\n".join(f'{k} = "{v}"' for k, v in env.items())
    config = _config_file(tmp_path, fake, auth)
    caplog.set_level(logging.DEBUG)
    assert cli_main(["sync", "--config", str(config)]) == 0
    fake.expire_access()
    assert cli_main(["sync", "--config", str(config)]) == 0
    assert cli_main(["sync", "--config", str(config), "--check"]) == 0
    printed = capsys.readouterr()
    assert "synced amocrm" in printed.out and "Продажи (included)" in printed.out
    text = caplog.text + printed.out + printed.err
    assert len(caplog.records) > 20  # dlt and urllib3 did log at DEBUG
    secrets = [fake.client_secret, os.environ["TEST_AMO_REFRESH"]]
    secrets += [f"access-{i:04d}-tok" for i in range(1, fake.issued + 1)]
    secrets += [f"refresh-{i:04d}-tok" for i in range(1, fake.issued + 1)]
    assert fake.issued >= 2
    for secret in secrets:
        assert secret not in text


def test_check_lists_pipelines_and_users(fake, tmp_path, capsys):
    config = _config_file(tmp_path, fake, 'token_env = "TEST_AMO_TOKEN"')
    assert cli_main(["sync", "--config", str(config), "--check"]) == 0
    out = capsys.readouterr().out
    assert "1300 Продажи (included): Новая заявка, КП отправлено, Переговоры" in out
    assert "1400 Сервис (not included)" in out
    assert "3 Вера (inactive)" in out
    assert not (tmp_path / "store" / "crm.duckdb").exists()  # --check syncs nothing


def test_wrong_token_is_one_clear_error(fake, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEST_AMO_TOKEN", "not-the-token-at-all-123")
    config = _config_file(tmp_path, fake, 'token_env = "TEST_AMO_TOKEN"')
    assert cli_main(["sync", "--config", str(config)]) == 3
    err = capsys.readouterr().err
    assert "amoCRM refused the credentials" in err and "Traceback" not in err
    assert "not-the-token-at-all-123" not in err


def test_scan_before_any_sync_says_what_to_do(tmp_path, monkeypatch):
    from crm.errors import DataError

    monkeypatch.setenv("TEST_AMO_TOKEN", "x" * 20)
    source = SourceConfig(kind="amocrm", base_url="http://127.0.0.1:9", token_env="TEST_AMO_TOKEN",
                          store=str(tmp_path / "none"))
    with pytest.raises(DataError, match="crm-pulse sync"):
        load_crm(source)


@pytest.mark.parametrize("keys, problem", [
    ({"token_env": "T"}, "needs `base_url`"),
    ({"base_url": "https://a.amocrm.ru"}, "needs token_env"),
    ({"base_url": "https://a.amocrm.ru", "token_env": "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpX"}, "NAME of an environment"),
    ({"base_url": "https://a.amocrm.ru", "token_env": "T", "path": "x"}, "not used by kind"),
    ({"base_url": "https://a.amocrm.ru", "token_env": "T", "client_id_env": "C"}, "not both"),
])
def test_amocrm_source_config_errors(keys, problem):
    with pytest.raises(ValueError, match=problem):
        SourceConfig(kind="amocrm", **keys)


def test_api_keys_under_files_kind_are_flagged():
    with pytest.raises(ValueError, match="only for a CRM API source"):
        SourceConfig(path="x", base_url="https://a.amocrm.ru")


def test_a_sync_process_killed_mid_way_resumes_to_the_same_store(fake, tmp_path):
    """SIGKILL while page 2 of the leads is being served: nothing half-written is read, and the
    next sync ends with the store an uninterrupted sync gives."""

    whole = _source(fake, tmp_path / "whole")
    amocrm.sync(whole, None)
    killed = _source(fake, tmp_path / "killed")
    child = sync_in_child("amocrm", killed)

    sigkill_when(fake, child, lambda path, query: path == "leads" and query.get("page") == "2")
    amocrm.sync(killed, None)
    assert_same_store(tmp_path / "whole", tmp_path / "killed", "amocrm")


def test_a_new_refresh_token_in_the_environment_replaces_a_dead_stored_one(fake, tmp_path, monkeypatch):
    fake.long_lived = None
    source = _source(fake, tmp_path / "store", auth=_oauth_env(monkeypatch, fake))
    amocrm.sync(source, None)
    fake.refresh_tokens = {"refresh-reauthorised-777"}  # the admin authorised the integration again
    fake.expire_access()
    monkeypatch.setenv("TEST_AMO_REFRESH", "refresh-reauthorised-777")
    amocrm.sync(source, None)
    stored = TokenFile(tmp_path / "store" / amocrm.TOKEN_FILE).load()
    assert stored.refresh_token in fake.refresh_tokens


def test_a_dead_refresh_token_is_one_clear_error(fake, tmp_path, monkeypatch):
    from crm.errors import DataError

    fake.long_lived = None
    source = _source(fake, tmp_path / "store", auth=_oauth_env(monkeypatch, fake))
    fake.refresh_tokens = set()
    with pytest.raises(DataError, match="authorise the integration again"):
        amocrm.sync(source, None)


def test_a_lead_closed_without_any_status_event_starts_in_the_first_stage(fake, tmp_path):
    fake.put_lead({"id": 9000, "name": "Сразу успешно", "price": 1, "responsible_user_id": 1, "status_id": WON,
                   "pipeline_id": SALES, "created_at": T0, "updated_at": T0 + 60, "closed_at": T0 + 60})
    source = _source(fake, tmp_path / "store")
    amocrm.sync(source, None)
    data = load_crm(source).data
    deal = data.deals.set_index("deal_id").loc["9000"]
    assert deal.status == "won" and deal.stage == "Новая заявка"
    assert data.stage_history[data.stage_history.deal_id == "9000"].stage.tolist() == ["Новая заявка"]


def test_two_processes_sharing_the_token_file_do_not_burn_each_others_refresh_token(fake, tmp_path, monkeypatch):
    """`run` and a manual sync: the second to refresh finds the first one's new tokens in the
    file and uses them, instead of sending the refresh token amoCRM has already spent."""
    from crm.connectors import engine

    fake.long_lived = None
    source = _source(fake, tmp_path / "store", auth=_oauth_env(monkeypatch, fake))
    folder = tmp_path / "store"
    one = amocrm.AmoAuth(source, folder, engine.Throttle(100), engine.http_session(), None)
    two = amocrm.AmoAuth(source, folder, engine.Throttle(100), engine.http_session(), None)
    one.refresh()
    two.refresh()  # same (spent) refresh token in memory: takes the stored pair instead
    assert fake.issued == 1 and two.tokens == one.tokens
    fake.expire_access()
    two.tokens.expires_at = 0  # as after a 401
    two.refresh()
    assert fake.issued == 2 and TokenFile(folder / amocrm.TOKEN_FILE).load() == two.tokens


def test_sync_of_a_files_source_says_there_is_nothing_to_sync(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text('[source]\npath = "."\n', encoding="utf-8")
    assert cli_main(["sync", "--config", str(config)]) == 2
    assert "nothing to sync" in capsys.readouterr().err


def test_sync_without_a_config_file_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["sync"]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_contacts_companies_tasks_and_text_notes_deleted_in_amocrm_leave_the_store(fake, tmp_path):
    fake.companies[901] = {"id": 901, "name": "ТОО «Удалённая»", "responsible_user_id": 1, "updated_at": T0}
    fake.contacts[701] = {"id": 701, "name": "Удалённый контакт", "responsible_user_id": 1, "updated_at": T0}
    fake.notes.append({"id": 40_020, "entity_id": 20, "note_type": "common", "created_by": 1, "responsible_user_id": 1,
                       "created_at": T0 + DAY, "updated_at": T0 + DAY, "params": {"text": "перезвонить"}})
    source = _source(fake, tmp_path / "store")
    amocrm.sync(source, None)
    before = load_crm(source).data.activities.activity_id.tolist()
    assert {"task-30010", "note-40020", "note-10010"} <= set(before)

    later = max(r["updated_at"] for r in fake.leads.values()) + 60
    fake.delete_company(901, later)
    fake.delete_contact(701, later)
    fake.delete_task(30_010, later)
    fake.delete_note(40_020, later)
    fake.delete_note(10_010, later)  # a call note: amoCRM records no event for it
    report = amocrm.sync(source, None)

    asked = {q["filter[type]"] for q in fake.api_calls("events")}
    assert {"lead_deleted", "contact_deleted", "company_deleted", "task_deleted", "common_note_deleted"} <= asked
    assert report.deleted == 4
    store = store_tables(tmp_path / "store", "amocrm")
    assert 901 not in set(store["companies"].id) and 900 in set(store["companies"].id)
    assert 701 not in set(store["contacts"].id) and 700 in set(store["contacts"].id)
    after = set(load_crm(source).data.activities.activity_id)
    assert "task-30010" not in after and "note-40020" not in after
    assert "note-10010" in after  # cannot be detected: said in docs/connectors.md
    assert len(after) == len(before) - 2


INBOX, FIRST, TALKS_2, INCOMING_STATUS = 1500, 16, 17, 15


@pytest.fixture
def inbox(monkeypatch):
    """A pipeline that takes incoming leads ("Неразобранное" in front of its stages)."""
    server = FakeAmoCRM()
    server.add_pipeline(INBOX, "Входящие", [(FIRST, "Первичный контакт"), (TALKS_2, "Переговоры")],
                        incoming=(INCOMING_STATUS, "Неразобранное"))
    server.add_user(1, "Анна", "anna@example.kz")
    server.add_user(2, "Борис", "boris@example.kz")

    def lead(i: int, at: int, status: int = FIRST, user: int = 1, **extra) -> dict:
        return {"id": i, "name": f"Заявка {i}", "price": 0, "responsible_user_id": user, "status_id": status,
                "pipeline_id": INBOX, "created_at": at, "updated_at": at, "closed_at": None, **extra}

    server.add_unsorted("u1", lead(1, T0))  # still waiting
    server.add_unsorted("u2", lead(2, T0 + 100), category="chats", source_name="WhatsApp")
    server.accept_unsorted("u2", T0 + 1000, user_id=2, status_id=FIRST)
    server.outgoing("outgoing_chat_message", 2, T0 + 150, by=0)  # the Salesbot's greeting: no answer
    server.outgoing("outgoing_chat_message", 2, T0 + 2000, by=2)
    server.add_unsorted("u3", lead(3, T0 + 200))
    server.decline_unsorted("u3", T0 + 300)  # declined: amoCRM deletes the lead
    server.put_lead(lead(4, T0 + 400, custom_fields_values=[
        {"field_id": 9, "field_name": "Источник", "values": [{"value": "Звонок"}]}]))
    server.change_responsible(4, T0 + 500, 1, 2)
    server.notes.append({"id": 1, "entity_id": 4, "note_type": "call_out", "created_by": 2, "responsible_user_id": 2,
                         "created_at": T0 + 900, "updated_at": T0 + 900, "params": {"duration": 30}})
    server.put_lead(lead(5, T0 + 450, status=TALKS_2))  # created further down: not an incoming lead
    server.put_lead(lead(6, T0 + 600, status=TALKS_2, updated_at=T0 + 700))
    server.status_change(6, T0 + 700, (INBOX, FIRST), (INBOX, TALKS_2))
    server.tasks.append({"id": 1, "entity_id": 6, "entity_type": "leads", "task_type_id": 1, "responsible_user_id": 1,
                         "is_completed": True, "complete_till": T0 + 650, "created_at": T0 + 600, "updated_at": T0 + 650})
    monkeypatch.setenv("TEST_AMO_TOKEN", server.long_lived)
    with ThreadedServer(server) as running:
        yield running


def _ts(seconds: int) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def test_incoming_leads_waiting_accepted_and_declined_become_the_leads_table(inbox, tmp_path):
    source = _source(inbox, tmp_path / "store").model_copy(update={"pipelines": ["Входящие"]})
    amocrm.sync(source, None)
    assert inbox.api_calls("leads/unsorted")
    data = load_crm(source).data
    leads = data.leads.set_index("lead_id")
    assert sorted(leads.index) == ["1", "2", "4", "6"]  # 3 declined (deleted), 5 not created at the head

    waiting = leads.loc["1"]  # nobody took it yet: no manager, no assignment
    assert pd.isna(waiting.manager_id) and pd.isna(waiting.assigned_at) and pd.isna(waiting.first_response_at)
    assert waiting.status == "new" and waiting.created_at == _ts(T0) and waiting.source == "Форма на сайте"
    accepted = leads.loc["2"]  # accepted (before any sync saw it waiting) by Борис, answered in the chat
    assert accepted.manager_id == "2" and accepted.assigned_at == _ts(T0 + 1000)
    assert accepted.first_response_at == _ts(T0 + 2000) and pd.isna(accepted.source)
    handed = leads.loc["4"]  # created with Анна as owner, handed to Борис, who called
    assert handed.manager_id == "2" and handed.assigned_at == _ts(T0 + 500)
    assert handed.first_response_at == _ts(T0 + 900) and handed.source == "Звонок"
    moved = leads.loc["6"]
    assert moved.status == "converted" and moved.first_response_at == _ts(T0 + 650) and pd.isna(moved.assigned_at)

    # "Неразобранное" is not a stage, and a waiting lead is not a deal yet
    assert data.stages == ["Первичный контакт", "Переговоры"]
    assert sorted(data.deals.deal_id) == ["2", "4", "5", "6"]
    history = data.stage_history[data.stage_history.deal_id == "2"]
    assert list(zip(history.stage, history.entered_at)) == [("Первичный контакт", _ts(T0 + 1000))]

    inbox.accept_unsorted("u1", T0 + 5000, user_id=1, status_id=FIRST)
    amocrm.sync(source, None)
    assert not inbox.unsorted  # the inbox is empty; the store keeps what it saw (the source)
    data = load_crm(source).data
    taken = data.leads.set_index("lead_id").loc["1"]
    assert taken.manager_id == "1" and taken.assigned_at == _ts(T0 + 5000) and taken.status == "new"
    assert taken.source == "Форма на сайте"  # seen waiting by the first sync
    assert "1" in set(data.deals.deal_id)


def test_check_config_online_proves_the_crm_credentials(fake, tmp_path, monkeypatch, capsys):
    """`check-config --online` also asks the CRM (what `sync --check` does), after the data check."""
    config = _config_file(tmp_path, fake, 'token_env = "TEST_AMO_TOKEN"')
    assert cli_main(["sync", "--config", str(config)]) == 0
    capsys.readouterr()
    assert cli_main(["check-config", str(config), "--online"]) == 0
    out = capsys.readouterr().out
    assert "crm: amocrm credentials OK" in out and "1 of 2 pipeline(s) included (Продажи)" in out
    monkeypatch.setenv("TEST_AMO_TOKEN", "not-the-token-at-all-123")
    assert cli_main(["check-config", str(config), "--online"]) == 2
    printed = capsys.readouterr()
    assert "crm: FAILED: amocrm: amoCRM refused the credentials" in printed.out
    assert "not-the-token-at-all-123" not in printed.out + printed.err


# --- another amoCRM: what an equally documented server may do differently ----------------------

def _whole(source: SourceConfig) -> None:
    """Every lead, stage change and activity of the planted account reached the store."""
    data = load_crm(source).data
    assert len(data.deals) == N_LEADS and not data.stage_history_derived
    deals = data.deals.set_index("deal_id")
    assert deals.loc["5", "status"] == "won" and deals.loc["5", "stage"] == "Переговоры"
    assert (data.stage_history.deal_id == "5").sum() == 3
    assert set(data.activities.type) == {"call", "meeting"} and len(data.emails) == N_LEADS // 10


def test_next_links_naming_amocrms_own_host_are_followed_on_base_url(fake, tmp_path):
    """amoCRM writes its own address into `_links`; behind a proxy (or a test server) only
    base_url is reachable: the link's page number is sent there."""
    fake.link_host = "https://yourcompany.amocrm.ru"
    source = _source(fake, tmp_path / "store")
    amocrm.sync(source, None)
    _whole(source)


@pytest.mark.parametrize("empty_page", ["empty", "bare", "blank"])
def test_pages_without_next_links_and_every_form_of_an_empty_page(fake, tmp_path, empty_page):
    """No `_links.next`: a full page is followed by the next page number, until an empty page
    in any of its forms (200 with an empty `_embedded`, `{}`, no body)."""
    fake.next_links, fake.empty_page = False, empty_page
    source = _source(fake, tmp_path / "store")
    amocrm.sync(source, None)
    _whole(source)
    leads = [q for q in fake.api_calls("leads") if "only_deleted" not in q["with"]]
    assert [q.get("page", "1") for q in leads] == ["1", "2", "3"]  # the third page was not full


def test_a_server_that_pages_by_fewer_than_250(fake, tmp_path):
    fake.max_limit = 50  # its pages hold 50 whatever is asked; the next links say there is more
    source = _source(fake, tmp_path / "store")
    amocrm.sync(source, None)
    _whole(source)


def test_event_types_read_as_arrays_only(fake, tmp_path):
    """A server that reads `filter[type]` as an array (the docs allow a string or an array):
    one type a request means the same in both; a comma-joined list would name no type."""
    fake.type_filter = "array"
    source = _source(fake, tmp_path / "store")
    amocrm.sync(source, None)
    _whole(source)
    fake.delete_lead(7, max(r["updated_at"] for r in fake.leads.values()) + 60)
    fake.change_responsible(8, max(r["updated_at"] for r in fake.leads.values()) + 60, 1, 2)
    report = amocrm.sync(source, None)
    assert report.deleted == 1 and "7" not in set(load_crm(source).data.deals.deal_id)
    events = store_tables(tmp_path / "store", "amocrm")["lead_events"]
    assert events.type.tolist() == ["entity_responsible_changed"]


@pytest.mark.parametrize("style", ["events", "entity_deleted", "bin"])
def test_a_lead_deleted_in_any_documented_form_leaves_on_the_next_sync(fake, tmp_path, style):
    """`lead_deleted` events, an `entity_deleted` event (shared/crm_api/README.md), or only the
    recycle bin (`with=only_deleted`, is_deleted = true): sync, delete, sync, and it is gone."""
    fake.deletion_style = style
    source = _source(fake, tmp_path / "store")
    amocrm.sync(source, None)
    fake.delete_lead(5, max(r["updated_at"] for r in fake.leads.values()) + 60)
    report = amocrm.sync(source, None)
    assert report.deleted == 1
    data = load_crm(source).data
    assert "5" not in set(data.deals.deal_id) and "5" not in set(data.stage_history.deal_id)
    assert len(data.deals) == N_LEADS - 1


OPTIONAL_PARTS = [("leads/unsorted", "unsorted", "source comes only from the custom field"),
                  ("leads/notes", "notes", "stalled_deal counts no call or email"),
                  ("tasks", "tasks", "stalled_deal counts no meeting or done task"),
                  ("companies", "companies", "clients have no name"),
                  ("contacts", "contacts", "clients that are contacts have no name"),
                  ("account", "account", "deals get no currency"),
                  ("events", "status_events", "the stage history is derived")]


@pytest.mark.parametrize("path, part, says", OPTIONAL_PARTS)
def test_a_part_the_server_does_not_serve_is_skipped_and_said_once(fake, tmp_path, capsys, path, part, says):
    status = 404
    fake.unserved[path] = status
    config = _config_file(tmp_path, fake, 'token_env = "TEST_AMO_TOKEN"')
    assert cli_main(["sync", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if line.startswith("not synced:")]
    assert len([line for line in said if says in line]) == 1 and f"HTTP {status}" in out
    assert cli_main(["scan", "--config", str(config), "--format", "json"]) == 0  # the rest scans
    data = load_crm(SourceConfig(kind="amocrm", base_url=f"http://127.0.0.1:{fake.port}", token_env="TEST_AMO_TOKEN",
                                 store=str(tmp_path / "store"), pipelines=["Продажи"])).data
    assert len(data.deals) == N_LEADS
    if part == "notes":
        assert data.emails is None or data.emails.empty
    if part == "status_events":
        assert data.stage_history_derived
    else:
        assert not data.stage_history_derived and (data.stage_history.deal_id == "5").sum() == 3


def test_an_optional_part_that_keeps_failing_is_skipped_after_the_retries(fake, tmp_path):
    fake.unserved["tasks"] = 500
    source = _source(fake, tmp_path / "store")
    report = amocrm.sync(source, None, backoff=0.01)
    assert list(report.missing) == ["tasks"] and "HTTP 500" in report.missing["tasks"]
    assert len(fake.api_calls("tasks")) == 6  # retried as any 5xx, then given up for this sync
    data = load_crm(source).data
    assert set(data.activities.type) == {"call"} and len(data.deals) == N_LEADS


def test_every_event_type_the_server_refuses_is_skipped_alone(fake, tmp_path):
    """A server that answers 400 for event types it does not know: the others are still read."""
    real = fake._events

    def strict(query):
        if fake._listed(query, "filter[type]") == ["outgoing_sms"]:
            raise web.HTTPBadRequest(text='{"title": "Bad Request", "status": 400}', content_type="application/json")
        return real(query)

    fake._events = strict
    source = _source(fake, tmp_path / "store")
    report = amocrm.sync(source, None)
    assert list(report.missing) == ["outgoing_sms"] and "HTTP 400" in report.missing["outgoing_sms"]
    _whole(source)


@pytest.mark.parametrize("path", ["leads", "users", "leads/pipelines"])
def test_a_required_part_missing_is_one_clear_error(fake, tmp_path, capsys, path):
    fake.unserved[path] = 404
    config = _config_file(tmp_path, fake, 'token_env = "TEST_AMO_TOKEN"')
    assert cli_main(["sync", "--config", str(config)]) == 3
    err = capsys.readouterr().err
    assert "amoCRM answered with an error (404" in err and "Traceback" not in err


def test_a_deletion_event_stamped_before_the_records_last_update_still_deletes(fake, tmp_path):
    """A server whose event clock lags its records' clock (or planted data dated ahead of the
    event): sync, delete, sync still removes the lead; a lead restored afterwards (amoCRM
    returns it again, updated) stays."""
    source = _source(fake, tmp_path / "store")
    amocrm.sync(source, None)
    fake.deletion_clock = T0  # before every lead's updated_at
    fake.delete_lead(5, 0)
    assert amocrm.sync(source, None).deleted == 1
    assert "5" not in set(load_crm(source).data.deals.deal_id)
    for _ in range(2):  # the deletion is read again by the overlap: it does not delete the restored lead
        amocrm.sync(source, None)
    fake.recycle.pop(5)
    newest = max(r["updated_at"] for r in fake.leads.values()) + 60
    fake.put_lead({"id": 5, "name": "Сделка 5", "price": 5000, "responsible_user_id": 2, "status_id": NEW,
                   "pipeline_id": SALES, "created_at": T0 + 5 * 3600, "updated_at": newest, "closed_at": None})
    amocrm.sync(source, None)
    amocrm.sync(source, None)
    assert "5" in set(load_crm(source).data.deals.deal_id)


def test_a_token_endpoint_that_reads_only_forms_still_refreshes(fake, tmp_path, monkeypatch):
    fake.long_lived, fake.token_body = None, "form"
    source = _source(fake, tmp_path / "store", auth=_oauth_env(monkeypatch, fake))
    amocrm.sync(source, None)
    fake.expire_access()
    fake.leads[2].update(updated_at=fake.leads[2]["updated_at"] + 100 * DAY, price=5)
    amocrm.sync(source, None)
    assert fake.issued == 2 and fake.unauthorized >= 1
    stored = TokenFile(tmp_path / "store" / amocrm.TOKEN_FILE).load()
    assert stored is not None and stored.refresh_token in fake.refresh_tokens
    assert load_crm(source).data.deals.set_index("deal_id").loc["2", "amount"] == 5


def test_every_pipeline_synced_each_deal_names_its_pipeline_and_the_load_says_they_are_pooled(monkeypatch, tmp_path):
    """`[source] pipelines` left empty (the default) syncs every pipeline: each deal names its
    own, and the load says they are judged as one funnel; one kept (by name as typed, or by id)
    is said nothing."""
    server = FakeAmoCRM()
    _account(server, n=12)
    monkeypatch.setenv("TEST_AMO_TOKEN", server.long_lived)
    with ThreadedServer(server) as running:
        source = _source(running, tmp_path / "store").model_copy(update={"pipelines": []})
        amocrm.sync(source, None)
    assert_pipelines_pooled_then_kept(source, service="Сервис", sales="Продажи",
                                      said=("deals come from 2 pipelines (Продажи: 12; Сервис: 1)",),
                                      kept=((["продажи "], "Продажи"), ([OTHER], "Сервис")),
                                      crm="amoCRM", typo="Продажы", close="Продажи")
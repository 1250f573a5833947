"""PostgreSQL as the synced store (`[source] store_url_env`): each CRM synced through its fake
server into PostgreSQL gives the same store and the same CrmData as the default DuckDB file,
after a first sync, an incremental one with changes and deletions, and an interrupted one; a
bad URL is one clear error without the password; check-config says which store is used.

Every test syncs into a schema of its own in the `test` database at 127.0.0.1:5432 and drops
it afterwards; without that server the tests are skipped, saying so."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from bot.cli import main as cli_main
from crm.connectors import amocrm, bitrix24, engine, hubspot, pipedrive
from crm.errors import DataError
from crm.load import load_crm
from crm.source_config import SourceConfig
from tests.fakes.postgres import pg_reachable
from tests.fakes.store import assert_same_store, dies_at, sigkill_when, store_tables, sync_in_child

pytestmark = pytest.mark.postgres

PASSWORD = "pgStore-s3cret-0451"  # the server trusts 127.0.0.1 and ignores it: it must never be shown
PG_URL = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/test"
URL_ENV = "TEST_CRM_STORE_URL"




@pytest.fixture
def pg(monkeypatch):
    """A schema name of this test's own in PostgreSQL (dropped afterwards, with dlt's
    `<schema>_staging`), the URL in the env."""
    if not pg_reachable():
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432 (start it to run the PostgreSQL store tests)")
    import psycopg

    schema = f"crm_t{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv(URL_ENV, PG_URL)
    yield schema
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as con:
        for name in (schema, f"{schema}_staging"):  # dlt merges through a staging schema beside it
            con.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def _in_pg(source: SourceConfig, store: Path, schema: str) -> SourceConfig:
    """The same source, synced into PostgreSQL (store keeps only dlt's working folder)."""
    return source.model_copy(update={"store": str(store), "store_url_env": URL_ENV, "store_schema": schema})


def _pg_store(source: SourceConfig) -> engine.Store:
    return engine.open_store(source, None)


def assert_same_data(duck: SourceConfig, pg: SourceConfig, **kw) -> None:
    """crm.load gives the same canonical tables (and stages) from both stores."""
    a, b = load_crm(duck, **kw), load_crm(pg, **kw)
    assert a.data.table_names() == b.data.table_names()
    assert a.data.stages == b.data.stages
    for name in a.data.table_names():
        pd.testing.assert_frame_equal(a.data.table(name), b.data.table(name), obj=name)
    assert len(a.warnings) == len(b.warnings)
    assert any("PostgreSQL postgresql://postgres:***@127.0.0.1:5432/test" in o for o in b.data.origins.values())


# --- the demo company, amoCRM and Bitrix24 --------------------------------------------------------

@pytest.mark.slow
def test_amocrm_demo_company_in_postgresql_is_the_duckdb_store_through_changes_and_deletions(pg, tmp_path, monkeypatch):
    from crm.demo import generate_demo
    from tests.fakes.amocrm_demo import REGION_FIELD, SEGMENT_FIELD, SOURCE_FIELD, load_into
    from tests.fakes.amocrm_server import FakeAmoCRM, ThreadedServer

    demo = generate_demo()
    fake = FakeAmoCRM()
    ids = load_into(fake, demo.data)
    monkeypatch.setenv("DEMO_AMO_TOKEN", fake.long_lived)
    with ThreadedServer(fake) as running:
        duck = SourceConfig(kind="amocrm", base_url=f"http://127.0.0.1:{running.port}", token_env="DEMO_AMO_TOKEN",
                            store=str(tmp_path / "duck"), requests_per_second=100,
                            custom_fields={"deals": {"source": SOURCE_FIELD, "region": REGION_FIELD},
                                           "clients": {"region": REGION_FIELD, "segment": SEGMENT_FIELD}})
        in_pg = _in_pg(duck, tmp_path / "pg", pg)
        first = amocrm.sync(in_pg, None)
        amocrm.sync(duck, None)
        assert first.rows["leads"] == len(fake.leads) and not (tmp_path / "pg" / "crm.duckdb").exists()
        assert_same_store(tmp_path / "duck", _pg_store(in_pg), "amocrm")
        assert_same_data(duck, in_pg, timezone="Asia/Almaty", now=demo.now)

        # a won deal's amount changes, a deal and a company are deleted in amoCRM
        later = max(r["updated_at"] for r in fake.leads.values()) + 60
        changed, gone = ids.deals[demo.data.deals.deal_id.iloc[0]], ids.deals[demo.data.deals.deal_id.iloc[1]]
        fake.leads[changed].update(price=123_456, updated_at=later)
        fake.delete_lead(gone, later)
        company = next(iter(fake.companies))
        fake.delete_company(company, later)
        fake.calls.clear()
        again = amocrm.sync(in_pg, None)
        assert again.deleted == 2 and again.rows["leads"] < 10
        assert all("filter[updated_at][from]" in q for q in fake.api_calls("leads")  # incremental
                   if "only_deleted" not in q.get("with", ""))  # (the recycle bin is read whole)
        amocrm.sync(duck, None)
    assert_same_store(tmp_path / "duck", _pg_store(in_pg), "amocrm")
    assert_same_data(duck, in_pg, timezone="Asia/Almaty", now=demo.now)
    deals = load_crm(in_pg).data.deals.set_index("deal_id")
    assert deals.loc[str(changed), "amount"] == 123_456 and str(gone) not in deals.index
    assert str(company) not in set(load_crm(in_pg).data.clients.client_id)


@pytest.mark.slow
def test_bitrix24_demo_company_in_postgresql_is_the_duckdb_store_through_changes_and_deletions(pg, tmp_path, monkeypatch):
    """Bitrix24 finds deletions by comparing ID lists in one transaction on the store: the same
    SQL runs on PostgreSQL."""
    from crm.demo import generate_demo
    from tests.fakes.amocrm_server import ThreadedServer
    from tests.fakes.bitrix24_demo import LOSS_FIELD, REGION_FIELD, SEGMENT_FIELD, load_into
    from tests.fakes.bitrix24_server import FakeBitrix24

    demo = generate_demo()
    fake = FakeBitrix24()
    ids = load_into(fake, demo.data)
    with ThreadedServer(fake) as running:
        monkeypatch.setenv("DEMO_BX_WEBHOOK", running.webhook)
        duck = SourceConfig(kind="bitrix24", webhook_env="DEMO_BX_WEBHOOK", store=str(tmp_path / "duck"),
                            requests_per_second=100,
                            custom_fields={"deals": {"region": REGION_FIELD, "loss_reason": LOSS_FIELD},
                                           "clients": {"region": REGION_FIELD, "segment": SEGMENT_FIELD},
                                           "leads": {"region": REGION_FIELD}})
        in_pg = _in_pg(duck, tmp_path / "pg", pg)
        now = time.time()
        bitrix24.sync(in_pg, None, now=now)
        bitrix24.sync(duck, None, now=now)
        assert_same_store(tmp_path / "duck", _pg_store(in_pg), "bitrix24")
        assert_same_data(duck, in_pg, timezone="Europe/Moscow", now=demo.now)

        gone = ids.deals[demo.data.deals.deal_id.iloc[1]]
        del fake.deals[gone]
        report = bitrix24.sync(in_pg, None, now=now + 60)
        assert report.deleted == 1
        bitrix24.sync(duck, None, now=now + 60)
    assert_same_store(tmp_path / "duck", _pg_store(in_pg), "bitrix24")
    assert_same_data(duck, in_pg, timezone="Europe/Moscow", now=demo.now)
    assert str(gone) not in set(load_crm(in_pg).data.deals.deal_id)
    checks = store_tables(_pg_store(in_pg), "bitrix24")["deletion_checks"]
    assert checks.checked_at.tolist() == [now + 60]  # written in the deletions' transaction


# --- HubSpot and Pipedrive: their post-load SQL on PostgreSQL ------------------------------------

def test_hubspot_archived_deals_leave_the_postgresql_store_as_they_leave_duckdb(pg, tmp_path, monkeypatch):
    from tests.crm.test_hubspot_sync import T0, DAY, _account, _source
    from tests.fakes.hubspot_server import FakeHubSpot
    from tests.fakes.amocrm_server import ThreadedServer

    server = FakeHubSpot()
    _account(server)
    monkeypatch.setenv("TEST_HUBSPOT_TOKEN", server.token)
    monkeypatch.setattr(hubspot, "SEARCH_PER_SECOND", 100.0)
    with ThreadedServer(server) as fake:
        duck = _source(fake, tmp_path / "duck")
        in_pg = _in_pg(duck, tmp_path / "pg", pg)
        hubspot.sync(in_pg, None)
        hubspot.sync(duck, None)
        for deal in ("5", "6"):
            fake.archive("deals", deal, T0 + 500 * DAY)
        assert hubspot.sync(in_pg, None).deleted == 2
        hubspot.sync(duck, None)
    assert_same_store(tmp_path / "duck", _pg_store(in_pg), "hubspot")
    assert_same_data(duck, in_pg)
    assert not {"5", "6"} & set(load_crm(in_pg).data.deals.deal_id)


@pytest.mark.slow
def test_pipedrive_batches_and_deletions_work_on_the_postgresql_store(pg, tmp_path, monkeypatch):
    """Pipedrive reads its own store between batches (the next deals to fetch flows for) and
    counts the deal ids before and after: both against PostgreSQL here."""
    from tests.crm.test_pipedrive_sync import DAY, _company, _source
    from tests.fakes.amocrm_server import ThreadedServer
    from tests.fakes.pipedrive_server import FakePipedrive

    server = FakePipedrive()
    _company(server)
    monkeypatch.setenv("TEST_PD_TOKEN", server.token)
    with ThreadedServer(server) as fake:
        duck = _source(fake, tmp_path / "duck")
        in_pg = _in_pg(duck, tmp_path / "pg", pg)
        pipedrive.sync(in_pg, None)
        pipedrive.sync(duck, None)
        at = max(pipedrive.unix(d["update_time"]) for d in fake.deals.values()) + 60
        fake.now = at + DAY
        fake.delete_deal(5, at)
        assert pipedrive.sync(in_pg, None).deleted == 1
        pipedrive.sync(duck, None)
    assert_same_store(tmp_path / "duck", _pg_store(in_pg), "pipedrive")
    assert_same_data(duck, in_pg)
    assert "5" not in set(load_crm(in_pg).data.deals.deal_id)


def test_every_pipeline_synced_into_postgresql_names_each_deal_s_pipeline_as_duckdb_does(pg, tmp_path, monkeypatch):
    """Bitrix24 with `[source] pipelines` left empty: the deals' pipeline names, and the load's
    several_pipelines warning, come the same from PostgreSQL as from the DuckDB file."""
    from tests.crm.test_bitrix24_sync import _portal, _source
    from tests.fakes.amocrm_server import ThreadedServer
    from tests.fakes.bitrix24_server import FakeBitrix24

    server = FakeBitrix24()
    _portal(server, n=12)
    with ThreadedServer(server) as fake:
        monkeypatch.setenv("TEST_BX_WEBHOOK", fake.webhook)
        duck = _source(tmp_path / "duck").model_copy(update={"pipelines": []})
        in_pg = _in_pg(duck, tmp_path / "pg", pg)
        bitrix24.sync(in_pg, None)
        bitrix24.sync(duck, None)
    assert_same_data(duck, in_pg)
    result = load_crm(in_pg)
    assert result.data.deals.pipeline.value_counts().to_dict() == {"Продажи": 12, "Сервис": 1}
    assert "several_pipelines" in {w.code for w in result.warnings}


# --- an interrupted sync ---------------------------------------------------------------------------

@pytest.fixture
def small_amo(monkeypatch):
    from tests.crm.test_amocrm_sync import _account
    from tests.fakes.amocrm_server import FakeAmoCRM, ThreadedServer

    server = FakeAmoCRM()
    _account(server)
    monkeypatch.setenv("TEST_AMO_TOKEN", server.long_lived)
    with ThreadedServer(server) as running:
        yield running


def test_a_sync_into_postgresql_that_fails_mid_way_resumes_to_the_same_store(pg, small_amo, tmp_path, monkeypatch):
    """The cursors live in PostgreSQL with the rows: a sync that dies in page 2 of the leads
    commits neither, and the next one ends with the store an uninterrupted sync gives."""
    from tests.crm.test_amocrm_sync import _source

    whole = _source(small_amo, tmp_path / "whole")
    amocrm.sync(whole, None)
    broken = _in_pg(_source(small_amo, tmp_path / "broken"), tmp_path / "broken", pg)
    real = amocrm.lead_row
    monkeypatch.setattr(amocrm, "lead_row", dies_at(real, 300, "page 2"))
    with pytest.raises(RuntimeError, match="killed"):
        amocrm.sync(broken, None)
    monkeypatch.setattr(amocrm, "lead_row", real)
    amocrm.sync(broken, None)
    assert_same_store(tmp_path / "whole", _pg_store(broken), "amocrm")
    assert_same_data(whole, broken)


def test_a_sync_process_killed_mid_way_resumes_to_the_same_postgresql_store(pg, small_amo, tmp_path):
    """SIGKILL while page 2 of the leads is served, after the reference data was extracted."""
    from tests.crm.test_amocrm_sync import _source

    whole = _source(small_amo, tmp_path / "whole")
    amocrm.sync(whole, None)
    killed = _in_pg(_source(small_amo, tmp_path / "killed"), tmp_path / "killed", pg)
    child = sync_in_child("amocrm", killed)

    sigkill_when(small_amo, child, lambda path, query: path == "leads" and query.get("page") == "2")
    amocrm.sync(killed, None)
    assert_same_store(tmp_path / "whole", _pg_store(killed), "amocrm")


# --- errors and config -----------------------------------------------------------------------------

def _amo(store: Path, **kw) -> SourceConfig:
    return SourceConfig(kind="amocrm", base_url="http://127.0.0.1:9", token_env="TEST_AMO_TOKEN",
                        store=str(store), store_url_env=URL_ENV, **kw)


@pytest.mark.parametrize("url, said", [
    (None, f"environment variable {URL_ENV} (named in [source] store_url_env) is not set"),
    (f"mysql://crm:{PASSWORD}@db.local/crm", "is not a PostgreSQL URL (scheme 'mysql')"),
    (f"postgresql://crm:{PASSWORD}@db.local", "has no database name"),
    (f"postgresql://crm:{PASSWORD}@db.local:port/crm", "is not a valid URL"),
    (f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test", "cannot connect to the PostgreSQL store "
                                                         "postgresql://postgres:***@127.0.0.1:1/test"),
    (f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/no_such_db_crm_pulse", 'database "no_such_db_crm_pulse" does not exist'),
])
def test_a_bad_store_url_is_one_clear_error_without_the_password(url, said, tmp_path, monkeypatch, capsys):
    if url is None:
        monkeypatch.delenv(URL_ENV, raising=False)
    else:
        monkeypatch.setenv(URL_ENV, url)
    if "127.0.0.1:5432" in (url or "") and not pg_reachable():
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432")
    source = _amo(tmp_path / "store")
    monkeypatch.setenv("TEST_AMO_TOKEN", "long-lived-token-0123456789")
    for attempt in (lambda: amocrm.sync(source, None), lambda: load_crm(source)):
        with pytest.raises(DataError) as err:
            attempt()
        text = str(err.value)
        assert said in text and PASSWORD not in text and "store_url_env" in text
    config = tmp_path / "config.toml"
    config.write_text(f'[source]\nkind = "amocrm"\nbase_url = "http://127.0.0.1:9"\ntoken_env = "TEST_AMO_TOKEN"\n'
                      f'store_url_env = "{URL_ENV}"\n', encoding="utf-8")
    assert cli_main(["sync", "--config", str(config)]) == 3
    printed = capsys.readouterr()
    assert said in printed.err and PASSWORD not in printed.out + printed.err and "Traceback" not in printed.err


@pytest.mark.parametrize("keys, problem", [
    ({"store_schema": "crm"}, "store_schema: only for a PostgreSQL store"),
    ({"store_url_env": "CRM_STORE", "store_schema": "Sales CRM"}, "not a schema name"),
    ({"store_url_env": f"postgresql://crm:{PASSWORD}@db/crm"}, "store_url_env: must be the NAME"),
])
def test_store_keys_are_checked(keys, problem):
    from bot.config import ConfigError, parse_config

    toml = '[source]\nkind = "amocrm"\nbase_url = "https://a.amocrm.ru"\ntoken_env = "T"\n'
    with pytest.raises(ConfigError) as err:
        parse_config(toml + "".join(f'{k} = "{v}"\n' for k, v in keys.items()), source_name="config.toml")
    text = str(err.value)
    assert problem in text and "config.toml" in text and PASSWORD not in text


def test_store_keys_under_a_files_source_are_flagged():
    with pytest.raises(ValueError, match="store_url_env: only for a CRM API source"):
        SourceConfig(kind="files", path="export", store_url_env="CRM_STORE")


def test_check_config_says_which_store_is_used_without_the_password(pg, small_amo, tmp_path, capsys, caplog):
    """...and no log line of a sync into PostgreSQL (dlt's, SQLAlchemy's, ours; at DEBUG) holds it."""
    import logging

    caplog.set_level(logging.DEBUG)
    config = tmp_path / "config.toml"
    body = (f'language = "en"\n[source]\nkind = "amocrm"\nbase_url = "http://127.0.0.1:{small_amo.port}"\n'
            'token_env = "TEST_AMO_TOKEN"\nstore = "store"\nrequests_per_second = 100\n')
    config.write_text(body, encoding="utf-8")
    assert cli_main(["sync", "--config", str(config)]) == 0
    assert cli_main(["check-config", str(config)]) == 0
    assert f"store: DuckDB file {tmp_path / 'store' / 'crm.duckdb'}" in capsys.readouterr().out

    config.write_text(body + f'store_url_env = "{URL_ENV}"\nstore_schema = "{pg}"\n', encoding="utf-8")
    assert cli_main(["sync", "--config", str(config)]) == 0
    assert cli_main(["check-config", str(config)]) == 0
    printed = capsys.readouterr()
    assert (f"store: PostgreSQL postgresql://postgres:***@127.0.0.1:5432/test schema {pg} "
            f"(URL from ${URL_ENV})") in printed.out
    assert "deals" in printed.out and PASSWORD not in printed.out + printed.err
    assert len(caplog.records) > 20 and PASSWORD not in caplog.text


def test_a_dropped_schema_means_a_full_sync_not_a_cursor_past_missing_rows(pg, small_amo, tmp_path):
    """The cursors live in the schema: the local working copy of a schema that is gone is
    wiped, so the next sync takes everything again instead of only what changed."""
    import psycopg

    from tests.crm.test_amocrm_sync import N_LEADS, _source

    source = _in_pg(_source(small_amo, tmp_path / "store"), tmp_path / "store", pg)
    amocrm.sync(source, None)
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as con:
        con.execute(f"DROP SCHEMA {pg} CASCADE")
    with pytest.raises(DataError, match="no synced CRM data in PostgreSQL"):
        load_crm(source)
    small_amo.calls.clear()
    assert amocrm.sync(source, None).rows["leads"] == N_LEADS + 1
    assert not any("filter[updated_at][from]" in q for q in small_amo.api_calls("leads"))
    assert len(load_crm(source).data.deals) == N_LEADS


def test_a_lead_that_comes_back_deleted_is_removed_by_the_merge_in_postgresql(pg, small_amo, tmp_path):
    """dlt's hard-delete hint (is_deleted) works through the PostgreSQL destination's merge too."""
    from tests.crm.test_amocrm_sync import _source

    source = _in_pg(_source(small_amo, tmp_path / "store"), tmp_path / "store", pg)
    amocrm.sync(source, None)
    assert "7" in set(load_crm(source).data.deals.deal_id)
    small_amo.leads[7].update(is_deleted=True, updated_at=max(r["updated_at"] for r in small_amo.leads.values()) + 60)
    amocrm.sync(source, None)
    assert "7" not in set(load_crm(source).data.deals.deal_id)
    assert 7 not in set(store_tables(_pg_store(source), "amocrm")["leads"].id)


def test_the_cursors_come_back_from_postgresql_when_the_local_working_folder_is_lost(pg, small_amo, tmp_path):
    """dlt keeps the state in the schema with the rows: a host whose `.dlt/` folder is gone (a
    new container) goes on incrementally from the cursors in PostgreSQL."""
    import shutil

    from tests.crm.test_amocrm_sync import DAY, N_LEADS, _source

    source = _in_pg(_source(small_amo, tmp_path / "store", overlap_minutes=5), tmp_path / "store", pg)
    amocrm.sync(source, None)
    shutil.rmtree(tmp_path / "store" / ".dlt")
    newest = max(r["updated_at"] for r in small_amo.leads.values())
    small_amo.leads[1].update(price=777, updated_at=newest + DAY)
    small_amo.calls.clear()
    report = amocrm.sync(source, None)
    calls = [q for q in small_amo.api_calls("leads") if "only_deleted" not in q.get("with", "")]  # not the recycle bin
    assert len(calls) == 1 and int(calls[0]["filter[updated_at][from]"]) == newest - 5 * 60
    assert report.rows["leads"] < 5
    deals = load_crm(source).data.deals.set_index("deal_id")
    assert len(deals) == N_LEADS and deals.loc["1", "amount"] == 777

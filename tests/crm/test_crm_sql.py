"""The SQL source against SQLite and the real PostgreSQL server (skipped if unreachable)."""
from __future__ import annotations

import uuid

import pandas as pd
import pytest
import sqlalchemy as sa

from crm.errors import DataError
from crm.load import load_crm
from crm.source_config import SourceConfig
from tests.fakes.postgres import pg_reachable

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"




def _fill(engine, schema: str | None = None) -> None:
    """A CRM database with its own names: users, leads-as-deals, a stage log."""
    with engine.begin() as conn:
        pd.DataFrame({"user_id": [1, 2], "full_name": ["Анна", "Boris"]}).to_sql(
            "users", conn, schema=schema, index=False)
        pd.DataFrame({
            "id": [10, 11, 12], "responsible_user_id": [1, 2, 1],
            "pipeline_stage": ["КП", "КП", "Квалификация"],
            "state": ["Успешно реализовано", "Закрыто и не реализовано", "В работе"],
            "created": ["2026-03-02 10:00:00", "2026-03-03 11:00:00", "2026-03-04 12:00:00"],
            "price": [1000.5, 200.0, None],
        }).to_sql("crm_deals", conn, schema=schema, index=False)
        pd.DataFrame({
            "lead_id": [10, 10, 11, 11, 12],
            "status_name": ["Квалификация", "КП", "Квалификация", "КП", "Квалификация"],
            "ts": [1772445600, 1772532000, 1772535600, 1772622000, 1772625600],
        }).to_sql("stage_log", conn, schema=schema, index=False)


def _source(**kwargs) -> SourceConfig:
    return SourceConfig(
        kind="sql",
        columns={
            "managers": {"manager_id": "user_id", "name": "full_name"},
            "deals": {"deal_id": "id", "manager_id": "responsible_user_id",
                      "stage": "pipeline_stage", "status": "state", "created_at": "created",
                      "amount": "price"},
            "stage_history": {"deal_id": "lead_id", "stage": "status_name", "entered_at": "ts"},
        },
        values={"deals": {"status": {"Успешно реализовано": "won",
                                     "Закрыто и не реализовано": "lost", "В работе": "open"}}},
        **kwargs,
    )


def _check(result) -> None:
    data = result.data
    assert data.managers["manager_id"].tolist() == ["1", "2"]
    deals = data.deals.set_index("deal_id")
    assert deals["status"].to_dict() == {"10": "won", "11": "lost", "12": "open"}
    assert deals.loc["10", "amount"] == pytest.approx(1000.5)
    # naive database times are Almaty wall-clock
    assert deals.loc["10", "created_at"] == pd.Timestamp("2026-03-02 05:00", tz="UTC")
    assert data.stages == ["Квалификация", "КП"]
    assert len(data.stage_history) == 5 and not data.stage_history_derived
    assert result.warnings == []


def test_sqlite_with_table_names_and_a_select(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    _fill(engine)
    engine.dispose()
    source = _source(url=url, tables={
        "managers": "users",
        "deals": "SELECT * FROM crm_deals WHERE price IS NULL OR price >= 0",
        "stage_history": "stage_log",
    })
    result = load_crm(source, timezone="Asia/Almaty")
    _check(result)
    assert result.data.origins["deals"].endswith("query for deals")
    # a database is read live: complete up to the read (lead_sla judges its leads at now)
    assert result.data.live


def test_relative_sqlite_path_is_relative_to_the_config_file(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    _fill(engine)
    engine.dispose()
    source = _source(url="sqlite:///crm.db", tables={
        "managers": "users", "deals": "crm_deals", "stage_history": "stage_log"})
    _check(load_crm(source, timezone="Asia/Almaty", base_dir=tmp_path))


def test_sql_errors_are_clear_and_hide_the_password(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    _fill(engine)
    engine.dispose()
    with pytest.raises(DataError) as err:
        load_crm(_source(url=url, tables={"managers": "users", "deals": "crm_dealz"}))
    assert "table crm_dealz" in str(err.value) and "[source.tables] deals" in str(err.value)

    monkeypatch.delenv("CRM_TEST_DB_URL", raising=False)
    with pytest.raises(DataError, match="environment variable CRM_TEST_DB_URL is not set"):
        load_crm(_source(url_env="CRM_TEST_DB_URL", tables={"deals": "d"}))

    monkeypatch.setenv("CRM_TEST_DB_URL", "postgresql+psycopg://crm:s3cret@127.0.0.1:1/none")
    with pytest.raises(DataError) as err:
        load_crm(_source(url_env="CRM_TEST_DB_URL", tables={"deals": "d"}))
    assert "cannot connect" in str(err.value) and "s3cret" not in str(err.value)


def test_sql_source_without_required_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    _fill(engine)
    engine.dispose()
    with pytest.raises(DataError, match=r"no deals table in \[source.tables\]"):
        load_crm(_source(url=url, tables={"managers": "users"}))


@pytest.mark.postgres
@pytest.mark.skipif(not pg_reachable(), reason="no PostgreSQL at 127.0.0.1:5432")
def test_postgresql_with_schema_qualified_tables_and_timestamptz(monkeypatch):
    schema = f"crm_data_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        _fill(engine, schema)
        with engine.begin() as conn:
            conn.execute(sa.text(f'ALTER TABLE "{schema}".crm_deals ADD COLUMN closed timestamptz'))
            conn.execute(sa.text(f"UPDATE \"{schema}\".crm_deals SET closed = "
                                 "'2026-03-09 12:00:00+03' WHERE id = 10"))
            conn.execute(sa.text(f'ALTER TABLE "{schema}".crm_deals ALTER COLUMN price '
                                 "TYPE numeric(12, 2)"))
        monkeypatch.setenv("CRM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
        source = _source(url_env="CRM_TEST_PG_URL", tables={
            "managers": f"{schema}.users",
            "deals": f'SELECT * FROM "{schema}".crm_deals ORDER BY id',
            "stage_history": f"{schema}.stage_log",
        })
        source.columns["deals"]["closed_at"] = "closed"
        result = load_crm(source, timezone="Asia/Almaty")
        _check(result)
        closed = result.data.deals.set_index("deal_id")["closed_at"]
        assert closed["10"] == pd.Timestamp("2026-03-09 09:00", tz="UTC")
        assert pd.isna(closed["11"])
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


# --- issue 11 item 7: the SQL source can never write to the CRM database ----------------------

from crm.sql import one_statement  # noqa: E402

WRITES = [
    "WITH x AS (SELECT 1) DELETE FROM users",
    "WITH gone AS (DELETE FROM users RETURNING *) SELECT * FROM gone",
    "WITH x AS (SELECT 1) UPDATE users SET full_name = 'pwned'",
    "WITH x AS (SELECT 1) INSERT INTO users (user_id, full_name) VALUES (99, 'pwned')",
]


def _users(engine, schema: str | None = None) -> list:
    name = f'"{schema}".users' if schema else "users"
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT user_id, full_name FROM {name} ORDER BY user_id")).fetchall()


@pytest.mark.parametrize("query", WRITES)
def test_sqlite_source_cannot_write(tmp_path, query):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    _fill(engine)
    before = _users(engine)
    with pytest.raises(DataError, match="the database refused the query for managers"):
        load_crm(_source(url=url, tables={"managers": query, "deals": "crm_deals",
                                          "stage_history": "stage_log"}))
    assert _users(engine) == before
    engine.dispose()


@pytest.mark.parametrize("query", [
    "SELECT * FROM users; DELETE FROM users",
    "SELECT * FROM users; COMMIT; DELETE FROM users",
    "SELECT * FROM users;\n-- a comment\nDROP TABLE users",
])
def test_more_than_one_statement_is_refused_before_anything_runs(tmp_path, query):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    _fill(engine)
    with pytest.raises(DataError, match=r"\[source.tables\] managers holds more than one SQL statement"):
        load_crm(_source(url=url, tables={"managers": query, "deals": "crm_deals",
                                          "stage_history": "stage_log"}))
    assert len(_users(engine)) == 2
    engine.dispose()


@pytest.mark.parametrize(("sql", "one"), [
    ("SELECT 1", True), ("SELECT 1;", True), ("SELECT 1 ; -- done\n", True),
    ("SELECT ';' AS a, \"x;y\" FROM t", True), ("SELECT 'it''s; fine'", True),
    ("SELECT $$a;b$$, $tag$ ; $tag$", True), ("SELECT 1 /* ; */", True),
    ("SELECT 1; SELECT 2", False), ("SELECT 1;DELETE FROM t", False), ("SELECT 1; /* x */ COMMIT", False),
    ("SELECT 'a'';' ; DROP TABLE t", False),
])
def test_one_statement(sql, one):
    assert one_statement(sql) is one


def test_sqlite_read_leaves_the_file_untouched_and_still_loads(tmp_path):
    path = tmp_path / "crm.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    _fill(engine)
    engine.dispose()
    before = path.read_bytes()
    source = _source(url=f"sqlite:///{path}", tables={
        "managers": "users", "deals": "crm_deals", "stage_history": "stage_log"})
    _check(load_crm(source, timezone="Asia/Almaty"))
    assert path.read_bytes() == before
    assert not (tmp_path / "crm.db-journal").exists() and not (tmp_path / "crm.db-wal").exists()


@pytest.mark.postgres
@pytest.mark.skipif(not pg_reachable(), reason="no PostgreSQL at 127.0.0.1:5432")
@pytest.mark.parametrize("query", [*WRITES, "SELECT * FROM {s}.users WHERE nextval('{s}.seq') > 0",
                                   "SELECT set_config('default_transaction_read_only', 'off', false), * "
                                   "FROM {s}.users"])
def test_postgresql_source_cannot_write(monkeypatch, query):
    schema = f"crm_ro_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(sa.text(f'CREATE SEQUENCE "{schema}".seq'))
    try:
        _fill(engine, schema)
        before = _users(engine, schema)
        monkeypatch.setenv("CRM_TEST_PG_URL", PG_URL)
        sql = query.replace("FROM users", f'FROM "{schema}".users').replace(
            "UPDATE users", f'UPDATE "{schema}".users').replace(
            "INTO users", f'INTO "{schema}".users').replace("{s}", f'"{schema}"')
        source = _source(url_env="CRM_TEST_PG_URL", tables={
            "managers": sql, "deals": f"{schema}.crm_deals", "stage_history": f"{schema}.stage_log"})
        try:
            load_crm(source, timezone="Asia/Almaty")
        except DataError as err:
            assert "refused" in str(err)
        assert _users(engine, schema) == before
        with engine.connect() as conn:  # the sequence was not advanced either
            assert conn.execute(sa.text(f'SELECT last_value, is_called FROM "{schema}".seq')).one() == (1, False)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.mark.parametrize(("column", "value"), [
    ("created", "0001-01-01 00:00:00"), ("created", "9999-12-31 23:59:59"), ("created", "now"),
    ("price", 1e308), ("price", float("inf")), ("price", float("-inf")),
])
def test_hostile_database_values_are_a_data_error_naming_the_record(tmp_path, column, value):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    _fill(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE crm_deals SET {column} = :v WHERE id = 11"), {"v": value})
    engine.dispose()
    with pytest.raises(DataError) as err:
        load_crm(_source(url=url, tables={"managers": "users", "deals": "SELECT * FROM crm_deals ORDER BY id",
                                          "stage_history": "stage_log"}))
    assert (err.value.row, err.value.row_kind, err.value.column) == (2, "record", column)


@pytest.mark.postgres
@pytest.mark.skipif(not pg_reachable(), reason="no PostgreSQL at 127.0.0.1:5432")
@pytest.mark.parametrize("value", ["0001-01-01 00:00:00+00", "9999-12-31 00:00:00+00", "infinity", "-infinity"])
def test_postgresql_timestamps_outside_the_range_are_a_data_error(monkeypatch, value):
    schema = f"crm_ts_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        _fill(engine, schema)
        with engine.begin() as conn:
            conn.execute(sa.text(f'ALTER TABLE "{schema}".crm_deals ADD COLUMN closed timestamptz'))
            conn.execute(sa.text(f"UPDATE \"{schema}\".crm_deals SET closed = '{value}' WHERE id = 11"))
        monkeypatch.setenv("CRM_TEST_PG_URL", PG_URL)
        source = _source(url_env="CRM_TEST_PG_URL", tables={
            "managers": f"{schema}.users", "deals": f'SELECT * FROM "{schema}".crm_deals ORDER BY id',
            "stage_history": f"{schema}.stage_log"})
        source.columns["deals"]["closed_at"] = "closed"
        with pytest.raises(DataError) as err:
            load_crm(source, timezone="Asia/Almaty")
        text = str(err.value)
        assert ("column 'closed'" in text and "record 2" in text) or (
            "returned a value that cannot be read (timestamp too" in text and "NULLIF" in text)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.skipif(not pg_reachable(), reason="no PostgreSQL at 127.0.0.1:5432")
def test_postgresql_options_in_the_url_are_kept_beside_read_only(monkeypatch):
    schema = f"crm_opt_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        _fill(engine, schema)
        monkeypatch.setenv("CRM_TEST_PG_URL", f"{PG_URL}?options=-csearch_path%3D{schema}")
        source = _source(url_env="CRM_TEST_PG_URL", tables={  # unqualified names: search_path
            "managers": "users", "deals": "SELECT * FROM crm_deals ORDER BY id", "stage_history": "stage_log"})
        _check(load_crm(source, timezone="Asia/Almaty"))
        source.tables["managers"] = "WITH x AS (SELECT 1) DELETE FROM users"
        with pytest.raises(DataError, match="refused"):
            load_crm(source, timezone="Asia/Almaty")
        assert len(_users(engine, schema)) == 2
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()

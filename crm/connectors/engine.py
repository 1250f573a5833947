"""The sync engine: dlt pipelines loading into the store, an embedded DuckDB file (the default)
or a PostgreSQL database (`[source] store_url_env`).

dlt gives the connectors paging (RESTClient + paginators), retries of 429/5xx that honour
Retry-After, incremental cursors kept in the pipeline state, and merge by primary key; the
state is committed together with the loaded rows, so a sync that dies half-way leaves the
store and the cursors as they were after the last complete sync, and the next run takes it
again from there (merge makes the rows that come twice one row).

The store folder holds `crm.duckdb` (the records, one schema per CRM), `.dlt/` (dlt's working
folder and state) and the token file of an OAuth connector. With PostgreSQL the records and
dlt's state (cursors) live in one schema of that database and the folder keeps only `.dlt/`
and the token file. `Store` is the one place that knows which kind is in use: connectors
build their pipeline, run their post-load SQL and read their records through it.
"""
from __future__ import annotations

import os
import threading
import time
import warnings
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# No usage reports to dlthub from a CRM sync (set before dlt is imported anywhere).
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
from dlt.sources.helpers.requests.retry import Client  # noqa: E402

from crm.errors import DataError  # noqa: E402

DB_FILE = "crm.duckdb"
MAX_ATTEMPTS = 6  # per request (backoff 1+2+4+8+16 s when no Retry-After): 429/5xx/connection errors, waiting Retry-After or backing off
MAX_RETRY_DELAY = 120.0  # seconds: a longer Retry-After is cut to this
# The file dlt writes and loads per destination (both take parquet: typed, compact).
LOADER_FORMATS = {"duckdb": "parquet", "sqlalchemy": "parquet"}


@dataclass
class SyncReport:
    """What one sync did: rows written per table, requests sent, deletions applied, and the
    optional parts the CRM did not serve (part -> what is lost without it, and why)."""

    kind: str
    rows: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    deleted: int = 0
    seconds: float = 0.0
    missing: dict[str, str] = field(default_factory=dict)


def store_folder(store: str, base_dir: Path | None) -> Path:
    """`[source] store` (relative to the config file's folder)."""
    folder = Path(store)
    if not folder.is_absolute() and base_dir is not None:
        folder = Path(base_dir) / folder
    return folder


def database_path(folder: Path) -> Path:
    return folder / DB_FILE


class Throttle:
    """At most `per_second` requests in any window of one second (plus `margin` for latency and
    clock skew), from this process; thread-safe, monotonic clock.

    A CRM's limit is per integration and counted over a window (amoCRM: 7 a second, 429
    beyond), so a sliding window lets a burst of N go out at once and waits only for what is
    left of the window: the time spent processing pages hides inside it, and the sync runs at
    the limit instead of below it (benchmarks/sync.py). A fractional rate (6.5) becomes 6
    requests per 6/6.5 s."""

    def __init__(self, per_second: float, margin: float = 0.05) -> None:
        self.limit = max(1, int(per_second)) if per_second > 0 else 0
        self.window = (self.limit / per_second + margin) if per_second > 0 else 0.0
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self.count = 0

    def wait(self) -> None:
        if not self.limit:
            with self._lock:
                self.count += 1
            return
        with self._lock:
            while True:
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    self.count += 1
                    return
                time.sleep(self.window - (now - self._sent[0]))


def http_session(timeout: float = 60.0, backoff: float = 1.0) -> Any:
    """A requests session from dlt's retrying client: 429, 5xx and dropped connections are
    retried up to MAX_ATTEMPTS times, waiting what Retry-After says (else exponential backoff)."""
    return Client(
        request_timeout=timeout, raise_for_status=False, request_max_attempts=MAX_ATTEMPTS,
        request_backoff_factor=backoff, request_max_retry_delay=MAX_RETRY_DELAY,
        respect_retry_after_header=True,
    ).session


def column_hints(**types: str) -> dict[str, dict[str, Any]]:
    """dlt column hints (name -> dlt data type, nullable): dlt creates typed columns even when
    the first page of a resource has only nulls in them."""
    return {name: {"data_type": t, "nullable": True} for name, t in types.items()}


def run(pipe: Any, source: Any) -> dict[str, int]:
    """Load the source; rows written per table. A failure raises the exception that caused it
    (the HTTP error, the connector's DataError), not dlt's wrappers around it."""
    from dlt.extract.exceptions import ResourceExtractionError
    from dlt.pipeline.exceptions import PipelineStepFailed

    try:
        with warnings.catch_warnings():
            # dlt's sqlalchemy merge dedups with `ORDER BY (SELECT NULL)` (as its DuckDB one does),
            # which SQLAlchemy 2 warns about: noise in a user's sync output
            warnings.filterwarnings("ignore", message="implicitly coercing SELECT object to scalar subquery")
            pipe.run(source, loader_file_format=LOADER_FORMATS.get(pipe.destination.destination_name, "parquet"))
    except PipelineStepFailed as exc:
        # A failed extract commits neither rows nor cursors; a package that was extracted but not
        # loaded stays pending and the next run loads it first (with the cursors it carries).
        cause: BaseException = exc
        while isinstance(cause, (PipelineStepFailed, ResourceExtractionError)):
            nxt = cause.__cause__ or cause.__context__
            if nxt is None:
                break
            cause = nxt
        raise cause from None
    counts: dict[str, int] = {}
    trace = pipe.last_trace
    if trace is not None and trace.last_normalize_info is not None:
        for table, n in trace.last_normalize_info.row_counts.items():
            if not table.startswith("_dlt"):
                counts[table] = counts.get(table, 0) + int(n)
    return counts


def tables(con: Any, schema: str) -> set[str]:
    """The tables a connector's schema holds in the store (what was synced so far)."""
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [schema]).fetchall()}


def included(pipeline_id: Any, name: Any, wanted: list[int | str]) -> bool:
    """`[source] pipelines` names a pipeline by id or by name; empty means all. Case and spaces
    around a name do not count, as for an export's pipeline column (crm.validate.keep_pipelines)."""
    keys = {str(p).strip().casefold() for p in wanted}
    return not keys or str(pipeline_id).strip().casefold() in keys or str(name).strip().casefold() in keys


def check_wanted(pipelines: Any, wanted: list[int | str], crm: str) -> None:
    """A `[source] pipelines` entry that names no synced pipeline (by id or name, any case) is a
    DataError listing the pipelines there are: a typo silently left the store's deals out."""
    pairs = [(str(pid), "" if name is None else str(name)) for pid, name in pipelines]
    missing = [w for w in wanted if not any(included(pid, name, [w]) for pid, name in pairs)]
    if not missing:
        return
    from crm.source_config import nearest

    names = [name for _, name in pairs if name]
    close = nearest(str(missing[0]), names) if names else None
    there = "; ".join(f"{name} (id {pid})" if name else f"id {pid}" for pid, name in pairs) or "none synced yet"
    raise DataError(
        f"[source] pipelines: no {crm} pipeline is {', '.join(repr(str(m)) for m in missing)}"
        + (f" (did you mean `{close}`?)" if close else ""),
        fix=f"name pipelines by name or id as the CRM has them: {there}; `crm-pulse sync --check` lists them",
    )


def label_pipelines(con: Any, pipelines: Any) -> None:
    """Temp table `pipeline_label` (pipeline_id text, pipeline text) from (id, name) pairs: the
    label the canonical deals' `pipeline` column holds, so the load can say when the deals come
    from several pipelines (crm.validate.keep_pipelines). The label is the name, how users know
    a pipeline and how `[source] pipelines` names it; the id (which `[source] pipelines` takes
    too) when the CRM gave no name, or when two pipelines share one and a name would pool them."""
    names: dict[str, str] = {}
    for pid, name in pipelines:
        if not names.get(str(pid)):  # the first name given for the id
            names[str(pid)] = str(name).strip() if name is not None else ""
    shared = Counter(n.casefold() for n in names.values() if n)
    labels = {pid: name if name and shared[name.casefold()] == 1 else pid for pid, name in names.items()}
    con.execute("CREATE OR REPLACE TEMP TABLE pipeline_label AS "
                "SELECT UNNEST(?::VARCHAR[]) AS pipeline_id, UNNEST(?::VARCHAR[]) AS pipeline",
                [list(labels), list(labels.values())])


# --- the store -----------------------------------------------------------------------------------

PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")


@dataclass(frozen=True)
class Store:
    """Where one connector's records live: `crm.duckdb` in `folder` (url None) or the PostgreSQL
    database at `url`, in `schema` (default: the CRM kind). `folder` is local either way: dlt's
    working folder `.dlt/` and an OAuth token file stay there. `url` holds the password: it is
    never shown (`where` is what messages say)."""

    folder: Path
    url: str | None = field(default=None, repr=False)
    schema: str | None = None
    url_env: str | None = None

    @property
    def postgres(self) -> bool:
        return self.url is not None

    def dataset(self, kind: str) -> str:
        """The schema a connector's tables are in (in PostgreSQL; DuckDB: always the kind)."""
        return (self.schema or kind) if self.postgres else kind

    def where(self, kind: str) -> str:
        """The store as messages and check-config show it: never the password."""
        if not self.postgres:
            return str(database_path(self.folder))
        return f"PostgreSQL {_shown_url(self.url)} schema {self.dataset(kind)}"

    def describe(self, kind: str) -> str:
        """check-config's line: which store, where, and where its URL comes from (not the URL's secret)."""
        if not self.postgres:
            return f"DuckDB file {self.where(kind)}"
        return f"{self.where(kind)} (URL from ${self.url_env})"

    def pipeline(self, kind: str) -> Any:
        """The dlt pipeline of one CRM. Its state (the cursors) is loaded with the rows, into the
        DuckDB file or the PostgreSQL schema; `.dlt/` in the folder is dlt's working copy."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.postgres:
            return dlt.pipeline(pipeline_name=f"crm_pulse_{kind}", pipelines_dir=str(self.folder / ".dlt"),
                                destination=dlt.destinations.duckdb(credentials=str(database_path(self.folder))),
                                dataset_name=kind)
        self.connect().close()  # an unreachable server or a refused login: said before any CRM request
        return dlt.pipeline(pipeline_name=f"crm_pulse_{kind}_postgres", pipelines_dir=str(self.folder / ".dlt"),
                            destination=_pg_destination(self.url), dataset_name=self.dataset(kind))

    def exists(self, kind: str) -> bool:
        """Whether a sync has created anything yet (DuckDB: the file; PostgreSQL: the schema)."""
        if not self.postgres:
            return database_path(self.folder).is_file()
        con = self.connect()
        try:
            return con.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = ?",
                               [self.dataset(kind)]).fetchone() is not None
        finally:
            con.close()

    def connect(self, read_only: bool = False) -> Any:
        """A connection for the connectors' own SQL (post-load deletions, bookkeeping): a DuckDB
        connection, or PostgreSQL through `PgConnection`, which takes the same `?` parameters
        and answers DELETE with its row count as DuckDB does. Close it when done."""
        if not self.postgres:
            import duckdb

            return duckdb.connect(str(database_path(self.folder)), read_only=read_only)
        return PgConnection(_pg_connect(self.url, self.url_env), read_only=read_only)

    def read(self, kind: str) -> Any:
        """A DuckDB connection holding the connector's tables in schema `kind`, for raw_tables:
        the file opened read-only, or (PostgreSQL) an in-memory copy of the schema's tables taken
        in one read-only snapshot, so a sync running meanwhile is seen whole or not at all."""
        if not self.postgres:
            return connect_read_only(self.folder)
        if not self.exists(kind):
            raise DataError(f"no synced CRM data in {self.where(kind)}",
                            fix="run `crm-pulse sync --config <your config>` first (it creates the schema), "
                            "or check [source] store_schema")
        return _copy_to_duckdb(self.url, self.url_env, self.dataset(kind), kind)


def open_store(source_config: Any, base_dir: Path | None) -> Store:
    """The store `[source]` names: `store_url_env` set means PostgreSQL (the URL from that
    environment variable, checked here), else the DuckDB file in `store`."""
    folder = store_folder(source_config.store, base_dir)
    name = getattr(source_config, "store_url_env", None)
    if not name:
        return Store(folder)
    url = os.environ.get(name, "").strip()
    if not url:
        raise DataError(f"environment variable {name} (named in [source] store_url_env) is not set",
                        fix=f"export {name}='postgresql://user:password@host:5432/database' (the PostgreSQL "
                        "database the synced records go to), or remove store_url_env to keep them in the "
                        "local DuckDB file")
    _check_pg_url(url, name)
    return Store(folder, url=url, schema=getattr(source_config, "store_schema", None), url_env=name)


def _shown_url(url: str | None) -> str:
    """The URL without its password (and anything else secret-looking)."""
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError

    from crm.redact import mask

    try:
        return mask(sa.engine.make_url(url or "").render_as_string(hide_password=True))
    except (ArgumentError, ValueError):  # checked by _check_pg_url first; say only that it is unreadable
        return "<unreadable URL>"


def _check_pg_url(url: str, env: str) -> None:
    """A PostgreSQL URL with a host and a database, or one clear error that never shows it."""
    from urllib.parse import parse_qs, urlsplit

    fix = (f"put a URL like postgresql://crm:<password>@db.example.com:5432/crm in ${env} "
           "(user, password, host, port and database; special characters in the password %-encoded)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise DataError(f"the URL in ${env} ([source] store_url_env) is not a valid URL", fix=fix) from None
    if parts.scheme not in PG_SCHEMES:
        shown = parts.scheme or "none"
        raise DataError(f"the URL in ${env} ([source] store_url_env) is not a PostgreSQL URL (scheme {shown!r})",
                        fix=fix + "; the store is PostgreSQL or, without store_url_env, the local DuckDB file")
    host = parts.hostname or parse_qs(parts.query).get("host")  # ?host=/run/postgresql: a Unix socket
    if not host or not parts.path.strip("/"):
        missing = "host" if not host else "database name"
        raise DataError(f"the URL in ${env} ([source] store_url_env) has no {missing}", fix=fix)


def _libpq_url(url: str) -> str:
    """postgresql://... as libpq and dlt take it (no SQLAlchemy driver suffix)."""
    return "postgresql://" + url.split("://", 1)[1]


def _pg_destination(url: str | None) -> Any:
    """dlt's sqlalchemy destination on psycopg 3, not its postgres destination: that one needs
    psycopg2 (a second PostgreSQL driver, which would also become the one `postgresql://` means
    to SQLAlchemy in kind "sql") and refuses a URL without a password (trust, peer or .pgpass
    logins). Measured on 500,000 merged rows: 25 s here, 17 s with psycopg2's COPY, 9 s into
    DuckDB; a sync is bound by the CRM's rate limit (the benchmark's first sync: 13 minutes)."""
    return dlt.destinations.sqlalchemy(credentials="postgresql+psycopg://" + (url or "").split("://", 1)[1])


def _pg_connect(url: str | None, env: str | None) -> Any:
    """A psycopg (3) connection, autocommit; an unreachable server or a refused login is one
    DataError that names the host and database, never the password."""
    import psycopg

    try:
        return psycopg.connect(_libpq_url(url or ""), autocommit=True, connect_timeout=15)
    except psycopg.Error as exc:
        from crm.redact import mask

        reason = mask(" ".join(str(exc).split()) or type(exc).__name__)
        if url:
            reason = reason.replace(url, _shown_url(url))
        raise DataError(f"cannot connect to the PostgreSQL store {_shown_url(url)} ({reason})",
                        fix=f"check that the server is running and the user, password and database in ${env} "
                        "([source] store_url_env) are right; the user needs CREATE on the database") from None


class PgConnection:
    """psycopg 3 with DuckDB's calling convention for the connectors' SQL, so one statement
    serves both stores: `?` placeholders, `execute(...).fetchone()` / `.fetchall()`, and a
    DELETE / INSERT / UPDATE answering one row with its row count."""

    def __init__(self, con: Any, read_only: bool = False) -> None:
        self.con = con
        if read_only:
            con.execute("SET default_transaction_read_only = on")

    def execute(self, sql: str, params: list | tuple | None = None) -> "_Result":
        cur = self.con.execute(_qmark_to_pyformat(sql) if params else sql, params or None)
        if cur.description is not None:
            return _Result(cur.fetchall())
        return _Result([(cur.rowcount,)] if cur.rowcount >= 0 else [])

    def close(self) -> None:
        self.con.close()


@dataclass
class _Result:
    rows: list[tuple]

    def fetchone(self) -> tuple | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple]:
        return self.rows


def _qmark_to_pyformat(sql: str) -> str:
    """DuckDB's `?` as psycopg's `%s` (and a literal % doubled), outside quoted text."""
    out, quote = [], ""
    for c in sql:
        if quote:
            out.append("%%" if c == "%" else c)
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
            out.append(c)
        elif c == "?":
            out.append("%s")
        elif c == "%":
            out.append("%%")
        else:
            out.append(c)
    return "".join(out)


# PostgreSQL type (information_schema data_type) -> (how to select it, Arrow type) for the copy
def _arrow_type(data_type: str, precision: Any, scale: Any) -> tuple[str, Any]:
    import pyarrow as pa

    t = data_type.lower()
    simple = {"bigint": pa.int64(), "integer": pa.int32(), "smallint": pa.int16(), "boolean": pa.bool_(),
              "double precision": pa.float64(), "real": pa.float32(), "text": pa.string(),
              "character varying": pa.string(), "character": pa.string(), "date": pa.date32(),
              "timestamp with time zone": pa.timestamp("us", tz="UTC"),
              "timestamp without time zone": pa.timestamp("us"), "bytea": pa.binary(),
              "time without time zone": pa.time64("us")}
    if t in simple:
        return "{}", simple[t]
    if t == "numeric" and precision is not None and int(precision) <= 38:
        return "{}", pa.decimal128(int(precision), int(scale or 0))
    if t == "numeric":
        return "{}::double precision", pa.float64()
    return "{}::text", pa.string()  # json, jsonb, uuid, interval...: their text


COPY_BATCH = 50_000  # rows per Arrow batch while copying a PostgreSQL table


def _copy_to_duckdb(url: str | None, env: str | None, pg_schema: str, schema: str) -> Any:
    """An in-memory DuckDB holding every table of `pg_schema` (dlt's own tables left out) as
    `schema`.<table>, with the columns' types; read in one REPEATABLE READ, READ ONLY transaction."""
    import duckdb
    import pyarrow as pa
    from psycopg import sql as pgsql

    con = _pg_connect(url, env)
    duck = duckdb.connect(":memory:")
    try:
        con.autocommit = False
        con.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        columns: dict[str, list[tuple]] = {}
        for table, column, data_type, precision, scale in con.execute(
                "SELECT c.table_name, c.column_name, c.data_type, c.numeric_precision, c.numeric_scale "
                "FROM information_schema.columns c JOIN information_schema.tables t "
                "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
                "WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE' AND left(c.table_name, 5) <> '_dlt_' "
                "ORDER BY c.table_name, c.ordinal_position", [pg_schema]).fetchall():
            columns.setdefault(table, []).append((column, *_arrow_type(data_type, precision, scale)))
        duck.execute(f'CREATE SCHEMA "{schema}"')
        for table, cols in columns.items():
            arrow_schema = pa.schema([(name, kind) for name, _select, kind in cols])
            select = pgsql.SQL("SELECT {} FROM {}.{}").format(
                pgsql.SQL(", ").join(pgsql.SQL(sel.replace("{}", "{c}")).format(c=pgsql.Identifier(name))
                                     for name, sel, _kind in cols),
                pgsql.Identifier(pg_schema), pgsql.Identifier(table))
            target = f'"{schema}"."{table}"'
            duck.register("_batch", pa.Table.from_pylist([], schema=arrow_schema))
            duck.execute(f"CREATE TABLE {target} AS SELECT * FROM _batch")
            with con.cursor() as cur:
                cur.execute(select)
                while rows := cur.fetchmany(COPY_BATCH):
                    batch = pa.Table.from_arrays(
                        [pa.array([r[i] for r in rows], type=kind) for i, (_n, _s, kind) in enumerate(cols)],
                        schema=arrow_schema)
                    duck.register("_batch", batch)
                    duck.execute(f"INSERT INTO {target} SELECT * FROM _batch")
            duck.unregister("_batch")
        con.rollback()
    except BaseException:
        duck.close()
        raise
    finally:
        con.close()
    return duck


def connect_read_only(folder: Path) -> Any:
    """The store opened read-only for crm.load; a clear error when nothing was synced yet."""
    import duckdb

    path = database_path(folder)
    if not path.is_file():
        raise DataError(
            f"no synced CRM data in {folder}",
            fix="run `crm-pulse sync --config <your config>` first (it creates the store), "
            "or check [source] store",
        )
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise DataError(f"cannot open the synced store {path} ({str(exc).splitlines()[0]})",
                        fix="wait for a running `crm-pulse sync` to finish, then try again") from None

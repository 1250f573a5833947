"""The SQL source: any SQLAlchemy URL, one table name or SELECT per canonical table.

The rows come back as raw frames with the database's own column names; crm.normalize then
treats them exactly like an exported file. Connections are read-only and never commit; the
URL's password (and any secret-looking part of it) is never shown (crm.redact.mask).
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from crm.errors import DataError
from crm.redact import mask
from crm.readers import RawTable
from crm.source_config import SourceConfig


def resolve_url(source: SourceConfig) -> str:
    """The URL from `url` or from the environment variable named by `url_env`."""
    if source.url_env:
        url = os.environ.get(source.url_env)
        if not url:
            raise DataError(
                f"environment variable {source.url_env} is not set",
                fix=f"export {source.url_env}='postgresql+psycopg://user:password@host/db' "
                "(the SQLAlchemy URL of your CRM database) before starting crm-pulse",
            )
        return url
    assert source.url is not None  # SourceConfig guarantees url or url_env for kind "sql"
    return source.url


def _with_installed_driver(url: str) -> str:
    """`postgresql://` means psycopg2 to SQLAlchemy; we ship psycopg 3, so use that."""
    if url.startswith(("postgresql://", "postgres://")) and importlib.util.find_spec("psycopg2") is None:
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_query(target: str) -> bool:
    return target.lstrip().split(None, 1)[0].lower() in ("select", "with") if target.strip() else False


def _relative_sqlite(url: str, base_dir: Path | None) -> str:
    """`sqlite:///crm.db` in a config file means next to the config file, not the cwd."""
    prefix = "sqlite:///"
    if base_dir is None or not url.startswith(prefix) or url == prefix:
        return url
    path = url[len(prefix):].split("?", 1)[0]
    if path.startswith("/") or path == ":memory:":
        return url
    return prefix + str(Path(base_dir) / url[len(prefix):])


def _url_origin(source: SourceConfig) -> str:
    return f"the URL in ${source.url_env}" if source.url_env else "[source] url"


def _existing_sqlite_file(url: str, origin: str) -> None:
    """SQLite creates a missing file on connect: a typo would leave an empty database behind
    and then complain about missing tables. Say the file is missing instead, and create nothing."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix:
        return
    path = url[len(prefix):].split("?", 1)[0]
    if path in ("", ":memory:") or path.startswith("file:") or Path(path).is_file():
        return
    raise DataError(
        f"the SQLite database file {path} does not exist",
        fix=f"correct the path in {origin} (relative paths are relative to the config file)",
    )


def read_only_url(url: sa.engine.URL) -> sa.engine.URL:
    """SQLite opened with `mode=ro`: the database file cannot be written through this connection."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return url
    database = url.database
    if not database.startswith("file:"):
        database = "file:" + quote(str(Path(database).absolute()))
    return url.set(database=database).update_query_dict({"mode": "ro", "uri": "true"})


def _read_only_engine(url: str) -> sa.engine.Engine:
    """An engine whose connections cannot write: SQLite mode=ro + query_only, PostgreSQL
    default_transaction_read_only. Every read also runs in a transaction that is rolled back."""
    parsed = read_only_url(sa.engine.make_url(url))
    kwargs: dict = {}
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg", "psycopg2"):
        given = parsed.query.get("options") or ""  # keep the admin's own (e.g. search_path)
        given = " ".join(given) if isinstance(given, tuple) else given
        kwargs["connect_args"] = {"options": (given + " -c default_transaction_read_only=on").strip()}
    engine = sa.create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _query_only(dbapi_conn, _record) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA query_only = ON")
            cursor.close()
    return engine


def _begin_read_only(conn: sa.Connection):
    """The transaction every query runs in; the caller rolls it back, never commits.

    Other databases (MySQL...) get only the rollback: give crm-pulse a user that can only read.
    """
    trans = conn.begin()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SET TRANSACTION READ ONLY"))
    return trans


def one_statement(sql: str) -> bool:
    """True when `sql` is one statement: nothing but comments after a top-level `;`.

    Quotes ('...', "..."), comments (--, /* */) and PostgreSQL dollar quotes ($tag$...$tag$)
    are skipped, so a `;` inside them does not count. Drivers such as psycopg run every
    statement of a multi-statement string; a read-only transaction can be ended by a COMMIT
    in the middle, so such a string is never sent.
    """
    i, n, ended = 0, len(sql), False
    while i < n:
        c = sql[i]
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if c.isspace() or c == ";":
            ended = ended or c == ";"
            i += 1
            continue
        if ended:
            return False
        if c in "'\"":
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # '' or "" inside the quotes
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
            continue
        if c == "$":
            m = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", sql[i:])
            if m:
                j = sql.find(m.group(0), i + len(m.group(0)))
                i = n if j < 0 else j + len(m.group(0))
                continue
        i += 1
    return True


def read_tables(source: SourceConfig, base_dir: Path | None = None) -> dict[str, RawTable]:
    """Run one query per configured table, read-only; the engine is disposed before returning.

    The connection cannot write (see _read_only_engine), each query is a single statement,
    and the transaction they run in is rolled back: crm-pulse never commits to the CRM.
    """
    origin = _url_origin(source)
    url = _with_installed_driver(_relative_sqlite(resolve_url(source), base_dir))
    for table, target in source.tables.items():
        if is_query(target) and not one_statement(target):
            raise DataError(
                f"[source.tables] {table} holds more than one SQL statement",
                fix="give one SELECT (or WITH ... SELECT) per table, without a second statement after ';'",
            )
    try:
        engine = _read_only_engine(url)
    except (NoSuchModuleError, ImportError) as exc:
        missing = mask(getattr(exc, "name", None) or str(exc))
        raise DataError(
            f"the database driver for {origin} is not installed ({missing})",
            fix="crm-pulse ships drivers for PostgreSQL (postgresql+psycopg://) and SQLite (sqlite:///); "
            "for another database install its SQLAlchemy driver into crm-pulse's environment "
            "(e.g. pymysql for mysql+pymysql://) and name it in the URL",
        ) from None
    except (ArgumentError, ValueError) as exc:
        raise DataError(
            f"cannot read {origin} as a database URL ({mask(exc)})",
            fix="write it as dialect+driver://user@host/database, e.g. "
            "postgresql+psycopg://crm@db.local/crm or sqlite:///crm.db",
        ) from None
    _existing_sqlite_file(url, origin)
    shown = mask(sa.engine.make_url(url).render_as_string(hide_password=True))
    out: dict[str, RawTable] = {}
    try:
        with engine.connect() as conn:
            trans = _begin_read_only(conn)
            try:
                out = _run_queries(conn, source, shown)
            finally:
                trans.rollback()
    except SQLAlchemyError as exc:
        raise DataError(
            f"cannot connect to the database ({_first_line(exc)})", file=shown,
            fix="check that the server is running and the URL, user and database are right",
        ) from None
    finally:
        engine.dispose()
    return out


def _run_queries(conn: sa.Connection, source: SourceConfig, shown: str) -> dict[str, RawTable]:
    out: dict[str, RawTable] = {}
    for table, target in source.tables.items():
        origin = f"query for {table}" if is_query(target) else f"table {target}"
        statement = sa.text(target) if is_query(target) else sa.select(
            sa.text("*")).select_from(_table(target))
        try:
            frame = pd.read_sql(statement, conn)
        except sa.exc.DataError as exc:  # a value the driver cannot turn into Python ('infinity')
            raise DataError(
                f"the {origin} returned a value that cannot be read ({_first_line(exc)})",
                file=shown,
                fix="leave such values out in the SELECT, e.g. NULLIF(column, 'infinity') or "
                "CASE WHEN column BETWEEN '1900-01-01' AND '2200-01-01' THEN column END",
            ) from None
        except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
            raise DataError(
                f"the database refused the {origin} ({_first_line(exc)})",
                file=shown,
                fix=f"check [source.tables] {table} = \"...\": a table name or a SELECT "
                "(the connection is read-only: statements that write are refused)",
            ) from None
        out[table] = RawTable(frame, f"{shown}: {origin}", row_offset=1,
                              row_kind="record", text=False)
    return out


def _table(name: str) -> sa.TableClause:
    """`schema.table` or `table`, quoted by the dialect."""
    schema, _, bare = name.rpartition(".")
    return sa.table(bare, schema=schema or None)


def _first_line(exc: BaseException) -> str:
    """The driver's own words ("no such table: x"), without SQLAlchemy's background links."""
    if isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(getattr(exc, "orig", None) or exc).strip()
    return mask(text.splitlines()[0]) if text else exc.__class__.__name__

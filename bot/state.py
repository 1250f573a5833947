"""The bot's memory: notification log, feedback, outbox, settings, latest scan, locks.

SQLAlchemy Core, SQLite by default and PostgreSQL by URL. The schema is versioned: MIGRATIONS
is an ordered list of functions and `StateStore.open` applies the missing ones at start, so
an old state file is upgraded in place, never deleted. `prefix` puts every table under a
name prefix (tests share one PostgreSQL database without touching each other).
"""
from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot.notify_log import LogEntry

if TYPE_CHECKING:  # importing the detectors package loads pandas and scipy: only when needed
    from detectors.insight import Insight

UTC = timezone.utc


def utc(dt: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; everything stored is UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


TS = sa.DateTime(timezone=True)


# Each migration's tables and columns are written once, here, and frozen once released: the
# migration creates exactly them, and the current schema is their sum (a later version must not
# change what an earlier migration creates, or upgrading an old file would diverge from a fresh one).

def db_where(url: str) -> str:
    """The state database's URL as people are shown it: the password hidden."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def db_reason(error: BaseException) -> str:
    """The first line of why a database call failed (the driver's own message when there is one)."""
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


def missing_sqlite_file(url: str) -> str | None:
    """The path of a file-based SQLite state database that does not exist yet, else None."""
    from pathlib import Path

    parsed = sa.engine.make_url(url)
    db = parsed.database
    if not parsed.drivername.startswith("sqlite") or not db or db == ":memory:" or db.startswith("file:"):
        return None
    return None if Path(db).exists() else db


def _v1_tables(md: sa.MetaData, p: str) -> dict[str, sa.Table]:
    """The first released schema: notification log and outbox only (frozen, never edit)."""
    return {
        "schema_version": sa.Table(f"{p}schema_version", md, sa.Column("version", sa.Integer, nullable=False)),
        "notification_log": sa.Table(
            f"{p}notification_log", md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("recipient", sa.String(200), nullable=False),
            sa.Column("fingerprint", sa.String(64), nullable=False),
            sa.Column("detector", sa.String(100), nullable=False),
            sa.Column("first_sent", TS, nullable=False),
            sa.Column("last_sent", TS, nullable=False),
            sa.Column("last_facts", sa.JSON, nullable=False),
            sa.Column("last_severity", sa.String(20), nullable=False),
            sa.Column("state", sa.String(10), nullable=False),
            sa.Column("closed_at", TS),
            sa.Column("snoozed_until", TS),
            sa.Column("suppressed", sa.Boolean, nullable=False),
            sa.Column("last_reason", sa.String(20)),
            sa.UniqueConstraint("recipient", "fingerprint", name=f"{p}uq_log_recipient_fp"),
        ),
        "outbox": sa.Table(
            f"{p}outbox", md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("dedup_key", sa.String(300), nullable=False, unique=True),
            sa.Column("recipient", sa.String(200), nullable=False),
            sa.Column("channel", sa.String(20), nullable=False),
            sa.Column("address", sa.String(200), nullable=False),
            sa.Column("payload", sa.JSON, nullable=False),
            sa.Column("photo", sa.LargeBinary),
            sa.Column("status", sa.String(10), nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("next_attempt_at", TS, nullable=False),
            sa.Column("last_error", sa.Text),
            sa.Column("created_at", TS, nullable=False),
            sa.Column("sent_at", TS),
        ),
    }


def _v2_columns() -> dict[str, list[sa.Column]]:
    """Columns v2 adds to v1's tables (frozen): done-with-facts, send counts, edits."""
    return {
        "notification_log": [
            sa.Column("suppressed_facts", sa.JSON),
            sa.Column("suppressed_severity", sa.String(20)),
            sa.Column("send_count", sa.Integer, nullable=False, server_default="1"),
        ],
        "outbox": [
            sa.Column("edit_message_id", sa.String(100)),
            sa.Column("sent_message_id", sa.String(100)),
            sa.Column("detectors", sa.String(300)),
        ],
    }


def _v2_tables(md: sa.MetaData, p: str) -> dict[str, sa.Table]:
    """Tables v2 creates (frozen): feedback, per-person language, latest scan, locks."""
    return {
        "feedback": sa.Table(
            f"{p}feedback", md,
            sa.Column("recipient", sa.String(200), primary_key=True),
            sa.Column("fingerprint", sa.String(64), primary_key=True),
            sa.Column("detector", sa.String(100), nullable=False),
            sa.Column("useful", sa.Boolean, nullable=False),
            sa.Column("at", TS, nullable=False),
        ),
        "recipient_settings": sa.Table(
            f"{p}recipient_settings", md,
            sa.Column("recipient", sa.String(200), primary_key=True),
            sa.Column("language", sa.String(5)),
            sa.Column("updated_at", TS, nullable=False),
        ),
        "scans": sa.Table(
            f"{p}scans", md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("scanned_at", TS, nullable=False),
            sa.Column("data_now", TS, nullable=False),
            sa.Column("insights", sa.JSON, nullable=False),
        ),
        "locks": sa.Table(
            f"{p}locks", md,
            sa.Column("name", sa.String(200), primary_key=True),
            sa.Column("holder", sa.String(200), nullable=False),
            sa.Column("expires_at", TS, nullable=False),
        ),
    }


def _tables(md: sa.MetaData, p: str) -> dict[str, sa.Table]:
    """The current schema: what every migration in turn creates or adds."""
    t = _v1_tables(md, p)
    for name, columns in _v2_columns().items():
        for column in columns:
            t[name].append_column(column)
    t.update(_v2_tables(md, p))
    return t


# ------------------------------------------------------------------ migrations

def _v1(conn: Connection, p: str) -> None:
    md = sa.MetaData()
    _v1_tables(md, p)
    md.create_all(conn)


def _add_column(conn: Connection, table: str, column: sa.Column) -> None:
    ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {ddl}"))


def _v2(conn: Connection, p: str) -> None:
    for name, columns in _v2_columns().items():
        for column in columns:
            _add_column(conn, f"{p}{name}", column)
    for table in _v2_tables(sa.MetaData(), p).values():
        table.create(conn)
    conn.execute(sa.text(f"CREATE INDEX {p}ix_outbox_due ON {p}outbox (status, recipient, id)"))


MIGRATIONS: list[Callable[[Connection, str], None]] = [_v1, _v2]
SCHEMA_VERSION = len(MIGRATIONS)


# ------------------------------------------------------------------ the store

@dataclass
class OutboxRow:
    id: int
    dedup_key: str
    recipient: str
    channel: str
    address: str
    payload: dict[str, Any]
    photo: bytes | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    edit_message_id: str | None
    sent_message_id: str | None


class StateStore:
    """All reads and writes of the bot's state. Each method is one short transaction."""

    def __init__(self, engine: Engine, prefix: str = "") -> None:
        self.engine = engine
        self.prefix = prefix
        self.md = sa.MetaData()
        self.t = _tables(self.md, prefix)

    @classmethod
    def open(cls, url: str, *, prefix: str = "", migrate: bool = True) -> "StateStore":
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
        engine = sa.create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            @sa.event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_conn: Any, _rec: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL survives a killed process (only a power cut may lose the last commit)
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()
        store = cls(engine, prefix)
        if migrate:
            store.migrate()
        return store

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    # -- schema
    def schema_version(self) -> int:
        insp = sa.inspect(self.engine)
        if not insp.has_table(f"{self.prefix}schema_version"):
            return 0
        with self.engine.connect() as c:
            v = c.execute(sa.select(sa.func.max(self.t["schema_version"].c.version))).scalar()
        return int(v or 0)

    def migrate(self) -> list[int]:
        """Apply missing migrations in order, each in its own transaction; returns those applied."""
        applied: list[int] = []
        with self._migration_lock():
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the state database is at schema version {current}, newer than this crm-pulse "
                    f"understands ({SCHEMA_VERSION}): upgrade crm-pulse")
            for number, fn in enumerate(MIGRATIONS, start=1):
                if number <= current:
                    continue
                with self.engine.begin() as conn:
                    fn(conn, self.prefix)
                    conn.execute(sa.delete(self.t["schema_version"]))
                    conn.execute(sa.insert(self.t["schema_version"]).values(version=number))
                applied.append(number)
        return applied

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Two bot processes starting together must not both migrate."""
        if not self.is_postgres:
            db = self.engine.url.database
            if not db or db == ":memory:":
                yield
                return
            with _file_lock(f"{db}.migrate.lock"):
                yield
            return
        key = _lock_key(f"{self.prefix}migrate")
        with self.engine.connect() as conn:
            conn.execute(sa.select(sa.func.pg_advisory_lock(key)))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                conn.commit()

    def outbox_keys_since(self, prefix: str, since: datetime) -> set[str]:
        """Dedup keys starting with `prefix` of outbox messages written since `since` (which
        digests were written today: "digest:anna:2026-10-01T09:00:0")."""
        t = self.t["outbox"]
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t.c.dedup_key).where(t.c.created_at >= since,
                                                           t.c.dedup_key.like(escaped + "%", escape="\\")))
            return {r.dedup_key for r in rows}

    def check_writable(self) -> None:
        """Raise if the bot could not write its state: a read-only file or folder, a read-only
        database user or transaction. Found at start, not as every scan failing in the log while
        the bot stays up sending nothing. Writes one lock row and rolls it back."""
        t = self.t["locks"]
        with self.engine.connect() as c:
            trans = c.begin()
            try:
                c.execute(sa.insert(t).values(name="crm-pulse:write-check", holder="start",
                                              expires_at=datetime.now(UTC)))
            finally:
                trans.rollback()

    def drop_all(self) -> None:
        """Remove every table of this prefix (tests)."""
        with self.engine.begin() as conn:
            for name in ("outbox", "notification_log", "feedback", "recipient_settings", "scans", "locks", "schema_version"):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {self.prefix}{name}"))

    # -- notification log
    def _entry(self, row: Any) -> LogEntry:
        return LogEntry(
            recipient=row.recipient, fingerprint=row.fingerprint, detector=row.detector,
            first_sent=utc(row.first_sent), last_sent=utc(row.last_sent), last_facts=row.last_facts or {},
            last_severity=row.last_severity, state=row.state, snoozed_until=utc(row.snoozed_until),
            suppressed=bool(row.suppressed), suppressed_facts=row.suppressed_facts,
            suppressed_severity=row.suppressed_severity, send_count=int(row.send_count or 0),
        )

    def log_entries(self, recipient: str, *, state: str | None = None) -> dict[str, LogEntry]:
        t = self.t["notification_log"]
        q = sa.select(t).where(t.c.recipient == recipient)
        if state:
            q = q.where(t.c.state == state)
        with self.engine.connect() as c:
            return {r.fingerprint: self._entry(r) for r in c.execute(q)}

    def log_entry(self, recipient: str, fingerprint: str) -> LogEntry | None:
        t = self.t["notification_log"]
        with self.engine.connect() as c:
            r = c.execute(sa.select(t).where(t.c.recipient == recipient, t.c.fingerprint == fingerprint)).first()
        return self._entry(r) if r else None

    def record_sent(self, recipient: str, insight: Insight, now: datetime, reason: str, conn: Connection | None = None) -> None:
        """Remember that `insight` went to `recipient` (called in the same transaction as enqueue)."""
        t = self.t["notification_log"]
        with self._conn(conn) as c:
            row = c.execute(sa.select(t.c.id, t.c.send_count, t.c.state, t.c.suppressed).where(
                t.c.recipient == recipient, t.c.fingerprint == insight.fingerprint)).first()
            values = dict(last_sent=now, last_facts=insight.facts, last_severity=insight.severity,
                          state="open", closed_at=None, last_reason=reason)
            if row is None:
                c.execute(sa.insert(t).values(
                    recipient=recipient, fingerprint=insight.fingerprint, detector=insight.detector,
                    first_sent=now, suppressed=False, send_count=1, **values))
            else:
                if row.state == "closed":
                    values["first_sent"] = now
                if reason in ("worse", "first"):  # a worse situation lifts "done"
                    values.update(suppressed=False, suppressed_facts=None, suppressed_severity=None)
                c.execute(sa.update(t).where(t.c.id == row.id).values(send_count=(row.send_count or 0) + 1, **values))

    def close_missing(self, recipient: str, present: set[str], now: datetime) -> list[LogEntry]:
        """Close open entries whose insight no longer holds; returns what was closed."""
        t = self.t["notification_log"]
        with self.engine.begin() as c:
            rows = c.execute(sa.select(t).where(t.c.recipient == recipient, t.c.state == "open")).all()
            gone = [r for r in rows if r.fingerprint not in present]
            if gone:
                c.execute(sa.update(t).where(t.c.id.in_([r.id for r in gone])).values(
                    state="closed", closed_at=now, suppressed=False, suppressed_facts=None,
                    suppressed_severity=None, snoozed_until=None))
        return [self._entry(r) for r in gone]

    def _ensure_entry(self, c: Connection, recipient: str, insight: Insight, now: datetime) -> int:
        t = self.t["notification_log"]
        row = c.execute(sa.select(t.c.id).where(t.c.recipient == recipient, t.c.fingerprint == insight.fingerprint)).first()
        if row:
            return int(row.id)
        res = c.execute(sa.insert(t).values(
            recipient=recipient, fingerprint=insight.fingerprint, detector=insight.detector, first_sent=now,
            last_sent=now, last_facts=insight.facts, last_severity=insight.severity, state="open",
            suppressed=False, send_count=0, last_reason="first"))
        return int(res.inserted_primary_key[0])

    def snooze(self, recipient: str, insight: Insight, until: datetime, now: datetime) -> None:
        t = self.t["notification_log"]
        with self.engine.begin() as c:
            rid = self._ensure_entry(c, recipient, insight, now)
            c.execute(sa.update(t).where(t.c.id == rid).values(snoozed_until=until))

    def unsnooze(self, recipient: str, fingerprint: str) -> bool:
        t = self.t["notification_log"]
        with self.engine.begin() as c:
            res = c.execute(sa.update(t).where(t.c.recipient == recipient, t.c.fingerprint == fingerprint,
                                               t.c.snoozed_until.is_not(None)).values(snoozed_until=None))
        return res.rowcount > 0

    def snoozed(self, recipient: str, now: datetime) -> list[LogEntry]:
        t = self.t["notification_log"]
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(t.c.recipient == recipient, t.c.snoozed_until.is_not(None))
                             .order_by(t.c.snoozed_until)).all()
        return [e for e in map(self._entry, rows) if e.snoozed_until and e.snoozed_until > now]

    def mark_done(self, recipient: str, insight: Insight, now: datetime) -> None:
        """Suppress until the insight disappears from a scan (closed) or gets worse than now."""
        t = self.t["notification_log"]
        with self.engine.begin() as c:
            rid = self._ensure_entry(c, recipient, insight, now)
            c.execute(sa.update(t).where(t.c.id == rid).values(
                suppressed=True, suppressed_facts=insight.facts, suppressed_severity=insight.severity))

    # -- feedback
    def record_feedback(self, recipient: str, fingerprint: str, detector: str, useful: bool, now: datetime) -> None:
        self._upsert(self.t["feedback"], {"recipient": recipient, "fingerprint": fingerprint},
                     {"useful": useful, "detector": detector, "at": now})

    def feedback_counts(self) -> dict[str, tuple[int, int]]:
        """detector -> (useful, not useful)."""
        t = self.t["feedback"]
        q = sa.select(t.c.detector, t.c.useful, sa.func.count()).group_by(t.c.detector, t.c.useful)
        out: dict[str, list[int]] = {}
        with self.engine.connect() as c:
            for det, useful, n in c.execute(q):
                out.setdefault(det, [0, 0])[0 if useful else 1] += int(n)
        return {k: (v[0], v[1]) for k, v in out.items()}

    def sent_counts(self) -> dict[str, int]:
        """detector -> how many times an insight of it was sent (all recipients)."""
        t = self.t["notification_log"]
        q = sa.select(t.c.detector, sa.func.sum(t.c.send_count)).group_by(t.c.detector)
        with self.engine.connect() as c:
            return {det: int(n or 0) for det, n in c.execute(q)}

    # -- recipient settings
    def language(self, recipient: str) -> str | None:
        t = self.t["recipient_settings"]
        with self.engine.connect() as c:
            return c.execute(sa.select(t.c.language).where(t.c.recipient == recipient)).scalar()

    def set_language(self, recipient: str, language: str, now: datetime) -> None:
        self._upsert(self.t["recipient_settings"], {"recipient": recipient},
                     {"language": language, "updated_at": now})

    # -- latest scan
    def save_scan(self, insights: list[Insight], scanned_at: datetime, data_now: datetime, keep: int = 3) -> None:
        t = self.t["scans"]
        with self.engine.begin() as c:
            c.execute(sa.insert(t).values(scanned_at=scanned_at, data_now=data_now,
                                          insights=[i.to_dict() for i in insights]))
            ids = [r.id for r in c.execute(sa.select(t.c.id).order_by(t.c.id.desc()).offset(keep))]
            if ids:
                c.execute(sa.delete(t).where(t.c.id.in_(ids)))

    def latest_scan(self) -> tuple[datetime, datetime, list[Insight]] | None:
        """(scanned_at, data_now, insights) of the most recent scan, or None before the first."""
        t = self.t["scans"]
        with self.engine.connect() as c:
            r = c.execute(sa.select(t).order_by(t.c.id.desc()).limit(1)).first()
        if r is None:
            return None
        from detectors.insight import Insight

        return utc(r.scanned_at), utc(r.data_now), [Insight.from_dict(d) for d in r.insights]

    # -- locks (leases: a crashed holder's lock expires)
    def try_lease(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Take or renew the named lease if it is free, expired, or already ours."""
        t = self.t["locks"]
        with self.engine.begin() as c:
            res = c.execute(sa.update(t).where(t.c.name == name, sa.or_(t.c.expires_at < now, t.c.holder == holder))
                            .values(holder=holder, expires_at=until))
            if res.rowcount:
                return True
            exists = c.execute(sa.select(t.c.name).where(t.c.name == name)).first()
            if exists:
                return False
        try:
            with self.engine.begin() as c:
                c.execute(sa.insert(t).values(name=name, holder=holder, expires_at=until))
            return True
        except sa.exc.IntegrityError:
            return False

    def release_lease(self, name: str, holder: str) -> None:
        t = self.t["locks"]
        with self.engine.begin() as c:
            c.execute(sa.delete(t).where(t.c.name == name, t.c.holder == holder))

    @contextlib.contextmanager
    def exclusive(self, name: str, holder: str, now: datetime, ttl_seconds: float = 3600) -> Iterator[bool]:
        """Yields True if this process got the named job lock (pg advisory lock on PostgreSQL,
        a lease row elsewhere); another process holding it yields False."""
        if self.is_postgres:
            key = _lock_key(f"{self.prefix}{name}")
            conn = self.engine.connect()
            try:
                got = bool(conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar())
                conn.commit()
                try:
                    yield got
                finally:
                    if got:
                        conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                        conn.commit()
            finally:
                conn.close()
            return
        from datetime import timedelta

        got = self.try_lease(name, holder, now, now + timedelta(seconds=ttl_seconds))
        try:
            yield got
        finally:
            if got:
                self.release_lease(name, holder)

    def _upsert(self, t: sa.Table, key: dict[str, Any], values: dict[str, Any]) -> None:
        """Update the row with this key, or insert it (portable: SQLite and PostgreSQL alike)."""
        with self.engine.begin() as c:
            res = c.execute(sa.update(t).where(*(t.c[k] == v for k, v in key.items())).values(**values))
            if res.rowcount == 0:
                c.execute(sa.insert(t).values(**key, **values))

    @contextlib.contextmanager
    def _conn(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.engine.begin() as c:
                yield c


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """An exclusive flock on `path` that leaves no file behind: the holder removes it before
    unlocking, so a clean stop leaves no stale `*.migrate.lock` next to the database. A process
    that was waiting on the removed file sees that the path now names another file (or none)
    and locks again, so two processes never hold it at once."""
    import fcntl
    import os

    while True:
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            f.close()
            raise
        if same:
            break
        f.close()  # the holder before us removed this file: lock the one at `path` now
    try:
        yield
    finally:
        # A folder the bot may not write (the file was made by someone else): the file stays, and
        # the lock still works, since waiters then find the same file at `path`.
        with contextlib.suppress(OSError):
            os.unlink(path)
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def _lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg advisory locks."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)

"""Where the maturity check keeps its state: open sessions and completed checks.

Two tables in their own MetaData, created with create_all on the same database URL as the
bot's state (bot.state), so a restart of the bot resumes a half-answered questionnaire and
`/maturity history` can show the trend. `prefix` keeps tests on a shared PostgreSQL apart.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

UTC = timezone.utc
TS = sa.DateTime(timezone=True)


def _utc(dt: datetime) -> datetime:
    """SQLite hands datetimes back naive; everything stored is UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@dataclass
class Session:
    """A questionnaire in progress: one per person; the answers so far, in question order."""

    person_id: str
    channel: str
    chat_id: str
    lang: str
    started_at: datetime
    updated_at: datetime
    department: str | None = None
    answers: dict[str, str] = field(default_factory=dict)

    @property
    def step(self) -> int:
        """How many questions are answered (0..5); the next question is QUESTIONS[step]."""
        return len(self.answers)


@dataclass
class HistoryEntry:
    """One completed check: who, when, what they answered, the level, what the data said."""

    person_id: str
    person_role: str
    completed_at: datetime
    answers: dict[str, str]
    level: int
    label: str
    hints: list[dict[str, Any]] = field(default_factory=list)
    person_name: str | None = None
    department: str | None = None
    lang: str = "ru"
    id: int | None = None


class MaturityStore:
    def __init__(self, engine_or_url: Engine | str, *, prefix: str = "") -> None:
        if isinstance(engine_or_url, str):
            kwargs: dict[str, Any] = {}
            if engine_or_url.startswith("sqlite"):
                kwargs["connect_args"] = {"timeout": 30}
            engine_or_url = sa.create_engine(engine_or_url, **kwargs)
        self.engine: Engine = engine_or_url
        self.md = sa.MetaData()
        self.sessions = sa.Table(
            f"{prefix}maturity_sessions", self.md,
            sa.Column("person_id", sa.String(200), primary_key=True),
            sa.Column("channel", sa.String(20), nullable=False),
            sa.Column("chat_id", sa.String(200), nullable=False),
            sa.Column("lang", sa.String(5), nullable=False),
            sa.Column("department", sa.String(20)),
            sa.Column("answers", sa.JSON, nullable=False),
            sa.Column("started_at", TS, nullable=False),
            sa.Column("updated_at", TS, nullable=False),
        )
        self.history_table = sa.Table(
            f"{prefix}maturity_history", self.md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("person_id", sa.String(200), nullable=False, index=True),
            sa.Column("person_name", sa.String(200)),
            sa.Column("person_role", sa.String(20), nullable=False),
            sa.Column("department", sa.String(20)),
            sa.Column("lang", sa.String(5), nullable=False),
            sa.Column("completed_at", TS, nullable=False),
            sa.Column("answers", sa.JSON, nullable=False),
            sa.Column("level", sa.Integer, nullable=False),
            sa.Column("label", sa.String(5), nullable=False),
            sa.Column("hints", sa.JSON, nullable=False),
        )
        self._create_tables()

    def _create_tables(self) -> None:
        """create_all; two bot processes starting together on one PostgreSQL may race on CREATE
        TABLE, and the loser only needs to see that the other one made the tables."""
        try:
            self.md.create_all(self.engine)
        except sa.exc.DBAPIError:
            inspector = sa.inspect(self.engine)
            if not all(inspector.has_table(t.name) for t in self.md.sorted_tables):
                raise

    def drop_all(self) -> None:
        self.md.drop_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- sessions
    def get_session(self, person_id: str) -> Session | None:
        with self.engine.connect() as c:
            row = c.execute(sa.select(self.sessions).where(self.sessions.c.person_id == person_id)).mappings().first()
        if row is None:
            return None
        return Session(
            person_id=row["person_id"], channel=row["channel"], chat_id=row["chat_id"], lang=row["lang"],
            department=row["department"], answers=dict(row["answers"] or {}),
            started_at=_utc(row["started_at"]), updated_at=_utc(row["updated_at"]),
        )

    def save_session(self, s: Session) -> None:
        values = {"channel": s.channel, "chat_id": s.chat_id, "lang": s.lang, "department": s.department,
                  "answers": dict(s.answers), "started_at": s.started_at, "updated_at": s.updated_at}
        with self.engine.begin() as c:
            done = c.execute(sa.update(self.sessions).where(self.sessions.c.person_id == s.person_id).values(**values))
            if done.rowcount == 0:
                c.execute(sa.insert(self.sessions).values(person_id=s.person_id, **values))

    def delete_session(self, person_id: str) -> bool:
        with self.engine.begin() as c:
            return c.execute(sa.delete(self.sessions).where(self.sessions.c.person_id == person_id)).rowcount > 0

    # -- history
    def complete(self, entry: HistoryEntry) -> int:
        """Store a finished check and close the person's session, in one transaction."""
        with self.engine.begin() as c:
            c.execute(sa.delete(self.sessions).where(self.sessions.c.person_id == entry.person_id))
            res = c.execute(sa.insert(self.history_table).values(
                person_id=entry.person_id, person_name=entry.person_name, person_role=entry.person_role,
                department=entry.department, lang=entry.lang, completed_at=entry.completed_at,
                answers=dict(entry.answers), level=entry.level, label=entry.label, hints=list(entry.hints),
            ))
            entry.id = int(res.inserted_primary_key[0])
        return entry.id

    def history(self, person_id: str | None = None) -> list[HistoryEntry]:
        """Completed checks, oldest first: one person's, or everyone's when person_id is None."""
        h = self.history_table
        q = sa.select(h).order_by(h.c.completed_at, h.c.id)
        if person_id is not None:
            q = q.where(h.c.person_id == person_id)
        with self.engine.connect() as c:
            rows = c.execute(q).mappings().all()
        return [HistoryEntry(
            id=r["id"], person_id=r["person_id"], person_name=r["person_name"], person_role=r["person_role"],
            department=r["department"], lang=r["lang"], completed_at=_utc(r["completed_at"]),
            answers=dict(r["answers"]), level=r["level"], label=r["label"], hints=list(r["hints"] or []),
        ) for r in rows]

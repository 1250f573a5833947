"""Fixtures for the bot-core tests: configs, insights, state stores (SQLite and PostgreSQL)."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest

from bot.channels.base import OutgoingMessage, PermanentFailure, RetryLater, SendReceipt
from bot.config import parse_config
from bot.state import StateStore
from detectors.insight import Audience, Insight
from tests.fakes.postgres import pg_reachable

UTC = timezone.utc
NOW = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

CONFIG_TOML = """
language = "ru"
timezone = "Asia/Almaty"

[[recipients]]
id = "anna"
name = "Анна"
role = "manager"
manager_id = "m1"
telegram_id = 101

[[recipients]]
id = "boris"
name = "Борис"
role = "manager"
manager_id = "m2"
telegram_id = 102
slack_id = "U102"
language = "en"

[[recipients]]
id = "dina"
name = "Дина"
role = "director"
admin = true
telegram_id = 900
quiet_hours = "21:00-08:00"

[[recipients]]
id = "root"
role = "admin"
slack_id = "UADMIN"

[[channels]]
id = "sales-team"
telegram_chat_id = -100500
"""




def require_postgres() -> None:
    """Skip the calling test with a visible reason when PostgreSQL is not running here."""
    if not pg_reachable():
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432 (start it to run the PostgreSQL state tests)")


def _pg_store_under_own_prefix():
    """A PostgreSQL state store under a table prefix of its own, dropped afterwards."""
    require_postgres()
    s = StateStore.open(PG_URL, prefix=f"t{uuid.uuid4().hex[:10]}_")
    yield s
    s.drop_all()
    s.close()


@pytest.fixture
def config():
    return parse_config(CONFIG_TOML, source_name="test.toml")


def make_insight(detector: str = "stalled_deal", *, role: str = "manager", manager_id: str | None = "m1",
                 subject: dict | None = None, severity: str = "warning", **facts) -> Insight:
    return Insight(detector=detector, severity=severity, audience=Audience(role, manager_id),  # type: ignore[arg-type]
                   subject=subject or {"deal_id": "d1"}, facts=facts, evidence={"deal_ids": ["d1"]})


@pytest.fixture(scope="module")
def _pg_module_store():
    """One PostgreSQL schema per test module (creating tables costs ~1 s); emptied per test."""
    yield from _pg_store_under_own_prefix()


def _empty(s: StateStore) -> None:
    import sqlalchemy as sa

    with s.engine.begin() as c:
        for name, table in s.t.items():
            if name != "schema_version":
                c.execute(sa.delete(table))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
        yield s
        s.close()
    else:
        s = request.getfixturevalue("_pg_module_store")
        _empty(s)
        yield s
        _empty(s)


class FakeChannel:
    """A channel that fails in scripted ways: script[i] applies to the i-th send call."""

    def __init__(self, name: str = "telegram", script: list | None = None, delay: float = 0.0) -> None:
        self.name = name
        self.script = list(script or [])
        self.delay = delay
        self.calls = 0
        self.delivered: list[OutgoingMessage] = []

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        i = self.calls
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        step = self.script[i] if i < len(self.script) else None
        if step == "retry":
            raise RetryLater("429 Too Many Requests", after_seconds=0.01)
        if step == "retry_noafter":
            raise RetryLater("502 Bad Gateway")
        if step == "perm":
            raise PermanentFailure("Forbidden: bot was blocked by the user")
        if step == "crash":
            raise ConnectionResetError("connection reset by peer")
        self.delivered.append(message)
        return SendReceipt(message_id=str(len(self.delivered)))


@pytest.fixture
def mk():
    """Build an Insight: mk("silent_client", manager_id="m2", subject={...}, days_silent=20)."""
    return make_insight


@pytest.fixture
def fake_channel():
    return FakeChannel


def scenario_insights() -> list[Insight]:
    """One company's scan: two managers' items, an escalation, team-level items, a lead."""
    from messages import samples

    anna_client = Insight(
        detector="silent_client", severity="warning", audience=Audience("manager", "m1"),
        subject={"client_id": "C-ANNA"},
        facts={"client_name": "ТОО Аннин Клиент", "manager_id": "m1", "manager_name": "Анна", "days_silent": 20,
               "last_reply_at": None, "unanswered_emails": 2, "human_opens": 5, "open_days": 3,
               "last_open_at": "2026-09-30T10:00:00+05:00", "last_email_subject": "КП"},
        evidence={"email_ids": ["E1"]})
    boris_deal = samples.stalled_deal(deal_id="D-BORIS", title="Сделка Бориса", manager_id="m2")
    escalated = samples.stalled_deal(deal_id="D-ESC", title="Горящая сделка Бориса", manager_id="m2", days=60)
    escalated.facts["escalated"] = True
    escalated.severity = "critical"
    unassigned = samples.lead_sla()
    unassigned = Insight("lead_sla", "warning", Audience("director"), {"lead_id": "L-1", "kind": "unassigned"},
                         {**unassigned.facts, "kind": "unassigned", "manager_id": None, "manager_name": None},
                         {"lead_ids": ["L-1"]})
    return [anna_client, boris_deal, escalated, samples.conversion_drop(), samples.manager_load(), unassigned,
            samples.loss_reasons()]


@pytest.fixture
def scenario():
    return scenario_insights()


@pytest.fixture
def chat_config():
    """The test company with Telegram and Slack enabled (Boris and root have Slack ids)."""
    return parse_config(CONFIG_TOML + "\n[telegram]\nenabled = true\n[slack]\nenabled = true\n", source_name="test.toml")


@pytest.fixture
def sqlite_store(tmp_path):
    """SQLite only: for tests whose subject is not the database (the store tests cover PostgreSQL)."""
    s = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


@pytest.fixture
def config_toml():
    return CONFIG_TOML


E2E_T0 = datetime(2026, 10, 1, 4, 0, tzinfo=UTC)  # 09:00 in Almaty: inside everyone's hours


@pytest.fixture
def pulse(sqlite_store, scenario):
    """The bot's parts for an end-to-end chat test, all but the channel: `pulse(extra_toml)` gives
    config (the test company + extra_toml), a settable clock (clock.now starts at E2E_T0), outbox,
    jobs whose every scan finds `scenario`, and the handlers people talk to."""
    from types import SimpleNamespace

    from bot.handlers import Handlers
    from bot.outbox import Outbox
    from bot.scheduler import PulseJobs

    def build(extra_toml: str) -> SimpleNamespace:
        config = parse_config(CONFIG_TOML + extra_toml)
        clock = SimpleNamespace(now=E2E_T0)
        outbox = Outbox(sqlite_store, clock=lambda: clock.now)
        jobs = PulseJobs(config, sqlite_store, outbox, clock=lambda: clock.now,
                         scan_fn=lambda c, now: SimpleNamespace(insights=scenario, data=None, skipped={}))
        handlers = Handlers(config, sqlite_store, clock=lambda: clock.now, scan_now=jobs.run_scan)
        return SimpleNamespace(config=config, clock=clock, outbox=outbox, jobs=jobs, handlers=handlers,
                               store=sqlite_store, scenario=scenario)

    return build


@pytest.fixture
def pg_store():
    """PostgreSQL only, under a table prefix unique to this test, dropped afterwards."""
    yield from _pg_store_under_own_prefix()

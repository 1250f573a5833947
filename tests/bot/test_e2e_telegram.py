"""End to end through the real python-telegram-bot stack and the fake Bot API on 127.0.0.1:
a scheduled digest reaches each person with only their items, buttons work (snooze holds the
item back on the next run, useful is stored), strangers are refused."""
import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from bot.channels.telegram import TelegramChannel, TelegramRateLimiter
from bot.config import parse_config
from bot.handlers import Handlers
from bot.outbox import Outbox
from bot.scheduler import PulseJobs
from tests.fakes.faults import FaultPlan
from tests.fakes.telegram_server import FakeTelegramServer

T0 = datetime(2026, 10, 1, 4, 0, tzinfo=timezone.utc)


async def wait_for(predicate, timeout=10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


def _all(server, chat):
    return "\n".join(t or "" for t in server.texts(chat))


@pytest.fixture
async def world(config_toml, sqlite_store, scenario):
    async with FakeTelegramServer(faults=FaultPlan()) as server:
        config = parse_config(config_toml + "\n[telegram]\nenabled = true\n[delivery]\nrepeat_interval_days = 1\n"
                              "critical_immediately = false\n")
        clock = SimpleNamespace(now=T0)
        outbox = Outbox(sqlite_store, clock=lambda: clock.now)
        jobs = PulseJobs(config, sqlite_store, outbox, clock=lambda: clock.now,
                         scan_fn=lambda c, now: SimpleNamespace(insights=scenario, data=None, skipped={}))
        handlers = Handlers(config, sqlite_store, clock=lambda: clock.now, scan_now=jobs.run_scan)
        channel = TelegramChannel("123456:TEST-token", base_url=server.base_url, on_inbound=handlers,
                                  rate_limiter=TelegramRateLimiter(overall_per_second=1000, per_chat_seconds=0.0,
                                                                   max_retries=0),
                                  timeout=2.0, poll_timeout=1)
        await channel.start()
        try:
            yield SimpleNamespace(server=server, jobs=jobs, outbox=outbox, channel=channel, clock=clock,
                                  store=sqlite_store, scenario=scenario)
        finally:
            await channel.stop()


async def _digest_run(w):
    await w.jobs.run_scan()
    await w.jobs.run_digest(["anna", "boris", "dina", "sales-team"])
    await w.outbox.drain_until_idle({"telegram": w.channel}, timeout=20)


async def test_digest_buttons_and_next_run(world):
    w = world
    await _digest_run(w)
    anna, boris, dina = _all(w.server, 101), _all(w.server, 102), _all(w.server, 900)
    assert "Аннин Клиент" in anna and "Бориса" not in anna
    assert "Сделка Бориса" in boris and "Аннин Клиент" not in boris
    assert "Горящая сделка Бориса" in dina and "Аннин Клиент" not in dina
    team = _all(w.server, -100500)
    assert team and "Бориса" not in team and "Аннин" not in team

    # Boris snoozes his ordinary deal for 7 days with the button on the digest
    boris_deal, escalated = w.scenario[1].fingerprint, w.scenario[2].fingerprint
    carrying = [m for m in w.server.messages["102"]
                if any(b["callback_data"] == f"snooze:{boris_deal}:7d" for row in m.buttons for b in row)]
    assert carrying, "the digest carries a snooze button for the deal"
    before = len(w.server.texts(102))
    w.server.push_button(102, f"snooze:{boris_deal}:7d", message_id=carrying[0].message_id)
    await wait_for(lambda: len(w.server.texts(102)) > before)
    assert "Snoozed until" in w.server.texts(102)[-1]

    # Anna finds her item useful: stored per detector
    anna_fp = w.scenario[0].fingerprint
    msg = next(m for m in w.server.messages["101"] if any(b["callback_data"] == f"useful:{anna_fp}"
                                                         for row in m.buttons for b in row))
    n = len(w.server.texts(101))
    w.server.push_button(101, f"useful:{anna_fp}", message_id=msg.message_id)
    await wait_for(lambda: len(w.server.texts(101)) > n)
    assert w.store.feedback_counts() == {"silent_client": (1, 0)}

    # two days later (repeat interval 1 day): the escalated deal repeats, the snoozed one does not
    n = len(w.server.texts(102))
    w.clock.now = T0 + timedelta(days=2)
    await _digest_run(w)
    new = "\n".join(t or "" for t in w.server.texts(102)[n:])
    assert "Горящая сделка Бориса" in new
    assert "Сделка Бориса" not in new.replace("Горящая сделка Бориса", "")
    assert escalated in {fp for fp, _ in w.store.log_entries("boris").items()}


async def test_stranger_is_refused_with_their_id(world):
    w = world
    w.server.push_text(555, "/insights")
    await wait_for(lambda: w.server.texts(555))
    text = w.server.texts(555)[0]
    assert "555" in text and "Sorry" in text and "Бориса" not in text


async def test_commands_through_telegram(world):
    w = world
    await w.jobs.run_scan()
    w.server.push_text(101, "/insights", language_code="ru")
    await wait_for(lambda: w.server.texts(101))
    assert "Аннин Клиент" in _all(w.server, 101) and "Бориса" not in _all(w.server, 101)

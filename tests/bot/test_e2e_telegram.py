"""End to end through the real python-telegram-bot stack and the fake Bot API on 127.0.0.1:
a scheduled digest reaches each person with only their items, buttons work (snooze holds the
item back on the next run, useful is stored), strangers are refused."""
from datetime import timedelta
from types import SimpleNamespace

import pytest

from bot.channels.telegram import TelegramChannel, TelegramRateLimiter
from tests.bot.conftest import E2E_T0 as T0
from tests.channels.conftest import wait_for
from tests.fakes.faults import FaultPlan
from tests.fakes.telegram_server import FakeTelegramServer


def _all(server, chat):
    return "\n".join(t or "" for t in server.texts(chat))


@pytest.fixture
async def world(pulse):
    async with FakeTelegramServer(faults=FaultPlan()) as server:
        p = pulse("\n[telegram]\nenabled = true\n[delivery]\nrepeat_interval_days = 1\n"
                  "critical_immediately = false\n")
        channel = TelegramChannel("123456:TEST-token", base_url=server.base_url, on_inbound=p.handlers,
                                  rate_limiter=TelegramRateLimiter(overall_per_second=1000, per_chat_seconds=0.0,
                                                                   max_retries=0),
                                  timeout=2.0, poll_timeout=1)
        await channel.start()
        try:
            yield SimpleNamespace(server=server, jobs=p.jobs, outbox=p.outbox, channel=channel, clock=p.clock,
                                  store=p.store, scenario=p.scenario)
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

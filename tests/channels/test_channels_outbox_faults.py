"""bot.outbox driving the real channels through faulty fake servers: every message arrives,
in order per recipient, none twice; a dead chat is recorded as failed with its reason."""
from __future__ import annotations

import pytest

from bot.channels.base import OutgoingMessage
from bot.channels.slack import SlackChannel
from bot.channels.telegram import TelegramChannel
from tests.channels.conftest import TOKEN, fast_limiter
from tests.fakes.faults import FaultPlan
from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, FakeSlackServer
from tests.fakes.telegram_server import FakeTelegramServer

outbox_mod = pytest.importorskip("bot.outbox", reason="bot.outbox (engineer bot-core) not there")
state_mod = pytest.importorskip("bot.state", reason="bot.state (engineer bot-core) not there")

PNG = b"\x89PNG\r\n\x1a\n" + b"c" * 300


@pytest.fixture
def outbox(tmp_path):
    store = state_mod.StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield outbox_mod.Outbox(store, backoff_base=0.02, backoff_max=0.2)
    store.close()


def enqueue(outbox, channel: str, addresses: list[str], per_address: int) -> None:
    for address in addresses:
        outbox.enqueue(f"{channel}:{address}", [
            OutgoingMessage(channel, address, {"text": f"{address}-{i}", "buttons": [],
                                               "blocks": []},
                            photo_png=PNG if i == 1 else None, dedup_key=f"{address}-{i}")
            for i in range(per_address)])


async def test_telegram_through_the_outbox_under_faults(outbox):
    faults = FaultPlan(share=0.3, slow_seconds=0.1, seed=11,
                       methods=frozenset({"sendMessage", "sendPhoto"}))
    async with FakeTelegramServer(faults=faults, blocked_chats={"999"}) as server:
        channel = TelegramChannel(TOKEN, base_url=server.base_url,
                                  rate_limiter=fast_limiter(), timeout=1.0)
        chats = ["301", "302", "303", "304"]
        enqueue(outbox, "telegram", chats + ["999"], 6)
        try:
            result = await outbox.drain_until_idle({"telegram": channel}, timeout=60,
                                                   max_sleep=0.1)
        finally:
            await channel.stop()
    assert set(faults.injected) == {"429", "500", "slow", "drop"} and result.retried > 0
    for chat in chats:
        assert server.texts(chat) == [f"{chat}-{i}" for i in range(6)]
        assert server.messages[chat][1].photo == PNG
    assert outbox.counts() == {"sent": 24, "failed": 6}
    failed = outbox.failed()
    assert {row.address for row in failed} == {"999"}
    assert all("blocked" in row.last_error for row in failed)


async def test_slack_through_the_outbox_under_faults(outbox):
    faults = FaultPlan(share=0.3, slow_seconds=0.1, seed=12,
                       methods=frozenset({"chat.postMessage", "files.completeUploadExternal"}))
    async with FakeSlackServer(faults=faults) as server:
        server.archived.add("C999")
        channel = SlackChannel(BOT_TOKEN, app_token=APP_TOKEN, base_url=server.base_url,
                               timeout=2, rate_limit_retries=0)
        channels = ["C1", "C2", "C3"]
        enqueue(outbox, "slack", channels + ["C999"], 5)
        try:
            result = await outbox.drain_until_idle({"slack": channel}, timeout=60,
                                                   max_sleep=0.1)
        finally:
            await channel.stop()
    assert result.retried > 0
    for c in channels:
        assert server.texts(c) == [f"{c}-{i}" for i in range(5)]
        assert [p.kind for p in server.posts[c]].count("file") == 1
    assert outbox.counts() == {"sent": 15, "failed": 5}
    assert all("is_archived" in row.last_error for row in outbox.failed())

"""Fixtures for the channel tests: fake servers and channels wired to them."""
from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.channels.base import Inbound, OutgoingMessage
from bot.channels.telegram import TelegramChannel, TelegramRateLimiter
from tests.fakes.faults import FaultPlan
from tests.fakes.telegram_server import FakeTelegramServer

TOKEN = "123456:TEST-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll until predicate() is true; fail with a clear message after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


class Recorder:
    """An on_inbound handler that records what arrived and answers with a fixed reply."""

    def __init__(self, channel: str = "telegram") -> None:
        self.inbound: list[Inbound] = []
        self.channel = channel

    async def __call__(self, inbound: Inbound) -> list[OutgoingMessage]:
        self.inbound.append(inbound)
        said = inbound.text or inbound.action
        return [OutgoingMessage(self.channel, inbound.chat_id, {"text": f"got {said}"})]


def fast_limiter(**overrides) -> TelegramRateLimiter:
    """Flood limits loose enough for quick tests (the benchmark checks the real ones)."""
    settings = dict(overall_per_second=1000, per_chat_seconds=0.0, max_retries=0)
    settings.update(overrides)
    return TelegramRateLimiter(**settings)


@pytest.fixture
async def tg_server():
    async with FakeTelegramServer(faults=FaultPlan()) as server:
        yield server


@pytest.fixture
async def tg_channel(tg_server):
    """A sending-only TelegramChannel pointed at the fake server."""
    channel = TelegramChannel(TOKEN, base_url=tg_server.base_url, rate_limiter=fast_limiter(),
                              timeout=2.0)
    yield channel
    await channel.stop()


@pytest.fixture
async def tg_bot(tg_server):
    """A receiving TelegramChannel (long polling) with a recording handler."""
    recorder = Recorder()
    channel = TelegramChannel(TOKEN, base_url=tg_server.base_url, on_inbound=recorder,
                              rate_limiter=fast_limiter(), timeout=2.0, poll_timeout=1,
                              admin_chat_ids=[900])
    await channel.start()
    channel.recorder = recorder  # type: ignore[attr-defined]
    yield channel
    await channel.stop()


@pytest.fixture
async def slack_server():
    from tests.fakes.slack_server import FakeSlackServer

    async with FakeSlackServer() as server:
        yield server


# PTB 22 warns about RetryAfter.retry_after's future type every time a 429 is built (inside
# PTB itself); the fault tests build many. Silence that one warning for these tests only.
_RETRY_AFTER_WARNING = pytest.mark.filterwarnings(
    "ignore:Deprecated since version v22.2:telegram.warnings.PTBDeprecationWarning")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(_RETRY_AFTER_WARNING)

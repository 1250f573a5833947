"""Flood limits: the fake server enforces them, and TelegramRateLimiter keeps within them."""
from __future__ import annotations

import asyncio

from bot.channels.base import OutgoingMessage
from bot.channels.telegram import Pacer, TelegramChannel, TelegramRateLimiter
from tests.channels.conftest import TOKEN, fast_limiter
from tests.fakes.sendloop import deliver_all
from tests.fakes.telegram_server import FakeTelegramServer, FloodLimits

CHATS = [201, 202, 203, 204, 205]


def burst() -> list[OutgoingMessage]:
    return [OutgoingMessage("telegram", str(c), {"text": f"{c}-{i}"}, dedup_key=f"{c}-{i}")
            for i in range(4) for c in CHATS]


async def _send(limiter: TelegramRateLimiter):
    async with FakeTelegramServer(flood_limits=FloodLimits(10, 0.3)) as server:
        channel = TelegramChannel(TOKEN, base_url=server.base_url, rate_limiter=limiter,
                                  timeout=2.0)
        try:
            report = await deliver_all(channel, burst(), max_wait=0.2)
        finally:
            await channel.stop()
    return server, report


async def test_without_pacing_the_fake_server_answers_429():
    server, report = await _send(fast_limiter())
    assert server.statuses[429] > 0 and server.flood_limits.exceeded
    assert report.retries > 0  # ... and the send loop still got everything through
    for c in CHATS:
        assert server.texts(c) == [f"{c}-{i}" for i in range(4)]


async def test_the_rate_limiter_keeps_under_overall_and_per_chat_limits():
    limiter = TelegramRateLimiter(overall_per_second=10, per_chat_seconds=0.3, max_retries=0)
    server, report = await _send(limiter)
    assert server.statuses[429] == 0 and report.retries == 0
    for c in CHATS:
        assert server.texts(c) == [f"{c}-{i}" for i in range(4)]


async def test_pacer_never_lets_more_than_rate_answer_within_a_window():
    pacer = Pacer(5, 0.2)
    seen: list[float] = []
    loop = asyncio.get_running_loop()

    async def request(delay: float) -> None:
        async with pacer:
            seen.append(loop.time())  # "the server saw it"
            await asyncio.sleep(delay)

    started = loop.time()
    await asyncio.gather(*(request(0.01 * (i % 3)) for i in range(20)))
    elapsed = loop.time() - started
    seen.sort()
    for i in range(len(seen) - 5):
        assert seen[i + 5] - seen[i] >= 0.2, f"6 requests within {seen[i + 5] - seen[i]:.3f}s"
    assert elapsed < 3.0  # 20 at 5 per 0.2 s is about 0.8 s; one per window would be 4 s

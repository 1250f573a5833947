"""Subprocess for the SIGKILL test: drain the outbox at STATE_URL to a fake Telegram server.

    python tests/channels/outbox_sender.py STATE_URL BASE_URL

It is the bot's sending half (bot.outbox.Outbox + TelegramChannel) and nothing else, so the
test can kill it with SIGKILL at any moment and start it again on the same state.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bot.channels.telegram import TelegramChannel, TelegramRateLimiter  # noqa: E402
from bot.outbox import Outbox  # noqa: E402
from bot.state import StateStore  # noqa: E402


async def main(state_url: str, base_url: str) -> int:
    store = StateStore.open(state_url)
    # A short lease: a restarted sender takes over the dead one's lane after 1.5 s.
    outbox = Outbox(store, lease_seconds=1.5, backoff_base=0.05, backoff_max=0.5)
    limiter = TelegramRateLimiter(overall_per_second=1000, per_chat_seconds=0, max_retries=0)
    channel = TelegramChannel("123456:TEST-token", base_url=base_url, rate_limiter=limiter,
                              timeout=2.0)
    print("ready", flush=True)
    try:
        await outbox.drain_until_idle({"telegram": channel}, timeout=60, max_sleep=0.1)
    finally:
        await channel.stop()
        store.close()
    counts = outbox.counts()
    print("done", counts, flush=True)
    return 0 if set(counts) <= {"sent"} else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))

"""A separate bot process for the outbox crash and two-process tests (not collected by pytest).

    python outbox_worker.py URL PREFIX OUTFILE HOLDER DELAY

Drains the outbox at URL through a channel that appends each delivered dedup_key to OUTFILE
(flushed and fsynced, like an API that confirmed the message), sleeping DELAY per message.
"""
import asyncio
import os
import sys

from bot.channels.base import SendReceipt
from bot.outbox import Outbox
from bot.state import StateStore


class FileChannel:
    name = "telegram"

    def __init__(self, path: str, delay: float) -> None:
        self.path = path
        self.delay = delay

    async def send(self, message):
        await asyncio.sleep(self.delay)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(message.dedup_key + "\n")
            f.flush()
            os.fsync(f.fileno())
        return SendReceipt(message_id=message.dedup_key)


async def main() -> None:
    url, prefix, out, holder, delay = sys.argv[1:6]
    store = StateStore.open(url, prefix=prefix)
    box = Outbox(store, holder=holder, lease_seconds=1.0, concurrency=8)
    await box.drain_until_idle({"telegram": FileChannel(out, float(delay))}, timeout=120, max_sleep=0.2)
    store.close()


if __name__ == "__main__":
    asyncio.run(main())

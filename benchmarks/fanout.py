"""Fan-out benchmark: a digest to 1,000 Telegram recipients within Telegram's flood limits.

The real TelegramChannel (python-telegram-bot + TelegramRateLimiter) sends to the fake Bot API
server (in its own process), which enforces 30 messages/s overall and 1 message/s per chat and
answers 429 when a limit is exceeded. By default (`--via outbox`) the digests go the way the
product delivers them: enqueued into bot.outbox.Outbox on a SQLite state file, then sent by the
outbox's sender loop (`run_forever`, as `crm-pulse run` does) through the channel; the clock
starts before the enqueue. `--via direct` sends straight through the channel (the channel's own
pacing, without the outbox's database work). Printed: elapsed time, the floor the limits allow
(messages / 30), their ratio (target <= 1.2) and the number of 429s (target 0).

    .venv/bin/python benchmarks/fanout.py [--via outbox|direct] [--recipients 1000] [--per-recipient 1]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bot.channels.base import OutgoingMessage, PermanentFailure, RetryLater  # noqa: E402
from bot.channels.telegram import TelegramChannel, TelegramRateLimiter  # noqa: E402

OVERALL_PER_SECOND = 30


def digest_payloads() -> list[dict]:
    """A real manager digest (Russian, with buttons) from the messages layer."""
    from messages import digest, samples, telegram

    built = digest.build_digest([samples.silent_client(), samples.stalled_deal()], lang="ru",
                                now=datetime(2026, 11, 20, 9, tzinfo=timezone.utc),
                                tz="Asia/Almaty", recipient_name="Ольга")
    assert built is not None
    return telegram.format_digest(built)


@asynccontextmanager
async def server_process():
    """The fake server in its own process, as Telegram is: its clock and CPU are not ours."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.telegram_server", "--flood-limits", cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line.startswith("port "):
            raise RuntimeError(f"fake server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        await proc.wait()


async def send_direct(channel: TelegramChannel, messages: list[OutgoingMessage],
                      concurrency: int) -> tuple[float, str]:
    """Each recipient's messages in order, `concurrency` recipients at a time, retrying on 429."""
    retry_later = failed = 0
    gate = asyncio.Semaphore(concurrency)  # like the outbox's concurrent lanes

    async def one_recipient(queue: list[OutgoingMessage]) -> None:
        nonlocal retry_later, failed
        async with gate:
            for message in queue:
                while True:
                    try:
                        await channel.send(message)
                        break
                    except RetryLater as exc:
                        retry_later += 1
                        await asyncio.sleep(exc.after_seconds or 1.0)
                    except PermanentFailure:
                        failed += 1
                        break

    lanes: dict[str, list[OutgoingMessage]] = {}
    for message in messages:
        lanes.setdefault(message.address, []).append(message)
    started = time.perf_counter()
    await asyncio.gather(*(one_recipient(q) for q in lanes.values()))
    return time.perf_counter() - started, f"RetryLater seen: {retry_later}; permanent failures: {failed}"


async def send_via_outbox(channel: TelegramChannel, messages: list[OutgoingMessage],
                          concurrency: int) -> tuple[float, str]:
    """Enqueue every recipient's digest (one transaction each, as delivery does), then let the
    outbox's sender loop deliver until nothing is pending."""
    from bot.outbox import Outbox
    from bot.state import StateStore

    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore.open(f"sqlite:///{Path(tmp) / 'state.db'}")
        try:
            outbox = Outbox(store, concurrency=concurrency)
            by_recipient: dict[str, list[OutgoingMessage]] = {}
            for message in messages:
                by_recipient.setdefault(message.address, []).append(message)
            started = time.perf_counter()
            for address, queue in by_recipient.items():
                outbox.enqueue(f"r{address}", queue, detectors="silent_client,stalled_deal")
            enqueued = time.perf_counter() - started
            stop = asyncio.Event()
            sender = asyncio.create_task(outbox.run_forever({"telegram": channel}, poll_seconds=0.5, stop=stop))
            while outbox.counts().get("pending", 0):
                await asyncio.sleep(0.2)
            elapsed = time.perf_counter() - started
            stop.set()
            outbox.wake.set()
            await sender
            counts = outbox.counts()
            retried = sum(1 for row in outbox.rows() if row.attempts > 1)
        finally:
            store.close()
    return elapsed, (f"enqueue {enqueued:.2f} s; outbox rows {counts}; "
                     f"rows that needed a retry: {retried}")


async def run(recipients: int, per_recipient: int, concurrency: int, via: str) -> int:
    payloads = digest_payloads()
    messages = [OutgoingMessage("telegram", str(100_000 + r), payloads[i % len(payloads)],
                                dedup_key=f"{r}:{i}")
                for i in range(per_recipient) for r in range(recipients)]
    async with server_process() as base_url:
        channel = TelegramChannel("123456:BENCH-token", base_url=base_url,
                                  rate_limiter=TelegramRateLimiter(max_retries=0), timeout=30)
        await channel.open()
        send = send_via_outbox if via == "outbox" else send_direct
        elapsed, detail = await send(channel, messages, concurrency)
        await channel.stop()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base_url}/_stats") as response:
                stats = await response.json()
    delivered = stats["delivered"]
    too_many = stats["statuses"].get("429", 0)
    exceeded = stats["limits_exceeded"]

    floor = len(messages) / OVERALL_PER_SECOND
    if per_recipient > 1:  # one message per chat per second bounds each lane too
        floor = max(floor, (per_recipient - 1) * 1.0)
    print(f"fanout via {via}: {recipients} recipients x {per_recipient} message(s) = {len(messages)}, "
          f"delivered {delivered}")
    print(f"elapsed {elapsed:.1f} s, floor {floor:.1f} s ({OVERALL_PER_SECOND} msg/s overall, "
          f"1/s per chat), ratio {elapsed / floor:.3f} (target <= 1.2)")
    print(f"429 answers received: {too_many} (target 0); {detail}"
          + (f"; limits exceeded: {exceeded}" if exceeded else ""))
    return 0 if delivered == len(messages) and too_many == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--per-recipient", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--via", choices=("outbox", "direct"), default="outbox",
                        help="outbox: enqueue on a SQLite state and let the sender loop deliver "
                             "(as the product does); direct: straight through the channel")
    args = parser.parse_args()
    return asyncio.run(run(args.recipients, args.per_recipient, args.concurrency, args.via))


if __name__ == "__main__":
    sys.exit(main())

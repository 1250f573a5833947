"""Fan-out benchmark: a digest to 1,000 Telegram recipients within Telegram's flood limits.

The real TelegramChannel (python-telegram-bot + TelegramRateLimiter) sends to the fake Bot API
server, which enforces 30 messages/s overall and 1 message/s per chat and answers 429 when a
limit is exceeded. Printed: elapsed time, the floor the limits allow (recipients / 30), their
ratio (target <= 1.2) and the number of 429s (target 0).

    .venv/bin/python benchmarks/fanout.py [--recipients 1000] [--per-recipient 1]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
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


async def run(recipients: int, per_recipient: int, concurrency: int) -> int:
    payloads = digest_payloads()
    messages = [OutgoingMessage("telegram", str(100_000 + r), payloads[i % len(payloads)],
                                dedup_key=f"{r}:{i}")
                for i in range(per_recipient) for r in range(recipients)]
    async with server_process() as base_url:
        channel = TelegramChannel("123456:BENCH-token", base_url=base_url,
                                  rate_limiter=TelegramRateLimiter(max_retries=0), timeout=30)
        await channel.open()
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
        elapsed = time.perf_counter() - started
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
    print(f"fanout: {recipients} recipients x {per_recipient} message(s) = {len(messages)}, "
          f"delivered {delivered}")
    print(f"elapsed {elapsed:.1f} s, floor {floor:.1f} s ({OVERALL_PER_SECOND} msg/s overall, "
          f"1/s per chat), ratio {elapsed / floor:.3f} (target <= 1.2)")
    print(f"429 answers received: {too_many} (target 0); RetryLater seen: {retry_later}; "
          f"permanent failures: {failed}" + (f"; limits exceeded: {exceeded}" if exceeded else ""))
    return 0 if delivered == len(messages) and too_many == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--per-recipient", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    return asyncio.run(run(args.recipients, args.per_recipient, args.concurrency))


if __name__ == "__main__":
    sys.exit(main())

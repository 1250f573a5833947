"""A small retrying send loop: what the outbox does, reduced to the minimum, for channel tests.

Messages to one recipient go strictly one after another (order per recipient); recipients are
served concurrently. RetryLater waits (its after_seconds, capped) and retries the same message;
PermanentFailure records the reason and moves on.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.channels.base import Channel, OutgoingMessage, PermanentFailure, RetryLater


@dataclass
class LoopReport:
    sent: int = 0
    retries: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # dedup_key -> reason
    retry_reasons: list[str] = field(default_factory=list)


async def deliver_all(channel: Channel, messages: Sequence[OutgoingMessage], *,
                      max_wait: float = 1.5, max_attempts: int = 30) -> LoopReport:
    report = LoopReport()
    by_recipient: dict[str, list[OutgoingMessage]] = {}
    for message in messages:
        by_recipient.setdefault(message.address, []).append(message)

    async def one_recipient(queue: list[OutgoingMessage]) -> None:
        for message in queue:
            for attempt in range(max_attempts):
                try:
                    await channel.send(message)
                    report.sent += 1
                    break
                except RetryLater as exc:
                    report.retries += 1
                    report.retry_reasons.append(exc.reason)
                    await asyncio.sleep(min(exc.after_seconds or 0.05 * (attempt + 1), max_wait))
                except PermanentFailure as exc:
                    report.failed[message.dedup_key] = exc.reason
                    break
            else:
                raise AssertionError(f"{message.dedup_key} not sent after {max_attempts} tries")

    await asyncio.gather(*(one_recipient(q) for q in by_recipient.values()))
    return report

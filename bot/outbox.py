"""The outbox: every message is stored before it is sent and marked sent after the API says so.

A failing chat API never loses an insight: RetryLater backs off (honouring the API's
retry-after), PermanentFailure is recorded with its reason for the admin, and a restart
picks up whatever is still pending. Messages to one recipient go out in the order they were
enqueued; a recipient's "lane" is held by one process at a time through a lease row, so two
bot processes sharing one database never send the same message twice.

Killed mid-send (SIGKILL, power loss), a message the chat API already accepted but we had not
yet marked sent goes out again after the restart: no chat API lets us ask "did you get this?".
So at most one message per chat is in flight at any moment (a recipient's lane sends one at a
time, and a per-chat lock covers two recipients who share a chat), and a kill repeats at most
one message per chat: the one that was in flight in it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.channels.base import Channel, OutgoingMessage, PermanentFailure, RetryLater
from bot.state import OutboxRow, StateStore, utc

log = logging.getLogger("crm_pulse.outbox")
UTC = timezone.utc


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class DrainResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: "DrainResult") -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.errors.extend(other.errors)


class Outbox:
    def __init__(self, store: StateStore, *, clock: Callable[[], datetime] = _now, holder: str | None = None,
                 lease_seconds: float = 60.0, max_attempts: int = 30, backoff_base: float = 1.0,
                 backoff_max: float = 600.0, concurrency: int = 64) -> None:
        self.store = store
        self.t = store.t["outbox"]
        self.clock = clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.concurrency = concurrency
        self.wake = asyncio.Event()
        # one message in flight per chat, whichever lanes send to it (see the module docstring)
        self._chat_locks: dict[tuple[str, str], asyncio.Lock] = {}
        # Told each send attempt's outcome (channel, "sent" | "failed" | "retried"): bot.metrics.
        self.observe: Callable[[str, str], None] | None = None

    # ------------------------------------------------------------ enqueue
    def enqueue(self, recipient: str, messages: list[OutgoingMessage], *, conn: Connection | None = None,
                detectors: str | None = None) -> list[int]:
        """Store messages (in this order) for `recipient`; a dedup_key already present is skipped.
        Pass `conn` to enqueue inside a caller's transaction (with the notification log)."""
        now = self.clock()
        ids: list[int] = []
        with self.store._conn(conn) as c:
            for m in messages:
                key = m.dedup_key or f"auto:{uuid.uuid4().hex}"
                stmt = self._insert(c).values(
                    dedup_key=key, recipient=recipient, channel=m.channel, address=str(m.address),
                    payload=m.payload, photo=m.photo_png, status="pending", attempts=0,
                    next_attempt_at=now, created_at=now, edit_message_id=m.edit_message_id, detectors=detectors,
                ).on_conflict_do_nothing(index_elements=[self.t.c.dedup_key]).returning(self.t.c.id)
                row = c.execute(stmt).first()
                if row is not None:  # None: this key is already stored (a repeated run, another process)
                    ids.append(int(row.id))
        if ids:
            self.wake.set()
        return ids

    def _insert(self, conn: Connection) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING for the two databases we support."""
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(self.t)

    # ------------------------------------------------------------ reading
    def _row(self, r: Any) -> OutboxRow:
        return OutboxRow(
            id=r.id, dedup_key=r.dedup_key, recipient=r.recipient, channel=r.channel, address=r.address,
            payload=r.payload, photo=r.photo, status=r.status, attempts=r.attempts,
            next_attempt_at=utc(r.next_attempt_at), last_error=r.last_error, created_at=utc(r.created_at),
            sent_at=utc(r.sent_at), edit_message_id=r.edit_message_id, sent_message_id=r.sent_message_id,
        )

    def rows(self, *, status: str | None = None, recipient: str | None = None) -> list[OutboxRow]:
        q = sa.select(self.t).order_by(self.t.c.id)
        if status:
            q = q.where(self.t.c.status == status)
        if recipient:
            q = q.where(self.t.c.recipient == recipient)
        with self.store.engine.connect() as c:
            return [self._row(r) for r in c.execute(q)]

    def counts(self) -> dict[str, int]:
        q = sa.select(self.t.c.status, sa.func.count()).group_by(self.t.c.status)
        with self.store.engine.connect() as c:
            return {s: int(n) for s, n in c.execute(q)}

    def failed(self, limit: int = 50) -> list[OutboxRow]:
        q = sa.select(self.t).where(self.t.c.status == "failed").order_by(self.t.c.id.desc()).limit(limit)
        with self.store.engine.connect() as c:
            return [self._row(r) for r in c.execute(q)]

    def next_due(self) -> datetime | None:
        with self.store.engine.connect() as c:
            v = c.execute(sa.select(sa.func.min(self.t.c.next_attempt_at)).where(self.t.c.status == "pending")).scalar()
        return utc(v)

    # ------------------------------------------------------------ sending
    def _due_recipients(self, now: datetime) -> list[str]:
        q = (sa.select(self.t.c.recipient, sa.func.min(self.t.c.id).label("first"))
             .where(self.t.c.status == "pending", self.t.c.next_attempt_at <= now)
             .group_by(self.t.c.recipient).order_by("first"))
        with self.store.engine.connect() as c:
            return [r.recipient for r in c.execute(q)]

    def _head(self, recipient: str) -> OutboxRow | None:
        q = (sa.select(self.t).where(self.t.c.recipient == recipient, self.t.c.status == "pending")
             .order_by(self.t.c.id).limit(1))
        with self.store.engine.connect() as c:
            r = c.execute(q).first()
        return self._row(r) if r else None

    def _update(self, row_id: int, **values: Any) -> None:
        with self.store.engine.begin() as c:
            c.execute(sa.update(self.t).where(self.t.c.id == row_id, self.t.c.status == "pending").values(**values))

    def backoff(self, attempts: int) -> float:
        return min(self.backoff_max, self.backoff_base * (2 ** max(0, attempts - 1)))

    async def _lane(self, recipient: str, channels: Mapping[str, Channel]) -> DrainResult:
        res = DrainResult()
        lease_name = f"outbox:{recipient}"
        now = self.clock()
        if not self.store.try_lease(lease_name, self.holder, now, now + self.lease):
            return res  # another process is sending to this person right now
        lease_until = now + self.lease
        try:
            while True:
                row = self._head(recipient)
                now = self.clock()
                if row is None or row.next_attempt_at > now:
                    break  # later messages wait behind the head: order per recipient
                channel = channels.get(row.channel)
                if channel is None:
                    self._update(row.id, last_error=f"channel {row.channel!r} is not running in this process",
                                 next_attempt_at=now + timedelta(seconds=self.backoff_max))
                    res.errors.append(f"{row.channel} not running")
                    break
                if lease_until - now < self.lease * 2 / 3:  # renew before it can expire mid-send
                    if not self.store.try_lease(lease_name, self.holder, now, now + self.lease):
                        break
                    lease_until = now + self.lease
                lock = self._chat_locks.setdefault((row.channel, row.address), asyncio.Lock())
                async with lock:  # held until the outcome is recorded
                    ok = await self._send_head(row, channel, res)
                if not ok:
                    break  # to be retried: later messages wait behind it
        finally:
            self.store.release_lease(lease_name, self.holder)
        return res

    async def _send_head(self, row: OutboxRow, channel: Channel, res: DrainResult) -> bool:
        """Send one stored message and record the outcome (sent, failed for good, or due again
        later); False when it is due again later, so the lane stops."""
        msg = OutgoingMessage(channel=row.channel, address=row.address, payload=row.payload,  # type: ignore[arg-type]
                              photo_png=row.photo, dedup_key=row.dedup_key, edit_message_id=row.edit_message_id)
        attempts = row.attempts + 1
        try:
            receipt = await channel.send(msg)
        except PermanentFailure as e:
            self._update(row.id, status="failed", attempts=attempts, last_error=e.reason)
            log.warning("outbox: message %s to %s failed for good: %s", row.id, row.recipient, e.reason)
            res.failed += 1
            self._observe(row.channel, "failed")
            return True
        except Exception as e:  # RetryLater, or an unexpected error: it must not lose the message
            reason = e.reason if isinstance(e, RetryLater) else f"{type(e).__name__}: {e}"
            after = e.after_seconds if isinstance(e, RetryLater) else None
            if attempts >= self.max_attempts:
                self._update(row.id, status="failed", attempts=attempts,
                             last_error=f"gave up after {attempts} attempts: {reason}")
                res.failed += 1
                self._observe(row.channel, "failed")
                return True
            delay = after if after is not None else self.backoff(attempts)
            self._update(row.id, attempts=attempts, last_error=reason,
                         next_attempt_at=self.clock() + timedelta(seconds=max(0.0, delay)))
            res.retried += 1
            self._observe(row.channel, "retried")
            return False
        self._update(row.id, status="sent", attempts=attempts, sent_at=self.clock(),
                     sent_message_id=str(receipt.message_id) if receipt is not None else None, last_error=None)
        res.sent += 1
        self._observe(row.channel, "sent")
        return True

    def _observe(self, channel: str, outcome: str) -> None:
        if self.observe is not None:
            try:
                self.observe(channel, outcome)
            except Exception:  # counting must never stop a send from being recorded
                log.warning("outbox: the metrics hook failed", exc_info=True)

    async def drain(self, channels: Mapping[str, Channel]) -> DrainResult:
        """One pass: send everything due now, each recipient's messages in order."""
        total = DrainResult()
        recipients = self._due_recipients(self.clock())
        sem = asyncio.Semaphore(self.concurrency)

        async def run(r: str) -> DrainResult:
            async with sem:
                return await self._lane(r, channels)

        for part in await asyncio.gather(*(run(r) for r in recipients)):
            total.add(part)
        return total

    async def drain_until_idle(self, channels: Mapping[str, Channel], *, timeout: float = 60.0,
                               max_sleep: float = 1.0) -> DrainResult:
        """Drain, sleeping until the next retry is due, until nothing is pending (or timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        total = DrainResult()
        while True:
            part = await self.drain(channels)
            total.add(part)
            due = self.next_due()
            if due is None or loop.time() >= deadline:
                return total
            wait = (due - self.clock()).total_seconds()
            floor = 0.005 if (part.sent or part.failed or part.retried) else 0.05  # lanes held elsewhere: do not spin
            await asyncio.sleep(min(max(wait, floor), max_sleep, max(0.0, deadline - loop.time())))

    async def run_forever(self, channels: Mapping[str, Channel], *, poll_seconds: float = 2.0,
                          stop: asyncio.Event | None = None) -> None:
        """The bot's sender loop: wakes on enqueue, on the next retry, or every poll_seconds."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            self.wake.clear()
            try:
                await self.drain(channels)
            except sa.exc.OperationalError as e:  # the database blinked; try again shortly
                log.warning("outbox: state database error, retrying: %s", e)
            due = self.next_due()
            wait = poll_seconds
            if due is not None:
                wait = min(poll_seconds, max(0.01, (due - self.clock()).total_seconds()))
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass

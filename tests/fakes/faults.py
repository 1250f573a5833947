"""Fault injection shared by the fake Telegram and Slack servers.

A `FaultPlan` decides, per incoming API call, whether to misbehave: answer 429 (with a
retry-after), answer 500, answer slowly (but within the client's timeout, so the call still
succeeds) or drop the connection before anything is recorded. A share of calls is hit at random
(seeded, so a failing run can be replayed); `fail_next` queues exact faults for targeted tests.
"""
from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

from aiohttp import web

FAULT_KINDS = ("429", "500", "slow", "drop")


@dataclass
class FaultPlan:
    share: float = 0.0  # share of eligible calls that get a fault, 0..1
    kinds: tuple[str, ...] = FAULT_KINDS  # which faults to pick from, uniformly
    retry_after: int = 1  # seconds announced on 429
    slow_seconds: float = 0.2  # delay of a "slow" answer
    methods: frozenset[str] | None = None  # API methods faults apply to (None = all)
    seed: int = 1
    _rng: random.Random = field(init=False, repr=False)
    _queued: deque[tuple[str | None, str]] = field(init=False, repr=False)
    injected: Counter = field(init=False)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {FAULT_KINDS}")
        self._rng = random.Random(self.seed)
        self._queued = deque()
        self.injected = Counter()

    def fail_next(self, kind: str, *, method: str | None = None, count: int = 1) -> None:
        """Make the next `count` calls (of `method`, or any eligible one) fail with `kind`."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use {FAULT_KINDS}")
        for _ in range(count):
            self._queued.append((method, kind))

    def pick(self, method: str) -> str | None:
        """The fault for this call, or None to answer normally."""
        for i, (queued_method, kind) in enumerate(self._queued):
            if queued_method is None or queued_method == method:
                del self._queued[i]
                self.injected[kind] += 1
                return kind
        if self.methods is not None and method not in self.methods:
            return None
        if self.share > 0 and self._rng.random() < self.share:
            kind = self._rng.choice(self.kinds)
            self.injected[kind] += 1
            return kind
        return None


async def fault_answer(plan: FaultPlan, method: str, request: web.Request, *,
                       too_many: Callable[[], web.Response],
                       server_error: Callable[[], web.Response]) -> web.StreamResponse | None:
    """Play the fault `plan` picks for this call, or None to answer normally. Dropped and slow
    calls act on the connection the same way for every server; 429 and 500 bodies are each
    API's own (`too_many`, `server_error`). A call dropped, or given up on by the client while
    slow, is answered with a bare 500 that nobody reads and nothing is recorded."""
    fault = plan.pick(method)
    if fault == "drop":
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=500)
    if fault == "429":
        return too_many()
    if fault == "500":
        return server_error()
    if fault == "slow":
        await asyncio.sleep(plan.slow_seconds)
        if request.transport is None or request.transport.is_closing():
            return web.Response(status=500)
    return None

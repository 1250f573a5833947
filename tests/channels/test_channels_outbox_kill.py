"""Killed with SIGKILL mid-send and restarted, the outbox loses nothing and repeats at most one.

A subprocess (outbox_sender.py: bot.outbox + TelegramChannel) sends 200 messages to the fake
Telegram server running in this test; it is killed once a third has arrived, then started
again on the same SQLite state and runs to the end.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest

from bot.channels.base import OutgoingMessage
from tests.channels.conftest import wait_for
from tests.fakes.faults import FaultPlan
from tests.fakes.telegram_server import FakeTelegramServer

outbox_mod = pytest.importorskip("bot.outbox", reason="bot.outbox (engineer bot-core) not there")
state_mod = pytest.importorskip("bot.state", reason="bot.state (engineer bot-core) not there")

SCRIPT = Path(__file__).with_name("outbox_sender.py")
ROOT = Path(__file__).resolve().parents[2]
N = 200
CHAT = "4242"


async def _start(state_url: str, base_url: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), state_url, base_url, cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


@pytest.fixture
def state_dir(tmp_path):
    """SQLite state in RAM (/dev/shm) where there is one: the test is about kills, not fsync."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="crm-pulse-kill-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
async def test_sigkill_mid_send_then_restart_delivers_all_200_at_most_one_twice(state_dir):
    state_url = f"sqlite:///{state_dir / 'state.db'}"
    store = state_mod.StateStore.open(state_url)
    outbox = outbox_mod.Outbox(store)
    outbox.enqueue(CHAT, [OutgoingMessage("telegram", CHAT, {"text": f"m{i:03d}"},
                                          dedup_key=f"m{i:03d}") for i in range(N)])
    store.close()

    async with FakeTelegramServer(faults=FaultPlan()) as server:
        first = await _start(state_url, server.base_url)
        try:
            await wait_for(lambda: len(server.texts(CHAT)) >= N // 3, timeout=60)
        finally:
            os.kill(first.pid, signal.SIGKILL)
            await first.wait()
        assert first.returncode == -signal.SIGKILL
        at_kill = len(server.texts(CHAT))
        assert at_kill < N, "the sender finished before it could be killed"

        second = await _start(state_url, server.base_url)
        out, err = await asyncio.wait_for(second.communicate(), timeout=90)
        assert second.returncode == 0, err.decode()[-2000:]

    texts = server.texts(CHAT)
    twice = [t for t, n in Counter(texts).items() if n > 1]
    assert sorted(set(texts)) == [f"m{i:03d}" for i in range(N)]  # all 200 arrived
    assert len(twice) <= 1, f"sent twice: {twice}"
    assert list(dict.fromkeys(texts)) == [f"m{i:03d}" for i in range(N)]  # in order


SHARED_CHATS = ["5001", "5002", "5003", "5004", "5005"]
PER_RECIPIENT = 30


@pytest.mark.slow
async def test_sigkill_mid_fan_out_repeats_at_most_one_message_per_chat(state_dir):
    """Ten recipients, two per chat (a director and a team channel in one group, say), sent
    concurrently: a kill repeats at most the one message in flight per chat, never one per
    recipient sharing it."""
    state_url = f"sqlite:///{state_dir / 'state.db'}"
    store = state_mod.StateStore.open(state_url)
    outbox = outbox_mod.Outbox(store)
    expected: dict[str, list[str]] = {chat: [] for chat in SHARED_CHATS}
    for r in range(2 * len(SHARED_CHATS)):
        chat = SHARED_CHATS[r % len(SHARED_CHATS)]
        msgs = [OutgoingMessage("telegram", chat, {"text": f"r{r}-{k:02d}"}, dedup_key=f"r{r}-{k:02d}")
                for k in range(PER_RECIPIENT)]
        outbox.enqueue(f"r{r}", msgs)
        expected[chat] += [m.payload["text"] for m in msgs]
    store.close()
    total = sum(len(v) for v in expected.values())

    async with FakeTelegramServer(faults=FaultPlan()) as server:
        def arrived() -> int:
            return sum(len(server.texts(c)) for c in SHARED_CHATS)

        first = await _start(state_url, server.base_url)
        try:
            await wait_for(lambda: arrived() >= total // 3, timeout=60)
        finally:
            os.kill(first.pid, signal.SIGKILL)
            await first.wait()
        assert arrived() < total, "the sender finished before it could be killed"
        second = await _start(state_url, server.base_url)
        _, err = await asyncio.wait_for(second.communicate(), timeout=90)
        assert second.returncode == 0, err.decode()[-2000:]

    for chat in SHARED_CHATS:
        texts = server.texts(chat)
        assert sorted(set(texts)) == sorted(expected[chat])  # nothing lost
        repeats = sum(n - 1 for n in Counter(texts).values())
        assert repeats <= 1, f"chat {chat}: {repeats} messages sent twice"
        for r in {t.split("-")[0] for t in texts}:  # each recipient's messages in order
            mine = [t for t in dict.fromkeys(texts) if t.startswith(f"{r}-")]
            assert mine == sorted(mine)

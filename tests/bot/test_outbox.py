"""Outbox: stored before sending, retries honour retry-after, order per recipient, nothing twice."""
import asyncio
from datetime import timedelta

from bot.channels.base import OutgoingMessage
from bot.outbox import Outbox


def msgs(recipient: str, n: int, channel="telegram"):
    return [OutgoingMessage(channel, recipient, {"text": f"{recipient}-{k}", "buttons": []}, dedup_key=f"{recipient}:{k}")
            for k in range(n)]


def texts(ch):
    return [m.payload["text"] for m in ch.delivered]


async def test_enqueue_is_deduplicated_and_drain_sends_in_order(store, fake_channel):
    box = Outbox(store)
    assert len(box.enqueue("anna", msgs("anna", 3))) == 3
    assert box.enqueue("anna", msgs("anna", 3)) == []  # same dedup keys: refused
    ch = fake_channel()
    res = await box.drain({"telegram": ch})
    assert res.sent == 3 and texts(ch) == ["anna-0", "anna-1", "anna-2"]
    assert box.counts() == {"sent": 3}
    assert (await box.drain({"telegram": ch})).sent == 0


async def test_retry_later_keeps_order_and_honours_after_seconds(store, fake_channel):
    box = Outbox(store)
    box.enqueue("anna", msgs("anna", 3))
    ch = fake_channel(script=[None, "retry", "retry_noafter"])
    box.backoff_base = 0.01
    first = await box.drain({"telegram": ch})
    assert first.sent == 1 and first.retried == 1
    row = box.rows(status="pending")[0]
    assert row.payload["text"] == "anna-1" and row.last_error == "429 Too Many Requests" and row.attempts == 1
    res = await box.drain_until_idle({"telegram": ch}, timeout=5)
    assert texts(ch) == ["anna-0", "anna-1", "anna-2"]
    assert box.counts() == {"sent": 3}


async def test_permanent_failure_is_recorded_and_the_rest_still_go(store, fake_channel):
    box = Outbox(store)
    box.enqueue("anna", msgs("anna", 2))
    ch = fake_channel(script=["perm"])
    res = await box.drain({"telegram": ch})
    assert res.failed == 1 and res.sent == 1
    failed = box.failed()
    assert len(failed) == 1 and failed[0].last_error == "Forbidden: bot was blocked by the user"
    assert texts(ch) == ["anna-1"]


async def test_unexpected_error_is_retried_not_lost(store, fake_channel):
    box = Outbox(store, backoff_base=0.01)
    box.enqueue("anna", msgs("anna", 1))
    ch = fake_channel(script=["crash"])
    await box.drain_until_idle({"telegram": ch}, timeout=5)
    assert texts(ch) == ["anna-0"]


async def test_gives_up_after_max_attempts_with_reason(store, fake_channel):
    box = Outbox(store, max_attempts=3, backoff_base=0.001)
    box.enqueue("anna", msgs("anna", 1))
    ch = fake_channel(script=["retry"] * 10)
    await box.drain_until_idle({"telegram": ch}, timeout=5)
    assert ch.calls == 3
    assert box.failed()[0].last_error.startswith("gave up after 3 attempts: 429")


async def test_missing_channel_leaves_message_pending(store, fake_channel):
    box = Outbox(store)
    box.enqueue("anna", msgs("anna", 1, channel="slack"))
    res = await box.drain({"telegram": fake_channel()})
    assert res.sent == 0 and box.rows(status="pending")[0].last_error.startswith("channel 'slack' is not running")


async def test_restart_resumes_pending(store, fake_channel):
    box = Outbox(store)
    box.enqueue("anna", msgs("anna", 2))
    # "crash" before anything was sent: a new Outbox (new process) on the same state sends all
    ch = fake_channel()
    await Outbox(store).drain({"telegram": ch})
    assert texts(ch) == ["anna-0", "anna-1"]


async def test_interleaved_failures_every_message_once_in_order(store, fake_channel):
    box = Outbox(store, backoff_base=0.001)
    for r in ("a", "b", "c", "d"):
        box.enqueue(r, msgs(r, 5))
    script = (["retry", None, "crash", None, None, "retry_noafter"] * 10)
    ch = fake_channel(script=script)
    await box.drain_until_idle({"telegram": ch}, timeout=10)
    got = texts(ch)
    assert sorted(got) == sorted(f"{r}-{k}" for r in "abcd" for k in range(5))  # each exactly once
    for r in "abcd":
        assert [t for t in got if t.startswith(r)] == [f"{r}-{k}" for k in range(5)]


async def test_two_processes_sharing_state_never_send_twice(store, fake_channel):
    """Two outboxes (two bot processes) drain the same rows concurrently."""
    from bot.state import StateStore

    other_store = store if not store.is_postgres else StateStore.open(
        store.engine.url.render_as_string(hide_password=False), prefix=store.prefix)
    box1, box2 = Outbox(store, holder="p1"), Outbox(other_store, holder="p2")
    for r in range(10):
        box1.enqueue(f"r{r}", msgs(f"r{r}", 4))
    ch1, ch2 = fake_channel(delay=0.002), fake_channel(delay=0.002)
    await asyncio.gather(box1.drain_until_idle({"telegram": ch1}, timeout=10),
                         box2.drain_until_idle({"telegram": ch2}, timeout=10))
    got = texts(ch1) + texts(ch2)
    assert len(got) == 40 and len(set(got)) == 40
    if other_store is not store:
        other_store.close()


async def test_run_forever_wakes_on_enqueue(store, fake_channel):
    box = Outbox(store)
    ch = fake_channel()
    stop = asyncio.Event()
    task = asyncio.create_task(box.run_forever({"telegram": ch}, poll_seconds=30, stop=stop))
    await asyncio.sleep(0.05)
    box.enqueue("anna", msgs("anna", 1))
    for _ in range(100):
        if ch.delivered:
            break
        await asyncio.sleep(0.02)
    stop.set()
    box.wake.set()
    await asyncio.wait_for(task, 5)
    assert texts(ch) == ["anna-0"]


async def test_same_key_from_a_racing_writer_is_skipped_not_an_error(store, fake_channel):
    box = Outbox(store)
    with store.engine.begin() as conn:  # the caller's transaction goes on after a duplicate
        box.enqueue("anna", msgs("anna", 2), conn=conn)
        ids = box.enqueue("anna", msgs("anna", 3), conn=conn)
        assert len(ids) == 1
    assert [r.dedup_key for r in box.rows()] == ["anna:0", "anna:1", "anna:2"]

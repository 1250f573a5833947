"""A digest whose time passed while the bot was down, or that was cut short by a kill while
being written, is written at the next start for everyone who did not get it, and only for them."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from bot.app import serve
from bot.config import parse_config
from bot.outbox import Outbox
from bot.scheduler import PulseJobs

UTC = timezone.utc
THU_0900 = datetime(2026, 10, 1, 4, 0, tzinfo=UTC)  # Thursday 09:00 in Almaty: digest time
DIGEST_TARGETS = {"anna", "boris", "dina", "sales-team"}


def _jobs(config, store, scenario, at):
    clock = SimpleNamespace(now=at)
    jobs = PulseJobs(config, store, Outbox(store, clock=lambda: clock.now), clock=lambda: clock.now,
                     scan_fn=lambda c, now: SimpleNamespace(insights=scenario, data=None, skipped={}))
    return jobs, clock


def _digest_rows(store, tid):
    return [r for r in Outbox(store).rows(recipient=tid) if r.dedup_key.startswith(f"digest:{tid}:")]


async def test_a_digest_cut_short_is_finished_at_the_next_start_for_the_rest_only(config, sqlite_store, scenario):
    jobs, _ = _jobs(config, sqlite_store, scenario, THU_0900)
    await jobs.run_scan()
    await jobs.run_digest(["anna"])  # killed after Anna's digest was written
    anna_before = _digest_rows(sqlite_store, "anna")
    assert anna_before

    restarted, clock = _jobs(config, sqlite_store, scenario, THU_0900 + timedelta(hours=2, minutes=37))
    caught = await restarted.catch_up_digests()
    assert set(caught) == DIGEST_TARGETS - {"anna"}
    assert _digest_rows(sqlite_store, "anna") == anna_before  # no second digest for Anna
    for tid in ("boris", "dina", "sales-team"):
        assert _digest_rows(sqlite_store, tid), tid
    # a second restart the same day finds everyone served
    again, _ = _jobs(config, sqlite_store, scenario, THU_0900 + timedelta(hours=5))
    assert await again.catch_up_digests() == []


async def test_nothing_is_caught_up_before_the_digest_time_or_on_a_day_off(config, sqlite_store, scenario):
    early, _ = _jobs(config, sqlite_store, scenario, THU_0900 - timedelta(minutes=1))
    assert await early.catch_up_digests() == []
    saturday, _ = _jobs(config, sqlite_store, scenario, THU_0900 + timedelta(days=2, hours=3))
    assert await saturday.catch_up_digests() == []
    assert Outbox(sqlite_store).rows() == []


async def test_each_timezone_is_judged_by_its_own_clock(config_toml, sqlite_store, scenario):
    cfg = parse_config(config_toml.replace('id = "boris"', 'id = "boris"\ndigest_time = "09:00"\n'
                                                           'timezone = "Europe/Moscow"'))
    # 10:00 in Almaty is 08:00 in Moscow: Boris's digest is still ahead
    jobs, _ = _jobs(cfg, sqlite_store, scenario, THU_0900 + timedelta(hours=1))
    assert set(await jobs.catch_up_digests()) == DIGEST_TARGETS - {"boris"}


async def test_serve_writes_the_missed_digest_at_start(tmp_path, config_toml, scenario, fake_channel):
    cfg = parse_config(config_toml + f'\n[state]\nurl = "sqlite:///{tmp_path / "s.db"}"\n[telegram]\nenabled = true\n'
                       "[delivery]\ncritical_immediately = false\n", base_dir=tmp_path)
    tg = fake_channel("telegram")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(cfg, stop=stop, channels={"telegram": tg},
                                     clock=lambda: THU_0900 + timedelta(hours=3),
                                     scan_fn=lambda c, now: SimpleNamespace(insights=scenario, data=None, skipped={})))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len({m.address for m in tg.delivered}) < 4:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 15)
    assert {m.address for m in tg.delivered} == {"101", "102", "900", "-100500"}

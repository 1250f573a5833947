"""Observing the running bot: /metrics and /healthz ([metrics], off by default), quiet INFO logs,
no stale migrate lock after a clean stop, and /maturity's data hints right after a restart."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import aiohttp
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import serve
from bot.channels.base import PermanentFailure
from bot.config import ConfigError, parse_config
from bot.metrics import Metrics, health, probe_url
from bot.scheduler import PulseJobs
from bot.state import StateStore
from tests.bot.conftest import CONFIG_TOML
from tests.channels.conftest import free_port, wait_for
from tests.fakes.faults import FaultPlan
from tests.fakes.telegram_server import FakeTelegramServer

UTC = timezone.utc
TG_TOKEN = "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels): value} of a Prometheus text page."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(page: dict, name: str, **labels: str) -> float | None:
    return page.get((name, frozenset(labels.items())))


async def get(port: int, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}{path}") as r:
            return r.status, r.headers.get("Content-Type", ""), await r.text()


def _config(tmp_path, port: int, extra: str = "") -> object:
    quiet_free = CONFIG_TOML.replace('quiet_hours = "21:00-08:00"\n', "")  # serve() runs on the wall clock
    return parse_config(quiet_free + f'\n[state]\nurl = "sqlite:///{tmp_path / "s.db"}"\n[telegram]\nenabled = true\n'
                        f'[metrics]\nenabled = true\nport = {port}\n' + extra, base_dir=tmp_path)


# -- config -------------------------------------------------------------------------------------

def test_metrics_are_off_by_default_and_checked_like_every_key():
    cfg = parse_config("")
    assert cfg.metrics.enabled is False and (cfg.metrics.host, cfg.metrics.port) == ("127.0.0.1", 9464)
    with pytest.raises(ConfigError) as e:
        parse_config("[metrics]\nenabled = true\nport = 70000\n")
    assert "metrics.port" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config('[metrics]\nhost = "local host"\n')
    assert "metrics.host" in str(e.value) and "127.0.0.1" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config("[metrics]\nenabeld = true\n")
    assert "did you mean `enabled`" in str(e.value)


def test_the_healthcheck_asks_the_loopback_for_a_bot_on_every_interface():
    assert probe_url("0.0.0.0", 9464) == "http://127.0.0.1:9464/healthz"
    assert probe_url("::", 9464) == "http://[::1]:9464/healthz"
    assert probe_url("10.0.0.5", 80) == "http://10.0.0.5:80/healthz"


def test_two_bots_in_one_process_count_apart():
    """A private registry each: no 'Duplicated timeseries' error, no shared counts."""
    a, b = Metrics(), Metrics()
    a.scan_failed(1.0)
    assert value(samples(a.render().decode()), "crm_pulse_scans_total", outcome="failed") == 1
    assert value(samples(b.render().decode()), "crm_pulse_scans_total", outcome="failed") == 0


def test_health_names_what_is_wrong():
    assert health(True, {}) == (200, {"status": "ok", "scheduler": "running", "failing_jobs": {}})
    status, body = health(True, {"sync": "HTTPError: 502"})
    assert status == 200 and body["failing_jobs"] == {"sync": "HTTPError: 502"}  # the scan reads what was synced
    status, body = health(False, {"scan": "DataError: deals.csv is missing"})
    assert status == 503 and body["reasons"] == ["the scheduler is not running",
                                                 "the last scan failed: DataError: deals.csv is missing"]
    assert health(False, {}, starting=True) == (503, {"status": "starting",
                                                      "reasons": ["the bot is starting (chats, scheduler)"]})
    status, body = health(True, {}, sender_running=False)
    assert status == 503 and body["reasons"] == ["the outbox sender has stopped: messages wait unsent (see the log)"]


# -- the running bot ----------------------------------------------------------------------------

async def test_the_running_bot_serves_metrics_and_health(tmp_path, scenario, fake_channel):
    port = free_port()
    cfg = _config(tmp_path, port)
    tg = fake_channel("telegram", script=["retry", "perm"])  # one message retried, one refused for good
    newest = datetime.now(UTC) - timedelta(hours=3)
    found = [i for i in scenario if i.detector != "loss_reasons"]  # one quiet detector

    def scan(c, now):
        return SimpleNamespace(insights=found, data=None, skipped={},
                               freshness=SimpleNamespace(newest=pd.Timestamp(newest)))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(cfg, stop=stop, channels={"telegram": tg}, catch_up=False, scan_fn=scan))
    try:
        async def settled() -> dict:
            status, ctype, text = await get(port, "/metrics")
            assert status == 200 and ctype.startswith("text/plain")
            return samples(text)
        page: dict = {}
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            try:
                page = await settled()
            except aiohttp.ClientConnectionError:
                page = {}
            if (value(page, "crm_pulse_outbox_messages", status="pending") == 0
                    and value(page, "crm_pulse_messages_total", channel="telegram", outcome="retried") == 1):
                break
            await asyncio.sleep(0.1)
        status, ctype, body = await get(port, "/healthz")
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)

    assert value(page, "crm_pulse_scans_total", outcome="ok") == 1
    assert value(page, "crm_pulse_scans_total", outcome="failed") == 0
    assert value(page, "crm_pulse_scan_duration_seconds_count") == 1
    assert value(page, "crm_pulse_insights", detector="stalled_deal") == 2
    assert value(page, "crm_pulse_insights", detector="manager_load") == 1
    assert value(page, "crm_pulse_insights", detector="loss_reasons") == 0
    sent = len(tg.delivered)
    assert sent >= 2
    assert value(page, "crm_pulse_messages_total", channel="telegram", outcome="sent") == sent
    assert value(page, "crm_pulse_messages_total", channel="telegram", outcome="failed") == 1
    assert value(page, "crm_pulse_messages_total", channel="telegram", outcome="retried") == 1
    assert value(page, "crm_pulse_outbox_messages", status="sent") == sent
    assert value(page, "crm_pulse_outbox_messages", status="failed") == 1
    age = value(page, "crm_pulse_data_age_seconds")
    assert age is not None and 3 * 3600 <= age < 3 * 3600 + 120
    last = value(page, "crm_pulse_last_successful_scan_timestamp_seconds")
    assert last is not None and abs(last - datetime.now(UTC).timestamp()) < 120
    assert status == 200 and ctype.startswith("application/json") and '"status": "ok"' in body
    with pytest.raises(aiohttp.ClientConnectionError):  # a clean stop closes the port
        await get(port, "/healthz")
    assert not list(tmp_path.glob("*.migrate.lock"))


async def test_a_failed_scan_makes_health_503_with_the_reason(tmp_path):
    port = free_port()
    cfg = _config(tmp_path, port)

    def broken(c, now):
        raise ValueError("deals.csv, row 57, column created_at: '31.02.2026' is not a date")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(cfg, stop=stop, channels={}, catch_up=False, scan_fn=broken))
    try:
        async def failed() -> bool:
            try:
                return "the last scan failed" in (await get(port, "/healthz"))[2]
            except aiohttp.ClientConnectionError:
                return False
        deadline = asyncio.get_running_loop().time() + 15
        while not await failed():
            assert asyncio.get_running_loop().time() < deadline, "health never turned 503"
            await asyncio.sleep(0.05)
        status, _, body = await get(port, "/healthz")
        page = samples((await get(port, "/metrics"))[2])
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert status == 503 and "the last scan failed" in body and "row 57" in body
    assert value(page, "crm_pulse_scans_total", outcome="failed") == 1
    assert value(page, "crm_pulse_scans_total", outcome="ok") == 0
    assert value(page, "crm_pulse_data_age_seconds") is None  # nothing known, nothing made up


async def test_a_taken_metrics_port_stops_the_start_with_the_key_to_change(tmp_path, fake_channel):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        tg = fake_channel("telegram")
        with pytest.raises(PermanentFailure) as e:
            await asyncio.wait_for(serve(_config(tmp_path, port), channels={"telegram": tg}, start_scan=False,
                                         catch_up=False), 15)
    assert f"[metrics] cannot listen on 127.0.0.1:{port}" in e.value.reason and "[metrics] port" in e.value.reason
    assert tg.delivered == []


async def test_metrics_off_serves_nothing(tmp_path, fake_channel):
    port = free_port()
    cfg = _config(tmp_path, port).model_copy(update={"metrics": parse_config("").metrics})
    stop = asyncio.Event()
    task = asyncio.create_task(serve(cfg, stop=stop, channels={"telegram": fake_channel("telegram")},
                                     start_scan=False, catch_up=False))
    try:
        await asyncio.sleep(0.5)
        with pytest.raises(aiohttp.ClientConnectionError):
            await get(port, "/metrics")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


# -- quiet logs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_apscheduler_is_quiet_at_info_and_speaks_at_debug(level, tmp_path, fake_channel, caplog, scenario):
    caplog.set_level(level)
    stop = asyncio.Event()
    cfg = _config(tmp_path, free_port())
    task = asyncio.create_task(serve(cfg, stop=stop, channels={"telegram": fake_channel("telegram")}, catch_up=False,
                                     scan_fn=lambda c, now: SimpleNamespace(insights=scenario, data=None, skipped={})))
    await wait_for(lambda: any("crm-pulse running" in r.getMessage() for r in caplog.records), timeout=15)
    stop.set()
    await asyncio.wait_for(task, 15)
    scheduler_lines = [r.getMessage() for r in caplog.records if r.name.startswith("apscheduler")]
    if level == "INFO":
        assert scheduler_lines == []
        assert any("scan:" in r.getMessage() for r in caplog.records)  # our own INFO lines stay
    else:
        assert any("Adding job tentatively" in m for m in scheduler_lines)
    assert logging.getLogger("apscheduler").level == logging.NOTSET  # restored after the stop


# -- the migrate lock -----------------------------------------------------------------------------

def test_opening_the_state_leaves_no_migrate_lock_and_parallel_opens_still_migrate_once(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    url = f"sqlite:///{tmp_path / 'state.db'}"
    with ThreadPoolExecutor(6) as pool:
        applied = list(pool.map(lambda _: _open_and_close(url), range(6)))
    assert sum(1 for a in applied if a) == 1  # one opener migrated, the others found it done
    assert not list(tmp_path.glob("*.lock")), list(tmp_path.iterdir())
    store = StateStore.open(url)
    try:
        assert store.schema_version() >= 1
    finally:
        store.close()
    assert not list(tmp_path.glob("*.lock"))


def _open_and_close(url: str) -> list[int]:
    store = StateStore.open(url, migrate=False)
    try:
        return store.migrate()
    finally:
        store.close()


# -- /maturity after a restart -------------------------------------------------------------------

async def test_after_a_restart_maturity_has_the_data_without_a_new_scan(tmp_path, fake_channel, monkeypatch):
    """A scan is stored: no new scan at start (nothing is re-sent), but the CRM data is read, so
    a /maturity finished right after the restart has its data hints, not "no CRM data"."""
    from bot import handlers as handlers_module
    from bot.maturity.data_hints import data_hints
    from crm.demo import export_csv, generate_demo

    demo = generate_demo()
    export_csv(demo.data, tmp_path / "export")
    cfg = _config(tmp_path, free_port(), '[source]\npath = "export"\n')
    store = StateStore.open(cfg.state_url())
    store.save_scan([], demo.now, demo.now)
    store.close()
    made = []

    class Recording(handlers_module.Handlers):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            made.append(self)
    monkeypatch.setattr(handlers_module, "Handlers", Recording)
    scans = []
    stop = asyncio.Event()
    task = asyncio.create_task(serve(cfg, stop=stop, channels={"telegram": fake_channel("telegram")}, catch_up=False,
                                     scan_fn=lambda c, now: scans.append(now)))
    try:
        await wait_for(lambda: made and made[0].data_provider() is not None, timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    data = made[0].data_provider()
    assert scans == []  # the stored scan stands
    assert len(data.deals) == len(demo.data.deals)
    hints = data_hints(data, demo.now)
    assert hints and all(h.kind != "no_data" for h in hints)


async def test_a_restart_with_unreadable_data_still_starts_and_says_why(tmp_path, fake_channel, caplog):
    cfg = _config(tmp_path, free_port(), '[source]\npath = "export"\n')
    (tmp_path / "export").mkdir()  # no files: the data cannot be read
    store = StateStore.open(cfg.state_url())
    store.save_scan([], datetime.now(UTC), datetime.now(UTC))
    store.close()
    caplog.set_level("WARNING")
    port = cfg.metrics.port
    stop = asyncio.Event()
    task = asyncio.create_task(serve(cfg, stop=stop, channels={"telegram": fake_channel("telegram")}, catch_up=False))
    try:
        await wait_for(lambda: any("could not read the CRM data at start" in r.getMessage() for r in caplog.records),
                       timeout=30)
        status, _, body = await get(port, "/healthz")
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert status == 200  # no scan failed yet: the next scheduled scan tells the admins


# -- the real entry point -------------------------------------------------------------------------

async def test_crm_pulse_run_serves_health_and_crm_pulse_health_reads_it(tmp_path, capsys):
    """`python -m bot.cli run` in its own process against the fake Bot API, [metrics] on: an
    export folder without files makes the first scan fail, /healthz says so (503, JSON), the
    healthcheck command exits 1 with the reason; the INFO log has no APScheduler chatter, and a
    SIGTERM leaves no migrate lock behind."""
    from bot.cli import main

    port = free_port()
    async with FakeTelegramServer(faults=FaultPlan()) as tg:
        (tmp_path / "export").mkdir()
        cfg = tmp_path / "config.toml"
        cfg.write_text(CONFIG_TOML + f'\n[telegram]\nenabled = true\nbase_url = "{tg.base_url}"\n'
                       f'[state]\nurl = "sqlite:///{tmp_path / "state.db"}"\n[source]\npath = "export"\n'
                       f'[metrics]\nenabled = true\nport = {port}\n', encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "CRM_PULSE_TELEGRAM_TOKEN": TG_TOKEN}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run", "--config", str(cfg), "--log-level", "INFO",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        try:
            async def unhealthy() -> bool:
                try:
                    return "the last scan failed" in (await get(port, "/healthz"))[2]
                except aiohttp.ClientConnectionError:
                    return False
            deadline = asyncio.get_running_loop().time() + 60
            while not await unhealthy():
                assert proc.returncode is None and asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.2)
            _, _, body = await get(port, "/healthz")
            page = samples((await get(port, "/metrics"))[2])
            code = await asyncio.to_thread(main, ["health", "--config", str(cfg)])
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode() + err.decode()
    assert proc.returncode == 0, text[-2000:]
    assert '"status": "failing"' in body and "the last scan failed" in body
    # the first scan failed (after today's digest time on a digest day the catch-up digest at
    # start scans again and fails too: 2, so the count depends on the hour), none succeeded
    assert value(page, "crm_pulse_scans_total", outcome="failed") >= 1
    assert value(page, "crm_pulse_scans_total", outcome="ok") == 0
    assert code == 1 and "unhealthy: the last scan failed" in capsys.readouterr().err
    assert "crm-pulse running" in text and "metrics on http://127.0.0.1" in text
    assert "apscheduler" not in text and "Adding job" not in text, text[-2000:]
    assert not list(tmp_path.glob("*.lock"))


def test_health_without_metrics_checks_the_state_database(tmp_path, capsys):
    from bot.cli import main

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[state]\nurl = "sqlite:///{tmp_path / "state.db"}"\n', encoding="utf-8")
    StateStore.open(f"sqlite:///{tmp_path / 'state.db'}").close()
    assert main(["health", "--config", str(cfg)]) == 0
    assert "ok: the state database answers" in capsys.readouterr().out
    (tmp_path / "state.db").unlink()
    (tmp_path / "state.db").mkdir()  # not a database any more
    assert main(["health", "--config", str(cfg)]) == 1
    assert "unhealthy: the state database" in capsys.readouterr().err
